"""Notebook setup shared by the paper notebooks: environment, output folder, records, model names.

    out = nb.setup("build/smoke/fig_phase", threads=1)       # quiet, Agg, 1 torch thread, folder made
    records = nb.read_records("data/attractors.jsonl", ids=["counting", "pi_digits"])
    keys = nb.model_keys(models)                            # {"gemma-3-270m": "Gemma", ...}
    names = nb.model_labels(models)                         # {"gemma-3-270m": "Gemma-3-270M", ...}

A model's display label and letters-only macro name are written once, in the model catalogs
`configs/models-cpu.yml` and `configs/models-gpu.yml` (`spec`, `label`, `macro` per entry); notebooks
never carry their own tables. A model in neither file reads its spec as label and `report.macro_key(spec)`
as macro name; organism specs (`zoo:<profile>/<size>@<step>`) read `organism <size>` and `Zoo<size>`.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from ..errors import MemkitError
from ..paths import PROJECT_ROOT
from .report import macro_key

#: The model catalogs (project-relative). scripts/nbdeps.py reads this tuple: every notebook importing
#: this module reruns when a catalog changes.
READS = ("configs/models-cpu.yml", "configs/models-gpu.yml")


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


@functools.cache
def model_catalog() -> dict[str, dict]:
    """{spec: catalog entry} over every file of `READS`; a spec listed twice with different names is an error."""
    import yaml

    entries: dict[str, dict] = {}
    for name in READS:
        path = PROJECT_ROOT / name
        for i, entry in enumerate(yaml.safe_load(path.read_text(encoding="utf-8")).get("models") or []):
            if not {"spec", "label", "macro"} <= set(entry):
                raise MemkitError(f"{path}: models[{i}]: needs spec, label and macro")
            if not str(entry["macro"]).isalpha():
                raise MemkitError(f"{path}: models[{i}] ({entry['spec']}): macro must be letters only")
            known = entries.get(entry["spec"])
            if known and (known["label"], known["macro"]) != (entry["label"], entry["macro"]):
                raise MemkitError(f"{path}: models[{i}] ({entry['spec']}): label/macro differ from another catalog")
            entries[entry["spec"]] = entry
    return entries


def model_keys(specs: Iterable[str], macro_names: Mapping[str, str] | None = None, *,
               zoo_prefix: str = "Zoo", zoo_single: bool = False) -> dict[str, str]:
    """Letters-only macro fragment per model spec: `macro_names`, the catalog's `macro`, else `report.macro_key`.

    Organisms read `zoo_prefix` + the size's key (`ZooOneZeroZerok`), or just `zoo_prefix`
    when `zoo_single` (only one organism in the run).
    """
    macro_names = macro_names or {}
    keys = {}
    for spec in specs:
        if spec.startswith("zoo:"):
            keys[spec] = zoo_prefix if zoo_single else zoo_prefix + macro_key(zoo_size(spec))
        else:
            keys[spec] = macro_names.get(spec) or model_catalog().get(spec, {}).get("macro") or macro_key(spec)
    return keys


def model_labels(specs: Iterable[str], labels: Mapping[str, str] | None = None) -> dict[str, str]:
    """Display label per model spec: `labels`, `organism <size>` for zoo specs, the catalog's `label`, else the spec."""
    labels = labels or {}

    def label(spec: str) -> str:
        if spec in labels:
            return labels[spec]
        if spec.startswith("zoo:"):
            return f"organism {zoo_size(spec)}"
        return model_catalog().get(spec, {}).get("label", spec)

    return {spec: label(spec) for spec in specs}
