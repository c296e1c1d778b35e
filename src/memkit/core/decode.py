"""Exact batched greedy decoding, with the true suffix as a free draft.

    result = greedy_decode(model, prompts, m=64, pad_id=0)                 # plain batched greedy
    result = greedy_decode(model, prompts, m=64, pad_id=0, drafts=suffixes) # same tokens, faster

Plain mode is ordinary greedy decoding with a KV cache and left padding: m new tokens per
prompt, argmax at every step, no sampling and no early stop at EOS.

Draft mode uses each sample's true suffix as a speculative draft. A forward pass over
[pending token, next draft tokens] verifies several tokens at once: the greedy token after
each position is the argmax there, so draft tokens are accepted while they equal it, and
the first disagreement is itself the next greedy token. The output is therefore the same
greedy continuation, computed in fewer sequential steps when the model recites.

Two details keep this exact and cheap:
- Rejected draft tokens are not cut out of the cache; their columns are switched off in
  the attention mask and position ids are passed explicitly, so every sample keeps its own
  logical positions while the batch shares one physical cache.
- A batch is split as soon as some samples leave their reference: the diverged ones
  continue as plain one-token steps (no wasted draft compute), the ones still reciting
  keep verifying growing chunks (4, 8, 16, ... tokens). A first 4-token probe costs little
  on text the model has not memorised, so drafting is never much slower than plain decoding.
"""

from __future__ import annotations

import copy
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable, ContextManager, Sequence

import torch

from ..errors import MemkitError
from .arch import sliding_window
from .batching import left_padded

NEAR_TIE = 1e-4  # top-1 minus top-2 logit below this: argmax may flip with batch shape

LogitsTransform = Callable[[torch.Tensor], torch.Tensor]
ForwardContext = Callable[[list[int]], ContextManager]


@dataclass
class DecodeResult:
    """Greedy tokens per prompt plus what is needed to judge their exactness."""

    generated_ids: list[list[int]]
    min_top2_gap: list[float]  # smallest top-1/top-2 logit gap among the chosen tokens
    forward_passes: int = 0
    tokens_processed: int = 0  # query positions fed through the model, padding included

    @property
    def near_ties(self) -> list[bool]:
        return [gap < NEAR_TIE for gap in self.min_top2_gap]


@dataclass
class _Group:
    """Rows of a batch that share one KV cache and advance together."""

    rows: list[int]  # sample index of each cache row
    cache: object
    attention_mask: torch.Tensor  # (rows, physical columns)
    drafting: bool
    draft_len: int = 4
    pending: list[int] = field(default_factory=list)  # token to feed next, per row
    next_pos: list[int] = field(default_factory=list)  # its logical position, per row
    matching: list[bool] = field(default_factory=list)  # row still equals its draft so far

    def select(self, keep: list[int], copy_cache: bool) -> "_Group":
        """A group holding only the given local rows; the cache is copied or narrowed in place."""
        index = torch.tensor(keep, device=self.attention_mask.device)
        cache = copy.deepcopy(self.cache) if copy_cache else self.cache
        cache.batch_select_indices(index)
        return _Group(
            rows=[self.rows[i] for i in keep], cache=cache, attention_mask=self.attention_mask[index],
            drafting=self.drafting, draft_len=self.draft_len,
            pending=[self.pending[i] for i in keep], next_pos=[self.next_pos[i] for i in keep],
            matching=[self.matching[i] for i in keep],
        )


def _merge(a: _Group, b: _Group) -> _Group:
    """Stack two groups into one batch, left-padding the shorter cache with masked columns."""
    ta, tb = a.attention_mask.shape[1], b.attention_mask.shape[1]
    width = max(ta, tb)

    def left_pad(x: torch.Tensor, extra: int, dim_from_end: int) -> torch.Tensor:
        pads = [0, 0] * (dim_from_end - 1) + [extra, 0]
        return torch.nn.functional.pad(x, pads) if extra else x

    for la, lb in zip(a.cache.layers, b.cache.layers):
        if la.keys.shape[-2] != ta or lb.keys.shape[-2] != tb:
            raise RuntimeError("cache and attention mask disagree in length; cannot merge groups")
        la.keys = torch.cat([left_pad(la.keys, width - ta, 2), left_pad(lb.keys, width - tb, 2)])
        la.values = torch.cat([left_pad(la.values, width - ta, 2), left_pad(lb.values, width - tb, 2)])
        if hasattr(la, "cumulative_length"):
            la.cumulative_length = width
    mask = torch.cat([left_pad(a.attention_mask, width - ta, 1), left_pad(b.attention_mask, width - tb, 1)])
    return _Group(
        rows=a.rows + b.rows, cache=a.cache, attention_mask=mask, drafting=False, draft_len=a.draft_len,
        pending=a.pending + b.pending, next_pos=a.next_pos + b.next_pos, matching=a.matching + b.matching,
    )


