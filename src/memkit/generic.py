"""Generic English text that ships with Python, for K-FAC fits, head means and held-out perplexity.

    fit, held_out = generic_texts("fit"), generic_texts("heldout")

Source: `pydoc_data.topics` of the Python standard library (the help topics of the language
reference, ~465k characters of technical prose with code snippets): offline everywhere, not a
famous text that the pretrained models would recite, and sharing no 8-word run with
data/attractors.jsonl (checked when written). Topics sorted by name; even positions form the
`fit` split, odd positions the `heldout` split. The text depends on the Python minor version
(3.11 in this project's environment); `generic_sha256` fingerprints it for cache keys.
"""

from __future__ import annotations

import hashlib
from .errors import MemkitError

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
