"""Exactness of memkit's batched greedy decoder against Hugging Face `generate`.

The reference is `model.generate` run on ONE prompt at a time (no padding), greedy, exactly m
new tokens, no stop at EOS (see `conftest.hf_greedy`). memkit must reproduce it token for token:
in plain mode with left-padded batches of prompts of different lengths, and in draft mode
whatever the drafts are (the model's own continuation, partial matches that diverge at many
different points in one batch, random tokens), for several draft schedules.
"""

from __future__ import annotations

import random

import pytest
import torch
from transformers import LogitsProcessor

import memkit
from memkit import DecodeResult, greedy_decode, make_samples
from memkit.core.extract import pad_token_id

from conftest import BASE_TEXT, hf_greedy

M = 24
# prompt lengths (tokens, <|bos|> included): all different, so left padding matters
TINY_PROMPT_LENGTHS = [1, 2, 5, 9, 14, 23, 31, 40]
SCHEDULES = [(4, 2), (1, 2), (4, 4), (16, 2), (1, 1), (0, 3)]  # (first_draft, draft_growth)


@pytest.fixture(scope="module")
def tiny_prompts(tiny_lm):
    ids = tiny_lm.tokenizer(BASE_TEXT)["input_ids"]  # starts with <|bos|>
    assert ids[0] == tiny_lm.tokenizer.bos_token_id
    prompts = []
    for n, length in enumerate(TINY_PROMPT_LENGTHS):
        start = 0 if n % 2 == 0 else 7 * n  # different contents, not only different lengths
        prompt = [ids[0]] + ids[1 + start : start + length]
        assert len(prompt) == length
        prompts.append(prompt)
    return prompts


@pytest.fixture(scope="module")
def tiny_pad(tiny_lm):
    return pad_token_id(tiny_lm.tokenizer)


@pytest.fixture(scope="module")
def tiny_reference(tiny_lm, tiny_prompts, tiny_pad):
    """(tokens, min top-2 gap) per prompt from one-at-a-time HF generate."""
    return [hf_greedy(tiny_lm.model, p, M, tiny_pad, return_gaps=True) for p in tiny_prompts]


def diverging_draft(reference, j, vocab, rng):
    """A draft equal to `reference` for the first j tokens, then different (random) tokens."""
    if j >= len(reference):
        return list(reference)
    wrong = (reference[j] + 1 + rng.randrange(vocab - 1)) % vocab
    assert wrong != reference[j]
    return list(reference[:j]) + [wrong] + [rng.randrange(vocab) for _ in range(len(reference) - j - 1)]


# -- plain batched greedy ---------------------------------------------------------------------
def test_plain_equals_one_at_a_time_generate(tiny_lm, tiny_prompts, tiny_pad, tiny_reference):
    result = greedy_decode(tiny_lm.model, tiny_prompts, M, tiny_pad)
    assert isinstance(result, DecodeResult)
    expected = [tokens for tokens, _ in tiny_reference]
    assert all(len(g) == M for g in result.generated_ids)
    assert result.generated_ids == expected
    assert result.near_ties == [False] * len(tiny_prompts)
    # one forward pass per generated token: the prefill gives the first, m - 1 steps the rest
    assert result.forward_passes == M


def test_min_top2_gap_matches_reference_logits(tiny_lm, tiny_prompts, tiny_pad, tiny_reference):
    result = greedy_decode(tiny_lm.model, tiny_prompts, M, tiny_pad)
    for gap, (_, expected_gap) in zip(result.min_top2_gap, tiny_reference):
        assert gap == pytest.approx(expected_gap, abs=1e-4)
        assert gap > 0


def test_plain_does_not_depend_on_batch_composition(tiny_lm, tiny_prompts, tiny_pad, tiny_reference):
    expected = [tokens for tokens, _ in tiny_reference]
    single = greedy_decode(tiny_lm.model, [tiny_prompts[3]], M, tiny_pad)
    assert single.generated_ids == [expected[3]]
    order = [5, 0, 7, 2, 2, 6]  # shuffled, with a duplicate
    shuffled = greedy_decode(tiny_lm.model, [tiny_prompts[i] for i in order], M, tiny_pad)
    assert shuffled.generated_ids == [expected[i] for i in order]


# -- draft mode -------------------------------------------------------------------------------
@pytest.mark.parametrize("first_draft, growth", SCHEDULES)
def test_drafted_with_own_continuation(tiny_lm, tiny_prompts, tiny_pad, tiny_reference, first_draft, growth):
    expected = [tokens for tokens, _ in tiny_reference]
    result = greedy_decode(tiny_lm.model, tiny_prompts, M, tiny_pad, drafts=expected,
                           first_draft=first_draft, draft_growth=growth)
    assert result.generated_ids == expected
    assert result.near_ties == [False] * len(tiny_prompts)


