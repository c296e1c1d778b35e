"""Every metric in memkit.core.metrics against cases computed by hand."""

from __future__ import annotations

import random
import string
import zlib

import pytest

from memkit.core import metrics
from memkit.core.metrics import (
    NEAR_VERBATIM_THRESHOLD,
    SEED_SCORE_THRESHOLD,
    char_lev_similarity,
    exact_match,
    lev_similarity,
    longest_common_substring,
    prefix_match_len,
    score_continuation,
    seed_score,
    token_levenshtein,
    token_match,
    zlib_ratio,
)


# -- Biderman score -------------------------------------------------------------------------
def test_token_match_counts_equal_positions():
    assert token_match([1, 2, 3, 4], [1, 2, 3, 4]) == 1.0
    assert token_match([1, 2, 0, 4], [1, 2, 3, 4]) == 0.75
    assert token_match([9, 9, 9, 9], [1, 2, 3, 4]) == 0.0
    # positional, not set-based: a shifted copy scores 0
    assert token_match([0, 1, 2, 3], [1, 2, 3, 4]) == 0.0


def test_token_match_divides_by_reference_length():
    # a short generation cannot score on missing positions: 2 of 4
    assert token_match([1, 2], [1, 2, 3, 4]) == 0.5
    # extra generated tokens are ignored
    assert token_match([1, 2, 3, 4, 5, 6], [1, 2, 3, 4]) == 1.0


def test_token_match_empty_reference_is_an_error():
    with pytest.raises(ValueError):
        token_match([1], [])


# -- longest matching prefix ----------------------------------------------------------------
def test_prefix_match_len():
    assert prefix_match_len([1, 2, 3], [1, 2, 3]) == 3
    assert prefix_match_len([1, 2, 9, 4], [1, 2, 3, 4]) == 2
    assert prefix_match_len([9, 2, 3, 4], [1, 2, 3, 4]) == 0  # later matches do not count
    assert prefix_match_len([], [1, 2]) == 0
    assert prefix_match_len([1, 2], [1, 2, 3, 4]) == 2  # shorter generation


# -- Carlini exact match --------------------------------------------------------------------
def test_exact_match():
    assert exact_match([5, 6, 7], [5, 6, 7]) is True
    assert exact_match([5, 6, 8], [5, 6, 7]) is False  # last token wrong
    assert exact_match([4, 6, 7], [5, 6, 7]) is False  # first token wrong
    assert exact_match([5, 6, 7, 8], [5, 6, 7]) is True  # all m reference tokens reproduced


def test_exact_match_generated_shorter_than_reference():
    # every generated token agrees, but the reference is not fully reproduced
    assert exact_match([5, 6], [5, 6, 7]) is False
    assert exact_match([], [5]) is False


# -- token-level Levenshtein --------------------------------------------------------------
def test_token_levenshtein_substitution_insertion_deletion():
    assert token_levenshtein([1, 2, 3], [1, 2, 3]) == 0
    assert token_levenshtein([1, 9, 3], [1, 2, 3]) == 1  # substitution
    assert token_levenshtein([1, 2, 9, 3], [1, 2, 3]) == 1  # insertion
    assert token_levenshtein([1, 3], [1, 2, 3]) == 1  # deletion
    assert token_levenshtein([3, 2, 1], [1, 2, 3]) == 2  # two substitutions
    assert token_levenshtein([], [1, 2, 3]) == 3
    assert token_levenshtein([1, 2, 3], []) == 3


def test_token_levenshtein_works_on_token_ids_not_characters():
    # large vocabularies (Gemma: 262k) must be compared as whole ids
    assert token_levenshtein([262_143, 200_000, 7], [262_143, 200_001, 7]) == 1
    assert token_levenshtein([12, 3], [1, 23]) == 2  # "123" == "123" as digit strings, yet 2 edits
    assert token_levenshtein((4, 5), [4, 5]) == 0  # tuples and lists alike


def test_lev_similarity_and_clipping():
    assert lev_similarity(0, 10) == 1.0
    assert lev_similarity(3, 12) == 0.75
    assert lev_similarity(10, 10) == 0.0
    assert lev_similarity(15, 10) == 0.0  # clipped at 0, never negative
    assert lev_similarity(1, 3) == pytest.approx(2 / 3)


# -- near-verbatim threshold --------------------------------------------------------------
def _score(generated, suffix):
    return score_continuation(generated, suffix, "x", "x")


