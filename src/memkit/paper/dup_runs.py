"""Driver of notebook `fig_dup_scaling`: extraction vs duplication and vs size on every seed of the zoo.

    dup = duplication_runs("smoke", k=32, m=32, n_boot=200, trend_levels=[16, 64, 256])
    fits, caption = dup_fits_table(dup)              # logistic vs log-linear, leave-one-seed-out likelihood
    sweep, caption = lr_sweep_table(dup.info)        # how each size's peak LR was chosen
    numbers = dup_numbers(dup, k=32, m=32, n_boot=200)

Every rate is computed per (size, seed) first and then across the seeds (mean, Student-t interval
over the seed means); where a level has >= 20 canaries a percentile bootstrap over canaries is
added (`memkit.organisms.laws`). The dose-response fits use the canary-level outcomes of every
seed, the size trend permutes sizes within seeds. Table and macro builders are pure pandas, tested
on hand-made frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from ..core.stats import holm
from ..organisms import laws
from .report import format_number, format_params, format_small, macro_key

METRICS = {"exact_match": "Exact", "biderman": "Biderman"}  # metric -> macro fragment
MODEL_KEYS = {"logistic": "Logistic", "loglinear": "Loglinear", "threshold": "Threshold"}


def built_sizes(profile: str, progress: bool) -> tuple[list[str], list[int]]:
    """Build the zoo profile if missing; its sizes (smallest first) and seeds."""
    from ..organisms import zoo

    zoo.build_zoo(profile, progress=progress)
    prof = zoo.get_profile(profile)
    return list(prof.sizes), list(prof.seeds)


def final_extraction(profile: str, *, k: int, m: int, batch_size: int = 32, progress: bool = False) -> pd.DataFrame:
    """Greedy extraction of every canary (every window) at the final step of every size and seed, with the
    Biderman score (`token_match`, the share of the m greedy tokens equal to the suffix) as `biderman`."""
    from ..organisms.zoo import zoo_extraction

    runs = zoo_extraction(profile, steps=["final"], k=k, m=m, batch_size=batch_size, progress=progress)
    return runs.assign(biderman=runs["token_match"], exact_match=runs["exact_match"].astype(float))


def by_size(frame: pd.DataFrame, sizes: Sequence[str]) -> pd.DataFrame:
    """`frame` with its rows ordered by the `size` column in the order of `sizes` (smallest first), stably."""
    order = frame["size"].map({size: i for i, size in enumerate(sizes)})
    return frame.iloc[np.argsort(order.to_numpy(), kind="stable")].reset_index(drop=True)


def size_params(runs: pd.DataFrame) -> dict[str, int]:
    """Non-embedding parameters per size, from the `size` and `params` columns of a run frame."""
    return {size: int(params) for size, params in zip(runs["size"], runs["params"])}


def level_rates(runs: pd.DataFrame, *, n_boot: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per (size, seed, level) rates, and per (size, level) the mean over seeds with t-intervals across
    seeds (`<metric>_lo/_hi`) and canary-bootstrap CIs (`<metric>_boot_lo/_hi`, NaN under 20 canaries)."""
    per_seed = laws.seed_rates(runs, list(METRICS))
    rates = laws.across_seeds(per_seed, list(METRICS))
    for metric in METRICS:
        boot = laws.canary_bootstrap(runs, metric, n_boot=n_boot, seed=seed)
        rates[metric + "_boot_lo"], rates[metric + "_boot_hi"] = boot["lo"].to_numpy(), boot["hi"].to_numpy()
    return per_seed, rates


def final_losses(info: dict) -> pd.DataFrame:
    """Per size and seed: the held-out background loss at the last step (zoo.json keys are step strings)."""
    rows = []
    for size, row in info["sizes"].items():
        for seed, run in row["seeds"].items():
            last = max(run["heldout_loss"], key=int)
            rows.append({"size": size, "params": int(row["non_embedding_params"]), "seed": int(seed),
                         "step": int(last), "heldout_loss": float(run["heldout_loss"][last])})
    return pd.DataFrame(rows).sort_values(["params", "seed"], kind="stable").reset_index(drop=True)


