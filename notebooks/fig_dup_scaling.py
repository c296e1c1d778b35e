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
# # Figure — memorization vs duplication × model size (the organisms)
#
# The organisms (`memkit.zoo`) are Pythia-architecture models of several sizes trained on the same
# stream: the King James Bible plus canaries inserted 0, 1, 4, 16, 64 or 256 times (level 0 = never
# seen: the controls). At the final checkpoint every canary is prompted with its first k tokens and
# greedily continued for m tokens. Two extraction rates per level: exact match (Carlini et al. 2022,
# "k-extractable") and the mean Biderman score (fraction of the m tokens reproduced, Biderman et al.
# 2023). Each rate is fitted as `rate = slope · log10(copies) + intercept` over levels ≥ 1, with R²
# and a bootstrap CI of the slope over canaries (`memkit.scaling.loglinear_fit`).
#
# Only canaries of the `all` window (copies spread over the whole run) enter; early/late windows are
# in `fig_checkpoints`. Outputs (into `out_dir`): `fig_dup_scaling.pdf/.png`, `tab_dup_slopes.tex`,
# `numbers_fig_dup_scaling.tex`. Defaults are smoke settings; paper settings: `params/fig_dup_scaling.yml`.

# %% tags=["parameters"]
profile = "smoke"  # zoo profile, built here if missing: smoke takes about a minute
k = 32  # prefix tokens
m = 32  # continuation tokens (Pythia's 32)
n_boot = 200  # bootstrap replicates of the slope CI
boot_seed = 0
batch_size = 32
progress = False
out_dir = "build/smoke/fig_dup_scaling"

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
from memkit.organisms.laws import fit_table
from memkit.organisms.zoo import zoo_extraction
from memkit.paper import report
from memkit.paper.report import macro_key
from memkit.paths import PROJECT_ROOT

torch.set_num_threads(1)
transformers.logging.set_verbosity_error()
pd.set_option("display.width", 160)
out = PROJECT_ROOT / out_dir
out.mkdir(parents=True, exist_ok=True)
NAME = "fig_dup_scaling"
zoo.build_zoo(profile, progress=progress)
info = zoo.zoo_info(profile)
sizes = list(zoo.get_profile(profile).sizes)

# %% [markdown]
# ## Extraction at the final checkpoint (every size, every canary)

# %%
runs = zoo_extraction(profile, steps=["final"], k=k, m=m, batch_size=batch_size, progress=progress)
runs = runs[runs["window"] == "all"].reset_index(drop=True)
runs["biderman"] = runs["token_match"]
rates = (runs.groupby(["size", "params", "level"], sort=False)
         .agg(n=("id", "size"), exact=("exact_match", "mean"), biderman=("biderman", "mean")).reset_index())
rates.pivot_table(index="level", columns="size", values=["exact", "biderman"], sort=False).round(3)

# %% [markdown]
# ## Log-linear fits per size (levels ≥ 1), bootstrap CI over canaries

# %%
fits = fit_table(runs, by=["size"], metrics=["exact_match", "biderman"], n_boot=n_boot, seed=boot_seed)
fits["params"] = fits["size"].map(dict(zip(runs["size"], runs["params"])))
fits = fits.sort_values(["metric", "params"], kind="stable").reset_index(drop=True)
fits[["metric", "size", "params", "slope", "slope_lo", "slope_hi", "r2", "control_rate"]].round(4)

# %% [markdown]
# ## Figure

# %%
def human(n: int) -> str:
    return f"{n / 1e6:.2g}M" if n >= 1e6 else f"{n / 1e3:.0f}k"


plt.rcParams.update({"font.size": 8, "axes.titlesize": 8, "legend.fontsize": 6.5})
fig, axes = plt.subplots(1, 3, figsize=(7.0, 2.5), constrained_layout=True)
levels = sorted(rates["level"].unique())
pos = {lv: (np.log10(lv) if lv > 0 else -0.6) for lv in levels}  # the controls sit left of 10^0
colors = {s: plt.cm.viridis(i / max(1, len(sizes) - 1)) for i, s in enumerate(sizes)}
for ax, metric, col, title in ((axes[0], "exact_match", "exact", "(a) exact match (Carlini)"),
                               (axes[1], "biderman", "biderman", "(b) Biderman score")):
    for size in sizes:
        sub = rates[rates["size"] == size]
        fit = fits[(fits["size"] == size) & (fits["metric"] == metric)].iloc[0]
        ax.plot([pos[lv] for lv in sub["level"]], sub[col], "o", ms=3.5, color=colors[size],
                label=f"{human(int(sub['params'].iloc[0]))} (slope {fit['slope']:.2f})")
        x = np.linspace(0, np.log10(max(levels)), 200)
        line = fit["slope"] * x + fit["intercept"]
        keep = (line >= 0) & (line <= 1)  # the fitted line inside the range a rate can take
        ax.plot(x[keep], line[keep], "-", lw=0.9, color=colors[size])
    ax.set_xticks([pos[lv] for lv in levels], ["0\n(ctrl)" if lv == 0 else str(lv) for lv in levels])
    ax.axvline(-0.3, color="0.8", lw=0.6)
    ax.set(xlabel="copies in the training stream (log)", ylabel="rate", title=title, ylim=(-0.04, 1.04))
    ax.grid(alpha=0.3, lw=0.5)
    ax.legend(loc="upper left", frameon=False, title="non-emb. params")
