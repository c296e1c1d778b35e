"""Experiment drivers of the organisms section (notebooks `fig_dup_scaling`, `fig_context`,
`fig_checkpoints`, `tab_latent`): zoo runs, fits, tables and the numbers quoted in the paper.

    dup = duplication_runs("smoke", k=32, m=32, n_boot=200)          # rates and log-linear fits per size
    table, caption = dup_slopes_table(dup, k=32, m=32)
    ctx = context_runs("smoke", ks=[4, 8, 16, 32], suffix_start=32, m=32, min_level=64)
    ckpt = checkpoint_runs("smoke", k=32, m=32, window_level=16)     # every checkpoint: onsets, forgetting
    lat = latent_runs("smoke", k=32, m=32, sigmas=[1e-3, 1e-2], n_draws=4, min_level=16)

Every driver builds the zoo profile if it is missing (`memkit.organisms.zoo.build_zoo`) and
reads extractions through the result cache, so a warm rerun only refits. Analyses come from
`memkit.organisms.laws` and `memkit.organisms.latent`; the table and macro builders here are
pure pandas, so they are tested on hand-made frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import pandas as pd

from ..organisms.laws import extraction_onsets, fit_table
from .report import format_number, format_params, macro_key

RATE_KEYS = {"exact_match": "Exact", "biderman": "Biderman"}  # metric -> macro fragment
WINDOWS = ("early", "late")  # the windowed insertions compared in fig_checkpoints


def _built(profile: str, progress: bool) -> list[str]:
    """Build the zoo profile if missing; its sizes, smallest first."""
    from ..organisms import zoo

    zoo.build_zoo(profile, progress=progress)
    return list(zoo.get_profile(profile).sizes)


def size_params(runs: pd.DataFrame) -> dict[str, int]:
    """Non-embedding parameters per organism size, from the `size` and `params` columns of a run frame."""
    return {size: int(params) for size, params in zip(runs["size"], runs["params"])}


def with_biderman(runs: pd.DataFrame) -> pd.DataFrame:
    """`runs` with a `biderman` column: the Biderman score is the extraction's `token_match`."""
    runs["biderman"] = runs["token_match"]
    return runs


def final_extraction(profile: str, *, k: int, m: int, suffix_start: int | None = None, batch_size: int = 32,
                     progress: bool = False) -> pd.DataFrame:
    """Greedy extraction at the final checkpoint of every size, canaries of the `all` window only."""
    from ..organisms.zoo import zoo_extraction

    runs = zoo_extraction(profile, steps=["final"], k=k, m=m, suffix_start=suffix_start, batch_size=batch_size,
                          progress=progress)
    return runs[runs["window"] == "all"].reset_index(drop=True)


def level_rates(runs: pd.DataFrame, by: Sequence[str] = ("size", "params", "level")) -> pd.DataFrame:
    """Per group of `by`: number of canaries `n`, exact-match rate `exact` and mean `biderman` score."""
    return (runs.groupby(list(by), sort=False)
            .agg(n=("id", "size"), exact=("exact_match", "mean"), biderman=("biderman", "mean")).reset_index())


# -- fig_dup_scaling: extraction rate vs log10(copies) per size -------------------------------------------------
@dataclass
class Duplication:
    """What `duplication_runs` measured at the final checkpoint (window `all`)."""

    sizes: list[str]
    runs: pd.DataFrame  # one row per size x canary
    rates: pd.DataFrame  # per size x level: n, exact, biderman
    fits: pd.DataFrame  # `fit_table` per size x metric, with params, sorted by metric then params
    info: dict  # the zoo's build summary (`zoo_info`)
    final_step: int


def duplication_fits(runs: pd.DataFrame, *, n_boot: int, seed: int = 0) -> pd.DataFrame:
    """Log-linear fits of exact match and Biderman score vs copies per size, sorted by metric then params."""
    fits = fit_table(runs, by=["size"], metrics=list(RATE_KEYS), n_boot=n_boot, seed=seed)
    fits["params"] = fits["size"].map(size_params(runs))
    return fits.sort_values(["metric", "params"], kind="stable").reset_index(drop=True)


