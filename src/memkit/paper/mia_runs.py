"""Experiment driver of the membership-inference table (notebook `tab_mia`): scores, attacks, tests, numbers.

    mem = membership_runs("smoke", k=32, m=32, n_boot=200)   # every final organism, canaries of window `all`
    table, caption = mia_table(mem)                          # per size x copies: AUCs next to extraction rates
    numbers = mia_numbers(mem)                               # macros of numbers_tab_mia.tex

Ground truth comes from the zoo: a canary is a member when it was inserted at least once (level > 0)
and a non-member when it never was (level 0, the controls). Every final-step organism scores every
canary of the `all` window with `memkit.mia.mia_scores` (positions `all`: the whole 64-token canary
minus its first token); the smallest organism is the reference model of the larger ones (same
tokenizer, same stream), so it has no `score_ref`. Per size and duplication level, the members of
that level are attacked against all controls (`memkit.mia.attack_table`: AUC, TPR at 1% FPR,
bootstrap CIs only when both groups hold at least `MIN_BOOT` = `core.stats.MIN_BOOTSTRAP_N`
canaries). The extraction side is the greedy extraction of the same canaries that `fig_dup_scaling`
computes (`organism_runs.final_extraction`, one `cached_extract` entry per size). The loss attack
is tested per size and level with a two-sided permutation test of the members' and controls'
pooled ranks (equivalent to AUC = 0.5), Holm-corrected over the levels of each size; a level counts
as detected when its adjusted p is below `alpha` and its AUC above 0.5.

Scores are cached per model under `paths.cache_dir()/mia/`, keyed by the weights of the model and
its reference, the samples, the settings and the code of `mia.py`; the table and macro builders
are pure pandas, tested on hand-made frames.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..core.stats import MIN_BOOTSTRAP_N, holm, permutation_test_means
from ..mia import MIN_BOOT, attack_metrics, attack_table
from ..paths import atomic_path, cache_dir, code_fingerprint, entry_lock
from .organism_runs import final_extraction, level_rates, with_biderman
from .report import format_number, format_params, macro_key

#: attack -> how the table and the paper name it (table column order)
ATTACK_LABELS = {"loss": "loss", "zlib": "zlib", "min_k": "Min-K\\%", "min_k_pp": "Min-K\\%++", "ref": "ref."}
TEST_ATTACK = "loss"  # the attack tested per level (Holm over the levels of a size)


def mia_code_version() -> str:
    """Hash of the modules that decide the scores (part of the cache key)."""
    return code_fingerprint("mia.py", "core/batching.py", "core/extract.py", "core/samples.py")


def scores_path(lm, samples: Sequence, *, reference=None, min_k: float, batch_size: int,
                positions: str = "all") -> Path:
    """The cache file of one model's scores: `<cache>/mia/<model>-<hash of weights, samples, settings, code>`."""
    from ..core.extract import samples_fingerprint

    key = {"model": lm.name, "model_sha256": lm.sha256,
           "reference": None if reference is None else [reference.name, reference.sha256],
           "samples": samples_fingerprint(samples), "min_k": min_k, "batch_size": batch_size, "positions": positions,
           "code": mia_code_version()}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    slug = re.sub(r"[^A-Za-z0-9.]+", "-", lm.name).strip("-") or "model"
    return cache_dir() / "mia" / f"{slug}-{digest}.parquet"


def cached_mia_scores(lm, samples: Sequence, *, reference=None, min_k: float = 0.2, batch_size: int = 32,
                      positions: str = "all", progress: bool = False) -> pd.DataFrame:
    """`mia_scores` of one model, read back from its cache file when it exists (or once another process wrote it)."""
    from ..mia import mia_scores

    path = scores_path(lm, samples, reference=reference, min_k=min_k, batch_size=batch_size, positions=positions)
    path.parent.mkdir(parents=True, exist_ok=True)
    with entry_lock(path):
        if path.is_file():
            return pd.read_parquet(path)
        frame = mia_scores(lm, samples, reference=reference, k=min_k, batch_size=batch_size, positions=positions,
                           progress=progress)
        with atomic_path(path) as tmp:
            frame.to_parquet(tmp, index=False)
        return frame


