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
# numbers (`data/literature.csv`) are quoted beside ours.
#
# Outputs (into `out_dir`): `tab_attractors.tex` (Table 1), `tab_attractors_full.tex` (appendix:
# every metric), `numbers_tab_attractors.tex` (macros quoted in the paper).
# The defaults below are smoke settings; the paper settings are in `params/tab_attractors.yml`.

# %% tags=["parameters"]
models = ["gemma-3-270m", "smollm2-135m-instruct"]  # model specs (embedded names, folders, .gguf, zoo:...)
labels = {"gemma-3-270m": "Gemma-3-270M", "smollm2-135m-instruct": "SmolLM2-135M-Instruct"}
short_labels = {"gemma-3-270m": "Gemma", "smollm2-135m-instruct": "SmolLM2"}  # appendix table
macro_names = {"gemma-3-270m": "Gemma", "smollm2-135m-instruct": "Smol"}  # letters only
modes = ["raw", "chat"]  # chat only runs for models with a chat template
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
out_dir = "build/smoke/tab_attractors"

# %%
import warnings

warnings.filterwarnings("ignore")

import pandas as pd
import transformers

import memkit
from memkit.paper import report
from memkit.paper.experiments import RULES, add_verdicts, rule_letters, run_grid, summarize
from memkit.paper.report import fit_float, macro_key
from memkit.paths import PROJECT_ROOT

transformers.logging.set_verbosity_error()
pd.set_option("display.width", 160)
out = PROJECT_ROOT / out_dir
out.mkdir(parents=True, exist_ok=True)
NAME = "tab_attractors"

# %% [markdown]
# ## Extraction: every model × mode on every attractor (cached on disk)

# %%
records = memkit.read_jsonl(PROJECT_ROOT / attractors)
if ids is not None:
    by_id = {r["id"]: r for r in records}
    records = [by_id[i] for i in ids]
runs = run_grid(models, records, k=k, m=m, modes=modes, short=short, batch_size=batch_size, progress=False)
runs = add_verdicts(runs, biderman_m=biderman_m)
runs["is_control"] = runs["meta_category"] == "control"
lit = pd.read_csv(PROJECT_ROOT / literature)
seed_ids = list(dict.fromkeys(lit["attractor_id"]))


def combo_label(spec: str, mode: str) -> str:
    return f"{labels.get(spec, spec)} ({mode})"


def combo_key(spec: str, mode: str) -> str:
    return macro_names.get(spec) or macro_key(runs.loc[runs["spec"] == spec, "model"].iloc[0])


combos = list(dict.fromkeys(zip(runs["spec"], runs["mode"])))
print(len(records), "records;", len(combos), "model x mode combinations:", [combo_label(*c) for c in combos])

# %% [markdown]
# ## Summary per model × mode (attractors only; controls separately)

# %%
summary = summarize(runs[~runs["is_control"]], long_prefix=long_prefix, seed_ids=seed_ids)
controls = summarize(runs[runs["is_control"]], long_prefix=long_prefix)
show = ["spec", "mode", "n", "mem_exact_count", "mem_biderman_count", "mem_near_verbatim_count", "mem_seed_count",
        "long_prefix_count", "mean_prefix_match_len", "max_seed_score", "max_seed_score_seed_ids"]
summary[show].round(3)

# %%
controls[["spec", "mode", "n", "any_count", "max_prefix_match_len", "max_seed_score"]].round(3)

# %% [markdown]
# ## Table 1 (main text): one row per attractor

# %%
CATEGORY = {"literature": "lit", "literature_copyrighted": "lit\\copyright{}", "legal_historical": "legal",
            "religious": "relig", "poetry": "poetry", "license": "license", "code": "code",
            "sequence": "seq", "placeholder": "lorem", "control": "ctrl"}
esc = report.latex_escape


def attractor_cell(row) -> str:
    name = esc(row["id"].replace("control_shuffled_", "shuffled_"))
    return name + ("$^\\dagger$" if (row["k"], row["m"]) != (k, m) else "")


first = runs[runs["spec"] == combos[0][0]].drop_duplicates("id")
table = pd.DataFrame({("", "Attractor"): first.apply(attractor_cell, axis=1).to_numpy(),
                      ("", "Cat."): first["meta_category"].map(CATEGORY).to_numpy()})
