"""The one place that defines where memkit reads and writes files.

Caches (converted models, zoo checkpoints) live outside git, under `$MEMKIT_CACHE`
(default `~/.cache/memkit`). Project paths are relative to the repository root.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

PROJECT_ROOT = Path(__file__).resolve().parents[2]
FIGURES_DIR = PROJECT_ROOT / "figures"
DATA_DIR = PROJECT_ROOT / "data"
BUILD_DIR = PROJECT_ROOT / "build"


def cache_dir() -> Path:
    """Root of memkit's on-disk cache (created on first use)."""
    root = Path(os.environ.get("MEMKIT_CACHE", Path.home() / ".cache" / "memkit"))
    root.mkdir(parents=True, exist_ok=True)
    return root


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
