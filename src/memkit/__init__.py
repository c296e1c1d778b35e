"""memkit: measure verbatim memorization in causal language models, white-box and reproducibly.

    import memkit
    lm = memkit.load_model("gemma-3-270m")
    samples = memkit.make_samples(lm, [{"id": "preamble", "text": "We the People ..."}], k=32, m=64)
    df = memkit.extract(lm, samples)   # one row per sample: exact_match, token_match, ...

The names below are imported on first use, so `import memkit` (and the `memkit` command's
start-up, `--help`, usage errors, Ctrl-C) costs milliseconds instead of importing torch.

The package follows the paper: `core` (load, tokenise, decode, score, extract; architecture
facts, hooks, padding, generic text), then `dynamics`, `organisms`, `mechanisms` and `mia`
(each built on `core` only), then `paper` (grids, selections, report writers) and `cli` on
top. CONTRIBUTING.md has the dependency rule; tests/test_architecture.py enforces it.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import MemkitError

#: Public name -> module that defines it.
_EXPORTS = {
    "DecodeResult": "memkit.core.decode", "greedy_decode": "memkit.core.decode",
    "cached_extract": "memkit.core.extract", "extract": "memkit.core.extract",
    "run_extraction": "memkit.core.extract", "score_continuation": "memkit.core.metrics",
    "LoadedModel": "memkit.core.models", "list_models": "memkit.core.models", "load_model": "memkit.core.models",
    "Sample": "memkit.core.samples", "make_samples": "memkit.core.samples", "read_jsonl": "memkit.core.samples",
}

__all__ = sorted([*_EXPORTS, "MemkitError"])
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    try:  # subpackages and modules such as memkit.mia, memkit.organisms: `import memkit; memkit.mia.mia_scores`
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
