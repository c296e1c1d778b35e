"""Experiment drivers of the curvature-editing figure (notebook `fig_editing`): sweeps, equal perplexity, tests.

    runs = editing_sweeps(specs, records, k=32, m=32, layer_fracs=[0.5, 1.0], keep_masses=[0.99, 0.9],
                          remove_fracs=[0.1, 0.3], fit_tokens=1_000_000)
    res = editing_summary(runs, threshold=0.9, methods=methods, ppl_ratios=[1.1, 1.5], seed=0)
    res.curves      # per model x layer set x edit: perplexity and memorization of the recited samples
    res.matched     # per item: each method's memorization interpolated at the common perplexity ratios
    res.tests       # K-FAC vs each baseline at each ratio, per item group (paired permutation test, Holm)
    numbers = editing_numbers(runs, res, keys=keys, methods=methods, settings=settings)

Per model: K-FAC factors of the MLPs of every edited block (`memkit.mechanisms.curvature.cached_kfac`,
streamed, resumable, `fit_tokens` positions of broad text from `memkit.paper.editing_texts`, labels
sampled from the model), then held-out perplexity and the clean runs of the evaluation samples,
unedited and for every layer set x method x amount. Each method has its own sweep: K-FAC over
`keep_masses` (curvature mass kept, Merullo et al.), the baselines (smallest magnitude / random
components of the same Kronecker eigenbasis) over `remove_fracs` (share of components removed).

Equal perplexity: each method's per-item memorization is interpolated (linear in log perplexity,
the unedited model as its first point) at common perplexity ratios; beyond a method's strongest
edit it is missing. Items: the samples the unedited model recites (Biderman score >= threshold or
exact) and, for organisms, every canary of each duplication level. K-FAC minus baseline is tested
per model x layer set x ratio x group x baseline with a paired permutation test (sign flips of
the item differences) wherever the group has at least `MIN_BOOTSTRAP_N` items; Holm over all tests.
"""

from __future__ import annotations

import gc
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..core.stats import MIN_BOOTSTRAP_N, holm, paired_permutation_test
from .report import format_number, format_small, macro_key

ALPHA = 0.05


@dataclass
class EditingRuns:
    """What `editing_sweeps` measured: one row per model x layer set x edit, and per edit x sample."""

    specs: list[str]
    edits: pd.DataFrame  # spec, layer_frac, method, amount, ppl, removed
    runs: pd.DataFrame  # id, token_match, exact_match, spec, layer_frac, method, amount, level (-1: attractor)
    meta: dict[str, dict]  # spec -> layer_fracs, layers {frac: blocks}, n_layers, n_tokens, n_samples, ...


def edit_layers(n_layers: int, frac: float) -> list[int]:
    """The last round(frac * n_layers) blocks (at least one), whose MLPs are edited."""
    return list(range(n_layers - max(1, int(round(frac * n_layers))), n_layers))


def per_model(value, spec: str, *, default=None, zoo_key: str | None = None):
    """`value` itself, or its entry for `spec` when it is a dict (organisms look up `zoo_key` when given)."""
    if not isinstance(value, dict):
        return value
    return value.get(zoo_key if zoo_key is not None and spec.startswith("zoo:") else spec, default)


def blocks_label(layers: Sequence[int]) -> str:
    """'12–17' (or '2' for one block)."""
    return f"{layers[0]}–{layers[-1]}" if len(layers) > 1 else f"{layers[0]}"


def edit_grid(methods: Sequence[str], keep_masses: Sequence[float],
              remove_fracs: Sequence[float] | Mapping[str, Sequence[float]]) -> list[tuple[str, float]]:
    """(method, amount) of every edit, mildest first per method: K-FAC keep masses, baselines removed shares
    (one list, or {method: list}: magnitude needs larger shares than random to cost as much perplexity)."""
    grid = []
    for method in methods:
        if method == "kfac":
            amounts = sorted(keep_masses, reverse=True)
        else:
            amounts = sorted(remove_fracs[method] if isinstance(remove_fracs, Mapping) else remove_fracs)
        grid += [(method, float(a)) for a in amounts]
    return grid


