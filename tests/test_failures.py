"""How `memkit` fails: one line, exit code 2, nothing lost, nothing half-written.

What this file guarantees about the command line (`memkit.cli.main(argv) -> int`, and the
real `python -m memkit.cli` process):

- every bad input, usage error, unusable model and I/O failure ends with exactly one line on
  stderr starting `memkit: error: `, exit code 2, no traceback, and nothing on stdout;
- no input file and no pre-existing file is changed, and no file or folder is left behind
  (checked by a byte-for-byte `snapshot` of the test folder, hidden files included, taken
  before and compared after); the only exception is `<out>.parts/`, the resume state of a
  run that stopped after finishing some batches;
- `--out` may never resolve to an input (same path, symlink, relative spelling, a text file
  argument): that would destroy data;
- a run that failed on a full disk resumes, and the rerun gives the same table as a clean run;
- Ctrl-C is one line `memkit: interrupted...` and exit code 130; a closed stdout pipe is not
  an error; a full stdout is an error for `memkit models` (stdout is its product) but not for
  `memkit extract` (the parquet file is);
- model folders whose architecture exists only as custom code, truncated weights and unknown
  devices are refused (a known architecture with an auto_map loads natively: its code never runs);
- library functions raise `memkit.MemkitError` (not IndexError) for out-of-range layers/heads.

How each class of failure is provoked:

- bad input (JSONL, ids, text files, arguments, model folders): real files written into the
  test folder, the CLI run in-process through `main(argv)` with capsys (table `CASES`);
- a full disk: fault injection, `pyarrow.parquet.write_table` (every memkit parquet write,
  pandas' `to_parquet` included, goes through it) monkeypatched to raise ENOSPC, either always
  or only for the final write outside `<out>.parts/`; and for real, on a small tmpfs mounted
  for the test (skipped when `mount` is not allowed), either too small for the shards or
  filled up by a filler file just before the final merge;
- a read-only output folder: a tmpfs mounted `-o ro` (chmod does not stop root);
- closed/full stdout, SIGINT, warnings reaching the real stderr, hub access without network:
  a real subprocess, `python -m memkit.cli ...` (so `PYTHONPATH` picks the tree under test),
  always with a timeout.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from memkit.cli import main

from conftest import BASE_TEXT, smollm2_gguf_path, records, write_jsonl

K, M = 6, 8
SUBPROCESS_TIMEOUT = 300


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------
def memkit_module(name: str):
    """`memkit.core.<name>` (current layout), else `memkit.<name>` (older flat layout)."""
    for candidate in (f"memkit.core.{name}", f"memkit.{name}"):
        try:
            return importlib.import_module(candidate)
        except ModuleNotFoundError as exc:
            if exc.name is None or not candidate.startswith(exc.name):
                raise
    raise ModuleNotFoundError(f"no memkit module {name!r}")


def run(capsys, argv):
    """Run the CLI in-process: (exit code, stdout, stderr). A SystemExit counts as a return."""
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:
        rc = 0 if exc.code is None else exc.code
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def check_failure(rc, out, err, *expected, mask=()):
    """Exit code 2, exactly one stderr line `memkit: error: ...`, no traceback, empty stdout.

    `expected` items must all match that line: a str (substring), a compiled regex (search)
    or a callable (predicate on the line). The strings in `mask` (e.g. the test folder, whose
    pytest name may contain words like "input") are replaced by "<tmp>" before matching.
    """
    assert "Traceback" not in err and "Traceback" not in out, err
    assert rc == 2, f"exit code {rc}, stderr:\n{err}"
    lines = err.strip("\n").splitlines()
    assert len(lines) == 1, f"expected exactly one line on stderr, got {len(lines)}:\n{err}"
    line = lines[0]
    assert line.startswith("memkit: error: "), line
    for text in mask:
        line = line.replace(str(text), "<tmp>")
    for item in expected:
        if isinstance(item, re.Pattern):
            assert item.search(line), f"{item.pattern!r} not found in {line!r}"
        elif callable(item):
            assert item(line), f"{getattr(item, '__name__', item)} fails on {line!r}"
        else:
            assert item in line, f"{item!r} not in {line!r}"
    assert out == "", f"unexpected stdout: {out!r}"
    return line


def snapshot(root) -> dict[str, bytes]:
    """relative path -> content for everything under `root` (hidden files, folders, symlinks)."""
    root = Path(root)
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            rel = str(path.relative_to(root))
            if path.is_symlink():
                state[rel] = b"<symlink> " + os.readlink(path).encode()
            elif path.is_dir():
                state[rel + "/"] = b"<dir>"
            else:
                state[rel] = path.read_bytes()
    return state


def assert_unchanged(before: dict, after: dict) -> None:
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    assert not (added or removed or changed), f"files added {added}, removed {removed}, changed {changed}"


def assert_no_partial_output(outdir: Path, out: Path) -> None:
    """Nothing in `outdir` but the resume state `<out>.parts/` (and no temp files in it)."""
    parts = out.name + ".parts"
    for rel in snapshot(outdir):
        path = Path(rel)
        assert path.parts[0] == parts, f"left behind in {outdir}: {rel}"
        assert ".tmp" not in path.name, f"temporary file left behind: {rel}"


def assert_same_table(a, b) -> None:
    a, b = pd.read_parquet(a), pd.read_parquet(b)
    assert list(a.columns) == list(b.columns)
    assert len(a) == len(b)
    assert a.equals(b), "tables differ"


LONG = records(2)[1]["text"]  # long enough for k + m tokens
LONG_JSON = json.dumps(LONG)  # a quoted JSON string


# argv of the four commands that read --input and write a parquet --out
COMMAND_EXTRA = {
    "extract": [],
    "perturb": ["--action", "delete", "--alpha", "0.2"],
    "lens": [],
    "ablate": [],
}
WRITERS = list(COMMAND_EXTRA)


def io_args(command, model, inp, out, *extra):
    return [command, "--model", model, "--input", inp, "--out", out, "-k", K, "-m", M, "--batch-size", 2,
            "--no-progress", *COMMAND_EXTRA[command], *extra]


def edit_args(model, fit, out, *extra):
    return ["edit", "--model", model, "--keep-mass", "0.5", "--fit-text", fit, "--out", out, "--seq-len", 16,
            "--max-windows", 2, "--no-progress", *extra]


def make_dirs(tmp_path, n=5):
    inp, outdir = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    outdir.mkdir()
    return inp, outdir, write_jsonl(inp / "data.jsonl", records(n))


def inject_enospc(monkeypatch, when: Callable[[str], bool] = lambda target: True, before=None):
    """Make `pyarrow.parquet.write_table` fail with ENOSPC for the targets `when` selects.

    `before(target)`, if given, runs instead of raising and the real write follows (to let the
    real file system fail). Returns the list of targets seen.
    """
    import pyarrow.parquet as pq

    real = pq.write_table
    seen = []

    def faulty(table, where, *args, **kwargs):
        target = _target_path(where)
        seen.append(target)
        if when(target):
            if before is None:
                raise OSError(errno.ENOSPC, "No space left on device")
            before(target)
        return real(table, where, *args, **kwargs)

    monkeypatch.setattr(pq, "write_table", faulty)
    return seen


def _target_path(where) -> str:
    """The file a write_table call goes to (a path, or an open file such as pandas' pa.OSFile)."""
    if isinstance(where, (str, os.PathLike)):
        return os.fspath(where)
    for attr in ("name", "path"):
        value = getattr(where, attr, None)
        if isinstance(value, str):
            return value
    try:
        return os.readlink(f"/proc/self/fd/{where.fileno()}")
    except (AttributeError, OSError, ValueError):
        return ""


def in_parts(target: str) -> bool:
    return any(part.endswith(".parts") for part in Path(target).parts[:-1])


def count_calls(monkeypatch, fail_with: type[BaseException] | None = None) -> list:
    """Wrap (or forbid) `extract_batch` of the extraction module; returns the list of calls."""
    module = memkit_module("extract")
    real = module.extract_batch
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(1)
        if fail_with is not None:
            raise fail_with("extract_batch must not run here")
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "extract_batch", wrapper)
    return calls


