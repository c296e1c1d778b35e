"""memkit.paper.editing_runs on hand-made sweeps: layers, grids, curves, per-level scores, equal perplexity, numbers."""

import math

import numpy as np
import pandas as pd

from memkit.paper import editing_runs

ZOO = "zoo:t/1k@final"


def _runs():
    # pretrained p: unedited ppl 10, two keep masses x (kfac, magnitude); sample a recited, b not
    # organism: unedited only, canary c (level 0) and d (level 2)
    edits = pd.DataFrame({"spec": ["p"] * 5 + [ZOO],
                          "method": ["none", "kfac", "magnitude", "kfac", "magnitude", "none"],
                          "keep_mass": [1.0, 0.9, 0.9, 0.5, 0.5, 1.0], "ppl": [10.0, 12.0, 11.0, 20.0, 30.0, 5.0],
                          "removed": 0.0})
    a_scores = {("none", 1.0): 1.0, ("kfac", 0.9): 0.6, ("magnitude", 0.9): 0.9, ("kfac", 0.5): 0.2,
                ("magnitude", 0.5): 0.4}
    rows = [{"id": "a", "token_match": s, "exact_match": s == 1.0, "spec": "p", "method": mth, "keep_mass": keep,
             "level": -1} for (mth, keep), s in a_scores.items()]
    rows += [{"id": "b", "token_match": 0.5, "exact_match": False, "spec": "p", "method": "none", "keep_mass": 1.0,
              "level": -1},
             {"id": "b", "token_match": 0.1, "exact_match": False, "spec": "p", "method": "kfac", "keep_mass": 0.9,
              "level": -1},
             {"id": "c", "token_match": 0.0, "exact_match": False, "spec": ZOO, "method": "none", "keep_mass": 1.0,
              "level": 0},
             {"id": "d", "token_match": 1.0, "exact_match": True, "spec": ZOO, "method": "none", "keep_mass": 1.0,
              "level": 2}]
    meta = {"p": {"layers": [2, 3], "n_layers": 4, "n_tokens": 100, "n_samples": 2, "grid": [0.9, 0.5]},
            ZOO: {"layers": [1], "n_layers": 2, "n_tokens": 50, "n_samples": 2, "grid": []}}
    return editing_runs.EditingRuns(["p", ZOO], edits, pd.DataFrame(rows), meta)


def test_edit_layers_and_per_model_settings():
    assert editing_runs.edit_layers(4, 0.5) == [2, 3]
    assert editing_runs.edit_layers(3, 0.1) == [2]  # at least one block
    assert editing_runs.per_model(0.25, "x") == 0.25
    assert editing_runs.per_model({"a": 0.3}, "b", default=0.5) == 0.5
    assert editing_runs.per_model({"zoo": [0.9], ZOO: [0.1]}, ZOO, zoo_key="zoo") == [0.9]
    assert editing_runs.per_model({"zoo": [0.9], ZOO: [0.1]}, ZOO) == [0.1]


def test_memorization_curves_and_levels():
    curves, recited = editing_runs.memorization_curves(_runs(), threshold=0.9)
    assert recited == {("p", "a"), (ZOO, "d")}
    p = curves[curves["spec"] == "p"]
    assert p["biderman"].tolist() == [1.0, 0.6, 0.9, 0.2, 0.4]  # only the recited sample a
    assert np.allclose(p["ppl_ratio"], [1.0, 1.2, 1.1, 2.0, 3.0])
    levels = editing_runs.level_scores(_runs())
    assert levels.loc[(ZOO, "none", 1.0)].to_dict() == {0: 0.0, 2: 1.0}


def test_interpolate_in_log_perplexity():
    curve = pd.DataFrame({"ppl": [10.0, 100.0], "biderman": [1.0, 0.0]})
    assert math.isclose(editing_runs.interpolate(curve, math.sqrt(1000)), 0.5)
    assert math.isnan(editing_runs.interpolate(curve, 9.0)) and math.isnan(editing_runs.interpolate(curve, 101.0))
    assert math.isnan(editing_runs.interpolate(curve.iloc[:0], 10.0))


def test_equal_perplexity():
    curves, _ = editing_runs.memorization_curves(_runs(), threshold=0.9)
    budget, compare = editing_runs.equal_perplexity(curves, ["p", ZOO], ["kfac", "magnitude"], ppl_budget=0.5)
    best = budget.set_index(["spec", "method"])
    assert best.loc[("p", "kfac")].tolist() == [1, 0.6, 0.9, 1.2]  # n_within, best_biderman, best_keep, ratio
    assert best.loc[("p", "magnitude"), "best_biderman"] == 0.9
    assert best.loc[(ZOO, "kfac")].tolist() == [0, 1.0, 1.0, 1.0]  # nothing within: the unedited model
    expected = [0.9 - 0.5 * math.log(ppl / 11) / math.log(30 / 11) for ppl in (12, 20)]
    assert compare["spec"].tolist() == ["p", "p"] and np.allclose(compare["magnitude"], expected)