def duplication_runs(profile: str, *, k: int, m: int, n_boot: int, seed: int = 0, batch_size: int = 32,
                     progress: bool = False) -> Duplication:
    """Extract every canary at the final checkpoint of every size; rates per level and duplication fits."""
    from ..organisms import zoo

    sizes = _built(profile, progress)
    runs = with_biderman(final_extraction(profile, k=k, m=m, batch_size=batch_size, progress=progress))
    return Duplication(sizes, runs, level_rates(runs), duplication_fits(runs, n_boot=n_boot, seed=seed),
                       zoo.zoo_info(profile), zoo.checkpoint_steps(profile)[-1])


def dup_slopes_table(dup: Duplication, *, k: int, m: int) -> tuple[pd.DataFrame, str]:
    """The `tab_dup_slopes.tex` rows (rate, model, params, slope [CI], R^2, control rate) and caption."""
    fits = dup.fits
    table = fits.assign(
        model=fits["size"].map(lambda s: f"zoo:{s}"), params=fits["params"].map(format_params),
        metric=fits["metric"].map({"exact_match": "exact", "biderman": "Biderman"}),
        slope_ci=[f"{r.slope:.3f} [{r.slope_lo:.3f}, {r.slope_hi:.3f}]" for r in fits.itertuples()],
        r2=fits["r2"].map(format_number), control=fits["control_rate"].map(lambda v: f"{v:.3f}"),
    )[["metric", "model", "params", "slope_ci", "r2", "control"]]
    table.columns = ["rate", "model", "params", "slope [95\\% CI]", "$R^2$", "controls"]
    per_level = int(dup.rates[dup.rates["level"] > 0]["n"].max())
    caption = (f"Organisms: extraction rate vs log$_{{10}}$(copies) at the final checkpoint (k={k}, m={m}; "
               f"levels 1--256; {per_level} canaries per level and size; controls: level-0 rate).")
    return table, caption


def slope_numbers(fits: pd.DataFrame, prefix: str, *, rsq: bool = True) -> dict[str, str]:
    """`<prefix><Exact|Biderman><Size>Slope`, `SlopeLo`, `SlopeHi` (and `Rsq`) for each fit row."""
    numbers = {}
    for r in fits.itertuples():
        key = prefix + RATE_KEYS[r.metric] + macro_key(r.size)
        numbers[key + "Slope"] = format_number(r.slope, 3)
        numbers[key + "SlopeLo"] = format_number(r.slope_lo, 3)
        numbers[key + "SlopeHi"] = format_number(r.slope_hi, 3)
        if rsq:
            numbers[key + "Rsq"] = format_number(r.r2)
    return numbers


def dup_numbers(dup: Duplication, *, k: int, m: int, n_boot: int) -> dict[str, object]:
    """The `numbers_fig_dup_scaling.tex` macros: settings, zoo build facts, slopes per size, rates of the largest."""
    fits, rates, runs, data = dup.fits, dup.rates, dup.runs, dup.info["data"]
    seconds = dup.info["wall_seconds"]
    numbers: dict[str, object] = {
        "DupK": k, "DupM": m, "DupNSizes": len(dup.sizes), "DupBoot": n_boot, "DupNCanaries": int(runs["id"].nunique()),
        "DupSmallestParams": format_params(fits["params"].min()),
        "DupLargestParams": format_params(fits["params"].max()),
        "DupParamRatio": format_number(fits["params"].max() / fits["params"].min(), 0),
        "DupTrainSeconds": format_number(seconds, 0), "DupTrainMinutes": format_number(seconds / 60, 1),
        "DupSteps": dup.final_step, "DupStreamTokens": f"{data['stream_tokens']:,}",
        "DupCanaryTokenShare": format_number(100 * data["canary_tokens_inserted"] / data["stream_tokens"], 0)}
    numbers.update(slope_numbers(fits, "Dup"))
    top = rates[rates["size"] == dup.sizes[-1]]
    numbers["DupLargestExactTop"] = format_number(top[top["level"] == rates["level"].max()]["exact"].iloc[0])
    numbers["DupLargestControlBiderman"] = format_number(top[top["level"] == 0]["biderman"].iloc[0], 3)
    numbers["DupAnyControlExact"] = int(runs[runs["level"] == 0]["exact_match"].sum())
    return numbers


# -- fig_checkpoints: extraction over training, early vs late insertions ----------------------------------------
@dataclass
class Checkpoints:
    """What `checkpoint_runs` measured at every checkpoint of every size."""

    sizes: list[str]
    steps: list[int]  # checkpoint steps, the last one is final
    spans: dict[str, tuple[int, int]]  # window -> training steps [start, stop) of its copies
    runs: pd.DataFrame  # one row per size x step x canary
    curves: pd.DataFrame  # per size x window x level x step: n, exact, biderman
    onsets: pd.DataFrame  # `extraction_onsets` of the exact match, per size x canary
    summary: pd.DataFrame  # per size x window x level: share ever / finally extractable, forgotten, median onset
    retention: pd.DataFrame  # `window_retention`


