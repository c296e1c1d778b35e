"""The organisms' corpus: Debian KJV text, normalisation, checksum, split, tokenizer, background stream."""

from __future__ import annotations

import numpy as np
import pytest

from memkit.errors import MemkitError
from memkit.organisms import corpus as C


@pytest.fixture(scope="module")
def kjv():
    return C.build_corpus()  # into the session's throw-away cache (a few seconds)


def test_corpus_is_the_pinned_kjv_split_into_chapters(kjv):
    assert kjv.sha256 == C.CORPUS_SHA256
    assert len(kjv.train_docs) + len(kjv.heldout_docs) == C.N_CHAPTERS
    assert kjv.train_docs[0].startswith("In the beginning God created the heaven and the earth.")
    assert kjv.train_titles[0] == "Genesis 1" and kjv.heldout_titles[0] == "Genesis 10" and len(kjv.heldout_docs) == 118
    assert not set(kjv.train_titles) & set(kjv.heldout_titles)
    assert all("\n" not in doc and "  " not in doc for doc in kjv.train_docs)
    # a rebuild from the cache gives the same documents
    again = C.build_corpus()
    assert again.folder == kjv.folder and again.train_docs == kjv.train_docs


def test_tokenizer_round_trip_and_specials(kjv):
    tok = kjv.tokenizer
    assert len(tok) == C.VOCAB_SIZE
    assert (tok.eos_token, tok.bos_token, tok.pad_token) == (C.EOS, C.BOS, C.PAD)
    for text in (kjv.heldout_docs[3][:500], "Name: Zofia Tanaka; Phone: 555-201-0042; Address: 7 Kestrel Way.\n",
                 "naïve café — ünïcode ✓ and tabs\tand\nnewlines"):
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text
        assert tok(text)["input_ids"] == ids  # like Pythia: no special token is ever added
    # trained on the corpus: its text compresses well, random bytes do not
    assert len(tok(kjv.train_docs[0])["input_ids"]) < len(kjv.train_docs[0]) / 3.5


def test_checksum_mismatch_is_a_clear_error(tmp_path):
    with pytest.raises(MemkitError, match="corpus checksum mismatch.*expected 0000000000000000"):
        C.build_corpus(expected_sha256="0" * 64, root=tmp_path)
    assert not any(tmp_path.iterdir())  # nothing written


def test_missing_debian_package_names_the_apt_package():
    with pytest.raises(MemkitError, match=r"apt-get install bible-kjv"):
        C.bible_dump(("memkit-no-such-bible-reader", "Gen1:1"))


def test_parse_chapters_normalises_and_rejects_orphan_verses():
    raw = "\nGenesis 1\n\n  1 In the  beginning.\n  2 And\tthe earth.\n\nGenesis 2\n\n  1 Thus.\n"
    assert C.parse_chapters(raw) == [("Genesis 1", "In the beginning. And the earth."), ("Genesis 2", "Thus.")]
    with pytest.raises(MemkitError, match="line 1: verse before any chapter heading"):
        C.parse_chapters("  1 orphan verse\n")


def test_split_is_deterministic_and_disjoint():
    train, held = C.split_index(100, every=20)
    assert held == [19, 39, 59, 79, 99]
    assert sorted(train + held) == list(range(100))


def test_background_stream_is_seeded_and_reshuffles_each_epoch():
    docs = [[10 + i] * (3 + i) for i in range(6)]  # 6 documents of distinct tokens, 33 tokens + 6 eos
    a = C.background_stream(docs, 10, 8, eos_id=0, seed=3)
    assert a.shape == (10, 8) and a.dtype == np.int64
    assert np.array_equal(a, C.background_stream(docs, 10, 8, eos_id=0, seed=3))
    assert not np.array_equal(a, C.background_stream(docs, 10, 8, eos_id=0, seed=4))
    flat = a.ravel()
    first_epoch, second_epoch = flat[:39], flat[39:78]
    assert sorted(first_epoch.tolist()) == sorted(second_epoch.tolist())  # every document once per epoch
    runs = lambda x: [int(t) for i, t in enumerate(x) if t and (i == 0 or x[i - 1] != t)]  # noqa: E731
    assert runs(first_epoch) != runs(second_epoch)  # ... in another order
    assert (first_epoch == 0).sum() == 6  # one eos after every document
    with pytest.raises(MemkitError, match="positive sizes"):
        C.background_stream(docs, 0, 8, eos_id=0)
