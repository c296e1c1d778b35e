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
# # Table — membership attacks on the pretrained models: famous texts vs their shuffled twins
#
# Membership is unknown for a pretrained model, so the organisms (`tab_mia`) carry the ground truth. Here
# the attacks meet the real models on the closest offline stand-in: every natural-language or code text of
# `data/attractors.jsonl` (famous, heavily copied: presumed members) against its *twin*, the same words in a
# seeded random order with the whitespace kept (a sequence no corpus holds: a non-member). Both are cut to
# the same k + m tokens and scored by loss, zlib, Min-K% and Min-K%++ from one teacher-forced pass
# (`memkit.mia`); per model and attack: AUC with a bootstrap CI over the pairs, TPR at `fpr`, and a paired
# sign-flip permutation test of the text-minus-twin score, Holm-corrected over all models and attacks.
# The twins are also less fluent than the texts, so an AUC here bounds membership detection from above.
# Code: `memkit.paper.mia_real`.
#
# Outputs (into `out_dir`): `tab_mia_real.tex`, `numbers_tab_mia_real.tex`.
# Defaults are smoke settings; paper settings: `params/tab_mia_real.yml`.

# %% tags=["parameters"]
models = ["smollm2-135m-instruct"]
attractors = "data/attractors.jsonl"
ids = ["genesis_1", "gettysburg_address", "lorem_ipsum", "mit_license", "hamlet_soliloquy"]  # None: every record
k = 16  # prefix tokens (the attacks score all k + m tokens)
m = 32  # continuation tokens
min_k = 0.2  # fraction of lowest-probability tokens of Min-K% and Min-K%++
fpr = 0.05  # false-positive rate of the TPR (the twins are few: 1 % would be FPR 0)
n_boot = 200  # bootstrap replicates of the AUC/TPR CIs (from 20 pairs on)
n_resamples = 999  # sign-flip resamples of the paired tests (exact below 2^n)
alpha = 0.05  # family-wise level of the Holm-corrected tests
seed = 0  # bootstrap and permutation seed
twin_seed = 0  # word-shuffle seed of the twins
batch_size = 16
progress = False
out_dir = "build/smoke/tab_mia_real"

# %%
from memkit.paper import nb

out = nb.setup(out_dir, threads=None)  # quiet, matplotlib Agg, torch threads, output folder

import pandas as pd

from memkit.paper import mia_real, report

NAME = "tab_mia_real"
names, keys = nb.model_labels(models), nb.model_keys(models)

# %% [markdown]
# ## An example pair, and the scores of every text and twin

# %%
records = nb.read_records(attractors, ids=ids)
pairs = mia_real.twin_records(records, seed=twin_seed)
print(pairs[0]["text"][:200], "\n---\n", pairs[1]["text"][:200])

# %%
res = mia_real.real_mia(models, records, k=k, m=m, min_k=min_k, fpr=fpr, n_boot=n_boot, n_resamples=n_resamples,
                        seed=seed, twin_seed=twin_seed, batch_size=batch_size, progress=progress)
print({spec: f"{len(ids)} texts dropped (< k + m tokens)" for spec, ids in res.dropped.items()})
res.scores.pivot_table(index=["spec", "member"], values=[f"score_{a}" for a in mia_real.ATTACKS],
                       aggfunc="mean").round(3)

# %% [markdown]
# ## AUC, TPR and paired tests per model and attack

# %%
res.metrics[["spec", "attack", "n_pairs", "auc", "auc_lo", "auc_hi", "tpr", "diff", "p", "p_holm"]].round(4)

# %% [markdown]
# ## Table and numbers quoted in the paper

# %%
table, caption = mia_real.real_mia_table(res, names)
path = report.write_table(table, out / f"{NAME}.tex", source=NAME, escape=False, caption=caption,
                          label="tab:mia-real", column_format="llrlrrr")
report.fit_float(path, font=r"\small", width=r"\linewidth")
numbers = mia_real.real_mia_numbers(res, keys, alpha=alpha)
report.write_macros(out / f"numbers_{NAME}.tex", numbers, source=NAME)
pd.Series(numbers, dtype=str).sort_index().to_frame("value")
