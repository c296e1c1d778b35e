"""Experiment drivers of the dynamics section (notebook `fig_phase`): sweeps, fits, table, numbers.

    phase = phase_sweeps(models, records, k=32, m=8, alphas={"token": [0, 0.5], ...})
    fits, exact_fits = phase_fits(phase.runs, n_boot=50)
    table, caption = ranking_table(phase, fits, exact_fits, rank_robustness(fits), labels=names, ...)
    numbers = phase_numbers(phase, fits, exact_fits, ranking, wins, keys=keys, labels=names, ...)

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
from .report import format_alpha, format_ci, format_number, format_small, latex_escape, macro_key

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


def sweep_kinds(kinds: Sequence[str] | None = None) -> list[str]:
    """The action kinds a phase sweep runs: `kinds` (None: every kind) without the `shock` family."""
    return [kind for kind in (kinds or KINDS) if FAMILIES[kind] != "shock"]


@dataclass
class PhaseRuns:
    """What `phase_sweeps` measured: one row per (model, sample, kind, alpha, seed) in `runs`."""

    models: list[str]
    runs: pd.DataFrame
    selection: pd.DataFrame  # per model x sample: group, clean scores, distinct share, layer, typical alpha
    kinds: list[str]
    grids: dict[tuple[str, str], list[float]]  # (spec, family) -> alpha grid
    notes: dict[tuple[str, str], str] = field(default_factory=dict)  # (spec, kind) -> why it was skipped
    confidence: pd.DataFrame | None = None  # controls="matched": per model x candidate, see paper.controls

    @property
    def families(self) -> list[str]:
        return [f for f in FAMILY_ORDER if any(FAMILIES[kind] == f for kind in self.kinds)]

    def grid_text(self, spec: str, family: str) -> str:
        """The nonzero alphas of a grid, formatted for the paper."""
        return ", ".join(format_alpha(a) for a in self.grids[(spec, family)] if a > 0)


def phase_sweeps(specs: Sequence[str], records: Sequence[dict], *, k: int, m: int, clean_m: int | None = None,
                 threshold: float = 0.9, max_memorized: int | None = None, max_controls: int | None = None,
                 kinds: Sequence[str] | None = None, alphas: Mapping[str, Sequence[float]],
                 model_alphas: Mapping[str, Mapping[str, Sequence[float]]] | None = None,
                 embed_layer_frac: float = 0.25, seeds: Sequence[int] = (0,), batch_size: int = 64,
                 controls: str = "shuffled") -> PhaseRuns:
    """Sweep every action kind over its family's alpha grid, per model, on memorized samples and controls.

    The samples are chosen by `dynamics.sweeps.dynamics_samples` (`controls="matched"`: with
    confidence-matched natural-text controls, `paper.controls.matched_sets`, one per memorized
    sample; `max_controls` then does not apply); embedding actions act after
    block round(embed_layer_frac * (n_layers - 1)); `embed_direction` pushes from the memorized
    prefixes towards the controls' mean state (skipped, with a note, without both groups).
    `model_alphas` overrides `alphas` per model and family.
    """
    from ..core.models import load_model
    from ..dynamics.actions import difference_of_means
    from ..dynamics.sweeps import alpha_sweep, distinct_share, typical_coordinate_alpha

    kinds = sweep_kinds(kinds)
    model_alphas = model_alphas or {}
    grids = {(spec, family): list(model_alphas.get(spec, {}).get(family, alphas[family]))
             for spec in specs for family in FAMILY_ORDER if family in alphas}
    runs, selection, notes, confidence = [], [], {}, []
    for spec in specs:
        lm = load_model(spec)
        samples, clean, groups, matched = experiment_samples(
            lm, records, controls=controls, k=k, m=m, clean_m=clean_m, threshold=threshold,
            max_memorized=max_memorized, max_controls=max_controls)
        if matched is not None:
            confidence.append(matched.assign(spec=spec))
        layer = int(round(embed_layer_frac * (lm.n_layers - 1)))
        group_of = dict(zip(clean["id"], clean["id"].map(groups)))
        typical = typical_coordinate_alpha(lm, samples, layer)  # embedding alpha that matches a typical coordinate
        selection.append(clean.assign(spec=spec, group=clean["id"].map(groups), layer=layer, typical_alpha=typical,
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
            frame = alpha_sweep(lm, samples, clean, kind, grids[(spec, FAMILIES[kind])], layer=layer, seeds=seeds,
                                direction=direction, batch_size=batch_size)
            runs.append(frame.drop(columns="generated_ids").assign(spec=spec, group=frame["id"].map(group_of)))
        del lm
        gc.collect()
    return PhaseRuns(list(specs), pd.concat(runs, ignore_index=True), pd.concat(selection, ignore_index=True), kinds, grids,
                     notes, pd.concat(confidence, ignore_index=True) if confidence else None)


def phase_fits(runs: pd.DataFrame, *, n_boot: int = 200, seed: int = 0,
               sharp_below: float = 1.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Transition fits per model x kind x group of the Biderman retention and of the exact-match retention."""
    from ..dynamics.transitions import transition_table

    return tuple(transition_table(runs, value=value, by=("spec", "kind", "group"), n_boot=n_boot, seed=seed,
                                  sharp_below=sharp_below).rename(columns={"spec": "model"})
                 for value in ("retention", "exact_retention"))


