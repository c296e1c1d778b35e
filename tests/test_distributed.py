"""memkit.core.distributed: extraction on a local Ray (2 CPUs) equals the single-process run,
survives a killed actor, and resumes an interrupted run without recomputing finished chunks."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import memkit
from memkit import MemkitError
from memkit.cli import main
from memkit.core import distributed
from memkit.core.sources import open_source

from conftest import BASE_TEXT

K, M = 6, 8
CONFIG = {"command": "test", "k": K, "m": M}
METRICS = ["exact_match", "token_match", "prefix_match_len", "levenshtein", "lev_similarity", "near_verbatim",
           "char_lev_similarity", "seed_score", "seed_memorized", "zlib_ratio", "generated_ids"]


@pytest.fixture(scope="module")
def ray_session():
    """One quiet local Ray for the module (2 CPUs: two one-thread actors)."""
    import ray

    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    yield ray
    ray.shutdown()


def token_file(tmp_path, n_seq, seq_len=16, seed=0):
    tokens = np.random.default_rng(seed).integers(3, 500, size=(n_seq, seq_len)).astype(np.uint16)
    path = tmp_path / "tokens.bin"
    tokens.tofile(path)
    return open_source(path, seq_len=seq_len)


def reference_run(tiny_lm, source, path, batch_size, chunk_size):
    memkit.run_extraction(tiny_lm, source.samples(tiny_lm, K, M), path, CONFIG, batch_size=batch_size,
                          progress=False, chunk_size=chunk_size)
    return path


def assert_same_output(left, right):
    """The metric columns and generated ids byte for byte (and the rows in the same order)."""
    a, b = pq.read_table(left), pq.read_table(right)
    assert a.column_names == b.column_names and a.num_rows == b.num_rows
    for column in ["id", *METRICS]:
        assert a.column(column).equals(b.column(column)), column


def ray_run(tiny_model_dir, source, out, batch_size, chunk_size, **kwargs):
    return distributed.run_extraction_ray(str(tiny_model_dir), source, out, CONFIG, k=K, m=M, num_actors=2,
                                          batch_size=batch_size, chunk_size=chunk_size, progress=False, **kwargs)


def test_ray_output_equals_the_single_process_run(ray_session, tiny_lm, tiny_model_dir, tmp_path):
    """Text records with metadata (a key null in the whole first chunk), 4 chunks on 2 actors."""
    words = BASE_TEXT.split()
    records = [{"id": f"t{i}", "text": " ".join(words[3 * i:3 * i + 24]), "late": None if i < 16 else f"v{i}"}
               for i in range(50)]
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    source = open_source(data)
    reference = reference_run(tiny_lm, source, tmp_path / "single.parquet", batch_size=4, chunk_size=16)
    out = tmp_path / "ray.parquet"
    frame = ray_run(tiny_model_dir, source, out, batch_size=4, chunk_size=16)
    assert_same_output(out, reference)
    assert out.read_bytes() == reference.read_bytes()  # same config and rows: the very same file
    assert list(frame["id"]) == [r["id"] for r in records]
    assert frame["meta_late"].tolist()[16:18] == ["v16", "v17"]
    assert not (tmp_path / "ray.parquet.parts").exists()


def _actor_pids() -> list[int]:
    """Processes of our Ray Data actors (Ray titles them `ray::MapWorker(MapBatches(ChunkExtractor))`)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    title = fh.read().decode(errors="replace")
            except OSError:
                continue
            if title.startswith("ray::") and "ChunkExtractor" in title:
                pids.append(int(entry))
    return pids


def test_a_killed_actor_is_replaced_and_nothing_is_lost_or_doubled(ray_session, tiny_lm, tiny_model_dir, tmp_path):
    source = token_file(tmp_path, n_seq=320)
    reference = reference_run(tiny_lm, source, tmp_path / "single.parquet", batch_size=2, chunk_size=8)
    out, parts = tmp_path / "ray.parquet", tmp_path / "ray.parquet.parts"
    outcome = {}

    def work():
        try:
            outcome["frame"] = ray_run(tiny_model_dir, source, out, batch_size=2, chunk_size=8)
        except BaseException as exc:  # noqa: BLE001 (reported by the assertion below)
            outcome["error"] = exc

    runner = threading.Thread(target=work)
    runner.start()
    deadline = time.monotonic() + 120
    while not list(parts.glob("chunk-*.parquet")) and runner.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    victims = _actor_pids()
    done_at_kill = len(list(parts.glob("chunk-*.parquet")))
    assert victims and runner.is_alive(), "the run ended before an actor could be killed"
    os.kill(victims[0], signal.SIGKILL)
    runner.join(timeout=240)
    assert not runner.is_alive() and "error" not in outcome, outcome.get("error")
    assert done_at_kill < 40  # 320 samples in chunks of 8: some of them were still to come
    assert not os.path.exists(f"/proc/{victims[0]}")
    frame = outcome["frame"]
    assert len(frame) == 320 and frame["id"].is_unique
    assert list(frame["id"]) == [str(i) for i in range(320)]
    assert_same_output(out, reference)


