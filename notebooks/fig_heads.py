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
# # Figure and table — which attention heads does recitation need?
#
# Every attention head is ablated in turn (`memkit.ablation`: its slice of the attention output
# projection's input replaced by its mean over generic text — `mean` — or by zeros — `zero`). Per
# head and sample: the change in teacher-forced log-probability of the true continuation (sum over
# the m tokens, nats) and the greedy continuation's Biderman score against the true text
# (`token_match`) and against the model's own clean continuation (`retention`). Memorized samples vs
# controls as in `fig_lens` (`memkit.mechsets`). Concentration: the share of the total |Δ log-prob|
# (memorized samples) held by the top-k heads, the Gini coefficient across heads, and the layer
# holding the largest share.
#
# Outputs (into `out_dir`): `fig_heads.pdf/.png` (layer × head heatmaps), `tab_heads.tex` (top heads),
# `numbers_fig_heads.tex`. The defaults below are smoke settings; paper settings: `params/fig_heads.yml`.

# %% tags=["parameters"]
models = ["smollm2-135m-instruct"]  # pretrained model specs
zoo_profile = None  # organisms: a zoo profile (built if missing) or None
zoo_which = "largest"  # "largest" or "all" sizes of the zoo
labels = {"gemma-3-270m": "Gemma-3-270M", "smollm2-135m-instruct": "SmolLM2-135M-Instruct"}
macro_names = {"gemma-3-270m": "Gemma", "smollm2-135m-instruct": "Smol"}  # letters only
attractors = "data/attractors.jsonl"
ids = ["counting", "days_months", "control_shuffled_genesis_1", "control_shuffled_pi_digits"]  # None: all
k = 32
m = 16
threshold = 0.9
max_memorized = 2
max_controls = 2
modes = ["mean"]  # the first mode is drawn in the heatmaps; each extra mode adds a full scan
extra_modes = {}  # per model: further modes to scan, e.g. {"gemma-3-270m": ["zero"]}
layer_step = {"smollm2-135m-instruct": 15}  # per model: scan every n-th layer (default 1: all layers)
mean_windows = 16  # windows of generic text (128 tokens) for the head means
top_n = 5
greedy = True
batch_size = 16
threads = 1
progress = False
out_dir = "build/smoke/fig_heads"

# %%
import gc
import warnings

warnings.filterwarnings("ignore")

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import transformers

import memkit
from memkit.core.arch import head_shape
from memkit.mechanisms.ablation import concentration, head_effects, head_means, head_scan
from memkit.paper import report
from memkit.paper.report import macro_key
from memkit.paper.sets import generic_texts_for, memorization_sets
from memkit.paths import PROJECT_ROOT

transformers.logging.set_verbosity_error()
torch.set_num_threads(threads)
pd.set_option("display.width", 160)
out = PROJECT_ROOT / out_dir
out.mkdir(parents=True, exist_ok=True)
NAME = "fig_heads"

specs = list(models)
if zoo_profile is not None:
    from memkit.organisms import zoo

    zoo.build_zoo(zoo_profile, progress=progress)
    sizes = zoo.zoo_specs(zoo_profile, step="final")
    specs += sizes[-1:] if zoo_which == "largest" else sizes
records = memkit.read_jsonl(PROJECT_ROOT / attractors)
if ids is not None:
    by_id = {r["id"]: r for r in records}
    records = [by_id[i] for i in ids]


def model_key(spec: str) -> str:
    if spec.startswith("zoo:"):
        return "Zoo" if zoo_which == "largest" else "Zoo" + macro_key(spec[4:].split("/")[-1].split("@")[0])
    return macro_names.get(spec) or macro_key(spec)


def model_label(spec: str) -> str:
    if spec.startswith("zoo:"):
        return f"organism {spec[4:].split('/')[-1].split('@')[0]}"
    return labels.get(spec, spec)


# %% [markdown]
# ## Scans: every head (of the scanned layers), every mode

# %%
scans, shapes, families = [], {}, {}
for spec in specs:
    lm = memkit.load_model(spec)
    samples, groups = memorization_sets(lm, records, k=k, m=m, threshold=threshold, max_memorized=max_memorized,
                                        max_controls=max_controls)
    n_layers, n_heads, _ = head_shape(lm.model)
    shapes[spec] = (n_layers, n_heads)
    families[spec] = lm.arch
    step = layer_step.get(spec, 1)
    heads = [(layer, head) for layer in range(0, n_layers, step) for head in range(n_heads)]
    fit_texts, _ = generic_texts_for(lm)
    model_modes = list(modes) + [x for x in extra_modes.get("zoo" if spec.startswith("zoo:") else spec, [])
                                 if x not in modes]
    means = head_means(lm, fit_texts, max_windows=mean_windows) if "mean" in model_modes else None
    for mode in model_modes:
        scan = head_scan(lm, samples, mode=mode, means=means if mode == "mean" else None, heads=heads,
                         greedy=greedy, batch_size=batch_size, progress=progress)
        scans.append(scan.assign(spec=spec, group=scan["id"].map(groups)))
    del lm
    gc.collect()
