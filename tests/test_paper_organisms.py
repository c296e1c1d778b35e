"""Pure parts of the organism drivers (memkit.paper.organism_runs) on hand-made run frames."""

import pandas as pd

from memkit.organisms.laws import extraction_onsets
from memkit.paper import organism_runs
from memkit.paper.report import format_params


def test_format_params():
    assert [format_params(n) for n in (850_400, 1_234_567, 12_345_678)] == ["850k", "1.2M", "12M"]


# -- fig_dup_scaling -----------------------------------------------------------------------------------------------
def _dup_runs() -> pd.DataFrame:
    """Two sizes, two canaries per level 0 / 1 / 10 / 100; size `a`'s exact rate rises 0.5 per decade."""
    exact = {"a": [0, 1, 0, 0, 0, 1, 1, 1], "b": [0, 0, 1, 1, 1, 1, 1, 1]}
    rows = []
    for size, params in (("a", 500_000), ("b", 2_000_000)):
        for i, level in enumerate([0, 0, 1, 1, 10, 10, 100, 100]):
            rows.append({"size": size, "params": params, "level": level, "id": f"c{i}", "exact_match": exact[size][i],
                         "biderman": 0.25 if level else 0.125})
    return pd.DataFrame(rows)


def _dup() -> organism_runs.Duplication:
    runs = _dup_runs()
    info = {"wall_seconds": 90.0, "data": {"stream_tokens": 12345, "canary_tokens_inserted": 1234}}
    return organism_runs.Duplication(["a", "b"], runs, organism_runs.level_rates(runs),
                                     organism_runs.duplication_fits(runs, n_boot=20), info, 192)


def test_duplication_fits_sorted_by_metric_then_params():
    fits = _dup().fits
    assert fits[["metric", "size"]].values.tolist() == [["biderman", "a"], ["biderman", "b"],
                                                        ["exact_match", "a"], ["exact_match", "b"]]
    assert fits["params"].tolist() == [500_000, 2_000_000] * 2
    exact_a = fits.iloc[2]
    assert round(exact_a["slope"], 12) == 0.5 and round(exact_a["r2"], 12) == 1.0
    assert exact_a["slope_lo"] <= exact_a["slope"] <= exact_a["slope_hi"]
    assert exact_a["control_rate"] == 0.5


def test_dup_slopes_table_and_numbers():
    dup = _dup()
    table, caption = organism_runs.dup_slopes_table(dup, k=32, m=16)
    assert table["rate"].tolist() == ["Biderman", "Biderman", "exact", "exact"]
    assert table["model"].tolist() == ["zoo:a", "zoo:b"] * 2 and table["params"].tolist() == ["500k", "2M"] * 2
    assert table["$R^2$"].tolist() == ["--", "--", "1.00", "--"]  # a constant rate has no R^2
    assert table["slope [95\\% CI]"].iloc[1] == "0.000 [0.000, 0.000]" and table["controls"].iloc[2] == "0.500"
    assert "(k=32, m=16;" in caption and "2 canaries per level and size" in caption
    numbers = organism_runs.dup_numbers(dup, k=32, m=16, n_boot=20)
    assert numbers["DupSmallestParams"] == "500k" and numbers["DupLargestParams"] == "2M"
    assert numbers["DupParamRatio"] == "4" and numbers["DupNCanaries"] == 8 and numbers["DupNSizes"] == 2
    assert numbers["DupTrainSeconds"] == "90" and numbers["DupTrainMinutes"] == "1.5" and numbers["DupSteps"] == 192
    assert numbers["DupStreamTokens"] == "12,345" and numbers["DupCanaryTokenShare"] == "10"
    assert numbers["DupExactASlope"] == "0.500" and numbers["DupExactARsq"] == "1.00"
    assert numbers["DupBidermanBRsq"] == "--" and numbers["DupBidermanBSlope"] == "0.000"
    assert numbers["DupLargestExactTop"] == "1.00" and numbers["DupLargestControlBiderman"] == "0.125"
    assert numbers["DupAnyControlExact"] == 1  # canary c1 of size a


# -- fig_checkpoints -----------------------------------------------------------------------------------------------
def _checkpoint_runs() -> pd.DataFrame:
    """Size `a` at steps 10 / 20 / 30: an early 16-copy canary (extractable at 10, forgotten), a late one, a control."""
    scores = {"early": [1.0, 0.5, 0.25], "late": [0.0, 0.5, 1.0], "all": [0.0, 0.125, 0.125]}
    return pd.DataFrame([{"size": "a", "params": 500_000, "id": f"c_{window}", "kind": "random", "window": window,
                          "level": 0 if window == "all" else 16, "step": step, "biderman": scores[window][i],
                          "exact_match": scores[window][i] == 1.0}
                         for window in scores for i, step in enumerate((10, 20, 30))])


def test_window_retention_and_checkpoint_numbers():
    runs = _checkpoint_runs()
    spans = {"early": (0, 15), "late": (20, 30), "all": (0, 30)}
    retention = organism_runs.window_retention(runs, ["a"], steps=[10, 20, 30], spans=spans, window_level=16)
    assert retention[["what", "step", "biderman"]].values.tolist() == [
        ["early: after window", 20, 0.5], ["early: final", 30, 0.25], ["late: after window", 30, 1.0],
        ["controls: final", 30, 0.125]]
    onsets = extraction_onsets(runs)
    summary = organism_runs.onset_summary(onsets)
    early = summary[summary["window"] == "early"].iloc[0]
    assert (early["n"], early["ever"], early["final"], early["forgotten"], early["median_onset"]) == (1, 1, 0, 1, 10)
    ckpt = organism_runs.Checkpoints(["a"], [10, 20, 30], spans, runs, organism_runs.level_rates(runs), onsets,
                                     summary, retention)
    numbers = organism_runs.checkpoint_numbers(ckpt, window_level=16)
    assert numbers["CkptN"] == 3 and numbers["CkptFinalStep"] == 30 and numbers["CkptEarlyEnd"] == 15
    assert numbers["CkptLateStart"] == 20 and numbers["CkptWindowLevel"] == 16
    assert numbers["CkptEarlyAfterWindowA"] == "0.50" and numbers["CkptEarlyFinalA"] == "0.25"
    assert numbers["CkptLateAfterWindowA"] == "1.00" and numbers["CkptControlsFinalA"] == "0.12"
    assert numbers["CkptEverA"] == 2 and numbers["CkptForgottenA"] == 1 and numbers["CkptEarlyForgottenA"] == "1/1"
    assert numbers["CkptControlsEverExact"] == 0
