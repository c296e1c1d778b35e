"""Experiment drivers of the curvature-editing figure (notebook `fig_editing`): sweeps, curves, budget, numbers.

    runs = editing_sweeps(specs, records, k=32, m=32, keep_masses=[0.99, 0.9], methods=["kfac", "magnitude"])
    res = editing_summary(runs, threshold=0.9, methods=methods, ppl_budget=0.5)   # all of the following:
    curves, recited = memorization_curves(runs, threshold=0.9)
    per_level = level_scores(runs)
    budget, compare = equal_perplexity(curves, runs.specs, methods, ppl_budget=0.5)
    panels = figure_panels(runs, res, methods, ppl_budget=0.5, ppl_cap=10.0)        # what the figure draws
    numbers = editing_numbers(runs, res, keys=keys, methods=methods, settings=settings)

Per model: K-FAC factors of the MLPs of the last blocks on generic text (`memkit.mechanisms.curvature`),
then perplexity on held-out text and the clean runs of the evaluation samples, unedited and for
every method x keep_mass edit. A model is loaded, swept and released before the next one.
"""

from __future__ import annotations

import gc
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .report import format_number, macro_key


@dataclass
class EditingRuns:
    """What `editing_sweeps` measured: one row per model x edit in `edits`, per model x edit x sample in `runs`."""

    specs: list[str]
    edits: pd.DataFrame  # spec, method, keep_mass, ppl, removed (share of components removed)
    runs: pd.DataFrame  # id, token_match, exact_match, spec, method, keep_mass, level (-1: pretrained attractor)
    meta: dict[str, dict]  # spec -> layers, n_layers, n_tokens (K-FAC), n_samples, grid (keep masses)


def edit_layers(n_layers: int, frac: float) -> list[int]:
    """The last round(frac * n_layers) blocks (at least one), whose MLPs are edited."""
    return list(range(n_layers - max(1, int(round(frac * n_layers))), n_layers))


def per_model(value, spec: str, *, default=None, zoo_key: str | None = None):
    """`value` itself, or its entry for `spec` when it is a dict (organisms look up `zoo_key` when given)."""
    if not isinstance(value, dict):
        return value
    return value.get(zoo_key if zoo_key is not None and spec.startswith("zoo:") else spec, default)


def eval_samples(lm, records: Sequence[dict], *, k: int, m: int, threshold: float,
                 max_memorized: int | None) -> tuple[list, dict[str, int]]:
    """(samples, id -> duplication level): every canary of an organism's `all` window, or the recited attractors.

    A pretrained model's attractors get level -1.
    """
    from .sets import is_organism, pretrained_sets

    if is_organism(lm):
        from ..organisms.zoo import zoo_samples

        samples = [s for s in zoo_samples(lm.meta["zoo_profile"], k=k, m=m) if s.meta["window"] == "all"]
        return samples, {s.id: int(s.meta["level"]) for s in samples}
    samples, _, _ = pretrained_sets(lm, records, k=k, m=m, threshold=threshold, max_memorized=max_memorized,
                                    max_controls=0)
    return samples, {s.id: -1 for s in samples}


def _evaluate(lm, samples: Sequence, heldout_texts: Sequence[str], info: pd.DataFrame | None, *, seq_len: int,
              ppl_windows: int, batch_size: int) -> tuple[dict, pd.DataFrame]:
    """Held-out perplexity and share of components removed, and the clean runs of `samples`, as the model is now."""
    from ..core.extract import extract
    from ..mechanisms.curvature import perplexity

    ppl = perplexity(lm, heldout_texts, seq_len=seq_len, max_windows=ppl_windows, batch_size=batch_size)
    frame = extract(lm, samples, batch_size=batch_size, progress=False)
    removed = float(info["n_removed"].sum() / info["n_components"].sum()) if info is not None else 0.0
    return {"ppl": ppl, "removed": removed}, frame[["id", "token_match", "exact_match"]]


