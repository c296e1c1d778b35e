"""memkit.paper.editing_runs on hand-made sweeps: grids, curves, equal-perplexity interpolation, tests, numbers."""

import math

import numpy as np
import pandas as pd
import pytest

from memkit.core.stats import paired_permutation_test
from memkit.paper import editing_runs
from memkit.paper.editing_texts import canary_chapters, interleave

ZOO = "zoo:t/1k@final"
# per item: unedited, kfac keep 0.9 (ppl 20), kfac keep 0.5 (ppl 40), magnitude 0.5 (ppl 20), magnitude 0.9 (ppl 40)
SCORES = {"a": [1.0, 0.5, 0.0, 1.0, 0.5], "b": [1.0, 0.4, 0.2, 0.8, 0.6], "c": [0.95, 0.3, 0.1, 0.9, 0.3],
          "d": [0.2, 0.2, 0.0, 0.2, 0.1]}
EDITS = [("none", 0.0, 10.0), ("kfac", 0.9, 20.0), ("kfac", 0.5, 40.0), ("magnitude", 0.5, 20.0),
         ("magnitude", 0.9, 40.0)]


def _runs(layer_fracs=(0.5,)):
    edits, rows = [], []
    for frac in layer_fracs:
        for j, (method, amount, ppl) in enumerate(EDITS):
            edits.append({"spec": "p", "layer_frac": frac, "method": method, "amount": amount, "ppl": ppl,
                          "removed": 0.0})
            rows += [{"id": i, "token_match": s[j], "exact_match": s[j] == 1.0, "spec": "p", "layer_frac": frac,
                      "method": method, "amount": amount, "level": -1} for i, s in SCORES.items()]
    edits.append({"spec": ZOO, "layer_frac": 0.5, "method": "none", "amount": 0.0, "ppl": 5.0, "removed": 0.0})
    rows += [{"id": "x", "token_match": 0.0, "exact_match": False, "spec": ZOO, "layer_frac": 0.5, "method": "none",
              "amount": 0.0, "level": 0},
             {"id": "y", "token_match": 1.0, "exact_match": True, "spec": ZOO, "layer_frac": 0.5, "method": "none",
              "amount": 0.0, "level": 4}]
    meta = {"p": {"layer_fracs": list(layer_fracs), "layers": {f: [2, 3] if f == 0.5 else [0, 1, 2, 3]
                                                              for f in layer_fracs},
                  "n_layers": 4, "n_tokens": 1000, "n_samples": 4, "n_ppl_tokens": 50, "grid": []},
            ZOO: {"layer_fracs": [0.5], "layers": {0.5: [1]}, "n_layers": 2, "n_tokens": 50, "n_samples": 2,
                  "n_ppl_tokens": 10, "grid": []}}
    return editing_runs.EditingRuns(["p", ZOO], pd.DataFrame(edits), pd.DataFrame(rows), meta)


def test_edit_layers_grid_and_per_model_settings():
    assert editing_runs.edit_layers(4, 0.5) == [2, 3] and editing_runs.edit_layers(3, 0.25) == [2]
    assert editing_runs.edit_layers(3, 1.0) == [0, 1, 2] and editing_runs.edit_layers(3, 0.1) == [2]
    assert editing_runs.per_model({"zoo": [0.9], ZOO: [0.1]}, ZOO, zoo_key="zoo") == [0.9]
    assert editing_runs.per_model({"a": 0.3}, "b", default=0.5) == 0.5
    grid = editing_runs.edit_grid(["kfac", "magnitude", "random"], [0.5, 0.9], {"magnitude": [0.9, 0.5],
                                                                               "random": [0.1]})
    assert grid == [("kfac", 0.9), ("kfac", 0.5), ("magnitude", 0.5), ("magnitude", 0.9), ("random", 0.1)]
    assert editing_runs.edit_grid(["random"], [0.9], [0.3, 0.1]) == [("random", 0.1), ("random", 0.3)]
    assert editing_runs.blocks_label([2, 3, 4]) == "2–4" and editing_runs.blocks_label([2]) == "2"


def test_interpolation_on_a_hand_made_curve():
    ppl = np.array([10.0, 40.0, 20.0])  # unsorted on purpose
    values = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.2]])
    # sqrt(10*20) is halfway between 10 and 20 in log perplexity
    assert np.allclose(editing_runs.interpolate_items(ppl, values, math.sqrt(200)), [0.75, 0.1])
    assert np.allclose(editing_runs.interpolate_items(ppl, values, 20.0), [0.5, 0.2])
    assert np.allclose(editing_runs.interpolate_items(ppl, values, 10.0), [1.0, 0.0])
    assert np.allclose(editing_runs.interpolate_items(ppl, values, 40.0), [0.0, 1.0])
    assert np.isnan(editing_runs.interpolate_items(ppl, values, 41.0)).all()
    assert np.isnan(editing_runs.interpolate_items(ppl, values, 9.0)).all()


