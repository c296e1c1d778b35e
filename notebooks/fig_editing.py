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
# # Figure — curvature editing (Merullo et al. 2025) vs baselines at *equal perplexity*
#
# K-FAC factors of the edited MLPs streamed over `fit_tokens` positions of broad text, labels sampled from the
# model; K-FAC keeps `keep_mass` of the curvature mass, baselines remove `remove_frac` of the same eigenbasis
# (smallest magnitude, random). Per-item memorization interpolated at `ppl_ratios` x the unedited held-out
# perplexity; K-FAC vs each baseline: paired permutation tests, Holm (`memkit.paper.editing_runs`). Outputs:
# `fig_editing.pdf/.png`, `tab_editing_layers.tex`, `numbers_fig_editing.tex`. Paper settings: `params/fig_editing.yml`.

# %% tags=["parameters"]
models = []  # pretrained model specs
zoo_profile = "smoke"  # organisms: a zoo profile (built if missing) or None
zoo_which = "largest"  # "largest" or "all" sizes of the zoo
attractors = "data/attractors.jsonl"
ids = None  # attractor ids (None: all)
k = 32
m = 32
threshold = 0.9
max_memorized = 8
layer_fracs = [0.5, 1.0]  # edited blocks: the last fraction (first entry: the main choice); or {spec or "zoo": [...]}
keep_masses = [0.9, 0.7, 0.5]  # K-FAC's sweep: curvature mass kept (a list, or {spec or "zoo": list})
remove_fracs = {"magnitude": [0.5, 0.9, 0.98], "random": [0.1, 0.3, 0.6]}  # baselines: share removed (or per model)
methods = ["kfac", "magnitude", "random"]
labels_kind = "sampled"  # K-FAC gradient labels: sampled from the model (true Fisher) or the text's ("true")
seq_len = 64
fit_tokens = 20_000  # token positions of the K-FAC fit (a number or {spec or "zoo": number})
fit_batch_size = 32
ppl_windows = None  # held-out perplexity windows (None: all; or {spec or "zoo": number})
ppl_ratios = [1.02, 1.05, 1.1, 1.25]  # equal-perplexity levels (x the unedited perplexity)
ref_ratio = 1.1  # the level the text and the layer table quote
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
from matplotlib.ticker import NullFormatter

from memkit.paper import editing_runs, report
from memkit.paper.mechanism_models import mechanism_models

NAME = "fig_editing"
chosen = mechanism_models(models, zoo_profile=zoo_profile, zoo_which=zoo_which, progress=progress)

# %% [markdown]
# ## Sweeps (unedited, then every layer set × method × amount): held-out perplexity and memorization; then
# equal perplexity: K-FAC vs each baseline (paired permutation test, Holm over all rows) per layer set

# %%
runs = editing_runs.editing_sweeps(chosen.specs, nb.read_records(attractors, ids=ids), k=k, m=m, threshold=threshold,
                                   max_memorized=max_memorized, layer_fracs=layer_fracs, keep_masses=keep_masses,
                                   remove_fracs=remove_fracs, methods=methods, labels_kind=labels_kind,
                                   seq_len=seq_len, fit_tokens=fit_tokens, fit_batch_size=fit_batch_size,
                                   ppl_windows=ppl_windows, seed=seed, batch_size=batch_size, progress=progress)
res = editing_runs.editing_summary(runs, threshold=threshold, methods=methods, ppl_ratios=ppl_ratios, seed=seed)
display(pd.DataFrame(runs.meta).T[["layers", "n_tokens", "n_ppl_tokens", "n_samples"]], res.curves.round(4))

# %%
table = editing_runs.layer_table(runs, res, labels=chosen.labels, ratio=ref_ratio)
report.write_table(table, out / "tab_editing_layers.tex", source=NAME)
display(res.per_level.round(3), table)
res.tests.round(4)

# %% [markdown]
# ## Figure: memorization of the recited samples vs held-out perplexity, per model (main layer set)

# %%
plt.rcParams.update({"font.size": 7, "axes.titlesize": 7, "legend.fontsize": 6})
fig, axes = plt.subplots(1, len(runs.specs), figsize=(min(7.0, 2.3 * len(runs.specs) + 0.6), 2.5), squeeze=False,
                         constrained_layout=True)
STYLE = {"kfac": ("C3", "o", "-"), "magnitude": ("C0", "s", "--"), "random": ("C2", "^", ":")}
for ax, panel in zip(axes[0], editing_runs.figure_panels(runs, res, methods, ppl_ratios=ppl_ratios, ppl_cap=ppl_cap)):
    for method, pts in panel.lines.items():
        colour, marker, ls = STYLE[method]
        ax.plot(pts["ppl_ratio"], pts["biderman"], color=colour, marker=marker, ls=ls, lw=1.0, ms=3.5, label=method)
    ax.plot([1], [panel.unedited], "k*", ms=7, label="unedited")
    ax.vlines(ppl_ratios, -0.03, 1.03, color="0.6", lw=0.5, ls=":")
    ticks = [t for t in (1, 1.5, 2, 3, 5, 7) if t <= panel.right]
    ax.set(xscale="log", xlim=(0.97, panel.right), ylim=(-0.03, 1.03), xticks=ticks,
           xticklabels=[f"{t:g}" for t in ticks],
           title=f"{chosen.labels[panel.spec]}\nMLPs of blocks {panel.blocks}",
           xlabel="perplexity / unedited (held-out)" + (f", cut at {ppl_cap:g}" if panel.cut else ""))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.grid(alpha=0.3, lw=0.4)
axes[0][0].set_ylabel("memorization (Biderman score)")
axes[0][0].legend(loc="lower left", frameon=False)
report.save_figure(fig, out, NAME)
plt.close(fig)

# %% Numbers quoted in the paper
settings = dict(k=k, m=m, labels_kind=labels_kind, seq_len=seq_len, ppl_ratios=ppl_ratios, ref_ratio=ref_ratio)
numbers = editing_runs.editing_numbers(runs, res, keys=chosen.keys, methods=methods, settings=settings)
report.write_macros(out / f"numbers_{NAME}.tex", numbers, source=NAME)
pd.Series(numbers, dtype=str).sort_index().to_frame("value")
