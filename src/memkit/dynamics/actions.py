"""Controlled perturbations ("actions") of magnitude alpha, at the token, embedding or logit level.

    action = Action("substitute_rare", alpha=0.25, seed=0)      # 25 % of prefix tokens -> rare tokens
    action = Action("embed_random", alpha=0.5, layer=3)         # + 0.5 * mean|h_3| * v on the prompt
    action = Action("logit_tail", alpha=2.0)                    # +2 on logits outside the top-p mass
    action = Action("force_token", alpha=1, position=8)         # wrong token at continuation step 8
    df = perturb(lm, samples, action)                           # memkit metrics of perturbed runs

What alpha means, per kind (alpha = 0 always reproduces the clean run exactly):
- token kinds act on the k prefix tokens; alpha is the fraction of them affected:
  `insert_rare` inserts round(alpha*k) rare tokens at random places; `substitute_rare`
  replaces round(alpha*k) random positions by rare tokens; `delete` removes round(alpha*k)
  random tokens; `truncate` drops the first round(alpha*k) tokens (keeps the end, next to the
  continuation); `insert_shock` inserts round(alpha*k) tokens of an out-of-domain segment at
  `position` (default: the middle); `typo` applies one character edit (swap, drop or
  replace a letter) to a fraction alpha of the prefix words and re-tokenises.
  "Rare" tokens are the last ids of the tokenizer's base vocabulary: byte-level BPE assigns
  ids in merge order, so the final merges are the rarest pieces of its training corpus
  (special and added tokens excluded).
- embedding kinds add alpha * mean|h_l| * v to the residual stream after block `layer` at
  prompt positions >= `position` (default: every prompt token after the leading special
  tokens), with mean|h_l| the sample's own mean hidden-state norm there, so alpha means the
  same across models: `embed_random` uses one random unit direction v (from `seed`),
  `embed_noise` fresh isotropic gaussian noise of expected norm alpha * mean|h_l| per position,
  `embed_direction` a given unit direction (e.g. `difference_of_means`).
- logit kinds act at every decoding step: `logit_rare_bias` adds alpha to the logits of the
  rare-token set; `logit_tail` adds alpha to every token outside the top-p (0.9) mass.
- `force_token` (mid-sequence shock, `memkit.dynamics.perturb`): the model's own clean greedy
  continuation is followed up to step t = `position` (default m // 4), then round(alpha)
  tokens are forced, each the model's best token other than its own greedy choice at that
  point (the most plausible single error), and greedy decoding continues from there;
  `relock_step` reports when the continuation re-locks onto the reference suffix.
"""

from __future__ import annotations

import copy
import math
import random
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Sequence

import torch

from ..core.arch import d_model, decoder_layers
from ..core.hooks import record_residuals, residual_edit
from ..core.samples import Sample, leading_special_ids, prompt_ids
from ..errors import MemkitError
from .action_kinds import EMBEDDING_KINDS, FAMILIES, KINDS, LOGIT_KINDS, SHOCK_KINDS, TOKEN_KINDS  # noqa: F401 (re-exported)

RARE_SET_SIZE = 1000
SHOCK_TEXT = (" BREAKING: quarterly sodium futures closed 3.7% lower as the committee postponed"
              " the vote on zoning variances for offshore parking structures until further notice.")


@dataclass(frozen=True)
class Action:
    """One perturbation; deterministic for a given `seed` (see the module docstring)."""

    kind: str
    alpha: float = 0.0
    layer: int | None = None
    position: int | None = None
    seed: int = 0
    top_p: float = 0.9
    direction: torch.Tensor | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise MemkitError(f"unknown action kind {self.kind!r}; choose one of {', '.join(KINDS)}")
        if not (isinstance(self.alpha, (int, float)) and math.isfinite(self.alpha) and self.alpha >= 0):
            raise MemkitError(f"action magnitude alpha must be a finite number >= 0 (got {self.alpha})")
        if self.family == "embedding" and self.layer is None:
            raise MemkitError(f"action {self.kind} needs a layer")
        if self.kind == "embed_direction" and self.direction is None:
            raise MemkitError("action embed_direction needs a direction vector (see difference_of_means)")
        if self.position is not None and self.position < 0:
            raise MemkitError(f"action position must be >= 0 (got {self.position})")
        if not 0 < self.top_p <= 1:
            raise MemkitError(f"top_p must be in (0, 1] (got {self.top_p})")

    @property
    def family(self) -> str:
        return FAMILIES[self.kind]

    def with_alpha(self, alpha: float) -> "Action":
        return replace(self, alpha=alpha)


def rare_token_ids(tokenizer, size: int = RARE_SET_SIZE) -> list[int]:
    """The last `size` ids of the base vocabulary (latest BPE merges), specials excluded."""
    special = set(tokenizer.all_special_ids) | set(getattr(tokenizer, "added_tokens_decoder", {}) or {})
    base_size = len(tokenizer) - len(getattr(tokenizer, "added_tokens_decoder", {}) or {})
    ids = [i for i in range(base_size - 1, -1, -1) if i not in special]
    return sorted(ids[:size])


