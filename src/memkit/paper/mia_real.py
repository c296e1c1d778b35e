"""Membership attacks on the pretrained models, where membership is not known: famous texts vs shuffled twins.

    res = real_mia(["gemma-3-270m"], records, k=16, m=32, n_boot=1000)   # scores, metrics, tests
    table, caption = real_mia_table(res, labels)                          # AUC [CI], paired diff, Holm p
    numbers = real_mia_numbers(res, keys)                                 # macros of numbers_tab_mia_real.tex

A famous, heavily copied text (an attractor's natural-language or code text; computed sequences and
the hand-shuffled controls are left out) is almost surely in a web-scale training set; its *twin*,
the same words in a seeded random order with the text's whitespace kept, is surely not -- no corpus
holds that sequence. Each text and its twin are cut to the same k + m tokens and scored by every
attack of `memkit.mia` from one teacher-forced pass (positions `all`); a pair is kept only when both
have k + m tokens. Per model and attack: ROC AUC and TPR at `fpr` (texts = members, twins =
non-members; bootstrap CIs from 20 pairs on) and a paired sign-flip permutation test of the
text-minus-twin score difference, Holm-corrected over every model and attack.

The twins differ from the texts in fluency as well as in membership -- the member/non-member
distribution shift that Duan et al. (2024) show inflates membership AUCs -- so an AUC here is an upper
bound of what an attack detects about membership; the organisms (`paper.mia_runs`) give ground truth.
"""

from __future__ import annotations

import gc
import re
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..core.stats import holm, paired_permutation_test
from ..mia import MIN_BOOT, attack_table
from .experiments import record_kind
from .mia_runs import ATTACK_LABELS
from .report import format_number, format_small

#: id suffix of a text's shuffled twin
TWIN = "~shuffled"
#: the attacks that need no reference model, in table order
ATTACKS = [a for a in ATTACK_LABELS if a != "ref"]


def shuffled_twin(text: str, *, seed: int) -> str:
    """The text's words in a seeded random order, its whitespace (line breaks, indentation) left in place."""
    parts = re.split(r"(\s+)", text)
    is_word = [bool(p) and not p.isspace() for p in parts]
    words = [p for p, word in zip(parts, is_word) if word]
    shuffled = iter([words[i] for i in np.random.default_rng(seed).permutation(len(words))])
    return "".join(next(shuffled) if word else p for p, word in zip(parts, is_word))


def twin_records(records: Sequence[Mapping], *, seed: int = 0) -> list[dict]:
    """Every natural-language/code text of `records`, each followed by its twin (`member` False, `pair` = text id)."""
    out = []
    for record in records:
        if record_kind(record.get("category", "")) != "text":
            continue
        rid = str(record["id"])
        out.append({"id": rid, "text": record["text"], "category": record.get("category"), "member": True,
                    "pair": rid})
        out.append({"id": rid + TWIN, "text": shuffled_twin(record["text"], seed=seed),
                    "category": record.get("category"), "member": False, "pair": rid})
    return out


def long_enough(tokenizer, records: Sequence[Mapping], n_tokens: int) -> tuple[list[dict], list[str]]:
    """(records of the pairs whose text and twin both have `n_tokens` tokens, ids of the texts dropped)."""
    lengths = {r["id"]: len(tokenizer(r["text"], add_special_tokens=False)["input_ids"]) for r in records}
    short = {r["pair"] for r in records if lengths[r["id"]] < n_tokens}
    return [dict(r) for r in records if r["pair"] not in short], sorted(short)


@dataclass
class RealMia:
    """Scores (one row per model x text or twin), metrics and tests (one row per model x attack)."""

    scores: pd.DataFrame
    metrics: pd.DataFrame
    k: int
    m: int
    dropped: dict[str, list[str]] = field(default_factory=dict)


def paired_tests(scores: pd.DataFrame, *, n_resamples: int = 9999, seed: int = 0) -> pd.DataFrame:
    """Per spec x attack: mean text-minus-twin score difference, paired permutation p, Holm over all rows."""
    rows = []
    for spec, part in scores.groupby("spec", sort=False):
        texts = part[part["member"]].set_index("pair")
        twins = part[~part["member"]].set_index("pair").reindex(texts.index)
        for attack in ATTACKS:
            diff, p = paired_permutation_test(texts[f"score_{attack}"], twins[f"score_{attack}"],
                                              n_resamples=n_resamples, seed=seed)
            rows.append({"spec": spec, "attack": attack, "n_pairs": len(texts), "diff": diff, "p": p})
    tests = pd.DataFrame(rows)
    tests["p_holm"] = holm(tests["p"].to_numpy()) if len(tests) else []
    return tests