@dataclass
class Membership:
    """What `membership_runs` measured at the final checkpoint of every size (window `all`)."""

    sizes: list[str]  # smallest first; sizes[0] is the reference model
    scores: pd.DataFrame  # per size x canary: score_* (NaN score_ref for the reference), level, kind, extraction
    attacks: pd.DataFrame  # per size x level x attack: METRIC_COLUMNS of `memkit.mia` (level vs controls)
    rates: pd.DataFrame  # per size x level: n, exact, biderman (`organism_runs.level_rates`)
    tests: pd.DataFrame  # per size x level: the `TEST_ATTACK` permutation test, Holm within the size
    settings: dict  # k, m, min_k, fpr, n_boot, n_resamples, alpha


def score_frame(profile: str, sizes: Sequence[str], *, k: int, m: int, min_k: float, batch_size: int,
                progress: bool = False) -> pd.DataFrame:
    """Every attack score of every `all`-window canary by every final-step size (reference: the smallest)."""
    from ..core.models import load_model
    from ..organisms import zoo

    samples = [s for s in zoo.zoo_samples(profile, k=k, m=m) if s.meta["window"] == "all"]
    specs = dict(zip(zoo.get_profile(profile).sizes, zoo.zoo_specs(profile)))
    reference = load_model(specs[sizes[0]], device="cpu")
    frames = []
    for size in sizes:
        lm = reference if size == sizes[0] else load_model(specs[size], device="cpu")
        frame = cached_mia_scores(lm, samples, reference=None if lm is reference else reference, min_k=min_k,
                                  batch_size=batch_size, progress=progress)
        frames.append(frame.assign(size=size, params=int(lm.meta["non_embedding_params"])))
    out = pd.concat(frames, ignore_index=True)
    out = out.rename(columns={"meta_level": "level", "meta_kind": "kind", "meta_window": "window"})
    out["is_member"] = out["level"] > 0
    return out.drop(columns=[c for c in out.columns if c.startswith("meta_")])


def score_columns(scores: pd.DataFrame) -> list[str]:
    """The score_* columns that hold a value for every row of `scores` (a size without reference: no score_ref)."""
    return [f"score_{a}" for a in ATTACK_LABELS if f"score_{a}" in scores and scores[f"score_{a}"].notna().all()]


def level_attacks(scores: pd.DataFrame, *, fpr: float = 0.01, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per size x level x attack: AUC, TPR at `fpr`, CIs (NaN below MIN_BOOT per group); level's members vs controls."""
    frames = []
    for size, part in scores.groupby("size", sort=False):
        table = attack_table(part, label="is_member", by=["size", "params"], members_by="level",
                             scores=score_columns(part), fpr=fpr, n_boot=n_boot, seed=seed)
        frames.append(table)
    return pd.concat(frames, ignore_index=True)


def rank_test(members: np.ndarray, controls: np.ndarray, *, n_resamples: int, seed: int) -> float:
    """Two-sided permutation p of the difference of mean pooled ranks (a test of AUC = 0.5)."""
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([members, controls]))
    return permutation_test_means(ranks[: len(members)], ranks[len(members):], n_resamples=n_resamples, seed=seed)[1]


def level_tests(scores: pd.DataFrame, *, attack: str = TEST_ATTACK, n_resamples: int = 9999, seed: int = 0,
                alpha: float = 0.05) -> pd.DataFrame:
    """Per size x level > 0: AUC of `attack`, permutation p vs the controls, Holm p within the size, detected."""
    column = f"score_{attack}"
    rows = []
    for size, part in scores.groupby("size", sort=False):
        controls = part.loc[part["level"] == 0, column].to_numpy(float)
        for level in sorted(part.loc[part["level"] > 0, "level"].unique()):
            members = part.loc[part["level"] == level, column].to_numpy(float)
            auc = attack_metrics(np.concatenate([members, controls]),
                                 np.r_[np.ones(len(members), bool), np.zeros(len(controls), bool)], n_boot=0)["auc"]
            rows.append({"size": size, "level": int(level), "attack": attack, "n_members": len(members),
                         "n_nonmembers": len(controls), "auc": auc,
                         "p": rank_test(members, controls, n_resamples=n_resamples, seed=seed),
                         "p_floor": smallest_p(len(members), len(controls), n_resamples)})
    tests = pd.DataFrame(rows)
    tests["p_holm"] = np.concatenate([holm(group["p"].to_numpy()) for _, group in tests.groupby("size", sort=False)])
    tests["detected"] = (tests["p_holm"] < alpha) & (tests["auc"] > 0.5)
    return tests


