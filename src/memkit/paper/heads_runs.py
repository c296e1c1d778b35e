"""Experiment drivers of the attention-head figure (notebook `fig_heads`): scans, effects, table, numbers.

    runs = head_scans(specs, records, k=32, m=16, modes=["mean"], extra_modes={"zoo": ["zero"]})
    res = head_summary(runs, mode="mean", top_n=5, labels=labels)   # effects, concentration, top heads, table
    grids, vmax = effect_grids(res.effects, spec, runs.shapes[spec], mode="mean")   # the heatmaps
    numbers = heads_numbers(runs, res.effects, res.concentration, res.top, keys=keys, labels=labels, k=32, m=16,
                            main_mode="mean", top_n=5)

Every attention head (of the scanned layers) is ablated in turn (`memkit.mechanisms.ablation`) on
each model's memorized samples and controls (`memkit.paper.sets`); a model is loaded, scanned in
every mode and released before the next one.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .report import format_number, latex_escape, macro_key

GROUP_KEYS = (("memorized", "Mem"), ("control", "Ctrl"))


@dataclass
class HeadScans:
    """What `head_scans` measured: one row per model x mode x head x sample in `scans` (with `spec`, `group`)."""

    specs: list[str]
    scans: pd.DataFrame
    shapes: dict[str, tuple[int, int]]  # spec -> (layers, heads per layer)
    families: dict[str, str]  # spec -> architecture family


def scan_modes(spec: str, modes: Sequence[str], extra_modes: Mapping[str, Sequence[str]] | None = None) -> list[str]:
    """The ablation modes scanned for `spec`: `modes`, then its extra modes (key `zoo` for every organism)."""
    extra = (extra_modes or {}).get("zoo" if spec.startswith("zoo:") else spec, [])
    return list(modes) + [mode for mode in extra if mode not in modes]


def head_scans(specs: Sequence[str], records: Sequence[dict], *, k: int, m: int, threshold: float = 0.9,
               max_memorized: int | None = None, max_controls: int | None = None, modes: Sequence[str] = ("mean",),
               extra_modes: Mapping[str, Sequence[str]] | None = None, layer_step: Mapping[str, int] | None = None,
               mean_windows: int = 16, greedy: bool = True, batch_size: int = 16,
               progress: bool = False) -> HeadScans:
    """Ablate every head of every `layer_step[spec]`-th layer (default all) in each mode, per model.

    `mean` ablation uses head means over `mean_windows` windows of the model's generic text.
    """
    from ..core.arch import head_shape
    from ..core.models import load_model
    from ..mechanisms.ablation import head_means, head_scan
    from .sets import generic_texts_for, memorization_sets

    layer_step = layer_step or {}
    scans, shapes, families = [], {}, {}
    for spec in specs:
        lm = load_model(spec)
        samples, groups = memorization_sets(lm, records, k=k, m=m, threshold=threshold, max_memorized=max_memorized,
                                            max_controls=max_controls)
        n_layers, n_heads, _ = head_shape(lm.model)
        shapes[spec] = (n_layers, n_heads)
        families[spec] = lm.arch
        heads = [(layer, head) for layer in range(0, n_layers, layer_step.get(spec, 1)) for head in range(n_heads)]
        fit_texts, _ = generic_texts_for(lm)
        model_modes = scan_modes(spec, modes, extra_modes)
        means = head_means(lm, fit_texts, max_windows=mean_windows) if "mean" in model_modes else None
        for mode in model_modes:
            scan = head_scan(lm, samples, mode=mode, means=means if mode == "mean" else None, heads=heads,
                             greedy=greedy, batch_size=batch_size, progress=progress)
            scans.append(scan.assign(spec=spec, group=scan["id"].map(groups)))
        del lm
        gc.collect()
    return HeadScans(list(specs), pd.concat(scans, ignore_index=True), shapes, families)


def scan_overview(scans: pd.DataFrame) -> pd.DataFrame:
    """Per model x mode x group: samples, runs, mean and min change of log-probability, mean retention."""
    return scans.groupby(["spec", "mode", "group"], sort=False).agg(
        samples=("id", "nunique"), runs=("id", "size"), mean_delta_logprob=("delta_logprob", "mean"),
        min_delta_logprob=("delta_logprob", "min"), mean_retention=("retention", "mean"))


def head_effect_means(scans: pd.DataFrame) -> pd.DataFrame:
    """Per model x mode x group x head: mean change of log-probability and Biderman score, mean retention.

    The clean rows of a scan (layer -1) are left out.
    """
    return (scans[scans["layer"] >= 0].groupby(["spec", "mode", "group", "layer", "head"], sort=False)
            .agg(delta_logprob=("delta_logprob", "mean"), delta_token_match=("delta_token_match", "mean"),
                 retention=("retention", "mean")).reset_index())


def effect_grids(effects: pd.DataFrame, spec: str, shape: tuple[int, int], *, mode: str,
                 groups: Sequence[str] = ("memorized", "control")) -> tuple[dict[str, np.ndarray], float]:
    """({group: layer x head grid of mean delta log p, NaN where not scanned}, symmetric colour limit) of one model.

    The heatmaps of the figure; the limit is the largest |delta log p| of the model in `mode` over
    every group (at least 1e-6), so both groups share one colour scale centred on zero.
    """
    part = effects[(effects["spec"] == spec) & (effects["mode"] == mode)]
    grids = {}
    for group in groups:
        grid = np.full(shape, np.nan)
        sub = part[part["group"] == group]
        grid[sub["layer"].to_numpy(), sub["head"].to_numpy()] = sub["delta_logprob"].to_numpy()
        grids[group] = grid
    return grids, max(float(part["delta_logprob"].abs().max()), 1e-6)


def head_ticks(n_heads: int) -> tuple[range, list[str]]:
    """(positions, labels) of a heatmap's head axis: every head up to 10, else every other one (labels stay legible)."""
    return range(n_heads), [str(h) if n_heads <= 10 or h % 2 == 0 else "" for h in range(n_heads)]


