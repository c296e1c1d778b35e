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
# # Table — latent memorization against a permutation null of pseudo-canaries
#
# Duan et al. (2025) perturbed Pythia-1B with gaussian weight noise (σ = 2·10⁻³, N = 200 draws) and found
# sequences that greedy decoding misses but some perturbed model reproduces ("latent memories"). A best-of-N
# statistic rises under pure noise, so here it is calibrated by never-inserted controls. Every canary of the
# `all` window is scored at the final checkpoint of every chosen size and seed under N draws per noise family
# (absolute σ; σ times each tensor's std) by one teacher-forced pass per draw (greedy match length = leading
# argmax hits; `memkit.organisms.latent.latent_draws`). The statistic, fixed in advance: the gain in greedy
# match length (best over the draws minus clean). Canaries and controls go through the same selection (not
# exactly extractable without noise); each canary is matched to a control of its kind with the nearest clean
# teacher-forced accuracy; a permutation test per size × family × level asks whether canaries gain more than
# these pseudo-canaries; Holm over all tests (`memkit.organisms.latent_null`, `memkit.paper.latent_runs`).
#
# Outputs (into `out_dir`): `tab_latent.tex`, `fig_latent.pdf/.png`, `numbers_tab_latent.tex`.
# Defaults are smoke settings; paper settings: `params/tab_latent.yml`.

# %% tags=["parameters"]
profile = "smoke"  # zoo profile, built here if missing
sizes = None  # None: every size of the profile
seeds = None  # None: every seed of the profile
k = 32
m = 32
sigmas = {"absolute": 0.01, "relative": 0.1}  # noise family -> sigma
n_draws = 4  # noise draws per family (Duan: 200)
n_resamples = 999  # permutation test
caliper = 0.05  # second analysis: pairs whose clean accuracies differ by at most this
noise_seed = 0
batch_size = 256
progress = False
out_dir = "build/smoke/tab_latent"

# %%
from memkit.paper import nb

out = nb.setup(out_dir, threads=1)  # quiet, matplotlib Agg, torch threads, output folder

import matplotlib.pyplot as plt
import pandas as pd

from memkit.organisms.latent_null import eligible
from memkit.paper import latent_figures, latent_runs, report

NAME = "tab_latent"

# %% [markdown]
# ## Every model: samples not extractable without noise, their clean match length, gain and recovery

# %%
lat = latent_runs.latent_runs(profile, sizes=sizes, seeds=seeds, k=k, m=m, sigmas=sigmas, n_draws=n_draws,
                              n_resamples=n_resamples, caliper=caliper, noise_seed=noise_seed,
                              batch_size=batch_size, progress=progress)
kept = eligible(lat.draws)
kept.groupby(["family", "size", "seed", "meta_level"]).agg(
    n=("id", "size"), clean=("clean_prefix", "mean"), accuracy=("clean_accuracy", "mean"), gain=("gain", "mean"),
    recovered=("recovered", "mean")).round(3).unstack("meta_level")

# %% [markdown]
# ## Canaries vs matched pseudo-canaries (all pairs; pairs within the caliper): permutation tests, Holm over all

# %%
lat.tests.round(4)

# %% [markdown]
# ## Figure: gain per level (dots: seeds; solid: canaries, dashed: matched controls), the null's distribution

# %%
fig = latent_figures.latent_figure(lat, sigmas=sigmas, n_draws=n_draws)
report.save_figure(fig, out, "fig_latent")
plt.close(fig)

# %% [markdown]
# ## Table and numbers quoted in the paper

# %%
table, caption = latent_runs.latent_table(lat, n_draws=n_draws, sigmas=sigmas, caliper=caliper)
table_path = report.write_table(table, out / f"{NAME}.tex", source=NAME, escape=False, column_format="lllrrrrrrr",
                                caption=caption, label="tab:latent")
report.fit_float(table_path, font=r"\small", width=r"\linewidth")
numbers = latent_runs.latent_numbers(lat, n_draws=n_draws, sigmas=sigmas, caliper=caliper)
report.write_macros(out / f"numbers_{NAME}.tex", numbers, source=NAME)
pd.Series(numbers, dtype=str).sort_index().to_frame("value")
