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
# Which famous texts ("attractors") does each embedded model recite, in which prompting mode,
# and under which definition of memorization? Every (model, mode) pair runs greedy
# extraction on the attractors of `data/attractors.jsonl` (prefix of `k` tokens, the true next
# `m` tokens); the verdicts use the original study's rule (seed score ≥ 0.7) and the standard
# ones (exact match, Biderman score = 1, near-verbatim). The seed's own Llama-3-8B / Mistral-7B
# numbers (`data/literature.csv`) are quoted beside ours. Computed sequences (counting, digits of
# π, ...) can be continued by rule — *reconstruction* rather than *recitation* (Prashanth et al.
# 2024) — so every count is given for all attractors, for the texts and for the sequences, each
# with its n; the shuffled controls are a third kind.
#
# Outputs (into `out_dir`): `tab_attractors.tex` (Table 1), `tab_attractors_full.tex` (appendix:
# every metric), `numbers_tab_attractors.tex` (macros quoted in the paper).
# The defaults below are smoke settings; the paper settings are in `params/tab_attractors.yml`.

# %% tags=["parameters"]
models = ["gemma-3-270m", "smollm2-135m-instruct"]  # model specs (embedded names, folders, .gguf, zoo:...)
labels = {"gemma-3-270m": "Gemma-3-270M", "smollm2-135m-instruct": "SmolLM2-135M-Instruct"}
short_labels = {"gemma-3-270m": "Gemma", "smollm2-135m-instruct": "SmolLM2"}  # appendix table
macro_names = {"gemma-3-270m": "Gemma", "smollm2-135m-instruct": "Smol"}  # letters only
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

from memkit.paper import report
from memkit.paper.experiments import (add_kind, add_verdicts, attractor_numbers, rule_letters, run_grid,
                                      summarize_by_kind)
from memkit.paper.report import fit_float, format_number
from memkit.paths import PROJECT_ROOT

NAME = "tab_attractors"
names, keys = nb.model_labels(models, labels), nb.model_keys(models, macro_names)

# %% [markdown]
# ## Extraction: every model × mode on every attractor (cached on disk)

# %%
records = nb.read_records(attractors, ids=ids)
runs = run_grid(models, records, k=k, m=m, modes=modes, short=short, batch_size=batch_size, progress=False)
runs = add_kind(add_verdicts(runs, biderman_m=biderman_m))  # kind: text, sequence or control
lit = pd.read_csv(PROJECT_ROOT / literature)
seed_ids = list(dict.fromkeys(lit["attractor_id"]))


def combo_label(spec: str, mode: str) -> str:
    return f"{names[spec]} ({mode})"


combos = list(dict.fromkeys(zip(runs["spec"], runs["mode"])))
print(len(records), "records;", len(combos), "model x mode combinations:", [combo_label(*c) for c in combos])

# %% [markdown]
# ## Summary per model × mode: all attractors, then texts, computed sequences and controls apart

# %%
summary = summarize_by_kind(runs, long_prefix=long_prefix, seed_ids=seed_ids)
show = ["spec", "mode", "kind", "n", "mem_exact_count", "mem_biderman_count", "mem_near_verbatim_count",
        "mem_seed_count", "any_count", "contains_suffix_count", "max_lcs_len", "long_prefix_count", "mean_prefix_match_len", "max_prefix_match_len",
        "max_seed_score", "max_seed_score_seed_ids"]
summary[show].round(3)

# %% [markdown]
# ## Table 1 (main text): one row per attractor, grouped by kind

# %%
CATEGORY = {"literature": "lit", "literature_copyrighted": "lit\\copyright{}", "legal_historical": "legal",
            "religious": "relig", "poetry": "poetry", "license": "license", "code": "code",
            "sequence": "seq", "placeholder": "lorem", "control": "ctrl"}
KIND_ORDER = {"text": 0, "sequence": 1, "control": 2}
KIND_LABEL = {"text": "texts", "sequence": "sequences", "control": "controls"}
esc = report.latex_escape


def attractor_cell(row) -> str:
    name = esc(row["id"].replace("control_shuffled_", "shuffled_"))
    return name + ("$^\\dagger$" if (row["k"], row["m"]) != (k, m) else "")


def kind_cells(kinds: pd.Series) -> list[str]:
    """The kind and its n on the first row of each group, blank below."""
    sizes = kinds.value_counts()
    return [f"{KIND_LABEL[kd]} ({sizes[kd]})" if i == 0 or kd != kinds.iloc[i - 1] else ""
            for i, kd in enumerate(kinds)]


first = runs[runs["spec"] == combos[0][0]].drop_duplicates("id")
first = first.iloc[first["kind"].map(KIND_ORDER).argsort(kind="stable")]  # texts, sequences, controls
table = pd.DataFrame({("", "Kind"): kind_cells(first["kind"]),
                      ("", "Attractor"): first.apply(attractor_cell, axis=1).to_numpy(),
                      ("", "Cat."): first["meta_category"].map(CATEGORY).to_numpy()})
for spec, mode in combos:
    part = runs[(runs["spec"] == spec) & (runs["mode"] == mode)].set_index("id").loc[first["id"]]
    head = esc(combo_label(spec, mode))
    table[(head, "P")] = part["prefix_match_len"].to_numpy()
    table[(head, "TM")] = part["token_match"].map(format_number).to_numpy()
    table[(head, "Seed")] = part["seed_score"].map(format_number).to_numpy()
    table[(head, "Rules")] = rule_letters(part).to_numpy()