def test_drafted_fully_memorised_needs_few_forward_passes(tiny_lm, tiny_prompts, tiny_pad, tiny_reference):
    expected = [tokens for tokens, _ in tiny_reference]
    drafted = greedy_decode(tiny_lm.model, tiny_prompts, M, tiny_pad, drafts=expected)
    plain = greedy_decode(tiny_lm.model, tiny_prompts, M, tiny_pad)
    assert drafted.generated_ids == plain.generated_ids == expected
    assert plain.forward_passes == M
    # defaults verify 4, then 8, then the remaining tokens: far fewer sequential passes than m
    assert drafted.forward_passes <= 8
    assert drafted.min_top2_gap == pytest.approx(plain.min_top2_gap, abs=1e-4)


@pytest.mark.parametrize("first_draft, growth", SCHEDULES)
def test_drafted_diverging_at_many_points_in_one_batch(tiny_lm, tiny_prompts, tiny_pad, tiny_reference,
                                                       first_draft, growth):
    """Rows leave their drafts at different steps: exercises splitting and merging of batches."""
    rng = random.Random(first_draft * 100 + growth)
    vocab = tiny_lm.model.config.vocab_size
    expected = [tokens for tokens, _ in tiny_reference]
    js = [0, 1, 3, 7, 15, 23, M, 2, 4, 8, 16, 0, M]  # M: the draft is the whole continuation
    rows = [i % len(tiny_prompts) for i in range(len(js))]
    prompts = [tiny_prompts[i] for i in rows]
    drafts = [diverging_draft(expected[i], j, vocab, rng) for i, j in zip(rows, js)]
    result = greedy_decode(tiny_lm.model, prompts, M, tiny_pad, drafts=drafts,
                           first_draft=first_draft, draft_growth=growth)
    assert result.generated_ids == [expected[i] for i in rows]
    plain = greedy_decode(tiny_lm.model, prompts, M, tiny_pad)
    assert result.generated_ids == plain.generated_ids


@pytest.mark.parametrize("first_draft, growth", [(4, 2), (1, 1), (16, 2)])
def test_drafted_every_divergence_point(tiny_lm, tiny_prompts, tiny_pad, tiny_reference, first_draft, growth):
    """j = 0..m in one batch: several rows leave their drafts in the same round, others later."""
    rng = random.Random(7)
    vocab = tiny_lm.model.config.vocab_size
    expected = [tokens for tokens, _ in tiny_reference]
    rows = [(3 * j) % len(tiny_prompts) for j in range(M + 1)]
    drafts = [diverging_draft(expected[i], j, vocab, rng) for j, i in enumerate(rows)]
    result = greedy_decode(tiny_lm.model, [tiny_prompts[i] for i in rows], M, tiny_pad, drafts=drafts,
                           first_draft=first_draft, draft_growth=growth)
    assert result.generated_ids == [expected[i] for i in rows]


def test_drafted_resynchronising_drafts(tiny_lm, tiny_prompts, tiny_pad, tiny_reference):
    """A draft wrong at one position only (then right again) must not confuse the decoder."""
    expected = [tokens for tokens, _ in tiny_reference]
    vocab = tiny_lm.model.config.vocab_size
    drafts = []
    for n, tokens in enumerate(expected):
        j = [0, 2, 5, 11, 4, 19, 1, 9][n]
        draft = list(tokens)
        draft[j] = (draft[j] + 1) % vocab
        drafts.append(draft)
    result = greedy_decode(tiny_lm.model, tiny_prompts, M, tiny_pad, drafts=drafts)
    assert result.generated_ids == expected


@pytest.mark.parametrize("first_draft, growth", [(4, 2), (16, 2)])
def test_drafted_with_random_drafts(tiny_lm, tiny_prompts, tiny_pad, tiny_reference, first_draft, growth):
    rng = random.Random(42)
    vocab = tiny_lm.model.config.vocab_size
    expected = [tokens for tokens, _ in tiny_reference]
    drafts = [[rng.randrange(vocab) for _ in range(M)] for _ in tiny_prompts]
    result = greedy_decode(tiny_lm.model, tiny_prompts, M, tiny_pad, drafts=drafts,
                           first_draft=first_draft, draft_growth=growth)
    assert result.generated_ids == expected


def test_drafted_with_short_and_long_drafts(tiny_lm, tiny_prompts, tiny_pad, tiny_reference):
    expected = [tokens for tokens, _ in tiny_reference]
    short = [tokens[:5] for tokens in expected]
    long = [tokens + [0] * 10 for tokens in expected]
    assert greedy_decode(tiny_lm.model, tiny_prompts, M, tiny_pad, drafts=short).generated_ids == expected
    assert greedy_decode(tiny_lm.model, tiny_prompts, M, tiny_pad, drafts=long).generated_ids == expected


