"""Driver of `fig_context`: does extraction need k prompt tokens, or a prompt that starts like a training copy?

    ctx = context_runs("smoke", ks=[4, 8, 16, 24, 32], suffix_start=32, m=32, start_m=24, levels=[0, 64, 256])
    numbers = context_numbers(ctx)

Every training copy of a canary is `[eos] canary [eos]`, so only a prompt that begins with that eos
and the canary's first token starts where the model saw the canary start. Four prompt conditions,
each at every k (`context_samples`):

- `inside`: the k canary tokens right before a fixed suffix (canary[s-k:s] -> canary[s:s+m]);
- `inside+eos`: the same prompt after an eos; at k = s it is the full training context;
- `start`: the first k canary tokens, suffix canary[k:k+start_m] (the suffix moves with k);
- `start+eos`: the same after an eos: a prompt that starts like a training copy at every k.

Scores are the greedy extraction metrics of `zoo_extraction` (Biderman score = token match) per
(size, seed); across seeds: mean and a t interval over the seeds. Paired permutation tests per
size x level x k compare conditions on the same canaries (scores averaged over seeds), Holm over all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from ..core.samples import Sample
from ..core.stats import holm, paired_permutation_test
from ..organisms import laws
from .report import format_number, macro_key

CONDITIONS = ("inside", "inside+eos", "start", "start+eos")
COMPARISONS = {"eos": ("inside+eos", "inside"), "boundary": ("start+eos", "inside+eos")}  # name -> (a, b): a - b
CONDITION_KEYS = {"inside": "Inside", "inside+eos": "InsideEos", "start": "Start", "start+eos": "StartEos"}


def context_samples(canaries: Sequence, *, ks: Sequence[int], eos_id: int, suffix_start: int, m: int, start_m: int,
                    levels: Sequence[int]) -> list[Sample]:
    """The four prompt conditions at every k for the `all`-window canaries of `levels` (ids `<canary>/<condition>/k<k>`)."""
    samples = []
    for c in canaries:
        if c.window != "all" or c.level not in levels:
            continue
        tokens = tuple(c.token_ids)
        meta = {"kind": c.kind, "level": c.level, "window": c.window, "zlib": c.zlib_ratio,
                "copies": len(c.positions), "canary": c.id}
        for k in ks:
            inside, start = tokens[suffix_start - k:suffix_start], tokens[:k]
            cells = {"inside": (inside, (), tokens[suffix_start:suffix_start + m]),
                     "inside+eos": (inside, (eos_id,), tokens[suffix_start:suffix_start + m]),
                     "start": (start, (), tokens[k:k + start_m]), "start+eos": (start, (eos_id,), tokens[k:k + start_m])}
            for condition, (prefix, lead, suffix) in cells.items():
                samples.append(Sample(f"{c.id}/{condition}/k{k}", prefix, suffix, lead + prefix, "raw",
                                      {**meta, "condition": condition, "k": k}))
    return samples


def seed_scores(runs: pd.DataFrame) -> pd.DataFrame:
    """Per size, seed, condition, k and level: canaries `n`, exact-match rate and mean Biderman score."""
    keys = ["size", "params", "seed", "condition", "k", "level"]
    scores = laws.seed_rates(runs.assign(exact=runs["exact_match"], biderman=runs["token_match"]),
                             ["exact", "biderman"], by=[key for key in keys if key != "seed"])
    return scores[keys + ["n", "exact", "biderman"]].sort_values(["params", *keys], ignore_index=True)


def across_seeds(scores: pd.DataFrame, *, level: float = 0.95) -> pd.DataFrame:
    """Per size, condition, k and level: mean over seeds of the exact and Biderman rates, with t intervals over seeds."""
    return laws.across_seeds(scores, ["exact", "biderman"], by=("size", "params", "condition", "k", "level"),
                             level=level)


def context_tests(runs: pd.DataFrame, *, levels: Sequence[int], comparisons: dict = COMPARISONS,
                  n_resamples: int = 9999, seed: int = 0) -> pd.DataFrame:
    """Per comparison, size, level and k: Biderman score of condition a - b on the same canaries, p and Holm p.

    Each canary's score is its mean over the seeds; n canaries per cell. Holm runs over every row.
    """
    per_canary = (runs[runs["level"].isin(levels)]
                  .groupby(["size", "params", "level", "k", "canary", "condition"])["token_match"].mean()
                  .unstack("condition"))
    rows = []
    for name, (a, b) in comparisons.items():
        for (size, params, level, k), group in per_canary.groupby(level=["size", "params", "level", "k"], sort=True):
            pair = group[[a, b]].dropna()
            rows.append({"comparison": name, "a": a, "b": b, "size": size, "params": params, "level": level, "k": k,
                         "n": len(pair), "score_a": pair[a].mean(), "score_b": pair[b].mean(),
                         "diff": (pair[a] - pair[b]).mean(),
                         "p": paired_permutation_test(pair[a], pair[b], n_resamples=n_resamples, seed=seed)[1]})
    out = pd.DataFrame(rows)
    out["p_holm"] = holm(out["p"].to_numpy())
    return out


@dataclass
class Context:
    """What `context_runs` measured."""

    sizes: list[str]
    runs: pd.DataFrame  # one row per size x seed x canary x condition x k
    scores: pd.DataFrame  # `seed_scores`
    rates: pd.DataFrame  # `across_seeds`
    tests: pd.DataFrame  # `context_tests`


def context_runs(profile: str, *, ks: Sequence[int], suffix_start: int, m: int, start_m: int, levels: Sequence[int],
                 test_levels: Sequence[int], n_resamples: int, sizes: Sequence[str] | None = None,
                 batch_size: int = 64, progress: bool = False) -> Context:
    """Greedy extraction of the four prompt conditions at every k by every (size, seed) at the final checkpoint."""
    from ..core.models import load_model
    from ..organisms import zoo

    zoo.build_zoo(profile, progress=progress)
    sizes = list(sizes or zoo.get_profile(profile).sizes)
    eos_id = load_model(zoo.zoo_specs(profile)[0], device="cpu").tokenizer.eos_token_id  # every training copy's lead
    samples = context_samples(zoo.zoo_canaries(profile), ks=ks, eos_id=eos_id, suffix_start=suffix_start, m=m,
                              start_m=start_m, levels=levels)
    frames = [zoo.zoo_extraction(profile, steps=["final"], sizes=sizes, batch_size=batch_size, progress=progress,
                                 samples=[s for s in samples if len(s.suffix_ids) == length])
              for length in sorted({len(s.suffix_ids) for s in samples})]  # one suffix length per extraction
    runs = pd.concat(frames, ignore_index=True).drop(columns=["k"], errors="ignore").rename(columns={"meta_condition": "condition", "meta_k": "k",
                                                               "meta_canary": "canary"})
    scores = seed_scores(runs)
    return Context(sizes, runs, scores, across_seeds(scores),
                   context_tests(runs, levels=test_levels, n_resamples=n_resamples))


def context_numbers(ctx: Context, *, ks: Sequence[int], suffix_start: int, m: int, start_m: int) -> dict[str, object]:
    """The `numbers_fig_context.tex` macros: settings, every size x level x condition score at the smallest and
    largest k, and the significant tests (Holm) per comparison and direction."""
    rates, tests = ctx.rates, ctx.tests
    numbers: dict[str, object] = {"CtxM": m, "CtxStartM": start_m, "CtxSuffixStart": suffix_start,
                                  "CtxKMin": min(ks), "CtxKMax": max(ks), "CtxKs": ", ".join(map(str, ks)),
                                  "CtxNSeeds": int(ctx.scores["seed"].nunique()), "CtxNSizes": len(ctx.sizes),
                                  "CtxNTests": len(tests)}
    for r in rates[rates["k"].isin([min(ks), max(ks)]) & (rates["level"] > 0)].itertuples():
        key = ("Ctx" + macro_key(r.size) + "L" + macro_key(str(r.level)) + CONDITION_KEYS[r.condition]
               + ("KMin" if r.k == min(ks) else "KMax"))
        numbers[key] = format_number(r.biderman)
        numbers[key + "Exact"] = format_number(r.exact)
    for level, group in rates[rates["level"] > 0].groupby("level"):
        numbers["CtxN" + "L" + macro_key(str(level))] = int(group["n"].iloc[0])
    for name, group in tests.groupby("comparison"):
        key = "Ctx" + name.capitalize()
        significant = group[group["p_holm"] < 0.05]
        numbers[key + "Tests"] = len(group)
        numbers[key + "Up"] = int((significant["diff"] > 0).sum())
        numbers[key + "Down"] = int((significant["diff"] < 0).sum())
        numbers[key + "MaxDiff"] = format_number(group["diff"].max())
        numbers[key + "MinDiff"] = format_number(group["diff"].min())
        for k in ks:
            numbers[key + "UpK" + macro_key(str(k))] = int(((significant["k"] == k) & (significant["diff"] > 0)).sum())
        numbers[key + "CellsPerK"] = int((group["k"] == min(ks)).sum())
    controls = rates[rates["level"] == 0]
    numbers["CtxControlMaxBiderman"] = format_number(controls["biderman"].max())
    numbers["CtxControlMaxExact"] = format_number(controls["exact"].max())
    return numbers
