"""Extraction: samples -> batched greedy continuations -> one metrics row per sample.

    lm = memkit.load_model("gemma-3-270m")
    samples = memkit.make_samples(lm, records, k=32, m=64, mode="raw")
    df = memkit.extract(lm, samples)                     # in memory, for notebooks
    df = memkit.run_extraction(lm, samples, "out.parquet")  # sharded, resumable, atomic

Batches are formed deterministically (samples sorted by prompt length, then input order)
so that a rerun, or a resumed run, sees exactly the same batches and gives byte-identical
tables. Rows come back in input order.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Iterator, Sequence

import pandas as pd
from tqdm import tqdm

from .decode import LogitsTransform, greedy_decode
from ..errors import MemkitError
from .metrics import score_continuation
from .models import LoadedModel
from ..paths import atomic_path, code_fingerprint
from .samples import Sample

ID_COLUMNS = ("prefix_ids", "suffix_ids", "generated_ids")


def pad_token_id(tokenizer) -> int:
    """A token id for padding slots (never attended to, so any valid id works)."""
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
        if candidate is not None:
            return int(candidate)
    return 0


def plan_batches(samples: Sequence[Sample], batch_size: int) -> list[list[int]]:
    """Deterministic batches of sample indices: similar prompt lengths together (less padding)."""
    if batch_size <= 0:
        raise MemkitError(f"batch size must be positive (got {batch_size})")
    order = sorted(range(len(samples)), key=lambda i: (len(samples[i].prompt_ids), i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


_SCALARS = (str, bool, int, float)


def plan_meta_columns(samples: Sequence[Sample]) -> dict[str, bool]:
    """For every metadata key of the samples: True if stored natively, False if as JSON text.

    A key keeps its native type when all its values (nulls aside) are scalars of one type;
    otherwise (e.g. `1`, `"web"`, `[1, 2]` across records) every value is stored as its JSON
    text, so no information is lost and every batch of a run has the same column types.
    """
    types: dict[str, set] = {}
    for sample in samples:
        for key, value in sample.meta.items():
            kinds = types.setdefault(key, set())
            if value is not None:
                kinds.add(type(value) if isinstance(value, _SCALARS) else object)
    return {key: len(kinds) <= 1 and object not in kinds for key, kinds in sorted(types.items())}


def meta_columns(meta: dict, plan: dict[str, bool]) -> dict:
    """The `meta_<key>` columns of one sample under `plan` (see plan_meta_columns)."""
    return {f"meta_{key}": (meta.get(key) if native
                            else json.dumps(meta.get(key), sort_keys=True, ensure_ascii=False))
            for key, native in plan.items()}


def extract_batch(lm: LoadedModel, batch: Sequence[Sample], fast: bool = True,
                  logits_transform: LogitsTransform | None = None, context_factory=None,
                  meta_plan: dict[str, bool] | None = None) -> pd.DataFrame:
    """Decode one batch and score every continuation.

    `context_factory(batch)` may return a per-forward context for `greedy_decode` (used by
    embedding-level actions to hook exactly the rows of this batch). `meta_plan` says how
    the samples' metadata become columns (default: planned from this batch alone).
    """
    meta_plan = plan_meta_columns(batch) if meta_plan is None else meta_plan
    m_values = {len(s.suffix_ids) for s in batch}
    if len(m_values) != 1:
        raise MemkitError(f"all samples of a batch need the same suffix length m (got {sorted(m_values)})")
    m = m_values.pop()
    result = greedy_decode(
        lm.model, [s.prompt_ids for s in batch], m, pad_token_id(lm.tokenizer),
        drafts=[s.suffix_ids for s in batch] if fast else None, logits_transform=logits_transform,
        forward_context=context_factory(batch) if context_factory is not None else None,
    )
    decode = lm.tokenizer.decode
    rows = []
    for sample, generated, gap in zip(batch, result.generated_ids, result.min_top2_gap):
        generated_text = decode(generated, skip_special_tokens=True)
        suffix_text = decode(list(sample.suffix_ids), skip_special_tokens=True)
        rows.append({
            "id": sample.id, "model": lm.name, "mode": sample.mode,
            "k": len(sample.prefix_ids), "m": m,
            **score_continuation(generated, sample.suffix_ids, generated_text, suffix_text),
            "min_top2_gap": gap, "near_tie": gap < 1e-4,
            "prefix_text": decode(list(sample.prefix_ids), skip_special_tokens=True),
            "suffix_text": suffix_text, "generated_text": generated_text,
            "prefix_ids": list(sample.prefix_ids), "suffix_ids": list(sample.suffix_ids),
            "generated_ids": list(generated),
            **meta_columns(sample.meta, meta_plan),
        })
    return pd.DataFrame(rows)


def _iter_batches(lm, samples, batches, fast, logits_transform, progress, desc,
                  context_factory=None) -> Iterator[tuple[int, pd.DataFrame]]:
    plan = plan_meta_columns(samples)
    bar = tqdm(total=len(samples), desc=desc, unit="sample", disable=not progress)
    try:
        for number, indices in batches:
            frame = extract_batch(lm, [samples[i] for i in indices], fast, logits_transform, context_factory, plan)
            bar.update(len(indices))
            yield number, frame
    finally:
        bar.close()


def _in_input_order(frame: pd.DataFrame, batches: Sequence[tuple[int, list[int]]]) -> pd.DataFrame:
    """Rows of the concatenated batches, put back in sample order (by position: ids may repeat)."""
    order = [i for _, indices in batches for i in indices]
    frame = frame.assign(_order=order).sort_values("_order", kind="stable")
    # batches without a value for a metadata key give object columns: infer as parquet does
    return frame.drop(columns="_order").reset_index(drop=True).infer_objects()


def extract(lm: LoadedModel, samples: Sequence[Sample], batch_size: int = 16, fast: bool = True,
            logits_transform: LogitsTransform | None = None, progress: bool = True,
            context_factory=None) -> pd.DataFrame:
    """Greedy continuation and every metric for each sample, as a DataFrame in input order."""
    batches = list(enumerate(plan_batches(samples, batch_size)))
    frames = [f for _, f in _iter_batches(lm, samples, batches, fast, logits_transform, progress, lm.name,
                                          context_factory)]
    return _in_input_order(pd.concat(frames, ignore_index=True), batches)


def run_config_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def write_table(frame: pd.DataFrame, path: str | Path, config: dict | None = None) -> None:
    """Write `frame` as parquet atomically (temp file, then rename), with `config` in its metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    if config is not None:
        metadata = dict(table.schema.metadata or {})
        metadata[b"memkit"] = json.dumps(config, sort_keys=True, default=str).encode()
        table = table.replace_schema_metadata(metadata)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_run_config(path: str | Path) -> dict | None:
    """The run configuration stored in a memkit parquet file (None if absent)."""
    import pyarrow.parquet as pq

    try:
        metadata = pq.read_schema(path).metadata or {}
    except (OSError, ValueError):  # not a parquet file (pyarrow.ArrowInvalid is a ValueError)
        return None
    return json.loads(metadata[b"memkit"]) if b"memkit" in metadata else None


