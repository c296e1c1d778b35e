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
# # Figure — phase transitions of retention under controlled actions
#
# For every action kind (token, embedding and logit level; `force_token` shocks are in
# `tab_shock`), how much of its clean greedy continuation does a model keep as the magnitude α
# grows — on the attractors it recites and on non-memorized controls (shuffled texts)?
# Retention is the Biderman score (fraction of the m positions equal) and the exact match of the
# perturbed continuation, both against the model's own clean continuation (= the true text for a
# memorized sample). A logistic with a floor is fitted to each mean curve: α* is where it crosses
# 0.5, with a bootstrap CI over samples; the drop is *sharp* when its 90 %→10 % width is smaller
# than α* (definitions in `memkit.dynamics`).
#
# Outputs (into `out_dir`): `fig_phase.pdf/.png`, `tab_ranking.tex` (robustness ranking per model
# and action family), `numbers_fig_phase.tex`.
# The defaults below are smoke settings; the paper settings are in `params/fig_phase.yml`.

# %% tags=["parameters"]
models = ["smollm2-135m-instruct"]  # model specs (embedded names, folders, .gguf, zoo:...)
labels = {"gemma-3-270m": "Gemma-3-270M", "smollm2-135m-instruct": "SmolLM2-135M-Instruct"}
macro_names = {"gemma-3-270m": "Gemma", "smollm2-135m-instruct": "Smol"}  # letters only
attractors = "data/attractors.jsonl"
ids = ["counting", "days_months", "control_shuffled_genesis_1", "control_shuffled_pi_digits"]  # None: every record
k = 32  # prefix tokens
m = 8  # continuation tokens compared
clean_m = 8  # suffix length of the clean runs that select the memorized samples (at least m; 64 reuses Table 1's runs)
threshold = 0.9  # memorized: clean Biderman score against the true text at least threshold (or exact match)
max_memorized = 2  # per model (None: all)
max_controls = 2  # shuffled-text controls (None: all)
kinds = None  # None: every token, embedding and logit kind
alphas = {"token": [0, 0.125, 0.5], "embedding": [0, 0.5, 2], "logit": [0, 4, 16]}  # α grid per family
model_alphas = {}  # per-model overrides of `alphas`, e.g. {"gemma-3-270m": {"embedding": [0, 0.01, 0.1]}}
embed_layer_frac = 0.25  # embedding actions act after block round(frac * (n_layers - 1))
seeds = [0]  # action seeds (kinds with random positions / tokens / directions)
n_boot = 50  # bootstrap replicates over samples for the CI of α*
boot_seed = 0
sharp_below = 1.0  # sharp transition: 90 %→10 % width < sharp_below * α*
batch_size = 64
threads = 1  # torch intra-op threads: 1 is fastest for these small decode batches on a shared CPU
out_dir = "build/smoke/fig_phase"

# %%
import gc
import warnings

warnings.filterwarnings("ignore")

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import transformers

import memkit
from memkit.dynamics.actions import FAMILIES, KINDS, difference_of_means
from memkit.dynamics.sweeps import alpha_sweep, distinct_share, dynamics_samples, typical_coordinate_alpha
from memkit.dynamics.transitions import more_robust, rank_robustness, transition_table
from memkit.paper import report
from memkit.paper.report import fit_float, format_alpha, format_ci, macro_key
from memkit.paths import PROJECT_ROOT

transformers.logging.set_verbosity_error()
torch.set_num_threads(threads)
pd.set_option("display.width", 160)
out = PROJECT_ROOT / out_dir
out.mkdir(parents=True, exist_ok=True)
NAME = "fig_phase"
SWEEP_KINDS = [kind for kind in (kinds or KINDS) if FAMILIES[kind] != "shock"]
FAMILY_ORDER = [f for f in ("token", "embedding", "logit") if any(FAMILIES[kd] == f for kd in SWEEP_KINDS)]

# %% [markdown]
# ## Samples: the attractors each model recites, and the controls

# %%
records = memkit.read_jsonl(PROJECT_ROOT / attractors)
if ids is not None:
    by_id = {r["id"]: r for r in records}
    records = [by_id[i] for i in ids]


def model_key(spec: str) -> str:
    return macro_names.get(spec) or macro_key(spec)


