"""Figure 1, memorization vs model size (notebook `fig_scale`): measured points next to quoted ones.

    fig = scale_figure(ours, organisms, lit)   # frames of memkit.paper.scale_runs; the notebook saves it

Panel (a) draws the original study's metric (best seed score over its seven attractors): our models
per prompting mode, the organisms, and the literature's quoted points in grey. Panel (b) draws the
share of the attractors each standard rule calls memorized, for the models measured here only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.metrics import SEED_SCORE_THRESHOLD
from .experiments import RULES
from .report import FIGURE_FONTS
from .scale_runs import QUOTED_MEASURED, QUOTED_UNCITED, stack_index

#: rule -> (legend label, marker) of panel (b), in drawing order (colour C0, C1, ...)
RULE_STYLE = {"mem_exact": ("exact match (E)", "o"), "mem_biderman": ("Biderman score = 1 (B)", "s"),
              "mem_near_verbatim": ("near-verbatim (N)", "^"), "mem_seed": ("seed score $\\geq$ 0.7 (S)", "D")}
#: prompting mode -> filled markers and solid lines (raw) or hollow markers and dotted lines (chat)
MODE_FILL = {"raw": True, "chat": False}
#: horizontal offset factor per rule in panel (b), so markers at one size do not hide each other
RULE_DODGE = dict(zip(RULE_STYLE, (0.92, 0.97, 1.03, 1.08)))


def params_label(x: float, _pos=None) -> str:
    """A parameter count as an axis label: 1.5B, 135M, 850k (three significant digits)."""
    return f"{x / 1e9:.3g}B" if x >= 1e9 else f"{x / 1e6:.3g}M" if x >= 1e6 else f"{x / 1e3:.3g}k"


def _seed_panel(ax, ours: pd.DataFrame, organisms: pd.DataFrame, lit: pd.DataFrame) -> None:
    """(a) Best seed score over the seed's seven attractors: measured, organisms, quoted."""
    points = ours.dropna(subset=["max_seed_score_seed_ids"]).sort_values("n_params", kind="stable")
    for mode, group in points.groupby("mode", sort=False):
        filled = MODE_FILL.get(mode, True)
        ax.scatter(group["n_params"], group["max_seed_score_seed_ids"], s=36, marker="o", color="C0",
                   facecolors="C0" if filled else "white", linewidths=1.2, zorder=3,
                   label=f"measured here, {mode} prompt")
    for row, n in zip(points.itertuples(), stack_index(points["n_params"], points["max_seed_score_seed_ids"])):
        y = row.max_seed_score_seed_ids
        ax.annotate(f"{row.label} ({row.mode})", (row.n_params, y), xytext=(6, -10 - 8 * n if y > 0.5 else 4 + 8 * n),
                    textcoords="offset points", fontsize=6, color="C0")
    if len(organisms):
        ax.scatter(organisms["n_params"], organisms["max_seed_score_seed_ids"], s=30, marker="^", color="C2",
                   zorder=3, label="organisms (KJV-trained), raw prompt")
    for kind, marker in ((QUOTED_MEASURED, "s"), (QUOTED_UNCITED, "X")):
        group = lit[lit["kind"] == kind].sort_values("value", kind="stable")
        ax.scatter(group["params"], group["value"], s=32, marker=marker, color="0.55", zorder=2, label=kind)
        for row, n in zip(group.itertuples(), stack_index(group["params"], group["value"])):
            high = row.value > 0.5  # labels above-left near the top, to the right lower down
            ax.annotate(row.model, (row.params, row.value), xytext=(-4 if high else 6, (5 if high else 2) + 10 * n),
                        textcoords="offset points", fontsize=6, color="0.4", ha="right" if high else "left")
    ax.axhline(SEED_SCORE_THRESHOLD, color="0.3", lw=0.8, ls="--")
    ax.text(0.02, SEED_SCORE_THRESHOLD + 0.02, "seed threshold 0.7", transform=ax.get_yaxis_transform(),
            fontsize=6, color="0.3")
    ax.set(xscale="log", ylim=(-0.04, 1.15), xlabel="parameters (log scale)", ylabel="best seed score",
           title="(a) Original study's metric: best of its 7 attractors")
    ax.legend(loc="center right", frameon=False)


