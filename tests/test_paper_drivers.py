"""Pure helpers of the paper drivers (memkit.paper.nb, dynamics_runs, ...) on hand-made inputs."""

import math

import pandas as pd

from memkit.paper import dynamics_runs, nb


def test_model_keys_and_labels():
    specs = ["gemma-3-270m", "smollm2-135m-instruct", "zoo:smoke/100k@final"]
    keys = nb.model_keys(specs, {"gemma-3-270m": "Gemma"})
    assert keys == {"gemma-3-270m": "Gemma", "smollm2-135m-instruct": "SmollmTwoOneThreeFiveMInstruct",
                    "zoo:smoke/100k@final": "ZooOneZeroZeroK"}
    assert nb.model_keys(specs[2:], zoo_single=True) == {"zoo:smoke/100k@final": "Zoo"}
    assert nb.model_labels(specs, {"gemma-3-270m": "Gemma-3-270M"}) == {
        "gemma-3-270m": "Gemma-3-270M", "smollm2-135m-instruct": "smollm2-135m-instruct",
        "zoo:smoke/100k@final": "organism 100k"}


def test_read_records_by_id(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"id": "a", "text": "x"}\n{"id": "b", "text": "y"}\n')
    assert [r["id"] for r in nb.read_records(path, ids=["b", "a"])] == ["b", "a"]
    assert len(nb.read_records(path)) == 2


def test_texttt_list_breaks_after_underscores():
    assert dynamics_runs.texttt_list([]) == "none"
    assert dynamics_runs.texttt_list(["pi_digits", "x"]) == "\\texttt{pi\\_\\allowbreak{}digits}, \\texttt{x}"


def _phase():
    kinds = ["insert_rare", "logit_tail"]
    grids = {("m", "token"): [0, 0.5], ("m", "embedding"): [0, 1], ("m", "logit"): [0, 4, 16]}
    selection = pd.DataFrame({"spec": "m", "id": ["a", "b_c", "z"], "group": ["memorized", "memorized", "control"],
                              "distinct": [0.5, 1.0, float("nan")], "layer": 3, "typical_alpha": 0.25})
    return dynamics_runs.PhaseRuns(["m"], pd.DataFrame(), selection, kinds, grids)


def _fits():
    return pd.DataFrame({
        "model": "m", "kind": ["insert_rare", "insert_rare", "logit_tail"],
        "group": ["memorized", "control", "memorized"], "family": ["token", "token", "logit"],
        "alpha_star": [0.3, 0.1, math.nan], "alpha_min": [0.5, 0.5, 4.0], "ci_low": [0.2, 0.05, math.nan],
        "ci_high": [math.inf, 0.2, math.nan], "alpha_max": [0.5, 0.5, 16.0], "verdict": ["sharp", "gradual", "none"]})


def test_phase_numbers_and_table():
    phase, fits = _phase(), _fits()
    ranking = pd.DataFrame({"model": "m", "kind": ["insert_rare", "logit_tail"], "family": ["token", "logit"],
                            "rank": [1, 1], "mem_over_ctrl": [3.0, math.nan]})
    wins = pd.DataFrame({"model": "m", "kind": ["insert_rare"], "group_wins": [True]})
    settings = dict(k=32, m=8, threshold=0.9, n_boot=50, sharp_below=1.0, seeds=[0], embed_layer_frac=0.25,
                    max_memorized=None, max_controls=2)
    numbers = dynamics_runs.phase_numbers(phase, fits, fits, ranking, wins, keys={"m": "M"}, labels={"m": "Model"},
                                          settings=settings)
    assert numbers["PhaseNSharp"] == 1 and numbers["PhaseNNone"] == 1 and numbers["PhaseNCtrlGradual"] == 1
    assert numbers["PhaseNSharpToken"] == 1 and numbers["PhaseNNoneLogit"] == 1
    assert numbers["PhaseMaxMemorized"] == "all" and numbers["PhaseFragilityVerdict"] == "less fragile than"
    assert numbers["PhaseLessRobustList"] == "none" and numbers["PhaseMedianRatio"] == "3.0"
    assert numbers["MAlphaStarInsertRare"] == "$<$0.50"  # below the smallest alpha of the grid
    assert numbers["MAlphaStarInsertRareCI"] == "[$<$0.50, $>$0.50]"
    assert numbers["MCtrlAlphaStarLogitTail"] == "--"  # defined without control samples
    assert numbers["MPhaseDistinctCtrl"] == "--" and numbers["MPhaseDistinctMem"] == "75"
    assert numbers["MPhaseTokenAlphas"] == "0.50" and numbers["MPhaseLogitAlphas"] == "4, 16"
    assert numbers["MPhaseMemorizedList"] == "\\texttt{a}, \\texttt{b\\_\\allowbreak{}c}"
    assert numbers["MMostRobustToken"] == "\\texttt{insert\\_rare}"
    table, caption = dynamics_runs.ranking_table(phase, fits, fits, ranking, labels={"m": "Model"}, k=32, m=8,
                                                 n_boot=50)
    assert table[("Model", "Drop")].tolist() == ["sharp", "none"]
    assert table[("Model", "$\\alpha^*$ ctrl")].tolist() == ["$<$0.50", "--"]
    assert "Model: 2 memorized, 1 controls" in caption and "logit: 4, 16" in caption
