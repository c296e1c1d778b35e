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
# # Figure — the effect of the prefix length k (Carlini's context effect), organisms
#
# Carlini et al. (2022) found that a memorized continuation is extracted more often when the model
# is given a longer prefix. Here the m-token suffix of every canary is fixed (tokens
# `suffix_start … suffix_start+m` of the 64-token canary) and only the number k of prefix tokens
# right before it varies, so every k asks for exactly the same text. Rates are computed at the final
# checkpoint of every size of the zoo, per duplication level (window `all` only); the context slope
# is the change of the rate per decade of k (`memkit.scaling.loglinear_fit` with k as the x
# variable), over the canaries of levels ≥ `min_level`.
#
# Outputs (into `out_dir`): `fig_context.pdf/.png`, `numbers_fig_context.tex`.
# Defaults are smoke settings; paper settings: `params/fig_context.yml`.

# %% tags=["parameters"]
profile = "smoke"  # zoo profile, built here if missing
ks = [4, 8, 16, 32]  # prefix lengths, none above suffix_start
suffix_start = 32  # first suffix token inside the 64-token canary
m = 32  # continuation tokens
min_level = 64  # the context slope is fitted on canaries with at least this many copies
n_boot = 200
boot_seed = 0
batch_size = 32
progress = False
out_dir = "build/smoke/fig_context"

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
from memkit.organisms.laws import loglinear_fit
from memkit.organisms.zoo import zoo_extraction
from memkit.paper import report
from memkit.paper.report import macro_key
from memkit.paths import PROJECT_ROOT

torch.set_num_threads(1)
transformers.logging.set_verbosity_error()
pd.set_option("display.width", 160)
out = PROJECT_ROOT / out_dir
out.mkdir(parents=True, exist_ok=True)
NAME = "fig_context"
zoo.build_zoo(profile, progress=progress)
sizes = list(zoo.get_profile(profile).sizes)

# %% [markdown]
# ## Extraction with k = … prefix tokens before the same suffix

# %%
runs = pd.concat([zoo_extraction(profile, steps=["final"], k=k, m=m, suffix_start=suffix_start,
                                 batch_size=batch_size, progress=progress).assign(k=k) for k in ks],
                 ignore_index=True)
runs = runs[runs["window"] == "all"].reset_index(drop=True)
runs["biderman"] = runs["token_match"]
rates = (runs.groupby(["size", "params", "level", "k"], sort=False)
         .agg(exact=("exact_match", "mean"), biderman=("biderman", "mean")).reset_index())
rates.pivot_table(index=["size", "level"], columns="k", values="biderman", sort=False).round(3)

# %% [markdown]
# ## Context slopes: rate vs log10(k) on the canaries with at least `min_level` copies

# %%
rows = []
for size in sizes:
    sub = runs[(runs["size"] == size) & (runs["level"] >= min_level)]
    for metric in ("exact_match", "biderman"):
        fit = loglinear_fit(sub, metric, level="k", n_boot=n_boot, seed=boot_seed)
        rows.append({"size": size, "params": int(sub["params"].iloc[0]), **fit})
slopes = pd.DataFrame(rows)
slopes[["size", "params", "metric", "slope", "slope_lo", "slope_hi", "r2"]].round(4)

# %% [markdown]
# ## Figure

# %%
def human(n: int) -> str:
    return f"{n / 1e6:.2g}M" if n >= 1e6 else f"{n / 1e3:.0f}k"


plt.rcParams.update({"font.size": 8, "axes.titlesize": 8, "legend.fontsize": 6.5})
fig, axes = plt.subplots(1, 2, figsize=(7.0, 2.6), constrained_layout=True)
largest = sizes[-1]
levels = sorted(rates["level"].unique())
for i, level in enumerate(levels):
    sub = rates[(rates["size"] == largest) & (rates["level"] == level)]
    axes[0].plot(sub["k"], sub["biderman"], "o-", ms=3, lw=0.9, color=plt.cm.magma(0.1 + 0.8 * i / len(levels)),
                 label="control (0)" if level == 0 else f"{level} copies")
axes[0].set(xscale="log", xlabel="prefix tokens k", ylabel="Biderman score (same 32-token suffix)",
            title=f"(a) largest organism ({human(int(rates[rates['size'] == largest]['params'].iloc[0]))}), per level",
            ylim=(-0.02, 1.02))
axes[0].legend(frameon=False, ncol=2)
for i, size in enumerate(sizes):
    sub = runs[(runs["size"] == size) & (runs["level"] >= min_level)].groupby("k")[["exact_match", "biderman"]].mean()
    color = plt.cm.viridis(i / max(1, len(sizes) - 1))
    params = human(int(rates[rates["size"] == size]["params"].iloc[0]))
    axes[1].plot(sub.index, sub["biderman"], "o-", ms=3, lw=0.9, color=color, label=f"{params} Biderman")
    axes[1].plot(sub.index, sub["exact_match"], "s--", ms=3, lw=0.9, color=color, label=f"{params} exact")
axes[1].set(xscale="log", xlabel="prefix tokens k", ylabel="rate", ylim=(-0.02, 1.02),
            title=f"(b) canaries with $\\geq${min_level} copies, every size")
axes[1].legend(frameon=False, ncol=2)
for ax in axes:
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.grid(alpha=0.3, lw=0.5)
report.save_figure(fig, out, NAME)
plt.close(fig)

# %% [markdown]
# ## Numbers quoted in the paper

# %%
numbers = {"CtxM": m, "CtxMinLevel": min_level, "CtxKMin": min(ks), "CtxKMax": max(ks), "CtxBoot": n_boot}
for r in slopes.itertuples():
    key = "Ctx" + ("Exact" if r.metric == "exact_match" else "Biderman") + macro_key(r.size)
    numbers[key + "Slope"] = f"{r.slope:.3f}"
    numbers[key + "SlopeLo"] = f"{r.slope_lo:.3f}"
    numbers[key + "SlopeHi"] = f"{r.slope_hi:.3f}"
top = runs[(runs["size"] == largest) & (runs["level"] >= min_level)].groupby("k")[["exact_match", "biderman"]].mean()
numbers["CtxLargestBidermanKMin"] = f"{top['biderman'].iloc[0]:.2f}"
numbers["CtxLargestBidermanKMax"] = f"{top['biderman'].iloc[-1]:.2f}"
numbers["CtxLargestExactKMin"] = f"{top['exact_match'].iloc[0]:.2f}"
numbers["CtxLargestExactKMax"] = f"{top['exact_match'].iloc[-1]:.2f}"
report.write_macros(out / f"numbers_{NAME}.tex", numbers, source=NAME)
pd.Series(numbers, dtype=str).sort_index().to_frame("value")
