"""Duplication and size laws of the organisms, with the training seed as the unit of replication.

    per_seed = seed_rates(runs, ["exact_match"])              # per (size, level, seed): n, mean rate
    rates = across_seeds(per_seed, ["exact_match"])           # mean over seeds, t interval across seeds
    fits = dose_fits(runs, ["exact_match"])                   # logistic / log-linear / threshold in log2(copies),
                                                              # compared by leave-one-seed-out log-likelihood
    test = size_trend_test(per_seed, "exact_match", size_rank=rank)   # Spearman, sizes permuted within seeds

Rates are aggregated per (size, seed) first and then across seeds (t intervals over seed means); a
bootstrap over canaries is used only where a level holds at least `MIN_BOOTSTRAP_N` canaries.
Frames come from `memkit.organisms.zoo.zoo_extraction` (one row per canary x size x seed x step).
Pure numpy / scipy / pandas: no model is run here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..core.stats import MIN_BOOTSTRAP_N, t_interval
from ..errors import MemkitError


# -- seeds: aggregate per (size, seed) first, then across seeds ------------------------------------------------
def seed_rates(frame: pd.DataFrame, metrics: Sequence[str], *, by: Sequence[str] = ("size", "level")) -> pd.DataFrame:
    """Per group of `by` and training seed: canaries `n` and the mean of each metric (the seed is the unit)."""
    keys = list(by) + ["seed"]
    data = frame.assign(**{m: frame[m].astype(float) for m in metrics})
    out = data.groupby(keys, sort=True).agg(n=("id", "size"), **{m: (m, "mean") for m in metrics})
    return out.reset_index()


def across_seeds(per_seed: pd.DataFrame, metrics: Sequence[str], *, by: Sequence[str] = ("size", "level"),
                 level: float = 0.95) -> pd.DataFrame:
    """Per group of `by`: seeds, canaries per seed (`n`, the smallest), and per metric the mean over seed
    means with a t-interval across seeds (`<metric>_lo`, `<metric>_hi`)."""
    rows = []
    for keys, group in per_seed.groupby(list(by), sort=True):
        row = dict(zip(by, keys if isinstance(keys, tuple) else (keys,)))
        row |= {"n_seeds": len(group), "n": int(group["n"].min())}
        for metric in metrics:
            row[metric], row[metric + "_lo"], row[metric + "_hi"] = t_interval(group[metric], level=level)
        rows.append(row)
    return pd.DataFrame(rows)


def canary_bootstrap(frame: pd.DataFrame, metric: str, *, by: Sequence[str] = ("size", "level"), n_boot: int = 2000,
                     seed: int = 0, level: float = 0.95, min_n: int = MIN_BOOTSTRAP_N) -> pd.DataFrame:
    """Per group of `by`: percentile bootstrap CI (`lo`, `hi`) of the seed-averaged rate, resampling canary
    ids with replacement (one draw for all seeds: a canary's text is the same in every seed, the seeds stay
    fixed). NaN when a group has fewer than `min_n` canaries (`core.stats.MIN_BOOTSTRAP_N`)."""
    rng = np.random.default_rng(seed)
    rows = []
    for keys, group in frame.groupby(list(by), sort=True):
        table = group.pivot_table(index="id", columns="seed", values=metric, aggfunc="mean").astype(float)
        row = dict(zip(by, keys if isinstance(keys, tuple) else (keys,))) | {"n_canaries": len(table)}
        if len(table) < min_n or table.isna().any().any():
            rows.append(row | {"lo": float("nan"), "hi": float("nan")})
            continue
        values = table.to_numpy().mean(axis=1)  # each canary's mean over seeds: the seed average is their mean
        draws = values[rng.integers(0, len(values), size=(n_boot, len(values)))].mean(axis=1)
        lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
        rows.append(row | {"lo": float(lo), "hi": float(hi)})
    return pd.DataFrame(rows)


# -- dose-response models on canary-level outcomes: logistic, log-linear, threshold ------------------------------
DOSE_MODELS = ("logistic", "loglinear", "threshold")
EPS = 1e-3  # probabilities of the log-linear and threshold models are kept in [EPS, 1 - EPS]


def bernoulli_loglik(y: np.ndarray, p: np.ndarray) -> float:
    """Sum of y log p + (1 - y) log(1 - p): the Bernoulli log-likelihood (a quasi-likelihood for y in [0, 1])."""
    y, p = np.asarray(y, dtype=float), np.clip(np.asarray(p, dtype=float), 1e-12, 1 - 1e-12)
    return float((y * np.log(p) + (1 - y) * np.log1p(-p)).sum())


def _logistic(x: np.ndarray, y: np.ndarray, ridge: float) -> dict:
    from scipy.optimize import minimize
    from scipy.special import expit

    def loss(theta):
        p = expit(theta[0] + theta[1] * x)
        grad_eta = p - y
        value = -bernoulli_loglik(y, p) + ridge / 2 * theta @ theta
        return value, np.array([grad_eta.sum(), (grad_eta * x).sum()]) + ridge * theta

    theta = minimize(loss, np.zeros(2), jac=True, method="L-BFGS-B").x
    return {"intercept": float(theta[0]), "slope": float(theta[1])}


def _loglinear(x: np.ndarray, y: np.ndarray) -> dict:
    """Linear-probability model p = intercept + slope * x by Bernoulli maximum likelihood, with p kept in
    [EPS, 1 - EPS] over the observed x (parametrised by p at the smallest and largest x, box-bounded)."""
    from scipy.optimize import minimize

    lo_x, hi_x = float(x.min()), float(x.max())
    span = hi_x - lo_x if hi_x > lo_x else 1.0
    u = (x - lo_x) / span

    def loss(q):
        p = q[0] + (q[1] - q[0]) * u
        dp = y / p - (1 - y) / (1 - p)
        return -bernoulli_loglik(y, p), -np.array([(dp * (1 - u)).sum(), (dp * u).sum()])

    ends = [y[u == end].mean() if (u == end).any() else y.mean() for end in (0, 1)]
    start = np.clip(ends, EPS, 1 - EPS)
    q = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=[(EPS, 1 - EPS)] * 2).x
    slope = (q[1] - q[0]) / span
    return {"intercept": float(q[0] - slope * lo_x), "slope": float(slope), "x_min": lo_x, "x_max": hi_x}


def _threshold(x: np.ndarray, y: np.ndarray) -> dict:
    """Step model: p = p_below for x < tau, p_above for x >= tau; tau among the observed x (best likelihood)."""
    best = None
    for tau in np.unique(x)[1:]:
        below, above = np.clip(y[x < tau].mean(), EPS, 1 - EPS), np.clip(y[x >= tau].mean(), EPS, 1 - EPS)
        fit = {"tau": float(tau), "p_below": float(below), "p_above": float(above)}
        ll = bernoulli_loglik(y, predict_dose(fit, "threshold", x))
        if best is None or ll > best[0] + 1e-12:
            best = (ll, fit)
    if best is None:  # one level only: a constant
        p = float(np.clip(y.mean(), EPS, 1 - EPS))
        return {"tau": float(x.min()), "p_below": p, "p_above": p}
    return best[1]


def fit_dose(x: Sequence[float], y: Sequence[float], model: str, *, ridge: float = 1e-2) -> dict:
    """Fit one dose-response model of outcome y (0/1 or a score in [0, 1]) on dose x (log2 copies).

    logistic: logit p = intercept + slope x (maximum likelihood with a weak ridge `ridge` that keeps
    separable data finite); loglinear: p = intercept + slope x (the classic rate-vs-log-copies law,
    maximum likelihood with p in [EPS, 1 - EPS]); threshold: a step at tau.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if model == "logistic":
        return _logistic(x, y, ridge)
    if model == "loglinear":
        return _loglinear(x, y)
    if model == "threshold":
        return _threshold(x, y)
    raise MemkitError(f"unknown dose model {model!r}; choose one of {', '.join(DOSE_MODELS)}")


