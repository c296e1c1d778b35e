"""Canaries: seeded generation, insertion counts/positions/windows, controls absent, manifest, samples."""

from __future__ import annotations

import json

import numpy as np
import pytest

from memkit.errors import MemkitError
from memkit.organisms import canaries as K
from memkit.organisms.corpus import background_stream, build_corpus, encode_docs

N_TOKENS = 24
SEQ_LEN = 40
CELLS = K.grid(K.KINDS, {0: 2, 1: 2, 4: 2, 16: 1, 64: 1}) + K.grid(K.KINDS, {4: 1, 16: 1}, "early") \
    + K.grid(K.KINDS, {4: 1}, "late")


@pytest.fixture(scope="module")
def setup():
    corpus = build_corpus()
    tok = corpus.tokenizer
    heldout = list(zip(corpus.heldout_titles, corpus.heldout_docs))
    words = K.word_list(corpus.train_docs)
    canaries = K.make_canaries(tok, heldout, words, CELLS, n_tokens=N_TOKENS, seed=7, train_docs=corpus.train_docs)
    stream = background_stream(encode_docs(tok, corpus.train_docs[:200]), 1200, SEQ_LEN, tok.eos_token_id, seed=7)
    background = stream.copy()
    K.insert_canaries(stream, canaries, tok.eos_token_id, seed=7)
    return tok, heldout, words, canaries, stream, background, corpus.train_docs


def occurrences(flat: np.ndarray, ids: list[int]) -> list[int]:
    """Every start index where `ids` occurs in `flat`."""
    windows = np.lib.stride_tricks.sliding_window_view(flat, len(ids))
    return np.flatnonzero((windows == np.asarray(ids)).all(axis=1)).tolist()


def test_generation_is_seeded_and_exact_length(setup):
    tok, heldout, words, canaries, stream, background, train_docs = setup
    again = K.make_canaries(tok, heldout, words, CELLS, n_tokens=N_TOKENS, seed=7, train_docs=train_docs)
    other = K.make_canaries(tok, heldout, words, CELLS, n_tokens=N_TOKENS, seed=8, train_docs=train_docs)
    assert [c.token_ids for c in again] == [c.token_ids for c in canaries]
    assert [c.token_ids for c in other] != [c.token_ids for c in canaries]
    assert len(canaries) == sum(cell.count for cell in CELLS)
    assert len({c.id for c in canaries}) == len(canaries) and len({tuple(c.token_ids) for c in canaries}) == len(canaries)
    for c in canaries:
        assert len(c.token_ids) == N_TOKENS and c.text == tok.decode(c.token_ids)
        assert 0 < c.zlib_ratio < 2
    kinds = {k: [c for c in canaries if c.kind == k] for k in K.KINDS}
    assert all(set(c.text.split()[:-1]) <= set(words) for c in kinds["words"])  # corpus words (last may be cut)
    assert all(c.text.startswith("Name: ") for c in kinds["records"])
    # passages come from distinct held-out chapters and are verbatim held-out text
    held_text = {title: doc for title, doc in heldout}
    titles = [c.source.split(" (held out)")[0] for c in kinds["passages"]]
    assert len(set(titles)) == len(titles)
    assert all(c.text in held_text[t] for c, t in zip(kinds["passages"], titles))
    # ... sharing no 8-word run with the training text (the KJV repeats verses across books)
    assert not K.word_ngrams([c.text for c in kinds["passages"]]) & K.word_ngrams(train_docs)
    # synthetic records (random digits, rare names) are the least compressible kind
    assert np.mean([c.zlib_ratio for c in kinds["records"]]) > np.mean([c.zlib_ratio for c in kinds["passages"]])


