"""memkit.core.sources (JSONL, token JSONL, parquet, memmaps, HF datasets) and streamed, chunked runs."""

from __future__ import annotations

import errno
import importlib

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import memkit
from memkit import MemkitError
from memkit.cli import main
from memkit.core.extract import read_run_config, run_config_hash
from memkit.core.samples import leading_special_ids, make_samples, read_jsonl
from memkit.core.sources import KINDS, TOKEN_DTYPES, open_source

from conftest import BASE_TEXT, write_jsonl

extract_module = importlib.import_module("memkit.core.extract")

K, M = 6, 8
METRICS = ["exact_match", "token_match", "prefix_match_len", "levenshtein", "lev_similarity", "near_verbatim",
           "char_lev_similarity", "seed_score", "seed_memorized", "zlib_ratio"]
CONFIG = {"command": "test", "k": K, "m": M}


def text_records(n=40):
    words = BASE_TEXT.split()
    return [{"id": f"t{i}", "text": " ".join(words[(7 * i) % 200:(7 * i) % 200 + 30]), "n": i} for i in range(n)]


def id_records(lm, records, k=K, m=M):
    """The records tokenized by hand: what a pre-tokenized data set holds."""
    out = []
    for record in records:
        ids = lm.tokenizer(record["text"], add_special_tokens=False)["input_ids"]
        out.append({"id": record["id"], "prefix_ids": ids[:k], "suffix_ids": ids[k:k + m], "n": record["n"]})
    return out


def token_array(n_seq=120, seq_len=20, seed=0, dtype=np.uint16):
    rng = np.random.default_rng(seed)
    return rng.integers(3, 500, size=(n_seq, seq_len)).astype(dtype)


def as_lists(frame):
    frame = frame.copy()
    for column in ("prefix_ids", "suffix_ids", "generated_ids"):
        frame[column] = frame[column].map(lambda ids: [int(i) for i in ids])
    return frame


def assert_same_rows(left, right):
    """Same rows: every column equal, except the float diagnostic min_top2_gap (last bits may differ
    between differently composed batches)."""
    pd.testing.assert_frame_equal(as_lists(left).drop(columns="min_top2_gap"),
                                  as_lists(right).drop(columns="min_top2_gap"))
    assert list(left["min_top2_gap"]) == pytest.approx(list(right["min_top2_gap"]), rel=1e-3, abs=1e-5)


