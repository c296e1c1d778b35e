"""Driver of notebook `fig_checkpoints`: memorization along training (Tirumala et al. 2022) and forgetting.

    ckpt = checkpoint_runs("smoke", k=32, m=32, curve_levels=[64, 256], window_level=16, threshold=0.5)
    numbers = checkpoint_numbers(ckpt)

Every canary of every (size, seed) is screened at every checkpoint by one teacher-forced pass
(`memkit.census.screen_batch`): greedy decoding reproduces the suffix up to the first position
whose argmax is wrong, so the screen's `exact_match` IS greedy exact match and `prefix_match_len`
the greedy match length; `tf_accuracy` (share of suffix positions whose argmax is the true token)
is Tirumala et al.'s memorization metric. The Biderman score (greedy `token_match`) comes from the
full cached extraction at the final step only. Curves are averaged per (size, seed) first, then
across seeds; end-of-training values average the last `n_last` checkpoints, never one step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.stats import holm, paired_permutation_test, permutation_test_means, t_interval
from ..organisms import laws
from ..paths import cached_frame, code_fingerprint, model_entry
from .dup_runs import built_sizes, by_size, final_extraction
from .report import format_number, macro_key

CURVE_METRICS = {"tf_accuracy": "Tf", "exact_match": "Exact"}  # screen metric -> macro fragment
TEST_KEYS = {**CURVE_METRICS, "biderman": "Biderman"}  # tested metric -> macro fragment
WINDOWS = ("early", "late")


# -- the teacher-forced screen of one checkpoint, cached --------------------------------------------------------
def screen_path(lm, samples: Sequence, *, batch_size: int) -> Path:
    """Cache file of one checkpoint's screen: `<cache>/screen/<model>-<hash of weights, samples, code>`."""
    from ..core.extract import samples_fingerprint

    key = {"model": lm.name, "model_sha256": lm.sha256, "samples": samples_fingerprint(samples),
           "batch_size": batch_size, "code": code_fingerprint("census.py", "core/batching.py", "core/samples.py")}
    return model_entry("screen", lm.name, key, ".parquet")


def cached_screen(lm, samples: Sequence, *, batch_size: int = 64) -> pd.DataFrame:
    """`census.screen_batch` over `samples` (id, prefix_match_len, exact_match, tf_accuracy, ...), cached."""
    from ..census import screen_batch

    return cached_frame(screen_path(lm, samples, batch_size=batch_size),
                        lambda: pd.concat([screen_batch(lm, samples[i:i + batch_size])
                                           for i in range(0, len(samples), batch_size)], ignore_index=True))


def screened(samples: Sequence, *, curve_levels: Sequence[int], window_level: int) -> list:
    """The canaries the curves and tests need: controls, `all`-window canaries at `curve_levels`, and the
    early / late canaries at `window_level` (the others are not screened along training)."""
    return [s for s in samples if s.meta["level"] == 0
            or (s.meta["window"] == "all" and s.meta["level"] in curve_levels)
            or (s.meta["window"] in WINDOWS and s.meta["level"] == window_level)]


def screen_runs(profile: str, *, k: int, m: int, steps: Sequence[int], curve_levels: Sequence[int], window_level: int,
                batch_size: int = 64, progress: bool = False) -> pd.DataFrame:
    """Screen of the `screened` canaries by every size x seed x checkpoint: one row each, with level, kind, window."""
    from tqdm.auto import tqdm

    from ..core.models import load_model
    from ..organisms import zoo

    samples = screened(zoo.zoo_samples(profile, k=k, m=m), curve_levels=curve_levels, window_level=window_level)
    meta = pd.DataFrame([{"id": s.id, **{c: s.meta[c] for c in ("level", "kind", "window")}} for s in samples])
    prof, prefix = zoo.get_profile(profile), "" if profile == zoo.DEFAULT_PROFILE else f"{profile}/"
    jobs = [(size, seed, step) for size in prof.sizes for seed in prof.seeds for step in steps]
    frames = []
    for size, seed, step in tqdm(jobs, desc="screen", disable=not progress):
        lm = load_model(f"zoo:{prefix}{size}-s{seed}@{step}", device="cpu")
        frame = cached_screen(lm, samples, batch_size=batch_size)
        frames.append(frame.assign(size=size, params=int(lm.meta["non_embedding_params"]), seed=seed, step=int(step)))
        del lm
    out = pd.concat(frames, ignore_index=True).merge(meta, on="id", how="left")
    return out.assign(exact_match=out["exact_match"].astype(float))


