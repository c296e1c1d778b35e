"""memkit.dynamics: sigmoid fit and alpha*, bootstrap CI, ranking, re-lock, batched sweeps.

Synthetic curves check the definitions (alpha* where the fit crosses 0.5, width 2 tau ln 9,
sharp when width < alpha*); the batched sweep must give exactly the tokens of `perturb`
run one alpha at a time (tiny random model, fast).
"""

import math
import random

import numpy as np
import pandas as pd
import pytest

import memkit
from memkit.dynamics.actions import Action
from memkit.dynamics.perturb import perturb, relock_step
from memkit.dynamics.sweeps import (alpha_sweep, clean_prefix, distinct_share, layer_sweep, memorization_groups, relock,
                                    seed_plan, seeds_for, shock_summary, with_clean_reference)
from memkit.dynamics.transitions import (bootstrap_alpha_star, fit_sigmoid, grid_bracket, more_robust, points_inside,
                                         rank_robustness, sample_curves, seed_array, sigmoid, transition_table)
from memkit.paper.report import format_alpha, format_ci

from conftest import PLAIN_TEXTS


GRID = np.array([0, 0.03125, 0.0625, 0.125, 0.25, 0.5, 1.0])
FINE = np.linspace(0, 2, 21)


def test_sharp_transition_is_found_where_the_curve_crosses_half():
    fit = fit_sigmoid(FINE, sigmoid(FINE, mid=0.8, tau=0.03, floor=0.0))
    assert fit.alpha_star == pytest.approx(0.8, abs=0.02)
    assert fit.verdict == "sharp" and fit.rel_width < 1
    assert fit.width == pytest.approx(2 * fit.tau * math.log(9))
    assert fit.rmse < 1e-3


def test_gradual_transition_and_floor():
    mid, tau, floor = 0.6, 0.35, 0.2
    fit = fit_sigmoid(FINE, sigmoid(FINE, mid, tau, floor))
    expected = mid + tau * math.log(0.5 / (0.5 - floor))  # where the curve is 0.5
    assert float(sigmoid(expected, mid, tau, floor)) == pytest.approx(0.5)
    assert fit.alpha_star == pytest.approx(expected, rel=0.02)
    assert fit.floor == pytest.approx(floor, abs=0.01)
    assert fit.verdict == "gradual" and fit.rel_width > 1


def test_no_transition_within_the_grid_is_nan():
    high_floor = fit_sigmoid(FINE, sigmoid(FINE, 0.5, 0.1, floor=0.7))
    assert math.isnan(high_floor.alpha_star) and high_floor.verdict == "none"
    late = fit_sigmoid(GRID, sigmoid(GRID, mid=3.0, tau=0.2, floor=0.0))  # crosses at 3 > grid max 1
    assert math.isnan(late.alpha_star) and late.verdict == "none"
    flat = fit_sigmoid(GRID, np.ones_like(GRID))
    assert math.isnan(flat.alpha_star)
    too_few = fit_sigmoid([0, 1], [1, 0])
    assert math.isnan(too_few.alpha_star) and "fewer" in too_few.note


def test_step_between_grid_points_lands_between_them():
    values = np.where(GRID < 0.2, 1.0, 0.0)  # all kept up to 0.125, all lost from 0.25
    fit = fit_sigmoid(GRID, values)
    assert 0.125 <= fit.alpha_star <= 0.25
    assert fit.verdict == "sharp"


