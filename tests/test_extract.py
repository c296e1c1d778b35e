"""memkit.extract (in memory) and run_extraction (parquet, resumable, deterministic) on the tiny model."""

from __future__ import annotations

import importlib
import json

import pandas as pd
import pyarrow.parquet as pq
import pytest

import memkit
from memkit import MemkitError, Sample, greedy_decode, make_samples, score_continuation
from memkit.core.extract import pad_token_id, plan_batches, read_run_config

from conftest import BASE_TEXT, hf_greedy

extract_module = importlib.import_module("memkit.core.extract")  # `memkit.extract` is the function

K, M = 8, 12
REQUIRED_COLUMNS = [
    "id", "model", "mode", "k", "m", "exact_match", "token_match", "prefix_match_len", "lcs_len", "levenshtein",
    "lev_similarity", "near_verbatim", "char_lev_similarity", "seed_score", "seed_memorized", "zlib_ratio",
    "prefix_ids", "suffix_ids", "generated_ids", "generated_text", "suffix_text", "min_top2_gap", "near_tie",
]
METRIC_COLUMNS = REQUIRED_COLUMNS[5:16]


@pytest.fixture(scope="module")
def samples(tiny_lm):
    """Seven samples with prompts of different lengths (so batches are re-ordered), plus one the
    model has 'memorised' (its suffix is the model's own greedy continuation)."""
    lines = [line for line in BASE_TEXT.splitlines() if line]
    records = [
        {"id": "text-0", "text": lines[0] + " " + lines[1]},
        {"id": "ps-long", "prefix": lines[2] + " " + lines[3], "suffix": " " + lines[4], "source": "keeper"},
        {"id": "text-1", "text": lines[5] + " " + lines[6]},
        {"id": "ps-short", "prefix": "The", "suffix": " " + lines[7], "source": "market"},
        {"id": "ps-mid", "prefix": lines[8][:40], "suffix": lines[8][40:] + " " + lines[9]},
        {"id": "text-2", "text": lines[10] + " " + lines[11]},
    ]
    built = make_samples(tiny_lm, records, k=K, m=M)
    prompt = list(built[0].prompt_ids[:-3])
    own = hf_greedy(tiny_lm.model, prompt, M, pad_token_id(tiny_lm.tokenizer))
    memorised = Sample("memorised", tuple(prompt[1:]), tuple(own), tuple(prompt), "raw")
    result = built[:3] + [memorised] + built[3:]
    assert len({len(s.prompt_ids) for s in result}) >= 4
    return result


def as_lists(frame):
    """List columns as Python lists of ints (parquet gives numpy arrays back)."""
    frame = frame.copy()
    for column in ("prefix_ids", "suffix_ids", "generated_ids"):
        frame[column] = frame[column].map(lambda ids: [int(i) for i in ids])
    return frame


@pytest.fixture(scope="module")
def frame(tiny_lm, samples):
    return memkit.extract(tiny_lm, samples, batch_size=3, progress=False)


# -- extract ----------------------------------------------------------------------------------
def test_extract_one_row_per_sample_in_input_order(frame, samples, tiny_lm):
    assert len(frame) == len(samples)
    assert list(frame["id"]) == [s.id for s in samples]
    assert list(frame.index) == list(range(len(samples)))
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    assert not missing
    assert set(frame["model"]) == {tiny_lm.name} and set(frame["mode"]) == {"raw"}
    assert list(frame["k"]) == [len(s.prefix_ids) for s in samples]
    assert set(frame["m"]) == {M}
    assert [list(x) for x in frame["prefix_ids"]] == [list(s.prefix_ids) for s in samples]
    assert [list(x) for x in frame["suffix_ids"]] == [list(s.suffix_ids) for s in samples]
    # record fields other than id/text/prefix/suffix become meta_ columns
    assert frame.set_index("id").loc["ps-long", "meta_source"] == "keeper"


