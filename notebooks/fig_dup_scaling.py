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
# # Figure — memorization vs duplication × model size (the organisms)
#
# The organisms (`memkit.organisms.zoo`) are Pythia-architecture models of several sizes trained on
# the same stream: the King James Bible plus canaries inserted 0, 1, 4, 16, 64 or 256 times (level 0
# = never seen: the controls). At the final checkpoint every canary is prompted with its first k
# tokens and greedily continued for m tokens. Two extraction rates per level: exact match (Carlini et
# al. 2022, "k-extractable") and the mean Biderman score (fraction of the m tokens reproduced,
# Biderman et al. 2023). Each rate is fitted as `rate = slope · log10(copies) + intercept` over
# levels ≥ 1, with R² and a bootstrap CI of the slope over canaries
# (`memkit.organisms.laws.loglinear_fit`). The runs, fits, table and numbers come from
# `memkit.paper.organism_runs`.
#
# Only canaries of the `all` window (copies spread over the whole run) enter; early/late windows are
# in `fig_checkpoints`. Outputs (into `out_dir`): `fig_dup_scaling.pdf/.png`, `tab_dup_slopes.tex`,
# `numbers_fig_dup_scaling.tex`. Defaults are smoke settings; paper settings: `params/fig_dup_scaling.yml`.

# %% tags=["parameters"]
profile = "smoke"  # zoo profile, built here if missing: smoke takes about a minute
k = 32  # prefix tokens
m = 32  # continuation tokens (Pythia's 32)
n_boot = 200  # bootstrap replicates of the slope CI
boot_seed = 0
batch_size = 32
progress = False
out_dir = "build/smoke/fig_dup_scaling"

# %%
from memkit.paper import nb

out = nb.setup(out_dir, threads=1)  # quiet, matplotlib Agg, torch threads, output folder

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import NullFormatter

from memkit.paper import organism_runs, report
from memkit.paper.report import format_params

NAME = "fig_dup_scaling"

# %% [markdown]
# ## Extraction at the final checkpoint (every size, every canary)

# %%
dup = organism_runs.duplication_runs(profile, k=k, m=m, n_boot=n_boot, seed=boot_seed, batch_size=batch_size,
                                     progress=progress)
rates, fits, sizes = dup.rates, dup.fits, dup.sizes
rates.pivot_table(index="level", columns="size", values=["exact", "biderman"], sort=False).round(3)

# %% [markdown]
# ## Log-linear fits per size (levels ≥ 1), bootstrap CI over canaries

# %%
fits[["metric", "size", "params", "slope", "slope_lo", "slope_hi", "r2", "control_rate"]].round(4)

# %% [markdown]
# ## Figure

# %%
plt.rcParams.update({"font.size": 8, "axes.titlesize": 8, "legend.fontsize": 6.5})
fig, axes = plt.subplots(1, 3, figsize=(7.0, 2.5), constrained_layout=True)
levels = sorted(rates["level"].unique())
pos = {lv: (np.log10(lv) if lv > 0 else -0.6) for lv in levels}  # the controls sit left of 10^0
colors = {s: plt.cm.viridis(i / max(1, len(sizes) - 1)) for i, s in enumerate(sizes)}
for ax, metric, col, title in ((axes[0], "exact_match", "exact", "(a) exact match (Carlini)"),
                               (axes[1], "biderman", "biderman", "(b) Biderman score")):
    for size in sizes:
        sub = rates[rates["size"] == size]
        fit = fits[(fits["size"] == size) & (fits["metric"] == metric)].iloc[0]
        ax.plot([pos[lv] for lv in sub["level"]], sub[col], "o", ms=3.5, color=colors[size],
                label=f"{format_params(sub['params'].iloc[0])} (slope {fit['slope']:.2f})")
        x = np.linspace(0, np.log10(max(levels)), 200)
        line = fit["slope"] * x + fit["intercept"]
        keep = (line >= 0) & (line <= 1)  # the fitted line inside the range a rate can take
        ax.plot(x[keep], line[keep], "-", lw=0.9, color=colors[size])
    ax.set_xticks([pos[lv] for lv in levels], ["0\n(ctrl)" if lv == 0 else str(lv) for lv in levels])
    ax.axvline(-0.3, color="0.8", lw=0.6)
    ax.set(xlabel="copies in the training stream (log)", ylabel="rate", title=title, ylim=(-0.04, 1.04))
    ax.grid(alpha=0.3, lw=0.5)
    ax.legend(loc="upper left", frameon=False, title="non-emb. params")
# (c) slopes vs model size with CIs
for metric, marker, label in (("exact_match", "o", "exact"), ("biderman", "s", "Biderman")):
    sub = fits[fits["metric"] == metric]
    axes[2].errorbar(sub["params"], sub["slope"], yerr=[sub["slope"] - sub["slope_lo"], sub["slope_hi"] - sub["slope"]],
                     fmt=marker + "-", ms=3.5, lw=0.9, capsize=2, label=label)
axes[2].set(xscale="log", xlabel="non-embedding parameters", ylabel="slope per decade of copies",
            title="(c) fitted slopes (95% bootstrap CI)")
param_ticks = sorted(fits["params"].unique())
axes[2].set_xticks(param_ticks, [format_params(p) for p in param_ticks])
axes[2].xaxis.set_minor_formatter(NullFormatter())
axes[2].set_xlim(min(param_ticks) / 1.5, max(param_ticks) * 1.5)
axes[2].axhline(0, color="0.6", lw=0.6)
axes[2].grid(alpha=0.3, lw=0.5)
axes[2].legend(frameon=False)
report.save_figure(fig, out, NAME)
plt.close(fig)

# %% [markdown]
# ## Slope table and numbers quoted in the paper

# %%
table, caption = organism_runs.dup_slopes_table(dup, k=k, m=m)
report.write_table(table, out / "tab_dup_slopes.tex", source=NAME, escape=False, column_format="llrlrr",
                   caption=caption, label="tab:dup-slopes")
numbers = organism_runs.dup_numbers(dup, k=k, m=m, n_boot=n_boot)
report.write_macros(out / f"numbers_{NAME}.tex", numbers, source=NAME)
shown = {key: value for key, value in numbers.items() if "Train" not in key}  # wall times vary: not in the output
pd.Series(shown, dtype=str).sort_index().to_frame("value")