@pytest.fixture
def count_batches(monkeypatch):
    real = extract_module.extract_batch
    state = {"calls": 0, "fail_after": None}

    def counting(*args, **kwargs):
        if state["fail_after"] is not None and state["calls"] >= state["fail_after"]:
            raise RuntimeError("killed for the test")
        state["calls"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(extract_module, "extract_batch", counting)
    return state


# -- the readers ----------------------------------------------------------------------------------
def test_cli_lists_agree_with_sources():
    from memkit.cli.args import INPUT_FORMATS, TOKEN_DTYPES as CLI_DTYPES

    assert INPUT_FORMATS == KINDS and CLI_DTYPES == TOKEN_DTYPES


def test_jsonl_stream_equals_read_jsonl_and_make_samples(tiny_lm, tmp_path):
    records = text_records(30)
    path = write_jsonl(tmp_path / "data.jsonl", ["", *records[:10], "   ", *records[10:]])  # blank lines skipped
    stream = open_source(path).samples(tiny_lm, K, M)
    expected = make_samples(tiny_lm, read_jsonl(path), k=K, m=M)
    assert len(stream) == 30
    assert list(stream) == expected
    assert [s.meta for s in stream] == [{"n": i} for i in range(30)]
    # random access through the checkpoints, any chunk size
    assert stream.chunk(2, 7) == expected[14:21] and stream.chunk(4, 7) == expected[28:30]
    assert stream.meta_plan == {"n": True}
    assert stream.ids_digest == run_config_hash({"ids": [r["id"] for r in records]})


def test_token_ids_give_the_same_rows_as_texts(tiny_lm, tmp_path):
    """Texts tokenized by hand and written as ids: identical samples, identical metric columns."""
    records = text_records(24)
    texts = write_jsonl(tmp_path / "texts.jsonl", records)
    ids = write_jsonl(tmp_path / "ids.jsonl", id_records(tiny_lm, records))
    text_samples = list(open_source(texts).samples(tiny_lm, K, M))
    id_samples = list(open_source(ids, kind="tokens-jsonl").samples(tiny_lm, K, M))
    assert id_samples == text_samples  # prompt = leading special ids + prefix ids, as for texts
    assert id_samples[0].prompt_ids[:1] == tuple(leading_special_ids(tiny_lm.tokenizer))
    a = memkit.run_extraction(tiny_lm, open_source(texts).samples(tiny_lm, K, M), tmp_path / "a.parquet", CONFIG,
                              batch_size=5, progress=False)
    b = memkit.run_extraction(tiny_lm, open_source(ids).samples(tiny_lm, K, M), tmp_path / "b.parquet", CONFIG,
                              batch_size=5, progress=False)
    left, right = pq.read_table(tmp_path / "a.parquet"), pq.read_table(tmp_path / "b.parquet")
    for column in [*METRICS, "generated_ids", "prefix_ids", "suffix_ids", "id", "meta_n"]:
        assert left.column(column).equals(right.column(column)), column
    assert a["generated_text"].tolist() == b["generated_text"].tolist()


def test_parquet_and_hf_sources_give_the_same_samples(tiny_lm, tmp_path):
    import datasets

    rows = id_records(tiny_lm, text_records(20))
    expected = list(open_source(write_jsonl(tmp_path / "ids.jsonl", rows)).samples(tiny_lm, K, M))
    table = pa.Table.from_pylist(rows)
    pq.write_table(table, tmp_path / "ids.parquet", row_group_size=6)  # several row groups
    parquet = open_source(tmp_path / "ids.parquet").samples(tiny_lm, K, M)
    assert type(parquet.source).__name__ == "ParquetSource"
    assert list(parquet) == expected and parquet.chunk(1, 8) == expected[8:16]

    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "hf"))
    folder = open_source(tmp_path / "hf")
    assert folder.kind == "hf" and list(folder.samples(tiny_lm, K, M)) == expected
    arrow = next((tmp_path / "hf").glob("*.arrow"))
    assert list(open_source(arrow).samples(tiny_lm, K, M)) == expected
    streamed = open_source(tmp_path / "ids.parquet", kind="hf").samples(tiny_lm, K, M)
    assert streamed.source.streaming and list(streamed) == expected
    assert streamed.chunk(1, 8) == expected[8:16] and streamed.chunk(2, 8) == expected[16:]


def test_table_sources_without_id_column_and_with_text(tiny_lm, tmp_path):
    records = text_records(5)
    pq.write_table(pa.Table.from_pylist([{"text": r["text"], "source": "web"} for r in records]),
                   tmp_path / "texts.parquet")
    samples = list(open_source(tmp_path / "texts.parquet").samples(tiny_lm, K, M))
    assert [s.id for s in samples] == ["0", "1", "2", "3", "4"]  # the row number
    assert [s.prefix_ids for s in samples] == [s.prefix_ids for s in make_samples(tiny_lm, records, k=K, m=M)]
    assert samples[0].meta == {"source": "web"}


