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
# organisms from `memkit.organisms.zoo`), the figure from `memkit.paper.scale_figures`.
#
# Outputs (into `out_dir`): `fig_scale.pdf/.png`, `numbers_fig_scale.tex`.
# The defaults below are smoke settings; the paper settings are in `params/fig_scale.yml`.

# %% tags=["parameters"]
models = ["gemma-3-270m", "smollm2-135m-instruct"]  # model specs (embedded names, folders, .gguf, zoo:...)
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
import matplotlib.pyplot as plt
import pandas as pd

from memkit.paper import nb, report
from memkit.paper.scale_figures import scale_figure
from memkit.paper.scale_runs import (POINT_COLUMNS, literature_points, measured_points, organism_points,
                                     scale_numbers, seed_ids)

out = nb.setup(out_dir, threads=None)
NAME = "fig_scale"

# %% [markdown]
# ## Measured points: every model × mode (extractions come from the cache when warm)
# Organisms (trained on the KJV Bible only) run the same attractors with the raw prompt (no chat template).

# %%
records = nb.read_records(attractors, ids=ids)
grid = dict(k=k, m=m, short=short, batch_size=batch_size, biderman_m=biderman_m, seed_ids=seed_ids(literature))
ours = measured_points(models, records, modes=modes, labels=nb.model_labels(models), **grid)
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
fig = scale_figure(ours, organisms, lit)
report.save_figure(fig, out, NAME)
plt.close(fig)

# %% [markdown]
# ## Numbers quoted in the paper

# %%
numbers = scale_numbers(ours, organisms, lit, n_models=len(models), macro_names=nb.model_keys(models))
report.write_macros(out / f"numbers_{NAME}.tex", numbers, source=NAME)
pd.Series(numbers, dtype=str).sort_index().to_frame("value")
