"""The membership-inference driver (memkit.paper.mia_runs): per-seed and seed-pooled attacks, the pooled rank
test, extraction rates, table and macros on hand-made score frames with known AUCs, the score cache on the
tiny model, and one run on the smoke zoo."""

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
LEVEL_ONE = {0: [-1.0, -1.0, 30.0, 30.0, 30.0], 1: [30.0] * 5}  # seed -> level-1 loss scores: AUC 0.6 and 1


def score_frame() -> pd.DataFrame:
    """Two sizes x two seeds; 25 controls scoring 0..24 and three member levels with known loss AUCs:
    level 1 (5 members, AUC 0.6 in seed 0 and 1 in seed 1, n<20), level 10 (25 members above every control,
    AUC 1), level 100 (25 members below every control, AUC 0). Size `a` is the reference (no score_ref);
    Min-K% ranks the level-1 members above every control (AUC 1). Kinds alternate words / records."""
    rows = []
    for size, params in (("a", 1000), ("b", 4000)):
        for seed in (0, 1):
            groups = [(0, np.arange(N_CONTROLS, dtype=float)), (1, np.array(LEVEL_ONE[seed])),
                      (10, 100.0 + np.arange(25)), (100, -100.0 + np.arange(25))]
            for level, values in groups:
                for i, value in enumerate(values):
                    min_k = 1000.0 if level == 1 else value
                    rows.append({"id": f"L{level}-{i:02d}", "size": size, "params": params, "seed": seed,
                                 "level": level, "kind": ("words", "records")[i % 2], "is_member": level > 0,
                                 "score_loss": value, "score_zlib": value / 10, "score_min_k": min_k,
                                 "score_min_k_pp": value, "score_ref": np.nan if size == "a" else -value,
                                 "exact_match": level == 100 and (seed == 0 or i < 5),
                                 "biderman": 1.0 if level == 100 else 0.0})
    return pd.DataFrame(rows)


def membership(n_boot: int = 200) -> mia_runs.Membership:
    scores = score_frame()
    runs = scores[["size", "params", "seed", "level", "id", "exact_match", "biderman"]]
    pooled = mia_runs.pooled_attacks(scores, n_boot=n_boot)
    best = mia_runs.best_attack(pooled)
    settings = {"k": 32, "m": 32, "min_k": 0.2, "fpr": 0.01, "n_boot": n_boot, "n_resamples": 1999, "alpha": 0.05}
    return mia_runs.Membership(["a", "b"], [0, 1], scores, mia_runs.seed_attacks(scores, n_boot=n_boot), pooled,
                               mia_runs.seed_rates(runs), mia_runs.level_tests(scores, pooled, n_resamples=1999),
                               best, mia_runs.kind_attacks(scores, best), settings)


def test_min_boot_is_the_project_floor():
    assert mia.MIN_BOOT == MIN_BOOTSTRAP_N == 20


def test_seed_attacks_each_seed_alone():
    attacks = membership().per_seed.set_index(["size", "seed", "level", "attack"])
    assert len(attacks) == 2 * (3 * 4 + 3 * 5)  # per seed; size a has no reference attack
    assert ("a", 0, 1, "ref") not in attacks.index and ("b", 1, 1, "ref") in attacks.index
    assert attacks.loc[("a", 0, 1, "loss"), "auc"] == pytest.approx(0.6)
    assert attacks.loc[("a", 1, 1, "loss"), "auc"] == 1.0
    one, ten = attacks.loc[("a", 0, 1, "loss")], attacks.loc[("a", 0, 10, "loss")]
    assert (one["n_members"], one["n_nonmembers"]) == (5, N_CONTROLS)
    assert not one["ci_ok"] and np.isnan(one["auc_lo"])  # 5 < 20 members
    assert ten["ci_ok"] and ten["auc_lo"] == ten["auc_hi"] == 1.0
    assert attacks.loc[("a", 0, 1, "loss"), "tpr_coarse"] and attacks.loc[("a", 0, 1, "loss"), "tpr"] == 0.6


def test_pooled_attacks_mean_over_seeds_and_intervals():
    pooled = membership().pooled.set_index(["size", "level", "attack"])
    assert len(pooled) == 3 * 4 + 3 * 5
    one = pooled.loc[("a", 1, "loss")]
    assert one["auc"] == pytest.approx(0.8) and one["n_seeds"] == 2  # mean of 0.6 and 1
    assert one["auc_seed_sd"] == pytest.approx(np.std([0.6, 1.0], ddof=1))
    assert not one["ci_ok"] and np.isnan(one["auc_lo"])
    # TPR over the 2 x 25 pooled controls (< 100: the highest control, 24): 3 + 5 of the 10 member scores
    assert one["tpr"] == pytest.approx(0.8) and one["fpr_achieved"] == 0.0 and one["tpr_coarse"]
    ten = pooled.loc[("b", 10, "loss")]
    assert ten["ci_ok"] and ten["auc_lo"] == ten["auc_hi"] == ten["auc_seed_lo"] == ten["auc_seed_hi"] == 1.0
    assert pooled.loc[("b", 100, "ref"), "auc"] == 1.0 and pooled.loc[("a", 1, "min_k"), "auc"] == 1.0


