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
# (1) Layer × α heatmap: retention (Biderman score of the perturbed continuation against the
# clean one, as in `fig_phase`) when an embedding action (default: a random direction of norm
# α × mean |h_ℓ|) is added to the residual stream after block ℓ, for the attractors each model
# recites and for the non-memorized controls; white marks: the fitted critical α*(ℓ).
# (2) Fragility profiles under the *same* actions: the relative state distance |h − h̃|/|h| per
# layer (averaged over the continuation positions) and KL(p_clean ‖ p_perturbed) per continuation
# step, memorized vs controls side by side (`memkit.perturb.observe`).
#
# Outputs (into `out_dir`): `fig_layers.pdf/.png`, `fig_fragility.pdf/.png`, `numbers_fig_layers.tex`.
# The defaults below are smoke settings; the paper settings are in `params/fig_layers.yml`.

# %% tags=["parameters"]
models = ["smollm2-135m-instruct"]  # model specs
labels = {"gemma-3-270m": "Gemma-3-270M", "smollm2-135m-instruct": "SmolLM2-135M-Instruct"}
macro_names = {"gemma-3-270m": "Gemma", "smollm2-135m-instruct": "Smol"}  # letters only
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
seeds = [0]
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
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from memkit.dynamics.transitions import transition_table
from memkit.paper import dynamics_runs, report
from memkit.paper.dynamics_runs import action_label
from memkit.paper.report import format_alpha

NAME = "fig_layers"
GROUPS = ["memorized", "control"]
names, keys = nb.model_labels(models, labels), nb.model_keys(models, macro_names)

# %% [markdown]
# ## Runs: layer × α sweep and the fragility profiles, per model

# %%
runs = dynamics_runs.layer_runs(models, nb.read_records(attractors, ids=ids), k=k, m=m, clean_m=clean_m,
                                threshold=threshold, max_memorized=max_memorized, max_controls=max_controls,
                                kind=heatmap_kind, n_layers_shown=n_layers_shown, alphas=alphas,
                                model_alphas=model_alphas, seeds=seeds, profile_actions=profile_actions,
                                batch_size=batch_size, controls=controls)
runs.selection.round(3)

# %% [markdown]
# ## Retention per layer × α (mean over samples) and the fitted α*(ℓ)

# %%
heat = runs.sweeps.groupby(["spec", "group", "layer", "alpha"], sort=False)["retention"].mean().reset_index()
layer_fits = transition_table(runs.sweeps, by=("spec", "group", "layer"), n_boot=0, sharp_below=sharp_below)
heat.pivot_table(index=["spec", "group", "layer"], columns="alpha", values="retention").reindex(
    index=pd.MultiIndex.from_frame(heat[["spec", "group", "layer"]].drop_duplicates())).round(3)

# %%
layer_fits[["spec", "group", "layer", "n_samples", "alpha_star", "verdict", "note"]].round(3)

# %% [markdown]
# ## Figure: layer sensitivity heatmaps

# %%
plt.rcParams.update({"font.size": 7, "axes.titlesize": 7, "legend.fontsize": 6})
present = [(s, g) for s in models for g in GROUPS if ((heat["spec"] == s) & (heat["group"] == g)).any()]
ncols = max(1, len(present))
fig, axes = plt.subplots(1, ncols, figsize=(min(7.0, 1.9 * ncols + 0.6), 2.6), squeeze=False, constrained_layout=True)
image = None
for ax, (spec, group) in zip(axes[0], present):
    part = heat[(heat["spec"] == spec) & (heat["group"] == group)]
    grid = sorted(part["alpha"].unique())
    nonzero = [a for a in grid if a > 0]
    matrix = part.pivot(index="layer", columns="alpha", values="retention").reindex(columns=grid)
    image = ax.imshow(matrix.to_numpy(), origin="lower", aspect="auto", cmap="viridis", vmin=0, vmax=1,
                      extent=(-0.5, len(grid) - 0.5, -0.5, len(matrix) - 0.5))
    fits_here = layer_fits[(layer_fits["spec"] == spec) & (layer_fits["group"] == group)].set_index("layer")
    ys = [i for i, layer in enumerate(matrix.index) if np.isfinite(fits_here.loc[layer, "alpha_star"])]
    # alpha* on the (0, geometric grid) column axis
    xs = [float(np.interp(np.log(fits_here.loc[matrix.index[i], "alpha_star"]), np.log(nonzero),
                          np.arange(1, len(nonzero) + 1))) for i in ys]
    ax.plot(xs, ys, ls="none", marker="o", ms=3, mfc="white", mec="black", mew=0.5)
    ax.set_xticks(range(len(grid)), [format_alpha(a) if a > 0 else "0" for a in grid], rotation=90)
    step = max(1, len(matrix.index) // 8)
    ax.set_yticks(range(0, len(matrix.index), step), [str(v) for v in matrix.index[::step]])
    ax.set_xlabel("$\\alpha$ (× mean $|h_\\ell|$)")
    ax.set_title(f"{names[spec]}\n{group}")
    if ax is axes[0][0]:
        ax.set_ylabel(f"layer $\\ell$ ({heatmap_kind} after block $\\ell$)")
if image is not None:
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.9, label="retention (Biderman)")
report.save_figure(fig, out, NAME)
plt.close(fig)

