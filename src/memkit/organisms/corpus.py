"""The organisms' background corpus: the King James Bible from Debian, normalised, split, tokenised.

    corpus = build_corpus()            # cached under <cache>/corpus/<sha256-prefix>-h<HELDOUT_EVERY>/
    corpus.train_docs, corpus.heldout_docs, corpus.tokenizer

Source: the Debian packages `bible-kjv` (the `bible` reader) and `bible-kjv-text` (its
compressed data; installed with it): `sudo apt-get install bible-kjv`. The text is public
domain and nothing of it is committed: this module rebuilds it offline and checks the
SHA-256 of the normalised text, so every machine trains on the same bytes.

Normalisation: one document per chapter (1,189), the verses of a chapter joined by single
spaces (verse numbers and headings dropped), whitespace collapsed, NFC; documents are
separated by newlines. Held out: every HELDOUT_EVERY-th chapter (the ones at index
HELDOUT_EVERY-1, 2*HELDOUT_EVERY-1, ...), never shown to the organisms; canary passages and
held-out loss come from there.

Tokenizer: byte-level BPE (vocab 4096, `tokenizers`) trained on the training documents,
saved as a Hugging Face `PreTrainedTokenizerFast` with <|bos|>, <|endoftext|> (eos) and
<|pad|> specials. Like Pythia's tokenizer it adds no special token to encoded text, so a raw
extraction prompt is exactly the prefix tokens.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..core.kjv import APT_PACKAGE, BIBLE_COMMAND, bible_dump, chapter_verses  # noqa: F401 (bible_dump re-exported)
from ..errors import MemkitError
from ..paths import cache_dir, code_fingerprint

#: SHA-256 of the normalised text (bible-kjv-text 4.38, Debian bookworm); see `normalise`.
CORPUS_SHA256 = "7b32002157876445b05496509caf76fa9325c89c601d439d04dee90359c76c3f"
N_CHAPTERS = 1189
HELDOUT_EVERY = 10  # 119 held-out chapters: canary passages and the held-out loss set
VOCAB_SIZE = 4096
BOS, EOS, PAD = "<|bos|>", "<|endoftext|>", "<|pad|>"


@dataclass
class Corpus:
    """The normalised corpus split into documents, and the tokenizer trained on it."""

    folder: Path
    sha256: str
    train_docs: list[str]
    heldout_docs: list[str]
    train_titles: list[str]
    heldout_titles: list[str]

    @property
    def tokenizer(self):
        return load_tokenizer(self.folder)


def parse_chapters(raw: str) -> list[tuple[str, str]]:
    """(title, normalised chapter text) for every chapter of the `bible` output, in canonical order."""
    return [(title, normalise(" ".join(verses))) for title, verses in chapter_verses(raw)]


def normalise(text: str) -> str:
    """NFC, whitespace runs collapsed to one space, stripped."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def split_index(n: int, every: int = HELDOUT_EVERY) -> tuple[list[int], list[int]]:
    """Deterministic (train, held-out) document indices: every `every`-th document is held out."""
    heldout = [i for i in range(n) if i % every == every - 1]
    held = set(heldout)
    return [i for i in range(n) if i not in held], heldout


def train_tokenizer(docs: list[str], vocab_size: int = VOCAB_SIZE):
    """Byte-level BPE on `docs` wrapped as a PreTrainedTokenizerFast (bos/eos/pad, adds no specials)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS, BOS, PAD], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(docs, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD,
                                   model_max_length=1 << 20)


def load_tokenizer(folder: Path):
    """The corpus tokenizer saved in `folder`."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(str(folder))


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def normalised_text(chapters: list[tuple[str, str]]) -> str:
    """The checksummed form of the corpus: one chapter per line."""
    return "".join(text + "\n" for _, text in chapters)