def test_near_verbatim_threshold_boundary_is_inclusive():
    assert NEAR_VERBATIM_THRESHOLD == 0.75
    suffix = [1, 2, 3, 4]
    row = _score([1, 2, 3, 9], suffix)  # d = 1, similarity exactly 0.75
    assert row["levenshtein"] == 1 and row["lev_similarity"] == 0.75
    assert row["near_verbatim"] is True
    row = _score([1, 2, 8, 9], suffix)  # d = 2, similarity 0.5
    assert row["lev_similarity"] == 0.5 and row["near_verbatim"] is False
    suffix = list(range(20))
    row = _score([100 + i if i < 5 else i for i in range(20)], suffix)  # d = 5 of 20 -> 0.75
    assert row["lev_similarity"] == 0.75 and row["near_verbatim"] is True
    row = _score([100 + i if i < 6 else i for i in range(20)], suffix)  # d = 6 of 20 -> 0.7
    assert row["lev_similarity"] == pytest.approx(0.7) and row["near_verbatim"] is False


# -- character-level similarity -----------------------------------------------------------
def test_char_lev_similarity():
    assert char_lev_similarity("kitten", "kitten") == 1.0
    assert char_lev_similarity("sitting", "kitten") == pytest.approx(1 - 3 / 6)
    assert char_lev_similarity("kitten", "sitting") == pytest.approx(1 - 3 / 7)
    assert char_lev_similarity("a completely different and longer text", "abc") == 0.0  # clipped
    assert char_lev_similarity("", "") == 1.0
    assert char_lev_similarity("abc", "") == 0.0
    assert char_lev_similarity("", "abc") == 0.0


# -- the original study's blended score ---------------------------------------------------
def test_seed_score_perfect_match_is_one():
    assert seed_score("We the People of the United States", "We the People of the United States") == pytest.approx(1.0)


def test_seed_score_is_case_and_whitespace_insensitive():
    assert seed_score("WE THE people\n of  the United States", "We the People of the United States") == pytest.approx(1.0)


def test_seed_score_hand_computed():
    # words: gen = the cat sat on a mat ; ref = the cat sat on the mat
    # not exact -> 0; leading words matched 4 of 6 -> 4/6;
    # word sets: gen {the,cat,sat,on,a,mat}, ref {the,cat,sat,on,mat}: Jaccard 5/6
    expected = 0.4 * 0 + 0.3 * (4 / 6) + 0.3 * (5 / 6)
    assert expected == pytest.approx(0.45)
    assert seed_score("the cat sat on a mat", "the cat sat on the mat") == pytest.approx(expected)


def test_seed_score_more_cases():
    # nothing in common
    assert seed_score("alpha beta", "gamma delta") == 0.0
    # same words, different order: no leading match, Jaccard 1
    assert seed_score("b a", "a b") == pytest.approx(0.3)
    # generation is the first half of the reference: lead 2/4, Jaccard 2/4
    assert seed_score("one two", "one two three four") == pytest.approx(0.3 * 0.5 + 0.3 * 0.5)
    # punctuation stays attached to words (whitespace tokenisation)
    assert seed_score("cat.", "cat") == 0.0
    # both empty: no exact credit, nothing to match
    assert seed_score("", "") == 0.0


def test_seed_memorized_threshold():
    assert SEED_SCORE_THRESHOLD == 0.7
    row = score_continuation([1], [1], "the cat sat on the mat", "the cat sat on the mat")
    assert row["seed_score"] == pytest.approx(1.0) and row["seed_memorized"] is True
    row = score_continuation([1], [1], "the cat sat on a mat", "the cat sat on the mat")
    assert row["seed_score"] == pytest.approx(0.45) and row["seed_memorized"] is False


# -- zlib complexity ----------------------------------------------------------------------
def test_zlib_ratio_repetitive_text_is_lower_than_random_text():
    rng = random.Random(0)
    random_text = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(1000))
    repetitive = "ab" * 500
    assert zlib_ratio(repetitive) < 0.1
    assert zlib_ratio(random_text) > 0.5
    assert zlib_ratio(repetitive) < zlib_ratio(random_text)


def test_zlib_ratio_definition_and_empty_text():
    text = "Ünïcode text: é is two bytes in UTF-8."
    raw = text.encode("utf-8")
    assert zlib_ratio(text) == len(zlib.compress(raw)) / len(raw)
    assert zlib_ratio("") == 0.0