def size_trends(per_seed: pd.DataFrame, *, levels: Sequence[int], params: dict[str, int], n_resamples: int,
                seed: int = 0) -> pd.DataFrame:
    """Per metric and duplication level: Spearman rho of size rank vs the per-(size, seed) rate with its
    within-seed permutation p (Holm over every level x metric tested), and the rate's change per decade of
    parameters (mean of per-seed OLS slopes, t-interval across seeds)."""
    rank = {size: i for i, size in enumerate(sorted(params, key=params.get))}
    rows = []
    for metric in METRICS:
        for level in levels:
            cell = per_seed[per_seed["level"] == level]
            test = laws.size_trend_test(cell, metric, size_rank=rank, n_resamples=n_resamples, seed=seed)
            rows.append({"metric": metric, "level": int(level), **test,
                         **laws.size_slope(cell, metric, params=params)})
    out = pd.DataFrame(rows)
    out["p_holm"] = holm(out["p"])
    return out


def lr_sweep(info: dict) -> pd.DataFrame:
    """Per size: held-out loss per swept peak LR, the chosen LR and whether it sits on the grid's edge."""
    rows = []
    for size, row in info["sweep"].items():
        losses = {float(lr): float(loss) for lr, loss in row["heldout_loss"].items()}
        grid = sorted(losses)
        rows.append({"size": size, "params": int(info["sizes"][size]["non_embedding_params"]), **losses,
                     "lr": float(row["lr"]), "sweep_steps": int(row["steps"]),
                     "edge": float(row["lr"]) in (grid[0], grid[-1])})
    return pd.DataFrame(rows).sort_values("params", kind="stable").reset_index(drop=True)


@dataclass
class Duplication:
    """What `duplication_runs` measured at the final step (window `all`, every size and seed)."""

    sizes: list[str]  # smallest first
    seeds: list[int]
    runs: pd.DataFrame  # one row per size x seed x canary
    per_seed: pd.DataFrame  # per size x level x seed: n, exact_match, biderman
    rates: pd.DataFrame  # per size x level: across seeds (t-interval) and canary bootstrap
    fits: pd.DataFrame  # `laws.dose_fits` per size x metric x model
    trends: pd.DataFrame  # `size_trends` per metric x level
    losses: pd.DataFrame  # `final_losses` per size x seed
    info: dict  # `zoo_info`
    final_step: int


def duplication_runs(profile: str, *, k: int, m: int, n_boot: int, trend_levels: Sequence[int],
                     n_resamples: int = 9999, seed: int = 0, batch_size: int = 32,
                     progress: bool = False) -> Duplication:
    """Extract every canary at the final step of every size and seed; rates, dose fits, size trends, losses."""
    from ..organisms import zoo

    sizes, seeds = built_sizes(profile, progress)
    runs = final_extraction(profile, k=k, m=m, batch_size=batch_size, progress=progress)
    runs = runs[runs["window"] == "all"].reset_index(drop=True)
    per_seed, rates = (by_size(frame, sizes) for frame in level_rates(runs, n_boot=n_boot, seed=seed))
    fits = by_size(laws.dose_fits(runs, list(METRICS)), sizes)
    params = size_params(runs)
    trends = size_trends(per_seed, levels=trend_levels, params=params, n_resamples=n_resamples, seed=seed)
    info = zoo.zoo_info(profile)
    return Duplication(sizes, seeds, runs, per_seed, rates, fits, trends, final_losses(info), info,
                       zoo.checkpoint_steps(profile)[-1])


def model_comparison(fits: pd.DataFrame) -> pd.DataFrame:
    """Per size x metric (in the order of `fits`): held-out log-likelihood per canary of each model and the best."""
    wide = fits.pivot_table(index=["size", "metric"], columns="model", values="heldout_ll_per", sort=False)
    wide["best"] = wide.idxmax(axis=1)
    return wide.reset_index().rename_axis(columns=None)


