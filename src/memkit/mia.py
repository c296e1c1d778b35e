"""Membership inference on ground truth: how well does a score tell training text from unseen text?

    frame = mia_scores(lm, samples)                       # one row per sample: loss, score_* columns
    frame = mia_scores(lm, samples, reference=small_lm)   # + loss_ref, score_ref (shared tokenizer)
    frame["is_member"] = frame["meta_level"] > 0          # zoo canaries: inserted at least once
    table = attack_table(frame, by=("meta_kind",), members_by="meta_level")  # AUC, TPR@1%FPR, 95% CIs
    stats = token_stats(lm, samples)                      # per scored token: log p, mu, sigma

Every score comes from one teacher-forced forward pass per batch (right padding, fp32 logits,
statistics in float64) over `prompt_ids + suffix_ids`, the sequence memkit feeds everywhere.
Scored positions (`positions=`):

- `"all"` (default): every token of prefix + suffix except the first, i.e. the training text
  minus the one token nothing predicts. Leading special tokens (e.g. <bos>) and the first
  text token are context only, so the scored tokens (k + m - 1 of them) do not depend on
  whether the tokenizer adds a <bos>. Needs a prompt that ends with the prefix (mode `raw`,
  zoo canaries); a chat prompt wraps the prefix in a template, so chat samples need
  `"suffix"`.
- `"suffix"`: the m suffix tokens given the prompt (as `memkit.mechanisms.ablation.suffix_logprobs`).

Attacks (HIGHER score = more likely a member, everywhere):

- `score_loss` = -loss, loss = mean NLL of the scored tokens (Yeom et al. 2018; Carlini et al.
  2021 "perplexity").
- `score_zlib` = -loss / zlib entropy, zlib entropy = len(zlib.compress(utf-8 text)) in bytes
  of the decoded scored text (prefix + suffix, or the suffix), as Carlini et al. 2021 and mimir.
- `score_min_k` = mean of the floor(k n) (at least 1) lowest token log-probs (Min-K% Prob,
  Shi et al. 2024; k = 0.2).
- `score_min_k_pp` = the same mean over z_t = (log p(x_t) - mu_t) / sigma_t, with mu_t and
  sigma_t^2 the mean and variance of log p(z), z ~ p(. | x_<t) (Min-K%++, Zhang et al. 2024).
  The variance is computed centred (equal to E[(log p)^2] - mu^2, without its cancellation);
  where sigma_t < SIGMA_FLOOR the distribution is uniform up to rounding and z_t = 0 (the
  published formula is 0/0 there).
- `score_ref` = loss_ref - loss (Carlini et al. 2021; Mireshghallah et al. 2022), only with a
  `reference` model, which must share the target's tokenizer.

`attack_metrics` gives ROC AUC, TPR at a fixed FPR and stratified percentile-bootstrap 95% CIs
(conventions in its docstring); `attack_table` runs it per group and attack; `seed_pooled_metrics`
pools the same canaries scored by several training seeds of one model (mean AUC, a canary bootstrap
shared by the seeds, a t interval over the seeds). Sample metadata become `meta_<key>` columns,
exactly as in `memkit.extract`.

Differences from the reference implementation iamgroot42/mimir (`mimir/attacks/*.py`, read for
comparison; its raw scores are "lower = member" and negated before the ROC, so every ranking
below is the same unless stated):
- loss, zlib, ref: mimir returns loss, loss / zlib entropy and loss - ref_loss (lower = member);
  here their negatives. mimir's zlib entropy compresses the document string; here the decoded
  scored tokens (the same text for `positions="all"` up to the first token, which nothing predicts).
- Min-K%: mimir averages the int(k n) lowest log-probs (window 1, stride 1), which is an empty mean
  (NaN, then dropped from its ROC) when k n < 1; here at least one token.
- Min-K%++: mimir (and Zhang et al.'s code) take sigma^2 = E[(log p)^2] - mu^2 (raw moments, float32)
  and divide without a floor, so a flat distribution gives 0/0 = NaN; here the centred variance in
  float64 and z = 0 below SIGMA_FLOOR. Otherwise identical.
- Metrics: mimir's ROC AUC is sklearn's (ties count 1/2, as here); its bootstrap resamples
  (score, label) pairs jointly (scipy `bootstrap(paired=True)`, BCa), so the class sizes vary
  between replicates; here members and non-members are resampled separately (percentile) and no
  interval is given below MIN_BOOT per class. mimir's TPR at low FPR reads sklearn's ROC curve
  (threshold inclusive, FPR <= bound); here the threshold convention of `attack_metrics`.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from .core.batching import right_padded
from .core.extract import meta_columns, pad_token_id, plan_batches, plan_meta_columns
from .core.models import LoadedModel
from .core.samples import Sample
from .core.stats import MIN_BOOTSTRAP_N, t_interval
from .errors import MemkitError

POSITIONS = ("all", "suffix")
ATTACKS = ("loss", "zlib", "min_k", "min_k_pp", "ref")
SIGMA_FLOOR = 1e-6  # nats; below it the next-token distribution is uniform up to rounding
MIN_BOOT = MIN_BOOTSTRAP_N  # fewer members or non-members than this (20): no bootstrap CI (NaN, ci_ok False)
POOLED_COLUMNS = ("auc", "auc_lo", "auc_hi", "auc_seed_sd", "auc_seed_lo", "auc_seed_hi", "tpr", "tpr_lo", "tpr_hi",
                  "n_members", "n_nonmembers", "n_seeds", "fpr", "fpr_achieved", "tpr_coarse", "ci_ok")
METRIC_COLUMNS = ("auc", "auc_lo", "auc_hi", "tpr", "tpr_lo", "tpr_hi", "n_members", "n_nonmembers", "fpr",
                  "fpr_achieved", "tpr_coarse", "ci_ok")
_ROWS = 64  # positions projected to float64 at once (bounds memory for 262k-token vocabularies)
_BOOT_BLOCK = 100  # bootstrap replicates drawn at once


@dataclass(frozen=True, eq=False)
class TokenStats:
    """One sample's scored positions: true token, its log-prob, mean and std of log p under the model."""

    id: str
    token_ids: np.ndarray
    logprob: np.ndarray
    mu: np.ndarray
    sigma: np.ndarray

    @property
    def z(self) -> np.ndarray:
        """Min-K%++ token scores (log p - mu) / sigma; 0 where sigma < SIGMA_FLOOR (uniform distribution)."""
        flat = self.sigma < SIGMA_FLOOR
        return np.where(flat, 0.0, (self.logprob - self.mu) / np.where(flat, 1.0, self.sigma))


