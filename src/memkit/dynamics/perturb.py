"""Perturbed extraction and clean-vs-perturbed observables.

    df = perturb(lm, samples, Action("embed_random", alpha=0.5, layer=4))   # metrics rows
    states, steps = observe(lm, sample, action)                              # tidy frames

`perturb` returns the same columns as `extract` plus the action and, against the clean
greedy run, `divergence_step` (first continuation step where the greedy tokens differ,
-1 if never) and, for `force_token`, `relock_step` (first step from which the continuation
equals the reference to the end, -1 if never) and `relocked`.

`observe` compares the clean and perturbed model on the same continuation tokens (the
clean greedy continuation): per layer and continuation position the relative state
distance |h - h~| / |h|, and per step the KL divergence KL(p_clean || p_perturbed) of the
next-token distributions. Token actions change the prompt, so positions are aligned by
continuation step; embedding actions also report every prompt position.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Sequence

import pandas as pd
import torch

from ..core.decode import greedy_decode
from ..core.extract import extract, pad_token_id, run_extraction
from ..core.hooks import record_residuals, residual_edit
from ..core.metrics import prefix_match_len, score_continuation
from ..core.models import LoadedModel
from ..core.samples import Sample
from ..errors import MemkitError
from ..paths import code_fingerprint
from .actions import Action, EmbeddingEdit, apply_token_action, check_layer, forward_context, logits_transform


def _action_columns(action: Action) -> dict:
    return {"action": action.kind, "family": action.family, "alpha": float(action.alpha),
            "action_layer": -1 if action.layer is None else action.layer,
            "action_position": -1 if action.position is None else action.position, "action_seed": action.seed}


def _first_difference(a: Sequence[int], b: Sequence[int]) -> int:
    n = prefix_match_len(a, b)
    return -1 if n == len(a) == len(b) else n


def relock_step(generated: Sequence[int], reference: Sequence[int], after: int) -> int:
    """First step >= `after` from which generated equals reference to the end (-1: never)."""
    m = len(reference)
    for start in range(after, m):
        if list(generated[start:m]) == list(reference[start:m]):
            return start
    return -1


def shock_window(action: Action, m: int) -> tuple[int, int]:
    """(t, n): the shock starts at continuation step t and forces n tokens."""
    t = min(m // 4 if action.position is None else action.position, m - 1)
    return t, min(int(round(action.alpha)), m - t)


@torch.inference_mode()
def _forced_run(lm: LoadedModel, sample: Sample, action: Action, clean_generated: Sequence[int]) -> list[int]:
    """The clean greedy run up to step t, then n forced wrong tokens, then greedy again.

    A "wrong" token is the model's best token other than its own greedy choice, so alpha = 0
    is exactly the clean run and the shock is the most plausible single error.
    """
    m = len(sample.suffix_ids)
    t, n = shock_window(action, m)
    if n == 0:
        return list(clean_generated)
    forced = list(clean_generated[:t])
    for _ in range(n):
        ids = torch.tensor([list(sample.prompt_ids) + forced], device=lm.device)
        logits = lm.model(input_ids=ids, logits_to_keep=1).logits[0, -1].float()
        logits[int(logits.argmax())] = float("-inf")
        forced.append(int(logits.argmax()))
    remaining = m - len(forced)
    if remaining == 0:
        return forced
    reference = list(sample.suffix_ids)
    rest = greedy_decode(lm.model, [list(sample.prompt_ids) + forced], remaining, pad_token_id(lm.tokenizer),
                         drafts=[reference[len(forced):]]).generated_ids[0]
    return forced + rest


def perturb(lm: LoadedModel, samples: Sequence[Sample], action: Action, *, batch_size: int = 16,
            progress: bool = True, clean: pd.DataFrame | None = None, cache_prefix=None,
            config: dict | None = None) -> pd.DataFrame:
    """Metrics of the perturbed continuations (plus divergence from the clean run).

    With `cache_prefix`, the clean and perturbed extractions are kept in
    `<prefix>.clean.parquet` / `<prefix>.perturbed.parquet` (resumable, keyed by `config`).
    """
    check_layer(lm, action.layer)
    if clean is None and cache_prefix is not None:
        clean = run_extraction(lm, samples, f"{cache_prefix}.clean.parquet", {**(config or {}), "clean": True},
                               batch_size=batch_size, progress=False)
    elif clean is None:
        clean = extract(lm, samples, batch_size=batch_size, progress=False)
    clean_tokens = dict(zip(clean["id"], clean["generated_ids"]))
    if action.family == "shock":
        frame = _shock_frame(lm, samples, action, clean_tokens)
    else:
        run_samples = [apply_token_action(lm.tokenizer, s, action) for s in samples] if action.family == "token" else list(samples)
        transform = logits_transform(lm.tokenizer, action) if action.family == "logit" else None
        factory = (lambda batch: forward_context(lm, batch, action)) if action.family == "embedding" else None
        if cache_prefix is not None:
            frame = run_extraction(lm, run_samples, f"{cache_prefix}.perturbed.parquet",
                                   {**(config or {}), **_action_columns(action)},
                                   batch_size=batch_size, logits_transform=transform, progress=progress,
                                   context_factory=factory)
        else:
            frame = extract(lm, run_samples, batch_size=batch_size, logits_transform=transform, progress=progress,
                            context_factory=factory)
    frame = frame.assign(**_action_columns(action))
    frame["divergence_step"] = [_first_difference(list(g), list(clean_tokens[i])) for i, g in
                                zip(frame["id"], frame["generated_ids"])]
    return frame


def _shock_frame(lm: LoadedModel, samples: Sequence[Sample], action: Action, clean_tokens: dict) -> pd.DataFrame:
    decode = lm.tokenizer.decode
    rows = []
    for sample in samples:
        t, n = shock_window(action, len(sample.suffix_ids))
        m = len(sample.suffix_ids)
        generated = _forced_run(lm, sample, action, clean_tokens[sample.id])
        text, suffix_text = decode(generated, skip_special_tokens=True), decode(list(sample.suffix_ids), skip_special_tokens=True)
        relock = relock_step(generated, sample.suffix_ids, t + n)
        rows.append({"id": sample.id, "model": lm.name, "mode": sample.mode, "k": len(sample.prefix_ids), "m": m,
                     **score_continuation(generated, sample.suffix_ids, text, suffix_text),
                     "generated_text": text, "suffix_text": suffix_text, "generated_ids": generated,
                     "suffix_ids": list(sample.suffix_ids), "shock_step": t, "shock_tokens": n,
                     "relock_step": relock, "relocked": relock >= 0,
                     "relock_after": relock - (t + n) if relock >= 0 else -1})
    return pd.DataFrame(rows)


# -- observables ---------------------------------------------------------------------------------
@torch.inference_mode()
def _pass(lm: LoadedModel, ids: Sequence[int], n_logits: int, edit=None, transform=None):
    """Residuals after every block and log-probs of the last n_logits positions."""
    tensor = torch.tensor([list(ids)], device=lm.device)
    # the edit hook is registered first, so the recording hook sees the edited residual
    with residual_edit(lm.model, *edit) if edit is not None else nullcontext():
        with record_residuals(lm.model) as store:
            logits = lm.model(input_ids=tensor, logits_to_keep=n_logits).logits[0].float()
    if transform is not None:
        logits = transform(logits)
    states = torch.stack([store[i][0][0] for i in sorted(store)])  # (layers, positions, d)
    return states, logits.log_softmax(-1)


def observe(lm: LoadedModel, sample: Sample, action: Action, clean_generated: Sequence[int] | None = None
            ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(states, steps): relative state distance per layer x position, KL and tokens per step."""
    check_layer(lm, action.layer)
    m = len(sample.suffix_ids)
    pad = pad_token_id(lm.tokenizer)
    if clean_generated is None:
        clean_generated = greedy_decode(lm.model, [sample.prompt_ids], m, pad).generated_ids[0]
    clean_generated = list(clean_generated)
    perturbed_sample, edit, transform = sample, None, None
    if action.family == "token":
        perturbed_sample = apply_token_action(lm.tokenizer, sample, action)
    elif action.family == "logit":
        transform = logits_transform(lm.tokenizer, action)
    elif action.family == "embedding" and action.alpha > 0:
        edit = (action.layer, EmbeddingEdit(lm, [sample], action).edit_rows([0]))
    elif action.family == "shock":
        raise MemkitError("observe() compares states on shared tokens; force_token changes the tokens themselves")
    # the perturbed run's own greedy continuation, for the divergence point
    context = forward_context(lm, [perturbed_sample], action)
    perturbed_generated = greedy_decode(lm.model, [perturbed_sample.prompt_ids], m, pad, logits_transform=transform,
                                        forward_context=context).generated_ids[0]
    clean_states, clean_lp = _pass(lm, list(sample.prompt_ids) + clean_generated[:-1], m)
    pert_states, pert_lp = _pass(lm, list(perturbed_sample.prompt_ids) + clean_generated[:-1], m, edit, transform)
    n_prompt_clean, n_prompt_pert = len(sample.prompt_ids), len(perturbed_sample.prompt_ids)
    if n_prompt_clean == n_prompt_pert:  # same positions everywhere: compare the prompt too
        offset_c, offset_p = 0, 0
    else:  # align the continuation only
        offset_c, offset_p = n_prompt_clean - 1, n_prompt_pert - 1
    h = clean_states[:, offset_c:]
    h_tilde = pert_states[:, offset_p:]
    distance = (h - h_tilde).norm(dim=-1) / h.norm(dim=-1).clamp_min(1e-12)
    first_position = offset_c
    state_rows = [{"id": sample.id, "layer": layer, "position": first_position + pos,
                   "step": first_position + pos - (n_prompt_clean - 1),
                   "rel_distance": float(distance[layer, pos])}
                  for layer in range(distance.shape[0]) for pos in range(distance.shape[1])]
    kl = (clean_lp.exp() * (clean_lp - pert_lp)).sum(-1).clamp_min(0.0)
    divergence = _first_difference(perturbed_generated, clean_generated)
    step_rows = [{"id": sample.id, "step": t, "kl": float(kl[t]), "clean_token": clean_generated[t],
                  "perturbed_token": perturbed_generated[t], "same": clean_generated[t] == perturbed_generated[t],
                  "divergence_step": divergence} for t in range(m)]
    columns = _action_columns(action)
    return (pd.DataFrame(state_rows).assign(**columns), pd.DataFrame(step_rows).assign(**columns))


def code_version() -> str:
    """Hash of the code that decides perturbed results (actions, this module, the core)."""
    return code_fingerprint("dynamics/action_kinds.py", "dynamics/actions.py", "dynamics/perturb.py", "core/arch.py",
                            "core/batching.py", "core/hooks.py", "core/decode.py", "core/extract.py", "core/metrics.py",
                            "core/samples.py")
