"""Memorization metrics for one greedy continuation against the true suffix.

Token-level metrics follow the literature exactly:
- `exact_match`      Carlini et al. 2022 "k-extractable": all m tokens equal.
- `token_match`      Biderman et al. 2023 memorization score: fraction of equal positions.
- `prefix_match_len` number of leading tokens equal.
- `levenshtein`      token-level edit distance d (Duan et al. 2025); `lev_similarity` = 1 - d/m.
- `near_verbatim`    lev_similarity >= 0.75 (Merullo et al. 2025).
- `lcs_len`          longest common token substring: the longest run of consecutive suffix tokens that
                     appears anywhere in the continuation. Position-free, so a chat reply that recites
                     the text after a preamble ("Sure! Here is the rest:") is credited, which the
                     position-aligned metrics above cannot do.
Text-level metrics: `char_lev_similarity` on decoded strings, the original study's blended
`seed_score` (kept only for comparability; threshold 0.7) and the zlib complexity ratio.
Edit distances come from the `Levenshtein` package (C implementation), not hand-written.
"""

from __future__ import annotations

import difflib
import zlib
from typing import Sequence

import Levenshtein

NEAR_VERBATIM_THRESHOLD = 0.75
SEED_SCORE_THRESHOLD = 0.7


def token_match(generated: Sequence[int], reference: Sequence[int]) -> float:
    """Biderman score: fraction of the m reference positions where generated == reference."""
    m = len(reference)
    if m == 0:
        raise ValueError("reference must not be empty")
    return sum(int(g == r) for g, r in zip(generated, reference)) / m


def prefix_match_len(generated: Sequence[int], reference: Sequence[int]) -> int:
    """Number of leading positions where generated and reference agree."""
    n = 0
    for g, r in zip(generated, reference):
        if g != r:
            break
        n += 1
    return n


def exact_match(generated: Sequence[int], reference: Sequence[int]) -> bool:
    """Carlini's k-extractable test: every one of the m reference tokens reproduced."""
    return len(generated) >= len(reference) and prefix_match_len(generated, reference) == len(reference)


def token_levenshtein(generated: Sequence[int], reference: Sequence[int]) -> int:
    """Edit distance between two token-id sequences (insertions, deletions, substitutions)."""
    return Levenshtein.distance(list(generated), list(reference))


def longest_common_substring(generated: Sequence[int], reference: Sequence[int]) -> int:
    """Length of the longest run of consecutive `reference` tokens found anywhere in `generated`
    (difflib's longest matching block, autojunk off so frequent tokens are not skipped)."""
    generated, reference = list(generated), list(reference)
    matcher = difflib.SequenceMatcher(None, generated, reference, autojunk=False)
    return matcher.find_longest_match(0, len(generated), 0, len(reference)).size


def lev_similarity(distance: int, m: int) -> float:
    """1 - d/m, clipped at 0 (Duan et al. normalise by the continuation length m)."""
    return max(0.0, 1.0 - distance / m)


def char_lev_similarity(generated_text: str, reference_text: str) -> float:
    """1 - d/len(reference) on characters; 1.0 when both strings are empty."""
    if not reference_text:
        return 1.0 if not generated_text else 0.0
    return max(0.0, 1.0 - Levenshtein.distance(generated_text, reference_text) / len(reference_text))


def _words(text: str) -> list[str]:
    return text.lower().split()


def seed_score(generated_text: str, reference_text: str) -> float:
    """The original study's blend: 0.4 exact + 0.3 leading-word ratio + 0.3 word Jaccard.

    Words are lower-cased whitespace tokens; "exact" compares whitespace-normalised strings.
    """
    gen, ref = _words(generated_text), _words(reference_text)
    exact = float(gen == ref and bool(ref))
    leading = 0
    for g, r in zip(gen, ref):
        if g != r:
            break
        leading += 1
    lead_ratio = leading / len(ref) if ref else 0.0
    gen_set, ref_set = set(gen), set(ref)
    union = gen_set | ref_set
    jaccard = len(gen_set & ref_set) / len(union) if union else 0.0
    return 0.4 * exact + 0.3 * lead_ratio + 0.3 * jaccard


def zlib_ratio(text: str) -> float:
    """Compressed size / raw size of the UTF-8 bytes: low values mean repetitive text."""
    raw = text.encode("utf-8")
    if not raw:
        return 0.0
    return len(zlib.compress(raw)) / len(raw)


def score_continuation(
    generated_ids: Sequence[int],
    suffix_ids: Sequence[int],
    generated_text: str,
    suffix_text: str,
) -> dict[str, float | int | bool]:
    """Every metric of one continuation, as the columns of a results row."""
    m = len(suffix_ids)
    generated_ids = list(generated_ids)[:m]
    distance = token_levenshtein(generated_ids, suffix_ids)
    similarity = lev_similarity(distance, m)
    seed = seed_score(generated_text, suffix_text)
    return {
        "exact_match": exact_match(generated_ids, suffix_ids),
        "token_match": token_match(generated_ids, suffix_ids),
        "prefix_match_len": prefix_match_len(generated_ids, suffix_ids),
        "lcs_len": longest_common_substring(generated_ids, suffix_ids),
        "levenshtein": distance,
        "lev_similarity": similarity,
        "near_verbatim": similarity >= NEAR_VERBATIM_THRESHOLD,
        "char_lev_similarity": char_lev_similarity(generated_text, suffix_text),
        "seed_score": seed,
        "seed_memorized": seed >= SEED_SCORE_THRESHOLD,
        "zlib_ratio": zlib_ratio(suffix_text),
    }
