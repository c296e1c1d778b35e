"""The memorization census: screen thousands of windows of widely copied texts, confirm, count.

    lm = memkit.load_model("gemma-3-270m")
    windows = census_windows(lm, ["kjv-famous", "licenses"], k=32, m=32, max_windows_per_source=500)
    census = run_census(lm, windows, "build/census/gemma")   # screen.parquet, confirmed.parquet, rates.csv
    records = memorized_records("build/census/gemma")          # [{"id", "text", "source", "category", ...}]
    controls = matched_controls("build/census/gemma")          # non-memorized windows, equally confident

Sources (`SOURCES`; each a function yielding `Document`s with a stable id and provenance):

- `kjv-famous`, `kjv`: the King James Bible from Debian's `bible-kjv` (`make setup` installs it),
  one document per chapter, verses joined by single spaces (no verse numbers), as
  data/attractors.jsonl writes its KJV texts. `kjv-famous` holds the most quoted books
  (Genesis, Psalms, Matthew, John) and `kjv` the other 62, so the two are disjoint strata.
- `licenses`: the licence texts of `/usr/share/common-licenses/` (a fixed list, symlinks
  skipped), byte for byte: original line breaks and indentation.
- `stdlib`: a fixed list of CPython standard-library files of the running interpreter, byte
  for byte; the provenance names the Python version and every file has its SHA-256.
- `attractors`: the records of data/attractors.jsonl except the controls and the computed
  sequences (counting, digits of pi, ...): the census is about natural text and code.

Windows: each document is tokenized once (tokenizer of the model under test) and cut into
consecutive non-overlapping windows of k + m tokens; a window is the exact character span of
its tokens (whitespace before its first token included), and its Sample is built from that
text by `make_samples`, so a window's record reproduces its tokens exactly. Per source at most
`max_windows_per_source` windows: every document's opening window first (openings are the most
copied part; a seeded sample of them if there are more documents than the cap), then a seeded
sample of the other windows. Selection depends only on the seed and the window ids.

Screen (cheap): one teacher-forced forward pass over prompt + true suffix per batch (right
padded, logits only at the m suffix positions). Greedy decoding equals the true text up to its
first mismatch, so the leading run of positions whose argmax is the true token IS the greedy
`prefix_match_len`, and `exact_match` follows (up to near-ties: `tf_min_top2_gap` is the
smallest top-1/top-2 logit gap on the positions that decide it). Candidates: prefix_match_len
>= L or teacher-forced accuracy >= a.

Confirm: full greedy decoding (`run_extraction`, drafted engine) of the candidates and of a
seeded random sample of the non-candidates (the recall sample), plus one teacher-forced pass
over each greedy continuation for its confidence (mean top-1 probability of the model's own
tokens). Memorized = `near_verbatim` (token Levenshtein similarity >= 0.75), the headline
rule, which includes every exact match; `exact_match` is reported next to it.

Everything is resumable (sharded parquet under `<out>/cache/`, atomic writes) and
deterministic: the same run twice gives byte-identical parquet files.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import math
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Callable, Iterable, Iterator, Mapping, Sequence

import pandas as pd
from tqdm import tqdm

from .core.extract import (code_version, pad_token_id, plan_batches, read_run_config, run_config_hash,
                           run_extraction, samples_fingerprint, write_table)
from .core.kjv import BIBLE_COMMAND, bible_dump, chapter_verses
from .core.stats import nearest_matches
from .core.models import LoadedModel
from .core.samples import MODES, Sample, leading_special_ids, make_sample
from .errors import MemkitError
from .paths import DATA_DIR, atomic_path, code_fingerprint, entry_lock

RULES = ("near_verbatim", "exact")
CATEGORIES = ("natural", "code", "license", "placeholder")
DEFAULT_SCREEN_PREFIX = 16
DEFAULT_SCREEN_ACCURACY = 0.7
DEFAULT_RECALL_FRACTION = 0.05
DEFAULT_RECALL_MIN = 200
OUTPUTS = ("screen.parquet", "confirmed.parquet", "rates.csv", "recall.csv", "census.json")


# -- documents --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Document:
    """One text of a source: `doc` is its stable id within the source, `provenance` where its bytes came from."""

    source: str
    doc: str
    category: str
    text: str
    provenance: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


FAMOUS_BOOKS = ("Genesis", "Psalms", "Matthew", "John")


def _dpkg_version(package: str) -> str:
    """The installed Debian version of `package` ('unknown' off Debian): part of the provenance."""
    try:
        done = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True,
                              text=True, check=False)
    except OSError:
        return "unknown"
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else "unknown"


def parse_bible(raw: str) -> list[tuple[str, str]]:
    """(chapter title, text) in canonical order: the verses of a chapter joined by single spaces."""
    return [(title, " ".join(verses)) for title, verses in chapter_verses(raw) if verses]


def kjv_chapters() -> tuple[tuple[str, str], ...]:
    """The 1,189 chapters of the KJV as (title, text), read once per process."""
    return tuple(parse_bible(bible_dump()))


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def kjv_documents(famous: bool) -> Iterator[Document]:
    """KJV chapters of the most quoted books (`famous=True`) or of all the others."""
    provenance = f"Debian bible-kjv-text {_dpkg_version('bible-kjv-text')} via `{' '.join(BIBLE_COMMAND)}`"
    source = "kjv-famous" if famous else "kjv"
    for title, text in kjv_chapters():
        if (title.rsplit(" ", 1)[0] in FAMOUS_BOOKS) == famous:
            yield Document(source, _slug(title), "natural", text, provenance)


LICENSE_DIR = Path("/usr/share/common-licenses")
LICENSE_FILES = ("Apache-2.0", "Artistic", "BSD", "CC0-1.0", "GFDL-1.2", "GFDL-1.3", "GPL-1", "GPL-2", "GPL-3",
                 "LGPL-2", "LGPL-2.1", "LGPL-3", "MPL-1.1", "MPL-2.0")


def _file_text(path: Path) -> str:
    """A file's exact text (UTF-8; newlines and indentation untouched)."""
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MemkitError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None