def _new_cache(model):
    from transformers import DynamicCache

    return DynamicCache(config=model.config)


class _Decoder:
    """State of one greedy_decode call (see module docstring for the algorithm)."""

    def __init__(self, model, prompts, m, pad_id, drafts, logits_transform, first_draft, growth, forward_context):
        self.model, self.m, self.pad_id = model, m, pad_id
        self.context = forward_context
        self.drafts = drafts
        self.transform = logits_transform
        self.first_draft, self.growth = first_draft, growth
        self.device = next(model.parameters()).device
        self.prompts = [list(p) for p in prompts]
        self.generated: list[list[int]] = [[] for _ in prompts]
        self.gaps = [float("inf")] * len(prompts)
        self.passes = 0
        self.tokens = 0

    # -- one forward pass ---------------------------------------------------------------
    def _forward(self, group: _Group, input_ids, new_mask, position_ids, n_logits) -> torch.Tensor:
        group.attention_mask = torch.cat([group.attention_mask, new_mask], dim=1)
        with self.context(group.rows) if self.context is not None else nullcontext():
            out = self.model(
                input_ids=input_ids, attention_mask=group.attention_mask, position_ids=position_ids,
                past_key_values=group.cache, use_cache=True, logits_to_keep=n_logits,
            )
        group.cache = out.past_key_values
        self.passes += 1
        self.tokens += int(input_ids.numel())
        logits = out.logits.float()
        return self.transform(logits) if self.transform is not None else logits

    def _commit(self, group: _Group, logits, chunk_drafts: list[list[int]], base_col: int) -> list[bool]:
        """Accept drafts row by row, append greedy tokens, mask rejected columns.

        Returns, per row, whether the row still follows its reference draft.
        """
        top2 = logits.topk(2, dim=-1)
        greedy = top2.indices[..., 0].tolist()
        gaps = (top2.values[..., 0] - top2.values[..., 1]).tolist()
        width = logits.shape[1]
        still_matching = []
        for r, sample in enumerate(group.rows):
            draft = chunk_drafts[r]
            accepted = 0
            while accepted < len(draft) and draft[accepted] == greedy[r][accepted]:
                accepted += 1
            new = draft[:accepted] + [greedy[r][accepted]]
            new = new[: self.m - len(self.generated[sample])]
            self.generated[sample].extend(new)
            self.gaps[sample] = min(self.gaps[sample], *gaps[r][: len(new)])
            # columns after the last accepted draft token hold rejected drafts or dummies
            first_dead = base_col + 1 + accepted
            if first_dead < base_col + width:
                group.attention_mask[r, first_dead : base_col + width] = 0
            group.pending[r] = new[-1]
            group.next_pos[r] += len(new)
            n = len(self.generated[sample])
            reference = self.drafts[sample] if self.drafts is not None else None
            still_matching.append(
                reference is not None and accepted == len(draft) and self.generated[sample] == list(reference[:n])
            )
        return still_matching

    # -- rounds ---------------------------------------------------------------------------
    def _prefill(self) -> _Group:
        """Feed the left-padded prompts, plus a first draft probe when drafting."""
        n = len(self.prompts)
        probe = min(self.first_draft, self.m - 1) if self.drafts is not None else 0
        chunk_drafts = [list(self.drafts[i][:probe]) if probe else [] for i in range(n)]
        ids, mask = left_padded(self.prompts, self.pad_id)
        width = ids.shape[1]
        if probe:  # the draft probe follows every prompt: columns width..width + probe - 1
            ids = torch.cat([ids, torch.tensor(chunk_drafts, dtype=torch.long)], dim=1)
            mask = torch.cat([mask, torch.ones((n, probe), dtype=torch.long)], dim=1)
        positions = mask.cumsum(-1) - 1
        positions.masked_fill_(mask == 0, 1)  # the convention of HF generate for pad slots
        group = _Group(
            rows=list(range(n)), cache=_new_cache(self.model),
            attention_mask=torch.zeros((n, 0), dtype=torch.long, device=self.device),
            drafting=self.drafts is not None, draft_len=max(probe, 1),
            pending=[0] * n, next_pos=[len(p) - 1 for p in self.prompts],
        )
        logits = self._forward(group, ids.to(self.device), mask.to(self.device), positions.to(self.device), probe + 1)
        # `_commit` expects the column of the pending token at base_col: here the last prompt column
        group.matching = self._commit(group, logits, chunk_drafts, base_col=width - 1)
        group.draft_len *= self.growth
        return group

    def _step(self, group: _Group) -> list[bool]:
        """One round: every row feeds its pending token and (when drafting) a draft chunk."""
        draft_len = group.draft_len if group.drafting else 0
        chunk_drafts = []
        for r, sample in enumerate(group.rows):
            done = len(self.generated[sample])
            take = max(0, min(draft_len, self.m - done - 1))
            chunk_drafts.append(list(self.drafts[sample][done : done + take]) if take else [])
        width = 1 + max(len(d) for d in chunk_drafts)
        n = len(group.rows)
        ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((n, width), dtype=torch.long)
        positions = torch.zeros((n, width), dtype=torch.long)
        for r in range(n):
            row = [group.pending[r]] + chunk_drafts[r]
            ids[r, : len(row)] = torch.tensor(row)
            mask[r, : len(row)] = 1
            positions[r] = torch.arange(group.next_pos[r], group.next_pos[r] + width)
        base_col = group.attention_mask.shape[1]
        logits = self._forward(group, ids.to(self.device), mask.to(self.device), positions.to(self.device), width)
        return self._commit(group, logits, chunk_drafts, base_col)

    def run(self) -> DecodeResult:
        window = sliding_window(self.model)
        longest = max(len(p) for p in self.prompts)
        if window is not None and longest + 2 * self.m >= window:
            self.drafts = None  # masked draft columns could push real keys out of the window
        stack = [self._prefill()]
        while stack:
            group = stack.pop()
            while True:
                unfinished = [r for r, s in enumerate(group.rows) if len(self.generated[s]) < self.m]
                if not unfinished:
                    break
                if group.drafting:
                    follow = [r for r in unfinished if group.matching[r]]
                    if not follow:  # every row left its draft: join the waiting plain group
                        group.drafting = False
                        if unfinished != list(range(len(group.rows))):
                            group = group.select(unfinished, copy_cache=False)
                        if stack:
                            group = _merge(stack.pop(), group)
                        continue
                    elif len(follow) < len(unfinished):  # split off the rows that left their draft
                        diverged = [r for r in unfinished if not group.matching[r]]
                        plain = group.select(diverged, copy_cache=True)
                        plain.drafting = False
                        if stack:  # plain groups wait unstarted on the stack: keep just one
                            plain = _merge(stack.pop(), plain)
                        stack.append(plain)
                        unfinished = follow
                if len(unfinished) < len(group.rows):  # drop finished rows: smaller passes
                    group = group.select(unfinished, copy_cache=False)
                group.matching = self._step(group)
                group.draft_len = min(group.draft_len * self.growth, self.m)
        return DecodeResult(self.generated, self.gaps, self.passes, self.tokens)