# (c) slopes vs model size with CIs
for metric, marker, label in (("exact_match", "o", "exact"), ("biderman", "s", "Biderman")):
    sub = fits[fits["metric"] == metric]
    axes[2].errorbar(sub["params"], sub["slope"], yerr=[sub["slope"] - sub["slope_lo"], sub["slope_hi"] - sub["slope"]],
                     fmt=marker + "-", ms=3.5, lw=0.9, capsize=2, label=label)
axes[2].set(xscale="log", xlabel="non-embedding parameters", ylabel="slope per decade of copies",
            title="(c) fitted slopes (95% bootstrap CI)")
param_ticks = sorted(fits["params"].unique())
axes[2].set_xticks(param_ticks, [human(int(p)) for p in param_ticks])
axes[2].xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
axes[2].set_xlim(min(param_ticks) / 1.5, max(param_ticks) * 1.5)
axes[2].axhline(0, color="0.6", lw=0.6)
axes[2].grid(alpha=0.3, lw=0.5)
axes[2].legend(frameon=False)
report.save_figure(fig, out, NAME)
plt.close(fig)

# %% [markdown]
# ## Slope table and numbers quoted in the paper

# %%
table = fits.assign(
    model=fits["size"].map(lambda s: f"zoo:{s}"), params=fits["params"].map(human),
    metric=fits["metric"].map({"exact_match": "exact", "biderman": "Biderman"}),
    slope_ci=[f"{r.slope:.3f} [{r.slope_lo:.3f}, {r.slope_hi:.3f}]" for r in fits.itertuples()],
    r2=fits["r2"].map(lambda v: "--" if np.isnan(v) else f"{v:.2f}"),
    control=fits["control_rate"].map(lambda v: f"{v:.3f}"),
)[["metric", "model", "params", "slope_ci", "r2", "control"]]
table.columns = ["rate", "model", "params", "slope [95\\% CI]", "$R^2$", "controls"]
report.write_table(table, out / "tab_dup_slopes.tex", source=NAME, escape=False, column_format="llrlrr",
                   caption=f"Organisms: extraction rate vs log$_{{10}}$(copies) at the final checkpoint "
                           f"(k={k}, m={m}; levels 1--256; {int(rates[rates['level'] > 0]['n'].max())} canaries per "
                           f"level and size; controls: level-0 rate).", label="tab:dup-slopes")

numbers = {"DupK": k, "DupM": m, "DupNSizes": len(sizes), "DupBoot": n_boot,
           "DupNCanaries": int(runs["id"].nunique()),
           "DupSmallestParams": human(int(fits["params"].min())), "DupLargestParams": human(int(fits["params"].max())),
           "DupParamRatio": f"{fits['params'].max() / fits['params'].min():.0f}",
           "DupTrainSeconds": f"{info['wall_seconds']:.0f}", "DupTrainMinutes": f"{info['wall_seconds'] / 60:.1f}",
           "DupSteps": zoo.checkpoint_steps(profile)[-1], "DupStreamTokens": f"{info['data']['stream_tokens']:,}",
           "DupCanaryTokenShare": f"{100 * info['data']['canary_tokens_inserted'] / info['data']['stream_tokens']:.0f}"}
for r in fits.itertuples():
    key = "Dup" + ("Exact" if r.metric == "exact_match" else "Biderman") + macro_key(r.size)
    numbers[key + "Slope"] = f"{r.slope:.3f}"
    numbers[key + "SlopeLo"] = f"{r.slope_lo:.3f}"
    numbers[key + "SlopeHi"] = f"{r.slope_hi:.3f}"
    numbers[key + "Rsq"] = "--" if np.isnan(r.r2) else f"{r.r2:.2f}"
largest = sizes[-1]
top = rates[(rates["size"] == largest)]
numbers["DupLargestExactTop"] = f"{top[top['level'] == max(levels)]['exact'].iloc[0]:.2f}"
numbers["DupLargestControlBiderman"] = f"{top[top['level'] == 0]['biderman'].iloc[0]:.3f}"
numbers["DupAnyControlExact"] = int(runs[runs["level"] == 0]["exact_match"].sum())
report.write_macros(out / f"numbers_{NAME}.tex", numbers, source=NAME)
shown = {key: value for key, value in numbers.items() if "Train" not in key}  # wall times vary: not in the output
pd.Series(shown, dtype=str).sort_index().to_frame("value")
