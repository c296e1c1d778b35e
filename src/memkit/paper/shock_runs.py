"""Experiment driver of the mid-sequence shock table (notebook `tab_shock`): runs, table, numbers.

    shock = shock_runs(models, records, k=32, m=12, alphas=[1, 2], positions=[4], example_id="counting")
    overall, per_alpha = shock_summary(shock.shocks, by=("spec", "group")), shock_summary(..., "alpha")
    table, caption = shock_table(shock, overall, per_alpha, models=models, alphas=alphas, labels=names, ...)
    numbers = shock_numbers(shock, overall, per_alpha, models=models, keys=keys, example_id="counting", ...)

A model is loaded, shocked and released before the next one.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .report import format_number, format_or_list, format_small, latex_escape

GROUPS = ("memorized", "control")


@dataclass
class ShockRuns:
    """What `shock_runs` measured: one row per (model, sample, alpha, position) in `shocks`."""

    shocks: pd.DataFrame  # shock_sweep rows without token ids, with spec and group
    selection: pd.DataFrame  # per model x sample: group, clean token match, distinct share
    examples: dict[str, tuple[str, str]]  # spec -> (clean text, shocked text) of the quoted example


def shock_runs(specs: Sequence[str], records: Sequence[dict], *, k: int, m: int, clean_m: int | None = None,
               threshold: float = 0.9, max_memorized: int | None = None, max_controls: int | None = None,
               alphas: Sequence[int], positions: Sequence[int], max_shift: int = 2, min_tail: int = 4,
               example_id: str | None = None, batch_size: int = 16, controls: str = "shuffled") -> ShockRuns:
    """Force wrong tokens mid-continuation on memorized samples and controls, per model.

    Samples are chosen by `dynamics.sweeps.dynamics_samples` (`controls="matched"`: natural texts
    matched on confidence, see `paper.dynamics_runs.experiment_samples`); the example (`example_id`, fewest
    forced tokens at the first position) keeps its clean and shocked text up to 10 steps after
    the shock.
    """
    from ..core.models import load_model
    from ..dynamics.sweeps import distinct_share, shock_sweep
    from .dynamics_runs import experiment_samples

    shocks, selection, examples = [], [], {}
    for spec in specs:
        lm = load_model(spec)
        samples, clean, groups, _ = experiment_samples(lm, records, controls=controls, k=k, m=m, clean_m=clean_m,
                                                       threshold=threshold, max_memorized=max_memorized,
                                                       max_controls=max_controls, batch_size=batch_size)
        group_of = dict(zip(clean["id"], clean["id"].map(groups)))
        selection.append(clean.assign(spec=spec, group=clean["id"].map(group_of),
                                      distinct=clean["generated_ids"].map(distinct_share))[
            ["spec", "id", "group", "token_match", "distinct"]])
        frame = shock_sweep(lm, samples, clean, alphas=alphas, positions=positions, max_shift=max_shift,
                            min_tail=min_tail)
        shocks.append(frame.drop(columns="generated_ids").assign(spec=spec, group=frame["id"].map(group_of)))
        pick = frame[(frame["id"] == example_id) & (frame["alpha"] == min(alphas))
                     & (frame["position"] == min(positions))]
        if len(pick):
            row = pick.iloc[0]
            end = row["shock_step"] + row["shock_tokens"] + 10
            clean_ids = list(clean.set_index("id").loc[example_id, "generated_ids"])
            examples[spec] = (lm.tokenizer.decode(clean_ids[:end]),
                              lm.tokenizer.decode(list(row["generated_ids"])[:end]))
        del lm
        gc.collect()
    return ShockRuns(pd.concat(shocks, ignore_index=True), pd.concat(selection, ignore_index=True), examples)


def percent(x: float) -> str:
    """A share as a whole percentage, '--' when undefined."""
    return format_number(100 * x, 0)


def step_count(x: float) -> str:
    """A median number of steps: whole when it is, one decimal otherwise, '--' when undefined."""
    return format_number(x, 0 if np.isfinite(x) and float(x).is_integer() else 1)


def _summary_row(frame: pd.DataFrame, **where) -> pd.Series | None:
    mask = np.ones(len(frame), dtype=bool)
    for column, value in where.items():
        mask &= (frame[column] == value).to_numpy()
    return frame[mask].iloc[0] if mask.any() else None


def shock_table(shock: ShockRuns, overall: pd.DataFrame, per_alpha: pd.DataFrame, *, models: Sequence[str],
                alphas: Sequence[int], positions: Sequence[int], labels: Mapping[str, str], k: int, m: int,
                min_tail: int, max_shift: int) -> tuple[pd.DataFrame, str]:
    """The LaTeX rows (model x group x forced tokens, then 'all') and the caption of the shock table."""
    esc = latex_escape
    rows = []
    for spec in models:
        for group in GROUPS:
            parts = [(str(int(a)), _summary_row(per_alpha, spec=spec, group=group, alpha=a)) for a in alphas]
            for label, r in parts + [("all", _summary_row(overall, spec=spec, group=group))]:
                if r is None:
                    continue
                rows.append({"Model": esc(labels.get(spec, spec)), "Group": group, "Forced": label,
                             "Runs": int(r["n"]), "Re-lock (\\%)": percent(r["relock_rate"]),
                             "With shift (\\%)": percent(r["relock_shifted_rate"]),
                             "Steps to re-lock": step_count(r["median_relock_after"]),
                             "Kept after (\\%)": percent(r["mean_retention_after"])})
    selection = shock.selection
    n_mem = selection[selection["group"] == "memorized"].groupby("spec")["id"].count()
    n_ctrl = selection[selection["group"] == "control"].groupby("spec")["id"].count()
    counts = "; ".join(f"{esc(labels.get(s, s))}: {int(n_mem.get(s, 0))} memorized, {int(n_ctrl.get(s, 0))} controls"
                       for s in models)
    distinct = selection.groupby(["spec", "group"])["distinct"].mean()
    repetition = "; ".join(f"{esc(labels.get(s, s))}: " + ", ".join(
        f"{g} {percent(distinct[(s, g)])}\\%" for g in GROUPS if (s, g) in distinct.index) for s in models)
    caption = (
        f"Mid-sequence shock recovery (\\texttt{{force\\_token}}): the clean greedy continuation ($k={k}$, $m={m}$) "
        f"is followed up to step $t \\in \\{{{', '.join(str(p) for p in positions)}\\}}$, then the given number of "
        f"wrong tokens is forced (each the model's best non-greedy token) and greedy decoding resumes. Re-lock: the "
        f"rest of the continuation equals the clean one (the true text, for memorized attractors) at the same "
        f"positions from some step on, over at least {min_tail} tokens; with shift: resuming up to {max_shift} tokens "
        f"ahead or behind. Steps to re-lock: median over re-locked runs, counted from the end of the shock. Kept "
        f"after: share of the steps after the shock equal to the clean continuation. Samples: {counts}. Mean share of "
        f"distinct tokens in the clean continuations (low for repetition loops): {repetition}."
    )
    return pd.DataFrame(rows), caption


#: Per-sample observables the memorized-vs-control shock tests compare: re-lock rate, share of post-shock steps kept.
SHOCK_OBSERVABLES = {"relock": "relocked", "kept": "retention_after"}


def shock_tests(shocks: pd.DataFrame, *, seed: int = 0) -> pd.DataFrame:
    """Memorized vs control per model x observable (`SHOCK_OBSERVABLES`): each sample's mean over its shocks,
    two-sided exact permutation test of the difference of means, Holm-corrected over every row."""
    from ..core.stats import holm, permutation_test_means, smallest_permutation_p

    rows = []
    for spec, part in shocks.groupby("spec", sort=False):
        for name, column in SHOCK_OBSERVABLES.items():
            per_sample = part.groupby(["group", "id"], sort=True)[column].mean()
            if not set(GROUPS) <= set(per_sample.index.get_level_values("group")):
                continue
            mem, ctrl = per_sample.loc["memorized"], per_sample.loc["control"]
            diff, p = permutation_test_means(mem, ctrl, seed=seed)
            rows.append({"spec": spec, "observable": name, "n_group": len(mem), "n_control": len(ctrl), "diff": diff,
                         "p": p, "min_p": smallest_permutation_p(len(mem), len(ctrl))})
    frame = pd.DataFrame(rows, columns=["spec", "observable", "n_group", "n_control", "diff", "p", "min_p"])
    frame["p_holm"] = holm(frame["p"].to_numpy()) if len(frame) else []
    return frame


def shock_numbers(shock: ShockRuns, overall: pd.DataFrame, per_alpha: pd.DataFrame, *, models: Sequence[str],
                  keys: Mapping[str, str], k: int, m: int, alphas: Sequence[int], positions: Sequence[int],
                  min_tail: int, max_shift: int, example_id: str) -> dict[str, object]:
    """The macros the paper quotes: settings, per model x group re-lock numbers (all defined), the Holm-corrected
    permutation p of each memorized-minus-control difference (`shock_tests`) and the example."""
    selection = shock.selection
    tests = shock_tests(shock.shocks).set_index(["spec", "observable"])
    distinct = selection.groupby(["spec", "group"])["distinct"].mean()
    numbers: dict[str, object] = {
        "ShockK": k, "ShockM": m, "ShockMinTail": min_tail, "ShockMaxShift": max_shift,
        "ShockPositions": ", ".join(str(p) for p in positions), "ShockAlphas": format_or_list(alphas)}
    numbers["ShockNTests"], numbers["ShockNSignificant"] = len(tests), int((tests["p_holm"] < 0.05).sum())
    numbers["ShockAttainableP"] = format_small(float(tests["min_p"].min())) if len(tests) else "--"
    for spec in models:
        key = keys[spec]
        for name in SHOCK_OBSERVABLES:
            cell = (spec, name)
            numbers[f"{key}Shock{name.title()}P"] = format_small(tests.loc[cell, "p_holm"]) if cell in tests.index else "--"
        for group, gkey in (("memorized", "Mem"), ("control", "Ctrl")):
            numbers[f"{key}ShockN{gkey}"] = int((selection[selection["spec"] == spec]["group"] == group).sum())
            numbers[f"{key}ShockDistinct{gkey}"] = (percent(distinct[(spec, group)])
                                                    if (spec, group) in distinct.index else "--")
            for name in ("Runs", "Relock", "RelockShift", "Steps", "Kept", "RelockOne"):
                numbers[f"{key}Shock{name}{gkey}"] = "--"  # defined even for a model without such samples
            r = _summary_row(overall, spec=spec, group=group)
            if r is None:
                continue
            numbers[f"{key}ShockRuns{gkey}"] = int(r["n"])
            numbers[f"{key}ShockRelock{gkey}"] = percent(r["relock_rate"])
            numbers[f"{key}ShockRelockShift{gkey}"] = percent(r["relock_shifted_rate"])
            numbers[f"{key}ShockSteps{gkey}"] = step_count(r["median_relock_after"])
            numbers[f"{key}ShockKept{gkey}"] = percent(r["mean_retention_after"])
            single = _summary_row(per_alpha, spec=spec, group=group, alpha=1)
            if single is not None:
                numbers[f"{key}ShockRelockOne{gkey}"] = percent(single["relock_rate"])
        for name, text in zip(("Clean", "Shocked"), shock.examples.get(spec, ("--", "--"))):
            flat = " ".join(text.split())  # one line: newlines and runs of spaces become one space
            numbers[f"{key}ShockExample{name}"] = f"\\texttt{{{latex_escape(flat)}}}"
    numbers["ShockExampleId"] = f"\\texttt{{{latex_escape(example_id)}}}"
    return numbers
