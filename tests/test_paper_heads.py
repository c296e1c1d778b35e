"""memkit.paper.heads_runs on hand-made per-head effects: modes, concentration, top heads, table, numbers."""

import math

import numpy as np
import pandas as pd

from memkit.paper import heads_runs

HEADS = [(0, 0), (0, 1), (1, 0), (1, 1)]


def _effects():
    def rows(mode, group, deltas, retention, heads=HEADS):
        return pd.DataFrame({"spec": "m", "mode": mode, "group": group, "layer": [h[0] for h in heads],
                             "head": [h[1] for h in heads], "delta_logprob": deltas, "delta_token_match": 0.0,
                             "retention": retention})
    return pd.concat([rows("mean", "memorized", [-3.0, -1.0, -2.0, -4.0], [0.2, 0.9, 1.0, 0.4]),
                      rows("mean", "control", [-0.5, 0.1, 0.0], [1.0, 1.0, 1.0], heads=HEADS[:3]),
                      rows("zero", "memorized", [-1.0, -2.0, -3.0, -4.0], [1.0, 1.0, 1.0, 1.0])], ignore_index=True)


def test_scan_modes_adds_extra_modes_once():
    assert heads_runs.scan_modes("zoo:t/1k@final", ["mean"], {"zoo": ["zero", "mean"]}) == ["mean", "zero"]
    assert heads_runs.scan_modes("gemma-3-270m", ["mean"], {"zoo": ["zero"]}) == ["mean"]
    assert heads_runs.scan_modes("gemma-3-270m", ["mean"], None) == ["mean"]


def test_head_effect_means_drops_clean_rows():
    scans = pd.DataFrame({"spec": "m", "mode": "mean", "group": "memorized", "id": ["a", "b", "a", "b"],
                          "layer": [-1, -1, 0, 0], "head": [-1, -1, 1, 1], "delta_logprob": [0.0, 0.0, -1.0, -3.0],
                          "delta_token_match": [0.0, 0.0, -0.5, 0.0], "retention": [1.0, 1.0, 0.5, 1.0]})
    effects = heads_runs.head_effect_means(scans)
    assert len(effects) == 1 and effects.iloc[0]["delta_logprob"] == -2.0 and effects.iloc[0]["retention"] == 0.75


def test_concentration_table():
    conc = heads_runs.concentration_table(_effects(), {"m": (2, 2)}, top_n=2).set_index("mode")
    mean = conc.loc["mean"]
    assert math.isclose(mean["top1_share"], 0.4) and math.isclose(mean["top2_share"], 0.7)
    assert math.isclose(mean["top3_share"], 0.9)
    assert mean["top_layer"] == 1 and math.isclose(mean["top_layer_share"], 0.6) and mean["top_layer_depth"] == 1.0
    assert (mean["heads_scanned"], mean["heads_total"], mean["n_breaking"]) == (4, 4, 2)
    assert list(conc.index) == ["mean", "zero"]


def test_top_heads_table_and_latex_table():
    top = heads_runs.top_heads_table(_effects(), ["m"], mode="mean", top_n=2, labels={"m": "Model"})
    assert top["head"].tolist() == ["L1.H1", "L0.H0"] and top["dlp_mem"].tolist() == [-4.0, -3.0]
    assert math.isnan(top["dlp_ctrl"].iloc[0]) and top["dlp_ctrl"].iloc[1] == -0.5  # L1.H1 not scanned on controls
    assert top["share"].tolist() == [0.4, 0.3] and top["ret_mem"].tolist() == [0.4, 0.2]
    table, caption = heads_runs.heads_table(top, mode="mean", top_n=2)
    assert list(table.columns) == ["Model", "Head", r"$\Delta\log p$ mem.", r"$\Delta\log p$ ctrl.",
                                   "retention mem.", "share"]
    assert caption.startswith("The 2 heads whose mean ablation lowers")


