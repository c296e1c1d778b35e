"""Experiment drivers of the organisms section (notebooks `fig_context`, `tab_latent`; `fig_dup_scaling`
and `fig_checkpoints` are driven by `memkit.paper.dup_runs` and `memkit.paper.checkpoint_runs`):
zoo runs, fits, tables and the numbers quoted in the paper.

    ctx = context_runs("smoke", ks=[4, 8, 16, 32], suffix_start=32, m=32, min_level=64)
    lat = latent_runs("smoke", k=32, m=32, sigmas=[1e-3, 1e-2], n_draws=4, min_level=16)

Every driver builds the zoo profile if it is missing (`memkit.organisms.zoo.build_zoo`) and
reads extractions through the result cache, so a warm rerun only refits. Analyses come from
`memkit.organisms.laws` and `memkit.organisms.latent`; the table and macro builders here are
pure pandas, so they are tested on hand-made frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import pandas as pd

from ..organisms.laws import loglinear_fit
from .report import format_number, macro_key

RATE_KEYS = {"exact_match": "Exact", "biderman": "Biderman"}  # metric -> macro fragment


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


# -- fig_context: extraction rate vs the prefix length k ----------------------------------------------------------
@dataclass
class Context:
    """What `context_runs` measured: the same suffix after k prefix tokens, for every k and size."""

    sizes: list[str]
    runs: pd.DataFrame  # one row per size x canary x k (window `all`)
    rates: pd.DataFrame  # per size x level x k: n, exact, biderman
    slopes: pd.DataFrame  # per size x metric: `loglinear_fit` with k as the x variable, plus size and params


def context_curve(runs: pd.DataFrame, size: str, *, min_level: int) -> pd.DataFrame:
    """Mean exact match and Biderman score per k of one size, over the canaries with >= `min_level` copies."""
    sub = runs[(runs["size"] == size) & (runs["level"] >= min_level)]
    return sub.groupby("k")[["exact_match", "biderman"]].mean()


def context_slopes(runs: pd.DataFrame, sizes: Sequence[str], *, min_level: int, n_boot: int,
                   seed: int = 0) -> pd.DataFrame:
    """Per size and metric: rate vs log10(k) over the canaries with >= `min_level` copies (bootstrap CI)."""
    rows = []
    for size in sizes:
        sub = runs[(runs["size"] == size) & (runs["level"] >= min_level)]
        for metric in RATE_KEYS:
            fit = loglinear_fit(sub, metric, level="k", n_boot=n_boot, seed=seed)
            rows.append({"size": size, "params": int(sub["params"].iloc[0]), **fit})
    return pd.DataFrame(rows)


def context_runs(profile: str, *, ks: Sequence[int], suffix_start: int, m: int, min_level: int, n_boot: int,
                 seed: int = 0, batch_size: int = 32, progress: bool = False) -> Context:
    """Extract the m-token suffix at `suffix_start` after k prefix tokens, for each k; rates and context slopes."""
    sizes = _built(profile, progress)
    runs = with_biderman(pd.concat(
        [final_extraction(profile, k=k, m=m, suffix_start=suffix_start, batch_size=batch_size,
                          progress=progress).assign(k=k) for k in ks], ignore_index=True))
    return Context(sizes, runs, level_rates(runs, by=("size", "params", "level", "k")),
                   context_slopes(runs, sizes, min_level=min_level, n_boot=n_boot, seed=seed))


def context_numbers(ctx: Context, *, ks: Sequence[int], m: int, min_level: int, n_boot: int) -> dict[str, object]:
    """The `numbers_fig_context.tex` macros: settings, context slopes per size, largest size's rates at k min/max."""
    numbers: dict[str, object] = {"CtxM": m, "CtxMinLevel": min_level, "CtxKMin": min(ks), "CtxKMax": max(ks),
                                  "CtxBoot": n_boot}
    numbers.update(slope_numbers(ctx.slopes, "Ctx", rsq=False))
    top = context_curve(ctx.runs, ctx.sizes[-1], min_level=min_level)
    for metric, key in RATE_KEYS.items():
        numbers[f"CtxLargest{key}KMin"] = format_number(top[metric].iloc[0])
        numbers[f"CtxLargest{key}KMax"] = format_number(top[metric].iloc[-1])
    return numbers


# -- tab_latent: canaries that weight noise brings back -----------------------------------------------------------
@dataclass
class Latent:
    """What `latent_runs` measured: best-of-N similarity under weight noise per size, sample and sigma."""

    sizes: list[str]
    latent: pd.DataFrame  # `latent_memorization` rows with size and params
    tested: pd.DataFrame  # the controls and the inserted canaries not exactly extractable without noise
    result: pd.DataFrame  # `latent_vs_controls` per size x sigma, with size and params


def latent_candidates(samples: Sequence, *, min_level: int) -> list:
    """Samples of the `all` window that are controls (level 0) or inserted at least `min_level` times."""
    return [s for s in samples
            if s.meta["window"] == "all" and (s.meta["level"] == 0 or s.meta["level"] >= min_level)]