def test_curves_and_matched_scores():
    runs = _runs()
    curves, recited = editing_runs.memorization_curves(runs, threshold=0.9)
    assert recited == {("p", "a"), ("p", "b"), ("p", "c"), (ZOO, "y")}
    p = curves[curves["spec"] == "p"]
    assert np.allclose(p["biderman"], [2.95 / 3, 1.2 / 3, 0.3 / 3, 2.7 / 3, 1.4 / 3])
    assert np.allclose(p["ppl_ratio"], [1, 2, 4, 2, 4])
    zoo = curves[curves["spec"] == ZOO].iloc[0]  # an organism's headline: its top-level canaries (y, level 4)
    assert (zoo["biderman"], zoo["n_headline"], zoo["n_recited"]) == (1.0, 1, 1)
    assert editing_runs.headline_group(runs, ZOO) == "L4" and editing_runs.headline_group(runs, "p") == "recited"
    matched = editing_runs.matched_scores(runs, [math.sqrt(2), 2.0, 5.0]).set_index(["method", "ratio", "id"])
    assert matched.loc[("kfac", 2.0, "b"), "token_match"] == pytest.approx(0.4)
    assert matched.loc[("magnitude", math.sqrt(2), "b"), "token_match"] == pytest.approx(0.9)
    assert matched.loc[("kfac", math.sqrt(2), "a"), "exact_match"] == pytest.approx(0.5)
    assert np.isnan(matched.loc[("kfac", 5.0, "a"), "token_match"])  # beyond the strongest edit


def test_paired_permutation_test_is_exact_for_small_groups():
    diff, p = paired_permutation_test([1, 2, 3, 4], [0, 1, 2, 3])
    assert diff == 1.0 and p == pytest.approx(2 / 16)  # only all-plus and all-minus signs reach |mean| 1
    assert paired_permutation_test([1, 2], [1, 2]) == (0.0, 1.0)
    diff, p = paired_permutation_test([1, 0, 1], [0, 1, 0])  # |mean| >= 1/3: all 8 sign patterns
    assert diff == pytest.approx(1 / 3) and p == pytest.approx(1.0)


def test_equal_perplexity_tests_and_holm():
    runs = _runs()
    res = editing_runs.editing_summary(runs, threshold=0.9, methods=["kfac", "magnitude"], ppl_ratios=[2.0, 5.0])
    groups = editing_runs.item_groups(runs, res.recited)
    assert groups["p"] == {"recited": ["a", "b", "c"]} and groups[ZOO] == {"recited": ["y"], "L0": ["x"], "L4": ["y"]}
    t = res.tests.set_index(["spec", "ratio", "group"])
    row = t.loc[("p", 2.0, "recited")]
    assert (row["n"], row["kfac"], row["base"]) == (3, pytest.approx(0.4), pytest.approx(0.9))
    assert math.isnan(row["p"])  # 3 items < MIN_BOOTSTRAP_N: no test
    assert t.loc[("p", 5.0, "recited"), "n"] == 0
    tests = editing_runs.equal_ppl_tests(res.matched, groups, ["kfac", "magnitude"], min_n=3)
    row = tests.set_index(["spec", "ratio", "group"]).loc[("p", 2.0, "recited")]
    assert row["diff"] == pytest.approx(-0.5) and row["p"] == pytest.approx(0.25)  # 2 of 8 sign patterns
    assert row["p_holm"] == pytest.approx(0.25)  # the only test


def test_layer_table_numbers_and_panels():
    runs = _runs(layer_fracs=(0.5, 1.0))
    res = editing_runs.editing_summary(runs, threshold=0.9, methods=["kfac", "magnitude"], ppl_ratios=[2.0])
    table = editing_runs.layer_table(runs, res, labels={"p": "P"}, ratio=2.0)
    assert table["blocks"].tolist() == ["2–3", "0–3", "1"]
    assert table.loc[0, ["n", "kfac", "magnitude", "p vs magnitude"]].tolist() == [3, "0.40", "0.90", "--"]
    settings = dict(k=32, m=32, labels_kind="sampled", seq_len=128, ppl_ratios=[2.0], ref_ratio=2.0)
    numbers = editing_runs.editing_numbers(runs, res, keys={"p": "P", ZOO: "Zoo"}, methods=["kfac", "magnitude"],
                                           settings=settings)
    assert (numbers["PEditBasePpl"], numbers["PEditNRecited"], numbers["PEditFirstLayer"]) == ("10.00", 3, 2)
    assert (numbers["PEditRefKfacMem"], numbers["PEditRefMagnitudeMem"], numbers["PEditRefN"]) == ("0.40", "0.90", 3)
    assert numbers["PEditRefMagnitudeP"] == "--" and numbers["EditNTests"] == 0
    assert (numbers["PEditKfacMaxRatio"], numbers["PEditNTokens"]) == ("4.00", "1,000")
    assert (numbers["ZooEditBaseLevelFour"], numbers["ZooEditNLevelFour"]) == ("1.00", 1)
    panel = editing_runs.figure_panels(runs, res, ["kfac", "magnitude"], ppl_ratios=[2.0], ppl_cap=3.0)[0]
    assert (panel.blocks, panel.right, panel.cut) == ("2–3", 3.0, True)
    assert panel.lines["kfac"]["amount"].tolist() == [0.0, 0.9, 0.5]
    assert panel.lines["magnitude"]["amount"].tolist() == [0.0, 0.5, 0.9]


def test_broad_text_helpers(monkeypatch):
    assert interleave(["a1", "a2", "a3"], ["b1"]) == ["a1", "b1", "a2", "a3"]

    class C:
        def __init__(self, source):
            self.source = source

    import memkit.organisms.zoo as zoo
    monkeypatch.setattr(zoo, "zoo_canaries", lambda profile: [C("Luke 7 (held out), token 3"), C("word list")])
    assert canary_chapters("x") == {"Luke 7"}
