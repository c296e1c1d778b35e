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


def test_wsd_schedule_is_constant_then_decays_linearly():
    cfg = T.TrainConfig(d_model=16, n_layers=1, n_heads=2, lr=1e-2, warmup_frac=0.1, min_lr_frac=0.1,
                        schedule="wsd", decay_frac=0.2)
    lrs = [T.lr_at(cfg, s, 100) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-3) and lrs[9] == pytest.approx(1e-2)
    assert lrs[10:80] == [1e-2] * 70  # the constant phase: both insertion windows of the zoo sit here
    assert lrs[80] == pytest.approx(1e-2 * (1 - 0.9 / 20)) and lrs[99] == pytest.approx(1e-3)
    assert all(a > b for a, b in zip(lrs[80:], lrs[81:]))
    with pytest.raises(MemkitError, match="unknown learning-rate schedule 'step'"):
        T.lr_at(T.TrainConfig(d_model=16, n_layers=1, n_heads=2, schedule="step"), 50, 100)


def test_heldout_loss_is_the_token_weighted_mean():
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(0)
    model = GPTNeoXForCausalLM(GPTNeoXConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                             intermediate_size=32, max_position_embeddings=16)).eval()
    grid = np.random.default_rng(0).integers(0, 50, size=(5, 8))
    with torch.no_grad():
        logits = model(input_ids=torch.from_numpy(grid)).logits
        nll = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 50), torch.from_numpy(grid[:, 1:]).reshape(-1))
    assert T.heldout_loss(model, grid, batch_size=2) == pytest.approx(float(nll), abs=2e-6)  # uneven last batch


# -- the profiles: the design constraints of the paper zoo ------------------------------------------
def test_paper_profile_meets_its_design():
    paper = zoo.get_profile("paper")
    assert zoo.canary_token_fraction(paper) <= 0.15
    counts: dict[tuple[int, str], int] = {}
    for cell in paper.cells:
        counts[cell.level, cell.window] = counts.get((cell.level, cell.window), 0) + cell.count
    assert all(counts[level, "all"] >= 24 for level in (1, 4, 16, 64)) and counts[256, "all"] >= 12
    assert counts[16, "early"] >= 12 and counts[16, "late"] >= 12 and counts[0, "all"] >= 24
    assert len(paper.seeds) >= 3 and len(paper.lr_grid) >= 3
    params = [12 * d * d * n + 13 * d * n + 2 * d for d, n, _ in paper.sizes.values()]  # GPT-NeoX blocks + final LN
    assert params == sorted(params) and params[-1] / params[0] >= 50
    windows, decay = zoo.window_steps("paper"), zoo.decay_start_step("paper")
    warmup = int(round(0.05 * zoo.checkpoint_steps("paper")[-1]))
    assert warmup <= windows["early"][0] and windows["late"][1] <= decay  # both windows at the constant LR


def test_choose_lr_takes_the_lowest_heldout_loss():
    assert zoo.choose_lr({1e-3: 4.0, 2e-3: 3.5, 4e-3: float("nan")}) == 2e-3
    assert zoo.choose_lr({1e-3: 3.5, 2e-3: 3.5}) == 1e-3  # a tie: the smaller rate
    with pytest.raises(MemkitError, match="every learning rate of the sweep diverged"):
        zoo.choose_lr({1e-3: float("nan")})


# -- the smoke zoo ----------------------------------------------------------------------------------
def test_smoke_zoo_is_deterministic(smoke_zoo, tmp_path, monkeypatch):
    """A second build in another cache, with two parallel workers, gives byte-identical checkpoints."""
    first = json.loads((smoke_zoo / "zoo.json").read_text())
    monkeypatch.setenv("MEMKIT_CACHE", str(tmp_path / "other-cache"))
    second_root = zoo.build_zoo("smoke", progress=False, workers=2)
    assert second_root != smoke_zoo and second_root.name == smoke_zoo.name  # same config hash, other cache
    second = json.loads((second_root / "zoo.json").read_text())
    assert second["sweep"] == first["sweep"]
    for size, row in first["sizes"].items():
        for seed, run in row["seeds"].items():
            assert second["sizes"][size]["seeds"][seed]["weights_sha256"] == run["weights_sha256"]
            for step in run["checkpoints"]:
                folder = f"{size}/seed-{seed}/step-{step:06d}/model.safetensors"
                assert file_sha256(smoke_zoo / folder) == file_sha256(second_root / folder)
    for name in ("heldout.safetensors", "seed-0/manifest.jsonl", "seed-1/stream.safetensors"):
        assert file_sha256(smoke_zoo / name) == file_sha256(second_root / name)