for spec, mode in combos:
    part = runs[(runs["spec"] == spec) & (runs["mode"] == mode)].set_index("id").loc[first["id"]]
    head = esc(combo_label(spec, mode))
    table[(head, "P")] = part["prefix_match_len"].to_numpy()
    table[(head, "TM")] = part["token_match"].map("{:.2f}".format).to_numpy()
    table[(head, "Seed")] = part["seed_score"].map("{:.2f}".format).to_numpy()
    table[(head, "Rules")] = rule_letters(part).to_numpy()
lit_wide = lit.pivot(index="attractor_id", columns="model", values="seed_score")
for model in dict.fromkeys(lit["model"]):
    values = first["id"].map(lit_wide[model]).map(lambda v: "" if pd.isna(v) else f"{v:.3f}")
    table[("Literature (quoted)", esc(model))] = values.to_numpy()
table.columns = pd.MultiIndex.from_tuples(table.columns)

short_rows = sorted({(r["k"], r["m"]) for _, r in first.iterrows()} - {(k, m)})
short_note = " ".join(
    f"$^\\dagger$Too short for $k+m$ tokens: run with $k={kk}$, $m={mm}$." for kk, mm in short_rows)
caption = (
    f"Attractor validation: greedy extraction with a prefix of $k={k}$ tokens, compared with the true next "
    f"$m={m}$ tokens, for every embedded model and prompting mode (raw text; chat template where the model "
    f"has one). P: longest matching prefix (tokens); TM: Biderman score (fraction of the $m$ positions "
    f"reproduced); Seed: the original study's blended score. Rules that call the row memorized: "
    f"E exact match of all $m$ tokens (Carlini); B Biderman score $=1$ on the first {min(m, biderman_m)} tokens; "
    f"N near-verbatim (token Levenshtein similarity $\\geq 0.75$); S seed score $\\geq 0.7$; -- none. "
    f"{short_note} Literature columns: seed scores quoted from the original study (chat API, instruction-tuned "
    f"models, shorter prompts and reference texts), not measured here. Cat.: category "
    f"(shuffled\\_* are controls). Every metric is in Table~\\ref{{tab:attractors-full}}. "
    f"Made by \\texttt{{notebooks/{esc(NAME)}.py}}."
)
column_format = "ll" + "rrrl" * len(combos) + "r" * lit["model"].nunique()
with pd.option_context("styler.latex.multicol_align", "c"):
    path = report.write_table(table, out / f"{NAME}.tex", source=NAME, caption=caption, label="tab:attractors",
                              column_format=column_format, escape=False)
fit_float(path, font=r"\scriptsize", width=r"\linewidth", position="p")
print("Table 1:", table.shape[0], "rows x", table.shape[1], "columns")

# %% [markdown]
# ## Appendix table: every metric for every attractor × model × mode

# %%
full = pd.DataFrame({
    "Attractor": runs["id"].str.replace("control_shuffled_", "shuffled_").map(esc),
    "Run": runs["spec"].map(lambda s: esc(short_labels.get(s, labels.get(s, s)))) + " " + runs["mode"],
    "$k$/$m$": runs["k"].astype(str) + "/" + runs["m"].astype(str),
    "P": runs["prefix_match_len"],
    "TM": runs["token_match"].map("{:.3f}".format),
    "Lev $d$": runs["levenshtein"],
    "Lev sim": runs["lev_similarity"].map("{:.3f}".format),
    "Char sim": runs["char_lev_similarity"].map("{:.3f}".format),
    "Seed": runs["seed_score"].map("{:.3f}".format),
    "zlib": runs["zlib_ratio"].map("{:.3f}".format),
    "Gap": runs["min_top2_gap"].map("{:.1e}".format),
    "Rules": rule_letters(runs),
})
full_caption = (
    "Every memkit metric for every attractor, model and prompting mode (Run; greedy decoding, fp32). "
    "P longest matching prefix; TM Biderman score; Lev $d$ token edit distance and Lev sim $=1-d/m$; "
    "Char sim the same on characters; Seed the original study's blend; zlib compressed/raw bytes of the "
    "true suffix; Gap smallest top-1 minus top-2 logit gap along the greedy path (below $10^{-4}$ the argmax "
    "could flip with batch shape); Rules as in Table~\\ref{tab:attractors}. "
    f"Made by \\texttt{{notebooks/{esc(NAME)}.py}}."
)
with pd.option_context("styler.latex.environment", "longtable"):
    report.write_table(full, out / f"{NAME}_full.tex", source=NAME, caption=full_caption,
                       label="tab:attractors-full", column_format="llrrrrrrrrrl", escape=False)
print("rows in the full table:", len(full), "| near-ties:", int(runs["near_tie"].sum()))