def concentration_table(effects: pd.DataFrame, shapes: Mapping[str, tuple[int, int]], *,
                        top_n: int = 5) -> pd.DataFrame:
    """Per model x mode: how concentrated the memorized samples' |delta log p| is over heads and layers.

    Top-1/3/`top_n` shares, Gini and top layer (`ablation.concentration`), the top layer's relative
    depth, heads scanned and total, and how many heads bring the mean retention below 0.5.
    """
    from ..mechanisms.ablation import concentration

    rows = []
    for (spec, mode), part in effects[effects["group"] == "memorized"].groupby(["spec", "mode"], sort=False):
        stats = concentration(part, "delta_logprob", ks=(1, 3, top_n))
        n_layers, n_heads = shapes[spec]
        rows.append({"spec": spec, "mode": mode, **stats, "top_layer_depth": (stats["top_layer"] + 1) / n_layers,
                     "heads_scanned": len(part), "heads_total": n_layers * n_heads,
                     "n_breaking": int((part["retention"] < 0.5).sum())})
    return pd.DataFrame(rows)


def top_heads_table(effects: pd.DataFrame, specs: Sequence[str], *, mode: str, top_n: int,
                    labels: Mapping[str, str]) -> pd.DataFrame:
    """Per model, the `top_n` heads lowering the memorized log-probability most in `mode`, with their controls.

    Columns: model label, head (`L<layer>.H<head>`), mean delta log p of the memorized samples and of
    the controls (NaN when not scanned), memorized retention, share of the total |delta log p|.
    """
    rows = []
    for spec in specs:
        part = effects[(effects["spec"] == spec) & (effects["mode"] == mode)]
        mem = part[part["group"] == "memorized"]
        ctrl = part[part["group"] == "control"].set_index(["layer", "head"])
        total = mem["delta_logprob"].abs().sum()
        for _, row in mem.sort_values(["delta_logprob", "layer", "head"], kind="stable").head(top_n).iterrows():
            key = (row["layer"], row["head"])
            rows.append({
                "model": labels[spec], "head": f"L{int(row['layer'])}.H{int(row['head'])}",
                "dlp_mem": row["delta_logprob"],
                "dlp_ctrl": ctrl.loc[key, "delta_logprob"] if key in ctrl.index else np.nan,
                "ret_mem": row["retention"], "share": abs(row["delta_logprob"]) / total if total > 0 else np.nan})
    return pd.DataFrame(rows)


def heads_table(top: pd.DataFrame, *, mode: str, top_n: int) -> tuple[pd.DataFrame, str]:
    """The top-heads table (LaTeX column names) and its caption."""
    table = top.rename(columns={"model": "Model", "head": "Head", "dlp_mem": r"$\Delta\log p$ mem.",
                                "dlp_ctrl": r"$\Delta\log p$ ctrl.", "ret_mem": "retention mem.", "share": "share"})
    caption = (f"The {top_n} heads whose {mode} ablation lowers the teacher-forced log-probability "
               "of memorized continuations the most (mean over memorized samples, nats summed over the "
               "continuation), the same heads on the controls, the greedy retention of the memorized "
               "samples, and each head's share of the total $|\\Delta\\log p|$ over all heads. "
               "Generated by \\texttt{notebooks/fig\\_heads.py}.")
    return table, caption