def run_extraction(lm: LoadedModel, samples: Sequence[Sample], out: str | Path, config: dict,
                   batch_size: int = 16, fast: bool = True, logits_transform: LogitsTransform | None = None,
                   progress: bool = True, context_factory=None) -> pd.DataFrame:
    """`extract`, written to `out` as parquet; resumable batch by batch after a kill.

    Each finished batch is saved as a shard in `<out>.parts/`; a rerun with the same
    `config` skips finished shards, and the merged table is written atomically at the end.
    A finished `out` with the same config is returned without recomputing anything.
    """
    out = Path(out)
    if not out.parent.is_dir():
        raise MemkitError(f"output directory does not exist: {out.parent}")
    if out.is_dir():
        raise MemkitError(f"output {out} is a directory; give the path of a .parquet file")
    config = {**config, "batch_size": batch_size, "ids": run_config_hash({"ids": [s.id for s in samples]})}
    key = run_config_hash(config)
    if out.exists() and (read_run_config(out) or {}).get("key") == key:
        return pd.read_parquet(out)
    parts = out.with_name(out.name + ".parts")
    stamp = parts / "config.json"
    if parts.exists() and (not stamp.exists() or json.loads(stamp.read_text()).get("key") != key):
        shutil.rmtree(parts)  # shards of a different run: not reusable
    parts.mkdir(exist_ok=True)
    if not stamp.exists():
        with atomic_path(stamp) as tmp:
            tmp.write_text(json.dumps({**config, "key": key}, sort_keys=True, default=str))
    batches = list(enumerate(plan_batches(samples, batch_size)))
    todo = [(n, b) for n, b in batches if not (parts / f"part-{n:06d}.parquet").exists()]
    done = sum(len(b) for n, b in batches) - sum(len(b) for _, b in todo)
    if done and progress:
        tqdm.write(f"resuming: {done} of {len(samples)} samples already done in {parts}", file=sys.stderr)
    for number, frame in _iter_batches(lm, samples, todo, fast, logits_transform, progress, lm.name,
                                       context_factory):
        write_table(frame, parts / f"part-{number:06d}.parquet", config)
    shard_paths = [parts / f"part-{n:06d}.parquet" for n, _ in batches]
    result = _in_input_order(pd.concat([pd.read_parquet(p) for p in shard_paths], ignore_index=True), batches)
    _merge_into(result, out, {**config, "key": key}, shard_paths)
    shutil.rmtree(parts)
    return result