scans = pd.concat(scans, ignore_index=True)
scans.groupby(["spec", "mode", "group"], sort=False).agg(
    samples=("id", "nunique"), runs=("id", "size"), mean_delta_logprob=("delta_logprob", "mean"),
    min_delta_logprob=("delta_logprob", "min"), mean_retention=("retention", "mean")).round(3)

# %% [markdown]
# ## Mean effect per head and group; concentration of the memorized effect

# %%
effects = (scans[scans["layer"] >= 0].groupby(["spec", "mode", "group", "layer", "head"], sort=False)
           .agg(delta_logprob=("delta_logprob", "mean"), delta_token_match=("delta_token_match", "mean"),
                retention=("retention", "mean")).reset_index())
conc_rows = []
for (spec, mode), part in effects[effects["group"] == "memorized"].groupby(["spec", "mode"], sort=False):
    stats = concentration(part, "delta_logprob", ks=(1, 3, top_n))
    n_layers = shapes[spec][0]
    conc_rows.append({"spec": spec, "mode": mode, **stats, "top_layer_depth": (stats["top_layer"] + 1) / n_layers,
                      "heads_scanned": len(part), "heads_total": n_layers * shapes[spec][1],
                      "n_breaking": int((part["retention"] < 0.5).sum())})
conc = pd.DataFrame(conc_rows)
conc.round(3)

# %% [markdown]
# ## Top heads (first mode, memorized samples), with the same heads' effect on the controls

# %%
main_mode = modes[0]
table_rows = []
for spec in specs:
    mem = effects[(effects["spec"] == spec) & (effects["mode"] == main_mode) & (effects["group"] == "memorized")]
    ctrl = effects[(effects["spec"] == spec) & (effects["mode"] == main_mode) & (effects["group"] == "control")]
    ctrl = ctrl.set_index(["layer", "head"])
    total = mem["delta_logprob"].abs().sum()
    for _, row in mem.sort_values(["delta_logprob", "layer", "head"], kind="stable").head(top_n).iterrows():
        key = (row["layer"], row["head"])
        table_rows.append({
            "model": model_label(spec), "head": f"L{int(row['layer'])}.H{int(row['head'])}",
            "dlp_mem": row["delta_logprob"], "dlp_ctrl": ctrl.loc[key, "delta_logprob"] if key in ctrl.index else np.nan,
            "ret_mem": row["retention"], "share": abs(row["delta_logprob"]) / total if total > 0 else np.nan})
top = pd.DataFrame(table_rows)
top.round(3)

# %%
tab = top.rename(columns={"model": "Model", "head": "Head", "dlp_mem": r"$\Delta\log p$ mem.",
                          "dlp_ctrl": r"$\Delta\log p$ ctrl.", "ret_mem": "retention mem.", "share": "share"})
table_path = report.write_table(tab, out / "tab_heads.tex", source=NAME, escape=False, float_format="%.2f",
                               caption=f"The {top_n} heads whose {main_mode} ablation lowers the teacher-forced log-probability "
                                       "of memorized continuations the most (mean over memorized samples, nats summed over the "
                                       "continuation), the same heads on the controls, the greedy retention of the memorized "
                                       "samples, and each head's share of the total $|\\Delta\\log p|$ over all heads. "
                                       "Generated by \\texttt{notebooks/fig\\_heads.py}.",
                               label="tab:heads", column_format="llrrrr")
print("top-heads table:", table_path.name)

# %% [markdown]
# ## Figure: layer × head heatmaps (first mode), memorized and control samples

# %%
plt.rcParams.update({"font.size": 7, "axes.titlesize": 7})
fig, axes = plt.subplots(2, len(specs), figsize=(min(7.0, 2.0 * len(specs) + 1.0), 4.2), squeeze=False,
                         constrained_layout=True)
