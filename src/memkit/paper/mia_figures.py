"""The membership figure (notebook `tab_mia`): attack AUC and extraction rate vs copies, one line per size.

    fig = membership_figure(mem)   # mem: paper.mia_runs.membership_runs(...); the notebook saves it

Panel (a): the best attack (solid) and the reference attack (dashed), mean seed AUC per size and level
with bootstrap error bars where the CI exists (both groups >= 20 canaries). Panel (b): the exact
extraction rate of the same canaries, mean over seeds.
"""

from __future__ import annotations

import numpy as np

from .mia_runs import ATTACK_LABELS
from .report import FIGURE_FONTS, format_params


def membership_figure(mem):
    """Two panels side by side (membership AUC, extraction rate) over log10(copies); returns the figure."""
    import matplotlib.pyplot as plt

    plt.rcParams.update(FIGURE_FONTS)
    fig, axes = plt.subplots(1, 2, figsize=(7.0, 2.5), constrained_layout=True)
    sizes, pooled, best = mem.sizes, mem.pooled, mem.best
    colors = {s: plt.cm.viridis(i / max(1, len(sizes) - 1)) for i, s in enumerate(sizes)}
    for size in sizes:
        params = format_params(mem.scores.loc[mem.scores["size"] == size, "params"].iloc[0])
        for attack, style in ((best, "o-"), ("ref", "s--")):
            sub = pooled[(pooled["size"] == size) & (pooled["attack"] == attack)]
            if sub.empty:
                continue
            err = np.where(sub["ci_ok"], [sub["auc"] - sub["auc_lo"], sub["auc_hi"] - sub["auc"]], 0.0)
            axes[0].errorbar(np.log10(sub["level"]), sub["auc"], yerr=err, fmt=style, ms=3, lw=0.9, capsize=2,
                             color=colors[size], label=params if attack == best else None)
        rates = mem.rates[(mem.rates["size"] == size) & (mem.rates["level"] > 0)]
        axes[1].plot(np.log10(rates["level"]), rates["exact"], "o-", ms=3, lw=0.9, color=colors[size], label=params)
    axes[0].axhline(0.5, color="0.6", lw=0.6)
    label = ATTACK_LABELS[best].replace("\\", "")
    axes[0].set(ylabel="ROC AUC vs controls", title=f"(a) membership: {label} (—), ref. (--)", ylim=(0, 1.04))
    axes[1].set(ylabel="exact-match rate", title="(b) extraction", ylim=(-0.04, 1.04))
    levels = sorted(mem.rates.loc[mem.rates["level"] > 0, "level"].unique())
    for ax in axes:
        ax.set(xticks=np.log10(levels), xticklabels=[str(v) for v in levels], xlabel="copies in the training stream")
        ax.grid(alpha=0.3, lw=0.5)
        ax.legend(frameon=False, ncol=2)
    return fig