def eval_samples(lm, records: Sequence[dict], *, k: int, m: int, threshold: float,
                 max_memorized: int | None) -> tuple[list, dict[str, int]]:
    """(samples, id -> duplication level): every canary of an organism's `all` window, or the recited attractors.

    A pretrained model's attractors get level -1.
    """
    from .sets import is_organism, pretrained_sets

    if is_organism(lm):
        from ..organisms.zoo import parse_spec, zoo_samples

        profile = lm.meta.get("zoo_profile") or parse_spec(lm.name).profile
        samples = [s for s in zoo_samples(profile, k=k, m=m) if s.meta["window"] == "all"]
        return samples, {s.id: int(s.meta["level"]) for s in samples}
    samples, _, _ = pretrained_sets(lm, records, k=k, m=m, threshold=threshold, max_memorized=max_memorized,
                                    max_controls=0)
    return samples, {s.id: -1 for s in samples}


def _evaluate(lm, samples: Sequence, heldout_texts: Sequence[str], info: pd.DataFrame | None, *, seq_len: int,
              ppl_windows: int | None, batch_size: int) -> tuple[dict, pd.DataFrame]:
    """Held-out perplexity and share of components removed, and the clean runs of `samples`, as the model is now."""
    from ..core.extract import extract
    from ..mechanisms.curvature import perplexity

    ppl = perplexity(lm, heldout_texts, seq_len=seq_len, max_windows=ppl_windows, batch_size=batch_size)
    frame = extract(lm, samples, batch_size=batch_size, progress=False)
    removed = float(info["n_removed"].sum() / info["n_components"].sum()) if info is not None else 0.0
    return {"ppl": ppl, "removed": removed}, frame[["id", "token_match", "exact_match"]]