def test_copies_per_level_and_positions_hold_the_canary(setup):
    tok, heldout, words, canaries, stream, background, train_docs = setup
    flat = stream.ravel()
    eos = tok.eos_token_id
    used = []
    for c in canaries:
        assert len(c.positions) == c.level == len(set(c.positions))
        for p in c.positions:
            assert flat[p : p + N_TOKENS].tolist() == c.token_ids
            assert flat[p - 1] == eos and flat[p + N_TOKENS] == eos
            assert (p - 1) // SEQ_LEN == (p + N_TOKENS) // SEQ_LEN  # never straddles two training sequences
            used.append(p // SEQ_LEN)
        if c.level:  # the stream holds the canary exactly where the manifest says, nowhere else
            assert occurrences(flat, c.token_ids) == c.positions
    assert len(used) == len(set(used))  # at most one copy per training sequence


def test_controls_are_never_in_the_stream(setup):
    tok, heldout, words, canaries, stream, background, train_docs = setup
    controls = [c for c in canaries if c.level == 0]
    assert len(controls) == 2 * len(K.KINDS)
    for c in controls:
        assert c.positions == [] and occurrences(stream.ravel(), c.token_ids[:12]) == []


def test_windows_are_respected_and_background_is_untouched_elsewhere(setup):
    tok, heldout, words, canaries, stream, background, train_docs = setup
    n_seq = stream.shape[0]
    for c in canaries:
        lo, hi = K.window_range(c.window, n_seq)
        assert all(lo <= p // SEQ_LEN < hi for p in c.positions), c.id
    assert K.window_range("early", n_seq) == (0, 300) and K.window_range("late", n_seq) == (900, 1200)
    assert K.window_range("late", n_seq, {"late": (0.55, 0.8)}) == (660, 960)
    touched = {p // SEQ_LEN for c in canaries for p in c.positions}
    untouched = [i for i in range(n_seq) if i not in touched]
    assert np.array_equal(stream[untouched], background[untouched])
    # copies of an `all` canary spread over the whole stream
    spread = [p // SEQ_LEN for c in canaries if c.level == 64 for p in c.positions]
    assert min(spread) < n_seq * 0.2 and max(spread) > n_seq * 0.8


def test_not_enough_room_and_bad_cells_are_clear_errors(setup):
    tok, heldout, words, canaries, stream, background, train_docs = setup
    big = K.make_canaries(tok, heldout, words, [K.Cell("words", 64, "early")], n_tokens=N_TOKENS, seed=1)
    with pytest.raises(MemkitError, match="only 25 free training sequences in window 'early' for 64 copies"):
        K.insert_canaries(np.zeros((100, SEQ_LEN), dtype=np.int64), big, 0)
    with pytest.raises(MemkitError, match="do not fit a 20-token sequence"):
        K.insert_canaries(np.zeros((100, 20), dtype=np.int64), big, 0)
    for cell, message in ((K.Cell("poems", 1), "unknown kind"), (K.Cell("words", 3), "level must be one of"),
                          (K.Cell("words", 4, "middle"), "unknown window"), (K.Cell("words", 0, "early"), "controls")):
        with pytest.raises(MemkitError, match=message):
            K.check_cells([cell])


def test_manifest_round_trip_and_bad_lines(setup, tmp_path):
    tok, heldout, words, canaries, stream, background, train_docs = setup
    path = K.write_manifest(canaries, tmp_path / "manifest.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert {"id", "kind", "text", "level", "window", "positions", "zlib_ratio", "token_ids"} <= set(rows[0])
    assert K.read_manifest(path) == canaries
    path.write_text(path.read_text() + '{"id": "x"}\n')
    with pytest.raises(MemkitError, match=rf"manifest.jsonl:{len(canaries) + 1}: not a canary record"):
        K.read_manifest(path)
    with pytest.raises(MemkitError, match="manifest not found"):
        K.read_manifest(tmp_path / "missing.jsonl")


def test_canary_samples_split_and_context_sweep(setup):
    tok, heldout, words, canaries, stream, background, train_docs = setup
    samples = K.canary_samples(canaries, k=8, m=8)
    c, s = canaries[0], samples[0]
    assert s.id == c.id and s.prompt_ids == s.prefix_ids == tuple(c.token_ids[:8])
    assert s.suffix_ids == tuple(c.token_ids[8:16])
    assert s.meta == {"kind": c.kind, "level": c.level, "window": c.window, "zlib": c.zlib_ratio, "copies": c.level}
    # a fixed suffix start keeps the suffix while the prefix length varies
    for k in (2, 4, 12):
        sk = K.canary_samples(canaries, k=k, m=8, suffix_start=12)[0]
        assert sk.suffix_ids == tuple(c.token_ids[12:20]) and sk.prefix_ids == tuple(c.token_ids[12 - k : 12])
    assert [s.id for s in K.canary_samples(canaries, 8, 8, ids=[canaries[3].id])] == [canaries[3].id]
    with pytest.raises(MemkitError, match="k <= suffix_start"):
        K.canary_samples(canaries, k=16, m=4, suffix_start=8)
    with pytest.raises(MemkitError, match="fewer than suffix_start"):
        K.canary_samples(canaries, k=16, m=16)
