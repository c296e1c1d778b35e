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
