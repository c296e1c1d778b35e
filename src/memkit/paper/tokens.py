"""Per-token view of one continuation: what the model chose, how sure it was, the reference.

    table = token_table(lm, prompt_ids, generated_ids, reference_ids)

One teacher-forced pass over prompt + generated tokens gives, at every continuation
position, the probability of the chosen (greedy) token and of the reference token, and
the reference token's rank. Used by the explore notebook.
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd
import torch

from ..core.models import LoadedModel


@torch.inference_mode()
def token_table(lm: LoadedModel, prompt_ids: Sequence[int], generated_ids: Sequence[int],
                reference_ids: Sequence[int] | None = None) -> pd.DataFrame:
    """One row per continuation position: tokens, probabilities, reference rank, match flag."""
    ids = torch.tensor([list(prompt_ids) + list(generated_ids)], device=lm.device)
    logits = lm.model(input_ids=ids, logits_to_keep=len(generated_ids) + 1).logits[0, :-1].float()
    probs = logits.softmax(-1)
    decode = lm.tokenizer.decode
    rows = []
    for t, chosen in enumerate(generated_ids):
        row = {"position": t, "generated": decode([chosen]), "p_generated": float(probs[t, chosen])}
        if reference_ids is not None and t < len(reference_ids):
            ref = int(reference_ids[t])
            row.update({"reference": decode([ref]), "p_reference": float(probs[t, ref]),
                        "reference_rank": int((logits[t] > logits[t, ref]).sum()) + 1, "match": chosen == ref})
        rows.append(row)
    return pd.DataFrame(rows)
