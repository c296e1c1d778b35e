"""Driver of `tab_latent`: latent memorization in the zoo against the pseudo-canary permutation null.

    lat = latent_runs("smoke", sizes=["100k"], k=32, m=32, sigmas={"absolute": 0.01, "relative": 0.1},
                      n_draws=4, n_resamples=999)
    table, caption = latent_table(lat, n_draws=4, sigmas={...})
    numbers = latent_numbers(lat, n_draws=4, sigmas={...})

Every canary of the `all` window (controls included) is scored under `n_draws` weight-noise draws
per family (absolute sigma; sigma relative to each tensor's std) at the final checkpoint of each
(size, seed) (`memkit.organisms.latent.latent_draws`, one forward pass per draw); the analysis is
`memkit.organisms.latent_null` (pure pandas, so the table and macro builders here are tested on
hand-made frames).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import pandas as pd

from ..core.stats import holm
from ..organisms.latent_null import matched_pairs, null_tests, pseudo_canary_null
from .report import format_number, format_p, format_params, macro_key

FAMILY_KEYS = {"absolute": "Abs", "relative": "Rel"}  # noise family -> macro fragment


@dataclass
class Latent:
    """What `latent_runs` measured and tested."""

    sizes: list[str]
    draws: pd.DataFrame  # `latent_draws` rows with size, params, seed
    pairs: pd.DataFrame  # `matched_pairs`: each eligible canary with its pseudo-canary
    tests: pd.DataFrame  # `null_tests` per size x family x level, with params
    null: pd.DataFrame  # `pseudo_canary_null` per size x family


def latent_analysis(draws: pd.DataFrame, *, n_resamples: int, caliper: float,
                    seed: int = 0) -> tuple[pd.DataFrame, ...]:
    """(pairs, tests with params, null) of a draws frame with size, params, seed and family columns.

    Two analyses per size x family x level, Holm over all of them: `matched` (every eligible canary with
    its nearest control) and `caliper` (only pairs whose clean accuracies differ by at most `caliper`:
    canaries that the clean model already half-reproduces have no control like them, so only this one
    compares like with like).
    """
    pairs = matched_pairs(draws)
    pairs["within_caliper"] = pairs["distance"] <= caliper
    tests = pd.concat([null_tests(pairs, n_resamples=n_resamples, seed=seed).assign(analysis="matched"),
                       null_tests(pairs[pairs["within_caliper"]], n_resamples=n_resamples, seed=seed)
                       .assign(analysis="caliper")], ignore_index=True)
    tests["p_holm"] = holm(tests["p"].to_numpy())
    params = dict(zip(draws["size"], draws["params"]))
    tests.insert(1, "params", tests["size"].map(params))
    tests = tests.sort_values(["analysis", "family", "params", "level"], ascending=[False, True, True, True],
                              kind="stable").reset_index(drop=True)
    return pairs, tests, pseudo_canary_null(draws)


def latent_runs(profile: str, *, sizes: Sequence[str] | None = None, seeds: Sequence[int] | None = None, k: int,
                m: int, sigmas: Mapping[str, float], n_draws: int, n_resamples: int, caliper: float,
                noise_seed: int = 0, batch_size: int = 256, progress: bool = False) -> Latent:
    """`latent_draws` of every `all`-window canary per (size, seed, family) at the final checkpoint, and the null tests."""
    from ..core.models import load_model
    from ..organisms import zoo
    from ..organisms.latent import latent_draws

    zoo.build_zoo(profile, progress=progress)
    prof = zoo.get_profile(profile)
    sizes = list(sizes or prof.sizes)
    prefix = "" if profile == zoo.DEFAULT_PROFILE else f"{profile}/"
    samples = [s for s in zoo.zoo_samples(profile, k=k, m=m) if s.meta["window"] == "all"]
    frames = []
    for size in sizes:
        for seed in (list(seeds) if seeds is not None else list(prof.seeds)):
            lm = load_model(f"zoo:{prefix}{size}-s{seed}@final", device="cpu")
            for family, sigma in sigmas.items():
                frame = latent_draws(lm, samples, sigmas=[sigma], n_draws=n_draws, seed=noise_seed,
                                     relative=family == "relative", batch_size=batch_size, progress=progress)
                frames.append(frame.assign(size=size, params=int(lm.meta["non_embedding_params"]), seed=seed))
            del lm
    draws = pd.concat(frames, ignore_index=True)
    return Latent(sizes, draws, *latent_analysis(draws, n_resamples=n_resamples, caliper=caliper))


def latent_table(lat: Latent, *, n_draws: int, sigmas: Mapping[str, float], caliper: float) -> tuple[pd.DataFrame, str]:
    """The `tab_latent.tex` rows (per family x size x level: n, gains, recovered shares, p, Holm p) and caption."""
    t = lat.tests
    table = pd.DataFrame({
        "analysis": t["analysis"], "noise": [f"{f} {sigmas[f]:g}" for f in t["family"]],
        "model": t["params"].map(format_params),
        "level": t["level"], "n": [f"{n} ({p})" for n, p in zip(t["n"], t["n_pairs"])],
        "gain": [f"{a:.2f} / {b:.2f}" for a, b in zip(t["canary_gain"], t["control_gain"])],
        "recovered": [f"{a:.2f} / {b:.2f}" for a, b in zip(t["canary_recovered"], t["control_recovered"])],
        "clean": [f"{a:.2f} / {b:.2f}" for a, b in zip(t["canary_clean"], t["control_clean"])],
        "p": t["p"].map(format_p), "p_holm": t["p_holm"].map(format_p)})
    table.columns = ["pairs", "$\\sigma$", "model", "copies", "$n$ (pairs)", "gain can. / ctrl", "recovered can. / ctrl",
                     "clean acc. can. / ctrl", "$p$", "$p$ (Holm)"]
    n_seeds = int(lat.draws["seed"].nunique())
    caption = (f"Latent memorization against the pseudo-canary null: gain in greedy match length (best over "
               f"{n_draws} weight-noise draws minus clean) of inserted canaries not extractable by the clean model, "
               f"and of never-inserted controls put through the same selection and matched on kind and clean "
               f"teacher-forced accuracy, at the final checkpoint of {n_seeds} seeds per size; pairs: every canary "
               f"(matched) or only pairs whose clean accuracies differ by at most {caliper:g} (caliper). $n$: canaries "
               f"(pairs over seeds); recovered: share of pairs whose suffix some draw reproduces exactly; $p$: "
               f"two-sided permutation test of the mean gain (canaries averaged over seeds), Holm over all "
               f"{len(t)} tests. $\\sigma$ relative: times each tensor's standard deviation.")
    return table, caption


def latent_numbers(lat: Latent, *, n_draws: int, sigmas: Mapping[str, float], caliper: float) -> dict[str, object]:
    """The `numbers_tab_latent.tex` macros: settings, pseudo-canary null, every test cell, significant cells."""
    t, draws = lat.tests, lat.draws
    controls = draws[(draws["meta_level"] == 0) & ~draws["clean_exact"].astype(bool)]
    numbers: dict[str, object] = {
        "LatentDraws": n_draws, "LatentNSeeds": int(draws["seed"].nunique()), "LatentNSizes": len(lat.sizes),
        "LatentSizes": " and ".join(format_params(p) for p in sorted(draws["params"].unique())),
        "LatentNControls": int(draws[draws["meta_level"] == 0]["id"].nunique()),
        "LatentControlsRecovered": int((controls["exact_draws"] > 0).sum()), "LatentControlRows": len(controls),
        "LatentNTests": len(t), "LatentCaliper": f"{caliper:g}", "LatentSignificant": int((t["p_holm"] < 0.05).sum()),
        "LatentSignificantRaw": int((t["p"] < 0.05).sum())}
    for family, sigma in sigmas.items():
        numbers["LatentSigma" + FAMILY_KEYS[family]] = f"{sigma:g}"
    for r in t.itertuples():
        key = ("Latent" + ("Cal" if r.analysis == "caliper" else "") + FAMILY_KEYS[r.family] + macro_key(r.size)
               + "L" + macro_key(str(r.level)))
        numbers[key + "N"] = int(r.n)
        numbers[key + "Gain"] = format_number(r.canary_gain)
        numbers[key + "CtrlGain"] = format_number(r.control_gain)
        numbers[key + "Rec"] = format_number(r.canary_recovered)
        numbers[key + "CtrlRec"] = format_number(r.control_recovered)
        numbers[key + "P"] = format_p(r.p_holm)
        numbers[key + "Clean"] = format_number(r.canary_clean)
        numbers[key + "CtrlClean"] = format_number(r.control_clean)
    for analysis, group in t.groupby("analysis"):
        key = "Latent" + ("Cal" if analysis == "caliper" else "Matched")
        significant = group[group["p_holm"] < 0.05]
        numbers[key + "Tests"] = len(group)
        numbers[key + "Significant"] = len(significant)
        numbers[key + "MinP"] = format_p(group["p_holm"].min())
        numbers[key + "MaxLevel"] = int(group["level"].max())
        numbers[key + "SignificantMinLevel"] = int(significant["level"].min()) if len(significant) else "--"
        numbers[key + "MinCanaryClean"] = format_number(significant["canary_clean"].min()) if len(significant) else "--"
        numbers[key + "MaxControlClean"] = format_number(group["control_clean"].max())
    return numbers