# %% [markdown]
# ## Numbers quoted in the paper

# %%
def fmt(x: float, digits: int = 2) -> str:
    return f"{x:.{digits}f}"


def id_list(frame: pd.DataFrame) -> str:
    names = [f"\\texttt{{{esc(i)}}}" for i in frame["id"]]
    return ", ".join(names) if names else "none"


numbers = {
    "NAttractors": int((~runs["is_control"]).sum() // len(combos)),
    "NControls": int(runs["is_control"].sum() // len(combos)),
    "NRecords": len(records), "NModels": len(models), "NCombos": len(combos),
    "PrefixTokens": k, "SuffixTokens": m, "BidermanTokens": min(m, biderman_m), "LongPrefixTokens": long_prefix,
    "NearVerbatimThreshold": "0.75", "SeedThreshold": "0.7",
    "ShortIds": id_list(first[(first["k"] != k) | (first["m"] != m)]),
    "ShortPrefixTokens": short_rows[0][0] if short_rows else k,
    "ShortSuffixTokens": short_rows[0][1] if short_rows else m,
    "NSeedAttractors": len(seed_ids),
    "NSequence": int(first.loc[first["meta_category"] == "sequence"].shape[0]),
    "NText": int(first.loc[~first["meta_category"].isin(["sequence", "control"])].shape[0]),
}
RULE_KEYS = {"mem_exact": "Exact", "mem_biderman": "Biderman", "mem_near_verbatim": "NearVerbatim", "mem_seed": "Seed"}
for (spec, mode), srow, crow in zip(combos, summary.itertuples(), controls.itertuples()):
    key = combo_key(spec, mode) + macro_key(mode)
    part = runs[(runs["spec"] == spec) & (runs["mode"] == mode) & ~runs["is_control"]]
    for rule, rule_key in RULE_KEYS.items():
        numbers[f"{key}{rule_key}Count"] = getattr(srow, f"{rule}_count")
        numbers[f"{key}{rule_key}List"] = id_list(part[part[rule]])
    numbers[f"{key}AnyCount"] = srow.any_count
    numbers[f"{key}LongPrefixCount"] = srow.long_prefix_count
    long = part[part["prefix_match_len"] >= part["m"].clip(upper=long_prefix)]
    numbers[f"{key}LongPrefixList"] = id_list(long)
    text = part[part["meta_category"] != "sequence"]  # natural-language and code texts, no computed sequences
    numbers[f"{key}TextLongPrefixCount"] = int(long["id"].isin(text["id"]).sum())
    numbers[f"{key}TextLongPrefixList"] = id_list(long[long["id"].isin(text["id"])])
    longest = text.loc[text["prefix_match_len"].idxmax()]
    numbers[f"{key}TextMaxPrefix"] = int(longest["prefix_match_len"])
    numbers[f"{key}TextMaxPrefixId"] = f"\\texttt{{{esc(longest['id'])}}}"
    numbers[f"{key}TextMaxPrefixSeed"] = fmt(longest["seed_score"])
    numbers[f"{key}TextMaxPrefixTokenMatch"] = fmt(longest["token_match"])
    numbers[f"{key}MeanPrefix"] = fmt(srow.mean_prefix_match_len, 1)
    numbers[f"{key}MaxPrefix"] = srow.max_prefix_match_len
    numbers[f"{key}MaxSeed"] = fmt(srow.max_seed_score)
    numbers[f"{key}MaxSeedSeven"] = fmt(srow.max_seed_score_seed_ids)
    numbers[f"{key}MeanTokenMatch"] = fmt(part["token_match"].mean(), 3)
    numbers[f"{key}ControlAnyCount"] = crow.any_count
    numbers[f"{key}ControlMaxPrefix"] = crow.max_prefix_match_len
    numbers[f"{key}Label"] = esc(labels.get(spec, spec))
for model, group in lit.groupby("model", sort=False):
    best = group.loc[group["seed_score"].idxmax()]
    numbers[f"Lit{macro_key(model)}MaxSeed"] = fmt(best["seed_score"], 3)
    numbers[f"Lit{macro_key(model)}Best"] = f"\\texttt{{{esc(best['attractor_id'])}}}"
numbers["LitMaxSeed"] = fmt(lit["seed_score"].max(), 2)
report.write_macros(out / f"numbers_{NAME}.tex", numbers, source=NAME)
pd.Series({name: numbers[name] for name in sorted(numbers) if "List" not in name}, dtype=str).to_frame("value")
