"""Extraction: samples -> batched greedy continuations -> one metrics row per sample.

    lm = memkit.load_model("gemma-3-270m")
    samples = memkit.make_samples(lm, records, k=32, m=64, mode="raw")
    df = memkit.extract(lm, samples)                     # in memory, for notebooks
    df = memkit.run_extraction(lm, samples, "out.parquet")  # sharded, resumable, atomic

Batches are formed deterministically (samples sorted by prompt length, then input order)
so that a rerun, or a resumed run, sees exactly the same batches and gives byte-identical
tables. Rows come back in input order.

Large inputs stream: `run_extraction` also takes a `memkit.core.sources.SampleStream` (any
object with `len()`, `meta_plan`, `ids_digest` and `chunk(c, size)`) and works through it
`chunk_size` samples at a time. Batches are planned within a chunk (sorted by prompt length
inside it); every finished batch is a shard `<out>.parts/part-NNNNNN.parquet` (numbered
across the run), and once all batches of a chunk are done they are compacted into
`chunk-NNNNNN.parquet` (rows in input order). The merge streams the chunk files in order
into one parquet file with `pyarrow.parquet.ParquetWriter` (temp file, then rename), so
memory holds one chunk, not the run. A run whose samples fit in one chunk keeps the
original layout and writes exactly the table it always did.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import sys
from pathlib import Path
from typing import Callable, Iterator, Sequence

import pandas as pd
from tqdm import tqdm

from .decode import NEAR_TIE, LogitsTransform, greedy_decode
from ..errors import MemkitError
from .metrics import score_continuation
from .models import LoadedModel
from ..paths import atomic_path, code_fingerprint, entry_lock
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


class MetaPlanner:
    """`plan_meta_columns`, one sample's metadata at a time (for inputs too large to hold)."""

    def __init__(self) -> None:
        self._types: dict[str, set] = {}

    def add(self, meta: dict) -> None:
        for key, value in meta.items():
            kinds = self._types.setdefault(key, set())
            if value is not None:
                kinds.add(type(value) if isinstance(value, _SCALARS) else object)

    def plan(self) -> dict[str, bool]:
        return {key: len(kinds) <= 1 and object not in kinds for key, kinds in sorted(self._types.items())}


def plan_meta_columns(samples: Sequence[Sample]) -> dict[str, bool]:
    """For every metadata key of the samples: True if stored natively, False if as JSON text.

    A key keeps its native type when all its values (nulls aside) are scalars of one type;
    otherwise (e.g. `1`, `"web"`, `[1, 2]` across records) every value is stored as its JSON
    text, so no information is lost and every batch of a run has the same column types.
    """
    planner = MetaPlanner()
    for sample in samples:
        planner.add(sample.meta)
    return planner.plan()


def meta_columns(meta: dict, plan: dict[str, bool]) -> dict:
    """The `meta_<key>` columns of one sample under `plan` (see plan_meta_columns)."""
    return {f"meta_{key}": (meta.get(key) if native
                            else json.dumps(meta.get(key), sort_keys=True, ensure_ascii=False, default=str))
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
            "min_top2_gap": gap, "near_tie": gap < NEAR_TIE,
            "prefix_text": decode(list(sample.prefix_ids), skip_special_tokens=True),
            "suffix_text": suffix_text, "generated_text": generated_text,
            "prefix_ids": list(sample.prefix_ids), "suffix_ids": list(sample.suffix_ids),
            "generated_ids": list(generated),
            **meta_columns(sample.meta, meta_plan),
        })
    return pd.DataFrame(rows)


def _iter_batches(lm, samples, batches, fast, logits_transform, bar, context_factory=None,
                  plan: dict[str, bool] | None = None) -> Iterator[tuple[int, pd.DataFrame]]:
    plan = plan_meta_columns(samples) if plan is None else plan
    for number, indices in batches:
        frame = extract_batch(lm, [samples[i] for i in indices], fast, logits_transform, context_factory, plan)
        bar.update(len(indices))
        yield number, frame


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
    with tqdm(total=len(samples), desc=lm.name, unit="sample", disable=not progress) as bar:
        frames = [f for _, f in _iter_batches(lm, samples, batches, fast, logits_transform, bar, context_factory)]
    return _in_input_order(pd.concat(frames, ignore_index=True), batches)


def extract_chunk(lm: LoadedModel, samples: Sequence[Sample], batch_size: int, meta_plan: dict[str, bool],
                  fast: bool = True) -> pd.DataFrame:
    """One chunk of a streamed run, in memory and in input order (what a Ray actor computes).

    The batches are the ones `run_extraction` plans for the same chunk, so are the rows.
    """
    batches = list(enumerate(plan_batches(samples, batch_size)))
    with tqdm(total=len(samples), disable=True) as bar:
        frames = [f for _, f in _iter_batches(lm, samples, batches, fast, None, bar, plan=meta_plan)]
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


DEFAULT_CHUNK_SIZE = 4096