def build_corpus(expected_sha256: str | None = CORPUS_SHA256, root: Path | None = None) -> Corpus:
    """Rebuild (or load from the cache) the normalised, split and tokenised corpus.

    Raises MemkitError if the normalised text does not have the pinned SHA-256 (another
    version of the Debian package would silently change every organism otherwise).
    """
    root = Path(root) if root is not None else cache_dir() / "corpus"
    if expected_sha256 is not None:
        folder = root / _folder_name(expected_sha256)
        if (folder / "corpus.json").exists():
            return _load(folder)
    chapters = parse_chapters(bible_dump())
    text = normalised_text(chapters)
    sha = _sha256(text)
    if len(chapters) != N_CHAPTERS:
        raise MemkitError(f"bible output has {len(chapters)} chapters, expected {N_CHAPTERS}")
    if expected_sha256 is not None and sha != expected_sha256:
        raise MemkitError(f"corpus checksum mismatch: normalised KJV text has SHA-256 {sha[:16]}..., expected "
                          f"{expected_sha256[:16]}... (another {APT_PACKAGE}/bible-kjv-text version?)")
    folder = root / _folder_name(sha)
    if (folder / "corpus.json").exists():
        return _load(folder)
    train_i, held_i = split_index(len(chapters))
    tokenizer = train_tokenizer([chapters[i][1] for i in train_i])
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    tokenizer.save_pretrained(str(tmp))
    for name, index in (("train", train_i), ("heldout", held_i)):
        (tmp / f"{name}.jsonl").write_text("".join(
            json.dumps({"title": chapters[i][0], "text": chapters[i][1]}) + "\n" for i in index))
    (tmp / "corpus.json").write_text(json.dumps(
        {"sha256": sha, "source": f"Debian {APT_PACKAGE}: {' '.join(BIBLE_COMMAND)}", "n_chapters": len(chapters),
         "heldout_every": HELDOUT_EVERY, "vocab_size": VOCAB_SIZE}, indent=1, sort_keys=True))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return _load(folder)


def _folder_name(sha256: str) -> str:
    """Cache folder of a corpus: its checksum and the split (another split is another tokenizer)."""
    return f"{sha256[:16]}-h{HELDOUT_EVERY}"


def heldout_grid(tokenizer, docs: list[str], seq_len: int, max_sequences: int):
    """Up to `max_sequences` x `seq_len` held-out token grid: `docs` + eos concatenated in order, cut."""
    import numpy as np

    ids = [t for doc in encode_docs(tokenizer, docs) for t in doc + [tokenizer.eos_token_id]]
    n = min(max_sequences, len(ids) // seq_len)
    if n <= 0:
        raise MemkitError(f"held-out documents hold {len(ids)} tokens, fewer than one {seq_len}-token sequence")
    return np.asarray(ids[: n * seq_len], dtype=np.int64).reshape(n, seq_len)


def _load(folder: Path) -> Corpus:
    meta = json.loads((folder / "corpus.json").read_text())
    parts = {}
    for name in ("train", "heldout"):
        rows = [json.loads(line) for line in (folder / f"{name}.jsonl").read_text().splitlines()]
        parts[name] = ([r["text"] for r in rows], [r["title"] for r in rows])
    return Corpus(folder, meta["sha256"], parts["train"][0], parts["heldout"][0], parts["train"][1],
                  parts["heldout"][1])


def encode_docs(tokenizer, docs: list[str]) -> list[list[int]]:
    """Token ids of every document (no special tokens)."""
    return [list(ids) for ids in tokenizer(docs, add_special_tokens=False)["input_ids"]]


def background_stream(doc_ids: list[list[int]], n_sequences: int, seq_len: int, eos_id: int, seed: int = 0):
    """The (n_sequences, seq_len) int64 training grid: documents + eos, reshuffled every epoch.

    Epoch e concatenates the documents in the order of a permutation seeded by (seed, e);
    epochs follow each other until the grid is full (the last document is cut).
    """
    import numpy as np

    if n_sequences <= 0 or seq_len <= 0:
        raise MemkitError(f"the training grid needs positive sizes (got {n_sequences} x {seq_len})")
    total = n_sequences * seq_len
    parts, filled, epoch = [], 0, 0
    while filled < total:
        order = np.random.default_rng([seed, epoch]).permutation(len(doc_ids))
        for i in order:
            parts.append(np.asarray(doc_ids[i] + [eos_id], dtype=np.int64))
            filled += len(doc_ids[i]) + 1
            if filled >= total:
                break
        epoch += 1
    return np.concatenate(parts)[:total].reshape(n_sequences, seq_len)


@lru_cache(maxsize=None)
def corpus_version() -> str:
    """Hash of this module's source: part of the zoo's cache key."""
    return code_fingerprint("organisms/corpus.py")
