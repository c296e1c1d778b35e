"""Controls matched on confidence: natural texts the model does not recite, continued as confidently.

    samples, clean, groups, confidence = matched_sets(lm, records, k=32, m=24, clean_m=64)
    balance_table(confidence)                       # n, mean, SD and SMD per group
    control_numbers(confidence, "matched", keys={"gemma-3-270m": "Gemma"}, prefix="Phase")  # paper macros

Shuffled-word controls make a poor comparison for "memorized text is less fragile": their clean
greedy continuations are repetition loops, decoded with a confidence unlike a recitation's, so
any difference in fragility could be a difference in confidence. Here the controls are texts of
the record file that are neither memorized, computed sequences nor shuffled controls, chosen by
nearest-neighbour matching (without replacement) on the mean top-1 probability along the model's
own clean greedy continuation (`core.stats.nearest_matches`, as `census.matched_controls`).
`balance_table` reports what the matching achieved (means,
standardized mean differences, each pair's distance): a match that stays far apart is shown, not hidden.

Paper level: it combines the dynamics' sample selection with the teacher-forced scores of
`memkit.mia`, which the dynamics modules never import.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ..core.models import LoadedModel
from ..core.samples import Sample
from ..core.stats import nearest_matches
from .report import format_number

#: Record categories never used as matched controls: computed sequences and shuffled texts.
EXCLUDED_CATEGORIES = ("sequence", "control")
#: Group label of the matched controls (the dynamics and mechanism code compare "memorized" with "control").
CONTROL = "control"


def greedy_confidence(lm: LoadedModel, samples: Sequence[Sample], clean: pd.DataFrame, *,
                      batch_size: int = 16) -> pd.DataFrame:
    """Per sample: mean top-1 probability and mean log-probability along its clean greedy continuation.

    One teacher-forced pass over prompt + the continuation in `clean["generated_ids"]`: on a greedy
    path every token is the argmax, so its probability is the top-1 probability at that step.
    """
    import torch

    from ..dynamics.sweeps import with_clean_reference
    from ..mia import token_stats

    samples = list(samples)
    with torch.inference_mode():
        stats = token_stats(lm, with_clean_reference(samples, clean), positions="suffix", batch_size=batch_size)
    return pd.DataFrame({"id": [s.id for s in stats],
                         "confidence": [float(np.exp(s.logprob).mean()) for s in stats],
                         "mean_logprob": [float(s.logprob.mean()) for s in stats]})


def standardized_mean_difference(a: Sequence[float], b: Sequence[float]) -> float:
    """(mean a - mean b) / pooled SD (the square root of the mean of the two variances); NaN if undefined."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    spread = np.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)
    return float((a.mean() - b.mean()) / spread) if spread > 0 else float("nan")


def balance_table(confidence: pd.DataFrame) -> pd.DataFrame:
    """Per group (memorized, pool, control): n, mean and SD of the confidence, and the SMD against memorized.

    `confidence` has the columns id, group and confidence (as returned by `matched_sets`); the
    pool is every candidate before matching, the controls the matched ones.
    """
    mem = confidence.loc[confidence["group"] == "memorized", "confidence"]
    rows = []
    for group in ("memorized", "pool", CONTROL):
        values = confidence.loc[confidence["group"] == group, "confidence"] if group != "pool" else \
            confidence.loc[confidence["group"] != "memorized", "confidence"]
        rows.append({"group": group, "n": len(values), "mean": float(values.mean()) if len(values) else float("nan"),
                     "sd": float(values.std()) if len(values) > 1 else float("nan"),
                     "smd": float("nan") if group == "memorized" else standardized_mean_difference(mem, values)})
    return pd.DataFrame(rows)


