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
# # Figure — context: k prompt tokens, or a prompt that starts like a training copy?
#
# Carlini et al. (2022) found that longer prompts extract more. In the zoo every training copy of a canary
# is `[eos] canary [eos]`, so with a fixed suffix (tokens `suffix_start … suffix_start+m`) only k =
# `suffix_start` starts at the canary boundary, and a prompt without the eos never looks like a training
# copy. Four prompt conditions at every k, every size and seed, final checkpoint
# (`memkit.paper.context_runs.context_samples`): `inside` (the k tokens right before the fixed suffix),
# `inside+eos` (the same after an eos; the full training context at k = `suffix_start`), `start` (the first
# k canary tokens, suffix the next `start_m`) and `start+eos` (the same after an eos: starts like a training
# copy at every k). Scores per (size, seed), then mean over seeds with t intervals; paired permutation tests
# on the same canaries (scores averaged over seeds): eos vs none inside the canary, and the boundary start
# vs the fixed suffix (both with eos), per size × level × k, Holm over all.
#
# Outputs (into `out_dir`): `fig_context.pdf/.png`, `numbers_fig_context.tex`.
# Defaults are smoke settings; paper settings: `params/fig_context.yml`.

# %% tags=["parameters"]
profile = "smoke"  # zoo profile, built here if missing
sizes = None  # None: every size of the profile
ks = [4, 8, 16, 24, 32]  # prompt tokens taken from the canary
suffix_start = 32  # first token of the fixed suffix inside the 64-token canary
m = 32  # fixed-suffix length
start_m = 24  # suffix length of the boundary-start prompts (k + start_m <= 64)
levels = [0, 64, 256]  # duplication levels extracted (0: never-inserted controls)
test_levels = [64, 256]  # levels tested
n_resamples = 9999
batch_size = 64
progress = False
out_dir = "build/smoke/fig_context"

# %%
from memkit.paper import nb

out = nb.setup(out_dir, threads=1)  # quiet, matplotlib Agg, torch threads, output folder

import matplotlib.pyplot as plt
import pandas as pd

from memkit.paper import context_runs, report
from memkit.paper.report import format_params

NAME = "fig_context"

# %% [markdown]
# ## Biderman score per size, seed, level, condition and k

# %%
ctx = context_runs.context_runs(profile, sizes=sizes, ks=ks, suffix_start=suffix_start, m=m, start_m=start_m,
                                levels=levels, test_levels=test_levels, n_resamples=n_resamples,
                                batch_size=batch_size, progress=progress)
ctx.scores.pivot_table(index=["size", "level", "condition", "seed"], columns="k", values="biderman",
                       sort=False).round(3)

# %% [markdown]
# ## Mean over seeds (t intervals over the seeds), exact-match rate and Biderman score

# %%
ctx.rates.pivot_table(index=["size", "level", "condition"], columns="k", values=["exact", "biderman"],
                      sort=False).round(3)

# %% [markdown]
# ## Paired permutation tests (Holm over all)

# %%
ctx.tests.round(4)

# %% [markdown]
# ## Figure: one panel per level and size; lines: conditions (mean over seeds, band: t interval)

# %%
plt.rcParams.update({"font.size": 7, "axes.titlesize": 7, "legend.fontsize": 6})
shown = [level for level in levels if level > 0]
fig, axes = plt.subplots(len(shown), len(ctx.sizes), figsize=(7.0, 1.5 * len(shown) + 0.4), sharex=True,
                         sharey=True, constrained_layout=True, squeeze=False)
styles = {"inside": ("C0", "o-"), "inside+eos": ("C0", "s--"), "start": ("C3", "o-"), "start+eos": ("C3", "s--")}
for row, level in zip(axes, shown):
    for ax, size in zip(row, ctx.sizes):
        for condition, (color, style) in styles.items():
            sub = ctx.rates[(ctx.rates["size"] == size) & (ctx.rates["level"] == level)
                            & (ctx.rates["condition"] == condition)]
            ax.plot(sub["k"], sub["biderman"], style, color=color, ms=2.5, lw=0.9, label=condition)
            ax.fill_between(sub["k"], sub["biderman_lo"].clip(0, 1), sub["biderman_hi"].clip(0, 1), color=color,
                            alpha=0.1, lw=0)
        ax.set_title(f"{format_params(sub['params'].iloc[0])}, {level} copies (n={sub['n'].iloc[0]})")
        ax.set_xticks(ks)
        ax.grid(alpha=0.3, lw=0.5)
    row[0].set_ylabel("Biderman score")
for ax in axes[-1]:
    ax.set_xlabel("prompt tokens k")
axes[0][0].legend(frameon=False)
axes[0][0].set_ylim(-0.02, 1.02)
report.save_figure(fig, out, NAME)
plt.close(fig)

# %% [markdown]
# ## Numbers quoted in the paper

# %%
numbers = context_runs.context_numbers(ctx, ks=ks, suffix_start=suffix_start, m=m, start_m=start_m)
report.write_macros(out / f"numbers_{NAME}.tex", numbers, source=NAME)
pd.Series(numbers, dtype=str).sort_index().to_frame("value")