def _files(source: str, category: str, folder: Path, names: Sequence[str], provenance: str) -> Iterator[Document]:
    """The listed files of `folder` that exist (symlinks skipped: they repeat another file) as documents."""
    present = [name for name in names if (folder / name).is_file() and not (folder / name).is_symlink()]
    if not present:
        raise MemkitError(f"source {source}: none of its files is in {folder}")
    for name in present:
        yield Document(source, name, category, _file_text(folder / name), f"{provenance} {name}")


def license_documents(folder: Path = LICENSE_DIR) -> Iterator[Document]:
    """The licence texts shipped by Debian's base-files, exactly as shipped."""
    yield from _files("licenses", "license", folder, LICENSE_FILES,
                      f"Debian base-files {_dpkg_version('base-files')} {folder}/")


STDLIB_FILES = ("this.py", "antigravity.py", "__future__.py", "keyword.py", "abc.py", "bisect.py", "heapq.py",
                "copy.py", "string.py", "glob.py", "fnmatch.py", "textwrap.py", "queue.py", "base64.py", "csv.py",
                "contextlib.py", "functools.py", "random.py", "shutil.py", "tempfile.py", "enum.py", "dataclasses.py",
                "os.py", "json/__init__.py", "json/encoder.py", "json/decoder.py", "collections/__init__.py",
                "logging/__init__.py", "unittest/__init__.py", "argparse.py", "subprocess.py", "pathlib.py",
                "threading.py", "typing.py", "datetime.py")


def stdlib_documents(folder: Path | None = None) -> Iterator[Document]:
    """A fixed list of standard-library files of the running interpreter, exactly as shipped."""
    folder = Path(sysconfig.get_paths()["stdlib"]) if folder is None else folder
    yield from _files("stdlib", "code", folder, STDLIB_FILES,
                      f"CPython {platform.python_version()} ({platform.python_implementation()}) stdlib")


#: data/attractors.jsonl category -> census category; the others (sequence, control) are left out.
ATTRACTOR_CATEGORIES = {"literature": "natural", "literature_copyrighted": "natural", "legal_historical": "natural",
                        "religious": "natural", "poetry": "natural", "code": "code", "license": "license",
                        "placeholder": "placeholder"}


def attractor_documents(path: Path = DATA_DIR / "attractors.jsonl") -> Iterator[Document]:
    """Famous texts and code of data/attractors.jsonl (no controls, no computed sequences)."""
    for line in _file_text(path).splitlines():
        record = json.loads(line) if line.strip() else None
        if record is not None and record["category"] in ATTRACTOR_CATEGORIES:
            yield Document("attractors", record["id"], ATTRACTOR_CATEGORIES[record["category"]], record["text"],
                           f"data/attractors.jsonl: {record['source']}")


#: Source name -> function yielding its documents, in a fixed order.
SOURCES: dict[str, Callable[[], Iterator[Document]]] = {
    "kjv-famous": functools.partial(kjv_documents, famous=True),
    "kjv": functools.partial(kjv_documents, famous=False),
    "licenses": license_documents,
    "stdlib": stdlib_documents,
    "attractors": attractor_documents,
}


def check_sources(names: Sequence[str]) -> list[str]:
    """The source names, checked (unknown or repeated names are errors)."""
    unknown = [name for name in names if name not in SOURCES]
    if unknown:
        raise MemkitError(f"unknown census source {unknown[0]!r}; choose from {', '.join(SOURCES)}")
    if len(set(names)) != len(names) or not names:
        raise MemkitError(f"give each census source once (got {', '.join(names) or 'none'})")
    return list(names)


