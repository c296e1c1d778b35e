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
# # Figures — layer sensitivity, and is memorized text more or less fragile?
#
# (1) Retention (Biderman score against the clean continuation, as in `fig_phase`; per sample the mean over its
# action seeds) when an embedding action of norm α × mean |h_ℓ| is added after block ℓ; white marks: α*(ℓ).
# (2) Fragility profiles under the same actions: state distance |h − h̃|/|h| per layer and
# KL(p_clean ‖ p_perturbed) per step, memorized vs controls. Outputs: `fig_layers.pdf/.png`,
# `fig_fragility.pdf/.png`, `numbers_fig_layers.tex`; paper settings: `params/fig_layers.yml`.

# %% tags=["parameters"]
models = ["smollm2-135m-instruct"]  # model specs
attractors = "data/attractors.jsonl"
ids = ["counting", "days_months", "lorem_ipsum", "genesis_1", "gettysburg_address"]  # None: every record
k = 32
m = 8
clean_m = 8  # suffix length of the clean runs that select the memorized samples (at least m)
threshold = 0.9
max_memorized = 2
max_controls = 2  # shuffled-text controls; matched controls: one per memorized sample
controls = "matched"  # "matched": natural texts matched on confidence; "shuffled": the shuffled-word records
heatmap_kind = "embed_random"  # an embedding kind without a learned direction (embed_random / embed_noise)
n_layers_shown = 2  # layers evenly spaced over 0..n_layers-1 (None: every layer)
alphas = [0, 0.5, 2]  # multiples of the mean hidden-state norm at the layer
model_alphas = {}  # per-model overrides of `alphas`
seeds = [0, 1]  # action seeds of seeded kinds (sweep and profiles; deterministic kinds run one)
# the same actions on memorized and control samples; alpha: a number or {model spec: number}
profile_actions = [{"kind": "embed_random", "alpha": 0.5, "layer_frac": 0.25},
                   {"kind": "substitute_rare", "alpha": 0.25}]
sharp_below = 1.0
batch_size = 64
threads = 1
out_dir = "build/smoke/fig_layers"

# %%
from memkit.paper import nb
from memkit.paper.controls import control_numbers

out = nb.setup(out_dir, threads=threads)  # quiet, matplotlib Agg, torch threads, output folder

import matplotlib.pyplot as plt
import pandas as pd

from memkit.dynamics.transitions import group_tests, transition_table
from memkit.paper import dynamics_figures, dynamics_runs, report

NAME = "fig_layers"
names, keys = nb.model_labels(models), nb.model_keys(models)

# %%
runs = dynamics_runs.layer_runs(models, nb.read_records(attractors, ids=ids), k=k, m=m, clean_m=clean_m,
                                threshold=threshold, max_memorized=max_memorized, max_controls=max_controls,
                                kind=heatmap_kind, n_layers_shown=n_layers_shown, alphas=alphas,
                                model_alphas=model_alphas, seeds=seeds, profile_actions=profile_actions,
                                batch_size=batch_size, controls=controls)
runs.selection.round(3)

# %% [markdown]
# ## Retention per layer × α (mean over seeds, then samples), α*(ℓ) as its grid interval, memorized vs controls

# %%
heat = dynamics_runs.mean_curves(runs.sweeps, by=("spec", "group", "layer"))
layer_fits = transition_table(runs.sweeps, by=("spec", "group", "layer"), n_boot=0, sharp_below=sharp_below)
heat.pivot_table(index=["spec", "group", "layer"], columns="alpha", values="retention", sort=False).round(3)

# %%
dynamics_runs.fit_summary(layer_fits, by=("spec", "group", "layer"))

# %%
fig = dynamics_figures.layer_heatmaps(heat, layer_fits, models, names, kind=heatmap_kind)
report.save_figure(fig, out, NAME)
plt.close(fig)

# %% [markdown]
# ## Fragility profiles: state distance per layer and KL per step, memorized vs controls

# %%
layer_mean, step_mean = dynamics_runs.profile_means(runs)  # over the seeds of each sample, then the samples
profile_summary = dynamics_runs.profile_summary(runs)
profile_summary.drop(columns="number").round(3)

# %%
# memorized vs controls: exact permutation tests, Holm over the rows of each table -- per model, retention over
# layers x nonzero alphas (each sample: mean over them and its seeds); per model x action x observable, profiles
retention_tests = group_tests(runs.sweeps, by=("spec",))
profile_tests = dynamics_runs.profile_tests(runs)
display(retention_tests.round(4), profile_tests.drop(columns="number").round(4))

# %%
fig = dynamics_figures.fragility_figure(layer_mean, step_mean, runs, names, n_actions=len(profile_actions))
report.save_figure(fig, out, "fig_fragility")
plt.close(fig)

# %% [markdown]
# ## Numbers quoted in the paper

# %%
numbers = dynamics_runs.layers_numbers(runs, heat, layer_fits, profile_summary, keys=keys, kind=heatmap_kind, k=k,
                                       m=m, alphas=alphas, model_alphas=model_alphas, tests=profile_tests,
                                       retention_tests=retention_tests, seeds=seeds)
numbers.update(control_numbers(runs.confidence, controls, keys=keys, prefix="Layers"))
report.write_macros(out / f"numbers_{NAME}.tex", numbers, source=NAME)
pd.Series(numbers, dtype=str).sort_index().to_frame("value")