def _noisy_curves(n: int, alpha_star: float, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = {}
    for i in range(n):
        mid = alpha_star + rng.normal(0, 0.05)
        rows[f"s{i}"] = np.clip(sigmoid(FINE, mid, 0.05, 0.0) + rng.normal(0, 0.03, FINE.size), 0, 1)
    return pd.DataFrame.from_dict(rows, orient="index", columns=FINE)


def test_bootstrap_ci_covers_the_truth_and_is_deterministic():
    curves = _noisy_curves(12, alpha_star=1.0)
    first = bootstrap_alpha_star(curves, n_boot=100, seed=3, min_samples=10)
    again = bootstrap_alpha_star(curves, n_boot=100, seed=3, min_samples=10)
    assert (first["ci_low"], first["ci_high"]) == (again["ci_low"], again["ci_high"])
    assert first["ci_low"] <= first["fit"].alpha_star <= first["ci_high"]
    assert first["ci_low"] < 1.0 < first["ci_high"] and first["ci_high"] - first["ci_low"] < 0.3
    assert first["n_samples"] == 12
    default = bootstrap_alpha_star(curves, n_boot=100, seed=3)  # 12 < 20 samples: no interval by default
    assert default["fit"].alpha_star == first["fit"].alpha_star
    assert math.isnan(default["ci_low"]) and math.isnan(default["ci_high"])


def test_bootstrap_edge_cases():
    single = bootstrap_alpha_star(_noisy_curves(1, 1.0), n_boot=50)
    assert not math.isnan(single["fit"].alpha_star) and math.isnan(single["ci_low"]) and math.isnan(single["ci_high"])
    # half the samples never lose their continuation: replicates without a crossing -> open upper end
    kept = pd.DataFrame([np.ones(FINE.size)] * 3, index=["k0", "k1", "k2"], columns=FINE)
    mixed = pd.concat([_noisy_curves(3, 0.5), kept])
    boot = bootstrap_alpha_star(mixed, n_boot=200, seed=0, min_samples=2)
    assert math.isinf(boot["ci_high"])
    assert format_ci(boot["ci_low"], boot["ci_high"], 2.0).endswith("$>$2]")


def _synthetic_runs() -> pd.DataFrame:
    rows = []
    for model, shift in (("a", 0.0), ("b", 0.1)):
        for kind, family, star in (("delete", "token", 0.3), ("truncate", "token", 0.6),
                                   ("logit_tail", "logit", 0.4), ("logit_rare_bias", "logit", 3.0)):
            for group, factor in (("memorized", 1.0), ("control", 0.5)):
                for i in range(4):
                    for alpha in FINE:
                        value = float(sigmoid(alpha, star * factor + shift + 0.01 * i, 0.02, 0.0))
                        rows.append({"model": model, "kind": kind, "family": family, "group": group,
                                     "id": f"{group}{i}", "alpha": alpha, "seed": 0, "retention": value})
    return pd.DataFrame(rows)


def test_transition_table_and_ranking():
    runs = _synthetic_runs()
    table = transition_table(runs, n_boot=20, seed=0)
    assert len(table) == 2 * 4 * 2
    row = table[(table["model"] == "a") & (table["kind"] == "truncate") & (table["group"] == "memorized")].iloc[0]
    assert row["alpha_star"] == pytest.approx(0.615, abs=0.02) and row["family"] == "token"
    ranking = rank_robustness(table)
    assert set(ranking["group"]) == {"memorized"}
    token_a = ranking[(ranking["model"] == "a") & (ranking["family"] == "token")].set_index("kind")
    assert token_a.loc["truncate", "rank"] == 1 and token_a.loc["delete", "rank"] == 2  # larger alpha* = more robust
    logit_a = ranking[(ranking["model"] == "a") & (ranking["family"] == "logit")].set_index("kind")
    assert math.isnan(logit_a.loc["logit_rare_bias", "alpha_star"])  # beyond the grid: most robust
    assert logit_a.loc["logit_rare_bias", "rank"] == 1
    assert token_a.loc["delete", "mem_over_ctrl"] == pytest.approx(2.0, rel=0.1)
    wins = more_robust(table)
    assert len(wins) == 8 and wins["group_wins"].all()


def test_format_alpha():
    assert format_alpha(float("nan")) == "--" and format_alpha(16.0) == "16" and format_alpha(16.45) == "16.45"
    assert format_alpha(0.03125) == "0.031" and format_alpha(0.01, alpha_min=0.03125) == "$<$0.031"
    assert format_ci(0.1, float("inf"), 1.0) == "[0.10, $>$1]" and format_ci(float("inf"), float("inf"), 1.0) == "$>$1"


def test_sample_curves_average_over_seeds():
    runs = pd.DataFrame({"id": ["x", "x", "x", "x"], "alpha": [0, 0, 1, 1], "seed": [0, 1, 0, 1],
                         "retention": [1.0, 1.0, 0.2, 0.6]})
    curves = sample_curves(runs)
    assert curves.loc["x", 1.0] == pytest.approx(0.4) and curves.loc["x", 0.0] == 1.0


def test_relock_definitions():
    rng = random.Random(0)
    for _ in range(200):
        reference = [rng.randrange(4) for _ in range(10)]
        generated = [rng.randrange(4) for _ in range(10)]
        after = rng.randrange(10)
        assert relock(generated, reference, after)[0] == relock_step(generated, reference, after)
    reference = list(range(10))
    skipped = [0, 1, 2, 99, 5, 6, 7, 8, 9, 9]  # after the shock it resumes one token ahead
    assert relock(skipped, reference, after=4, min_tail=3)[0] == -1  # never back in place ...
    assert relock(skipped, reference, after=4, max_shift=2, min_tail=3) == (4, 1)  # ... but one token ahead
    lucky = [0, 1, 2, 99, 98, 97, 96, 95, 94, 9]
    assert relock(lucky, reference, after=4) == (9, 0)  # the library counts one lucky last token
    assert relock(lucky, reference, after=4, min_tail=4) == (-1, 0)


def test_distinct_share():
    assert distinct_share([5, 5, 5, 5]) == 0.25 and distinct_share([1, 2, 3, 4]) == 1.0
    assert math.isnan(distinct_share([]))


def test_memorization_groups():
    clean = pd.DataFrame({"id": ["a", "b", "c", "d"], "token_match": [1.0, 0.95, 0.2, 0.99],
                          "exact_match": [True, False, False, False],
                          "meta_category": ["poetry", "code", "poetry", "control"]})
    groups = memorization_groups(clean, threshold=0.9)
    assert groups.to_dict() == {"a": "memorized", "b": "memorized", "c": "other", "d": "control"}


def test_shock_summary():
    shocks = pd.DataFrame({"model": ["m"] * 4, "group": ["memorized", "memorized", "control", "control"],
                           "relocked": [True, True, False, True], "relock_after": [0, 2, -1, 5],
                           "relocked_shifted": [True, True, True, True], "retention_after": [1.0, 0.8, 0.0, 0.5],
                           "truth_relocked": [True, True, False, False]})
    summary = shock_summary(shocks).set_index("group")
    assert summary.loc["memorized", "relock_rate"] == 1.0 and summary.loc["control", "relock_rate"] == 0.5
    assert summary.loc["memorized", "median_relock_after"] == 1.0
    assert summary.loc["control", "relock_shifted_rate"] == 1.0


# -- the batched sweep equals perturb() one alpha at a time (tiny random model) ---------------------


@pytest.fixture(scope="module")
def tiny_setup(tiny_lm):
    samples = memkit.make_samples(tiny_lm, PLAIN_TEXTS, k=12, m=8)
    clean = memkit.extract(tiny_lm, samples, batch_size=3, progress=False)
    return samples, clean


@pytest.mark.parametrize("kind,alphas", [("substitute_rare", [0.0, 0.25, 0.5]), ("embed_random", [0.0, 0.5, 3.0]),
                                         ("embed_noise", [1.0, 4.0]), ("logit_tail", [0.0, 2.0, 6.0]),
                                         ("logit_rare_bias", [3.0, 10.0])])
def test_batched_sweep_equals_perturb(tiny_lm, tiny_setup, kind, alphas):
    samples, clean = tiny_setup
    layer = 1 if kind.startswith("embed") else None
    seeds = (0, 1)
    sweep = alpha_sweep(tiny_lm, samples, clean, kind, alphas, layer=layer, seeds=seeds, batch_size=4)
    expected_seeds = 1 if kind.startswith("logit") else 2  # logit kinds do not depend on the seed
    assert len(sweep) == len(samples) * len(alphas) * expected_seeds
    for (alpha, seed), part in sweep.groupby(["alpha", "seed"], sort=False):
        action = Action(kind, alpha=alpha, layer=layer, seed=int(seed))
        one = perturb(tiny_lm, samples, action, clean=clean, progress=False)
        assert [list(g) for g in part["generated_ids"]] == [list(g) for g in one["generated_ids"]]
        assert list(part["token_match"]) == pytest.approx(list(one["token_match"]))
        assert list(part["divergence_step"]) == list(one["divergence_step"])
    zero = sweep[sweep["alpha"] == 0]
    assert (zero["retention"] == 1).all() and zero["exact_retention"].all()


def test_layer_sweep_batches_layers_exactly(tiny_lm, tiny_setup):
    samples, clean = tiny_setup
    sweep = layer_sweep(tiny_lm, samples, clean, layers=[0, 1], alphas=[0.0, 1.0, 4.0], seeds=(2,), batch_size=5)
    assert len(sweep) == len(samples) * 2 * 3 and set(sweep["layer"]) == {0, 1}
    for (layer, alpha), part in sweep[sweep["alpha"] > 0].groupby(["layer", "alpha"]):
        one = perturb(tiny_lm, samples, Action("embed_random", alpha=alpha, layer=int(layer), seed=2), clean=clean,
                      progress=False)
        assert [list(g) for g in part["generated_ids"]] == [list(g) for g in one["generated_ids"]]


def test_clean_prefix_equals_a_shorter_run(tiny_lm, tiny_setup):
    samples, clean = tiny_setup
    short = memkit.extract(tiny_lm, memkit.make_samples(tiny_lm, PLAIN_TEXTS, k=12, m=5), progress=False)
    cut = clean_prefix(clean, 5)
    assert [list(g) for g in cut["generated_ids"]] == [list(g) for g in short["generated_ids"]]
    assert list(cut["token_match"]) == pytest.approx(list(short["token_match"]))
    assert list(cut["prefix_match_len"]) == list(short["prefix_match_len"])
    with pytest.raises(memkit.MemkitError):
        clean_prefix(clean, 99)


def test_clean_reference_keeps_the_truth(tiny_setup):
    samples, clean = tiny_setup
    reference = with_clean_reference(samples, clean)
    for sample, ref, generated in zip(samples, reference, clean["generated_ids"]):
        assert list(ref.suffix_ids) == list(generated)
        assert ref.meta["true_suffix_ids"] == list(sample.suffix_ids)
        assert ref.prompt_ids == sample.prompt_ids


def test_sweep_rejects_shocks(tiny_lm, tiny_setup):
    samples, clean = tiny_setup
    with pytest.raises(memkit.MemkitError, match="shock_sweep"):
        alpha_sweep(tiny_lm, samples, clean, "force_token", [1])


def test_deterministic_kind_runs_once_stochastic_every_seed(tiny_lm, tiny_setup):
    samples, clean = tiny_setup
    seeds = range(5)
    plan = seed_plan(["truncate", "delete", "logit_tail", "embed_random"], seeds).set_index("kind")
    assert plan.loc["truncate", "n_seeds"] == 1 and not plan.loc["truncate", "seeded"]
    assert plan.loc["delete", "n_seeds"] == 5 and plan.loc["embed_random", "n_seeds"] == 5
    assert seeds_for("logit_tail", [3, 4]) == [3] and seeds_for("typo", [1, 1, 2]) == [1, 2]
    once = alpha_sweep(tiny_lm, samples, clean, "truncate", [0.0, 0.5], seeds=seeds, batch_size=8)
    assert len(once) == len(samples) * 2 and set(once["seed"]) == {0}
    every = alpha_sweep(tiny_lm, samples, clean, "delete", [0.0, 0.5], seeds=seeds, batch_size=8)
    assert len(every) == len(samples) * 2 * 5 and sorted(set(every["seed"])) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("kind", ["insert_shock", "truncate"])
def test_unseeded_token_kinds_do_not_depend_on_the_seed(tiny_lm, tiny_setup, kind):
    from memkit.dynamics.actions import apply_token_action
    from memkit.dynamics.sweeps import SEEDED_KINDS

    samples, _ = tiny_setup
    assert kind not in SEEDED_KINDS
    for sample in samples:
        runs = {apply_token_action(tiny_lm.tokenizer, sample, Action(kind, alpha=0.5, seed=s)).prompt_ids
                for s in range(4)}
        assert len(runs) == 1


def test_cached_sweep_reuses_settings_and_equals_the_uncached_one(tiny_lm, tiny_setup, empty_cache, monkeypatch):
    import memkit.dynamics.sweeps as sweeps

    samples, clean = tiny_setup
    plain = layer_sweep(tiny_lm, samples, clean, layers=[1], alphas=[0.0, 1.0, 4.0], seeds=(0, 1), batch_size=4)
    first = layer_sweep(tiny_lm, samples, clean, layers=[1], alphas=[0.0, 1.0, 4.0], seeds=(0, 1), batch_size=4,
                        cache=True)
    assert len(list((empty_cache / "sweeps").glob("*.json"))) == 2 * 2  # nonzero alphas x seeds
    decoded = []
    real_extract = sweeps.extract
    monkeypatch.setattr(sweeps, "extract", lambda lm, runs, **kw: decoded.append(len(runs)) or real_extract(lm, runs, **kw))
    again = alpha_sweep(tiny_lm, samples, clean, "embed_random", [0.0, 1.0, 2.0, 4.0], layer=1, seeds=(0, 1),
                        batch_size=4, cache=True)
    assert decoded == [len(samples) * 2]  # only alpha = 2 (both seeds) is new
    for frame in (first, again[again["alpha"] != 2.0]):
        assert [list(g) for g in frame["generated_ids"]] == [list(g) for g in plain["generated_ids"]]


def test_grid_bracket_and_points_inside():
    grid = [0, 2, 3, 3.5, 4, 6, 8]
    assert grid_bracket(3.86, grid) == (3.5, 4.0) and grid_bracket(1.0, grid) == (0.0, 2.0)
    assert grid_bracket(4.0, grid) == (4.0, 6.0) and all(math.isnan(x) for x in grid_bracket(float("nan"), grid))
    # a hand-made mean curve: half the samples break between 3 and 3.5, the other half between 3.5 and 4
    values = np.array([1, 1, 1, 0.5, 0, 0, 0], dtype=float)
    fit = fit_sigmoid(grid, values)
    assert 3.0 < fit.alpha_star < 4.0 and grid_bracket(fit.alpha_star, grid) in {(3.0, 3.5), (3.5, 4.0)}
    assert points_inside(fit, grid) >= 1
    coarse = fit_sigmoid([0, 2, 4, 8], [1, 1, 0, 0])  # the step falls between two grid points: not resolved
    assert grid_bracket(coarse.alpha_star, [0, 2, 4, 8]) == (2.0, 4.0) and points_inside(coarse, [0, 2, 4, 8]) == 0
    gradual = fit_sigmoid(FINE, sigmoid(FINE, 1.0, 0.2, 0.0))
    assert points_inside(gradual, FINE) == 9  # mid +- 0.2 ln 9 = [0.56, 1.44]: 0.6, 0.7, ..., 1.4


def _seeded_runs(n: int, n_seeds: int = 5, star: float = 1.0) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        mid = star + 0.1 * (i % 5 - 2) - 0.03  # 0.77, 0.87, ...: off the grid
        for seed in range(n_seeds):
            for alpha in FINE:
                value = float(sigmoid(alpha, mid + rng.normal(0, 0.02), 0.05, 0.0))
                rows.append({"model": "a", "kind": "delete", "group": "memorized", "id": f"s{i:02d}", "seed": seed,
                             "alpha": alpha, "retention": value})
    return pd.DataFrame(rows)


def test_transition_table_hierarchical_bootstrap_over_samples_and_seeds():
    few = transition_table(_seeded_runs(4), n_boot=50).iloc[0]
    assert (few["n_samples"], few["n_seeds"]) == (4, 5)
    assert math.isnan(few["ci_low"]) and math.isnan(few["ci_high"])  # 4 < 20 samples: no interval
    assert few["bracket_low"] <= few["alpha_star"] <= few["bracket_high"]
    assert few["bracket_high"] - few["bracket_low"] == pytest.approx(0.1)
    # per-sample alpha* about 0.77, 0.87, 0.97, 1.07: the range of their grid brackets is 0.7 to 1.1
    assert few["sample_low"] == pytest.approx(0.7) and few["sample_high"] == pytest.approx(1.1)
    assert (few["bracket_low"], few["bracket_high"]) == pytest.approx((0.9, 1.0))  # mean curve crosses at 0.92
    many = transition_table(_seeded_runs(25), n_boot=60, seed=1).iloc[0]
    assert many["n_samples"] == 25 and many["ci_low"] <= many["alpha_star"] <= many["ci_high"]
    assert many["ci_high"] - many["ci_low"] < 0.3
    again = transition_table(_seeded_runs(25), n_boot=60, seed=1).iloc[0]
    assert (again["ci_low"], again["ci_high"]) == (many["ci_low"], many["ci_high"])
    wide, values = seed_array(_seeded_runs(3))
    assert values.shape == (3, 5, len(FINE)) and list(wide) == list(FINE)


def test_verdict_unresolved_when_the_grid_cannot_tell():
    # one step between 0.1 and 1: the drop may be anywhere in an interval wider than alpha* itself
    coarse = bootstrap_alpha_star(pd.DataFrame([[1.0, 1.0, 0.0]], columns=[0, 0.1, 1.0]))
    assert coarse["fit"].verdict == "unresolved" and coarse["n_inside"] == 0
    assert (coarse["bracket_low"], coarse["bracket_high"]) == (0.1, 1.0)
    # a step between 2 and 4: an interval narrower than alpha* (about 3), so the drop is sharp whatever its shape
    step = bootstrap_alpha_star(pd.DataFrame([[1.0, 1.0, 0.0, 0.0]], columns=[0, 2, 4, 8]))
    assert step["fit"].verdict == "sharp" and step["n_inside"] == 0
