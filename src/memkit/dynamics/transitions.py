"""Phase transitions of retention curves: sigmoid fits, bootstrap alpha*, transition tables, rankings.

    table = transition_table(runs.assign(group=runs["id"].map(groups)), n_boot=200, seed=0)
    ranking = rank_robustness(table)                            # per model x action family
    wins = more_robust(table)                                   # memorized vs controls, per model x kind
    tests = group_tests(runs)                                   # the same, as permutation tests (Holm-corrected)

`runs` are rows of `memkit.dynamics.sweeps.alpha_sweep` / `layer_sweep`. Pure numpy / scipy /
pandas: this module never imports torch, so fits can be redone from stored tables anywhere.

A decreasing logistic with a floor,
    r(alpha) = floor + (1 - floor) / (1 + exp((alpha - mid) / tau)),
is fitted (scipy `curve_fit`, started from a dense grid search) to the mean retention curve of a
group of samples. The critical alpha* is where the fitted curve crosses 0.5 (half of the clean
continuation lost): alpha* = mid + tau * ln(0.5 / (0.5 - floor)); it is NaN when the curve never
falls to 0.5 (floor >= 0.5) or crosses beyond the largest alpha of the grid. The grid only says
between which two of its points the crossing lies (`grid_bracket`), which is how the paper
reports alpha*; `points_inside` counts the grid points inside the fitted drop (at least 2 to
resolve its shape). Each sample's curve is the mean over its action seeds; the 95 % confidence
interval comes from a hierarchical bootstrap (samples, then seeds within each sample; fixed
seed; a replicate without a crossing counts as +inf, so an open upper end reads "beyond the
grid"), and only with at least 20 samples -- below that the per-sample spread is reported.
Memorized vs control differences are tested by `group_tests` (permutation tests, Holm-corrected). The transition width is the alpha range
over which the fitted drop goes from 10 % to 90 % of its full size, 2 tau ln 9; the drop is
called *sharp* when that width is smaller than alpha* itself (`sharp_below` = 1), *gradual*
otherwise, and *unresolved* when fewer than 2 grid points lie inside the fitted drop and the grid
interval around alpha* is not itself narrower than alpha*. Numbers for the paper are formatted by `memkit.paper.report.format_alpha` / `format_ci`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from ..core.stats import MIN_BOOTSTRAP_N, bootstrap_diff_ci, holm, permutation_test_means, smallest_permutation_p
from ..errors import MemkitError
from .action_kinds import FAMILIES

LN9 = math.log(9.0)


# -- sigmoid fit and critical alpha -------------------------------------------------------------------
def sigmoid(alpha, mid: float, tau: float, floor: float):
    """Decreasing logistic from 1 to `floor`, centred on `mid`, of scale `tau`."""
    from scipy.special import expit

    return floor + (1.0 - floor) * expit(-(np.asarray(alpha, dtype=float) - mid) / tau)


@dataclass(frozen=True)
class TransitionFit:
    """A fitted retention curve (see the module docstring for every definition)."""

    alpha_star: float  # fitted alpha where retention = 0.5 (NaN: no crossing inside the grid)
    mid: float
    tau: float
    floor: float
    width: float  # 2 tau ln 9: alpha range of the 90 % -> 10 % part of the drop
    rel_width: float  # width / alpha_star
    verdict: str  # "sharp", "gradual", "none" (no transition within the grid) or "unresolved" (see bootstrap_alpha_star)
    rmse: float
    alpha_max: float
    note: str = ""
    alpha_min: float = float("nan")  # smallest nonzero alpha of the grid (resolution limit)

    def as_dict(self) -> dict:
        return asdict(self)


def _nan_fit(alpha_max: float, note: str, rmse: float = float("nan")) -> TransitionFit:
    nan = float("nan")
    return TransitionFit(nan, nan, nan, nan, nan, nan, "none", rmse, alpha_max, note, nan)


def _grid_start(x: np.ndarray, y: np.ndarray, alpha_max: float, grid: np.ndarray) -> list[float]:
    """Best (mid, tau, floor) on a dense grid (floor solved by least squares): the curve_fit start.

    A deterministic global search, so the local optimiser never starts in the wrong basin.
    """
    from scipy.special import expit

    smallest = grid[grid > 0].min()
    mids = np.unique(np.concatenate([np.linspace(-0.5 * alpha_max, 1.5 * alpha_max, 121),
                                     np.geomspace(smallest / 8, alpha_max, 40)]))
    taus = np.geomspace(alpha_max * 1e-4, 3 * alpha_max, 30)
    s = expit(-(x[None, None, :] - mids[:, None, None]) / taus[None, :, None])  # (mid, tau, point)
    # y = s + floor * (1 - s): least-squares floor, clipped to [0, 1]
    u = 1.0 - s
    floor = np.clip(((y - s) * u).sum(-1) / np.maximum((u * u).sum(-1), 1e-12), 0.0, 1.0)
    sse = ((s + floor[..., None] * u - y) ** 2).sum(-1)
    i, j = np.unravel_index(np.argmin(sse), sse.shape)
    return [float(mids[i]), float(taus[j]), float(floor[i, j])]


def fit_sigmoid(alphas: Sequence[float], values: Sequence[float], sharp_below: float = 1.0) -> TransitionFit:
    """Fit `sigmoid` to a retention curve and derive alpha*, the width and the sharp/gradual verdict.

    `alphas` (>= 0) and `values` (retention in [0, 1], typically the mean over samples) are
    paired. Deterministic: a dense grid search gives the start of `curve_fit` (bounded least squares).
    """
    from scipy.optimize import OptimizeWarning, curve_fit

    x = np.asarray(alphas, dtype=float)
    y = np.asarray(values, dtype=float)
    if x.shape != y.shape:
        raise MemkitError("alphas and values must have the same length")
    keep = np.isfinite(y)
    x, y = x[keep], y[keep]
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    alpha_max = float(x.max()) if len(x) else float("nan")
    if len(np.unique(x)) < 3 or not alpha_max > 0:
        return _nan_fit(alpha_max, "fewer than 3 alpha values")
    grid = np.unique(x)
    alpha_min = float(grid[grid > 0].min())
    start = _grid_start(x, y, alpha_max, grid)
    lower, upper = [-alpha_max, alpha_max * 1e-4, 0.0], [3 * alpha_max, 3 * alpha_max, 1.0]
    best, best_sse = np.asarray(start), float(np.sum((sigmoid(x, *start) - y) ** 2))
    try:
        with warnings.catch_warnings():  # the covariance is not used: as many points as parameters is fine
            warnings.simplefilter("ignore", OptimizeWarning)
            params, _ = curve_fit(sigmoid, x, y, p0=np.clip(start, lower, upper), bounds=(lower, upper), maxfev=2000)
        sse = float(np.sum((sigmoid(x, *params) - y) ** 2))
        if sse < best_sse:
            best, best_sse = params, sse
    except (RuntimeError, ValueError):  # keep the grid optimum
        pass
    mid, tau, floor = (float(v) for v in best)
    rmse = math.sqrt(best_sse / len(x))
    width = 2 * tau * LN9
    if floor >= 0.5:
        return TransitionFit(float("nan"), mid, tau, floor, width, float("nan"), "none", rmse, alpha_max,
                             "retention stays above 0.5", alpha_min)
    alpha_star = mid + tau * math.log(0.5 / (0.5 - floor))
    if alpha_star > alpha_max:
        return TransitionFit(float("nan"), mid, tau, floor, width, float("nan"), "none", rmse, alpha_max,
                             "crossing beyond the grid", alpha_min)
    alpha_star = max(alpha_star, 0.0)
    rel_width = width / alpha_star if alpha_star > 0 else float("inf")
    note = "below the smallest alpha" if alpha_star < alpha_min else ""
    verdict = "sharp" if rel_width < sharp_below else "gradual"
    return TransitionFit(alpha_star, mid, tau, floor, width, rel_width, verdict, rmse, alpha_max, note, alpha_min)


def sample_curves(runs: pd.DataFrame, value: str = "retention") -> pd.DataFrame:
    """Per-sample curve: `value` averaged over action seeds, wide (rows: id, columns: alpha)."""
    return runs.pivot_table(index="id", columns="alpha", values=value, aggfunc="mean").sort_index()


def seed_array(runs: pd.DataFrame, value: str = "retention") -> tuple[np.ndarray, np.ndarray]:
    """(alphas, values) with values[sample, seed, alpha] (samples by id, seeds and alphas sorted; NaN where a
    sample lacks a seed): the input of the hierarchical bootstrap over samples and seeds."""
    cube = runs.pivot_table(index=["id", "seed"], columns="alpha", values=value, aggfunc="mean").sort_index()
    ids, seeds = cube.index.unique(level="id"), cube.index.unique(level="seed").sort_values()
    full = cube.reindex(pd.MultiIndex.from_product([ids, seeds], names=["id", "seed"]))
    values = full.to_numpy(dtype=float).reshape(len(ids), len(seeds), full.shape[1])
    return np.asarray(cube.columns, dtype=float), values


def grid_bracket(alpha_star: float, grid: Sequence[float]) -> tuple[float, float]:
    """(lo, hi]: the two neighbouring grid alphas around alpha* (lo = 0 below the smallest nonzero alpha).

    alpha* is read off a fit, so the grid only tells that the crossing lies between these two
    points; NaN, NaN when alpha* is NaN.
    """
    if alpha_star is None or math.isnan(alpha_star):
        return float("nan"), float("nan")
    grid = np.unique(np.asarray(grid, dtype=float))
    below, above = grid[grid <= alpha_star], grid[grid > alpha_star]
    lo = float(below.max()) if len(below) else 0.0
    if not len(above):  # alpha* on the last grid point
        return float(grid[-2]) if len(grid) > 1 else lo, lo
    return lo, float(above.min())


def points_inside(fit: TransitionFit, grid: Sequence[float]) -> int:
    """How many grid alphas lie inside the fitted transition (90 % -> 10 % of the drop, mid +- tau ln 9):
    with fewer than 2 the grid does not resolve the shape of the drop, only the interval it happens in."""
    if math.isnan(fit.mid) or math.isnan(fit.tau):
        return 0
    grid = np.asarray(grid, dtype=float)
    half = fit.tau * LN9
    return int(((grid > fit.mid - half) & (grid < fit.mid + half)).sum())


def bootstrap_alpha_star(curves: pd.DataFrame | np.ndarray, *, alphas: Sequence[float] | None = None,
                         n_boot: int = 200, seed: int = 0, level: float = 0.95, sharp_below: float = 1.0,
                         min_samples: int = MIN_BOOTSTRAP_N) -> dict:
    """alpha* of the mean curve, its grid bracket, the per-sample spread, and a hierarchical bootstrap CI.

    `curves`: a wide frame (one row per sample, one column per alpha, see `sample_curves`), or an
    array values[sample, seed, alpha] (see `seed_array`) with `alphas`. The mean curve averages the
    seeds of each sample, then the samples. Returns `fit` (the `TransitionFit` of the mean curve),
    `bracket_low` / `bracket_high` (`grid_bracket`), `n_inside` (`points_inside`; with fewer than 2
    points inside the drop the verdict becomes "unresolved" unless the bracketing grid interval is
    itself narrower than `sharp_below` * alpha*, which makes the drop sharp whatever its shape), `sample_low` /
    `sample_high` (the lowest lower and highest upper grid bracket of the per-sample alpha*: +inf
    when a sample never crosses), `n_samples`, `n_seeds`, and `ci_low`, `ci_high`: the percentile
    interval of `core.stats.hierarchical_bootstrap_ci` (resample samples, then seeds within each;
    a replicate without a crossing counts as +inf), NaN with fewer than `min_samples` samples
    (default 20: a bootstrap over a handful of items is not an interval).
    """
    from ..core.stats import hierarchical_bootstrap_ci

    if isinstance(curves, pd.DataFrame):
        alphas, values = np.asarray(curves.columns, dtype=float), curves.to_numpy(dtype=float)[:, None, :]
    else:
        alphas, values = np.asarray(alphas, dtype=float), np.asarray(curves, dtype=float)
    per_sample = np.nanmean(values, axis=1)

    def star(sample_means: np.ndarray) -> float:
        return fit_sigmoid(alphas, np.nanmean(sample_means, axis=0), sharp_below).alpha_star

    fit = fit_sigmoid(alphas, np.nanmean(per_sample, axis=0), sharp_below)
    lo, hi = grid_bracket(fit.alpha_star, alphas)
    if fit.verdict != "none" and points_inside(fit, alphas) < 2 and not (hi - lo) < sharp_below * fit.alpha_star:
        # fewer than 2 points inside the drop: only "sharp" with a grid interval narrower than alpha* is supported
        fit = TransitionFit(**{**fit.as_dict(), "verdict": "unresolved"})
    brackets = [grid_bracket(fit_sigmoid(alphas, row, sharp_below).alpha_star, alphas) for row in per_sample]
    lows = [b[0] for b in brackets if not math.isnan(b[0])]
    highs = [np.inf if math.isnan(b[1]) else b[1] for b in brackets]
    ci = hierarchical_bootstrap_ci(values, star, n_boot=n_boot, seed=seed, level=level, min_n=min_samples)
    return {"fit": fit, "bracket_low": lo, "bracket_high": hi, "n_inside": points_inside(fit, alphas),
            "sample_low": min(lows) if lows else float("nan"), "sample_high": max(highs) if highs else float("nan"),
            "n_samples": values.shape[0], "n_seeds": values.shape[1],
            "ci_low": ci[0] if ci else float("nan"), "ci_high": ci[1] if ci else float("nan")}


def transition_table(runs: pd.DataFrame, *, value: str = "retention", by: Sequence[str] = ("model", "kind", "group"),
                     n_boot: int = 200, seed: int = 0, level: float = 0.95, sharp_below: float = 1.0,
                     min_samples: int = MIN_BOOTSTRAP_N) -> pd.DataFrame:
    """One fitted transition per group of `runs` (rows of `alpha_sweep` with the `by` columns).

    Columns: the `by` keys, `family`, `value`, `n_samples`, `n_seeds`, `alpha_star`, `bracket_low`,
    `bracket_high`, `n_inside`, `sample_low`, `sample_high`, `ci_low`, `ci_high` (see
    `bootstrap_alpha_star`), `mid`, `tau`, `floor`, `width`, `rel_width`, `verdict`, `rmse`,
    `alpha_max`, `note`, and `mean_retention` (mean of the curve over the nonzero alphas:
    grid-dependent, used to break ties). Groups come in first-seen order.
    """
    rows = []
    for keys, part in runs.groupby(list(by), sort=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        alphas, values = seed_array(part if "seed" in part else part.assign(seed=0), value)
        boot = bootstrap_alpha_star(values, alphas=alphas, n_boot=n_boot, seed=seed, level=level,
                                    sharp_below=sharp_below, min_samples=min_samples)
        fit = boot.pop("fit").as_dict()
        mean_curve = sample_curves(part, value).mean(axis=0)
        nonzero = mean_curve[mean_curve.index > 0]
        rows.append({**dict(zip(by, keys)), "family": FAMILIES.get(part["kind"].iloc[0], "") if "kind" in part else "",
                     "value": value, **boot, **fit,
                     "mean_retention": float(nonzero.mean()) if len(nonzero) else float("nan")})
    columns = list(by) + ["family", "value", "n_samples", "n_seeds", "alpha_star", "bracket_low", "bracket_high",
                          "n_inside", "sample_low", "sample_high", "ci_low", "ci_high", "mid", "tau", "floor",
                          "width", "rel_width", "verdict", "rmse", "alpha_min", "alpha_max", "note", "mean_retention"]
    return pd.DataFrame(rows, columns=columns)


def rank_robustness(table: pd.DataFrame, group: str = "memorized", within: Sequence[str] = ("model", "family"),
                    control: str = "control") -> pd.DataFrame:
    """Rank the action kinds by how well `group` samples withstand them, within each model x family.

    Alphas are only comparable inside a family (same unit), so ranks are too. Rank 1 is the
    most robust: the largest alpha* (no crossing within the grid counts as largest), ties
    broken by the higher mean retention over the grid. Adds `ctrl_alpha_star`,
    `ctrl_mean_retention` and `mem_over_ctrl` (alpha* of `group` / alpha* of `control`: > 1
    means the group is more robust than the controls to this action; unit-free, NaN when
    either alpha* is undefined) from the `control` rows of the table.
    """
    mine = table[table["group"] == group].copy()
    ctrl = table[table["group"] == control].set_index(["model", "kind"])
    keys = list(zip(mine["model"], mine["kind"]))
    mine["ctrl_alpha_star"] = [ctrl["alpha_star"].get(key, np.nan) for key in keys]
    mine["ctrl_mean_retention"] = [ctrl["mean_retention"].get(key, np.nan) for key in keys]
    mine["mem_over_ctrl"] = mine["alpha_star"] / mine["ctrl_alpha_star"]
    strength = mine["alpha_star"].fillna(np.inf)
    mine = mine.assign(_strength=strength, _tiebreak=mine["mean_retention"].fillna(-np.inf))
    mine = mine.sort_values(list(within) + ["_strength", "_tiebreak"], ascending=[True] * len(within) + [False, False],
                            kind="stable")
    mine["rank"] = mine.groupby(list(within), sort=False).cumcount() + 1
    return mine.drop(columns=["_strength", "_tiebreak"]).reset_index(drop=True)


def more_robust(table: pd.DataFrame, group: str = "memorized", control: str = "control") -> pd.DataFrame:
    """Per model x kind: does `group` keep more of its continuation than `control`?

    Compares alpha* when both are defined, else the mean retention over the grid (a curve
    without a crossing is the more robust one). Columns: model, kind, family, `group_wins`
    (True: `group` more robust), `by` ("alpha*" or "mean retention").
    """
    rows = []
    ctrl = table[table["group"] == control].set_index(["model", "kind"])
    for row in table[table["group"] == group].itertuples():
        if (row.model, row.kind) not in ctrl.index:
            continue
        other = ctrl.loc[(row.model, row.kind)]
        if not math.isnan(row.alpha_star) and not math.isnan(other["alpha_star"]):
            wins, basis = row.alpha_star > other["alpha_star"], "alpha*"
        else:
            wins, basis = row.mean_retention > other["mean_retention"], "mean retention"
        rows.append({"model": row.model, "kind": row.kind, "family": row.family, "group_wins": bool(wins), "by": basis})
    return pd.DataFrame(rows, columns=["model", "kind", "family", "group_wins", "by"])


def sample_scores(runs: pd.DataFrame, value: str = "retention") -> pd.Series:
    """Per sample: `value` averaged over action seeds, then over the nonzero alphas of the grid (the area
    under its retention curve, in grid steps) -- one robustness number per sample, no fit needed."""
    curves = sample_curves(runs, value)
    return curves.loc[:, curves.columns > 0].mean(axis=1)


def group_tests(runs: pd.DataFrame, *, value: str = "retention", by: Sequence[str] = ("spec", "kind"),
                group: str = "memorized", control: str = "control", n_resamples: int = 9999, seed: int = 0,
                min_ci_n: int = MIN_BOOTSTRAP_N) -> pd.DataFrame:
    """Memorized vs control per `by` cell: is the mean retention over the grid different? (one row per cell)

    Each sample contributes its `sample_scores`; the test is a two-sided permutation test of the
    difference of means (exact for small groups), and `p_holm` corrects over every row of the
    table (the comparisons the paper makes together). `ci_low`/`ci_high`: bootstrap CI of the
    difference, only with at least `min_ci_n` samples per group (else NaN). `min_p` is the
    smallest p-value the cell's group sizes allow: when it exceeds 0.05 the cell cannot show a
    difference at all, whatever the data. Columns: the `by` keys, n_group, n_control,
    mean_group, mean_control, diff, ci_low, ci_high, p, min_p, p_holm.
    """
    rows = []
    for keys, part in runs.groupby(list(by), sort=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        a = sample_scores(part[part["group"] == group], value) if (part["group"] == group).any() else pd.Series()
        b = sample_scores(part[part["group"] == control], value) if (part["group"] == control).any() else pd.Series()
        if a.empty or b.empty:
            continue
        diff, p = permutation_test_means(a, b, n_resamples=n_resamples, seed=seed)
        lo, hi = bootstrap_diff_ci(a, b, seed=seed, min_n=min_ci_n)
        rows.append({**dict(zip(by, keys)), "n_group": len(a), "n_control": len(b), "mean_group": float(a.mean()),
                     "mean_control": float(b.mean()), "diff": diff, "ci_low": lo, "ci_high": hi, "p": p,
                     "min_p": smallest_permutation_p(len(a), len(b))})
    columns = list(by) + ["n_group", "n_control", "mean_group", "mean_control", "diff", "ci_low", "ci_high", "p",
                          "min_p"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["p_holm"] = holm(frame["p"].to_numpy()) if len(frame) else []
    return frame


__all__ = ["TransitionFit", "bootstrap_alpha_star", "fit_sigmoid", "grid_bracket", "group_tests", "more_robust",
           "points_inside", "rank_robustness", "sample_curves", "sample_scores", "seed_array", "sigmoid",
           "transition_table"]
