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
import warnings

warnings.filterwarnings("ignore")

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import transformers

import memkit
from memkit.core.metrics import SEED_SCORE_THRESHOLD
from memkit.paper import report
from memkit.paper.experiments import RULES, add_verdicts, run_grid, summarize
from memkit.paper.report import macro_key
from memkit.paths import PROJECT_ROOT

transformers.logging.set_verbosity_error()
pd.set_option("display.width", 160)
out = PROJECT_ROOT / out_dir
out.mkdir(parents=True, exist_ok=True)
NAME = "fig_scale"

# %% [markdown]
# ## Measured points: every model × mode (extractions come from the cache when warm)

# %%
records = memkit.read_jsonl(PROJECT_ROOT / attractors)
if ids is not None:
    by_id = {r["id"]: r for r in records}
    records = [by_id[i] for i in ids]
runs = add_verdicts(
    run_grid(models, records, k=k, m=m, modes=modes, short=short, batch_size=batch_size, progress=False),
    biderman_m=biderman_m,
)
attractor_rows = runs[runs["meta_category"] != "control"]
seed_ids = list(dict.fromkeys(pd.read_csv(PROJECT_ROOT / literature)["attractor_id"]))
ours = summarize(attractor_rows, seed_ids=seed_ids)
best_seven = (attractor_rows[attractor_rows["id"].isin(seed_ids)]
              .sort_values("seed_score", ascending=False, kind="stable")
              .drop_duplicates(["spec", "mode"]).set_index(["spec", "mode"])["id"])
ours["best_seed_id"] = [best_seven.get((s, md), "") for s, md in zip(ours["spec"], ours["mode"])]
ours["label"] = ours["spec"].map(lambda s: labels.get(s, s))

# organisms (trained on the KJV Bible only): the same attractors, raw prompt (they have no chat template)
organisms = pd.DataFrame(columns=ours.columns)
if zoo_profile is not None:
    from memkit.organisms import zoo

    zoo.build_zoo(zoo_profile, progress=False)
    org_runs = add_verdicts(run_grid(zoo.zoo_specs(zoo_profile), records, k=k, m=m, modes=["raw"], short=short,
                                     batch_size=batch_size, progress=False), biderman_m=biderman_m)
    organisms = summarize(org_runs[org_runs["meta_category"] != "control"], seed_ids=seed_ids)
    organisms["label"] = organisms["spec"]
    organisms["best_id"] = (org_runs[org_runs["meta_category"] != "control"]
                            .sort_values("token_match", ascending=False, kind="stable")
                            .drop_duplicates("spec").set_index("spec")["id"].reindex(organisms["spec"]).to_numpy())
pd.concat([ours, organisms])[["spec", "mode", "n_params", "n", "max_seed_score_seed_ids", "best_seed_id",
                              "mem_exact_rate", "mem_near_verbatim_rate", "mem_seed_rate"]].round(3)

# %% [markdown]
# ## Quoted points (from the seed documents, not measured here)

# %%
lit = pd.read_csv(PROJECT_ROOT / literature_scale)
lit = lit[lit["metric"].str.startswith(literature_metric)].reset_index(drop=True)
MEASURED, UNCITED = "quoted: original study (chat API)", "quoted: uncited in original study"
lit["kind"] = np.where(lit["study"].str.startswith("original study"), MEASURED, UNCITED)
lit[["model", "params", "value", "kind"]]

# %% [markdown]
# ## Figure

# %%
RULE_STYLE = {"mem_exact": ("exact match (E)", "o"), "mem_biderman": ("Biderman score = 1 (B)", "s"),
              "mem_near_verbatim": ("near-verbatim (N)", "^"), "mem_seed": ("seed score $\\geq$ 0.7 (S)", "D")}
MODE_FILL = {"raw": True, "chat": False}


def params_label(x: float, _pos=None) -> str:
    return f"{x / 1e9:.3g}B" if x >= 1e9 else f"{x / 1e6:.3g}M" if x >= 1e6 else f"{x / 1e3:.3g}k"


def stack_index(xs, ys) -> list[int]:
    """How many earlier points sit close to each point (similar score, sizes within 10x): stacks labels."""
    index, placed = [], []
    for x, y in zip(xs, ys):
        index.append(sum(abs(y - py) < 0.06 and abs(np.log10(x / px)) < 1.0 for px, py in placed))
        placed.append((x, y))
    return index


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
for kind, marker in ((MEASURED, "s"), (UNCITED, "X")):
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
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(params_label))
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
def human(n: float) -> str:
    """Parameter count as the paper writes it: 135M, 7B, 175B."""
    return f"{n / 1e9:.0f}B" if n >= 1e9 else f"{n / 1e6:.0f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"


measured_lit = lit[lit["kind"] == MEASURED]
uncited_lit = lit[lit["kind"] == UNCITED]
numbers = {
    "ScaleNModels": len(models), "ScaleNCombos": len(ours), "ScaleNLitPoints": len(lit),
    "ScaleSmallestParams": human(ours["n_params"].min()), "ScaleLargestParams": human(ours["n_params"].max()),
    "ScaleOursAboveThreshold": int((ours["max_seed_score_seed_ids"] >= SEED_SCORE_THRESHOLD).sum()),
    "ScaleLitMeasuredMax": f"{measured_lit['value'].max():.2f}" if len(measured_lit) else "--",
    "ScaleLitMeasuredSmallestParams": human(measured_lit["params"].min()) if len(measured_lit) else "--",
    "ScaleLitUncitedMin": f"{uncited_lit['value'].min():.2f}" if len(uncited_lit) else "--",
    "ScaleLitUncitedSmallestParams": human(uncited_lit["params"].min()) if len(uncited_lit) else "--",
    "ScaleSizeRatio": f"{measured_lit['params'].min() / ours['n_params'].max():.0f}" if len(measured_lit) else "--",
}
numbers["ScaleNOrganisms"] = len(organisms)
if len(organisms):
    best = organisms.sort_values("mem_biderman_rate", ascending=False, kind="stable").iloc[0]
    numbers.update({
        "ScaleOrganismSmallestParams": human(organisms["n_params"].min()),
        "ScaleOrganismLargestParams": human(organisms["n_params"].max()),
        "ScaleOrganismMaxSeedSeven": f"{organisms['max_seed_score_seed_ids'].max():.2f}",
        "ScaleOrganismMaxExactRate": f"{organisms['mem_exact_rate'].max():.2f}",
        "ScaleOrganismMaxBidermanRate": f"{organisms['mem_biderman_rate'].max():.2f}",
        "ScaleOrganismBestId": f"\\texttt{{{report.latex_escape(str(best['best_id']))}}}",
    })
for row in ours.itertuples():
    key = "Scale" + (macro_names.get(row.spec) or macro_key(row.model)) + macro_key(row.mode)
    numbers[f"{key}MaxSeedSeven"] = f"{row.max_seed_score_seed_ids:.2f}"
    numbers[f"{key}BestSeven"] = f"\\texttt{{{report.latex_escape(row.best_seed_id)}}}" if row.best_seed_id else "--"
    numbers[f"{key}Params"] = human(row.n_params)
report.write_macros(out / f"numbers_{NAME}.tex", numbers, source=NAME)
pd.Series(numbers, dtype=str).sort_index().to_frame("value")