# -- windows ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Span:
    """One k+m token window of a document: its token start and character span (+ a few later token ends)."""

    doc: Document
    doc_index: int
    token_start: int
    char_start: int
    char_ends: tuple[int, ...]  # end of its last token, then of the next few (if it re-tokenizes short)

    @property
    def id(self) -> str:
        return f"{self.doc.source}/{self.doc.doc}@{self.token_start}"


_SPARE_TOKENS = 8


def document_spans(tokenizer, doc: Document, doc_index: int, size: int) -> list[Span]:
    """The consecutive non-overlapping `size`-token windows of a document (the short tail is dropped)."""
    offsets = tokenizer(doc.text, add_special_tokens=False, return_offsets_mapping=True,
                        verbose=False)["offset_mapping"]
    spans = []
    for start in range(0, len(offsets) - size + 1, size):
        last = start + size - 1
        ends = tuple(offsets[i][1] for i in range(last, min(last + _SPARE_TOKENS, len(offsets))))
        spans.append(Span(doc, doc_index, start, 0 if start == 0 else offsets[start - 1][1], ends))
    return spans


def _hash_key(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()


def seeded_sample(keys: Sequence[str], n: int, seed: int) -> list[str]:
    """`n` of the keys, chosen by a seeded hash: deterministic and independent of the input order."""
    return sorted(keys, key=lambda key: _hash_key(seed, key))[: max(n, 0)]


def select_spans(spans: Sequence[Span], cap: int, seed: int) -> list[Span]:
    """Openings first, then a seeded sample of the other windows, `cap` in all, in document order."""
    by_id = {span.id: span for span in spans}
    openings = [span.id for span in spans if span.token_start == 0]
    chosen = seeded_sample(openings, cap, seed)
    chosen += seeded_sample([span.id for span in spans if span.token_start > 0], cap - len(chosen), seed)
    return sorted((by_id[i] for i in chosen), key=lambda span: (span.doc_index, span.token_start))


def span_sample(tokenizer, span: Span, k: int, m: int, mode: str, leading: Sequence[int] | None) -> Sample | None:
    """The Sample of one window, built from its text by `make_sample` (None if no span re-tokenizes to k+m)."""
    doc = span.doc
    for end in span.char_ends:
        text = doc.text[span.char_start:end]
        record = {"id": span.id, "text": text, "source": doc.source, "category": doc.category, "doc": doc.doc,
                  "position": "opening" if span.token_start == 0 else "interior", "token_start": span.token_start,
                  "window_text": text, "doc_sha256": doc.sha256, "provenance": doc.provenance}
        try:
            return make_sample(tokenizer, record, k, m, mode, leading)
        except MemkitError:  # fewer than k+m tokens once cut out: take one more token of the document
            continue
    return None


def _cap_for(caps: int | Mapping[str, int] | None, source: str) -> int:
    cap = caps.get(source) if isinstance(caps, Mapping) else caps
    return sys.maxsize if cap is None else int(cap)


def census_windows(lm_or_tokenizer, sources: Sequence[str] = tuple(SOURCES), *, k: int = 32, m: int = 32,
                   max_windows_per_source: int | Mapping[str, int] | None = 500, seed: int = 0,
                   mode: str = "raw") -> list[Sample]:
    """The census windows of the given sources as Samples (see the module docstring).

    Each Sample's metadata names its source, category, document, position (opening or
    interior), token start, exact window text, document SHA-256 and provenance.
    """
    if k <= 0 or m <= 0:
        raise MemkitError(f"prefix and suffix lengths must be positive (got k={k}, m={m})")
    if mode not in MODES:
        raise MemkitError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    sources = check_sources(list(sources))
    tokenizer = getattr(lm_or_tokenizer, "tokenizer", lm_or_tokenizer)
    if not getattr(tokenizer, "is_fast", False):
        raise MemkitError("the census needs a fast tokenizer (character offsets of tokens)")
    samples = []
    for source in sources:
        samples += document_windows(tokenizer, SOURCES[source](), k=k, m=m,
                                    cap=_cap_for(max_windows_per_source, source), seed=seed, mode=mode)
    if not samples:
        raise MemkitError(f"no window of k+m = {k + m} tokens in the sources {', '.join(sources)}")
    return samples


def document_windows(tokenizer, documents: Iterable[Document], *, k: int, m: int, cap: int = sys.maxsize,
                     seed: int = 0, mode: str = "raw") -> list[Sample]:
    """The selected windows of one source's documents as Samples, in document order."""
    leading = leading_special_ids(tokenizer) if mode == "raw" else None
    spans = [span for i, doc in enumerate(documents) for span in document_spans(tokenizer, doc, i, k + m)]
    chosen = (span_sample(tokenizer, span, k, m, mode, leading) for span in select_spans(spans, cap, seed))
    return [sample for sample in chosen if sample is not None]


def windows_from_census(lm_or_tokenizer, census: str | Path | pd.DataFrame, *, k: int = 32, m: int = 32,
                        mode: str = "raw") -> list[Sample]:
    """The windows of an earlier census (the same texts), tokenized for another model.

    A window whose text gives fewer than k+m tokens with this tokenizer is left out.
    """
    screen = census if isinstance(census, pd.DataFrame) else read_census(census, "screen.parquet")
    tokenizer = getattr(lm_or_tokenizer, "tokenizer", lm_or_tokenizer)
    leading = leading_special_ids(tokenizer) if mode == "raw" else None
    samples = []
    for row in screen.to_dict("records"):
        record = {"id": row["id"], "text": row["window_text"], **{key: row[key] for key in WINDOW_FIELDS}}
        try:
            samples.append(make_sample(tokenizer, record, k, m, mode, leading))
        except MemkitError:
            continue
    if not samples:
        raise MemkitError(f"no window of the census gives k+m = {k + m} tokens with this tokenizer")
    return samples


WINDOW_FIELDS = ("source", "category", "doc", "position", "token_start", "window_text", "doc_sha256", "provenance")


# -- the screen -------------------------------------------------------------------------------------
def _last_logits(model, ids, mask, keep: int):
    """fp32 logits of the last `keep` positions (only those are projected when the model allows it)."""
    kwargs = {"logits_to_keep": keep} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}
    device = next(model.parameters()).device
    logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False, **kwargs).logits
    return logits[:, -keep:].float()


