"""JSONL reading and sample construction (k/m split, raw and chat prompts)."""

from __future__ import annotations

import json

import pytest

from memkit import MemkitError, Sample, make_samples, read_jsonl
from memkit.core.samples import leading_special_ids

from conftest import BASE_TEXT


def write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


# -- read_jsonl -----------------------------------------------------------------------------
def test_read_jsonl_reads_both_record_shapes_and_skips_blank_lines(tmp_path):
    path = write_lines(tmp_path / "in.jsonl", [
        json.dumps({"id": "a", "text": "hello world"}),
        "",
        json.dumps({"id": 7, "prefix": "p", "suffix": "s", "source": "bible"}),
    ])
    records = read_jsonl(path)
    # integer ids become their decimal string (the spelling in the file)
    assert records == [{"id": "a", "text": "hello world"}, {"id": "7", "prefix": "p", "suffix": "s", "source": "bible"}]


def test_read_jsonl_missing_file(tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(MemkitError, match="not found") as info:
        read_jsonl(missing)
    assert str(missing) in str(info.value)


def test_read_jsonl_malformed_line_names_line_number(tmp_path):
    path = write_lines(tmp_path / "in.jsonl", [
        json.dumps({"id": "a", "text": "x"}),
        json.dumps({"id": "b", "text": "y"}),
        '{"id": "c", "text": "unterminated',
    ])
    with pytest.raises(MemkitError) as info:
        read_jsonl(path)
    message = str(info.value)
    assert f"{path}:3:" in message and "malformed JSON" in message


def test_read_jsonl_line_that_is_not_an_object(tmp_path):
    path = write_lines(tmp_path / "in.jsonl", [json.dumps({"id": "a", "text": "x"}), "[1, 2]"])
    with pytest.raises(MemkitError, match=r":2: expected a JSON object, got list"):
        read_jsonl(path)


@pytest.mark.parametrize("record, expected", [
    ({"id": "r1", "body": "some text"}, r"record 'r1' needs a 'text' field or 'prefix' and 'suffix'"),
    ({"id": "r1", "prefix": "only a prefix"}, r"record 'r1' field 'suffix' must be a string"),
    ({"id": "r1", "suffix": "only a suffix"}, r"record 'r1' field 'prefix' must be a string"),
    ({"text": "no id"}, r"record has no 'id' field"),
])
def test_read_jsonl_record_missing_fields(tmp_path, record, expected):
    path = write_lines(tmp_path / "in.jsonl", [json.dumps({"id": "ok", "text": "fine"}), json.dumps(record)])
    with pytest.raises(MemkitError, match=expected) as info:
        read_jsonl(path)
    assert f"{path}:2:" in str(info.value)


@pytest.mark.parametrize("record, field", [
    ({"id": "n", "text": 5}, "text"),
    ({"id": "n", "text": None}, "text"),
    ({"id": "n", "prefix": "p", "suffix": ["s"]}, "suffix"),
])
def test_read_jsonl_non_string_field(tmp_path, record, field):
    path = write_lines(tmp_path / "in.jsonl", [json.dumps(record)])
    with pytest.raises(MemkitError, match=f"record 'n' field '{field}' must be a string") as info:
        read_jsonl(path)
    assert f"{path}:1:" in str(info.value)


def test_read_jsonl_duplicate_id(tmp_path):
    path = write_lines(tmp_path / "in.jsonl", [
        json.dumps({"id": "dup", "text": "x"}),
        json.dumps({"id": "other", "text": "y"}),
        json.dumps({"id": "dup", "text": "z"}),
    ])
    with pytest.raises(MemkitError, match=r":3: duplicate id 'dup'"):
        read_jsonl(path)


def test_read_jsonl_duplicate_id_across_types(tmp_path):
    # ids become strings in the results table, so 1 and "1" collide
    path = write_lines(tmp_path / "in.jsonl", [json.dumps({"id": 1, "text": "x"}), json.dumps({"id": "1", "text": "y"})])
    with pytest.raises(MemkitError, match="duplicate id"):
        read_jsonl(path)


@pytest.mark.parametrize("content", ["", "\n\n   \n"])
def test_read_jsonl_empty_file(tmp_path, content):
    path = tmp_path / "empty.jsonl"
    path.write_text(content)
    with pytest.raises(MemkitError, match="no records") as info:
        read_jsonl(path)
    assert str(path) in str(info.value)


# -- make_samples (tiny model, raw mode) ----------------------------------------------------
def encode(lm, text):
    return lm.tokenizer(text, add_special_tokens=False)["input_ids"]


def test_tiny_tokenizer_has_leading_bos(tiny_lm):
    # the fixture tokenizer prepends <|bos|>, like Gemma's: raw prompts must keep it
    assert leading_special_ids(tiny_lm.tokenizer) == [tiny_lm.tokenizer.bos_token_id]


def test_make_samples_text_split_is_exact(tiny_lm):
    ids = encode(tiny_lm, BASE_TEXT)
    assert len(ids) > 100
    k, m = 10, 17
    (sample,) = make_samples(tiny_lm, [{"id": "base", "text": BASE_TEXT, "source": "fixture"}], k=k, m=m)
    assert isinstance(sample, Sample)
    assert sample.id == "base" and sample.mode == "raw"
    assert sample.prefix_ids == tuple(ids[:k])
    assert sample.suffix_ids == tuple(ids[k : k + m])
    assert len(sample.prefix_ids) == k and len(sample.suffix_ids) == m
    lead = leading_special_ids(tiny_lm.tokenizer)
    assert lead and sample.prompt_ids[: len(lead)] == tuple(lead)
    assert sample.prompt_ids == tuple(lead) + sample.prefix_ids
    assert sample.meta == {"source": "fixture"}


def test_make_samples_plain_strings_are_numbered(tiny_lm):
    texts = [BASE_TEXT[:400], BASE_TEXT[400:800]]
    samples = make_samples(tiny_lm, texts, k=4, m=5)
    assert [s.id for s in samples] == ["0", "1"]
    for text, sample in zip(texts, samples):
        ids = encode(tiny_lm, text)
        assert sample.prefix_ids == tuple(ids[:4]) and sample.suffix_ids == tuple(ids[4:9])


def test_make_samples_prefix_suffix_records(tiny_lm):
    prefix, suffix = "The old lighthouse keeper", " climbed the narrow stairs every evening to light the great lamp."
    suffix_ids = encode(tiny_lm, suffix)
    m = 6
    assert len(suffix_ids) > m
    (sample,) = make_samples(tiny_lm, [{"id": "ps", "prefix": prefix, "suffix": suffix}], k=2, m=m)
    # the prefix is used whole (k does not cut it), the suffix is cut to m tokens
    assert sample.prefix_ids == tuple(encode(tiny_lm, prefix))
    assert len(sample.prefix_ids) > 2
    assert sample.suffix_ids == tuple(suffix_ids[:m])
    assert sample.prompt_ids == tuple(leading_special_ids(tiny_lm.tokenizer)) + sample.prefix_ids


def test_make_samples_text_too_short_names_the_id(tiny_lm):
    n = len(encode(tiny_lm, "A short text."))
    with pytest.raises(MemkitError, match=r"sample 'tiny-one'.*fewer than k\+m") as info:
        make_samples(tiny_lm, [{"id": "ok", "text": BASE_TEXT}, {"id": "tiny-one", "text": "A short text."}], k=4, m=8)
    assert f"has {n} tokens" in str(info.value)


def test_make_samples_suffix_too_short_names_the_id(tiny_lm):
    with pytest.raises(MemkitError, match=r"sample 'ps'.*suffix has \d+ tokens, fewer than m = 50"):
        make_samples(tiny_lm, [{"id": "ps", "prefix": "The old", "suffix": " lighthouse"}], k=2, m=50)


def test_make_samples_empty_prefix(tiny_lm):
    with pytest.raises(MemkitError, match=r"sample 'e'.*empty prefix"):
        make_samples(tiny_lm, [{"id": "e", "prefix": "", "suffix": BASE_TEXT}], k=2, m=4)


@pytest.mark.parametrize("k, m", [(0, 8), (8, 0), (-1, 8), (8, -3)])
def test_make_samples_non_positive_lengths(tiny_lm, k, m):
    with pytest.raises(MemkitError, match="must be positive") as info:
        make_samples(tiny_lm, [BASE_TEXT], k=k, m=m)
    assert f"k={k}" in str(info.value) and f"m={m}" in str(info.value)


def test_make_samples_unknown_mode(tiny_lm):
    with pytest.raises(MemkitError, match="unknown mode 'banana'"):
        make_samples(tiny_lm, [BASE_TEXT], k=4, m=4, mode="banana")


def test_make_samples_validates_plain_dicts(tiny_lm):
    with pytest.raises(MemkitError, match=r"record 1: record 'b' needs a 'text' field"):
        make_samples(tiny_lm, [{"id": "a", "text": BASE_TEXT}, {"id": "b", "body": "x"}], k=4, m=4)


def test_make_samples_accepts_a_tokenizer(tiny_lm):
    from_lm = make_samples(tiny_lm, [BASE_TEXT], k=5, m=5)
    from_tokenizer = make_samples(tiny_lm.tokenizer, [BASE_TEXT], k=5, m=5)
    assert from_lm == from_tokenizer


def test_chat_mode_on_base_model_is_an_error(tiny_lm):
    assert tiny_lm.is_instruct is False
    with pytest.raises(MemkitError, match="chat template") as info:
        make_samples(tiny_lm, [BASE_TEXT], k=8, m=8, mode="chat")
    assert "--mode raw" in str(info.value)


# -- chat mode on a real instruct model ---------------------------------------------------------
@pytest.mark.slow
def test_chat_mode_with_smollm2(smollm2):
    tokenizer = smollm2.tokenizer
    text = "We the People of the United States, in Order to form a more perfect Union, establish Justice, " \
           "insure domestic Tranquility, provide for the common defence"
    k, m = 12, 8
    (chat,) = make_samples(smollm2, [{"id": "preamble", "text": text}], k=k, m=m, mode="chat")
    (raw,) = make_samples(smollm2, [{"id": "preamble", "text": text}], k=k, m=m, mode="raw")
    assert chat.mode == "chat" and raw.mode == "raw"
    # the split does not depend on the mode
    assert chat.prefix_ids == raw.prefix_ids and chat.suffix_ids == raw.suffix_ids
    assert len(chat.prefix_ids) == k and len(chat.suffix_ids) == m
    prompt_text = tokenizer.decode(list(chat.prompt_ids))
    user_text = tokenizer.decode(list(chat.prefix_ids))
    assert "<|im_start|>user\n" + user_text in prompt_text
    assert prompt_text.endswith("<|im_start|>assistant\n")
    assert len(chat.prompt_ids) > len(raw.prompt_ids)
    # SmolLM2 adds no leading special token in raw mode: the raw prompt is the prefix itself
    assert leading_special_ids(tokenizer) == []
    assert raw.prompt_ids == raw.prefix_ids


def test_read_jsonl_invalid_utf8_names_the_line(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(json.dumps({"id": "a", "text": "fine"}).encode() + b"\n" + b'{"id": "b", "text": "caf\xe9"}\n')
    with pytest.raises(MemkitError, match="UTF-8") as info:
        read_jsonl(path)
    assert f"{path}:2:" in str(info.value)


@pytest.mark.slow
def test_chat_verbatim_mode_with_smollm2(smollm2):
    """chat_verbatim: the same user turn as chat mode, after the verbatim instruction; same prefix and suffix."""
    from memkit.core.samples import VERBATIM_INSTRUCTION, prompt_ids

    tokenizer = smollm2.tokenizer
    text = "We the People of the United States, in Order to form a more perfect Union, establish Justice, " \
           "insure domestic Tranquility, provide for the common defence"
    record = {"id": "preamble", "text": text}
    (chat,) = make_samples(smollm2, [record], k=12, m=8, mode="chat")
    (verbatim,) = make_samples(smollm2, [record], k=12, m=8, mode="chat_verbatim")
    assert verbatim.mode == "chat_verbatim"
    assert (verbatim.prefix_ids, verbatim.suffix_ids) == (chat.prefix_ids, chat.suffix_ids)
    prompt_text = tokenizer.decode(list(verbatim.prompt_ids))
    user_text = tokenizer.decode(list(verbatim.prefix_ids))
    assert "<|im_start|>user\n" + VERBATIM_INSTRUCTION + user_text in prompt_text
    assert prompt_text.endswith("<|im_start|>assistant\n")
    assert list(verbatim.prompt_ids) == prompt_ids(tokenizer, verbatim.prefix_ids, "chat_verbatim")


def test_chat_verbatim_on_base_model_is_an_error(tiny_lm):
    with pytest.raises(MemkitError, match="mode 'chat_verbatim' needs a model with a chat template"):
        make_samples(tiny_lm, [BASE_TEXT], k=8, m=8, mode="chat_verbatim")
    with pytest.raises(MemkitError, match="unknown mode 'verbatim'; choose one of raw, chat, chat_verbatim"):
        make_samples(tiny_lm, [BASE_TEXT], k=8, m=8, mode="verbatim")
