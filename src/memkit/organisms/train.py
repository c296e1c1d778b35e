"""Deterministic, resumable CPU training of a Pythia-architecture (GPT-NeoX) organism.

    cfg = TrainConfig(d_model=128, n_layers=3, n_heads=4, batch_size=16, checkpoints=(64, 128))
    train(cfg, stream, out_dir, tokenizer)   # stream: (sequences, seq_len) token grid, read in order

Same config + same stream -> bit-identical weights: fixed-seed initialisation, no dropout,
fp32, the stream read batch after batch (step s sees sequences [s*B, (s+1)*B)), AdamW with a
learning rate that is a pure function of the step (linear warm-up, then cosine decay or
warm-up-stable-decay: constant, then a linear decay over the last `decay_frac`), and a
fixed number of torch threads while training (`threads`; float reductions depend on it, so
it is part of the config). Every `save_every` steps and at every checkpoint the training
state (weights, AdamW moments, step, losses) is saved in safetensors + JSON, so a killed run
resumes exactly where that state left off and ends with the same weights as an
uninterrupted run. Checkpoints are Hugging Face folders (`step-000064/`: safetensors,
config, tokenizer, memkit.json) written atomically, loadable by `memkit.load_model`.
With an `eval_stream` (held-out sequences), the mean held-out loss is measured at every
checkpoint and stored in done.json and the checkpoint's memkit.json (undertraining shows as a
held-out loss still falling at the end).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..errors import MemkitError
from ..paths import atomic_path, code_fingerprint


@dataclass(frozen=True)
class TrainConfig:
    """Architecture and optimisation of one organism (everything that determines its weights)."""

    d_model: int
    n_layers: int
    n_heads: int
    batch_size: int = 16
    checkpoints: tuple[int, ...] = ()  # steps at which a HF folder is saved (the last step always is)
    lr: float = 2e-3
    min_lr_frac: float = 0.1
    warmup_frac: float = 0.05
    schedule: str = "cosine"  # or "wsd": warm-up, constant, linear decay over the last decay_frac
    decay_frac: float = 0.2
    weight_decay: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 1.0
    rotary_pct: float = 0.25
    seed: int = 0
    threads: int = 1
    save_every: int = 50


def model_config(cfg: TrainConfig, tokenizer, seq_len: int):
    """The GPTNeoXConfig of an organism: Pythia's layout (parallel residual, rotary), no dropout."""
    from transformers import GPTNeoXConfig

    if cfg.d_model % cfg.n_heads:
        raise MemkitError(f"d_model {cfg.d_model} is not divisible by n_heads {cfg.n_heads}")
    return GPTNeoXConfig(
        vocab_size=len(tokenizer), hidden_size=cfg.d_model, num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads, intermediate_size=4 * cfg.d_model, max_position_embeddings=seq_len,
        rotary_pct=cfg.rotary_pct, use_parallel_residual=True, hidden_dropout=0.0, attention_dropout=0.0,
        tie_word_embeddings=False, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def non_embedding_params(model) -> int:
    """Parameters outside the input embedding and the output head (the usual scaling-law size)."""
    skip = {id(model.get_input_embeddings().weight), id(model.get_output_embeddings().weight)}
    return int(sum(p.numel() for p in model.parameters() if id(p) not in skip))


def lr_at(cfg: TrainConfig, step: int, total: int) -> float:
    """Learning rate used for the update of (0-based) `step`: linear warm-up, then cosine decay or
    (schedule "wsd") constant until the last `decay_frac` of the steps and a linear decay there."""
    warmup = max(1, int(round(cfg.warmup_frac * total)))
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    if cfg.schedule == "wsd":
        decay_start = total - int(round(cfg.decay_frac * total))
        if step < decay_start:
            return cfg.lr
        progress = (step - decay_start + 1) / max(1, total - decay_start)
        return cfg.lr * (1 - (1 - cfg.min_lr_frac) * progress)
    if cfg.schedule != "cosine":
        raise MemkitError(f"unknown learning-rate schedule {cfg.schedule!r}; choose cosine or wsd")
    progress = (step - warmup) / max(1, total - warmup)
    return cfg.lr * (cfg.min_lr_frac + (1 - cfg.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * progress)))


