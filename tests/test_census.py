"""memkit.census on the tiny model: the screen is exact, runs resume and repeat byte for byte, sources
keep their bytes, rates carry Wilson CIs, memorized sets round-trip, the command fails in one line."""

from __future__ import annotations

import hashlib
import os
import platform
import sysconfig
from pathlib import Path

import pandas as pd
import pytest

import memkit
from memkit import MemkitError, Sample, census, make_samples
from memkit.cli import main
from memkit.core.extract import pad_token_id, plan_batches

from conftest import BASE_TEXT, hf_greedy

K, M = 8, 8


def tiny_documents() -> list[census.Document]:
    """Two documents of the tiny model's training text (one with original line breaks)."""
    lines = [line for line in BASE_TEXT.splitlines() if line]
    return [census.Document("tiny", "keeper", "natural", "\n".join(lines[:6]) + "\n", "conftest.BASE_TEXT"),
            census.Document("tiny", "village", "natural", " ".join(lines[6:12]), "conftest.BASE_TEXT")]


def recited(tiny_lm, base: Sample, n_own: int, name: str) -> Sample:
    """`base` whose first `n_own` suffix tokens are the model's own greedy ones (all M: fully recited)."""
    own = hf_greedy(tiny_lm.model, base.prompt_ids, M, pad_token_id(tiny_lm.tokenizer))
    suffix = tuple(own[:n_own]) + tuple(base.suffix_ids[n_own:])
    if n_own < M and suffix[n_own] == own[n_own]:  # make sure the run really breaks at n_own
        suffix = suffix[:n_own] + ((suffix[n_own] + 1) % 400,) + suffix[n_own + 1:]
    return Sample(f"{base.id}#{name}", base.prefix_ids, suffix, base.prompt_ids, base.mode, dict(base.meta))


@pytest.fixture(scope="module")
def windows(tiny_lm):
    """Text windows of two documents, plus fully and partly recited ones and a shorter prompt."""
    text = census.document_windows(tiny_lm.tokenizer, tiny_documents(), k=K, m=M)
    assert len(text) >= 8
    short = text[1]
    shorter = Sample(f"{short.id}#k5", short.prefix_ids[3:], short.suffix_ids, short.prompt_ids[:1] + short.prompt_ids[4:],
                     "raw", dict(short.meta))
    extra = [recited(tiny_lm, text[0], M, "own"), recited(tiny_lm, text[2], 3, "own3"),
             recited(tiny_lm, shorter, M, "own"), shorter]
    return text[:6] + extra + text[6:]


def run(tiny_lm, windows, out, **options):
    options = {"screen_prefix": 2, "screen_accuracy": 0.5, "recall_fraction": 0.5, "recall_min": 3,
               "batch_size": 3, "progress": False, **options}
    return census.run_census(tiny_lm, windows, out, **options)


@pytest.fixture(scope="module")
def finished(tiny_lm, windows, tmp_path_factory):
    out = tmp_path_factory.mktemp("census") / "run"
    return out, run(tiny_lm, windows, out)


# -- the screen is exact ---------------------------------------------------------------------------
@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_screen_equals_greedy_extraction_on_every_window(tiny_lm, windows, batch_size):
    greedy = memkit.extract(tiny_lm, windows, batch_size=4, progress=False)
    screened = pd.concat([census.screen_batch(tiny_lm, [windows[i] for i in batch])
                          for batch in plan_batches(windows, batch_size)]).set_index("id").loc[greedy["id"]]
    assert list(screened["prefix_match_len"]) == list(greedy["prefix_match_len"])
    assert list(screened["exact_match"]) == list(greedy["exact_match"])
    # the set covers recitation, a run that breaks after 3 tokens, and windows the model does not know
    assert greedy["exact_match"].sum() == 2
    assert 3 in set(greedy["prefix_match_len"])
    assert (greedy["prefix_match_len"] == 0).any()
    assert len({len(s.prompt_ids) for s in windows}) == 2  # right padding is exercised


