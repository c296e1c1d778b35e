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
falls to 0.5 (floor >= 0.5) or crosses beyond the largest alpha of the grid. The 95 % confidence
interval comes from a bootstrap over samples (fixed seed; a replicate without a crossing counts
as +inf, so an open upper end reads "beyond the grid"), and only with at least 20 samples.
Memorized vs control differences are tested by `group_tests` (permutation tests, Holm-corrected). The transition width is the alpha range
over which the fitted drop goes from 10 % to 90 % of its full size, 2 tau ln 9; the drop is
called *sharp* when that width is smaller than alpha* itself (`sharp_below` = 1), *gradual*
otherwise. Numbers for the paper are formatted by `memkit.paper.report.format_alpha` / `format_ci`.
"""

from __future__ import annotations

import math
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
    verdict: str  # "sharp", "gradual", or "none" (no transition within the grid)
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
    from scipy.optimize import curve_fit

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


def bootstrap_alpha_star(curves: pd.DataFrame, *, n_boot: int = 200, seed: int = 0, level: float = 0.95,
                         sharp_below: float = 1.0, min_samples: int = MIN_BOOTSTRAP_N) -> dict:
    """alpha* of the mean curve with a bootstrap confidence interval over samples.

    `curves`: one row per sample, one column per alpha (see `sample_curves`). Returns `fit`
    (the `TransitionFit` of the mean curve), `ci_low`, `ci_high` (NaN with fewer than
    `min_samples` samples, default 20: a bootstrap over a handful of items is not an interval;
    +inf when more than the upper tail of replicates has no crossing in the grid) and
    `n_samples`. Replicates resample the samples with replacement (numpy generator seeded with
    `seed`); a replicate without a crossing counts as +inf.
    """
    alphas = np.asarray(curves.columns, dtype=float)
    values = curves.to_numpy(dtype=float)
    fit = fit_sigmoid(alphas, np.nanmean(values, axis=0), sharp_below)
    n = values.shape[0]
    result = {"fit": fit, "ci_low": float("nan"), "ci_high": float("nan"), "n_samples": n}
    if n < max(min_samples, 2) or n_boot <= 0:
        return result
    rng = np.random.default_rng(seed)
    stars = np.empty(n_boot)
    fitted: dict[tuple, float] = {}  # the mean curve depends only on the multiset of picked samples
    for b in range(n_boot):
        pick = tuple(sorted(rng.integers(0, n, size=n).tolist()))
        if pick not in fitted:
            fitted[pick] = fit_sigmoid(alphas, np.nanmean(values[list(pick)], axis=0), sharp_below).alpha_star
        stars[b] = np.inf if math.isnan(fitted[pick]) else fitted[pick]
    tail = (1 - level) / 2
    result["ci_low"] = float(np.quantile(stars, tail, method="lower"))
    result["ci_high"] = float(np.quantile(stars, 1 - tail, method="higher"))
    return result


def transition_table(runs: pd.DataFrame, *, value: str = "retention", by: Sequence[str] = ("model", "kind", "group"),
                     n_boot: int = 200, seed: int = 0, level: float = 0.95, sharp_below: float = 1.0,
                     min_samples: int = MIN_BOOTSTRAP_N) -> pd.DataFrame:
    """One fitted transition per group of `runs` (rows of `alpha_sweep` with the `by` columns).

    Columns: the `by` keys, `family`, `value`, `n_samples`, `alpha_star`, `ci_low`, `ci_high`,
    `mid`, `tau`, `floor`, `width`, `rel_width`, `verdict`, `rmse`, `alpha_max`, `note`, and
    `mean_retention` (mean of the curve over the nonzero alphas: grid-dependent, used to break
    ties). Groups come in first-seen order.
    """
    rows = []
    for keys, part in runs.groupby(list(by), sort=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        curves = sample_curves(part, value)
        boot = bootstrap_alpha_star(curves, n_boot=n_boot, seed=seed, level=level, sharp_below=sharp_below,
                                    min_samples=min_samples)
        fit = boot["fit"].as_dict()
        mean_curve = curves.mean(axis=0)
        nonzero = mean_curve[mean_curve.index > 0]
        rows.append({**dict(zip(by, keys)), "family": FAMILIES.get(part["kind"].iloc[0], "") if "kind" in part else "",
                     "value": value, "n_samples": boot["n_samples"], **fit, "ci_low": boot["ci_low"],
                     "ci_high": boot["ci_high"],
                     "mean_retention": float(nonzero.mean()) if len(nonzero) else float("nan")})
    columns = list(by) + ["family", "value", "n_samples", "alpha_star", "ci_low", "ci_high", "mid", "tau", "floor",
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


__all__ = ["TransitionFit", "bootstrap_alpha_star", "fit_sigmoid", "group_tests", "more_robust", "rank_robustness",
           "sample_curves", "sample_scores", "sigmoid", "transition_table"]
