"""Pure parts of the latent driver (memkit.paper.latent_runs) on a hand-made draws frame."""

from __future__ import annotations

import pandas as pd
import pytest

from memkit.paper import latent_runs


def _draws() -> pd.DataFrame:
    """One size, two seeds, one family: two controls and two 16-copy canaries of kind w, one clean-exact canary."""
    rows = []
    for seed in (0, 1):
        for id, level, acc, clean, best, exact_draws in (("c1", 0, 0.1, 0, 1, 0), ("c2", 0, 0.3, 1, 2, 0),
                                                         ("k1", 16, 0.2, 0, 4, 0), ("k2", 16, 0.35, 1, 32, 2),
                                                         ("k3", 16, 1.0, 32, 32, 200)):
            rows.append({"id": id, "sigma": 0.01, "family": "absolute", "clean_prefix": clean,
                         "clean_exact": clean == 32, "clean_accuracy": acc, "n_draws": 200, "best_prefix": best,
                         "mean_prefix": best / 2, "exact_draws": exact_draws, "m": 32, "meta_kind": "w",
                         "meta_level": level, "meta_window": "all", "size": "1k", "params": 1000, "seed": seed})
    return pd.DataFrame(rows)


def _latent() -> latent_runs.Latent:
    draws = _draws()
    return latent_runs.Latent(["1k"], draws, *latent_runs.latent_analysis(draws, n_resamples=999, caliper=0.05))


def test_latent_analysis_pairs_tests_and_null():
    lat = _latent()
    assert sorted(zip(lat.pairs["canary"], lat.pairs["control"])) == [("k1", "c1"), ("k1", "c1"), ("k2", "c2"),
                                                                      ("k2", "c2")]
    assert lat.tests["analysis"].tolist() == ["matched", "caliper"]
    assert lat.pairs["within_caliper"].tolist() == [c == "k2" for c in lat.pairs["canary"]]  # 0.35 vs 0.3; 0.2 vs 0.1
    caliper = lat.tests.iloc[1]
    assert caliper["n"] == 1 and caliper["canary_gain"] == 31 and caliper["control_gain"] == 1
    # exact permutation p: matched {4, 31} vs {1, 1} is 1 of the 2 most extreme of 6 splits (1/3); 1 vs 1 gives 1
    assert lat.tests["p"].tolist() == pytest.approx([1 / 3, 1.0])
    assert lat.tests["p_holm"].tolist() == pytest.approx([2 / 3, 1.0])  # Holm over both analyses
    row = lat.tests.iloc[0]
    assert (row["size"], row["params"], row["family"], row["level"]) == ("1k", 1000, "absolute", 16)
    assert row["n"] == 2 and row["n_pairs"] == 4 and row["n_seeds"] == 2
    assert row["canary_gain"] == pytest.approx((4 + 31) / 2) and row["control_gain"] == pytest.approx(1.0)
    assert row["canary_recovered"] == 0.5 and row["control_recovered"] == 0.0
    assert lat.null["share"].tolist() == [1.0] and lat.null["n"].tolist() == [4]  # both controls gain 1, both seeds


def test_latent_table_and_numbers():
    lat = _latent()
    table, caption = latent_runs.latent_table(lat, n_draws=200, sigmas={"absolute": 0.01}, caliper=0.05)
    assert table.iloc[0].tolist()[:7] == ["matched", "absolute 0.01", "1k", 16, "2 (4)", "17.50 / 1.00", "0.50 / 0.00"]
    assert "200 weight-noise draws" in caption and "2 seeds" in caption and "all 2 tests" in caption
    numbers = latent_runs.latent_numbers(lat, n_draws=200, sigmas={"absolute": 0.01}, caliper=0.05)
    assert numbers["LatentSigmaAbs"] == "0.01" and numbers["LatentNSeeds"] == 2 and numbers["LatentSizes"] == "1k"
    assert numbers["LatentNControls"] == 2 and numbers["LatentControlRows"] == 4 and numbers["LatentControlsRecovered"] == 0
    assert numbers["LatentAbsOneKLOneSixGain"] == "17.50" and numbers["LatentAbsOneKLOneSixCtrlGain"] == "1.00"
    assert numbers["LatentAbsOneKLOneSixN"] == 2 and numbers["LatentAbsOneKLOneSixRec"] == "0.50"
    assert numbers["LatentNTests"] == 2 and numbers["LatentSignificant"] == 0 and numbers["LatentCaliper"] == "0.05"
    assert numbers["LatentAbsOneKLOneSixClean"] == "0.28" and numbers["LatentAbsOneKLOneSixCtrlClean"] == "0.20"
    assert numbers["LatentMatchedSignificant"] == 0 and numbers["LatentMatchedSignificantMinLevel"] == "--"
    assert numbers["LatentCalMaxLevel"] == 16 and numbers["LatentCalMinP"] == "1" and numbers["LatentMatchedMinP"] == "0.67"
    assert numbers["LatentCalAbsOneKLOneSixN"] == 1 and numbers["LatentCalAbsOneKLOneSixGain"] == "31.00"


def test_latent_figure_draws_one_panel_per_family_and_the_null():
    import matplotlib

    matplotlib.use("Agg")
    from memkit.paper.latent_figures import latent_figure

    fig = latent_figure(_latent(), sigmas={"absolute": 0.01}, n_draws=200)
    family, unused, null = fig.axes
    assert family.get_title() == "(a) absolute σ = 0.01"
    assert [t.get_text() for t in family.get_legend().get_texts()] == ["1k"]  # one line per size
    assert len(family.get_lines()) == 2 and len(family.collections) == 2      # canaries/controls: means, seeds
    assert not unused.get_lines()                                              # a second family would draw here
    assert len(null.patches) > 0 and "absolute (n=" in null.get_legend().get_texts()[0].get_text()
