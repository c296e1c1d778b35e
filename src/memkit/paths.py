"""The one place that defines where memkit reads and writes files.

Caches (converted models, zoo checkpoints) live outside git, under `$MEMKIT_CACHE`
(default `~/.cache/memkit`). Project paths are relative to the repository root.

Every cache writer computes a new entry under `entry_lock(entry)`, an OS file lock in
`<cache>/locks/`, so two processes that want the same new entry (`make -j2 paper`) never
compute it side by side: the second waits, then reads the finished entry. The kernel drops
the lock when its holder dies, so a killed run never blocks the next one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Mapping

if TYPE_CHECKING:
    import pandas as pd

PROJECT_ROOT = Path(__file__).resolve().parents[2]
FIGURES_DIR = PROJECT_ROOT / "figures"
DATA_DIR = PROJECT_ROOT / "data"
BUILD_DIR = PROJECT_ROOT / "build"


def cache_dir() -> Path:
    """Root of memkit's on-disk cache (created on first use)."""
    root = Path(os.environ.get("MEMKIT_CACHE", Path.home() / ".cache" / "memkit"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def model_entry(kind: str, model_name: str, key: Mapping, suffix: str = "") -> Path:
    """`<cache>/<kind>/<model slug>-<hash of key><suffix>`: the cache entry of one model and its settings.

    `key` holds everything the entry depends on (weights hash, samples fingerprint, settings, code
    fingerprint); the slug only makes the folder readable.
    """
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=list).encode()).hexdigest()[:16]
    slug = re.sub(r"[^A-Za-z0-9.]+", "-", model_name).strip("-") or "model"
    return cache_dir() / kind / f"{slug}-{digest}{suffix}"


def cached_frame(path: Path, compute: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    """The parquet table at `path`, computed by `compute()` and written atomically when missing.

    Under `entry_lock(path)`: a second process asking for the same new entry waits, then reads it.
    """
    import pandas as pd  # noqa: F811 -- at call time only: importing paths stays cheap

    path.parent.mkdir(parents=True, exist_ok=True)
    with entry_lock(path):
        if path.is_file():
            return pd.read_parquet(path)
        frame = compute()
        with atomic_path(path) as tmp:
            frame.to_parquet(tmp, index=False)
        return frame


@contextmanager
def atomic_path(target: Path | str) -> Iterator[Path]:
    """Yield a temporary path next to `target`; rename it onto `target` only on success.

    Readers never see a half-written file, and a crash leaves no partial output behind.
    """
    target = Path(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; outputs should be readable like any file
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def lock_path(entry: Path | str) -> Path:
    """The lock file of one entry: `<cache>/locks/<name>-<hash of its absolute path>.lock`.

    In the cache, not beside the entry, so a user's output folder holds only the output.
    """
    entry = Path(entry).resolve()
    digest = hashlib.sha256(str(entry).encode()).hexdigest()[:16]
    folder = cache_dir() / "locks"
    folder.mkdir(exist_ok=True)
    return folder / f"{entry.name[:100]}-{digest}.lock"


@contextmanager
def entry_lock(entry: Path | str) -> Iterator[None]:
    """Hold the inter-process lock of one entry (file or folder) while it is checked, computed and written.

    Callers look for the finished entry again inside the lock: a process that waited finds it
    there. The lock (`filelock`: flock on Unix) is re-entrant within a process and released by
    the kernel when its holder dies; the empty lock file stays (removing it would let a waiter
    and a newcomer lock two different files).
    """
    from filelock import FileLock, Timeout

    lock = FileLock(lock_path(entry), is_singleton=True)
    try:
        lock.acquire(blocking=False)
    except Timeout:
        print(f"memkit: waiting for another process to finish {entry}", file=sys.stderr, flush=True)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


PACKAGE_DIR = Path(__file__).resolve().parent


def code_fingerprint(*files: str) -> str:
    """Hash (16 hex digits) of memkit source files, named relative to the package, in order.

    Part of every cache key whose results depend on that code: an edit invalidates exactly
    the caches built from the edited files.
    """
    digest = hashlib.sha256()
    for name in files:
        digest.update((PACKAGE_DIR / name).read_bytes())
    return digest.hexdigest()[:16]