def dup_fits_table(dup: Duplication) -> tuple[pd.DataFrame, str]:
    """The `tab_dup_fits.tex` rows (per size and metric: slopes with seed CIs, held-out log-likelihoods)."""
    params = size_params(dup.runs)
    fits = dup.fits.set_index(["size", "metric", "model"])
    rows = []
    for metric, label in (("exact_match", "exact"), ("biderman", "Biderman")):
        for size in dup.sizes:
            lr, ll = fits.loc[(size, metric, "logistic")], fits.loc[(size, metric, "loglinear")]
            th = fits.loc[(size, metric, "threshold")]
            held = {m: round(fits.loc[(size, metric, m), "heldout_ll_per"], 3) + 0.0 for m in MODEL_KEYS}  # no -0.000
            best = max(held, key=held.get)
            cells = {m: (f"\\textbf{{{v:.3f}}}" if m == best else f"{v:.3f}") for m, v in held.items()}
            inserted = dup.runs[(dup.runs["size"] == size) & (dup.runs["level"] > 0)]
            if inserted[metric].astype(float).sum() == 0:  # nothing extracted: no slope or step to speak of
                slopes = {"logistic": "--", "loglinear": "--", "tau": "--"}
            else:
                slopes = {"logistic": f"{lr.slope:.2f} [{lr.slope_lo:.2f}, {lr.slope_hi:.2f}]",
                          "loglinear": f"{ll.slope:.3f} [{ll.slope_lo:.3f}, {ll.slope_hi:.3f}]",
                          "tau": f"{2 ** th.tau:.0f}"}
            rows.append({"rate": label, "params": format_params(params[size]), **slopes,
                         **{f"ll_{m}": cells[m] for m in MODEL_KEYS}})
    table = pd.DataFrame(rows)
    table.columns = ["rate", "params", "logistic slope", "log-linear slope", "step at", "LL logistic",
                     "LL log-linear", "LL step"]
    n = int(dup.fits["n"].iloc[0])
    caption = (f"Dose--response fits per size on the inserted canaries at the final step ({n} canary outcomes per "
               f"size: {n // len(dup.seeds)} canaries $\\times$ {len(dup.seeds)} seeds). Slopes are per doubling "
               f"of the copies (logistic: log-odds; log-linear: rate), fitted on all seeds pooled, with a "
               f"t-interval over the {len(dup.seeds)} per-seed fits (centred on their mean; a weak ridge keeps "
               f"separable fits finite; --: nothing extracted). Step: the best "
               f"threshold model (copies at which the rate jumps). LL: leave-one-seed-out log-likelihood per "
               f"canary (fit on the other "
               f"{len(dup.seeds) - 1} seed(s), scored on the held-out seed; for the Biderman score a Bernoulli "
               f"quasi-likelihood); bold: the best model.")
    return table, caption


def lr_sweep_table(info: dict) -> tuple[pd.DataFrame, str]:
    """The `tab_lr_sweep.tex` rows: per size the held-out loss at each swept LR (chosen in bold) and edge flag."""
    sweep = lr_sweep(info)
    grid = sorted(c for c in sweep.columns if isinstance(c, float))
    rows = []
    for r in sweep.to_dict("records"):
        cells = {f"{lr:g}": (f"\\textbf{{{r[lr]:.3f}}}" if lr == r["lr"] else f"{r[lr]:.3f}") for lr in grid}
        rows.append({"params": format_params(r["params"]), **cells, "edge": "yes" if r["edge"] else "no"})
    table = pd.DataFrame(rows)
    steps = int(sweep["sweep_steps"].iloc[0])
    caption = (f"Learning-rate sweep: held-out background loss after {steps} steps (the first part of seed 0's "
               f"stream, WSD schedule) per peak learning rate and size; bold: the rate chosen for the "
               f"{len(info['sizes'][next(iter(info['sizes']))]['seeds'])} training seeds; edge: the chosen rate "
               f"is the largest or smallest of the grid.")
    return table, caption


