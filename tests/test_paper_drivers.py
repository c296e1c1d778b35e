"""Pure helpers of the paper drivers (memkit.paper.nb, dynamics_runs, ...) on hand-made inputs."""

import math

import pandas as pd
import pytest

from memkit.errors import MemkitError
from memkit.paper import dynamics_runs, nb


def test_model_keys_and_labels_come_from_the_catalog_then_overrides():
    specs = ["gemma-3-270m", "smollm2-135m-instruct", "zoo:smoke/100k@final", "my-org/my-model"]
    assert nb.model_keys(specs) == {"gemma-3-270m": "Gemma", "smollm2-135m-instruct": "Smol",
                                    "zoo:smoke/100k@final": "ZooOneZeroZeroK", "my-org/my-model": "MyOrgMyModel"}
    assert nb.model_keys(specs[:1], {"gemma-3-270m": "G"}) == {"gemma-3-270m": "G"}  # an explicit name wins
    assert nb.model_keys(specs[2:3], zoo_single=True) == {"zoo:smoke/100k@final": "Zoo"}
    assert nb.model_labels(specs) == {"gemma-3-270m": "Gemma-3-270M", "smollm2-135m-instruct": "SmolLM2-135M-Instruct",
                                      "zoo:smoke/100k@final": "organism 100k", "my-org/my-model": "my-org/my-model"}
    assert nb.model_labels(["google/gemma-3-270m-it"]) == {"google/gemma-3-270m-it": "Gemma-3-270M-IT"}  # GPU catalog


def test_model_catalog_rejects_entries_without_names_or_with_conflicts(tmp_path, monkeypatch):
    monkeypatch.setattr(nb, "PROJECT_ROOT", tmp_path)
    monkeypatch.setattr(nb, "READS", ("a.yml", "b.yml"))
    (tmp_path / "a.yml").write_text("models:\n  - {spec: x, label: X, macro: Ex}\n")
    cases = {"models:\n  - {spec: x, label: X}\n": "needs spec, label and macro",
             "models:\n  - {spec: y, label: Y, macro: Y2}\n": "letters only",
             "models:\n  - {spec: x, label: Other, macro: Ex}\n": "differ from another catalog"}
    for text, message in cases.items():
        (tmp_path / "b.yml").write_text(text)
        nb.model_catalog.cache_clear()
        with pytest.raises(MemkitError, match=message):
            nb.model_catalog()
    nb.model_catalog.cache_clear()


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
    grids = {("m", "insert_rare"): [0, 0.5], ("m", "logit_tail"): [0, 4, 16]}
    selection = pd.DataFrame({"spec": "m", "id": ["a", "b_c", "z"], "group": ["memorized", "memorized", "control"],
                              "distinct": [0.5, 1.0, float("nan")], "layer": 3, "typical_alpha": 0.25})
    seeds = pd.DataFrame({"kind": kinds, "seeded": [True, False], "n_seeds": [5, 1]})
    return dynamics_runs.PhaseRuns(["m"], pd.DataFrame(), selection, kinds, grids, seeds=seeds)


def _fits():
    nan, inf = math.nan, math.inf
    return pd.DataFrame({
        "model": "m", "kind": ["insert_rare", "insert_rare", "logit_tail"],
        "group": ["memorized", "control", "memorized"], "family": ["token", "token", "logit"],
        "n_samples": [4, 3, 25], "alpha_star": [0.3, 0.1, 5.2], "bracket_low": [0.0, 0.0, 4.0],
        "bracket_high": [0.5, 0.5, 16.0], "n_inside": [0, 0, 2], "sample_low": [0.0, 0.0, 4.0],
        "sample_high": [inf, 0.5, 16.0], "alpha_min": [0.5, 0.5, 4.0], "ci_low": [nan, nan, 4.5],
        "ci_high": [nan, nan, inf], "alpha_max": [0.5, 0.5, 16.0], "verdict": ["sharp", "gradual", "gradual"]})


def _tests():
    return pd.DataFrame({"spec": "m", "kind": ["insert_rare", "logit_tail"], "n_group": [2, 2], "n_control": [1, 1],
                         "diff": [0.234, -0.05], "p": [0.5, 1.0], "min_p": [0.67, 0.67], "p_holm": [1.0, 1.0]})