def grid_of(spec: str, family: str) -> list[float]:
    return list(model_alphas.get(spec, {}).get(family, alphas[family]))


runs, selection, notes = [], [], {}
for spec in models:
    lm = memkit.load_model(spec)
    samples, clean, groups = dynamics_samples(lm, records, k=k, m=m, clean_m=clean_m, threshold=threshold,
                                              max_memorized=max_memorized, max_controls=max_controls,
                                              batch_size=16)
    layer = int(round(embed_layer_frac * (lm.n_layers - 1)))
    group_of = dict(zip(clean["id"], clean["id"].map(groups)))
    typical = typical_coordinate_alpha(lm, samples, layer)  # embedding alpha that matches a typical coordinate
    selection.append(clean.assign(spec=spec, group=clean["id"].map(groups), layer=layer, typical_alpha=typical,
                                  distinct=clean["generated_ids"].map(distinct_share))[
        ["spec", "id", "group", "token_match", "exact_match", "distinct", "layer", "typical_alpha"]])
    mem_ids = [i for i in clean["id"] if group_of[i] == "memorized"]
    ctrl_ids = [i for i in clean["id"] if group_of[i] == "control"]
    direction = None
    if mem_ids and ctrl_ids:  # embed_direction: from the memorized prefixes towards the controls' mean state
        prefix = {s.id: lm.tokenizer.decode(list(s.prefix_ids)) for s in samples}
        direction = difference_of_means(lm, layer, [prefix[i] for i in ctrl_ids], [prefix[i] for i in mem_ids])
    for kind in SWEEP_KINDS:
        if kind == "embed_direction" and direction is None:
            notes[(spec, kind)] = "no direction: needs memorized samples and controls"
            continue
        frame = alpha_sweep(lm, samples, clean, kind, grid_of(spec, FAMILIES[kind]), layer=layer, seeds=seeds,
                            direction=direction, batch_size=batch_size)
        runs.append(frame.drop(columns="generated_ids").assign(spec=spec, group=frame["id"].map(group_of)))
    del lm
    gc.collect()
runs = pd.concat(runs, ignore_index=True)
selection = pd.concat(selection, ignore_index=True)
for (spec, kind), note in notes.items():
    print(f"{spec} {kind}: {note}")
selection.round(3)

# %% [markdown]
# ## Mean retention per model × kind × group × α

# %%
curves = (runs.groupby(["spec", "kind", "group", "alpha"], sort=False)[["retention", "exact_retention"]].mean()
          .reset_index())
curves.pivot_table(index=["spec", "kind", "group"], columns="alpha", values="retention", sort=False).sort_index(
    axis=1).round(3)

# %% [markdown]
# ## Sigmoid fits: critical α* (bootstrap CI over samples), sharp or gradual

# %%
fits = transition_table(runs, value="retention", by=("spec", "kind", "group"), n_boot=n_boot, seed=boot_seed,
                        sharp_below=sharp_below).rename(columns={"spec": "model"})
exact_fits = transition_table(runs, value="exact_retention", by=("spec", "kind", "group"), n_boot=n_boot,
                              seed=boot_seed, sharp_below=sharp_below).rename(columns={"spec": "model"})
fits[["model", "kind", "group", "n_samples", "alpha_star", "ci_low", "ci_high", "floor", "rel_width", "verdict",
      "note"]].round(3)

# %%
ranking = rank_robustness(fits)
wins = more_robust(fits)
ranking[["model", "family", "kind", "rank", "alpha_star", "ctrl_alpha_star", "mem_over_ctrl", "verdict"]].round(3)

# %% [markdown]
# ## Figure

# %%
FAMILY_TITLE = {"token": "token actions: $\\alpha$ = fraction of the prefix",
                "embedding": "embedding actions: $\\alpha$ × mean $|h_\\ell|$",
                "logit": "logit actions: $\\alpha$ = logit offset"}
GROUP_STYLE = {"memorized": dict(ls="-", marker="o", mfc=None), "control": dict(ls="--", marker="s", mfc="white")}
kind_colour = {kind: f"C{i % 10}" for i, kind in enumerate(SWEEP_KINDS)}
plt.rcParams.update({"font.size": 7, "axes.titlesize": 7, "legend.fontsize": 6})
fig, axes = plt.subplots(len(models), len(FAMILY_ORDER), figsize=(7.0, 2.0 * len(models) + 0.9), squeeze=False,
                         sharey=True, constrained_layout=True)
