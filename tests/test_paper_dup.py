"""The fig_dup_scaling driver's pure parts (memkit.paper.dup_runs) on hand-made run frames and zoo summaries."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from memkit.paper import dup_runs
from memkit.organisms import laws


def _runs() -> pd.DataFrame:
    """Sizes a (1k params) and b (4k), seeds 0 and 1; per seed 2 controls, 2 canaries at 1 copy, 2 at 16."""
    rows = []
    exact = {("a", 0): [0, 0, 0, 0, 1, 0], ("a", 1): [0, 0, 0, 0, 1, 1],
             ("b", 0): [0, 0, 1, 0, 1, 1], ("b", 1): [0, 0, 0, 0, 1, 1]}
    for (size, seed), hits in exact.items():
        for i, (level, hit) in enumerate(zip([0, 0, 1, 1, 16, 16], hits)):
            rows.append({"size": size, "params": {"a": 1000, "b": 4000}[size], "seed": seed, "id": f"c{i}",
                         "level": level, "exact_match": float(hit), "biderman": 0.5 * hit + 0.25})
    return pd.DataFrame(rows)


def _profile() -> dict:
    """The design part of a build summary: schedule, windows, two early and one late window cell."""
    cells = [{"kind": "words", "level": 16, "window": "early", "count": 4},
             {"kind": "records", "level": 16, "window": "early", "count": 4},
             {"kind": "words", "level": 16, "window": "late", "count": 4}]
    return {"runs": {"a": {"warmup_frac": 0.05}}, "windows": {"early": [0.05, 0.3], "late": [0.55, 0.8]},
            "decay_frac": 0.2, "batch_size": 8, "seq_len": 128, "canary_tokens": 64, "cells": cells}


def _info() -> dict:
    seeds = {"0": {"heldout_loss": {"960": 5.0, "2400": 4.0}, "seconds": 60.0},
             "1": {"heldout_loss": {"960": 5.0, "2400": 4.5}, "seconds": 180.0}}
    return {"sizes": {"a": {"non_embedding_params": 1000, "seeds": seeds, "lr": 0.002},
                      "b": {"non_embedding_params": 4000, "seeds": seeds, "lr": 0.001}},
            "sweep": {"a": {"heldout_loss": {"0.001": 5.0, "0.002": 4.5, "0.004": 4.75}, "lr": 0.002, "steps": 480},
                      "b": {"heldout_loss": {"0.001": 4.0, "0.002": 4.5, "0.004": 4.75}, "lr": 0.001, "steps": 480}},
            "data": {"stream_tokens": 12345, "canary_token_fraction": 0.1, "profile": _profile(),
                     "background_epochs": 2.31, "heldout_tokens": 8192, "heldout_chapters": 58, "n_canaries": 180},
            "wall_seconds": 90.0}


def _dup() -> dup_runs.Duplication:
    runs = _runs()
    per_seed, rates = dup_runs.level_rates(runs, n_boot=20)
    params = dup_runs.size_params(runs)
    fits = laws.dose_fits(runs, list(dup_runs.METRICS))
    trends = dup_runs.size_trends(per_seed, levels=[1, 16], params=params, n_resamples=99)
    info = _info()
    return dup_runs.Duplication(["a", "b"], [0, 1], runs, per_seed, rates, fits, trends, dup_runs.final_losses(info),
                                info, 2400)


def test_level_rates_per_seed_then_across_seeds():
    per_seed, rates = dup_runs.level_rates(_runs(), n_boot=20)
    b16 = per_seed[(per_seed["size"] == "b") & (per_seed["level"] == 1)]
    assert b16["exact_match"].tolist() == [0.5, 0.0] and b16["n"].tolist() == [2, 2]
    row = rates[(rates["size"] == "b") & (rates["level"] == 1)].iloc[0]
    half = 12.706204736174707 * np.std([0.5, 0.0], ddof=1) / np.sqrt(2)  # t(0.975, 1) * sd / sqrt(2)
    assert row["exact_match"] == pytest.approx(0.25) and row["exact_match_hi"] == pytest.approx(0.25 + half)
    assert np.isnan(row["exact_match_boot_lo"])  # 2 canaries: no bootstrap under MIN_BOOTSTRAP_N


def test_final_losses_take_the_last_step_numerically():
    losses = dup_runs.final_losses(_info())
    assert losses["step"].tolist() == [2400] * 4  # "960" > "2400" as strings
    assert losses["heldout_loss"].tolist() == [4.0, 4.5, 4.0, 4.5] and losses["size"].tolist() == ["a", "a", "b", "b"]


def test_lr_sweep_flags_the_grid_edge_and_table_bolds_the_choice():
    sweep = dup_runs.lr_sweep(_info())
    assert sweep["edge"].tolist() == [False, True] and sweep["lr"].tolist() == [0.002, 0.001]
    table, caption = dup_runs.lr_sweep_table(_info())
    assert table.columns.tolist() == ["params", "0.001", "0.002", "0.004", "edge"]
    assert table.iloc[0].tolist() == ["1k", "5.000", "\\textbf{4.500}", "4.750", "no"]
    assert table.iloc[1, 1] == "\\textbf{4.000}" and "after 480 steps" in caption and "2 training seeds" in caption


def test_size_trends_holm_over_every_test():
    trends = _dup().trends
    assert trends[["metric", "level"]].values.tolist() == [["exact_match", 1], ["exact_match", 16],
                                                         ["biderman", 1], ["biderman", 16]]
    # 2 seeds x 2 sizes: 4 relabellings, exact. Exact match at 1 copy: a (0, 0), b (0.5, 0) over seeds 0, 1:
    # rho > 0, but swapping seed 0's sizes only flips its sign (two-sided: |rho| unchanged), so p = 1
    first = trends.iloc[0]
    assert first["exact"] and first["p"] == 1.0 and first["rho"] > 0
    assert np.allclose(trends["p_holm"], np.minimum(1, np.maximum.accumulate(np.sort(trends["p"]) * [4, 3, 2, 1]))[
        np.argsort(np.argsort(trends["p"], kind="stable"))])


def test_fit_table_and_numbers():
    dup = _dup()
    table, caption = dup_runs.dup_fits_table(dup)
    assert table["rate"].tolist() == ["exact", "exact", "Biderman", "Biderman"]
    assert table["params"].tolist() == ["1k", "4k"] * 2
    assert table["step at"].tolist()[0] == "16"  # size a: hits only at 16 copies
    assert sum("textbf" in cell for cell in table.iloc[0, 5:]) == 1  # one best model per row
    assert "8 canary outcomes per size: 4 canaries $\\times$ 2 seeds" in caption and "held-out seed" in caption
    numbers = dup_runs.dup_numbers(dup, k=32, m=16, n_boot=20)
    assert numbers["DupNSeeds"] == 2 and numbers["DupNControls"] == 2 and numbers["DupNPerLevel"] == 2
    assert numbers["DupParamRatio"] == "4" and numbers["DupCanaryTokenShare"] == "10" and numbers["DupSteps"] == 2400
    assert numbers["DupExactBLOneSix"] == "1.00" and numbers["DupExactALOneSix"] == "0.75"
    assert numbers["DupLossA"] == "4.250" and numbers["DupBParams"] == "4k"
    assert numbers["DupSweepEdge"] == 1 and numbers["DupSweepRates"] == 3
    assert numbers["DupAnyControlExact"] == 0 and numbers["DupTrendTests"] == 4
    assert numbers["DupFirstExactLevel"] == 1  # size b, seed 0 extracts a 1-copy canary
    assert numbers["DupExactBestModels"] in {"logistic", "loglinear", "threshold", "logistic, threshold",
                                             "loglinear, threshold", "logistic, loglinear"}



def test_design_numbers_from_a_hand_made_build_summary():
    numbers = dup_runs.design_numbers(_info(), 2400)
    assert numbers["DupDecayStart"] == 1920 and numbers["DupWarmupPercent"] == "5"
    assert (numbers["DupEarlyStart"], numbers["DupEarlyStop"], numbers["DupLateStart"], numbers["DupLateStop"]) == (
        120, 720, 1320, 1920)
    assert numbers["DupLrMin"] == "0.001" and numbers["DupLrMax"] == "0.002" and numbers["DupTrainCpuMinutes"] == "8"
    assert numbers["DupWindowCanaries"] == 8 and numbers["DupWindowLevel"] == 16
    assert numbers["DupHeldoutTokens"] == "8,192" and numbers["DupBackgroundEpochs"] == "2.3"