def editing_sweeps(specs: Sequence[str], records: Sequence[dict], *, k: int, m: int, threshold: float = 0.9,
                   max_memorized: int | None = None, layer_frac: float | Mapping[str, float] = 0.5,
                   keep_masses: Sequence[float] | Mapping[str, Sequence[float]],
                   methods: Sequence[str] = ("kfac", "magnitude", "random"), labels_kind: str = "true",
                   seq_len: int = 128, fit_windows: int = 32, ppl_windows: int = 16, seed: int = 0,
                   batch_size: int = 16, progress: bool = False) -> EditingRuns:
    """Perplexity and memorization of every model unedited and after each method x keep_mass edit.

    `layer_frac` (a number or {spec: number}, default 0.5) picks the edited blocks; `keep_masses` is
    a list or {spec or "zoo": list}. K-FAC factors come from `cached_kfac` with gradient labels
    `labels_kind` on `fit_windows` windows of `seq_len` tokens; perplexity on `ppl_windows` windows.
    """
    from ..core.models import load_model
    from ..mechanisms.curvature import cached_kfac, edited
    from .sets import generic_texts_for

    runs, edits, meta = [], [], {}
    for spec in specs:
        lm = load_model(spec)
        layers = edit_layers(lm.n_layers, per_model(layer_frac, spec, default=0.5))
        fit_texts, heldout_texts = generic_texts_for(lm)
        samples, level_of = eval_samples(lm, records, k=k, m=m, threshold=threshold, max_memorized=max_memorized)
        factors = cached_kfac(lm, fit_texts, layers=layers, seq_len=seq_len, max_windows=fit_windows,
                              labels=labels_kind, seed=seed, progress=progress)
        meta[spec] = {"layers": layers, "n_layers": lm.n_layers, "n_tokens": factors.n_tokens,
                      "n_samples": len(samples)}

        grid = per_model(keep_masses, spec, zoo_key="zoo")
        meta[spec]["grid"] = list(grid)
        for method, keep in [("none", 1.0)] + [(method, keep) for keep in grid for method in methods]:
            edit = nullcontext() if method == "none" else edited(lm.model, factors, keep, method, seed=seed)
            with edit as info:
                scores, frame = _evaluate(lm, samples, heldout_texts, info, seq_len=seq_len, ppl_windows=ppl_windows,
                                          batch_size=batch_size)
            edits.append({"spec": spec, "method": method, "keep_mass": keep, **scores})
            runs.append(frame.assign(spec=spec, method=method, keep_mass=keep, level=frame["id"].map(level_of)))
        del lm, factors
        gc.collect()
    return EditingRuns(list(specs), pd.DataFrame(edits), pd.concat(runs, ignore_index=True), meta)


def memorization_curves(runs: EditingRuns, *, threshold: float) -> tuple[pd.DataFrame, set[tuple[str, str]]]:
    """Per model x edit: perplexity, its ratio to the unedited model, and the memorization of the recited samples.

    Recited: (spec, id) pairs whose unedited Biderman score is at least `threshold`; `biderman`
    and `exact` are their mean Biderman score and exact-match rate under each edit (NaN for a model
    that recites nothing: it keeps its perplexity rows, and `n_recited` says 0).
    """
    frame = runs.runs
    clean = frame[frame["method"] == "none"]
    hits = clean["token_match"] >= threshold
    recited = set(zip(clean.loc[hits, "spec"], clean.loc[hits, "id"]))
    memorized = frame[[(s, i) in recited for s, i in zip(frame["spec"], frame["id"])]]
    mem = (memorized.groupby(["spec", "method", "keep_mass"], sort=False)
           .agg(biderman=("token_match", "mean"), exact=("exact_match", "mean")).reset_index())
    curves = runs.edits.merge(mem, on=["spec", "method", "keep_mass"], how="left")
    curves["n_recited"] = curves["spec"].map(pd.Series([s for s, _ in recited]).value_counts()).fillna(0).astype(int)
    base = curves[curves["method"] == "none"].set_index("spec")
    curves["ppl_ratio"] = curves["ppl"] / curves["spec"].map(base["ppl"])
    return curves, recited


def level_scores(runs: EditingRuns) -> pd.DataFrame:
    """Organisms: mean Biderman score per model x method x keep_mass (rows) and duplication level (columns)."""
    frame = runs.runs
    return (frame[frame["level"] >= 0].groupby(["spec", "method", "keep_mass", "level"], sort=False)["token_match"]
            .mean().unstack("level"))


def interpolate(curve: pd.DataFrame, ppl: float) -> float:
    """Memorization of a method's curve at perplexity `ppl` (linear in log ppl; NaN outside its range)."""
    pts = curve.sort_values("ppl")
    x, y = np.log(pts["ppl"].to_numpy()), pts["biderman"].to_numpy()
    if len(x) == 0 or np.log(ppl) < x.min() or np.log(ppl) > x.max():
        return float("nan")
    return float(np.interp(np.log(ppl), x, y))