for row, spec in enumerate(models):
    for col, family in enumerate(FAMILY_ORDER):
        ax = axes[row, col]
        grid = sorted(a for a in grid_of(spec, family) if a > 0)
        zero_at = grid[0] / 2  # log axis: alpha = 0 is drawn one grid step left of the smallest alpha

        def xs(values):
            return [a if a > 0 else zero_at for a in values]

        for kind in [kd for kd in SWEEP_KINDS if FAMILIES[kd] == family]:
            for group, style in GROUP_STYLE.items():
                part = curves[(curves["spec"] == spec) & (curves["kind"] == kind) & (curves["group"] == group)]
                if part.empty:
                    continue
                colour = kind_colour[kind]
                ax.plot(xs(part["alpha"]), part["retention"], color=colour, lw=1.0, ms=3, ls=style["ls"],
                        marker=style["marker"], mfc=style["mfc"] or colour,
                        label=kind if group == "memorized" else None)
        ax.axhline(0.5, color="0.5", lw=0.5, ls=":")
        ax.set_xscale("log")
        ax.set_xticks([zero_at] + grid, ["0"] + [format_alpha(a) for a in grid], fontsize=5.5)
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_ylim(-0.04, 1.04)
        ax.grid(alpha=0.3, lw=0.4)
        if row == 0:
            ax.set_title(FAMILY_TITLE[family])
        if col == 0:
            ax.set_ylabel(f"{labels.get(spec, spec)}\nretention (Biderman)")
        if row == len(models) - 1:
            ax.set_xlabel("$\\alpha$")
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.32), ncol=2, frameon=False, handlelength=1.6)
handles = [matplotlib.lines.Line2D([], [], color="0.3", lw=1.0, ms=3, ls=style["ls"], marker=style["marker"],
                                   mfc=style["mfc"] or "0.3", label=group) for group, style in GROUP_STYLE.items()]
fig.legend(handles=handles, loc="outside upper center", ncol=2, frameon=False)
report.save_figure(fig, out, NAME)
plt.close(fig)

# %% [markdown]
# ## Table: robustness ranking per model and action family

# %%
esc = report.latex_escape
fit_index = fits.set_index(["model", "kind", "group"])
exact_index = exact_fits.set_index(["model", "kind", "group"])


def star(row) -> str:
    return format_alpha(row["alpha_star"], alpha_min=row["alpha_min"])


def cell(spec: str, kind: str, group: str, table=None) -> str:
    table = fit_index if table is None else table
    key = (spec, kind, group)
    return star(table.loc[key]) if key in table.index else "--"


def ci_cell(spec: str, kind: str) -> str:
    key = (spec, kind, "memorized")
    if key not in fit_index.index:
        return "--"
    row = fit_index.loc[key]
    return format_ci(row["ci_low"], row["ci_high"], row["alpha_max"], alpha_min=row["alpha_min"])


table = pd.DataFrame({("", "Family"): [FAMILIES[kd] for kd in SWEEP_KINDS],
                      ("", "Action"): [esc(kd) for kd in SWEEP_KINDS]})
ranks = ranking.set_index(["model", "kind"])
for spec in models:
    head = esc(labels.get(spec, spec))
    table[(head, "Rank")] = [str(int(ranks.loc[(spec, kd), "rank"])) if (spec, kd) in ranks.index else "--"
                             for kd in SWEEP_KINDS]
    table[(head, "$\\alpha^*$ mem.")] = [cell(spec, kd, "memorized") for kd in SWEEP_KINDS]
    table[(head, "95\\% CI")] = [ci_cell(spec, kd) for kd in SWEEP_KINDS]
    table[(head, "Drop")] = [fit_index.loc[(spec, kd, "memorized"), "verdict"] if (spec, kd, "memorized") in
                             fit_index.index else "--" for kd in SWEEP_KINDS]
    table[(head, "EM")] = [cell(spec, kd, "memorized", table=exact_index) for kd in SWEEP_KINDS]
    table[(head, "$\\alpha^*$ ctrl")] = [cell(spec, kd, "control") for kd in SWEEP_KINDS]