def check_layer(lm, layer: int | None) -> None:
    if layer is None:
        return
    n = len(decoder_layers(lm.model))
    if not 0 <= layer < n:
        raise MemkitError(f"layer {layer} out of range: {lm.name} has {n} layers (0..{n - 1})")


# -- token level ---------------------------------------------------------------------------
def _typo(word: str, rng: random.Random) -> str:
    letters = [i for i, ch in enumerate(word) if ch.isalpha()]
    if not letters:
        return word
    i = rng.choice(letters)
    op = rng.choice(("swap", "drop", "replace"))
    if op == "swap" and i + 1 < len(word):
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if op == "drop" and len(word) > 1:
        return word[:i] + word[i + 1:]
    alphabet = "abcdefghijklmnopqrstuvwxyz"
    return word[:i] + rng.choice(alphabet.replace(word[i].lower(), "")) + word[i + 1:]


def perturb_prefix(tokenizer, prefix: Sequence[int], action: Action) -> list[int]:
    """The perturbed prefix token ids of a token-level action."""
    prefix = list(prefix)
    k = len(prefix)
    n = int(round(action.alpha * k))
    if n == 0:
        return prefix
    rng = random.Random(action.seed)
    if action.kind in ("insert_rare", "substitute_rare"):
        rare = rare_token_ids(tokenizer)
        if action.kind == "substitute_rare":
            for i in rng.sample(range(k), min(n, k)):
                prefix[i] = rng.choice(rare)
            return prefix
        for _ in range(n):
            prefix.insert(rng.randrange(len(prefix) + 1), rng.choice(rare))
        return prefix
    if action.kind == "delete":
        drop = set(rng.sample(range(k), min(n, k - 1)))
        return [t for i, t in enumerate(prefix) if i not in drop]
    if action.kind == "truncate":
        return prefix[min(n, k - 1):]
    if action.kind == "insert_shock":
        shock = tokenizer(SHOCK_TEXT, add_special_tokens=False)["input_ids"]
        segment = (shock * (n // len(shock) + 1))[:n]
        at = k // 2 if action.position is None else min(action.position, k)
        return prefix[:at] + segment + prefix[at:]
    if action.kind == "typo":
        words = tokenizer.decode(prefix).split(" ")
        candidates = [i for i, w in enumerate(words) if any(ch.isalpha() for ch in w)]
        count = int(round(action.alpha * len(candidates)))
        for i in rng.sample(candidates, min(count, len(candidates))):
            words[i] = _typo(words[i], rng)
        return tokenizer(" ".join(words), add_special_tokens=False)["input_ids"]
    raise MemkitError(f"{action.kind} is not a token-level action")


def apply_token_action(tokenizer, sample: Sample, action: Action) -> Sample:
    """A new Sample whose prompt holds the perturbed prefix (same suffix, same mode)."""
    new_prefix = perturb_prefix(tokenizer, sample.prefix_ids, action)
    if new_prefix == list(sample.prefix_ids):
        return sample
    prompt = prompt_ids(tokenizer, new_prefix, sample.mode)
    return replace(sample, prompt_ids=tuple(prompt), meta={**sample.meta, "perturbed_prefix": new_prefix})


# -- logit level -----------------------------------------------------------------------------
def logits_transform(tokenizer, action: Action):
    """The per-step logits transform of a logit-level action (None when alpha = 0)."""
    if action.alpha == 0:
        return None
    if action.kind == "logit_rare_bias":
        rare = torch.tensor(rare_token_ids(tokenizer))

        def bias(logits: torch.Tensor) -> torch.Tensor:
            logits = logits.clone()
            logits[..., rare.to(logits.device)] += action.alpha
            return logits
        return bias
    if action.kind == "logit_tail":
        def tail(logits: torch.Tensor) -> torch.Tensor:
            probs = logits.softmax(-1)
            sorted_probs, order = probs.sort(-1, descending=True)
            before = sorted_probs.cumsum(-1) - sorted_probs  # mass strictly before each token
            outside_sorted = before >= action.top_p
            outside = torch.zeros_like(outside_sorted).scatter(-1, order, outside_sorted)
            return logits + action.alpha * outside.to(logits.dtype)
        return tail
    raise MemkitError(f"{action.kind} is not a logit-level action")


# -- embedding level -------------------------------------------------------------------------
def random_direction(width: int, seed: int) -> torch.Tensor:
    """A unit vector of `width` coordinates, drawn from `seed`."""
    generator = torch.Generator().manual_seed(seed)
    v = torch.randn(width, generator=generator)
    return v / v.norm()


@torch.inference_mode()
def mean_hidden_norm(lm, prompt_ids: Sequence[int], layer: int, start: int) -> float:
    """Mean |h| after block `layer` over the prompt positions >= start (the alpha unit)."""
    ids = torch.tensor([list(prompt_ids)], device=lm.device)
    with record_residuals(lm.model) as store:
        lm.model(input_ids=ids, logits_to_keep=1)
    hidden = store[layer][0][0, start:]
    return float(hidden.norm(dim=-1).mean())


@torch.inference_mode()
def difference_of_means(lm, layer: int, texts_a: Sequence[str], texts_b: Sequence[str]) -> torch.Tensor:
    """Unit vector mean(h_l | texts_a) - mean(h_l | texts_b), averaged over token positions."""
    def mean_state(texts):
        states = []
        for text in texts:
            ids = leading_special_ids(lm.tokenizer) + lm.tokenizer(text, add_special_tokens=False)["input_ids"]
            with record_residuals(lm.model) as store:
                lm.model(input_ids=torch.tensor([ids], device=lm.device), logits_to_keep=1)
            states.append(store[layer][0][0, len(leading_special_ids(lm.tokenizer)):].mean(0))
        return torch.stack(states).mean(0)

    v = mean_state(texts_a) - mean_state(texts_b)
    return v / v.norm()


def embedding_span(lm, sample: Sample, action: Action) -> tuple[int, int]:
    """[start, end) of the prompt positions an embedding action edits."""
    start = len(leading_special_ids(lm.tokenizer)) if action.position is None else action.position
    end = len(sample.prompt_ids)
    if start >= end:
        raise MemkitError(f"sample {sample.id!r}: action position {start} is past the prompt ({end} tokens)")
    return start, end


class EmbeddingEdit:
    """Per-sample residual edit of an embedding action, installed around each forward pass for the rows in it.

    `scales[i]` = alpha * mean|h| of sample i (its push size); `edit_rows(rows)` is the
    `residual_edit` function for a batch holding samples `rows`; `with_alpha` reuses the
    measured norms for another alpha of the same action.
    """

    def __init__(self, lm, samples: Sequence[Sample], action: Action):
        check_layer(lm, action.layer)
        self.lm, self.action = lm, action
        self.spans = [embedding_span(lm, s, action) for s in samples]
        self.norms = [mean_hidden_norm(lm, s.prompt_ids, action.layer, span[0]) if action.alpha else 0.0
                      for s, span in zip(samples, self.spans)]
        self.scales = [action.alpha * norm if action.alpha else 0.0 for norm in self.norms]
        if action.kind == "embed_direction":
            self.direction = action.direction.float() / action.direction.float().norm()
        else:
            self.direction = random_direction(d_model(lm.model), action.seed)
        self.noise_seed = action.seed
        self.sample_keys = [zlib.crc32(s.id.encode()) for s in samples]  # noise independent of batching

    def with_alpha(self, alpha: float) -> "EmbeddingEdit":
        """The same edit at another alpha (same samples, spans, direction and noise; norms not re-measured)."""
        if not self.action.alpha:
            raise MemkitError("with_alpha needs an edit built at alpha > 0 (alpha = 0 measures no norms)")
        edit = copy.copy(self)
        edit.action = replace(self.action, alpha=alpha)
        edit.scales = [alpha * norm for norm in self.norms]
        return edit

    def edit_rows(self, rows: list[int]):
        """The residual edit (hidden, position_ids) -> hidden for a batch whose row b is sample rows[b]."""
        spans = torch.tensor([self.spans[r] for r in rows])
        scales = torch.tensor([self.scales[r] for r in rows])

        def edit(hidden: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
            inside = (positions >= spans[:, :1].to(positions.device)) & (positions < spans[:, 1:].to(positions.device))
            if not inside.any():
                return hidden
            if self.action.kind == "embed_noise":
                # noise depends only on (seed, sample id, position): identical across batch shapes
                d = hidden.shape[-1]
                push = torch.zeros_like(hidden)
                for b, row in enumerate(rows):
                    for c in inside[b].nonzero().flatten().tolist():
                        g = torch.Generator().manual_seed(hash((self.noise_seed, self.sample_keys[row], int(positions[b, c]))) % 2**62)
                        push[b, c] = torch.randn(d, generator=g).to(hidden) / math.sqrt(d)
            else:
                push = self.direction.to(hidden).expand_as(hidden)
            factor = (scales.to(hidden).view(-1, 1, 1) * inside.unsqueeze(-1).to(hidden))
            return hidden + factor * push
        return edit

    @contextmanager
    def around_forward(self, rows: list[int]):
        with residual_edit(self.lm.model, self.action.layer, self.edit_rows(rows)):
            yield


def forward_context(lm, samples: Sequence[Sample], action: Action):
    """The per-forward context for `greedy_decode` (embedding actions), or None."""
    if action.family != "embedding" or action.alpha == 0:
        return None
    return EmbeddingEdit(lm, samples, action).around_forward


__all__ = ["Action", "KINDS", "TOKEN_KINDS", "EMBEDDING_KINDS", "LOGIT_KINDS", "SHOCK_KINDS", "FAMILIES",
           "apply_token_action", "logits_transform", "difference_of_means", "forward_context", "rare_token_ids",
           "perturb_prefix", "check_layer"]