def weights_sha256(model) -> str:
    """SHA-256 over every tensor of the state dict (names and bytes, sorted by name)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


def _new_model(cfg: TrainConfig, tokenizer, seq_len: int):
    from transformers import GPTNeoXForCausalLM

    torch.manual_seed(cfg.seed)
    return GPTNeoXForCausalLM(model_config(cfg, tokenizer, seq_len)).float().train()


def _optimizer(cfg: TrainConfig, model) -> torch.optim.AdamW:
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (no_decay if param.ndim < 2 else decay).append(param)  # biases and LayerNorms are not decayed
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, foreach=False)


# -- training state (safetensors + JSON, never pickle) -------------------------------------------
def _save_state(out_dir: Path, model, optimizer, step: int, losses: list[float]) -> None:
    from safetensors.torch import save_file

    target = out_dir / f"state-{step:06d}"
    tmp = out_dir / f".state-{step:06d}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp / "model.safetensors"))
    moments = {f"{index}.{key}": value.reshape(value.shape).contiguous()
               for index, state in optimizer.state_dict()["state"].items() for key, value in state.items()}
    save_file(moments, str(tmp / "optimizer.safetensors"))
    (tmp / "state.json").write_text(json.dumps({"step": step, "losses": losses}))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    with atomic_path(out_dir / "latest.json") as pointer:  # the switch to the new state is atomic
        pointer.write_text(json.dumps({"state": target.name, "step": step}))
    for old in out_dir.glob("state-*"):
        if old != target:
            shutil.rmtree(old, ignore_errors=True)


def _load_state(out_dir: Path, model, optimizer) -> tuple[int, list[float]]:
    from safetensors.torch import load_file

    pointer = out_dir / "latest.json"
    if not pointer.exists():
        return 0, []
    folder = out_dir / json.loads(pointer.read_text())["state"]
    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    moments = load_file(str(folder / "optimizer.safetensors"))
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in moments.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": optimizer.state_dict()["param_groups"]})
    meta = json.loads((folder / "state.json").read_text())
    return int(meta["step"]), [float(x) for x in meta["losses"]]


def checkpoint_dir(out_dir: Path, step: int) -> Path:
    """Where the HF folder of `step` lives."""
    return Path(out_dir) / f"step-{step:06d}"


def _save_checkpoint(out_dir: Path, model, tokenizer, step: int, meta: dict) -> None:
    target = checkpoint_dir(out_dir, step)
    tmp = out_dir / f".{target.name}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp), safe_serialization=True)
    tokenizer.save_pretrained(str(tmp))
    (tmp / "memkit.json").write_text(json.dumps({**meta, "step": step, "weights_sha256": weights_sha256(model)},
                                                indent=1, sort_keys=True))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)


@torch.no_grad()
def heldout_loss(model, eval_stream: np.ndarray, batch_size: int = 16) -> float:
    """Mean next-token loss of `model` over every token of the held-out grid (sequences x seq_len)."""
    data = torch.from_numpy(np.ascontiguousarray(eval_stream, dtype=np.int64))
    total, count = 0.0, 0
    for start in range(0, len(data), batch_size):
        batch = data[start : start + batch_size]
        n = batch.shape[0] * (batch.shape[1] - 1)
        total += float(model(input_ids=batch, labels=batch).loss) * n
        count += n
    return round(total / count, 6)


def train(cfg: TrainConfig, stream: np.ndarray, out_dir: Path | str, tokenizer, *, progress: bool = True,
          meta: dict | None = None, desc: str = "train", position: int = 0, stop_after: int | None = None,
          eval_stream: np.ndarray | None = None) -> dict:
    """Train (or resume) one organism on `stream`; returns the contents of `<out_dir>/done.json`.

    `meta` is copied into every checkpoint's memkit.json (name, source, ...). `stop_after`
    stops after that many steps of this call without saving, as a kill would (for tests).
    `eval_stream`: held-out sequences whose mean loss is recorded at every checkpoint.
    """
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no "Writing model shards" bars at every checkpoint
    out_dir = Path(out_dir)
    done_file = out_dir / "done.json"
    if done_file.exists():
        return json.loads(done_file.read_text())
    n_seq, seq_len = stream.shape
    total = n_seq // cfg.batch_size
    if total <= 0:
        raise MemkitError(f"{n_seq} training sequences are fewer than one batch of {cfg.batch_size}")
    checkpoints = sorted({int(s) for s in cfg.checkpoints if 0 < int(s) <= total} | {total})
    out_dir.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        model = _new_model(cfg, tokenizer, seq_len)
        optimizer = _optimizer(cfg, model)
        step, losses = _load_state(out_dir, model, optimizer)
        meta = {"name": desc, "arch": "gpt_neox", "is_instruct": False, **(meta or {}),
                "non_embedding_params": non_embedding_params(model),
                "n_params": int(sum(p.numel() for p in model.parameters())), "train_config": asdict(cfg)}
        data = torch.from_numpy(np.ascontiguousarray(stream, dtype=np.int64))
        bar = tqdm(total=total, initial=step, desc=desc, unit="step", disable=not progress, position=position,
                   leave=True, dynamic_ncols=True)
        ran = 0
        while step < total:
            if stop_after is not None and ran >= stop_after:
                bar.close()
                return {}
            for group in optimizer.param_groups:
                group["lr"] = lr_at(cfg, step, total)
            batch = data[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            loss = model(input_ids=batch, labels=batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            ran += 1
            losses.append(round(float(loss.item()), 6))
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
            if step in checkpoints:
                model.eval()
                extra = {"train_loss": losses[-1]}
                if eval_stream is not None:
                    extra["heldout_loss"] = heldout_loss(model, eval_stream)
                _save_checkpoint(out_dir, model, tokenizer, step, {**meta, **extra})
                model.train()
            if step in checkpoints or step % cfg.save_every == 0:
                _save_state(out_dir, model, optimizer, step, losses)
        bar.close()
        saved = {s: json.loads((checkpoint_dir(out_dir, s) / "memkit.json").read_text()) for s in checkpoints}
        result = {"steps": total, "checkpoints": checkpoints, "losses": losses,
                  "heldout_loss": {str(s): saved[s]["heldout_loss"] for s in checkpoints if "heldout_loss" in saved[s]},
                  "weights_sha256": {str(s): saved[s]["weights_sha256"] for s in checkpoints},
                  "non_embedding_params": meta["non_embedding_params"], "n_params": meta["n_params"]}
        with atomic_path(done_file) as tmp:
            tmp.write_text(json.dumps(result, sort_keys=True))
        for old in out_dir.glob("state-*"):  # finished: the resume state is no longer needed
            shutil.rmtree(old, ignore_errors=True)
        (out_dir / "latest.json").unlink(missing_ok=True)
        return result
    finally:
        torch.set_num_threads(threads)


@lru_cache(maxsize=None)
def train_version() -> str:
    """Hash of this module's source: part of the zoo's cache key."""
    return code_fingerprint("organisms/train.py")