n_mem = selection[selection["group"] == "memorized"].groupby("spec")["id"].count()
n_ctrl = selection[selection["group"] == "control"].groupby("spec")["id"].count()
counts = "; ".join(f"{esc(labels.get(s, s))}: {int(n_mem.get(s, 0))} memorized, {int(n_ctrl.get(s, 0))} controls"
                   for s in models)
def grid_text(spec: str, family: str) -> str:
    return ", ".join(format_alpha(a) for a in grid_of(spec, family) if a > 0)


def family_grids(family: str) -> str:
    """The grid of a family; one per model (labelled) when the models' grids differ."""
    texts = {s: grid_text(s, family) for s in models}
    if len(set(texts.values())) == 1:
        return texts[models[0]]
    return ", ".join(f"{text} ({esc(labels.get(s, s))})" for s, text in texts.items())


grids = "; ".join(f"{family}: {family_grids(family)}" for family in FAMILY_ORDER)
caption = (
    f"Robustness of recited attractors to each action, per model (rank 1 = most robust within its family: "
    f"largest $\\alpha^*$, none within the grid counting as largest). $\\alpha^*$: magnitude at which the fitted "
    f"retention curve (Biderman score against the clean continuation, $k={k}$, $m={m}$) falls to 0.5, with a "
    f"95\\% bootstrap CI over samples ({n_boot} replicates; $>$ marks replicates without a crossing); -- when "
    f"retention never falls to 0.5 within the grid, $<$ when it falls before the smallest $\\alpha$ of the grid. "
    f"Drop: sharp when the 10--90\\% width of the fitted drop is "
    f"below $\\alpha^*$. EM: $\\alpha^*$ of the exact-match retention. ctrl: $\\alpha^*$ of the non-memorized "
    f"controls. $\\alpha$ units differ between families (token: fraction of the prefix; embedding: multiple of "
    f"the mean hidden-state norm; logit: logit offset), so ranks compare kinds within a family only. "
    f"Samples: {counts}. Grids: {grids}."
)
with pd.option_context("styler.latex.multicol_align", "c"):
    path = report.write_table(table, out / "tab_ranking.tex", source=NAME, caption=caption, label="tab:ranking",
                              column_format="ll" + "rrlrlr" * len(models), escape=False)
fit_float(path, font=r"\scriptsize", width=r"\linewidth")
print("ranking table:", table.shape[0], "rows x", table.shape[1], "columns")

# %% [markdown]
# ## Numbers quoted in the paper

# %%
def word_list(values) -> str:
    values = [f"\\texttt{{{esc(v)}}}".replace("\\_", "\\_\\allowbreak{}") for v in values]  # long ids may break
    return ", ".join(values) if values else "none"


mem = fits[fits["group"] == "memorized"]
ctrl = fits[fits["group"] == "control"]
numbers = {
    "PhaseK": k, "PhaseM": m, "PhaseThreshold": f"{threshold:.2f}", "PhaseNBoot": n_boot,
    "PhaseSharpBelow": f"{sharp_below:g}", "PhaseNKinds": len(SWEEP_KINDS),
    "PhaseEmbedLayerFrac": f"{embed_layer_frac:g}",
    "PhaseNFits": int(mem["alpha_star"].notna().sum()), "PhaseNCurves": len(mem),
    "PhaseNSharp": int((mem["verdict"] == "sharp").sum()), "PhaseNGradual": int((mem["verdict"] == "gradual").sum()),
    "PhaseNNone": int((mem["verdict"] == "none").sum()),
    "PhaseNCtrlSharp": int((ctrl["verdict"] == "sharp").sum()),
    "PhaseNCtrlGradual": int((ctrl["verdict"] == "gradual").sum()),
    "PhaseNCtrlNone": int((ctrl["verdict"] == "none").sum()), "PhaseNCtrlCurves": len(ctrl),
    "PhaseMemMoreRobust": int(wins["group_wins"].sum()), "PhaseNComparisons": len(wins),
    "PhaseNSeeds": len(seeds),
    "PhaseMaxMemorized": "all" if max_memorized is None else max_memorized,
    "PhaseMaxControls": "all" if max_controls is None else max_controls,
}
for family in FAMILY_ORDER:
    fam = mem[mem["family"] == family]
    numbers[f"PhaseNCurves{macro_key(family)}"] = len(fam)
    numbers[f"PhaseNSharp{macro_key(family)}"] = int((fam["verdict"] == "sharp").sum())
    numbers[f"PhaseNGradual{macro_key(family)}"] = int((fam["verdict"] == "gradual").sum())
    numbers[f"PhaseNNone{macro_key(family)}"] = int((fam["verdict"] == "none").sum())
