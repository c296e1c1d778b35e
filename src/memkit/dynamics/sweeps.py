"""Batched sweeps of controlled perturbations: alpha, layer and shock sweeps, and the samples they run on.

    samples, clean, groups = dynamics_samples(lm, records, k=32, m=24, clean_m=64)  # recited + controls
    runs = alpha_sweep(lm, samples, clean, "embed_random", [0, .25, .5, 1], layer=4, seeds=(0, 1))
    heat = layer_sweep(lm, samples, clean, layers=[0, 2, 4], alphas=[0, .5, 1])
    shocks = shock_sweep(lm, samples, clean, alphas=[1, 2], positions=[8])
    summary = shock_summary(shocks.assign(group=shocks["id"].map(groups)))

Used by the paper notebooks `fig_phase`, `fig_layers` and `tab_shock`; the fits of the
resulting curves are in `memkit.dynamics.transitions`. `dynamics_samples` picks the
attractors a model recites (clean Biderman score >= threshold, `memorization_groups`) and the
shuffled-text controls.

Retention. Every perturbed run is compared with the model's own *clean* greedy continuation
(the run with alpha = 0): `retention` is the Biderman score (fraction of the m positions equal)
and `exact_retention` the exact match (all m equal), both with the clean continuation as the
reference. For a memorized sample (clean continuation = true text) this is the ordinary
Biderman score / exact match against the true text, which is also kept (`token_match`,
`exact_match`); for a non-memorized control it measures the same thing -- how much of what the
model would have said survives the action -- where the true text says nothing (the model never
produced it). Because the clean continuation is used as the decoding draft, a run that keeps
its continuation costs one verification pass whatever the sample.

Batching. `alpha_sweep` decodes every (sample, alpha, seed) of one action kind in the same
batches: token actions are just other prompts; embedding and logit actions get a per-row edit
(`EmbeddingEdit` of `memkit.dynamics.actions` per row; the `logits_transform` of each row's
action applied through a forward hook on the model output). The tokens are those of
`memkit.dynamics.perturb.perturb` run one alpha at a time (tested), at a fraction of the cost.
"""

from __future__ import annotations

import math
from pathlib import Path
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from ..core.extract import extract
from ..core.hooks import attach, residual_edit
from ..core.metrics import exact_match, prefix_match_len, token_match
from ..core.models import LoadedModel
from ..core.samples import Sample
from ..errors import MemkitError
from .actions import FAMILIES, Action, EmbeddingEdit, apply_token_action, check_layer, logits_transform
from .perturb import observe, perturb, relock_step

#: Kinds whose effect depends on the action seed (random positions, tokens or directions).
SEEDED_KINDS = frozenset({"insert_rare", "substitute_rare", "delete", "typo", "embed_random", "embed_noise"})
#: Group labels given by `memorization_groups`.
GROUPS = ("memorized", "control", "other")


# -- samples and groups ----------------------------------------------------------------------------
def memorization_groups(clean: pd.DataFrame, threshold: float = 0.9, metric: str = "token_match",
                        control_category: str = "control", category_column: str = "meta_category") -> pd.Series:
    """Label each clean-run row: `memorized` (metric >= threshold, or exact match), `control` (records
    of `control_category`, e.g. shuffled texts, whatever they score) or `other`. Indexed by id."""
    is_control = (clean[category_column] == control_category) if category_column in clean else False
    recited = (clean[metric] >= threshold) | clean["exact_match"].astype(bool)
    labels = np.where(is_control, "control", np.where(recited, "memorized", "other"))
    return pd.Series(labels, index=clean["id"].to_numpy(), name="group")


def with_clean_reference(samples: Sequence[Sample], clean: pd.DataFrame) -> list[Sample]:
    """The samples with their suffix replaced by the model's clean greedy continuation.

    The true suffix is kept in `meta["true_suffix_ids"]`. Decoding drafts and every metric of
    `extract`/`perturb` then refer to what the model itself said without an action.
    """
    generated = dict(zip(clean["id"], clean["generated_ids"]))
    return [replace(s, suffix_ids=tuple(int(t) for t in generated[s.id]),
                    meta={**s.meta, "true_suffix_ids": list(s.suffix_ids)}) for s in samples]


