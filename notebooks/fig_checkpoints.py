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
# # Figure — memorization across training checkpoints; are early insertions forgotten?
#
# Every size of the zoo (`memkit.organisms.zoo`) is checkpointed during training. At each checkpoint
# every canary is prompted with its first k tokens (greedy, m tokens). (a) When do canaries become
# extractable, per duplication level? (b) Canaries whose copies all sit in the first quarter of
# training (`early` window) or in the last quarter (`late`): the Hubble suite found that text seen
# only early is largely forgotten by the end, text seen late is remembered. (c) Per size: early
# canaries right after their window and at the end, late canaries at the end, never-seen controls.
# Onsets come from `memkit.organisms.laws.extraction_onsets`; the runs and numbers from
# `memkit.paper.organism_runs`.
#
# Outputs (into `out_dir`): `fig_checkpoints.pdf/.png`, `numbers_fig_checkpoints.tex`.
# Defaults are smoke settings; paper settings: `params/fig_checkpoints.yml`.

# %% tags=["parameters"]
profile = "smoke"  # zoo profile, built here if missing
k = 32
m = 32
window_level = 16  # duplication level of the early/late canaries shown in (b) (the profile must have them)
batch_size = 32
progress = False
out_dir = "build/smoke/fig_checkpoints"

# %%
from memkit.paper import nb

out = nb.setup(out_dir, threads=1)  # quiet, matplotlib Agg, torch threads, output folder

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from memkit.paper import organism_runs, report
from memkit.paper.report import format_params

NAME = "fig_checkpoints"

# %% [markdown]
# ## Extraction at every checkpoint of every size

# %%
ckpt = organism_runs.checkpoint_runs(profile, k=k, m=m, window_level=window_level, batch_size=batch_size,
                                     progress=progress)
curves, sizes, spans, params = ckpt.curves, ckpt.sizes, ckpt.spans, organism_runs.size_params(ckpt.runs)
curves[curves["size"] == sizes[-1]].pivot_table(index=["window", "level"], columns="step", values="biderman").round(2)

# %% [markdown]
# ## Onsets and forgetting (exact match)

# %%
ckpt.summary[ckpt.summary["level"] > 0]

# %% [markdown]
# Biderman score of the windowed canaries (level `window_level`) at the first checkpoint after
# their window closed and at the last checkpoint, next to the never-seen controls (a graded view of
# forgetting that does not take a maximum over noisy checkpoints).

# %%
retention = ckpt.retention
retention.pivot_table(index="size", columns="what", values="biderman", sort=False).round(3)

# %% [markdown]
# ## Figure

# %%
plt.rcParams.update({"font.size": 8, "axes.titlesize": 8, "legend.fontsize": 6.5})
fig, axes = plt.subplots(1, 3, figsize=(7.0, 2.5), constrained_layout=True)
big = curves[curves["size"] == sizes[-1]]
levels = sorted(big[big["window"] == "all"]["level"].unique())
for i, level in enumerate(levels):
    sub = big[(big["window"] == "all") & (big["level"] == level)]
    axes[0].plot(sub["step"], sub["biderman"], "o-", ms=2.5, lw=0.9, color=plt.cm.magma(0.1 + 0.8 * i / len(levels)),
                 label="control (0)" if level == 0 else f"{level}")
axes[0].set(xlabel="training step", ylabel="Biderman score", ylim=(-0.02, 1.02),
            title=f"(a) {format_params(params[sizes[-1]])}: copies spread over training")
axes[0].legend(frameon=False, title="copies", ncol=2)
for window, color in (("early", "C0"), ("late", "C3")):
    start, stop = spans[window]
    axes[1].axvspan(start, stop, color=color, alpha=0.08, lw=0)
    for i, size in enumerate(sizes):
        sub = curves[(curves["size"] == size) & (curves["window"] == window) & (curves["level"] == window_level)]
        if len(sub):
            axes[1].plot(sub["step"], sub["biderman"], "o-", ms=2.5, lw=0.9, color=color,
                         alpha=0.35 + 0.65 * (i + 1) / len(sizes), label=f"{window}, {format_params(params[size])}")
axes[1].set(xlabel="training step", ylabel="Biderman score", ylim=(-0.02, 1.02),
            title=f"(b) {window_level} copies, all early or all late")
axes[1].legend(frameon=False, ncol=2, fontsize=5.5)
x = np.arange(len(sizes))
bars = (("early: after window", "C0", 0.3), ("early: final", "C0", 1.0), ("late: after window", "C3", 1.0),
        ("controls: final", "0.5", 1.0))
for j, (what, color, alpha) in enumerate(bars):
    sub = retention[retention["what"] == what].set_index("size").reindex(sizes)
    axes[2].bar(x + (j - 1.5) * 0.2, sub["biderman"], width=0.19, color=color, alpha=alpha,
                label=what.replace("late: after window", "late: final"))
axes[2].set_xticks(x, [format_params(params[s]) for s in sizes])
axes[2].set(xlabel="non-embedding parameters", ylabel="mean Biderman score",
            title=f"(c) {window_level}-copy canaries: seen early vs late")
axes[2].legend(frameon=False, fontsize=5.5)
for ax in axes:
    ax.grid(alpha=0.3, lw=0.5)
report.save_figure(fig, out, NAME)
plt.close(fig)

# %% [markdown]
# ## Numbers quoted in the paper

# %%
numbers = organism_runs.checkpoint_numbers(ckpt, window_level=window_level)
report.write_macros(out / f"numbers_{NAME}.tex", numbers, source=NAME)
pd.Series(numbers, dtype=str).sort_index().to_frame("value")
