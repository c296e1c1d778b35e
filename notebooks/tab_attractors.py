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
# # Table 1 — attractor validation
#
# Which famous texts ("attractors") does each embedded model recite, in which prompting mode, and
# under which definition of memorization? Every (model, mode) pair runs greedy extraction on
# `data/attractors.jsonl` (prefix of `k` tokens, the true next `m` tokens), judged by the original
# study's rule (seed score ≥ 0.7) and the standard ones (exact match, Biderman score = 1,
# near-verbatim); the seed's Llama-3-8B / Mistral-7B numbers (`data/literature.csv`) are quoted
# beside ours. Computed sequences (counting, π, ...) can be continued by rule — *reconstruction*,
# not *recitation* (Prashanth et al. 2024) — so every count is given for all attractors, texts and
# sequences, each with its n; shuffled controls are a third kind. Runs and numbers:
# `memkit.paper.experiments`; both tables and their captions: `memkit.paper.attractor_tables`.
#
# Outputs (into `out_dir`): `tab_attractors.tex` (Table 1), `tab_attractors_full.tex` (appendix:
# every metric), `numbers_tab_attractors.tex` (macros quoted in the paper).
# The defaults below are smoke settings; the paper settings are in `params/tab_attractors.yml`.

# %% tags=["parameters"]
models = ["gemma-3-270m", "smollm2-135m-instruct"]  # model specs (embedded names, folders, .gguf, zoo:...)
short_labels = {"gemma-3-270m": "Gemma", "smollm2-135m-instruct": "SmolLM2"}  # appendix table
modes = ["raw", "chat", "chat_verbatim"]  # chat modes only run for models with a chat template
attractors = "data/attractors.jsonl"
ids = ["harry_potter", "lorem_ipsum", "counting", "us_constitution", "genesis_1", "html_doctype",
       "control_shuffled_genesis_1", "control_shuffled_pi_digits"]  # None = every record
k = 16  # prefix tokens
m = 16  # suffix tokens compared
short = {"harry_potter": [12, 16]}  # id -> [k, m] for texts shorter than k + m tokens
biderman_m = 32  # Biderman et al. score of 1 on the first min(m, biderman_m) tokens
long_prefix = 8  # "recites the first `long_prefix` suffix tokens" (descriptive count)
literature = "data/literature.csv"
batch_size = 16
threads = None  # torch intra-op threads (None: torch's default)
out_dir = "build/smoke/tab_attractors"

# %%
from memkit.paper import nb

out = nb.setup(out_dir, threads=threads)  # quiet, matplotlib Agg, output folder

import pandas as pd

from memkit.paper import attractor_tables, report
from memkit.paper.experiments import add_kind, add_verdicts, attractor_numbers, run_grid, summarize_by_kind
from memkit.paths import PROJECT_ROOT

NAME = "tab_attractors"
names, keys = nb.model_labels(models), nb.model_keys(models)

# %% [markdown]
# ## Extraction: every model × mode on every attractor (cached on disk)

# %%
records = nb.read_records(attractors, ids=ids)
runs = run_grid(models, records, k=k, m=m, modes=modes, short=short, batch_size=batch_size, progress=False)
runs = add_kind(add_verdicts(runs, biderman_m=biderman_m))  # kind: text, sequence or control
lit = pd.read_csv(PROJECT_ROOT / literature)
combos = attractor_tables.combinations(runs)
print(len(records), "records;", len(combos), "model x mode combinations:",
      [attractor_tables.combo_label(spec, mode, names) for spec, mode in combos])

# %% [markdown]
# ## Summary per model × mode: all attractors, then texts, computed sequences and controls apart

# %%
summary = summarize_by_kind(runs, long_prefix=long_prefix, seed_ids=list(dict.fromkeys(lit["attractor_id"])))
summary[attractor_tables.SUMMARY_COLUMNS].round(3)

# %% [markdown]
# ## Table 1 (main text): one row per attractor, grouped by kind; P, TM, Seed and rules per model × mode

# %%
table, caption, column_format = attractor_tables.attractor_table(runs, lit, labels=names, k=k, m=m,
                                                                 biderman_m=biderman_m, source=NAME)
with pd.option_context("styler.latex.multicol_align", "c"):
    path = report.write_table(table, out / f"{NAME}.tex", source=NAME, caption=caption, label="tab:attractors",
                              column_format=column_format, escape=False)
report.fit_float(path, font=r"\scriptsize", width=r"\linewidth", position="p")
print("Table 1:", table.shape[0], "rows x", table.shape[1], "columns")

# %% [markdown]
# ## Appendix table: every metric for every attractor × model × mode (a longtable)

# %%
full, full_caption, full_format = attractor_tables.full_table(runs, labels=names, short_labels=short_labels, k=k,
                                                              m=m, source=NAME)
with pd.option_context("styler.latex.environment", "longtable"):
    report.write_table(full, out / f"{NAME}_full.tex", source=NAME, caption=full_caption,
                       label="tab:attractors-full", column_format=full_format, escape=False)
print("rows in the full table:", len(full), "| near-ties:", int(runs["near_tie"].sum()))

# %% [markdown]
# ## Numbers quoted in the paper
#
# `GemmaRawExactCount` counts all attractors, `GemmaRawTextsExactCount` the texts and
# `GemmaRawSequencesExactCount` the computed sequences (n: `GemmaRawTextsN`, ...); controls are
# `GemmaRawControl...`.

# %%
categories = {r["id"]: r["category"] for r in nb.read_records(attractors)}  # every record, also those not run
numbers = attractor_numbers(runs, summary, lit, categories=categories, keys=keys, labels=names, k=k, m=m,
                            biderman_m=biderman_m, long_prefix=long_prefix)
report.write_macros(out / f"numbers_{NAME}.tex", numbers, source=NAME)
pd.Series({name: numbers[name] for name in sorted(numbers) if "List" not in name}, dtype=str).to_frame("value")