def real_mia(specs: Sequence[str], records: Sequence[Mapping], *, k: int = 16, m: int = 32, min_k: float = 0.2,
             fpr: float = 0.05, n_boot: int = 1000, n_resamples: int = 9999, seed: int = 0, twin_seed: int = 0,
             batch_size: int = 16, progress: bool = False) -> RealMia:
    """Score every attractor text and its twin with every reference-free attack, per model (module docstring)."""
    from ..core.models import load_model
    from ..core.samples import make_samples
    from ..mia import mia_scores

    pairs, frames, dropped = twin_records(records, seed=twin_seed), [], {}
    for spec in specs:
        lm = load_model(spec)
        kept, dropped[spec] = long_enough(lm.tokenizer, pairs, k + m)
        samples = make_samples(lm, kept, k=k, m=m)
        scores = mia_scores(lm, samples, k=min_k, batch_size=batch_size, progress=progress)
        meta = pd.DataFrame(kept)[["id", "pair", "member", "category"]]
        frames.append(scores.drop(columns=[c for c in scores if c.startswith("meta_")]).merge(meta, on="id")
                      .assign(spec=spec))
        del lm
        gc.collect()
    scores = pd.concat(frames, ignore_index=True)
    metrics = attack_table(scores, label="member", by=["spec"], scores=[f"score_{a}" for a in ATTACKS], fpr=fpr,
                           n_boot=n_boot, seed=seed)
    order = {s: i for i, s in enumerate(specs)}
    metrics = metrics.merge(paired_tests(scores, n_resamples=n_resamples, seed=seed), on=["spec", "attack"])
    metrics = metrics.sort_values("spec", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
    return RealMia(scores=scores, metrics=metrics, k=k, m=m, dropped=dropped)


def _auc_cell(row: pd.Series) -> str:
    ci = f" [{format_number(row['auc_lo'])}, {format_number(row['auc_hi'])}]" if row["ci_ok"] else ""
    return format_number(row["auc"]) + ci


def real_mia_table(res: RealMia, labels: Mapping[str, str]) -> tuple[pd.DataFrame, str]:
    """One row per model x attack: pairs, AUC [95 % CI], TPR at the FPR, mean paired difference, Holm p."""
    metrics = res.metrics
    table = pd.DataFrame({
        "Model": metrics["spec"].map(lambda s: labels.get(s, s)),
        "Attack": metrics["attack"].map(ATTACK_LABELS),
        "$n$ pairs": metrics["n_pairs"],
        "AUC [95\\% CI]": metrics.apply(_auc_cell, axis=1),
        "TPR": metrics["tpr"].map(format_number),
        "text $-$ twin": metrics["diff"].map(format_number),
        "$p$ (Holm)": metrics["p_holm"].map(format_small),
    })
    fpr = format_number(100 * metrics["fpr"].iloc[0], 0) if len(metrics) else "?"
    caption = (f"Membership attacks on the pretrained models: famous natural-language and code texts (presumed "
               f"members) vs their word-shuffled twins (non-members), each cut to the same $k + m = {res.k + res.m}$ "
               f"tokens and scored from one teacher-forced pass. AUC with a percentile bootstrap CI over the pairs "
               f"(from {MIN_BOOT} pairs on), TPR at {fpr}\\,\\% FPR, mean paired score difference and its "
               f"sign-flip permutation $p$, Holm-corrected over all {len(metrics)} rows. The twins are also less "
               f"fluent, so these AUCs bound membership detection from above (Section~\\ref{{sec:mia}}).")
    return table, caption


def real_mia_numbers(res: RealMia, keys: Mapping[str, str], *, alpha: float = 0.05) -> dict[str, object]:
    """Macros `MiaReal...`: pairs, texts dropped, per model the best attack and every attack's AUC and Holm p."""
    metrics = res.metrics
    numbers: dict[str, object] = {"MiaRealK": res.k, "MiaRealM": res.m, "MiaRealTokens": res.k + res.m,
                                  "MiaRealNTests": len(metrics),
                                  "MiaRealNSignificant": int(((metrics["p_holm"] < alpha) & (metrics["diff"] > 0)).sum())}
    for spec, part in metrics.groupby("spec", sort=False):
        key = "MiaReal" + keys[spec]
        numbers[f"{key}Pairs"] = int(part["n_pairs"].iloc[0])
        numbers[f"{key}Dropped"] = len(res.dropped.get(spec, []))
        best = part.loc[part["auc"].idxmax()]
        numbers[f"{key}BestAttack"] = ATTACK_LABELS[best["attack"]]
        numbers[f"{key}BestAuc"] = format_number(best["auc"])
        for _, row in part.iterrows():
            name = key + "".join(w.capitalize() for w in row["attack"].split("_")).replace("Pp", "PlusPlus")
            numbers[f"{name}Auc"] = format_number(row["auc"])
            numbers[f"{name}AucLo"] = format_number(row["auc_lo"]) if row["ci_ok"] else "--"
            numbers[f"{name}AucHi"] = format_number(row["auc_hi"]) if row["ci_ok"] else "--"
            numbers[f"{name}PHolm"] = format_small(row["p_holm"])
    return numbers


__all__ = ["ATTACKS", "TWIN", "RealMia", "long_enough", "paired_tests", "real_mia", "real_mia_numbers",
           "real_mia_table", "shuffled_twin", "twin_records"]