def predict_dose(fit: dict, model: str, x: Sequence[float]) -> np.ndarray:
    """Probabilities of a `fit_dose` fit at doses x."""
    x = np.asarray(x, dtype=float)
    if model == "logistic":
        from scipy.special import expit

        return expit(fit["intercept"] + fit["slope"] * x)
    if model == "loglinear":
        return np.clip(fit["intercept"] + fit["slope"] * x, EPS, 1 - EPS)
    return np.where(x < fit["tau"], fit["p_below"], fit["p_above"])


def loso_loglik(frame: pd.DataFrame, metric: str, model: str, *, dose: str = "log2_copies",
                ridge: float = 1e-2) -> dict:
    """Leave-one-seed-out: fit on the other seeds, Bernoulli log-likelihood of the held-out seed's canaries;
    summed over folds (`heldout_ll`), per canary (`heldout_ll_per`) and per fold (`folds`)."""
    seeds = sorted(frame["seed"].unique())
    if len(seeds) < 2:
        raise MemkitError(f"leave-one-seed-out needs at least two seeds (got {seeds})")
    folds = {}
    for held in seeds:
        train, test = frame[frame["seed"] != held], frame[frame["seed"] == held]
        fit = fit_dose(train[dose], train[metric].astype(float), model, ridge=ridge)
        folds[int(held)] = bernoulli_loglik(test[metric].astype(float), predict_dose(fit, model, test[dose]))
    total = sum(folds.values())
    return {"heldout_ll": total, "heldout_ll_per": total / len(frame), "folds": folds}