@contextlib.contextmanager
def tmpfs(path: Path, options: str):
    """A tmpfs mounted at `path` for the block; skips the test when mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                              check=False, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot run mount: {exc}")
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or proc.returncode})")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], check=False, capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def fill_up(path: Path) -> None:
    """Write zeros into `path` until its file system is full."""
    chunk = b"\0" * 65536
    with open(path, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc


def subprocess_env(**extra) -> dict:
    """os.environ (MEMKIT_CACHE: the session's throw-away cache; PYTHONPATH: the tree under test)."""
    return {**os.environ, "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1", **extra}


def memkit_cmd(argv) -> list[str]:
    return [sys.executable, "-m", "memkit.cli", *map(str, argv)]


def run_memkit(argv, timeout=SUBPROCESS_TIMEOUT, **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("env", subprocess_env())
    if "stdout" not in kwargs:
        kwargs["capture_output"] = True
    return subprocess.run(memkit_cmd(argv), check=False, text=True, timeout=timeout, **kwargs)


def _default_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a background shell may have left SIGINT ignored


# ---------------------------------------------------------------------------------------------
# The table: bad input in, one line out, nothing changed (cases 1, 4, 5a-c, 6, 8, 10b, 10d, 10f)
# ---------------------------------------------------------------------------------------------
@dataclass
class Case:
    """A failing command line.

    argv: strings formatted with {model} (the tiny model folder), {tmp}, {in}, {out} (folders).
    data: the rows of {in}/data.jsonl (dicts or raw lines; default: 3 good records).
    setup: functions (tmp, model_dir) -> None run before the snapshot.
    cwd: folder (relative to tmp) to run in.
    absent: paths (relative to tmp) that must not exist afterwards.
    """

    id: str
    argv: list
    expect: tuple = ()
    data: list | None = None
    setup: tuple = ()
    cwd: str | None = None
    absent: tuple = ()


def link_out_to_input(tmp, model_dir):
    (tmp / "out" / "link.parquet").symlink_to(tmp / "in" / "data.jsonl")


def _model_copy(tmp, model_dir, name, **config_changes):
    folder = tmp / name
    shutil.copytree(model_dir, folder)
    if config_changes:
        config = json.loads((folder / "config.json").read_text())
        config.update(config_changes)
        (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder


EVIL_PY = """\
from pathlib import Path
Path({marker!r}).write_text("custom code ran")
from transformers import PreTrainedModel
class EvilModel(PreTrainedModel):
    pass
"""


def evil_model(tmp, model_dir):
    folder = _model_copy(tmp, model_dir, "evil-model", auto_map={"AutoModelForCausalLM": "evil.EvilModel"})
    (folder / "evil.py").write_text(EVIL_PY.format(marker=str(tmp / "PWNED")))


def evil_model_unknown_type(tmp, model_dir):
    folder = _model_copy(tmp, model_dir, "evil-model", model_type="evil_neox",
                         auto_map={"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilModel"})
    (folder / "evil.py").write_text(EVIL_PY.format(marker=str(tmp / "PWNED")) +
                                    "from transformers import PretrainedConfig\n"
                                    "class EvilConfig(PretrainedConfig):\n    model_type = 'evil_neox'\n")


def truncated_model(tmp, model_dir):
    folder = _model_copy(tmp, model_dir, "truncated-model")
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])


def one_char_text(tmp, model_dir):
    (tmp / "in" / "one_char.txt").write_text("a", encoding="utf-8")


def not_ending_with_at(line):
    return not line.rstrip(" )").endswith(" at")


def _io(command, out="{out}/r.parquet", inp="{in}/data.jsonl", *extra):
    return io_args(command, "{model}", inp, out, *extra)


def _edit(fit="{in}/fit.txt", out="{out}/edited", *extra):
    return edit_args("{model}", fit, out, *extra)


DEEP = "[" * 200_000 + "]" * 200_000

CASES = [
    # 1. --out resolving to an input file: refused before anything is read or written
    *[Case(f"{c}-out-is-input", _io(c, out="{in}/data.jsonl"), ("input",)) for c in WRITERS],
    *[Case(f"{c}-out-is-symlink-to-input", _io(c, out="{out}/link.parquet"), ("input",),
           setup=(link_out_to_input,)) for c in WRITERS],
    *[Case(f"{c}-out-dot-relative-input", _io(c, out="./data.jsonl"), ("input",), cwd="in") for c in WRITERS],
    *[Case(f"{c}-out-dotdot-relative-input", _io(c, out="../in/data.jsonl"), ("input",), cwd="out")
      for c in WRITERS],
    Case("ablate-out-is-mean-text", _io("ablate", "{in}/mean.txt", "{in}/data.jsonl", "--mode", "mean",
                                        "--mean-text", "{in}/mean.txt"), ("input",)),
    Case("edit-out-is-fit-text", _edit(out="{in}/fit.txt"), ("input",)),
    # 4. empty lists select nothing: usage errors
    Case("lens-empty-layers", _io("lens", "{out}/r.parquet", "{in}/data.jsonl", "--layers", ",")),
    Case("ablate-empty-heads", _io("ablate", "{out}/r.parquet", "{in}/data.jsonl", "--heads", ",")),
    Case("edit-empty-layers", _edit("{in}/fit.txt", "{out}/edited", "--layers", ",")),
    # 5. model loading
    Case("model-auto-map-unknown-type", [*_io("extract")[:2], "{tmp}/evil-model", *_io("extract")[3:]],
         (re.compile("custom code|auto_map"),), setup=(evil_model_unknown_type,), absent=("PWNED",)),
    Case("model-truncated-safetensors", [*_io("extract")[:2], "{tmp}/truncated-model", *_io("extract")[3:]],
         setup=(truncated_model,)),
    Case("device-tpu", _io("extract", "{out}/r.parquet", "{in}/data.jsonl", "--device", "tpu"),
         (re.compile(r"\btpu\b"),)),  # a word: "output" contains "tpu"
    # 6. hostile text
    Case("lone-surrogate", _io("extract"), ("data.jsonl:2",),
         data=[records(1)[0], json.dumps({"id": "bad", "text": LONG + " \ud800"})]),
    Case("json-nested-200000-deep", _io("extract"), ("data.jsonl:2",),
         data=[records(1)[0], '{"id": "deep", "text": ' + LONG_JSON + ', "x": ' + DEEP + "}"]),
    Case("ablate-mean-text-one-char", _io("ablate", "{out}/r.parquet", "{in}/data.jsonl", "--mode", "mean",
                                          "--mean-text", "{in}/one_char.txt"), setup=(one_char_text,)),
    # 8. argparse errors are one line too
    Case("argparse-no-command", []),
    Case("argparse-unknown-command", ["bogus"], ("bogus",)),
    Case("argparse-extract-missing-args", ["extract"]),
    Case("argparse-k-not-int", ["extract", "--model", "{model}", "--input", "{in}/data.jsonl", "--out",
                                "{out}/r.parquet", "-k", "abc", "-m", M, "--no-progress"], ("abc",)),
    Case("argparse-alpha-not-number", ["perturb", "--model", "{model}", "--input", "{in}/data.jsonl", "--out",
                                       "{out}/r.parquet", "-k", K, "-m", M, "--action", "delete", "--alpha", "abc"],
         ("abc",)),
    Case("argparse-keep-mass-not-number", ["edit", "--model", "{model}", "--keep-mass", "abc", "--fit-text",
                                           "{in}/fit.txt", "--out", "{out}/edited"], ("abc",)),
    Case("argparse-layers-not-int", _io("lens", "{out}/r.parquet", "{in}/data.jsonl", "--layers", "x")),
    # 10b. ids must be strings or integers
    *[Case(f"id-{name}", _io("extract"), ("data.jsonl:2", re.compile(r"\bid\b")),
           data=[records(1)[0], '{"id": ' + value + ', "text": ' + LONG_JSON + "}"])
      for name, value in [("true", "true"), ("null", "null"), ("object", '{"a": 1}'), ("float", "1.5")]],
    # 10d. embed_direction needs a vector: not offered by the CLI
    Case("perturb-embed-direction", ["perturb", "--model", "{model}", "--input", "{in}/data.jsonl", "--out",
                                     "{out}/r.parquet", "-k", K, "-m", M, "--action", "embed_direction",
                                     "--alpha", "0.5", "--layer", "0", "--no-progress"], ("embed_direction",)),
    # 10f. a raw control character in a JSON string: the message has the column, no dangling "at"
    Case("json-raw-control-character", _io("extract"), ("data.jsonl:2", re.compile(r"column \d+"), not_ending_with_at),
         data=[records(1)[0], '{"id": "ctl", "text": ' + LONG_JSON[:-1] + '\x07"}']),
]


def test_case_ids_are_unique():
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_one_line_and_changes_nothing(case, capsys, monkeypatch, tmp_path, tiny_model_dir):
    inp, outdir = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    outdir.mkdir()
    write_jsonl(inp / "data.jsonl", records(3) if case.data is None else case.data)
    (inp / "mean.txt").write_text(BASE_TEXT, encoding="utf-8")
    (inp / "fit.txt").write_text(BASE_TEXT, encoding="utf-8")
    for step in case.setup:
        step(tmp_path, tiny_model_dir)
    if case.cwd is not None:
        monkeypatch.chdir(tmp_path / case.cwd)
    names = {"model": tiny_model_dir, "tmp": tmp_path, "in": inp, "out": outdir}
    argv = [str(a).format(**names) for a in case.argv]
    before = snapshot(tmp_path)

    rc, out, err = run(capsys, argv)

    check_failure(rc, out, err, *case.expect, mask=(tmp_path, tiny_model_dir))
    for rel in case.absent:
        assert not (tmp_path / rel).exists(), f"{rel} was created"
    assert_unchanged(before, snapshot(tmp_path))


def test_auto_map_on_a_native_architecture_loads_natively(capsys, tmp_path, tiny_model_dir):
    """5a': a known model_type with an auto_map: transformers' own class is used, the folder's code never runs."""
    evil_model(tmp_path, tiny_model_dir)
    inp, outdir = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    outdir.mkdir()
    write_jsonl(inp / "data.jsonl", records(3))
    argv = [str(a).format(model=tmp_path / "evil-model", tmp=tmp_path, **{"in": inp, "out": outdir})
            for a in _io("extract")]
    rc, out, err = run(capsys, argv)
    assert rc == 0, err
    assert not (tmp_path / "PWNED").exists(), "the folder's custom code ran"
    assert len(pd.read_parquet(outdir / "r.parquet")) == 3


# ---------------------------------------------------------------------------------------------
# 2. Metadata fields of mixed JSON type
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("values, expected", [
    ([1, "web", [1, 2]], ["1", '"web"', "[1, 2]"]),  # mixed inside one shard (batch size 2) and across
    ([1, 2, "a", "b"], ["1", "2", '"a"', '"b"']),  # one type per shard, different across shards
], ids=["mixed-in-shard", "mixed-across-shards"])
def test_metadata_of_mixed_type_is_kept_as_json_text(values, expected, capsys, tmp_path, tiny_model_dir):
    rows = [{**record, "src": value, "lang": "en", "n": i + 1}
            for i, (record, value) in enumerate(zip(records(len(values)), values))]
    data = write_jsonl(tmp_path / "data.jsonl", rows)
    out = tmp_path / "r.parquet"
    rc, _, err = run(capsys, io_args("extract", tiny_model_dir, data, out))
    assert rc == 0, err
    assert "Traceback" not in err
    frame = pd.read_parquet(out)
    assert list(frame["id"]) == [r["id"] for r in rows]  # input order kept
    assert list(frame["meta_src"]) == expected
    assert list(frame["meta_lang"]) == ["en"] * len(rows)
    assert list(frame["meta_n"]) == list(range(1, len(rows) + 1))
    assert pd.api.types.is_integer_dtype(frame["meta_n"])


# ---------------------------------------------------------------------------------------------
# 3. I/O errors: disk full (injected and real), read-only folder, closed or full stdout
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", WRITERS)
def test_disk_full_on_every_write_then_rerun(command, capsys, monkeypatch, tmp_path, tiny_model_dir):
    """3a: every parquet write fails with ENOSPC; the rerun (no fault) equals a clean run."""
    inp, outdir, data = make_dirs(tmp_path)
    out = outdir / "r.parquet"
    before = snapshot(inp)
    with monkeypatch.context() as mp:
        seen = inject_enospc(mp)
        rc, stdout, err = run(capsys, io_args(command, tiny_model_dir, data, out))
    assert seen, "write_table was never called"
    check_failure(rc, stdout, err, "No space left")
    assert not out.exists()
    assert_no_partial_output(outdir, out)
    assert_unchanged(before, snapshot(inp))

    rc, _, err = run(capsys, io_args(command, tiny_model_dir, data, out))
    assert rc == 0, err
    clean_dir = tmp_path / "clean"
    clean_dir.mkdir()
    rc, _, err = run(capsys, io_args(command, tiny_model_dir, data, clean_dir / "r.parquet"))
    assert rc == 0, err
    assert_same_table(out, clean_dir / "r.parquet")
    assert sorted(os.listdir(outdir)) == ["r.parquet"]  # the resume state is gone after success
    assert_unchanged(before, snapshot(inp))


@pytest.mark.parametrize("command", ["extract", "perturb"])
def test_disk_full_during_final_write_keeps_shards_and_resumes(command, capsys, monkeypatch, tmp_path,
                                                               tiny_model_dir):
    """3b: shards under <out>.parts/ are written, the final table is not; the rerun only merges."""
    _, outdir, data = make_dirs(tmp_path)  # 5 records, batches of 2: 3 shards
    out = outdir / "r.parquet"
    with monkeypatch.context() as mp:
        seen = inject_enospc(mp, when=lambda target: not in_parts(target))
        rc, stdout, err = run(capsys, io_args(command, tiny_model_dir, data, out))
    assert any(in_parts(t) for t in seen), f"no shard written under .parts: {seen}"
    check_failure(rc, stdout, err, "No space left")
    assert not out.exists()
    assert_no_partial_output(outdir, out)
    parts = outdir / "r.parquet.parts"
    assert parts.is_dir(), "the finished shards must be kept"
    # extract: the 3 shards; perturb: at least the finished clean and perturbed runs
    assert len(list(parts.rglob("*.parquet"))) >= (3 if command == "extract" else 1)

    with monkeypatch.context() as mp:
        calls = count_calls(mp, fail_with=AssertionError)
        rc, _, err = run(capsys, io_args(command, tiny_model_dir, data, out))
    assert rc == 0, err
    assert calls == []
    clean_dir = tmp_path / "clean"
    clean_dir.mkdir()
    rc, _, err = run(capsys, io_args(command, tiny_model_dir, data, clean_dir / "r.parquet"))
    assert rc == 0, err
    assert_same_table(out, clean_dir / "r.parquet")
    assert sorted(os.listdir(outdir)) == ["r.parquet"]


@pytest.mark.parametrize("phase", ["shards", "merge"])
def test_disk_full_on_a_real_tmpfs(phase, capsys, monkeypatch, tmp_path, tiny_model_dir):
    """3c: a real ENOSPC from the kernel. `shards`: an 8 KB tmpfs (the first shard does not fit);
    `merge`: the tmpfs is filled up by a filler file when the final write starts."""
    inp = tmp_path / "in"
    inp.mkdir()
    data = write_jsonl(inp / "data.jsonl", records(5))
    before = snapshot(inp)
    mnt = tmp_path / "mnt"
    with tmpfs(mnt, "size=8k" if phase == "shards" else "size=4m"):
        outdir = mnt / "out"
        outdir.mkdir()
        out = outdir / "r.parquet"
        filler = mnt / "filler.bin"
        with monkeypatch.context() as mp:
            if phase == "merge":
                inject_enospc(mp, when=lambda t: not in_parts(t) and not filler.exists(),
                              before=lambda t: fill_up(filler))
            rc, stdout, err = run(capsys, io_args("extract", tiny_model_dir, data, out))
        check_failure(rc, stdout, err, "No space left")
        assert not out.exists()
        assert_no_partial_output(outdir, out)
        assert_unchanged(before, snapshot(inp))

        with monkeypatch.context() as mp:
            if phase == "merge":
                assert filler.exists(), "the final write never happened"
                filler.unlink()
                assert len(list((outdir / "r.parquet.parts").rglob("*.parquet"))) >= 3
                calls = count_calls(mp, fail_with=AssertionError)
            else:
                subprocess.run(["mount", "-o", "remount,size=16m", str(mnt)], check=True, timeout=30)
                calls = []
            rc, _, err = run(capsys, io_args("extract", tiny_model_dir, data, out))
        assert rc == 0, err
        assert calls == []
        clean = tmp_path / "clean.parquet"
        rc, _, err = run(capsys, io_args("extract", tiny_model_dir, data, clean))
        assert rc == 0, err
        assert_same_table(out, clean)
        assert sorted(os.listdir(outdir)) == ["r.parquet"]


@pytest.mark.parametrize("command", [*WRITERS, "edit"])
def test_read_only_output_folder_fails_before_loading_the_model(command, capsys, monkeypatch, tmp_path,
                                                                 tiny_model_dir):
    """3d: a read-only folder is reported at once, never after the model was loaded."""
    import transformers

    inp, _, data = make_dirs(tmp_path)
    (inp / "fit.txt").write_text(BASE_TEXT, encoding="utf-8")
    ro = tmp_path / "ro"
    with tmpfs(ro, "ro,size=1m"):
        real = transformers.AutoModelForCausalLM.from_pretrained
        loads = []

        def spy(*args, **kwargs):
            loads.append(args)
            return real(*args, **kwargs)

        monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", spy)
        before = snapshot(tmp_path)
        if command == "edit":
            argv = edit_args(tiny_model_dir, inp / "fit.txt", ro / "edited")
        else:
            argv = io_args(command, tiny_model_dir, data, ro / "x.parquet")
        rc, out, err = run(capsys, argv)
        check_failure(rc, out, err, re.compile(re.escape(str(ro)) + "|read-only", re.IGNORECASE))
        assert loads == [], "the model was loaded before the output folder was checked"
        assert_unchanged(before, snapshot(tmp_path))


@pytest.mark.parametrize("argv", [["models"], ["zoo", "list"]], ids=["models", "zoo-list"])
def test_closed_stdout_pipe_is_not_an_error(argv):
    """3e: `memkit models | head -0`: the reader is gone before anything is written."""
    proc = subprocess.Popen(memkit_cmd(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=subprocess_env(), text=True)
    proc.stdout.close()
    try:
        _, err = proc.communicate(timeout=SUBPROCESS_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert err == ""


@pytest.fixture
def reference_table(tmp_path, tiny_model_dir, capsys):
    """An in-process extract of 5 records: (input file, argv builder, reference parquet)."""
    inp = tmp_path / "in"
    inp.mkdir()
    data = write_jsonl(inp / "data.jsonl", records(5))
    reference = tmp_path / "reference.parquet"
    rc, _, err = run(capsys, io_args("extract", tiny_model_dir, data, reference))
    assert rc == 0, err
    return data, reference


def test_extract_with_stdout_closed_writes_the_full_table(tmp_path, tiny_model_dir, reference_table):
    """3f: started with file descriptor 1 closed (`>&-`): the parquet file is still complete."""
    data, reference = reference_table
    outdir = tmp_path / "out"
    outdir.mkdir()
    out = outdir / "r.parquet"
    argv = memkit_cmd(io_args("extract", tiny_model_dir, data, out))
    proc = subprocess.run(["bash", "-c", 'exec "$@" >&-', "bash", *argv], check=False, capture_output=True,
                          text=True, timeout=SUBPROCESS_TIMEOUT, env=subprocess_env())
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip("\n").splitlines()) <= 1, proc.stderr
    assert_same_table(out, reference)
    assert sorted(os.listdir(outdir)) == ["r.parquet"]


def test_models_to_a_full_device_is_an_error():
    """3g: `memkit models > /dev/full`: its output is lost, so exit 2."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    with open("/dev/full", "w") as full:
        proc = run_memkit(["models"], stdout=full, stderr=subprocess.PIPE)
    lines = proc.stderr.strip("\n").splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("memkit: error:"), proc.stderr
    assert "Traceback" not in proc.stderr


def test_extract_to_a_full_stdout_still_writes_the_table(tmp_path, tiny_model_dir, reference_table):
    """3g: `memkit extract ... > /dev/full`: the table is the product; only the summary is lost."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    data, reference = reference_table
    outdir = tmp_path / "out"
    outdir.mkdir()
    out = outdir / "r.parquet"
    with open("/dev/full", "w") as full:
        proc = run_memkit(io_args("extract", tiny_model_dir, data, out), stdout=full, stderr=subprocess.PIPE)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip("\n").splitlines()) <= 1, proc.stderr
    assert_same_table(out, reference)
    assert sorted(os.listdir(outdir)) == ["r.parquet"]


# ---------------------------------------------------------------------------------------------
# 5d. A hub id with --online and no network: one line, in bounded time
# ---------------------------------------------------------------------------------------------
def test_hub_id_online_without_network_is_one_line(tmp_path):
    _, outdir, data = make_dirs(tmp_path, n=2)
    env = subprocess_env(HF_HOME=str(tmp_path / "hf-home"))  # nothing cached for the hub
    start = time.monotonic()
    proc = run_memkit(io_args("extract", "EleutherAI/pythia-14m", data, outdir / "r.parquet", "--online"),
                      timeout=180, env=env)
    assert time.monotonic() - start < 180
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.strip("\n").splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("memkit: error: ")
    assert list(outdir.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# 7. Ctrl-C at any moment of start-up: one line, exit 130, no output
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("delay", [0.4, 0.8, 1.5])
def test_ctrl_c_early_is_one_line(delay, tmp_path, tiny_model_dir):
    _, outdir, data = make_dirs(tmp_path)
    out = outdir / "r.parquet"
    # a process started with SIGINT ignored (e.g. from a background job) passes that on: undo it
    reset = _default_sigint if signal.getsignal(signal.SIGINT) is signal.SIG_IGN else None
    proc = subprocess.Popen(memkit_cmd(io_args("extract", tiny_model_dir, data, out)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=subprocess_env(), preexec_fn=reset)  # noqa: PLW1509
    try:
        time.sleep(delay)
        assert proc.poll() is None, "memkit finished before the signal: the test needs a longer run"
        proc.send_signal(signal.SIGINT)
        stdout, err = proc.communicate(timeout=SUBPROCESS_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert proc.returncode == 130, err
    lines = err.strip("\n").splitlines()
    assert len(lines) == 1 and lines[0].startswith("memkit: interrupted"), err
    assert stdout == ""
    assert not out.exists()
    assert_no_partial_output(outdir, out)


# ---------------------------------------------------------------------------------------------
# 9. Code version in run keys; MemkitError at the source (library level)
# ---------------------------------------------------------------------------------------------
def test_changed_code_version_recomputes(capsys, monkeypatch, tmp_path, tiny_model_dir):
    _, outdir, data = make_dirs(tmp_path, n=3)
    out = outdir / "r.parquet"
    rc, _, err = run(capsys, io_args("extract", tiny_model_dir, data, out))
    assert rc == 0, err

    calls = count_calls(monkeypatch)
    rc, _, _ = run(capsys, io_args("extract", tiny_model_dir, data, out))
    assert rc == 0 and calls == []  # same code: the finished table is reused

    real = memkit_module("extract").code_version
    patched = [name for name, module in list(sys.modules.items())
               if name.startswith("memkit") and getattr(module, "code_version", None) is real]
    for name in patched:
        monkeypatch.setattr(sys.modules[name], "code_version", lambda: "changed")
    rc, _, err = run(capsys, io_args("extract", tiny_model_dir, data, out))
    assert rc == 0, err
    assert len(calls) > 0, "a rerun with another code version returned the old table"


def _enter(factory):
    with factory():
        pass


LIBRARY_ERRORS = {
    "logit_lens-layer-99": lambda lm, samples: importlib.import_module("memkit.mechanisms.lens").logit_lens(
        lm, samples, layers=[99], progress=False),
    "head_scan-head-99-0": lambda lm, samples: importlib.import_module("memkit.mechanisms.ablation").head_scan(
        lm, samples, heads=[(99, 0)], progress=False),
    "ablate_heads-head-0-99": lambda lm, samples: _enter(
        lambda: importlib.import_module("memkit.mechanisms.ablation").ablate_heads(lm.model, [(0, 99)])),
    "collect_kfac-layer-99": lambda lm, samples: importlib.import_module("memkit.mechanisms.curvature").collect_kfac(
        lm, [BASE_TEXT], layers=[99], seq_len=16, max_windows=2, progress=False),
    "mlp_linears-layer-99": lambda lm, samples: importlib.import_module("memkit.mechanisms.curvature").mlp_linears(
        lm.model, [99]),
    "residual_edit-layer-99": lambda lm, samples: _enter(
        lambda: memkit_module("hooks").residual_edit(lm.model, 99, lambda hidden, positions: hidden)),
}


def _hook_count(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


@pytest.mark.parametrize("name", list(LIBRARY_ERRORS))
def test_out_of_range_layers_and_heads_raise_memkit_error(name, tiny_lm):
    import memkit

    samples = memkit.make_samples(tiny_lm, records(2), k=K, m=M)
    hooks = _hook_count(tiny_lm.model)
    with pytest.raises(memkit.MemkitError, match="99"):
        LIBRARY_ERRORS[name](tiny_lm, samples)
    assert _hook_count(tiny_lm.model) == hooks, "hooks left on the model"


# ---------------------------------------------------------------------------------------------
# 10. Small ones
# ---------------------------------------------------------------------------------------------
def test_utf8_bom_is_accepted(capsys, tmp_path, tiny_model_dir):
    """10a."""
    plain = write_jsonl(tmp_path / "plain.jsonl", records(3))
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    rc, _, err = run(capsys, io_args("extract", tiny_model_dir, bom, tmp_path / "bom.parquet"))
    assert rc == 0, err
    rc, _, err = run(capsys, io_args("extract", tiny_model_dir, plain, tmp_path / "plain.parquet"))
    assert rc == 0, err
    assert_same_table(tmp_path / "bom.parquet", tmp_path / "plain.parquet")
    assert list(pd.read_parquet(tmp_path / "bom.parquet")["id"]) == ["s0", "s1", "s2"]


def test_integer_id_is_accepted_as_text(capsys, tmp_path, tiny_model_dir):
    """10b (the good case): `"id": 7` is the id "7"."""
    data = write_jsonl(tmp_path / "data.jsonl", [records(1)[0], '{"id": 7, "text": ' + LONG_JSON + "}"])
    out = tmp_path / "r.parquet"
    rc, _, err = run(capsys, io_args("extract", tiny_model_dir, data, out))
    assert rc == 0, err
    assert list(pd.read_parquet(out)["id"]) == ["s0", "7"]


def test_resume_note_goes_to_stderr(capsys, monkeypatch, tmp_path, tiny_model_dir):
    """10c: stdout carries results only."""
    _, outdir, data = make_dirs(tmp_path)  # 3 batches of <= 2
    out = outdir / "r.parquet"
    module = memkit_module("extract")
    real = module.extract_batch
    calls = []

    def interrupt_after_first(*args, **kwargs):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args, **kwargs)

    with monkeypatch.context() as mp:
        mp.setattr(module, "extract_batch", interrupt_after_first)
        rc, _, err = run(capsys, io_args("extract", tiny_model_dir, data, out))
    assert rc == 130, err
    assert not out.exists()

    argv = [a for a in io_args("extract", tiny_model_dir, data, out) if a != "--no-progress"]
    rc, stdout, err = run(capsys, argv)
    assert rc == 0, err
    assert "resuming:" not in stdout
    assert "resuming:" in err
    assert out.exists()


def test_perturb_help_does_not_offer_embed_direction(capsys):
    """10d: the CLI cannot pass a direction vector, so it does not list embed_direction."""
    rc, out, _ = run(capsys, ["perturb", "--help"])
    assert rc == 0
    flat = " ".join(out.split())
    start = flat.rindex("--action KIND")  # the option's help, not the usage line
    action_help = flat[start:flat.index("--alpha ALPHA", start)]
    assert "delete" in action_help and "force_token" in action_help
    assert "embed_direction" not in action_help


def test_perturb_leaves_only_its_output(capsys, monkeypatch, tmp_path, tiny_model_dir):
    """10e: no hidden .clean/.perturbed parquet next to the output; intermediates in <out>.parts/."""
    _, outdir, data = make_dirs(tmp_path)
    out = outdir / "r.parquet"
    module = memkit_module("extract")
    real = module.extract_batch
    listings = []

    def watch(*args, **kwargs):
        listings.append(sorted(os.listdir(outdir)))
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "extract_batch", watch)
    rc, _, err = run(capsys, io_args("perturb", tiny_model_dir, data, out))
    assert rc == 0, err
    assert listings, "extract_batch never ran"
    assert all(listing == ["r.parquet.parts"] for listing in listings), listings
    assert sorted(os.listdir(outdir)) == ["r.parquet"]


@pytest.mark.slow
def test_gguf_conversion_is_silent(tmp_path, empty_cache):
    """10g: converting a GGUF file on an empty cache shows no progress bar with --no-progress."""
    _, outdir, data = make_dirs(tmp_path, n=2)
    out = outdir / "r.parquet"
    argv = ["extract", "--model", smollm2_gguf_path(), "--input", data, "--out", out, "-k", 8, "-m", 8,
            "--no-progress"]
    proc = run_memkit(argv, timeout=900)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert len(pd.read_parquet(out)) == 2


def test_ctrl_c_turned_into_another_error_is_still_an_interruption(monkeypatch, capsys):
    """transformers turns a SIGINT inside its lazy imports into "Could not import module ...": still exit 130."""
    import argparse
    import os as _os

    import memkit.cli as cli

    def swallowing_import(args):
        try:
            _os.kill(_os.getpid(), signal.SIGINT)
            time.sleep(1)  # the handler raises here
        except KeyboardInterrupt as exc:
            raise RuntimeError("Could not import module 'GPTNeoXForCausalLM'") from exc

    class Parser:
        def parse_args(self, argv):
            return argparse.Namespace(func=swallowing_import)

    monkeypatch.setattr(cli, "build_parser", lambda: Parser())
    assert cli.main([]) == 130
    assert capsys.readouterr().err.strip().splitlines() == ["memkit: interrupted; rerun the same command to resume"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored

    def plain_bug(args):
        raise RuntimeError("a bug, not a Ctrl-C")

    monkeypatch.setattr(Parser, "parse_args", lambda self, argv: argparse.Namespace(func=plain_bug))
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main([])
