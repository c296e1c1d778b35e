"""The census table's driver (memkit.paper.census_runs) on a hand-made census and on the tiny model, and
the texts-vs-sequences split of Table 1 (memkit.paper.experiments) on hand-made result frames."""

from __future__ import annotations

import pandas as pd
import pytest

from memkit import census
from memkit.paper import census_runs
from memkit.paper.experiments import (add_kind, add_verdicts, attractor_numbers, record_kind, summarize,
                                      summarize_by_kind)

NaN = float("nan")


# -- the census driver on a hand-made census ------------------------------------------------------
def synthetic_census() -> census.Census:
    """Source `a`: 4 windows, 2 memorized (1 exact), both found by the screen, 1 sampled non-candidate (not
    memorized). Source `b`: 3 windows, the only memorized one missed by the screen, caught by the recall sample."""
    screen = pd.DataFrame({
        "id": ["a@0", "a@64", "a@128", "a@192", "b@0", "b@64", "b@128"],
        "source": ["a", "a", "a", "a", "b", "b", "b"],
        "candidate": [True, True, False, False, False, True, False],
        "recall_sample": [False, False, True, False, True, False, False],
        "decoded": [True, True, True, False, True, True, False],
        "exact_match": [True, False, False, False, False, False, False],
        "near_verbatim": pd.array([True, True, False, None, True, False, None], dtype="boolean"),
    })
    decoded = screen[screen["decoded"]]
    confirmed = pd.DataFrame({
        "id": decoded["id"].to_numpy(), "source": decoded["source"].to_numpy(),
        "doc": ["d_1", "d_1", "d_1", "e", "e"], "token_start": [0, 64, 128, 0, 64],
        "prefix_match_len": [32, 20, 1, 3, 0], "lev_similarity": [1.0, 0.8125, 0.1, 0.75, 0.2],
        "exact_match": [True, False, False, False, False],
        "near_verbatim": [True, True, False, True, False]})
    return census.Census(screen, confirmed, pd.DataFrame(), pd.DataFrame())


SETTINGS = census_runs.CensusSettings(sources=("licenses", "stdlib"), k=8, m=8, max_windows_per_source=4,
                                      screen_prefix=4, screen_accuracy=0.5, recall_fraction=0.5, recall_min=2)


def test_source_counts_rates_cis_and_recall_per_source():
    counts = census_runs.source_counts(synthetic_census(), ["a", "b"]).set_index("source")
    assert counts.loc["a", ["windows", "memorized", "exact", "candidates", "decoded"]].tolist() == [4, 2, 1, 2, 3]
    assert counts.loc["a", "rate"] == 0.5
    assert counts.loc["a", ["recall", "recall_sampled", "recall_missed"]].tolist() == [1.0, 1, 0]
    # b: nothing found by the screen, 1 of 1 sampled non-candidates memorized -> recall 0
    assert counts.loc["b", ["memorized", "found_by_screen", "recall", "recall_missed"]].tolist() == [1, 0, 0.0, 1]
    # all: 2 found, 1 of 2 sampled among 4 non-candidates missed -> 2 missed estimated -> recall 2 / (2 + 2)
    totals = counts.loc["all", ["windows", "memorized", "exact", "non_candidates", "recall"]].tolist()
    assert totals == [7, 3, 1, 4, 0.5]
    assert counts.loc["all", ["rate_lo", "rate_hi"]].tolist() == pytest.approx([0.1582, 0.7495], abs=1e-4)
    assert counts.loc["all", ["recall_lo", "recall_hi"]].tolist() == pytest.approx([0.3558, 0.8410], abs=1e-4)


def test_rates_table_cells():
    table, caption = census_runs.rates_table({"m1": synthetic_census()}, SETTINGS, labels={"m1": "Model_1"})
    # sources of the settings that the census does not have give empty rows
    rows = [list(map(str, row)) for row in table.itertuples(index=False)]
    assert rows == [
        ["Debian licence texts", "0", "0", "--", "0", "--", "0/0"],
        ["CPython standard library", "0", "0", "--", "0", "--", "0/0"],
        ["all", "7", "3", "42.86 [15.82, 74.95]", "1", "0.50 [0.36, 0.84]", "1/2"],
    ]
    assert table.columns[1] == ("Model\\_1", "$n$")
    assert "$k+m=8+8$" in caption and "at most 4 per source" in caption and "(50\\%, at least 2 per model)" in caption


