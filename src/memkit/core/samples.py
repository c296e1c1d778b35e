"""Turn texts into extraction samples: k prefix tokens, the true next m tokens, a prompt.

    samples = make_samples(lm, [{"id": "preamble", "text": "We the People ..."}], k=32, m=64)
    samples = read_jsonl("data.jsonl")  ->  make_samples(lm, records, ...)

A record is `{"id", "text"}` (split at token k), `{"id", "prefix", "suffix"}` (the prefix is
used whole, the suffix cut to m tokens) or, already tokenized, `{"id", "prefix_ids",
"suffix_ids"}` (lists of token ids, used like prefix/suffix). Mode `raw` feeds the prefix
as-is (after the tokenizer's own leading special tokens, e.g. Gemma's <bos>); mode `chat`
sends the prefix text as one user message through the model's chat template, as the
original study did; mode `chat_verbatim` sends the same message after an explicit
instruction to continue the text verbatim (`VERBATIM_INSTRUCTION`), so a chat model that
could recite is asked to. Large inputs are read lazily by `memkit.core.sources`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from ..errors import MemkitError

MODES = ("raw", "chat", "chat_verbatim")
#: What mode `chat_verbatim` puts before the prefix text in the user turn.
VERBATIM_INSTRUCTION = ("Continue the following text verbatim, word for word, exactly as it appears in the "
                        "original. Reply with the continuation only.\n\n")


@dataclass(frozen=True)
class Sample:
    """One extraction problem. `prompt_ids` is what the model sees; metrics use the rest."""

    id: str
    prefix_ids: tuple[int, ...]
    suffix_ids: tuple[int, ...]
    prompt_ids: tuple[int, ...]
    mode: str = "raw"
    meta: dict = field(default_factory=dict, compare=False, hash=False)


def read_jsonl(path: str | Path) -> list[dict]:
    """Read extraction records; any bad line is an error naming file and line number.

    Accepted: UTF-8 (a leading byte-order mark is skipped), one JSON object per line, blank
    lines ignored. Ids are strings or integers (integers become their decimal string) and
    must be unique; text fields must be valid Unicode (no lone surrogates such as "\\ud800").
    """
    records, seen = [], set()
    for where, record in iter_jsonl(path):
        if record["id"] in seen:
            raise MemkitError(f"{where}: duplicate id {record['id']!r}")
        seen.add(record["id"])
        records.append(record)
    if not records:
        raise MemkitError(f"{path}: no records")
    return records


def iter_jsonl(path: str | Path) -> Iterator[tuple[str, dict]]:
    """(`file:line`, record) for every checked record of a JSONL file, read lazily.

    Every record is parsed and checked as by `read_jsonl` (ids become strings); duplicate ids
    are not looked for here.
    """
    for _, where, record in iter_jsonl_from(path):
        yield where, record


def iter_jsonl_from(path: str | Path, offset: int = 0, lineno: int = 1) -> Iterator[tuple[int, str, dict]]:
    """(byte offset, `file:line`, record) from the line starting at byte `offset` (line `lineno`) on."""
    path = Path(path)
    if not path.is_file():
        raise MemkitError(f"input file not found: {path}")
    with open(path, "rb") as fh:
        fh.seek(offset)
        for lineno, raw in enumerate(fh, start=lineno):
            where = f"{path}:{lineno}"
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise MemkitError(f"{where}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
            if line.strip():
                record = _parse_line(line, where)
                _check_record(record, where)
                record["id"] = str(record["id"])  # integer ids keep their JSON spelling
                yield offset, where, record
            offset += len(raw)


def _parse_line(line: str, where: str) -> dict:
    """One JSONL line as a dict with a string id, or a MemkitError naming `where`."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        reason = exc.msg.removesuffix(" at")  # json says "Invalid control character at" + a position
        raise MemkitError(f"{where}: malformed JSON ({reason} at column {exc.colno})") from None
    except RecursionError:
        raise MemkitError(f"{where}: JSON nested too deeply") from None
    if not isinstance(record, dict):
        raise MemkitError(f"{where}: expected a JSON object, got {type(record).__name__}")
    try:
        json.dumps(record, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start : exc.end].encode("unicode_escape", "backslashreplace").decode("ascii")
        raise MemkitError(f"{where}: not valid Unicode (lone surrogate {bad}); fix the JSON escapes") from None
    except RecursionError:
        raise MemkitError(f"{where}: JSON nested too deeply") from None
    return record


ID_FIELDS = ("prefix_ids", "suffix_ids")


def record_shape(record: dict) -> str | None:
    """`text`, `pair` (prefix/suffix texts), `ids` (prefix_ids/suffix_ids) or None."""
    if "text" in record:
        return "text"
    if "prefix" in record or "suffix" in record:
        return "pair"
    if "prefix_ids" in record or "suffix_ids" in record:
        return "ids"
    return None


def _check_record(record: dict, where: str, m: int | None = None) -> None:
    """Check the fields extraction needs (an id that is a string or an integer, the text or id fields).

    Token-id records are checked whole here (lists of non-negative integers, a non-empty
    prefix and, when `m` is given, at least m suffix tokens); text lengths need a tokenizer.
    """
    if "id" not in record:
        raise MemkitError(f"{where}: record has no 'id' field")
    sid = record["id"]
    if isinstance(sid, bool) or not isinstance(sid, (str, int)):
        raise MemkitError(f"{where}: field 'id' must be a string or an integer, got {json.dumps(sid)[:40]}")
    shape = record_shape(record)
    if shape is None:
        raise MemkitError(f"{where}: record {record['id']!r} needs a 'text' field or 'prefix' and 'suffix' "
                          f"(or token ids in 'prefix_ids' and 'suffix_ids')")
    if shape == "ids":
        _check_ids(record, where, m)
        return
    for name in ("text",) if shape == "text" else ("prefix", "suffix"):
        if not isinstance(record.get(name), str):
            raise MemkitError(f"{where}: record {record['id']!r} field {name!r} must be a string")


