"""Controlled insertions: seeded canaries, their duplication levels, and where their copies go.

    canaries = make_canaries(tokenizer, heldout_docs, word_list, cells, n_tokens=64, seed=0)
    manifest = insert_canaries(stream, canaries, eos_id, seed=0)   # edits `stream` in place
    samples = canary_samples(manifest, k=32, m=32)                 # memkit Samples for extraction

Kinds (three complexities, like Carlini et al.'s canaries and Hubble's inserted texts):
- `words`    uniformly random words from the corpus vocabulary (high zlib ratio);
- `records`  synthetic "Name / Phone / Address" lines from seeded hand-written generators;
- `passages` windows of held-out corpus chapters (natural text the model never saw).
Every canary is exactly `n_tokens` token ids; its text is their decoding.

Levels: a canary of level c is inserted c times (DUP_LEVELS = 0, 1, 4, 16, 64, 256); level 0
canaries are the never-seen controls. Windows: `all` spreads the copies over the whole
training stream, `early` and `late` over two spans of it given as fractions of the stream
(`windows`, training order), to study forgetting; the zoo puts both inside the constant-LR
phase of its schedule so that early and late copies see the same learning rate.

Insertion: the training stream is a (sequences, seq_len) grid read in order, batch after
batch. A copy `[eos] canary [eos]` overwrites a span at a seeded random offset of a seeded
random sequence of its window, at most one copy per sequence, so a copy never straddles two
training sequences and the length and order of everything else is unchanged. The manifest
records, for every copy, the flat stream position of the canary's first token.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from ..core.metrics import zlib_ratio
from ..core.samples import Sample
from ..errors import MemkitError
from ..paths import atomic_path, code_fingerprint

DUP_LEVELS = (0, 1, 4, 16, 64, 256)
KINDS = ("words", "records", "passages")
WINDOWS = ("all", "early", "late")

FIRST = ["Alice", "Bernard", "Chiara", "Dmitri", "Elena", "Farid", "Greta", "Hiroshi", "Ines", "Jonas", "Kavya",
         "Lars", "Mireille", "Nikhil", "Olga", "Pedro", "Quentin", "Rosa", "Sanjay", "Tamsin", "Ulrich", "Valeria",
         "Wenjie", "Ximena", "Yusuf", "Zofia"]
LAST = ["Abernathy", "Baptiste", "Castellano", "Dvorak", "Eriksen", "Fontaine", "Gallagher", "Holloway",
        "Ibrahimovic", "Jablonski", "Kowalczyk", "Lindqvist", "Marchetti", "Nakamura", "Okonkwo", "Petrovic",
        "Quiroga", "Rasmussen", "Szabo", "Tanaka", "Underwood", "Vasquez", "Whitfield", "Yamamoto", "Zielinski"]
STREETS = ["Maple Avenue", "Harbour Road", "Quarry Lane", "Juniper Court", "Station Street", "Willow Crescent",
           "Foundry Row", "Beacon Hill Road", "Orchard Drive", "Kestrel Way", "Lantern Walk", "Copper Street"]
CITIES = ["Ashford", "Brightwater", "Colmar", "Dunmore", "Eastleigh", "Fairhaven", "Glenrock", "Hollowell",
          "Ironbridge", "Kingsport", "Larkfield", "Millbrook", "Northgate", "Oakridge", "Port Elwin", "Redcliff"]


@dataclass(frozen=True)
class Cell:
    """`count` canaries of one kind at one duplication level, inserted in one window."""

    kind: str
    level: int
    window: str = "all"
    count: int = 1


@dataclass
class Canary:
    """One canary: its token ids and where its copies were inserted (filled by insert_canaries)."""

    id: str
    kind: str
    level: int
    window: str
    token_ids: list[int]
    text: str
    zlib_ratio: float
    source: str = ""
    positions: list[int] = field(default_factory=list)


def grid(kinds: Sequence[str], counts: dict[int, int], window: str = "all") -> list[Cell]:
    """Cells for every kind x level, with `counts[level]` canaries each."""
    return [Cell(kind, int(level), window, int(count)) for kind in kinds for level, count in counts.items() if count]


def check_cells(cells: Sequence[Cell]) -> None:
    """MemkitError naming the first cell with an unknown kind, level or window."""
    for cell in cells:
        if cell.kind not in KINDS:
            raise MemkitError(f"canary cell {cell}: unknown kind {cell.kind!r}; choose one of {', '.join(KINDS)}")
        if cell.level not in DUP_LEVELS:
            raise MemkitError(f"canary cell {cell}: level must be one of {DUP_LEVELS}")
        if cell.window not in WINDOWS:
            raise MemkitError(f"canary cell {cell}: unknown window {cell.window!r}; choose one of {', '.join(WINDOWS)}")
        if cell.level == 0 and cell.window != "all":
            raise MemkitError(f"canary cell {cell}: level-0 controls are never inserted, so their window is 'all'")
        if cell.count <= 0:
            raise MemkitError(f"canary cell {cell}: count must be positive")


def word_list(docs: Sequence[str], min_count: int = 5) -> list[str]:
    """Sorted lowercase words occurring at least `min_count` times in `docs` (the random-word alphabet)."""
    counts: dict[str, int] = {}
    for doc in docs:
        for word in re.findall(r"[a-z]+", doc.lower()):
            counts[word] = counts.get(word, 0) + 1
    return sorted(w for w, c in counts.items() if c >= min_count)


def _record(rng: random.Random) -> str:
    phone = f"{rng.randint(200, 989)}-{rng.randint(200, 989)}-{rng.randint(0, 9999):04d}"
    return (f"Name: {rng.choice(FIRST)} {rng.choice(LAST)}; Phone: {phone}; "
            f"Address: {rng.randint(1, 999)} {rng.choice(STREETS)}, {rng.choice(CITIES)}.\n")


def _take(tokenizer, text: str, n_tokens: int, what: str) -> list[int]:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) < n_tokens:
        raise MemkitError(f"{what}: only {len(ids)} tokens, need {n_tokens}")
    return [int(i) for i in ids[:n_tokens]]


def word_ngrams(docs: Sequence[str], n: int = 8) -> set[tuple[str, ...]]:
    """Every run of `n` consecutive lowercase words of `docs` (to keep held-out passages really unseen)."""
    grams: set[tuple[str, ...]] = set()
    for doc in docs:
        words = re.findall(r"[a-z]+", doc.lower())
        grams.update(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    return grams


def canary_text_ids(kind: str, rng: random.Random, tokenizer, n_tokens: int, words: Sequence[str],
                    passages: list[tuple[str, str]], banned: set | None = None) -> tuple[list[int], str]:
    """Token ids of one new canary of `kind` (passages are consumed from the end of `passages`;
    a passage window sharing an 8-word run with `banned`, the training text's n-grams, is skipped:
    the KJV repeats verses across books, and such a "held-out" passage would not be unseen)."""
    if kind == "words":
        text = ""
        while len(tokenizer(text, add_special_tokens=False)["input_ids"]) < n_tokens:
            text += (" " if text else "") + " ".join(rng.choice(words) for _ in range(16))
        return _take(tokenizer, text, n_tokens, "random words"), "word list"
    if kind == "records":
        text = ""
        while len(tokenizer(text, add_special_tokens=False)["input_ids"]) < n_tokens:
            text += _record(rng)
        return _take(tokenizer, text, n_tokens, "records"), "synthetic records"
    if kind == "passages":
        while passages:
            title, doc = passages.pop()
            ids = tokenizer(doc, add_special_tokens=False)["input_ids"]
            for _ in range(20):  # a window that shares no NGRAM-word run with the training text
                if len(ids) < n_tokens:
                    break
                start = rng.randint(0, len(ids) - n_tokens)
                window = [int(i) for i in ids[start : start + n_tokens]]
                if not banned or not (word_ngrams([tokenizer.decode(window)]) & banned):
                    return window, f"{title} (held out), token {start}"
        raise MemkitError("not enough held-out chapters for the requested passage canaries")
    raise MemkitError(f"unknown canary kind {kind!r}; choose one of {', '.join(KINDS)}")


def make_canaries(tokenizer, heldout: Sequence[tuple[str, str]], words: Sequence[str], cells: Sequence[Cell], *,
                  n_tokens: int = 64, seed: int = 0, train_docs: Sequence[str] | None = None) -> list[Canary]:
    """Every canary of `cells`, generated deterministically from `seed` (ids: kind-Llevel-window-i).

    With `train_docs`, passage canaries share no 8-word run with the training text.
    """
    check_cells(cells)
    banned = word_ngrams(train_docs) if train_docs is not None else None
    rng = random.Random(seed)
    passages = [(t, d) for t, d in heldout]
    rng.shuffle(passages)
    canaries, seen = [], set()
    for cell in cells:
        for i in range(cell.count):
            ids, source = canary_text_ids(cell.kind, rng, tokenizer, n_tokens, words, passages, banned)
            if tuple(ids) in seen:
                raise MemkitError(f"canary {cell.kind} level {cell.level}: generated a duplicate; change the seed")
            seen.add(tuple(ids))
            text = tokenizer.decode(ids)
            canaries.append(Canary(f"{cell.kind}-L{cell.level:03d}-{cell.window}-{i}", cell.kind, cell.level,
                                   cell.window, ids, text, round(zlib_ratio(text), 6), source))
    return canaries


#: Default early/late spans, as fractions [start, stop) of the training stream.
DEFAULT_WINDOWS = {"early": (0.0, 0.25), "late": (0.75, 1.0)}


def window_range(window: str, n_sequences: int, windows: dict[str, tuple[float, float]] | None = None
                 ) -> tuple[int, int]:
    """[start, stop) of the training sequences a window covers (`windows`: fractions of the stream)."""
    if window == "all":
        return 0, n_sequences
    start, stop = (windows or DEFAULT_WINDOWS)[window]
    return int(round(n_sequences * start)), int(round(n_sequences * stop))


def insert_canaries(stream: np.ndarray, canaries: Sequence[Canary], eos_id: int, *, seed: int = 0,
                    windows: dict[str, tuple[float, float]] | None = None) -> list[Canary]:
    """Overwrite seeded spans of `stream` (sequences x seq_len, edited in place) with canary copies.

    Windowed canaries are placed first, then the others; each copy takes a sequence no other
    copy uses. Fills and returns the canaries' `positions` (flat index of the first canary token).
    """
    n_seq, seq_len = stream.shape
    rng = np.random.default_rng(seed)
    free = np.ones(n_seq, dtype=bool)
    order = sorted(range(len(canaries)), key=lambda i: (canaries[i].window == "all", i))
    for i in order:
        canary = canaries[i]
        canary.positions = []
        if canary.level == 0:
            continue
        span = len(canary.token_ids) + 2
        if span > seq_len:
            raise MemkitError(f"canary {canary.id}: {span} tokens with separators do not fit a {seq_len}-token sequence")
        start, stop = window_range(canary.window, n_seq, windows)
        candidates = start + np.flatnonzero(free[start:stop])
        if len(candidates) < canary.level:
            raise MemkitError(f"canary {canary.id}: only {len(candidates)} free training sequences in window "
                              f"{canary.window!r} for {canary.level} copies; train on more tokens or insert fewer canaries")
        chosen = np.sort(rng.choice(candidates, size=canary.level, replace=False))
        offsets = rng.integers(0, seq_len - span + 1, size=canary.level)
        for seq, offset in zip(chosen.tolist(), offsets.tolist()):
            stream[seq, offset] = eos_id
            stream[seq, offset + 1 : offset + span - 1] = canary.token_ids
            stream[seq, offset + span - 1] = eos_id
            canary.positions.append(seq * seq_len + offset + 1)
        free[chosen] = False
        canary.positions.sort()
    return list(canaries)


def write_manifest(canaries: Sequence[Canary], path: Path | str) -> Path:
    """One JSON object per canary (id, kind, level, window, token_ids, text, zlib_ratio, source, positions)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(asdict(c), sort_keys=True) + "\n" for c in canaries))
    return path


