"""paper.mia_real: shuffled twins, pair selection, paired tests and the table/macros on hand-made frames."""

import re
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from memkit.paper import mia_real


def test_twin_keeps_the_words_and_the_whitespace_and_is_seeded():
    text = "  def f(x):\n    return x + 1\n\nprint(f(2))"
    twin = mia_real.shuffled_twin(text, seed=3)
    assert Counter(twin.split()) == Counter(text.split())
    assert re.findall(r"\s+", twin) == re.findall(r"\s+", text)
    assert twin == mia_real.shuffled_twin(text, seed=3)
    assert twin != text
    assert mia_real.shuffled_twin("", seed=0) == ""


def test_twin_records_keep_only_texts_and_pair_them():
    records = [{"id": "a", "category": "poetry", "text": "one two three"},
               {"id": "s", "category": "sequence", "text": "1 2 3"},
               {"id": "c", "category": "control", "text": "three one two"},
               {"id": "b", "category": "code", "text": "x = 1"}]
    out = mia_real.twin_records(records, seed=0)
    assert [r["id"] for r in out] == ["a", "a" + mia_real.TWIN, "b", "b" + mia_real.TWIN]
    assert [r["member"] for r in out] == [True, False, True, False]
    assert [r["pair"] for r in out] == ["a", "a", "b", "b"]


def test_long_enough_drops_both_members_of_a_short_pair():
    tokenizer = lambda text, add_special_tokens: {"input_ids": text.split()}  # noqa: E731 -- one token per word
    records = [{"id": "a", "pair": "a", "text": "w " * 5}, {"id": "a~", "pair": "a", "text": "w " * 5},
               {"id": "b", "pair": "b", "text": "w " * 5}, {"id": "b~", "pair": "b", "text": "w " * 3}]
    kept, dropped = mia_real.long_enough(tokenizer, records, 4)
    assert [r["id"] for r in kept] == ["a", "a~"] and dropped == ["b"]


def _scores(diffs, spec="m"):
    rows = []
    for i, d in enumerate(diffs):
        base = {f"score_{a}": 0.0 for a in mia_real.ATTACKS}
        rows.append({"spec": spec, "pair": f"p{i}", "member": False, **base})
        rows.append({"spec": spec, "pair": f"p{i}", "member": True, **{c: float(d) for c in base}})
    return pd.DataFrame(rows)


def test_paired_tests_exact_sign_flip_p_and_holm():
    tests = mia_real.paired_tests(_scores([1, 2, 3, 4, 5]))
    assert list(tests["attack"]) == mia_real.ATTACKS
    assert np.allclose(tests["diff"], 3.0) and (tests["n_pairs"] == 5).all()
    assert np.allclose(tests["p"], 2 / 32)  # only the all-positive and all-negative sign patterns are as extreme
    assert np.allclose(tests["p_holm"], min(1.0, 4 * 2 / 32))  # four equal p: Holm multiplies the smallest by 4


def test_table_and_numbers_from_hand_made_metrics():
    metrics = pd.DataFrame([
        {"spec": "gemma-3-270m", "attack": a, "n_pairs": 30, "auc": auc, "auc_lo": auc - 0.1, "auc_hi": 1.0,
         "tpr": 0.5, "fpr": 0.05, "ci_ok": True, "diff": 1.0, "p": 1e-4, "p_holm": p_holm}
        for a, auc, p_holm in zip(mia_real.ATTACKS, [0.9, 0.8, 0.95, 0.6], [1e-3, 1e-3, 1e-3, 0.2])])
    res = mia_real.RealMia(scores=pd.DataFrame(), metrics=metrics, k=16, m=32, dropped={"gemma-3-270m": ["x"]})
    table, caption = mia_real.real_mia_table(res, {"gemma-3-270m": "Gemma"})
    assert list(table["Model"]) == ["Gemma"] * 4
    assert table["AUC [95\\% CI]"].iloc[0] == "0.90 [0.80, 1.00]"
    assert "48" in caption and "4 rows" in caption
    numbers = mia_real.real_mia_numbers(res, {"gemma-3-270m": "Gemma"})
    assert numbers["MiaRealGemmaBestAttack"] == "Min-K\\%" and numbers["MiaRealGemmaBestAuc"] == "0.95"
    assert numbers["MiaRealGemmaMinKPlusPlusAuc"] == "0.60" and numbers["MiaRealGemmaDropped"] == 1
    assert numbers["MiaRealNSignificant"] == 3 and numbers["MiaRealTokens"] == 48
    assert all(re.fullmatch(r"[A-Za-z]+", key) for key in numbers)


@pytest.mark.parametrize("seed", [0, 1])
def test_twins_of_a_real_attractor_differ_by_seed(seed):
    text = " ".join(f"w{i}" for i in range(50))
    assert mia_real.shuffled_twin(text, seed=seed) != mia_real.shuffled_twin(text, seed=seed + 2)
