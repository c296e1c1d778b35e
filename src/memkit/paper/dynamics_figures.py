"""The figures of the dynamics section: retention vs alpha (fig_phase), layer heatmaps and fragility profiles
(fig_layers). Each function takes the notebook's frames and returns a matplotlib Figure; the notebook saves it.

    fig = phase_figure(curves, phase, names)                                   # notebooks/fig_phase.py
    fig = layer_heatmaps(heat, layer_fits, models, names, kind="embed_random")  # notebooks/fig_layers.py
    fig = fragility_figure(layer_mean, step_mean, runs, names, n_actions=2)
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..dynamics.action_kinds import FAMILIES
from .report import format_alpha

#: Line style per sample group (memorized solid, control dashed), shared by the dynamics figures.
GROUP_STYLE = {"memorized": dict(ls="-", marker="o", mfc=None), "control": dict(ls="--", marker="s", mfc="white")}
FAMILY_TITLE = {"token": "token actions: $\\alpha$ = fraction of the prefix",
                "embedding": "embedding actions: $\\alpha$ × mean $|h_\\ell|$",
                "logit": "logit actions: $\\alpha$ = logit offset"}
FONTS = {"font.size": 7, "axes.titlesize": 7, "legend.fontsize": 6}


def _group_handles(**line):
    """Legend handles, one per group, in neutral grey."""
    from matplotlib.lines import Line2D

    return [Line2D([], [], color="0.3", lw=1.0, label=group, **{key: value(style) for key, value in line.items()})
            for group, style in GROUP_STYLE.items()]


def phase_figure(curves: pd.DataFrame, phase, names: Mapping[str, str]):
    """Mean retention vs alpha (`dynamics_runs.mean_curves`): one row per model, one column per action family,
    one line per kind and group."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullLocator

    models = phase.models
    kind_colour = {kind: f"C{i % 10}" for i, kind in enumerate(phase.kinds)}
    plt.rcParams.update(FONTS)
    fig, axes = plt.subplots(len(models), len(phase.families), figsize=(7.0, 2.0 * len(models) + 0.9),
                             squeeze=False, sharey=True, constrained_layout=True)
    for (row, spec), (col, family) in ((r, c) for r in enumerate(models) for c in enumerate(phase.families)):
        ax = axes[row, col]
        grid = [a for a in phase.family_grid(spec, family) if a > 0]
        zero_at = grid[0] / 2  # log axis: alpha = 0 is drawn one grid step left of the smallest alpha
        for kind in [kd for kd in phase.kinds if FAMILIES[kd] == family]:
            for group, style in GROUP_STYLE.items():
                part = curves[(curves["spec"] == spec) & (curves["kind"] == kind) & (curves["group"] == group)]
                if not part.empty:
                    ax.plot([a if a > 0 else zero_at for a in part["alpha"]], part["retention"],
                            color=kind_colour[kind], lw=1.0, ms=3, ls=style["ls"], marker=style["marker"],
                            mfc=style["mfc"] or kind_colour[kind], label=kind if group == "memorized" else None)
        ax.axhline(0.5, color="0.5", lw=0.5, ls=":")
        ax.set_xscale("log")
        ax.set_xticks([zero_at] + grid, ["0"] + [format_alpha(a) for a in grid], fontsize=5.5,
                      rotation=90 if len(grid) > 6 else 0)
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_ylim(-0.04, 1.04)
        ax.grid(alpha=0.3, lw=0.4)
        if row == 0:
            ax.set_title(FAMILY_TITLE[family])
        if col == 0:
            ax.set_ylabel(f"{names[spec]}\nretention (Biderman)")
        if row == len(models) - 1:
            ax.set_xlabel("$\\alpha$")
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.32), ncol=2, frameon=False, handlelength=1.6)
    handles = _group_handles(ls=lambda s: s["ls"], marker=lambda s: s["marker"], mfc=lambda s: s["mfc"] or "0.3",
                             ms=lambda s: 3)
    fig.legend(handles=handles, loc="outside upper center", ncol=2, frameon=False)
    return fig