losses = wins[~wins["group_wins"]]
numbers["PhaseLessRobustList"] = "; ".join(
    f"\\texttt{{{esc(row.kind)}}} ({esc(labels.get(row.model, row.model))})" for row in losses.itertuples()) or "none"
numbers["PhaseNLessRobust"] = len(losses)
share = wins["group_wins"].mean() if len(wins) else float("nan")
numbers["PhaseFragilityVerdict"] = ("less fragile than" if share > 0.5 else "more fragile than" if share < 0.5 else
                                    "as fragile as") if len(wins) else "not comparable with"
ratios = ranking["mem_over_ctrl"].dropna()
numbers["PhaseMedianRatio"] = f"{ratios.median():.1f}" if len(ratios) else "--"
numbers["PhaseNRatios"] = len(ratios)
for spec in models:
    key = model_key(spec)
    sel = selection[selection["spec"] == spec]
    numbers[f"{key}PhaseNMemorized"] = int((sel["group"] == "memorized").sum())
    numbers[f"{key}PhaseNControls"] = int((sel["group"] == "control").sum())
    numbers[f"{key}PhaseMemorizedList"] = word_list(sel.loc[sel["group"] == "memorized", "id"])
    numbers[f"{key}PhaseEmbedLayer"] = int(sel["layer"].iloc[0])
    numbers[f"{key}AlphaTypical"] = format_alpha(float(sel["typical_alpha"].iloc[0]))
    for group, gkey in (("memorized", "Mem"), ("control", "Ctrl")):
        share = sel.loc[sel["group"] == group, "distinct"].mean()
        numbers[f"{key}PhaseDistinct{gkey}"] = f"{100 * share:.0f}" if np.isfinite(share) else "--"
    for family in FAMILY_ORDER:
        numbers[f"{key}Phase{macro_key(family)}Alphas"] = grid_text(spec, family)
    model_wins = wins[wins["model"] == spec]
    numbers[f"{key}MemMoreRobust"] = int(model_wins["group_wins"].sum())
    numbers[f"{key}NComparisons"] = len(model_wins)
    for kind in SWEEP_KINDS:
        kk = macro_key(kind)
        numbers[f"{key}Rank{kk}"] = "--"
        for group, gkey in (("memorized", ""), ("control", "Ctrl")):
            for name in (f"AlphaStar{kk}", f"AlphaStar{kk}CI", f"Verdict{kk}", f"ExactAlphaStar{kk}"):
                numbers[f"{key}{gkey}{name}"] = "--"  # defined even for a model without such samples
            if (spec, kind, group) not in fit_index.index:
                continue
            row = fit_index.loc[(spec, kind, group)]
            numbers[f"{key}{gkey}AlphaStar{kk}"] = star(row)
            numbers[f"{key}{gkey}AlphaStar{kk}CI"] = format_ci(row["ci_low"], row["ci_high"], row["alpha_max"],
                                                               alpha_min=row["alpha_min"])
            numbers[f"{key}{gkey}Verdict{kk}"] = row["verdict"]
            numbers[f"{key}{gkey}ExactAlphaStar{kk}"] = star(exact_index.loc[(spec, kind, group)])
        if (spec, kind) in ranks.index:
            numbers[f"{key}Rank{kk}"] = int(ranks.loc[(spec, kind), "rank"])
    for family in FAMILY_ORDER:
        top = ranking[(ranking["model"] == spec) & (ranking["family"] == family)]
        numbers[f"{key}MostRobust{macro_key(family)}"] = numbers[f"{key}LeastRobust{macro_key(family)}"] = "--"
        if len(top):
            numbers[f"{key}MostRobust{macro_key(family)}"] = f"\\texttt{{{esc(top.iloc[0]['kind'])}}}"
            numbers[f"{key}LeastRobust{macro_key(family)}"] = f"\\texttt{{{esc(top.iloc[-1]['kind'])}}}"
report.write_macros(out / f"numbers_{NAME}.tex", numbers, source=NAME)
pd.Series(numbers, dtype=str).sort_index().to_frame("value")