def clean_runs(lm: LoadedModel, records: Sequence[dict], *, k: int, clean_m: int,
               batch_size: int = 16) -> tuple[list[dict], pd.DataFrame]:
    """(records long enough for k + clean_m tokens, their clean greedy runs with suffix length clean_m).

    One `cached_extract` entry per (model, records, k, clean_m, batch): every experiment that
    selects its samples from the same records reads the same cached runs (Table 1's when
    clean_m = 64 and batch 16), so parallel notebooks never compute one entry twice.
    """
    from ..core.extract import cached_extract
    from ..core.samples import make_samples

    tokenizer = lm.tokenizer
    usable = [r for r in records if "text" not in r
              or len(tokenizer(r["text"], add_special_tokens=False)["input_ids"]) >= k + clean_m]
    return usable, cached_extract(lm, make_samples(lm, usable, k=k, m=clean_m), batch_size=batch_size,
                                  progress=False)


def dynamics_samples(lm: LoadedModel, records: Sequence[dict], *, k: int, m: int, clean_m: int | None = None,
                     threshold: float = 0.9, max_memorized: int | None = None, max_controls: int | None = None,
                     batch_size: int = 16) -> tuple[list[Sample], pd.DataFrame, pd.Series]:
    """The samples of a dynamics experiment: the memorized records of this model and the controls.

    Runs (or reads from the cache of `cached_extract`) the clean greedy extraction of every
    record long enough for k + clean_m tokens, with suffix length `clean_m` (default m; Table 1
    uses 64, so passing its settings reuses its cached runs), cuts it to m tokens
    (`clean_prefix`), labels the records with `memorization_groups(threshold)` and keeps the
    memorized ones and the controls (the first `max_memorized` / `max_controls` in record
    order). Returns (samples with suffix length m, their clean runs, the groups of *every*
    record run, indexed by id).
    """
    from ..core.samples import make_samples

    clean_m = m if clean_m is None else clean_m
    if clean_m < m:
        raise MemkitError(f"clean_m ({clean_m}) must be >= m ({m})")
    usable, clean = clean_runs(lm, records, k=k, clean_m=clean_m, batch_size=batch_size)
    clean = clean_prefix(clean, m)
    groups = memorization_groups(clean, threshold)
    memorized = [i for i in clean["id"] if groups[i] == "memorized"][:max_memorized]
    controls = [i for i in clean["id"] if groups[i] == "control"][:max_controls]
    keep = set(memorized) | set(controls)
    chosen = [r for r in usable if str(r["id"]) in keep]
    samples = make_samples(lm, chosen, k=k, m=m)
    clean = clean[clean["id"].isin(keep)].reset_index(drop=True)
    return samples, clean, groups


def distinct_share(tokens: Sequence[int]) -> float:
    """Share of distinct tokens in a continuation: low for repetition loops ("the the the ...")."""
    tokens = list(tokens)
    return len(set(tokens)) / len(tokens) if tokens else float("nan")


def make_action(kind: str, alpha: float, layer: int | None = None, seed: int = 0, position: int | None = None,
                direction: torch.Tensor | None = None) -> Action:
    """An `Action` of `kind`, passing `layer` only to embedding kinds and `direction` only to embed_direction."""
    family = FAMILIES[kind]
    return Action(kind, alpha=float(alpha), layer=layer if family == "embedding" else None, seed=int(seed),
                  position=position, direction=direction if kind == "embed_direction" else None)


# -- batched alpha sweeps --------------------------------------------------------------------------
@contextmanager
def _row_logits(model, transforms: Sequence) -> Iterator[None]:
    """Apply transforms[b] to the output logits of batch row b (None leaves the row alone)."""

    def hook(module, args, output):
        if all(t is None for t in transforms):
            return output
        logits = output.logits
        rows = [row if t is None else t(row.float()).to(row.dtype) for row, t in zip(logits, transforms)]
        output.logits = torch.stack(rows)
        return output

    with attach([(model, "forward", hook)]):
        yield


