"""Experiment driver of Figure 1, memorization vs model size (notebook `fig_scale`): points and numbers.

    ours = measured_points(models, records, k=16, m=16, modes=["raw", "chat"], seed_ids=seed_ids(literature_csv))
    organisms = organism_points("smoke", records, k=16, m=16, seed_ids=...)   # the zoo's final checkpoints
    lit = literature_points("data/literature_scale.csv", "max over 7 attractors")
    numbers = scale_numbers(ours, organisms, lit, n_models=len(models), macro_names={...})

Measured points come from the same `run_grid` call as `tab_attractors` (a warm cache recomputes
nothing); literature points are quoted, never measured.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..core.metrics import SEED_SCORE_THRESHOLD
from ..paths import PROJECT_ROOT
from .report import format_number, format_params_whole, latex_escape, macro_key

QUOTED_MEASURED = "quoted: original study (chat API)"
QUOTED_UNCITED = "quoted: uncited in original study"
POINT_COLUMNS = ["spec", "mode", "n_params", "n", "max_seed_score_seed_ids", "best_seed_id", "mem_exact_rate",
                 "mem_near_verbatim_rate", "mem_seed_rate"]


def seed_ids(literature: str | Path) -> list[str]:
    """The seed's attractors, in order of first appearance in the per-attractor literature scores."""
    return list(dict.fromkeys(pd.read_csv(PROJECT_ROOT / literature)["attractor_id"]))


def _graded_runs(specs: Sequence[str], records: Sequence[dict], *, modes: Sequence[str], k: int, m: int,
                 short: Mapping[str, Sequence[int]] | None, batch_size: int, biderman_m: int) -> pd.DataFrame:
    from .experiments import add_verdicts, run_grid

    runs = run_grid(list(specs), records, k=k, m=m, modes=list(modes), short=short, batch_size=batch_size,
                    progress=False)
    runs = add_verdicts(runs, biderman_m=biderman_m)
    return runs[runs["meta_category"] != "control"]


