"""Statistics every comparison in the paper uses: permutation tests, Holm correction, bootstrap CIs with a floor.

    diff, p = permutation_test_means(memorized_scores, control_scores, seed=0)   # exact when small
    diff, p = paired_permutation_test(after, before, seed=0)   # the same items twice: sign flips
    adjusted = holm([p1, p2, p3])                                                # family-wise error control
    lo, hi = bootstrap_diff_ci(a, b, seed=0)      # NaN when either group has fewer than MIN_BOOTSTRAP_N items
    ci = hierarchical_bootstrap_ci(values, np.mean, seed=0)   # items x seeds: None below MIN_BOOTSTRAP_N items
    mean, lo, hi = t_interval(seed_means)         # a few replicates (training seeds): Student-t, no bootstrap

Conventions: two-sided tests, fixed seeds, and no bootstrap interval over fewer than
`MIN_BOOTSTRAP_N` (20) items per group -- a percentile bootstrap over 3 or 4 items gives
intervals narrower than the spread it pretends to measure. Pure numpy / scipy (no torch).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

#: Smallest group size for which a bootstrap CI is reported.
MIN_BOOTSTRAP_N = 20


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1); NaN inputs stay NaN and
    do not count towards the number of tests.

    Hand-written (8 lines) rather than adding statsmodels for one function; `tests/test_stats.py`
    checks it against worked examples.
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    order = valid[np.argsort(p[valid], kind="stable")]
    m = len(order)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        out[index] = running
    return out


def permutation_test_means(a: Sequence[float], b: Sequence[float], *, n_resamples: int = 9999,
                           seed: int = 0) -> tuple[float, float]:
    """Difference of means mean(a) - mean(b) and its two-sided permutation p-value (twice the smaller
    one-sided p-value, scipy's convention).

    scipy's `permutation_test` (independent samples) enumerates every relabelling when there are
    at most `n_resamples` of them, so small groups get the exact p-value; otherwise it draws
    `n_resamples` random relabellings from a generator seeded with `seed`. NaN p with an empty group.
    """
    from scipy.stats import permutation_test

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) == 0 or len(b) == 0:
        return float("nan"), float("nan")
    diff = float(a.mean() - b.mean())
    if np.ptp(np.concatenate([a, b])) == 0:
        return diff, 1.0  # every relabelling gives the same difference
    if min(len(a), len(b)) < 2:  # scipy needs two items per group: enumerate the relabellings (few) here
        from itertools import combinations

        pooled, n = np.concatenate([a, b]), len(a)
        diffs = np.array([pooled[list(pick)].mean() - np.delete(pooled, list(pick)).mean()
                          for pick in combinations(range(len(pooled)), n)])
        tolerance = 1e-12 * max(1.0, abs(diff))
        p_greater, p_less = np.mean(diffs >= diff - tolerance), np.mean(diffs <= diff + tolerance)
        return diff, float(min(1.0, 2 * min(p_greater, p_less)))
    result = permutation_test((a, b), _mean_difference, permutation_type="independent", vectorized=True,
                              n_resamples=n_resamples, alternative="two-sided", rng=np.random.default_rng(seed))
    return diff, float(result.pvalue)


def paired_permutation_test(a: Sequence[float], b: Sequence[float], *, n_resamples: int = 9999,
                            seed: int = 0) -> tuple[float, float]:
    """mean(a - b) and its two-sided paired permutation p-value (sign flips of the differences; scipy,
    exact when 2^n <= n_resamples). For the same items measured twice (two edits, a text and its twin)."""
    from scipy.stats import permutation_test

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) == 0:
        return float("nan"), float("nan")
    diff = float((a - b).mean())
    if np.all(a == b):
        return diff, 1.0
    result = permutation_test((a, b), lambda x, y, axis=-1: np.mean(x - y, axis=axis), permutation_type="samples",
                              vectorized=True, n_resamples=n_resamples, alternative="two-sided",
                              rng=np.random.default_rng(seed))
    return diff, float(result.pvalue)


def t_interval(values: Sequence[float], *, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t interval of the mean of a few replicate values, e.g. one per training seed (n - 1
    degrees of freedom; NaN mean when empty, NaN interval with fewer than 2 values)."""
    from scipy.stats import t

    x = np.asarray(values, dtype=float)
    mean = float(x.mean()) if len(x) else float("nan")
    if len(x) < 2:
        return mean, float("nan"), float("nan")
    half = float(t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    return mean, mean - half, mean + half


def smallest_permutation_p(n_a: int, n_b: int) -> float:
    """The smallest two-sided p-value an exact permutation test of two groups this size can reach."""
    if n_a == 0 or n_b == 0:
        return float("nan")
    return min(1.0, 2.0 / math.comb(n_a + n_b, n_a))


def bootstrap_diff_ci(a: Sequence[float], b: Sequence[float], *, n_boot: int = 2000, seed: int = 0,
                      level: float = 0.95, min_n: int = MIN_BOOTSTRAP_N) -> tuple[float, float]:
    """Percentile bootstrap CI of mean(a) - mean(b), resampling each group on its own (scipy `bootstrap`).

    NaN, NaN when either group has fewer than `min_n` items (see the module docstring).
    """
    from scipy.stats import bootstrap

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if min(len(a), len(b)) < max(min_n, 2):
        return float("nan"), float("nan")
    result = bootstrap((a, b), _mean_difference, vectorized=True, n_resamples=n_boot, confidence_level=level,
                       method="percentile", rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def hierarchical_bootstrap_ci(values, statistic, *, n_boot: int = 200, seed: int = 0, level: float = 0.95,
                              min_n: int = MIN_BOOTSTRAP_N) -> tuple[float, float] | None:
    """Percentile CI of `statistic` from a two-level bootstrap: resample items, then seeds within each item.

    `values` has shape (items, seeds, ...) (e.g. samples x action seeds x alphas); NaN entries (a
    seed an item lacks) are ignored in its seed mean. A replicate draws n items with replacement,
    then for each drawn item its seeds with replacement, averages over those seeds, and passes
    the (items, ...) array of per-item means to `statistic` (a float; NaN counts as +inf, e.g.
    "no crossing within the grid"). So the interval carries the spread of both the items and
    the seeds. None with fewer than `min_n` items: a bootstrap over a handful is not an interval.
    Deterministic for a given `seed` (numpy generator).
    """
    values = np.asarray(values, dtype=float)
    if values.ndim < 2:
        raise ValueError("values must have shape (items, seeds, ...)")
    n, n_seeds = values.shape[:2]
    if n < max(min_n, 2) or n_boot <= 0:
        return None
    rng = np.random.default_rng(seed)
    stats = np.empty(n_boot)
    for b in range(n_boot):
        items = rng.integers(0, n, size=n)
        seeds = rng.integers(0, n_seeds, size=(n, n_seeds))
        replicate = _nan_mean(values[items[:, None], seeds], axis=1)
        value = float(statistic(replicate))
        stats[b] = np.inf if math.isnan(value) else value
    tail = (1 - level) / 2
    return float(np.quantile(stats, tail, method="lower")), float(np.quantile(stats, 1 - tail, method="higher"))


def _nan_mean(values: np.ndarray, axis: int) -> np.ndarray:
    """Mean over `axis` ignoring NaN; NaN (silently) where every entry is NaN."""
    present = ~np.isnan(values)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(present, values, 0.0).sum(axis) / present.sum(axis)


def _mean_difference(x, y, axis=-1):
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


__all__ = ["MIN_BOOTSTRAP_N", "bootstrap_diff_ci", "hierarchical_bootstrap_ci", "holm", "nearest_matches",
           "permutation_test_means", "smallest_permutation_p"]


def nearest_matches(treated: pd.Series, pool: pd.Series, *, ratio: int = 1, treated_strata: pd.Series | None = None,
                    pool_strata: pd.Series | None = None) -> pd.DataFrame:
    """Greedy nearest-neighbour matching without replacement on one covariate (id -> value in both Series).

    Treated items are matched in descending order of their value (the hardest to match first; ties
    in input order), `ratio` controls each, the nearest pool item winning (ties: pool order). With
    strata (id -> stratum for each side) an item only matches pool items of its own stratum. NaN
    pool values are never matched. Rows: treated_id, control_id, distance.
    """
    available = pool.dropna()
    rows = []
    for treated_id, value in treated.sort_values(ascending=False, kind="stable").items():
        for _ in range(ratio):
            options = available
            if treated_strata is not None:
                options = available[pool_strata.reindex(available.index) == treated_strata[treated_id]]
            if options.empty:
                break
            distance = (options - value).abs()
            control_id = distance.idxmin()
            rows.append({"treated_id": treated_id, "control_id": control_id, "distance": float(distance[control_id])})
            available = available.drop(control_id)
    return pd.DataFrame(rows, columns=["treated_id", "control_id", "distance"])