def _direction_at(direction, layer: int | None):
    return direction.get(layer) if isinstance(direction, Mapping) else direction


def _row_context_factory(lm: LoadedModel, kind: str, direction, position: int | None = None):
    """A `context_factory` for `extract`: each batch row carries its alpha, seed and layer in its meta.

    Embedding kinds install one residual hook per layer present in the batch; each hook edits
    only its own rows, with the `EmbeddingEdit` of that row's action. Logit kinds transform
    each row's logits with the `logits_transform` of that row's action.
    """
    family = FAMILIES[kind]
    unit_edits: dict[tuple, EmbeddingEdit] = {}  # (id, prompt, seed, layer) -> edit at alpha 1 (mean norm reused)

    def embedding_edit(sample: Sample, alpha: float, seed: int, layer: int):
        if alpha == 0:
            return None
        key = (sample.id, sample.prompt_ids, seed, layer)
        if key not in unit_edits:
            unit = make_action(kind, 1.0, layer, seed, position=position, direction=_direction_at(direction, layer))
            unit_edits[key] = EmbeddingEdit(lm, [sample], unit)
        return unit_edits[key].with_alpha(alpha).edit_rows([0])

    def factory(batch: Sequence[Sample]):
        settings = [(float(s.meta["sweep_alpha"]), int(s.meta["sweep_seed"]), s.meta["sweep_layer"]) for s in batch]
        if family == "embedding":
            edits = [embedding_edit(s, a, seed, layer) for s, (a, seed, layer) in zip(batch, settings)]
            layers = sorted({layer for (a, _, layer) in settings if a > 0})

            def layer_edit(layer: int, rows: list[int]):
                mine = [edits[r] if settings[r][2] == layer else None for r in rows]

                def edit(hidden, positions):
                    if all(e is None for e in mine):
                        return hidden
                    return torch.cat([hidden[b : b + 1] if e is None else e(hidden[b : b + 1], positions[b : b + 1])
                                      for b, e in enumerate(mine)])
                return edit

            @contextmanager
            def context(rows):
                with ExitStack() as stack:
                    for layer in layers:
                        stack.enter_context(residual_edit(lm.model, layer, layer_edit(layer, rows)))
                    yield
            return context
        transforms = [logits_transform(lm.tokenizer, make_action(kind, a, seed=seed)) for a, seed, _ in settings]
        return lambda rows: _row_logits(lm.model, [transforms[r] for r in rows])

    return factory


def _setting_cache(lm: LoadedModel, reference: Sequence[Sample], kind: str, direction, position: int | None):
    """(path of one (alpha, seed, layer) setting's cached continuations) for this model, sample set and kind.

    The key holds the model weights, the samples with their clean reference, the kind, the
    position, the direction used at that layer and the code that decides the tokens. Batch size
    and batch composition are not in it: the batched sweep gives the tokens of `perturb` run one
    setting at a time (tested), so a setting computed by one notebook serves another.
    """
    import hashlib
    import json

    from ..core.extract import code_version, samples_fingerprint
    from ..paths import cache_dir, code_fingerprint

    root = cache_dir() / "sweeps"
    root.mkdir(parents=True, exist_ok=True)
    base = {"model_sha256": lm.sha256, "samples": samples_fingerprint(reference), "kind": kind, "position": position,
            "code": [code_version(), code_fingerprint("dynamics/sweeps.py", "dynamics/actions.py")]}

    def direction_hash(layer):
        vector = _direction_at(direction, layer)
        if vector is None:
            return None
        return hashlib.sha256(vector.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()).hexdigest()

    def path(alpha: float, seed: int, layer: int | None) -> Path:
        config = {**base, "alpha": alpha, "seed": seed, "layer": layer, "direction": direction_hash(layer)}
        return root / f"{hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:20]}.json"

    return path


