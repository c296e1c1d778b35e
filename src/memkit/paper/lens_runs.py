"""Experiment drivers of the logit-lens figure (notebook `fig_lens`): lens runs, lock-in summary, numbers.

    runs = lens_runs(specs, records, k=32, m=32, max_memorized=6, max_controls=6, batch_size=8)
    summary = lock_in_summary(runs)
    curve = top1_curves(runs)                        # the figure: top-1 share per block
    depths, shares, median = lock_in_cdf(runs, spec, "memorized")   # and the lock-in distribution
    numbers = lens_numbers(runs, summary, keys=keys, k=32, m=32, threshold=0.9)

A model is loaded, its memorized samples and controls chosen (`memkit.paper.sets`), decoded
through the logit lens (`memkit.mechanisms.lens`) and released before the next one.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .report import format_number

GROUPS = ("memorized", "control")


@dataclass
class LensRuns:
    """What `lens_runs` measured, with `spec` and `group` columns on both frames."""

    specs: list[str]
    lens: pd.DataFrame  # per model x sample x position x layer: rank and top-1 of the true token
    locks: pd.DataFrame  # per model x sample x position: lock-in layer, first top-1, final top-1, relative depth
    n_layers: dict[str, int]


def lens_runs(specs: Sequence[str], records: Sequence[dict], *, k: int, m: int, threshold: float = 0.9,
              max_memorized: int | None = None, max_controls: int | None = None, batch_size: int = 8,
              progress: bool = False) -> LensRuns:
    """Logit lens and lock-in layers of every model's memorized samples and controls.

    `batch_size` is the lens batch; the samples are chosen with `memorization_sets`' own batch size.
    The lock-in `depth` is the lock-in layer over the last layer (0: the first block, 1: the output).
    """
    from ..core.models import load_model
    from ..mechanisms.lens import lock_in, logit_lens
    from .sets import memorization_sets

    frames, locks, n_layers = [], [], {}
    for spec in specs:
        lm = load_model(spec)
        samples, groups = memorization_sets(lm, records, k=k, m=m, threshold=threshold, max_memorized=max_memorized,
                                            max_controls=max_controls)
        n_layers[spec] = lm.n_layers
        frame = logit_lens(lm, samples, batch_size=batch_size, progress=progress)
        frames.append(frame.assign(spec=spec, group=frame["id"].map(groups)))
        lock = lock_in(frame)
        locks.append(lock.assign(spec=spec, group=lock["id"].map(groups)))
        del lm
        gc.collect()
    lens = pd.concat(frames, ignore_index=True)
    locks = pd.concat(locks, ignore_index=True)
    locks["depth"] = locks["lock_in"] / locks["spec"].map(n_layers).sub(1)
    return LensRuns(list(specs), lens, locks, n_layers)


def lock_in_summary(runs: LensRuns) -> pd.DataFrame:
    """Per model x group: samples, positions, final top-1 rate and the lock-in of the finally correct positions."""
    rows = []
    for (spec, group), part in runs.locks.groupby(["spec", "group"], sort=False):
        final = part[part["final_top1"]]
        rows.append({"spec": spec, "group": group, "samples": part["id"].nunique(), "positions": len(part),
                     "final_top1": part["final_top1"].mean(), "n_locked": len(final),
                     "median_lock_in": final["lock_in"].median() if len(final) else np.nan,
                     "median_depth": final["depth"].median() if len(final) else np.nan,
                     "mean_first_top1": final["first_top1"].mean() if len(final) else np.nan,
                     "n_layers": runs.n_layers[spec]})
    return pd.DataFrame(rows)


def relative_depth(layer, n_layers: int):
    """Where block `layer` ends as a share of the model's depth, (layer + 1) / n_layers: models of any depth align."""
    return (layer + 1) / n_layers


def top1_curves(runs: LensRuns) -> pd.DataFrame:
    """Per model x group x layer: the share of positions whose true token is top-1 after that block.

    `depth` is the block's `relative_depth` (the figure's x axis).
    """
    curve = runs.lens.groupby(["spec", "group", "layer"], sort=False)["is_top1"].mean().reset_index()
    return curve.assign(depth=relative_depth(curve["layer"], curve["spec"].map(runs.n_layers)))


def lock_in_cdf(runs: LensRuns, spec: str, group: str) -> tuple[np.ndarray, np.ndarray, float] | None:
    """(sorted relative lock-in depths, cumulative shares, median lock-in depth) of the finally correct positions.

    The figure's lower panel (a step function) and the median marker of the upper one; None when no
    position of that model and group is top-1 at the output.
    """
    locks = runs.locks
    final = locks[(locks["spec"] == spec) & (locks["group"] == group) & locks["final_top1"]]
    if not len(final):
        return None
    depths = np.sort(relative_depth(final["lock_in"].to_numpy(), runs.n_layers[spec]))
    return depths, np.arange(1, len(depths) + 1) / len(depths), relative_depth(final["lock_in"].median(),
                                                                                 runs.n_layers[spec])


def lens_numbers(runs: LensRuns, summary: pd.DataFrame, *, keys: Mapping[str, str], k: int, m: int,
                 threshold: float) -> dict[str, object]:
    """The `numbers_fig_lens.tex` macros: per model and group, top-1 rate and lock-in; does memorization lock earlier?

    `<key>LensEarlier` compares the median lock-in depths of the memorized samples and the controls
    ('--' when either is undefined).
    """
    numbers: dict[str, object] = {"LensK": k, "LensM": m, "LensThreshold": f"{threshold:g}"}
    earlier = []
    for spec in runs.specs:
        key = keys[spec]
        numbers[f"{key}LensLayers"] = runs.n_layers[spec]
        depths = {}
        for group, gkey in zip(GROUPS, ("Mem", "Ctrl")):
            row = summary[(summary["spec"] == spec) & (summary["group"] == group)]
            if row.empty:
                for name in ("N", "FinalTop", "Lock", "LockDepth", "FirstTop"):
                    numbers[f"{key}Lens{name}{gkey}"] = "--"
                continue
            row = row.iloc[0]
            depths[group] = row["median_depth"]
            numbers[f"{key}LensN{gkey}"] = int(row["samples"])
            numbers[f"{key}LensFinalTop{gkey}"] = format_number(row["final_top1"])
            numbers[f"{key}LensLock{gkey}"] = format_number(row["median_lock_in"], 0)
            numbers[f"{key}LensLockDepth{gkey}"] = format_number(100 * row["median_depth"], 0)
            numbers[f"{key}LensFirstTop{gkey}"] = format_number(row["mean_first_top1"], 1)
        if len(depths) == 2 and all(np.isfinite(d) for d in depths.values()):
            verdict = bool(depths["memorized"] < depths["control"])
            numbers[f"{key}LensEarlier"] = "earlier" if verdict else "not earlier"
            earlier.append(verdict)
        else:
            numbers[f"{key}LensEarlier"] = "--"
    numbers["LensNModels"] = len(runs.specs)
    numbers["LensNEarlier"] = sum(earlier)
    numbers["LensNCompared"] = len(earlier)
    return numbers