def test_memmap_samples_are_the_sequence_windows(tiny_lm, tmp_path):
    tokens = token_array(50, 20)
    tokens.tofile(tmp_path / "toks.bin")
    np.save(tmp_path / "toks.npy", tokens)
    np.save(tmp_path / "flat.npy", tokens.ravel())
    lead = tuple(leading_special_ids(tiny_lm.tokenizer))
    streams = [open_source(tmp_path / "toks.bin", seq_len=20).samples(tiny_lm, K, M),
               open_source(tmp_path / "toks.npy").samples(tiny_lm, K, M),
               open_source(tmp_path / "flat.npy", seq_len=20).samples(tiny_lm, K, M)]
    for stream in streams:
        samples = list(stream)
        assert len(samples) == 50 and stream.meta_plan == {}
        assert samples[7].id == "7"
        assert samples[7].prefix_ids == tuple(int(t) for t in tokens[7, :K])
        assert samples[7].suffix_ids == tuple(int(t) for t in tokens[7, K:K + M])
        assert samples[7].prompt_ids == lead + samples[7].prefix_ids
    assert list(streams[0]) == list(streams[1]) == list(streams[2])
    assert streams[0].ids_digest == run_config_hash({"ids": [str(i) for i in range(50)]})
    # uint32 tokens, an indices file picking and ordering sequences (comments and blank lines allowed)
    tokens.astype(np.uint32).tofile(tmp_path / "toks32.bin")
    (tmp_path / "idx.txt").write_text("# chosen\n42\n\n3 # comment\n0\n")
    picked = list(open_source(tmp_path / "toks32.bin", seq_len=20, dtype="uint32",
                              indices=tmp_path / "idx.txt").samples(tiny_lm, K, M))
    assert [s.id for s in picked] == ["42", "3", "0"]
    assert picked[0].suffix_ids == tuple(int(t) for t in tokens[42, K:K + M])
    np.save(tmp_path / "idx.npy", np.array([9, 1]))
    assert [s.id for s in open_source(tmp_path / "toks.npy", indices=tmp_path / "idx.npy").samples(tiny_lm, K, M)] \
        == ["9", "1"]


def test_open_source_chooses_by_name_and_content(tmp_path, tiny_lm):
    rows = id_records(tiny_lm, text_records(3))
    write_jsonl(tmp_path / "records.txt", rows)  # unknown name, JSON inside
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "records.data")
    np.save(tmp_path / "tokens.dat", token_array(4, 20))  # np.save appends .npy
    (tmp_path / "tokens.dat.npy").rename(tmp_path / "tokens.dat")
    assert open_source(tmp_path / "records.txt").kind == "jsonl"
    assert open_source(tmp_path / "records.data").kind == "parquet"
    assert open_source(tmp_path / "tokens.dat", kind="memmap").kind == "memmap"
    assert type(open_source(tmp_path / "records.data", kind="auto")).__name__ == "ParquetSource"


# -- errors: file, line or row, field --------------------------------------------------------------
def _error(callable_, *args, **kwargs) -> str:
    with pytest.raises(MemkitError) as info:
        callable_(*args, **kwargs)
    return str(info.value)


@pytest.mark.parametrize("bad, expected", [
    ({"id": "x", "prefix_ids": [], "suffix_ids": list(range(M))}, "field 'prefix_ids' is empty"),
    ({"id": "x", "prefix_ids": [1, 2], "suffix_ids": [1, 2, 3]}, f"field 'suffix_ids' has 3 tokens, fewer than m = {M}"),
    ({"id": "x", "prefix_ids": [1, "2"], "suffix_ids": list(range(M))}, "field 'prefix_ids' must be a list of token ids"),
    ({"id": "x", "prefix_ids": [1, -2], "suffix_ids": list(range(M))}, "field 'prefix_ids' must be a list"),
    ({"id": "x", "prefix_ids": [1, True], "suffix_ids": list(range(M))}, "field 'prefix_ids' must be a list"),
    ({"id": "x", "prefix_ids": [1], "suffix_ids": "1 2 3"}, "field 'suffix_ids' must be a list"),
])
def test_bad_token_records_name_file_line_and_field(tmp_path, bad, expected):
    good = {"id": "a", "prefix_ids": [5, 6], "suffix_ids": list(range(10, 10 + M))}
    path = write_jsonl(tmp_path / "ids.jsonl", [good, bad])
    message = _error(open_source(path).scan, K, M)
    assert message.startswith(f"{path}:2: record 'x' ") and expected in message


