"""The membership-inference driver (memkit.paper.mia_runs): attacks, tests, table and macros on hand-made
score frames with known AUCs, the score cache on the tiny model, and one run on the smoke zoo."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from memkit import mia
from memkit.core.stats import MIN_BOOTSTRAP_N, holm
from memkit.paper import mia_runs

from conftest import REAL_CACHE

N_CONTROLS = 25


def score_frame() -> pd.DataFrame:
    """Two sizes, 25 controls scoring 0..24 and three member levels with known loss AUCs:
    level 1 (5 members, AUC 0.6, n<20), level 10 (25 members above every control, AUC 1),
    level 100 (25 members below every control, AUC 0). Size `a` is the reference (no score_ref);
    Min-K% ranks the level-1 members above every control (AUC 1)."""
    groups = [(0, np.arange(N_CONTROLS, dtype=float)), (1, np.array([-1.0, -1.0, 30.0, 30.0, 30.0])),
              (10, 100.0 + np.arange(25)), (100, -100.0 + np.arange(25))]
    rows = []
    for size, params in (("a", 1000), ("b", 4000)):
        for level, values in groups:
            for i, value in enumerate(values):
                min_k = 1000.0 if level == 1 else value
                rows.append({"id": f"L{level}-{i}", "size": size, "params": params, "level": level, "kind": "words",
                             "is_member": level > 0, "score_loss": value, "score_zlib": value / 10,
                             "score_min_k": min_k, "score_min_k_pp": value,
                             "score_ref": np.nan if size == "a" else -value,
                             "exact_match": level == 100, "biderman": 1.0 if level == 100 else 0.0})
    return pd.DataFrame(rows)


def membership(n_boot: int = 200) -> mia_runs.Membership:
    scores = score_frame()
    rates = (scores.groupby(["size", "params", "level"], sort=False)
             .agg(n=("id", "size"), exact=("exact_match", "mean"), biderman=("biderman", "mean")).reset_index())
    settings = {"k": 32, "m": 32, "min_k": 0.2, "fpr": 0.01, "n_boot": n_boot, "n_resamples": 999, "alpha": 0.05}
    return mia_runs.Membership(["a", "b"], scores, mia_runs.level_attacks(scores, n_boot=n_boot), rates,
                               mia_runs.level_tests(scores, n_resamples=999), settings)


def test_min_boot_is_the_project_floor():
    assert mia.MIN_BOOT == MIN_BOOTSTRAP_N == 20


def test_level_attacks_known_aucs_and_no_ci_below_twenty():
    attacks = membership().attacks.set_index(["size", "level", "attack"])
    assert len(attacks) == 3 * 4 + 3 * 5  # size a has no reference attack
    assert ("a", 1, "ref") not in attacks.index and ("b", 1, "ref") in attacks.index
    assert attacks.loc[("a", 1, "loss"), "auc"] == pytest.approx(0.6)
    assert attacks.loc[("a", 1, "min_k"), "auc"] == 1.0
    assert attacks.loc[("b", 10, "loss"), "auc"] == 1.0 and attacks.loc[("b", 100, "loss"), "auc"] == 0.0
    assert attacks.loc[("b", 10, "ref"), "auc"] == 0.0  # score_ref = -score here
    one, ten = attacks.loc[("a", 1, "loss")], attacks.loc[("a", 10, "loss")]
    assert (one["n_members"], one["n_nonmembers"]) == (5, N_CONTROLS)
    assert not one["ci_ok"] and np.isnan(one["auc_lo"]) and np.isnan(one["tpr_hi"])  # 5 < 20 members
    assert ten["ci_ok"] and ten["auc_lo"] == ten["auc_hi"] == 1.0  # perfect separation in every resample
    assert attacks.loc[("a", 1, "loss"), "tpr_coarse"]  # 25 controls < 1 / 1%: TPR at FPR 0
    assert attacks.loc[("a", 1, "loss"), "tpr"] == pytest.approx(0.6)  # three members above the top control


def test_level_tests_holm_within_size_and_direction():
    tests = membership().tests
    assert tests[["size", "level"]].values.tolist() == [["a", 1], ["a", 10], ["a", 100], ["b", 1], ["b", 10],
                                                        ["b", 100]]
    for _, group in tests.groupby("size"):
        np.testing.assert_allclose(group["p_holm"], holm(group["p"]))
    a = tests[tests["size"] == "a"].set_index("level")
    assert a.loc[10, "p"] == pytest.approx(2 / 1000) and a.loc[10, "p_floor"] == pytest.approx(2 / 1000)
    assert a.loc[10, "p_holm"] == pytest.approx(3 * 2 / 1000)
    assert a.loc[100, "p_holm"] < 0.05 and a.loc[100, "auc"] == 0.0
    assert a["detected"].tolist() == [False, True, False]  # level 100: significant but below 0.5, not detected
    assert a.loc[1, "p"] > 0.3


def test_rank_test_exact_and_smallest_p():
    # 2 vs 2 items: 6 relabellings, the observed split is the most extreme one on each side
    assert mia_runs.rank_test(np.array([3.0, 4.0]), np.array([1.0, 2.0]), n_resamples=999, seed=0) == \
        pytest.approx(1 / 3)
    assert mia_runs.smallest_p(2, 2, 999) == pytest.approx(1 / 3)
    assert mia_runs.smallest_p(25, 25, 999) == pytest.approx(2 / 1000)


def test_mia_table_cells():
    table, caption = mia_runs.mia_table(membership())
    assert len(table) == 8 and table["model"].tolist() == ["zoo:a", "", "", "", "zoo:b", "", "", ""]
    rows = table.set_index(["copies"]).iloc[:4]
    assert rows.loc["0 (controls)", "$n_1$ / $n_0$"] == "-- / 25" and rows.loc["0 (controls)", "AUC loss"] == "--"
    assert rows.loc["1", "CI"] == "n$<$20" and rows.loc["1", "AUC loss"] == "0.60"
    assert rows.loc["1", "$n_1$ / $n_0$"] == "5 / 25" and rows.loc["1", "AUC ref."] == "--"
    assert rows.loc["10", "CI"] == "95\\%" and rows.loc["10", "AUC loss"] == "1.00 [1.00, 1.00]"
    assert rows.loc["100", "exact"] == "1.00" and rows.loc["100", "Biderman"] == "1.00"
    assert rows.loc["10", "$p_\\mathrm{Holm}$ loss"] == "0.006"
    assert table.iloc[5]["AUC ref."] == "0.40" and table.iloc[5]["copies"] == "1"  # size b: 2 of 5 above every control
    assert "5--25 per level" in caption and "$n_0=25<100$" in caption and "tab\\_mia.py" in caption
    assert "at least 20 canaries" in caption


def test_mia_numbers():
    numbers = mia_runs.mia_numbers(membership())
    assert numbers["MiaNControls"] == N_CONTROLS and numbers["MiaMembersMin"] == 5 and numbers["MiaMembersMax"] == 25
    assert numbers["MiaTopLevel"] == 100 and numbers["MiaNLevels"] == 3 and numbers["MiaNSizes"] == 2
    assert numbers["MiaLossAucTopA"] == "0.00" and numbers["MiaLossAucTopCiA"] == "95\\% CI [0.00, 0.00]"
    assert numbers["MiaMaxAucOneA"] == "1.00" and numbers["MiaMaxAucOneAttackA"] == "Min-K\\%"
    assert numbers["MiaLossAucOneA"] == "0.60" and numbers["MiaOneMembersA"] == 5
    assert numbers["MiaDetectedA"] == 1 and numbers["MiaNTestsA"] == 3 and numbers["MiaLowestDetectedA"] == 10
    assert numbers["MiaDetectedTotal"] == 2 and numbers["MiaNTestsTotal"] == 6
    assert numbers["MiaDetectedNotExtracted"] == 2  # level 10 of both sizes: detected, never extracted
    assert numbers["MiaExactTopB"] == "1.00" and numbers["MiaReferenceParams"] == "1k"
    assert numbers["MiaLossAucLowestDetectedA"] == "1.00" and numbers["MiaExactLowestDetectedA"] == "0.00"
    assert numbers["MiaBidermanLowestDetectedA"] == "0.00" and numbers["MiaMaxAucLowestDetectedAttackA"] == "loss"
    assert "MiaRefAucTopA" not in numbers and numbers["MiaRefAucTopB"] == "1.00"  # score_ref = -score
    assert numbers["MiaRefAucTopMax"] == "1.00" and numbers["MiaRefAucOneMax"] == "0.40"


def test_mia_numbers_top_level_without_ci():
    mem = membership()
    mem.attacks = mem.attacks[mem.attacks["level"] < 100]
    mem.tests = mem.tests[mem.tests["level"] < 100]
    numbers = mia_runs.mia_numbers(mem)
    assert numbers["MiaTopLevel"] == 10 and numbers["MiaLossAucTopCiA"] == "95\\% CI [1.00, 1.00]"
    mem.attacks = mem.attacks[mem.attacks["level"] < 10]
    mem.tests = mem.tests[mem.tests["level"] < 10]
    numbers = mia_runs.mia_numbers(mem)
    assert numbers["MiaLossAucTopCiA"] == "no CI: n$<$20" and numbers["MiaLowestDetectedA"] == "--"
    assert numbers["MiaExactLowestDetectedA"] == numbers["MiaMaxAucLowestDetectedAttackA"] == "--"


# -- the score cache ------------------------------------------------------------------------------------------------
def test_cached_mia_scores_read_back_and_keyed(tiny_lm, monkeypatch):
    import memkit

    records = [{"id": f"r{i}", "text": f"The farmer carried {i} old wooden boxes near the river before dawn."}
               for i in range(4)]
    samples = memkit.make_samples(tiny_lm, records, k=4, m=4, mode="raw")
    first = mia_runs.cached_mia_scores(tiny_lm, samples, min_k=0.2, batch_size=2)
    path = mia_runs.scores_path(tiny_lm, samples, min_k=0.2, batch_size=2)
    assert path.is_file() and path.parent.name == "mia"

    def no_rerun(*args, **kwargs):
        raise AssertionError("cached scores must be read back")

    monkeypatch.setattr(mia, "mia_scores", no_rerun)
    pd.testing.assert_frame_equal(mia_runs.cached_mia_scores(tiny_lm, samples, min_k=0.2, batch_size=2), first)
    assert mia_runs.scores_path(tiny_lm, samples, min_k=0.3, batch_size=2) != path
    assert mia_runs.scores_path(tiny_lm, samples, reference=tiny_lm, min_k=0.2, batch_size=2) != path


# -- the smoke zoo, end to end ---------------------------------------------------------------------------------------
def test_membership_runs_on_the_smoke_zoo(tmp_path, monkeypatch):
    """Scores and extraction in a fresh cache; the zoo comes from the real cache (trained there once if missing)."""
    real = REAL_CACHE or os.path.join(os.path.expanduser("~"), ".cache", "memkit")
    os.makedirs(os.path.join(real, "zoo"), exist_ok=True)
    (tmp_path / "zoo").symlink_to(os.path.join(real, "zoo"))
    monkeypatch.setenv("MEMKIT_CACHE", str(tmp_path))
    mem = mia_runs.membership_runs("smoke", n_boot=50, n_resamples=99)
    assert mem.sizes == ["13k", "100k"]
    assert len(mem.scores) == 2 * 21 and mem.scores["exact_match"].notna().all()
    attacks = mem.attacks
    assert len(attacks) == 5 * 4 + 5 * 5 and not attacks["ci_ok"].any()  # 3 members, 6 controls per level
    top = attacks[(attacks["level"] == 256) & (attacks["attack"] == "loss")]
    assert (top["auc"] >= 0.9).all()  # 256 copies: the loss separates them from the controls
    table, _ = mia_runs.mia_table(mem)
    assert len(table) == 12 and set(table["CI"]) == {"--", "n$<$20"}
    monkeypatch.setattr(mia, "mia_scores", lambda *a, **k: (_ for _ in ()).throw(AssertionError("not cached")))
    again = mia_runs.membership_runs("smoke", n_boot=50, n_resamples=99)
    pd.testing.assert_frame_equal(again.attacks, mem.attacks)