def layer_heatmaps(heat: pd.DataFrame, layer_fits: pd.DataFrame, models: Sequence[str], names: Mapping[str, str],
                   *, kind: str):
    """Retention per layer x alpha, one panel per model x group, with the fitted alpha*(layer) as white dots."""
    import matplotlib.pyplot as plt

    plt.rcParams.update(FONTS)
    present = [(s, g) for s in models for g in GROUP_STYLE if ((heat["spec"] == s) & (heat["group"] == g)).any()]
    ncols = max(1, len(present))
    fig, axes = plt.subplots(1, ncols, figsize=(min(7.0, 1.9 * ncols + 0.6), 2.6), squeeze=False,
                             constrained_layout=True)
    image = None
    for ax, (spec, group) in zip(axes[0], present):
        part = heat[(heat["spec"] == spec) & (heat["group"] == group)]
        grid = sorted(part["alpha"].unique())
        nonzero = [a for a in grid if a > 0]
        matrix = part.pivot(index="layer", columns="alpha", values="retention").reindex(columns=grid)
        image = ax.imshow(matrix.to_numpy(), origin="lower", aspect="auto", cmap="viridis", vmin=0, vmax=1,
                          extent=(-0.5, len(grid) - 0.5, -0.5, len(matrix) - 0.5))
        fits_here = layer_fits[(layer_fits["spec"] == spec) & (layer_fits["group"] == group)].set_index("layer")
        ys = [i for i, layer in enumerate(matrix.index) if np.isfinite(fits_here.loc[layer, "alpha_star"])]
        # alpha* on the (0, geometric grid) column axis
        xs = [float(np.interp(np.log(fits_here.loc[matrix.index[i], "alpha_star"]), np.log(nonzero),
                              np.arange(1, len(nonzero) + 1))) for i in ys]
        ax.plot(xs, ys, ls="none", marker="o", ms=3, mfc="white", mec="black", mew=0.5)
        ax.set_xticks(range(len(grid)), [format_alpha(a) if a > 0 else "0" for a in grid], rotation=90)
        step = max(1, len(matrix.index) // 8)
        ax.set_yticks(range(0, len(matrix.index), step), [str(v) for v in matrix.index[::step]])
        ax.set_xlabel("$\\alpha$ (× mean $|h_\\ell|$)")
        ax.set_title(f"{names[spec]}\n{group}")
        if ax is axes[0][0]:
            ax.set_ylabel(f"layer $\\ell$ ({kind} after block $\\ell$)")
    if image is not None:
        fig.colorbar(image, ax=axes[0].tolist(), shrink=0.9, label="retention (Biderman)")
    return fig


def fragility_figure(layer_mean: pd.DataFrame, step_mean: pd.DataFrame, runs, names: Mapping[str, str], *,
                     n_actions: int):
    """State distance per layer (left) and KL per step (right), per model (rows) and profile action (colours)."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from .dynamics_runs import action_label

    models = runs.models
    fig, axes = plt.subplots(len(models), 2, figsize=(7.0, 2.0 * len(models) + 0.4), squeeze=False,
                             constrained_layout=True)
    for row, spec in enumerate(models):
        ax_l, ax_s = axes[row]
        for number in range(n_actions):
            for group, style in GROUP_STYLE.items():
                at = dict(spec=spec, action=number, group=group)
                lp = layer_mean[(layer_mean[list(at)] == pd.Series(at)).all(axis=1)]
                sp = step_mean[(step_mean[list(at)] == pd.Series(at)).all(axis=1)]
                if lp.empty:
                    continue
                ax_l.plot(lp["layer"], lp["rel_distance"], color=f"C{number}", ls=style["ls"], lw=1.0, marker=".",
                          ms=3)
                ax_s.plot(sp["step"], sp["kl"].clip(lower=1e-6), color=f"C{number}", ls=style["ls"], lw=1.0,
                          marker=".", ms=3)
        ax_l.legend(handles=[Line2D([], [], color=f"C{i}", lw=1.0, label=action_label(runs.actions[(spec, i)]))
                             for i in range(n_actions)], loc="upper left", frameon=False)
        ax_l.set_ylabel(f"{names[spec]}\n$|h-\\tilde h|/|h|$ (continuation)")
        ax_s.set_ylabel("KL($p_{clean}\\,\\|\\,p_{perturbed}$)")
        ax_s.set_yscale("log")
        for ax in (ax_l, ax_s):
            ax.grid(alpha=0.3, lw=0.4)
        if row == len(models) - 1:
            ax_l.set_xlabel("layer")
            ax_s.set_xlabel("continuation step")
    fig.legend(handles=_group_handles(ls=lambda s: s["ls"]), loc="outside lower center", ncol=len(GROUP_STYLE),
               frameon=False)
    return fig
