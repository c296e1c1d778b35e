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
# # Figure — logit lens: where does a memorized continuation lock in?
#
# Teacher-forced over prefix + true continuation, the residual stream after every decoder block is
# decoded with the model's own final norm and unembedding (`memkit.mechanisms.lens`; the last layer
# equals the model's logits). Per continuation position: the rank of the true token per layer; its
# *lock-in layer* is the first block from which the true token stays top-1 up to the output (only
# positions finally predicted correctly have one). Memorized samples (recited attractors; recited
# top-duplication canaries) against controls (shuffled texts; never-inserted canaries),
# `memkit.paper.sets`. Runs, summary, curves and numbers: `memkit.paper.lens_runs`; models:
# `memkit.paper.mechanism_models`. Outputs (into `out_dir`): `fig_lens.pdf/.png`,
# `numbers_fig_lens.tex`. Defaults are smoke settings; paper settings: `params/fig_lens.yml`.

# %% tags=["parameters"]
models = ["smollm2-135m-instruct"]  # pretrained model specs
zoo_profile = None  # organisms: a zoo profile (built if missing) or None
zoo_which = "largest"  # "largest" or "all" sizes of the zoo
attractors = "data/attractors.jsonl"
ids = ["counting", "days_months", "alphabet", "control_shuffled_genesis_1", "control_shuffled_pi_digits"]  # None: all
k = 32
m = 16
threshold = 0.9
max_memorized = 3
max_controls = 2
batch_size = 8  # logit-lens batch (the samples are chosen with memorization_sets' own batch size)
threads = 1
progress = False
out_dir = "build/smoke/fig_lens"

# %%
from memkit.paper import nb

out = nb.setup(out_dir, threads=threads)  # quiet, matplotlib Agg, torch threads, output folder

import matplotlib.pyplot as plt
import pandas as pd

from memkit.paper import lens_runs, report
from memkit.paper.mechanism_models import mechanism_models

NAME = "fig_lens"
chosen = mechanism_models(models, zoo_profile=zoo_profile, zoo_which=zoo_which, progress=progress)
specs = chosen.specs

# %% [markdown]
# ## Lens runs

# %%
runs = lens_runs.lens_runs(specs, nb.read_records(attractors, ids=ids), k=k, m=m, threshold=threshold,
                           max_memorized=max_memorized, max_controls=max_controls, batch_size=batch_size,
                           progress=progress)
runs.locks.groupby(["spec", "group"], sort=False)["id"].nunique().rename("samples").to_frame()

# %% [markdown]
# ## Per model and group: final top-1 rate, lock-in layer (positions predicted correctly at the output)

# %%
summary = lens_runs.lock_in_summary(runs)
summary.round(3)

# %% [markdown]
# ## Figure: share of positions whose true token is top-1 after each block; lock-in depth distribution

# %%
plt.rcParams.update({"font.size": 7, "axes.titlesize": 7, "legend.fontsize": 6})
curve = lens_runs.top1_curves(runs)
fig, axes = plt.subplots(2, len(specs), figsize=(min(7.0, 1.75 * len(specs) + 0.8), 3.6), squeeze=False,
                         constrained_layout=True)
STYLE = {"memorized": ("C3", "-"), "control": ("C0", "--")}
for col, spec in enumerate(specs):
    ax_top, ax_cdf = axes[0][col], axes[1][col]
    for group, (colour, ls) in STYLE.items():
        part = curve[(curve["spec"] == spec) & (curve["group"] == group)]
        if part.empty:
            continue
        ax_top.plot(part["depth"], part["is_top1"], color=colour, ls=ls, lw=1.1, marker=".", ms=3, label=group)
        cdf = lens_runs.lock_in_cdf(runs, spec, group)  # block l ends at relative depth (l + 1) / L
        if cdf is not None:
            depths, shares, median = cdf
            ax_cdf.step(depths, shares, where="post", color=colour, ls=ls, lw=1.1, label=group)
            ax_top.axvline(median, color=colour, ls=":", lw=0.8)
    ax_top.set_title(f"{chosen.labels[spec]}\n{runs.n_layers[spec]} blocks", fontsize=6.5)
    ax_top.set_ylim(-0.02, 1.02)
    ax_cdf.set_ylim(0, 1.02)
    for ax in (ax_top, ax_cdf):
        ax.set_xlim(0, 1.02)
        ax.grid(alpha=0.3, lw=0.4)
    ax_cdf.set_xlabel("relative depth (block / L)")
    if col == 0:
        ax_top.set_ylabel("true token is top-1\n(share of positions)")
        ax_cdf.set_ylabel("lock-in depth\n(cumulative share)")
        ax_top.legend(loc="upper left", frameon=False)
report.save_figure(fig, out, NAME)
plt.close(fig)

# %% [markdown]
# ## Numbers quoted in the paper

# %%
numbers = lens_runs.lens_numbers(runs, summary, keys=chosen.keys, k=k, m=m, threshold=threshold)
report.write_macros(out / f"numbers_{NAME}.tex", numbers, source=NAME)
pd.Series(numbers, dtype=str).sort_index().to_frame("value")
