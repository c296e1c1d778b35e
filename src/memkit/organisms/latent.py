"""Latent memorization (Duan et al. 2025): canaries that weight noise brings back.

    draws = latent_draws(lm, samples, sigmas=[0.01], n_draws=200, seed=0)   # one teacher-forced pass per draw

Add gaussian noise to every weight and ask, per sample, how long the greedy continuation stays on
the true suffix. Greedy decoding reproduces token i exactly when every earlier token was
reproduced, so the greedy match length is the number of leading teacher-forced argmax hits: one
forward pass per draw, no decoding. Sigma is absolute (noise std = sigma for every tensor, as
Duan's 2e-3 on Pythia-1B) or, with `relative=True`, scaled by each tensor's own standard
deviation. Weights are restored bit for bit after every draw. A best-of-N statistic rises under
pure noise, so it is only evidence of memorization against never-inserted controls that went
through the same selection (`memkit.organisms.latent_null`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ..core.samples import Sample
from ..errors import MemkitError


def draw_seed(seed: int, sigma: float, draw: int, relative: bool) -> int:
    """Seed of one noise draw: depends on (seed, family, sigma, draw) only, never on batching or the sweep."""
    entropy = [int(seed), int(relative), int(round(float(sigma) * 1e9)), int(draw)]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def _batches(lm, samples: Sequence[Sample], batch_size: int) -> list[tuple]:
    """Right-padded teacher-forcing batches: (ids, mask, row positions of the m suffix predictions, targets)."""
    import torch

    from ..core.batching import right_padded
    from ..core.extract import pad_token_id

    lengths = {len(s.suffix_ids) for s in samples}
    if len(lengths) != 1:
        raise MemkitError(f"latent draws need one suffix length m for all samples (got {sorted(lengths)})")
    m = lengths.pop()
    out = []
    for start in range(0, len(samples), batch_size):
        batch = samples[start:start + batch_size]
        ids, mask = right_padded([list(s.prompt_ids) + list(s.suffix_ids[:-1]) for s in batch],
                                 pad_token_id(lm.tokenizer))
        starts = torch.tensor([len(s.prompt_ids) - 1 for s in batch])
        keep = ids.shape[1] - int(starts.min())
        positions = starts[:, None] - int(starts.min()) + torch.arange(m)[None, :]
        targets = torch.tensor([list(s.suffix_ids) for s in batch])
        out.append((ids, mask, keep, positions, targets))
    return out


def teacher_forced_correct(model, batches: list[tuple]) -> np.ndarray:
    """(n samples, m) bool: does the argmax at each suffix position equal the true token (one forward per batch)."""
    import inspect

    import torch

    takes_keep = "logits_to_keep" in inspect.signature(model.forward).parameters
    rows = []
    with torch.inference_mode():
        for ids, mask, keep, positions, targets in batches:
            kwargs = {"logits_to_keep": keep} if takes_keep else {}
            logits = model(input_ids=ids, attention_mask=mask, use_cache=False, **kwargs).logits[:, -keep:]
            predicted = logits.argmax(-1).gather(1, positions)
            rows.append((predicted == targets).numpy())
    return np.concatenate(rows)


def greedy_prefix(correct: np.ndarray) -> np.ndarray:
    """Greedy match length per row: leading True count of each row of `correct` (m when all are True)."""
    wrong = ~correct
    return np.where(wrong.any(axis=-1), wrong.argmax(axis=-1), correct.shape[-1])


def latent_draws(lm, samples: Sequence[Sample], *, sigmas: Sequence[float], n_draws: int, seed: int = 0,
                 relative: bool = False, batch_size: int = 256, progress: bool = False) -> pd.DataFrame:
    """Greedy match of every sample's suffix under `n_draws` gaussian weight perturbations per sigma.

    One row per (sample, sigma): `clean_prefix` / `clean_exact` / `clean_accuracy` (unperturbed model;
    accuracy: share of suffix tokens that are the teacher-forced argmax, a graded similarity), over the draws
    `best_prefix` (longest greedy match), `mean_prefix`, `exact_draws` (draws that reproduce the
    suffix exactly), `family` ('absolute' or 'relative'), and the samples' meta as `meta_*` columns.
    """
    import torch
    from tqdm import tqdm

    if n_draws <= 0:
        raise MemkitError(f"n_draws must be positive (got {n_draws})")
    if any(s < 0 for s in sigmas):
        raise MemkitError(f"sigmas must be >= 0 (got {list(sigmas)})")
    samples = list(samples)
    params = [p for _, p in sorted(lm.model.named_parameters(), key=lambda item: item[0])]
    saved = [p.detach().clone() for p in params]
    stds = [float(p.std()) if p.numel() > 1 else 0.0 for p in saved]
    sizes = [p.numel() for p in params]
    batches = _batches(lm, samples, batch_size)
    clean = teacher_forced_correct(lm.model, batches)
    clean_prefix = greedy_prefix(clean)
    m = len(samples[0].suffix_ids)
    base = pd.DataFrame({"id": [s.id for s in samples], "clean_prefix": clean_prefix, "clean_exact": clean_prefix == m,
                         "clean_accuracy": clean.mean(axis=1)})
    for key in sorted({key for s in samples for key in s.meta}):
        base[f"meta_{key}"] = [s.meta.get(key) for s in samples]
    frames = []
    bar = tqdm(total=len(sigmas) * n_draws, desc=f"latent {lm.name}", unit="draw", disable=not progress)
    try:
        for sigma in sigmas:
            prefix = np.zeros((n_draws, len(samples)), dtype=np.int64)
            for d in range(n_draws):
                generator = torch.Generator().manual_seed(draw_seed(seed, sigma, d, relative))
                noise = torch.randn(sum(sizes), generator=generator, dtype=params[0].dtype).split(sizes)
                try:
                    with torch.no_grad():
                        for param, eps, std in zip(params, noise, stds):
                            param.add_(eps.view(param.shape), alpha=float(sigma) * (std if relative else 1.0))
                    prefix[d] = greedy_prefix(teacher_forced_correct(lm.model, batches))
                finally:
                    with torch.no_grad():
                        for param, original in zip(params, saved):
                            param.copy_(original)
                bar.update(1)
            rows = base.copy()
            rows.insert(1, "sigma", float(sigma))
            rows.insert(2, "family", "relative" if relative else "absolute")
            rows["n_draws"] = n_draws
            rows["best_prefix"] = prefix.max(axis=0)
            rows["mean_prefix"] = prefix.mean(axis=0)
            rows["exact_draws"] = (prefix == m).sum(axis=0)
            rows["m"] = m
            frames.append(rows)
    finally:
        bar.close()
    return pd.concat(frames, ignore_index=True)
