"""The fig_checkpoints driver's pure parts (memkit.paper.checkpoint_runs) on hand-made screen frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from memkit.paper import checkpoint_runs as cr

STEPS = [10, 20, 30, 40]
SPANS = {"all": (0, 40), "early": (0, 10), "late": (20, 30)}


def _screen() -> pd.DataFrame:
    """Size `a`, seeds 0 and 1, steps 10-40. Two 64-copy canaries learned over training (tf accuracy 0.25 per
    step of 10 for seed 0, half that for seed 1; exact once tf is 1); two early and two late 16-copy canaries;
    two controls at 0.125. Early: 1.0 at step 10, then 0.5; late: 0.125 before step 20, 1.0 from step 30."""
    rows = []
    for seed in (0, 1):
        for i, step in enumerate(STEPS):
            learned = min(1.0, 0.25 * (i + 1) / (1 + seed))
            tf = {"all64": learned, "early": 1.0 if step == 10 else 0.5, "late": 0.125 if step < 30 else 1.0,
                  "control": 0.125}
            for name, level, window in (("all64", 64, "all"), ("early", 16, "early"), ("late", 16, "late"),
                                        ("control", 0, "all")):
                for j in range(2):
                    rows.append({"size": "a", "params": 1000, "seed": seed, "step": step, "id": f"{name}{j}",
                                 "level": level, "window": window, "tf_accuracy": tf[name],
                                 "exact_match": float(tf[name] == 1.0)})
    return pd.DataFrame(rows)


def _final(screen: pd.DataFrame) -> pd.DataFrame:
    last = screen[screen["step"] == STEPS[-1]]
    return last.assign(biderman=last["tf_accuracy"])


def test_first_reach_and_tirumala_table():
    curve = pd.DataFrame({"step": [30, 10, 20], "m": [0.9, 0.1, 0.5]})
    assert cr.first_reach(curve, "m", 0.5) == 20 and np.isnan(cr.first_reach(curve, "m", 0.95))
    per_seed, _ = cr.seed_curves(_screen())
    table = cr.tirumala_table(per_seed, levels=[64], steps=STEPS, threshold=0.5, n_last=3).iloc[0]
    # end = mean of steps 20-40 per seed: seed 0 (0.5 + 0.75 + 1) / 3 = 0.75, seed 1 (0.25 + 0.375 + 0.5) / 3 = 0.375
    assert table["tf_accuracy"] == pytest.approx((0.75 + 0.375) / 2) and table["n"] == 2 and table["n_seeds"] == 2
    half = 12.706204736174707 * np.std([0.75, 0.375], ddof=1) / np.sqrt(2)
    assert table["tf_accuracy_hi"] == pytest.approx(0.5625 + half)
    # reach 0.5: seed 0 at step 20, seed 1 at step 40 -> mean 30 over 2 seeds; exact (tf = 1): seed 0 only, at 40
    assert table["tf_accuracy_reach"] == 30 and table["tf_accuracy_reached"] == 2
    assert table["exact_match_reach"] == 40 and table["exact_match_reached"] == 1
    assert table["exact_match"] == pytest.approx((1 / 3 + 0) / 2)


def test_forgetting_tests_and_pre_window_check():
    screen = _screen()
    tests = cr.forgetting_tests(screen, _final(screen), sizes=["a"], steps=STEPS, spans=SPANS, level=16, n_last=3)
    assert tests["test"].tolist() == (["early vs late"] * 6 + ["late before window vs controls"] * 4
                                      + ["after window vs end"] * 4)
    assert tests["size"].tolist() == ["a", "all"] * 7  # `all`: canary means over sizes (one here: the same)
    drop = tests[tests["test"] == "after window vs end"]
    # early: 1.0 at step 10 (its window closed), 0.5 at steps 20-40; two canaries, both -0.5: sign flips p = 2 / 4
    assert drop["window"].tolist() == ["early", "early", "late", "late"]
    assert drop["diff"].tolist() == pytest.approx([-0.5, -0.5, 2.125 / 3 - 1, 2.125 / 3 - 1])
    assert drop["p"].tolist() == pytest.approx([0.5] * 4) and drop["p_holm"].tolist() == pytest.approx([1.0] * 4)
    tf = tests.iloc[0]
    assert tests.iloc[1][["mean_a", "mean_b", "p"]].tolist() == tf[["mean_a", "mean_b", "p"]].tolist()
    # end (steps 20-40): early 0.5 every step; late (0.125 + 1 + 1) / 3; two canaries each: exact p = 2 / C(4, 2)
    assert (tf["mean_a"], tf["n_a"], tf["n_b"]) == (0.5, 2, 2)
    assert tf["mean_b"] == pytest.approx(2.125 / 3) and tf["p"] == pytest.approx(2 / 6)
    bider = tests[tests["metric"] == "biderman"].iloc[0]
    assert (bider["mean_a"], bider["mean_b"]) == (0.5, 1.0)
    # before step 20 (only step 10): late canaries and controls both at 0.125: p = 1
    before = tests[tests["test"] == "late before window vs controls"]
    assert before["diff"].tolist() == [0.0] * 4 and before["p"].tolist() == [1.0] * 4
    early = tests.iloc[:6]  # Holm within the family: the smallest p times 6, capped at 1
    assert early["p_holm"].min() == pytest.approx(min(1.0, 6 * early["p"].min()))


def test_sign_flip_p_and_decay_tests():
    # three positive differences: 2^3 sign patterns, |mean| = 1 only for all + or all -: p = 2 / 8
    assert cr.sign_flip_p([1.0, 1.0, 1.0]) == pytest.approx(0.25) and cr.sign_flip_p([0.0, 0.0]) == 1.0
    decay = cr.decay_tests(_screen(), sizes=["a"], steps=STEPS, decay_start=20, levels=[64], n_last=2)
    tf = decay.iloc[0]
    # constant-LR end: steps 10, 20; training end: 30, 40; tf per seed 0.25 / 0.125 per step, so the canary
    # means (over seeds and steps) are 0.28125 and 0.65625; both canaries gain 0.375: p = 2 / 4
    assert (tf["metric"], tf["n"], tf["pre"], tf["post"]) == ("tf_accuracy", 2, 0.28125, 0.65625)
    assert tf["diff"] == pytest.approx(0.375) and tf["p"] == pytest.approx(0.5)
    assert decay["p_holm"].tolist() == pytest.approx([1.0, 1.0])


def test_window_track_and_numbers():
    screen = _screen()
    per_seed, curves = cr.seed_curves(screen)
    track = cr.window_track(curves, steps=STEPS, spans=SPANS, level=16, n_last=3)
    assert track["what"].tolist() == ["early", "late", "controls"]
    assert track["after_step"].iloc[:2].tolist() == [10, 30] and track["after"].iloc[:2].tolist() == [1.0, 1.0]
    assert track["end"].tolist() == pytest.approx([0.5, 2.125 / 3, 0.125])
    settings = {"k": 32, "m": 32, "curve_levels": [64], "window_level": 16, "threshold": 0.5, "n_last": 3,
                "n_resamples": 9999}
    tests = cr.forgetting_tests(screen, _final(screen), sizes=["a"], steps=STEPS, spans=SPANS, level=16, n_last=3)
    decay = cr.decay_tests(screen, sizes=["a"], steps=STEPS, decay_start=20, levels=[64], n_last=3)
    ckpt = cr.Checkpoints(["a"], [0, 1], STEPS, SPANS, 20, screen, _final(screen), per_seed, curves,
                          cr.tirumala_table(per_seed, levels=[64], steps=STEPS, threshold=0.5), tests, decay, track,
                          (16, 16), settings)
    numbers = cr.checkpoint_numbers(ckpt)
    assert numbers["CkptN"] == 4 and numbers["CkptLastFirst"] == 20 and numbers["CkptDecayStart"] == 20
    assert numbers["CkptPreFirst"] == 10 and numbers["CkptPreLast"] == 20 and numbers["CkptDecayTests"] == 2
    assert numbers["CkptDecayTfALSixFourPre"] == "0.28" and numbers["CkptDecayTfALSixFourPost"] == "0.56"
    assert numbers["CkptNWindow"] == 2 and numbers["CkptNControls"] == 2 and numbers["CkptAgree"] == 16
    assert numbers["CkptTfALSixFour"] == "0.56" and numbers["CkptTfALSixFourReach"] == "30"
    assert numbers["CkptExactALSixFourReached"] == 1 and numbers["CkptNALSixFour"] == 2
    assert numbers["CkptForgetTfAA"] == "0.500" and numbers["CkptForgetBidermanAB"] == "1.000"
    assert numbers["CkptBeforeExactADiff"] == "0.000" and numbers["CkptForgetTests"] == 6
    assert numbers["CkptBeforeSignificant"] == 0 and numbers["CkptEarlyAAfter"] == "1.000"
    assert numbers["CkptControlsAEnd"] == "0.125" and "CkptControlsAAfter" not in numbers
    assert numbers["CkptDropEarlyADiff"] == "-0.500" and numbers["CkptDropTests"] == 4
    assert numbers["CkptEarlyAfterMax"] == "1.000" and numbers["CkptControlsEndMin"] == "0.125"
    assert numbers["CkptTfLSixFourMax"] == "0.56" and numbers["CkptDecayTfTests"] == 1
