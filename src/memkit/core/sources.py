"""Inputs of any size, read lazily: JSONL, pre-tokenized JSONL, parquet, token memmaps, HF datasets.

    source = open_source("pile_sample.bin", seq_len=2049, dtype="uint16")     # kind from the name
    stream = source.samples(lm, k=32, m=32)          # checked against the model, nothing held yet
    memkit.run_extraction(lm, stream, "out.parquet", config, return_frame=False)

Kinds (`open_source(path, kind=...)`, `memkit extract --input-format`):

- `jsonl`: one record per line, `{"id","text"}`, `{"id","prefix","suffix"}` or, already
  tokenized, `{"id","prefix_ids","suffix_ids"}` (`tokens-jsonl` insists on the last shape);
- `parquet`: columns `prefix_ids`, `suffix_ids` (lists of integers) or `text` (or `prefix`,
  `suffix`), optionally `id` (default: the row number); read with `ParquetFile` row groups;
- `memmap`: a flat `.bin` (raw tokens, `dtype` uint16 by default) or `.npy` file of
  fixed-length sequences, `seq_len` L tokens each (Pythia's tokenized Pile): sample i is
  sequence i, prefix its first k tokens, suffix the next m; `indices` (a text file with one
  sequence number per line, or a `.npy`) picks and orders the sequences; the id is the
  sequence number;
- `hf`: a Hugging Face `datasets` folder (`save_to_disk`, memory-mapped), an `.arrow` file
  (memory-mapped), or a `.parquet` file read by `datasets` in streaming mode; same columns as
  parquet. Never a hub download (datasets runs offline).

Token ids go into the prompt exactly as text samples do: raw mode puts the tokenizer's
leading special ids (e.g. <bos>) before the prefix ids, so a text and its token ids give
the same row. Any other field or column is metadata (`meta_<name>`).

A `Source` is scanned once (`scan`, before any model is loaded): every record is checked,
the ids are hashed one at a time, duplicate ids are found through 8-byte hashes (8 bytes per
sample), and the metadata column types are planned over the whole input, so all chunks of a
run agree (`plan_meta_columns` semantics: native when one scalar type, JSON text otherwise).
`samples(lm, k, m)` then checks what needs the model (token ids inside its vocabulary; texts
long enough, tokenized once more) and returns a `SampleStream` whose `chunk(c, size)` builds
the Samples of one chunk at a time. Errors name `file:line` (JSONL), `file: row i`
(parquet, datasets) or `file: sequence i` (memmaps) and the field.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from ..errors import MemkitError
from .extract import IdsDigest, MetaPlanner
from .samples import (ID_FIELDS, MODES, Sample, _check_record, iter_jsonl_from, leading_special_ids, make_sample,
                      record_meta, record_shape)

KINDS = ("auto", "jsonl", "tokens-jsonl", "parquet", "memmap", "hf")
TOKEN_DTYPES = ("uint16", "uint32", "int32", "int64")
_INDEX_EVERY = 1024  # JSONL: a (byte offset, line) checkpoint every this many records, for random access


@dataclass(frozen=True)
class Scan:
    """What one pass over a source found (all of it O(1) in the number of samples)."""

    n: int
    meta_plan: dict
    ids_digest: str
    max_id: int = -1             # largest token id in id records, and where it is
    max_where: str | None = None
    max_field: str | None = None
    max_record: str | None = None
    text_records: int = 0        # records whose length can only be checked with the tokenizer


class _ScanState:
    """Accumulates a Scan record by record."""

    def __init__(self) -> None:
        self.n, self.text_records = 0, 0
        self.meta, self.digest, self.hashes = MetaPlanner(), IdsDigest(), array("Q")
        self.max = (-1, None, None, None)

    def add(self, where: str, record: dict) -> None:
        self.n += 1
        sid = record["id"]
        self.digest.add(sid)
        self.hashes.append(_id_hash(sid))
        self.meta.add(record_meta(record))
        if record_shape(record) == "ids":
            for name in ID_FIELDS:
                if record[name] and max(record[name]) > self.max[0]:
                    self.max = (max(record[name]), where, name, sid)
        else:
            self.text_records += 1

    def result(self) -> Scan:
        return Scan(self.n, self.meta.plan(), self.digest.hexdigest(), *self.max, self.text_records)


def _id_hash(sid: str) -> int:
    return int.from_bytes(hashlib.blake2b(sid.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


def _repeated_hashes(hashes: array) -> set[int]:
    import numpy as np

    values = np.sort(np.frombuffer(hashes, dtype=np.uint64))
    return set(values[1:][values[1:] == values[:-1]].tolist())


class Source:
    """An input file (or folder) of extraction records; see the module docstring."""

    kind = "?"

    def __init__(self, path: Path):
        self.path = path
        self._scans: dict = {}

    # -- what subclasses provide ----------------------------------------------------------------
    def records(self, start: int, stop: int | None, k: int, m: int) -> Iterator[tuple[str, dict]]:
        """(where, record) for samples start..stop-1 (stop None: to the end), checked."""
        raise NotImplementedError

    def _scan(self, k: int, m: int) -> Scan:
        state = _ScanState()
        for where, record in self.records(0, None, k, m):
            _check_record(record, where, m)
            state.add(where, record)
        if state.n == 0:
            raise MemkitError(f"{self.path}: no records")
        repeated = _repeated_hashes(state.hashes)
        if repeated:
            self._raise_duplicate(repeated, k, m)
        return state.result()

    def _raise_duplicate(self, repeated: set[int], k: int, m: int) -> None:
        seen = set()
        for where, record in self.records(0, None, k, m):
            if _id_hash(record["id"]) in repeated:
                if record["id"] in seen:
                    raise MemkitError(f"{where}: duplicate id {record['id']!r}")
                seen.add(record["id"])

    def describe(self) -> dict:
        """Settings that, with `sha256()`, identify the input (part of a run's key)."""
        return {"input_format": self.kind}

    def sha256(self) -> str:
        from .models import file_sha256

        if self.path.is_dir():
            digest = hashlib.sha256()
            for file in sorted(p for p in self.path.rglob("*") if p.is_file()):
                digest.update(f"{file.relative_to(self.path)}\0{file_sha256(file)}\n".encode())
            return digest.hexdigest()
        return file_sha256(self.path)

    # -- shared ---------------------------------------------------------------------------------
    def scan(self, k: int, m: int) -> Scan:
        """Check every record (structure, ids, suffix lengths of token records); cached per (k, m)."""
        if k <= 0 or m <= 0:
            raise MemkitError(f"prefix and suffix lengths must be positive (got k={k}, m={m})")
        if (k, m) not in self._scans:
            self._scans[(k, m)] = self._scan(k, m)
        return self._scans[(k, m)]

    def samples(self, lm_or_tokenizer, k: int = 32, m: int = 64, mode: str = "raw", check: bool = True) -> SampleStream:
        """The samples of this source for one tokenizer and (k, m, mode), built chunk by chunk.

        `check`: fail now on what needs the tokenizer (token ids outside the vocabulary, texts
        shorter than k+m), naming the record, rather than halfway through a run.
        """
        if mode not in MODES:
            raise MemkitError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        tokenizer = getattr(lm_or_tokenizer, "tokenizer", lm_or_tokenizer)
        if mode == "chat" and getattr(tokenizer, "chat_template", None) is None:
            raise MemkitError("mode 'chat' needs a model with a chat template; this is a base model (use --mode raw)")
        stream = SampleStream(self, self.scan(k, m), tokenizer, k, m, mode)
        if check:
            stream.check(vocab_limit(lm_or_tokenizer))
        return stream

    def __getstate__(self):  # shipped to Ray workers: no open readers or cached tables
        state = dict(self.__dict__)
        for name in [key for key in state if key.startswith("_cache")]:
            state[name] = None
        return state


def vocab_limit(lm_or_tokenizer) -> int:
    """Token ids must lie below this: the tokenizer's size, and the model's embedding rows if known."""
    tokenizer = getattr(lm_or_tokenizer, "tokenizer", lm_or_tokenizer)
    limit = len(tokenizer)
    model = getattr(lm_or_tokenizer, "model", None)
    rows = model.get_input_embeddings().num_embeddings if model is not None else \
        getattr(lm_or_tokenizer, "embedding_rows", None)  # a distributed.ModelInfo: no weights loaded
    return min(limit, int(rows)) if rows else limit


class SampleStream:
    """The Samples of a source for one tokenizer and (k, m, mode); see `Source.samples`.

    What `run_extraction` consumes: `len()`, `meta_plan`, `ids_digest` and `chunk(c, size)`.
    """

    def __init__(self, source: Source, scan: Scan, tokenizer, k: int, m: int, mode: str):
        self.source, self.scan, self.tokenizer, self.k, self.m, self.mode = source, scan, tokenizer, k, m, mode
        self._leading = leading_special_ids(tokenizer) if mode == "raw" and tokenizer is not None else None

    def __len__(self) -> int:
        return self.scan.n

    @property
    def meta_plan(self) -> dict:
        return self.scan.meta_plan

    @property
    def ids_digest(self) -> str:
        return self.scan.ids_digest

    def with_tokenizer(self, tokenizer) -> SampleStream:
        """The same stream for another copy of the tokenizer (a Ray worker's own)."""
        return SampleStream(self.source, self.scan, tokenizer, self.k, self.m, self.mode)

    def __getstate__(self):
        return {**self.__dict__, "tokenizer": None, "_leading": None}

    def chunk(self, c: int, size: int) -> list[Sample]:
        """Samples c*size .. (c+1)*size-1 (fewer at the end)."""
        return [self._sample(where, record)
                for where, record in self.source.records(c * size, (c + 1) * size, self.k, self.m)]

    def __iter__(self) -> Iterator[Sample]:
        for where, record in self.source.records(0, None, self.k, self.m):
            yield self._sample(where, record)

    def _sample(self, where: str, record: dict) -> Sample:
        try:
            return make_sample(self.tokenizer, record, self.k, self.m, self.mode, self._leading)
        except MemkitError as exc:
            raise MemkitError(f"{where}: {exc}") from None

    def check(self, limit: int) -> None:
        scan = self.scan
        if scan.max_id >= limit:
            raise MemkitError(f"{scan.max_where}: record {scan.max_record!r} field {scan.max_field!r} holds token id "
                              f"{scan.max_id}, outside the model's vocabulary (ids 0..{limit - 1})")
        if scan.text_records:
            for _ in self:  # tokenizes every text once, to name a too-short one before any work
                pass


# -- JSONL ----------------------------------------------------------------------------------------
class JsonlSource(Source):
    """One record per line (text or token ids); random access through a checkpoint every 1024 records."""

    kind = "jsonl"

    def __init__(self, path: Path, tokens_only: bool = False):
        super().__init__(path)
        self.tokens_only = tokens_only
        if tokens_only:
            self.kind = "tokens-jsonl"
        self._checkpoints: list[tuple[int, int]] | None = None  # record j*1024 starts at (byte, line)

    def describe(self) -> dict:
        return {}  # a JSONL run's key is what it always was: the file's sha256

    def records(self, start, stop, k, m):
        offset, lineno, skip = 0, 1, start
        if start and self._checkpoints:
            j = min(start // _INDEX_EVERY, len(self._checkpoints) - 1)
            (offset, lineno), skip = self._checkpoints[j], start - j * _INDEX_EVERY
        lines = iter_jsonl_from(self.path, offset, lineno)
        for _, where, record in itertools.islice(lines, skip, None if stop is None else skip + stop - start):
            if self.tokens_only and record_shape(record) != "ids":
                raise MemkitError(f"{where}: record {record['id']!r} needs 'prefix_ids' and 'suffix_ids' "
                                  f"(--input-format tokens-jsonl)")
            yield where, record

    def _scan(self, k, m):
        checkpoints = []
        state = _ScanState()
        for offset, where, record in iter_jsonl_from(self.path):
            if state.n % _INDEX_EVERY == 0:
                checkpoints.append((offset, int(where.rsplit(":", 1)[1])))
            if self.tokens_only and record_shape(record) != "ids":
                raise MemkitError(f"{where}: record {record['id']!r} needs 'prefix_ids' and 'suffix_ids' "
                                  f"(--input-format tokens-jsonl)")
            _check_record(record, where, m)
            state.add(where, record)
        if state.n == 0:
            raise MemkitError(f"{self.path}: no records")
        self._checkpoints = checkpoints
        repeated = _repeated_hashes(state.hashes)
        if repeated:
            self._raise_duplicate(repeated, k, m)
        return state.result()


# -- tables: parquet (pyarrow) and Hugging Face datasets -------------------------------------------
_TABLE_SHAPES = (("prefix_ids", "suffix_ids"), ("text",), ("prefix", "suffix"))


def _check_columns(path: Path, names: Sequence[str]) -> None:
    if not any(all(c in names for c in shape) for shape in _TABLE_SHAPES):
        raise MemkitError(f"{path}: needs columns 'prefix_ids' and 'suffix_ids' (token ids), or 'text', or 'prefix' "
                          f"and 'suffix'; it has {', '.join(map(repr, names)) or 'none'}")


def _table_records(path: Path, rows: list[dict], first: int) -> Iterator[tuple[str, dict]]:
    for i, row in enumerate(rows, start=first):
        where = f"{path}: row {i}"
        if "id" not in row:
            row = {"id": str(i), **row}
        _check_record(row, where)
        row["id"] = str(row["id"])
        yield where, row


class ParquetSource(Source):
    """A parquet file read row group by row group (the last one cached for sequential reads)."""

    kind = "parquet"

    def __init__(self, path: Path):
        super().__init__(path)
        import pyarrow.parquet as pq

        try:
            meta = pq.ParquetFile(path).metadata
        except (OSError, ValueError) as exc:
            raise MemkitError(f"{path}: not a readable parquet file ({str(exc).splitlines()[0]})") from None
        self.names = meta.schema.to_arrow_schema().names
        _check_columns(path, self.names)
        self.group_starts = list(itertools.accumulate((meta.row_group(g).num_rows for g in range(meta.num_row_groups)),
                                                      initial=0))
        self._cache_group = None

    def _group(self, g: int):
        if self._cache_group is None or self._cache_group[0] != g:
            import pyarrow.parquet as pq

            self._cache_group = (g, pq.ParquetFile(self.path).read_row_group(g))
        return self._cache_group[1]

    def records(self, start, stop, k, m):
        total = self.group_starts[-1]
        stop = total if stop is None else min(stop, total)
        g = 0
        while start < stop:
            while self.group_starts[g + 1] <= start:
                g += 1
            first = self.group_starts[g]
            end = min(stop, self.group_starts[g + 1])
            rows = self._group(g).slice(start - first, end - start).to_pylist()
            yield from _table_records(self.path, rows, start)
            start = end


def _datasets():
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # local files only: never a hub download
    try:
        import datasets
    except ImportError:
        raise MemkitError("reading Hugging Face datasets needs the `datasets` package "
                          "(pip install 'datasets==5.2.0', or `make setup`)") from None
    datasets.config.HF_DATASETS_OFFLINE = True
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    return datasets


class HFSource(Source):
    """A `datasets` folder or `.arrow` file (memory-mapped), or a `.parquet` file streamed by `datasets`."""

    kind = "hf"

    def __init__(self, path: Path):
        super().__init__(path)
        self.streaming = path.is_file() and path.suffix == ".parquet"
        self._cache_iter = None
        self._cache_ds = None
        names = self._dataset().column_names
        _check_columns(path, list(names or []))

    def _dataset(self):
        if self._cache_ds is None:
            datasets = _datasets()
            path = str(self.path)
            try:
                if self.path.is_dir():
                    ds = datasets.load_from_disk(path)
                elif self.streaming:
                    ds = datasets.load_dataset("parquet", data_files=path, split="train", streaming=True)
                else:
                    ds = datasets.Dataset.from_file(path)
            except MemkitError:
                raise
            except Exception as exc:  # not a dataset folder, damaged arrow file: one line
                raise MemkitError(f"{path}: cannot open as a Hugging Face dataset "
                                  f"({(str(exc) or type(exc).__name__).splitlines()[0]})") from None
            if isinstance(ds, datasets.DatasetDict):
                raise MemkitError(f"{path}: holds several splits ({', '.join(ds)}); give one split's folder, "
                                  f"e.g. {self.path / next(iter(ds))}")
            self._cache_ds = ds
        return self._cache_ds

    def records(self, start, stop, k, m):
        ds = self._dataset()
        if not self.streaming:
            stop = len(ds) if stop is None else min(stop, len(ds))
            for first in range(start, stop, 1024):
                rows = ds.with_format("arrow")[first:min(stop, first + 1024)].to_pylist()
                yield from _table_records(self.path, rows, first)
            return
        # sequential chunks continue the same iterator; any other start skips from the beginning
        resume = self._cache_iter is not None and self._cache_iter[0] == start
        rows = self._cache_iter[1] if resume else iter(ds.skip(start) if start else ds)
        for i in range(start, stop if stop is not None else 1 << 62):
            row = next(rows, None)
            self._cache_iter = None if row is None else (i + 1, rows)
            if row is None:
                return
            yield from _table_records(self.path, [row], i)


# -- token memmaps (Pythia's Pile) -------------------------------------------------------------------
class MemmapSource(Source):
    """Fixed-length token sequences in a flat .bin / .npy file; see the module docstring.

    Every chunk maps the file afresh and drops the mapping after copying its windows, so the
    pages it touched leave the process's resident memory with it.
    """

    kind = "memmap"

    def __init__(self, path: Path, seq_len: int | None = None, indices: Path | None = None, dtype: str | None = None):
        super().__init__(path)
        import numpy as np

        self.indices_path = indices
        if _head(path).startswith(b"\x93NUMPY"):
            try:
                array_ = np.load(path, mmap_mode="r")
            except (OSError, ValueError) as exc:
                raise MemkitError(f"{path}: not a readable .npy file ({str(exc).splitlines()[0]})") from None
            if dtype is not None and np.dtype(dtype) != array_.dtype:
                raise MemkitError(f"{path}: holds {array_.dtype} tokens, not {dtype} (--dtype-tokens is for raw .bin files)")
            self.dtype, self.offset = array_.dtype, array_.offset if hasattr(array_, "offset") else 0
            if array_.ndim == 2:
                if seq_len is not None and seq_len != array_.shape[1]:
                    raise MemkitError(f"{path}: sequences have {array_.shape[1]} tokens, not --seq-len {seq_len}")
                seq_len = array_.shape[1]
            elif array_.ndim != 1:
                raise MemkitError(f"{path}: expected a 1-D token array or a 2-D (sequences x seq_len) array, "
                                  f"got shape {array_.shape}")
            total = array_.size
            del array_
        else:
            self.dtype, self.offset = np.dtype(dtype or "uint16"), 0
            size = path.stat().st_size
            if size % self.dtype.itemsize:
                raise MemkitError(f"{path}: {size} bytes is not a whole number of {self.dtype} tokens")
            total = size // self.dtype.itemsize
        if self.dtype.kind not in "iu":
            raise MemkitError(f"{path}: token arrays must hold integers, not {self.dtype}")
        if seq_len is None:
            raise MemkitError(f"{path}: give the sequence length of the token file (--seq-len, e.g. 2049 for Pythia)")
        if total % seq_len:
            raise MemkitError(f"{path}: {total} tokens is not a whole number of sequences of {seq_len} tokens")
        self.seq_len, self.n_seq = seq_len, total // seq_len
        self.indices = _read_indices(indices, self.n_seq) if indices is not None else None
        self.n = self.n_seq if self.indices is None else len(self.indices)

    def describe(self) -> dict:
        extra = {"indices_sha256": self._indices_sha()} if self.indices_path is not None else {}
        return {"input_format": self.kind, "seq_len": self.seq_len, "dtype_tokens": str(self.dtype), **extra}

    def _indices_sha(self) -> str:
        from .models import file_sha256

        return file_sha256(self.indices_path)

    def _tokens(self):
        import numpy as np

        return np.memmap(self.path, dtype=self.dtype, mode="r", offset=self.offset,
                         shape=(self.n_seq, self.seq_len))

    def windows(self, start: int, stop: int, width: int):
        """(sequence numbers, tokens[count, width]) of samples start..stop-1, copied out of the file."""
        import numpy as np

        seqs = np.arange(start, stop) if self.indices is None else self.indices[start:stop]
        tokens = self._tokens()  # unmapped when this reference goes: only copies leave
        block = np.array(tokens[start:stop, :width] if self.indices is None else tokens[seqs, :width])
        del tokens
        return seqs, block

    def records(self, start, stop, k, m):
        stop = self.n if stop is None else min(stop, self.n)
        for first in range(start, stop, 4096):
            seqs, block = self.windows(first, min(stop, first + 4096), k + m)
            for seq, row in zip(seqs.tolist(), block.tolist()):
                yield f"{self.path}: sequence {seq}", {"id": str(seq), "prefix_ids": row[:k], "suffix_ids": row[k:]}

    def _scan(self, k, m):
        import numpy as np

        if k + m > self.seq_len:
            raise MemkitError(f"{self.path}: sequences have {self.seq_len} tokens, fewer than k+m = {k}+{m}")
        if self.n == 0:
            raise MemkitError(f"{self.path}: no records")
        digest, best = IdsDigest(), (-1, None, None, None)
        for first in range(0, self.n, 65536):
            seqs, block = self.windows(first, min(self.n, first + 65536), k + m)
            for seq in seqs.tolist():
                digest.add(str(seq))
            if block.dtype.kind == "i" and block.size and int(block.min()) < 0:
                row, col = np.unravel_index(int(block.argmin()), block.shape)
                raise MemkitError(f"{self.path}: sequence {int(seqs[row])}: token {col} is negative "
                                  f"({int(block[row, col])})")
            if block.size and int(block.max()) > best[0]:
                row, col = np.unravel_index(int(block.argmax()), block.shape)
                best = (int(block[row, col]), f"{self.path}: sequence {int(seqs[row])}",
                        "prefix_ids" if col < k else "suffix_ids", str(int(seqs[row])))
        return Scan(self.n, {}, digest.hexdigest(), *best, 0)


def _read_indices(path: Path, n_seq: int):
    """Sequence numbers, one per line (blank lines and `#` comments skipped) or a .npy of integers."""
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise MemkitError(f"indices file not found: {path}")
    lines = None
    if path.suffix == ".npy":
        try:
            indices = np.load(path).astype(np.int64, casting="same_kind").ravel()
        except (OSError, ValueError, TypeError) as exc:
            raise MemkitError(f"{path}: not a .npy file of integers ({str(exc).splitlines()[0]})") from None
    else:
        values, lines = array("q"), array("q")
        with open(path, "rb") as fh:
            for lineno, raw in enumerate(fh, start=1):
                text = raw.split(b"#", 1)[0].strip()
                if not text:
                    continue
                try:
                    values.append(int(text))
                except (ValueError, OverflowError):
                    shown = text[:40].decode("utf-8", "replace")
                    raise MemkitError(f"{path}:{lineno}: expected a sequence number, got {shown!r}") from None
                lines.append(lineno)
        indices = np.frombuffer(values, dtype=np.int64) if values else np.zeros(0, dtype=np.int64)

    def place(i: int) -> str:
        return f"{path}:{lines[i]}" if lines is not None else f"{path}: entry {i}"

    if len(indices) == 0:
        raise MemkitError(f"{path}: no sequence numbers")
    bad = np.flatnonzero((indices < 0) | (indices >= n_seq))
    if len(bad):
        raise MemkitError(f"{place(int(bad[0]))}: sequence {int(indices[bad[0]])} is outside the token file "
                          f"(0..{n_seq - 1})")
    order = np.argsort(indices, kind="stable")
    repeats = np.flatnonzero(indices[order][1:] == indices[order][:-1])
    if len(repeats):
        second = int(min(order[r + 1] for r in repeats.tolist()))
        raise MemkitError(f"{place(second)}: duplicate id {str(int(indices[second]))!r} (sequence listed twice)")
    return indices


# -- choosing a reader ----------------------------------------------------------------------------
def open_source(path: str | Path, *, kind: str = "auto", seq_len: int | None = None, indices: str | Path | None = None,
                dtype: str | None = None) -> Source:
    """A Source for `path`: `kind` or, with "auto", the kind its name or first bytes say.

    .jsonl/.json/.ndjson (and unknown names whose first bytes are not parquet or npy) ->
    jsonl; .parquet -> parquet; .npy/.bin -> memmap; a folder or .arrow -> hf.
    `seq_len`, `indices`, `dtype` belong to memmaps only.
    """
    path = Path(path)
    if kind not in KINDS:
        raise MemkitError(f"unknown input format {kind!r}; choose one of {', '.join(KINDS)}")
    if not path.exists():
        raise MemkitError(f"input file not found: {path}")
    if kind == "auto":
        kind = _guess_kind(path)
    if kind != "memmap" and (seq_len is not None or indices is not None or dtype is not None):
        raise MemkitError(f"--seq-len, --indices and --dtype-tokens are for token memmaps; {path} is read as {kind}")
    if path.is_dir() and kind != "hf":
        raise MemkitError(f"input {path} is a folder; only Hugging Face dataset folders are read (--input-format hf)")
    if kind in ("jsonl", "tokens-jsonl"):
        return JsonlSource(path, tokens_only=kind == "tokens-jsonl")
    if kind == "parquet":
        return ParquetSource(path)
    if kind == "memmap":
        if dtype is not None and dtype not in TOKEN_DTYPES:
            raise MemkitError(f"unknown token dtype {dtype!r}; choose one of {', '.join(TOKEN_DTYPES)}")
        return MemmapSource(path, seq_len, Path(indices) if indices is not None else None, dtype)
    return HFSource(path)


def _guess_kind(path: Path) -> str:
    if path.is_dir() or path.suffix == ".arrow":
        return "hf"
    by_suffix = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet",
                 ".npy": "memmap", ".bin": "memmap"}
    if path.suffix in by_suffix:
        return by_suffix[path.suffix]
    head = _head(path)
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"\x93NUMPY"):
        return "memmap"
    return "jsonl"


def _head(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(8)