def test_heads_numbers():
    effects = _effects()
    runs = heads_runs.HeadScans(["m"], effects, {"m": (2, 2)}, {"m": "llama_x"})
    conc = heads_runs.concentration_table(effects, runs.shapes, top_n=2)
    top = heads_runs.top_heads_table(effects, ["m"], mode="mean", top_n=2, labels={"m": "Model"})
    numbers = heads_runs.heads_numbers(runs, effects, conc, top, keys={"m": "M"}, labels={"m": "Model"}, k=32, m=16,
                                       main_mode="mean", top_n=2)
    assert numbers["MHeadsArch"] == "llama\\_x" and numbers["MHeadsLayers"] == 2
    assert (numbers["MHeadsTopOneShare"], numbers["MHeadsTopShare"], numbers["MHeadsTopLayerShare"]) == ("40", "70",
                                                                                                         "60")
    assert (numbers["MHeadsTopLayer"], numbers["MHeadsTopLayerDepth"], numbers["MHeadsBreaking"]) == (1, "100", 2)
    assert (numbers["MHeadsMeanDeltaMem"], numbers["MHeadsMinDeltaMem"]) == ("-2.50", "-4.00")
    assert numbers["MHeadsMeanDeltaCtrl"] == "-0.13"
    assert (numbers["MHeadsBest"], numbers["MHeadsBestDelta"], numbers["MHeadsBestDeltaCtrl"]) == ("L1.H1", "-4.00",
                                                                                                    "--")
    # the second mode: its own keys, no control samples ('--'), rank correlation with the first
    assert numbers["MHeadsZeroTopOneShare"] == "40" and numbers["MHeadsZeroMeanDeltaCtrl"] == "--"
    assert numbers["MHeadsModeRankCorr"] == "0.40"


def test_effect_grids_share_one_colour_scale():
    grids, vmax = heads_runs.effect_grids(_effects(), "m", (2, 2), mode="mean")
    assert list(grids) == ["memorized", "control"] and vmax == 4.0  # largest |delta| of the mode, both groups
    assert grids["memorized"].tolist() == [[-3.0, -1.0], [-2.0, -4.0]]
    control = grids["control"]
    assert control[:, 0].tolist() == [-0.5, 0.0] and control[0, 1] == 0.1 and math.isnan(control[1, 1])  # not scanned
    grids, vmax = heads_runs.effect_grids(_effects(), "m", (2, 2), mode="zero")
    assert vmax == 4.0 and bool(np.isnan(grids["control"]).all())
    _, vmax = heads_runs.effect_grids(_effects().assign(delta_logprob=0.0), "m", (2, 2), mode="mean")
    assert vmax == 1e-6  # a model whose heads change nothing still gets a valid colour scale


def test_head_ticks():
    positions, names = heads_runs.head_ticks(3)
    assert list(positions) == [0, 1, 2] and names == ["0", "1", "2"]
    assert heads_runs.head_ticks(12)[1] == ["0", "", "2", "", "4", "", "6", "", "8", "", "10", ""]


def test_head_summary():
    # two samples per head (layer -1: the clean rows, dropped); sample b is hurt more by head L0.H1
    scans = pd.DataFrame({"spec": "m", "mode": "mean", "group": "memorized", "id": ["a", "b"] * 3,
                          "layer": [-1, -1, 0, 0, 0, 0], "head": [-1, -1, 0, 0, 1, 1],
                          "delta_logprob": [0.0, 0.0, -1.0, -1.0, -2.0, -4.0], "delta_token_match": 0.0,
                          "retention": [1.0, 1.0, 1.0, 1.0, 0.5, 0.0]})
    runs = heads_runs.HeadScans(["m"], scans, {"m": (1, 2)}, {"m": "llama"})
    res = heads_runs.head_summary(runs, mode="mean", top_n=1, labels={"m": "Model"})
    assert res.mode == "mean" and res.effects["delta_logprob"].tolist() == [-1.0, -3.0]
    assert res.top["head"].tolist() == ["L0.H1"] and res.top["share"].tolist() == [0.75]
    assert res.top["ret_mem"].tolist() == [0.25] and math.isnan(res.top["dlp_ctrl"].iloc[0])
    assert res.concentration.iloc[0]["top1_share"] == 0.75 and res.concentration.iloc[0]["n_breaking"] == 1
    assert res.table["Head"].tolist() == ["L0.H1"] and res.caption.startswith("The 1 heads whose mean ablation")
