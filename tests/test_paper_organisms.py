"""Pure parts of the organism drivers (memkit.paper.organism_runs) on hand-made run frames."""

import pandas as pd

from memkit.paper import organism_runs
from memkit.paper.report import format_params


def test_format_params():
    assert [format_params(n) for n in (850_400, 1_234_567, 12_345_678)] == ["850k", "1.2M", "12M"]


# -- fig_context ---------------------------------------------------------------------------------------------------
def _context() -> organism_runs.Context:
    """One size; two 64-copy canaries extractable only with k = 40, a control that never is."""
    rows = [{"size": "a", "params": 500_000, "level": level, "id": cid, "k": k,
             "exact_match": int(k == 40 and level > 0), "biderman": 0.5 if k == 4 else 1.0}
            for k in (4, 40) for cid, level in (("c0", 0), ("c1", 64), ("c2", 64))]
    runs = pd.DataFrame(rows)
    slopes = organism_runs.context_slopes(runs, ["a"], min_level=64, n_boot=10)
    return organism_runs.Context(["a"], runs, organism_runs.level_rates(runs, by=("size", "params", "level", "k")),
                                 slopes)


def test_context_slopes_curve_and_numbers():
    ctx = _context()
    assert ctx.slopes[["size", "metric"]].values.tolist() == [["a", "exact_match"], ["a", "biderman"]]
    assert [round(s, 12) for s in ctx.slopes["slope"]] == [1.0, 0.5]  # per decade of k, controls left out
    curve = organism_runs.context_curve(ctx.runs, "a", min_level=64)
    assert curve.index.tolist() == [4, 40] and curve["exact_match"].tolist() == [0.0, 1.0]
    numbers = organism_runs.context_numbers(ctx, ks=[4, 40], m=32, min_level=64, n_boot=10)
    assert numbers["CtxKMin"] == 4 and numbers["CtxKMax"] == 40 and numbers["CtxMinLevel"] == 64
    assert numbers["CtxExactASlope"] == "1.000" and numbers["CtxBidermanASlope"] == "0.500"
    assert "CtxExactARsq" not in numbers
    assert numbers["CtxLargestExactKMin"] == "0.00" and numbers["CtxLargestExactKMax"] == "1.00"
    assert numbers["CtxLargestBidermanKMin"] == "0.50" and numbers["CtxLargestBidermanKMax"] == "1.00"


# -- tab_latent ----------------------------------------------------------------------------------------------------
def test_latent_candidates_keep_controls_and_frequent_all_window_canaries():
    from memkit.core.samples import Sample

    metas = [("c", "all", 0), ("few", "all", 4), ("many", "all", 16), ("early", "early", 64)]
    samples = [Sample(name, (1,), (2,), (1,), meta={"window": window, "level": level}) for name, window, level in metas]
    assert [s.id for s in organism_runs.latent_candidates(samples, min_level=16)] == ["c", "many"]


def _latent() -> pd.DataFrame:
    """Size `a`, sigmas 0.125 / 0.25: controls c1 c2, hidden canary i1 (recovered exactly at 0.125), visible
    canary i3, extractable canary i2 (not tested)."""
    rows = []  # id, level, clean similarity, clean exact, {sigma: (best similarity, best exact)}
    for cid, level, clean, clean_exact, best in (
            ("c1", 0, 0.125, False, {0.125: (0.5, False), 0.25: (0.75, True)}),
            ("c2", 0, 0.25, False, {0.125: (0.5, False), 0.25: (0.875, False)}),
            ("i1", 16, 0.25, False, {0.125: (0.75, True), 0.25: (0.75, False)}),
            ("i2", 16, 1.0, True, {0.125: (1.0, True), 0.25: (1.0, True)}),
            ("i3", 16, 0.5, False, {0.125: (0.9375, False), 0.25: (1.0, False)})):
        for sigma, (sim, exact) in best.items():
            rows.append({"id": cid, "sigma": sigma, "meta_level": level, "clean_similarity": clean,
                         "clean_exact": clean_exact, "best_similarity": sim, "best_exact": exact, "size": "a",
                         "params": 500_000})
    return pd.DataFrame(rows)


def test_latent_tests_table_and_numbers():
    latent = _latent()
    tested, result = organism_runs.latent_tests(latent)
    assert sorted(tested["id"].unique()) == ["c1", "c2", "i1", "i3"]  # i2 is extractable without noise
    assert result["recovered"].tolist() == [1, 0] and result["recovered_exact"].tolist() == [1, 0]
    table, caption = organism_runs.latent_table(result, n_draws=4, min_level=16)  # p: the exact U test, 1/6
    assert table.columns.tolist()[2] == "inserted / hidden / controls"
    assert table.iloc[0].tolist() == ["zoo:a", "0.125", "2 / 1 / 2", "0.500", 1, 1, "+0.469 / +0.312", "0.17"]
    assert table.iloc[1, :6].tolist() == ["zoo:a", "0.25", "2 / 1 / 2", "0.875", 0, 0]
    assert "over 4 gaussian" in caption and "($\\geq$16 copies)" in caption
    lat = organism_runs.Latent(["a"], latent, tested, result)
    numbers = organism_runs.latent_numbers(lat, sigmas=[0.125, 0.25], n_draws=4, min_level=16)
    assert numbers["LatentSigmaMin"] == "0.125" and numbers["LatentSigmaMax"] == "0.25"
    assert numbers["LatentRecoveredCanaries"] == 1 and numbers["LatentRecoveredExactCanaries"] == 1
    assert numbers["LatentControlsEverExact"] == 1  # c1 at sigma 0.25
    assert numbers["LatentTestedTotal"] == 2 and numbers["LatentHiddenTotal"] == 1
    assert numbers["LatentSignificant"] == 0 and numbers["LatentNTests"] == 2
    assert numbers["LatentRecoveredMaxA"] == 1 and numbers["LatentRecoveredMaxSigmaA"] == "0.125"
    assert numbers["LatentTestedA"] == 2
