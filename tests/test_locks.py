"""paths.entry_lock: concurrent writers of one cache entry compute it once; a dead holder never blocks."""

from __future__ import annotations

import multiprocessing

import pandas as pd
import pytest
from filelock import FileLock, Timeout

import memkit
from memkit.paths import entry_lock, lock_path

import lock_workers
from conftest import records


@pytest.fixture
def spawn():
    return multiprocessing.get_context("spawn")


def test_two_processes_compute_one_new_entry_once(tiny_model_dir, tiny_lm, tmp_path, spawn):
    """Both processes return the same frame; the batches are decoded once, by one of them."""
    cache_root, marker = tmp_path / "results", tmp_path / "decoded.txt"
    barrier = spawn.Barrier(2)
    results = [tmp_path / f"frame-{i}.parquet" for i in range(2)]
    procs = [spawn.Process(target=lock_workers.cached_entry,
                           args=(str(tiny_model_dir), str(cache_root), str(marker), str(result), barrier))
             for result in results]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=300)
    assert [proc.exitcode for proc in procs] == [0, 0]
    samples = memkit.make_samples(tiny_lm, records(5), k=lock_workers.K, m=lock_workers.M)
    decoded = marker.read_text().split()
    assert len(decoded) == 3  # 5 samples in batches of 2: one run's batches, not two
    assert len(set(decoded)) == 1  # all by one process
    first, second = (pd.read_parquet(path) for path in results)
    pd.testing.assert_frame_equal(first, second)
    expected = memkit.extract(tiny_lm, samples, batch_size=lock_workers.BATCH, progress=False)
    assert [list(ids) for ids in first["generated_ids"]] == [list(ids) for ids in expected["generated_ids"]]
    assert sorted(p.suffix for p in cache_root.iterdir()) == [".parquet"]  # no parts folder left


def test_lock_of_a_killed_holder_does_not_block(tmp_path, spawn, capfd):
    entry = tmp_path / "entry.parquet"
    held = spawn.Event()
    holder = spawn.Process(target=lock_workers.hold_lock, args=(str(entry), held))
    holder.start()
    assert held.wait(timeout=120)
    with pytest.raises(Timeout):  # held by a live process: not free
        FileLock(lock_path(entry)).acquire(blocking=False)
    holder.kill()
    holder.join()
    assert lock_path(entry).exists()  # the dead holder's lock file stays ...
    probe = FileLock(lock_path(entry))
    probe.acquire(blocking=False)  # ... but is not held
    probe.release()
    with entry_lock(entry):
        pass
    assert "waiting" not in capfd.readouterr().err


def test_entry_lock_is_reentrant_and_keyed_by_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert lock_path("entry.parquet") == lock_path(tmp_path / "entry.parquet")
    assert lock_path(tmp_path / "a" / "entry.parquet") != lock_path(tmp_path / "entry.parquet")
    assert lock_path("entry.parquet").name.startswith("entry.parquet-")
    with entry_lock("entry.parquet"):
        with entry_lock(tmp_path / "entry.parquet"):  # the same entry again: no deadlock
            pass
    assert list(tmp_path.iterdir()) == []  # nothing written beside the entry


def test_model_entry_names_model_and_settings(tmp_path, monkeypatch):
    from memkit.paths import model_entry

    monkeypatch.setenv("MEMKIT_CACHE", str(tmp_path))
    entry = model_entry("mia", "zoo:smoke/13k-s1@final", {"b": 1, "a": [1, 2]}, ".parquet")
    assert entry.parent == tmp_path / "mia" and entry.name.startswith("zoo-smoke-13k-s1-final-")
    assert entry.name.endswith(".parquet") and len(entry.name) == len("zoo-smoke-13k-s1-final-") + 16 + 8
    assert entry == model_entry("mia", "zoo:smoke/13k-s1@final", {"a": [1, 2], "b": 1}, ".parquet")  # key order
    assert entry != model_entry("mia", "zoo:smoke/13k-s1@final", {"a": [1, 2], "b": 2}, ".parquet")


def test_cached_frame_computes_once_then_reads_back(tmp_path, monkeypatch):
    from memkit.paths import cached_frame

    monkeypatch.setenv("MEMKIT_CACHE", str(tmp_path))
    calls = []

    def compute():
        calls.append(1)
        return pd.DataFrame({"id": ["a", "b"], "x": [1.0, 2.0]})

    path = tmp_path / "kind" / "entry.parquet"
    first, second = cached_frame(path, compute), cached_frame(path, compute)
    assert len(calls) == 1 and path.is_file()
    pd.testing.assert_frame_equal(first, second)
