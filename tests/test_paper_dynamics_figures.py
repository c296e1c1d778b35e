"""memkit.paper.dynamics_figures on hand-made frames: panel layout, lines per group, alpha* dots, legends."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from memkit.paper import dynamics_figures, dynamics_runs  # noqa: E402


def test_phase_figure_one_panel_per_model_and_family():
    grids = {("m", "insert_rare"): [0, 0.25, 0.5], ("m", "logit_tail"): [0, 4, 16]}
    phase = dynamics_runs.PhaseRuns(["m"], pd.DataFrame(), pd.DataFrame(), ["insert_rare", "logit_tail"], grids)
    curves = pd.DataFrame([{"spec": "m", "kind": kind, "group": group, "alpha": a, "retention": 1 - i / 3}
                           for kind, grid in (("insert_rare", [0, 0.25, 0.5]), ("logit_tail", [0, 4, 16]))
                           for group in ("memorized", "control") for i, a in enumerate(grid)])
    fig = dynamics_figures.phase_figure(curves, phase, {"m": "Model"})
    token, logit = fig.axes[:2]
    assert len(token.lines) == 2 + 1 and len(logit.lines) == 2 + 1  # memorized, control, the 0.5 line
    assert token.get_xscale() == "log" and token.get_ylabel().startswith("Model")
    assert [t.get_text() for t in token.get_xticklabels()][0] == "0"
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["memorized", "control"]
    plt.close(fig)


def test_layer_heatmaps_mark_alpha_star_only_where_fitted():
    heat = pd.DataFrame([{"spec": "m", "group": g, "layer": layer, "alpha": a, "retention": 0.5}
                         for g in ("memorized", "control") for layer in (0, 1) for a in (0, 1.0, 2.0)])
    fits = pd.DataFrame({"spec": "m", "group": ["memorized", "memorized", "control", "control"],
                         "layer": [0, 1, 0, 1], "alpha_star": [np.sqrt(2), np.nan, 1.0, 2.0]})
    fig = dynamics_figures.layer_heatmaps(heat, fits, ["m"], {"m": "M"}, kind="embed_random")
    mem, ctrl = fig.axes[:2]
    xs, ys = mem.lines[0].get_data()
    assert list(ys) == [0] and np.isclose(xs[0], 1.5)  # halfway between columns 1 and 2 on the log grid
    assert list(ctrl.lines[0].get_data()[0]) == [1.0, 2.0]
    assert mem.get_title() == "M\nmemorized" and "embed_random" in mem.get_ylabel()
    plt.close(fig)


def test_fragility_figure_lines_per_action_and_group():
    at = [{"spec": "m", "action": n, "group": g} for n in (0, 1) for g in ("memorized", "control")]
    layer_mean = pd.DataFrame([{**a, "layer": layer, "rel_distance": 0.1 * layer} for a in at for layer in (0, 1)])
    step_mean = pd.DataFrame([{**a, "step": s, "kl": 0.0} for a in at for s in (0, 1, 2)])
    runs = dynamics_runs.LayerRuns(["m"], pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), pd.DataFrame(),
                                   {("m", 0): {"kind": "embed_random", "alpha": 0.5, "layer": 3},
                                    ("m", 1): {"kind": "substitute_rare", "alpha": 0.25, "layer": None}})
    fig = dynamics_figures.fragility_figure(layer_mean, step_mean, runs, {"m": "M"}, n_actions=2)
    left, right = fig.axes[:2]
    assert len(left.lines) == 4 and len(right.lines) == 4
    assert min(right.lines[0].get_data()[1]) == 1e-6  # KL clipped for the log axis
    assert [t.get_text() for t in left.get_legend().get_texts()][1].startswith("substitute_rare")
    plt.close(fig)
