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
# Outputs (into `out_dir`): `tab_shock.tex`, `numbers_tab_shock.tex`.
# The defaults below are smoke settings; the paper settings are in `params/tab_shock.yml`.

# %% tags=["parameters"]
models = ["smollm2-135m-instruct"]  # model specs
labels = {"gemma-3-270m": "Gemma-3-270M", "smollm2-135m-instruct": "SmolLM2-135M-Instruct"}
macro_names = {"gemma-3-270m": "Gemma", "smollm2-135m-instruct": "Smol"}  # letters only
attractors = "data/attractors.jsonl"
ids = ["counting", "days_months", "control_shuffled_genesis_1", "control_shuffled_pi_digits"]  # None: every record
k = 32
m = 12
clean_m = 12  # suffix length of the clean runs that select the memorized samples (at least m)
threshold = 0.9
max_memorized = 2
max_controls = 2
alphas = [1]  # forced wrong tokens
positions = [4]  # continuation step t of the shock
max_shift = 2  # re-lock with shift: resume up to this many tokens ahead or behind
min_tail = 4  # a re-lock must hold for at least this many tokens (no lucky last token)
example_id = "counting"  # quoted in the paper: its continuation with one forced token at the first position
threads = 1
out_dir = "build/smoke/tab_shock"

# %%
import gc
import warnings

warnings.filterwarnings("ignore")

import numpy as np
import pandas as pd
import torch
import transformers

import memkit
from memkit.dynamics.sweeps import distinct_share, dynamics_samples, shock_summary, shock_sweep
from memkit.paper import report
from memkit.paper.report import fit_float, macro_key
from memkit.paths import PROJECT_ROOT

transformers.logging.set_verbosity_error()
torch.set_num_threads(threads)
pd.set_option("display.width", 160)
out = PROJECT_ROOT / out_dir
out.mkdir(parents=True, exist_ok=True)
NAME = "tab_shock"
GROUPS = ["memorized", "control"]

# %% [markdown]
# ## Shocks at every (forced tokens, step), per model

# %%
records = memkit.read_jsonl(PROJECT_ROOT / attractors)
if ids is not None:
    by_id = {r["id"]: r for r in records}
    records = [by_id[i] for i in ids]


def model_key(spec: str) -> str:
    return macro_names.get(spec) or macro_key(spec)


shocks, selection, examples = [], [], {}
for spec in models:
    lm = memkit.load_model(spec)
    samples, clean, groups = dynamics_samples(lm, records, k=k, m=m, clean_m=clean_m, threshold=threshold,
                                              max_memorized=max_memorized, max_controls=max_controls, batch_size=16)
    group_of = dict(zip(clean["id"], clean["id"].map(groups)))
    selection.append(clean.assign(spec=spec, group=clean["id"].map(group_of),
                                  distinct=clean["generated_ids"].map(distinct_share))[
        ["spec", "id", "group", "token_match", "distinct"]])
    frame = shock_sweep(lm, samples, clean, alphas=alphas, positions=positions, max_shift=max_shift, min_tail=min_tail)
    shocks.append(frame.drop(columns="generated_ids").assign(spec=spec, group=frame["id"].map(group_of)))
    pick = frame[(frame["id"] == example_id) & (frame["alpha"] == min(alphas)) & (frame["position"] == min(positions))]
    if len(pick):  # the example quoted in the paper: clean vs shocked continuation, up to a few steps after the shock
        row = pick.iloc[0]
        end = row["shock_step"] + row["shock_tokens"] + 10
        clean_ids = list(clean.set_index("id").loc[example_id, "generated_ids"])
        examples[spec] = (lm.tokenizer.decode(clean_ids[:end]), lm.tokenizer.decode(list(row["generated_ids"])[:end]))
    del lm
    gc.collect()
shocks = pd.concat(shocks, ignore_index=True)
selection = pd.concat(selection, ignore_index=True)
for spec, (before, after) in examples.items():
    print(f"{spec} {example_id}: clean {before!r} -> shocked {after!r}")
selection.round(3)

# %%
shocks[["spec", "id", "group", "alpha", "shock_step", "relocked", "relock_after", "relocked_shifted", "relock_shift",
        "retention_after"]].round(3)

# %% [markdown]
# ## Re-lock rates per model × group (and per number of forced tokens)

# %%
overall = shock_summary(shocks, by=("spec", "group"))
per_alpha = shock_summary(shocks, by=("spec", "group", "alpha"))
overall.round(3)

# %%
per_alpha.round(3)

# %% [markdown]
# ## Table

# %%
esc = report.latex_escape


def pct(x: float) -> str:
    return "--" if not np.isfinite(x) else f"{100 * x:.0f}"


def steps(x: float) -> str:
    return "--" if not np.isfinite(x) else f"{x:.0f}" if float(x).is_integer() else f"{x:.1f}"


