"""The latent-memorization figure (notebook `tab_latent`): gain per copy level, and the null's distribution.

    fig = latent_figure(lat, sigmas={"absolute": 0.01, "relative": 0.1}, n_draws=200)  # lat: latent_runs(...)

Panels (a), (b), one per noise family: the mean gain in greedy match length per seed (dots: canaries,
crosses: their matched never-inserted controls) and the mean over seeds (solid: canaries, dashed:
controls), one colour per size. Panel (c): the controls' gain distribution per size x family (the null).
"""

from __future__ import annotations

from typing import Mapping

from .report import FIGURE_FONTS, format_params


def latent_figure(lat, *, sigmas: Mapping[str, float], n_draws: int):
    """Three panels side by side (gain per family, the null); returns the figure."""
    import matplotlib.pyplot as plt

    plt.rcParams.update(FIGURE_FONTS)
    fig, axes = plt.subplots(1, 3, figsize=(7.0, 2.4), constrained_layout=True)
    levels = sorted(lat.pairs["level"].unique())
    per_seed = (lat.pairs.groupby(["family", "size", "level", "seed"])[["canary_gain", "control_gain"]]
                .mean().reset_index())
    params = dict(zip(lat.draws["size"], lat.draws["params"]))
    for panel, (ax, family) in enumerate(zip(axes[:2], sigmas)):
        for i, size in enumerate(lat.sizes):
            color = plt.cm.viridis(i / max(1, len(lat.sizes) - 1))
            sub = per_seed[(per_seed["family"] == family) & (per_seed["size"] == size)]
            x = sub["level"].map(levels.index) + (i - 0.5) * 0.12  # sizes side by side within a level
            ax.scatter(x, sub["canary_gain"], s=8, color=color, lw=0)
            ax.scatter(x, sub["control_gain"], s=8, color=color, marker="x", lw=0.6)
            mean = sub.groupby("level")[["canary_gain", "control_gain"]].mean()
            ax.plot(mean.index.map(levels.index), mean["canary_gain"], "-", color=color, lw=1,
                    label=format_params(params[size]))
            ax.plot(mean.index.map(levels.index), mean["control_gain"], "--", color=color, lw=0.8)
        ax.set_xticks(range(len(levels)), [str(v) for v in levels])
        ax.set(title=f"({'ab'[panel]}) {family} σ = {sigmas[family]:g}", xlabel="copies")
        ax.grid(alpha=0.3, lw=0.5)
    axes[0].set_ylabel(f"gain in greedy match (best of {n_draws})\n(• canaries, × matched controls)")
    axes[0].legend(frameon=False)
    groups = list(lat.null.groupby(["family", "size"], sort=False))
    width = 0.8 / max(1, len(groups))
    for j, ((family, size), group) in enumerate(groups):
        axes[2].bar(group["gain"] + (j - (len(groups) - 1) / 2) * width, group["share"], width=width,
                    label=f"{format_params(params[size])} {family} (n={group['n'].iloc[0]})")
    axes[2].set(title="(c) the null: controls' gain", xlabel="gain (tokens)", ylabel="share of controls")
    axes[2].legend(frameon=False)
    return fig
