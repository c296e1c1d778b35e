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
# # Table — memorization census of widely copied texts
#
# How many windows of texts a model has plausibly seen many times does it recite? Each embedded
# model screens non-overlapping windows of k + m tokens of the King James Bible, the Debian
# licence texts, CPython standard-library files and the text attractors of
# `data/attractors.jsonl` (no computed sequences, no controls) with one teacher-forced pass;
# the candidates and a random recall sample are decoded greedily (`memkit.census`). Memorized =
# near-verbatim continuation (token Levenshtein similarity ≥ 0.75, every exact match included);
# rates carry Wilson 95 % CIs, and the recall sample measures how many memorized windows the
# screen misses. Each census is cached under `$MEMKIT_CACHE/census/` (a rerun reads it back).
#
# Outputs (into `out_dir`): `tab_census.tex` (per source × model), `tab_census_found.tex` (the
# memorized windows), `numbers_tab_census.tex`.
# The defaults below are smoke settings; the paper settings are in `params/tab_census.yml`.

# %% tags=["parameters"]
models = ["smollm2-135m-instruct"]  # model specs (embedded names, folders, .gguf, zoo:...)
sources = ["licenses", "attractors"]  # of kjv-famous, kjv, licenses, stdlib, attractors
k = 16  # prefix tokens
m = 16  # continuation tokens
max_windows_per_source = 12  # openings first, then a seeded sample
screen_prefix = 8  # decode windows whose greedy prefix match is at least this ...
screen_accuracy = 0.7  # ... or whose teacher-forced accuracy is at least this
recall_fraction = 0.05  # seeded random sample of the other windows, decoded to measure the screen's recall
recall_min = 6  # at least this many
seed = 0  # window and recall samples
batch_size = 8
threads = 1  # torch intra-op threads
out_dir = "build/smoke/tab_census"

# %%
from memkit.paper import nb

out = nb.setup(out_dir, threads=threads)  # quiet, matplotlib Agg, torch threads, output folder

import pandas as pd

from memkit.paper import census_runs, report

NAME = "tab_census"
names, keys = nb.model_labels(models), nb.model_keys(models)
settings = census_runs.CensusSettings(sources=tuple(sources), k=k, m=m, max_windows_per_source=max_windows_per_source,
                                      screen_prefix=screen_prefix, screen_accuracy=screen_accuracy,
                                      recall_fraction=recall_fraction, recall_min=recall_min, seed=seed,
                                      batch_size=batch_size)

# %% [markdown]
# ## The census of every model (cached)

# %%
runs = census_runs.census_runs(models, settings)
for spec, result in runs.items():
    print(names[spec], "|", len(result.screen), "windows,", len(result.confirmed), "decoded")
pd.concat({names[spec]: census_runs.source_counts(result, settings.sources).set_index("source")
           for spec, result in runs.items()}).round(4)

# %% [markdown]
# ## Table: rates per source × model

# %%
table, caption = census_runs.rates_table(runs, settings, labels=names)
with pd.option_context("styler.latex.multicol_align", "c"):
    path = report.write_table(table, out / f"{NAME}.tex", source=NAME, caption=caption, label="tab:census",
                              column_format="l" + "rrlrlr" * len(models), escape=False)
report.fit_float(path, font=r"\scriptsize", width=r"\linewidth")
table

# %% [markdown]
# ## The memorized windows

# %%
found = census_runs.memorized_table(runs, labels=names)
found_caption = ("Every window of the census whose greedy continuation is near-verbatim. Token: position of the "
                 "window in its document (0 = the opening); $P$: longest matching prefix of the continuation "
                 "(tokens); Lev sim: token Levenshtein similarity; Exact: all $m$ tokens reproduced. "
                 "Made by \\texttt{notebooks/tab\\_census.py}.")
path = report.write_table(found, out / f"{NAME}_found.tex", source=NAME, caption=found_caption,
                          label="tab:census-found", column_format="lllrrrl", escape=False)
report.fit_float(path, font=r"\scriptsize", width=None)
found

# %% [markdown]
# ## Numbers quoted in the paper

# %%
numbers = census_runs.census_numbers(runs, settings, keys=keys)
report.write_macros(out / f"numbers_{NAME}.tex", numbers, source=NAME)
pd.Series(numbers, dtype=str).sort_index().to_frame("value")