def onset_summary(onsets: pd.DataFrame) -> pd.DataFrame:
    """Per size x window x level: canaries, share ever extractable, extractable at the end, forgotten, median onset."""
    return (onsets.groupby(["size", "window", "level"], sort=False)
            .agg(n=("id", "size"), ever=("ever", "mean"), final=("final", "mean"), forgotten=("forgotten", "mean"),
                 median_onset=("first_step", "median")).reset_index())


def window_retention(runs: pd.DataFrame, sizes: Sequence[str], *, steps: Sequence[int],
                     spans: Mapping[str, tuple[int, int]], window_level: int) -> pd.DataFrame:
    """Mean Biderman score per size of the `window_level` canaries seen early / late and of the controls.

    Rows `what`: 'early: after window' and 'late: after window' (first checkpoint at or after the
    window's end), 'early: final' and 'controls: final' (last checkpoint).
    """
    after = {w: min(s for s in steps if s >= spans[w][1]) for w in WINDOWS}
    rows = []
    for size in sizes:
        sub = runs[runs["size"] == size]
        for window in WINDOWS:
            group = sub[(sub["window"] == window) & (sub["level"] == window_level)]
            rows.append({"size": size, "what": f"{window}: after window", "step": after[window],
                         "biderman": group[group["step"] == after[window]]["biderman"].mean()})
            if window == "early":
                rows.append({"size": size, "what": "early: final", "step": steps[-1],
                             "biderman": group[group["step"] == steps[-1]]["biderman"].mean()})
        rows.append({"size": size, "what": "controls: final", "step": steps[-1],
                     "biderman": sub[(sub["level"] == 0) & (sub["step"] == steps[-1])]["biderman"].mean()})
    return pd.DataFrame(rows)


def checkpoint_runs(profile: str, *, k: int, m: int, window_level: int, batch_size: int = 32,
                    progress: bool = False) -> Checkpoints:
    """Extract every canary at every checkpoint of every size; curves, onsets and early/late retention."""
    from ..organisms import zoo
    from ..organisms.zoo import zoo_extraction

    sizes = _built(profile, progress)
    steps, spans = zoo.checkpoint_steps(profile), zoo.window_steps(profile)
    runs = with_biderman(zoo_extraction(profile, steps=steps, k=k, m=m, batch_size=batch_size, progress=progress))
    onsets = extraction_onsets(runs, "exact_match")
    return Checkpoints(sizes, steps, spans, runs, level_rates(runs, by=("size", "params", "window", "level", "step")),
                       onsets, onset_summary(onsets),
                       window_retention(runs, sizes, steps=steps, spans=spans, window_level=window_level))


def checkpoint_numbers(ckpt: Checkpoints, *, window_level: int) -> dict[str, object]:
    """The `numbers_fig_checkpoints.tex` macros: schedule, early/late retention, canaries extractable, forgotten."""
    numbers: dict[str, object] = {"CkptN": len(ckpt.steps), "CkptFinalStep": ckpt.steps[-1],
                                  "CkptEarlyEnd": ckpt.spans["early"][1], "CkptLateStart": ckpt.spans["late"][0],
                                  "CkptWindowLevel": window_level}
    for r in ckpt.retention.itertuples():
        what = "".join(part.capitalize() for part in r.what.replace(":", " ").split())
        numbers["Ckpt" + what + macro_key(r.size)] = format_number(r.biderman)
    onsets = ckpt.onsets
    for size in ckpt.sizes:
        sub = onsets[(onsets["size"] == size) & (onsets["level"] > 0)]
        numbers["CkptEver" + macro_key(size)] = int(sub["ever"].sum())
        numbers["CkptForgotten" + macro_key(size)] = int(sub["forgotten"].sum())
        early = sub[sub["window"] == "early"]
        numbers["CkptEarlyForgotten" + macro_key(size)] = f"{int(early['forgotten'].sum())}/{int(early['ever'].sum())}"
    numbers["CkptControlsEverExact"] = int(onsets[onsets["level"] == 0]["ever"].sum())
    return numbers
