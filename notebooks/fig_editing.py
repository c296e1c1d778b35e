# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Figure — curvature editing: how much memorization goes per unit of perplexity?
#
# K-FAC factors of the MLP weights of the last blocks are collected on generic text
# (`memkit.curvature`; organisms: their own training corpus, pretrained models: Python's pydoc
# topics). Each weight is written in the Kronecker eigenbasis and only the highest-curvature
# components holding a fraction `keep_mass` of the curvature mass are kept (Merullo et al. 2025).
# Baselines remove the *same number* of components of each matrix in the same basis, by smallest
# magnitude or at random. For each edit: perplexity on held-out text and memorization — the Biderman
# score (greedy, k-token prefix, m-token continuation) of the samples the unedited model recites
# (attractors of a pretrained model; organisms: the canaries it recites, and every canary per
# duplication level in a table).
# *Equal perplexity*: each method's least memorization among its edits whose perplexity stays within
# `ppl_budget` of the unedited model, and the baselines' memorization interpolated (in log
# perplexity) at each K-FAC point.
#
# Outputs (into `out_dir`): `fig_editing.pdf/.png`, `numbers_fig_editing.tex`. Defaults are smoke
# settings; paper settings: `params/fig_editing.yml`.

# %% tags=["parameters"]
models = []  # pretrained model specs
zoo_profile = "smoke"  # organisms: a zoo profile (built if missing) or None
zoo_which = "largest"  # "largest" or "all" sizes of the zoo
labels = {"gemma-3-270m": "Gemma-3-270M", "smollm2-135m-instruct": "SmolLM2-135M-Instruct"}
macro_names = {"gemma-3-270m": "Gemma", "smollm2-135m-instruct": "Smol"}  # letters only
attractors = "data/attractors.jsonl"
ids = None  # attractor ids (None: all)
k = 32
m = 32
threshold = 0.9
max_memorized = 8
layer_frac = 0.5  # edit the MLPs of the last fraction of blocks (a number or {spec: number})
keep_masses = [0.999, 0.99, 0.9, 0.7, 0.5]  # a list, or {spec or "zoo": list}
methods = ["kfac", "magnitude", "random"]
labels_kind = "true"  # K-FAC gradient labels: the text's next tokens ("true") or sampled from the model
seq_len = 128
fit_windows = 32  # windows of generic text for the K-FAC factors
ppl_windows = 16  # held-out windows for perplexity
ppl_budget = 0.5  # "equal perplexity": at most (1 + budget) x the unedited perplexity
ppl_cap = 10.0  # x axis ends at this perplexity ratio (edits beyond it leave the plot)
seed = 0
batch_size = 16
threads = 1
progress = False
out_dir = "build/smoke/fig_editing"

# %%
import gc
import warnings

warnings.filterwarnings("ignore")

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import transformers

import memkit
from memkit.mechanisms.curvature import cached_kfac, edited, perplexity
from memkit.paper import report
from memkit.paper.report import macro_key
from memkit.paper.sets import generic_texts_for, is_organism, pretrained_sets
from memkit.paths import PROJECT_ROOT

transformers.logging.set_verbosity_error()
torch.set_num_threads(threads)
pd.set_option("display.width", 160)
out = PROJECT_ROOT / out_dir
out.mkdir(parents=True, exist_ok=True)
NAME = "fig_editing"

specs = list(models)
if zoo_profile is not None:
    from memkit.organisms import zoo

    zoo.build_zoo(zoo_profile, progress=progress)
    sizes = zoo.zoo_specs(zoo_profile, step="final")
    specs += sizes[-1:] if zoo_which == "largest" else sizes
records = memkit.read_jsonl(PROJECT_ROOT / attractors)
if ids is not None:
    by_id = {r["id"]: r for r in records}
    records = [by_id[i] for i in ids]