def test_token_ids_outside_the_vocabulary(tiny_lm, tmp_path):
    vocab = len(tiny_lm.tokenizer)
    rows = [{"id": "a", "prefix_ids": [5, 6], "suffix_ids": list(range(10, 10 + M))},
            {"id": "b", "prefix_ids": [5, 6], "suffix_ids": [7] * (M - 1) + [vocab + 3]}]
    path = write_jsonl(tmp_path / "ids.jsonl", rows)
    source = open_source(path)
    source.scan(K, M)  # structure is fine: the vocabulary needs the model
    message = _error(source.samples, tiny_lm, K, M)
    assert message == (f"{path}:2: record 'b' field 'suffix_ids' holds token id {vocab + 3}, outside the model's "
                       f"vocabulary (ids 0..{vocab - 1})")
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "ids.parquet")
    assert _error(open_source(tmp_path / "ids.parquet").samples, tiny_lm, K, M).startswith(
        f"{tmp_path / 'ids.parquet'}: row 1: record 'b' field 'suffix_ids' holds token id {vocab + 3}")
    tokens = token_array(10, 20)
    tokens[6, 2] = 600
    tokens.tofile(tmp_path / "toks.bin")
    assert _error(open_source(tmp_path / "toks.bin", seq_len=20).samples, tiny_lm, K, M).startswith(
        f"{tmp_path / 'toks.bin'}: sequence 6: record '6' field 'prefix_ids' holds token id 600")


def test_text_too_short_is_found_before_any_work(tiny_lm, tmp_path):
    path = write_jsonl(tmp_path / "data.jsonl", [*text_records(3), {"id": "short", "text": "A cat."}])
    message = _error(open_source(path).samples, tiny_lm, K, M)
    assert message.startswith(f"{path}:4: sample 'short': text has ") and f"k+m = {K}+{M}" in message


def test_duplicate_ids_name_the_second_line(tmp_path):
    rows = [{"id": i, "prefix_ids": [1], "suffix_ids": list(range(M))} for i in (1, 2, 3)] + \
           [{"id": "2", "prefix_ids": [1], "suffix_ids": list(range(M))}]
    path = write_jsonl(tmp_path / "ids.jsonl", rows)
    assert _error(open_source(path).scan, K, M) == f"{path}:4: duplicate id '2'"


@pytest.mark.parametrize("case, expected", [
    ("not-multiple", "toks.bin: 200 tokens is not a whole number of sequences of 30 tokens"),
    ("k-plus-m", "sequences have 20 tokens, fewer than k+m = 15+8"),
    ("no-seq-len", "give the sequence length"),
    ("index-out-of-range", "idx.txt:2: sequence 99 is outside the token file (0..9)"),
    ("index-not-int", "idx.txt:1: expected a sequence number, got 'seven'"),
    ("index-duplicate", "idx.txt:3: duplicate id '4'"),
    ("odd-bytes", "is not a whole number of uint16 tokens"),
    ("npy-dtype", "holds uint16 tokens, not uint32"),
])
def test_memmap_errors(tmp_path, case, expected):
    tokens = token_array(10, 20)
    tokens.tofile(tmp_path / "toks.bin")
    np.save(tmp_path / "toks.npy", tokens)
    idx = tmp_path / "idx.txt"
    kwargs, k = {"seq_len": 20}, K
    if case == "not-multiple":
        kwargs = {"seq_len": 30}
    elif case == "k-plus-m":
        k = 15
    elif case == "no-seq-len":
        kwargs = {}
    elif case.startswith("index"):
        idx.write_text({"index-out-of-range": "1\n99\n", "index-not-int": "seven\n",
                        "index-duplicate": "4\n5\n4\n"}[case])
        kwargs["indices"] = idx
    elif case == "odd-bytes":
        (tmp_path / "toks.bin").write_bytes(b"\x00" * 41)
    message = _error(lambda: open_source(tmp_path / ("toks.npy" if case == "npy-dtype" else "toks.bin"),
                                         **({"dtype": "uint32"} if case == "npy-dtype" else kwargs)).scan(k, M))
    assert expected in message