def editing_sweeps(specs: Sequence[str], records: Sequence[dict], *, k: int, m: int, threshold: float = 0.9,
                   max_memorized: int | None = None, layer_fracs: Sequence[float] | Mapping = (0.5,),
                   keep_masses: Sequence[float] | Mapping, remove_fracs: Sequence[float] | Mapping,
                   methods: Sequence[str] = ("kfac", "magnitude", "random"), labels_kind: str = "sampled",
                   seq_len: int = 128, fit_tokens: int | Mapping = 1_000_000, fit_batch_size: int | Mapping = 32,
                   ppl_windows: int | Mapping | None = None, seed: int = 0, batch_size: int = 16,
                   progress: bool = False) -> EditingRuns:
    """Perplexity and memorization of every model unedited and after each layer set x method x amount edit.

    Settings are a value or {spec or "zoo": value} (`remove_fracs` also {method: list}, or
    {spec or "zoo": {method: list}}). `layer_fracs`: the edited blocks (last fraction,
    the first entry is the main choice); one K-FAC fit covers all of them. `fit_tokens`: token positions
    of the fit (passes over the fit text as `fit_windows` cuts them); perplexity on the first
    `ppl_windows` held-out windows (None: all).
    """
    from ..core.models import load_model
    from ..mechanisms.curvature import cached_kfac, edited
    from .editing_texts import editing_texts

    runs, edits, meta = [], [], {}
    for spec in specs:
        lm = load_model(spec)
        fracs = list(per_model(layer_fracs, spec, zoo_key="zoo"))
        layer_sets = {frac: edit_layers(lm.n_layers, frac) for frac in fracs}
        fit_texts, heldout_texts = editing_texts(lm)
        samples, level_of = eval_samples(lm, records, k=k, m=m, threshold=threshold, max_memorized=max_memorized)
        factors = cached_kfac(lm, fit_texts, layers=sorted(set().union(*layer_sets.values())), seq_len=seq_len,
                              batch_size=per_model(fit_batch_size, spec, zoo_key="zoo"),
                              n_tokens=per_model(fit_tokens, spec, zoo_key="zoo"),
                              labels=labels_kind, seed=seed, progress=progress)
        by_method = isinstance(remove_fracs, Mapping) and set(remove_fracs) <= set(methods)
        grid = edit_grid(methods, per_model(keep_masses, spec, zoo_key="zoo"),
                         remove_fracs if by_method else per_model(remove_fracs, spec, zoo_key="zoo"))
        windows = per_model(ppl_windows, spec, zoo_key="zoo")
        meta[spec] = {"layer_fracs": fracs, "layers": layer_sets, "n_layers": lm.n_layers,
                      "n_tokens": factors.n_tokens, "n_samples": len(samples), "grid": grid,
                      "n_ppl_tokens": _count_tokens(lm, heldout_texts, seq_len, windows)}

        def measure(frac, method, amount, edit):
            with edit as info:
                scores, frame = _evaluate(lm, samples, heldout_texts, info, seq_len=seq_len, ppl_windows=windows,
                                          batch_size=batch_size)
            return scores, frame

        base_scores, base_frame = measure(None, "none", 0.0, nullcontext())
        for frac, layers in layer_sets.items():
            sub = factors.subset(layers)
            for method, amount in [("none", 0.0)] + grid:
                if method == "none":
                    scores, frame = base_scores, base_frame
                else:
                    keep, remove = (amount, None) if method == "kfac" else (1.0, amount)
                    scores, frame = measure(frac, method, amount,
                                            edited(lm.model, sub, keep, method, seed=seed, remove_frac=remove))
                edits.append({"spec": spec, "layer_frac": frac, "method": method, "amount": amount, **scores})
                runs.append(frame.assign(spec=spec, layer_frac=frac, method=method, amount=amount,
                                         level=frame["id"].map(level_of)))
        del lm, factors
        gc.collect()
    return EditingRuns(list(specs), pd.DataFrame(edits), pd.concat(runs, ignore_index=True), meta)


def _count_tokens(lm, texts: Sequence[str], seq_len: int, max_windows: int | None) -> int:
    """Predicted tokens in the perplexity windows (every window position but the first)."""
    from ..core.text import text_windows

    return sum(len(w) - 1 for w in text_windows(lm.tokenizer, texts, seq_len, max_windows))


KEYS = ["spec", "layer_frac", "method", "amount"]


def recited_ids(runs: EditingRuns, *, threshold: float) -> set[tuple[str, str]]:
    """(spec, id) of the samples the unedited model recites: Biderman score >= threshold, or exact."""
    clean = runs.runs[runs.runs["method"] == "none"].drop_duplicates(["spec", "id"])
    hits = (clean["token_match"] >= threshold) | clean["exact_match"].astype(bool)
    return set(zip(clean.loc[hits, "spec"], clean.loc[hits, "id"]))