def position_stats(logits, truth: Sequence[int]) -> dict:
    """Screen columns of one window from its m suffix-position logits (m, vocab) and the true tokens."""
    import torch

    m = len(truth)
    target = torch.tensor(list(truth), device=logits.device)
    top2 = logits.topk(2, dim=-1)
    lse = torch.logsumexp(logits, dim=-1)
    correct = (top2.indices[:, 0] == target).tolist()
    leading = correct.index(False) if False in correct else m
    gaps = top2.values[:, 0] - top2.values[:, 1]
    return {
        "prefix_match_len": leading, "exact_match": leading == m, "tf_accuracy": sum(correct) / m,
        "tf_mean_logprob": float((logits.gather(-1, target[:, None])[:, 0] - lse).mean()),
        "tf_mean_top1_prob": float((top2.values[:, 0] - lse).exp().mean()),
        "tf_min_top2_gap": float(gaps[: min(leading + 1, m)].min()),  # the positions that decide the greedy run
    }


def screen_batch(lm: LoadedModel, batch: Sequence[Sample]) -> pd.DataFrame:
    """One teacher-forced pass over prompt + true suffix: the screen columns of every window."""
    import torch

    from .core.batching import right_padded

    lengths = {len(s.suffix_ids) for s in batch}
    if len(lengths) != 1:
        raise MemkitError(f"all windows of a batch need the same suffix length m (got {sorted(lengths)})")
    m = lengths.pop()
    ids, mask = right_padded([list(s.prompt_ids) + list(s.suffix_ids[:-1]) for s in batch],
                             pad_token_id(lm.tokenizer))
    starts = [len(s.prompt_ids) - 1 for s in batch]  # the position that predicts suffix token 0
    keep = ids.shape[1] - min(starts)
    with torch.inference_mode():
        logits = _last_logits(lm.model, ids, mask, keep)
        rows = [{"id": s.id, **position_stats(logits[r, start - min(starts): start - min(starts) + m], s.suffix_ids)}
                for r, (s, start) in enumerate(zip(batch, starts))]
    return pd.DataFrame(rows)


def screen(lm: LoadedModel, samples: Sequence[Sample], out: str | Path, config: dict, *, batch_size: int = 8,
           progress: bool = True, desc: str = "screen") -> pd.DataFrame:
    """`screen_batch` over all samples, rows in input order, written to `out`; resumable batch by batch.

    Each finished batch is a shard in `<out>.parts/`; a rerun with the same config skips the
    finished shards, and a finished `out` with the same config is read, not recomputed (after
    waiting for another process that is computing it: `paths.entry_lock`).
    """
    out = Path(out)
    config = {**config, "batch_size": batch_size, "windows": samples_fingerprint(samples)}
    key = run_config_hash(config)
    with entry_lock(out):
        if out.exists() and (read_run_config(out) or {}).get("key") == key:
            return pd.read_parquet(out)
        parts = _open_parts(out, key)
        batches = plan_batches(samples, batch_size)
        with tqdm(total=len(samples), desc=desc, unit="window", disable=not progress) as bar:
            for number, indices in enumerate(batches):
                shard = parts / f"part-{number:06d}.parquet"
                if not shard.exists():
                    write_table(screen_batch(lm, [samples[i] for i in indices]), shard, config)
                bar.update(len(indices))
        frame = pd.concat([pd.read_parquet(parts / f"part-{n:06d}.parquet") for n in range(len(batches))],
                          ignore_index=True)
        order = [i for indices in batches for i in indices]
        frame = frame.assign(_order=order).sort_values("_order", kind="stable").drop(columns="_order")
        frame = frame.reset_index(drop=True)
        write_table(frame, out, {**config, "key": key})
        shutil.rmtree(parts)
        return frame


