"""Experiment driver of the membership-inference table (notebook `tab_mia`): scores, attacks, tests, numbers.

    mem = membership_runs("smoke", k=32, m=32, n_boot=200)   # every final organism x seed, canaries of window `all`
    table, caption = mia_table(mem)                          # per size x copies: AUCs next to extraction
    numbers = mia_numbers(mem)                               # macros of numbers_tab_mia.tex

Ground truth comes from the zoo: a canary is a member when it was inserted at least once (level > 0)
and a non-member when it never was (level 0, the controls; the same texts for every seed). Every
final-step organism of every seed scores every canary of the `all` window with `memkit.mia.mia_scores`
(positions `all`: the whole 64-token canary minus its first token); the reference model of the
reference attack is the smallest organism of the same seed (same tokenizer, same stream), so the
smallest size has no `score_ref` row.

Per size, level and attack, that level's members are attacked against all controls:
- `per_seed`: each seed's model alone (`memkit.mia.attack_table`: AUC, TPR at `fpr`, stratified
  bootstrap CIs when both groups hold at least `MIN_BOOT` canaries);
- `pooled`: the seeds together (`memkit.mia.seed_pooled_metrics`: mean of the seed AUCs with a
  canary bootstrap shared by the seeds and a t interval over the seeds; TPR with one threshold over
  the pooled controls).
The extraction side is the greedy extraction of the same canaries (`zoo.zoo_extraction`, final step,
the `cached_extract` entries `fig_dup_scaling` also reads): per size and level the exact-match rate
of each seed, then their mean. Every attack is tested in every size x level cell with a permutation
test of the canaries' ranks (`pooled_rank_test`: a canary's rank among the cell's canaries, summed
over seeds, members vs controls; equivalent to mean AUC = 0.5), Holm-corrected over all cells and
attacks at once; a cell counts as detected when its adjusted p is below `alpha` and its AUC above
0.5. `best` is the attack with the highest mean pooled AUC over the cells (among the attacks every
size has); its per-kind AUCs (a kind's members vs the same kind's controls) are in `kinds`.

Scores are cached per model under `paths.cache_dir()/mia/`, keyed by the weights of the model and
its reference, the samples, the settings and the code of `mia.py`; the table and macro builders
are pure pandas, tested on hand-made frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..core.stats import MIN_BOOTSTRAP_N, holm, permutation_test_means
from ..mia import MIN_BOOT, POOLED_COLUMNS, attack_table, seed_pooled_metrics
from ..paths import cached_frame, code_fingerprint, model_entry
from .report import format_number, format_p, format_params, macro_key

#: attack -> how the table and the paper name it (table column order)
ATTACK_LABELS = {"loss": "loss", "zlib": "zlib", "min_k": "Min-K\\%", "min_k_pp": "Min-K\\%++", "ref": "ref."}


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
    return model_entry("mia", lm.name, key, ".parquet")


def cached_mia_scores(lm, samples: Sequence, *, reference=None, min_k: float = 0.2, batch_size: int = 32,
                      positions: str = "all", progress: bool = False) -> pd.DataFrame:
    """`mia_scores` of one model, read back from its cache file when it exists (or once another process wrote it)."""
    from ..mia import mia_scores

    path = scores_path(lm, samples, reference=reference, min_k=min_k, batch_size=batch_size, positions=positions)
    return cached_frame(path, lambda: mia_scores(lm, samples, reference=reference, k=min_k, batch_size=batch_size,
                                                 positions=positions, progress=progress))


@dataclass
class Membership:
    """What `membership_runs` measured (final checkpoints, window `all`, every seed)."""

    sizes: list[str]  # smallest first; the first is the reference model of the others
    seeds: list[int]
    scores: pd.DataFrame  # per size x seed x canary: score_* (NaN score_ref for the reference), level, kind, exact
    per_seed: pd.DataFrame  # per size x seed x level x attack: METRIC_COLUMNS of `memkit.mia`
    pooled: pd.DataFrame  # per size x level x attack: POOLED_COLUMNS of `memkit.mia`
    rates: pd.DataFrame  # per size x level: n, n_seeds, exact (mean over seeds), exact_sd, n_exact, biderman
    tests: pd.DataFrame  # per size x level x attack: pooled rank test, Holm over every cell and attack
    best: str  # the attack with the highest mean pooled AUC (compared with extraction)
    kinds: pd.DataFrame  # per size x kind x level: `best` AUC of the kind's members vs the kind's controls
    settings: dict  # k, m, min_k, fpr, n_boot, n_resamples, alpha


def score_frame(profile: str, sizes: Sequence[str], seeds: Sequence[int], *, k: int, m: int, min_k: float,
                batch_size: int, progress: bool = False) -> pd.DataFrame:
    """Every attack score of every `all`-window canary by every final-step size x seed (reference: the
    smallest size of the same seed)."""
    from ..core.models import load_model
    from ..organisms import zoo

    samples = [s for s in zoo.zoo_samples(profile, k=k, m=m) if s.meta["window"] == "all"]
    frames = []
    for seed in seeds:
        specs = dict(zip(zoo.get_profile(profile).sizes, zoo.zoo_specs(profile, seeds=[seed])))
        reference = load_model(specs[sizes[0]], device="cpu")
        for size in sizes:
            lm = reference if size == sizes[0] else load_model(specs[size], device="cpu")
            frame = cached_mia_scores(lm, samples, reference=None if lm is reference else reference, min_k=min_k,
                                      batch_size=batch_size, progress=progress)
            frames.append(frame.assign(size=size, params=int(lm.meta["non_embedding_params"]), seed=seed))
    out = pd.concat(frames, ignore_index=True)
    out = out.rename(columns={"meta_level": "level", "meta_kind": "kind", "meta_window": "window"})
    out["is_member"] = out["level"] > 0
    return out.drop(columns=[c for c in out.columns if c.startswith("meta_")])


def final_extraction(profile: str, *, k: int, m: int, batch_size: int = 32, progress: bool = False) -> pd.DataFrame:
    """Greedy extraction of the `all`-window canaries at the final checkpoint of every size x seed (`biderman` =
    the extraction's `token_match`)."""
    from ..organisms.zoo import zoo_extraction

    runs = zoo_extraction(profile, steps=["final"], k=k, m=m, batch_size=batch_size, progress=progress)
    runs = runs[runs["window"] == "all"].reset_index(drop=True)
    return runs.assign(biderman=runs["token_match"])


def seed_rates(runs: pd.DataFrame) -> pd.DataFrame:
    """Per size x level: canaries per seed `n`, seeds, exact-match rate per seed then its mean `exact` and SD
    `exact_sd` over seeds, extracted (canary, seed) pairs `n_exact`, mean Biderman score."""
    per_seed = (runs.groupby(["size", "params", "level", "seed"], sort=False)
                .agg(n=("id", "size"), exact=("exact_match", "mean"), n_exact=("exact_match", "sum"),
                     biderman=("biderman", "mean")).reset_index())
    return (per_seed.groupby(["size", "params", "level"], sort=False)
            .agg(n=("n", "first"), n_seeds=("seed", "size"), exact=("exact", "mean"),
                 exact_sd=("exact", lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else float("nan")),
                 n_exact=("n_exact", "sum"), biderman=("biderman", "mean")).reset_index())


def score_columns(scores: pd.DataFrame) -> list[str]:
    """The score_* columns that hold a value for every row of `scores` (the reference size: no score_ref)."""
    return [f"score_{a}" for a in ATTACK_LABELS if f"score_{a}" in scores and scores[f"score_{a}"].notna().all()]


def seed_attacks(scores: pd.DataFrame, *, fpr: float = 0.01, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per size x seed x level x attack: AUC, TPR at `fpr` and CIs of that seed's model (NaN CIs below MIN_BOOT)."""
    frames = []
    for _, part in scores.groupby(["size", "seed"], sort=False):
        frames.append(attack_table(part, label="is_member", by=["size", "params", "seed"], members_by="level",
                                   scores=score_columns(part), fpr=fpr, n_boot=n_boot, seed=seed))
    return pd.concat(frames, ignore_index=True)


def seed_matrix(part: pd.DataFrame, column: str, mask: pd.Series) -> np.ndarray:
    """(seeds, canaries) scores of the rows in `mask`, seeds ascending and canaries in id order in every row."""
    wide = part[mask].pivot(index="seed", columns="id", values=column).sort_index()
    return wide.reindex(columns=sorted(wide.columns)).to_numpy(float)


def cells(scores: pd.DataFrame):
    """(size, params, level, part, member mask, control mask) of every size x level > 0, sizes and levels ascending."""
    for size, part in scores.groupby("size", sort=False):
        controls = part["level"] == 0
        for level in sorted(part.loc[part["level"] > 0, "level"].unique()):
            yield size, int(part["params"].iloc[0]), int(level), part, part["level"] == level, controls


def pooled_attacks(scores: pd.DataFrame, *, fpr: float = 0.01, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per size x level x attack: `seed_pooled_metrics` of that level's members vs the controls over every seed."""
    rows = []
    for size, params, level, part, members, controls in cells(scores):
        for column in score_columns(part):
            metrics = seed_pooled_metrics(seed_matrix(part, column, members), seed_matrix(part, column, controls),
                                          fpr=fpr, n_boot=n_boot, seed=seed)
            rows.append({"size": size, "params": params, "level": level, "attack": column.removeprefix("score_"),
                         **metrics})
    return pd.DataFrame(rows, columns=["size", "params", "level", "attack", *POOLED_COLUMNS])


def pooled_rank_test(members: np.ndarray, controls: np.ndarray, *, n_resamples: int, seed: int) -> float:
    """Two-sided permutation p of mean AUC = 0.5 over seeds: each canary's rank within its seed's cell, summed
    over seeds, members vs controls (canaries are the exchangeable units, relabelled alike in every seed)."""
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([members, controls], axis=1), axis=1).sum(axis=0)
    n1 = members.shape[1]
    return permutation_test_means(ranks[:n1], ranks[n1:], n_resamples=n_resamples, seed=seed)[1]


def smallest_p(n_members: int, n_controls: int, n_resamples: int) -> float:
    """The smallest two-sided p the permutation test can return (exact enumeration, or 2 / (n_resamples + 1) drawn)."""
    from ..core.stats import smallest_permutation_p

    return max(smallest_permutation_p(n_members, n_controls), min(1.0, 2.0 / (n_resamples + 1)))


def level_tests(scores: pd.DataFrame, pooled: pd.DataFrame, *, n_resamples: int = 9999, seed: int = 0,
                alpha: float = 0.05) -> pd.DataFrame:
    """Per size x level x attack: mean AUC, permutation p, Holm p over every row (all cells and attacks), detected."""
    auc = pooled.set_index(["size", "level", "attack"])["auc"]
    rows = []
    for size, _, level, part, members, controls in cells(scores):
        for column in score_columns(part):
            attack = column.removeprefix("score_")
            a, b = seed_matrix(part, column, members), seed_matrix(part, column, controls)
            rows.append({"size": size, "level": level, "attack": attack, "n_members": a.shape[1],
                         "n_nonmembers": b.shape[1], "n_seeds": a.shape[0], "auc": auc[(size, level, attack)],
                         "p": pooled_rank_test(a, b, n_resamples=n_resamples, seed=seed),
                         "p_floor": smallest_p(a.shape[1], b.shape[1], n_resamples)})
    tests = pd.DataFrame(rows)
    tests["p_holm"] = holm(tests["p"].to_numpy())
    tests["detected"] = (tests["p_holm"] < alpha) & (tests["auc"] > 0.5)
    return tests


def best_attack(pooled: pd.DataFrame) -> str:
    """The attack with the highest mean pooled AUC over the size x level cells, among those every size has."""
    n_sizes = pooled["size"].nunique()
    every = pooled.groupby("attack", sort=False)["size"].nunique()
    means = pooled[pooled["attack"].isin(every[every == n_sizes].index)].groupby("attack", sort=False)["auc"].mean()
    return str(means.idxmax())


def kind_attacks(scores: pd.DataFrame, attack: str) -> pd.DataFrame:
    """Per size x kind x level > 0: mean over seeds of the AUC of that kind's members vs the same kind's controls,
    its t interval over seeds and the group sizes (no bootstrap: a kind has fewer than MIN_BOOT canaries a level)."""
    rows = []
    for size, params, level, part, members, controls in cells(scores):
        for kind in sorted(part["kind"].unique()):
            same = part["kind"] == kind
            m = seed_pooled_metrics(seed_matrix(part, f"score_{attack}", members & same),
                                    seed_matrix(part, f"score_{attack}", controls & same), n_boot=0)
            rows.append({"size": size, "params": params, "kind": kind, "level": level, "attack": attack,
                         **{key: m[key] for key in ("auc", "auc_seed_lo", "auc_seed_hi", "n_members",
                                                    "n_nonmembers", "n_seeds")}})
    return pd.DataFrame(rows)


def membership_runs(profile: str, *, k: int = 32, m: int = 32, min_k: float = 0.2, fpr: float = 0.01,
                    n_boot: int = 1000, n_resamples: int = 9999, alpha: float = 0.05, seed: int = 0,
                    batch_size: int = 32, progress: bool = False) -> Membership:
    """Score and extract every `all`-window canary at the final checkpoint of every size x seed; attacks, rates,
    tests, the best attack per kind."""
    from ..organisms import zoo

    zoo.build_zoo(profile, progress=progress)
    prof = zoo.get_profile(profile)
    sizes, seeds = list(prof.sizes), list(prof.seeds)
    runs = final_extraction(profile, k=k, m=m, batch_size=batch_size, progress=progress)
    scores = score_frame(profile, sizes, seeds, k=k, m=m, min_k=min_k, batch_size=batch_size, progress=progress)
    scores = scores.merge(runs[["size", "seed", "id", "exact_match", "biderman"]], on=["size", "seed", "id"],
                          how="left", validate="one_to_one")
    pooled = pooled_attacks(scores, fpr=fpr, n_boot=n_boot, seed=seed)
    best = best_attack(pooled)
    settings = {"k": k, "m": m, "min_k": min_k, "fpr": fpr, "n_boot": n_boot, "n_resamples": n_resamples,
                "alpha": alpha}
    return Membership(sizes, seeds, scores, seed_attacks(scores, fpr=fpr, n_boot=n_boot, seed=seed), pooled,
                      seed_rates(runs), level_tests(scores, pooled, n_resamples=n_resamples, seed=seed, alpha=alpha),
                      best, kind_attacks(scores, best), settings)


# -- table and numbers ---------------------------------------------------------------------------------------------
def with_ci(value: float, low: float, high: float, ci_ok: bool) -> str:
    """'0.83 [0.71, 0.92]', or just '0.83' when a group is too small for a bootstrap CI (the row says n<20)."""
    return f"{format_number(value)} [{format_number(low)}, {format_number(high)}]" if ci_ok else format_number(value)


def exact_cell(rate: pd.Series) -> str:
    """'0.12 (9/72)': the mean over seeds of the exact-match rate and the extracted (canary, seed) pairs."""
    return f"{format_number(rate['exact'])} ({int(rate['n_exact'])}/{int(rate['n'] * rate['n_seeds'])})"


def mia_table(mem: Membership) -> tuple[pd.DataFrame, str]:
    """The `tab_mia.tex` rows: per size x copies, n, exact extraction, pooled AUC [CI] of every attack, and for the
    best attack the t interval over seeds, the pooled TPR [CI] and the Holm p."""
    pooled = mem.pooled.set_index(["size", "level", "attack"])
    tests = mem.tests.set_index(["size", "level", "attack"])
    rates = mem.rates.set_index(["size", "level"])
    best = ATTACK_LABELS[mem.best]
    columns = ["model", "copies", "$n_1$ / $n_0$", "exact", *[f"AUC {label}" for label in ATTACK_LABELS.values()],
               f"{best}: seeds", f"{best}: TPR", f"{best}: $p_\\mathrm{{Holm}}$"]
    rows = []
    for size in mem.sizes:
        for i, level in enumerate(sorted(rates.loc[size].index)):
            rate = rates.loc[(size, level)]
            row = [f"zoo:{size}" if i == 0 else "", "0 (controls)" if level == 0 else str(level)]
            if level == 0:
                rows.append(row + [f"-- / {int(rate['n'])}", exact_cell(rate)] + ["--"] * (len(columns) - 4))
                continue
            cells_ = []
            for attack in ATTACK_LABELS:
                r = pooled.loc[(size, level, attack)] if (size, level, attack) in pooled.index else None
                cells_.append("--" if r is None else with_ci(r["auc"], r["auc_lo"], r["auc_hi"], bool(r["ci_ok"])))
            b = pooled.loc[(size, level, mem.best)]
            rows.append(row + [f"{int(b['n_members'])} / {int(b['n_nonmembers'])}", exact_cell(rate), *cells_,
                               f"[{format_number(b['auc_seed_lo'])}, {format_number(b['auc_seed_hi'])}]",
                               with_ci(b["tpr"], b["tpr_lo"], b["tpr_hi"], bool(b["ci_ok"])),
                               format_p(tests.loc[(size, level, mem.best), "p_holm"])])
    table = pd.DataFrame(rows, columns=columns)
    s, p = mem.settings, mem.pooled
    n0, n_seeds = int(p["n_nonmembers"].max()), int(p["n_seeds"].max())
    small = sorted({int(v) for v in p.loc[~p["ci_ok"], "n_members"]})
    caption = (
        f"Membership inference vs extraction on the organisms, {n_seeds} training seeds per size: every canary of "
        f"the \\texttt{{all}} window at the final checkpoint. Members: the $n_1$ canaries inserted with that many "
        f"copies; non-members: the $n_0={n0}$ never-inserted controls (the same texts in every seed). Exact: greedy "
        f"extraction rate ($k={s['k']}$ prefix, $m={s['m']}$ continuation tokens), mean over seeds of each seed's "
        f"rate, and the extracted (canary, seed) pairs. AUC: ROC AUC of each attack (higher score = member; loss, "
        f"zlib = loss over zlib entropy, Min-K\\% and Min-K\\%++ at {100 * s['min_k']:g}\\%, ref. = loss of the "
        f"smallest organism of the same seed minus the target's, so the smallest size has none), the mean over "
        f"seeds of each seed's AUC, with a 95\\% bootstrap CI over canaries in brackets ({s['n_boot']} replicates, "
        f"members and controls resampled separately, the same canaries in every seed)"
        + (f"; no CI for the {', '.join(map(str, small))}-member rows (fewer than {MIN_BOOTSTRAP_N})" if small else "")
        + f". For {best}, the attack with the highest mean AUC: the 95\\% $t$ interval of the AUC over the "
        f"{n_seeds} seeds; TPR at {100 * s['fpr']:g}\\% FPR with one threshold over the {n_seeds}$\\times${n0} "
        f"control scores of all seeds ("
        + (f"fewer than {round(1 / s['fpr'])}: the threshold is the highest control score, FPR 0"
           if p["tpr_coarse"].any() else f"realised FPR at most {format_number(100 * p['fpr_achieved'].max())}\\%")
        + "), "
        f"bootstrap CI as above; $p_\\mathrm{{Holm}}$: two-sided permutation test of mean AUC $=0.5$ "
        f"({s['n_resamples']} relabellings of the canaries, ranks summed over seeds), Holm-corrected over all "
        f"{len(mem.tests)} size $\\times$ level $\\times$ attack tests. Made by \\texttt{{notebooks/tab\\_mia.py}}.")
    return table, caption


def _role_sizes(mem: Membership) -> dict[str, str]:
    """Macro key -> size for the sizes the text names: the smallest and the largest organism."""
    return {"Smallest": mem.sizes[0], "Largest": mem.sizes[-1]}


def mia_numbers(mem: Membership) -> dict[str, object]:
    """The `numbers_tab_mia.tex` macros: settings, group sizes, detections, and per named size and level the best
    attack's AUC with both intervals next to the exact extraction; the reference attack; per kind AUCs."""
    s, pooled, tests, rates = mem.settings, mem.pooled, mem.tests, mem.rates.set_index(["size", "level"])
    levels = sorted(int(v) for v in pooled["level"].unique())
    best = pooled[pooled["attack"] == mem.best].set_index(["size", "level"])
    best_tests = tests[tests["attack"] == mem.best].set_index(["size", "level"])
    n0, n_seeds = int(pooled["n_nonmembers"].max()), int(pooled["n_seeds"].max())
    numbers: dict[str, object] = {
        "MiaK": s["k"], "MiaM": s["m"], "MiaMinKPercent": f"{100 * s['min_k']:g}", "MiaFprPercent": f"{100 * s['fpr']:g}",
        "MiaBoot": s["n_boot"], "MiaResamples": s["n_resamples"], "MiaAlpha": f"{s['alpha']:g}",
        "MiaMinBoot": MIN_BOOT, "MiaNSizes": len(mem.sizes), "MiaNSeeds": n_seeds, "MiaNLevels": len(levels),
        "MiaTopLevel": levels[-1], "MiaNControls": n0, "MiaPooledControls": n_seeds * n0,
        "MiaPooledFprPercent": format_number(100 * pooled["fpr_achieved"].max()),
        "MiaMembersPerLevel": int(pooled.loc[pooled["level"] == levels[0], "n_members"].iloc[0]),
        "MiaTopMembers": int(pooled.loc[pooled["level"] == levels[-1], "n_members"].iloc[0]),
        "MiaNCanaries": int(mem.scores.drop_duplicates("id").shape[0]),
        "MiaReferenceParams": format_params(mem.scores.loc[mem.scores["size"] == mem.sizes[0], "params"].iloc[0]),
        "MiaLargestParams": format_params(mem.scores.loc[mem.scores["size"] == mem.sizes[-1], "params"].iloc[0]),
        "MiaBestAttack": ATTACK_LABELS[mem.best], "MiaNTests": len(tests), "MiaNCells": len(best_tests),
        "MiaPFloor": format_p(tests["p_floor"].min()),
        "MiaDetectedAll": int(tests["detected"].sum()), "MiaDetectedBest": int(best_tests["detected"].sum()),
    }
    n_exact = rates["n_exact"]
    hidden = best_tests[best_tests["detected"] & (n_exact.reindex(best_tests.index) == 0)]
    numbers["MiaDetectedNotExtracted"] = len(hidden)
    numbers["MiaDetectedNotExtractedLevels"] = ", ".join(str(v) for v in sorted({lv for _, lv in hidden.index})) or "--"
    for role, size in _role_sizes(mem).items():
        for level in levels:
            key = f"{macro_key(str(level))}{role}"
            b, rate = best.loc[(size, level)], rates.loc[(size, level)]
            numbers[f"MiaBestAuc{key}"] = format_number(b["auc"])
            numbers[f"MiaBestAucCi{key}"] = (f"95\\% CI [{format_number(b['auc_lo'])}, {format_number(b['auc_hi'])}]"
                                             if b["ci_ok"] else f"no CI: $n_1<{MIN_BOOT}$")
            numbers[f"MiaBestSeedCi{key}"] = f"[{format_number(b['auc_seed_lo'])}, {format_number(b['auc_seed_hi'])}]"
            numbers[f"MiaBestTpr{key}"] = format_number(b["tpr"])
            numbers[f"MiaBestPHolm{key}"] = format_p(best_tests.loc[(size, level), "p_holm"])
            numbers[f"MiaExact{key}"] = format_number(rate["exact"])
            numbers[f"MiaNExact{key}"] = int(rate["n_exact"])
            numbers[f"MiaNPairs{key}"] = int(rate["n"] * rate["n_seeds"])
        detected = best_tests.loc[size]["detected"]
        numbers[f"MiaDetected{role}"] = int(detected.sum())
        numbers[f"MiaLowestDetected{role}"] = int(detected[detected].index.min()) if detected.any() else "--"
    ref = pooled[pooled["attack"] == "ref"]
    if not ref.empty:
        for level, name in ((levels[0], "One"), (levels[-1], "Top")):
            at = ref[ref["level"] == level]
            numbers[f"MiaRefAuc{name}Min"] = format_number(at["auc"].min())
            numbers[f"MiaRefAuc{name}Max"] = format_number(at["auc"].max())
        ref_tests = tests[tests["attack"] == "ref"]
        numbers["MiaRefSizes"] = int(ref["size"].nunique())
        for level in levels:  # per level: AUC range over the sizes with a reference, and how many are detected
            key, at = macro_key(str(level)), ref[ref["level"] == level]["auc"]
            numbers[f"MiaRefAuc{key}Min"], numbers[f"MiaRefAuc{key}Max"] = format_number(at.min()), format_number(
                at.max())
            numbers[f"MiaRefDetected{key}"] = int(ref_tests.loc[ref_tests["level"] == level, "detected"].sum())
    largest = mem.kinds[mem.kinds["size"] == mem.sizes[-1]]
    for row in largest.itertuples():
        numbers[f"MiaKindAuc{macro_key(row.kind)}{macro_key(str(row.level))}"] = format_number(row.auc)
    numbers["MiaKindMembers"] = int(largest.loc[largest["level"] == levels[0], "n_members"].min())  # smallest kind
    numbers["MiaKindControls"] = int(largest["n_nonmembers"].min())
    return numbers


__all__ = ["ATTACK_LABELS", "Membership", "best_attack", "cached_mia_scores", "final_extraction", "kind_attacks",
           "level_tests", "membership_runs", "mia_numbers", "mia_table", "pooled_attacks", "pooled_rank_test",
           "score_columns", "score_frame", "scores_path", "seed_attacks", "seed_matrix", "seed_rates", "smallest_p",
           "with_ci"]