def _sweep(lm: LoadedModel, samples: Sequence[Sample], clean: pd.DataFrame, kind: str,
           settings: Sequence[tuple[float, int, int | None]], direction=None, position: int | None = None,
           batch_size: int = 32, cache: bool = False) -> pd.DataFrame:
    """Every sample under every (alpha, seed, layer) setting of `kind`, in one batched extraction.

    With `cache`, each setting's continuations are kept under `paths.cache_dir()/sweeps` (JSON token
    ids): only the settings not seen before are decoded, so a finer grid or more seeds cost only
    the new points, and a notebook rerun decodes nothing.
    """
    import json

    from ..paths import atomic_path

    family = FAMILIES[kind]
    if family == "shock":
        raise MemkitError("force_token shocks the continuation itself: use shock_sweep")
    if any(alpha < 0 for alpha, _, _ in settings):
        raise MemkitError("alphas must be >= 0")
    if family == "embedding" and any(layer is None for _, _, layer in settings):
        raise MemkitError(f"{kind} needs a layer")
    for _, _, layer in settings:
        check_layer(lm, layer if family == "embedding" else None)
    reference = with_clean_reference(samples, clean)
    settings = [(float(alpha), int(seed), layer if family == "embedding" else None) for alpha, seed, layer in settings]
    cache_path = _setting_cache(lm, reference, kind, direction, position) if cache else None
    tokens: dict[tuple, list[list[int]]] = {}  # setting -> continuation per sample
    for setting in dict.fromkeys(settings):
        if setting[0] == 0:
            tokens[setting] = [list(s.suffix_ids) for s in reference]
        elif cache_path is not None and cache_path(*setting).exists():
            tokens[setting] = json.loads(cache_path(*setting).read_text())
    todo = [setting for setting in dict.fromkeys(settings) if setting not in tokens]
    runs = []
    for alpha, seed, layer in todo:
        for sample in reference:
            run = sample
            if family == "token":
                run = apply_token_action(lm.tokenizer, sample, make_action(kind, alpha, seed=seed, position=position))
            runs.append(replace(run, meta={**run.meta, "sweep_alpha": alpha, "sweep_seed": seed, "sweep_layer": layer}))
    if runs:
        factory = None if family == "token" else _row_context_factory(lm, kind, direction, position)
        frame = extract(lm, runs, batch_size=batch_size, progress=False, context_factory=factory)
        generated = [[int(t) for t in g] for g in frame["generated_ids"]]
        for number, setting in enumerate(todo):
            tokens[setting] = generated[number * len(reference) : (number + 1) * len(reference)]
            if cache_path is not None:
                with atomic_path(cache_path(*setting)) as tmp:
                    tmp.write_text(json.dumps(tokens[setting]))
    rows = []
    for index, sample in enumerate(reference):
        reference_ids, truth = list(sample.suffix_ids), sample.meta["true_suffix_ids"]
        for setting in settings:
            alpha, seed, layer = setting
            generated_ids = tokens[setting][index]
            kept = prefix_match_len(generated_ids, reference_ids)
            rows.append({
                "id": sample.id, "model": lm.name, "kind": kind, "family": family, "alpha": alpha, "seed": seed,
                "layer": -1 if layer is None else int(layer),
                "retention": token_match(generated_ids, reference_ids),
                "exact_retention": exact_match(generated_ids, reference_ids),
                "prefix_retention": kept / len(reference_ids),
                "divergence_step": -1 if generated_ids == reference_ids else kept,
                "token_match": token_match(generated_ids, truth), "exact_match": exact_match(generated_ids, truth),
                "generated_ids": generated_ids,
            })
    return pd.DataFrame(rows)


