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
# # Figure — phase transitions of retention under controlled actions
#
# How much of its clean greedy continuation (Biderman score) does a model keep as the magnitude α of a token,
# embedding or logit action grows, on the attractors it recites and on confidence-matched controls? Seeded kinds
# run every action seed per α, deterministic ones one; a sample's curve is the mean over its seeds. α* (fitted
# logistic with a floor crosses 0.5) is reported as the grid interval it lies in, with n and the per-sample range
# (a hierarchical bootstrap CI over samples and seeds only from 20 samples). Definitions: `memkit.dynamics`.
# Outputs: `fig_phase.pdf/.png`, `tab_ranking.tex`, `numbers_fig_phase.tex`; paper settings: `params/fig_phase.yml`.

# %% tags=["parameters"]
models = ["smollm2-135m-instruct"]  # model specs (embedded names, folders, .gguf, zoo:...)
attractors = "data/attractors.jsonl"
ids = ["counting", "days_months", "lorem_ipsum", "genesis_1", "gettysburg_address"]  # None: every record
k = 32  # prefix tokens
m = 8  # continuation tokens compared
clean_m = 8  # suffix length of the clean runs that select the memorized samples (at least m; 64 reuses Table 1's)
threshold = 0.9  # memorized: clean Biderman score against the true text at least threshold (or exact match)
max_memorized = 2  # per model (None: all)
max_controls = 2  # shuffled-text controls (None: all); matched controls: one per memorized sample
controls = "matched"  # "matched": natural texts matched on confidence; "shuffled": the shuffled-word records
kinds = None  # None: every token, embedding and logit kind
alphas = {"token": [0.125, 0.5], "embedding": [0.5, 2], "logit": [4, 16]}  # α grid per family or per kind
model_alphas = {}  # per-model overrides of `alphas`, e.g. {"gemma-3-270m": {"embedding": [0.01, 0.1]}}
embed_layer_frac = 0.25  # embedding actions act after block round(frac * (n_layers - 1))
seeds = [0, 1]  # action seeds of the seeded kinds (random positions / tokens / directions)
n_boot = 50  # hierarchical bootstrap replicates for the CI of α* (used from 20 samples on)
boot_seed = 0
sharp_below = 1.0  # sharp transition: 90 %→10 % width < sharp_below * α*
batch_size = 64
threads = 1  # torch intra-op threads: 1 is fastest for these small decode batches on a shared CPU
out_dir = "build/smoke/fig_phase"

# %%
from memkit.paper import nb

out = nb.setup(out_dir, threads=threads)  # quiet, matplotlib Agg, torch threads, output folder

import matplotlib.pyplot as plt
import pandas as pd

from memkit.dynamics.transitions import group_tests, more_robust, rank_robustness
from memkit.paper import dynamics_figures, dynamics_runs, report
from memkit.paper.controls import balance_table, control_numbers

NAME = "fig_phase"
names, keys = nb.model_labels(models), nb.model_keys(models)

# %% [markdown]
# ## Samples (the attractors each model recites, and the controls), seeds, confidence balance

# %%
phase = dynamics_runs.phase_sweeps(models, nb.read_records(attractors, ids=ids), k=k, m=m, clean_m=clean_m,
                                   threshold=threshold, max_memorized=max_memorized, max_controls=max_controls,
                                   kinds=kinds, alphas=alphas, model_alphas=model_alphas,
                                   embed_layer_frac=embed_layer_frac, seeds=seeds, batch_size=batch_size,
                                   controls=controls)
print("\n".join([phase.seed_note()] + [f"{spec} {kind}: {note}" for (spec, kind), note in phase.notes.items()]))
phase.selection.round(3)

# %%
phase.confidence if phase.confidence is None else balance_table(phase.confidence).round(3)

# %% [markdown]
# ## Mean retention per model × kind × group × α (n samples, each the mean over its seeds)

# %%
curves = dynamics_runs.mean_curves(phase.runs)
curves.pivot_table(index=["spec", "kind", "group"], columns="alpha", values="retention", sort=False).sort_index(
    axis=1).round(3)

# %% [markdown]
# ## Fits: α* (grid interval), grid points inside the drop, spread, sharp or gradual

# %%
fits = dynamics_runs.phase_fits(phase.runs, n_boot=n_boot, seed=boot_seed, sharp_below=sharp_below)
ranking, wins = rank_robustness(fits), more_robust(fits)
dynamics_runs.fit_summary(fits)

# %% [markdown]
# ## Memorized vs controls: exact permutation tests of the mean retention over the grid, Holm over all rows
# `min_p` is the smallest p the group sizes allow: above 0.05 no difference can show.

# %%
tests = group_tests(phase.runs, seed=boot_seed)
tests.round(4)

# %% [markdown]
# ## Figure, table and the numbers quoted in the paper

# %%
fig = dynamics_figures.phase_figure(curves, phase, names)  # one row per model, one column per family
report.save_figure(fig, out, NAME)
plt.close(fig)
dynamics_runs.write_ranking_table(out / "tab_ranking.tex", phase, fits, ranking, tests, labels=names, k=k, m=m,
                                  source=NAME)
settings = dict(k=k, m=m, threshold=threshold, n_boot=n_boot, sharp_below=sharp_below, seeds=seeds,
                embed_layer_frac=embed_layer_frac, max_memorized=max_memorized, max_controls=max_controls)
numbers = dynamics_runs.phase_numbers(phase, fits, ranking, wins, keys=keys, labels=names, settings=settings,
                                      tests=tests)
numbers.update(control_numbers(phase.confidence, controls, keys=keys, prefix="Phase"))
report.write_macros(out / f"numbers_{NAME}.tex", numbers, source=NAME)
pd.Series(numbers, dtype=str).sort_index().to_frame("value")