def _open_parts(out: Path, key: str) -> Path:
    """`<out>.parts/` for the run `key`: shards of another run are discarded."""
    parts = out.with_name(out.name + ".parts")
    stamp = parts / "key"
    if parts.exists() and (not stamp.exists() or stamp.read_text() != key):
        shutil.rmtree(parts)
    parts.mkdir(parents=True, exist_ok=True)
    if not stamp.exists():
        with atomic_path(stamp) as tmp:
            tmp.write_text(key)
    return parts


# -- candidates, recall sample, confirmation -----------------------------------------------------
def candidates(screen_frame: pd.DataFrame, *, screen_prefix: int, screen_accuracy: float) -> pd.Series:
    """Windows worth decoding: greedy prefix match >= L tokens or teacher-forced accuracy >= a."""
    return (screen_frame["prefix_match_len"] >= screen_prefix) | (screen_frame["tf_accuracy"] >= screen_accuracy)


def recall_ids(ids: Sequence[str], *, fraction: float, minimum: int, seed: int) -> list[str]:
    """A seeded random subset of non-candidates: `fraction` of them, at least `minimum` (0 if fraction is 0)."""
    if fraction <= 0:
        return []
    n = max(math.ceil(fraction * len(ids)), min(minimum, len(ids)))
    return seeded_sample(list(ids), n, seed + 1)


def _own_samples(samples: Sequence[Sample], greedy: pd.DataFrame) -> list[Sample]:
    """Each sample with its suffix replaced by the model's own greedy continuation."""
    return [Sample(s.id, s.prefix_ids, tuple(int(t) for t in g), s.prompt_ids, s.mode)
            for s, g in zip(samples, greedy["generated_ids"])]


def confirm(lm: LoadedModel, samples: Sequence[Sample], cache: Path, config: dict, *, batch_size: int,
            progress: bool) -> pd.DataFrame:
    """Full greedy decoding of `samples` (every metric) plus the confidence of each greedy continuation."""
    greedy = run_extraction(lm, samples, cache / "greedy.parquet", {**config, "step": "greedy"},
                            batch_size=batch_size, progress=progress)
    own = screen(lm, _own_samples(samples, greedy), cache / "greedy-confidence.parquet",
                 {**config, "step": "confidence"}, batch_size=batch_size, progress=progress, desc="confidence")
    greedy = greedy.drop(columns=[c for c in greedy.columns if c.startswith("meta_")])
    return greedy.assign(greedy_confidence=own["tf_mean_top1_prob"], greedy_mean_logprob=own["tf_mean_logprob"])


def duplicates_of(screen_frame: pd.DataFrame) -> list[str | None]:
    """For each window, the id of the first earlier window with the same tokens (None if it is the first)."""
    first: dict[tuple, str] = {}
    out = []
    for row in screen_frame[["id", "prefix_ids", "suffix_ids"]].itertuples(index=False):
        key = (tuple(row.prefix_ids), tuple(row.suffix_ids))
        out.append(first.get(key))
        first.setdefault(key, row.id)
    return out