def measured_points(specs: Sequence[str], records: Sequence[dict], *, k: int, m: int, modes: Sequence[str],
                    seed_ids: Sequence[str], short: Mapping[str, Sequence[int]] | None = None,
                    batch_size: int = 16, biderman_m: int = 32,
                    labels: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per model x mode: rule rates over the attractors, best seed score and attractor over `seed_ids`."""
    from .experiments import summarize

    rows = _graded_runs(specs, records, modes=modes, k=k, m=m, short=short, batch_size=batch_size,
                        biderman_m=biderman_m)
    ours = summarize(rows, seed_ids=seed_ids)
    best_seven = (rows[rows["id"].isin(seed_ids)].sort_values("seed_score", ascending=False, kind="stable")
                  .drop_duplicates(["spec", "mode"]).set_index(["spec", "mode"])["id"])
    ours["best_seed_id"] = [best_seven.get((s, md), "") for s, md in zip(ours["spec"], ours["mode"])]
    ours["label"] = ours["spec"].map(lambda s: (labels or {}).get(s, s))
    return ours


def organism_points(zoo_profile: str | None, records: Sequence[dict], *, k: int, m: int, seed_ids: Sequence[str],
                    short: Mapping[str, Sequence[int]] | None = None, batch_size: int = 16,
                    biderman_m: int = 32, columns: Sequence[str] = ()) -> pd.DataFrame:
    """One row per organism of a zoo profile (built if needed; final checkpoints, raw prompt), with `best_id`.

    With `zoo_profile` None: an empty frame with `columns`.
    """
    from .experiments import summarize

    if zoo_profile is None:
        return pd.DataFrame(columns=list(columns))
    from ..organisms import zoo

    zoo.build_zoo(zoo_profile, progress=False)
    rows = _graded_runs(zoo.zoo_specs(zoo_profile), records, modes=["raw"], k=k, m=m, short=short,
                        batch_size=batch_size, biderman_m=biderman_m)
    organisms = summarize(rows, seed_ids=seed_ids)
    organisms["label"] = organisms["spec"]
    organisms["best_id"] = (rows.sort_values("token_match", ascending=False, kind="stable").drop_duplicates("spec")
                            .set_index("spec")["id"].reindex(organisms["spec"]).to_numpy())
    return organisms


def literature_points(path: str | Path, metric: str) -> pd.DataFrame:
    """The quoted points of `literature_scale.csv` whose metric starts with `metric`, with their `kind`."""
    lit = pd.read_csv(PROJECT_ROOT / path)
    lit = lit[lit["metric"].str.startswith(metric)].reset_index(drop=True)
    lit["kind"] = np.where(lit["study"].str.startswith("original study"), QUOTED_MEASURED, QUOTED_UNCITED)
    return lit


def stack_index(xs: Sequence[float], ys: Sequence[float], *, dy: float = 0.06, decades: float = 1.0) -> list[int]:
    """How many earlier points sit close to each point (score within `dy`, sizes within 10^decades): stacks labels."""
    index, placed = [], []
    for x, y in zip(xs, ys):
        index.append(sum(abs(y - py) < dy and abs(np.log10(x / px)) < decades for px, py in placed))
        placed.append((x, y))
    return index


def _times_smaller(reference: float, n_params: float) -> str:
    """How many times `n_params` fits into `reference`, rounded down, so that "more than N times smaller" holds."""
    return str(int(reference // n_params))


def _texttt(text: str) -> str:
    return f"\\texttt{{{latex_escape(text)}}}"


def scale_numbers(ours: pd.DataFrame, organisms: pd.DataFrame, lit: pd.DataFrame, *, n_models: int,
                  macro_names: Mapping[str, str] | None = None) -> dict[str, object]:
    """The macros the paper quotes: counts, sizes, quoted extremes, organism bests, per model x mode scores.

    Size ratios are against the smallest model the original study measured itself: `ScaleSizeRatio` for the
    largest model measured here, `Scale<Name>SizeRatio` per model (e.g. `ScaleSmolSizeRatio`).
    """
    human = format_params_whole
    measured_lit = lit[lit["kind"] == QUOTED_MEASURED]
    uncited_lit = lit[lit["kind"] == QUOTED_UNCITED]
    has_measured = len(measured_lit) > 0
    numbers: dict[str, object] = {
        "ScaleNModels": n_models, "ScaleNCombos": len(ours), "ScaleNLitPoints": len(lit),
        "ScaleSmallestParams": human(ours["n_params"].min()), "ScaleLargestParams": human(ours["n_params"].max()),
        "ScaleOursAboveThreshold": int((ours["max_seed_score_seed_ids"] >= SEED_SCORE_THRESHOLD).sum()),
        "ScaleLitMeasuredMax": format_number(measured_lit["value"].max()) if has_measured else "--",
        "ScaleLitMeasuredSmallestParams": human(measured_lit["params"].min()) if has_measured else "--",
        "ScaleLitUncitedMin": format_number(uncited_lit["value"].min()) if len(uncited_lit) else "--",
        "ScaleLitUncitedSmallestParams": human(uncited_lit["params"].min()) if len(uncited_lit) else "--",
        # every model measured here is more than this many times smaller than the smallest quoted measured model
        "ScaleSizeRatio": (_times_smaller(measured_lit["params"].min(), ours["n_params"].max())
                           if has_measured else "--"),
        "ScaleNOrganisms": len(organisms),
    }
    if len(organisms):
        best = organisms.sort_values("mem_biderman_rate", ascending=False, kind="stable").iloc[0]
        numbers.update({
            "ScaleOrganismSmallestParams": human(organisms["n_params"].min()),
            "ScaleOrganismLargestParams": human(organisms["n_params"].max()),
            "ScaleOrganismMaxSeedSeven": format_number(organisms["max_seed_score_seed_ids"].max()),
            "ScaleOrganismMaxExactRate": format_number(organisms["mem_exact_rate"].max()),
            "ScaleOrganismMaxBidermanRate": format_number(organisms["mem_biderman_rate"].max()),
            "ScaleOrganismBestId": _texttt(str(best["best_id"])),
        })
    for row in ours.itertuples():
        name = "Scale" + ((macro_names or {}).get(row.spec) or macro_key(row.model))
        # this model against the smallest quoted measured model (one value per model, whatever the mode)
        numbers[f"{name}SizeRatio"] = (_times_smaller(measured_lit["params"].min(), row.n_params)
                                       if has_measured else "--")
        key = name + macro_key(row.mode)
        numbers[f"{key}MaxSeedSeven"] = format_number(row.max_seed_score_seed_ids)
        numbers[f"{key}BestSeven"] = _texttt(row.best_seed_id) if row.best_seed_id else "--"
        numbers[f"{key}Params"] = human(row.n_params)
    return numbers
