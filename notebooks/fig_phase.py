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
# For every action kind (token, embedding and logit level; `force_token` shocks are in
# `tab_shock`), how much of its clean greedy continuation does a model keep as the magnitude α
# grows — on the attractors it recites and on non-memorized controls (natural texts matched on confidence)?
# Retention is the Biderman score (fraction of the m positions equal) and the exact match of the
# perturbed continuation, both against the model's own clean continuation (= the true text for a
# memorized sample). A logistic with a floor is fitted to each mean curve: α* is where it crosses
# 0.5, with a bootstrap CI over samples; the drop is *sharp* when its 90 %→10 % width is smaller
# than α* (definitions in `memkit.dynamics`).
#
# Outputs (into `out_dir`): `fig_phase.pdf/.png`, `tab_ranking.tex` (robustness ranking per model
# and action family), `numbers_fig_phase.tex`.
# The defaults below are smoke settings; the paper settings are in `params/fig_phase.yml`.

# %% tags=["parameters"]
models = ["smollm2-135m-instruct"]  # model specs (embedded names, folders, .gguf, zoo:...)
labels = {"gemma-3-270m": "Gemma-3-270M", "smollm2-135m-instruct": "SmolLM2-135M-Instruct"}
macro_names = {"gemma-3-270m": "Gemma", "smollm2-135m-instruct": "Smol"}  # letters only
attractors = "data/attractors.jsonl"
ids = ["counting", "days_months", "lorem_ipsum", "genesis_1", "gettysburg_address"]  # None: every record
k = 32  # prefix tokens
m = 8  # continuation tokens compared
clean_m = 8  # suffix length of the clean runs that select the memorized samples (at least m; 64 reuses Table 1's runs)
threshold = 0.9  # memorized: clean Biderman score against the true text at least threshold (or exact match)
max_memorized = 2  # per model (None: all)
max_controls = 2  # shuffled-text controls (None: all); matched controls: one per memorized sample
controls = "matched"  # "matched": natural texts matched on confidence; "shuffled": the shuffled-word records
kinds = None  # None: every token, embedding and logit kind
alphas = {"token": [0, 0.125, 0.5], "embedding": [0, 0.5, 2], "logit": [0, 4, 16]}  # α grid per family
model_alphas = {}  # per-model overrides of `alphas`, e.g. {"gemma-3-270m": {"embedding": [0, 0.01, 0.1]}}
embed_layer_frac = 0.25  # embedding actions act after block round(frac * (n_layers - 1))
seeds = [0]  # action seeds (kinds with random positions / tokens / directions)
n_boot = 50  # bootstrap replicates over samples for the CI of α*
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
names, keys = nb.model_labels(models, labels), nb.model_keys(models, macro_names)

# %% [markdown]
# ## Samples: the attractors each model recites, and the controls

# %%
phase = dynamics_runs.phase_sweeps(models, nb.read_records(attractors, ids=ids), k=k, m=m, clean_m=clean_m,
                                   threshold=threshold, max_memorized=max_memorized, max_controls=max_controls,
                                   kinds=kinds, alphas=alphas, model_alphas=model_alphas,
                                   embed_layer_frac=embed_layer_frac, seeds=seeds, batch_size=batch_size,
                                   controls=controls)
for (spec, kind), note in phase.notes.items():
    print(f"{spec} {kind}: {note}")
phase.selection.round(3)

# %%
phase.confidence if phase.confidence is None else balance_table(phase.confidence).round(3)  # confidence balance

# %% [markdown]
# ## Mean retention per model × kind × group × α

# %%
curves = (phase.runs.groupby(["spec", "kind", "group", "alpha"], sort=False)[["retention", "exact_retention"]]
          .mean().reset_index())
curves.pivot_table(index=["spec", "kind", "group"], columns="alpha", values="retention", sort=False).sort_index(
    axis=1).round(3)

# %% [markdown]
# ## Sigmoid fits: critical α* (bootstrap CI over samples), sharp or gradual

# %%
fits, exact_fits = dynamics_runs.phase_fits(phase.runs, n_boot=n_boot, seed=boot_seed, sharp_below=sharp_below)
fits[["model", "kind", "group", "n_samples", "alpha_star", "ci_low", "ci_high", "floor", "rel_width", "verdict",
      "note"]].round(3)

# %%
ranking = rank_robustness(fits)
wins = more_robust(fits)
ranking[["model", "family", "kind", "rank", "alpha_star", "ctrl_alpha_star", "mem_over_ctrl", "verdict"]].round(3)

# %% [markdown]
# ## Memorized vs controls: permutation tests, Holm-corrected over every model × kind
#
# Per sample, the mean retention over the nonzero α of the grid; two-sided exact permutation test of the
# difference of means. `min_p` is the smallest p the group sizes allow: above 0.05 no difference can show.

# %%
tests = group_tests(phase.runs, seed=boot_seed)
tests.round(4)

# %% [markdown]
# ## Figure

# %%
fig = dynamics_figures.phase_figure(curves, phase, names)  # one row per model, one column per family
report.save_figure(fig, out, NAME)
plt.close(fig)

# %% [markdown]
# ## Table: robustness ranking per model and action family

# %%
table, caption = dynamics_runs.ranking_table(phase, fits, exact_fits, ranking, labels=names, k=k, m=m, n_boot=n_boot)
with pd.option_context("styler.latex.multicol_align", "c"):
    path = report.write_table(table, out / "tab_ranking.tex", source=NAME, caption=caption, label="tab:ranking",
                              column_format="ll" + "rrlrlr" * len(models), escape=False)
report.fit_float(path, font=r"\scriptsize", width=r"\linewidth")
print("ranking table:", table.shape[0], "rows x", table.shape[1], "columns")

# %% [markdown]
# ## Numbers quoted in the paper

# %%
settings = dict(k=k, m=m, threshold=threshold, n_boot=n_boot, sharp_below=sharp_below, seeds=seeds,
                embed_layer_frac=embed_layer_frac, max_memorized=max_memorized, max_controls=max_controls)
numbers = dynamics_runs.phase_numbers(phase, fits, exact_fits, ranking, wins, keys=keys, labels=names,
                                      settings=settings, tests=tests)
numbers.update(control_numbers(phase.confidence, controls, keys=keys, prefix="Phase"))
report.write_macros(out / f"numbers_{NAME}.tex", numbers, source=NAME)
pd.Series(numbers, dtype=str).sort_index().to_frame("value")