def smallest_p(n_members: int, n_controls: int, n_resamples: int) -> float:
    """The smallest two-sided p the permutation test can return (exact enumeration, or 2 / (n_resamples + 1) drawn)."""
    from ..core.stats import smallest_permutation_p

    return max(smallest_permutation_p(n_members, n_controls), min(1.0, 2.0 / (n_resamples + 1)))


def membership_runs(profile: str, *, k: int = 32, m: int = 32, min_k: float = 0.2, fpr: float = 0.01,
                    n_boot: int = 1000, n_resamples: int = 9999, alpha: float = 0.05, seed: int = 0,
                    batch_size: int = 32, progress: bool = False) -> Membership:
    """Score and extract every `all`-window canary at the final checkpoint of every size; attacks, rates, tests."""
    from .organism_runs import _built

    sizes = _built(profile, progress)
    runs = with_biderman(final_extraction(profile, k=k, m=m, batch_size=batch_size, progress=progress))
    scores = score_frame(profile, sizes, k=k, m=m, min_k=min_k, batch_size=batch_size, progress=progress)
    scores = scores.merge(runs[["size", "id", "exact_match", "biderman"]], on=["size", "id"], how="left",
                          validate="one_to_one")
    settings = {"k": k, "m": m, "min_k": min_k, "fpr": fpr, "n_boot": n_boot, "n_resamples": n_resamples,
                "alpha": alpha}
    return Membership(sizes, scores, level_attacks(scores, fpr=fpr, n_boot=n_boot, seed=seed), level_rates(runs),
                      level_tests(scores, n_resamples=n_resamples, seed=seed, alpha=alpha), settings)


# -- table and numbers ---------------------------------------------------------------------------------------------
def with_ci(value: float, low: float, high: float, ci_ok: bool) -> str:
    """'0.83 [0.71, 0.92]', or just '0.83' when a group is too small for a bootstrap CI (the row says n<20)."""
    return f"{format_number(value)} [{format_number(low)}, {format_number(high)}]" if ci_ok else format_number(value)


def format_p(value: float) -> str:
    """A p-value for the table: two significant digits, '--' for NaN."""
    return "--" if value is None or not np.isfinite(value) else f"{value:.2g}"


