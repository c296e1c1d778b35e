"""Latent memorization under weight noise: draws equal greedy decoding at sigma 0, seeded, weights restored."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from conftest import BASE_TEXT

import memkit
from memkit.organisms.train import weights_sha256


@pytest.fixture(scope="module")
def tiny_samples(tiny_lm):
    lines = [line for line in BASE_TEXT.splitlines() if line]
    records = [{"id": f"s{i}", "text": lines[i] + " " + lines[i + 1], "level": i % 2} for i in range(6)]
    samples = memkit.make_samples(tiny_lm, records, k=8, m=8)
    # the suffix is the clean model's own greedy continuation: similarity 1 without noise, lower with it
    clean = memkit.extract(tiny_lm, samples, progress=False)
    return [replace(s, suffix_ids=tuple(g)) for s, g in zip(samples, clean["generated_ids"])]


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
