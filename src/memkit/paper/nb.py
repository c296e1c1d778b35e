"""Notebook setup shared by the paper notebooks: environment, output folder, records, model names.

    out = nb.setup("build/smoke/fig_phase", threads=1)       # quiet, Agg, 1 torch thread, folder made
    records = nb.read_records("data/attractors.jsonl", ids=["counting", "pi_digits"])
    keys = nb.model_keys(models, macro_names)               # {"gemma-3-270m": "Gemma", ...}
    names = nb.model_labels(models, labels)                 # {"gemma-3-270m": "Gemma-3-270M", ...}

Organism specs (`zoo:<profile>/<size>@<step>`) get their own keys and labels
(`zoo_key`, `zoo_label`).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from ..paths import PROJECT_ROOT
from .report import macro_key


def setup(out_dir: str | Path, *, threads: int | None = 1, display_width: int = 160) -> Path:
    """Prepare a notebook kernel and return its output folder (made, under the project root).

    Silences warnings and transformers' logging, selects the Agg backend of matplotlib, sets
    `threads` torch intra-op threads (None: leave torch alone, it is not imported) and the
    display width of pandas.
    """
    warnings.filterwarnings("ignore")
    import matplotlib
    import pandas as pd

    matplotlib.use("Agg")
    pd.set_option("display.width", display_width)
    if threads is not None:
        import torch
        import transformers

        transformers.logging.set_verbosity_error()
        torch.set_num_threads(threads)
    out = PROJECT_ROOT / out_dir
    out.mkdir(parents=True, exist_ok=True)
    return out


def read_records(path: str | Path, *, ids: Sequence[str] | None = None) -> list[dict]:
    """The records of a JSONL file (relative to the project root); with `ids`, those in that order."""
    from ..core.samples import read_jsonl

    records = read_jsonl(PROJECT_ROOT / path)
    if ids is None:
        return records
    by_id = {r["id"]: r for r in records}
    return [by_id[i] for i in ids]


def zoo_size(spec: str) -> str:
    """The size name of an organism spec: `zoo:smoke/100k@final` -> `100k`."""
    return spec[4:].split("/")[-1].split("@")[0]


def model_keys(specs: Iterable[str], macro_names: Mapping[str, str] | None = None, *,
               zoo_prefix: str = "Zoo", zoo_single: bool = False) -> dict[str, str]:
    """Letters-only macro fragment per model spec: `macro_names` first, else `report.macro_key`.

    Organisms read `zoo_prefix` + the size's key (`ZooOneZeroZerok`), or just `zoo_prefix`
    when `zoo_single` (only one organism in the run).
    """
    macro_names = macro_names or {}
    keys = {}
    for spec in specs:
        if spec.startswith("zoo:"):
            keys[spec] = zoo_prefix if zoo_single else zoo_prefix + macro_key(zoo_size(spec))
        else:
            keys[spec] = macro_names.get(spec) or macro_key(spec)
    return keys


def model_labels(specs: Iterable[str], labels: Mapping[str, str] | None = None) -> dict[str, str]:
    """Display label per model spec: `labels` first, `organism <size>` for zoo specs, else the spec."""
    labels = labels or {}
    return {spec: (f"organism {zoo_size(spec)}" if spec.startswith("zoo:") else labels.get(spec, spec))
            for spec in specs}