def test_source_usage_errors(tmp_path, tiny_lm):
    write_jsonl(tmp_path / "data.jsonl", text_records(2))
    assert _error(open_source, tmp_path / "absent.jsonl") == f"input file not found: {tmp_path / 'absent.jsonl'}"
    assert "unknown input format 'csv'" in _error(open_source, tmp_path / "data.jsonl", kind="csv")
    assert "are for token memmaps" in _error(open_source, tmp_path / "data.jsonl", seq_len=20)
    pq.write_table(pa.table({"body": ["x"]}), tmp_path / "bad.parquet")
    assert "needs columns 'prefix_ids' and 'suffix_ids'" in _error(open_source, tmp_path / "bad.parquet")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet at all")
    assert "not a readable parquet file" in _error(open_source, tmp_path / "junk.parquet")
    (tmp_path / "folder").mkdir()
    assert "cannot open as a Hugging Face dataset" in _error(open_source, tmp_path / "folder")
    ids_only = write_jsonl(tmp_path / "texts.jsonl", text_records(1))
    assert "needs 'prefix_ids' and 'suffix_ids'" in _error(open_source(ids_only, kind="tokens-jsonl").scan, K, M)
    assert "chat template" in _error(open_source(ids_only).samples, tiny_lm, K, M, mode="chat")


