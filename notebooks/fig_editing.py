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
# (`memkit.mechanisms.curvature`; organisms: their own training corpus, pretrained models: Python's
# pydoc topics). Each weight is written in the Kronecker eigenbasis and only the highest-curvature
# components holding a fraction `keep_mass` of the curvature mass are kept (Merullo et al. 2025).
# Baselines remove the *same number* of components of each matrix in the same basis, by smallest
# magnitude or at random. For each edit: perplexity on held-out text and memorization — the Biderman
# score (greedy, k-token prefix, m-token continuation) of the samples the unedited model recites
# (attractors of a pretrained model; organisms: the canaries it recites, and every canary per
# duplication level in a table).
# *Equal perplexity*: each method's least memorization among its edits whose perplexity stays within
# `ppl_budget` of the unedited model, and the baselines' memorization interpolated (in log
# perplexity) at each K-FAC point. Sweeps, curves, the equal-perplexity comparison and the numbers
# are computed by `memkit.paper.editing_runs`; the models by `memkit.paper.mechanism_models`.
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
from memkit.paper import nb

out = nb.setup(out_dir, threads=threads)  # quiet, matplotlib Agg, torch threads, output folder

import matplotlib.pyplot as plt
import matplotlib.ticker
import pandas as pd

from memkit.paper import editing_runs, report
from memkit.paper.mechanism_models import mechanism_models

NAME = "fig_editing"
chosen = mechanism_models(models, zoo_profile=zoo_profile, zoo_which=zoo_which, labels=labels,
                          macro_names=macro_names, progress=progress)
specs = chosen.specs

# %% [markdown]
# ## Sweeps: unedited model, then every method × keep_mass

# %%
runs = editing_runs.editing_sweeps(specs, nb.read_records(attractors, ids=ids), k=k, m=m, threshold=threshold,
                                   max_memorized=max_memorized, layer_frac=layer_frac, keep_masses=keep_masses,
                                   methods=methods, labels_kind=labels_kind, seq_len=seq_len, fit_windows=fit_windows,
                                   ppl_windows=ppl_windows, seed=seed, batch_size=batch_size, progress=progress)
runs.edits.round(4)

# %% [markdown]
# ## Memorization per edit: Biderman score of the samples the unedited model recites (score ≥ threshold)

# %%
curves, recited = editing_runs.memorization_curves(runs, threshold=threshold)
curves.round(4)

# %% [markdown]
# ## Organisms: Biderman score per duplication level (unedited vs each method's edits)

# %%
per_level = editing_runs.level_scores(runs)
per_level.round(3)

# %% [markdown]
# ## Equal perplexity: K-FAC against the baselines

# %%
budget, compare = editing_runs.equal_perplexity(curves, specs, methods, ppl_budget=ppl_budget)
budget.pivot(index="spec", columns="method", values="best_biderman").round(3)

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
    layers = runs.meta[spec]["layers"]
    ax.set_title(f"{chosen.labels[spec]}\nMLPs of blocks {layers[0]}–{layers[-1]}")
    ax.set_xlabel("perplexity / unedited (held-out)" + (f", cut at {ppl_cap:g}" if right >= ppl_cap else ""))
    ax.grid(alpha=0.3, lw=0.4)
axes[0][0].set_ylabel("memorization (Biderman score)")
axes[0][0].legend(loc="lower left", frameon=False)
report.save_figure(fig, out, NAME)
plt.close(fig)

# %% [markdown]
# ## Numbers quoted in the paper

# %%
settings = dict(k=k, m=m, ppl_budget=ppl_budget, labels_kind=labels_kind, fit_windows=fit_windows, seq_len=seq_len)
numbers = editing_runs.editing_numbers(runs, curves, recited, per_level, budget, compare, keys=chosen.keys,
                                       methods=methods, settings=settings)
report.write_macros(out / f"numbers_{NAME}.tex", numbers, source=NAME)
pd.Series(numbers, dtype=str).sort_index().to_frame("value")