def model_key(spec: str) -> str:
    if spec.startswith("zoo:"):
        return "Zoo" if zoo_which == "largest" else "Zoo" + macro_key(spec[4:].split("/")[-1].split("@")[0])
    return macro_names.get(spec) or macro_key(spec)


def model_label(spec: str) -> str:
    if spec.startswith("zoo:"):
        return f"organism {spec[4:].split('/')[-1].split('@')[0]}"
    return labels.get(spec, spec)


def eval_samples(lm):
    """Organisms: every canary of the `all` window (levels 0..max); pretrained: the recited attractors."""
    if is_organism(lm):
        from memkit.organisms.zoo import zoo_samples

        samples = [s for s in zoo_samples(lm.meta["zoo_profile"], k=k, m=m) if s.meta["window"] == "all"]
        return samples, {s.id: int(s.meta["level"]) for s in samples}
    samples, groups, _ = pretrained_sets(lm, records, k=k, m=m, threshold=threshold, max_memorized=max_memorized,
                                         max_controls=0)
    return samples, {s.id: -1 for s in samples}  # -1: a pretrained model's memorized attractor


# %% [markdown]
# ## Sweeps: unedited model, then every method × keep_mass

# %%
runs, edits, meta = [], [], {}
for spec in specs:
    lm = memkit.load_model(spec)
    frac = layer_frac.get(spec, 0.5) if isinstance(layer_frac, dict) else layer_frac
    layers = list(range(lm.n_layers - max(1, int(round(frac * lm.n_layers))), lm.n_layers))
    fit_texts, heldout_texts = generic_texts_for(lm)
    samples, level_of = eval_samples(lm)
    factors = cached_kfac(lm, fit_texts, layers=layers, seq_len=seq_len, max_windows=fit_windows, labels=labels_kind,
                          seed=seed, progress=progress)
    meta[spec] = {"layers": layers, "n_layers": lm.n_layers, "n_tokens": factors.n_tokens, "n_samples": len(samples)}

    def evaluate(method: str, keep: float, info=None) -> None:
        ppl = perplexity(lm, heldout_texts, seq_len=seq_len, max_windows=ppl_windows, batch_size=batch_size)
        frame = memkit.extract(lm, samples, batch_size=batch_size, progress=False)
        removed = float(info["n_removed"].sum() / info["n_components"].sum()) if info is not None else 0.0
        edits.append({"spec": spec, "method": method, "keep_mass": keep, "ppl": ppl, "removed": removed})
        runs.append(frame[["id", "token_match", "exact_match"]].assign(
            spec=spec, method=method, keep_mass=keep, level=frame["id"].map(level_of)))

    evaluate("none", 1.0)
    grid = keep_masses.get("zoo" if is_organism(spec) else spec) if isinstance(keep_masses, dict) else keep_masses
    meta[spec]["grid"] = list(grid)
    for keep in grid:
        for method in methods:
            with edited(lm.model, factors, keep, method, seed=seed) as info:
                evaluate(method, keep, info)
    del lm, factors
    gc.collect()
edits = pd.DataFrame(edits)
runs = pd.concat(runs, ignore_index=True)
edits.round(4)

# %% [markdown]
# ## Memorization per edit: Biderman score of the samples the unedited model recites (score ≥ threshold)

# %%
clean_runs = runs[runs["method"] == "none"]
recited = set(zip(clean_runs.loc[clean_runs["token_match"] >= threshold, "spec"],
                  clean_runs.loc[clean_runs["token_match"] >= threshold, "id"]))
memorized_rows = runs[[(s, i) in recited for s, i in zip(runs["spec"], runs["id"])]]
mem = (memorized_rows.groupby(["spec", "method", "keep_mass"], sort=False)
       .agg(biderman=("token_match", "mean"), exact=("exact_match", "mean")).reset_index())