# -- streamed, chunked runs -----------------------------------------------------------------------
def test_chunked_run_equals_one_chunk_and_streams_the_merge(tiny_lm, tmp_path, monkeypatch):
    tokens = token_array(60, 20)
    tokens.tofile(tmp_path / "toks.bin")
    stream = open_source(tmp_path / "toks.bin", seq_len=20).samples(tiny_lm, K, M)
    whole = memkit.run_extraction(tiny_lm, stream, tmp_path / "whole.parquet", CONFIG, batch_size=4, progress=False)
    assert pq.ParquetFile(tmp_path / "whole.parquet").metadata.num_row_groups == 1
    # a list of the same samples is the same run (the ids digest is computed the same way)
    assert read_run_config(tmp_path / "whole.parquet")["ids"] == run_config_hash({"ids": [str(i) for i in range(60)]})

    chunk_frames = []
    real_write = pq.ParquetWriter.write_table

    def recording(self, table, *args, **kwargs):
        if ".parts" not in str(self.where):  # the final output, not a shard
            chunk_frames.append(table.num_rows)
        return real_write(self, table, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", recording)
    result = memkit.run_extraction(tiny_lm, stream, tmp_path / "chunked.parquet", CONFIG, batch_size=4,
                                   progress=False, chunk_size=16)
    assert chunk_frames == [16, 16, 16, 12]  # the merge wrote one chunk at a time
    assert pq.ParquetFile(tmp_path / "chunked.parquet").metadata.num_row_groups == 4
    assert read_run_config(tmp_path / "chunked.parquet")["chunk_size"] == 16
    assert "chunk_size" not in read_run_config(tmp_path / "whole.parquet")
    assert list(result["id"]) == [str(i) for i in range(60)]
    assert_same_rows(result, whole)
    assert_same_rows(pd.read_parquet(tmp_path / "chunked.parquet"), pd.read_parquet(tmp_path / "whole.parquet"))
    assert not (tmp_path / "chunked.parquet.parts").exists()
    assert memkit.run_extraction(tiny_lm, stream, tmp_path / "n.parquet", CONFIG, batch_size=4, progress=False,
                                 chunk_size=16, return_frame=False) is None


def test_chunked_run_resumes_without_recomputing(tiny_lm, tmp_path, count_batches):
    """Killed in the third chunk: the two finished chunks (compacted) and the finished batches of
    the third are kept; the rerun decodes only what is left and writes the same file."""
    np.save(tmp_path / "toks.npy", token_array(40, 20))
    stream = open_source(tmp_path / "toks.npy").samples(tiny_lm, K, M)
    reference = tmp_path / "reference.parquet"
    memkit.run_extraction(tiny_lm, stream, reference, CONFIG, batch_size=3, progress=False, chunk_size=12)
    assert count_batches["calls"] == 4 + 4 + 4 + 2  # chunks of 12, 12, 12, 4 in batches of 3

    out, parts = tmp_path / "run.parquet", tmp_path / "run.parquet.parts"
    count_batches.update(calls=0, fail_after=10)
    with pytest.raises(RuntimeError, match="killed"):
        memkit.run_extraction(tiny_lm, stream, out, CONFIG, batch_size=3, progress=False, chunk_size=12)
    assert sorted(p.name for p in parts.iterdir()) == [
        "chunk-000000.parquet", "chunk-000001.parquet", "config.json", "part-000008.parquet", "part-000009.parquet"]
    assert len(pd.read_parquet(parts / "chunk-000001.parquet")) == 12
    count_batches.update(calls=0, fail_after=None)
    memkit.run_extraction(tiny_lm, stream, out, CONFIG, batch_size=3, progress=False, chunk_size=12)
    assert count_batches["calls"] == 4  # 2 batches of the third chunk + 2 of the last
    assert out.read_bytes() == reference.read_bytes()
    assert not parts.exists()


def test_metadata_types_are_planned_over_all_chunks(tiny_lm, tmp_path):
    """A key that is null in the whole first chunk, one whose type changes in a later chunk: the
    column types come from the whole input, so every chunk agrees."""
    rows = []
    for i in range(20):
        rows.append({"id": f"r{i}", "prefix_ids": [5 + i, 6], "suffix_ids": list(range(10, 10 + M)),
                     "late": None if i < 10 else f"s{i}", "mixed": i if i < 15 else "fifteen+"})
    path = write_jsonl(tmp_path / "ids.jsonl", rows)
    stream = open_source(path).samples(tiny_lm, K, M)
    assert stream.meta_plan == {"late": True, "mixed": False}
    frame = memkit.run_extraction(tiny_lm, stream, tmp_path / "r.parquet", CONFIG, batch_size=4, progress=False,
                                  chunk_size=8)
    schema = pq.read_schema(tmp_path / "r.parquet")
    text = schema.field("id").type  # pandas' strings: large_string
    assert schema.field("meta_late").type == text and schema.field("meta_mixed").type == text
    assert frame["meta_late"].isna().tolist() == [True] * 10 + [False] * 10
    assert frame["meta_late"].tolist()[10:12] == ["s10", "s11"]
    assert frame["meta_mixed"].tolist()[13:17] == ["13", "14", '"fifteen+"', '"fifteen+"']


def test_disk_full_during_the_streamed_merge_keeps_the_chunks(tiny_lm, tmp_path, monkeypatch, count_batches):
    np.save(tmp_path / "toks.npy", token_array(30, 20))
    stream = open_source(tmp_path / "toks.npy").samples(tiny_lm, K, M)
    out = tmp_path / "r.parquet"

    real_write = pq.ParquetWriter.write_table

    def full(self, table, *args, **kwargs):
        if ".parts" not in str(self.where):  # shards fit, the merged file does not
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, table, *args, **kwargs)

    with monkeypatch.context() as mp:
        mp.setattr(pq.ParquetWriter, "write_table", full)
        message = _error(memkit.run_extraction, tiny_lm, stream, out, CONFIG, batch_size=5, progress=False,
                         chunk_size=10)
    assert message.startswith(f"cannot write {out}: No space left on device; the finished batches are kept in")
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if ".tmp" in p.name] == []
    assert sorted(p.name for p in (tmp_path / "r.parquet.parts").glob("chunk-*")) == [
        "chunk-000000.parquet", "chunk-000001.parquet", "chunk-000002.parquet"]
    calls = count_batches["calls"]
    memkit.run_extraction(tiny_lm, stream, out, CONFIG, batch_size=5, progress=False, chunk_size=10)
    assert count_batches["calls"] == calls  # only merged
    assert len(pd.read_parquet(out)) == 30


