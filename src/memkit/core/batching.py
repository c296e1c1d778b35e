"""Token rows -> padded (input_ids, attention_mask) tensors, the one implementation of padding.

    ids, mask = right_padded([[5, 6, 7], [8]], pad_id=0)   # [[5, 6, 7], [8, 0, 0]], [[1, 1, 1], [1, 0, 0]]
    ids, mask = left_padded([[5, 6, 7], [8]], pad_id=0)    # [[5, 6, 7], [0, 0, 8]], [[1, 1, 1], [0, 0, 1]]
    for ids, mask in padded_batches(windows, batch_size=8, pad_id=0): ...

Right padding is for teacher-forced passes without a KV cache (lens, ablation, membership
inference, K-FAC, perplexity): every row keeps positions 0..len-1, and the padding slots
come after the tokens that matter, masked out. Left padding is for generation (greedy
decoding, HF `generate`), so that every row's next token is in the last column. Both give
int64 tensors on the CPU; padding slots hold `pad_id` (never attended to) and mask 0.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import torch


def _padded(rows: Sequence[Sequence[int]], pad_id: int, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        span = slice(width - len(row), width) if left else slice(0, len(row))
        ids[i, span] = torch.tensor(list(row), dtype=torch.long)
        mask[i, span] = 1
    return ids, mask


def right_padded(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) with every row starting at column 0, padded on the right."""
    return _padded(rows, pad_id, left=False)


def left_padded(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) with every row ending in the last column, padded on the left."""
    return _padded(rows, pad_id, left=True)


def padded_batches(rows: Sequence[Sequence[int]], batch_size: int, pad_id: int
                   ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Right-padded (input_ids, attention_mask) batches of `batch_size` consecutive rows, in order."""
    for start in range(0, len(rows), batch_size):
        yield right_padded(rows[start : start + batch_size], pad_id)