def test_extract_generated_ids_are_the_greedy_continuation(frame, samples, tiny_lm):
    pad = pad_token_id(tiny_lm.tokenizer)
    for row, sample in zip(frame.itertuples(), samples):
        assert list(row.generated_ids) == hf_greedy(tiny_lm.model, sample.prompt_ids, M, pad)


def test_extract_metrics_consistent_with_ids(frame, tiny_lm):
    decode = tiny_lm.tokenizer.decode
    for row in frame.to_dict("records"):
        assert len(row["generated_ids"]) == M
        assert row["generated_text"] == decode(row["generated_ids"], skip_special_tokens=True)
        assert row["suffix_text"] == decode(row["suffix_ids"], skip_special_tokens=True)
        expected = score_continuation(row["generated_ids"], row["suffix_ids"], row["generated_text"], row["suffix_text"])
        assert {c: row[c] for c in METRIC_COLUMNS} == pytest.approx(expected)
        matches = sum(g == s for g, s in zip(row["generated_ids"], row["suffix_ids"]))
        assert row["token_match"] == matches / M
        assert row["exact_match"] == (row["generated_ids"] == row["suffix_ids"])
        assert row["near_tie"] == (row["min_top2_gap"] < 1e-4)
        assert row["min_top2_gap"] > 0


def test_extract_memorised_sample(frame):
    row = frame.set_index("id").loc["memorised"]
    assert bool(row["exact_match"]) is True
    assert row["token_match"] == 1.0
    assert row["prefix_match_len"] == M
    assert row["levenshtein"] == 0 and row["lev_similarity"] == 1.0
    assert bool(row["near_verbatim"]) is True
    assert list(row["generated_ids"]) == list(row["suffix_ids"])
    # the random model does not reproduce the real texts
    others = frame[frame["id"] != "memorised"]
    assert not others["exact_match"].any()


def assert_same_results(left, right):
    """Identical frames, except that `min_top2_gap` (a float diagnostic computed from logits of
    differently shaped forward passes) may differ in the last float32 bits."""
    pd.testing.assert_frame_equal(left.drop(columns="min_top2_gap"), right.drop(columns="min_top2_gap"))
    assert list(left["min_top2_gap"]) == pytest.approx(list(right["min_top2_gap"]), rel=1e-3, abs=1e-5)


def test_extract_fast_and_plain_identical(tiny_lm, samples, frame):
    plain = memkit.extract(tiny_lm, samples, batch_size=3, fast=False, progress=False)
    assert_same_results(plain, frame)
    # batch composition does not change any value either
    one_batch = memkit.extract(tiny_lm, samples, batch_size=16, fast=True, progress=False)
    assert_same_results(one_batch, frame)


def test_extract_with_logits_transform(tiny_lm, samples, frame):
    def transform(logits):
        logits = logits.clone()
        logits[..., [17, 102, 230]] += 2.0
        return logits

    fast = memkit.extract(tiny_lm, samples, batch_size=3, logits_transform=transform, progress=False)
    plain = memkit.extract(tiny_lm, samples, batch_size=3, fast=False, logits_transform=transform, progress=False)
    assert_same_results(fast, plain)
    pad = pad_token_id(tiny_lm.tokenizer)
    expected = greedy_decode(tiny_lm.model, [s.prompt_ids for s in samples], M, pad, logits_transform=transform)
    assert [list(x) for x in fast["generated_ids"]] == expected.generated_ids
    assert [list(x) for x in fast["generated_ids"]] != [list(x) for x in frame["generated_ids"]]


def test_extract_rejects_mixed_suffix_lengths(tiny_lm, samples):
    other = make_samples(tiny_lm, [BASE_TEXT], k=K, m=M + 1)
    with pytest.raises(MemkitError, match="same suffix length"):
        memkit.extract(tiny_lm, list(samples) + other, batch_size=16, progress=False)


