"""Duplication laws and extraction onsets of the organisms.

    fit = loglinear_fit(frame, "exact_match")            # rate vs log10(duplicates), bootstrap CI
    table = fit_table(frame, by=["size"], metrics=["exact_match", "token_match"])
    onsets = extraction_onsets(runs)                      # per canary: first checkpoint it is extractable

Duplication law (Carlini et al. 2022, Biderman et al. 2023): the extraction rate of the
canaries inserted c times grows roughly linearly in log10(c). The fit is ordinary least
squares on the per-level mean rates (levels > 0; level 0 are the never-seen controls),
with R^2 of that fit and a percentile bootstrap CI of the slope that resamples canaries
within each level. Frames come from `memkit.organisms.zoo.zoo_extraction` (one row per
canary x size x checkpoint). Pure numpy / pandas: no model is run here.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import MemkitError


def _fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """OLS slope, intercept and R^2 of y on x (R^2 = nan when y is constant)."""
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    total = ((y - y.mean()) ** 2).sum()
    r2 = 1.0 - (residual ** 2).sum() / total if total > 0 else float("nan")
    return float(slope), float(intercept), float(r2)


def loglinear_fit(frame: pd.DataFrame, metric: str, *, level: str = "level", n_boot: int = 1000, seed: int = 0,
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


def fit_table(frame: pd.DataFrame, by: Sequence[str], metrics: Sequence[str], *, level: str = "level",
              n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One log-linear fit per group of `by` and per metric (columns of `loglinear_fit` + the group keys)."""
    rows = []
    for keys, group in frame.groupby(list(by), sort=True):
        keys = keys if isinstance(keys, tuple) else (keys,)
        for metric in metrics:
            rows.append({**dict(zip(by, keys)), **loglinear_fit(group, metric, level=level, n_boot=n_boot, seed=seed)})
    return pd.DataFrame(rows)


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
