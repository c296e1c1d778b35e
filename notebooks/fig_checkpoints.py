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
# # Figure — memorization across training checkpoints; are early insertions forgotten?
#
# Every size of the zoo is checkpointed during training. At each checkpoint every canary is
# prompted with its first k tokens (greedy, m tokens). (a) When do canaries become extractable, per
# duplication level? (b) Canaries whose copies all sit in the first quarter of training (`early`
# window) or in the last quarter (`late`): the Hubble suite found that text seen only early is
# largely forgotten by the end, text seen late is remembered. (c) Per size: early canaries right
# after their window and at the end, late canaries at the end, never-seen controls.
#
# Outputs (into `out_dir`): `fig_checkpoints.pdf/.png`, `numbers_fig_checkpoints.tex`.
# Defaults are smoke settings; paper settings: `params/fig_checkpoints.yml`.

# %% tags=["parameters"]
profile = "smoke"  # zoo profile, built here if missing
k = 32
m = 32
window_level = 16  # duplication level of the early/late canaries shown in (b) (the profile must have them)
batch_size = 32
progress = False
out_dir = "build/smoke/fig_checkpoints"

# %%
import warnings

warnings.filterwarnings("ignore")

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import transformers

from memkit.organisms import zoo
from memkit.organisms.laws import extraction_onsets
from memkit.organisms.zoo import zoo_extraction
from memkit.paper import report
from memkit.paper.report import macro_key
from memkit.paths import PROJECT_ROOT

torch.set_num_threads(1)
transformers.logging.set_verbosity_error()
pd.set_option("display.width", 160)
out = PROJECT_ROOT / out_dir
out.mkdir(parents=True, exist_ok=True)
NAME = "fig_checkpoints"
zoo.build_zoo(profile, progress=progress)
sizes = list(zoo.get_profile(profile).sizes)
steps = zoo.checkpoint_steps(profile)
spans = zoo.window_steps(profile)

# %% [markdown]
# ## Extraction at every checkpoint of every size

# %%
runs = zoo_extraction(profile, steps=steps, k=k, m=m, batch_size=batch_size, progress=progress)
runs["biderman"] = runs["token_match"]
curves = (runs.groupby(["size", "params", "window", "level", "step"], sort=False)
          .agg(n=("id", "size"), exact=("exact_match", "mean"), biderman=("biderman", "mean")).reset_index())
curves[curves["size"] == sizes[-1]].pivot_table(index=["window", "level"], columns="step", values="biderman").round(2)

# %% [markdown]
# ## Onsets and forgetting (exact match)

# %%
onsets = extraction_onsets(runs, "exact_match")
summary = (onsets.groupby(["size", "window", "level"], sort=False)
           .agg(n=("id", "size"), ever=("ever", "mean"), final=("final", "mean"), forgotten=("forgotten", "mean"),
                median_onset=("first_step", "median")).reset_index())
summary[summary["level"] > 0]

# %% [markdown]
# Biderman score of the windowed canaries (level `window_level`) at the first checkpoint after
# their window closed and at the last checkpoint, next to the never-seen controls (a graded view of
# forgetting that does not take a maximum over noisy checkpoints).

# %%
after = {w: min(s for s in steps if s >= spans[w][1]) for w in ("early", "late")}
rows = []
for size in sizes:
    sub = runs[runs["size"] == size]
    for window in ("early", "late"):
        group = sub[(sub["window"] == window) & (sub["level"] == window_level)]
        rows.append({"size": size, "what": f"{window}: after window", "step": after[window],
                     "biderman": group[group["step"] == after[window]]["biderman"].mean()})
        if window == "early":
            rows.append({"size": size, "what": "early: final", "step": steps[-1],
                         "biderman": group[group["step"] == steps[-1]]["biderman"].mean()})
    rows.append({"size": size, "what": "controls: final", "step": steps[-1],
                 "biderman": sub[(sub["level"] == 0) & (sub["step"] == steps[-1])]["biderman"].mean()})
retention = pd.DataFrame(rows)
retention.pivot_table(index="size", columns="what", values="biderman", sort=False).round(3)

# %% [markdown]
# ## Figure

