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
# # Figure — memorization vs duplication × model size (the organisms, every seed)
#
# The zoo (`memkit.organisms.zoo`): models of several sizes, each trained with several seeds on the King
# James Bible plus canaries inserted 0 (controls), 1, 4, 16, 64 or 256 times. At the final step every
# `all`-window canary is prompted with k tokens and greedily continued for m: exact match (Carlini et
# al. 2022) and Biderman score (share of the m tokens reproduced). Rates per (size, seed), then the mean
# over seeds with a t-interval across seeds (canary bootstrap where a level has ≥ 20). Per size, logistic,
# log-linear and step laws in log2(copies), compared by leave-one-seed-out likelihood; the size trend at
# fixed copies: within-seed permutation test of Spearman's rho (Holm). Driver: `memkit.paper.dup_runs`.
#
# Outputs (into `out_dir`): `fig_dup_scaling.pdf/.png`, `tab_dup_fits.tex`, `tab_lr_sweep.tex`,
# `numbers_fig_dup_scaling.tex`. Defaults are smoke settings; paper settings: `params/fig_dup_scaling.yml`.

# %% tags=["parameters"]
profile = "smoke"  # zoo profile, built here if missing: smoke takes about a minute
k = 32  # prefix tokens
m = 32  # continuation tokens (Pythia's 32)
trend_levels = [16, 64, 256]  # duplication levels of the size-trend tests
n_boot = 200  # bootstrap replicates over canaries
n_resamples = 9999  # permutations of the size-trend test (exact when there are fewer relabellings)
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

from memkit.paper import dup_runs, report
from memkit.paper.report import format_params

NAME = "fig_dup_scaling"

# %% [markdown]
# ## Rates per size and level at the final step: mean over seeds, t-interval across seeds

# %%
dup = dup_runs.duplication_runs(profile, k=k, m=m, n_boot=n_boot, trend_levels=trend_levels,
                                n_resamples=n_resamples, seed=boot_seed, batch_size=batch_size, progress=progress)
sizes, params, rates = dup.sizes, dup_runs.size_params(dup.runs), dup.rates
rates.round(3)

# %% [markdown]
# ## Fits: held-out log-likelihood per canary (leave one seed out); size trends (within-seed permutation,
# Holm); the LR sweep

# %%
display(dup_runs.model_comparison(dup.fits).round(4), dup.trends.round(4))
dup_runs.lr_sweep(dup.info).round(3)

# %% [markdown]
# ## Figure, tables and the numbers quoted in the paper

# %%
plt.rcParams.update({"font.size": 8, "axes.titlesize": 8, "legend.fontsize": 6.5})
fig, axes = plt.subplots(1, 3, figsize=(7.0, 2.5), constrained_layout=True)
levels = sorted(rates["level"].unique())
pos = {lv: (np.log2(lv) if lv > 0 else -1.5) for lv in levels}  # the controls sit left of 2^0
colors = {s: plt.cm.viridis(i / max(1, len(sizes) - 1)) for i, s in enumerate(sizes)}
seed_bars = lambda d, c: [d[c] - d[c + "_lo"].clip(0), d[c + "_hi"].clip(upper=1) - d[c]]  # t-interval, in [0, 1]
for ax, metric, title in ((axes[0], "exact_match", "(a) exact match"), (axes[1], "biderman", "(b) Biderman score")):
    for i, size in enumerate(sizes):
        sub = rates[rates["size"] == size].sort_values("level")
        x = [pos[lv] + (i - len(sizes) / 2) * 0.08 for lv in sub["level"]]  # sizes side by side
        ax.errorbar(x, sub[metric], yerr=seed_bars(sub, metric), fmt="o", ms=3, lw=0.8, capsize=1.5, color=colors[size],
                    label=format_params(params[size]))
        ax.plot(*dup_runs.rate_curve(dup, size, metric), "-", lw=0.8, color=colors[size])
    ax.set_xticks([pos[lv] for lv in levels], ["0\n(ctrl)" if lv == 0 else str(lv) for lv in levels])
    ax.set(xlabel="copies in the training stream", ylabel="rate (mean over seeds)", title=title, ylim=(-0.04, 1.04))
    ax.legend(loc="upper left", frameon=False, title="non-emb. params")
for j, level in enumerate(trend_levels):
    sub = rates[rates["level"] == level].assign(p=lambda d: d["size"].map(params)).sort_values("p")
    for metric, style in (("exact_match", "o-"), ("biderman", "s:")):
        axes[2].errorbar(sub["p"], sub[metric], yerr=seed_bars(sub, metric), fmt=style, ms=3, lw=0.8, capsize=1.5,
                         color=plt.cm.magma(0.2 + 0.6 * j / len(trend_levels)),
                         label=f"{level}, {'exact' if metric == 'exact_match' else 'Biderman'}")
axes[2].set(xscale="log", xlabel="non-embedding parameters", ylabel="rate (mean over seeds)", ylim=(-0.04, 1.4),
            yticks=np.linspace(0, 1, 6),
            title="(c) rate vs size at fixed copies")
axes[2].minorticks_off()
axes[2].set_xticks(sorted(params.values()), [format_params(p) for p in sorted(params.values())], rotation=45)
axes[2].legend(frameon=False, fontsize=5, ncol=2, loc="upper left")
for ax in axes:
    ax.grid(alpha=0.3, lw=0.5)
report.save_figure(fig, out, NAME)
plt.close(fig)
table, caption = dup_runs.dup_fits_table(dup)
report.write_table(table, out / "tab_dup_fits.tex", source=NAME, escape=False, column_format="llllrrrr",
                   caption=caption, label="tab:dup-fits")
sweep, sweep_caption = dup_runs.lr_sweep_table(dup.info)
report.write_table(sweep, out / "tab_lr_sweep.tex", source=NAME, escape=False, caption=sweep_caption,
                   column_format="l" + "r" * (sweep.shape[1] - 2) + "l", label="tab:lr-sweep")
for name in ("tab_dup_fits", "tab_lr_sweep"):
    report.fit_float(out / f"{name}.tex", font=r"\small")  # centred, scaled to the text width
numbers = dup_runs.dup_numbers(dup, k=k, m=m, n_boot=n_boot)
report.write_macros(out / f"numbers_{NAME}.tex", numbers, source=NAME)
shown = {key: value for key, value in numbers.items() if "Train" not in key}  # wall times vary: not in the output
pd.Series(shown, dtype=str).sort_index().to_frame("value")
