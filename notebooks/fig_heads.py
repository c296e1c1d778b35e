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
# # Figure and table — which attention heads does recitation need?
#
# Every attention head is ablated in turn (`memkit.mechanisms.ablation`: its slice of the attention
# output projection's input replaced by its mean over generic text — `mean` — or by zeros — `zero`).
# Per head and sample: the change in teacher-forced log-probability of the true continuation (sum
# over the m tokens, nats) and the greedy continuation's Biderman score against the true text
# (`token_match`) and against the model's own clean continuation (`retention`). Memorized samples vs
# controls as in `fig_lens` (`memkit.paper.sets`). Concentration: the share of the total |Δ log-prob|
# (memorized samples) held by the top-k heads, the Gini coefficient across heads, and the layer
# holding the largest share. Scans, effects, table and numbers are computed by
# `memkit.paper.heads_runs`; the models by `memkit.paper.mechanism_models`.
#
# Outputs (into `out_dir`): `fig_heads.pdf/.png` (layer × head heatmaps), `tab_heads.tex` (top heads),
# `numbers_fig_heads.tex`. The defaults below are smoke settings; paper settings: `params/fig_heads.yml`.

# %% tags=["parameters"]
models = ["smollm2-135m-instruct"]  # pretrained model specs
zoo_profile = None  # organisms: a zoo profile (built if missing) or None
zoo_which = "largest"  # "largest" or "all" sizes of the zoo
labels = {"gemma-3-270m": "Gemma-3-270M", "smollm2-135m-instruct": "SmolLM2-135M-Instruct"}
macro_names = {"gemma-3-270m": "Gemma", "smollm2-135m-instruct": "Smol"}  # letters only
attractors = "data/attractors.jsonl"
ids = ["counting", "days_months", "control_shuffled_genesis_1", "control_shuffled_pi_digits"]  # None: all
k = 32
m = 16
threshold = 0.9
max_memorized = 2
max_controls = 2
modes = ["mean"]  # the first mode is drawn in the heatmaps; each extra mode adds a full scan
extra_modes = {}  # per model: further modes to scan, e.g. {"gemma-3-270m": ["zero"]}
layer_step = {"smollm2-135m-instruct": 15}  # per model: scan every n-th layer (default 1: all layers)
mean_windows = 16  # windows of generic text (128 tokens) for the head means
top_n = 5
greedy = True
batch_size = 16
threads = 1
progress = False
out_dir = "build/smoke/fig_heads"

# %%
from memkit.paper import nb

out = nb.setup(out_dir, threads=threads)  # quiet, matplotlib Agg, torch threads, output folder

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import pandas as pd

from memkit.paper import heads_runs, report
from memkit.paper.mechanism_models import mechanism_models

NAME = "fig_heads"
chosen = mechanism_models(models, zoo_profile=zoo_profile, zoo_which=zoo_which, labels=labels,
                          macro_names=macro_names, progress=progress)
specs = chosen.specs

# %% [markdown]
# ## Scans: every head (of the scanned layers), every mode

# %%
runs = heads_runs.head_scans(specs, nb.read_records(attractors, ids=ids), k=k, m=m, threshold=threshold,
                             max_memorized=max_memorized, max_controls=max_controls, modes=modes,
                             extra_modes=extra_modes, layer_step=layer_step, mean_windows=mean_windows, greedy=greedy,
                             batch_size=batch_size, progress=progress)
heads_runs.scan_overview(runs.scans).round(3)

# %% [markdown]
# ## Mean effect per head and group; concentration of the memorized effect

# %%
effects = heads_runs.head_effect_means(runs.scans)
conc = heads_runs.concentration_table(effects, runs.shapes, top_n=top_n)
conc.round(3)

# %% [markdown]
# ## Top heads (first mode, memorized samples), with the same heads' effect on the controls

# %%
main_mode = modes[0]
top = heads_runs.top_heads_table(effects, specs, mode=main_mode, top_n=top_n, labels=chosen.labels)
top.round(3)

# %%
tab, caption = heads_runs.heads_table(top, mode=main_mode, top_n=top_n)
table_path = report.write_table(tab, out / "tab_heads.tex", source=NAME, escape=False, float_format="%.2f",
                                caption=caption, label="tab:heads", column_format="llrrrr")
print("top-heads table:", table_path.name)

# %% [markdown]
# ## Figure: layer × head heatmaps (first mode), memorized and control samples

# %%
plt.rcParams.update({"font.size": 7, "axes.titlesize": 7})
fig, axes = plt.subplots(2, len(specs), figsize=(min(7.0, 2.0 * len(specs) + 1.0), 4.2), squeeze=False,
                         constrained_layout=True)
for col, spec in enumerate(specs):
    n_layers, n_heads = runs.shapes[spec]
    part = effects[(effects["spec"] == spec) & (effects["mode"] == main_mode)]
    vmax = max(float(part["delta_logprob"].abs().max()), 1e-6)
    for row, group in enumerate(["memorized", "control"]):
        ax = axes[row][col]
        grid = np.full((n_layers, n_heads), np.nan)
        sub = part[part["group"] == group]
        grid[sub["layer"].to_numpy(), sub["head"].to_numpy()] = sub["delta_logprob"].to_numpy()
        image = ax.imshow(grid, origin="lower", aspect="auto", cmap="RdBu", vmin=-vmax, vmax=vmax,
                          interpolation="nearest")
        ax.set_title(f"{chosen.labels[spec]}\n{group}" if row == 0 else group)
        ax.set_xticks(range(n_heads), [str(h) if n_heads <= 10 or h % 2 == 0 else "" for h in range(n_heads)])
        ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        if row == 1:
            ax.set_xlabel("head")
        if col == 0:
            ax.set_ylabel("layer")
    fig.colorbar(image, ax=[axes[0][col], axes[1][col]], shrink=0.6, location="bottom",
                 label=r"$\Delta \log p$(true continuation), nats")
report.save_figure(fig, out, NAME)
plt.close(fig)

# %% [markdown]
# ## Numbers quoted in the paper

# %%
numbers = heads_runs.heads_numbers(runs, effects, conc, top, keys=chosen.keys, labels=chosen.labels, k=k, m=m,
                                   main_mode=main_mode, top_n=top_n)
report.write_macros(out / f"numbers_{NAME}.tex", numbers, source=NAME)
pd.Series(numbers, dtype=str).sort_index().to_frame("value")