# -- command line ---------------------------------------------------------------------------------
def run_cli(capsys, argv):
    rc = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_cli_memmap_with_indices(capsys, tmp_path, tiny_model_dir):
    tokens = token_array(30, 20)
    tokens.tofile(tmp_path / "toks.bin")
    (tmp_path / "idx.txt").write_text("\n".join(map(str, [29, 4, 17, 0, 8])) + "\n")
    out = tmp_path / "out.parquet"
    argv = ["extract", "--model", tiny_model_dir, "--input", tmp_path / "toks.bin", "--seq-len", 20,
            "--indices", tmp_path / "idx.txt", "--out", out, "-k", K, "-m", M, "--batch-size", 2, "--chunk-size", 2,
            "--no-progress"]
    rc, stdout, err = run_cli(capsys, argv)
    assert rc == 0, err
    assert stdout.startswith(f"{out}: 5 samples, exact_match 0.000")
    frame = pd.read_parquet(out)
    assert list(frame["id"]) == ["29", "4", "17", "0", "8"]
    assert [list(x) for x in frame["suffix_ids"]] == [tokens[i, K:K + M].tolist() for i in (29, 4, 17, 0, 8)]
    config = read_run_config(out)
    assert config["input_format"] == "memmap" and config["seq_len"] == 20 and config["dtype_tokens"] == "uint16"
    assert config["chunk_size"] == 2 and len(config["indices_sha256"]) == 64


@pytest.mark.parametrize("extra, fragments", [
    (["--seq-len", "20"], ["are for token memmaps"]),
    (["--ray", "not an address"], ["bad Ray address 'not an address'", "--help"]),
    (["--ray", "host:99999"], ["bad Ray address 'host:99999'"]),
    (["--input-format", "csv"], ["invalid choice", "csv"]),
])
def test_cli_usage_errors_are_one_line(capsys, tmp_path, tiny_model_dir, extra, fragments):
    data = write_jsonl(tmp_path / "data.jsonl", text_records(2))
    rc, stdout, err = run_cli(capsys, ["extract", "--model", tiny_model_dir, "--input", data, "--out",
                                       tmp_path / "r.parquet", "--no-progress", *extra])
    assert rc == 2 and stdout == "" and len(err.strip().splitlines()) == 1
    assert err.startswith("memkit: error: ") and all(f in err for f in fragments)
    assert not (tmp_path / "r.parquet").exists()


def test_cli_ray_missing_is_one_line(capsys, tmp_path, tiny_model_dir, monkeypatch):
    import sys

    data = write_jsonl(tmp_path / "data.jsonl", text_records(2))
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if not installed
    rc, stdout, err = run_cli(capsys, ["extract", "--model", tiny_model_dir, "--input", data, "--out",
                                       tmp_path / "r.parquet", "-k", K, "-m", M, "--no-progress", "--ray"])
    assert rc == 2 and stdout == ""
    assert err.strip().splitlines() == [
        "memkit: error: --ray needs Ray: pip install 'ray[data]==2.60.0' (or `make setup`)"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.jsonl"]


def test_cli_ray_address_nobody_listens_on_is_one_line(capsys, tmp_path, tiny_model_dir):
    """Ray itself would retry for minutes; memkit says so at once and writes nothing."""
    import socket

    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = write_jsonl(tmp_path / "data.jsonl", text_records(2))
    rc, stdout, err = run_cli(capsys, ["extract", "--model", tiny_model_dir, "--input", data, "--out",
                                       tmp_path / "r.parquet", "-k", K, "-m", M, "--no-progress",
                                       "--ray", f"127.0.0.1:{port}"])
    assert rc == 2 and stdout == ""
    assert err.strip().splitlines() == [f"memkit: error: cannot connect to Ray at 127.0.0.1:{port}: Connection refused"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.jsonl"]