# %%
def human(n: int) -> str:
    return f"{n / 1e6:.2g}M" if n >= 1e6 else f"{n / 1e3:.0f}k"


plt.rcParams.update({"font.size": 8, "axes.titlesize": 8, "legend.fontsize": 6.5})
fig, axes = plt.subplots(1, 3, figsize=(7.0, 2.5), constrained_layout=True)
largest = sizes[-1]
big = curves[curves["size"] == largest]
levels = sorted(big[big["window"] == "all"]["level"].unique())
for i, level in enumerate(levels):
    sub = big[(big["window"] == "all") & (big["level"] == level)]
    axes[0].plot(sub["step"], sub["biderman"], "o-", ms=2.5, lw=0.9, color=plt.cm.magma(0.1 + 0.8 * i / len(levels)),
                 label="control (0)" if level == 0 else f"{level}")
axes[0].set(xlabel="training step", ylabel="Biderman score", ylim=(-0.02, 1.02),
            title=f"(a) {human(int(big['params'].iloc[0]))}: copies spread over training")
axes[0].legend(frameon=False, title="copies", ncol=2)
for window, color in (("early", "C0"), ("late", "C3")):
    start, stop = spans[window]
    axes[1].axvspan(start, stop, color=color, alpha=0.08, lw=0)
    for i, size in enumerate(sizes):
        sub = curves[(curves["size"] == size) & (curves["window"] == window) & (curves["level"] == window_level)]
        if len(sub):
            axes[1].plot(sub["step"], sub["biderman"], "o-", ms=2.5, lw=0.9, color=color,
                         alpha=0.35 + 0.65 * (i + 1) / len(sizes),
                         label=f"{window}, {human(int(sub['params'].iloc[0]))}")
axes[1].set(xlabel="training step", ylabel="Biderman score", ylim=(-0.02, 1.02),
            title=f"(b) {window_level} copies, all early or all late")
axes[1].legend(frameon=False, ncol=2, fontsize=5.5)
x = np.arange(len(sizes))
bars = (("early: after window", "C0", 0.3), ("early: final", "C0", 1.0), ("late: after window", "C3", 1.0),
        ("controls: final", "0.5", 1.0))
for j, (what, color, alpha) in enumerate(bars):
    sub = retention[retention["what"] == what].set_index("size").reindex(sizes)
    axes[2].bar(x + (j - 1.5) * 0.2, sub["biderman"], width=0.19, color=color, alpha=alpha,
                label=what.replace("late: after window", "late: final"))
params_of = runs.drop_duplicates("size").set_index("size")["params"]
axes[2].set_xticks(x, [human(int(params_of[s])) for s in sizes])
axes[2].set(xlabel="non-embedding parameters", ylabel="mean Biderman score",
            title=f"(c) {window_level}-copy canaries: seen early vs late")
axes[2].legend(frameon=False, fontsize=5.5)
for ax in axes:
    ax.grid(alpha=0.3, lw=0.5)
report.save_figure(fig, out, NAME)
plt.close(fig)

# %% [markdown]
# ## Numbers quoted in the paper

# %%
numbers = {"CkptN": len(steps), "CkptFinalStep": steps[-1], "CkptEarlyEnd": spans["early"][1],
           "CkptLateStart": spans["late"][0], "CkptWindowLevel": window_level}
for r in retention.itertuples():
    what = "".join(part.capitalize() for part in r.what.replace(":", " ").split())
    numbers["Ckpt" + what + macro_key(r.size)] = f"{r.biderman:.2f}"
for size in sizes:
    sub = onsets[(onsets["size"] == size) & (onsets["level"] > 0)]
    numbers["CkptEver" + macro_key(size)] = int(sub["ever"].sum())
    numbers["CkptForgotten" + macro_key(size)] = int(sub["forgotten"].sum())
    early = sub[sub["window"] == "early"]
    numbers["CkptEarlyForgotten" + macro_key(size)] = f"{int(early['forgotten'].sum())}/{int(early['ever'].sum())}"
numbers["CkptControlsEverExact"] = int(onsets[onsets["level"] == 0]["ever"].sum())
report.write_macros(out / f"numbers_{NAME}.tex", numbers, source=NAME)
pd.Series(numbers, dtype=str).sort_index().to_frame("value")