def test_screen_columns_are_consistent(tiny_lm, windows):
    frame = census.screen_batch(tiny_lm, windows[:5])
    assert list(frame["id"]) == [s.id for s in windows[:5]]
    assert frame["tf_accuracy"].between(0, 1).all() and (frame["tf_mean_logprob"] < 0).all()
    assert (frame["tf_accuracy"] >= frame["prefix_match_len"] / M).all()
    assert frame["tf_mean_top1_prob"].between(0, 1).all() and (frame["tf_min_top2_gap"] >= 0).all()


def test_screen_rejects_mixed_suffix_lengths(tiny_lm, windows):
    other = Sample("x", windows[0].prefix_ids, windows[0].suffix_ids[:4], windows[0].prompt_ids)
    with pytest.raises(MemkitError, match="same suffix length"):
        census.screen_batch(tiny_lm, [windows[0], other])


# -- the whole run ---------------------------------------------------------------------------------
def test_run_census_writes_every_output(finished, windows):
    out, result = finished
    assert sorted(p.name for p in out.iterdir()) == sorted([*census.OUTPUTS, "cache"])
    screen = pd.read_parquet(out / "screen.parquet")
    assert list(screen["id"]) == [s.id for s in windows]
    confirmed = pd.read_parquet(out / "confirmed.parquet")
    assert set(confirmed["id"]) == set(screen.loc[screen["candidate"] | screen["recall_sample"], "id"])
    assert confirmed["screen_agrees"].all()
    assert not (screen["candidate"] & screen["recall_sample"]).any()
    recited_ids = {s.id for s in windows if s.id.endswith("#own")}
    assert set(confirmed.loc[confirmed["exact_match"], "id"]) == recited_ids
    assert confirmed.set_index("id").loc[sorted(recited_ids), "greedy_confidence"].between(0, 1).all()
    rates = pd.read_csv(out / "rates.csv")
    total = rates[(rates["source"] == "all") & (rates["category"] == "all")].iloc[0]
    assert total["screened"] == len(windows) and total["exact"] == 2
    assert total["near_verbatim"] >= 2 and total["exact_lo"] <= total["exact_rate"] <= total["exact_hi"]
    assert set(rates["position"]) == {"all", "opening", "interior"}
    assert list(result.recall["rule"]) == ["near_verbatim", "exact"]


def test_candidates_follow_the_thresholds(finished):
    screen = finished[1].screen
    expected = (screen["prefix_match_len"] >= 2) | (screen["tf_accuracy"] >= 0.5)
    assert list(screen["candidate"]) == list(expected)


def test_recall_sample_is_seeded_and_sized():
    ids = [f"w{i}" for i in range(1000)]
    assert len(census.recall_ids(ids, fraction=0.05, minimum=200, seed=0)) == 200
    assert len(census.recall_ids(ids, fraction=0.3, minimum=200, seed=0)) == 300
    assert len(census.recall_ids(ids[:50], fraction=0.05, minimum=200, seed=0)) == 50
    assert census.recall_ids(ids, fraction=0.0, minimum=200, seed=0) == []
    assert census.recall_ids(ids, fraction=0.1, minimum=0, seed=1) == census.recall_ids(ids[::-1], fraction=0.1,
                                                                                         minimum=0, seed=1)
    assert census.recall_ids(ids, fraction=0.1, minimum=0, seed=1) != census.recall_ids(ids, fraction=0.1, minimum=0,
                                                                                        seed=2)


def test_run_census_is_deterministic(tiny_lm, windows, finished, tmp_path):
    again = tmp_path / "again"
    run(tiny_lm, windows, again)
    for name in ("screen.parquet", "confirmed.parquet", "rates.csv", "recall.csv", "census.json"):
        assert (again / name).read_bytes() == (finished[0] / name).read_bytes(), name