lit_wide = lit.pivot(index="attractor_id", columns="model", values="seed_score")
for model in dict.fromkeys(lit["model"]):
    values = first["id"].map(lit_wide[model]).map(lambda v: "" if pd.isna(v) else format_number(v, 3))
    table[("Literature (quoted)", esc(model))] = values.to_numpy()
table.columns = pd.MultiIndex.from_tuples(table.columns)

short_rows = sorted({(r["k"], r["m"]) for _, r in first.iterrows()} - {(k, m)})
short_note = " ".join(
    f"$^\\dagger$Too short for $k+m$ tokens: run with $k={kk}$, $m={mm}$." for kk, mm in short_rows)
caption = (
    f"Attractor validation: greedy extraction with a prefix of $k={k}$ tokens, compared with the true next "
    f"$m={m}$ tokens, for every embedded model and prompting mode (raw text; where the model has a chat "
    f"template, chat: the prefix as the user message, and chat\\_verbatim: the same with an instruction to "
    f"continue the text verbatim). Kind (number of records): natural-language and code texts, which a "
    f"model can only recite; computed sequences, which it can also reconstruct by rule; shuffled controls. "
    f"P: longest matching prefix (tokens); TM: Biderman score (fraction of the $m$ positions "
    f"reproduced); Seed: the original study's blended score. Rules that call the row memorized: "
    f"E exact match of all $m$ tokens (Carlini); B Biderman score $=1$ on the first {min(m, biderman_m)} tokens; "
    f"N near-verbatim (token Levenshtein similarity $\\geq 0.75$); S seed score $\\geq 0.7$; "
    f"C, position-free: the reply contains {min(m, biderman_m)} consecutive suffix tokens anywhere "
    f"(longest common token substring; not counted as a rule); -- none. "
    f"{short_note} Literature columns: seed scores quoted from the original study (chat API, instruction-tuned "
    f"models, shorter prompts and reference texts), not measured here. Cat.: category "
    f"(shuffled\\_* are controls). Every metric is in Table~\\ref{{tab:attractors-full}}. "
    f"Made by \\texttt{{notebooks/{esc(NAME)}.py}}."
)
column_format = "lll" + "rrrl" * len(combos) + "r" * lit["model"].nunique()
with pd.option_context("styler.latex.multicol_align", "c"):
    path = report.write_table(table, out / f"{NAME}.tex", source=NAME, caption=caption, label="tab:attractors",
                              column_format=column_format, escape=False)
fit_float(path, font=r"\scriptsize", width=r"\linewidth", position="p")
print("Table 1:", table.shape[0], "rows x", table.shape[1], "columns")

# %% [markdown]
# ## Appendix table: every metric for every attractor × model × mode

# %%
ordered = runs.assign(_combo=[combos.index(c) for c in zip(runs["spec"], runs["mode"])],
                      _kind=runs["kind"].map(KIND_ORDER))
ordered = ordered.sort_values(["_combo", "_kind"], kind="stable")  # per run: texts, sequences, controls
full = pd.DataFrame({
    "Attractor": ordered["id"].str.replace("control_shuffled_", "shuffled_").map(esc),
    "Kind": ordered["kind"].map({"text": "text", "sequence": "seq", "control": "ctrl"}),
    "Run": ordered["spec"].map(lambda s: esc(short_labels.get(s, names[s]))) + " " + ordered["mode"],
    "$k$/$m$": ordered["k"].astype(str) + "/" + ordered["m"].astype(str),
    "P": ordered["prefix_match_len"],
    "TM": ordered["token_match"].map(lambda v: format_number(v, 3)),
    "Lev $d$": ordered["levenshtein"],
    "Lev sim": ordered["lev_similarity"].map(lambda v: format_number(v, 3)),
    "Char sim": ordered["char_lev_similarity"].map(lambda v: format_number(v, 3)),
    "Seed": ordered["seed_score"].map(lambda v: format_number(v, 3)),
    "zlib": ordered["zlib_ratio"].map(lambda v: format_number(v, 3)),
    "Gap": ordered["min_top2_gap"].map("{:.1e}".format),
    "Rules": rule_letters(ordered),
})
full_caption = (
    "Every memkit metric for every attractor, model and prompting mode (Run; greedy decoding, fp32), texts "
    "first, then computed sequences (seq) and shuffled controls (ctrl). "
    "P longest matching prefix; TM Biderman score; Lev $d$ token edit distance and Lev sim $=1-d/m$; "
    "Char sim the same on characters; Seed the original study's blend; zlib compressed/raw bytes of the "
    "true suffix; Gap smallest top-1 minus top-2 logit gap along the greedy path (below $10^{-4}$ the argmax "
    "could flip with batch shape); Rules as in Table~\\ref{tab:attractors}. "
    f"Made by \\texttt{{notebooks/{esc(NAME)}.py}}."
)
with pd.option_context("styler.latex.environment", "longtable"):
    report.write_table(full, out / f"{NAME}_full.tex", source=NAME, caption=full_caption,
                       label="tab:attractors-full", column_format="lllrrrrrrrrrl", escape=False)
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
