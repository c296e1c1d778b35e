"""The `memkit` command line: models, extract, and one clear line on stderr for every bad input."""

from __future__ import annotations

import importlib
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from transformers import GPTNeoXForCausalLM

from memkit.cli import main

from conftest import _real_cache, smollm2_gguf_path, records, write_jsonl

extract_module = importlib.import_module("memkit.core.extract")

K, M = 6, 8


def run(capsys, argv):
    """Run the CLI in-process; returns (return code, stdout, stderr)."""
    rc = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


@pytest.fixture
def dirs(tmp_path):
    """Separate input and output folders, so stray files in the output folder are easy to see."""
    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    out.mkdir()
    return inp, out


def extract_args(model, input_path, out_path, *extra):
    return ["extract", "--model", model, "--input", input_path, "--out", out_path,
            "-k", K, "-m", M, "--batch-size", 2, "--no-progress", *extra]


def assert_one_line_error(rc, out, err, *fragments):
    assert rc == 2
    lines = err.strip("\n").splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert lines[0].startswith("memkit: error: ")
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    assert out == ""


# -- help and models ----------------------------------------------------------------------------
def test_console_script_help():
    script = Path(sys.executable).parent / "memkit"
    assert script.exists(), "the memkit console script is installed next to the interpreter"
    proc = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert "usage: memkit" in proc.stdout and "extract" in proc.stdout and "models" in proc.stdout
    assert proc.stderr == ""