def _star(row) -> str:
    return format_alpha(row["alpha_star"], alpha_min=row["alpha_min"])


def _ci(row) -> str:
    return format_ci(row["ci_low"], row["ci_high"], row["alpha_max"], alpha_min=row["alpha_min"])


def ranking_table(phase: PhaseRuns, fits: pd.DataFrame, exact_fits: pd.DataFrame, ranking: pd.DataFrame, *,
                  labels: Mapping[str, str], k: int, m: int, n_boot: int) -> tuple[pd.DataFrame, str]:
    """The robustness-ranking table (LaTeX cells, two-level columns) and its caption."""
    esc = latex_escape
    fit_index = fits.set_index(["model", "kind", "group"])
    exact_index = exact_fits.set_index(["model", "kind", "group"])
    ranks = ranking.set_index(["model", "kind"])
    kinds, models = phase.kinds, phase.models

    def cell(index, key, format_row) -> str:
        return format_row(index.loc[key]) if key in index.index else "--"

    table = pd.DataFrame({("", "Family"): [FAMILIES[kd] for kd in kinds], ("", "Action"): [esc(kd) for kd in kinds]})
    for spec in models:
        head = esc(labels[spec])
        table[(head, "Rank")] = [cell(ranks, (spec, kd), lambda r: str(int(r["rank"]))) for kd in kinds]
        table[(head, "$\\alpha^*$ mem.")] = [cell(fit_index, (spec, kd, "memorized"), _star) for kd in kinds]
        table[(head, "95\\% CI")] = [cell(fit_index, (spec, kd, "memorized"), _ci) for kd in kinds]
        table[(head, "Drop")] = [cell(fit_index, (spec, kd, "memorized"), lambda r: r["verdict"]) for kd in kinds]
        table[(head, "EM")] = [cell(exact_index, (spec, kd, "memorized"), _star) for kd in kinds]
        table[(head, "$\\alpha^*$ ctrl")] = [cell(fit_index, (spec, kd, "control"), _star) for kd in kinds]
    sel = phase.selection
    n_mem = sel[sel["group"] == "memorized"].groupby("spec")["id"].count()
    n_ctrl = sel[sel["group"] == "control"].groupby("spec")["id"].count()
    counts = "; ".join(f"{esc(labels[s])}: {int(n_mem.get(s, 0))} memorized, {int(n_ctrl.get(s, 0))} controls"
                       for s in models)

    def family_grids(family: str) -> str:  # one grid per model (labelled) when the models' grids differ
        texts = {s: phase.grid_text(s, family) for s in models}
        if len(set(texts.values())) == 1:
            return texts[models[0]]
        return ", ".join(f"{text} ({esc(labels[s])})" for s, text in texts.items())

    grids = "; ".join(f"{family}: {family_grids(family)}" for family in phase.families)
    caption = (
        f"Robustness of recited attractors to each action, per model (rank 1 = most robust within its family: "
        f"largest $\\alpha^*$, none within the grid counting as largest). $\\alpha^*$: magnitude at which the fitted "
        f"retention curve (Biderman score against the clean continuation, $k={k}$, $m={m}$) falls to 0.5, with a "
        f"95\\% bootstrap CI over samples ({n_boot} replicates; $>$ marks replicates without a crossing), given only "
        f"with at least {MIN_BOOTSTRAP_N} samples (-- otherwise); -- when "
        f"retention never falls to 0.5 within the grid, $<$ when it falls before the smallest $\\alpha$ of the grid. "
        f"Drop: sharp when the 10--90\\% width of the fitted drop is "
        f"below $\\alpha^*$. EM: $\\alpha^*$ of the exact-match retention. ctrl: $\\alpha^*$ of the non-memorized "
        f"controls. $\\alpha$ units differ between families (token: fraction of the prefix; embedding: multiple of "
        f"the mean hidden-state norm; logit: logit offset), so ranks compare kinds within a family only. "
        f"Samples: {counts}. Grids: {grids}."
    )
    return table, caption


