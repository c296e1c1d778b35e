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
# # Figure — memorization along training (Tirumala et al. 2022) and forgetting under a constant LR
#
# Every size and seed of the zoo is checkpointed. At each checkpoint the canaries are screened by one
# teacher-forced pass: the share of the m suffix tokens whose argmax is the true token (Tirumala et al.'s
# memorization) and greedy exact match (every argmax right: greedy equals the suffix up to the first
# wrong one). (a, b) Canaries with many copies, one line per size (mean over seeds, band: t-interval
# across seeds); end values average the last checkpoints; the LR decay's effect. (c) Canaries whose
# copies all fall in an early or a late window (both in the constant-LR phase): is the early one
# forgotten, and were the late ones at control level before their window? Permutation tests (Holm).
# Driver: `memkit.paper.checkpoint_runs`.
#
# Outputs (into `out_dir`): `fig_checkpoints.pdf/.png`, `numbers_fig_checkpoints.tex`.
# Defaults are smoke settings; paper settings: `params/fig_checkpoints.yml`.

# %% tags=["parameters"]
profile = "smoke"  # zoo profile, built here if missing
k = 32
m = 32
curve_levels = [64, 256]  # duplication levels of the curves in (a) and (b)
window_level = 16  # duplication level of the early/late canaries (the profile must have them)
threshold = 0.5  # "steps to reach": first checkpoint where a seed's mean reaches this
n_last = 3  # end-of-training values: mean of the last n_last checkpoints
n_resamples = 9999  # permutations per test
batch_size = 32  # final-step greedy extraction (the cache entry fig_dup_scaling uses)
progress = False
out_dir = "build/smoke/fig_checkpoints"

# %%
from memkit.paper import nb

out = nb.setup(out_dir, threads=1)  # quiet, matplotlib Agg, torch threads, output folder

import matplotlib.pyplot as plt
import pandas as pd

from memkit.paper import checkpoint_runs, report
from memkit.paper.report import format_params

NAME = "fig_checkpoints"

# %% [markdown]
# ## Screen of every checkpoint; end values and steps to reach the threshold (Tirumala)

# %%
ckpt = checkpoint_runs.checkpoint_runs(profile, k=k, m=m, curve_levels=curve_levels, window_level=window_level,
                                       threshold=threshold, n_last=n_last, n_resamples=n_resamples,
                                       batch_size=batch_size, progress=progress)
curves, sizes, spans = ckpt.curves, ckpt.sizes, ckpt.spans
params = dict(zip(ckpt.screen["size"], ckpt.screen["params"]))
print(f"final step: screen exact match agrees with greedy extraction on {ckpt.agreement[0]} of {ckpt.agreement[1]}")
ckpt.tirumala.round(3)

# %% [markdown]
# ## LR decay (end of the constant phase vs end of training); forgetting: early vs late canaries at the end,
# late canaries vs controls before their window (permutation tests over canaries, Holm per family)

# %%
display(ckpt.decay.round(4), ckpt.tests.round(4), ckpt.track.round(3))

# %% [markdown]
# ## Figure and the numbers quoted in the paper

# %%
plt.rcParams.update({"font.size": 8, "axes.titlesize": 8, "legend.fontsize": 6.5})
fig, axes = plt.subplots(1, 3, figsize=(7.0, 2.5), constrained_layout=True)
colors = {s: plt.cm.viridis(i / max(1, len(sizes) - 1)) for i, s in enumerate(sizes)}
for ax, metric, title in ((axes[0], "tf_accuracy", "(a) teacher-forced accuracy"), (axes[1], "exact_match",
                                                                                      "(b) exact match")):
    for level, style in zip(curve_levels, (":", "-", "--")):
        for size in sizes:
            sub = curves[(curves["size"] == size) & (curves["window"] == "all") & (curves["level"] == level)]
            ax.plot(sub["step"], sub[metric], style, marker="o", ms=2, lw=0.9, color=colors[size],
                    label=format_params(params[size]) if level == curve_levels[-1] else None)
            ax.fill_between(sub["step"], sub[metric + "_lo"].clip(0), sub[metric + "_hi"].clip(upper=1),
                            color=colors[size], alpha=0.08, lw=0)
    ax.axvline(ckpt.decay_start, color="0.5", lw=0.6, ls="--")
    ax.set(xlabel="training step", ylabel="mean over seeds", ylim=(-0.02, 1.02),
           title=f"{title}, {' / '.join(map(str, curve_levels))} copies")
axes[0].text(0.98, 0.02, ", ".join(f"{lv}: {ls}" for lv, ls in zip(curve_levels, ("dotted", "solid", "dashed"))),
             transform=axes[0].transAxes, ha="right", va="bottom", fontsize=5.5)
axes[1].legend(frameon=False, title="non-emb. params", fontsize=5.5, loc="upper left")
for window, color in (("early", "C0"), ("late", "C3")):
    axes[2].axvspan(*spans[window], color=color, alpha=0.08, lw=0)
    for i, size in enumerate(sizes):
        sub = curves[(curves["size"] == size) & (curves["window"] == window) & (curves["level"] == window_level)]
        axes[2].plot(sub["step"], sub["tf_accuracy"], "o-", ms=2, lw=0.9, color=color,
                     alpha=0.3 + 0.7 * (i + 1) / len(sizes), label=f"{window}, {format_params(params[size])}")
ctrl = curves[(curves["level"] == 0)].groupby("step")["tf_accuracy"].mean()
axes[2].plot(ctrl.index, ctrl.values, "-", color="0.5", lw=1.2, label="controls (all sizes)")
axes[2].axvline(ckpt.decay_start, color="0.5", lw=0.6, ls="--")
axes[2].set(xlabel="training step", ylabel="teacher-forced accuracy", ylim=(-0.02, 1.02),
            title=f"(c) {window_level} copies, all early or all late")
axes[2].legend(frameon=False, ncol=2, fontsize=4.5)
for ax in axes:
    ax.grid(alpha=0.3, lw=0.5)
report.save_figure(fig, out, NAME)
plt.close(fig)
numbers = checkpoint_runs.checkpoint_numbers(ckpt)
report.write_macros(out / f"numbers_{NAME}.tex", numbers, source=NAME)
pd.Series(numbers, dtype=str).sort_index().to_frame("value")