def test_extract_help_exits_zero(capsys):
    with pytest.raises(SystemExit) as info:
        main(["extract", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--model", "--input", "--out", "--prefix-tokens", "--suffix-tokens", "--mode", "--engine",
                   "--no-progress", "--online"):
        assert option in out


def test_no_command_is_a_usage_error(capsys):
    rc, out, err = run(capsys, [])
    assert_one_line_error(rc, out, err, "COMMAND", "--help")


def test_models_lists_embedded_models_on_an_empty_cache(capsys, empty_cache):
    rc, out, err = run(capsys, ["models"])
    assert rc == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["name", "params"]
    names = [line.split()[0] for line in lines[1:]]
    assert names == ["gemma-3-270m", "smollm2-135m-instruct"]
    assert all("(converted on first use)" in line for line in lines[1:])


@pytest.mark.slow
def test_models_shows_converted_smollm2(capsys, smollm2):
    with _real_cache():
        rc, out, err = run(capsys, ["models"])
    assert rc == 0
    (line,) = [line for line in out.splitlines() if line.startswith("smollm2-135m-instruct")]
    assert "134.5M" in line and "llama" in line and "instruct" in line and " yes " in line
    assert any(line.startswith("gemma-3-270m") for line in out.splitlines())


# -- happy path ---------------------------------------------------------------------------------
def test_extract_happy_path_and_rerun(capsys, dirs, tiny_model_dir, monkeypatch):
    inp, outdir = dirs
    data = write_jsonl(inp / "data.jsonl", records(5))
    out = outdir / "result.parquet"
    rc, stdout, err = run(capsys, extract_args(tiny_model_dir, data, out))
    assert rc == 0, err
    assert stdout.strip().startswith(f"{out}: 5 samples, exact_match ")
    frame = pd.read_parquet(out)
    assert len(frame) == 5 and list(frame["id"]) == [f"s{i}" for i in range(5)]
    assert set(frame["k"]) == {K} and set(frame["m"]) == {M}
    assert all(len(ids) == M for ids in frame["generated_ids"])
    assert sorted(p.name for p in outdir.iterdir()) == ["result.parquet"]
    written = out.read_bytes()

    # rerun with the same arguments: nothing decoded, same file
    calls = []
    real = extract_module.extract_batch
    monkeypatch.setattr(extract_module, "extract_batch", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    rc, stdout, _ = run(capsys, extract_args(tiny_model_dir, data, out))
    assert rc == 0 and calls == []
    assert out.read_bytes() == written
    assert "5 samples" in stdout

    # the plain engine writes the same tokens
    plain_out = outdir / "plain.parquet"
    rc, _, _ = run(capsys, extract_args(tiny_model_dir, data, plain_out, "--engine", "plain"))
    assert rc == 0 and len(calls) == 3  # 5 samples in batches of 2
    plain = pd.read_parquet(plain_out)
    assert [list(x) for x in plain["generated_ids"]] == [list(x) for x in frame["generated_ids"]]

    # a different k is a different run: recomputed
    calls.clear()
    argv = ["extract", "--model", tiny_model_dir, "--input", data, "--out", out, "-k", K + 1, "-m", M, "--no-progress"]
    rc, _, _ = run(capsys, argv)
    assert rc == 0 and len(calls) == 1  # 5 samples, default batch size 16 -> one batch
    assert set(pd.read_parquet(out)["k"]) == {K + 1}


def test_extract_interrupted_then_resumed(capsys, dirs, tiny_model_dir, monkeypatch):
    inp, outdir = dirs
    data = write_jsonl(inp / "data.jsonl", records(5))  # 3 batches of <= 2
    out = outdir / "result.parquet"
    real = extract_module.extract_batch
    calls = []

    def interrupt_after_first(*args, **kwargs):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(extract_module, "extract_batch", interrupt_after_first)
    rc, _, err = run(capsys, extract_args(tiny_model_dir, data, out))
    assert rc == 130
    assert "interrupted" in err and "resume" in err
    assert not out.exists()
    assert sorted(p.name for p in (outdir / "result.parquet.parts").iterdir()) == ["config.json", "part-000000.parquet"]

    calls.clear()
    monkeypatch.setattr(extract_module, "extract_batch", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    rc, _, err = run(capsys, extract_args(tiny_model_dir, data, out))
    assert rc == 0
    assert len(calls) == 2  # the two remaining batches only
    assert sorted(p.name for p in outdir.iterdir()) == ["result.parquet"]

    fresh = outdir / "fresh.parquet"
    rc, _, _ = run(capsys, extract_args(tiny_model_dir, data, fresh))
    assert rc == 0
    assert out.read_bytes() == fresh.read_bytes()


# -- bad inputs: exit code 2, one line on stderr, no output ---------------------------------------
def assert_no_output(outdir):
    assert list(outdir.iterdir()) == [], f"unexpected files: {list(outdir.iterdir())}"


def test_missing_input_file(capsys, dirs, tiny_model_dir):
    inp, outdir = dirs
    rc, out, err = run(capsys, extract_args(tiny_model_dir, inp / "missing.jsonl", outdir / "r.parquet"))
    assert_one_line_error(rc, out, err, "input file not found", "missing.jsonl")
    assert_no_output(outdir)


def test_malformed_jsonl_names_the_line(capsys, dirs, tiny_model_dir):
    inp, outdir = dirs
    data = write_jsonl(inp / "data.jsonl", records(2) + ['{"id": "broken", "text": '])
    rc, out, err = run(capsys, extract_args(tiny_model_dir, data, outdir / "r.parquet"))
    assert_one_line_error(rc, out, err, "data.jsonl:3:", "malformed JSON")
    assert_no_output(outdir)


def test_record_without_text_or_prefix(capsys, dirs, tiny_model_dir):
    inp, outdir = dirs
    data = write_jsonl(inp / "data.jsonl", records(1) + [{"id": "nada", "body": "x"}])
    rc, out, err = run(capsys, extract_args(tiny_model_dir, data, outdir / "r.parquet"))
    assert_one_line_error(rc, out, err, "data.jsonl:2:", "'nada'", "'text'", "'prefix'")
    assert_no_output(outdir)


def test_text_shorter_than_k_plus_m(capsys, dirs, tiny_model_dir):
    inp, outdir = dirs
    data = write_jsonl(inp / "data.jsonl", records(2) + [{"id": "too-short", "text": "A cat."}])
    rc, out, err = run(capsys, extract_args(tiny_model_dir, data, outdir / "r.parquet"))
    assert_one_line_error(rc, out, err, "'too-short'", f"k+m = {K}+{M}")
    assert_no_output(outdir)


@pytest.mark.parametrize("flag, value", [("-k", "0"), ("-m", "0"), ("--prefix-tokens", "-3"),
                                         ("--suffix-tokens", "-1"), ("-m", "many"), ("--batch-size", "0")])
def test_non_positive_lengths_are_usage_errors(capsys, dirs, tiny_model_dir, flag, value):
    inp, outdir = dirs
    data = write_jsonl(inp / "data.jsonl", records(1))
    argv = ["extract", "--model", str(tiny_model_dir), "--input", str(data), "--out", str(outdir / "r.parquet"),
            flag, value]
    rc, out, err = run(capsys, argv)
    assert_one_line_error(rc, out, err)
    assert "positive integer" in err or "expected an integer" in err
    assert "memkit extract --help" in err
    assert_no_output(outdir)


def test_unknown_model_lists_known_names(capsys, dirs, empty_cache):
    inp, outdir = dirs
    data = write_jsonl(inp / "data.jsonl", records(1))
    rc, out, err = run(capsys, extract_args("gpt-17-ultra", data, outdir / "r.parquet"))
    assert_one_line_error(rc, out, err, "unknown model 'gpt-17-ultra'", "gemma-3-270m", "smollm2-135m-instruct")
    assert_no_output(outdir)


def test_missing_model_file(capsys, dirs, empty_cache):
    inp, outdir = dirs
    data = write_jsonl(inp / "data.jsonl", records(1))
    rc, out, err = run(capsys, extract_args(inp / "absent.gguf", data, outdir / "r.parquet"))
    assert_one_line_error(rc, out, err, "model file not found", "absent.gguf")
    assert_no_output(outdir)


def cached_models(cache: Path) -> list[Path]:
    converted = cache / "converted"
    return list(converted.iterdir()) if converted.exists() else []


def test_corrupt_gguf(capsys, dirs, empty_cache):
    inp, outdir = dirs
    data = write_jsonl(inp / "data.jsonl", records(1))
    bad = inp / "garbage.gguf"
    bad.write_bytes(random.Random(0).randbytes(4096))
    rc, out, err = run(capsys, extract_args(bad, data, outdir / "r.parquet"))
    assert_one_line_error(rc, out, err, "garbage.gguf", "not a GGUF file")
    assert_no_output(outdir)
    assert cached_models(empty_cache) == []


def test_truncated_gguf(capsys, dirs, empty_cache):
    inp, outdir = dirs
    data = write_jsonl(inp / "data.jsonl", records(1))
    real = smollm2_gguf_path()
    truncated = inp / "smollm2-truncated.gguf"
    with open(real, "rb") as fh:
        truncated.write_bytes(fh.read(2 * 1024 * 1024))
    assert truncated.read_bytes()[:4] == b"GGUF"  # valid header, missing tensor data
    rc, out, err = run(capsys, extract_args(truncated, data, outdir / "r.parquet"))
    assert_one_line_error(rc, out, err, "smollm2-truncated.gguf", "truncated")
    assert_no_output(outdir)
    assert cached_models(empty_cache) == []
    leftovers = [p for p in empty_cache.rglob("*") if ".tmp" in p.name]
    assert leftovers == []


def test_hub_id_without_online(capsys, dirs, empty_cache):
    inp, outdir = dirs
    data = write_jsonl(inp / "data.jsonl", records(1))
    rc, out, err = run(capsys, extract_args("EleutherAI/pythia-70m", data, outdir / "r.parquet"))
    assert_one_line_error(rc, out, err, "'EleutherAI/pythia-70m'", "hub id", "--online")
    assert_no_output(outdir)


def test_chat_mode_on_base_model(capsys, dirs, tiny_model_dir):
    inp, outdir = dirs
    data = write_jsonl(inp / "data.jsonl", records(2))
    rc, out, err = run(capsys, extract_args(tiny_model_dir, data, outdir / "r.parquet", "--mode", "chat"))
    assert_one_line_error(rc, out, err, "chat template", "--mode raw")
    assert_no_output(outdir)


def test_output_directory_does_not_exist(capsys, dirs, tiny_model_dir):
    inp, outdir = dirs
    data = write_jsonl(inp / "data.jsonl", records(2))
    rc, out, err = run(capsys, extract_args(tiny_model_dir, data, outdir / "nowhere" / "r.parquet"))
    assert_one_line_error(rc, out, err, "output directory does not exist", "nowhere")
    assert_no_output(outdir)


def test_model_folder_without_config(capsys, dirs):
    inp, outdir = dirs
    data = write_jsonl(inp / "data.jsonl", records(1))
    empty_model = inp / "not-a-model"
    empty_model.mkdir()
    rc, out, err = run(capsys, extract_args(empty_model, data, outdir / "r.parquet"))
    assert_one_line_error(rc, out, err, "not-a-model", "config.json")
    assert_no_output(outdir)


@pytest.mark.parametrize("case", ["chat-on-base", "truncated-gguf"])
def test_error_in_a_real_process_is_one_line(dirs, tiny_model_dir, empty_cache, case):
    """Out of process, so warnings, log records or progress bars that reach the real stderr show."""
    inp, outdir = dirs
    data = write_jsonl(inp / "data.jsonl", records(2))
    if case == "chat-on-base":
        argv = extract_args(tiny_model_dir, data, outdir / "r.parquet", "--mode", "chat")
        expected = "chat template"
    else:
        truncated = inp / "smollm2-truncated.gguf"
        with open(smollm2_gguf_path(), "rb") as fh:
            truncated.write_bytes(fh.read(2 * 1024 * 1024))
        argv = extract_args(truncated, data, outdir / "r.parquet")
        expected = "truncated"
    script = Path(sys.executable).parent / "memkit"
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}  # MEMKIT_CACHE: the empty test cache
    proc = subprocess.run([str(script), *map(str, argv)], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip("\n").splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("memkit: error: ") and expected in lines[0]
    assert_no_output(outdir)
    assert cached_models(empty_cache) == []


def test_output_is_a_directory(capsys, dirs, tiny_model_dir):
    inp, outdir = dirs
    data = write_jsonl(inp / "data.jsonl", records(2))
    target = outdir / "results"
    target.mkdir()
    rc, out, err = run(capsys, extract_args(tiny_model_dir, data, target))
    assert_one_line_error(rc, out, err, "is a directory", "results")
    assert list(target.iterdir()) == [] and [p.name for p in outdir.iterdir()] == ["results"]


def test_input_not_utf8(capsys, dirs, tiny_model_dir):
    inp, outdir = dirs
    data = inp / "data.jsonl"
    data.write_bytes(b'{"id": "a", "text": "caf\xe9 au lait"}\n')
    rc, out, err = run(capsys, extract_args(tiny_model_dir, data, outdir / "r.parquet"))
    assert_one_line_error(rc, out, err, "data.jsonl:1:", "UTF-8")
    assert_no_output(outdir)


def test_rerun_with_another_model_of_the_same_folder_name_recomputes(capsys, tmp_path, tiny_model_dir):
    """Two different model folders both called `model`: a rerun into the same --out must not
    return the first model's results."""
    first, second = tmp_path / "a" / "model", tmp_path / "b" / "model"
    shutil.copytree(tiny_model_dir, first)
    shutil.copytree(tiny_model_dir, second)
    model = GPTNeoXForCausalLM.from_pretrained(tiny_model_dir)
    torch.manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.5)
    model.save_pretrained(second)

    data = write_jsonl(tmp_path / "data.jsonl", records(3))
    out, fresh = tmp_path / "r.parquet", tmp_path / "fresh.parquet"
    assert run(capsys, extract_args(first, data, out))[0] == 0
    before = [list(x) for x in pd.read_parquet(out)["generated_ids"]]
    assert run(capsys, extract_args(second, data, out))[0] == 0
    assert run(capsys, extract_args(second, data, fresh))[0] == 0
    after = [list(x) for x in pd.read_parquet(out)["generated_ids"]]
    assert after == [list(x) for x in pd.read_parquet(fresh)["generated_ids"]]
    assert after != before  # the perturbed model really continues differently
