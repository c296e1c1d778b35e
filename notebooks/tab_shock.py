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
# # Table — mid-sequence shock: does a model re-lock onto its continuation?
#
# `force_token`: the clean greedy continuation is followed up to step t, then α wrong tokens
# are forced (each the model's best token other than its own greedy choice — the most plausible
# error), and greedy decoding continues. Does the continuation come back to the clean one
# (for a recited attractor: the true text)? *Re-lock*: from some step after the shock on, the
# continuation equals the clean one at the same positions to the end (at least `min_tail` tokens
# compared); *re-lock with shift*: the same, allowing the continuation to resume up to `max_shift`
# tokens ahead or behind (the model skipped or repeated a token). Memorized attractors vs
# non-memorized controls, per model.
#
# The runs, the table and the macros are built by `memkit.paper.shock_runs` (shocks by
# `memkit.dynamics.sweeps.shock_sweep`, summaries by `shock_summary`).
#
# Outputs (into `out_dir`): `tab_shock.tex`, `numbers_tab_shock.tex`.
# The defaults below are smoke settings; the paper settings are in `params/tab_shock.yml`.

# %% tags=["parameters"]
models = ["smollm2-135m-instruct"]  # model specs
attractors = "data/attractors.jsonl"
ids = ["counting", "days_months", "lorem_ipsum", "genesis_1", "gettysburg_address"]  # None: every record
k = 32
m = 12
clean_m = 12  # suffix length of the clean runs that select the memorized samples (at least m)
threshold = 0.9
max_memorized = 2
max_controls = 2  # shuffled-text controls; matched controls: one per memorized sample
controls = "matched"  # "matched": natural texts matched on confidence; "shuffled": the shuffled-word records
alphas = [1]  # forced wrong tokens
positions = [4]  # continuation step t of the shock
max_shift = 2  # re-lock with shift: resume up to this many tokens ahead or behind
min_tail = 4  # a re-lock must hold for at least this many tokens (no lucky last token)
example_id = "counting"  # quoted in the paper: its continuation with one forced token at the first position
threads = 1
out_dir = "build/smoke/tab_shock"

# %%
import pandas as pd

from memkit.dynamics.sweeps import shock_summary
from memkit.paper import nb, report
from memkit.paper.shock_runs import shock_numbers, shock_runs, shock_table

out = nb.setup(out_dir, threads=threads)
NAME = "tab_shock"

# %% [markdown]
# ## Shocks at every (forced tokens, step), per model

# %%
records = nb.read_records(attractors, ids=ids)
shock = shock_runs(models, records, k=k, m=m, clean_m=clean_m, threshold=threshold, max_memorized=max_memorized,
                   max_controls=max_controls, alphas=alphas, positions=positions, max_shift=max_shift,
                   min_tail=min_tail, example_id=example_id, controls=controls)
for spec, (before, after) in shock.examples.items():
    print(f"{spec} {example_id}: clean {before!r} -> shocked {after!r}")
shock.selection.round(3)

# %%
shock.shocks[["spec", "id", "group", "alpha", "shock_step", "relocked", "relock_after", "relocked_shifted",
              "relock_shift", "retention_after"]].round(3)

# %% [markdown]
# ## Re-lock rates per model × group (and per number of forced tokens)

# %%
overall = shock_summary(shock.shocks, by=("spec", "group"))
per_alpha = shock_summary(shock.shocks, by=("spec", "group", "alpha"))
overall.round(3)

# %%
per_alpha.round(3)

# %% [markdown]
# ## Table

# %%
table, caption = shock_table(shock, overall, per_alpha, models=models, alphas=alphas, positions=positions,
                             labels=nb.model_labels(models), k=k, m=m, min_tail=min_tail, max_shift=max_shift)
path = report.write_table(table, out / f"{NAME}.tex", source=NAME, caption=caption, label="tab:shock",
                          column_format="llrrrrrr", escape=False)
report.fit_float(path, font=r"\small", width=r"\linewidth")
print("shock table:", table.shape[0], "rows")

# %% [markdown]
# ## Numbers quoted in the paper

# %%
numbers = shock_numbers(shock, overall, per_alpha, models=models, keys=nb.model_keys(models), k=k, m=m,
                        alphas=alphas, positions=positions, min_tail=min_tail, max_shift=max_shift,
                        example_id=example_id)
report.write_macros(out / f"numbers_{NAME}.tex", numbers, source=NAME)
pd.Series(numbers, dtype=str).sort_index().to_frame("value")