# -- all metrics of one continuation ------------------------------------------------------
EXPECTED_KEYS = {
    "exact_match", "token_match", "prefix_match_len", "lcs_len", "levenshtein", "lev_similarity", "near_verbatim",
    "char_lev_similarity", "seed_score", "seed_memorized", "zlib_ratio",
}


def test_score_continuation_keys_and_values():
    row = score_continuation([1, 2, 9, 4, 5], [1, 2, 3, 4, 5], "the cat sat on a mat", "the cat sat on the mat")
    assert set(row) == EXPECTED_KEYS
    assert row["exact_match"] is False
    assert row["token_match"] == 0.8
    assert row["prefix_match_len"] == 2
    assert row["lcs_len"] == 2  # [1, 2] and [4, 5]
    assert row["levenshtein"] == 1
    assert row["lev_similarity"] == pytest.approx(0.8)
    assert row["near_verbatim"] is True
    # "a" -> "the": one substitution + two insertions = 3 character edits
    assert row["char_lev_similarity"] == pytest.approx(1 - 3 / len("the cat sat on the mat"))
    assert row["seed_score"] == pytest.approx(0.45)
    assert row["seed_memorized"] is False
    assert row["zlib_ratio"] == metrics.zlib_ratio("the cat sat on the mat")  # of the reference text


def test_score_continuation_perfect():
    row = score_continuation([7, 8, 9], (7, 8, 9), "abc def", "abc def")
    assert row == {
        "exact_match": True, "token_match": 1.0, "prefix_match_len": 3, "lcs_len": 3, "levenshtein": 0,
        "lev_similarity": 1.0,
        "near_verbatim": True, "char_lev_similarity": 1.0, "seed_score": pytest.approx(1.0), "seed_memorized": True,
        "zlib_ratio": zlib_ratio("abc def"),
    }


def test_score_continuation_only_scores_the_first_m_generated_tokens():
    # 5 generated, m = 4: the extra token must not count as an insertion
    row = score_continuation([1, 2, 3, 4, 99], [1, 2, 3, 4], "a", "a")
    assert row["exact_match"] is True
    assert row["levenshtein"] == 0 and row["lev_similarity"] == 1.0
    assert row["token_match"] == 1.0 and row["prefix_match_len"] == 4 and row["lcs_len"] == 4


def test_score_continuation_short_generation():
    row = score_continuation([1, 2], [1, 2, 3, 4], "a", "a")
    assert row["exact_match"] is False
    assert row["token_match"] == 0.5
    assert row["prefix_match_len"] == 2
    assert row["levenshtein"] == 2 and row["lev_similarity"] == 0.5
    assert row["near_verbatim"] is False


# -- longest common token substring (chat replies) ------------------------------------------
def _brute_lcs(a, b):
    best = 0
    for i in range(len(a)):
        for j in range(len(b)):
            n = 0
            while i + n < len(a) and j + n < len(b) and a[i + n] == b[j + n]:
                n += 1
            best = max(best, n)
    return best


def test_longest_common_substring_hand_computed():
    suffix = [10, 11, 12, 13, 14, 15]
    # a chat preamble shifts the recited text: nothing is position-aligned, yet 5 tokens are recited in a row
    reply = [1, 2, 3, 10, 11, 12, 13, 14]
    assert token_match(reply[:6], suffix) == 0 and prefix_match_len(reply, suffix) == 0
    assert longest_common_substring(reply, suffix) == 5
    assert longest_common_substring([10, 11, 99, 12, 13, 14], suffix) == 3  # a run, not a subsequence
    assert longest_common_substring([], suffix) == 0 and longest_common_substring(suffix, []) == 0
    # frequent tokens are not treated as junk (difflib's autojunk would skip tokens in > 1 % of a 200+ list)
    long = [7] * 300 + [1]
    assert longest_common_substring(long, [7] * 250) == 250


def test_longest_common_substring_equals_brute_force():
    rng = random.Random(0)
    for _ in range(300):
        a = [rng.randrange(4) for _ in range(rng.randrange(0, 15))]
        b = [rng.randrange(4) for _ in range(rng.randrange(0, 15))]
        assert longest_common_substring(a, b) == _brute_lcs(a, b) == longest_common_substring(b, a)