@pytest.mark.parametrize("m", [1, 2, 5])
def test_small_m(tiny_lm, tiny_prompts, tiny_pad, tiny_reference, m):
    expected = [tokens[:m] for tokens, _ in tiny_reference]
    assert greedy_decode(tiny_lm.model, tiny_prompts, m, tiny_pad).generated_ids == expected
    assert greedy_decode(tiny_lm.model, tiny_prompts, m, tiny_pad, drafts=expected).generated_ids == expected
    wrong = [[(t + 1) % 100 for t in tokens] for tokens in expected]
    assert greedy_decode(tiny_lm.model, tiny_prompts, m, tiny_pad, drafts=wrong).generated_ids == expected


# -- logits transforms and EOS ------------------------------------------------------------------
class AddBias(LogitsProcessor):
    """HF-side twin of the memkit transform below (acts on the last position's scores)."""

    def __init__(self, tokens, bias):
        self.tokens, self.bias = list(tokens), bias

    def __call__(self, input_ids, scores):
        scores = scores.clone()
        scores[..., self.tokens] += self.bias
        return scores


def bias_transform(tokens, bias):
    def transform(logits: torch.Tensor) -> torch.Tensor:
        logits = logits.clone()
        logits[..., list(tokens)] += bias
        return logits

    return transform


def test_logits_transform_same_tokens_drafted_and_plain(tiny_lm, tiny_prompts, tiny_pad, tiny_reference):
    tokens, bias = [17, 58, 102, 230, 301, 388], 1.5
    transform = bias_transform(tokens, bias)
    expected = [hf_greedy(tiny_lm.model, p, M, tiny_pad, logits_processor=[AddBias(tokens, bias)])
                for p in tiny_prompts]
    untransformed = [t for t, _ in tiny_reference]
    assert expected != untransformed  # the bias really changes the continuation
    plain = greedy_decode(tiny_lm.model, tiny_prompts, M, tiny_pad, logits_transform=transform)
    assert plain.generated_ids == expected
    # drafts from the untransformed model (wrong under the transform) and from the transformed one
    for drafts in (untransformed, expected):
        for first_draft, growth in [(4, 2), (1, 2), (16, 2)]:
            drafted = greedy_decode(tiny_lm.model, tiny_prompts, M, tiny_pad, drafts=drafts,
                                    logits_transform=transform, first_draft=first_draft, draft_growth=growth)
            assert drafted.generated_ids == expected


def test_no_early_stop_at_eos(tiny_lm, tiny_prompts, tiny_pad):
    eos = tiny_lm.tokenizer.eos_token_id
    transform = bias_transform([eos], 4.0)
    expected = [hf_greedy(tiny_lm.model, p, M, tiny_pad, logits_processor=[AddBias([eos], 4.0)])
                for p in tiny_prompts]
    assert any(eos in tokens[:-1] for tokens in expected)  # EOS chosen before the end
    for drafts in (None, expected):
        result = greedy_decode(tiny_lm.model, tiny_prompts, M, tiny_pad, drafts=drafts, logits_transform=transform)
        assert all(len(g) == M for g in result.generated_ids)
        assert result.generated_ids == expected


# -- argument checks ----------------------------------------------------------------------------
@pytest.mark.parametrize("m", [0, -4])
def test_non_positive_m_raises(tiny_lm, tiny_prompts, tiny_pad, m):
    with pytest.raises(memkit.MemkitError, match="m must be positive"):
        greedy_decode(tiny_lm.model, tiny_prompts, m, tiny_pad)


def test_empty_prompt_raises(tiny_lm, tiny_prompts, tiny_pad):
    with pytest.raises(memkit.MemkitError, match="at least one token"):
        greedy_decode(tiny_lm.model, [tiny_prompts[2], []], 4, tiny_pad)


def test_drafts_must_match_prompts(tiny_lm, tiny_prompts, tiny_pad):
    with pytest.raises(memkit.MemkitError, match="drafts"):
        greedy_decode(tiny_lm.model, tiny_prompts, 4, tiny_pad, drafts=[[1, 2, 3, 4]])


def test_no_prompts_gives_empty_result(tiny_lm, tiny_pad):
    result = greedy_decode(tiny_lm.model, [], 4, tiny_pad)
    assert result.generated_ids == [] and result.min_top2_gap == [] and result.forward_passes == 0


