"""Experiment drivers of the dynamics section (notebook `fig_phase`): sweeps, fits, table, numbers.

    phase = phase_sweeps(models, records, k=32, m=8, alphas={"token": [0.5], "logit_tail": [2, 3, 4]}, seeds=range(5))
    fits = phase_fits(phase.runs, n_boot=50)                     # alpha* grid interval, per-sample range, CI >= 20
    table, caption = ranking_table(phase, fits, rank_robustness(fits), group_tests(phase.runs), labels=names, ...)
    numbers = phase_numbers(phase, fits, ranking, wins, keys=keys, labels=names, settings=..., tests=tests)

A model is loaded, swept over every action kind and released before the next one.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..core.stats import MIN_BOOTSTRAP_N
from ..dynamics.action_kinds import FAMILIES, KINDS
from .report import format_alpha, format_bracket, format_ci, format_number, format_small, latex_escape, macro_key

FAMILY_ORDER = ("token", "embedding", "logit")


#: Control sets: the shuffled-word records, or natural texts matched on confidence (`paper.controls`).
CONTROL_SETS = ("shuffled", "matched")


def experiment_samples(lm, records: Sequence[dict], *, controls: str, k: int, m: int, clean_m: int | None,
                       threshold: float, max_memorized: int | None, max_controls: int | None, batch_size: int = 16
                       ) -> tuple[list, pd.DataFrame, pd.Series, pd.DataFrame | None]:
    """(samples, clean runs, groups, confidence or None) of one model with the chosen control set."""
    from ..dynamics.sweeps import dynamics_samples
    from .controls import matched_sets

    if controls not in CONTROL_SETS:
        raise ValueError(f"controls must be one of {CONTROL_SETS}, not {controls!r}")
    if controls == "matched":
        return matched_sets(lm, records, k=k, m=m, clean_m=clean_m, threshold=threshold,
                            max_memorized=max_memorized, batch_size=batch_size)
    samples, clean, groups = dynamics_samples(lm, records, k=k, m=m, clean_m=clean_m, threshold=threshold,
                                              max_memorized=max_memorized, max_controls=max_controls,
                                              batch_size=batch_size)
    return samples, clean, groups, None


def model_samples(spec: str, records: Sequence[dict], confidence: list, **selection):
    """Load `spec` and select its samples (`experiment_samples(**selection)`): (model, samples, clean runs,
    {id: group}); the confidence match of matched controls is appended to `confidence` with a `spec` column."""
    from ..core.models import load_model

    lm = load_model(spec)
    samples, clean, groups, matched = experiment_samples(lm, records, **selection)
    if matched is not None:
        confidence.append(matched.assign(spec=spec))
    return lm, samples, clean, dict(zip(clean["id"], clean["id"].map(groups)))


def sweep_kinds(kinds: Sequence[str] | None = None) -> list[str]:
    """The action kinds a phase sweep runs: `kinds` (None: every kind) without the `shock` family."""
    return [kind for kind in (kinds or KINDS) if FAMILIES[kind] != "shock"]


def kind_grid(spec: str, kind: str, alphas: Mapping[str, Sequence[float]],
              model_alphas: Mapping[str, Mapping[str, Sequence[float]]] | None = None) -> list[float]:
    """The alpha grid of one model x kind: the first of model_alphas[spec][kind], model_alphas[spec][family],
    alphas[kind], alphas[family] that is given (a kind's own grid can sit inside its transition)."""
    family = FAMILIES[kind]
    for table, key in (((model_alphas or {}).get(spec, {}), kind), ((model_alphas or {}).get(spec, {}), family),
                       (alphas, kind), (alphas, family)):
        if key in table:
            return sorted({0.0, *(float(a) for a in table[key])})
    raise KeyError(f"no alpha grid for {kind} ({family})")


@dataclass
class PhaseRuns:
    """What `phase_sweeps` measured: one row per (model, sample, kind, alpha, seed) in `runs`."""

    models: list[str]
    runs: pd.DataFrame
    selection: pd.DataFrame  # per model x sample: group, clean scores, distinct share, layer, typical alpha
    kinds: list[str]
    grids: dict[tuple[str, str], list[float]]  # (spec, kind) -> alpha grid (with 0)
    notes: dict[tuple[str, str], str] = field(default_factory=dict)  # (spec, kind) -> why it was skipped
    confidence: pd.DataFrame | None = None  # controls="matched": per model x candidate, see paper.controls
    seeds: pd.DataFrame | None = None  # `dynamics.sweeps.seed_plan`: per kind, seeded or not and seeds run

    @property
    def families(self) -> list[str]:
        return [f for f in FAMILY_ORDER if any(FAMILIES[kind] == f for kind in self.kinds)]

    def family_grid(self, spec: str, family: str) -> list[float]:
        """Every alpha any kind of `family` ran at for this model (the figure's axis)."""
        return sorted({a for (s, kind), grid in self.grids.items() if s == spec and FAMILIES[kind] == family
                       for a in grid})

    def grid_text(self, spec: str, kind: str) -> str:
        """The nonzero alphas of a kind's grid, formatted for the paper."""
        return ", ".join(format_alpha(a) for a in self.grids[(spec, kind)] if a > 0)

    def seed_note(self) -> str:
        """One line: which kinds ran with every seed and which, being deterministic, with one."""
        if self.seeds is None or self.seeds.empty:
            return ""
        seeded, fixed = self.seeds[self.seeds["seeded"]], self.seeds[~self.seeds["seeded"]]
        n = int(seeded["n_seeds"].max()) if len(seeded) else 1
        return (f"{n} action seeds per alpha: {', '.join(seeded['kind']) or 'none'}; deterministic (the seed changes "
                f"nothing, so one run): {', '.join(fixed['kind']) or 'none'}")


def phase_sweeps(specs: Sequence[str], records: Sequence[dict], *, k: int, m: int, clean_m: int | None = None,
                 threshold: float = 0.9, max_memorized: int | None = None, max_controls: int | None = None,
                 kinds: Sequence[str] | None = None, alphas: Mapping[str, Sequence[float]],
                 model_alphas: Mapping[str, Mapping[str, Sequence[float]]] | None = None,
                 embed_layer_frac: float = 0.25, seeds: Sequence[int] = (0,), batch_size: int = 64,
                 controls: str = "shuffled", cache: bool = True) -> PhaseRuns:
    """Sweep every action kind over its alpha grid (`kind_grid`), per model, on memorized samples and controls.

    The samples are chosen by `dynamics.sweeps.dynamics_samples` (`controls="matched"`: with
    confidence-matched natural-text controls, `paper.controls.matched_sets`, one per memorized
    sample; `max_controls` then does not apply); embedding actions act after
    block round(embed_layer_frac * (n_layers - 1)); `embed_direction` pushes from the memorized
    prefixes towards the controls' mean state (skipped, with a note, without both groups).
    Seeded kinds run every seed, deterministic ones the first (`dynamics.sweeps.seeds_for`);
    `cache`: sweeps reuse their cached settings (`dynamics.sweeps.alpha_sweep`).
    """
    from ..dynamics.actions import difference_of_means
    from ..dynamics.sweeps import alpha_sweep, distinct_share, seed_plan, typical_coordinate_alpha

    kinds = sweep_kinds(kinds)
    grids = {(spec, kind): kind_grid(spec, kind, alphas, model_alphas) for spec in specs for kind in kinds}
    runs, selection, notes, confidence = [], [], {}, []
    for spec in specs:
        lm, samples, clean, group_of = model_samples(
            spec, records, confidence, controls=controls, k=k, m=m, clean_m=clean_m, threshold=threshold,
            max_memorized=max_memorized, max_controls=max_controls)
        layer = int(round(embed_layer_frac * (lm.n_layers - 1)))
        typical = typical_coordinate_alpha(lm, samples, layer)  # embedding alpha that matches a typical coordinate
        selection.append(clean.assign(spec=spec, group=clean["id"].map(group_of), layer=layer, typical_alpha=typical,
                                      distinct=clean["generated_ids"].map(distinct_share))[
            ["spec", "id", "group", "token_match", "exact_match", "distinct", "layer", "typical_alpha"]])
        mem_ids = [i for i in clean["id"] if group_of[i] == "memorized"]
        ctrl_ids = [i for i in clean["id"] if group_of[i] == "control"]
        direction = None
        if mem_ids and ctrl_ids:
            prefix = {s.id: lm.tokenizer.decode(list(s.prefix_ids)) for s in samples}
            direction = difference_of_means(lm, layer, [prefix[i] for i in ctrl_ids], [prefix[i] for i in mem_ids])
        for kind in kinds:
            if kind == "embed_direction" and direction is None:
                notes[(spec, kind)] = "no direction: needs memorized samples and controls"
                continue
            frame = alpha_sweep(lm, samples, clean, kind, grids[(spec, kind)], layer=layer, seeds=seeds,
                                direction=direction if kind == "embed_direction" else None,  # the cache key holds it
                                batch_size=batch_size, cache=cache)
            runs.append(frame.drop(columns="generated_ids").assign(spec=spec, group=frame["id"].map(group_of)))
        del lm
        gc.collect()
    return PhaseRuns(list(specs), pd.concat(runs, ignore_index=True), pd.concat(selection, ignore_index=True), kinds, grids,
                     notes, pd.concat(confidence, ignore_index=True) if confidence else None, seed_plan(kinds, seeds))


def mean_curves(runs: pd.DataFrame, by: Sequence[str] = ("spec", "kind", "group")) -> pd.DataFrame:
    """Mean retention per `by` x alpha: over the seeds of each sample, then over the samples (as the fits),
    with `n` samples."""
    per_sample = runs.groupby([*by, "alpha", "id"], sort=False)["retention"].mean().reset_index()
    return (per_sample.groupby([*by, "alpha"], sort=False)["retention"].agg(retention="mean", n="count")
            .reset_index())


def phase_fits(runs: pd.DataFrame, *, n_boot: int = 200, seed: int = 0, sharp_below: float = 1.0) -> pd.DataFrame:
    """Transition fits of the retention curve per model x kind x group (`dynamics.transitions.transition_table`:
    mean over seeds, then samples; grid bracket; per-sample range; hierarchical CI from 20 samples)."""
    from ..dynamics.transitions import transition_table

    return transition_table(runs, by=("spec", "kind", "group"), n_boot=n_boot, seed=seed,
                            sharp_below=sharp_below).rename(columns={"spec": "model"})


def star_text(row) -> str:
    """alpha* as the grid interval it lies in ('0.25--0.5'), '$<$a' below the grid, '--' without a crossing."""
    return format_bracket(row["bracket_low"], row["bracket_high"], alpha_min=row["alpha_min"])


def spread_text(row) -> str:
    """The uncertainty of alpha*: its 95 % CI from 20 samples on, else n, 'no CI' and the per-sample range."""
    if not np.isnan(row["ci_low"]):
        return "95\\% CI " + format_ci(row["ci_low"], row["ci_high"], row["alpha_max"], alpha_min=row["alpha_min"])
    n = f"$n={int(row['n_samples'])}$"
    if np.isnan(row["sample_low"]):
        return f"{n}, no CI"
    high = "$>$" + format_alpha(row["alpha_max"]) if np.isinf(row["sample_high"]) else format_alpha(row["sample_high"])
    low = "$<$" + format_alpha(row["alpha_min"]) if row["sample_low"] == 0 else format_alpha(row["sample_low"])
    return f"{n}, no CI; per sample {low}--{high}"


def _range_cell(row) -> str:
    """The table's spread cell: the CI, or the per-sample range (no CI below 20 samples)."""
    text = spread_text(row)
    if "per sample" in text:
        return text.split("; per sample ")[-1]
    return text.replace("95\\% CI ", "") if text.startswith("95") else "--"


def diff_text(test) -> str:
    """Memorized minus control mean retention with its Holm-corrected permutation p: '+0.23 (0.61)'."""
    return f"{test['diff']:+.2f} ({format_small(test['p_holm'])})"


def ranking_table(phase: PhaseRuns, fits: pd.DataFrame, ranking: pd.DataFrame, tests: pd.DataFrame, *,
                  labels: Mapping[str, str], k: int, m: int) -> tuple[pd.DataFrame, str]:
    """The robustness-ranking table (LaTeX cells, two-level columns, n in the headers) and its caption."""
    esc = latex_escape
    fit_index = fits.set_index(["model", "kind", "group"])
    ranks = ranking.set_index(["model", "kind"])
    test_index = tests.set_index(["spec", "kind"])
    kinds, models = phase.kinds, phase.models
    sel = phase.selection

    def cell(index, key, format_row) -> str:
        return format_row(index.loc[key]) if key in index.index else "--"

    table = pd.DataFrame({("", "Family"): [FAMILIES[kd] for kd in kinds], ("", "Action"): [esc(kd) for kd in kinds]})
    for spec in models:
        head = esc(labels[spec])
        n_mem = int(((sel["spec"] == spec) & (sel["group"] == "memorized")).sum())
        n_ctrl = int(((sel["spec"] == spec) & (sel["group"] == "control")).sum())
        table[(head, "Rank")] = [cell(ranks, (spec, kd), lambda r: str(int(r["rank"]))) for kd in kinds]
        table[(head, f"$\\alpha^*$ mem. ($n$={n_mem})")] = [cell(fit_index, (spec, kd, "memorized"), star_text)
                                                            for kd in kinds]
        table[(head, "per sample")] = [cell(fit_index, (spec, kd, "memorized"), _range_cell) for kd in kinds]
        table[(head, "Drop")] = [cell(fit_index, (spec, kd, "memorized"), lambda r: r["verdict"]) for kd in kinds]
        table[(head, f"$\\alpha^*$ ctrl ($n$={n_ctrl})")] = [cell(fit_index, (spec, kd, "control"), star_text)
                                                             for kd in kinds]
        table[(head, "$\\Delta$ ($p_{\\mathrm{Holm}}$)")] = [cell(test_index, (spec, kd), diff_text) for kd in kinds]
    seeds = phase.seeds if phase.seeds is not None else pd.DataFrame(columns=["kind", "seeded", "n_seeds"])
    n_seeds = int(seeds["n_seeds"].max()) if len(seeds) else 1
    fixed = ", ".join(esc(kd) for kd in seeds.loc[~seeds["seeded"].astype(bool), "kind"]) or "none"

    def kind_grids(kind: str) -> str:  # one grid per model (labelled) when the models' grids differ
        texts = {s: phase.grid_text(s, kind) for s in models}
        if len(set(texts.values())) == 1:
            return texts[models[0]]
        return ", ".join(f"{text} ({esc(labels[s])})" for s, text in texts.items())

    grids = "; ".join(f"{esc(kind)}: {kind_grids(kind)}" for kind in kinds)
    caption = (
        f"Robustness of recited attractors to each action, per model (rank 1 = most robust within its family: "
        f"largest $\\alpha^*$, none within the grid counting as largest). $\\alpha^*$: magnitude at which the fitted "
        f"retention curve (Biderman score against the clean continuation, $k={k}$, $m={m}$; mean over {n_seeds} "
        f"action seeds per sample, one for the deterministic {fixed}, then over the $n$ samples) falls to 0.5, given "
        f"as the two grid points it lies between; -- when retention never falls to 0.5 within the grid, $<$ when it "
        f"falls before the smallest $\\alpha$ of the grid. per sample: the range of the samples' own grid intervals "
        f"($>$: a sample that never falls to 0.5); with fewer than {MIN_BOOTSTRAP_N} samples no confidence interval "
        f"is given (a hierarchical bootstrap over samples and seeds otherwise). Drop: sharp when the 10--90\\% width "
        f"of the fitted drop is below $\\alpha^*$; unresolved when fewer than two grid points lie inside the drop (and "
        f"the grid interval around $\\alpha^*$ is not itself narrower than $\\alpha^*$). ctrl: $\\alpha^*$ of the confidence-matched controls. $\\Delta$: "
        f"mean retention over the grid, memorized minus controls, with its two-sided exact permutation $p$, "
        f"Holm-corrected over all {len(tests)} model--action pairs. $\\alpha$ units differ between families (token: "
        f"fraction of the prefix; embedding: multiple of the mean hidden-state norm; logit: logit offset), so ranks "
        f"compare kinds within a family only. Grids: {grids}."
    )
    return table, caption


def write_ranking_table(path, phase: PhaseRuns, fits: pd.DataFrame, ranking: pd.DataFrame, tests: pd.DataFrame, *,
                        labels: Mapping[str, str], k: int, m: int, source: str):
    """Write `ranking_table` as a LaTeX float (`report.write_table`, centred multicolumn heads, scriptsize)."""
    from .report import fit_float, write_table

    table, caption = ranking_table(phase, fits, ranking, tests, labels=labels, k=k, m=m)
    with pd.option_context("styler.latex.multicol_align", "c"):
        path = write_table(table, path, source=source, caption=caption, label="tab:ranking",
                           column_format="ll" + "rllrll" * len(phase.models), escape=False)
    fit_float(path, font=r"\scriptsize", width=r"\linewidth")
    print("ranking table:", table.shape[0], "rows x", table.shape[1], "columns")
    return path


def fit_summary(fits: pd.DataFrame, by: Sequence[str] = ("model", "kind", "group")) -> pd.DataFrame:
    """The fits as the notebooks show them: alpha* as its grid interval, the fitted value, points inside the drop,
    the spread (`spread_text`) and the verdict."""
    return fits.assign(interval=fits.apply(star_text, axis=1), spread=fits.apply(spread_text, axis=1))[
        [*by, "n_samples", "n_seeds", "interval", "alpha_star", "n_inside", "spread", "verdict"]].round(3)


def texttt_list(values: Sequence[str]) -> str:
    """Ids as a comma-separated `\\texttt` list that may break after underscores ('none' when empty)."""
    values = [f"\\texttt{{{latex_escape(v)}}}".replace("\\_", "\\_\\allowbreak{}") for v in values]
    return ", ".join(values) if values else "none"


def _verdict_counts(frame: pd.DataFrame, prefix: str, suffix: str = "") -> dict[str, int]:
    return {f"{prefix}N{name}{suffix}": int((frame["verdict"] == verdict).sum())
            for name, verdict in (("Sharp", "sharp"), ("Gradual", "gradual"), ("None", "none"),
                                  ("Unresolved", "unresolved"))}


def test_numbers(tests: pd.DataFrame, prefix: str, level: float = 0.05) -> dict[str, object]:
    """Macros summarising `dynamics.transitions.group_tests`: how many comparisons, how many differ at
    Holm-corrected `level` (and uncorrected), the smallest p reached, the smallest p the group sizes allow."""
    if tests.empty:
        return {f"{prefix}NTests": 0, f"{prefix}NSignificant": 0, f"{prefix}NSignificantRaw": 0,
                f"{prefix}SmallestP": "--", f"{prefix}SmallestPHolm": "--", f"{prefix}AttainableP": "--",
                f"{prefix}NMemTested": "--", f"{prefix}NCtrlTested": "--",
                f"{prefix}PowerNote": "so nothing could be tested"}
    return {f"{prefix}NTests": len(tests), f"{prefix}NSignificant": int((tests["p_holm"] < level).sum()),
            f"{prefix}NSignificantRaw": int((tests["p"] < level).sum()),
            f"{prefix}SmallestP": format_small(float(tests["p"].min())),
            f"{prefix}SmallestPHolm": format_small(float(tests["p_holm"].min())),
            f"{prefix}AttainableP": format_small(float(tests["min_p"].min())),
            f"{prefix}NMemTested": "--" if tests["n_group"].nunique() > 1 else int(tests["n_group"].iloc[0]),
            f"{prefix}NCtrlTested": "--" if tests["n_control"].nunique() > 1 else int(tests["n_control"].iloc[0]),
            f"{prefix}PowerNote": ("so these sample sizes cannot show a difference after correction, whatever the data"
                                   if float(tests["min_p"].min()) * len(tests) > level else
                                   "so a large enough difference could show after correction")}


def phase_numbers(phase: PhaseRuns, fits: pd.DataFrame, ranking: pd.DataFrame, wins: pd.DataFrame, *,
                  keys: Mapping[str, str], labels: Mapping[str, str], settings: Mapping[str, object],
                  tests: pd.DataFrame) -> dict[str, object]:
    """The `numbers_fig_phase.tex` macros: settings, seeds, verdict counts, per-model alpha* (grid interval) with
    n and its spread (CI only from 20 samples, else 'no CI' and the per-sample range), ranks, memorized-minus-
    control differences with Holm-corrected p, and lists.

    `settings` holds k, m, threshold, n_boot, sharp_below, embed_layer_frac, seeds, max_memorized
    and max_controls of the run; `tests` the memorized-vs-control permutation tests (`group_tests`,
    Holm-corrected over all models and kinds). Every per-model macro is defined (as '--') even
    where a model has no such samples.
    """
    esc = latex_escape
    s = settings
    fit_index = fits.set_index(["model", "kind", "group"])
    test_index = tests.set_index(["spec", "kind"])
    ranks = ranking.set_index(["model", "kind"])
    mem = fits[fits["group"] == "memorized"]
    ctrl = fits[fits["group"] == "control"]
    crossing = mem[mem["alpha_star"].notna()]
    plan = phase.seeds if phase.seeds is not None else pd.DataFrame({"kind": phase.kinds, "seeded": True,
                                                                       "n_seeds": len(s["seeds"])})
    numbers: dict[str, object] = {
        "PhaseK": s["k"], "PhaseM": s["m"], "PhaseThreshold": f"{s['threshold']:.2f}", "PhaseNBoot": s["n_boot"],
        "PhaseSharpBelow": f"{s['sharp_below']:g}", "PhaseNKinds": len(phase.kinds),
        "PhaseEmbedLayerFrac": f"{s['embed_layer_frac']:g}", "PhaseMinBootstrapN": MIN_BOOTSTRAP_N,
        "PhaseNFits": len(crossing), "PhaseNCurves": len(mem),
        "PhaseNResolved": int((crossing["n_inside"] >= 2).sum()),
        **_verdict_counts(mem, "Phase"),
        "PhaseNCtrlSharp": int((ctrl["verdict"] == "sharp").sum()),
        "PhaseNCtrlGradual": int((ctrl["verdict"] == "gradual").sum()),
        "PhaseNCtrlNone": int((ctrl["verdict"] == "none").sum()), "PhaseNCtrlCurves": len(ctrl),
        "PhaseMemMoreRobust": int(wins["group_wins"].sum()), "PhaseNComparisons": len(wins),
        "PhaseNSeeds": int(plan["n_seeds"].max()) if len(plan) else 1,
        "PhaseSeededKinds": texttt_list(plan.loc[plan["seeded"].astype(bool), "kind"]),
        "PhaseDeterministicKinds": texttt_list(plan.loc[~plan["seeded"].astype(bool), "kind"]),
        "PhaseMaxMemorized": "all" if s["max_memorized"] is None else s["max_memorized"],
        "PhaseMaxControls": "all" if s["max_controls"] is None else s["max_controls"],
        "PhaseKindList": texttt_list(phase.kinds),
    }
    numbers.update(test_numbers(tests, "PhaseTest"))
    for spec in phase.models:
        numbers.update(test_numbers(tests[tests["spec"] == spec], f"{keys[spec]}PhaseTest"))
    for family in phase.families:
        fam = mem[mem["family"] == family]
        numbers[f"PhaseNCurves{macro_key(family)}"] = len(fam)
        numbers.update(_verdict_counts(fam, "Phase", macro_key(family)))
    losses = wins[~wins["group_wins"]]
    numbers["PhaseLessRobustList"] = "; ".join(
        f"\\texttt{{{esc(row.kind)}}} ({esc(labels[row.model])})" for row in losses.itertuples()) or "none"
    numbers["PhaseNLessRobust"] = len(losses)
    share = wins["group_wins"].mean() if len(wins) else float("nan")
    numbers["PhaseFragilityVerdict"] = ("less fragile than" if share > 0.5 else "more fragile than" if share < 0.5
                                        else "as fragile as") if len(wins) else "not comparable with"
    ratios = ranking["mem_over_ctrl"].dropna()
    numbers["PhaseMedianRatio"] = f"{ratios.median():.1f}" if len(ratios) else "--"
    numbers["PhaseNRatios"] = len(ratios)
    for spec in phase.models:
        key = keys[spec]
        sel = phase.selection[phase.selection["spec"] == spec]
        numbers[f"{key}PhaseNMemorized"] = int((sel["group"] == "memorized").sum())
        numbers[f"{key}PhaseNControls"] = int((sel["group"] == "control").sum())
        numbers[f"{key}PhaseMemorizedList"] = texttt_list(sel.loc[sel["group"] == "memorized", "id"])
        numbers[f"{key}PhaseEmbedLayer"] = int(sel["layer"].iloc[0])
        numbers[f"{key}AlphaTypical"] = format_alpha(float(sel["typical_alpha"].iloc[0]))
        for group, gkey in (("memorized", "Mem"), ("control", "Ctrl")):
            share = sel.loc[sel["group"] == group, "distinct"].mean()
            numbers[f"{key}PhaseDistinct{gkey}"] = f"{100 * share:.0f}" if np.isfinite(share) else "--"
        model_wins = wins[wins["model"] == spec]
        numbers[f"{key}MemMoreRobust"] = int(model_wins["group_wins"].sum())
        numbers[f"{key}NComparisons"] = len(model_wins)
        for kind in phase.kinds:
            kk = macro_key(kind)
            numbers[f"{key}Rank{kk}"] = "--"
            numbers[f"{key}Phase{kk}Alphas"] = phase.grid_text(spec, kind) if (spec, kind) in phase.grids else "--"
            numbers[f"{key}Diff{kk}"] = numbers[f"{key}DiffP{kk}"] = "--"
            if (spec, kind) in test_index.index:
                test = test_index.loc[(spec, kind)]
                numbers[f"{key}Diff{kk}"] = f"{test['diff']:+.2f}"
                numbers[f"{key}DiffP{kk}"] = format_small(test["p_holm"])
            for group, gkey in (("memorized", ""), ("control", "Ctrl")):
                for name in (f"AlphaStar{kk}", f"AlphaStar{kk}CI", f"AlphaStar{kk}N", f"Verdict{kk}"):
                    numbers[f"{key}{gkey}{name}"] = "--"
                if (spec, kind, group) not in fit_index.index:
                    continue
                row = fit_index.loc[(spec, kind, group)]
                numbers[f"{key}{gkey}AlphaStar{kk}"] = star_text(row)
                numbers[f"{key}{gkey}AlphaStar{kk}CI"] = f"({spread_text(row)})"
                numbers[f"{key}{gkey}AlphaStar{kk}N"] = int(row["n_samples"])
                numbers[f"{key}{gkey}Verdict{kk}"] = row["verdict"]
            if (spec, kind) in ranks.index:
                numbers[f"{key}Rank{kk}"] = int(ranks.loc[(spec, kind), "rank"])
        for family in phase.families:
            top = ranking[(ranking["model"] == spec) & (ranking["family"] == family)]
            most, least = f"{key}MostRobust{macro_key(family)}", f"{key}LeastRobust{macro_key(family)}"
            numbers[most] = numbers[least] = "--"
            if len(top):
                numbers[most] = f"\\texttt{{{esc(top.iloc[0]['kind'])}}}"
                numbers[least] = f"\\texttt{{{esc(top.iloc[-1]['kind'])}}}"
    return numbers


# -- fig_layers: layer x alpha sweeps and fragility profiles -----------------------------------------------------
@dataclass
class LayerRuns:
    """What `layer_runs` measured, per model: the layer x alpha sweep and the fragility profiles."""

    models: list[str]
    sweeps: pd.DataFrame  # alpha_sweep rows per layer, with spec, group, n_layers
    layer_profiles: pd.DataFrame  # per sample x layer: rel_distance, with spec, action (number), group
    step_profiles: pd.DataFrame  # per sample x step: kl, same, with spec, action, group
    selection: pd.DataFrame  # per model x sample: group, clean token_match
    actions: dict[tuple[str, int], dict]  # (spec, action number) -> resolved {"kind", "alpha", "layer"}
    confidence: pd.DataFrame | None = None  # controls="matched": per model x candidate, see paper.controls


def action_label(action: Mapping) -> str:
    """Legend label of a resolved profile action: `embed_random $\\alpha$=0.5, layer 7`."""
    where = f", layer {action['layer']}" if action.get("layer") is not None else ""
    return f"{action['kind']} $\\alpha$={format_alpha(action['alpha'], 3)}{where}"


def resolve_action(action: Mapping, spec: str, n_layers: int) -> dict:
    """A profile action for one model: `layer_frac` -> layer, a per-model alpha {spec: alpha} -> its number."""
    layer = int(round(action["layer_frac"] * (n_layers - 1))) if "layer_frac" in action else action.get("layer")
    alpha = action["alpha"]
    return {"kind": action["kind"], "alpha": float(alpha[spec] if isinstance(alpha, Mapping) else alpha),
            "layer": layer}


def shown_layers(n_layers: int, n_shown: int | None) -> list[int]:
    """`n_shown` layers evenly spaced over 0..n_layers-1 (None: every layer)."""
    if n_shown is None:
        return list(range(n_layers))
    return sorted({int(round(x)) for x in np.linspace(0, n_layers - 1, n_shown)})


def layer_runs(specs: Sequence[str], records: Sequence[dict], *, k: int, m: int, clean_m: int | None = None,
               threshold: float = 0.9, max_memorized: int | None = None, max_controls: int | None = None,
               kind: str = "embed_random", n_layers_shown: int | None = None, alphas: Sequence[float],
               model_alphas: Mapping[str, Sequence[float]] | None = None, seeds: Sequence[int] = (0,),
               profile_actions: Sequence[Mapping] = (), batch_size: int = 64, controls: str = "shuffled",
               cache: bool = True) -> LayerRuns:
    """Per model: retention under `kind` after each shown layer at every alpha, and the fragility profiles.

    `controls` as in `phase_sweeps` (shuffled-word records, or natural texts matched on confidence).

    `profile_actions` are dicts {"kind", "alpha" (a number or {spec: number}), "layer" or
    "layer_frac"}; each runs on memorized samples and controls through
    `dynamics.sweeps.fragility_profiles`, once per action seed of a seeded kind (one for a
    deterministic kind); the profiles keep a `seed` column. `cache`: the layer sweep reuses cached
    settings (e.g. the `fig_phase` sweep at its embedding layer).
    """
    from ..dynamics.sweeps import fragility_profiles, layer_sweep, make_action, seeds_for

    model_alphas = model_alphas or {}
    sweeps, layer_profiles, step_profiles, selection, resolved_actions, confidence = [], [], [], [], {}, []
    for spec in specs:
        lm, samples, clean, group_of = model_samples(
            spec, records, confidence, controls=controls, k=k, m=m, clean_m=clean_m, threshold=threshold,
            max_memorized=max_memorized, max_controls=max_controls)
        selection.append(clean.assign(spec=spec, group=clean["id"].map(group_of))[
            ["spec", "id", "group", "token_match"]])
        n = lm.n_layers
        sweep = layer_sweep(lm, samples, clean, shown_layers(n, n_layers_shown), model_alphas.get(spec, alphas),
                            kind=kind, seeds=seeds, batch_size=batch_size, cache=cache)
        sweeps.append(sweep.drop(columns="generated_ids").assign(spec=spec, group=sweep["id"].map(group_of),
                                                                 n_layers=n))
        for number, action_spec in enumerate(profile_actions):
            resolved = resolved_actions[(spec, number)] = resolve_action(action_spec, spec, n)
            for seed in seeds_for(resolved["kind"], seeds):
                action = make_action(resolved["kind"], resolved["alpha"], layer=resolved["layer"], seed=seed)
                by_layer, by_step = fragility_profiles(lm, samples, clean, action)
                for frame, bucket in ((by_layer, layer_profiles), (by_step, step_profiles)):
                    bucket.append(frame.assign(spec=spec, action=number, seed=seed, group=frame["id"].map(group_of)))
        del lm
        gc.collect()
    return LayerRuns(list(specs), pd.concat(sweeps, ignore_index=True), pd.concat(layer_profiles, ignore_index=True),
                     pd.concat(step_profiles, ignore_index=True), pd.concat(selection, ignore_index=True),
                     resolved_actions, pd.concat(confidence, ignore_index=True) if confidence else None)


def profile_means(runs: LayerRuns) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(state distance per spec x action x group x layer, KL per spec x action x group x step): means over the
    seeds of each sample, then over the samples -- the lines of the fragility figure."""
    def mean(frame, at, value):
        per_sample = frame.groupby(["spec", "action", "group", at, "id"], sort=False)[value].mean()
        return per_sample.groupby(["spec", "action", "group", at], sort=False).mean().reset_index()

    return mean(runs.layer_profiles, "layer", "rel_distance"), mean(runs.step_profiles, "step", "kl")


def profile_summary(runs: LayerRuns) -> pd.DataFrame:
    """Per model x profile action x group: n, final-layer distance, mean KL, share of steps changed (over seeds
    and samples)."""
    rows = []
    steps_all = runs.step_profiles
    for (spec, number, group), part in runs.layer_profiles.groupby(["spec", "action", "group"], sort=False):
        last = part[part["layer"] == part["layer"].max()]["rel_distance"].mean()
        steps = steps_all[(steps_all["spec"] == spec) & (steps_all["action"] == number) & (steps_all["group"] == group)]
        rows.append({"spec": spec, "action": action_label(runs.actions[(spec, number)]), "number": number,
                     "group": group, "n": part["id"].nunique(), "final_layer_distance": last,
                     "mean_kl": steps["kl"].mean(), "steps_changed": 1 - steps["same"].mean()})
    return pd.DataFrame(rows)


def profile_tests(runs: LayerRuns, *, seed: int = 0) -> pd.DataFrame:
    """Memorized vs control per model x profile action x observable (final-layer state distance, mean KL):
    two-sided exact permutation tests over per-sample values, Holm-corrected over every row."""
    from ..core.stats import holm, permutation_test_means, smallest_permutation_p

    last = runs.layer_profiles[runs.layer_profiles.groupby("spec")["layer"].transform("max")
                               == runs.layer_profiles["layer"]]
    per_sample = {"final_layer_distance": last.groupby(["spec", "action", "group", "id"])["rel_distance"].mean(),
                  "mean_kl": runs.step_profiles.groupby(["spec", "action", "group", "id"])["kl"].mean()}
    rows = []
    for (spec, number) in sorted({key for key in runs.actions}, key=lambda key: (runs.models.index(key[0]), key[1])):
        for observable, values in per_sample.items():
            try:
                mem, ctrl = values.loc[(spec, number, "memorized")], values.loc[(spec, number, "control")]
            except KeyError:
                continue
            diff, p = permutation_test_means(mem, ctrl, seed=seed)
            rows.append({"spec": spec, "action": action_label(runs.actions[(spec, number)]), "number": number,
                         "observable": observable, "n_group": len(mem), "n_control": len(ctrl), "diff": diff, "p": p,
                         "min_p": smallest_permutation_p(len(mem), len(ctrl))})
    frame = pd.DataFrame(rows, columns=["spec", "action", "number", "observable", "n_group", "n_control", "diff", "p",
                                        "min_p"])
    frame["p_holm"] = holm(frame["p"].to_numpy()) if len(frame) else []
    return frame


def layers_numbers(runs: LayerRuns, heat: pd.DataFrame, layer_fits: pd.DataFrame, summary: pd.DataFrame, *,
                   keys: Mapping[str, str], kind: str, k: int, m: int, alphas: Sequence[float],
                   model_alphas: Mapping[str, Sequence[float]] | None = None,
                   tests: pd.DataFrame | None = None, retention_tests: pd.DataFrame | None = None,
                   seeds: Sequence[int] = (0,)) -> dict[str, object]:
    """The `numbers_fig_layers.tex` macros: most/least sensitive layers (alpha* as its grid interval, and how
    many layers share it), retention, fragility verdicts (and, given `profile_tests` / `retention_tests`
    (`group_tests` by spec), the Holm-corrected permutation p of each memorized-minus-control difference).

    `heat`: mean retention per spec x group x layer x alpha; `layer_fits`: `transition_table`
    by spec x group x layer; `summary`: `profile_summary`. Macros are defined ('--') even when
    no layer crosses or a model lacks one of the groups.
    """
    fmt, small = format_number, format_small
    model_alphas = model_alphas or {}
    sweeps, selection = runs.sweeps, runs.selection
    numbers: dict[str, object] = {"LayersKind": latex_escape(kind), "LayersK": k, "LayersM": m,
                                  "LayersNSeeds": len(dict.fromkeys(seeds))}
    if retention_tests is not None:
        numbers.update(test_numbers(retention_tests, "LayersTest"))
    fragile_votes, disagreements = [], []
    n_actions = len({number for _, number in runs.actions})
    for spec in runs.models:
        key = keys[spec]
        fits_mem = layer_fits[(layer_fits["spec"] == spec) & (layer_fits["group"] == "memorized")]
        defined = fits_mem.dropna(subset=["alpha_star"])
        numbers[f"{key}LayersN"] = int(sweeps.loc[sweeps["spec"] == spec, "n_layers"].iloc[0])
        numbers[f"{key}LayersAlphas"] = ", ".join(format_alpha(a) for a in model_alphas.get(spec, alphas) if a > 0)
        numbers[f"{key}LayersShown"] = int(sweeps.loc[sweeps["spec"] == spec, "layer"].nunique())
        numbers[f"{key}LayersNMemorized"] = int((selection[selection["spec"] == spec]["group"] == "memorized").sum())
        numbers[f"{key}LayersNControls"] = int((selection[selection["spec"] == spec]["group"] == "control").sum())
        for name in ("MostSensitive", "MostSensitiveAlpha", "LeastSensitive", "LeastSensitiveAlpha", "NTiedMost",
                     "NTiedLeast", "Diff", "DiffP"):
            numbers[f"{key}Layers{name}"] = "--"
        if len(defined):
            most, least = defined.loc[defined["alpha_star"].idxmin()], defined.loc[defined["alpha_star"].idxmax()]
            numbers[f"{key}LayersMostSensitive"] = int(most["layer"])
            numbers[f"{key}LayersMostSensitiveAlpha"] = star_text(most)
            numbers[f"{key}LayersLeastSensitive"] = int(least["layer"])
            numbers[f"{key}LayersLeastSensitiveAlpha"] = star_text(least)
            brackets = defined.apply(star_text, axis=1)
            numbers[f"{key}LayersNTiedMost"] = int((brackets == star_text(most)).sum())
            numbers[f"{key}LayersNTiedLeast"] = int((brackets == star_text(least)).sum())
        if retention_tests is not None and (retention_tests["spec"] == spec).any():
            test = retention_tests[retention_tests["spec"] == spec].iloc[0]
            numbers[f"{key}LayersDiff"], numbers[f"{key}LayersDiffP"] = f"{test['diff']:+.2f}", small(test["p_holm"])
        numbers[f"{key}LayersNoCrossing"] = int(fits_mem["alpha_star"].isna().sum())
        for group, gkey in (("memorized", "Mem"), ("control", "Ctrl")):
            part = heat[(heat["spec"] == spec) & (heat["group"] == group) & (heat["alpha"] > 0)]
            numbers[f"{key}LayersMeanRetention{gkey}"] = fmt(part["retention"].mean()) if len(part) else "--"
            med = layer_fits[(layer_fits["spec"] == spec) & (layer_fits["group"] == group)]["alpha_star"].median()
            numbers[f"{key}LayersMedianAlphaStar{gkey}"] = small(med)
        for number in range(n_actions):
            resolved = runs.actions[(spec, number)]
            akey = macro_key(resolved["kind"])
            rows = summary[(summary["spec"] == spec) & (summary["number"] == number)].set_index("group")
            for name in ("Dist{}Mem", "Dist{}Ctrl", "KL{}Mem", "KL{}Ctrl", "Changed{}Mem", "Changed{}Ctrl",
                         "Fragility{}", "KLLess{}", "DistLess{}", "ChangedLess{}", "ProfileAlpha{}", "DistP{}",
                         "KLP{}", "ProfileN{}"):
                numbers[key + name.format(akey)] = "--"
            if tests is not None:
                mine = tests[(tests["spec"] == spec) & (tests["number"] == number)].set_index("observable")
                for observable, name in (("final_layer_distance", "DistP"), ("mean_kl", "KLP")):
                    if observable in mine.index:
                        numbers[f"{key}{name}{akey}"] = small(mine.loc[observable, "p_holm"])
            if not {"memorized", "control"} <= set(rows.index):
                continue
            mem, ctrl = rows.loc["memorized"], rows.loc["control"]
            numbers[f"{key}ProfileN{akey}"] = f"{int(mem['n'])} + {int(ctrl['n'])}"
            numbers[f"{key}ProfileAlpha{akey}"] = f"{resolved['alpha']:g}"
            if resolved["layer"] is not None:
                numbers[f"{key}ProfileLayer{akey}"] = int(resolved["layer"])
            numbers[f"{key}Dist{akey}Mem"] = fmt(mem["final_layer_distance"])
            numbers[f"{key}Dist{akey}Ctrl"] = fmt(ctrl["final_layer_distance"])
            numbers[f"{key}KL{akey}Mem"] = small(mem["mean_kl"])
            numbers[f"{key}KL{akey}Ctrl"] = small(ctrl["mean_kl"])
            numbers[f"{key}Changed{akey}Mem"] = f"{100 * mem['steps_changed']:.0f}"
            numbers[f"{key}Changed{akey}Ctrl"] = f"{100 * ctrl['steps_changed']:.0f}"
            kl_less = mem["mean_kl"] < ctrl["mean_kl"]
            dist_less = mem["final_layer_distance"] < ctrl["final_layer_distance"]
            verdict = ("less fragile" if kl_less and dist_less else "more fragile" if not kl_less and not dist_less
                       else "mixed")
            numbers[f"{key}Fragility{akey}"] = "undecided (distance and KL disagree)" if verdict == "mixed" else verdict
            numbers[f"{key}KLLess{akey}"] = "smaller" if kl_less else "larger"
            numbers[f"{key}DistLess{akey}"] = "smaller" if dist_less else "larger"
            changed_less = mem["steps_changed"] < ctrl["steps_changed"]
            numbers[f"{key}ChangedLess{akey}"] = "fewer" if changed_less else "more"
            fragile_votes.append(verdict)
            disagreements.append(changed_less and verdict == "more fragile")  # fewer changes, larger distance and KL
    numbers["ProfileNComparisons"] = len(fragile_votes)
    numbers["ProfileNLessFragile"] = sum(v == "less fragile" for v in fragile_votes)
    numbers["ProfileNMoreFragile"] = sum(v == "more fragile" for v in fragile_votes)
    numbers["ProfileNDisagree"] = sum(disagreements)
    if tests is not None:
        numbers.update(test_numbers(tests, "ProfileTest"))
    return numbers