curves = edits.merge(mem, on=["spec", "method", "keep_mass"])
base = curves[curves["method"] == "none"].set_index("spec")
curves["ppl_ratio"] = curves["ppl"] / curves["spec"].map(base["ppl"])
curves.round(4)

# %% [markdown]
# ## Organisms: Biderman score per duplication level (unedited vs each method's edits)

# %%
per_level = (runs[runs["level"] >= 0].groupby(["spec", "method", "keep_mass", "level"], sort=False)["token_match"]
             .mean().unstack("level"))
per_level.round(3)

# %% [markdown]
# ## Equal perplexity: K-FAC against the baselines

# %%
def interpolate(curve: pd.DataFrame, ppl: float) -> float:
    """Memorization of a method's curve at perplexity `ppl` (linear in log ppl; NaN outside its range)."""
    pts = curve.sort_values("ppl")
    x, y = np.log(pts["ppl"].to_numpy()), pts["biderman"].to_numpy()
    if len(x) == 0 or np.log(ppl) < x.min() or np.log(ppl) > x.max():
        return float("nan")
    return float(np.interp(np.log(ppl), x, y))


compare_rows, budget_rows = [], []
for spec in specs:
    part = curves[curves["spec"] == spec]
    unedited = part[part["method"] == "none"].iloc[0]
    with_base = lambda name: pd.concat([part[part["method"] == name], part[part["method"] == "none"]])  # noqa: E731
    for method in methods:
        within = part[(part["method"] == method) & (part["ppl_ratio"] <= 1 + ppl_budget)]
        best = within.loc[within["biderman"].idxmin()] if len(within) else None
        budget_rows.append({"spec": spec, "method": method, "n_within": len(within),
                            "best_biderman": best["biderman"] if best is not None else unedited["biderman"],
                            "best_keep": best["keep_mass"] if best is not None else 1.0,
                            "best_ppl_ratio": best["ppl_ratio"] if best is not None else 1.0})
    for _, point in part[part["method"] == "kfac"].iterrows():
        row = {"spec": spec, "keep_mass": point["keep_mass"], "ppl_ratio": point["ppl_ratio"], "kfac": point["biderman"]}
        for baseline in [mth for mth in methods if mth != "kfac"]:
            row[baseline] = interpolate(with_base(baseline), point["ppl"])
        compare_rows.append(row)
budget = pd.DataFrame(budget_rows)
compare = pd.DataFrame(compare_rows)
display_budget = budget.pivot(index="spec", columns="method", values="best_biderman")
display_budget.round(3)

# %%
compare.round(3)

# %% [markdown]
# ## Figure: memorization vs perplexity, one panel per model

# %%
plt.rcParams.update({"font.size": 7, "axes.titlesize": 7, "legend.fontsize": 6})
fig, axes = plt.subplots(1, len(specs), figsize=(min(7.0, 2.3 * len(specs) + 0.6), 2.5), squeeze=False,
                         constrained_layout=True)
STYLE = {"kfac": ("C3", "o", "-"), "magnitude": ("C0", "s", "--"), "random": ("C2", "^", ":")}
for ax, spec in zip(axes[0], specs):
    part = curves[curves["spec"] == spec]
    unedited = part[part["method"] == "none"].iloc[0]
    for method in methods:
        colour, marker, ls = STYLE.get(method, ("C7", "x", "-"))
        pts = pd.concat([part[part["method"] == "none"], part[part["method"] == method].sort_values("keep_mass",
                                                                                                    ascending=False)])
        ax.plot(pts["ppl_ratio"], pts["biderman"], color=colour, marker=marker, ls=ls, lw=1.0, ms=3.5, label=method)
    ax.plot([1], [unedited["biderman"]], "k*", ms=7, label="unedited")
    ax.axvline(1 + ppl_budget, color="0.5", lw=0.6, ls="--")
    ax.set_xscale("log")
    right = min(ppl_cap, max(1.0 + ppl_budget, float(part["ppl_ratio"].max())) * 1.05)
    ax.set_xlim(0.97, right)
    subs = (1.0, 1.2, 1.5, 2.0, 3.0, 5.0, 7.0) if right < 3 else (1.0, 2.0, 5.0)
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=subs))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x:g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_ylim(-0.03, 1.03)
    ax.set_title(f"{model_label(spec)}\nMLPs of blocks {meta[spec]['layers'][0]}–{meta[spec]['layers'][-1]}")
    ax.set_xlabel("perplexity / unedited (held-out)" + (f", cut at {ppl_cap:g}" if right >= ppl_cap else ""))
    ax.grid(alpha=0.3, lw=0.4)