rows = []
for spec in models:
    for group in GROUPS:
        part = per_alpha[(per_alpha["spec"] == spec) & (per_alpha["group"] == group)]
        total = overall[(overall["spec"] == spec) & (overall["group"] == group)]
        for label, frame in [(str(int(a)), part[part["alpha"] == a]) for a in alphas] + [("all", total)]:
            if frame.empty:
                continue
            r = frame.iloc[0]
            rows.append({"Model": esc(labels.get(spec, spec)), "Group": group, "Forced": label, "Runs": int(r["n"]),
                         "Re-lock (\\%)": pct(r["relock_rate"]), "With shift (\\%)": pct(r["relock_shifted_rate"]),
                         "Steps to re-lock": steps(r["median_relock_after"]),
                         "Kept after (\\%)": pct(r["mean_retention_after"])})
table = pd.DataFrame(rows)
n_mem = selection[selection["group"] == "memorized"].groupby("spec")["id"].count()
n_ctrl = selection[selection["group"] == "control"].groupby("spec")["id"].count()
counts = "; ".join(f"{esc(labels.get(s, s))}: {int(n_mem.get(s, 0))} memorized, {int(n_ctrl.get(s, 0))} controls"
                   for s in models)
distinct = selection.groupby(["spec", "group"])["distinct"].mean()
repetition = "; ".join(f"{esc(labels.get(s, s))}: " + ", ".join(
    f"{g} {pct(distinct[(s, g)])}\\%" for g in GROUPS if (s, g) in distinct.index) for s in models)
caption = (
    f"Mid-sequence shock recovery (\\texttt{{force\\_token}}): the clean greedy continuation ($k={k}$, $m={m}$) is "
    f"followed up to step $t \\in \\{{{', '.join(str(p) for p in positions)}\\}}$, then the given number of wrong "
    f"tokens is forced (each the model's best non-greedy token) and greedy decoding resumes. Re-lock: the rest of the "
    f"continuation equals the clean one (the true text, for memorized attractors) at the same positions from some "
    f"step on, over at least {min_tail} tokens; with shift: resuming up to {max_shift} tokens ahead or behind. "
    f"Steps to re-lock: median over re-locked runs, counted from the end of the shock. Kept after: share of the "
    f"steps after the shock equal to the clean continuation. Samples: {counts}. Mean share of distinct tokens in "
    f"the clean continuations (low for repetition loops): {repetition}."
)
path = report.write_table(table, out / f"{NAME}.tex", source=NAME, caption=caption, label="tab:shock",
                          column_format="llrrrrrr", escape=False)
fit_float(path, font=r"\small", width=r"\linewidth")
print("shock table:", table.shape[0], "rows")

# %% [markdown]
# ## Numbers quoted in the paper

# %%
def or_list(values) -> str:
    """'1, 2 or 4'."""
    words = [str(v) for v in values]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


numbers = {"ShockK": k, "ShockM": m, "ShockMinTail": min_tail, "ShockMaxShift": max_shift,
           "ShockPositions": ", ".join(str(p) for p in positions), "ShockAlphas": or_list(alphas)}
for spec in models:
    key = model_key(spec)
    for group, gkey in (("memorized", "Mem"), ("control", "Ctrl")):
        row = overall[(overall["spec"] == spec) & (overall["group"] == group)]
        numbers[f"{key}ShockN{gkey}"] = int((selection[selection["spec"] == spec]["group"] == group).sum())
        numbers[f"{key}ShockDistinct{gkey}"] = pct(distinct[(spec, group)]) if (spec, group) in distinct.index else "--"
        for name in ("Runs", "Relock", "RelockShift", "Steps", "Kept", "RelockOne"):
            numbers[f"{key}Shock{name}{gkey}"] = "--"  # defined even for a model without such samples
        if row.empty:
            continue
        r = row.iloc[0]
        numbers[f"{key}ShockRuns{gkey}"] = int(r["n"])
        numbers[f"{key}ShockRelock{gkey}"] = pct(r["relock_rate"])
        numbers[f"{key}ShockRelockShift{gkey}"] = pct(r["relock_shifted_rate"])
        numbers[f"{key}ShockSteps{gkey}"] = steps(r["median_relock_after"])
        numbers[f"{key}ShockKept{gkey}"] = pct(r["mean_retention_after"])
        single = per_alpha[(per_alpha["spec"] == spec) & (per_alpha["group"] == group) & (per_alpha["alpha"] == 1)]
        if len(single):
            numbers[f"{key}ShockRelockOne{gkey}"] = pct(single.iloc[0]["relock_rate"])
    for name, text in zip(("Clean", "Shocked"), examples.get(spec, ("--", "--"))):
        flat = " ".join(text.split())  # one line: newlines and runs of spaces become one space
        numbers[f"{key}ShockExample{name}"] = f"\\texttt{{{esc(flat)}}}"
numbers["ShockExampleId"] = f"\\texttt{{{esc(example_id)}}}"
report.write_macros(out / f"numbers_{NAME}.tex", numbers, source=NAME)
pd.Series(numbers, dtype=str).sort_index().to_frame("value")
