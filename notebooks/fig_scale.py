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
# # Figure 1 — memorization vs model size
#
# Our points are measured: every model spec in `models` runs greedy extraction on the
# attractors in every prompting mode it supports (the same call as `tab_attractors`, so a warm
# cache recomputes nothing). The literature points of `data/literature_scale.csv` are quoted,
# not measured, and drawn as such: grey, with the unverified quotes (no citation in the seed)
# marked separately. Adding a model spec to `models` (e.g. organisms of the zoo) adds points.
#
# Points and numbers come from `memkit.paper.scale_runs` (extractions by `memkit.paper.experiments.run_grid`,
# organisms from `memkit.organisms.zoo`).
#
# Outputs (into `out_dir`): `fig_scale.pdf/.png`, `numbers_fig_scale.tex`.
# The defaults below are smoke settings; the paper settings are in `params/fig_scale.yml`.

# %% tags=["parameters"]
models = ["gemma-3-270m", "smollm2-135m-instruct"]  # model specs (embedded names, folders, .gguf, zoo:...)
labels = {"gemma-3-270m": "Gemma-3-270M", "smollm2-135m-instruct": "SmolLM2-135M-Instruct"}
macro_names = {"gemma-3-270m": "Gemma", "smollm2-135m-instruct": "Smol"}  # letters only
modes = ["raw", "chat"]
zoo_profile = "smoke"  # organisms: a zoo profile whose final checkpoints join the figure (raw prompt), or None
attractors = "data/attractors.jsonl"
ids = ["harry_potter", "lorem_ipsum", "counting", "us_constitution", "genesis_1", "html_doctype",
       "control_shuffled_genesis_1", "control_shuffled_pi_digits"]  # None = every record
k = 16
m = 16
short = {"harry_potter": [12, 16]}
biderman_m = 32
literature = "data/literature.csv"  # per-attractor seed scores: defines the seed's seven attractors
literature_scale = "data/literature_scale.csv"
literature_metric = "max over 7 attractors"  # rows of literature_scale.csv whose metric starts with this
batch_size = 16
out_dir = "build/smoke/fig_scale"

# %%
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from memkit.core.metrics import SEED_SCORE_THRESHOLD
from memkit.paper import nb, report
from memkit.paper.experiments import RULES
from memkit.paper.scale_runs import (POINT_COLUMNS, QUOTED_MEASURED, QUOTED_UNCITED, literature_points,
                                     measured_points, organism_points, scale_numbers, seed_ids, stack_index)

out = nb.setup(out_dir, threads=None)
NAME = "fig_scale"

# %% [markdown]
# ## Measured points: every model × mode (extractions come from the cache when warm)
# Organisms (trained on the KJV Bible only) run the same attractors with the raw prompt (no chat template).

# %%
records = nb.read_records(attractors, ids=ids)
grid = dict(k=k, m=m, short=short, batch_size=batch_size, biderman_m=biderman_m, seed_ids=seed_ids(literature))
ours = measured_points(models, records, modes=modes, labels=labels, **grid)
organisms = organism_points(zoo_profile, records, columns=ours.columns, **grid)
pd.concat([ours, organisms])[POINT_COLUMNS].round(3)

# %% [markdown]
# ## Quoted points (from the seed documents, not measured here)

# %%
lit = literature_points(literature_scale, literature_metric)
lit[["model", "params", "value", "kind"]]

# %% [markdown]
# ## Figure

# %%
RULE_STYLE = {"mem_exact": ("exact match (E)", "o"), "mem_biderman": ("Biderman score = 1 (B)", "s"),
              "mem_near_verbatim": ("near-verbatim (N)", "^"), "mem_seed": ("seed score $\\geq$ 0.7 (S)", "D")}
MODE_FILL = {"raw": True, "chat": False}

params_label = matplotlib.ticker.FuncFormatter(
    lambda x, _pos: f"{x / 1e9:.3g}B" if x >= 1e9 else f"{x / 1e6:.3g}M" if x >= 1e6 else f"{x / 1e3:.3g}k")


plt.rcParams.update({"font.size": 8, "axes.titlesize": 8, "legend.fontsize": 6.5})
fig, (ax_a, ax_b) = plt.subplots(1, 2, figsize=(7.0, 3.3), constrained_layout=True)

# (a) the original study's metric: best seed score over its seven attractors
points = ours.dropna(subset=["max_seed_score_seed_ids"]).sort_values("n_params", kind="stable")
for mode, group in points.groupby("mode", sort=False):
    filled = MODE_FILL.get(mode, True)
    ax_a.scatter(group["n_params"], group["max_seed_score_seed_ids"], s=36, marker="o", color="C0",
                 facecolors="C0" if filled else "white", linewidths=1.2, zorder=3,
                 label=f"measured here, {mode} prompt")