def equal_perplexity(curves: pd.DataFrame, specs: Sequence[str], methods: Sequence[str], *,
                     ppl_budget: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(budget, compare): each method's least memorization within the perplexity budget, and K-FAC vs baselines.

    `budget`: per model x method, the edits with ppl_ratio <= 1 + `ppl_budget` and the best of them
    (the unedited model when none is within). `compare`: per K-FAC edit, each baseline's
    memorization interpolated at the same perplexity (its curve includes the unedited point).
    """
    compare_rows, budget_rows = [], []
    for spec in specs:
        part = curves[curves["spec"] == spec]
        unedited_rows = part[part["method"] == "none"]
        unedited = unedited_rows.iloc[0]
        for method in methods:
            within = part[(part["method"] == method) & (part["ppl_ratio"] <= 1 + ppl_budget)]
            best = within.loc[within["biderman"].idxmin()] if within["biderman"].notna().any() else None
            budget_rows.append({"spec": spec, "method": method, "n_within": len(within),
                                "best_biderman": best["biderman"] if best is not None else unedited["biderman"],
                                "best_keep": best["keep_mass"] if best is not None else 1.0,
                                "best_ppl_ratio": best["ppl_ratio"] if best is not None else 1.0})
        for _, point in part[part["method"] == "kfac"].iterrows():
            row = {"spec": spec, "keep_mass": point["keep_mass"], "ppl_ratio": point["ppl_ratio"],
                   "kfac": point["biderman"]}
            for baseline in [mth for mth in methods if mth != "kfac"]:
                row[baseline] = interpolate(pd.concat([part[part["method"] == baseline], unedited_rows]), point["ppl"])
            compare_rows.append(row)
    return pd.DataFrame(budget_rows), pd.DataFrame(compare_rows)


@dataclass
class EditingSummary:
    """What `editing_summary` derived from the sweeps: memorization curves, per-level scores, equal perplexity."""

    curves: pd.DataFrame  # memorization_curves: per model x edit
    recited: set[tuple[str, str]]  # (spec, id) of the samples the unedited model recites
    per_level: pd.DataFrame  # level_scores (organisms)
    budget: pd.DataFrame  # equal_perplexity: each method's best edit within the budget
    compare: pd.DataFrame  # equal_perplexity: baselines interpolated at each K-FAC point


def editing_summary(runs: EditingRuns, *, threshold: float, methods: Sequence[str],
                    ppl_budget: float) -> EditingSummary:
    """Curves, per-level scores and the equal-perplexity comparison of a sweep, in one call (the figure's data)."""
    curves, recited = memorization_curves(runs, threshold=threshold)
    budget, compare = equal_perplexity(curves, runs.specs, methods, ppl_budget=ppl_budget)
    return EditingSummary(curves, recited, level_scores(runs), budget, compare)


def method_curve(curves: pd.DataFrame, spec: str, method: str) -> pd.DataFrame:
    """A method's line in the figure: the unedited point, then its edits from the mildest (largest keep_mass) on."""
    part = curves[curves["spec"] == spec]
    edits = part[part["method"] == method].sort_values("keep_mass", ascending=False)
    return pd.concat([part[part["method"] == "none"], edits])


def ppl_axis_end(curves: pd.DataFrame, spec: str, *, ppl_budget: float, ppl_cap: float) -> float:
    """Right end of a panel's perplexity-ratio axis: past the budget line and the worst edit, at most `ppl_cap`."""
    worst = float(curves.loc[curves["spec"] == spec, "ppl_ratio"].max())
    return min(ppl_cap, max(1.0 + ppl_budget, worst) * 1.05)


@dataclass
class Panel:
    """What one panel of the figure draws for one model (see `figure_panels`)."""

    spec: str
    lines: dict[str, pd.DataFrame]  # method -> method_curve (the unedited point first)
    unedited: float  # the unedited model's memorization (Biderman score of its recited samples)
    right: float  # right end of the perplexity-ratio axis (ppl_axis_end)
    cut: bool  # the axis stops at ppl_cap: edits beyond it leave the plot
    blocks: str  # the edited blocks, "12–17"
    ticks: tuple[float, ...]  # multiples of the powers of ten labelled on the log x axis (finer on a short range)


def figure_panels(runs: EditingRuns, summary: EditingSummary, methods: Sequence[str], *, ppl_budget: float,
                  ppl_cap: float) -> list[Panel]:
    """Per model, the figure's data: each method's memorization-vs-perplexity line, the unedited point, the x range."""
    panels = []
    for spec in runs.specs:
        curves = summary.curves
        unedited = curves[(curves["spec"] == spec) & (curves["method"] == "none")].iloc[0]
        right = ppl_axis_end(curves, spec, ppl_budget=ppl_budget, ppl_cap=ppl_cap)
        layers = runs.meta[spec]["layers"]
        ticks = (1.0, 1.2, 1.5, 2.0, 3.0, 5.0, 7.0) if right < 3 else (1.0, 2.0, 5.0)
        panels.append(Panel(spec, {method: method_curve(curves, spec, method) for method in methods},
                            unedited["biderman"], right, right >= ppl_cap, f"{layers[0]}–{layers[-1]}", ticks))
    return panels


def editing_numbers(runs: EditingRuns, summary: EditingSummary, *, keys: Mapping[str, str], methods: Sequence[str],
                    settings: Mapping[str, object]) -> dict[str, object]:
    """The `numbers_fig_editing.tex` macros: settings, unedited model, best edit per method, K-FAC vs baselines.

    `summary`: `editing_summary` of `runs`; `settings` holds k, m, ppl_budget, labels_kind,
    fit_windows and seq_len.
    """
    curves, recited, per_level = summary.curves, summary.recited, summary.per_level
    budget, compare = summary.budget, summary.compare
    numbers: dict[str, object] = {
        "EditK": settings["k"], "EditM": settings["m"], "EditBudget": f"{100 * settings['ppl_budget']:.0f}",
        "EditLabels": settings["labels_kind"], "EditFitWindows": settings["fit_windows"],
        "EditSeqLen": settings["seq_len"]}
    baselines = [mth for mth in methods if mth != "kfac"]
    wins = []
    for spec in runs.specs:
        key, meta = keys[spec], runs.meta[spec]
        part = curves[curves["spec"] == spec]
        unedited = part[part["method"] == "none"].iloc[0]
        numbers[f"{key}EditBasePpl"] = format_number(unedited["ppl"])
        numbers[f"{key}EditBaseMem"] = format_number(unedited["biderman"])
        numbers[f"{key}EditFirstLayer"] = meta["layers"][0]
        numbers[f"{key}EditLastLayer"] = meta["layers"][-1]
        numbers[f"{key}EditNTokens"] = meta["n_tokens"]
        numbers[f"{key}EditNSamples"] = meta["n_samples"]
        numbers[f"{key}EditNRecited"] = sum(1 for s_, _ in recited if s_ == spec)
        numbers[f"{key}EditKeepMasses"] = ", ".join(f"{x:g}" for x in meta["grid"])
        rows = budget[budget["spec"] == spec].set_index("method")
        for method in methods:
            mkey = macro_key(method)
            numbers[f"{key}Edit{mkey}BestMem"] = format_number(rows.loc[method, "best_biderman"])
            numbers[f"{key}Edit{mkey}BestKeep"] = f"{rows.loc[method, 'best_keep']:g}"
            numbers[f"{key}Edit{mkey}BestPplRatio"] = format_number(rows.loc[method, "best_ppl_ratio"])
        if "kfac" in methods and baselines:
            beat = rows.loc["kfac", "best_biderman"] < min(rows.loc[b, "best_biderman"] for b in baselines)
            recites = numbers[f"{key}EditNRecited"] > 0
            numbers[f"{key}EditKfacBeats"] = ("yes" if beat else "no") if recites else "n/a (nothing recited)"
            wins.append(bool(beat) and recites)
            cmp = compare[compare["spec"] == spec]
            for baseline in baselines:
                valid = cmp.dropna(subset=[baseline])
                numbers[f"{key}EditKfacBelow{macro_key(baseline)}"] = int((valid["kfac"] < valid[baseline]).sum())
                numbers[f"{key}EditCompared{macro_key(baseline)}"] = len(valid)
        if spec.startswith("zoo:"):
            for level, value in per_level.loc[(spec, "none", 1.0)].items():
                numbers[f"{key}EditBaseLevel{macro_key(str(level))}"] = format_number(value)
    numbers["EditNModels"] = len(runs.specs)
    numbers["EditNKfacBeats"] = sum(wins)
    return numbers