axes[0][0].set_ylabel("memorization (Biderman score)")
axes[0][0].legend(loc="lower left", frameon=False)
report.save_figure(fig, out, NAME)
plt.close(fig)

# %% [markdown]
# ## Numbers quoted in the paper

# %%
def fmt(x: float, digits: int = 2) -> str:
    return "--" if not np.isfinite(x) else f"{x:.{digits}f}"


numbers = {"EditK": k, "EditM": m, "EditBudget": f"{100 * ppl_budget:.0f}", "EditLabels": labels_kind,
           "EditFitWindows": fit_windows,
           "EditSeqLen": seq_len}
wins = []
for spec in specs:
    key = model_key(spec)
    part = curves[curves["spec"] == spec]
    unedited = part[part["method"] == "none"].iloc[0]
    numbers[f"{key}EditBasePpl"] = fmt(unedited["ppl"])
    numbers[f"{key}EditBaseMem"] = fmt(unedited["biderman"])
    numbers[f"{key}EditFirstLayer"] = meta[spec]["layers"][0]
    numbers[f"{key}EditLastLayer"] = meta[spec]["layers"][-1]
    numbers[f"{key}EditNTokens"] = meta[spec]["n_tokens"]
    numbers[f"{key}EditNSamples"] = meta[spec]["n_samples"]
    numbers[f"{key}EditNRecited"] = sum(1 for s_, _ in recited if s_ == spec)
    numbers[f"{key}EditKeepMasses"] = ", ".join(f"{x:g}" for x in meta[spec]["grid"])
    rows = budget[budget["spec"] == spec].set_index("method")
    for method in methods:
        mkey = macro_key(method)
        numbers[f"{key}Edit{mkey}BestMem"] = fmt(rows.loc[method, "best_biderman"])
        numbers[f"{key}Edit{mkey}BestKeep"] = f"{rows.loc[method, 'best_keep']:g}"
        numbers[f"{key}Edit{mkey}BestPplRatio"] = fmt(rows.loc[method, "best_ppl_ratio"])
    baselines = [mth for mth in methods if mth != "kfac"]
    if "kfac" in methods and baselines:
        best_base = min(rows.loc[b, "best_biderman"] for b in baselines)
        beat = rows.loc["kfac", "best_biderman"] < best_base
        numbers[f"{key}EditKfacBeats"] = "yes" if beat else "no"
        wins.append(beat)
        cmp = compare[compare["spec"] == spec]
        for baseline in baselines:
            valid = cmp.dropna(subset=[baseline])
            numbers[f"{key}EditKfacBelow{macro_key(baseline)}"] = int((valid["kfac"] < valid[baseline]).sum())
            numbers[f"{key}EditCompared{macro_key(baseline)}"] = len(valid)
    if is_organism(spec):
        lv = per_level.loc[(spec, "none", 1.0)]
        for level, value in lv.items():
            numbers[f"{key}EditBaseLevel{macro_key(str(level)) or 'Zero'}"] = fmt(value)
numbers["EditNModels"] = len(specs)
numbers["EditNKfacBeats"] = sum(wins)
report.write_macros(out / f"numbers_{NAME}.tex", numbers, source=NAME)
pd.Series(numbers, dtype=str).sort_index().to_frame("value")