def test_seed_matrix_aligns_canaries_by_id():
    scores = score_frame()
    shuffled = scores.sample(frac=1.0, random_state=0)
    part = shuffled[shuffled["size"] == "a"]
    matrix = mia_runs.seed_matrix(part, "score_loss", part["level"] == 1)
    np.testing.assert_array_equal(matrix, [LEVEL_ONE[0], LEVEL_ONE[1]])  # rows: seeds 0, 1; columns: L1-00..L1-04


def test_pooled_rank_test_by_hand():
    # 2 members vs 2 controls in 2 seeds: ranks summed over seeds are 8, 6 (members) and 4, 2 (controls); of the 6
    # relabellings of the 4 canaries, the observed one and its mirror image are the most extreme: p = 2/6
    members = np.array([[4.0, 3.0], [4.0, 3.0]])
    controls = np.array([[2.0, 1.0], [2.0, 1.0]])
    assert mia_runs.pooled_rank_test(members, controls, n_resamples=999, seed=0) == pytest.approx(1 / 3)
    # seeds that disagree: seed 1 reverses seed 0, every canary's summed rank is 5, p = 1
    assert mia_runs.pooled_rank_test(members, controls[::-1] * 0 + [[1.0, 2.0], [5.0, 6.0]],
                                     n_resamples=999, seed=0) == pytest.approx(1.0)
    assert mia_runs.smallest_p(2, 2, 999) == pytest.approx(1 / 3)
    assert mia_runs.smallest_p(25, 25, 999) == pytest.approx(2 / 1000)


def test_level_tests_holm_over_every_cell_and_attack():
    tests = membership().tests
    assert len(tests) == 3 * 4 + 3 * 5
    np.testing.assert_allclose(tests["p_holm"], holm(tests["p"]))
    a = tests[(tests["size"] == "a") & (tests["attack"] == "loss")].set_index("level")
    assert a.loc[10, "p"] == pytest.approx(2 / 2000) and a.loc[10, "p_floor"] == pytest.approx(2 / 2000)
    assert a.loc[10, "p_holm"] == pytest.approx(27 * 2 / 2000) and a.loc[10, "detected"]  # 27 tests at the floor
    assert a.loc[100, "p_holm"] < 0.05 and a.loc[100, "auc"] == 0.0 and not a.loc[100, "detected"]  # below 0.5
    assert (a.loc[1, "n_members"], a.loc[1, "n_nonmembers"], a.loc[1, "n_seeds"]) == (5, 25, 2)


def test_best_attack_among_those_every_size_has():
    mem = membership()
    assert mem.best == "min_k"  # AUC 1 at level 1 in both seeds; ref (higher at level 100) is missing for size a
    pooled = mem.pooled.copy()
    pooled.loc[pooled["attack"] == "ref", "auc"] = 1.0
    assert mia_runs.best_attack(pooled) == "min_k"


def test_seed_rates_mean_over_seeds():
    rates = membership().rates.set_index(["size", "level"])
    top = rates.loc[("a", 100)]
    # seed 0 extracts 25 of 25, seed 1 5 of 25: rates 1 and 0.2, mean 0.6, 30 extracted pairs of 50
    assert (top["n"], top["n_seeds"], top["n_exact"]) == (25, 2, 30)
    assert top["exact"] == pytest.approx(0.6) and top["exact_sd"] == pytest.approx(np.std([1, 0.2], ddof=1))
    assert rates.loc[("b", 10), "exact"] == 0.0 and rates.loc[("b", 0), "n"] == N_CONTROLS


def test_kind_attacks_against_the_same_kind():
    kinds = membership().kinds.set_index(["size", "kind", "level"])
    # min_k, level 1: members 0, 2, 4 are words (1000), controls of each kind score below: AUC 1 per kind
    assert kinds.loc[("a", "words", 1), "auc"] == 1.0
    assert (kinds.loc[("a", "words", 1), "n_members"], kinds.loc[("a", "words", 1), "n_nonmembers"]) == (3, 13)
    assert (kinds.loc[("a", "records", 1), "n_members"], kinds.loc[("a", "records", 1), "n_nonmembers"]) == (2, 12)
    assert kinds.loc[("b", "records", 100), "auc"] == 0.0 and (kinds["attack"] == "min_k").all()