@dataclass
class HeadSummary:
    """What `head_summary` derived from the scans: per-head effects, concentration, top heads and their table."""

    mode: str  # the mode of the top heads, the table and the heatmaps
    effects: pd.DataFrame  # head_effect_means
    concentration: pd.DataFrame  # concentration_table
    top: pd.DataFrame  # top_heads_table
    table: pd.DataFrame  # heads_table: LaTeX column names
    caption: str


def head_summary(runs: HeadScans, *, mode: str, top_n: int, labels: Mapping[str, str]) -> HeadSummary:
    """Per-head mean effects, their concentration (every mode) and the `top_n` heads of `mode` with their table."""
    effects = head_effect_means(runs.scans)
    top = top_heads_table(effects, runs.specs, mode=mode, top_n=top_n, labels=labels)
    table, caption = heads_table(top, mode=mode, top_n=top_n)
    return HeadSummary(mode, effects, concentration_table(effects, runs.shapes, top_n=top_n), top, table, caption)


def _percent(value: float) -> str:
    return format_number(100 * value, 0)


def heads_numbers(runs: HeadScans, effects: pd.DataFrame, conc: pd.DataFrame, top: pd.DataFrame, *,
                  keys: Mapping[str, str], labels: Mapping[str, str], k: int, m: int, main_mode: str,
                  top_n: int) -> dict[str, object]:
    """The `numbers_fig_heads.tex` macros: per model and mode, concentration, mean/min effects, best head.

    Modes other than `main_mode` carry their key in the name (`SmolHeadsZeroGini`); with two
    modes, `<key>HeadsModeRankCorr` is the rank correlation of their memorized per-head effects.
    """
    numbers: dict[str, object] = {"HeadsK": k, "HeadsM": m, "HeadsMode": main_mode, "HeadsTopN": top_n}
    for spec in runs.specs:
        key = keys[spec]
        n_layers, n_heads = runs.shapes[spec]
        numbers[f"{key}HeadsLayers"] = n_layers
        numbers[f"{key}HeadsPerLayer"] = n_heads
        numbers[f"{key}HeadsArch"] = latex_escape(runs.families[spec])
        spec_modes = list(runs.scans.loc[runs.scans["spec"] == spec, "mode"].unique())
        for mode in spec_modes:
            mkey = "" if mode == main_mode else macro_key(mode)
            row = conc[(conc["spec"] == spec) & (conc["mode"] == mode)]
            if row.empty:
                continue
            row = row.iloc[0]
            numbers[f"{key}Heads{mkey}TopOneShare"] = _percent(row["top1_share"])
            numbers[f"{key}Heads{mkey}TopShare"] = _percent(row[f"top{top_n}_share"])
            numbers[f"{key}Heads{mkey}Gini"] = format_number(row["gini"])
            numbers[f"{key}Heads{mkey}TopLayer"] = int(row["top_layer"])
            numbers[f"{key}Heads{mkey}TopLayerDepth"] = _percent(row["top_layer_depth"])
            numbers[f"{key}Heads{mkey}TopLayerShare"] = _percent(row["top_layer_share"])
            numbers[f"{key}Heads{mkey}Scanned"] = int(row["heads_scanned"])
            numbers[f"{key}Heads{mkey}Breaking"] = int(row["n_breaking"])
            part = effects[(effects["spec"] == spec) & (effects["mode"] == mode)]
            for group, gkey in GROUP_KEYS:
                sub = part[part["group"] == group]
                numbers[f"{key}Heads{mkey}MeanDelta{gkey}"] = format_number(sub["delta_logprob"].mean())
                numbers[f"{key}Heads{mkey}MinDelta{gkey}"] = format_number(sub["delta_logprob"].min())
            best = top[top["model"] == labels[spec]]
            if mode == main_mode and len(best):
                numbers[f"{key}HeadsBest"] = best["head"].iloc[0]
                numbers[f"{key}HeadsBestDelta"] = format_number(best["dlp_mem"].iloc[0])
                numbers[f"{key}HeadsBestDeltaCtrl"] = format_number(best["dlp_ctrl"].iloc[0])
        if len(spec_modes) > 1:  # do the two ablation modes agree on which heads matter?
            memorized = effects[(effects["spec"] == spec) & (effects["group"] == "memorized")]
            merged = memorized[memorized["mode"] == spec_modes[0]].merge(
                memorized[memorized["mode"] == spec_modes[1]], on=["layer", "head"], suffixes=("_a", "_b"))
            rho = merged["delta_logprob_a"].rank().corr(merged["delta_logprob_b"].rank())
            numbers[f"{key}HeadsModeRankCorr"] = format_number(rho)
    return numbers