def dose_fits(frame: pd.DataFrame, metrics: Sequence[str], *, by: str = "size", models: Sequence[str] = DOSE_MODELS,
              ridge: float = 1e-2) -> pd.DataFrame:
    """Per group of `by`, metric and model, on the inserted canaries (level >= 1; dose = log2 copies): the fit
    on all seeds pooled, the slope fitted on each seed alone (mean and t-interval across seeds: the seed as
    the unit of replication), and the leave-one-seed-out held-out log-likelihood."""
    data = frame[frame["level"] > 0].assign(log2_copies=lambda d: np.log2(d["level"].astype(float)))
    rows = []
    for key, group in data.groupby(by, sort=True):
        for metric in metrics:
            for model in models:
                pooled = fit_dose(group["log2_copies"], group[metric].astype(float), model, ridge=ridge)
                row = {by: key, "metric": metric, "model": model, "n": len(group),
                       "n_seeds": int(group["seed"].nunique()), **pooled}
                if model != "threshold":
                    slopes = [fit_dose(g["log2_copies"], g[metric].astype(float), model, ridge=ridge)["slope"]
                              for _, g in group.groupby("seed", sort=True)]
                    _, row["slope_lo"], row["slope_hi"] = t_interval(slopes)
                held = loso_loglik(group, metric, model, ridge=ridge)
                row |= {"heldout_ll": held["heldout_ll"], "heldout_ll_per": held["heldout_ll_per"]}
                rows.append(row)
    return pd.DataFrame(rows)


# -- size at fixed duplication: a within-seed permutation test of a monotone trend ------------------------------
def size_trend_test(per_seed: pd.DataFrame, metric: str, *, size_rank: dict, n_resamples: int = 9999,
                    seed: int = 0) -> dict:
    """Spearman's rho between size rank and the per-(size, seed) rate, and its two-sided permutation p-value
    under the null that size does not matter: the rates are shuffled among sizes within each seed (exact
    enumeration when there are at most `n_resamples` relabellings, else a seeded Monte Carlo with the +1
    correction). rho NaN and p 1 when every rate is equal."""
    import itertools
    import math

    from scipy.stats import rankdata

    blocks = [(np.array([size_rank[s] for s in g["size"]], dtype=float), g[metric].to_numpy(dtype=float))
              for _, g in per_seed.groupby("seed", sort=True)]
    ranks_x = rankdata(np.concatenate([b[0] for b in blocks]))
    values = np.concatenate([b[1] for b in blocks])
    if np.ptp(values) == 0:
        return {"rho": float("nan"), "p": 1.0, "n": len(values), "exact": True}

    def rho(vals: np.ndarray) -> float:
        return float(np.corrcoef(ranks_x, rankdata(vals))[0, 1])

    observed = rho(values)
    total = math.prod(math.factorial(len(b[1])) for b in blocks)
    if total <= n_resamples:
        stats = np.array([rho(np.concatenate([b[1][list(p)] for b, p in zip(blocks, perm)]))
                          for perm in itertools.product(*[itertools.permutations(range(len(b[1]))) for b in blocks])])
        p = float(np.mean(np.abs(stats) >= abs(observed) - 1e-12))
        return {"rho": observed, "p": p, "n": len(values), "exact": True}
    rng = np.random.default_rng(seed)
    hits = sum(abs(rho(np.concatenate([rng.permutation(b[1]) for b in blocks]))) >= abs(observed) - 1e-12
               for _ in range(n_resamples))
    return {"rho": observed, "p": float((hits + 1) / (n_resamples + 1)), "n": len(values), "exact": False}


def size_slope(per_seed: pd.DataFrame, metric: str, *, params: dict) -> dict:
    """Change of the rate per decade of non-embedding parameters: an OLS slope per seed, then the mean and
    t-interval across seeds (its width is what a null result rules out)."""
    slopes = [float(np.polyfit(np.log10([params[s] for s in g["size"]]), g[metric].astype(float), 1)[0])
              for _, g in per_seed.groupby("seed", sort=True)]
    mean, lo, hi = t_interval(slopes)
    return {"slope": mean, "slope_lo": lo, "slope_hi": hi, "n_seeds": len(slopes)}