def mia_table(mem: Membership) -> tuple[pd.DataFrame, str]:
    """The `tab_mia.tex` rows (per size x copies: n, extraction rates, AUC per attack, TPR and Holm p of loss)."""
    attacks = mem.attacks.set_index(["size", "level", "attack"])
    tests = mem.tests.set_index(["size", "level"])
    rates = mem.rates.set_index(["size", "level"])
    columns = ["model", "copies", "$n_1$ / $n_0$", "CI", "exact", "Biderman",
               *[f"AUC {label}" for label in ATTACK_LABELS.values()], "TPR loss", "$p_\\mathrm{Holm}$ loss"]
    rows = []
    for size in mem.sizes:
        for i, level in enumerate(sorted(rates.loc[size].index)):
            rate = rates.loc[(size, level)]
            row = [f"zoo:{size}" if i == 0 else "", "0 (controls)" if level == 0 else str(level)]
            extraction = [format_number(rate["exact"]), format_number(rate["biderman"])]
            if level == 0:
                rows.append(row + [f"-- / {int(rate['n'])}", "--", *extraction] + ["--"] * (len(columns) - 6))
                continue
            loss = attacks.loc[(size, level, TEST_ATTACK)]
            ci = "95\\%" if loss["ci_ok"] else f"n$<${MIN_BOOT}"
            cells = []
            for attack in ATTACK_LABELS:
                r = attacks.loc[(size, level, attack)] if (size, level, attack) in attacks.index else None
                cells.append("--" if r is None else with_ci(r["auc"], r["auc_lo"], r["auc_hi"], bool(r["ci_ok"])))
            rows.append(row + [f"{int(loss['n_members'])} / {int(loss['n_nonmembers'])}", ci, *extraction, *cells,
                               with_ci(loss["tpr"], loss["tpr_lo"], loss["tpr_hi"], bool(loss["ci_ok"])),
                               format_p(tests.loc[(size, level), "p_holm"])])
    table = pd.DataFrame(rows, columns=columns)
    s = mem.settings
    n0 = int(mem.attacks["n_nonmembers"].max())
    coarse = bool(mem.attacks["tpr_coarse"].any())
    n1_min, n1_max = int(mem.attacks["n_members"].min()), int(mem.attacks["n_members"].max())
    per_level = str(n1_min) if n1_min == n1_max else f"{n1_min}--{n1_max}"
    caption = (
        f"Membership inference vs extraction on the organisms: every canary of the \\texttt{{all}} window at the "
        f"final checkpoint. Members: the $n_1$ canaries inserted with that many copies ({per_level} per level); "
        f"non-members: the $n_0={n0}$ never-inserted controls. Exact and Biderman: greedy extraction rate and mean "
        f"share of the $m={s['m']}$ suffix tokens reproduced after $k={s['k']}$ prefix tokens (as in "
        f"Table~\\ref{{tab:dup-slopes}}). Attacks score the whole canary (higher = member): loss = minus the mean "
        f"token loss; zlib = the loss score divided by the zlib-compressed length of the text; Min-K\\% = mean of "
        f"the {100 * s['min_k']:g}\\% lowest token log-probabilities; Min-K\\%++ = the same over log-probabilities "
        f"standardized by the next-token distribution; ref. = loss of the smallest organism (trained on the same "
        f"stream) minus loss of the target. ROC AUC and TPR at {100 * s['fpr']:g}\\% FPR (loss attack) carry a "
        f"95\\% stratified bootstrap CI ({s['n_boot']} resamples) in brackets when both groups hold at least "
        f"{MIN_BOOTSTRAP_N} canaries (column CI: 95\\%); n$<${MIN_BOOT}: a group is smaller, and no interval is given"
        + (f"; with $n_0={n0}<{round(1 / s['fpr'])}$ controls the TPR threshold is the highest control score (FPR 0)"
           if coarse else "")
        + f". $p_\\mathrm{{Holm}}$: two-sided permutation test of AUC $=0.5$ for the loss attack ({s['n_resamples']} "
        f"resamples of the pooled ranks), Holm-corrected over the levels of each organism. "
        f"Made by \\texttt{{notebooks/tab\\_mia.py}}.")
    return table, caption


