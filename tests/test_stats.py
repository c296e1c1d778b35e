"""memkit.core.stats and dynamics.transitions.group_tests: Holm on worked examples, exact permutation
p-values counted by hand, the bootstrap floor, and nulls that must not come out significant."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from memkit.core.stats import (bootstrap_diff_ci, hierarchical_bootstrap_ci, holm, permutation_test_means,
                               smallest_permutation_p)
from memkit.dynamics.transitions import group_tests, sample_scores


def test_holm_worked_examples():
    # sorted p: 0.005 x4 = 0.02, 0.01 x3 = 0.03, 0.03 x2 = 0.06, 0.04 x1 = 0.04 -> raised to 0.06 (monotone)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    adjusted = holm([0.01, math.nan, 0.2])  # NaN is not a test: m = 2
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.2)
    assert len(holm([])) == 0


def _exact_p(a, b):
    """Two-sided p of the difference of means by enumerating every relabelling: twice the smaller
    one-sided p (scipy's convention; the null is not symmetric when the groups differ in size)."""
    pooled = np.concatenate([a, b])
    observed = np.mean(a) - np.mean(b)
    null = []
    for chosen in itertools.combinations(range(len(pooled)), len(a)):
        mask = np.zeros(len(pooled), bool)
        mask[list(chosen)] = True
        null.append(pooled[mask].mean() - pooled[~mask].mean())
    null = np.array(null)
    return min(1.0, 2 * min(np.mean(null >= observed - 1e-12), np.mean(null <= observed + 1e-12)))


def test_permutation_test_is_exact_for_small_groups():
    a, b = np.array([0.9, 0.8, 0.95, 0.7]), np.array([0.2, 0.75, 0.1])
    diff, p = permutation_test_means(a, b)
    assert diff == pytest.approx(a.mean() - b.mean())
    assert p == pytest.approx(_exact_p(a, b))
    # complete separation of 4 vs 3 is the best case: 2 of C(7, 3) = 35 relabellings
    _, best = permutation_test_means([1.0, 1.1, 1.2, 1.3], [0.0, 0.1, 0.2])
    assert best == pytest.approx(2 / 35) == pytest.approx(smallest_permutation_p(4, 3))
    assert permutation_test_means([0.5, 0.5], [0.5, 0.5]) == (0.0, 1.0)
    assert math.isnan(permutation_test_means([], [1.0])[1])


def test_permutation_null_is_calibrated():
    """Under the null (both groups from one distribution) about 5 % of tests reach p < 0.05."""
    rng = np.random.default_rng(0)
    pvalues = [permutation_test_means(rng.normal(size=12), rng.normal(size=12), n_resamples=999, seed=i)[1]
               for i in range(200)]
    assert 0.01 <= np.mean(np.array(pvalues) < 0.05) <= 0.10
    shifted = [permutation_test_means(rng.normal(1.5, 1, 12), rng.normal(size=12), n_resamples=999, seed=i)[1]
               for i in range(50)]
    assert np.mean(np.array(shifted) < 0.05) > 0.8  # a real difference of 1.5 sd is found (power)


def test_bootstrap_ci_only_from_twenty_items():
    rng = np.random.default_rng(1)
    a, b = rng.normal(1.0, 1.0, 40), rng.normal(0.0, 1.0, 30)
    lo, hi = bootstrap_diff_ci(a, b, seed=0)
    assert lo < a.mean() - b.mean() < hi and lo > 0
    assert (lo, hi) == bootstrap_diff_ci(a, b, seed=0)  # seeded: the same interval again
    assert all(math.isnan(x) for x in bootstrap_diff_ci(a[:19], b, seed=0))
    assert not any(math.isnan(x) for x in bootstrap_diff_ci(a[:5], b[:5], seed=0, min_n=5))


def test_permutation_test_with_a_single_item_group():
    diff, p = permutation_test_means([1.0, 0.5], [0.0])
    assert diff == 0.75 and p == pytest.approx(2 / 3)  # 3 relabellings: +0.75, 0, -0.75
    assert permutation_test_means([3.0], [1.0, 2.0, 0.0])[1] == pytest.approx(0.5)  # the largest of 4: 2 x 1/4


def test_hierarchical_bootstrap_none_below_twenty_and_covers_the_mean():
    # hand-made: item i has seeds i + {-1, 0, +1}: item means 0..n-1, seed spread 1
    def frame(n):
        return np.array([[i - 1.0, i, i + 1.0] for i in range(n)])

    assert hierarchical_bootstrap_ci(frame(19), np.mean) is None
    assert hierarchical_bootstrap_ci(frame(4), np.mean) is None
    lo, hi = hierarchical_bootstrap_ci(frame(20), np.mean, n_boot=400, seed=0)
    assert lo < 9.5 < hi and 6 < lo and hi < 13  # mean of 0..19 is 9.5; sd of the mean about 1.3
    assert (lo, hi) == hierarchical_bootstrap_ci(frame(20), np.mean, n_boot=400, seed=0)
    # seeds matter: with no spread between items, the interval comes from the seeds alone
    same_items = np.tile([[0.0, 1.0, 2.0, 3.0]], (25, 1))
    lo, hi = hierarchical_bootstrap_ci(same_items, np.mean, n_boot=400, seed=0)
    assert lo < 1.5 < hi and hi - lo > 0.1
    assert hierarchical_bootstrap_ci(np.ones((25, 2)), np.mean) == (1.0, 1.0)
    # a missing seed (NaN) is left out of its item's mean; a NaN statistic counts as +inf
    ragged = frame(20)
    ragged[:, 2] = np.nan
    lo, hi = hierarchical_bootstrap_ci(ragged, np.mean, n_boot=200, seed=0)
    assert lo < 9.0 < hi
    assert hierarchical_bootstrap_ci(frame(20), lambda x: float("nan"), n_boot=10) == (np.inf, np.inf)


def _runs(n_mem, n_ctrl, mem_level, ctrl_level, seeds=(0, 1)):
    rows = []
    for group, n, level in (("memorized", n_mem, mem_level), ("control", n_ctrl, ctrl_level)):
        for i in range(n):
            for seed in seeds:
                for alpha in (0.0, 0.5, 1.0):
                    value = 1.0 if alpha == 0 else level + 0.01 * i + 0.02 * seed - 0.1 * alpha
                    rows.append({"spec": "m", "kind": "delete", "group": group, "id": f"{group}{i}", "seed": seed,
                                 "alpha": alpha, "retention": value})
    return pd.DataFrame(rows)


def test_sample_scores_average_seeds_then_nonzero_alphas():
    runs = _runs(1, 0, 0.5, 0.0)
    # seeds 0/1 -> 0.5/0.52 at offset; alphas 0.5 and 1.0 subtract 0.05 and 0.1: mean 0.51 - 0.075
    assert sample_scores(runs).loc["memorized0"] == pytest.approx(0.435)


def test_group_tests_columns_holm_and_floor():
    runs = pd.concat([_runs(4, 3, 0.9, 0.3), _runs(4, 3, 0.5, 0.5).assign(kind="truncate")], ignore_index=True)
    tests = group_tests(runs)
    assert list(tests["kind"]) == ["delete", "truncate"]
    delete = tests.iloc[0]
    assert (delete["n_group"], delete["n_control"]) == (4, 3)
    assert delete["p"] == pytest.approx(2 / 35) and delete["min_p"] == pytest.approx(2 / 35)
    assert delete["p_holm"] == pytest.approx(min(1.0, 2 * delete["p"]))  # the smaller of two p-values, x2
    assert math.isnan(delete["ci_low"])  # 4 and 3 samples: no bootstrap interval
    assert tests.iloc[1]["diff"] == pytest.approx(0.005) and tests.iloc[1]["p"] > 0.05
    big = group_tests(_runs(25, 20, 0.9, 0.3))
    assert big.iloc[0]["ci_low"] > 0 and big.iloc[0]["p"] < 0.001


def test_test_numbers_macros():
    from memkit.paper.dynamics_runs import test_numbers

    tests = group_tests(pd.concat([_runs(4, 3, 0.9, 0.3), _runs(4, 3, 0.5, 0.5).assign(kind="truncate")],
                                  ignore_index=True))
    numbers = test_numbers(tests, "PhaseTest")
    assert numbers == {"PhaseTestNTests": 2, "PhaseTestNSignificant": 0, "PhaseTestNSignificantRaw": 0,
                       "PhaseTestSmallestP": "0.057", "PhaseTestSmallestPHolm": "0.11", "PhaseTestAttainableP": "0.057",
                       "PhaseTestNMemTested": 4, "PhaseTestNCtrlTested": 3,
                       "PhaseTestPowerNote": "so these sample sizes cannot show a difference after correction, "
                                             "whatever the data"}
    assert test_numbers(tests.iloc[:0], "X")["XNTests"] == 0


def test_profile_tests_on_synthetic_profiles():
    from memkit.paper.dynamics_runs import LayerRuns, profile_tests

    layers, steps = [], []
    for group, ids, base in (("memorized", ["a", "b", "c", "d"], 0.1), ("control", ["x", "y", "z"], 0.5)):
        for offset, sid in enumerate(ids):
            for layer in (0, 1, 2):
                layers.append({"spec": "m", "action": 0, "group": group, "id": sid, "layer": layer,
                               "rel_distance": base * layer + 0.01 * offset})
            for step in range(3):
                steps.append({"spec": "m", "action": 0, "group": group, "id": sid, "step": step, "kl": 1.0 + 0.1 * step,
                              "same": True})
    runs = LayerRuns(["m"], pd.DataFrame(), pd.DataFrame(layers), pd.DataFrame(steps), pd.DataFrame(),
                     {("m", 0): {"kind": "delete", "alpha": 0.25, "layer": None}})
    tests = profile_tests(runs).set_index("observable")
    distance = tests.loc["final_layer_distance"]
    assert distance["diff"] == pytest.approx((0.2 + 0.015) - (1.0 + 0.01))  # layer 2 only
    assert distance["p"] == pytest.approx(2 / 35) and (distance["n_group"], distance["n_control"]) == (4, 3)
    assert tests.loc["mean_kl", "p"] == 1.0  # identical KL everywhere: nothing to find
    assert list(tests["p_holm"]) == pytest.approx([min(1.0, 2 * 2 / 35), 1.0])


def test_t_interval_mean_and_student_half_width():
    from memkit.core.stats import t_interval

    mean, lo, hi = t_interval([0.5, 1.0])  # t(0.975, 1 df) = 12.7062047, sd / sqrt(2) = 0.25
    assert mean == 0.75 and (lo, hi) == pytest.approx((0.75 - 12.7062047 * 0.25, 0.75 + 12.7062047 * 0.25))
    one = t_interval([0.3])
    assert one[0] == 0.3 and math.isnan(one[1]) and math.isnan(one[2])
    assert math.isnan(t_interval([])[0])
