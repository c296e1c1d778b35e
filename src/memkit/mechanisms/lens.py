"""Logit lens: decode every layer's residual stream with the model's own final norm and unembedding.

    frame = logit_lens(lm, samples)          # one row per sample x layer x continuation position
    lock = lock_in(frame)                    # per sample x position: first layer where the true token is top-1

Teacher-forced over prompt + true suffix: the residual stream after decoder block `layer`
(0-based, `memkit.core.hooks.record_residuals`) at the position that predicts suffix token j goes
through the same final norm, unembedding and logit soft-capping as the model's last layer, so
the lens at the last layer *is* the model's output (tested with allclose). Where the final norm
sits and whether logits are soft-capped are architecture facts (`memkit.core.arch`):

- GPT-NeoX (Pythia, the zoo): `gpt_neox.final_layer_norm` (LayerNorm), then the unembedding;
- Llama (SmolLM2): `model.norm` (RMSNorm), `lm_head` (tied to the input embedding);
- Gemma 3: `model.norm` (RMSNorm with a 1 + weight scale), `lm_head`, then
  `tanh(logits / c) * c` when `config.final_logit_softcapping = c` is set. Gemma's embedding
  scaling by sqrt(d_model) happens before block 0 and does not concern the lens.

The residual streams are the raw outputs of the decoder blocks (never HF's
`hidden_states[-1]`, which some architectures return already normed). Gemma's 262k-token
vocabulary makes a full layers x positions x vocab tensor huge, so positions are projected in
chunks and only the rank and probability of the true token are kept.

Rank 0 means the true token is the argmax (ties count in its favour: rank = number of tokens
with a strictly larger logit). `first_top1` is the first layer where the rank is 0; `lock_in`
the first layer from which it stays 0 up to the last layer (-1 where the model's own output
is not the true token).
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd
import torch
from tqdm import tqdm

from ..core.arch import decoder_layers, final_norm, logit_softcap
from ..core.batching import right_padded
from ..core.extract import pad_token_id
from ..core.hooks import record_residuals
from ..core.models import LoadedModel
from ..core.samples import Sample
from ..errors import MemkitError


def lens_logits(model, hidden: torch.Tensor) -> torch.Tensor:
    """Logits the model would output if `hidden` (a residual stream, (..., d_model)) were its last layer."""
    unembed = model.get_output_embeddings()
    with torch.inference_mode():  # recorded residuals are fp32: back to the model's dtype (bf16 on a GPU)
        logits = unembed(final_norm(model)(hidden.to(unembed.weight.dtype)))
        cap = logit_softcap(model)
        if cap is not None:
            logits = torch.tanh(logits / cap) * cap
    return logits.float()


def _true_token_stats(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank (strictly larger logits) and probability of `targets` under each row of `logits`."""
    true_logit = logits.gather(-1, targets[:, None])
    rank = (logits > true_logit).sum(-1)
    prob = (true_logit[:, 0] - torch.logsumexp(logits, dim=-1)).exp()
    return rank, prob


def logit_lens(lm: LoadedModel, samples: Sequence[Sample], *, layers: Sequence[int] | None = None,
               batch_size: int = 8, chunk: int = 64, progress: bool = True) -> pd.DataFrame:
    """Rank and probability of every true continuation token when decoding each layer (teacher forced).

    Columns: id, layer, position (0-based index into the suffix), token_id, rank, prob, is_top1.
    Rows are ordered by sample (input order), layer, position. `chunk` bounds how many
    positions are projected onto the vocabulary at once.
    """
    model = lm.model
    n_layers = len(decoder_layers(model))
    layers = list(range(n_layers)) if layers is None else sorted({int(x) for x in layers})
    if any(not 0 <= x < n_layers for x in layers):
        raise MemkitError(f"layers must lie in 0..{n_layers - 1}, got {layers}")
    device = lm.device
    pad_id = pad_token_id(lm.tokenizer)
    rows = []
    bar = tqdm(total=len(samples), desc=f"lens {lm.name}", unit="sample", disable=not progress)
    for start in range(0, len(samples), batch_size):
        batch = samples[start : start + batch_size]
        ids, mask = right_padded([list(s.prompt_ids) + list(s.suffix_ids) for s in batch], pad_id)
        with torch.inference_mode(), record_residuals(model) as store:
            model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False)
        # columns predicting each suffix token: prompt_len - 1 + j
        where = [(b, len(s.prompt_ids) - 1 + j, j, tok) for b, s in enumerate(batch)
                 for j, tok in enumerate(s.suffix_ids)]
        b_idx = torch.tensor([w[0] for w in where])
        col = torch.tensor([w[1] for w in where])
        targets = torch.tensor([w[3] for w in where], device=device)
        for layer in layers:
            hidden = store[layer][0][b_idx, col].to(device)
            ranks, probs = [], []
            for c in range(0, len(where), chunk):
                rank, prob = _true_token_stats(lens_logits(model, hidden[c : c + chunk]), targets[c : c + chunk])
                ranks.append(rank.cpu())
                probs.append(prob.cpu())
            rank, prob = torch.cat(ranks).tolist(), torch.cat(probs).tolist()
            for (b, _, j, tok), r, p in zip(where, rank, prob):
                rows.append((batch[b].id, start + b, layer, j, int(tok), int(r), float(p)))
        bar.update(len(batch))
    bar.close()
    frame = pd.DataFrame(rows, columns=["id", "_order", "layer", "position", "token_id", "rank", "prob"])
    frame = frame.sort_values(["_order", "layer", "position"], kind="stable").drop(columns="_order")
    frame["is_top1"] = frame["rank"] == 0
    return frame.reset_index(drop=True)


def lock_in(frame: pd.DataFrame) -> pd.DataFrame:
    """Per sample x position: `first_top1` and `lock_in` layers (-1 when never / not at the last layer).

    Also `final_top1` (the last layer's prediction is the true token) and `n_layers_top1`.
    """
    rows = []
    last = int(frame["layer"].max())
    for (sid, position), part in frame.groupby(["id", "position"], sort=False):
        part = part.sort_values("layer")
        top = part["is_top1"].to_numpy()
        layers = part["layer"].to_numpy()
        first = int(layers[top.argmax()]) if top.any() else -1
        final = bool(top[-1]) and int(layers[-1]) == last
        locked = -1
        if final:
            i = len(top) - 1
            while i > 0 and top[i - 1]:
                i -= 1
            locked = int(layers[i])
        rows.append({"id": sid, "position": int(position), "first_top1": first, "lock_in": locked,
                     "final_top1": final, "n_layers_top1": int(top.sum())})
    return pd.DataFrame(rows)
