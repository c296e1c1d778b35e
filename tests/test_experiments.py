"""Verdict rules, summaries and helpers of memkit.experiments on hand-made result frames."""

import pandas as pd
import pytest

from memkit.paper.experiments import add_verdicts, rule_letters, settings_groups, summarize
from memkit.paper.report import fit_float, macro_key, write_table


def _frame():
    return pd.DataFrame({
        "id": ["a", "b", "c"], "model": "m", "mode": "raw", "n_params": 100, "is_instruct": False, "m": 64,
        "exact_match": [True, False, False], "prefix_match_len": [64, 40, 3],
        "near_verbatim": [True, True, False], "seed_memorized": [True, False, False],
        "seed_score": [1.0, 0.5, 0.1], "lcs_len": [64, 40, 35],  # c: the suffix sits later in the reply
    })


def test_verdicts_follow_each_rule():
    frame = add_verdicts(_frame(), biderman_m=32)
    assert frame["mem_exact"].tolist() == [True, False, False]
    assert frame["mem_biderman"].tolist() == [True, True, False]  # 40 >= 32 leading tokens
    assert frame["mem_near_verbatim"].tolist() == [True, True, False]
    assert frame["mem_seed"].tolist() == [True, False, False]
    assert frame["contains_suffix"].tolist() == [True, True, True]  # 35 >= 32 consecutive tokens anywhere
    assert rule_letters(frame).tolist() == ["EBNSC", "BNC", "C"]
    assert rule_letters(frame.assign(contains_suffix=False)).tolist() == ["EBNS", "BN", "--"]


def test_summary_counts_and_rates():
    row = summarize(add_verdicts(_frame()), long_prefix=16, seed_ids=["b", "c"]).iloc[0]
    assert row["n"] == 3 and row["mem_exact_count"] == 1 and row["mem_biderman_count"] == 2
    assert row["mem_exact_rate"] == pytest.approx(1 / 3)
    assert row["any_count"] == 2 and row["long_prefix_count"] == 2  # C is not one of the rules
    assert row["contains_suffix_count"] == 3 and row["max_lcs_len"] == 64
    assert row["max_seed_score"] == 1.0 and row["max_seed_score_seed_ids"] == 0.5


def test_macro_key_is_letters_only():
    assert macro_key("smollm2-135m-instruct") == "SmollmTwoOneThreeFiveMInstruct"
    assert macro_key("gemma-3-270m").isalpha()
    with pytest.raises(ValueError):
        macro_key("--")


def test_settings_groups_put_overrides_apart():
    records = [{"id": "long", "text": "x"}, {"id": "short", "text": "y"}]
    groups = settings_groups(records, 32, 64, {"short": (24, 32)})
    assert [(k, m, [r["id"] for r in recs]) for k, m, recs in groups] == [(32, 64, ["long"]), (24, 32, ["short"])]


def test_fit_float_wraps_the_tabular(tmp_path):
    path = write_table(pd.DataFrame({"a": [1]}), tmp_path / "t.tex", source="test", caption="c", label="l")
    fit_float(path, position="p")
    text = path.read_text()
    assert r"\begin{table}[p]" in text and r"\resizebox{\linewidth}{!}{%" in text
    assert text.index(r"\resizebox") < text.index(r"\begin{tabular}") < text.index(r"\end{tabular}%")