for row, n in zip(points.itertuples(), stack_index(points["n_params"], points["max_seed_score_seed_ids"])):
    y = row.max_seed_score_seed_ids
    ax_a.annotate(f"{row.label} ({row.mode})", (row.n_params, y), xytext=(6, -10 - 8 * n if y > 0.5 else 4 + 8 * n),
                  textcoords="offset points", fontsize=6, color="C0")
if len(organisms):
    ax_a.scatter(organisms["n_params"], organisms["max_seed_score_seed_ids"], s=30, marker="^", color="C2",
                 zorder=3, label="organisms (KJV-trained), raw prompt")
for kind, marker in ((QUOTED_MEASURED, "s"), (QUOTED_UNCITED, "X")):
    group = lit[lit["kind"] == kind].sort_values("value", kind="stable")
    ax_a.scatter(group["params"], group["value"], s=32, marker=marker, color="0.55", zorder=2, label=kind)
    for row, n in zip(group.itertuples(), stack_index(group["params"], group["value"])):
        high = row.value > 0.5  # labels above-left near the top, to the right lower down
        ax_a.annotate(row.model, (row.params, row.value), xytext=(-4 if high else 6, (5 if high else 2) + 10 * n),
                      textcoords="offset points", fontsize=6, color="0.4", ha="right" if high else "left")
ax_a.axhline(SEED_SCORE_THRESHOLD, color="0.3", lw=0.8, ls="--")
ax_a.text(0.02, SEED_SCORE_THRESHOLD + 0.02, "seed threshold 0.7", transform=ax_a.get_yaxis_transform(),
          fontsize=6, color="0.3")
ax_a.set(xscale="log", ylim=(-0.04, 1.15), xlabel="parameters (log scale)", ylabel="best seed score",
         title="(a) Original study's metric: best of its 7 attractors")
ax_a.legend(loc="center right", frameon=False)

# (b) standard rules: share of the attractors memorized, measured models only (markers dodged per rule)
dodge = dict(zip(RULE_STYLE, (0.92, 0.97, 1.03, 1.08)))
for rule, (rule_label, marker) in RULE_STYLE.items():
    color = f"C{list(RULE_STYLE).index(rule)}"
    for mode, group in ours.sort_values("n_params", kind="stable").groupby("mode", sort=False):
        filled = MODE_FILL.get(mode, True)
        ax_b.plot(group["n_params"] * dodge[rule], group[f"{rule}_rate"], marker=marker, ms=5, lw=0.8,
                  ls="-" if filled else ":", color=color, mfc=color if filled else "white",
                  label=f"{rule_label}, {mode}")
    if len(organisms):  # organisms: their own dashed line per rule, not joined to the pretrained models
        group = organisms.sort_values("n_params", kind="stable")
        ax_b.plot(group["n_params"] * dodge[rule], group[f"{rule}_rate"], marker=marker, ms=4, lw=0.8, ls="--",
                  color=color, alpha=0.7)
n_attr = int(ours["n"].max())
top = float(ours[[f"{r}_rate" for r in RULES]].max().max())
ax_b.set(xscale="log", ylim=(-0.01, max(0.1, top * 1.2)), xlabel="parameters (log scale)",
         ylabel=f"share of the {n_attr} attractors memorized", title="(b) Share memorized per rule, measured here")
handles = [matplotlib.lines.Line2D([], [], color=f"C{i}", marker=marker, ls="none", ms=5, label=rule_label)
           for i, (rule_label, marker) in enumerate(RULE_STYLE.values())]
handles += [matplotlib.lines.Line2D([], [], color="0.4", marker="o", ls="-" if filled else ":", ms=5,
                                    mfc="0.4" if filled else "white", label=f"{mode} prompt")
            for mode, filled in MODE_FILL.items() if mode in set(ours["mode"])]
if len(organisms):
    handles.append(matplotlib.lines.Line2D([], [], color="0.4", marker="o", ls="--", ms=4, label="organisms, raw"))
ax_b.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
for ax in (ax_a, ax_b):
    ax.grid(alpha=0.3, lw=0.5)
    ax.xaxis.set_major_formatter(params_label)
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
measured = pd.concat([ours, organisms])
lo = min(measured["n_params"].min(), lit["params"].min() if len(lit) else np.inf)
hi = max(measured["n_params"].max(), lit["params"].max() if len(lit) else 0)
ax_a.set_xlim(lo / 2, hi * 3)
ax_b.set_xlim(measured["n_params"].min() / 1.6, measured["n_params"].max() * 1.6)
if ax_b.get_xlim()[1] / ax_b.get_xlim()[0] < 10:  # less than a decade: label the measured sizes
    ax_b.set_xticks(sorted(measured["n_params"].unique()))
report.save_figure(fig, out, NAME)
plt.close(fig)

# %% [markdown]
# ## Numbers quoted in the paper

# %%
numbers = scale_numbers(ours, organisms, lit, n_models=len(models), macro_names=macro_names)
report.write_macros(out / f"numbers_{NAME}.tex", numbers, source=NAME)
pd.Series(numbers, dtype=str).sort_index().to_frame("value")
