"""The zoo: resumable deterministic training, the smoke zoo (determinism, extraction), specs, CLI."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

import memkit
from memkit.cli import main
from memkit.errors import MemkitError
from memkit.organisms import train as T, zoo
from memkit.organisms.corpus import background_stream, build_corpus, encode_docs


def run(capsys, argv):
    rc = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


@pytest.fixture(scope="module")
def smoke_zoo():
    """The smoke zoo, built once into the session cache (sizes trained one after the other)."""
    return zoo.build_zoo("smoke", progress=False, workers=1)


def file_sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- training: resume after a kill == uninterrupted -----------------------------------------------
def test_resumed_training_equals_uninterrupted(tmp_path):
    corpus = build_corpus()
    tok = corpus.tokenizer
    stream = background_stream(encode_docs(tok, corpus.train_docs[:40]), 48, 32, tok.eos_token_id, seed=1)
    cfg = T.TrainConfig(d_model=16, n_layers=1, n_heads=2, batch_size=4, checkpoints=(3, 6), save_every=4)
    whole = T.train(cfg, stream, tmp_path / "whole", tok, progress=False)
    assert whole["steps"] == 12 and whole["checkpoints"] == [3, 6, 12]
    assert whole["losses"][-1] < whole["losses"][0]

    # killed after 6 steps: the last saved state is step 4 (save_every) or 6 (checkpoint); steps after it redo
    assert T.train(cfg, stream, tmp_path / "killed", tok, progress=False, stop_after=7) == {}
    pointer = json.loads((tmp_path / "killed" / "latest.json").read_text())
    assert pointer["step"] == 6
    state_files = sorted(p.name for p in (tmp_path / "killed" / pointer["state"]).iterdir())
    assert state_files == ["model.safetensors", "optimizer.safetensors", "state.json"]  # no pickle
    resumed = T.train(cfg, stream, tmp_path / "killed", tok, progress=False)
    assert resumed["weights_sha256"] == whole["weights_sha256"]
    assert resumed["losses"] == whole["losses"]
    assert not list((tmp_path / "killed").glob("state-*"))  # resume state removed once done
    for step in (3, 6, 12):
        a, b = T.checkpoint_dir(tmp_path / "whole", step), T.checkpoint_dir(tmp_path / "killed", step)
        assert file_sha256(a / "model.safetensors") == file_sha256(b / "model.safetensors")
    # a checkpoint is an ordinary model folder for memkit
    lm = memkit.load_model(str(T.checkpoint_dir(tmp_path / "whole", 6)), device="cpu")
    assert lm.meta["step"] == 6 and lm.meta["non_embedding_params"] == T.non_embedding_params(lm.model)
    assert T.weights_sha256(lm.model) == whole["weights_sha256"]["6"]


def test_lr_schedule_warms_up_then_decays():
    cfg = T.TrainConfig(d_model=16, n_layers=1, n_heads=2, lr=1e-2, warmup_frac=0.1, min_lr_frac=0.1)
    lrs = [T.lr_at(cfg, s, 100) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-3) and lrs[9] == pytest.approx(1e-2)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:])) and lrs[-1] > 1e-3 - 1e-12


# -- the smoke zoo ----------------------------------------------------------------------------------
def test_smoke_zoo_is_deterministic(smoke_zoo, tmp_path, monkeypatch):
    """A second build in another cache, with two parallel workers, gives byte-identical checkpoints."""
    first = json.loads((smoke_zoo / "zoo.json").read_text())
    monkeypatch.setenv("MEMKIT_CACHE", str(tmp_path / "other-cache"))
    second_root = zoo.build_zoo("smoke", progress=False, workers=2)
    assert second_root != smoke_zoo and second_root.name == smoke_zoo.name  # same config hash, other cache
    second = json.loads((second_root / "zoo.json").read_text())
    for size, row in first["sizes"].items():
        assert second["sizes"][size]["weights_sha256"] == row["weights_sha256"]
        for step in row["checkpoints"]:
            folder = f"{size}/step-{step:06d}/model.safetensors"
            assert file_sha256(smoke_zoo / folder) == file_sha256(second_root / folder)
    assert file_sha256(smoke_zoo / "manifest.jsonl") == file_sha256(second_root / "manifest.jsonl")
    assert file_sha256(smoke_zoo / "stream.safetensors") == file_sha256(second_root / "stream.safetensors")


def test_smoke_zoo_shape(smoke_zoo):
    info = zoo.zoo_info("smoke")
    profile = zoo.get_profile("smoke")
    assert set(info["sizes"]) == set(profile.sizes)
    steps = zoo.checkpoint_steps("smoke")
    assert len(steps) >= 5 and steps[-1] == profile.n_sequences // profile.batch_size
    params = [info["sizes"][s]["non_embedding_params"] for s in profile.sizes]
    assert params == sorted(params) and params[-1] > 5 * params[0]
    for size in profile.sizes:
        losses = info["sizes"][size]["losses"]
        assert len(losses) == steps[-1] and np.mean(losses[-10:]) < np.mean(losses[:10]) - 2
    canaries = zoo.zoo_canaries("smoke")
    assert {c.level for c in canaries} == {0, 1, 4, 16, 64, 256}
    assert {c.window for c in canaries} == {"all", "early", "late"}


def test_level_256_canary_extractable_and_controls_not(smoke_zoo):
    samples = zoo.zoo_samples("smoke", k=32, m=32)
    largest = zoo.zoo_specs("smoke")[-1]
    frame = memkit.extract(memkit.load_model(largest, device="cpu"), samples, progress=False)
    top = frame[frame["meta_level"] == 256]
    assert top["exact_match"].any(), top[["id", "token_match"]]
    for spec in zoo.zoo_specs("smoke"):
        lm = memkit.load_model(spec, device="cpu")
        controls = memkit.extract(lm, [s for s in samples if s.meta["level"] == 0], progress=False)
        assert not controls["exact_match"].any() and controls["token_match"].max() < 0.5


def test_zoo_specs_load_through_load_model(smoke_zoo):
    size = list(zoo.get_profile("smoke").sizes)[-1]
    final = memkit.load_model(f"zoo:smoke/{size}@final", device="cpu")
    assert final.arch == "gpt_neox" and not final.is_instruct
    assert final.meta["step"] == zoo.checkpoint_steps("smoke")[-1] and final.meta["zoo_size"] == size
    assert zoo.zoo_model_dir(f"zoo:smoke/{size}") == zoo.zoo_model_dir(f"zoo:smoke/{size}@final")
    early = memkit.load_model(f"zoo:smoke/{size}@{zoo.checkpoint_steps('smoke')[0]}", device="cpu")
    assert early.sha256 != final.sha256 and early.meta["step"] == zoo.checkpoint_steps("smoke")[0]
    assert final.tokenizer("In the beginning")["input_ids"] == early.tokenizer("In the beginning")["input_ids"]


def test_zoo_extraction_covers_every_size_and_step(smoke_zoo):
    from memkit.organisms.zoo import zoo_extraction

    steps = zoo.checkpoint_steps("smoke")
    frame = zoo_extraction("smoke", steps=[steps[0], "final"], k=32, m=32)
    n_canaries = len(zoo.zoo_canaries("smoke"))
    assert len(frame) == 2 * 2 * n_canaries
    assert set(frame["step"]) == {steps[0], steps[-1]} and set(frame["size"]) == set(zoo.get_profile("smoke").sizes)
    assert {"level", "kind", "window", "zlib", "params", "exact_match", "token_match"} <= set(frame.columns)
    late = frame[frame["step"] == steps[-1]]
    assert late[late["level"] == 256]["token_match"].mean() > frame[frame["step"] == steps[0]][
        lambda f: f["level"] == 256]["token_match"].mean()  # training memorizes the most duplicated canaries


@pytest.mark.parametrize("spec, message", [
    ("zoo:huge/57k", "unknown zoo profile 'huge'"),
    ("zoo:smoke/7b", "unknown size '7b' in zoo profile 'smoke'"),
    ("zoo:smoke/13k@latest", "step must be an integer or 'final'"),
    ("zoo:smoke/13k@5", "no checkpoint at step 5"),
    ("zoo:57k@final", "zoo profile 'paper' is not built.*memkit zoo build --profile paper"),
])
def test_bad_or_unbuilt_specs_are_clear_errors(spec, message, empty_cache):
    with pytest.raises(MemkitError, match=message):
        memkit.load_model(spec)


def test_cli_zoo_list_and_errors(smoke_zoo, capsys, tmp_path, monkeypatch):
    rc, out, _ = run(capsys, ["zoo", "list"])
    assert rc == 0
    for size in zoo.get_profile("smoke").sizes:
        assert f"zoo:smoke/{size}" in out
    assert "complete" in out
    rc, out, err = run(capsys, ["zoo", "build", "--profile", "huge"])
    assert rc == 2 and out == "" and err.count("\n") == 1 and "unknown zoo profile 'huge'" in err
    rc, out, err = run(capsys, ["zoo", "build", "--profile", "smoke", "--no-progress"])  # built: nothing to do
    assert rc == 0 and "zoo:smoke/13k" in out
    monkeypatch.setenv("MEMKIT_CACHE", str(tmp_path / "empty"))
    rc, out, _ = run(capsys, ["zoo", "list"])
    assert rc == 0 and "memkit zoo build --profile smoke" in out
    records = tmp_path / "in.jsonl"
    records.write_text(json.dumps({"id": "a", "text": "In the beginning " * 30}) + "\n")
    rc, out, err = run(capsys, ["extract", "--model", "zoo:57k@final", "--input", records, "--out", tmp_path / "o.parquet"])
    assert rc == 2 and "memkit zoo build --profile paper" in err and not (tmp_path / "o.parquet").exists()