def headline_ids(runs: EditingRuns, recited: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """(spec, id) of each model's headline items: an organism's canaries of its highest duplication level
    (recited or not: ground truth), a pretrained model's recited samples."""
    clean = runs.runs[runs.runs["method"] == "none"].drop_duplicates(["spec", "id"])
    top = clean[clean["level"] >= 0].groupby("spec")["level"].max()
    chosen = {(s, i) for s, i in recited if s not in top.index}
    chosen |= {(s, i) for s, i, level in zip(clean["spec"], clean["id"], clean["level"])
               if s in top.index and level == top[s]}
    return chosen


def headline_group(runs: EditingRuns, spec: str) -> str:
    """The group name `item_groups` gives a model's headline items ('L<top level>' or 'recited')."""
    levels = runs.runs.loc[(runs.runs["spec"] == spec) & (runs.runs["level"] >= 0), "level"]
    return f"L{int(levels.max())}" if len(levels) else "recited"


def memorization_curves(runs: EditingRuns, *, threshold: float) -> tuple[pd.DataFrame, set[tuple[str, str]]]:
    """Per model x layer set x edit: perplexity, its ratio to the unedited model, memorization of the headline items.

    `biderman` and `exact`: mean Biderman score and exact-match rate of the `headline_ids` (an
    organism's top-level canaries, a pretrained model's recited samples; NaN when there are none);
    `n_recited`: how many samples the unedited model recites; `n_headline`: how many headline items.
    """
    recited = recited_ids(runs, threshold=threshold)
    headline = headline_ids(runs, recited)
    frame = runs.runs
    memorized = frame[[(s, i) in headline for s, i in zip(frame["spec"], frame["id"])]]
    mem = (memorized.groupby(KEYS, sort=False, dropna=False)
           .agg(biderman=("token_match", "mean"), exact=("exact_match", "mean")).reset_index())
    curves = runs.edits.merge(mem, on=KEYS, how="left")
    curves["n_recited"] = curves["spec"].map(pd.Series([s for s, _ in recited]).value_counts()).fillna(0).astype(int)
    curves["n_headline"] = curves["spec"].map(pd.Series([s for s, _ in headline]).value_counts()).fillna(0).astype(int)
    base = curves[curves["method"] == "none"].drop_duplicates("spec").set_index("spec")
    curves["ppl_ratio"] = curves["ppl"] / curves["spec"].map(base["ppl"])
    return curves, recited


def level_scores(runs: EditingRuns) -> pd.DataFrame:
    """Organisms: mean Biderman score per model x layer set x edit (rows) and duplication level (columns)."""
    frame = runs.runs
    return (frame[frame["level"] >= 0].groupby(KEYS + ["level"], sort=False)["token_match"].mean()
            .unstack("level"))


def interpolate_items(ppl: np.ndarray, values: np.ndarray, target: float) -> np.ndarray:
    """Per item (columns of `values`, rows = edits at perplexities `ppl`): the value at `target`, linear in
    log perplexity between the edits around it (points sorted by perplexity); NaN outside [min, max]."""
    order = np.argsort(ppl, kind="stable")
    x, y = np.log(np.asarray(ppl, dtype=float)[order]), np.asarray(values, dtype=float)[order]
    t = np.log(target)
    if len(x) == 0 or t < x[0] or t > x[-1]:
        return np.full(y.shape[1:], np.nan)
    hi = min(int(np.searchsorted(x, t, side="left")), len(x) - 1)
    if x[hi] == t or hi == 0:
        return y[hi]
    w = (t - x[hi - 1]) / (x[hi] - x[hi - 1])
    return (1 - w) * y[hi - 1] + w * y[hi]


def matched_scores(runs: EditingRuns, ppl_ratios: Sequence[float]) -> pd.DataFrame:
    """Per model x layer set x method x ratio x item: Biderman score and exact match at ratio x unedited ppl."""
    rows = []
    frame = runs.runs.merge(runs.edits[KEYS + ["ppl"]], on=KEYS)
    for (spec, frac), part in frame.groupby(["spec", "layer_frac"], sort=False):
        base = part[part["method"] == "none"]
        base_ppl = float(base["ppl"].iloc[0])
        for method in [m for m in part["method"].unique() if m != "none"]:
            curve = pd.concat([base, part[part["method"] == method]]).astype({"exact_match": float})
            score = curve.pivot_table(index=["method", "amount", "ppl"], columns="id", values="token_match", sort=False)
            exact = curve.pivot_table(index=["method", "amount", "ppl"], columns="id", values="exact_match",
                                      sort=False)
            ppl = score.index.get_level_values("ppl").to_numpy()
            for ratio in ppl_ratios:
                s = interpolate_items(ppl, score.to_numpy(), ratio * base_ppl)
                e = interpolate_items(ppl, exact[score.columns].to_numpy(dtype=float), ratio * base_ppl)
                rows += [{"spec": spec, "layer_frac": frac, "method": method, "ratio": float(ratio), "id": i,
                          "token_match": a, "exact_match": b} for i, a, b in zip(score.columns, s, e)]
    return pd.DataFrame(rows)


def item_groups(runs: EditingRuns, recited: set[tuple[str, str]]) -> dict[str, dict[str, list[str]]]:
    """Per model: 'recited' (the unedited model's recited samples) and, for organisms, 'L<level>' for every
    duplication level (all its canaries, recited or not)."""
    clean = runs.runs[runs.runs["method"] == "none"].drop_duplicates(["spec", "id"])
    groups = {}
    for spec, part in clean.groupby("spec", sort=False):
        found = {"recited": [i for i in part["id"] if (spec, i) in recited]}
        for level in sorted(part.loc[part["level"] >= 0, "level"].unique()):
            found[f"L{int(level)}"] = list(part.loc[part["level"] == level, "id"])
        groups[spec] = found
    return groups


def equal_ppl_tests(matched: pd.DataFrame, groups: Mapping[str, Mapping[str, list[str]]], methods: Sequence[str],
                    *, seed: int = 0, min_n: int = MIN_BOOTSTRAP_N) -> pd.DataFrame:
    """K-FAC vs each baseline at each matched ratio, per model x layer set x item group.

    n: items with both values (the ratio within both curves); p only when n >= `min_n`; `p_holm`:
    Holm over every p of the frame.
    """
    rows = []
    baselines = [m for m in methods if m != "kfac"]
    if matched.empty or "kfac" not in methods:
        return pd.DataFrame(rows)
    for (spec, frac, ratio), part in matched.groupby(["spec", "layer_frac", "ratio"], sort=False):
        table = part.pivot_table(index="id", columns="method", values="token_match", dropna=False)
        exact = part.pivot_table(index="id", columns="method", values="exact_match", dropna=False)
        for group, ids in groups.get(spec, {}).items():
            for baseline in baselines:
                both = table.reindex(ids)[["kfac", baseline]].dropna() if baseline in table else table.iloc[:0]
                n = len(both)
                diff, p = (paired_permutation_test(both["kfac"], both[baseline], seed=seed) if n >= min_n
                           else (float((both["kfac"] - both[baseline]).mean()) if n else float("nan"), float("nan")))
                ex = exact.reindex(both.index)
                rows.append({"spec": spec, "layer_frac": frac, "ratio": ratio, "group": group, "baseline": baseline,
                             "n_group": len(ids), "n": n, "kfac": both["kfac"].mean() if n else float("nan"),
                             "base": both[baseline].mean() if n else float("nan"), "diff": diff, "p": p,
                             "kfac_exact": ex["kfac"].mean() if n else float("nan"),
                             "base_exact": ex[baseline].mean() if n else float("nan")})
    tests = pd.DataFrame(rows)
    tests["p_holm"] = holm(tests["p"].to_numpy())
    return tests


@dataclass
class EditingSummary:
    """What `editing_summary` derived from the sweeps (the figure's and the macros' data)."""

    curves: pd.DataFrame  # memorization_curves: per model x layer set x edit
    recited: set[tuple[str, str]]  # (spec, id) of the samples the unedited model recites
    per_level: pd.DataFrame  # level_scores (organisms)
    matched: pd.DataFrame  # matched_scores: per item at the common perplexity ratios
    tests: pd.DataFrame  # equal_ppl_tests


def editing_summary(runs: EditingRuns, *, threshold: float, methods: Sequence[str], ppl_ratios: Sequence[float],
                    seed: int = 0) -> EditingSummary:
    """Curves, per-level scores, equal-perplexity scores and tests of a sweep, in one call."""
    curves, recited = memorization_curves(runs, threshold=threshold)
    matched = matched_scores(runs, ppl_ratios)
    tests = equal_ppl_tests(matched, item_groups(runs, recited), methods, seed=seed)
    return EditingSummary(curves, recited, level_scores(runs), matched, tests)


def layer_table(runs: EditingRuns, summary: EditingSummary, *, labels: Mapping[str, str], ratio: float
                ) -> pd.DataFrame:
    """Per model x layer set: memorization of the headline group per method at `ratio` x the unedited
    perplexity, and the Holm-adjusted p of K-FAC against each baseline (the paper's small table)."""
    tests = summary.tests
    rows = []
    for spec in runs.specs:
        group = headline_group(runs, spec)
        for frac in runs.meta[spec]["layer_fracs"]:
            part = tests[(tests["spec"] == spec) & (tests["layer_frac"] == frac) & (tests["group"] == group)
                         & np.isclose(tests["ratio"], ratio)] if not tests.empty else tests
            row = {"model": labels.get(spec, spec), "blocks": blocks_label(runs.meta[spec]["layers"][frac]),
                   "items": "recited" if group == "recited" else f"level {group[1:]}"}
            for _, t in part.iterrows():
                row["n"] = int(t["n"])
                row["kfac"] = format_number(t["kfac"])
                row[t["baseline"]] = format_number(t["base"])
                row[f"p vs {t['baseline']}"] = format_small(t["p_holm"])
            rows.append(row)
    return pd.DataFrame(rows)


def method_curve(curves: pd.DataFrame, spec: str, method: str, layer_frac: float) -> pd.DataFrame:
    """A method's line in the figure: the unedited point, then its edits from the mildest on."""
    part = curves[(curves["spec"] == spec) & (curves["layer_frac"] == layer_frac)]
    edits = part[part["method"] == method]
    edits = edits.sort_values("amount", ascending=method != "kfac")
    return pd.concat([part[part["method"] == "none"], edits])


@dataclass
class Panel:
    """What one panel of the figure draws for one model (its main layer set)."""

    spec: str
    lines: dict[str, pd.DataFrame]  # method -> method_curve (the unedited point first)
    unedited: float  # the unedited model's memorization (Biderman score of its headline items)
    right: float  # right end of the perplexity-ratio axis
    cut: bool  # the axis stops at ppl_cap: edits beyond it leave the plot
    blocks: str  # the edited blocks, "12–17"


def figure_panels(runs: EditingRuns, summary: EditingSummary, methods: Sequence[str], *, ppl_ratios: Sequence[float],
                  ppl_cap: float) -> list[Panel]:
    """Per model, the figure's data: each method's memorization-vs-perplexity line in the main layer set
    (memorization of the headline items, `memorization_curves`)."""
    panels = []
    curves = summary.curves
    for spec in runs.specs:
        frac = runs.meta[spec]["layer_fracs"][0]
        part = curves[(curves["spec"] == spec) & (curves["layer_frac"] == frac)]
        worst = float(part["ppl_ratio"].max())
        right = min(ppl_cap, max(max(ppl_ratios), worst) * 1.05)
        panels.append(Panel(spec, {m: method_curve(curves, spec, m, frac) for m in methods},
                            float(part[part["method"] == "none"]["biderman"].iloc[0]), right, right >= ppl_cap,
                            blocks_label(runs.meta[spec]["layers"][frac])))
    return panels


def _fmt_p(p: float) -> str:
    return "--" if p is None or not np.isfinite(p) else format_small(p)


def editing_numbers(runs: EditingRuns, summary: EditingSummary, *, keys: Mapping[str, str], methods: Sequence[str],
                    settings: Mapping[str, object]) -> dict[str, object]:
    """The `numbers_fig_editing.tex` macros: settings, unedited models, K-FAC vs baselines at equal perplexity.

    `settings`: k, m, labels_kind, seq_len, ppl_ratios, ref_ratio. Per model (main layer set, headline
    group, ratio `ref_ratio`): each method's memorization, K-FAC's Holm p against each baseline;
    counts of significant tests over every model, layer set, ratio and group.
    """
    curves, tests = summary.curves, summary.tests
    ref = float(settings["ref_ratio"])
    numbers: dict[str, object] = {
        "EditK": settings["k"], "EditM": settings["m"], "EditLabels": settings["labels_kind"],
        "EditSeqLen": settings["seq_len"], "EditRefRatio": f"{ref:g}", "EditMinN": MIN_BOOTSTRAP_N,
        "EditPplRatios": ", ".join(f"{r:g}" for r in settings["ppl_ratios"]), "EditNModels": len(runs.specs)}
    tested = tests.dropna(subset=["p_holm"]) if not tests.empty else tests
    significant = tested[tested["p_holm"] < ALPHA] if not tested.empty else tested
    numbers["EditNTests"] = len(tested)
    numbers["EditNKfacLower"] = int((significant["diff"] < 0).sum()) if len(significant) else 0
    numbers["EditNKfacHigher"] = int((significant["diff"] > 0).sum()) if len(significant) else 0
    for spec in runs.specs:
        key, meta = keys[spec], runs.meta[spec]
        frac = meta["layer_fracs"][0]
        main = meta["layers"][frac]
        part = curves[(curves["spec"] == spec) & (curves["layer_frac"] == frac)]
        unedited = part[part["method"] == "none"].iloc[0]
        numbers.update({f"{key}EditBasePpl": format_number(unedited["ppl"]),
                        f"{key}EditBaseMem": format_number(unedited["biderman"]),
                        f"{key}EditFirstLayer": main[0], f"{key}EditLastLayer": main[-1],
                        f"{key}EditNLayers": meta["n_layers"], f"{key}EditNTokens": f"{meta['n_tokens']:,}",
                        f"{key}EditNPplTokens": f"{meta['n_ppl_tokens']:,}", f"{key}EditNSamples": meta["n_samples"],
                        f"{key}EditNRecited": int(unedited["n_recited"]),
                        f"{key}EditNHeadline": int(unedited["n_headline"])})
        for method in methods:
            strongest = part.loc[part["method"] == method, "ppl_ratio"].max()
            numbers[f"{key}Edit{macro_key(method)}MaxRatio"] = format_number(strongest)
        group = headline_group(runs, spec)
        here = tests[(tests["spec"] == spec) & (tests["layer_frac"] == frac) & (tests["group"] == group)
                     & np.isclose(tests["ratio"], ref)] if not tests.empty else tests
        for _, t in here.iterrows():
            bkey = macro_key(t["baseline"])
            numbers[f"{key}EditRefKfacMem"] = format_number(t["kfac"])
            numbers[f"{key}EditRefN"] = int(t["n"])
            numbers[f"{key}EditRef{bkey}Mem"] = format_number(t["base"])
            numbers[f"{key}EditRef{bkey}P"] = _fmt_p(t["p_holm"])
        if spec.startswith("zoo:"):
            levels = summary.per_level.loc[(spec, frac, "none", 0.0)]
            for level, value in levels.items():
                lkey = macro_key(str(int(level)))
                numbers[f"{key}EditBaseLevel{lkey}"] = format_number(value)
                numbers[f"{key}EditNLevel{lkey}"] = int((runs.runs[(runs.runs["spec"] == spec)
                                                                    & (runs.runs["method"] == "none")
                                                                    & (runs.runs["layer_frac"] == frac)]["level"]
                                                         == level).sum())
        sig = significant[significant["spec"] == spec] if len(significant) else significant
        numbers[f"{key}EditNTests"] = int((tested["spec"] == spec).sum()) if len(tested) else 0
        numbers[f"{key}EditNKfacLower"] = int((sig["diff"] < 0).sum()) if len(sig) else 0
        numbers[f"{key}EditNKfacHigher"] = int((sig["diff"] > 0).sum()) if len(sig) else 0
    return numbers
