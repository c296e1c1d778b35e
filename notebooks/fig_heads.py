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
# output projection's input replaced by its mean over generic text, `mean`, or by zeros, `zero`). Per
# head and sample (memorized vs controls, as in `fig_lens`): the change in teacher-forced log-probability
# of the true continuation (nats, summed over m tokens), the greedy Biderman score against the true text
# (`token_match`) and against the clean continuation (`retention`). Concentration: the top-k heads'
# share of the total |Δ log-prob| of the memorized samples, the Gini coefficient across heads, the top
# layer. Computed by `memkit.paper.heads_runs`; models: `memkit.paper.mechanism_models`. Outputs (into
# `out_dir`): `fig_heads.pdf/.png` (layer × head heatmaps), `tab_heads.tex` (top heads),
# `numbers_fig_heads.tex`. Defaults are smoke settings; paper settings: `params/fig_heads.yml`.

# %% tags=["parameters"]
models = ["smollm2-135m-instruct"]  # pretrained model specs
zoo_profile = None  # organisms: a zoo profile (built if missing) or None
zoo_which = "largest"  # "largest" or "all" sizes of the zoo
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
import pandas as pd

from memkit.paper import heads_runs, report
from memkit.paper.mechanism_models import mechanism_models

NAME = "fig_heads"
chosen = mechanism_models(models, zoo_profile=zoo_profile, zoo_which=zoo_which, progress=progress)

# %% [markdown]
# ## Scans: every head (of the scanned layers), every mode

# %%
runs = heads_runs.head_scans(chosen.specs, nb.read_records(attractors, ids=ids), k=k, m=m, threshold=threshold,
                             max_memorized=max_memorized, max_controls=max_controls, modes=modes,
                             extra_modes=extra_modes, layer_step=layer_step, mean_windows=mean_windows, greedy=greedy,
                             batch_size=batch_size, progress=progress)
heads_runs.scan_overview(runs.scans).round(3)

# %% [markdown]
# ## Mean effect per head; concentration of the memorized effect; top heads of the first mode (the table)

# %%
res = heads_runs.head_summary(runs, mode=modes[0], top_n=top_n, labels=chosen.labels)
report.write_table(res.table, out / "tab_heads.tex", source=NAME, escape=False, float_format="%.2f",
                   caption=res.caption, label="tab:heads", column_format="llrrrr")
res.concentration.round(3)

# %%
res.top.round(3)

# %% [markdown]
# ## Figure: layer × head heatmaps (first mode), memorized and control samples

# %%
plt.rcParams.update({"font.size": 7, "axes.titlesize": 7})
fig, axes = plt.subplots(2, len(runs.specs), figsize=(min(7.0, 2.0 * len(runs.specs) + 1.0), 4.2), squeeze=False,
                         constrained_layout=True)
for col, spec in enumerate(runs.specs):
    grids, vmax = heads_runs.effect_grids(res.effects, spec, runs.shapes[spec], mode=res.mode)
    for ax, (group, grid) in zip(axes[:, col], grids.items()):  # rows: memorized, control
        image = ax.imshow(grid, origin="lower", aspect="auto", cmap="RdBu", vmin=-vmax, vmax=vmax,
                          interpolation="nearest")
        ax.set_title(f"{chosen.labels[spec]}\n{group}" if ax is axes[0, col] else group)
        ax.set_xticks(*heads_runs.head_ticks(grid.shape[1]))
        ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    fig.colorbar(image, ax=[axes[0][col], axes[1][col]], shrink=0.6, location="bottom",
                 label=r"$\Delta \log p$(true continuation), nats")
plt.setp(axes[1], xlabel="head")
plt.setp(axes[:, 0], ylabel="layer")
report.save_figure(fig, out, NAME)
plt.close(fig)

# %% [markdown]
# ## Numbers quoted in the paper

# %%
numbers = heads_runs.heads_numbers(runs, res.effects, res.concentration, res.top, keys=chosen.keys,
                                   labels=chosen.labels, k=k, m=m, main_mode=res.mode, top_n=top_n)
report.write_macros(out / f"numbers_{NAME}.tex", numbers, source=NAME)
pd.Series(numbers, dtype=str).sort_index().to_frame("value")