def test_editing_numbers():
    runs = _runs()
    summary = editing_runs.editing_summary(runs, threshold=0.9, methods=["kfac", "magnitude"], ppl_budget=0.5)
    settings = dict(k=32, m=32, ppl_budget=0.5, labels_kind="true", fit_windows=24, seq_len=128)
    numbers = editing_runs.editing_numbers(runs, summary, keys={"p": "P", ZOO: "Zoo"}, methods=["kfac", "magnitude"],
                                           settings=settings)
    assert numbers["EditBudget"] == "50" and numbers["EditFitWindows"] == 24
    assert (numbers["PEditBasePpl"], numbers["PEditBaseMem"], numbers["PEditNRecited"]) == ("10.00", "1.00", 1)
    assert (numbers["PEditFirstLayer"], numbers["PEditLastLayer"], numbers["PEditKeepMasses"]) == (2, 3, "0.9, 0.5")
    assert (numbers["PEditKfacBestMem"], numbers["PEditKfacBestKeep"], numbers["PEditKfacBestPplRatio"]) == (
        "0.60", "0.9", "1.20")
    assert numbers["PEditKfacBeats"] == "yes" and numbers["ZooEditKfacBeats"] == "no"
    assert (numbers["PEditKfacBelowMagnitude"], numbers["PEditComparedMagnitude"]) == (2, 2)
    assert (numbers["ZooEditBaseLevelZero"], numbers["ZooEditBaseLevelTwo"]) == ("0.00", "1.00")
    assert "PEditBaseLevelZero" not in numbers  # levels only for organisms
    assert (numbers["EditNModels"], numbers["EditNKfacBeats"]) == (2, 1)


def test_a_model_that_recites_nothing_keeps_its_rows():
    """A cold build once trained an organism that recited no canary: its curve must stay, with NaN memorization."""
    runs = _runs()
    runs.runs.loc[runs.runs["id"] == "d", "token_match"] = 0.5  # the organism's only recited canary is gone
    curves, recited = editing_runs.memorization_curves(runs, threshold=0.9)
    zoo = curves[curves["spec"] == ZOO]
    assert len(zoo) == 1 and math.isnan(zoo["biderman"].iloc[0]) and zoo["n_recited"].tolist() == [0]
    assert curves.loc[curves["spec"] == "p", "n_recited"].unique().tolist() == [1]
    budget, _ = editing_runs.equal_perplexity(curves, runs.specs, ["kfac", "magnitude"], ppl_budget=0.5)
    assert budget.set_index(["spec", "method"]).loc[(ZOO, "kfac"), "n_within"] == 0
    summary = editing_runs.EditingSummary(curves, recited, editing_runs.level_scores(runs), budget,
                                          pd.DataFrame(columns=["spec", "kfac", "magnitude"]))
    numbers = editing_runs.editing_numbers(runs, summary, keys={"p": "P", ZOO: "Zoo"}, methods=["kfac", "magnitude"],
                                           settings=dict(k=32, m=32, ppl_budget=0.5, labels_kind="true",
                                                         fit_windows=24, seq_len=128))
    assert numbers["ZooEditNRecited"] == 0 and numbers["ZooEditKfacBeats"].startswith("n/a")
    assert numbers["ZooEditBaseMem"] == "--" and numbers["EditNKfacBeats"] == 1


def test_editing_summary_bundles_the_analyses():
    res = editing_runs.editing_summary(_runs(), threshold=0.9, methods=["kfac", "magnitude"], ppl_budget=0.5)
    curves, recited = editing_runs.memorization_curves(_runs(), threshold=0.9)
    assert res.recited == recited == {("p", "a"), (ZOO, "d")}
    pd.testing.assert_frame_equal(res.curves, curves)
    assert res.per_level.loc[(ZOO, "none", 1.0)].to_dict() == {0: 0.0, 2: 1.0}
    assert res.budget.set_index(["spec", "method"]).loc[("p", "kfac"), "best_biderman"] == 0.6
    assert res.compare["kfac"].tolist() == [0.6, 0.2]


def test_figure_panels():
    runs = _runs()
    res = editing_runs.editing_summary(runs, threshold=0.9, methods=["kfac", "magnitude"], ppl_budget=0.5)
    line = editing_runs.method_curve(res.curves, "p", "kfac")  # unedited first, then keep 0.9, 0.5
    assert line["keep_mass"].tolist() == [1.0, 0.9, 0.5] and line["biderman"].tolist() == [1.0, 0.6, 0.2]
    assert editing_runs.method_curve(res.curves, ZOO, "kfac")["method"].tolist() == ["none"]
    # p's worst edit is 3x the unedited perplexity: 5% past it, or the cap
    assert math.isclose(editing_runs.ppl_axis_end(res.curves, "p", ppl_budget=0.5, ppl_cap=10.0), 3.15)
    assert editing_runs.ppl_axis_end(res.curves, "p", ppl_budget=0.5, ppl_cap=2.5) == 2.5
    assert math.isclose(editing_runs.ppl_axis_end(res.curves, ZOO, ppl_budget=0.5, ppl_cap=10.0), 1.575)  # budget
    p, zoo = editing_runs.figure_panels(runs, res, ["kfac", "magnitude"], ppl_budget=0.5, ppl_cap=3.0)
    assert (p.spec, p.unedited, p.right, p.cut, p.blocks) == ("p", 1.0, 3.0, True, "2–3")
    assert list(p.lines) == ["kfac", "magnitude"] and p.lines["magnitude"]["biderman"].tolist() == [1.0, 0.9, 0.4]
    assert p.ticks == (1.0, 2.0, 5.0)  # a long range: coarse ticks
    assert (zoo.cut, zoo.blocks, zoo.unedited) == (False, "1–1", 1.0) and zoo.ticks[:3] == (1.0, 1.2, 1.5)