def mia_numbers(mem: Membership) -> dict[str, object]:
    """The `numbers_tab_mia.tex` macros: settings; per size the top-level AUCs, detected levels, level-1 AUCs."""
    s, attacks, tests, rates = mem.settings, mem.attacks, mem.tests, mem.rates
    levels = sorted(int(v) for v in attacks["level"].unique())
    members = attacks[attacks["attack"] == TEST_ATTACK]["n_members"]
    numbers: dict[str, object] = {
        "MiaK": s["k"], "MiaM": s["m"], "MiaMinKPercent": f"{100 * s['min_k']:g}",
        "MiaFprPercent": f"{100 * s['fpr']:g}",
        "MiaBoot": s["n_boot"], "MiaResamples": s["n_resamples"], "MiaAlpha": f"{s['alpha']:g}",
        "MiaMinBoot": MIN_BOOT, "MiaNSizes": len(mem.sizes), "MiaNLevels": len(levels), "MiaTopLevel": levels[-1],
        "MiaNControls": int(attacks["n_nonmembers"].max()), "MiaMembersMin": int(members.min()),
        "MiaMembersMax": int(members.max()), "MiaNCanaries": int(mem.scores.drop_duplicates("id").shape[0]),
        "MiaReferenceParams": format_params(mem.scores.loc[mem.scores["size"] == mem.sizes[0], "params"].iloc[0]),
        "MiaDetectedTotal": int(tests["detected"].sum()), "MiaNTestsTotal": len(tests),
        "MiaPFloor": format_p(tests["p_floor"].min()),
    }
    exact = rates.set_index(["size", "level"])["exact"]
    biderman = rates.set_index(["size", "level"])["biderman"]
    hidden = tests[tests["detected"] & (tests.apply(lambda r: exact[(r["size"], r["level"])], axis=1) == 0)]
    numbers["MiaDetectedNotExtracted"] = len(hidden)
    for size in mem.sizes:
        key = macro_key(size)
        sub = attacks[attacks["size"] == size]
        top = sub[(sub["level"] == levels[-1]) & (sub["attack"] == TEST_ATTACK)].iloc[0]
        numbers[f"MiaLossAucTop{key}"] = format_number(top["auc"])
        numbers[f"MiaLossAucTopCi{key}"] = (f"95\\% CI [{format_number(top['auc_lo'])}, {format_number(top['auc_hi'])}]"
                                            if top["ci_ok"] else f"no CI: n$<${MIN_BOOT}")
        numbers[f"MiaTopMembers{key}"] = int(top["n_members"])
        one = sub[sub["level"] == levels[0]].sort_values("auc", ascending=False, kind="stable")
        numbers[f"MiaMaxAucOne{key}"] = format_number(one["auc"].iloc[0])
        numbers[f"MiaMaxAucOneAttack{key}"] = ATTACK_LABELS[one["attack"].iloc[0]]
        numbers[f"MiaLossAucOne{key}"] = format_number(one.set_index("attack").loc[TEST_ATTACK, "auc"])
        numbers[f"MiaOneMembers{key}"] = int(one["n_members"].iloc[0])
        numbers[f"MiaExactOne{key}"] = format_number(exact[(size, levels[0])])
        numbers[f"MiaExactTop{key}"] = format_number(exact[(size, levels[-1])])
        size_tests = tests[tests["size"] == size]
        numbers[f"MiaDetected{key}"] = int(size_tests["detected"].sum())
        numbers[f"MiaNTests{key}"] = len(size_tests)
        lowest = int(size_tests.loc[size_tests["detected"], "level"].min()) if size_tests["detected"].any() else None
        numbers[f"MiaLowestDetected{key}"] = "--" if lowest is None else lowest
        at_lowest = sub[sub["level"] == lowest].set_index("attack")
        best = at_lowest["auc"].idxmax() if lowest is not None else None
        numbers[f"MiaLossAucLowestDetected{key}"] = ("--" if best is None
                                                     else format_number(at_lowest.loc[TEST_ATTACK, "auc"]))
        numbers[f"MiaMaxAucLowestDetected{key}"] = "--" if best is None else format_number(at_lowest.loc[best, "auc"])
        numbers[f"MiaMaxAucLowestDetectedAttack{key}"] = "--" if best is None else ATTACK_LABELS[best]
        numbers[f"MiaExactLowestDetected{key}"] = "--" if best is None else format_number(exact[(size, lowest)])
        numbers[f"MiaBidermanLowestDetected{key}"] = ("--" if best is None
                                                     else format_number(biderman[(size, lowest)]))
        if size != mem.sizes[0]:  # the reference attack: every size but the reference itself
            ref_top = sub[(sub["level"] == levels[-1]) & (sub["attack"] == "ref")]["auc"]
            numbers[f"MiaRefAucTop{key}"] = format_number(ref_top.iloc[0])
    ref = attacks[(attacks["attack"] == "ref")]
    if not ref.empty:
        numbers["MiaRefAucTopMax"] = format_number(ref[ref["level"] == levels[-1]]["auc"].max())
        numbers["MiaRefAucOneMax"] = format_number(ref[ref["level"] == levels[0]]["auc"].max())
    return numbers


__all__ = ["ATTACK_LABELS", "Membership", "cached_mia_scores", "level_attacks", "level_tests", "membership_runs",
           "mia_numbers", "mia_table", "rank_test", "score_columns", "score_frame", "scores_path", "smallest_p",
           "with_ci"]
