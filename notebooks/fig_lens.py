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
# # Figure — logit lens: where does a memorized continuation lock in?
#
# Teacher-forced over prefix + true continuation, the residual stream after every decoder block is
# decoded with the model's own final norm and unembedding (`memkit.lens`; the last layer equals the
# model's logits). For every continuation position we get the rank of the true token per layer; its
# *lock-in layer* is the first block from which the true token stays top-1 up to the output (only
# positions the model finally predicts correctly have one). Memorized samples (attractors a
# pretrained model recites; top-duplication canaries an organism recites) against controls
# (shuffled texts; never-inserted canaries), `memkit.mechsets`.
#
# Outputs (into `out_dir`): `fig_lens.pdf/.png`, `numbers_fig_lens.tex`. The defaults below are
# smoke settings; the paper settings are in `params/fig_lens.yml`.

# %% tags=["parameters"]
models = ["smollm2-135m-instruct"]  # pretrained model specs
zoo_profile = None  # organisms: a zoo profile (built if missing) or None
zoo_which = "largest"  # "largest" or "all" sizes of the zoo
labels = {"gemma-3-270m": "Gemma-3-270M", "smollm2-135m-instruct": "SmolLM2-135M-Instruct"}
macro_names = {"gemma-3-270m": "Gemma", "smollm2-135m-instruct": "Smol"}  # letters only
attractors = "data/attractors.jsonl"
ids = ["counting", "days_months", "alphabet", "control_shuffled_genesis_1", "control_shuffled_pi_digits"]  # None: all
k = 32
m = 16
threshold = 0.9
max_memorized = 3
max_controls = 2
batch_size = 8
threads = 1
progress = False
out_dir = "build/smoke/fig_lens"

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
from memkit.mechanisms.lens import lock_in, logit_lens
from memkit.paper import report
from memkit.paper.report import macro_key
from memkit.paper.sets import memorization_sets
from memkit.paths import PROJECT_ROOT

transformers.logging.set_verbosity_error()
torch.set_num_threads(threads)
pd.set_option("display.width", 160)
out = PROJECT_ROOT / out_dir
out.mkdir(parents=True, exist_ok=True)
NAME = "fig_lens"
GROUPS = ["memorized", "control"]

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
# ## Lens runs

# %%
frames, locks, n_layers = [], [], {}
for spec in specs:
    lm = memkit.load_model(spec)
    samples, groups = memorization_sets(lm, records, k=k, m=m, threshold=threshold, max_memorized=max_memorized,
                                        max_controls=max_controls)
    n_layers[spec] = lm.n_layers
    frame = logit_lens(lm, samples, batch_size=batch_size, progress=progress)
    frames.append(frame.assign(spec=spec, group=frame["id"].map(groups)))
    lock = lock_in(frame)
    locks.append(lock.assign(spec=spec, group=lock["id"].map(groups)))
    del lm
    gc.collect()
lens = pd.concat(frames, ignore_index=True)
locks = pd.concat(locks, ignore_index=True)
locks["depth"] = locks["lock_in"] / locks["spec"].map(n_layers).sub(1)
locks.groupby(["spec", "group"], sort=False)["id"].nunique().rename("samples").to_frame()

# %% [markdown]
# ## Per model and group: final top-1 rate, lock-in layer (positions predicted correctly at the output)

# %%
rows = []
for (spec, group), part in locks.groupby(["spec", "group"], sort=False):
    final = part[part["final_top1"]]
    rows.append({"spec": spec, "group": group, "samples": part["id"].nunique(), "positions": len(part),
                 "final_top1": part["final_top1"].mean(), "n_locked": len(final),
                 "median_lock_in": final["lock_in"].median() if len(final) else np.nan,
                 "median_depth": final["depth"].median() if len(final) else np.nan,
                 "mean_first_top1": final["first_top1"].mean() if len(final) else np.nan,
                 "n_layers": n_layers[spec]})
summary = pd.DataFrame(rows)
summary.round(3)

# %% [markdown]
# ## Figure: share of positions whose true token is top-1 after each block; lock-in depth distribution

# %%
plt.rcParams.update({"font.size": 7, "axes.titlesize": 7, "legend.fontsize": 6})
curve = lens.groupby(["spec", "group", "layer"], sort=False)["is_top1"].mean().reset_index()
fig, axes = plt.subplots(2, len(specs), figsize=(min(7.0, 1.75 * len(specs) + 0.8), 3.6), squeeze=False,
                         constrained_layout=True)
