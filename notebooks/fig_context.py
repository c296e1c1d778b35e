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
# # Figure — the effect of the prefix length k (Carlini's context effect), organisms
#
# Carlini et al. (2022) found that a memorized continuation is extracted more often when the model
# is given a longer prefix. Here the m-token suffix of every canary is fixed (tokens
# `suffix_start … suffix_start+m` of the 64-token canary) and only the number k of prefix tokens
# right before it varies, so every k asks for exactly the same text. Rates are computed at the final
# checkpoint of every size of the zoo, per duplication level (window `all` only); the context slope
# is the change of the rate per decade of k (`memkit.organisms.laws.loglinear_fit` with k as the x
# variable), over the canaries of levels ≥ `min_level`. The runs, slopes and numbers come from
# `memkit.paper.organism_runs`.
#
# Outputs (into `out_dir`): `fig_context.pdf/.png`, `numbers_fig_context.tex`.
# Defaults are smoke settings; paper settings: `params/fig_context.yml`.

# %% tags=["parameters"]
profile = "smoke"  # zoo profile, built here if missing
ks = [4, 8, 16, 32]  # prefix lengths, none above suffix_start
suffix_start = 32  # first suffix token inside the 64-token canary
m = 32  # continuation tokens
min_level = 64  # the context slope is fitted on canaries with at least this many copies
n_boot = 200
boot_seed = 0
batch_size = 32
progress = False
out_dir = "build/smoke/fig_context"

# %%
from memkit.paper import nb

out = nb.setup(out_dir, threads=1)  # quiet, matplotlib Agg, torch threads, output folder

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.ticker import NullFormatter

from memkit.paper import organism_runs, report
from memkit.paper.report import format_params

NAME = "fig_context"

# %% [markdown]
# ## Extraction with k = … prefix tokens before the same suffix

# %%
ctx = organism_runs.context_runs(profile, ks=ks, suffix_start=suffix_start, m=m, min_level=min_level, n_boot=n_boot,
                                 seed=boot_seed, batch_size=batch_size, progress=progress)
rates, sizes, params = ctx.rates, ctx.sizes, organism_runs.size_params(ctx.runs)
rates.pivot_table(index=["size", "level"], columns="k", values="biderman", sort=False).round(3)

# %% [markdown]
# ## Context slopes: rate vs log10(k) on the canaries with at least `min_level` copies

# %%
ctx.slopes[["size", "params", "metric", "slope", "slope_lo", "slope_hi", "r2"]].round(4)

# %% [markdown]
# ## Figure

# %%
plt.rcParams.update({"font.size": 8, "axes.titlesize": 8, "legend.fontsize": 6.5})
fig, axes = plt.subplots(1, 2, figsize=(7.0, 2.6), constrained_layout=True)
largest = sizes[-1]
levels = sorted(rates["level"].unique())
for i, level in enumerate(levels):
    sub = rates[(rates["size"] == largest) & (rates["level"] == level)]
    axes[0].plot(sub["k"], sub["biderman"], "o-", ms=3, lw=0.9, color=plt.cm.magma(0.1 + 0.8 * i / len(levels)),
                 label="control (0)" if level == 0 else f"{level} copies")
axes[0].set(xscale="log", xlabel="prefix tokens k", ylabel="Biderman score (same 32-token suffix)",
            title=f"(a) largest organism ({format_params(params[largest])}), per level", ylim=(-0.02, 1.02))
axes[0].legend(frameon=False, ncol=2)
for i, size in enumerate(sizes):
    sub = organism_runs.context_curve(ctx.runs, size, min_level=min_level)
    color, label = plt.cm.viridis(i / max(1, len(sizes) - 1)), format_params(params[size])
    axes[1].plot(sub.index, sub["biderman"], "o-", ms=3, lw=0.9, color=color, label=f"{label} Biderman")
    axes[1].plot(sub.index, sub["exact_match"], "s--", ms=3, lw=0.9, color=color, label=f"{label} exact")
axes[1].set(xscale="log", xlabel="prefix tokens k", ylabel="rate", ylim=(-0.02, 1.02),
            title=f"(b) canaries with $\\geq${min_level} copies, every size")
axes[1].legend(frameon=False, ncol=2)
for ax in axes:
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.grid(alpha=0.3, lw=0.5)
report.save_figure(fig, out, NAME)
plt.close(fig)

# %% [markdown]
# ## Numbers quoted in the paper

# %%
numbers = organism_runs.context_numbers(ctx, ks=ks, m=m, min_level=min_level, n_boot=n_boot)
report.write_macros(out / f"numbers_{NAME}.tex", numbers, source=NAME)
pd.Series(numbers, dtype=str).sort_index().to_frame("value")
