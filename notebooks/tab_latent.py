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
# # Table — latent memorization: do weight perturbations recover canaries that are not extractable?
#
# Duan et al. (2025) perturbed Pythia-1B with gaussian weight noise (σ = 2·10⁻³, N = 200 draws) and
# found sequences that greedy decoding does not reproduce but some perturbed model does ("latent
# memories"). Here: for every organism size, the inserted canaries that are *not* exactly extractable
# at the final checkpoint, and the never-inserted controls (level 0), are decoded under N noise draws
# per σ (absolute σ, every weight tensor; the weights are restored bit for bit after each draw), and
# each sample keeps its best token-level Levenshtein similarity over the draws
# (`memkit.organisms.latent.latent_memorization`). A best-of-N statistic rises under pure noise, so
# only *hidden* canaries count (clean similarity no higher than every control's: unmemorized-looking
# without noise), and one is *recovered* only when its best similarity beats every control of the
# same size and σ (`memkit.organisms.latent.latent_vs_controls`); a one-sided Mann-Whitney test asks
# whether inserted canaries gain more from the noise (best − clean) than the controls. σ is swept
# because these models are much smaller than Pythia-1B. The runs, table and numbers come from
# `memkit.paper.organism_runs`.
#
# Outputs (into `out_dir`): `tab_latent.tex`, `fig_latent.pdf/.png`, `numbers_tab_latent.tex`.
# Defaults are smoke settings; paper settings: `params/tab_latent.yml`.

# %% tags=["parameters"]
profile = "smoke"  # zoo profile, built here if missing
sizes = None  # None: every size of the profile
k = 32
m = 32
sigmas = [0.001, 0.01]  # absolute noise std per weight
n_draws = 4  # noise draws per sigma (Duan: 200)
min_level = 16  # inserted canaries with at least this many copies (and not extractable) are tested
seed = 0
batch_size = 64
progress = False
out_dir = "build/smoke/tab_latent"

# %%
from memkit.paper import nb

out = nb.setup(out_dir, threads=1)  # quiet, matplotlib Agg, torch threads, output folder

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from memkit.paper import organism_runs, report
from memkit.paper.report import format_params

NAME = "tab_latent"

# %% [markdown]
# ## Best-of-N similarity under weight noise, per size and σ

# %%
lat = organism_runs.latent_runs(profile, sizes=sizes, k=k, m=m, sigmas=sigmas, n_draws=n_draws, min_level=min_level,
                                seed=seed, batch_size=batch_size, progress=progress)
latent, tested, result = lat.latent, lat.tested, lat.result
latent.groupby(["size", "sigma", latent["meta_level"] > 0], sort=False)[
    ["clean_similarity", "mean_similarity", "best_similarity", "best_exact"]].mean().round(3)

# %% [markdown]
# ## Inserted (not extractable) vs never-seen controls

# %%
result[["size", "sigma", "n_inserted", "n_hidden", "n_controls", "control_clean_max", "control_threshold", "recovered",
        "recovered_exact", "inserted_gain", "control_gain", "mannwhitney_p"]].round(4)

# %% [markdown]
# ## Figure: best-of-N similarity, inserted vs controls

# %%
plt.rcParams.update({"font.size": 8, "axes.titlesize": 8, "legend.fontsize": 6.5})
fig, axes = plt.subplots(1, len(lat.sizes), figsize=(7.0, 2.3), constrained_layout=True, sharey=True, squeeze=False)
for ax, size in zip(axes[0], lat.sizes):
    sub = tested[tested["size"] == size]
    for offset, (is_inserted, color, label) in enumerate(((False, "0.5", "controls"), (True, "C3", "inserted"))):
        group = sub[(sub["meta_level"] > 0) == is_inserted]
        x = np.log10(group["sigma"]) + (offset - 0.5) * 0.08
        ax.scatter(x, group["best_similarity"], s=6, color=color, alpha=0.6, label=label, lw=0)
        means = group.groupby("sigma")["best_similarity"].mean()
        ax.plot(np.log10(means.index), means.values, "-", color=color, lw=1)
    clean = sub.drop_duplicates("id")
    ax.axhline(clean[clean["meta_level"] > 0]["clean_similarity"].mean(), color="C3", ls=":", lw=0.8)
    ax.set(title=format_params(sub["params"].iloc[0]), xlabel="log$_{10}$ σ")
    ax.grid(alpha=0.3, lw=0.5)
axes[0][0].set_ylabel(f"best Levenshtein similarity over {n_draws} draws")
axes[0][0].legend(frameon=False)
report.save_figure(fig, out, "fig_latent")
plt.close(fig)

# %% [markdown]
# ## Table and numbers quoted in the paper

# %%
table, caption = organism_runs.latent_table(result, n_draws=n_draws, min_level=min_level)
table_path = report.write_table(table, out / f"{NAME}.tex", source=NAME, escape=False, column_format="lrrrrrrr",
                                caption=caption, label="tab:latent")
report.fit_float(table_path, font=r"\small", width=r"\linewidth")
numbers = organism_runs.latent_numbers(lat, sigmas=sigmas, n_draws=n_draws, min_level=min_level)
report.write_macros(out / f"numbers_{NAME}.tex", numbers, source=NAME)
pd.Series(numbers, dtype=str).sort_index().to_frame("value")