def seeds_for(kind: str, seeds: Iterable[int]) -> list[int]:
    """The action seeds `kind` runs with: every (distinct) seed for a kind in `SEEDED_KINDS`, the first one
    otherwise -- a deterministic kind gives the same tokens whatever the seed, so repeating it measures nothing."""
    seeds = list(dict.fromkeys(int(s) for s in seeds))
    if not seeds:
        raise MemkitError("give at least one seed")
    return seeds if kind in SEEDED_KINDS else seeds[:1]


def seed_plan(kinds: Iterable[str], seeds: Iterable[int]) -> pd.DataFrame:
    """Per kind: `seeded` (its effect depends on the seed) and `n_seeds` it runs with (`seeds_for`)."""
    seeds = list(seeds)
    return pd.DataFrame([{"kind": kind, "seeded": kind in SEEDED_KINDS, "n_seeds": len(seeds_for(kind, seeds))}
                         for kind in kinds], columns=["kind", "seeded", "n_seeds"])


def alpha_sweep(lm: LoadedModel, samples: Sequence[Sample], clean: pd.DataFrame, kind: str, alphas: Iterable[float],
                *, layer: int | None = None, seeds: Iterable[int] = (0,), direction=None, position: int | None = None,
                batch_size: int = 32, cache: bool = False) -> pd.DataFrame:
    """Retention of every sample under `kind` at every alpha (and seed), in one batched extraction.

    One row per (sample, alpha, seed), in that order: `id`, `model`, `kind`, `family`, `alpha`,
    `seed`, `layer` (-1 unless embedding), `retention`, `exact_retention`, `prefix_retention`
    (leading tokens kept / m), `divergence_step` (-1: unchanged), `token_match` / `exact_match`
    against the true suffix, and `generated_ids`. alpha = 0 rows are the clean run itself (no
    decoding). Kinds that do not depend on the seed (not in `SEEDED_KINDS`) run with the first
    seed only. `direction` (embed_direction): a unit vector, or a {layer: vector} mapping.
    `force_token` is not a sweep kind: see `shock_sweep`. `cache`: keep and reuse each setting's
    continuations on disk (see `_sweep`).
    """
    settings = [(float(a), seed, layer) for a in alphas for seed in seeds_for(kind, seeds)]
    return _sweep(lm, samples, clean, kind, settings, direction, position, batch_size, cache)


def layer_sweep(lm: LoadedModel, samples: Sequence[Sample], clean: pd.DataFrame, layers: Iterable[int],
                alphas: Iterable[float], *, kind: str = "embed_random", seeds: Iterable[int] = (0,), direction=None,
                batch_size: int = 32, cache: bool = False) -> pd.DataFrame:
    """`alpha_sweep` of an embedding kind at every layer, all (layer, alpha, seed) rows in one extraction.

    One row per (sample, layer, alpha, seed); alpha = 0 rows are shared by every layer (the clean run).
    """
    if FAMILIES[kind] != "embedding":
        raise MemkitError(f"layer_sweep needs an embedding kind, not {kind}")
    settings = [(float(a), seed, int(layer)) for layer in layers for a in alphas for seed in seeds_for(kind, seeds)]
    return _sweep(lm, samples, clean, kind, settings, direction, None, batch_size, cache)


def clean_prefix(clean: pd.DataFrame, m: int) -> pd.DataFrame:
    """A clean-run frame cut to its first m continuation tokens, metrics recomputed on them.

    Greedy decoding is prefix-consistent, so the first m tokens of an m' > m run are the m-token
    run: a table made with a long suffix (e.g. Table 1's m = 64) serves shorter sweeps.
    Recomputes `generated_ids`, `suffix_ids`, `token_match`, `exact_match`, `prefix_match_len`, `m`.
    """
    if (clean["m"] < m).any():
        raise MemkitError(f"clean runs shorter than m = {m}")
    generated = [[int(t) for t in g][:m] for g in clean["generated_ids"]]
    suffix = [[int(t) for t in s][:m] for s in clean["suffix_ids"]]
    return clean.assign(generated_ids=generated, suffix_ids=suffix, m=m,
                        token_match=[token_match(g, s) for g, s in zip(generated, suffix)],
                        exact_match=[exact_match(g, s) for g, s in zip(generated, suffix)],
                        prefix_match_len=[prefix_match_len(g, s) for g, s in zip(generated, suffix)])