def _rules_panel(ax, ours: pd.DataFrame, organisms: pd.DataFrame) -> None:
    """(b) Share of the attractors memorized per rule, one line per rule and mode (organisms dashed)."""
    from matplotlib.lines import Line2D

    for rule, (rule_label, marker) in RULE_STYLE.items():
        color = f"C{list(RULE_STYLE).index(rule)}"
        for mode, group in ours.sort_values("n_params", kind="stable").groupby("mode", sort=False):
            filled = MODE_FILL.get(mode, True)
            ax.plot(group["n_params"] * RULE_DODGE[rule], group[f"{rule}_rate"], marker=marker, ms=5, lw=0.8,
                    ls="-" if filled else ":", color=color, mfc=color if filled else "white",
                    label=f"{rule_label}, {mode}")
        if len(organisms):  # organisms: their own dashed line per rule, not joined to the pretrained models
            group = organisms.sort_values("n_params", kind="stable")
            ax.plot(group["n_params"] * RULE_DODGE[rule], group[f"{rule}_rate"], marker=marker, ms=4, lw=0.8,
                    ls="--", color=color, alpha=0.7)
    n_attr = int(ours["n"].max())
    top = float(ours[[f"{r}_rate" for r in RULES]].max().max())
    ax.set(xscale="log", ylim=(-0.01, max(0.1, top * 1.2)), xlabel="parameters (log scale)",
           ylabel=f"share of the {n_attr} attractors memorized", title="(b) Share memorized per rule, measured here")
    handles = [Line2D([], [], color=f"C{i}", marker=marker, ls="none", ms=5, label=rule_label)
               for i, (rule_label, marker) in enumerate(RULE_STYLE.values())]
    handles += [Line2D([], [], color="0.4", marker="o", ls="-" if filled else ":", ms=5,
                       mfc="0.4" if filled else "white", label=f"{mode} prompt")
                for mode, filled in MODE_FILL.items() if mode in set(ours["mode"])]
    if len(organisms):
        handles.append(Line2D([], [], color="0.4", marker="o", ls="--", ms=4, label="organisms, raw"))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)


def scale_x_limits(ours: pd.DataFrame, organisms: pd.DataFrame, lit: pd.DataFrame) -> tuple[tuple, tuple]:
    """x ranges of panels (a) (every point, quoted included) and (b) (measured points only), with margins."""
    measured = pd.concat([ours, organisms])
    lo = min(measured["n_params"].min(), lit["params"].min() if len(lit) else np.inf)
    hi = max(measured["n_params"].max(), lit["params"].max() if len(lit) else 0)
    return (lo / 2, hi * 3), (measured["n_params"].min() / 1.6, measured["n_params"].max() * 1.6)


def scale_figure(ours: pd.DataFrame, organisms: pd.DataFrame, lit: pd.DataFrame):
    """Figure 1: (a) best seed score vs parameters, measured and quoted; (b) share memorized per rule."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    plt.rcParams.update(FIGURE_FONTS)
    fig, (ax_a, ax_b) = plt.subplots(1, 2, figsize=(7.0, 3.3), constrained_layout=True)
    _seed_panel(ax_a, ours, organisms, lit)
    _rules_panel(ax_b, ours, organisms)
    for ax in (ax_a, ax_b):
        ax.grid(alpha=0.3, lw=0.5)
        ax.xaxis.set_major_formatter(FuncFormatter(params_label))
        ax.xaxis.set_minor_formatter(NullFormatter())
    limits_a, limits_b = scale_x_limits(ours, organisms, lit)
    ax_a.set_xlim(*limits_a)
    ax_b.set_xlim(*limits_b)
    if ax_b.get_xlim()[1] / ax_b.get_xlim()[0] < 10:  # less than a decade: label the measured sizes
        ax_b.set_xticks(sorted(pd.concat([ours, organisms])["n_params"].unique()))
    return fig