def latent_tests(latent: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The tested rows (controls, and inserted canaries not exact without noise) and `latent_vs_controls` per size."""
    from ..organisms.latent import latent_vs_controls

    tested = latent[(latent["meta_level"] == 0) | ~latent["clean_exact"]]
    result = pd.concat([latent_vs_controls(group, by=("sigma",)).assign(size=size, params=int(group["params"].iloc[0]))
                        for size, group in tested.groupby("size", sort=False)], ignore_index=True)
    return tested, result


def latent_runs(profile: str, *, sizes: Sequence[str] | None = None, k: int, m: int, sigmas: Sequence[float],
                n_draws: int, min_level: int, seed: int = 0, batch_size: int = 64, progress: bool = False) -> Latent:
    """Per size (None: every size of the profile): `latent_memorization` at the final checkpoint and its tests."""
    from ..core.models import load_model
    from ..organisms import zoo
    from ..organisms.latent import latent_memorization

    every_size = _built(profile, progress)
    sizes = list(sizes or every_size)
    prefix = "" if profile == zoo.DEFAULT_PROFILE else f"{profile}/"
    samples = latent_candidates(zoo.zoo_samples(profile, k=k, m=m), min_level=min_level)
    frames = []
    for size in sizes:
        lm = load_model(f"zoo:{prefix}{size}@final", device="cpu")
        frame = latent_memorization(lm, samples, sigmas=sigmas, n_draws=n_draws, seed=seed, batch_size=batch_size,
                                    progress=progress)
        frames.append(frame.assign(size=size, params=int(lm.meta["non_embedding_params"])))
        del lm
    latent = pd.concat(frames, ignore_index=True)
    return Latent(sizes, latent, *latent_tests(latent))


def latent_table(result: pd.DataFrame, *, n_draws: int, min_level: int) -> tuple[pd.DataFrame, str]:
    """The `tab_latent.tex` rows (per size x sigma: tested, control max, recovered, gains, p) and caption."""
    table = result.assign(
        model=result["size"].map(lambda s: f"zoo:{s}"), sigma=result["sigma"].map(lambda v: f"{v:g}"),
        tested=[f"{a} / {h} / {b}" for a, h, b in zip(result["n_inserted"], result["n_hidden"], result["n_controls"])],
        threshold=result["control_threshold"].map(lambda v: format_number(v, 3)),
        gains=[f"{a:+.3f} / {b:+.3f}" for a, b in zip(result["inserted_gain"], result["control_gain"])],
        p=result["mannwhitney_p"].map(lambda v: f"{v:.2g}"),
    )[["model", "sigma", "tested", "threshold", "recovered", "recovered_exact", "gains", "p"]]
    table.columns = ["model", "$\\sigma$", "inserted / hidden / controls", "control max", "recovered", "exact",
                     "gain ins. / ctrl", "$p$ (MW)"]
    caption = (f"Latent memorization in the organisms: best token Levenshtein similarity over {n_draws} gaussian "
               f"weight perturbations per $\\sigma$ for inserted canaries ($\\geq${min_level} copies) not extractable "
               f"at the final checkpoint vs never-inserted controls. Hidden: clean similarity no higher than every "
               f"control's; recovered: hidden and best similarity above every control's best; $p$: one-sided "
               f"Mann-Whitney test that inserted canaries gain more (best $-$ clean) than controls.")
    return table, caption


def recovered_canaries(tested: pd.DataFrame) -> pd.DataFrame:
    """Per size x canary: recovered (and recovered exactly) at some sigma (`mark_latent` within each size)."""
    from ..organisms.latent import mark_latent

    marked = pd.concat([mark_latent(group) for _, group in tested.groupby("size", sort=False)])
    marked["recovered_exact"] = marked["recovered"] & marked["best_exact"].astype(bool)
    return marked.groupby(["size", "id"])[["recovered", "recovered_exact"]].any().reset_index()


def latent_numbers(lat: Latent, *, sigmas: Sequence[float], n_draws: int, min_level: int) -> dict[str, object]:
    """The `numbers_tab_latent.tex` macros: settings, recovered canaries, tests, the best sigma per size."""
    result, recovered = lat.result, recovered_canaries(lat.tested)
    per_size = result.drop_duplicates("size")
    numbers: dict[str, object] = {
        "LatentDraws": n_draws, "LatentMinLevel": min_level, "LatentNSigmas": len(sigmas),
        "LatentSigmaMin": f"{min(sigmas):g}", "LatentSigmaMax": f"{max(sigmas):g}",
        "LatentRecoveredCanaries": int(recovered["recovered"].sum()),
        "LatentRecoveredExactCanaries": int(recovered["recovered_exact"].sum()),
        "LatentControlsEverExact": int(lat.latent[lat.latent["meta_level"] == 0]["best_exact"].sum()),
        "LatentTestedTotal": int(per_size["n_inserted"].sum()), "LatentHiddenTotal": int(per_size["n_hidden"].sum()),
        "LatentSignificant": int((result["mannwhitney_p"] < 0.05).sum()), "LatentNTests": len(result)}
    for size, group in result.groupby("size", sort=False):
        best = group.sort_values(["recovered", "sigma"], ascending=[False, True], kind="stable").iloc[0]
        numbers["LatentRecoveredMax" + macro_key(size)] = int(best["recovered"])
        numbers["LatentRecoveredMaxSigma" + macro_key(size)] = f"{best['sigma']:g}"
        numbers["LatentTested" + macro_key(size)] = int(best["n_inserted"])
    return numbers