def _merge_into(result: pd.DataFrame, out: Path, config: dict, shard_paths: Sequence[Path]) -> None:
    """Write the merged table; if the disk cannot hold it, say so and keep the shards for a rerun.

    The merged file is about as large as the shards together, and they are only removed once
    it is in place, so the merge needs that much free space again: checked before writing.
    """
    needed = sum(p.stat().st_size for p in shard_paths)
    free = shutil.disk_usage(out.parent).free
    kept = f"the finished batches are kept in {shard_paths[0].parent}; free some space and rerun to merge"
    if free < needed:
        raise MemkitError(f"not enough space in {out.parent} to write {out.name} "
                          f"(needs about {needed / 1e6:.1f} MB, {free / 1e6:.1f} MB free); {kept}")
    try:
        write_table(result, out, config)
    except OSError as exc:
        raise MemkitError(f"cannot write {out}: {exc.strerror or exc}; {kept}") from None


def code_version() -> str:
    """Hash of the modules that determine extraction results (part of every cache key)."""
    return code_fingerprint("core/decode.py", "core/extract.py", "core/metrics.py", "core/samples.py")


def samples_fingerprint(samples: Sequence[Sample]) -> str:
    payload = [(s.id, s.mode, s.prompt_ids, s.prefix_ids, s.suffix_ids) for s in samples]
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:16]


def cached_extract(lm: LoadedModel, samples: Sequence[Sample], batch_size: int = 16, progress: bool = True,
                   cache_root: Path | None = None) -> pd.DataFrame:
    """`extract` with an on-disk cache keyed by (model weights, samples, memkit code version).

    Notebooks call this so that a warm `make paper` recomputes nothing, and a killed run
    resumes from its finished batches.
    """
    from ..paths import cache_dir

    config = {"command": "cached_extract", "model": lm.name, "model_sha256": lm.sha256,
              "samples": samples_fingerprint(samples), "code": code_version()}
    root = Path(cache_root) if cache_root is not None else cache_dir() / "results"
    root.mkdir(parents=True, exist_ok=True)
    out = root / f"{run_config_hash({**config, 'batch_size': batch_size})}.parquet"
    return run_extraction(lm, samples, out, config, batch_size=batch_size, progress=progress)