def test_mia_table_cells():
    table, caption = mia_runs.mia_table(membership())
    assert len(table) == 8 and table["model"].tolist() == ["zoo:a", "", "", "", "zoo:b", "", "", ""]
    rows = table.set_index(["copies"]).iloc[:4]
    assert rows.loc["0 (controls)", "$n_1$ / $n_0$"] == "-- / 25" and rows.loc["0 (controls)", "AUC loss"] == "--"
    assert rows.loc["0 (controls)", "exact"] == "0.00 (0/50)"
    assert rows.loc["1", "AUC loss"] == "0.80" and rows.loc["1", "AUC ref."] == "--"
    assert rows.loc["1", "$n_1$ / $n_0$"] == "5 / 25"
    assert rows.loc["10", "AUC loss"] == "1.00 [1.00, 1.00]"
    assert rows.loc["100", "exact"] == "0.60 (30/50)"
    assert rows.loc["1", "Min-K\\%: seeds"] == "[1.00, 1.00]" and rows.loc["1", "Min-K\\%: TPR"] == "1.00"
    assert table.iloc[7]["AUC ref."] == "1.00 [1.00, 1.00]"  # size b, level 100: score_ref = -score
    assert "no CI for the 5-member rows (fewer than 20)" in caption and "2$\\times$25" in caption
    assert "over all 27 size" in caption and "tab\\_mia.py" in caption


def test_membership_figure_draws_every_size_and_the_reference_attack():
    import matplotlib

    matplotlib.use("Agg")
    from memkit.paper.mia_figures import membership_figure

    mem = membership()
    fig = membership_figure(mem)
    auc, extraction = fig.axes
    labels = [t.get_text() for t in auc.get_legend().get_texts()]
    assert len(labels) == 2 and len(extraction.get_lines()) == 2  # one line per size
    assert len(auc.containers) == 3  # best attack for both sizes + the reference attack for size b only
    assert [t.get_text() for t in extraction.get_xticklabels()] == ["1", "10", "100"]


def test_mia_numbers():
    numbers = mia_runs.mia_numbers(membership())
    assert numbers["MiaNControls"] == N_CONTROLS and numbers["MiaPooledControls"] == 50
    assert numbers["MiaMembersPerLevel"] == 5 and numbers["MiaTopMembers"] == 25 and numbers["MiaNSeeds"] == 2
    assert numbers["MiaTopLevel"] == 100 and numbers["MiaNLevels"] == 3 and numbers["MiaNSizes"] == 2
    assert numbers["MiaBestAttack"] == "Min-K\\%" and numbers["MiaNTests"] == 27 and numbers["MiaNCells"] == 6
    assert numbers["MiaBestAucOneSmallest"] == "1.00" and numbers["MiaBestAucCiOneSmallest"] == "no CI: $n_1<20$"
    assert numbers["MiaBestAucOneZeroLargest"] == "1.00"
    assert numbers["MiaBestAucCiOneZeroLargest"] == "95\\% CI [1.00, 1.00]"
    assert numbers["MiaExactOneZeroZeroSmallest"] == "0.60" and numbers["MiaNExactOneZeroZeroSmallest"] == 30
    assert numbers["MiaNPairsOneZeroZeroSmallest"] == 50
    # Min-K%: levels 1 and 10 above every control in both seeds (detected), level 100 below them
    assert numbers["MiaLowestDetectedSmallest"] == 1 and numbers["MiaDetectedSmallest"] == 2
    assert numbers["MiaDetectedNotExtracted"] == 4 and numbers["MiaDetectedNotExtractedLevels"] == "1, 10"
    assert numbers["MiaReferenceParams"] == "1k" and numbers["MiaLargestParams"] == "4k"
    assert numbers["MiaRefAucTopMax"] == "1.00" and numbers["MiaRefAucOneMin"] == numbers["MiaRefAucOneMax"]
    assert numbers["MiaRefSizes"] == 1 and numbers["MiaRefDetectedOneZero"] == 0  # ref AUC 0 at level 10 (size b)
    assert numbers["MiaRefAucOneZeroMax"] == "0.00" and numbers["MiaRefDetectedOneZeroZero"] == 1
    assert numbers["MiaKindAucWordsOne"] == "1.00" and numbers["MiaKindControls"] == 12
    assert numbers["MiaKindMembers"] == 2  # the smallest kind group: records at level 1


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
    assert mem.sizes == ["13k", "100k"] and mem.seeds == [0, 1]
    assert len(mem.scores) == 2 * 2 * 21 and mem.scores["exact_match"].notna().all()
    assert len(mem.per_seed) == 2 * (5 * 4 + 5 * 5) and len(mem.pooled) == 5 * 4 + 5 * 5
    assert not mem.pooled["ci_ok"].any() and (mem.pooled["n_seeds"] == 2).all()  # 3 members, 6 controls per level
    seed_mean = mem.per_seed.groupby(["size", "level", "attack"])["auc"].mean()
    pooled = mem.pooled.set_index(["size", "level", "attack"])["auc"]
    np.testing.assert_allclose(pooled.to_numpy(), seed_mean.reindex(pooled.index).to_numpy())
    top = mem.pooled[(mem.pooled["level"] == 256) & (mem.pooled["attack"] == "loss")]
    assert (top["auc"] >= 0.9).all()  # 256 copies: the loss separates them from the controls
    table, _ = mia_runs.mia_table(mem)
    assert len(table) == 12
    monkeypatch.setattr(mia, "mia_scores", lambda *a, **k: (_ for _ in ()).throw(AssertionError("not cached")))
    again = mia_runs.membership_runs("smoke", n_boot=50, n_resamples=99)
    pd.testing.assert_frame_equal(again.pooled, mem.pooled)