def test_smoke_zoo_shape(smoke_zoo):
    info = zoo.zoo_info("smoke")
    profile = zoo.get_profile("smoke")
    assert set(info["sizes"]) == set(profile.sizes)
    steps = zoo.checkpoint_steps("smoke")
    assert len(steps) >= 4 and steps[-1] == profile.n_sequences // profile.batch_size
    params = [info["sizes"][s]["non_embedding_params"] for s in profile.sizes]
    assert params == sorted(params) and params[-1] > 5 * params[0]
    for size in profile.sizes:
        sweep = info["sweep"][size]
        assert set(sweep["heldout_loss"]) == {f"{lr:g}" for lr in profile.lr_grid}
        assert sweep["lr"] == zoo.choose_lr({float(lr): loss for lr, loss in sweep["heldout_loss"].items()})
        assert info["sizes"][size]["lr"] == sweep["lr"] and sweep["steps"] == round(steps[-1] * profile.sweep_frac)
        assert set(info["sizes"][size]["seeds"]) == {str(s) for s in profile.seeds}
        for run in info["sizes"][size]["seeds"].values():
            losses = run["losses"]
            assert len(losses) == steps[-1] and np.mean(losses[-10:]) < np.mean(losses[:10]) - 2
            assert set(run["heldout_loss"]) == {str(s) for s in steps}
            assert run["heldout_loss"][str(steps[-1])] < run["heldout_loss"][str(steps[0])]
    weights = [run["weights_sha256"][str(steps[-1])] for run in info["sizes"]["13k"]["seeds"].values()]
    assert len(set(weights)) == len(profile.seeds)  # seeds give different models ...
    first, second = (zoo.zoo_canaries("smoke", seed) for seed in profile.seeds)
    assert [(c.id, c.token_ids, c.level) for c in first] == [(c.id, c.token_ids, c.level) for c in second]
    assert [c.positions for c in first] != [c.positions for c in second]  # ... the same canaries, elsewhere
    assert all(len(c.positions) == c.level for c in first)
    assert {c.level for c in first} == {0, 1, 4, 16, 64, 256}
    assert {c.window for c in first} == {"all", "early", "late"}
    assert 0 < info["data"]["canary_token_fraction"] == pytest.approx(zoo.canary_token_fraction(profile), abs=1e-6)


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
    other = memkit.load_model(f"zoo:smoke/{size}-s1@final", device="cpu")
    assert other.meta["zoo_seed"] == 1 and final.meta["zoo_seed"] == 0 and other.sha256 != final.sha256
    assert zoo.zoo_model_dir(f"zoo:smoke/{size}-s0") == zoo.zoo_model_dir(f"zoo:smoke/{size}")
    assert zoo.zoo_specs("smoke", seeds=[0, 1]) == ["zoo:smoke/13k-s0@final", "zoo:smoke/13k-s1@final",
                                                    "zoo:smoke/100k-s0@final", "zoo:smoke/100k-s1@final"]
    assert final.tokenizer("In the beginning")["input_ids"] == early.tokenizer("In the beginning")["input_ids"]


def test_zoo_extraction_covers_every_size_and_step(smoke_zoo):
    from memkit.organisms.zoo import zoo_extraction

    steps = zoo.checkpoint_steps("smoke")
    frame = zoo_extraction("smoke", steps=[steps[0], "final"], k=32, m=32)
    n_canaries = len(zoo.zoo_canaries("smoke"))
    assert len(frame) == 2 * 2 * 2 * n_canaries  # sizes x seeds x steps
    assert set(frame["step"]) == {steps[0], steps[-1]} and set(frame["size"]) == set(zoo.get_profile("smoke").sizes)
    assert set(frame["seed"]) == {0, 1}
    one = zoo_extraction("smoke", steps=["final"], seeds=[1], sizes=["13k"], samples=zoo.zoo_samples("smoke")[:3])
    assert len(one) == 3 and set(one["seed"]) == {1}
    assert {"level", "kind", "window", "zlib", "params", "exact_match", "token_match"} <= set(frame.columns)
    late = frame[frame["step"] == steps[-1]]
    assert late[late["level"] == 256]["token_match"].mean() > frame[frame["step"] == steps[0]][
        lambda f: f["level"] == 256]["token_match"].mean()  # training memorizes the most duplicated canaries


@pytest.mark.parametrize("spec, message", [
    ("zoo:huge/397k", "unknown zoo profile 'huge'"),
    ("zoo:smoke/7b", "unknown size '7b' in zoo profile 'smoke'"),
    ("zoo:smoke/13k@latest", "step must be an integer or 'final'"),
    ("zoo:smoke/13k@5", "no checkpoint at step 5"),
    ("zoo:smoke/13k-s7", "unknown seed '7' in zoo profile 'smoke'"),
    ("zoo:smoke/13k-sx@final", "unknown seed 'x'"),
    ("zoo:397k@final", "zoo profile 'paper' is not built.*memkit zoo build --profile paper"),
])
def test_bad_or_unbuilt_specs_are_clear_errors(spec, message, empty_cache):
    with pytest.raises(MemkitError, match=message):
        memkit.load_model(spec)


def test_cli_zoo_list_and_errors(smoke_zoo, capsys, tmp_path, monkeypatch):
    rc, out, _ = run(capsys, ["zoo", "list"])
    assert rc == 0
    for size in zoo.get_profile("smoke").sizes:
        assert f"zoo:smoke/{size}-s0" in out and f"zoo:smoke/{size}-s1" in out
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
    rc, out, err = run(capsys, ["extract", "--model", "zoo:397k@final", "--input", records, "--out", tmp_path / "o.parquet"])
    assert rc == 2 and "memkit zoo build --profile paper" in err and not (tmp_path / "o.parquet").exists()