# -- SmolLM2-135M-Instruct (real model, llama architecture) -------------------------------------
SMOL_TEXTS = {
    "preamble": "We the People of the United States, in Order to form a more perfect Union, establish Justice, "
                "insure domestic Tranquility, provide for the common defence, promote the general Welfare, and "
                "secure the Blessings of Liberty to ourselves and our Posterity, do ordain and establish this "
                "Constitution for the United States of America.",
    "genesis": "In the beginning God created the heaven and the earth. And the earth was without form, and void; "
               "and darkness was upon the face of the deep. And the Spirit of God moved upon the face of the waters. "
               "And God said, Let there be light: and there was light.",
    "lorem": "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore "
             "et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut "
             "aliquip ex ea commodo consequat.",
    "keeper": BASE_TEXT,
}
SMOL_M = 20


@pytest.fixture(scope="module")
def smol_case(smollm2):
    """Raw prompts of four different lengths plus two chat prompts, their true suffixes and reference."""
    records = [{"id": key, "text": text} for key, text in SMOL_TEXTS.items()]
    samples = []
    for record, k in zip(records, [8, 20, 13, 31]):
        samples += make_samples(smollm2, [record], k=k, m=SMOL_M, mode="raw")
    samples += make_samples(smollm2, [records[0]], k=10, m=SMOL_M, mode="chat")
    samples += make_samples(smollm2, [records[1]], k=6, m=SMOL_M, mode="chat")
    prompts = [list(s.prompt_ids) for s in samples]
    assert len({len(p) for p in prompts}) == len(prompts)  # all lengths differ
    pad = pad_token_id(smollm2.tokenizer)
    reference = [hf_greedy(smollm2.model, p, SMOL_M, pad) for p in prompts]
    return prompts, [list(s.suffix_ids) for s in samples], reference, pad


@pytest.mark.slow
def test_smollm2_plain_and_drafted_equal_generate(smollm2, smol_case):
    prompts, suffixes, reference, pad = smol_case
    plain = greedy_decode(smollm2.model, prompts, SMOL_M, pad)
    assert plain.generated_ids == reference, f"near ties: {plain.near_ties}"
    own = greedy_decode(smollm2.model, prompts, SMOL_M, pad, drafts=reference)
    assert own.generated_ids == reference
    assert own.forward_passes <= 8 < plain.forward_passes == SMOL_M
    true_suffix = greedy_decode(smollm2.model, prompts, SMOL_M, pad, drafts=suffixes)
    assert true_suffix.generated_ids == reference
    # the chat-mode rows answer instead of continuing: their drafts are rejected early
    assert reference[4] != suffixes[4] and reference[5] != suffixes[5]


@pytest.mark.slow
def test_smollm2_drafted_schedules_and_mixed_drafts(smollm2, smol_case):
    prompts, suffixes, reference, pad = smol_case
    rng = random.Random(3)
    vocab = smollm2.model.config.vocab_size
    # a mix of drafts: own continuation, true suffix, and own continuation leaving at j
    drafts = [reference[0], suffixes[1], diverging_draft(reference[2], 3, vocab, rng),
              diverging_draft(reference[3], 11, vocab, rng), reference[4], diverging_draft(reference[5], 0, vocab, rng)]
    for first_draft, growth in [(1, 2), (16, 2)]:
        result = greedy_decode(smollm2.model, prompts, SMOL_M, pad, drafts=drafts,
                               first_draft=first_draft, draft_growth=growth)
        assert result.generated_ids == reference


# -- Gemma-3-270M (base model: <bos> prompts, sliding-window attention layers, real memorisation) --
@pytest.mark.slow
def test_gemma_drafted_equals_generate_and_recites_the_preamble(gemma):
    m = 20
    samples = []
    for key, k in [("preamble", 16), ("genesis", 24), ("lorem", 6), ("keeper", 11)]:
        samples += make_samples(gemma, [{"id": key, "text": SMOL_TEXTS[key]}], k=k, m=m, mode="raw")
    bos = gemma.tokenizer.bos_token_id
    assert all(s.prompt_ids[0] == bos for s in samples)
    prompts = [list(s.prompt_ids) for s in samples]
    pad = pad_token_id(gemma.tokenizer)
    reference = [hf_greedy(gemma.model, p, m, pad) for p in prompts]
    plain = greedy_decode(gemma.model, prompts, m, pad)
    assert plain.generated_ids == reference, f"near ties: {plain.near_ties}"
    frame = memkit.extract(gemma, samples, batch_size=4, progress=False)  # drafted with the true suffixes
    assert [list(ids) for ids in frame["generated_ids"]] == reference
    rows = frame.set_index("id")
    # DESIGN.md: Gemma-3-270M recites the preamble verbatim; the fixture's keeper text is unknown to it
    assert bool(rows.loc["preamble", "exact_match"]) is True and rows.loc["preamble", "token_match"] == 1.0
    assert bool(rows.loc["keeper", "exact_match"]) is False