def _rate_macros(dup: Duplication) -> dict[str, str]:
    numbers = {}
    rates = dup.rates.set_index(["size", "level"])
    for size in dup.sizes:
        for level in sorted(dup.rates["level"].unique()):
            r = rates.loc[(size, level)]
            for metric, key in METRICS.items():
                name = f"Dup{key}{macro_key(size)}L{macro_key(str(level))}"
                numbers[name] = format_number(r[metric])
                numbers[name + "Lo"] = format_number(max(0.0, r[metric + "_lo"]))
                numbers[name + "Hi"] = format_number(min(1.0, r[metric + "_hi"]))
    return numbers


def _fit_macros(dup: Duplication) -> dict[str, object]:
    numbers: dict[str, object] = {}
    comparison = model_comparison(dup.fits)
    for r in dup.fits.itertuples():
        key = f"Dup{METRICS[r.metric]}{macro_key(r.size)}{MODEL_KEYS[r.model]}"
        numbers[key + "LL"] = format_number(round(r.heldout_ll_per, 3) + 0.0, 3)  # -0.0004 prints 0.000
        if r.model != "threshold":
            digits = 2 if r.model == "logistic" else 3
            numbers[key + "Slope"] = format_number(r.slope, digits)
            numbers[key + "SlopeLo"] = format_number(r.slope_lo, digits)
            numbers[key + "SlopeHi"] = format_number(r.slope_hi, digits)
    for metric, key in METRICS.items():
        sub = comparison[comparison["metric"] == metric]
        numbers[f"Dup{key}LogisticBeatsLoglinear"] = int((sub["logistic"] > sub["loglinear"]).sum())
        numbers[f"Dup{key}BestModels"] = ", ".join(sorted(set(sub["best"])))
    return numbers


def _trend_macros(dup: Duplication) -> dict[str, object]:
    numbers: dict[str, object] = {"DupTrendLevels": ", ".join(str(v) for v in dup.trends["level"].unique()),
                                  "DupTrendTests": len(dup.trends),
                                  "DupTrendSignificant": int((dup.trends["p_holm"] < 0.05).sum())}
    for r in dup.trends.itertuples():
        key = f"DupTrend{METRICS[r.metric]}L{macro_key(str(r.level))}"
        numbers[key + "Rho"] = format_number(r.rho)
        numbers[key + "P"] = f"{r.p:.2g}"
        numbers[key + "PHolm"] = f"{r.p_holm:.2g}"
        numbers[key + "Slope"] = format_number(r.slope, 3)
        numbers[key + "SlopeLo"] = format_number(r.slope_lo, 3)
        numbers[key + "SlopeHi"] = format_number(r.slope_hi, 3)
    return numbers


