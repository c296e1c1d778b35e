"""Attention-head ablation: silence one head at a time, measure what the model still recites.

    means = head_means(lm, generic_texts)                        # for mean ablation
    with ablate_heads(lm.model, [(3, 1)], mode="zero"):          # hooks always removed on exit
        ...
    scan = head_scan(lm, samples, mode="mean", means=means)      # every (layer, head), teacher forced + greedy
    top = top_heads(scan, metric="delta_logprob"); conc = concentration(scan)

A head's output is its slice `[h * head_dim, (h + 1) * head_dim)` of the input of the
attention output projection (`o_proj` in Llama/Gemma, `attention.dense` in GPT-NeoX): a
forward pre-hook replaces that slice by zeros (`zero`) or by the head's mean output over a
reference set of generic text (`mean`: one vector per head, averaged over every token
position, so position-independent). In grouped-query models (SmolLM2, Gemma) the o_proj input
has num_attention_heads x head_dim columns, so *query* heads are ablated.

The scan batches several heads at once: each batch row carries its own (layer, head), and the
hook edits each row separately, so one forward pass serves many ablations with results
identical to one-at-a-time runs (tested). Per sample and head it records the teacher-forced
log-probability of the true suffix (sum over the m tokens) and, optionally, the greedy
continuation (exact drafted decoding of `memkit.core.decode`) scored against the true suffix
(`token_match`) and against the model's own clean continuation (`retention`, the Biderman
score of `memkit.dynamics.sweeps`), so controls get a meaningful retention too.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import replace
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from ..core.arch import attention_output, decoder_layers, head_shape
from ..core.batching import padded_batches, right_padded
from ..core.extract import extract, pad_token_id
from ..core.hooks import attach
from ..core.metrics import token_match
from ..core.models import LoadedModel
from ..core.samples import Sample
from ..core.text import text_windows
from ..errors import MemkitError

MODES = ("zero", "mean")
Head = tuple[int, int]


def _check_mode(mode: str, means: torch.Tensor | None) -> None:
    if mode not in MODES:
        raise MemkitError(f"unknown ablation mode {mode!r}; choose one of {', '.join(MODES)}")
    if mode == "mean" and means is None:
        raise MemkitError("mean ablation needs the head means (see head_means)")


def _check_heads(model, heads: Sequence[Head | None]) -> None:
    n_layers, n_heads, _ = head_shape(model)
    for head in heads:
        if head is not None and not (0 <= head[0] < n_layers and 0 <= head[1] < n_heads):
            raise MemkitError(f"head {head} out of range: the model has {n_layers} layers x {n_heads} heads")


def _ablation_hooks(model, by_layer: dict[int, list[tuple[int | None, int]]], mode: str, means: torch.Tensor | None,
                    n_rows: int | None = None) -> list:
    """Pre-forward hooks on the attention output projections that overwrite head slices of their input.

    `by_layer[l]` lists (batch row, head) pairs, row None meaning every row; with `n_rows` the
    batch must have exactly that many rows.
    """
    _, _, head_dim = head_shape(model)

    def make(layer: int, edits: list[tuple[int | None, int]]):
        def hook(module, args):
            (x, *rest) = args
            if n_rows is not None and x.shape[0] != n_rows:
                raise RuntimeError(f"ablation set up for {n_rows} rows, got a batch of {x.shape[0]}")
            x = x.clone()
            for row, head in edits:
                cols = slice(head * head_dim, (head + 1) * head_dim)
                value = 0.0 if mode == "zero" else means[layer, cols].to(x.dtype)
                if row is None:
                    x[..., cols] = value
                else:
                    x[row, :, cols] = value
            return (x, *rest)
        return hook

    return [(attention_output(model, layer), "pre_forward", make(layer, edits)) for layer, edits in by_layer.items()]


@contextmanager
def ablate_rows(model, row_heads: Sequence[Head | None], mode: str = "zero",
                means: torch.Tensor | None = None) -> Iterator[None]:
    """Ablate head `row_heads[r]` (or nothing for None) in batch row r of every forward pass."""
    _check_mode(mode, means)
    _check_heads(model, row_heads)
    by_layer: dict[int, list[tuple[int | None, int]]] = {}
    for row, head in enumerate(row_heads):
        if head is not None:
            by_layer.setdefault(int(head[0]), []).append((row, int(head[1])))
    with attach(_ablation_hooks(model, by_layer, mode, means, n_rows=len(row_heads))):
        yield


@contextmanager
def ablate_heads(model, heads: Sequence[Head], mode: str = "zero", means: torch.Tensor | None = None) -> Iterator[None]:
    """Ablate the given heads in every row of every forward pass (hooks removed on exit)."""
    _check_mode(mode, means)
    _check_heads(model, heads)
    by_layer: dict[int, list[tuple[int | None, int]]] = {}
    for layer, head in heads:
        by_layer.setdefault(int(layer), []).append((None, int(head)))
    with attach(_ablation_hooks(model, by_layer, mode, means)):
        yield


@torch.inference_mode()
def head_means(lm: LoadedModel, texts: Sequence[str], *, seq_len: int = 128, batch_size: int = 8,
               max_windows: int | None = None) -> torch.Tensor:
    """Mean input of every attention output projection over all token positions of `texts`: (layers, width)."""
    model = lm.model
    n_layers = len(decoder_layers(model))
    windows = text_windows(lm.tokenizer, texts, seq_len, max_windows)
    width = attention_output(model, 0).in_features
    sums = torch.zeros(n_layers, width, dtype=torch.float64)
    current: dict[str, torch.Tensor] = {}

    def summer(layer: int):
        def hook(module, args):
            x = args[0].double()
            sums[layer] += (x * current["mask"].to(x.device)[..., None]).sum((0, 1)).cpu()
        return hook

    count = 0
    with attach([(attention_output(model, layer), "pre_forward", summer(layer)) for layer in range(n_layers)]):
        for ids, mask in padded_batches(windows, batch_size, pad_token_id(lm.tokenizer)):
            current["mask"] = mask.double()
            model(input_ids=ids.to(lm.device), attention_mask=mask.to(lm.device), use_cache=False)
            count += int(mask.sum())
    return (sums / count).float()


class LayerInputs:
    """The inputs of every decoder block in one clean forward pass, to rerun the model from any block.

    Ablating a head of block l cannot change blocks 0..l-1, so `tail(l)` starts from the
    recorded input of block l (same masks, rotary embeddings and position ids as the full
    pass) and returns the last block's output; with no ablation it equals the full pass.
    """

    @torch.inference_mode()
    def __init__(self, model, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        self.model = model
        self.layers = decoder_layers(model)
        self.calls: list[tuple[tuple, dict]] = [None] * len(self.layers)  # type: ignore[list-item]

        def recorder(index: int):
            def hook(module, args, kwargs):
                self.calls[index] = (args, dict(kwargs))
            return hook

        with attach([(block, "pre_forward_kwargs", recorder(index)) for index, block in enumerate(self.layers)]):
            self.logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits.float()

    @torch.inference_mode()
    def tail(self, layer: int) -> torch.Tensor:
        """Output of the last block when the forward pass is rerun from block `layer` (hooks apply)."""
        args, kwargs = self.calls[layer]
        hidden = args[0] if args else kwargs["hidden_states"]
        for index in range(layer, len(self.layers)):
            args_i, kwargs_i = self.calls[index]
            kwargs_i = {k: v for k, v in kwargs_i.items() if k != "hidden_states"}
            out = self.layers[index](hidden, *args_i[1:], **kwargs_i)
            hidden = out[0] if isinstance(out, tuple) else out
        return hidden


@torch.inference_mode()
def suffix_logprobs(lm: LoadedModel, samples: Sequence[Sample], *, heads: Sequence[Head] = (), mode: str = "zero",
                    means: torch.Tensor | None = None) -> tuple[list[float], list[list[bool]]]:
    """Teacher-forced sum log-prob of each sample's suffix and, per suffix token, whether it is the argmax.

    With `heads` ablated (in every sample) when given; a full forward pass, for checks and small jobs.
    """
    ids, mask = right_padded([list(s.prompt_ids) + list(s.suffix_ids) for s in samples], pad_token_id(lm.tokenizer))
    context = ablate_heads(lm.model, heads, mode, means) if heads else nullcontext()
    with context:
        logits = lm.model(input_ids=ids.to(lm.device), attention_mask=mask.to(lm.device), use_cache=False).logits
    return _score(logits.float(), samples)


def _score(logits: torch.Tensor, samples: Sequence[Sample]) -> tuple[list[float], list[list[bool]]]:
    totals, hits = [], []
    for i, s in enumerate(samples):
        cols = torch.arange(len(s.prompt_ids) - 1, len(s.prompt_ids) - 1 + len(s.suffix_ids))
        target = torch.tensor(s.suffix_ids, device=logits.device)
        logprobs = torch.log_softmax(logits[i, cols], dim=-1)
        totals.append(float(logprobs.gather(-1, target[:, None]).sum()))
        hits.append((logits[i, cols].argmax(-1) == target).tolist())
    return totals, hits


def _tail_scores(lm: LoadedModel, inputs: LayerInputs, samples: Sequence[Sample], layer: int,
                 head: int, mode: str, means) -> tuple[list[float], list[list[bool]]]:
    """Teacher-forced scores with one head ablated, rerunning only blocks layer..L-1 and projecting only
    the suffix positions onto the vocabulary."""
    from .lens import lens_logits

    with ablate_heads(lm.model, [(layer, head)], mode, means):
        hidden = inputs.tail(layer)
    totals, hits = [], []
    for i, s in enumerate(samples):
        cols = torch.arange(len(s.prompt_ids) - 1, len(s.prompt_ids) - 1 + len(s.suffix_ids))
        logits = lens_logits(lm.model, hidden[i, cols])
        target = torch.tensor(s.suffix_ids, device=logits.device)
        totals.append(float(torch.log_softmax(logits, -1).gather(-1, target[:, None]).sum()))
        hits.append((logits.argmax(-1) == target).tolist())
    return totals, hits


def _greedy(lm: LoadedModel, samples: Sequence[Sample], heads: Sequence[Head | None], mode: str,
            means: torch.Tensor | None, batch_size: int) -> list[list[int]]:
    """Greedy continuations, sample i decoded with head heads[i] ablated (drafted by its suffix, exact)."""
    if not samples:
        return []
    tagged = [replace(s, id=f"{i}", meta={"_head": heads[i]}) for i, s in enumerate(samples)]

    def factory(batch):
        return lambda rows: ablate_rows(lm.model, [batch[r].meta["_head"] for r in rows], mode, means)

    frame = extract(lm, tagged, batch_size=batch_size, progress=False, context_factory=factory)
    return [list(g) for g in frame["generated_ids"]]


def head_scan(lm: LoadedModel, samples: Sequence[Sample], *, mode: str = "zero", means: torch.Tensor | None = None,
              heads: Sequence[Head] | None = None, greedy: bool = True, batch_size: int = 16,
              progress: bool = True) -> pd.DataFrame:
    """Every head ablated in turn on every sample: teacher-forced log-prob and greedy scores vs no ablation.

    One row per (head, sample) plus the unablated baseline rows (layer = head = -1), in that
    order. Columns: id, layer, head, mode, logprob (sum over the suffix), argmax_share (suffix
    tokens that are the argmax), delta_logprob and delta_argmax (ablated minus clean), and
    with `greedy`: token_match (greedy continuation vs the true suffix), retention (vs the
    clean greedy continuation), delta_token_match.

    Cost: per head, only blocks l..L-1 are rerun on one batch of samples. Greedy decoding only
    runs where it can differ from the clean continuation: teacher forcing the clean
    continuation, if every argmax still equals it, greedy decoding provably reproduces it
    (retention 1); only the other (head, sample) pairs are decoded, drafted by the clean
    continuation.
    """
    _check_mode(mode, means)
    n_layers, n_heads, _ = head_shape(lm.model)
    heads = [(l, h) for l in range(n_layers) for h in range(n_heads)] if heads is None else [tuple(x) for x in heads]
    _check_heads(lm.model, heads)
    samples = list(samples)
    n = len(samples)
    clean = _greedy(lm, samples, [None] * n, mode, means, batch_size) if greedy else None
    # teacher-forced sequences: the true suffix of every sample, then the clean continuation where it differs
    tf_samples = list(samples)
    clean_row = list(range(n))
    if greedy:
        for i, s in enumerate(samples):
            if list(clean[i]) != list(s.suffix_ids):
                clean_row[i] = len(tf_samples)
                tf_samples.append(replace(s, suffix_ids=tuple(clean[i])))
    pad = pad_token_id(lm.tokenizer)
    batches = [list(range(b, min(b + batch_size, len(tf_samples)))) for b in range(0, len(tf_samples), batch_size)]
    logprob = {}  # (head or None, tf row) -> (sum logprob, hits)
    bar = tqdm(total=len(heads) * len(batches), desc=f"heads {lm.name} ({mode})", unit="head-batch",
               disable=not progress)
    for rows in batches:
        part = [tf_samples[r] for r in rows]
        ids, mask = right_padded([list(s.prompt_ids) + list(s.suffix_ids) for s in part], pad)
        inputs = LayerInputs(lm.model, ids.to(lm.device), mask.to(lm.device))
        for r, total, hit in zip(rows, *_score(inputs.logits, part)):
            logprob[(None, r)] = (total, hit)
        for head in heads:
            for r, total, hit in zip(rows, *_tail_scores(lm, inputs, part, head[0], head[1], mode, means)):
                logprob[(head, r)] = (total, hit)
            bar.update(1)
        del inputs
    bar.close()
    jobs: list[tuple[Head | None, int]] = [(None, i) for i in range(n)] + [(h, i) for h in heads for i in range(n)]
    frame = pd.DataFrame({
        "id": [samples[i].id for _, i in jobs],
        "layer": [h[0] if h is not None else -1 for h, _ in jobs],
        "head": [h[1] if h is not None else -1 for h, _ in jobs],
        "mode": mode,
        "logprob": [logprob[(h, i)][0] for h, i in jobs],
        "argmax_share": [float(np.mean(logprob[(h, i)][1])) for h, i in jobs],
    })
    frame["delta_logprob"] = frame["logprob"] - np.tile(frame["logprob"].to_numpy()[:n], len(heads) + 1)
    frame["delta_argmax"] = frame["argmax_share"] - np.tile(frame["argmax_share"].to_numpy()[:n], len(heads) + 1)
    if greedy:
        generated: list[list[int] | None] = [list(clean[i]) if h is None or all(logprob[(h, clean_row[i])][1])
                                             else None for h, i in jobs]
        todo = [k for k, g in enumerate(generated) if g is None]
        drafted = [replace(samples[jobs[k][1]], suffix_ids=tuple(clean[jobs[k][1]])) for k in todo]
        for k, g in zip(todo, _greedy(lm, drafted, [jobs[k][0] for k in todo], mode, means, batch_size)):
            generated[k] = g
        frame["token_match"] = [token_match(g, samples[i].suffix_ids) for g, (_, i) in zip(generated, jobs)]
        frame["retention"] = [token_match(g, clean[i]) for g, (_, i) in zip(generated, jobs)]
        frame["delta_token_match"] = frame["token_match"] - np.tile(frame["token_match"].to_numpy()[:n],
                                                                    len(heads) + 1)
        frame["decoded"] = [k in set(todo) for k in range(len(jobs))]
    return frame


def head_effects(scan: pd.DataFrame, metric: str = "delta_logprob", groups: pd.Series | None = None) -> pd.DataFrame:
    """Mean effect of each head (rows with layer >= 0), per group when `groups` (id -> label) is given."""
    part = scan[scan["layer"] >= 0]
    if groups is not None:
        part = part.assign(group=part["id"].map(groups))
        keys = ["group", "layer", "head"]
    else:
        keys = ["layer", "head"]
    return part.groupby(keys, sort=True)[metric].mean().reset_index()


def top_heads(scan: pd.DataFrame, *, metric: str = "delta_logprob", n: int = 5,
              groups: pd.Series | None = None, group: str | None = None) -> pd.DataFrame:
    """The n heads whose ablation lowers `metric` the most (most negative mean effect), with their share."""
    effects = head_effects(scan, metric, groups)
    if group is not None:
        effects = effects[effects["group"] == group].drop(columns="group")
    total = effects[metric].abs().sum()
    ranked = effects.sort_values([metric, "layer", "head"], kind="stable").head(n).reset_index(drop=True)
    ranked["share"] = ranked[metric].abs() / total if total > 0 else np.nan
    return ranked


def gini(values: Sequence[float]) -> float:
    """Gini coefficient of non-negative values: 0 all equal, -> 1 all mass in one entry."""
    x = np.sort(np.abs(np.asarray(values, dtype=float)))
    if len(x) == 0 or x.sum() == 0:
        return float("nan")
    n = len(x)
    return float((2 * np.arange(1, n + 1) - n - 1).dot(x) / (n * x.sum()))


def concentration(effects: pd.DataFrame, metric: str = "delta_logprob", ks: Sequence[int] = (1, 3, 5)) -> dict:
    """How concentrated |effect| is across heads: top-k shares, Gini, the layer holding most of it.

    `effects` has one row per (layer, head) (see `head_effects`). Returns top{k}_share, gini,
    n_heads, top_layer, top_layer_share, layer_gini.
    """
    mag = effects[metric].abs()
    total = float(mag.sum())
    out: dict = {"n_heads": int(len(effects)), "gini": gini(mag)}
    ordered = np.sort(mag.to_numpy())[::-1]
    for k in ks:
        out[f"top{k}_share"] = float(ordered[:k].sum() / total) if total > 0 else float("nan")
    by_layer = mag.groupby(effects["layer"]).sum()
    out["top_layer"] = int(by_layer.idxmax()) if total > 0 else -1
    out["top_layer_share"] = float(by_layer.max() / total) if total > 0 else float("nan")
    out["layer_gini"] = gini(by_layer)
    return out