# -- rates and recall -------------------------------------------------------------------------------
def wilson_interval(x: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion x/n (NaN for n = 0), as scipy's `method="wilson"`."""
    if n == 0:
        return float("nan"), float("nan")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = x / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (0.0 if x == 0 else centre - half), (1.0 if x == n else centre + half)


def _rate(prefix: str, x: int, n: int) -> dict:
    lo, hi = wilson_interval(x, n)
    return {prefix: x, f"{prefix}_rate": x / n if n else float("nan"), f"{prefix}_lo": lo, f"{prefix}_hi": hi}


def _group_rows(frame: pd.DataFrame) -> Iterator[tuple[dict, pd.DataFrame]]:
    """(labels, rows) for every source (all positions, then openings and interiors), category and the total."""
    for (category, source), rows in frame.groupby(["category", "source"], sort=True):
        yield {"category": category, "source": source, "position": "all"}, rows
        for position, part in rows.groupby("position", sort=True):
            yield {"category": category, "source": source, "position": position}, part
    for category, rows in frame.groupby("category", sort=True):
        yield {"category": category, "source": "all", "position": "all"}, rows
    yield {"category": "all", "source": "all", "position": "all"}, frame


def census_rates(table: pd.DataFrame) -> pd.DataFrame:
    """Memorization rates per source, position and category with Wilson 95% CIs (n = windows screened).

    `table` is the screen table with the confirmation columns joined (`census_table`). Exact
    matches come from the screen itself (exact for every window); near-verbatim windows are
    those found by decoding (candidates and the recall sample): a lower bound when the screen
    misses some (see `screen_recall`).
    """
    rows = []
    for labels, part in _group_rows(table):
        rows.append({**labels, "screened": len(part), "candidates": int(part["candidate"].sum()),
                     "decoded": int(part["decoded"].sum()), **_rate("exact", int(part["exact_match"].sum()), len(part)),
                     **_rate("near_verbatim", int(part["near_verbatim"].fillna(False).astype(bool).sum()), len(part)),
                     "recall_sampled": int(part["recall_sample"].sum()),
                     "recall_missed": int((part["recall_sample"] & part["near_verbatim"].fillna(False).astype(bool)).sum())})
    return pd.DataFrame(rows)


def screen_recall(table: pd.DataFrame) -> pd.DataFrame:
    """Recall of the screen per rule, from the random sample of non-candidates (Wilson 95% CI).

    With F found among the candidates, x memorized among n sampled non-candidates and N
    non-candidates, the missed windows are estimated as x/n * N and recall = F / (F + x/n*N);
    the interval plugs in the Wilson bounds of x/n (the census count F is exact).
    """
    rows = []
    n_other = int((~table["candidate"]).sum())
    sampled = table[table["recall_sample"]]
    for rule, column in (("near_verbatim", "near_verbatim"), ("exact", "exact_match")):
        found = int((table["candidate"] & table[column].fillna(False).astype(bool)).sum())
        missed = int(sampled[column].fillna(False).astype(bool).sum())
        lo, hi = wilson_interval(missed, len(sampled))
        estimate = missed / len(sampled) * n_other if len(sampled) else float("nan")
        rows.append({"rule": rule, "found": found, "non_candidates": n_other, "sampled": len(sampled),
                     "missed_in_sample": missed, "recall": _recall(found, estimate),
                     "recall_lo": _recall(found, hi * n_other), "recall_hi": _recall(found, lo * n_other)})
    return pd.DataFrame(rows)


def _recall(found: int, missed: float) -> float:
    return found / (found + missed) if found + missed > 0 else float("nan")


# -- the whole run ----------------------------------------------------------------------------------
@dataclass
class Census:
    """A finished census: one row per window (screen), per decoded window (confirmed), rates, recall."""

    screen: pd.DataFrame
    confirmed: pd.DataFrame
    rates: pd.DataFrame
    recall: pd.DataFrame


def census_code_version() -> str:
    """Hash of the code that computes census rows (part of every cache key)."""
    return code_fingerprint("census.py") + code_version()


def _screen_table(samples: Sequence[Sample], raw: pd.DataFrame) -> pd.DataFrame:
    """Window descriptions (from the samples' metadata) next to the screen columns."""
    described = pd.DataFrame([{"id": s.id, **{key: s.meta.get(key) for key in WINDOW_FIELDS},
                               "k": len(s.prefix_ids), "m": len(s.suffix_ids), "prefix_ids": list(s.prefix_ids),
                               "suffix_ids": list(s.suffix_ids)} for s in samples])
    return pd.concat([described, raw.drop(columns="id")], axis=1)


def census_table(screen_frame: pd.DataFrame, confirmed: pd.DataFrame) -> pd.DataFrame:
    """The screen table with `decoded`, `near_verbatim` (NaN where not decoded) joined by id."""
    nv = confirmed.set_index("id")["near_verbatim"].astype(bool)
    return screen_frame.assign(decoded=screen_frame["id"].isin(nv.index),
                               near_verbatim=screen_frame["id"].map(nv).astype("boolean"))


def run_census(lm: LoadedModel, windows: Sequence[Sample], out_dir: str | Path, *,
               screen_prefix: int = DEFAULT_SCREEN_PREFIX, screen_accuracy: float = DEFAULT_SCREEN_ACCURACY,
               recall_fraction: float = DEFAULT_RECALL_FRACTION, recall_min: int = DEFAULT_RECALL_MIN, seed: int = 0,
               batch_size: int = 8, progress: bool = True) -> Census:
    """Screen every window, decode the candidates and a recall sample, write the census into `out_dir`.

    Writes `screen.parquet` (one row per window), `confirmed.parquet` (one row per decoded
    window: every extraction metric + greedy confidence), `rates.csv`, `recall.csv` and
    `census.json` (settings, provenance, counts). Intermediate results live in
    `out_dir/cache/`, so a killed run resumes without recomputing finished batches.
    """
    out_dir = Path(out_dir)
    if not out_dir.parent.is_dir():
        raise MemkitError(f"output directory does not exist: {out_dir.parent}")
    (out_dir / "cache").mkdir(parents=True, exist_ok=True)
    if not windows:
        raise MemkitError("no windows to screen")
    base = {"command": "census", "model": lm.name, "model_sha256": lm.sha256, "code": census_code_version()}
    raw = screen(lm, windows, out_dir / "cache" / "screen.parquet", base, batch_size=batch_size, progress=progress)
    table = _screen_table(windows, raw)
    table["duplicate_of"] = duplicates_of(table)
    table["candidate"] = candidates(table, screen_prefix=screen_prefix, screen_accuracy=screen_accuracy)
    sampled = set(recall_ids(list(table.loc[~table["candidate"], "id"]), fraction=recall_fraction,
                             minimum=recall_min, seed=seed))
    table["recall_sample"] = table["id"].isin(sampled)
    decode = [s for s, row in zip(windows, table.itertuples()) if row.candidate or row.recall_sample]
    greedy = (confirm(lm, decode, out_dir / "cache", base, batch_size=batch_size, progress=progress)
              if decode else pd.DataFrame(columns=["id", "near_verbatim", "exact_match", "prefix_match_len"]))
    confirmed = _confirmed_table(table, greedy)
    table = census_table(table, confirmed)
    settings = {**base, "windows": samples_fingerprint(windows), "screen_prefix": screen_prefix,
                "screen_accuracy": screen_accuracy, "recall_fraction": recall_fraction, "recall_min": recall_min,
                "seed": seed, "batch_size": batch_size}
    census = Census(table, confirmed, census_rates(table), screen_recall(table))
    _write_outputs(census, out_dir, settings)
    return census


def _confirmed_table(table: pd.DataFrame, greedy: pd.DataFrame) -> pd.DataFrame:
    """Decoded windows: their description and screen columns, then every extraction metric."""
    screen_columns = ["id", *WINDOW_FIELDS, "candidate", "recall_sample", "duplicate_of", "tf_accuracy",
                      "tf_mean_logprob", "tf_mean_top1_prob", "tf_min_top2_gap"]
    described = table[screen_columns].assign(screen_prefix_match_len=table["prefix_match_len"],
                                             screen_exact_match=table["exact_match"])
    confirmed = described.merge(greedy, on="id", how="inner", validate="one_to_one")
    confirmed["screen_agrees"] = confirmed["screen_prefix_match_len"] == confirmed["prefix_match_len"]
    confirmed["memorized"] = confirmed["near_verbatim"].astype(bool)
    return confirmed.reset_index(drop=True)


def _provenance(table: pd.DataFrame) -> dict:
    """Per source: its windows and, per document with a window, the text's SHA-256 and provenance."""
    out = {}
    for source, rows in table.groupby("source", sort=True):
        docs = rows.drop_duplicates("doc").set_index("doc")
        out[source] = {"windows": len(rows), "documents": {doc: {"sha256": row.doc_sha256, "provenance": row.provenance}
                                                           for doc, row in docs.iterrows()}}
    return out


def _write_outputs(census: Census, out_dir: Path, settings: dict) -> None:
    """screen.parquet, confirmed.parquet, rates.csv, recall.csv, census.json: each written atomically."""
    write_table(census.screen, out_dir / "screen.parquet", settings)
    write_table(census.confirmed, out_dir / "confirmed.parquet", settings)
    for name, frame in (("rates.csv", census.rates), ("recall.csv", census.recall)):
        with atomic_path(out_dir / name) as tmp:
            frame.to_csv(tmp, index=False)
    summary = {"settings": settings, "python": platform.python_version(), "sources": _provenance(census.screen),
               "windows": len(census.screen), "decoded": len(census.confirmed)}
    with atomic_path(out_dir / "census.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=1, sort_keys=True, default=str) + "\n")


def read_census(census: str | Path, name: str = "confirmed.parquet") -> pd.DataFrame:
    """One table of a census folder (a MemkitError naming the folder if it is not there)."""
    path = Path(census) / name
    if not path.is_file():
        raise MemkitError(f"{census}: no {name} (not a finished census folder)")
    return pd.read_parquet(path)


def load_census(out_dir: str | Path) -> Census:
    """A finished census read back from its folder."""
    return Census(read_census(out_dir, "screen.parquet"), read_census(out_dir, "confirmed.parquet"),
                  pd.read_csv(Path(out_dir) / "rates.csv"), pd.read_csv(Path(out_dir) / "recall.csv"))


def summary_lines(census: Census) -> list[str]:
    """One line per source (and the total) plus the screen's recall, for the command line."""
    lines = []
    for row in census.rates[census.rates["position"] == "all"].itertuples():
        lines.append(f"{row.source} ({row.category}): {row.screened} windows, {row.candidates} candidates, "
                     f"exact {_fmt(row.exact, row.exact_rate, row.exact_lo, row.exact_hi)}, near-verbatim "
                     f"{_fmt(row.near_verbatim, row.near_verbatim_rate, row.near_verbatim_lo, row.near_verbatim_hi)}")
    for row in census.recall.itertuples():
        recall = ("undefined (nothing memorized found)" if row.recall != row.recall
                  else f"{row.recall:.3f} [{row.recall_lo:.3f}, {row.recall_hi:.3f}]")
        lines.append(f"screen recall ({row.rule}): {row.missed_in_sample} memorized among {row.sampled} sampled "
                     f"non-candidates (of {row.non_candidates}) -> recall {recall}")
    return lines


def _fmt(x: int, rate: float, lo: float, hi: float) -> str:
    return f"{x} ({100 * rate:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}])"


# -- memorized sets for other experiments ---------------------------------------------------------
RECORD_FIELDS = ("source", "category", "doc", "position", "token_start", "k", "m", "exact_match", "near_verbatim",
                 "lev_similarity", "token_match", "prefix_match_len", "greedy_confidence", "min_top2_gap",
                 "doc_sha256", "provenance")


def _confirmed(census: str | Path | Census | pd.DataFrame) -> pd.DataFrame:
    if isinstance(census, Census):
        return census.confirmed
    if isinstance(census, pd.DataFrame):
        return census
    return read_census(census, "confirmed.parquet")


def _memorized_mask(frame: pd.DataFrame, rule: str) -> pd.Series:
    if rule not in RULES:
        raise MemkitError(f"unknown memorization rule {rule!r}; choose one of {', '.join(RULES)}")
    return frame["near_verbatim" if rule == "near_verbatim" else "exact_match"].astype(bool)


def _records(rows: pd.DataFrame) -> list[dict]:
    """Records `{"id", "text", ...}`: `make_samples(lm, records, k, m)` rebuilds each window's tokens."""
    return [{"id": row["id"], "text": row["window_text"], **{key: _plain(row[key]) for key in RECORD_FIELDS}}
            for row in rows.to_dict("records")]


def _plain(value):
    """numpy scalars as Python scalars (records go to JSON and to `make_samples`)."""
    return value.item() if hasattr(value, "item") else value


def _select(frame: pd.DataFrame, category: str | None, distinct: bool) -> pd.DataFrame:
    if category is not None and category not in CATEGORIES:
        raise MemkitError(f"unknown category {category!r}; choose one of {', '.join(CATEGORIES)}")
    keep = pd.Series(True, index=frame.index)
    if category is not None:
        keep &= frame["category"] == category
    if distinct:
        keep &= frame["duplicate_of"].isna()
    return frame[keep]


def memorized_records(census: str | Path | Census | pd.DataFrame, *, rule: str = "near_verbatim",
                      category: str | None = None, distinct: bool = True) -> list[dict]:
    """The memorized windows of a census as records `{"id", "text", "source", "category", ...}`.

    `rule`: `near_verbatim` (headline; includes exact matches) or `exact`. `distinct` drops
    windows whose tokens repeat an earlier window (e.g. an attractor that is also a KJV chapter).
    """
    frame = _select(_confirmed(census), category, distinct)
    return _records(frame[_memorized_mask(frame, rule)])


def matched_controls(census: str | Path | Census | pd.DataFrame, *, rule: str = "near_verbatim",
                     category: str | None = None, by: str = "greedy_confidence", same_source: bool = False,
                     distinct: bool = True) -> list[dict]:
    """Non-memorized windows as confident as the memorized ones: nearest neighbours on `by`, no replacement.

    The pool: decoded windows of the memorized windows' sources that are neither near-verbatim
    nor exact. Memorized windows are matched in order of decreasing `by` (ties by id), each to
    the unused pool window with the closest `by` (ties by id), within its own source when
    `same_source`. Each control record carries `matched_to` and `distance`; matching stops when
    the pool is used up. `by`: `greedy_confidence` (mean top-1 probability of the model's own
    greedy tokens) or `min_top2_gap`.
    """
    if by not in ("greedy_confidence", "min_top2_gap"):
        raise MemkitError(f"cannot match on {by!r}; use greedy_confidence or min_top2_gap")
    frame = _select(_confirmed(census), category, distinct)
    memorized = frame[_memorized_mask(frame, rule)].sort_values([by, "id"], ascending=[False, True])
    pool = frame[~frame["near_verbatim"].astype(bool) & ~frame["exact_match"].astype(bool)
                 & frame["source"].isin(set(memorized["source"]))].sort_values("id")
    strata = dict(treated_strata=memorized.set_index("id")["source"], pool_strata=pool.set_index("id")["source"]) \
        if same_source else {}
    pairs = nearest_matches(memorized.set_index("id")[by], pool.set_index("id")[by], **strata)
    rows = pool.set_index("id").loc[pairs["control_id"]].reset_index()
    return [record | {"matched_to": pair.treated_id, "distance": pair.distance}
            for record, pair in zip(_records(rows), pairs.itertuples())]
