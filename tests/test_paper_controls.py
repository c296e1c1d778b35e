"""memkit.paper.controls: nearest-neighbour matching, balance, macros, and matched sets on a real model."""

import math

import numpy as np
import pandas as pd
import pytest

from memkit.core.stats import nearest_matches
from memkit.paper import controls


def test_nearest_matches_without_replacement_hardest_first():
    treated = pd.Series({"a": 0.9, "b": 0.85})
    pool = pd.Series({"x": 0.2, "y": 0.88, "z": 0.6, "w": np.nan})
    pairs = nearest_matches(treated, pool)
    # a (0.9) goes first and takes y (0.88); b must take the next nearest, z (0.6), not y again
    assert pairs[["treated_id", "control_id"]].values.tolist() == [["a", "y"], ["b", "z"]]
    assert np.allclose(pairs["distance"], [0.02, 0.25])
    two = nearest_matches(pd.Series({"a": 0.5}), pool, ratio=2)
    assert two["control_id"].tolist() == ["z", "x"]  # NaN never matched
    assert nearest_matches(treated, pd.Series(dtype=float)).empty
    # strata: a only matches within "s" (x), b within "t" (z), though y is nearer to both
    strata = nearest_matches(treated, pool, treated_strata=pd.Series({"a": "s", "b": "t"}),
                             pool_strata=pd.Series({"x": "s", "y": "u", "z": "t", "w": "s"}))
    assert strata[["treated_id", "control_id"]].values.tolist() == [["a", "x"], ["b", "z"]]


def test_standardized_mean_difference():
    assert math.isclose(controls.standardized_mean_difference([1, 3], [0, 2]), 1 / math.sqrt(2))
    assert math.isnan(controls.standardized_mean_difference([1], [0, 2]))
    assert math.isnan(controls.standardized_mean_difference([1, 1], [1, 1]))


def _confidence():
    return pd.DataFrame({"id": ["m1", "m2", "c1", "c2", "u1"],
                         "group": ["memorized", "memorized", "control", "control", "unmatched"],
                         "confidence": [0.9, 0.8, 0.85, 0.75, 0.1],
                         "matched_to": [None, None, "m1", "m2", None], "distance": [None, None, 0.05, 0.05, None]})


def test_balance_table_and_numbers():
    table = controls.balance_table(_confidence()).set_index("group")
    assert table["n"].to_dict() == {"memorized": 2, "pool": 3, "control": 2}
    assert math.isclose(table.loc["control", "mean"], 0.8) and math.isclose(table.loc["pool", "mean"], 1.7 / 3)
    assert math.isclose(table.loc["control", "smd"], 0.05 / math.sqrt(0.005))  # both SDs are sqrt(0.005)
    assert table.loc["pool", "smd"] > table.loc["control", "smd"]  # matching got closer than the pool
    numbers = controls.control_numbers(_confidence().assign(spec="s"), "matched", keys={"s": "Mo"}, prefix="Phase")
    assert numbers["PhaseControls"] == "confidence-matched natural texts"
    assert (numbers["MoPhaseConfMem"], numbers["MoPhaseConfCtrl"], numbers["MoPhaseConfNPool"]) == ("0.85", "0.80", 3)
    assert numbers["MoPhaseConfMaxDistance"] == "0.05"
    assert controls.control_numbers(None, "shuffled", prefix="Phase") == {"PhaseControls": "shuffled-word texts"}


@pytest.mark.slow
def test_matched_sets_on_smollm2(smollm2):
    """Memorized sequences of SmolLM2 get natural-text controls; every control is an unrecited text."""
    from memkit.paper import nb

    records = nb.read_records("data/attractors.jsonl", ids=["counting", "alphabet", "genesis_1", "gettysburg_address",
                                                             "lorem_ipsum", "mit_license", "control_shuffled_genesis_1"])
    samples, clean, groups, confidence = controls.matched_sets(smollm2, records, k=16, m=8, clean_m=8)
    memorized = [i for i, g in groups.items() if g == "memorized"]
    chosen = [i for i, g in groups.items() if g == "control"]
    assert memorized and len(chosen) == min(len(memorized), int((confidence["group"] != "memorized").sum()))
    kinds = {r["id"]: r["category"] for r in records}
    assert all(kinds[i] not in controls.EXCLUDED_CATEGORIES for i in chosen)
    assert {s.id for s in samples} == set(memorized) | set(chosen) == set(clean["id"])
    assert confidence["confidence"].between(0, 1).all()
    # greedy path: the teacher-forced top-1 probability of each memorized continuation is high
    assert confidence.loc[confidence["group"] == "memorized", "confidence"].min() > 0.3