def test_rates_table_per_source_rows():
    settings = census_runs.CensusSettings(sources=("licenses",), k=8, m=8)
    result = synthetic_census()
    result.screen["source"] = result.screen["source"].map({"a": "licenses", "b": "stdlib"})
    table, _ = census_runs.rates_table({"m1": result}, settings, labels={})
    first = list(map(str, table.iloc[0]))
    # licenses = source a: 2 of 4 memorized, Wilson [15.00, 85.00]; recall 1 with the bound of 0 of 1 sampled
    assert first == ["Debian licence texts", "4", "2", "50.00 [15.00, 85.00]", "1", "1.00 [0.56, 1.00]", "0/1"]


def test_memorized_table_lists_every_memorized_window():
    found = census_runs.memorized_table({"m1": synthetic_census()}, labels={"m1": "M"})
    assert found.values.tolist() == [
        ["M", "a", "\\texttt{d\\_1}", 0, 32, "1.00", "yes"],
        ["M", "a", "\\texttt{d\\_1}", 64, 20, "0.81", "no"],
        ["M", "b", "\\texttt{e}", 0, 3, "0.75", "no"],
    ]
    assert census_runs.memorized_table({}, labels={}).empty


def test_census_numbers():
    result = synthetic_census()
    result.screen["source"] = result.screen["source"].map({"a": "licenses", "b": "stdlib"})
    result.confirmed["source"] = result.confirmed["source"].map({"a": "licenses", "b": "stdlib"})
    numbers = census_runs.census_numbers({"m1": result}, SETTINGS, keys={"m1": "Mone"})
    assert {name: numbers[name] for name in numbers if name.startswith("Mone")} == {
        "MoneCensusWindows": 7, "MoneCensusCandidates": 3, "MoneCensusDecoded": 5, "MoneCensusMemorized": 3,
        "MoneCensusRate": "42.86", "MoneCensusRateLo": "15.82", "MoneCensusRateHi": "74.95",
        "MoneCensusExact": 1, "MoneCensusExactRate": "14.29", "MoneCensusExactRateLo": "2.57",
        "MoneCensusExactRateHi": "51.31", "MoneCensusRecall": "0.50", "MoneCensusRecallLo": "0.36",
        "MoneCensusRecallHi": "0.84", "MoneCensusRecallSampled": 2, "MoneCensusRecallMissed": 1,
        "MoneCensusNonCandidates": 4,
        "MoneCensusMemorizedSources": "\\texttt{licenses} (2), \\texttt{stdlib} (1)",
        "MoneCensusMemorizedWindows": "\\texttt{licenses/d\\_1}@0, \\texttt{licenses/d\\_1}@64, \\texttt{stdlib/e}@0",
        "MoneCensusLicensesWindows": 4, "MoneCensusLicensesMemorized": 2,
        "MoneCensusStdlibWindows": 3, "MoneCensusStdlibMemorized": 1}
    assert {name: numbers[name] for name in numbers if not name.startswith("Mone")} == {
        "CensusPrefixTokens": 8, "CensusSuffixTokens": 8, "CensusMaxWindows": 4, "CensusNSources": 2,
        "CensusScreenPrefix": 4, "CensusScreenAccuracy": "0.5", "CensusRecallPercent": "50", "CensusRecallMin": 2,
        "CensusNModels": 1}


def test_settings_check_their_sources():
    with pytest.raises(Exception, match="unknown census source"):
        census_runs.CensusSettings(sources=("nope",))


# -- the driver on the tiny model: cached by model, windows, settings and code ---------------------------------
def test_census_runs_are_cached_and_keyed(tiny_lm, monkeypatch):
    settings = census_runs.CensusSettings(sources=("licenses",), k=8, m=8, max_windows_per_source=6, screen_prefix=2,
                                          screen_accuracy=0.5, recall_fraction=0.5, recall_min=2, batch_size=4)
    first = census_runs.census_runs(["tiny"], settings, loader=lambda spec: tiny_lm)["tiny"]
    assert len(first.screen) == 6 and set(first.screen["source"]) == {"licenses"}
    windows = census.census_windows(tiny_lm, ["licenses"], k=8, m=8, max_windows_per_source=6)
    folder = census_runs.census_folder(tiny_lm, windows, settings)
    assert (folder / "census.json").is_file() and folder.parent.name == "census"

    def no_rerun(*args, **kwargs):
        raise AssertionError("a finished census must be read back, not rerun")

    monkeypatch.setattr(census, "run_census", no_rerun)
    again = census_runs.census_runs(["tiny"], settings, loader=lambda spec: tiny_lm)["tiny"]
    pd.testing.assert_frame_equal(again.screen, first.screen)
    other = census_runs.CensusSettings(**{**settings.__dict__, "screen_prefix": 3})
    assert census_runs.census_folder(tiny_lm, windows, other) != folder  # other settings, other folder


