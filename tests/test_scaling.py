"""Duplication-law fits with bootstrap CIs, and latent memorization under weight noise."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

import memkit
from memkit.errors import MemkitError
from memkit.organisms.laws import extraction_onsets, fit_table, loglinear_fit
from memkit.organisms.train import weights_sha256

from conftest import BASE_TEXT


def synthetic(slope: float, intercept: float, n: int = 10, seed: int = 0, noise: float = 0.0) -> pd.DataFrame:
    """n canaries per level whose scores average exactly slope*log10(level)+intercept (plus noise)."""
    rng = np.random.default_rng(seed)
    rows = []
    for level in (0, 1, 4, 16, 64, 256):
        mean = 0.0 if level == 0 else slope * np.log10(level) + intercept
        scores = mean + (rng.normal(0, noise, n) if noise else np.zeros(n))
        scores += mean - scores.mean()  # exact mean, whatever the noise
        rows += [{"level": level, "score": s, "size": "a"} for s in scores]
    return pd.DataFrame(rows)


def test_loglinear_fit_recovers_a_known_law():
    fit = loglinear_fit(synthetic(0.2, 0.1), "score", n_boot=200)
    assert fit["slope"] == pytest.approx(0.2) and fit["intercept"] == pytest.approx(0.1)
    assert fit["r2"] == pytest.approx(1.0) and fit["n_levels"] == 5 and fit["n"] == 50
    assert fit["slope_lo"] == pytest.approx(0.2) and fit["slope_hi"] == pytest.approx(0.2)  # no spread, no CI width
    assert fit["control_rate"] == 0.0


def test_bootstrap_ci_covers_the_slope_and_narrows_with_more_canaries():
    few = loglinear_fit(synthetic(0.2, 0.1, n=5, noise=0.3, seed=1), "score", n_boot=500, seed=0)
    many = loglinear_fit(synthetic(0.2, 0.1, n=80, noise=0.3, seed=1), "score", n_boot=500, seed=0)
    for fit in (few, many):
        assert fit["slope_lo"] < 0.2 < fit["slope_hi"]
    assert many["slope_hi"] - many["slope_lo"] < (few["slope_hi"] - few["slope_lo"]) / 2
    again = loglinear_fit(synthetic(0.2, 0.1, n=5, noise=0.3, seed=1), "score", n_boot=500, seed=0)
    assert again == few  # seeded bootstrap


def test_fit_table_groups_and_bad_input():
    frame = pd.concat([synthetic(0.2, 0.1).assign(size="a"), synthetic(0.05, 0.0).assign(size="b")])
    table = fit_table(frame, by=["size"], metrics=["score"], n_boot=50)
    assert list(table["size"]) == ["a", "b"] and table["slope"].round(6).tolist() == [0.2, 0.05]
    with pytest.raises(MemkitError, match="two duplication levels"):
        loglinear_fit(frame[frame["level"] <= 1], "score")
    with pytest.raises(MemkitError, match="needs columns 'nope'"):
        loglinear_fit(frame, "nope")


@pytest.fixture(scope="module")
def tiny_samples(tiny_lm):
    lines = [line for line in BASE_TEXT.splitlines() if line]
    records = [{"id": f"s{i}", "text": lines[i] + " " + lines[i + 1], "level": i % 2} for i in range(6)]
    samples = memkit.make_samples(tiny_lm, records, k=8, m=8)
    # the suffix is the clean model's own greedy continuation: similarity 1 without noise, lower with it
    clean = memkit.extract(tiny_lm, samples, progress=False)
    return [replace(s, suffix_ids=tuple(g)) for s, g in zip(samples, clean["generated_ids"])]


def test_extraction_onsets_and_forgetting():
    rows = []
    pattern = {"a": [0, 1, 1], "b": [1, 1, 0], "c": [0, 0, 0]}  # exact at steps 10, 20, 30
    for cid, hits in pattern.items():
        for step, hit in zip((10, 20, 30), hits):
            rows.append({"size": "s", "id": cid, "step": step, "exact_match": bool(hit), "level": 16,
                         "kind": "words", "window": "early"})
    onsets = extraction_onsets(pd.DataFrame(rows).sample(frac=1, random_state=0)).set_index("id")
    assert onsets.loc["a", "first_step"] == 20 and onsets.loc["a", "final"] and not onsets.loc["a", "forgotten"]
    assert onsets.loc["b", "first_step"] == 10 and not onsets.loc["b", "final"] and onsets.loc["b", "forgotten"]
    assert np.isnan(onsets.loc["c", "first_step"]) and not onsets.loc["c", "ever"]


def test_greedy_prefix_counts_leading_matches():
    from memkit.organisms.latent import greedy_prefix

    correct = np.array([[True, True, False, True], [True, True, True, True], [False, True, True, True]])
    assert greedy_prefix(correct).tolist() == [2, 4, 0]


def test_latent_draws_match_greedy_decoding_and_restore_weights(tiny_lm, tiny_samples):
    from memkit.organisms.latent import latent_draws

    before = weights_sha256(tiny_lm.model)
    draws = latent_draws(tiny_lm, tiny_samples, sigmas=[0.0, 0.05], n_draws=3, seed=1)
    assert weights_sha256(tiny_lm.model) == before
    greedy = memkit.extract(tiny_lm, tiny_samples, progress=False)
    zero = draws[draws["sigma"] == 0.0]  # the teacher-forced clean pass is the greedy decoding
    assert zero["clean_prefix"].tolist() == greedy["prefix_match_len"].tolist()
    assert (zero["best_prefix"] == zero["clean_prefix"]).all() and (zero["exact_draws"] == 3 * zero["clean_exact"]).all()
    assert (zero["clean_accuracy"] == 1.0).all()  # the suffixes are the clean model's own greedy continuations
    again = latent_draws(tiny_lm, tiny_samples, sigmas=[0.05], n_draws=3, seed=1)
    pd.testing.assert_frame_equal(again, draws[draws["sigma"] == 0.05].reset_index(drop=True))