def test_plan_batches_is_deterministic_and_sorted(samples):
    batches = plan_batches(samples, 3)
    assert sorted(i for b in batches for i in b) == list(range(len(samples)))
    assert [len(b) for b in batches] == [3, 3, 1]
    lengths = [len(samples[i].prompt_ids) for b in batches for i in b]
    assert lengths == sorted(lengths)
    assert plan_batches(samples, 3) == batches
    with pytest.raises(MemkitError, match="batch size"):
        plan_batches(samples, 0)


# -- run_extraction -----------------------------------------------------------------------------
CONFIG = {"command": "test", "k": K, "m": M}


@pytest.fixture
def count_batches(monkeypatch):
    """Count extract_batch calls; optionally make the run die after `fail_after` calls."""
    real = extract_module.extract_batch
    state = {"calls": 0, "fail_after": None, "exc": RuntimeError}

    def counting(*args, **kwargs):
        if state["fail_after"] is not None and state["calls"] >= state["fail_after"]:
            raise state["exc"]("killed for the test")
        state["calls"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(extract_module, "extract_batch", counting)
    return state


def leftovers(folder):
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".tmp") or ".tmp" in p.name)


def test_run_extraction_writes_parquet_that_round_trips(tiny_lm, samples, frame, tmp_path):
    out = tmp_path / "run.parquet"
    result = memkit.run_extraction(tiny_lm, samples, out, CONFIG, batch_size=3, progress=False)
    assert out.is_file()
    assert not (tmp_path / "run.parquet.parts").exists()
    assert leftovers(tmp_path) == []
    back = pd.read_parquet(out)
    assert len(back) == len(samples)
    pd.testing.assert_frame_equal(as_lists(back), as_lists(frame))
    pd.testing.assert_frame_equal(as_lists(result), as_lists(frame))
    assert [list(x) for x in back["generated_ids"]] == [list(x) for x in frame["generated_ids"]]
    schema = pq.read_schema(out)
    assert str(schema.field("generated_ids").type).startswith("list<")
    stored = read_run_config(out)
    assert stored["command"] == "test" and stored["k"] == K and stored["batch_size"] == 3 and "key" in stored


def test_run_extraction_returns_same_frame_as_extract(tiny_lm, samples, frame, tmp_path):
    """The in-memory result of run_extraction (first run and cached rerun) matches extract()."""
    out = tmp_path / "run.parquet"
    first = memkit.run_extraction(tiny_lm, samples, out, CONFIG, batch_size=3, progress=False)
    second = memkit.run_extraction(tiny_lm, samples, out, CONFIG, batch_size=3, progress=False)
    pd.testing.assert_frame_equal(first, frame)
    pd.testing.assert_frame_equal(second, frame)


def test_run_extraction_second_run_does_not_decode(tiny_lm, samples, tmp_path, count_batches):
    out = tmp_path / "run.parquet"
    first = memkit.run_extraction(tiny_lm, samples, out, CONFIG, batch_size=3, progress=False)
    assert count_batches["calls"] == 3
    data = out.read_bytes()
    again = memkit.run_extraction(tiny_lm, samples, out, CONFIG, batch_size=3, progress=False)
    assert count_batches["calls"] == 3  # nothing decoded
    assert out.read_bytes() == data
    pd.testing.assert_frame_equal(as_lists(again), as_lists(first))


def test_run_extraction_changed_config_recomputes(tiny_lm, samples, tmp_path, count_batches):
    out = tmp_path / "run.parquet"
    memkit.run_extraction(tiny_lm, samples, out, CONFIG, batch_size=3, progress=False)
    memkit.run_extraction(tiny_lm, samples, out, {**CONFIG, "note": "other"}, batch_size=3, progress=False)
    assert count_batches["calls"] == 6
    assert read_run_config(out)["note"] == "other"
    # a different sample list (ids) is a different run too
    memkit.run_extraction(tiny_lm, samples[:4], out, {**CONFIG, "note": "other"}, batch_size=3, progress=False)
    assert count_batches["calls"] == 8
    assert list(pd.read_parquet(out)["id"]) == [s.id for s in samples[:4]]


