"""Pure parts of the context driver (memkit.paper.context_runs) on hand-made canaries and run frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from memkit.core.stats import paired_permutation_test
from memkit.organisms.canaries import Canary
from memkit.paper import context_runs


def _canary(id, level, window="all"):
    return Canary(id, "words", level, window, list(range(64)), "", 0.5, positions=[0] * level)


def test_context_samples_four_conditions_at_every_k():
    canaries = [_canary("a", 64), _canary("b", 16), _canary("c", 64, window="early")]
    samples = context_runs.context_samples(canaries, ks=[4, 32], eos_id=99, suffix_start=32, m=32, start_m=24,
                                           levels=[0, 64])
    by_id = {s.id: s for s in samples}
    assert sorted(by_id) == sorted(f"a/{c}/k{k}" for c in context_runs.CONDITIONS for k in (4, 32))
    assert by_id["a/inside/k4"].prompt_ids == (28, 29, 30, 31)
    assert by_id["a/inside/k4"].suffix_ids == tuple(range(32, 64))
    assert by_id["a/inside+eos/k4"].prompt_ids == (99, 28, 29, 30, 31)
    assert by_id["a/inside+eos/k4"].prefix_ids == (28, 29, 30, 31)  # the canary tokens only
    assert by_id["a/inside+eos/k32"].prompt_ids == (99,) + tuple(range(32))  # the full training context
    assert by_id["a/start/k4"].prompt_ids == (0, 1, 2, 3) and by_id["a/start/k4"].suffix_ids == tuple(range(4, 28))
    assert by_id["a/start+eos/k32"].prompt_ids == (99,) + tuple(range(32))
    assert by_id["a/start+eos/k32"].suffix_ids == tuple(range(32, 56))
    assert by_id["a/start+eos/k4"].meta == {"kind": "words", "level": 64, "window": "all", "zlib": 0.5, "copies": 64,
                                            "canary": "a", "condition": "start+eos", "k": 4}


def _runs() -> pd.DataFrame:
    """Size a, 2 seeds, 3 level-64 canaries at k=4; eos adds 0.25 to every canary's score in seed 0 only."""
    rows = []
    for seed in (0, 1):
        for i, base in enumerate((0.0, 0.25, 0.5)):
            for condition, bonus in (("inside", 0.0), ("inside+eos", 0.25 * (seed == 0)), ("start", 0.5),
                                     ("start+eos", 0.5)):
                score = base + bonus
                rows.append({"size": "a", "params": 10, "seed": seed, "condition": condition, "k": 4, "level": 64,
                             "canary": f"c{i}", "id": f"c{i}/{condition}/k4", "token_match": score,
                             "exact_match": score == 1.0})
    return pd.DataFrame(rows)


def test_seed_scores_and_t_intervals_across_seeds():
    scores = context_runs.seed_scores(_runs())
    eos = scores[scores["condition"] == "inside+eos"].set_index("seed")
    assert eos["biderman"].tolist() == pytest.approx([0.5, 0.25]) and eos["n"].tolist() == [3, 3]
    rates = context_runs.across_seeds(scores).set_index("condition")
    assert rates.loc["inside+eos", "biderman"] == pytest.approx(0.375)
    half = 12.7062047 * np.std([0.5, 0.25], ddof=1) / np.sqrt(2)  # t(0.975, 1 df)
    assert rates.loc["inside+eos", "biderman_hi"] == pytest.approx(0.375 + half)
    assert rates.loc["start", "exact"] == pytest.approx(1 / 3) and rates.loc["inside", "n_seeds"] == 2


def paired_permutation_p(a, b):
    return paired_permutation_test(a, b)[1]


def test_paired_permutation_exact_sign_flips():
    assert paired_permutation_p([1, 2, 3], [1, 2, 3]) == 1.0
    b = np.arange(12) / 12
    assert paired_permutation_p(b + 1, b) == pytest.approx(2 / 2**12)  # every flip but two is smaller
    assert paired_permutation_p([1.0, 0.0], [0.0, 1.0]) == pytest.approx(1.0)


def test_context_tests_and_numbers():
    runs = _runs()
    tests = context_runs.context_tests(runs, levels=[64], n_resamples=999).set_index("comparison")
    assert tests.loc["eos", "n"] == 3 and tests.loc["eos", "diff"] == pytest.approx(0.125)
    assert tests.loc["eos", "p"] == pytest.approx(0.25)  # 3 pairs, equal differences: 2 of 8 flips as extreme
    assert tests.loc["boundary", "diff"] == pytest.approx(0.375) and tests.loc["boundary", "p"] == pytest.approx(0.25)
    assert tests["p_holm"].tolist() == pytest.approx([0.5, 0.5])
    scores = context_runs.seed_scores(runs)
    ctx = context_runs.Context(["a"], runs, scores, context_runs.across_seeds(scores),
                               context_runs.context_tests(runs, levels=[64], n_resamples=999))
    numbers = context_runs.context_numbers(ctx, ks=[4], suffix_start=32, m=32, start_m=24)
    assert numbers["CtxALSixFourInsideEosKMin"] == "0.38" and numbers["CtxALSixFourStartKMinExact"] == "0.33"
    assert numbers["CtxNLSixFour"] == 3 and numbers["CtxNSeeds"] == 2 and numbers["CtxNTests"] == 2
    assert numbers["CtxEosUp"] == 0 and numbers["CtxBoundaryMaxDiff"] == "0.38"
    assert numbers["CtxEosUpKFour"] == 0 and numbers["CtxEosCellsPerK"] == 1
    assert numbers["CtxControlMaxBiderman"] == "--"  # no level-0 rows in the hand frame