@torch.inference_mode()
def greedy_decode(
    model,
    prompts: Sequence[Sequence[int]],
    m: int,
    pad_id: int,
    *,
    drafts: Sequence[Sequence[int]] | None = None,
    logits_transform: LogitsTransform | None = None,
    first_draft: int = 4,
    draft_growth: int = 2,
    forward_context: ForwardContext | None = None,
) -> DecodeResult:
    """Greedy-decode exactly `m` tokens after each prompt (batched, KV cache, no early stop).

    `drafts` (e.g. the true suffixes) only change the speed, never the tokens. A
    `logits_transform` is applied to every (batch, position, vocab) logits tensor before the
    argmax, so logit-level interventions work identically with or without drafts.
    `forward_context(rows)` (rows = indices into `prompts` of the batch rows, in order) wraps
    every forward pass, e.g. to install residual-stream hooks for exactly those samples.
    """
    if m <= 0:
        raise MemkitError(f"m must be positive, got {m}")
    if not prompts:
        return DecodeResult([], [])
    if any(len(p) == 0 for p in prompts):
        raise MemkitError("every prompt needs at least one token")
    if drafts is not None and len(drafts) != len(prompts):
        raise MemkitError("drafts must be given for every prompt")
    decoder = _Decoder(model, prompts, m, pad_id, drafts, logits_transform, first_draft, draft_growth,
                       forward_context)
    return decoder.run()
