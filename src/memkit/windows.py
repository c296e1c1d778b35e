"""Generic text -> fixed-length token windows, for K-FAC fits, head means and perplexity.

    windows = text_windows(lm.tokenizer, texts, seq_len=128)     # [[<bos>, t0, ..., t127], ...]
    for ids, mask in window_batches(windows, batch_size=8, pad_id=0): ...

Each text is tokenized without special tokens and cut into consecutive non-overlapping
chunks of `seq_len` tokens (the last, shorter chunk is kept when it has at least two tokens);
the tokenizer's own leading special tokens (e.g. Gemma's <bos>) are put in front of every
chunk, as the model sees a document start. Order is deterministic: texts in order, chunks in
order; `max_windows` keeps the first ones.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import torch

from .core.samples import leading_special_ids
from .errors import MemkitError


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


def window_batches(windows: Sequence[Sequence[int]], batch_size: int, pad_id: int
                   ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Right-padded (input_ids, attention_mask) batches of consecutive windows."""
    for start in range(0, len(windows), batch_size):
        batch = windows[start : start + batch_size]
        width = max(len(w) for w in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, w in enumerate(batch):
            ids[i, : len(w)] = torch.tensor(list(w))
            mask[i, : len(w)] = 1
        yield ids, mask