def test_run_extraction_resumes_after_a_crash(tiny_lm, samples, tmp_path, count_batches):
    reference = tmp_path / "uninterrupted.parquet"
    expected = memkit.run_extraction(tiny_lm, samples, reference, CONFIG, batch_size=2, progress=False)
    n_batches = len(plan_batches(samples, 2))
    assert n_batches == 4 and count_batches["calls"] == 4

    out = tmp_path / "run.parquet"
    parts = tmp_path / "run.parquet.parts"
    count_batches.update(calls=0, fail_after=1)
    with pytest.raises(RuntimeError, match="killed"):
        memkit.run_extraction(tiny_lm, samples, out, CONFIG, batch_size=2, progress=False)
    assert not out.exists()
    assert sorted(p.name for p in parts.iterdir()) == ["config.json", "part-000000.parquet"]
    assert json.loads((parts / "config.json").read_text())["key"]
    assert len(pd.read_parquet(parts / "part-000000.parquet")) == 2
    assert leftovers(tmp_path) == []

    count_batches.update(calls=0, fail_after=None)
    resumed = memkit.run_extraction(tiny_lm, samples, out, CONFIG, batch_size=2, progress=False)
    assert count_batches["calls"] == n_batches - 1  # only the remaining batches
    assert not parts.exists()
    pd.testing.assert_frame_equal(as_lists(resumed), as_lists(expected))
    pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(reference))
    assert out.read_bytes() == reference.read_bytes()


def test_run_extraction_resume_after_keyboard_interrupt_mid_run(tiny_lm, samples, tmp_path, count_batches):
    out = tmp_path / "run.parquet"
    count_batches.update(fail_after=2, exc=KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt):
        memkit.run_extraction(tiny_lm, samples, out, CONFIG, batch_size=2, progress=False)
    parts = tmp_path / "run.parquet.parts"
    assert sorted(p.name for p in parts.glob("part-*")) == ["part-000000.parquet", "part-000001.parquet"]
    count_batches.update(calls=0, fail_after=None)
    memkit.run_extraction(tiny_lm, samples, out, CONFIG, batch_size=2, progress=False)
    assert count_batches["calls"] == 2
    assert list(pd.read_parquet(out)["id"]) == [s.id for s in samples]


def test_run_extraction_discards_stale_shards(tiny_lm, samples, tmp_path, count_batches):
    out = tmp_path / "run.parquet"
    parts = tmp_path / "run.parquet.parts"
    stale_config = {**CONFIG, "model": "some-other-model"}
    count_batches.update(fail_after=2)
    with pytest.raises(RuntimeError):
        memkit.run_extraction(tiny_lm, samples, out, stale_config, batch_size=2, progress=False)
    assert len(list(parts.glob("part-*.parquet"))) == 2
    # poison the stale shard: if it were reused, the result would show it
    stale = pd.read_parquet(parts / "part-000000.parquet")
    stale["generated_text"] = "STALE"
    stale.to_parquet(parts / "part-000000.parquet")

    count_batches.update(calls=0, fail_after=None)
    result = memkit.run_extraction(tiny_lm, samples, out, CONFIG, batch_size=2, progress=False)
    assert count_batches["calls"] == 4  # every batch recomputed under the new config
    assert "STALE" not in set(result["generated_text"])
    assert "STALE" not in set(pd.read_parquet(out)["generated_text"])
    assert not parts.exists()

    # a batch-size change is a different run as well
    count_batches.update(fail_after=1, calls=0)
    with pytest.raises(RuntimeError):
        memkit.run_extraction(tiny_lm, samples, tmp_path / "b.parquet", CONFIG, batch_size=2, progress=False)
    count_batches.update(calls=0, fail_after=None)
    memkit.run_extraction(tiny_lm, samples, tmp_path / "b.parquet", CONFIG, batch_size=3, progress=False)
    assert count_batches["calls"] == 3


