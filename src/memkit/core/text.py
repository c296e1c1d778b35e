"""Generic text and fixed-length token windows, for K-FAC fits, head means and held-out perplexity.

    fit, held_out = generic_texts("fit"), generic_texts("heldout")
    windows = text_windows(lm.tokenizer, fit, seq_len=128)       # [[<bos>, t0, ..., t127], ...]
    for ids, mask in padded_batches(windows, batch_size=8, pad_id=0): ...   # memkit.core.batching

Generic text: `pydoc_data.topics` of the Python standard library (the help topics of the
language reference, ~465k characters of technical prose with code snippets): offline
everywhere, not a famous text that the pretrained models would recite, and sharing no 8-word
run with data/attractors.jsonl (checked when written). Topics sorted by name; even positions
form the `fit` split, odd positions the `heldout` split. The text depends on the Python minor
version (3.11 in this project's environment); `generic_sha256` fingerprints it for cache keys.

Windows: each text is tokenized without special tokens and cut into consecutive
non-overlapping chunks of `seq_len` tokens (the last, shorter chunk is kept when it has at
least two tokens); the tokenizer's own leading special tokens (e.g. Gemma's <bos>) are put in
front of every chunk, as the model sees a document start. Order is deterministic: texts in
order, chunks in order; `max_windows` keeps the first ones.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

from ..errors import MemkitError
from .samples import leading_special_ids

SPLITS = ("fit", "heldout")


def generic_texts(split: str = "fit") -> list[str]:
    """The documents of one split (`fit` or `heldout`), in a fixed order."""
    import pydoc_data.topics

    if split not in SPLITS:
        raise MemkitError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    topics = pydoc_data.topics.topics
    names = sorted(topics)
    start = 0 if split == "fit" else 1
    return [topics[name] for name in names[start::2]]


def generic_sha256() -> str:
    """SHA-256 of both splits, to record which text a result came from."""
    digest = hashlib.sha256()
    for split in SPLITS:
        for text in generic_texts(split):
            digest.update(text.encode())
    return digest.hexdigest()


def text_windows(tokenizer, texts: Sequence[str], seq_len: int = 128, max_windows: int | None = None) -> list[list[int]]:
    """Token windows of at most `seq_len` text tokens (plus leading specials) from `texts`."""
    if seq_len < 2:
        raise MemkitError(f"seq_len must be at least 2, got {seq_len}")
    lead = leading_special_ids(tokenizer)
    windows = []
    for text in texts:
        ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
        for start in range(0, len(ids), seq_len):
            chunk = ids[start : start + seq_len]
            if len(chunk) >= 2:
                windows.append(lead + chunk)
    if max_windows is not None:
        windows = windows[:max_windows]
    if not windows:
        raise MemkitError("no text window of two or more tokens in the given texts (the text is too short)")
    return windows