STYLE = {"memorized": ("C3", "-"), "control": ("C0", "--")}
for col, spec in enumerate(specs):
    ax_top, ax_cdf = axes[0][col], axes[1][col]
    depth_of = lambda layer: (layer + 1) / n_layers[spec]  # noqa: E731  block l ends at depth (l+1)/L
    for group, (colour, ls) in STYLE.items():
        part = curve[(curve["spec"] == spec) & (curve["group"] == group)]
        if part.empty:
            continue
        ax_top.plot(depth_of(part["layer"]), part["is_top1"], color=colour, ls=ls, lw=1.1, marker=".", ms=3,
                    label=group)
        final = locks[(locks["spec"] == spec) & (locks["group"] == group) & locks["final_top1"]]
        if len(final):
            xs = np.sort(depth_of(final["lock_in"].to_numpy()))
            ax_cdf.step(xs, np.arange(1, len(xs) + 1) / len(xs), where="post", color=colour, ls=ls, lw=1.1,
                        label=group)
            ax_top.axvline(depth_of(final["lock_in"].median()), color=colour, ls=":", lw=0.8)
    ax_top.set_title(f"{model_label(spec)}\n{n_layers[spec]} blocks", fontsize=6.5)
    ax_top.set_ylim(-0.02, 1.02)
    ax_cdf.set_ylim(0, 1.02)
    for ax in (ax_top, ax_cdf):
        ax.set_xlim(0, 1.02)
        ax.grid(alpha=0.3, lw=0.4)
    ax_cdf.set_xlabel("relative depth (block / L)")
    if col == 0:
        ax_top.set_ylabel("true token is top-1\n(share of positions)")
        ax_cdf.set_ylabel("lock-in depth\n(cumulative share)")
        ax_top.legend(loc="upper left", frameon=False)
report.save_figure(fig, out, NAME)
plt.close(fig)

# %% [markdown]
# ## Numbers quoted in the paper

# %%
def fmt(x: float, digits: int = 2) -> str:
    return "--" if not np.isfinite(x) else f"{x:.{digits}f}"


numbers = {"LensK": k, "LensM": m, "LensThreshold": f"{threshold:g}"}
earlier = []
for spec in specs:
    key = model_key(spec)
    numbers[f"{key}LensLayers"] = n_layers[spec]
    for group, gkey in (("memorized", "Mem"), ("control", "Ctrl")):
        row = summary[(summary["spec"] == spec) & (summary["group"] == group)]
        if row.empty:
            for name in ("N", "FinalTop", "Lock", "LockDepth", "FirstTop"):
                numbers[f"{key}Lens{name}{gkey}"] = "--"
            continue
        row = row.iloc[0]
        numbers[f"{key}LensN{gkey}"] = int(row["samples"])
        numbers[f"{key}LensFinalTop{gkey}"] = fmt(row["final_top1"])
        numbers[f"{key}LensLock{gkey}"] = fmt(row["median_lock_in"], 0) if np.isfinite(row["median_lock_in"]) else "--"
        numbers[f"{key}LensLockDepth{gkey}"] = (f"{100 * row['median_depth']:.0f}" if np.isfinite(row["median_depth"])
                                                else "--")
        numbers[f"{key}LensFirstTop{gkey}"] = fmt(row["mean_first_top1"], 1)
    mem = summary[(summary["spec"] == spec) & (summary["group"] == "memorized")]
    ctrl = summary[(summary["spec"] == spec) & (summary["group"] == "control")]
    if len(mem) and len(ctrl) and np.isfinite(mem["median_depth"].iloc[0]) and np.isfinite(ctrl["median_depth"].iloc[0]):
        verdict = mem["median_depth"].iloc[0] < ctrl["median_depth"].iloc[0]
        numbers[f"{key}LensEarlier"] = "earlier" if verdict else "not earlier"
        earlier.append(verdict)
    else:
        numbers[f"{key}LensEarlier"] = "--"
numbers["LensNModels"] = len(specs)
numbers["LensNEarlier"] = sum(earlier)
numbers["LensNCompared"] = len(earlier)
report.write_macros(out / f"numbers_{NAME}.tex", numbers, source=NAME)
pd.Series(numbers, dtype=str).sort_index().to_frame("value")
