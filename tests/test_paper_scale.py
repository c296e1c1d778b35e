"""Figure 1's pure pieces (memkit.paper.scale_runs) on hand-made frames: quoted points, label stacking, macros."""

import pandas as pd

from memkit.paper import scale_runs


def test_literature_points_and_seed_ids(tmp_path):
    scale = tmp_path / "scale.csv"
    scale.write_text("model,params,value,metric,study\n"
                     "A,7e9,0.9,max over 7 attractors (chat),original study X\n"
                     "B,1e9,0.2,max over 7 attractors,blog\n"
                     "C,1e9,0.5,mean,original study X\n")
    lit = scale_runs.literature_points(scale, "max over 7 attractors")
    assert lit["model"].tolist() == ["A", "B"]
    assert lit["kind"].tolist() == [scale_runs.QUOTED_MEASURED, scale_runs.QUOTED_UNCITED]
    seeds = tmp_path / "lit.csv"
    seeds.write_text("attractor_id,score\nb,1\na,2\nb,3\n")
    assert scale_runs.seed_ids(seeds) == ["b", "a"]


def test_stack_index_counts_close_earlier_points():
    # the second point is close to the first; the third is 100x larger; the fourth is close to both first ones
    assert scale_runs.stack_index([1e8, 2e8, 1e10, 1.5e8], [0.5, 0.52, 0.5, 0.51]) == [0, 1, 0, 2]


def test_scale_numbers():
    ours = pd.DataFrame({"spec": ["s", "s"], "model": ["s", "s"], "mode": ["raw", "chat"], "n_params": [135e6, 135e6],
                         "max_seed_score_seed_ids": [0.8, float("nan")], "best_seed_id": ["pi_digits", ""]})
    organisms = pd.DataFrame({"spec": ["zoo:a", "zoo:b"], "n_params": [850e3, 3.2e6],
                              "max_seed_score_seed_ids": [0.1, 0.3], "mem_exact_rate": [0.0, 0.25],
                              "mem_biderman_rate": [0.1, 0.5], "best_id": ["genesis_1", "psalm_23"]})
    lit = pd.DataFrame({"model": ["A", "B"], "params": [7e9, 175e9], "value": [0.9, 0.4],
                        "kind": [scale_runs.QUOTED_MEASURED, scale_runs.QUOTED_UNCITED]})
    numbers = scale_runs.scale_numbers(ours, organisms, lit, n_models=1, macro_names={"s": "Smol"})
    assert numbers["ScaleNCombos"] == 2 and numbers["ScaleNOrganisms"] == 2 and numbers["ScaleNLitPoints"] == 2
    assert numbers["ScaleOursAboveThreshold"] == 1
    assert numbers["ScaleLitMeasuredMax"] == "0.90" and numbers["ScaleLitUncitedSmallestParams"] == "175B"
    assert numbers["ScaleSizeRatio"] == "51"  # 7e9 / 135e6 = 51.9, rounded down: "more than 51 times smaller"
    assert numbers["ScaleSmolSizeRatio"] == "51"
    assert numbers["ScaleOrganismSmallestParams"] == "850k" and numbers["ScaleOrganismLargestParams"] == "3M"
    assert numbers["ScaleOrganismBestId"] == "\\texttt{psalm\\_23}"
    assert numbers["ScaleSmolRawMaxSeedSeven"] == "0.80" and numbers["ScaleSmolRawBestSeven"] == "\\texttt{pi\\_digits}"
    assert numbers["ScaleSmolChatMaxSeedSeven"] == "--" and numbers["ScaleSmolChatBestSeven"] == "--"
    assert numbers["ScaleSmolChatParams"] == "135M"
    empty = scale_runs.scale_numbers(ours, organisms.iloc[:0], lit.iloc[:0], n_models=1)
    assert empty["ScaleLitMeasuredMax"] == "--" and "ScaleOrganismBestId" not in empty
    assert empty["ScaleSizeRatio"] == "--" and empty["ScaleSRawParams"] == "135M" and empty["ScaleSSizeRatio"] == "--"
    assert "ScaleSRawParams" in empty  # without macro names: report.macro_key of the model