for col, spec in enumerate(specs):
    n_layers, n_heads = shapes[spec]
    part = effects[(effects["spec"] == spec) & (effects["mode"] == main_mode)]
    vmax = max(float(part["delta_logprob"].abs().max()), 1e-6)
    for row, group in enumerate(["memorized", "control"]):
        ax = axes[row][col]
        grid = np.full((n_layers, n_heads), np.nan)
        sub = part[part["group"] == group]
        grid[sub["layer"].to_numpy(), sub["head"].to_numpy()] = sub["delta_logprob"].to_numpy()
        image = ax.imshow(grid, origin="lower", aspect="auto", cmap="RdBu", vmin=-vmax, vmax=vmax,
                          interpolation="nearest")
        ax.set_title(f"{model_label(spec)}\n{group}" if row == 0 else group)
        ax.set_xticks(range(n_heads), [str(h) if n_heads <= 10 or h % 2 == 0 else "" for h in range(n_heads)])
        ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        if row == 1:
            ax.set_xlabel("head")
        if col == 0:
            ax.set_ylabel("layer")
    fig.colorbar(image, ax=[axes[0][col], axes[1][col]], shrink=0.6, location="bottom",
                 label=r"$\Delta \log p$(true continuation), nats")
report.save_figure(fig, out, NAME)
plt.close(fig)

# %% [markdown]
# ## Numbers quoted in the paper

# %%
def fmt(x: float, digits: int = 2) -> str:
    return "--" if not np.isfinite(x) else f"{x:.{digits}f}"


numbers = {"HeadsK": k, "HeadsM": m, "HeadsMode": main_mode, "HeadsTopN": top_n}
for spec in specs:
    key = model_key(spec)
    n_layers, n_heads = shapes[spec]
    numbers[f"{key}HeadsLayers"] = n_layers
    numbers[f"{key}HeadsPerLayer"] = n_heads
    numbers[f"{key}HeadsArch"] = report.latex_escape(families[spec])
    spec_modes = list(scans.loc[scans["spec"] == spec, "mode"].unique())
    for mode in spec_modes:
        mkey = "" if mode == main_mode else macro_key(mode)
        row = conc[(conc["spec"] == spec) & (conc["mode"] == mode)]
        if row.empty:
            continue
        row = row.iloc[0]
        numbers[f"{key}Heads{mkey}TopOneShare"] = f"{100 * row['top1_share']:.0f}"
        numbers[f"{key}Heads{mkey}TopShare"] = f"{100 * row[f'top{top_n}_share']:.0f}"
        numbers[f"{key}Heads{mkey}Gini"] = fmt(row["gini"])
        numbers[f"{key}Heads{mkey}TopLayer"] = int(row["top_layer"])
        numbers[f"{key}Heads{mkey}TopLayerDepth"] = f"{100 * row['top_layer_depth']:.0f}"
        numbers[f"{key}Heads{mkey}TopLayerShare"] = f"{100 * row['top_layer_share']:.0f}"
        numbers[f"{key}Heads{mkey}Scanned"] = int(row["heads_scanned"])
        numbers[f"{key}Heads{mkey}Breaking"] = int(row["n_breaking"])
        part = effects[(effects["spec"] == spec) & (effects["mode"] == mode)]
        for group, gkey in (("memorized", "Mem"), ("control", "Ctrl")):
            sub = part[part["group"] == group]
            numbers[f"{key}Heads{mkey}MeanDelta{gkey}"] = fmt(sub["delta_logprob"].mean()) if len(sub) else "--"
            numbers[f"{key}Heads{mkey}MinDelta{gkey}"] = fmt(sub["delta_logprob"].min()) if len(sub) else "--"
        best = top[top["model"] == model_label(spec)]
        if mode == main_mode and len(best):
            numbers[f"{key}HeadsBest"] = best["head"].iloc[0]
            numbers[f"{key}HeadsBestDelta"] = fmt(best["dlp_mem"].iloc[0])
            numbers[f"{key}HeadsBestDeltaCtrl"] = fmt(best["dlp_ctrl"].iloc[0])
    if len(spec_modes) > 1:  # do the two ablation modes agree on which heads matter?
        a = effects[(effects["spec"] == spec) & (effects["mode"] == spec_modes[0]) & (effects["group"] == "memorized")]
        b = effects[(effects["spec"] == spec) & (effects["mode"] == spec_modes[1]) & (effects["group"] == "memorized")]
        merged = a.merge(b, on=["layer", "head"], suffixes=("_a", "_b"))
        rho = merged["delta_logprob_a"].rank().corr(merged["delta_logprob_b"].rank())
        numbers[f"{key}HeadsModeRankCorr"] = fmt(rho)
report.write_macros(out / f"numbers_{NAME}.tex", numbers, source=NAME)
pd.Series(numbers, dtype=str).sort_index().to_frame("value")