# -- state distance and KL profiles -----------------------------------------------------------------
def fragility_profiles(lm: LoadedModel, samples: Sequence[Sample], clean: pd.DataFrame, action: Action
                       ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-sample observables of `memkit.dynamics.perturb.observe` on the clean continuation.

    Returns (layers, steps): `layers` [id, layer, rel_distance] is the relative state distance
    |h - h~| / |h| averaged over the continuation positions (so token and embedding actions are
    comparable), `steps` [id, step, kl, same] the KL(p_clean || p_perturbed) of every step.
    """
    generated = dict(zip(clean["id"], clean["generated_ids"]))
    layer_frames, step_frames = [], []
    for sample in samples:
        states, steps = observe(lm, sample, action, list(generated[sample.id]))
        continuation = states[states["step"] >= 0]
        layer_frames.append(continuation.groupby(["id", "layer"], sort=True, as_index=False)["rel_distance"].mean())
        step_frames.append(steps[["id", "step", "kl", "same"]])
    return pd.concat(layer_frames, ignore_index=True), pd.concat(step_frames, ignore_index=True)


@torch.inference_mode()
def typical_coordinate_alpha(lm: LoadedModel, samples: Sequence[Sample], layer: int) -> float:
    """The embedding-action alpha whose push per coordinate equals a typical coordinate of the state.

    A push of alpha * mean|h| spread over d coordinates has alpha * mean|h| / sqrt(d) per
    coordinate; this returns sqrt(d) * median|h_i| / mean|h| after block `layer`, over the prompt
    positions after the leading special tokens (median over samples). It is about 0.67 for an
    isotropic Gaussian state and much smaller when a few huge dimensions dominate the norm, which
    is why the same alpha is a stronger push in some models than in others.
    """
    from ..core.hooks import record_residuals
    from ..core.samples import leading_special_ids

    check_layer(lm, layer)
    start = len(leading_special_ids(lm.tokenizer))
    values = []
    for sample in samples:
        with record_residuals(lm.model) as store:
            lm.model(input_ids=torch.tensor([list(sample.prompt_ids)], device=lm.device), logits_to_keep=1)
        hidden = store[layer][0][0, start:].float()
        values.append(math.sqrt(hidden.shape[-1]) * float(hidden.abs().median()) / float(hidden.norm(dim=-1).mean()))
    return float(np.median(values)) if values else float("nan")


# -- mid-sequence shocks ------------------------------------------------------------------------------
def relock(generated: Sequence[int], reference: Sequence[int], after: int, max_shift: int = 0,
           min_tail: int = 1) -> tuple[int, int]:
    """(step, shift): the first step s >= `after` from which `generated` follows `reference` to the end.

    With shift d, generated[s + i] == reference[s + d + i] for every i while both sequences
    last (d > 0: the model skipped d reference tokens; d < 0: it repeats or inserted tokens);
    at least `min_tail` tokens must be compared, so a lucky last token is not a recovery.
    Shifts are tried in the order 0, 1, -1, 2, -2, ... up to `max_shift`. (-1, 0) if never.
    With max_shift = 0 and min_tail = 1 this is `memkit.dynamics.perturb.relock_step`.
    """
    generated, reference = list(generated), list(reference)
    m = len(generated)
    shifts = [0] + [d for k in range(1, max_shift + 1) for d in (k, -k)]
    for start in range(max(after, 0), m):
        for shift in shifts:
            lo = start + shift
            if lo < 0:
                continue
            length = min(m - start, len(reference) - lo)
            if length >= min_tail and generated[start : start + length] == reference[lo : lo + length]:
                return start, shift
    return -1, 0


def shock_sweep(lm: LoadedModel, samples: Sequence[Sample], clean: pd.DataFrame, *, alphas: Iterable[int],
                positions: Iterable[int], max_shift: int = 2, min_tail: int = 4) -> pd.DataFrame:
    """`force_token` shocks at each (alpha forced tokens, position) and how the continuation recovers.

    The shock and the recovery refer to the clean greedy continuation (for memorized samples,
    the true text). One row per (sample, alpha, position): `shock_step`, `shock_tokens`,
    `relocked` / `relock_after` (aligned re-lock, at least `min_tail` tokens, steps counted
    from the end of the shock), `relocked_shifted` / `relock_shift` / `relock_after_shifted`
    (also allowing the continuation to resume up to `max_shift` tokens ahead or behind),
    `retention_after` (fraction of the steps after the shock equal to the clean continuation),
    `truth_relocked` (aligned re-lock on the true suffix, `memkit.dynamics.perturb.relock_step`, the
    library's own definition), `token_match` against the true suffix and `generated_ids`.
    """
    reference = with_clean_reference(samples, clean)
    frames = []
    for alpha in alphas:
        for position in positions:
            frame = perturb(lm, reference, Action("force_token", alpha=float(alpha), position=int(position)),
                            clean=clean, progress=False)
            frames.append(frame)
    truth = {s.id: list(s.suffix_ids) for s in samples}
    clean_ids = {s.id: list(s.suffix_ids) for s in reference}
    rows = []
    for frame in frames:
        for row in frame.itertuples():
            after = int(row.shock_step) + int(row.shock_tokens)
            generated, ref = list(row.generated_ids), clean_ids[row.id]
            aligned, _ = relock(generated, ref, after, max_shift=0, min_tail=min_tail)
            shifted, shift = relock(generated, ref, after, max_shift=max_shift, min_tail=min_tail)
            tail = len(ref) - after
            kept = sum(g == r for g, r in zip(generated[after:], ref[after:]))
            rows.append({
                "id": row.id, "model": row.model, "alpha": int(row.alpha), "position": int(row.action_position),
                "shock_step": int(row.shock_step), "shock_tokens": int(row.shock_tokens), "m": len(ref),
                "relocked": aligned >= 0, "relock_after": aligned - after if aligned >= 0 else -1,
                "relocked_shifted": shifted >= 0, "relock_shift": shift,
                "relock_after_shifted": shifted - after if shifted >= 0 else -1,
                "retention_after": kept / tail if tail > 0 else float("nan"),
                "truth_relocked": relock_step(generated, truth[row.id], after) >= 0,
                "token_match": token_match(generated, truth[row.id]), "generated_ids": generated,
            })
    return pd.DataFrame(rows)


def shock_summary(shocks: pd.DataFrame, by: Sequence[str] = ("model", "group")) -> pd.DataFrame:
    """Re-lock rates and steps per group of a `shock_sweep` frame (with a `group` column).

    Columns: the `by` keys, `n` (shocked runs), `relock_rate`, `relock_shifted_rate`,
    `median_relock_after` (median steps after the shock, re-locked runs only, NaN if none),
    `mean_retention_after`, `truth_relock_rate`.
    """
    rows = []
    for keys, part in shocks.groupby(list(by), sort=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        locked = part.loc[part["relocked"], "relock_after"]
        rows.append({**dict(zip(by, keys)), "n": len(part), "relock_rate": float(part["relocked"].mean()),
                     "relock_shifted_rate": float(part["relocked_shifted"].mean()),
                     "median_relock_after": float(locked.median()) if len(locked) else float("nan"),
                     "mean_retention_after": float(part["retention_after"].mean()),
                     "truth_relock_rate": float(part["truth_relocked"].mean())})
    return pd.DataFrame(rows)


__all__ = ["GROUPS", "SEEDED_KINDS", "alpha_sweep", "clean_prefix", "distinct_share", "dynamics_samples",
           "fragility_profiles", "layer_sweep", "make_action", "memorization_groups", "relock", "seed_plan", "seeds_for",
           "shock_summary", "shock_sweep", "typical_coordinate_alpha", "with_clean_reference"]