# -- Table 1: texts and computed sequences apart --------------------------------------------------------
def verdict_frame() -> pd.DataFrame:
    """Two modes of one model on a text, two sequences and a control (the sequence `count` is recited)."""
    base = pd.DataFrame({
        "id": ["poem", "count", "pi", "ctrl_poem"], "meta_category": ["poetry", "sequence", "sequence", "control"],
        "k": 32, "m": 64, "prefix_match_len": [20, 64, 2, 1], "exact_match": [False, True, False, False],
        "near_verbatim": [True, True, False, False], "seed_memorized": [False, True, False, False],
        "seed_score": [0.3, 1.0, 0.1, 0.05], "token_match": [0.5, 1.0, 0.1, 0.02], "lcs_len": [20, 64, 2, 1]})
    chat = base.assign(prefix_match_len=0, exact_match=False, near_verbatim=False, seed_memorized=False,
                       seed_score=[0.02, 0.01, 0.0, 0.0], token_match=0.0, lcs_len=[3, 40, 0, 0])
    frame = pd.concat([base.assign(mode="raw"), chat.assign(mode="chat")], ignore_index=True)
    frame = frame.assign(spec="m-1", model="m-1", n_params=100, is_instruct=True)
    return add_kind(add_verdicts(frame, biderman_m=32))


def test_record_kind():
    assert [record_kind(c) for c in ("sequence", "control", "poetry", "code")] == ["sequence", "control", "text",
                                                                                  "text"]


def test_summarize_by_kind_splits_texts_sequences_and_controls():
    summary = summarize_by_kind(verdict_frame(), long_prefix=16, seed_ids=["poem", "count"])
    assert summary[["mode", "kind", "n"]].values.tolist() == [
        ["raw", "all", 3], ["raw", "text", 1], ["raw", "sequence", 2], ["raw", "control", 1],
        ["chat", "all", 3], ["chat", "text", 1], ["chat", "sequence", 2], ["chat", "control", 1]]
    raw = summary[summary["mode"] == "raw"].set_index("kind")
    assert raw["mem_exact_count"].to_dict() == {"all": 1, "text": 0, "sequence": 1, "control": 0}
    assert raw["mem_near_verbatim_count"].to_dict() == {"all": 2, "text": 1, "sequence": 1, "control": 0}
    assert raw["long_prefix_count"].to_dict() == {"all": 2, "text": 1, "sequence": 1, "control": 0}
    assert raw["max_seed_score_seed_ids"].loc[["all", "text", "sequence"]].tolist() == [1.0, 0.3, 1.0]
    assert pd.isna(raw.loc["control", "max_seed_score_seed_ids"])
    # without `by`, summarize is unchanged: one row per model x mode
    assert summarize(verdict_frame(), seed_ids=["poem"])[["mode", "n"]].values.tolist() == [["raw", 4], ["chat", 4]]


