"""Seed aggregation, dose-response fits, leave-one-seed-out likelihood and the size-trend test (organisms.laws)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from memkit.organisms import laws


def test_seed_rates_then_across_seeds_with_a_t_interval():
    frame = pd.DataFrame({"size": "a", "level": 4, "seed": [0, 0, 1, 1, 2, 2], "id": list("xyxyxy"),
                          "exact_match": [1, 0, 1, 1, 0, 0]})
    per_seed = laws.seed_rates(frame, ["exact_match"])
    assert per_seed["exact_match"].tolist() == [0.5, 1.0, 0.0] and per_seed["n"].tolist() == [2, 2, 2]
    row = laws.across_seeds(per_seed, ["exact_match"]).iloc[0]
    half = 4.302652729911275 * 0.5 / np.sqrt(3)  # t(0.975, 2) * sd / sqrt(3), sd = 0.5
    assert row["exact_match"] == pytest.approx(0.5) and row["exact_match_hi"] == pytest.approx(0.5 + half)
    assert row["n_seeds"] == 3 and row["n"] == 2


def test_canary_bootstrap_needs_twenty_canaries():
    ids = [f"c{i}" for i in range(20)]
    frame = pd.DataFrame({"size": "a", "level": 1, "seed": 0, "id": ids, "m": [1.0] * 20})
    assert laws.canary_bootstrap(frame, "m", n_boot=50)[["lo", "hi"]].iloc[0].tolist() == [1.0, 1.0]
    assert np.isnan(laws.canary_bootstrap(frame.iloc[:19], "m", n_boot=50)["lo"].iloc[0])


def test_fits_recover_known_parameters():
    rng = np.random.default_rng(0)
    x = np.repeat(np.arange(0, 9, 2.0), 4000)
    y = (rng.random(len(x)) < 1 / (1 + np.exp(3 - 0.8 * x))).astype(float)
    fit = laws.fit_dose(x, y, "logistic")
    assert fit["intercept"] == pytest.approx(-3, abs=0.15) and fit["slope"] == pytest.approx(0.8, abs=0.04)
    y = (rng.random(len(x)) < 0.1 + 0.1 * x).astype(float)
    fit = laws.fit_dose(x, y, "loglinear")
    assert fit["intercept"] == pytest.approx(0.1, abs=0.02) and fit["slope"] == pytest.approx(0.1, abs=0.005)
    step = laws.fit_dose(x, (x >= 6).astype(float), "threshold")
    assert step == {"tau": 6.0, "p_below": laws.EPS, "p_above": 1 - laws.EPS}


def test_leave_one_seed_out_on_a_hand_computed_case():
    # threshold model: seeds 0 and 1 give p_below = 1/4 (one hit of four), p_above = 1 - EPS; seed 2 is held out
    frame = pd.DataFrame({"seed": [0, 0, 0, 1, 1, 1, 2, 2, 2], "log2_copies": [0, 0, 4] * 3,
                          "m": [1, 0, 1, 0, 0, 1, 0, 1, 1]})
    held = laws.loso_loglik(frame, "m", "threshold")
    # fold 2: trained on seeds 0, 1: below = 1/4, above = 1 - EPS; test y = 0, 1 below, 1 above
    fold2 = np.log(0.75) + np.log(0.25) + np.log(1 - laws.EPS)
    assert held["folds"][2] == pytest.approx(fold2)
    assert held["heldout_ll_per"] == pytest.approx(held["heldout_ll"] / 9)


def test_size_trend_exact_p_on_a_known_case():
    # 2 seeds x 3 sizes, no ties, increasing in both: 6 x 6 = 36 within-seed relabellings; centred size ranks
    # (-2, 0, 2) give each block a covariance of at most 4, reached only by its increasing order, so |rho| is
    # maximal only for (identity, identity) and (reversed, reversed): p = 2 / 36 exactly
    per_seed = pd.DataFrame({"seed": [0, 0, 0, 1, 1, 1], "size": list("abcabc"), "r": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]})
    test = laws.size_trend_test(per_seed, "r", size_rank={"a": 0, "b": 1, "c": 2})
    # rho: Pearson of the pooled ranks (1.5, 3.5, 5.5) x 2 and (1..6): 8 / sqrt(16 * 17.5)
    assert test["rho"] == pytest.approx(8 / np.sqrt(16 * 17.5)) and test["exact"]
    assert test["p"] == pytest.approx(2 / 36)
    flat = laws.size_trend_test(per_seed.assign(r=0.0), "r", size_rank={"a": 0, "b": 1, "c": 2})
    assert flat["p"] == 1.0 and np.isnan(flat["rho"])