def _scored_span(sample: Sample, positions: str) -> tuple[list[int], int]:
    """The sequence fed to the model and the index of its first scored token (scored: start..end)."""
    sequence = list(sample.prompt_ids) + list(sample.suffix_ids)
    n_prompt, k = len(sample.prompt_ids), len(sample.prefix_ids)
    if positions == "suffix":
        start = n_prompt
    elif tuple(sample.prompt_ids[max(0, n_prompt - k):]) == tuple(sample.prefix_ids):
        start = n_prompt - k + 1
    else:
        raise MemkitError(f"sample {sample.id!r}: its prompt does not end with its prefix (mode {sample.mode!r}), "
                          "so positions='all' is undefined; use positions='suffix'")
    if not 1 <= start < len(sequence):
        raise MemkitError(f"sample {sample.id!r}: no token to score with positions={positions!r}")
    return sequence, start


def _next_token_stats(logits: torch.Tensor, targets: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log p(target), mu = E[log p] and sigma = std[log p] under each row's distribution (float64)."""
    parts = []
    for c in range(0, len(targets), _ROWS):
        logp = torch.log_softmax(logits[c : c + _ROWS].double(), dim=-1)
        p = logp.exp()
        live = p > 0  # 0 * log 0 = 0 (a -inf logit must not give NaN)
        mu = torch.where(live, p * logp, 0.0).sum(-1)
        var = torch.where(live, p * (logp - mu[:, None]).square(), 0.0).sum(-1)
        true = logp.gather(-1, targets[c : c + _ROWS, None])[:, 0]
        parts.append(torch.stack([true, mu, var.sqrt()]).cpu())
    out = torch.cat(parts, dim=1).numpy()
    return out[0], out[1], out[2]


@torch.inference_mode()
def token_stats(lm: LoadedModel, samples: Sequence[Sample], *, batch_size: int = 16, positions: str = "all",
                progress: bool = False) -> list[TokenStats]:
    """Per scored position of every sample (input order): log p of the true token, mu and sigma of log p."""
    if positions not in POSITIONS:
        raise MemkitError(f"unknown positions {positions!r}; choose one of {', '.join(POSITIONS)}")
    samples = list(samples)
    spans = [_scored_span(s, positions) for s in samples]
    pad = pad_token_id(lm.tokenizer)
    result: list[TokenStats] = [None] * len(samples)  # type: ignore[list-item]
    bar = tqdm(total=len(samples), desc=f"mia {lm.name}", unit="sample", disable=not progress)
    for batch in plan_batches(samples, batch_size):
        ids, mask = right_padded([spans[i][0] for i in batch], pad)
        logits = lm.model(input_ids=ids.to(lm.device), attention_mask=mask.to(lm.device), use_cache=False).logits
        for row, i in enumerate(batch):
            sequence, start = spans[i]
            targets = ids[row, start : len(sequence)].to(logits.device)
            logprob, mu, sigma = _next_token_stats(logits[row, start - 1 : len(sequence) - 1].float(), targets)
            result[i] = TokenStats(samples[i].id, np.asarray(sequence[start:], dtype=np.int64), logprob, mu, sigma)
        bar.update(len(batch))
    bar.close()
    return result


def lowest_mean(values: np.ndarray, k: float) -> float:
    """Mean of the floor(k n) lowest values, at least one (the Min-K% aggregation)."""
    n_low = max(1, math.floor(k * len(values) + 1e-9))
    return float(np.sort(values)[:n_low].mean())


def zlib_entropy(text: str) -> int:
    """Carlini et al.'s zlib entropy: bytes of the zlib-compressed (default level) UTF-8 text."""
    return len(zlib.compress(text.encode("utf-8")))


def check_same_tokenizer(lm: LoadedModel, reference: LoadedModel) -> None:
    """A reference attack compares losses of the same token ids: the vocabularies must be identical."""
    a, b = lm.tokenizer, reference.tokenizer
    if len(a) != len(b) or (hasattr(a, "get_vocab") and hasattr(b, "get_vocab") and a.get_vocab() != b.get_vocab()):
        raise MemkitError(f"reference model {reference.name} does not share the tokenizer of {lm.name} "
                          f"(vocabularies of {len(b)} and {len(a)} tokens, or different ids)")


def mia_scores(lm: LoadedModel, samples: Sequence[Sample], *, reference: LoadedModel | None = None, k: float = 0.2,
               batch_size: int = 16, positions: str = "all", progress: bool = False) -> pd.DataFrame:
    """Every attack score of every sample, one row per sample in input order (see module docstring).

    Columns: id, model, n_tokens, loss, [loss_ref,] zlib_entropy, score_loss, score_zlib,
    score_min_k, score_min_k_pp, [score_ref,] then the samples' `meta_<key>` columns.
    """
    if not 0 < k <= 1:
        raise MemkitError(f"k is a fraction of the scored tokens, 0 < k <= 1 (got {k})")
    samples = list(samples)
    if reference is not None:
        check_same_tokenizer(lm, reference)
    stats = token_stats(lm, samples, batch_size=batch_size, positions=positions, progress=progress)
    refs = (token_stats(reference, samples, batch_size=batch_size, positions=positions, progress=progress)
            if reference is not None else [None] * len(samples))
    plan = plan_meta_columns(samples)
    rows = []
    for sample, st, ref in zip(samples, stats, refs):
        text = lm.tokenizer.decode(list(sample.suffix_ids) if positions == "suffix"
                                   else list(sample.prefix_ids) + list(sample.suffix_ids), skip_special_tokens=True)
        loss = float(-st.logprob.mean())
        row = {"id": sample.id, "model": lm.name, "n_tokens": len(st.logprob), "loss": loss}
        if ref is not None:
            row["loss_ref"] = float(-ref.logprob.mean())
        row["zlib_entropy"] = zlib_entropy(text)
        row.update(score_loss=-loss, score_zlib=-loss / row["zlib_entropy"], score_min_k=lowest_mean(st.logprob, k),
                   score_min_k_pp=lowest_mean(st.z, k))
        if ref is not None:
            row["score_ref"] = row["loss_ref"] - loss
        rows.append({**row, **meta_columns(sample.meta, plan)})
    columns = ["id", "model", "n_tokens", "loss"] + (["loss_ref"] if reference is not None else []) + [
        "zlib_entropy"] + [f"score_{a}" for a in ATTACKS if a != "ref" or reference is not None] + [
        f"meta_{key}" for key in plan]
    return pd.DataFrame(rows, columns=columns)


# -- attack metrics -------------------------------------------------------------------------------
def _labels(is_member) -> np.ndarray:
    values = np.asarray(is_member)
    if values.dtype == bool:
        return values
    if values.dtype.kind in "iuf" and np.isin(values, (0, 1)).all():
        return values.astype(bool)
    raise MemkitError("membership labels must be booleans or 0/1 without missing values")


def _auc_rows(members: np.ndarray, nonmembers: np.ndarray) -> np.ndarray:
    """ROC AUC of each row pair: Mann-Whitney U of the members / (n1 n0), ties counting one half."""
    try:  # sklearn is not in the environment; scipy only for average ranks of ties
        from scipy.stats import rankdata
    except ImportError as exc:
        raise MemkitError("attack metrics need scipy (pip install scipy)") from exc
    n1, n0 = members.shape[1], nonmembers.shape[1]
    ranks = rankdata(np.concatenate([members, nonmembers], axis=1), axis=1)  # average ranks for ties
    return (ranks[:, :n1].sum(axis=1) - n1 * (n1 + 1) / 2) / (n1 * n0)


def _tpr_rows(members: np.ndarray, nonmembers: np.ndarray, fpr: float) -> tuple[np.ndarray, np.ndarray]:
    """TPR at `fpr` of each row pair and the realised FPR (threshold convention: see attack_metrics)."""
    allowed = math.floor(fpr * nonmembers.shape[1] + 1e-9)  # non-members that may score above it
    threshold = -np.sort(-nonmembers, axis=1)[:, allowed]
    return (members > threshold[:, None]).mean(axis=1), (nonmembers > threshold[:, None]).mean(axis=1)


def attack_metrics(scores, is_member, *, fpr: float = 0.01, n_boot: int = 1000, seed: int = 0,
                   level: float = 0.95) -> dict:
    """ROC AUC and TPR at `fpr` of one attack (higher score = member), with bootstrap CIs.

    AUC: Mann-Whitney U / (n1 n0) with average ranks, so a tie counts 1/2 (identical scores
    give 0.5). TPR: the threshold t is the (floor(fpr n0) + 1)-th highest non-member score
    (the empirical 1 - fpr quantile) and TPR is the share of members scoring strictly above
    t, so the realised FPR (`fpr_achieved`) never exceeds `fpr`. With n0 < 1/fpr, t is the
    highest non-member score, the TPR is at FPR 0 and `tpr_coarse` is True. CIs: percentile
    bootstrap at `level`, members and non-members resampled separately (seeded); with fewer
    than MIN_BOOT of either class (or n_boot = 0) the CIs are NaN and `ci_ok` is False, since
    such intervals would mislead. Keys: METRIC_COLUMNS.
    """
    scores = np.asarray(scores, dtype=float)
    labels = _labels(is_member)
    if scores.ndim != 1 or scores.shape != labels.shape:
        raise MemkitError(f"scores and labels must be two equal-length lists (got {scores.shape} and {labels.shape})")
    if np.isnan(scores).any():
        raise MemkitError(f"{int(np.isnan(scores).sum())} of {len(scores)} scores are NaN")
    if not 0 < fpr < 1:
        raise MemkitError(f"fpr must lie strictly between 0 and 1 (got {fpr})")
    members, nonmembers = scores[labels], scores[~labels]
    n1, n0 = len(members), len(nonmembers)
    if n1 == 0 or n0 == 0:
        raise MemkitError(f"an attack needs members and non-members (got {n1} members, {n0} non-members)")
    tpr, achieved = _tpr_rows(members[None], nonmembers[None], fpr)
    out = {"auc": float(_auc_rows(members[None], nonmembers[None])[0]), "auc_lo": float("nan"),
           "auc_hi": float("nan"), "tpr": float(tpr[0]), "tpr_lo": float("nan"), "tpr_hi": float("nan"),
           "n_members": n1, "n_nonmembers": n0, "fpr": float(fpr), "fpr_achieved": float(achieved[0]),
           "tpr_coarse": bool(n0 < 1 / fpr), "ci_ok": bool(min(n1, n0) >= MIN_BOOT and n_boot > 0)}
    if out["ci_ok"]:
        rng = np.random.default_rng(seed)
        aucs, tprs = [], []
        for start in range(0, n_boot, _BOOT_BLOCK):
            size = min(_BOOT_BLOCK, n_boot - start)
            boot_members = members[rng.integers(0, n1, size=(size, n1))]
            boot_nonmembers = nonmembers[rng.integers(0, n0, size=(size, n0))]
            aucs.append(_auc_rows(boot_members, boot_nonmembers))
            tprs.append(_tpr_rows(boot_members, boot_nonmembers, fpr)[0])
        tail = (1 - level) / 2
        out["auc_lo"], out["auc_hi"] = (float(q) for q in np.quantile(np.concatenate(aucs), [tail, 1 - tail]))
        out["tpr_lo"], out["tpr_hi"] = (float(q) for q in np.quantile(np.concatenate(tprs), [tail, 1 - tail]))
    return out


def seed_pooled_metrics(members, nonmembers, *, fpr: float = 0.01, n_boot: int = 1000, seed: int = 0,
                        level: float = 0.95) -> dict:
    """One attack on the same canaries scored by S training seeds of one model: (S, n1) and (S, n0) scores,
    column i being the same canary in every row (higher score = member).

    AUC: the mean over seeds of each seed's AUC (each model ranks its own scores). TPR: one threshold
    over all S n0 non-member scores, the (floor(fpr S n0) + 1)-th highest, and the share of the S n1
    member scores strictly above it; pooling the seeds' non-members is what lets a 1 % FPR be reached
    with 48 controls per seed (S n0 = 144: one control may pass, realised FPR <= 1/144), and
    `tpr_coarse` is True when S n0 < 1 / fpr. Two intervals at `level`: `auc_lo/hi` and `tpr_lo/hi`, a
    percentile bootstrap over canaries, stratified (each replicate draws n1 member and n0 non-member
    columns with replacement, the same columns in every seed, since one canary's scores across seeds are
    not independent), NaN and `ci_ok` False below MIN_BOOT per class; `auc_seed_lo/hi`, a t interval
    over the S seed AUCs (training randomness only), clipped to [0, 1], NaN with one seed. Keys: POOLED_COLUMNS.
    """
    members, nonmembers = np.atleast_2d(np.asarray(members, dtype=float)), np.atleast_2d(np.asarray(nonmembers,
                                                                                                      dtype=float))
    if members.ndim != 2 or nonmembers.ndim != 2 or members.shape[0] != nonmembers.shape[0]:
        raise MemkitError(f"members and non-members must be (seeds, canaries) arrays with the same number of seeds "
                          f"(got {members.shape} and {nonmembers.shape})")
    (n_seeds, n1), n0 = members.shape, nonmembers.shape[1]
    if n1 == 0 or n0 == 0:
        raise MemkitError(f"an attack needs members and non-members (got {n1} members, {n0} non-members)")
    if np.isnan(members).any() or np.isnan(nonmembers).any():
        raise MemkitError("seed_pooled_metrics: NaN scores")
    if not 0 < fpr < 1:
        raise MemkitError(f"fpr must lie strictly between 0 and 1 (got {fpr})")
    seed_aucs = _auc_rows(members, nonmembers)
    tpr, achieved = _tpr_rows(members.reshape(1, -1), nonmembers.reshape(1, -1), fpr)
    seed_lo, seed_hi = np.clip(t_interval(seed_aucs, level=level)[1:], 0.0, 1.0)  # an AUC lies in [0, 1]
    out = {"auc": float(seed_aucs.mean()), "auc_lo": float("nan"), "auc_hi": float("nan"),
           "auc_seed_sd": float(seed_aucs.std(ddof=1)) if n_seeds > 1 else float("nan"),
           "auc_seed_lo": float(seed_lo), "auc_seed_hi": float(seed_hi), "tpr": float(tpr[0]), "tpr_lo": float("nan"),
           "tpr_hi": float("nan"), "n_members": n1, "n_nonmembers": n0, "n_seeds": n_seeds, "fpr": float(fpr),
           "fpr_achieved": float(achieved[0]), "tpr_coarse": bool(n_seeds * n0 < 1 / fpr),
           "ci_ok": bool(min(n1, n0) >= MIN_BOOT and n_boot > 0)}
    if out["ci_ok"]:
        rng = np.random.default_rng(seed)
        aucs, tprs = [], []
        for start in range(0, n_boot, _BOOT_BLOCK):
            size = min(_BOOT_BLOCK, n_boot - start)
            boot_m = members[:, rng.integers(0, n1, size=(size, n1))]  # (S, size, n1): one draw for every seed
            boot_n = nonmembers[:, rng.integers(0, n0, size=(size, n0))]
            aucs.append(_auc_rows(boot_m.reshape(-1, n1), boot_n.reshape(-1, n0)).reshape(n_seeds, size).mean(0))
            tprs.append(_tpr_rows(boot_m.transpose(1, 0, 2).reshape(size, -1),
                                  boot_n.transpose(1, 0, 2).reshape(size, -1), fpr)[0])
        tail = (1 - level) / 2
        out["auc_lo"], out["auc_hi"] = (float(q) for q in np.quantile(np.concatenate(aucs), [tail, 1 - tail]))
        out["tpr_lo"], out["tpr_hi"] = (float(q) for q in np.quantile(np.concatenate(tprs), [tail, 1 - tail]))
    return out


def attack_table(frame: pd.DataFrame, *, label: str = "is_member", by: Sequence[str] = (),
                 members_by: str | None = None, scores: Sequence[str] | None = None, **kw) -> pd.DataFrame:
    """`attack_metrics` of every score column (default: all `score_*`) within each group of `by`.

    `members_by` (e.g. the duplication level) splits the members of each group: every subset
    is scored against all the group's non-members, since a member-only column cannot be a
    group of its own (members with a missing value are left out of the split). Long format: the `by` keys, [members_by,] attack (column name without
    `score_`), then METRIC_COLUMNS; groups sorted, attacks in column order. `kw` goes to
    `attack_metrics` (fpr, n_boot, seed, level); every cell uses the same seed.
    """
    by = [by] if isinstance(by, str) else list(by)
    scores = [c for c in frame.columns if str(c).startswith("score_")] if scores is None else list(scores)
    missing = [c for c in [label, *by, *([members_by] if members_by else []), *scores] if c not in frame.columns]
    if missing:
        raise MemkitError(f"attack_table: no column(s) {', '.join(map(str, missing))} in the frame")
    if not scores:
        raise MemkitError("attack_table: no score columns (score_*) in the frame")
    if members_by is not None and members_by in by:
        raise MemkitError(f"attack_table: {members_by!r} cannot be both a group and the member split")
    rows = []
    for keys, part in (frame.groupby(by, sort=True, dropna=False) if by else [((), frame)]):
        keys = dict(zip(by, keys if isinstance(keys, tuple) else (keys,)))
        is_member = _labels(part[label].to_numpy())
        if is_member.all() or not is_member.any():
            raise MemkitError(f"attack_table: group {keys} has {int(is_member.sum())} members and "
                              f"{int((~is_member).sum())} non-members; every group needs both "
                              "(split members with members_by= instead)")
        subsets = [({}, np.ones(len(part), dtype=bool))]
        if members_by is not None:
            values = part.loc[is_member, members_by].dropna().drop_duplicates().sort_values(kind="stable")
            subsets = [({members_by: v}, ~is_member | (part[members_by] == v).to_numpy()) for v in values]
        for extra, mask in subsets:
            for column in scores:
                metrics = attack_metrics(part[column].to_numpy()[mask], is_member[mask], **kw)
                rows.append({**keys, **extra, "attack": str(column).removeprefix("score_"), **metrics})
    columns = by + ([members_by] if members_by is not None else []) + ["attack", *METRIC_COLUMNS]
    return pd.DataFrame(rows, columns=columns)


__all__ = ["ATTACKS", "MIN_BOOT", "POOLED_COLUMNS", "POSITIONS", "SIGMA_FLOOR", "TokenStats", "attack_metrics",
           "attack_table", "check_same_tokenizer", "lowest_mean", "mia_scores", "seed_pooled_metrics",
           "token_stats", "zlib_entropy"]
