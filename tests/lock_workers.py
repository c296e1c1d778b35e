"""Child-process bodies for tests/test_locks.py (a module of their own, importable under spawn)."""

from __future__ import annotations

import os
import time

K, M, BATCH = 8, 8, 2


def cached_entry(model_dir: str, cache_root: str, marker: str, result: str, barrier) -> None:
    """`cached_extract` of the tiny model's records, appending this pid to `marker` for every batch decoded."""
    import torch

    torch.set_num_threads(1)
    import memkit
    from memkit.core import extract as extract_module

    from conftest import records

    lm = memkit.load_model(model_dir, device="cpu")
    samples = memkit.make_samples(lm, records(5), k=K, m=M)
    real = extract_module.extract_batch

    def counting(*args, **kwargs):
        with open(marker, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        time.sleep(0.2)  # keeps the entry unfinished long enough for the other process to arrive
        return real(*args, **kwargs)

    extract_module.extract_batch = counting
    barrier.wait(timeout=120)  # both processes ask for the entry at the same moment
    frame = extract_module.cached_extract(lm, samples, batch_size=BATCH, progress=False, cache_root=cache_root)
    frame.to_parquet(result)


def hold_lock(entry: str, held) -> None:
    """Take the lock of `entry`, say so, and keep it until this process is killed."""
    from memkit.paths import entry_lock

    with entry_lock(entry):
        held.set()
        time.sleep(600)