def texttt_list(values: Sequence[str]) -> str:
    """Ids as a comma-separated `\\texttt` list that may break after underscores ('none' when empty)."""
    values = [f"\\texttt{{{latex_escape(v)}}}".replace("\\_", "\\_\\allowbreak{}") for v in values]
    return ", ".join(values) if values else "none"


def _verdict_counts(frame: pd.DataFrame, prefix: str, suffix: str = "") -> dict[str, int]:
    return {f"{prefix}N{name}{suffix}": int((frame["verdict"] == verdict).sum())
            for name, verdict in (("Sharp", "sharp"), ("Gradual", "gradual"), ("None", "none"))}


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


def phase_numbers(phase: PhaseRuns, fits: pd.DataFrame, exact_fits: pd.DataFrame, ranking: pd.DataFrame,
                  wins: pd.DataFrame, *, keys: Mapping[str, str], labels: Mapping[str, str],
                  settings: Mapping[str, object], tests: pd.DataFrame | None = None) -> dict[str, object]:
    """The `numbers_fig_phase.tex` macros: settings, verdict counts, per-model alpha*, CIs, ranks and lists.

    `settings` holds k, m, threshold, n_boot, sharp_below, embed_layer_frac, seeds,
    max_memorized and max_controls of the run; `tests` the memorized-vs-control permutation tests
    (`group_tests`, Holm-corrected over all models and kinds). Every per-model macro is defined
    (as '--') even where a model has no such samples.
    """
    esc = latex_escape
    s = settings
    fit_index = fits.set_index(["model", "kind", "group"])
    exact_index = exact_fits.set_index(["model", "kind", "group"])
    ranks = ranking.set_index(["model", "kind"])
    mem = fits[fits["group"] == "memorized"]
    ctrl = fits[fits["group"] == "control"]
    numbers: dict[str, object] = {
        "PhaseK": s["k"], "PhaseM": s["m"], "PhaseThreshold": f"{s['threshold']:.2f}", "PhaseNBoot": s["n_boot"],
        "PhaseSharpBelow": f"{s['sharp_below']:g}", "PhaseNKinds": len(phase.kinds),
        "PhaseEmbedLayerFrac": f"{s['embed_layer_frac']:g}",
        "PhaseNFits": int(mem["alpha_star"].notna().sum()), "PhaseNCurves": len(mem),
        **_verdict_counts(mem, "Phase"),
        "PhaseNCtrlSharp": int((ctrl["verdict"] == "sharp").sum()),
        "PhaseNCtrlGradual": int((ctrl["verdict"] == "gradual").sum()),
        "PhaseNCtrlNone": int((ctrl["verdict"] == "none").sum()), "PhaseNCtrlCurves": len(ctrl),
        "PhaseMemMoreRobust": int(wins["group_wins"].sum()), "PhaseNComparisons": len(wins),
        "PhaseNSeeds": len(s["seeds"]),
        "PhaseMaxMemorized": "all" if s["max_memorized"] is None else s["max_memorized"],
        "PhaseMaxControls": "all" if s["max_controls"] is None else s["max_controls"],
    }
    if tests is not None:
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
        for family in phase.families:
            numbers[f"{key}Phase{macro_key(family)}Alphas"] = phase.grid_text(spec, family)
        model_wins = wins[wins["model"] == spec]
        numbers[f"{key}MemMoreRobust"] = int(model_wins["group_wins"].sum())
        numbers[f"{key}NComparisons"] = len(model_wins)
        for kind in phase.kinds:
            kk = macro_key(kind)
            numbers[f"{key}Rank{kk}"] = "--"
            for group, gkey in (("memorized", ""), ("control", "Ctrl")):
                for name in (f"AlphaStar{kk}", f"AlphaStar{kk}CI", f"Verdict{kk}", f"ExactAlphaStar{kk}"):
                    numbers[f"{key}{gkey}{name}"] = "--"
                if (spec, kind, group) not in fit_index.index:
                    continue
                row = fit_index.loc[(spec, kind, group)]
                numbers[f"{key}{gkey}AlphaStar{kk}"] = _star(row)
                numbers[f"{key}{gkey}AlphaStar{kk}CI"] = _ci(row)
                numbers[f"{key}{gkey}Verdict{kk}"] = row["verdict"]
                numbers[f"{key}{gkey}ExactAlphaStar{kk}"] = _star(exact_index.loc[(spec, kind, group)])
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
               profile_actions: Sequence[Mapping] = (), batch_size: int = 64, controls: str = "shuffled") -> LayerRuns:
    """Per model: retention under `kind` after each shown layer at every alpha, and the fragility profiles.

    `controls` as in `phase_sweeps` (shuffled-word records, or natural texts matched on confidence).

    `profile_actions` are dicts {"kind", "alpha" (a number or {spec: number}), "layer" or
    "layer_frac"}; each runs once (seed 0) on memorized samples and controls through
    `dynamics.sweeps.fragility_profiles`.
    """
    from ..core.models import load_model
    from ..dynamics.sweeps import fragility_profiles, layer_sweep, make_action

    model_alphas = model_alphas or {}
    sweeps, layer_profiles, step_profiles, selection, resolved_actions, confidence = [], [], [], [], {}, []
    for spec in specs:
        lm = load_model(spec)
        samples, clean, groups, matched = experiment_samples(
            lm, records, controls=controls, k=k, m=m, clean_m=clean_m, threshold=threshold,
            max_memorized=max_memorized, max_controls=max_controls)
        if matched is not None:
            confidence.append(matched.assign(spec=spec))
        group_of = dict(zip(clean["id"], clean["id"].map(groups)))
        selection.append(clean.assign(spec=spec, group=clean["id"].map(group_of))[
            ["spec", "id", "group", "token_match"]])
        n = lm.n_layers
        sweep = layer_sweep(lm, samples, clean, shown_layers(n, n_layers_shown), model_alphas.get(spec, alphas),
                            kind=kind, seeds=seeds, batch_size=batch_size)
        sweeps.append(sweep.drop(columns="generated_ids").assign(spec=spec, group=sweep["id"].map(group_of),
                                                                 n_layers=n))
        for number, action_spec in enumerate(profile_actions):
            resolved = resolved_actions[(spec, number)] = resolve_action(action_spec, spec, n)
            action = make_action(resolved["kind"], resolved["alpha"], layer=resolved["layer"], seed=0)
            by_layer, by_step = fragility_profiles(lm, samples, clean, action)
            for frame, bucket in ((by_layer, layer_profiles), (by_step, step_profiles)):
                bucket.append(frame.assign(spec=spec, action=number, group=frame["id"].map(group_of)))
        del lm
        gc.collect()
    return LayerRuns(list(specs), pd.concat(sweeps, ignore_index=True), pd.concat(layer_profiles, ignore_index=True),
                     pd.concat(step_profiles, ignore_index=True), pd.concat(selection, ignore_index=True),
                     resolved_actions, pd.concat(confidence, ignore_index=True) if confidence else None)