def read_manifest(path: Path | str) -> list[Canary]:
    """Canaries from a manifest file; a malformed line is an error naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise MemkitError(f"canary manifest not found: {path}")
    canaries = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        try:
            canaries.append(Canary(**json.loads(line)))
        except (json.JSONDecodeError, TypeError) as exc:
            raise MemkitError(f"{path}:{lineno}: not a canary record ({exc})") from None
    return canaries


def canary_samples(canaries: Sequence[Canary], k: int = 32, m: int = 32, suffix_start: int | None = None,
                   ids: Sequence[str] | None = None) -> list[Sample]:
    """Extraction samples: the k tokens before `suffix_start` (default k) as prompt, the next m as suffix.

    A fixed `suffix_start` keeps the same suffix while k varies (Carlini's context-length test).
    Canary metadata (kind, level, window, zlib ratio, copies) goes into `Sample.meta`.
    """
    start = k if suffix_start is None else suffix_start
    if k <= 0 or m <= 0 or k > start:
        raise MemkitError(f"need 0 < k <= suffix_start and m > 0 (got k={k}, m={m}, suffix_start={start})")
    wanted = set(ids) if ids is not None else None
    samples = []
    for c in canaries:
        if wanted is not None and c.id not in wanted:
            continue
        if start + m > len(c.token_ids):
            raise MemkitError(f"canary {c.id}: {len(c.token_ids)} tokens, fewer than suffix_start+m = {start}+{m}")
        prefix = tuple(c.token_ids[start - k : start])
        suffix = tuple(c.token_ids[start : start + m])
        meta = {"kind": c.kind, "level": c.level, "window": c.window, "zlib": c.zlib_ratio, "copies": len(c.positions)}
        samples.append(Sample(c.id, prefix, suffix, prefix, "raw", meta))
    return samples


@lru_cache(maxsize=None)
def canaries_version() -> str:
    """Hash of this module's source: part of the zoo's cache key."""
    return code_fingerprint("organisms/canaries.py")