# %% [markdown]
# ## Fragility profiles: state distance per layer and KL per step, memorized vs controls

# %%
layer_mean = (runs.layer_profiles.groupby(["spec", "action", "group", "layer"], sort=False)["rel_distance"].mean()
              .reset_index())
step_mean = runs.step_profiles.groupby(["spec", "action", "group", "step"], sort=False)["kl"].mean().reset_index()
profile_summary = dynamics_runs.profile_summary(runs)
profile_summary.drop(columns="number").round(3)

# %%
# memorized vs controls per model x action x observable: exact permutation tests, Holm over all rows
profile_tests = dynamics_runs.profile_tests(runs)
profile_tests.drop(columns="number").round(4)

# %%
fig, axes = plt.subplots(len(models), 2, figsize=(7.0, 2.0 * len(models) + 0.4), squeeze=False,
                         constrained_layout=True)
STYLE = {"memorized": "-", "control": "--"}
for row, spec in enumerate(models):
    ax_l, ax_s = axes[row]
    for number in range(len(profile_actions)):
        for group, ls in STYLE.items():
            at = dict(spec=spec, action=number, group=group)
            lp = layer_mean[(layer_mean[list(at)] == pd.Series(at)).all(axis=1)]
            sp = step_mean[(step_mean[list(at)] == pd.Series(at)).all(axis=1)]
            if lp.empty:
                continue
            ax_l.plot(lp["layer"], lp["rel_distance"], color=f"C{number}", ls=ls, lw=1.0, marker=".", ms=3)
            ax_s.plot(sp["step"], sp["kl"].clip(lower=1e-6), color=f"C{number}", ls=ls, lw=1.0, marker=".", ms=3)
    ax_l.legend(handles=[Line2D([], [], color=f"C{i}", lw=1.0, label=action_label(runs.actions[(spec, i)]))
                         for i in range(len(profile_actions))], loc="upper left", frameon=False)
    ax_l.set_ylabel(f"{names[spec]}\n$|h-\\tilde h|/|h|$ (continuation)")
    ax_s.set_ylabel("KL($p_{clean}\\,\\|\\,p_{perturbed}$)")
    ax_s.set_yscale("log")
    for ax in (ax_l, ax_s):
        ax.grid(alpha=0.3, lw=0.4)
    if row == len(models) - 1:
        ax_l.set_xlabel("layer")
        ax_s.set_xlabel("continuation step")
handles = [Line2D([], [], color="0.3", ls=ls, lw=1.0, label=group) for group, ls in STYLE.items()]
fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False)
report.save_figure(fig, out, "fig_fragility")
plt.close(fig)

# %% [markdown]
# ## Numbers quoted in the paper

# %%
numbers = dynamics_runs.layers_numbers(runs, heat, layer_fits, profile_summary, keys=keys, kind=heatmap_kind, k=k,
                                       m=m, alphas=alphas, model_alphas=model_alphas, tests=profile_tests)
numbers.update(control_numbers(runs.confidence, controls, keys=keys, prefix="Layers"))
report.write_macros(out / f"numbers_{NAME}.tex", numbers, source=NAME)
pd.Series(numbers, dtype=str).sort_index().to_frame("value")