def matched_sets(lm: LoadedModel, records: Sequence[dict], *, k: int, m: int, clean_m: int | None = None,
                 threshold: float = 0.9, max_memorized: int | None = None, ratio: int = 1,
                 batch_size: int = 16) -> tuple[list[Sample], pd.DataFrame, pd.Series, pd.DataFrame]:
    """`dynamics_samples` with confidence-matched natural-text controls instead of the shuffled ones.

    Returns (samples, their clean runs, id -> group of every record run, confidence): groups are
    memorized, control (the matched texts), shuffled (the shuffled-word records, not run) and
    other; `confidence` has one row per memorized sample and per pool candidate (id, group: memorized / control / unmatched, confidence), the
    input of `balance_table`.
    """
    from ..core.samples import make_samples
    from ..dynamics.sweeps import clean_prefix, clean_runs, dynamics_samples

    clean_m = m if clean_m is None else clean_m
    samples, clean, groups = dynamics_samples(lm, records, k=k, m=m, clean_m=clean_m, threshold=threshold,
                                              max_memorized=max_memorized, max_controls=0, batch_size=batch_size)
    memorized = [s for s in samples if groups[s.id] == "memorized"]
    by_id = {str(r["id"]): r for r in records}
    pool_records = [by_id[i] for i, group in groups.items()
                    if group == "other" and by_id[i].get("category") not in EXCLUDED_CATEGORIES]
    pool_samples, pool_clean = [], clean.iloc[:0]
    if pool_records:  # their clean runs are the cached runs dynamics_samples selected from: no new decoding
        pool_samples = make_samples(lm, pool_records, k=k, m=m)
        _, every_run = clean_runs(lm, records, k=k, clean_m=clean_m, batch_size=batch_size)
        pool_ids = [str(r["id"]) for r in pool_records]
        pool_clean = clean_prefix(every_run.set_index("id").loc[pool_ids].reset_index(), m)
    confidence = pd.concat([greedy_confidence(lm, memorized, clean, batch_size=batch_size).assign(group="memorized"),
                            greedy_confidence(lm, pool_samples, pool_clean, batch_size=batch_size
                                              ).assign(group="unmatched")], ignore_index=True)
    values = confidence.set_index("id")["confidence"]
    pairs = nearest_matches(values.reindex([s.id for s in memorized]), values.reindex([s.id for s in pool_samples]),
                          ratio=ratio)
    controls = set(pairs["control_id"])
    confidence.loc[confidence["id"].isin(controls), "group"] = CONTROL
    confidence = confidence.merge(pairs.rename(columns={"control_id": "id", "treated_id": "matched_to"}), on="id",
                                  how="left")
    groups = groups.replace(CONTROL, "shuffled")  # the shuffled-word records are not this experiment's controls
    groups[list(controls)] = CONTROL
    chosen = memorized + [s for s in pool_samples if s.id in controls]
    chosen_clean = pd.concat([clean, pool_clean[pool_clean["id"].isin(controls)]], ignore_index=True)
    return chosen, chosen_clean, groups, confidence


def control_numbers(confidence: pd.DataFrame | None, controls: str, *, keys: dict | None = None,
                    prefix: str) -> dict[str, object]:
    """Macros naming the control set and, for matched controls, each model's balance (`{Key}{prefix}Conf...`).

    `confidence`: `matched_sets` rows with a `spec` column (None for shuffled controls).
    """
    numbers: dict[str, object] = {
        f"{prefix}Controls": "confidence-matched natural texts" if controls == "matched" else "shuffled-word texts"}
    if confidence is None:
        return numbers
    for spec, part in confidence.groupby("spec", sort=False):
        table = balance_table(part).set_index("group")
        key = f"{(keys or {}).get(spec, spec)}{prefix}Conf"
        numbers[f"{key}Mem"] = format_number(table.loc["memorized", "mean"])
        numbers[f"{key}Ctrl"] = format_number(table.loc[CONTROL, "mean"])
        numbers[f"{key}Pool"] = format_number(table.loc["pool", "mean"])
        numbers[f"{key}NPool"] = int(table.loc["pool", "n"])
        numbers[f"{key}Smd"] = format_number(table.loc[CONTROL, "smd"])
        numbers[f"{key}SmdPool"] = format_number(table.loc["pool", "smd"])
        numbers[f"{key}MaxDistance"] = format_number(part["distance"].max())
    return numbers