def test_scale_numbers_size_ratio_per_model():
    # each model against the smallest model the original study measured (7B; the 70B uncited quote does not count)
    ours = pd.DataFrame({"spec": ["g", "s", "s"], "model": ["g", "s", "s"], "mode": ["raw", "raw", "chat"],
                         "n_params": [268e6, 134.5e6, 134.5e6], "max_seed_score_seed_ids": [1.0, 1.0, 0.1],
                         "best_seed_id": ["counting", "counting", "alphabet"]})
    lit = pd.DataFrame({"model": ["L", "M", "U"], "params": [8e9, 7e9, 70e9], "value": [0.12, 0.08, 0.98],
                        "kind": [scale_runs.QUOTED_MEASURED, scale_runs.QUOTED_MEASURED, scale_runs.QUOTED_UNCITED]})
    numbers = scale_runs.scale_numbers(ours, ours.iloc[:0], lit, n_models=2, macro_names={"g": "Gemma", "s": "Smol"})
    assert numbers["ScaleGemmaSizeRatio"] == "26"  # 7e9 / 268e6 = 26.1
    assert numbers["ScaleSmolSizeRatio"] == "52"  # 7e9 / 134.5e6 = 52.04
    assert numbers["ScaleSizeRatio"] == numbers["ScaleGemmaSizeRatio"]  # the largest model measured here
    assert "ScaleSmolChatSizeRatio" not in numbers  # one ratio per model, not per mode


# -- the figure (memkit.paper.scale_figures) ----------------------------------------------------------
def _figure_frames():
    rules = ("mem_exact", "mem_biderman", "mem_near_verbatim", "mem_seed")
    rates = {f"{rule}_rate": [0.0, 0.25, 0.5] for rule in rules}
    ours = pd.DataFrame({"spec": ["a", "a", "b"], "label": ["A", "A", "B"], "mode": ["raw", "chat", "raw"],
                         "n_params": [135e6, 135e6, 270e6], "n": [8, 8, 8],
                         "max_seed_score_seed_ids": [0.8, float("nan"), 0.2], **rates})
    organisms = pd.DataFrame({"n_params": [1e6, 4e6], "max_seed_score_seed_ids": [0.1, 0.3],
                              **{key: [0.0, 0.125] for key in rates}})
    lit = pd.DataFrame({"model": ["X", "Y"], "params": [7e9, 175e9], "value": [0.9, 0.4],
                        "kind": [scale_runs.QUOTED_MEASURED, scale_runs.QUOTED_UNCITED]})
    return ours, organisms, lit


def test_params_label():
    from memkit.paper.scale_figures import params_label

    assert [params_label(x) for x in (850e3, 135e6, 1.5e9, 175e9)] == ["850k", "135M", "1.5B", "175B"]


def test_scale_x_limits_quoted_points_only_in_panel_a():
    from memkit.paper.scale_figures import scale_x_limits

    ours, organisms, lit = _figure_frames()
    (a_lo, a_hi), (b_lo, b_hi) = scale_x_limits(ours, organisms, lit)
    assert (a_lo, a_hi) == (1e6 / 2, 175e9 * 3)
    assert (b_lo, b_hi) == (1e6 / 1.6, 270e6 * 1.6)
    assert scale_x_limits(ours, organisms, lit.iloc[:0])[0] == (1e6 / 2, 270e6 * 3)  # no quoted points


def test_scale_figure_points_lines_and_legends():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from memkit.paper.scale_figures import RULE_STYLE, scale_figure

    ours, organisms, lit = _figure_frames()
    fig = scale_figure(ours, organisms, lit)
    ax_a, ax_b = fig.axes[:2]
    # (a): raw and chat scatters (the NaN chat point dropped: no chat collection), organisms, two quoted kinds
    assert [len(c.get_offsets()) for c in ax_a.collections] == [2, 2, 1, 1]
    assert [t.get_text() for t in ax_a.texts] == ["A (raw)", "B (raw)", "X", "Y", "seed threshold 0.7"]
    assert ax_a.get_xscale() == "log" and ax_a.get_xlim() == (1e6 / 2, 175e9 * 3)
    # (b): per rule one line per mode (raw: A and B, chat: A) plus the organisms' dashed line
    assert len(ax_b.lines) == len(RULE_STYLE) * 3
    exact_raw = ax_b.lines[0]
    assert list(exact_raw.get_xdata()) == [135e6 * 0.92, 270e6 * 0.92] and exact_raw.get_linestyle() == "-"
    assert ax_b.lines[2].get_linestyle() == "--"
    assert ax_b.get_ylim() == (-0.01, 0.6) and ax_b.get_ylabel() == "share of the 8 attractors memorized"
    legend = [t.get_text() for t in ax_b.get_legend().get_texts()]
    assert legend[4:] == ["raw prompt", "chat prompt", "organisms, raw"]
    assert ax_b.xaxis.get_major_formatter()(1.5e9, 0) == "1.5B"
    plt.close(fig)