def test_attractor_numbers_split_every_count():
    runs = verdict_frame()
    literature = pd.DataFrame({"attractor_id": ["count", "poem", "count", "poem", "alphabet"],
                               "model": ["L-8B", "L-8B", "M-7B", "M-7B", "M-7B"],
                               "seed_score": [0.12, 0.01, 0.0, 0.084, 0.2]})
    summary = summarize_by_kind(runs, long_prefix=16, seed_ids=list(dict.fromkeys(literature["attractor_id"])))
    categories = {"poem": "poetry", "count": "sequence", "pi": "sequence", "ctrl_poem": "control",
                  "alphabet": "sequence"}
    numbers = attractor_numbers(runs, summary, literature, categories=categories, keys={"m-1": "Mo"},
                                labels={"m-1": "M_1"}, k=32, m=64, biderman_m=32, long_prefix=16)
    expected = {
        "NAttractors": 3, "NTexts": 1, "NSequences": 2, "NControls": 1, "NRecords": 4, "NCombos": 2,
        "NSeedAttractors": 3, "NSeedTexts": 1, "NSeedSequences": 2, "BidermanTokens": 32,
        "MoRawN": 3, "MoRawExactCount": 1, "MoRawExactList": "\\texttt{count}", "MoRawNearVerbatimCount": 2,
        "MoRawTextsN": 1, "MoRawTextsExactCount": 0, "MoRawTextsExactList": "none", "MoRawTextsNearVerbatimCount": 1,
        "MoRawTextsNearVerbatimList": "\\texttt{poem}", "MoRawTextsLongPrefixCount": 1, "MoRawTextsMaxPrefix": 20,
        "MoRawTextsMaxPrefixId": "\\texttt{poem}", "MoRawTextsMaxPrefixSeed": "0.30", "MoRawTextsMaxSeedSeven": "0.30",
        "MoRawTextsMeanTokenMatch": "0.500", "MoRawTextsAnyCount": 1,
        "MoRawSequencesN": 2, "MoRawSequencesExactCount": 1, "MoRawSequencesExactList": "\\texttt{count}",
        "MoRawSequencesBidermanCount": 1, "MoRawSequencesMaxPrefix": 64, "MoRawSequencesMaxSeedSeven": "1.00",
        "MoRawSequencesMeanPrefix": "33.0", "MoRawSequencesLongPrefixList": "\\texttt{count}",
        "MoRawMaxPrefix": 64, "MoRawMaxSeedSeven": "1.00", "MoRawAnyCount": 2, "MoRawControlN": 1,
        "MoRawControlAnyCount": 0, "MoRawControlMaxPrefix": 1, "MoRawLabel": "M\\_1",
        "MoChatAnyCount": 0, "MoChatTextsAnyCount": 0, "MoChatSequencesAnyCount": 0, "MoChatTextsMaxSeed": "0.02",
        # position-free: the chat reply holds 40 consecutive tokens of `count` after a preamble
        "MoChatContainsCount": 1, "MoChatSequencesContainsList": "\\texttt{count}", "MoChatTextsContainsCount": 0,
        "MoChatMaxLcs": 40, "MoChatMaxLcsId": "\\texttt{count}", "MoChatTextsMaxLcs": 3, "MoRawContainsCount": 1,
        "LitMaxSeed": "0.20", "LitTextsMaxSeed": "0.08", "LitSequencesMaxSeed": "0.20",
        "LitLEightBMaxSeed": "0.120", "LitLEightBBest": "\\texttt{count}",
        "LitLEightBTextsMaxSeed": "0.010", "LitLEightBTextsBest": "\\texttt{poem}",
        "LitMSevenBTextsBest": "\\texttt{poem}", "LitMSevenBSequencesBest": "\\texttt{alphabet}",
    }
    assert {name: numbers[name] for name in expected} == expected
    # every per-combination count exists for all attractors, texts and sequences
    for infix in ("", "Texts", "Sequences"):
        for name in ("N", "ExactCount", "BidermanCount", "NearVerbatimCount", "SeedCount", "AnyCount",
                     "LongPrefixCount", "MeanPrefix", "MaxSeed", "MeanTokenMatch", "ContainsCount", "MaxLcs"):
            assert f"MoChat{infix}{name}" in numbers


def test_attractor_numbers_without_sequences_say_so():
    runs = verdict_frame()
    runs = runs[runs["kind"] != "sequence"]
    literature = pd.DataFrame({"attractor_id": ["poem"], "model": ["L-8B"], "seed_score": [0.01]})
    summary = summarize_by_kind(runs, seed_ids=["poem"])
    numbers = attractor_numbers(runs, summary, literature, categories={"poem": "poetry", "ctrl_poem": "control"},
                                keys={"m-1": "Mo"}, labels={}, k=32, m=64, biderman_m=32, long_prefix=16)
    assert numbers["MoRawSequencesN"] == 0 and numbers["MoRawSequencesExactList"] == "none"
    assert numbers["MoRawSequencesMaxPrefix"] == "--" and numbers["MoRawSequencesMeanTokenMatch"] == "--"
    assert numbers["MoRawSequencesMaxLcs"] == "--" and numbers["MoRawSequencesContainsCount"] == 0
    assert numbers["LitSequencesMaxSeed"] == "--" and numbers["NSequences"] == 0
