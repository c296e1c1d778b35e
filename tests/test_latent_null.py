"""The permutation null of latent memorization (memkit.organisms.latent_null) on hand-made draw frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from memkit.organisms.latent_null import eligible, matched_pairs, null_tests, pseudo_canary_null


def _row(id, level, kind, acc, clean, best, exact_draws=0, clean_exact=False, seed=0, size="a", m=8):
    return {"id": id, "size": size, "seed": seed, "family": "absolute", "sigma": 0.01, "meta_level": level,
            "meta_kind": kind, "clean_accuracy": acc, "clean_prefix": m if clean_exact else clean,
            "clean_exact": clean_exact, "best_prefix": m if clean_exact else best, "exact_draws": exact_draws}


def _hand() -> pd.DataFrame:
    return pd.DataFrame([
        _row("c1", 0, "w", 0.1, 0, 1), _row("c2", 0, "w", 0.3, 1, 1), _row("c3", 0, "r", 0.2, 0, 2),
        _row("c4", 0, "r", 0.5, 2, 8, exact_draws=1), _row("c5", 0, "r", 0.9, 8, 8, clean_exact=True),
        _row("w16", 16, "w", 0.28, 1, 4), _row("r16", 16, "r", 0.45, 2, 8, exact_draws=3),
        _row("x16", 16, "r", 1.0, 8, 8, 200, clean_exact=True), _row("r64", 64, "r", 0.6, 3, 5),
    ])


def test_eligible_drops_clean_exact_rows_for_canaries_and_controls_alike():
    out = eligible(_hand()).set_index("id")
    assert "c5" not in out.index and "x16" not in out.index  # the identical selection on both sides
    assert out.loc["w16", "gain"] == 3 and out.loc["c4", "gain"] == 6
    assert out["recovered"].to_dict() == {"c1": False, "c2": False, "c3": False, "c4": True, "w16": False,
                                          "r16": True, "r64": False}


def test_matched_pairs_match_on_kind_and_clean_accuracy_per_level():
    pairs = matched_pairs(_hand()).set_index("canary")
    # r16 (0.45) takes the nearest r control c4 (0.5); w16 (0.28) the nearest w control c2 (0.3)
    assert pairs.loc["r16", "control"] == "c4" and pairs.loc["w16", "control"] == "c2"
    assert pairs.loc["r16", "distance"] == pytest.approx(0.05) and pairs.loc["w16", "distance"] == pytest.approx(0.02)
    # each level draws from the full control pool again: r64 (0.6) may reuse c4
    assert pairs.loc["r64", "control"] == "c4" and pairs.loc["r64", "level"] == 64
    assert pairs.loc["r16", "canary_gain"] == 6 and pairs.loc["r16", "control_gain"] == 6
    assert pairs.loc["w16", "canary_gain"] == 3 and pairs.loc["w16", "control_gain"] == 0
    assert bool(pairs.loc["r16", "canary_recovered"]) and bool(pairs.loc["r16", "control_recovered"])
    assert "x16" not in pairs.index


def test_matched_pairs_reject_several_rows_per_sample_in_one_model():
    two_sigmas = pd.concat([_hand(), _hand().assign(sigma=0.02)])
    assert len(matched_pairs(two_sigmas)) == 6  # sigma is part of the model key by default
    with pytest.raises(Exception, match="several rows per sample"):
        matched_pairs(two_sigmas, by=("size", "seed", "family"))


def test_null_tests_average_seeds_per_canary_and_apply_holm():
    draws = pd.concat([_hand(), _hand().assign(seed=1, best_prefix=_hand()["best_prefix"] + 1)])
    draws.loc[draws["clean_exact"], "best_prefix"] = 8
    tests = null_tests(matched_pairs(draws), n_resamples=99).set_index("level")
    row = tests.loc[16]
    assert row["n"] == 2 and row["n_pairs"] == 4 and row["n_seeds"] == 2
    # seed 1 adds one token to every best match: w16 gains 3, 4 (mean 3.5), r16 6, 7; controls c2 0, 1 and c4 6, 7
    assert row["canary_gain"] == pytest.approx((3.5 + 6.5) / 2)
    assert row["control_gain"] == pytest.approx((0.5 + 6.5) / 2)
    assert row["diff"] == pytest.approx(1.5)
    assert row["p"] == pytest.approx(1.0)  # 2 vs 2: the observed split is one of the two most extreme of 6
    assert tests["p_holm"].tolist() == pytest.approx(np.minimum(1, tests["p"] * 2).tolist())


def _exchangeable(rng, n, canary_shift):
    rows = []
    for i in range(n):
        for level, shift, prefix in ((0, 0, "c"), (16, canary_shift, "k")):
            kind = "wr"[i % 2]
            gain = int(rng.poisson(0.3)) + shift
            rows.append(_row(f"{prefix}{i}", level, kind, float(rng.uniform(0, 0.3)), 0, gain, m=32))
    return pd.DataFrame(rows)


def test_null_is_calibrated_when_canaries_equal_controls_and_detects_a_planted_effect():
    rng = np.random.default_rng(0)
    ps = [null_tests(matched_pairs(_exchangeable(rng, 24, 0)), n_resamples=199, seed=r)["p"].iloc[0]
          for r in range(60)]
    assert np.mean(np.array(ps) < 0.05) <= 0.1 and 0.35 < np.mean(ps) < 0.75  # roughly uniform: no false alarms
    planted = null_tests(matched_pairs(_exchangeable(rng, 24, 2)), n_resamples=999).iloc[0]
    assert planted["diff"] > 1.5 and planted["p"] < 0.01 and planted["n"] == 24


def test_pseudo_canary_null_is_the_gain_distribution_of_eligible_controls():
    null = pseudo_canary_null(_hand())
    assert null.set_index("gain")["share"].to_dict() == {0: 0.25, 1: 0.25, 2: 0.25, 6: 0.25}
    assert (null["n"] == 4).all() and (null["recovered"] == 0.25).all()