def test_run_census_resumes_without_recomputing(tiny_lm, windows, finished, tmp_path, monkeypatch):
    real = census.screen_batch
    calls = {"n": 0, "fail_after": 1}

    def counting(lm, batch):
        if calls["fail_after"] is not None and calls["n"] >= calls["fail_after"]:
            raise RuntimeError("killed for the test")
        calls["n"] += 1
        return real(lm, batch)

    monkeypatch.setattr(census, "screen_batch", counting)
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="killed"):
        run(tiny_lm, windows, out)
    parts = out / "cache" / "screen.parquet.parts"
    assert sorted(p.name for p in parts.glob("part-*")) == ["part-000000.parquet"]
    calls.update(n=0, fail_after=None)
    run(tiny_lm, windows, out)
    n_batches = len(plan_batches(windows, 3))
    n_confidence = -(-len(pd.read_parquet(out / "confirmed.parquet")) // 3)
    assert calls["n"] == (n_batches - 1) + n_confidence  # the finished shard was not screened again
    for name in ("screen.parquet", "confirmed.parquet", "rates.csv"):
        assert (out / name).read_bytes() == (finished[0] / name).read_bytes(), name
    calls["n"] = 0
    run(tiny_lm, windows, out)  # a finished run: nothing is computed again
    assert calls["n"] == 0


def test_run_census_needs_windows_and_a_folder(tiny_lm, windows, tmp_path):
    with pytest.raises(MemkitError, match="no windows"):
        census.run_census(tiny_lm, [], tmp_path / "x", progress=False)
    with pytest.raises(MemkitError, match="does not exist"):
        census.run_census(tiny_lm, windows, tmp_path / "missing" / "x", progress=False)


# -- statistics ------------------------------------------------------------------------------------
@pytest.mark.parametrize("x,n", [(0, 1), (0, 20), (1, 20), (7, 30), (15, 30), (30, 30), (3, 1000), (999, 1000)])
def test_wilson_interval_matches_scipy(x, n):
    from scipy.stats import binomtest

    expected = binomtest(x, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert census.wilson_interval(x, n) == pytest.approx((expected.low, expected.high), abs=1e-12)


def test_wilson_interval_without_trials_is_nan():
    lo, hi = census.wilson_interval(0, 0)
    assert lo != lo and hi != hi


def test_screen_recall_estimate():
    table = pd.DataFrame({"candidate": [True] * 10 + [False] * 90,
                          "recall_sample": [False] * 10 + [True] * 20 + [False] * 70,
                          "near_verbatim": [True] * 9 + [False] + [True] + [False] * 89,
                          "exact_match": [True] * 5 + [False] * 95})
    recall = census.screen_recall(table).set_index("rule")
    row = recall.loc["near_verbatim"]
    assert (row["found"], row["sampled"], row["missed_in_sample"], row["non_candidates"]) == (9, 20, 1, 90)
    assert row["recall"] == pytest.approx(9 / (9 + 90 / 20))
    lo, hi = census.wilson_interval(1, 20)
    assert (row["recall_lo"], row["recall_hi"]) == pytest.approx((9 / (9 + hi * 90), 9 / (9 + lo * 90)))
    assert recall.loc["exact", "recall"] == 1.0


# -- sources and windows ---------------------------------------------------------------------------
def test_license_reader_keeps_bytes(tmp_path):
    text = "\t\t    GNU GENERAL PUBLIC LICENSE\n\n  Preamble\r\n\n    indented  twice\n"
    (tmp_path / "GPL-3").write_bytes(text.encode())
    (tmp_path / "MPL-2.0").write_bytes("Mozilla Public License\n\n1. Definitions\n".encode())
    os.symlink(tmp_path / "GPL-3", tmp_path / "GPL")
    docs = list(census.license_documents(tmp_path))
    assert [d.doc for d in docs] == ["GPL-3", "MPL-2.0"]
    assert docs[0].text == text and docs[0].category == "license" and docs[0].source == "licenses"
    assert docs[0].sha256 == hashlib.sha256(text.encode()).hexdigest()
    with pytest.raises(MemkitError, match="none of its files"):
        list(census.license_documents(tmp_path / "empty"))


@pytest.mark.skipif(not Path("/usr/share/common-licenses/GPL-3").is_file(), reason="no Debian licence texts")
def test_license_source_is_the_shipped_files():
    docs = {d.doc: d for d in census.SOURCES["licenses"]()}
    assert docs["GPL-3"].text == Path("/usr/share/common-licenses/GPL-3").read_text()
    assert docs["GPL-3"].text.startswith("                    GNU GENERAL PUBLIC LICENSE\n")
    assert "GPL" not in docs and "LGPL" not in docs  # symlinks to GPL-3, LGPL-3


def test_stdlib_source_is_the_running_interpreter():
    docs = {d.doc: d for d in census.SOURCES["stdlib"]()}
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for name in ("this.py", "json/__init__.py"):
        assert docs[name].text.encode() == (stdlib / name).read_bytes()
        assert docs[name].sha256 == hashlib.sha256((stdlib / name).read_bytes()).hexdigest()
        assert platform.python_version() in docs[name].provenance and name in docs[name].provenance
    assert docs["json/__init__.py"].text.startswith('r"""JSON (JavaScript Object Notation)')
    assert {d.category for d in docs.values()} == {"code"}


def test_parse_bible():
    raw = "\nGenesis 1\n\n  1 In the beginning.\n  2 And the earth.\n\nPsalms 117\n\n  1 O praise.\n"
    assert census.parse_bible(raw) == [("Genesis 1", "In the beginning. And the earth."), ("Psalms 117", "O praise.")]
    with pytest.raises(MemkitError, match="verse before any chapter"):
        census.parse_bible("  1 In the beginning.\n")


@pytest.mark.skipif(not Path("/usr/bin/bible").exists(), reason="Debian bible-kjv not installed")
def test_kjv_sources_split_the_bible():
    famous = list(census.SOURCES["kjv-famous"]())
    others = list(census.SOURCES["kjv"]())
    assert len(famous) + len(others) == 1189
    assert {d.doc.rsplit("-", 1)[0] for d in famous} == {"genesis", "psalms", "matthew", "john"}
    assert famous[0].doc == "genesis-1"
    assert famous[0].text.startswith("In the beginning God created the heaven and the earth. And the earth was")
    assert not {d.doc for d in famous} & {d.doc for d in others}
    assert "1-john-1" in {d.doc for d in others}


def test_attractor_source_has_no_controls_or_sequences():
    docs = list(census.SOURCES["attractors"]())
    ids = {d.doc for d in docs}
    assert "genesis_1" in ids and "zen_of_python" in ids and "mit_license" in ids
    assert not ids & {"counting", "alphabet", "pi_digits", "control_shuffled_genesis_1"}
    assert {d.category for d in docs} <= set(census.CATEGORIES)


def test_unknown_source():
    with pytest.raises(MemkitError, match="unknown census source 'bible'"):
        census.census_windows(object(), ["bible"])


def test_windows_are_exact_spans_in_document_order(tiny_lm):
    docs = tiny_documents()
    windows = census.document_windows(tiny_lm.tokenizer, docs, k=K, m=M)
    for sample in windows:
        doc = next(d for d in docs if d.doc == sample.meta["doc"])
        assert sample.meta["window_text"] in doc.text
        ids = tiny_lm.tokenizer(sample.meta["window_text"], add_special_tokens=False)["input_ids"]
        assert ids[: K + M] == list(sample.prefix_ids + sample.suffix_ids)
    starts = [(s.meta["doc"], s.meta["token_start"]) for s in windows]
    assert starts == sorted(starts, key=lambda x: (x[0] != "keeper", x[1]))
    assert {s.meta["token_start"] % (K + M) for s in windows} == {0}
    # consecutive windows do not overlap and leave nothing out between them
    keeper = [s.meta["window_text"] for s in windows if s.meta["doc"] == "keeper"]
    assert docs[0].text.startswith("".join(keeper))


def test_window_selection_caps_openings_first_and_nests(tiny_lm):
    docs = tiny_documents()
    every = census.document_windows(tiny_lm.tokenizer, docs, k=K, m=M)
    three = census.document_windows(tiny_lm.tokenizer, docs, k=K, m=M, cap=3, seed=0)
    five = census.document_windows(tiny_lm.tokenizer, docs, k=K, m=M, cap=5, seed=0)
    assert len(three) == 3 and {s.meta["position"] for s in three[:1]} == {"opening"}
    assert sum(s.meta["position"] == "opening" for s in three) == 2  # both documents' openings
    assert {s.id for s in three} <= {s.id for s in five} <= {s.id for s in every}
    assert [s.id for s in three] == [s.id for s in census.document_windows(tiny_lm.tokenizer, docs, k=K, m=M,
                                                                            cap=3, seed=0)]
    assert [s.id for s in census.document_windows(tiny_lm.tokenizer, docs, k=K, m=M, cap=1, seed=0)][0] \
        .endswith("@0")


# -- memorized sets --------------------------------------------------------------------------------
def test_memorized_records_round_trip(tiny_lm, finished):
    confirmed = finished[1].confirmed
    text_rows = confirmed[~confirmed["id"].str.contains("#")]
    assert len(text_rows) >= 2
    forced = confirmed.assign(near_verbatim=confirmed["id"].isin(text_rows["id"]))
    records = census.memorized_records(forced)
    assert [r["id"] for r in records] == list(text_rows["id"])
    assert {"id", "text", "source", "category", "position", "greedy_confidence"} <= set(records[0])
    rebuilt = make_samples(tiny_lm, records, k=K, m=M)
    expected = text_rows.set_index("id")
    for sample in rebuilt:
        assert list(sample.prefix_ids) == list(expected.loc[sample.id, "prefix_ids"])
        assert list(sample.suffix_ids) == list(expected.loc[sample.id, "suffix_ids"])
    assert census.memorized_records(forced, category="code") == []
    with pytest.raises(MemkitError, match="unknown memorization rule"):
        census.memorized_records(forced, rule="fuzzy")


def test_memorized_records_from_a_folder(finished):
    out, result = finished
    from_folder = census.memorized_records(out, rule="exact", distinct=False)
    assert sorted(r["id"] for r in from_folder) == sorted(s for s in result.confirmed["id"] if s.endswith("#own"))
    assert census.memorized_records(result, rule="exact", distinct=False) == from_folder


def test_windows_from_census_rebuild_the_same_tokens(tiny_lm, finished, windows):
    rebuilt = census.windows_from_census(tiny_lm, finished[0], k=K, m=M)
    by_id = {s.id: s for s in windows}
    text_windows = [s for s in rebuilt if "#" not in s.id]
    assert len(text_windows) == sum("#" not in s.id for s in windows)
    for sample in text_windows:
        assert sample.prefix_ids == by_id[sample.id].prefix_ids and sample.suffix_ids == by_id[sample.id].suffix_ids
        assert sample.meta["source"] == "tiny"


def confirmed_frame(memorized: dict[str, float], others: dict[str, float], source="s") -> pd.DataFrame:
    rows = [{"id": i, "greedy_confidence": c, "near_verbatim": True, "exact_match": False} for i, c in memorized.items()]
    rows += [{"id": i, "greedy_confidence": c, "near_verbatim": False, "exact_match": False} for i, c in others.items()]
    frame = pd.DataFrame(rows)
    for field in census.RECORD_FIELDS:
        if field not in frame:
            frame[field] = source if field == "source" else "natural" if field == "category" else 0
    return frame.assign(window_text=frame["id"], duplicate_of=None)


def test_matched_controls_nearest_without_replacement():
    frame = confirmed_frame({"m1": 0.9, "m2": 0.8, "m3": 0.35}, {"c1": 0.85, "c2": 0.5, "c3": 0.1, "c4": 0.79})
    controls = census.matched_controls(frame)
    assert [(c["matched_to"], c["id"]) for c in controls] == [("m1", "c1"), ("m2", "c4"), ("m3", "c2")]
    assert controls[0]["distance"] == pytest.approx(0.05)
    assert census.matched_controls(frame) == controls  # deterministic
    assert all("text" in c and c["near_verbatim"] is False for c in controls)
    few = confirmed_frame({"m1": 0.9, "m2": 0.8}, {"c1": 0.1})
    assert [c["id"] for c in census.matched_controls(few)] == ["c1"]  # the pool runs out
    with pytest.raises(MemkitError, match="cannot match"):
        census.matched_controls(frame, by="loss")


def test_matched_controls_same_source():
    frame = pd.concat([confirmed_frame({"a1": 0.9}, {"a2": 0.2}, source="a"),
                       confirmed_frame({"b1": 0.5}, {"b2": 0.88}, source="b")], ignore_index=True)
    assert {(c["matched_to"], c["id"]) for c in census.matched_controls(frame, same_source=True)} == \
        {("a1", "a2"), ("b1", "b2")}
    assert [(c["matched_to"], c["id"]) for c in census.matched_controls(frame)] == [("a1", "b2"), ("b1", "a2")]


# -- command line ----------------------------------------------------------------------------------
def test_cli_sources_and_defaults_match_the_library():
    from memkit.cli import build_parser
    from memkit.cli import census as cli_census

    assert cli_census.SOURCE_NAMES == tuple(census.SOURCES)
    args = build_parser().parse_args(["census", "--model", "m", "--out", "d"])
    assert (args.screen_prefix, args.screen_accuracy) == (census.DEFAULT_SCREEN_PREFIX, census.DEFAULT_SCREEN_ACCURACY)
    assert (args.recall_sample, args.recall_min) == (census.DEFAULT_RECALL_FRACTION, census.DEFAULT_RECALL_MIN)


def test_bench_census_rows(tiny_lm):
    from memkit.paper.bench import census_rows

    rows = {row["method"]: row for row in census_rows(tiny_lm, 4, K, M, 2, 1)}
    assert set(rows) == {"generate", "memkit_drafted", "census_screen"}
    assert all(row["tokens_identical_to_generate"] and row["samples"] == 4 for row in rows.values())
    assert rows["census_screen"]["x_floor"] == 1.0 and rows["census_screen"]["windows_per_s"] > 0


@pytest.mark.parametrize("argv,message", [
    (["--sources", "kjv,bible"], "unknown source 'bible'"),
    (["--sources", "kjv,kjv"], "give each source once"),
    (["--sources", ","], "give each source once"),
    (["-k", "0"], "must be a positive integer"),
    (["-m", "x"], "expected an integer"),
    (["--max-windows-per-source", "-3"], "must be a positive integer"),
    (["--screen-accuracy", "1.5"], "must lie in [0, 1]"),
    (["--screen-prefix", "-1"], "must be an integer >= 0"),
    (["--recall-sample", "nan"], "must lie in [0, 1]"),
    (["--batch-size", "0"], "must be a positive integer"),
])
def test_cli_bad_arguments_are_one_line(argv, message, tmp_path, capsys):
    assert main(["census", "--model", "gemma-3-270m", "--out", str(tmp_path / "c"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("memkit: error: ") and message in err
    assert not (tmp_path / "c").exists()


def test_cli_output_folder_errors(tmp_path, tiny_model_dir, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for out, message in ((a_file, "is a file"), (tmp_path / "no" / "dir", "does not exist")):
        assert main(["census", "--model", str(tiny_model_dir), "--out", str(out), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err
    assert main(["census", "--model", str(tiny_model_dir), "--out", str(tmp_path / "c"),
                 "--windows-from", str(tmp_path), "--no-progress"]) == 2
    assert "not a finished census folder" in capsys.readouterr().err


def test_cli_census_end_to_end(tmp_path, tiny_model_dir, capsys):
    out = tmp_path / "census"
    argv = ["census", "--model", str(tiny_model_dir), "--sources", "attractors", "--out", str(out), "-k", "8", "-m", "8",
            "--max-windows-per-source", "6", "--recall-min", "2", "--no-progress"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("attractors (natural): ") and "exact 0 (0.0% [" in line for line in lines)
    assert "screen recall (near_verbatim): 0 memorized among 2 sampled non-candidates (of 6) -> recall undefined " \
           "(nothing memorized found)" in lines
    assert lines[-1].startswith("written: ")
    assert len(pd.read_parquet(out / "screen.parquet")) == 6
    again = tmp_path / "again"
    assert main([*argv[:-1], "--windows-from", str(out), "--out", str(again), "--no-progress"]) == 0
    assert capsys.readouterr().out.startswith(f"reusing 6 of the 6 windows of {out} ")
    assert list(pd.read_parquet(again / "screen.parquet")["id"]) == list(pd.read_parquet(out / "screen.parquet")["id"])
