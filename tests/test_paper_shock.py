"""The shock table's builders (memkit.paper.shock_runs) on a hand-made shock frame, and its number formats."""

import pandas as pd

from memkit.dynamics.sweeps import shock_summary
from memkit.paper import report, shock_runs


def _shock() -> shock_runs.ShockRuns:
    shocks = pd.DataFrame({
        "spec": "m", "id": ["a", "a", "b", "b", "c", "c"], "group": ["memorized"] * 4 + ["control"] * 2,
        "alpha": [1, 2, 1, 2, 1, 2], "position": 4,
        "relocked": [True, True, True, False, False, False], "relock_after": [0, 3, 1, None, None, None],
        "relocked_shifted": [True, True, True, True, False, False],
        "retention_after": [1.0, 0.5, 0.75, 0.25, 0.0, 0.0], "truth_relocked": False})
    selection = pd.DataFrame({"spec": "m", "id": ["a", "b", "c"], "group": ["memorized", "memorized", "control"],
                              "token_match": [1.0, 1.0, 0.1], "distinct": [0.5, 1.0, 0.9]})
    return shock_runs.ShockRuns(shocks, selection, {"m": ("one two\nthree", "one four  three")})


def test_formats():
    assert report.format_or_list([1, 2, 4]) == "1, 2 or 4" and report.format_or_list([3]) == "3"
    assert [report.format_params_whole(n) for n in (850e3, 135e6, 7e9)] == ["850k", "135M", "7B"]
    assert [shock_runs.percent(x) for x in (0.5, 1 / 3, float("nan"))] == ["50", "33", "--"]
    assert [shock_runs.step_count(x) for x in (2.0, 1.5, float("nan"))] == ["2", "1.5", "--"]


def test_shock_table_rows_and_caption():
    shock = _shock()
    overall = shock_summary(shock.shocks, by=("spec", "group"))
    per_alpha = shock_summary(shock.shocks, by=("spec", "group", "alpha"))
    table, caption = shock_runs.shock_table(shock, overall, per_alpha, models=["m"], alphas=[1, 2], positions=[4],
                                            labels={"m": "My_M"}, k=8, m=6, min_tail=4, max_shift=2)
    assert table["Forced"].tolist() == ["1", "2", "all", "1", "2", "all"]
    assert table["Model"].unique().tolist() == ["My\\_M"]
    memorized_all = table.iloc[2]
    assert (memorized_all["Runs"], memorized_all["Re-lock (\\%)"], memorized_all["With shift (\\%)"],
            memorized_all["Steps to re-lock"], memorized_all["Kept after (\\%)"]) == (4, "75", "100", "1", "62")
    assert table.iloc[5]["Steps to re-lock"] == "--"  # controls never re-locked
    assert "My\\_M: 2 memorized, 1 controls" in caption
    assert "My\\_M: memorized 75\\%, control 90\\%" in caption
    assert "$t \\in \\{4\\}$" in caption


def test_shock_numbers_defined_for_every_group():
    shock = _shock()
    overall = shock_summary(shock.shocks, by=("spec", "group"))
    per_alpha = shock_summary(shock.shocks, by=("spec", "group", "alpha"))
    numbers = shock_runs.shock_numbers(shock, overall, per_alpha, models=["m"], keys={"m": "Em"}, k=8, m=6,
                                       alphas=[1, 2], positions=[4, 12], min_tail=4, max_shift=2, example_id="a_b")
    assert numbers["ShockAlphas"] == "1 or 2" and numbers["ShockPositions"] == "4, 12"
    assert numbers["EmShockNMem"] == 2 and numbers["EmShockNCtrl"] == 1
    assert numbers["EmShockRelockOneMem"] == "100" and numbers["EmShockRelockMem"] == "75"
    assert numbers["EmShockStepsCtrl"] == "--" and numbers["EmShockRelockCtrl"] == "0"
    assert numbers["EmShockExampleClean"] == "\\texttt{one two three}"
    assert numbers["EmShockExampleShocked"] == "\\texttt{one four three}"
    assert numbers["ShockExampleId"] == "\\texttt{a\\_b}"

    # per sample: relock a 1.0, b 0.5 (memorized) vs c 0.0: difference 0.75; 3 samples, exact p = 2/3 at best
    tests = shock_runs.shock_tests(shock.shocks)
    relock = tests.set_index("observable").loc["relock"]
    assert relock["diff"] == 0.75 and (relock["n_group"], relock["n_control"]) == (2, 1)
    assert relock["p"] == relock["min_p"] == 2 / 3 and relock["p_holm"] == 1.0
    assert numbers["ShockNTests"] == 2 and numbers["ShockNSignificant"] == 0 and numbers["EmShockRelockP"] == "1.00"
    assert numbers["ShockAttainableP"] == "0.67" and numbers["EmShockKeptP"] == "1.00"