def test_an_interrupted_ray_run_resumes_without_recomputing(ray_session, tiny_lm, tiny_model_dir, tmp_path,
                                                            monkeypatch):
    source = token_file(tmp_path, n_seq=60, seed=1)
    reference = reference_run(tiny_lm, source, tmp_path / "single.parquet", batch_size=4, chunk_size=8)
    out, parts = tmp_path / "ray.parquet", tmp_path / "ray.parquet.parts"
    real_write = distributed._write_chunk
    written = []

    def write_then_stop(run, c, tables):
        if len(written) == 3:
            raise KeyboardInterrupt  # the driver is stopped (Ctrl-C) after three chunks
        real_write(run, c, tables)
        written.append(c)

    monkeypatch.setattr(distributed, "_write_chunk", write_then_stop)
    with pytest.raises(KeyboardInterrupt):
        ray_run(tiny_model_dir, source, out, batch_size=4, chunk_size=8)
    assert not out.exists()
    kept = {p.name: p.stat().st_mtime_ns for p in parts.glob("chunk-*.parquet")}
    assert sorted(kept) == sorted(f"chunk-{c:06d}.parquet" for c in written) and len(kept) == 3

    rerun = []
    monkeypatch.setattr(distributed, "_write_chunk", lambda run, c, tables: rerun.append(c) or real_write(run, c, tables))
    ray_run(tiny_model_dir, source, out, batch_size=4, chunk_size=8)
    assert sorted(rerun) == sorted(set(range(8)) - set(written))  # only the five missing chunks were computed
    assert not parts.exists()
    assert_same_output(out, reference)
    assert out.read_bytes() == reference.read_bytes()


def test_cli_extract_on_ray(ray_session, capsys, tiny_model_dir, tmp_path):
    """One chunk (the single-chunk layout): `memkit extract --ray` writes the single-process file."""
    source = token_file(tmp_path, n_seq=24)
    out = tmp_path / "cli.parquet"
    argv = ["extract", "--model", tiny_model_dir, "--input", source.path, "--seq-len", 16, "--out", out,
            "-k", K, "-m", M, "--batch-size", 4, "--no-progress", "--ray", "--num-actors", 2]
    rc = main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert captured.out.startswith(f"{out}: 24 samples, exact_match 0.000")
    plain = tmp_path / "plain.parquet"
    assert main([str(a) for a in argv[:-3] + ["--out", plain]]) == 0  # the last --out wins
    assert out.read_bytes() == plain.read_bytes()


def test_ray_errors_are_memkit_errors(ray_session, tiny_model_dir, tmp_path):
    source = token_file(tmp_path, n_seq=4)
    with pytest.raises(MemkitError, match="actors and threads per actor must be positive"):
        distributed.run_extraction_ray(str(tiny_model_dir), source, tmp_path / "r.parquet", CONFIG, k=K, m=M,
                                       num_actors=0)
    with pytest.raises(MemkitError, match="unknown model 'no-such-model'"):
        distributed.run_extraction_ray("no-such-model", source, tmp_path / "r.parquet", CONFIG, k=K, m=M)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tokens.bin"]


def test_model_info_agrees_with_load_model(tiny_lm, tiny_model_dir):
    """The driver's weight-free view gives the run key's model fields exactly as load_model does."""
    from memkit.core.sources import vocab_limit

    info = distributed.model_info(str(tiny_model_dir))
    assert (info.name, info.sha256) == (tiny_lm.name, tiny_lm.sha256) and len(info.sha256) == 64
    assert vocab_limit(info) == vocab_limit(tiny_lm) == 512
    assert info.tokenizer("The old lighthouse")["input_ids"] == tiny_lm.tokenizer("The old lighthouse")["input_ids"]


def test_allow_pickle_reaches_the_actors(ray_session, tiny_lm, tiny_model_dir, pickle_dir, tmp_path, monkeypatch):
    """A pickle-only folder is refused before any actor starts unless allow_pickle (argument or
    MEMKIT_ALLOW_PICKLE); when allowed, the actors load it and give the safetensors model's output."""
    monkeypatch.delenv("MEMKIT_ALLOW_PICKLE", raising=False)
    source = token_file(tmp_path, n_seq=12)
    with pytest.raises(MemkitError, match=r"ships only pickle weights \(\.bin\); pass --allow-pickle"):
        ray_run(pickle_dir, source, tmp_path / "refused.parquet", batch_size=4, chunk_size=6)
    assert not (tmp_path / "refused.parquet").exists()
    plain, allowed, by_env = (tmp_path / f"{name}.parquet" for name in ("plain", "allowed", "env"))
    ray_run(tiny_model_dir, source, plain, batch_size=4, chunk_size=6)
    ray_run(pickle_dir, source, allowed, batch_size=4, chunk_size=6, allow_pickle=True)
    assert_same_output(allowed, plain)
    monkeypatch.setenv("MEMKIT_ALLOW_PICKLE", "1")  # the driver resolves the default and hands it to the actors
    ray_run(pickle_dir, source, by_env, batch_size=4, chunk_size=6)
    assert_same_output(by_env, plain)