def test_phase_numbers_and_table():
    phase, fits, tests = _phase(), _fits(), _tests()
    ranking = pd.DataFrame({"model": "m", "kind": ["insert_rare", "logit_tail"], "family": ["token", "logit"],
                            "rank": [1, 1], "mem_over_ctrl": [3.0, math.nan]})
    wins = pd.DataFrame({"model": "m", "kind": ["insert_rare"], "group_wins": [True]})
    settings = dict(k=32, m=8, threshold=0.9, n_boot=50, sharp_below=1.0, seeds=[0, 1, 2, 3, 4], embed_layer_frac=0.25,
                    max_memorized=None, max_controls=2)
    numbers = dynamics_runs.phase_numbers(phase, fits, ranking, wins, keys={"m": "M"}, labels={"m": "Model"},
                                          settings=settings, tests=tests)
    assert numbers["PhaseNSharp"] == 1 and numbers["PhaseNGradual"] == 1 and numbers["PhaseNCtrlGradual"] == 1
    assert numbers["PhaseNSharpToken"] == 1 and numbers["PhaseNGradualLogit"] == 1 and numbers["PhaseNResolved"] == 1
    assert numbers["PhaseNSeeds"] == 5 and numbers["PhaseDeterministicKinds"] == "\\texttt{logit\\_\\allowbreak{}tail}"
    assert numbers["PhaseMaxMemorized"] == "all" and numbers["PhaseFragilityVerdict"] == "less fragile than"
    assert numbers["PhaseLessRobustList"] == "none" and numbers["PhaseMedianRatio"] == "3.0"
    assert numbers["MAlphaStarInsertRare"] == "$<$0.50"  # below the smallest alpha of the grid
    assert numbers["MAlphaStarInsertRareCI"] == "($n=4$, no CI; per sample $<$0.50--$>$0.50)"
    assert numbers["MAlphaStarLogitTail"] == "4--16" and numbers["MAlphaStarLogitTailN"] == 25
    assert numbers["MAlphaStarLogitTailCI"] == "(95\\% CI [4.50, $>$16])"  # 25 samples: an interval
    assert numbers["MCtrlAlphaStarLogitTail"] == "--"  # defined without control samples
    assert numbers["MDiffInsertRare"] == "+0.23" and numbers["MDiffPInsertRare"] == "1.00"
    assert numbers["MPhaseDistinctCtrl"] == "--" and numbers["MPhaseDistinctMem"] == "75"
    assert numbers["MPhaseInsertRareAlphas"] == "0.50" and numbers["MPhaseLogitTailAlphas"] == "4, 16"
    assert numbers["MPhaseMemorizedList"] == "\\texttt{a}, \\texttt{b\\_\\allowbreak{}c}"
    assert numbers["MMostRobustToken"] == "\\texttt{insert\\_rare}"
    table, caption = dynamics_runs.ranking_table(phase, fits, ranking, tests, labels={"m": "Model"}, k=32, m=8)
    assert table[("Model", "Drop")].tolist() == ["sharp", "gradual"]
    assert table[("Model", "$\\alpha^*$ mem. ($n$=2)")].tolist() == ["$<$0.50", "4--16"]
    assert table[("Model", "$\\alpha^*$ ctrl ($n$=1)")].tolist() == ["$<$0.50", "--"]
    assert table[("Model", "per sample")].tolist() == ["$<$0.50--$>$0.50", "[4.50, $>$16]"]
    assert table[("Model", "$\\Delta$ ($p_{\\mathrm{Holm}}$)")].tolist() == ["+0.23 (1.00)", "-0.05 (1.00)"]
    assert "logit\\_tail: 4, 16" in caption and "5 action seeds" in caption and "deterministic logit\\_tail" in caption
    assert "Holm-corrected over all 2" in caption


def test_kind_grid_prefers_the_most_specific_entry():
    alphas = {"token": [0.5, 0.25], "logit_tail": [2, 3]}
    model = {"g": {"embedding": [0.01], "logit_tail": [5]}}
    assert dynamics_runs.kind_grid("s", "delete", alphas) == [0.0, 0.25, 0.5]
    assert dynamics_runs.kind_grid("s", "logit_tail", alphas) == [0.0, 2.0, 3.0]
    assert dynamics_runs.kind_grid("g", "logit_tail", alphas, model) == [0.0, 5.0]
    assert dynamics_runs.kind_grid("g", "embed_random", {"embedding": [1]}, model) == [0.0, 0.01]
    phase = dynamics_runs.PhaseRuns(["g"], pd.DataFrame(), pd.DataFrame(), ["delete", "truncate"],
                                    {("g", "delete"): [0, 0.25], ("g", "truncate"): [0, 0.5, 1.0]})
    assert phase.family_grid("g", "token") == [0, 0.25, 0.5, 1.0] and phase.seed_note() == ""


def test_mean_curves_average_seeds_then_samples():
    runs = pd.DataFrame({"spec": "m", "kind": "delete", "group": "memorized", "id": ["a", "a", "a", "b"],
                         "alpha": 0.5, "seed": [0, 1, 2, 0], "retention": [0.0, 0.5, 1.0, 0.1]})
    curve = dynamics_runs.mean_curves(runs).iloc[0]
    assert curve["retention"] == pytest.approx((0.5 + 0.1) / 2) and curve["n"] == 2  # not the row mean 0.4
