"""memkit.paper.lens_runs on hand-made lock-in frames: summary per model x group, the paper's numbers."""

import math

import numpy as np
import pandas as pd

from memkit.paper.lens_runs import LensRuns, lens_numbers, lock_in_cdf, lock_in_summary, relative_depth, top1_curves


def _runs():
    # model m (5 blocks): memorized sample a, 3 positions (2 correct at the output); control c, 2 positions
    # model z: only a memorized sample, never correct at the output
    locks = pd.DataFrame({
        "spec": ["m", "m", "m", "m", "m", "z"], "group": ["memorized"] * 3 + ["control"] * 2 + ["memorized"],
        "id": ["a", "a", "a", "c", "c", "b"], "final_top1": [True, True, False, True, False, False],
        "lock_in": [1, 3, -1, 4, -1, -1], "first_top1": [0, 2, -1, 4, -1, -1]})
    locks["depth"] = locks["lock_in"] / locks["spec"].map({"m": 5, "z": 3}).sub(1)
    lens = pd.DataFrame({"spec": "m", "group": "memorized", "id": "a", "layer": [0, 0, 1, 1],
                         "is_top1": [True, False, True, True]})
    return LensRuns(["m", "z"], lens, locks, {"m": 5, "z": 3})


def test_lock_in_summary():
    summary = lock_in_summary(_runs()).set_index(["spec", "group"])
    mem, ctrl, z = summary.loc[("m", "memorized")], summary.loc[("m", "control")], summary.loc[("z", "memorized")]
    assert (mem["samples"], mem["positions"], mem["n_locked"]) == (1, 3, 2)
    assert mem["final_top1"] == 2 / 3 and mem["median_lock_in"] == 2 and mem["median_depth"] == 0.5
    assert mem["mean_first_top1"] == 1.0
    assert ctrl["median_lock_in"] == 4 and ctrl["median_depth"] == 1.0 and ctrl["final_top1"] == 0.5
    assert z["n_locked"] == 0 and math.isnan(z["median_lock_in"]) and z["n_layers"] == 3


def test_top1_curves():
    curve = top1_curves(_runs())
    assert curve["is_top1"].tolist() == [0.5, 1.0] and curve["layer"].tolist() == [0, 1]
    assert curve["depth"].tolist() == [0.2, 0.4]  # model m has 5 blocks: block l ends at (l + 1) / 5


def test_lock_in_cdf():
    assert relative_depth(4, 5) == 1.0 and relative_depth(np.array([0, 1]), 4).tolist() == [0.25, 0.5]
    depths, shares, median = lock_in_cdf(_runs(), "m", "memorized")  # lock-in layers 1 and 3 of 5 blocks
    assert depths.tolist() == [0.4, 0.8] and shares.tolist() == [0.5, 1.0] and math.isclose(median, 0.6)
    depths, shares, median = lock_in_cdf(_runs(), "m", "control")
    assert depths.tolist() == [1.0] and shares.tolist() == [1.0] and median == 1.0
    assert lock_in_cdf(_runs(), "z", "memorized") is None  # never correct at the output
    assert lock_in_cdf(_runs(), "z", "control") is None  # no controls at all


def test_lens_numbers():
    runs = _runs()
    numbers = lens_numbers(runs, lock_in_summary(runs), keys={"m": "M", "z": "Z"}, k=32, m=16, threshold=0.9)
    assert numbers["LensThreshold"] == "0.9" and numbers["MLensLayers"] == 5
    assert (numbers["MLensNMem"], numbers["MLensFinalTopMem"], numbers["MLensLockMem"]) == (1, "0.67", "2")
    assert (numbers["MLensLockDepthMem"], numbers["MLensFirstTopMem"]) == ("50", "1.0")
    assert (numbers["MLensLockCtrl"], numbers["MLensLockDepthCtrl"], numbers["MLensFinalTopCtrl"]) == ("4", "100",
                                                                                                       "0.50")
    assert numbers["MLensEarlier"] == "earlier"
    # z: no position locks in (NaN -> '--'), no controls at all
    assert numbers["ZLensLockMem"] == "--" and numbers["ZLensLockDepthMem"] == "--"
    assert numbers["ZLensNCtrl"] == "--" and numbers["ZLensEarlier"] == "--"
    assert (numbers["LensNModels"], numbers["LensNEarlier"], numbers["LensNCompared"]) == (2, 1, 1)
