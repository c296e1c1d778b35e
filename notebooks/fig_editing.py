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
# K-FAC factors of the last blocks' MLPs on generic text (`memkit.mechanisms.curvature`; organisms:
# their corpus, pretrained models: pydoc topics); each weight keeps the highest-curvature components
# of its Kronecker eigenbasis holding a fraction `keep_mass` of the curvature mass (Merullo et al.
# 2025); baselines remove as many components, by smallest magnitude or at random. Per edit: held-out
# perplexity and the Biderman score of the samples the unedited model recites (organisms: also per
# duplication level). *Equal perplexity*: each method's least memorization within `ppl_budget` of the
# unedited perplexity; baselines interpolated (log perplexity) at each K-FAC point. Computed by
# `memkit.paper.editing_runs`; models: `memkit.paper.mechanism_models`. Outputs (into `out_dir`):
# `fig_editing.pdf/.png`, `numbers_fig_editing.tex`. Paper settings: `params/fig_editing.yml`.

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
import pandas as pd
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from memkit.paper import editing_runs, report
from memkit.paper.mechanism_models import mechanism_models

NAME = "fig_editing"
chosen = mechanism_models(models, zoo_profile=zoo_profile, zoo_which=zoo_which, labels=labels,
                          macro_names=macro_names, progress=progress)

# %% [markdown]
# ## Sweeps (unedited, then every method × keep_mass): perplexity and memorization of the recited samples;
# organisms: score per duplication level; equal perplexity: each method's best edit, K-FAC vs baselines

# %%
runs = editing_runs.editing_sweeps(chosen.specs, nb.read_records(attractors, ids=ids), k=k, m=m, threshold=threshold,
                                   max_memorized=max_memorized, layer_frac=layer_frac, keep_masses=keep_masses,
                                   methods=methods, labels_kind=labels_kind, seq_len=seq_len, fit_windows=fit_windows,
                                   ppl_windows=ppl_windows, seed=seed, batch_size=batch_size, progress=progress)
res = editing_runs.editing_summary(runs, threshold=threshold, methods=methods, ppl_budget=ppl_budget)
res.curves.round(4)

# %%
display(res.per_level.round(3), res.budget.pivot(index="spec", columns="method", values="best_biderman").round(3))
res.compare.round(3)

# %% [markdown]
# ## Figure: memorization vs perplexity, one panel per model

# %%
plt.rcParams.update({"font.size": 7, "axes.titlesize": 7, "legend.fontsize": 6})
fig, axes = plt.subplots(1, len(runs.specs), figsize=(min(7.0, 2.3 * len(runs.specs) + 0.6), 2.5), squeeze=False,
                         constrained_layout=True)
STYLE = {"kfac": ("C3", "o", "-"), "magnitude": ("C0", "s", "--"), "random": ("C2", "^", ":")}
for ax, panel in zip(axes[0], editing_runs.figure_panels(runs, res, methods, ppl_budget=ppl_budget, ppl_cap=ppl_cap)):
    for method, pts in panel.lines.items():
        colour, marker, ls = STYLE.get(method, ("C7", "x", "-"))
        ax.plot(pts["ppl_ratio"], pts["biderman"], color=colour, marker=marker, ls=ls, lw=1.0, ms=3.5, label=method)
    ax.plot([1], [panel.unedited], "k*", ms=7, label="unedited")
    ax.axvline(1 + ppl_budget, color="0.5", lw=0.6, ls="--")
    ax.set(xscale="log", xlim=(0.97, panel.right), ylim=(-0.03, 1.03))
    ax.xaxis.set(major_locator=LogLocator(base=10, subs=panel.ticks), minor_formatter=NullFormatter(),
                 major_formatter=FuncFormatter(lambda x, _: f"{x:g}"))
    ax.set_title(f"{chosen.labels[panel.spec]}\nMLPs of blocks {panel.blocks}")
    ax.set_xlabel("perplexity / unedited (held-out)" + (f", cut at {ppl_cap:g}" if panel.cut else ""))
    ax.grid(alpha=0.3, lw=0.4)
axes[0][0].set_ylabel("memorization (Biderman score)")
axes[0][0].legend(loc="lower left", frameon=False)
report.save_figure(fig, out, NAME)
plt.close(fig)

# %% [markdown]
# ## Numbers quoted in the paper

# %%
settings = dict(k=k, m=m, ppl_budget=ppl_budget, labels_kind=labels_kind, fit_windows=fit_windows, seq_len=seq_len)
numbers = editing_runs.editing_numbers(runs, res, keys=chosen.keys, methods=methods, settings=settings)
report.write_macros(out / f"numbers_{NAME}.tex", numbers, source=NAME)
pd.Series(numbers, dtype=str).sort_index().to_frame("value")
