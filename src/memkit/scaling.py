"""Analysis helpers for the organisms: duplication laws and latent memorization.

    fit = loglinear_fit(frame, "exact_match")            # rate vs log10(duplicates), bootstrap CI
    table = fit_table(frame, by=["size"], metrics=["exact_match", "token_match"])
    latent = latent_memorization(lm, samples, sigmas=[1e-3, 3e-3], n_draws=50, seed=0)
    summary = latent_vs_controls(latent)                 # recovery only where it beats the controls

Duplication law (Carlini et al. 2022, Biderman et al. 2023): the extraction rate of the
canaries inserted c times grows roughly linearly in log10(c). The fit is ordinary least
squares on the per-level mean rates (levels > 0; level 0 are the never-seen controls),
with R^2 of that fit and a percentile bootstrap CI of the slope that resamples canaries
within each level.

Latent memorization (Duan et al. 2025): add gaussian noise to every weight, greedy-decode,
repeat for N draws and keep each sample's best token-level Levenshtein similarity. Sigma
is absolute by default (noise std = sigma for every tensor, as Duan's 2e-3 on Pythia-1B);
`relative=True` scales it by each tensor's own standard deviation. Weights are restored
bit for bit after every draw. Because a best-of-N statistic rises under pure noise, it only
counts as recovery when it beats the same statistic on never-inserted controls.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from .errors import MemkitError
from .core.extract import extract
from .core.models import LoadedModel
from .core.samples import Sample


def _fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """OLS slope, intercept and R^2 of y on x (R^2 = nan when y is constant)."""
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    total = ((y - y.mean()) ** 2).sum()
    r2 = 1.0 - (residual ** 2).sum() / total if total > 0 else float("nan")
    return float(slope), float(intercept), float(r2)


def loglinear_fit(frame: pd.DataFrame, metric: str, level: str = "level", n_boot: int = 1000, seed: int = 0,
                  ci: float = 0.95) -> dict:
    """Fit mean(metric) = slope * log10(level) + intercept over levels > 0, with a bootstrap CI of the slope."""
    if metric not in frame or level not in frame:
        raise MemkitError(f"loglinear_fit needs columns {metric!r} and {level!r}; got {list(frame.columns)}")
    data = frame[frame[level] > 0]
    groups = [np.asarray(g[metric], dtype=float) for _, g in data.groupby(level, sort=True)]
    levels = np.array(sorted(data[level].unique()), dtype=float)
    if len(levels) < 2:
        raise MemkitError(f"loglinear_fit needs at least two duplication levels > 0 (got {levels.tolist()})")
    x = np.log10(levels)
    means = np.array([g.mean() for g in groups])
    slope, intercept, r2 = _fit(x, means)
    rng = np.random.default_rng(seed)
    slopes = np.empty(n_boot)
    for b in range(n_boot):
        boot = np.array([rng.choice(g, size=len(g), replace=True).mean() for g in groups])
        slopes[b] = np.polyfit(x, boot, 1)[0]
    alpha = (1 - ci) / 2
    lo, hi = np.quantile(slopes, [alpha, 1 - alpha]) if n_boot else (float("nan"), float("nan"))
    control = frame.loc[frame[level] == 0, metric]
    return {"metric": metric, "slope": slope, "intercept": intercept, "r2": r2, "slope_lo": float(lo),
            "slope_hi": float(hi), "n_levels": len(levels), "n": int(len(data)),
            "control_rate": float(control.mean()) if len(control) else float("nan")}


def fit_table(frame: pd.DataFrame, by: Sequence[str], metrics: Sequence[str], level: str = "level",
              n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One log-linear fit per group of `by` and per metric (columns of `loglinear_fit` + the group keys)."""
    rows = []
    for keys, group in frame.groupby(list(by), sort=True):
        keys = keys if isinstance(keys, tuple) else (keys,)
        for metric in metrics:
            rows.append({**dict(zip(by, keys)), **loglinear_fit(group, metric, level, n_boot, seed)})
    return pd.DataFrame(rows)


# -- latent memorization --------------------------------------------------------------------------
def _noise_(params: list[tuple[str, torch.Tensor]], sigma: float, relative: bool, generator: torch.Generator) -> None:
    for _, param in params:
        scale = sigma * float(param.std()) if relative and param.numel() > 1 else sigma
        param.add_(torch.randn(param.shape, generator=generator, dtype=param.dtype) * scale)


def latent_memorization(lm: LoadedModel, samples: Sequence[Sample], sigmas: Sequence[float], n_draws: int,
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


# -- running the zoo ------------------------------------------------------------------------------
def zoo_extraction(profile: str = "paper", steps: Sequence[int | str] = ("final",), k: int = 32, m: int = 32,
                   suffix_start: int | None = None, sizes: Sequence[str] | None = None, batch_size: int = 32,
                   progress: bool = False) -> pd.DataFrame:
    """Greedy extraction of every canary by every (size, step) of a built zoo, one row per canary.

    Adds `size`, `params` (non-embedding), `step`, `level`, `kind`, `window`, `zlib` columns to the
    `memkit.extract` metrics. Results come from `cached_extract`, so a warm rerun computes nothing.
    """
    from . import zoo
    from .core.extract import cached_extract
    from .core.models import load_model

    samples = zoo.zoo_samples(profile, k=k, m=m, suffix_start=suffix_start)
    final = zoo.checkpoint_steps(profile)[-1]
    prefix = "" if profile == zoo.DEFAULT_PROFILE else f"{profile}/"
    names = list(sizes) if sizes is not None else list(zoo.get_profile(profile).sizes)
    frames = []
    for size in names:
        for step in steps:
            lm = load_model(f"zoo:{prefix}{size}@{step}", device="cpu")
            frame = cached_extract(lm, samples, batch_size=batch_size, progress=progress)
            frames.append(frame.assign(size=size, params=int(lm.meta["non_embedding_params"]),
                                       step=final if step == "final" else int(step)))
    out = pd.concat(frames, ignore_index=True)
    return out.rename(columns={"meta_level": "level", "meta_kind": "kind", "meta_window": "window",
                               "meta_zlib": "zlib", "meta_copies": "copies"})


def extraction_onsets(frame: pd.DataFrame, metric: str = "exact_match") -> pd.DataFrame:
    """Per (size, canary): first checkpoint where `metric` holds, whether it holds at the last one,
    and whether it held at some checkpoint but no longer at the last (forgotten)."""
    rows = []
    last = int(frame["step"].max())
    for (size, cid), group in frame.sort_values("step").groupby(["size", "id"], sort=True):
        hits = group.loc[group[metric].astype(bool), "step"]
        first = int(hits.iloc[0]) if len(hits) else None
        final_hit = bool(group.loc[group["step"] == last, metric].astype(bool).any())
        rows.append({"size": size, "id": cid, "level": int(group["level"].iloc[0]),
                     "kind": group["kind"].iloc[0], "window": group["window"].iloc[0], "first_step": first,
                     "ever": first is not None, "final": final_hit, "forgotten": first is not None and not final_hit})
    return pd.DataFrame(rows)
