"""Scale-out on Ray: `run_extraction` with one model per Ray actor, same output file.

    source = open_source("pile.bin", seq_len=2049)
    run_extraction_ray("zoo:397k@final", source, "out.parquet", config, k=32, m=32, num_actors=8)

The driver scans and checks the input (as the single-process run does), then runs a Ray
Data pipeline over the chunks that are not finished yet: one block per chunk (samples
c*chunk_size ...), `map_batches` on an actor pool (`num_actors` actors; each loads the model
once in `__init__`, sets its torch threads, asks for one GPU when CUDA is requested and
`threads_per_actor` CPUs otherwise) that reads its chunk straight from the input file (the
path must be readable on every node: a shared file system for multi-node runs) and returns
the chunk's rows, planned and decoded exactly as `run_extraction` would. The driver writes
each chunk, once all its rows have arrived, to `<out>.parts/chunk-NNNNNN.parquet` and
finally merges them with the single-process code (`RunParts.merge`): same columns, same row
order, same run key and atomic output, so either runner can resume the other's chunks.

Faults: a killed actor is restarted (`max_restarts`) and its chunk retried
(`max_task_retries`); rows carry their chunk and position, so a retried chunk can neither
be lost nor counted twice. A killed driver leaves the finished chunks for the next run.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from ..errors import MemkitError
from ..paths import entry_lock
from .extract import DEFAULT_CHUNK_SIZE, RunParts, check_output, extract_chunk
from .sources import Source

ADDRESS = re.compile(r"^(auto|(ray://)?[A-Za-z0-9_.\-\[\]:]+:\d{1,5})$")
_CHUNK, _ROW = "_memkit_chunk", "_memkit_row"


def import_ray():
    try:
        import ray
        import ray.data  # noqa: F401  (Ray Data ships with `ray[data]`)
    except ImportError:
        raise MemkitError("--ray needs Ray: pip install 'ray[data]==2.60.0' (or `make setup`)") from None
    return ray


@dataclass
class ModelInfo:
    """What the driver needs to know about a model without loading its weights."""

    name: str
    sha256: str | None
    tokenizer: Any
    embedding_rows: int | None
    online: bool = False
    allow_pickle: bool = False


def model_info(spec: str, online: bool | None = None, allow_pickle: bool | None = None) -> ModelInfo:
    """Name, weights fingerprint, tokenizer and vocabulary size, as `load_model` sees them, without the weights.

    Mirrors `load_model` (MEMKIT_ONLINE / MEMKIT_ALLOW_PICKLE defaults, hub revisions, the
    pickle refusal, the fingerprint of local weights), so a Ray run has the run key of the
    same single-process run; tests/test_distributed.py checks that they agree.
    """
    from transformers import AutoConfig, AutoTokenizer

    from .models import _defaults, _pickle_only, _pickle_refused, _quiet_hub, file_sha256, parse_hub_spec, resolve_spec

    _, _, online, allow_pickle = _defaults("cpu", "float32", online, allow_pickle)
    name, location, sha = resolve_spec(spec, online=online, progress=False)
    folder = Path(str(location))
    local = folder.is_dir()
    if local and _pickle_only(folder) and not allow_pickle:
        raise _pickle_refused(spec)
    hub = None if local else parse_hub_spec(name)
    kwargs = dict(trust_remote_code=False, local_files_only=not online)
    if hub is not None and hub.revision is not None:
        kwargs["revision"] = hub.revision
    try:
        with _quiet_hub():
            tokenizer = AutoTokenizer.from_pretrained(str(location), **kwargs)
            config = AutoConfig.from_pretrained(str(location), **kwargs)
    except Exception as exc:  # missing files, no network
        raise MemkitError(f"cannot load model {spec!r} from {location}: "
                          f"{(str(exc).strip() or type(exc).__name__).splitlines()[0]}") from exc
    if sha is None and local:
        weights = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
        sha = hashlib.sha256("".join(file_sha256(w) for w in weights).encode()).hexdigest() if weights else None
    rows = getattr(config.get_text_config(), "vocab_size", None)
    return ModelInfo(name, sha, tokenizer, rows, online, allow_pickle)


class ChunkExtractor:
    """A Ray Data actor: one model, loaded once; each call extracts whole chunks."""

    def __init__(self, spec: str, stream, chunk_size: int, batch_size: int, device: str, dtype: str,
                 threads: int, fast: bool, online: bool, allow_pickle: bool):
        import torch

        from .models import load_model

        torch.set_num_threads(threads)
        self.lm = load_model(spec, device=device, dtype=dtype, online=online, progress=False,
                             allow_pickle=allow_pickle)
        self.stream = stream.with_tokenizer(self.lm.tokenizer)
        self.chunk_size, self.batch_size, self.fast = chunk_size, batch_size, fast

    def __call__(self, batch: dict):
        import pyarrow as pa

        tables = []
        for c in (int(c) for c in batch["chunk"]):
            samples = self.stream.chunk(c, self.chunk_size)
            frame = extract_chunk(self.lm, samples, self.batch_size, self.stream.meta_plan, self.fast)
            table = pa.Table.from_pandas(frame, preserve_index=False)
            table = table.append_column(_CHUNK, pa.array([c] * len(frame), pa.int64()))
            tables.append(table.append_column(_ROW, pa.array(range(len(frame)), pa.int64())))
        return tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="permissive")


def check_address(address: str | None) -> None:
    """A Ray address memkit can use: its form, and for HOST:PORT that something listens there.

    Ray itself retries an unreachable address for minutes; a closed port is better said at once.
    """
    if address in (None, "local", "auto"):
        return
    if not ADDRESS.match(address):
        raise MemkitError(f"bad Ray address {address!r}: expected auto, HOST:PORT or ray://HOST:PORT")
    host, port = address.removeprefix("ray://").rsplit(":", 1)
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    except (OSError, ValueError) as exc:
        raise MemkitError(f"cannot connect to Ray at {address}: {getattr(exc, 'strerror', None) or exc}") from None


def _connect(ray, address: str | None) -> bool:
    """Attach to Ray (None: a local instance, or RAY_ADDRESS; "auto": the running cluster). True if we did."""
    if ray.is_initialized():
        return False
    for name in ("ray", "ray.data", "ray._private", "ray.rllib"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        ray.init(address=None if address in (None, "local") else address, include_dashboard=False,
                 log_to_driver=False, logging_level=logging.ERROR, configure_logging=True)
    except (ConnectionError, ValueError, RuntimeError, TimeoutError) as exc:
        where = "a local Ray instance" if address in (None, "local") else f"Ray at {address}"
        raise MemkitError(f"cannot connect to {where}: {str(exc).strip().splitlines()[0]}") from None
    return True


def _quiet_data(ray) -> None:
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    context.verbose_stats_logs = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)


def run_extraction_ray(spec: str, source: Source, out: str | Path, config: dict, *, k: int, m: int,
                       mode: str = "raw", num_actors: int = 2, batch_size: int = 16, device: str = "cpu",
                       dtype: str = "float32", threads_per_actor: int = 1, chunk_size: int = DEFAULT_CHUNK_SIZE,
                       fast: bool = True, address: str | None = None, online: bool | None = None,
                       allow_pickle: bool | None = None, progress: bool = True,
                       max_restarts: int = 4, return_frame: bool = True,
                       stats: dict | None = None) -> pd.DataFrame | None:
    """`run_extraction(load_model(spec), source.samples(...), out, config, ...)` on a Ray actor pool.

    `address`: None starts (or, with RAY_ADDRESS set, joins) a local Ray; "auto" joins the
    running cluster; HOST:PORT / ray://HOST:PORT a given one. Ray is left as it was found
    (a session this call started is shut down at the end). `device` "auto" means one GPU per
    actor when the cluster has GPUs. Returns the table (None with `return_frame=False`).
    `stats`, if given, receives wall-clock marks (`time.perf_counter()`): `start`, `chunk_times`
    (when each chunk arrived, as (chunk, samples, time)) and `end`, for throughput figures.
    """
    stats = {} if stats is None else stats
    stats.update(start=time.perf_counter(), chunk_times=[])
    if num_actors <= 0 or threads_per_actor <= 0:
        raise MemkitError(f"actors and threads per actor must be positive (got {num_actors}, {threads_per_actor})")
    ray = import_ray()
    check_address(address)
    info = model_info(spec, online, allow_pickle)  # the actors get the settings resolved here
    stream = source.samples(info, k, m, mode)  # everything checked in the driver, before any actor starts
    out = check_output(out)
    run = RunParts(out, config, len(stream), batch_size, chunk_size, stream.ids_digest)
    with entry_lock(out):  # one driver per output: another waits, then reads it
        if run.finished():
            return pd.read_parquet(out) if return_frame else None
        started = _connect(ray, address)  # before any file: a cluster that is not there leaves nothing behind
        try:
            run.open()
            todo = [c for c in range(run.n_chunks) if not run.chunk_path(c).exists()]
            if todo:
                with warnings.catch_warnings():  # Ray Data's deprecation notes and "fewer chunks than actors"
                    warnings.filterwarnings("ignore", module=r"ray\..*")
                    _quiet_data(ray)
                    _run_pipeline(ray, run, todo, spec, stream, device, dtype, threads_per_actor, num_actors, fast,
                                  info, max_restarts, progress, stats["chunk_times"])
        except (MemkitError, OSError, KeyboardInterrupt):
            raise
        except Exception as exc:  # a Ray error wraps the worker's: report the innermost cause, in one line
            cause = _innermost(exc)
            raise MemkitError(f"the Ray run failed: {type(cause).__name__}: {_first_line(cause)}; finished chunks are "
                              f"kept in {run.parts}, rerun to resume") from exc
        finally:
            if started:
                ray.shutdown()
        missing = [c for c in range(run.n_chunks) if not run.chunk_path(c).exists()]
        if missing:
            raise MemkitError(f"the Ray run ended without chunks {missing[:5]}; rerun to finish them")
        result = run.merge()
        stats["end"] = time.perf_counter()
        if not return_frame:
            return None
        return result if result is not None else pd.read_parquet(out)


def _run_pipeline(ray, run: RunParts, todo: list[int], spec: str, stream, device: str, dtype: str, threads: int,
                  num_actors: int, fast: bool, info: ModelInfo, max_restarts: int, progress: bool,
                  chunk_times: list) -> None:
    import numpy as np
    import pyarrow as pa

    if device == "auto":
        device = "cuda" if ray.cluster_resources().get("GPU", 0) > 0 else "cpu"
    if device.startswith("cuda"):
        device = "cuda"  # Ray shows each actor only its own GPU, as cuda:0
    resources = {"num_gpus": 1} if device == "cuda" else {"num_cpus": threads}
    items = ray.data.from_items([{"chunk": c} for c in todo], override_num_blocks=len(todo))
    worker_stream = stream.with_tokenizer(None)
    with warnings.catch_warnings():  # Ray 2.60 deprecates actor options as keywords: still the way to set them
        warnings.simplefilter("ignore")
        rows = items.map_batches(
            ChunkExtractor, batch_size=1,
            fn_constructor_kwargs=dict(spec=spec, stream=worker_stream, chunk_size=run.chunk_size,
                                       batch_size=run.batch_size, device=device, dtype=dtype, threads=threads,
                                       fast=fast, online=info.online, allow_pickle=info.allow_pickle),
            compute=ray.data.ActorPoolStrategy(size=num_actors), max_restarts=max_restarts,
            max_task_retries=max_restarts, **resources)
    pending: dict[int, tuple[list, Any]] = {}  # chunk -> (tables, rows seen)
    with tqdm(total=run.n, initial=run.n - sum(run.chunk_len(c) for c in todo), desc=f"{spec} (ray)",
              unit="sample", disable=not progress) as bar:
        for block in rows.iter_batches(batch_size=None, batch_format="pyarrow"):
            chunks = block.column(_CHUNK).to_numpy()
            for c in np.unique(chunks).tolist():
                part = block.filter(pa.array(chunks == c))
                tables, seen = pending.setdefault(c, ([], np.zeros(run.chunk_len(c), dtype=bool)))
                tables.append(part)
                seen[part.column(_ROW).to_numpy()] = True
                if seen.all():
                    _write_chunk(run, c, tables)
                    chunk_times.append((c, run.chunk_len(c), time.perf_counter()))
                    del pending[c]
                    bar.update(run.chunk_len(c))


def _write_chunk(run: RunParts, c: int, tables: list) -> None:
    """One chunk's rows, each once and in input order, as `chunk-NNNNNN.parquet` (atomically)."""
    import numpy as np
    import pyarrow as pa

    from .extract import write_table

    table = pa.concat_tables(tables, promote_options="permissive")
    rows = table.column(_ROW).to_numpy()
    _, first = np.unique(rows, return_index=True)  # sorted by row; a retried chunk may have sent rows twice
    table = table.take(pa.array(first))
    frame = table.drop_columns([_CHUNK, _ROW]).to_pandas()
    write_table(frame, run.chunk_path(c), run.config)


