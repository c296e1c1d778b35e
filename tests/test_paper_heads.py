"""memkit.paper.heads_runs on hand-made per-head effects: modes, concentration, top heads, table, numbers."""

import math

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