def test_run_extraction_parts_without_stamp_are_discarded(tiny_lm, samples, tmp_path, count_batches):
    out = tmp_path / "run.parquet"
    parts = tmp_path / "run.parquet.parts"
    parts.mkdir()
    (parts / "part-000000.parquet").write_bytes(b"not a parquet file")
    memkit.run_extraction(tiny_lm, samples, out, CONFIG, batch_size=3, progress=False)
    assert count_batches["calls"] == 3
    assert len(pd.read_parquet(out)) == len(samples)


def test_run_extraction_is_deterministic(tiny_lm, samples, tmp_path):
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    memkit.run_extraction(tiny_lm, samples, a, CONFIG, batch_size=3, progress=False)
    memkit.run_extraction(tiny_lm, samples, b, CONFIG, batch_size=3, progress=False)
    assert a.read_bytes() == b.read_bytes()
    # and the engine does not change a byte either
    c = tmp_path / "c.parquet"
    memkit.run_extraction(tiny_lm, samples, c, CONFIG, batch_size=3, fast=False, progress=False)
    assert_same_results(pd.read_parquet(c), pd.read_parquet(a))


def test_run_extraction_missing_output_directory(tiny_lm, samples, tmp_path):
    out = tmp_path / "no-such-dir" / "run.parquet"
    with pytest.raises(MemkitError, match="output directory does not exist"):
        memkit.run_extraction(tiny_lm, samples, out, CONFIG, progress=False)
    assert not (tmp_path / "no-such-dir").exists()


def test_extract_input_order_with_repeated_ids(tiny_lm):
    """The same ids in two sample lists (e.g. raw and chat, or two k values) still come back in
    input order, each row with its own sample's data."""
    texts = [line for line in BASE_TEXT.splitlines() if line][:4]
    long_k = make_samples(tiny_lm, texts, k=K + 6, m=M)  # longer prompts: planned into later batches
    short_k = make_samples(tiny_lm, texts, k=K, m=M)
    samples = long_k + short_k
    assert [s.id for s in samples] == ["0", "1", "2", "3"] * 2
    for batch_size in (1, 3, 16):
        frame = memkit.extract(tiny_lm, samples, batch_size=batch_size, progress=False)
        assert [list(x) for x in frame["prefix_ids"]] == [list(s.prefix_ids) for s in samples]
        assert list(frame["k"]) == [K + 6] * 4 + [K] * 4


def test_run_extraction_input_order_with_repeated_ids(tiny_lm, tmp_path):
    texts = [line for line in BASE_TEXT.splitlines() if line][:3]
    samples = make_samples(tiny_lm, texts, k=K + 5, m=M) + make_samples(tiny_lm, texts, k=K, m=M)
    result = memkit.run_extraction(tiny_lm, samples, tmp_path / "r.parquet", CONFIG, batch_size=2, progress=False)
    assert [list(x) for x in result["prefix_ids"]] == [list(s.prefix_ids) for s in samples]
    back = pd.read_parquet(tmp_path / "r.parquet")
    assert [list(x) for x in back["prefix_ids"]] == [list(s.prefix_ids) for s in samples]


def test_run_extraction_output_is_a_directory(tiny_lm, samples, tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    with pytest.raises(MemkitError, match="is a directory"):
        memkit.run_extraction(tiny_lm, samples, folder, CONFIG, progress=False)
    assert list(folder.iterdir()) == []


def test_run_extraction_overwrites_a_file_that_is_not_parquet(tiny_lm, samples, tmp_path):
    out = tmp_path / "run.parquet"
    out.write_text("an old, unrelated file")
    result = memkit.run_extraction(tiny_lm, samples, out, CONFIG, batch_size=3, progress=False)
    assert len(result) == len(samples)
    assert read_run_config(out)["key"]
    assert len(pd.read_parquet(out)) == len(samples)