class IdsDigest:
    """`run_config_hash({"ids": ids})`, fed one id at a time (no list of all ids in memory)."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256(b'{"ids": [')
        self._first = True

    def add(self, sample_id: str) -> None:
        self._hash.update((b"" if self._first else b", ") + json.dumps(sample_id).encode())
        self._first = False

    def hexdigest(self) -> str:
        final = self._hash.copy()
        final.update(b"]}")
        return final.hexdigest()[:16]


class _ListStream:
    """A list of samples seen as a stream (what `run_extraction` consumes)."""

    def __init__(self, samples: Sequence[Sample]):
        self.samples = samples
        self.meta_plan = plan_meta_columns(samples)
        self.ids_digest = run_config_hash({"ids": [s.id for s in samples]})

    def __len__(self) -> int:
        return len(self.samples)

    def chunk(self, c: int, size: int) -> Sequence[Sample]:
        return self.samples if len(self.samples) <= size else self.samples[c * size:(c + 1) * size]


def as_stream(samples):
    """A SampleStream as is; a list (or tuple) of samples wrapped as one."""
    if all(hasattr(samples, name) for name in ("chunk", "meta_plan", "ids_digest")):
        return samples
    if isinstance(samples, Sequence):
        return _ListStream(samples)
    raise MemkitError("samples must be a list of Sample or a SampleStream from memkit.core.sources.open_source(...)")


def check_output(out: str | Path) -> Path:
    out = Path(out)
    if not out.parent.is_dir():
        raise MemkitError(f"output directory does not exist: {out.parent}")
    if out.is_dir():
        raise MemkitError(f"output {out} is a directory; give the path of a .parquet file")
    return out


class RunParts:
    """Where one run keeps its state: `<out>.parts/` (config.json, batch shards, chunk files).

    The key covers the caller's config, the batch size, the sample ids (a digest fed one id
    at a time) and, when the input spans several chunks, the chunk size: whatever changes
    which rows a shard holds. Shared by `run_extraction` and the Ray runner
    (`memkit.core.distributed`), so either can resume the other's chunks.
    """

    def __init__(self, out: Path, config: dict, n: int, batch_size: int, chunk_size: int, ids_digest: str):
        if batch_size <= 0 or chunk_size <= 0:
            raise MemkitError(f"batch and chunk sizes must be positive (got {batch_size}, {chunk_size})")
        if n == 0:
            raise MemkitError("no samples to extract")
        self.out, self.n, self.batch_size, self.chunk_size = out, n, batch_size, chunk_size
        self.parts = out.with_name(out.name + ".parts")
        self.config = {**config, "batch_size": batch_size, "ids": ids_digest}
        if n > chunk_size:  # several chunks: the chunk size decides the batches
            self.config["chunk_size"] = chunk_size
        self.key = run_config_hash(self.config)
        self.n_chunks = math.ceil(n / chunk_size)

    @property
    def stamped(self) -> dict:
        return {**self.config, "key": self.key}

    def finished(self) -> bool:
        return self.out.exists() and (read_run_config(self.out) or {}).get("key") == self.key

    def open(self) -> None:
        stamp = self.parts / "config.json"
        if self.parts.exists() and (not stamp.exists() or json.loads(stamp.read_text()).get("key") != self.key):
            shutil.rmtree(self.parts)  # shards of a different run: not reusable
        self.parts.mkdir(exist_ok=True)
        if not stamp.exists():
            with atomic_path(stamp) as tmp:
                tmp.write_text(json.dumps(self.stamped, sort_keys=True, default=str))

    def chunk_len(self, c: int) -> int:
        return min(self.chunk_size, self.n - c * self.chunk_size)

    def batch_path(self, number: int) -> Path:
        return self.parts / f"part-{number:06d}.parquet"

    def chunk_path(self, c: int) -> Path:
        return self.parts / f"chunk-{c:06d}.parquet"

    def numbered(self, c: int, samples: Sequence[Sample]) -> list[tuple[int, list[int]]]:
        """The batches of chunk `c`, numbered across the run (every chunk but the last is full)."""
        first = c * math.ceil(self.chunk_size / self.batch_size)
        return [(first + i, b) for i, b in enumerate(plan_batches(samples, self.batch_size))]

    def write_chunk(self, c: int, frame: pd.DataFrame) -> None:
        write_table(frame, self.chunk_path(c), self.config)

    def merge(self, batches: Sequence[tuple[int, list[int]]] | None = None) -> pd.DataFrame | None:
        """Write `out` from the finished state; the single-chunk table is returned (None otherwise).

        One chunk: its batch shards (or its chunk file) become the table, as always. Several:
        the chunk files are streamed in order into one ParquetWriter. Either way the output
        appears by rename and the shards go only after that.
        """
        if self.n_chunks == 1:
            if self.chunk_path(0).exists():
                paths = [self.chunk_path(0)]
                result = pd.read_parquet(paths[0])
            else:
                paths = [self.batch_path(n) for n, _ in batches]
                result = _in_input_order(pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True), batches)
            _merge_into(lambda tmp_out: write_table(result, tmp_out, self.stamped), self.out, paths)
        else:
            paths = [self.chunk_path(c) for c in range(self.n_chunks)]
            _merge_into(lambda tmp_out: _stream_chunks(paths, tmp_out, self.stamped), self.out, paths)
            result = None
        shutil.rmtree(self.parts)
        return result


def _stream_chunks(paths: Sequence[Path], out: Path, config: dict) -> None:
    """Concatenate chunk files into `out`, one chunk in memory at a time.

    Column types are unified over the chunks (a metadata column that is all null in one
    chunk takes its type from the others) and pandas' per-file schema notes are dropped.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    schemas = [pq.read_schema(p).remove_metadata() for p in paths]
    schema = pa.unify_schemas(schemas, promote_options="permissive")
    schema = schema.with_metadata({b"memkit": json.dumps(config, sort_keys=True, default=str).encode()})
    with atomic_path(out) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        for path in paths:
            writer.write_table(pq.read_table(path).replace_schema_metadata(None).cast(schema))


