"""Latent memorization (Duan et al. 2025): canaries that weight noise brings back.

    draws = latent_draws(lm, samples, sigmas=[0.01], n_draws=200, seed=0)   # one teacher-forced pass per draw

    latent = latent_memorization(lm, samples, sigmas=[1e-3, 3e-3], n_draws=50, seed=0)
    marked = mark_latent(latent)                          # + inserted / hidden / recovered flags
    summary = latent_vs_controls(latent)                  # recovery only where it beats the controls

Add gaussian noise to every weight, greedy-decode, repeat for N draws and keep each sample's
best token-level Levenshtein similarity. Sigma is absolute by default (noise std = sigma for
every tensor, as Duan's 2e-3 on Pythia-1B); `relative=True` scales it by each tensor's own
standard deviation. Weights are restored bit for bit after every draw. Because a best-of-N
statistic rises under pure noise, it only counts as recovery when it beats the same statistic
on never-inserted controls.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from ..core.extract import extract
from ..core.models import LoadedModel
from ..core.samples import Sample
from ..errors import MemkitError


def _noise_(params: list[tuple[str, torch.Tensor]], sigma: float, relative: bool, generator: torch.Generator) -> None:
    for _, param in params:
        scale = sigma * float(param.std()) if relative and param.numel() > 1 else sigma
        param.add_(torch.randn(param.shape, generator=generator, dtype=param.dtype) * scale)


def latent_memorization(lm: LoadedModel, samples: Sequence[Sample], *, sigmas: Sequence[float], n_draws: int,
                        seed: int = 0, relative: bool = False, batch_size: int = 32,
                        progress: bool = True) -> pd.DataFrame:
    """Best token-level Levenshtein similarity per sample over `n_draws` gaussian weight perturbations.

    One row per (sample, sigma): `clean_similarity` (unperturbed model), `best_similarity` and
    `best_exact` over the draws, `mean_similarity`, and the sample's meta columns. Draw d of a
    sigma uses the noise seeded by (seed, sigma in units of 1e-9, d): results for one sigma depend
    neither on batching nor on which other sigmas are swept.
    """
    if n_draws <= 0:
        raise MemkitError(f"n_draws must be positive (got {n_draws})")
    if any(s < 0 for s in sigmas):
        raise MemkitError(f"sigmas must be >= 0 (got {list(sigmas)})")
    model = lm.model
    params = sorted(((n, p) for n, p in model.named_parameters()), key=lambda item: item[0])
    saved = [p.detach().clone() for _, p in params]
    clean = extract(lm, samples, batch_size=batch_size, progress=False)
    base = clean[["id"] + [c for c in clean.columns if c.startswith("meta_")]].copy()
    base["clean_similarity"] = clean["lev_similarity"].to_numpy()
    base["clean_exact"] = clean["exact_match"].to_numpy()
    frames = []
    bar = tqdm(total=len(sigmas) * n_draws, desc=f"latent {lm.name}", unit="draw", disable=not progress)
    try:
        for sigma in sigmas:
            sims = np.zeros((n_draws, len(samples)))
            exact = np.zeros((n_draws, len(samples)), dtype=bool)
            for d in range(n_draws):
                entropy = [seed, int(round(float(sigma) * 1e9)), d]
                generator = torch.Generator().manual_seed(int(np.random.SeedSequence(entropy).generate_state(1)[0]))
                with torch.no_grad():
                    _noise_(params, float(sigma), relative, generator)
                try:
                    frame = extract(lm, samples, batch_size=batch_size, progress=False)
                finally:
                    with torch.no_grad():
                        for (_, param), original in zip(params, saved):
                            param.copy_(original)
                sims[d] = frame["lev_similarity"].to_numpy()
                exact[d] = frame["exact_match"].to_numpy()
                bar.update(1)
            rows = base.copy()
            rows.insert(1, "sigma", float(sigma))
            rows["relative"] = relative
            rows["n_draws"] = n_draws
            rows["best_similarity"] = sims.max(axis=0)
            rows["best_draw"] = sims.argmax(axis=0)
            rows["mean_similarity"] = sims.mean(axis=0)
            rows["best_exact"] = exact.any(axis=0)
            frames.append(rows)
    finally:
        bar.close()
    return pd.concat(frames, ignore_index=True)


def mark_latent(latent: pd.DataFrame, level: str = "meta_level", quantile: float = 1.0,
                by: Sequence[str] = ("sigma",)) -> pd.DataFrame:
    """`latent` plus boolean columns `inserted`, `hidden`, `recovered` (definitions in `latent_vs_controls`)."""
    frames = []
    for _, group in latent.groupby(list(by), sort=True):
        controls = group[group[level] == 0]
        inserted = (group[level] > 0) & ~group["clean_exact"].astype(bool)
        if controls.empty or not inserted.any():
            raise MemkitError("latent_vs_controls needs both level-0 controls and non-extractable inserted samples")
        hidden = inserted & (group["clean_similarity"] <= float(np.quantile(controls["clean_similarity"], quantile)))
        recovered = hidden & (group["best_similarity"] > float(np.quantile(controls["best_similarity"], quantile)))
        frames.append(group.assign(inserted=inserted, hidden=hidden, recovered=recovered))
    return pd.concat(frames).sort_index()


def latent_vs_controls(latent: pd.DataFrame, level: str = "meta_level", quantile: float = 1.0,
                       by: Sequence[str] = ("sigma",)) -> pd.DataFrame:
    """Per sigma: inserted canaries that look unmemorized but that weight noise lifts above every control.

    `hidden`: inserted samples (level > 0) that are not exact and whose clean similarity is no higher
    than the controls' (`quantile` of the level-0 clean similarities; default: their maximum), i.e.
    indistinguishable from never-seen text without noise. `recovered`: hidden samples whose best-of-N
    similarity beats the controls' best-of-N (same quantile). `gain` = best - clean similarity; a
    one-sided Mann-Whitney U test asks whether inserted (not exact) samples gain more than controls.
    """
    from scipy.stats import mannwhitneyu

    rows = []
    for keys, group in mark_latent(latent, level, quantile, by).groupby(list(by), sort=True):
        keys = keys if isinstance(keys, tuple) else (keys,)
        controls = group[group[level] == 0]
        inserted, hidden = group[group["inserted"]], group[group["hidden"]]
        gain_inserted = inserted["best_similarity"] - inserted["clean_similarity"]
        gain_controls = controls["best_similarity"] - controls["clean_similarity"]
        test = mannwhitneyu(gain_inserted, gain_controls, alternative="greater")
        rows.append({**dict(zip(by, keys)), "n_inserted": len(inserted), "n_hidden": len(hidden),
                     "n_controls": len(controls),
                     "control_clean_max": float(np.quantile(controls["clean_similarity"], quantile)),
                     "control_threshold": float(np.quantile(controls["best_similarity"], quantile)),
                     "recovered": int(group["recovered"].sum()),
                     "recovered_exact": int((group["recovered"] & group["best_exact"].astype(bool)).sum()),
                     "inserted_gain": float(gain_inserted.mean()), "control_gain": float(gain_controls.mean()),
                     "inserted_best_mean": float(inserted["best_similarity"].mean()),
                     "control_best_mean": float(controls["best_similarity"].mean()),
                     "mannwhitney_p": float(test.pvalue)})
    return pd.DataFrame(rows)

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

    One row per (sample, sigma): `clean_prefix` / `clean_exact` (unperturbed model), over the draws
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
    clean_prefix = greedy_prefix(teacher_forced_correct(lm.model, batches))
    m = len(samples[0].suffix_ids)
    base = pd.DataFrame({"id": [s.id for s in samples], "clean_prefix": clean_prefix, "clean_exact": clean_prefix == m})
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