# -- curves, Tirumala's steps-to-reach, forgetting ------------------------------------------------------------
def seed_curves(screen: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per (size, window, level, step, seed) means of the curve metrics, and across seeds (t-intervals)."""
    by = ("size", "window", "level", "step")
    per_seed = laws.seed_rates(screen, list(CURVE_METRICS), by=by)
    return per_seed, laws.across_seeds(per_seed, list(CURVE_METRICS), by=by)


def first_reach(curve: pd.DataFrame, metric: str, threshold: float) -> float:
    """First step at which a curve (rows: step, metric) reaches `threshold`; NaN when it never does."""
    hits = curve.sort_values("step").loc[lambda d: d[metric] >= threshold, "step"]
    return float(hits.iloc[0]) if len(hits) else float("nan")


def tirumala_table(per_seed: pd.DataFrame, *, levels: Sequence[int], steps: Sequence[int], threshold: float,
                   n_last: int = 3) -> pd.DataFrame:
    """Per size x level (window `all`) and metric: the end value (mean of the last `n_last` checkpoints per
    seed, then mean and t-interval across seeds) and the first step each seed's curve reaches `threshold`
    (mean over the seeds that reach it, `reached` of `n_seeds`)."""
    last = sorted(steps)[-n_last:]
    rows = []
    cells = per_seed[(per_seed["window"] == "all") & per_seed["level"].isin(levels)]
    for (size, level), cell in cells.groupby(["size", "level"], sort=True):
        row = {"size": size, "level": int(level), "n": int(cell["n"].min()), "n_seeds": int(cell["seed"].nunique())}
        for metric in CURVE_METRICS:
            ends = cell[cell["step"].isin(last)].groupby("seed")[metric].mean()
            row[metric], row[metric + "_lo"], row[metric + "_hi"] = t_interval(ends)
            reach = [first_reach(g, metric, threshold) for _, g in cell.groupby("seed", sort=True)]
            hit = [r for r in reach if not np.isnan(r)]
            row[metric + "_reach"] = float(np.mean(hit)) if hit else float("nan")
            row[metric + "_reached"] = len(hit)
        rows.append(row)
    return pd.DataFrame(rows)


def canary_means(frame: pd.DataFrame, metric: str) -> pd.Series:
    """Per (size, id): the metric averaged over seeds and over the steps in `frame` (the canary is the unit)."""
    return frame.groupby(["size", "id"], sort=True)[metric].mean()


def compare_groups(a: pd.Series, b: pd.Series, *, sizes: Sequence[str], label: str, metrics_name: str,
                   n_resamples: int, seed: int) -> list[dict]:
    """Per size: means of two canary groups, their difference and the permutation p (`permutation_test_means`)."""
    rows = []
    for size in sizes:
        x, y = a.loc[size].to_numpy(), b.loc[size].to_numpy()
        diff, p = permutation_test_means(x, y, n_resamples=n_resamples, seed=seed)
        rows.append({"size": size, "test": label, "metric": metrics_name, "n_a": len(x), "n_b": len(y),
                     "mean_a": float(x.mean()), "mean_b": float(y.mean()), "diff": diff, "p": p})
    return rows


def forgetting_tests(screen: pd.DataFrame, final: pd.DataFrame, *, sizes: Sequence[str], steps: Sequence[int],
                     spans: dict, level: int, n_last: int = 3, n_resamples: int = 9999, seed: int = 0) -> pd.DataFrame:
    """Early vs late window canaries (`level` copies) at the end of training (last `n_last` checkpoints;
    Biderman at the final step) and, before the late window opens, late canaries vs the controls (two-sided
    permutation tests over canary means, mean over seeds); each window's canaries at the first checkpoint
    after it closed vs at the end (tf accuracy, paired sign-flip test). Per size and for `all` sizes (canary
    means over sizes and seeds); Holm within each of the three families (`test`)."""
    last, every = sorted(steps)[-n_last:], [*sizes, "all"]
    screen, final = (pd.concat([f, f.assign(size="all")], ignore_index=True) for f in (screen, final))
    windowed = screen[(screen["level"] == level) & screen["window"].isin(WINDOWS)]
    end = windowed[windowed["step"].isin(last)]
    bider = final[(final["level"] == level) & final["window"].isin(WINDOWS)]
    rows = []
    for metric in CURVE_METRICS:
        rows += compare_groups(canary_means(end[end["window"] == "early"], metric),
                               canary_means(end[end["window"] == "late"], metric), sizes=every,
                               label="early vs late", metrics_name=metric, n_resamples=n_resamples, seed=seed)
    rows += compare_groups(canary_means(bider[bider["window"] == "early"], "biderman"),
                           canary_means(bider[bider["window"] == "late"], "biderman"), sizes=every,
                           label="early vs late", metrics_name="biderman", n_resamples=n_resamples, seed=seed)
    before = screen[screen["step"] < spans["late"][0]]
    late = before[(before["window"] == "late") & (before["level"] == level)]
    controls = before[before["level"] == 0]
    for metric in CURVE_METRICS:
        rows += compare_groups(canary_means(late, metric), canary_means(controls, metric), sizes=every,
                               label="late before window vs controls", metrics_name=metric,
                               n_resamples=n_resamples, seed=seed)
    for window in WINDOWS:
        after = min(step for step in steps if step >= spans[window][1])
        cells = windowed[windowed["window"] == window]
        for size in every:
            cell = cells[cells["size"] == size]
            a = cell[cell["step"] == after].groupby("id")["tf_accuracy"].mean()
            b = cell[cell["step"].isin(last)].groupby("id")["tf_accuracy"].mean()
            rows.append({"size": size, "test": "after window vs end", "metric": "tf_accuracy", "window": window,
                         "n_a": len(a), "n_b": len(b), "mean_a": float(a.mean()), "mean_b": float(b.mean()),
                         "diff": float((b - a).mean()), "p": sign_flip_p((b - a).to_numpy(), n_resamples=n_resamples,
                                                                         seed=seed)})
    return with_holm(pd.DataFrame(rows))


def with_holm(tests: pd.DataFrame) -> pd.DataFrame:
    """`tests` with `p_holm`: Holm-adjusted p within each value of the `test` column (a family)."""
    tests = tests.copy()
    for _, group in tests.groupby("test", sort=False):
        tests.loc[group.index, "p_holm"] = holm(group["p"])
    return tests


def sign_flip_p(diffs: Sequence[float], *, n_resamples: int = 9999, seed: int = 0) -> float:
    """Two-sided sign-flip permutation p of mean(diffs) = 0 (`core.stats.paired_permutation_test` against 0)."""
    diffs = np.asarray(diffs, dtype=float)
    return paired_permutation_test(diffs, np.zeros_like(diffs), n_resamples=n_resamples, seed=seed)[1]


def decay_tests(screen: pd.DataFrame, *, sizes: Sequence[str], steps: Sequence[int], decay_start: int,
                levels: Sequence[int], n_last: int = 3, n_resamples: int = 9999, seed: int = 0) -> pd.DataFrame:
    """Per size x level (window `all`) x metric: the last `n_last` checkpoints of the constant-LR phase
    (steps <= `decay_start`) vs the last `n_last` of training, paired per canary (mean over seeds), with a
    two-sided sign-flip permutation test; Holm over every row."""
    pre = [s for s in sorted(steps) if s <= decay_start][-n_last:]
    post = sorted(steps)[-n_last:]
    rows = []
    for size in sizes:
        for level in levels:
            cell = screen[(screen["size"] == size) & (screen["window"] == "all") & (screen["level"] == level)]
            for metric in CURVE_METRICS:
                a = cell[cell["step"].isin(pre)].groupby("id")[metric].mean()
                b = cell[cell["step"].isin(post)].groupby("id")[metric].mean()
                diffs = (b - a).to_numpy()
                rows.append({"size": size, "level": int(level), "metric": metric, "n": len(diffs), "pre": a.mean(),
                             "post": b.mean(), "diff": float(diffs.mean()), "test": "decay",
                             "p": sign_flip_p(diffs, n_resamples=n_resamples, seed=seed)})
    return with_holm(pd.DataFrame(rows))


def window_track(curves: pd.DataFrame, *, steps: Sequence[int], spans: dict, level: int,
                 n_last: int = 3) -> pd.DataFrame:
    """Per size: tf accuracy of the early / late canaries at the first checkpoint after their window closed and
    at the end (mean of the last `n_last` checkpoints), and of the controls at the end (means over seeds)."""
    last = sorted(steps)[-n_last:]
    rows = []
    for size, sub in curves.groupby("size", sort=False):
        for window in WINDOWS:
            after = min(s for s in steps if s >= spans[window][1])
            cell = sub[(sub["window"] == window) & (sub["level"] == level)]
            rows.append({"size": size, "what": window, "after_step": after,
                         "after": float(cell.loc[cell["step"] == after, "tf_accuracy"].iloc[0]),
                         "end": float(cell.loc[cell["step"].isin(last), "tf_accuracy"].mean())})
        ctrl = sub[sub["level"] == 0]
        rows.append({"size": size, "what": "controls", "after_step": np.nan, "after": np.nan,
                     "end": float(ctrl.loc[ctrl["step"].isin(last), "tf_accuracy"].mean())})
    return pd.DataFrame(rows)


@dataclass
class Checkpoints:
    """What `checkpoint_runs` measured at every checkpoint of every size and seed."""

    sizes: list[str]  # smallest first
    seeds: list[int]
    steps: list[int]  # checkpoint steps, the last one is final
    spans: dict  # window -> training steps [start, stop) of its copies
    decay_start: int
    screen: pd.DataFrame  # one row per size x seed x step x canary
    final: pd.DataFrame  # greedy extraction at the final step (every window), with `biderman`
    per_seed: pd.DataFrame  # `seed_curves`: per size x window x level x step x seed
    curves: pd.DataFrame  # across seeds: mean and t-interval per size x window x level x step
    tirumala: pd.DataFrame  # `tirumala_table`
    tests: pd.DataFrame  # `forgetting_tests`
    decay: pd.DataFrame  # `decay_tests`
    track: pd.DataFrame  # `window_track`
    agreement: tuple[int, int]  # final step: canaries whose screen exact match equals the greedy one, of all
    settings: dict


def checkpoint_runs(profile: str, *, k: int, m: int, curve_levels: Sequence[int], window_level: int,
                    threshold: float, n_last: int = 3, n_resamples: int = 9999, seed: int = 0,
                    screen_batch_size: int = 64, batch_size: int = 32, progress: bool = False) -> Checkpoints:
    """Screen every canary at every checkpoint of every size and seed, extract at the final step; curves,
    steps-to-reach, the LR-decay comparison, early/late forgetting tests and the pre-window check."""
    from ..organisms import zoo

    sizes, seeds = built_sizes(profile, progress)
    steps, spans = zoo.checkpoint_steps(profile), zoo.window_steps(profile)
    screen = screen_runs(profile, k=k, m=m, steps=steps, curve_levels=curve_levels, window_level=window_level,
                         batch_size=screen_batch_size, progress=progress)
    final = final_extraction(profile, k=k, m=m, batch_size=batch_size, progress=progress)
    per_seed, curves = seed_curves(screen)
    both = screen[screen["step"] == steps[-1]].merge(final[["size", "seed", "id", "exact_match"]],
                                                     on=["size", "seed", "id"], suffixes=("", "_greedy"))
    agreement = (int((both["exact_match"] == both["exact_match_greedy"]).sum()), len(both))
    settings = {"k": k, "m": m, "curve_levels": list(curve_levels), "window_level": window_level,
                "threshold": threshold, "n_last": n_last, "n_resamples": n_resamples}
    decay_start = zoo.decay_start_step(profile)
    return Checkpoints(sizes, seeds, steps, spans, decay_start, screen, final, per_seed, by_size(curves, sizes),
                       by_size(tirumala_table(per_seed, levels=curve_levels, steps=steps, threshold=threshold,
                                              n_last=n_last), sizes),
                       forgetting_tests(screen, final, sizes=sizes, steps=steps, spans=spans, level=window_level,
                                        n_last=n_last, n_resamples=n_resamples, seed=seed),
                       decay_tests(screen, sizes=sizes, steps=steps, decay_start=decay_start, levels=curve_levels,
                                   n_last=n_last, n_resamples=n_resamples, seed=seed),
                       by_size(window_track(curves, steps=steps, spans=spans, level=window_level, n_last=n_last),
                               sizes),
                       agreement, settings)


def checkpoint_numbers(ckpt: Checkpoints) -> dict[str, object]:
    """The `numbers_fig_checkpoints.tex` macros: schedule, Tirumala end values and steps-to-reach, forgetting."""
    s = ckpt.settings
    last = ckpt.steps[-s["n_last"]:]
    windowed = ckpt.screen[(ckpt.screen["window"] == "early") & (ckpt.screen["level"] == s["window_level"])]
    numbers: dict[str, object] = {
        "CkptN": len(ckpt.steps), "CkptFinalStep": ckpt.steps[-1], "CkptFirstStep": ckpt.steps[0],
        "CkptNLast": s["n_last"], "CkptLastFirst": last[0], "CkptDecayStart": ckpt.decay_start,
        "CkptEarlyStart": ckpt.spans["early"][0], "CkptEarlyEnd": ckpt.spans["early"][1],
        "CkptLateStart": ckpt.spans["late"][0], "CkptLateEnd": ckpt.spans["late"][1],
        "CkptWindowLevel": s["window_level"],
        "CkptNWindow": int(windowed.groupby(["size", "seed", "step"]).size().min()),
        "CkptNSeeds": len(ckpt.seeds), "CkptThreshold": format_number(s["threshold"]),
        "CkptAgree": ckpt.agreement[0], "CkptAgreeOf": ckpt.agreement[1],
        "CkptNControls": int(ckpt.screen[(ckpt.screen["level"] == 0)]["id"].nunique())}
    for r in ckpt.tirumala.to_dict("records"):
        for metric, key in CURVE_METRICS.items():
            name = f"Ckpt{key}{macro_key(r['size'])}L{macro_key(str(r['level']))}"
            numbers[name] = format_number(r[metric])
            numbers[name + "Lo"] = format_number(max(0.0, r[metric + "_lo"]))
            numbers[name + "Hi"] = format_number(min(1.0, r[metric + "_hi"]))
            numbers[name + "Reach"] = "--" if np.isnan(r[metric + "_reach"]) else f"{r[metric + '_reach']:.0f}"
            numbers[name + "Reached"] = r[metric + "_reached"]
        numbers[f"CkptN{macro_key(r['size'])}L{macro_key(str(r['level']))}"] = r["n"]
    for r in ckpt.tests.to_dict("records"):
        test = "Forget" if r["test"] == "early vs late" else "Before"
        name = f"Ckpt{test}{TEST_KEYS[r['metric']]}{macro_key(r['size'])}"
        numbers[name + "A"], numbers[name + "B"] = format_number(r["mean_a"], 3), format_number(r["mean_b"], 3)
        numbers[name + "Diff"] = format_number(r["diff"], 3)
        numbers[name + "P"], numbers[name + "PHolm"] = f"{r['p']:.2g}", f"{r['p_holm']:.2g}"
    for r in ckpt.tests[ckpt.tests["test"] == "after window vs end"].to_dict("records"):
        name = f"CkptDrop{r['window'].capitalize()}{macro_key(r['size'])}"
        numbers[name + "Diff"], numbers[name + "PHolm"] = format_number(r["diff"], 3), f"{r['p_holm']:.2g}"
    for test, key in (("early vs late", "Forget"), ("late before window vs controls", "Before"),
                      ("after window vs end", "Drop")):
        sub = ckpt.tests[ckpt.tests["test"] == test]
        numbers[f"Ckpt{key}Tests"] = len(sub)
        numbers[f"Ckpt{key}Significant"] = int((sub["p_holm"] < 0.05).sum())
        numbers[f"Ckpt{key}MinPHolm"] = f"{sub['p_holm'].min():.2g}"
        numbers[f"Ckpt{key}MaxAbsDiff"] = format_number(sub["diff"].abs().max(), 3)
    pre = [step for step in ckpt.steps if step <= ckpt.decay_start][-s["n_last"]:]
    numbers |= {"CkptPreFirst": pre[0], "CkptPreLast": pre[-1], "CkptDecayTests": len(ckpt.decay),
                "CkptDecaySignificant": int((ckpt.decay["p_holm"] < 0.05).sum())}
    for metric, key in CURVE_METRICS.items():
        sub = ckpt.decay[ckpt.decay["metric"] == metric]
        numbers[f"CkptDecay{key}Tests"] = len(sub)
        numbers[f"CkptDecay{key}Significant"] = int((sub["p_holm"] < 0.05).sum())
        numbers[f"CkptDecay{key}MaxPHolm"] = f"{sub['p_holm'].max():.2g}"
    for level, sub in ckpt.tirumala.groupby("level"):
        for metric, key in CURVE_METRICS.items():
            numbers[f"Ckpt{key}L{macro_key(str(level))}Min"] = format_number(sub[metric].min())
            numbers[f"Ckpt{key}L{macro_key(str(level))}Max"] = format_number(sub[metric].max())
    for what, sub in ckpt.track.groupby("what"):
        for col in ("after", "end"):
            if sub[col].notna().any():
                numbers[f"Ckpt{what.capitalize()}{col.capitalize()}Min"] = format_number(sub[col].min(), 3)
                numbers[f"Ckpt{what.capitalize()}{col.capitalize()}Max"] = format_number(sub[col].max(), 3)
    for r in ckpt.decay.to_dict("records"):
        name = f"CkptDecay{CURVE_METRICS[r['metric']]}{macro_key(r['size'])}L{macro_key(str(r['level']))}"
        numbers[name + "Pre"], numbers[name + "Post"] = format_number(r["pre"]), format_number(r["post"])
        numbers[name + "PHolm"] = f"{r['p_holm']:.2g}"
    for r in ckpt.track.to_dict("records"):
        name = f"Ckpt{r['what'].capitalize()}{macro_key(r['size'])}"
        numbers[name + "End"] = format_number(r["end"], 3)
        if r["what"] != "controls":
            numbers[name + "After"] = format_number(r["after"], 3)
    return numbers