def _check_ids(record: dict, where: str, m: int | None) -> None:
    for name in ID_FIELDS:
        ids = record.get(name)
        if not isinstance(ids, (list, tuple)) or not all(type(i) is int and i >= 0 for i in ids):
            raise MemkitError(f"{where}: record {record['id']!r} field {name!r} must be a list of token ids "
                              f"(non-negative integers)")
    if not record["prefix_ids"]:
        raise MemkitError(f"{where}: record {record['id']!r} field 'prefix_ids' is empty")
    if m is not None and len(record["suffix_ids"]) < m:
        raise MemkitError(f"{where}: record {record['id']!r} field 'suffix_ids' has {len(record['suffix_ids'])} "
                          f"tokens, fewer than m = {m}")


def record_meta(record: dict) -> dict:
    """The fields of a record that are not its id or its text/token fields (kept as metadata)."""
    used = {"text": ("text",), "pair": ("prefix", "suffix"), "ids": ID_FIELDS}.get(record_shape(record), ())
    return {key: value for key, value in record.items() if key != "id" and key not in used}


def leading_special_ids(tokenizer) -> list[int]:
    """The special tokens the tokenizer puts before any text (e.g. Gemma's <bos>)."""
    return list(tokenizer("", add_special_tokens=True)["input_ids"])


def chat_prompt_ids(tokenizer, user_text: str, mode: str = "chat") -> list[int]:
    """Token ids of `user_text` sent as one user turn through the chat template."""
    if getattr(tokenizer, "chat_template", None) is None:
        raise MemkitError(f"mode {mode!r} needs a model with a chat template; this is a base model (use --mode raw)")
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": user_text}], add_generation_prompt=True, tokenize=True
    )
    if isinstance(ids, dict) or hasattr(ids, "keys"):
        ids = ids["input_ids"]
    return [int(i) for i in ids]


def prompt_ids(tokenizer, prefix_ids: Sequence[int], mode: str = "raw",
               leading: Sequence[int] | None = None) -> list[int]:
    """What the model sees for a prefix in `mode` (the one place that knows the modes).

    `leading`: the tokenizer's leading special ids for raw mode, when the caller has them.
    """
    if mode == "raw":
        return list(leading_special_ids(tokenizer) if leading is None else leading) + list(prefix_ids)
    if mode == "chat":
        return chat_prompt_ids(tokenizer, tokenizer.decode(list(prefix_ids)), mode)
    if mode == "chat_verbatim":
        return chat_prompt_ids(tokenizer, VERBATIM_INSTRUCTION + tokenizer.decode(list(prefix_ids)), mode)
    raise MemkitError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")


def _encode(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def make_sample(tokenizer, record: dict, k: int = 32, m: int = 64, mode: str = "raw",
                leading: Sequence[int] | None = None) -> Sample:
    """Build one Sample from a record (see module docstring).

    `leading`: the tokenizer's leading special ids, when the caller has them already (raw
    mode asks the tokenizer otherwise, once per sample).
    """
    sid = str(record["id"])
    shape = record_shape(record)
    if shape == "text":
        ids = _encode(tokenizer, record["text"])
        if len(ids) < k + m:
            raise MemkitError(f"sample {sid!r}: text has {len(ids)} tokens, fewer than k+m = {k}+{m}")
        prefix, suffix = ids[:k], ids[k : k + m]
    else:
        if shape == "ids":
            prefix, suffix = [int(i) for i in record["prefix_ids"]], [int(i) for i in record["suffix_ids"]]
        else:
            prefix, suffix = _encode(tokenizer, record["prefix"]), _encode(tokenizer, record["suffix"])
        if not prefix:
            raise MemkitError(f"sample {sid!r}: empty prefix")
        if len(suffix) < m:
            raise MemkitError(f"sample {sid!r}: suffix has {len(suffix)} tokens, fewer than m = {m}")
        suffix = suffix[:m]
    prompt = prompt_ids(tokenizer, prefix, mode, leading)
    return Sample(sid, tuple(prefix), tuple(suffix), tuple(prompt), mode, record_meta(record))


def make_samples(lm_or_tokenizer, records: Iterable[dict] | Sequence[str], k: int = 32, m: int = 64,
                 mode: str = "raw") -> list[Sample]:
    """Samples for a list of records (or plain strings, numbered in order)."""
    if k <= 0 or m <= 0:
        raise MemkitError(f"prefix and suffix lengths must be positive (got k={k}, m={m})")
    if mode not in MODES:
        raise MemkitError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    tokenizer = getattr(lm_or_tokenizer, "tokenizer", lm_or_tokenizer)
    leading = leading_special_ids(tokenizer) if mode == "raw" else None
    samples = []
    for i, record in enumerate(records):
        if isinstance(record, str):
            record = {"id": str(i), "text": record}
        _check_record(record, f"record {i}")
        samples.append(make_sample(tokenizer, record, k, m, mode, leading))
    return samples