def profile_summary(runs: LayerRuns) -> pd.DataFrame:
    """Per model x profile action x group: n, final-layer distance, mean KL, share of steps changed."""
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
                   tests: pd.DataFrame | None = None) -> dict[str, object]:
    """The `numbers_fig_layers.tex` macros: most/least sensitive layers, retention, fragility verdicts
    (and, given `profile_tests`, how many of those differences survive a Holm-corrected permutation test).

    `heat`: mean retention per spec x group x layer x alpha; `layer_fits`: `transition_table`
    by spec x group x layer; `summary`: `profile_summary`. Macros are defined ('--') even when
    no layer crosses or a model lacks one of the groups.
    """
    fmt, small = format_number, format_small
    model_alphas = model_alphas or {}
    sweeps, selection = runs.sweeps, runs.selection
    numbers: dict[str, object] = {"LayersKind": latex_escape(kind), "LayersK": k, "LayersM": m}
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
        for name in ("MostSensitive", "MostSensitiveAlpha", "LeastSensitive", "LeastSensitiveAlpha"):
            numbers[f"{key}Layers{name}"] = "--"
        if len(defined):
            most, least = defined.loc[defined["alpha_star"].idxmin()], defined.loc[defined["alpha_star"].idxmax()]
            numbers[f"{key}LayersMostSensitive"] = int(most["layer"])
            numbers[f"{key}LayersMostSensitiveAlpha"] = small(most["alpha_star"])
            numbers[f"{key}LayersLeastSensitive"] = int(least["layer"])
            numbers[f"{key}LayersLeastSensitiveAlpha"] = small(least["alpha_star"])
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
                         "Fragility{}", "KLLess{}", "DistLess{}", "ChangedLess{}", "ProfileAlpha{}"):
                numbers[key + name.format(akey)] = "--"
            if not {"memorized", "control"} <= set(rows.index):
                continue
            mem, ctrl = rows.loc["memorized"], rows.loc["control"]
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