def run_extraction(lm: LoadedModel, samples, out: str | Path, config: dict,
                   batch_size: int = 16, fast: bool = True, logits_transform: LogitsTransform | None = None,
                   progress: bool = True, context_factory=None, chunk_size: int = DEFAULT_CHUNK_SIZE,
                   return_frame: bool = True) -> pd.DataFrame | None:
    """`extract`, written to `out` as parquet; resumable batch by batch after a kill.

    `samples`: a list of Sample, or a SampleStream (`memkit.core.sources`) read `chunk_size`
    samples at a time, so memory does not grow with the input. Each finished batch is saved
    as a shard in `<out>.parts/`; a rerun with the same `config` skips finished shards (and
    finished chunks), and the merged table is written atomically at the end. A finished
    `out` with the same config is returned without recomputing anything; a process that finds
    another one computing the same `out` waits for it (`paths.entry_lock`), then reads it.
    `return_frame=False` returns None instead of loading the table (for inputs larger than memory).
    """
    out = check_output(out)
    stream = as_stream(samples)
    run = RunParts(out, config, len(stream), batch_size, chunk_size, stream.ids_digest)
    with entry_lock(out):  # a second process waits here, then reads the finished table
        if run.finished():
            return pd.read_parquet(out) if return_frame else None
        first = stream.chunk(0, chunk_size) if run.n_chunks == 1 else None  # bad samples fail before any file
        run.open()
        announced = False
        batches = None
        with tqdm(total=run.n, desc=lm.name, unit="sample", disable=not progress) as bar:
            for c in range(run.n_chunks):
                if run.chunk_path(c).exists():
                    bar.update(run.chunk_len(c))
                    continue
                chunk = first if first is not None else stream.chunk(c, chunk_size)
                batches = run.numbered(c, chunk)
                todo = [(n, b) for n, b in batches if not run.batch_path(n).exists()]
                done = sum(len(b) for _, b in batches) - sum(len(b) for _, b in todo) + bar.n
                if done and not announced and progress:
                    tqdm.write(f"resuming: {done} of {run.n} samples already done in {run.parts}", file=sys.stderr)
                announced = True
                bar.update(len(chunk) - sum(len(b) for _, b in todo))
                for number, frame in _iter_batches(lm, chunk, todo, fast, logits_transform, bar, context_factory,
                                                   stream.meta_plan):
                    write_table(frame, run.batch_path(number), run.config)
                if run.n_chunks > 1:  # compact: one file per chunk, rows in input order
                    paths = [run.batch_path(n) for n, _ in batches]
                    run.write_chunk(c, _in_input_order(pd.concat([pd.read_parquet(p) for p in paths],
                                                                 ignore_index=True), batches))
                    for path in paths:
                        path.unlink()
        result = run.merge(batches)
        if not return_frame:
            return None
        return result if result is not None else pd.read_parquet(out)


def _merge_into(write: Callable[[Path], None], out: Path, shard_paths: Sequence[Path]) -> None:
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
        write(out)
    except OSError as exc:
        raise MemkitError(f"cannot write {out}: {exc.strerror or exc}; {kept}") from None


def summarize(path: str | Path) -> dict:
    """Sample count and the mean of the headline metrics of a results file, read batch by batch."""
    import pyarrow.parquet as pq

    columns = ("exact_match", "token_match", "near_verbatim", "near_tie")
    totals, n = dict.fromkeys(columns, 0.0), 0
    for batch in pq.ParquetFile(path).iter_batches(columns=list(columns)):
        n += batch.num_rows
        for name in columns:
            totals[name] += float(sum(v for v in batch.column(name).to_pylist() if v is not None))
    return {"samples": n, **{name: (totals[name] / n if n else 0.0) for name in columns[:3]},
            "near_ties": int(totals["near_tie"])}


def code_version() -> str:
    """Hash of the modules that determine extraction results (part of every cache key)."""
    return code_fingerprint("core/decode.py", "core/extract.py", "core/metrics.py", "core/samples.py",
                            "core/sources.py", "core/arch.py", "core/batching.py")


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