def _innermost(exc: BaseException) -> BaseException:
    seen = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = getattr(exc, "cause", None) or exc.__cause__
        if not isinstance(inner, BaseException):
            break
        exc = inner
    return exc


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


@contextmanager
def stderr_to_log(out: str | Path):
    """Send what Ray's processes and C++ core print on file descriptor 2 to a log file.

    The command line promises one line on stderr for an error; a Ray session prints its own
    notes (worker deaths it recovered from, actor restarts) on fd 2. Python's `sys.stderr`
    (progress bars, memkit's messages) still reaches the terminal. The log is removed after
    a successful run and named in the error otherwise.
    """
    sys.stderr.flush()
    log = tempfile.NamedTemporaryFile(prefix=f"memkit-ray-{Path(out).name}-", suffix=".log", delete=False)
    saved = os.dup(2)
    python_stderr = sys.stderr
    try:
        native = python_stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):  # already captured elsewhere (pytest): leave it alone
        native = False
    os.dup2(log.fileno(), 2)
    if native:
        sys.stderr = open(os.dup(saved), "w", buffering=1, encoding=python_stderr.encoding, errors="backslashreplace")
    keep = False
    try:
        yield Path(log.name)
    except MemkitError as exc:
        keep = os.path.getsize(log.name) > 0
        if keep:
            raise MemkitError(f"{exc} (Ray's log: {log.name})") from None
        raise
    except BaseException:
        keep = os.path.getsize(log.name) > 0
        raise
    finally:
        if native:
            sys.stderr.close()
            sys.stderr = python_stderr
        os.dup2(saved, 2)
        os.close(saved)
        log.close()
        if not keep:
            os.unlink(log.name)