def dup_numbers(dup: Duplication, *, k: int, m: int, n_boot: int) -> dict[str, object]:
    """The `numbers_fig_dup_scaling.tex` macros: settings, zoo facts, per-level rates, fits, size trends, losses."""
    runs, data, seconds = dup.runs, dup.info["data"], dup.info["wall_seconds"]
    params = size_params(runs)
    per_level = dup.rates.groupby("level")["n"].min()
    numbers: dict[str, object] = {
        "DupK": k, "DupM": m, "DupNSizes": len(dup.sizes), "DupNSeeds": len(dup.seeds), "DupBoot": n_boot,
        "DupNCanaries": int(runs["id"].nunique()), "DupNControls": int(per_level.loc[0]),
        "DupNPerLevel": int(per_level.drop(0).max()), "DupNTopLevel": int(per_level.iloc[-1]),
        "DupTopLevel": int(per_level.index[-1]),
        "DupSmallestParams": format_params(min(params.values())),
        "DupLargestParams": format_params(max(params.values())),
        "DupParamRatio": format_number(max(params.values()) / min(params.values()), 0),
        "DupTrainSeconds": format_number(seconds, 0), "DupTrainMinutes": format_number(seconds / 60, 1),
        "DupSteps": dup.final_step, "DupStreamTokens": f"{data['stream_tokens']:,}",
        "DupCanaryTokenShare": format_number(100 * data["canary_token_fraction"], 0),
        "DupAnyControlExact": int(runs[runs["level"] == 0]["exact_match"].sum()),
        "DupControlRuns": int((runs["level"] == 0).sum()),
        "DupFirstExactLevel": int(runs.loc[runs["exact_match"] > 0, "level"].min()) if runs["exact_match"].any()
        else "--",
        "DupMaxControlBiderman": format_number(dup.rates[dup.rates["level"] == 0]["biderman"].max(), 3)}
    numbers |= _rate_macros(dup) | _fit_macros(dup) | _trend_macros(dup)
    losses = laws.across_seeds(dup.losses.assign(n=1), ["heldout_loss"], by=("size",)).set_index("size")
    for size in dup.sizes:
        numbers["DupLoss" + macro_key(size)] = format_number(losses.loc[size, "heldout_loss"], 3)
        numbers[f"Dup{macro_key(size)}Params"] = format_params(params[size])
    sweep = lr_sweep(dup.info)
    numbers["DupSweepEdge"] = int(sweep["edge"].sum())
    numbers["DupSweepSteps"] = int(sweep["sweep_steps"].iloc[0])
    numbers["DupSweepRates"] = int(sum(isinstance(c, float) for c in sweep.columns))  # the swept LR columns
    return numbers | design_numbers(dup.info, dup.final_step)


def design_numbers(info: dict, final_step: int) -> dict[str, object]:
    """Macros of the zoo's design from its build summary (`zoo_info`): schedule, windows, data, seeds, cost."""
    data, prof = info["data"], info["data"]["profile"]
    run = next(iter(prof["runs"].values()))
    windows = {name: [int(round(f * final_step)) for f in span] for name, span in prof["windows"].items()}
    rates = [v["lr"] for v in info["sizes"].values()]
    cpu_seconds = sum(seed["seconds"] for v in info["sizes"].values() for seed in v["seeds"].values())
    numbers: dict[str, object] = {
        "DupWarmupPercent": format_number(100 * run["warmup_frac"], 0),
        "DupDecayPercent": format_number(100 * prof["decay_frac"], 0),
        "DupDecayStart": final_step - int(round(prof["decay_frac"] * final_step)),
        "DupBatchSequences": prof["batch_size"], "DupSeqLen": prof["seq_len"],
        "DupBackgroundEpochs": format_number(data["background_epochs"], 1),
        "DupHeldoutTokens": f"{data['heldout_tokens']:,}", "DupHeldoutChapters": data["heldout_chapters"],
        "DupCanaryTokens": prof["canary_tokens"], "DupNCanariesTotal": data["n_canaries"],
        "DupLrMin": format_small(min(rates)), "DupLrMax": format_small(max(rates)),
        "DupTrainCpuMinutes": format_number(cpu_seconds / 60, 0),
        "DupWindowCanaries": sum(c["count"] for c in prof["cells"] if c["window"] == "early"),
        "DupWindowLevel": next(c["level"] for c in prof["cells"] if c["window"] == "early")}
    for name, (start, stop) in windows.items():
        numbers[f"Dup{name.capitalize()}Start"], numbers[f"Dup{name.capitalize()}Stop"] = start, stop
    return numbers


def rate_curve(dup: Duplication, size: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Doses (log2 copies) and the pooled logistic fit's probabilities for one size, for the figure."""
    fit = dup.fits[(dup.fits["size"] == size) & (dup.fits["metric"] == metric) & (dup.fits["model"] == "logistic")]
    x = np.linspace(0, math.log2(dup.rates["level"].max()), 100)
    return x, laws.predict_dose(fit.iloc[0].to_dict(), "logistic", x)
