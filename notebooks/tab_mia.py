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
# # Table — membership inference vs extraction on the organisms
#
# The zoo gives ground truth: a canary inserted at least once is a training member, a level-0 canary
# (never inserted) is not. Every final-step organism of every seed scores every canary of the `all` window
# with five attacks from one teacher-forced pass (`memkit.mia.mia_scores`): loss (Yeom et al. 2018), zlib
# (Carlini et al. 2021), Min-K% (Shi et al. 2024), Min-K%++ (Zhang et al. 2024) and a reference attack
# against the smallest organism of the same seed. Per size and level, that level's members are attacked
# against all controls, per seed and pooled over seeds (mean seed AUC; bootstrap CI over canaries only when
# both groups hold ≥ 20; t interval over seeds; TPR at 1 % FPR with one threshold over the pooled controls),
# next to the greedy exact-extraction rate of the same canaries (mean over seeds). Every attack is tested in
# every cell (permutation test of the canaries' ranks summed over seeds, Holm over all tests); the best
# attack's AUC is also given per canary kind. Code: `memkit.paper.mia_runs`.
#
# Outputs (into `out_dir`): `tab_mia.tex`, `fig_mia.pdf/.png`, `numbers_tab_mia.tex`.
# Defaults are smoke settings; paper settings: `params/tab_mia.yml`.

# %% tags=["parameters"]
profile = "smoke"  # zoo profile, built here if missing
k = 32  # prefix tokens of the extraction (the attacks score all k + m canary tokens)
m = 32  # continuation tokens
min_k = 0.2  # fraction of lowest-probability tokens of Min-K% and Min-K%++
fpr = 0.01  # false-positive rate of the TPR
n_boot = 200  # bootstrap replicates of the CIs
n_resamples = 999  # permutation resamples of the per-cell tests
alpha = 0.05  # family-wise level of the Holm-corrected tests (all cells and attacks)
seed = 0
batch_size = 32
progress = False
out_dir = "build/smoke/tab_mia"

# %%
from memkit.paper import nb

out = nb.setup(out_dir, threads=1)  # quiet, matplotlib Agg, torch threads, output folder

import matplotlib.pyplot as plt
import pandas as pd

from memkit.paper import mia_figures, mia_runs, report

NAME = "tab_mia"

# %% [markdown]
# ## Scores of every canary by every size × seed, and the extraction rates of the same canaries

# %%
mem = mia_runs.membership_runs(profile, k=k, m=m, min_k=min_k, fpr=fpr, n_boot=n_boot, n_resamples=n_resamples,
                               alpha=alpha, seed=seed, batch_size=batch_size, progress=progress)
pooled, tests, sizes, best = mem.pooled, mem.tests, mem.sizes, mem.best
print("best attack:", best)
mem.rates.round(3)

# %% [markdown]
# ## Mean AUC over seeds per size × level × attack, and each seed's AUC of the best attack

# %%
pooled.pivot_table(index=["size", "level"], columns="attack", values="auc", sort=False).round(3)

# %%
mem.per_seed[mem.per_seed["attack"] == best].pivot_table(index=["size", "level"], columns="seed", values="auc",
                                                         sort=False).round(3)

# %% [markdown]
# ## Holm-adjusted p per cell and attack; the best attack per canary kind (kind's members vs kind's controls)

# %%
tests.pivot_table(index=["size", "level"], columns="attack", values="p_holm", sort=False).round(4)

# %%
mem.kinds.pivot_table(index=["size", "level"], columns="kind", values="auc", sort=False).round(3)

# %% [markdown]
# ## Figure: membership (AUC) and extraction vs copies

# %%
fig = mia_figures.membership_figure(mem)
report.save_figure(fig, out, "fig_mia")
plt.close(fig)

# %% [markdown]
# ## Table and numbers quoted in the paper

# %%
table, caption = mia_runs.mia_table(mem)
path = report.write_table(table, out / f"{NAME}.tex", source=NAME, escape=False, column_format="llrr" + "l" * 7 + "r",
                          caption=caption, label="tab:mia")
report.fit_float(path, font=r"\scriptsize", width=r"\linewidth", position="p")
numbers = mia_runs.mia_numbers(mem)
report.write_macros(out / f"numbers_{NAME}.tex", numbers, source=NAME)
pd.Series(numbers, dtype=str).sort_index().to_frame("value")
