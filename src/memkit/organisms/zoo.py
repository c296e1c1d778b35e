"""The zoo: Pythia-architecture organisms trained on the same canary-laced stream, at several sizes.

    build_zoo("smoke")                       # ~1 minute; "paper" <= 15 minutes on 2 CPU cores
    lm = memkit.load_model("zoo:595k@final") # paper profile, last checkpoint
    lm = memkit.load_model("zoo:smoke/100k@48")
    canaries = zoo_canaries("paper"); samples = zoo_samples("paper", k=32, m=32)
    runs = zoo_extraction("paper", steps=["final"], k=32, m=32)   # every canary x size, cached

Spec syntax: `zoo:[<profile>/]<size>[@<step>|@final]`; the profile defaults to `paper` and the
step to `final`. Sizes are named by their non-embedding parameter count.

Every size of a profile trains on the same token stream in the same order (one background
corpus, one set of inserted canaries, see `memkit.organisms.canaries`). A zoo lives in
`<cache>/zoo/<profile>-<hash>/`, where the hash covers the whole profile, the corpus
checksum, the source of organisms/corpus.py, canaries.py and train.py and the torch/transformers
versions: any change trains a new zoo, and an unchanged one is never retrained. Sizes train
in parallel worker processes (`workers`, one torch thread each: the weights do not depend
on the number of workers), largest first; a killed build resumes from the last saved state.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

from ..core.samples import Sample
from ..errors import MemkitError
from ..paths import atomic_path, cache_dir
from .canaries import Canary, Cell, canary_samples, canaries_version, grid, insert_canaries, make_canaries
from .canaries import KINDS, read_manifest, word_list, write_manifest
from .corpus import background_stream, build_corpus, corpus_version, encode_docs, load_tokenizer
from .train import TrainConfig, checkpoint_dir, train, train_version

DEFAULT_PROFILE = "paper"


@dataclass(frozen=True)
class Profile:
    """Everything that defines a zoo: sizes, stream, canaries, optimisation."""

    name: str
    sizes: dict[str, tuple[int, int, int, float]]  # size name -> (d_model, n_layers, n_heads, peak lr)
    n_sequences: int
    seq_len: int
    batch_size: int
    checkpoints: tuple[int, ...]
    cells: tuple[Cell, ...]
    canary_tokens: int = 64
    window_frac: float = 0.25
    seed: int = 0
    threads: int = 1


def _cells(all_counts: dict[int, int], windowed: dict[int, int]) -> tuple[Cell, ...]:
    cells = grid(KINDS, all_counts, "all")
    for window in ("early", "late"):
        cells += grid(KINDS, windowed, window)
    return tuple(cells)


PROFILES: dict[str, Profile] = {
    # 192 steps of 8 x 128 tokens (197k tokens); about a minute for both sizes
    "smoke": Profile(
        name="smoke", sizes={"13k": (32, 1, 2, 1e-2), "100k": (64, 2, 2, 1e-2)}, n_sequences=1536, seq_len=128,
        batch_size=8, checkpoints=(24, 48, 96, 144, 192),
        cells=_cells({0: 2, 1: 1, 4: 1, 16: 1, 64: 1, 256: 1}, {16: 1}),
    ),
    # 1536 steps of 4 x 128 tokens (786k tokens, ~0.8 epochs of the background); 4 sizes spanning 24x in
    # non-embedding parameters; the peak learning rate falls with size, as in Pythia. Small batches: more
    # updates per token, so a copy weighs more in its step (memorization per copy is what we study).
    "paper": Profile(
        name="paper", sizes={"57k": (48, 2, 3, 1e-2), "224k": (96, 2, 3, 6e-3), "595k": (128, 3, 4, 4e-3),
                             "1.3m": (192, 3, 6, 3e-3)},
        n_sequences=6144, seq_len=128, batch_size=4,
        checkpoints=(96, 192, 384, 576, 768, 960, 1152, 1344, 1536),
        cells=_cells({0: 6, 1: 6, 4: 6, 16: 6, 64: 3, 256: 2}, {16: 2, 64: 1}),
    ),
}


def get_profile(name: str) -> Profile:
    """The named profile, or a MemkitError listing the known ones."""
    if name not in PROFILES:
        raise MemkitError(f"unknown zoo profile {name!r}; choose one of {', '.join(PROFILES)}")
    return PROFILES[name]


def train_config(profile: Profile, size: str) -> TrainConfig:
    """The TrainConfig of one size of a profile."""
    d_model, n_layers, n_heads, lr = profile.sizes[size]
    return TrainConfig(d_model=d_model, n_layers=n_layers, n_heads=n_heads, batch_size=profile.batch_size,
                       checkpoints=profile.checkpoints, lr=lr, seed=profile.seed, threads=profile.threads)


def zoo_config(profile: Profile) -> dict:
    """The full configuration a zoo's cache key is computed from."""
    import tokenizers
    import torch
    import transformers

    from .corpus import CORPUS_SHA256

    body = asdict(profile)
    body["sizes"] = {name: asdict(train_config(profile, name)) for name in profile.sizes}
    return {"profile": body, "corpus_sha256": CORPUS_SHA256,
            "code": {"corpus": corpus_version(), "canaries": canaries_version(), "train": train_version()},
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                         "tokenizers": tokenizers.__version__}}


def config_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def zoo_root(profile: str | Profile = DEFAULT_PROFILE) -> Path:
    """Folder of the zoo of `profile` under the current code and config (it may not be built yet)."""
    profile = get_profile(profile) if isinstance(profile, str) else profile
    return cache_dir() / "zoo" / f"{profile.name}-{config_hash(zoo_config(profile))}"


# -- data: the shared training stream and its canaries ------------------------------------------
def _prepare_data(profile: Profile, root: Path) -> None:
    """Write stream.safetensors, manifest.jsonl and profile.json into `root` (once)."""
    if (root / "profile.json").exists():
        return
    from safetensors.numpy import save_file

    root.mkdir(parents=True, exist_ok=True)
    corpus = build_corpus()
    tokenizer = corpus.tokenizer
    docs = encode_docs(tokenizer, corpus.train_docs)
    stream = background_stream(docs, profile.n_sequences, profile.seq_len, tokenizer.eos_token_id, profile.seed)
    canaries = make_canaries(tokenizer, list(zip(corpus.heldout_titles, corpus.heldout_docs)),
                             word_list(corpus.train_docs), profile.cells, n_tokens=profile.canary_tokens,
                             seed=profile.seed, train_docs=corpus.train_docs)
    insert_canaries(stream, canaries, tokenizer.eos_token_id, seed=profile.seed, window_frac=profile.window_frac)
    with atomic_path(root / "stream.safetensors") as tmp:
        save_file({"stream": stream}, str(tmp))
    write_manifest(canaries, root / "manifest.jsonl")
    inserted = sum(len(c.positions) * (len(c.token_ids) + 2) for c in canaries)
    info = {**zoo_config(profile), "corpus_folder": str(corpus.folder),
            "manifest_sha256": hashlib.sha256((root / "manifest.jsonl").read_bytes()).hexdigest(),
            "stream_tokens": int(stream.size), "canary_tokens_inserted": int(inserted), "n_canaries": len(canaries)}
    with atomic_path(root / "profile.json") as tmp:  # written last: marks the data as complete
        tmp.write_text(json.dumps(info, indent=1, sort_keys=True))


def _load_stream(root: Path):
    from safetensors.numpy import load_file

    return load_file(str(root / "stream.safetensors"))["stream"]


def _train_size(root: str, profile_name: str, size: str, progress: bool, position: int) -> dict:
    """Worker: train one size of the zoo in `root` (runs in its own process)."""
    import torch

    torch.set_num_threads(1)
    root_path = Path(root)
    profile = get_profile(profile_name)
    info = json.loads((root_path / "profile.json").read_text())
    tokenizer = load_tokenizer(Path(info["corpus_folder"]))
    start = time.perf_counter()
    if (root_path / size / "done.json").exists():
        return json.loads((root_path / size / "done.json").read_text())
    result = train(train_config(profile, size), _load_stream(root_path), root_path / size, tokenizer,
                   progress=progress, desc=f"zoo:{profile_name}/{size}", position=position,
                   meta={"name": f"zoo:{profile_name}/{size}", "source": f"memkit zoo {root_path.name}",
                         "zoo_profile": profile_name, "zoo_size": size})
    with atomic_path(root_path / size / "seconds.json") as tmp:  # wall time of the (last) run: not hashed
        tmp.write_text(json.dumps({"seconds": round(time.perf_counter() - start, 1)}))
    return result


def _worker_main() -> None:
    """Entry point of a training worker process: argv = root, profile, size, progress (0/1), position."""
    root, profile, size, progress, position = sys.argv[1:6]
    _train_size(root, profile, size, progress == "1", int(position))


def _run_workers(root: Path, profile: str, sizes: list[str], progress: bool, workers: int) -> None:
    """Train `sizes` in at most `workers` parallel `python` processes (plain subprocesses: no fork
    of a process that already runs torch threads, no re-import of the caller's main module)."""
    pending = list(enumerate(sizes))
    running: list[tuple[str, subprocess.Popen]] = []
    failed = []
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    try:
        while pending or running:
            while pending and len(running) < workers:
                position, size = pending.pop(0)
                command = [sys.executable, "-c", "from memkit.organisms.zoo import _worker_main; _worker_main()",
                           str(root), profile, size, "1" if progress else "0", str(position)]
                running.append((size, subprocess.Popen(command, env=env)))
            time.sleep(0.2)
            for item in list(running):
                code = item[1].poll()
                if code is not None:
                    running.remove(item)
                    if code != 0:
                        failed.append(f"{item[0]} (exit {code})")
    finally:
        for _, process in running:  # interrupted: stop the workers; their saved state stays for resuming
            process.terminate()
            process.wait()
    if failed:
        raise MemkitError(f"training failed for zoo sizes {', '.join(failed)}; rerun `memkit zoo build --profile "
                          f"{profile}` to resume (see the messages above)")


def build_zoo(profile: str = DEFAULT_PROFILE, *, progress: bool = True, workers: int | None = None) -> Path:
    """Train every size of `profile` that is not trained yet (resuming killed runs); returns the zoo folder."""
    prof = get_profile(profile)
    root = zoo_root(prof)
    if (root / "zoo.json").exists():
        return root
    start = time.perf_counter()
    _prepare_data(prof, root)
    sizes = sorted(prof.sizes, key=lambda s: -train_config(prof, s).d_model ** 2 * train_config(prof, s).n_layers)
    workers = workers or min(2, os.cpu_count() or 1, len(sizes))
    if workers == 1:
        for i, size in enumerate(sizes):
            _train_size(str(root), prof.name, size, progress, i)
    else:
        _run_workers(root, prof.name, sizes, progress, workers)
    results = {size: {**json.loads((root / size / "done.json").read_text()),
                      **json.loads((root / size / "seconds.json").read_text())} for size in sizes}
    summary = {"profile": prof.name, "root": str(root), "wall_seconds": round(time.perf_counter() - start, 1),
               "workers": workers,
               "sizes": {size: {key: results[size][key] for key in
                                ("non_embedding_params", "n_params", "steps", "checkpoints", "weights_sha256", "seconds")}
                         | {"final_loss": results[size]["losses"][-1]} for size in prof.sizes}}
    with atomic_path(root / "zoo.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=1, sort_keys=True))
    return root


# -- specs and lookups ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ZooSpec:
    profile: str
    size: str
    step: int | None  # None = final


def parse_spec(spec: str) -> ZooSpec:
    """`zoo:[<profile>/]<size>[@<step>|@final]` -> ZooSpec (MemkitError naming the bad part)."""
    if not spec.startswith("zoo:"):
        raise MemkitError(f"not a zoo spec: {spec!r} (expected zoo:[<profile>/]<size>[@<step>|@final])")
    body = spec[4:]
    name, _, step_text = body.partition("@")
    profile_name, _, size = name.rpartition("/")
    profile = get_profile(profile_name or DEFAULT_PROFILE)
    if size not in profile.sizes:
        raise MemkitError(f"{spec!r}: unknown size {size!r} in zoo profile {profile.name!r}; "
                          f"choose one of {', '.join(profile.sizes)}")
    if step_text in ("", "final"):
        return ZooSpec(profile.name, size, None)
    if not step_text.isdigit():
        raise MemkitError(f"{spec!r}: step must be an integer or 'final', got {step_text!r}")
    step = int(step_text)
    steps = checkpoint_steps(profile.name)
    if step not in steps:
        raise MemkitError(f"{spec!r}: no checkpoint at step {step}; zoo profile {profile.name!r} has {steps}")
    return ZooSpec(profile.name, size, step)


def checkpoint_steps(profile: str = DEFAULT_PROFILE) -> list[int]:
    """The steps at which every size of `profile` is checkpointed (the last one is 'final')."""
    prof = get_profile(profile)
    total = prof.n_sequences // prof.batch_size
    return sorted({s for s in prof.checkpoints if 0 < s <= total} | {total})


def window_steps(profile: str = DEFAULT_PROFILE) -> dict[str, tuple[int, int]]:
    """Training steps [start, stop) during which each insertion window's copies are seen."""
    from .canaries import WINDOWS, window_range

    prof = get_profile(profile)
    steps = {}
    for window in WINDOWS:
        start, stop = window_range(window, prof.n_sequences, prof.window_frac)  # in training sequences
        steps[window] = (start // prof.batch_size, -(-stop // prof.batch_size))
    return steps


def _not_built(profile: str) -> MemkitError:
    return MemkitError(f"zoo profile {profile!r} is not built for this code version: run "
                       f"`memkit zoo build --profile {profile}` (the paper profile takes <= 15 minutes)")


def zoo_model_dir(spec: str) -> Path:
    """The HF folder of a zoo checkpoint spec; MemkitError with the build command if it is not built."""
    parsed = parse_spec(spec)
    step = parsed.step if parsed.step is not None else checkpoint_steps(parsed.profile)[-1]
    folder = checkpoint_dir(zoo_root(parsed.profile) / parsed.size, step)
    if not (folder / "memkit.json").exists():
        raise _not_built(parsed.profile)
    return folder


def zoo_specs(profile: str = DEFAULT_PROFILE, step: int | str = "final") -> list[str]:
    """Specs of every size of `profile` at one step, smallest first."""
    prof = get_profile(profile)
    prefix = "" if profile == DEFAULT_PROFILE else f"{profile}/"
    return [f"zoo:{prefix}{size}@{step}" for size in prof.sizes]


def zoo_info(profile: str = DEFAULT_PROFILE) -> dict:
    """The build summary (zoo.json: params, steps, weights hashes, losses, seconds) of a built zoo."""
    root = zoo_root(profile)
    if not (root / "zoo.json").exists():
        raise _not_built(profile)
    info = json.loads((root / "zoo.json").read_text())
    for size in info["sizes"]:
        info["sizes"][size]["losses"] = json.loads((root / size / "done.json").read_text())["losses"]
    info["data"] = json.loads((root / "profile.json").read_text())
    return info


def zoo_canaries(profile: str = DEFAULT_PROFILE) -> list[Canary]:
    """The canary manifest of a built zoo (every canary with its level, window, copies' positions)."""
    root = zoo_root(profile)
    if not (root / "profile.json").exists():
        raise _not_built(profile)
    return read_manifest(root / "manifest.jsonl")


def zoo_samples(profile: str = DEFAULT_PROFILE, k: int = 32, m: int = 32, suffix_start: int | None = None,
                ids: Sequence[str] | None = None) -> list[Sample]:
    """Extraction samples of the zoo's canaries (see `memkit.organisms.canaries.canary_samples`)."""
    return canary_samples(zoo_canaries(profile), k=k, m=m, suffix_start=suffix_start, ids=ids)


# -- running the zoo ------------------------------------------------------------------------------
def zoo_extraction(profile: str = DEFAULT_PROFILE, *, steps: Sequence[int | str] = ("final",), k: int = 32,
                   m: int = 32, suffix_start: int | None = None, sizes: Sequence[str] | None = None,
                   batch_size: int = 32, progress: bool = False) -> pd.DataFrame:
    """Greedy extraction of every canary by every (size, step) of a built zoo, one row per canary.

    Adds `size`, `params` (non-embedding), `step`, `level`, `kind`, `window`, `zlib` columns to the
    `memkit.extract` metrics. Results come from `cached_extract`, so a warm rerun computes nothing.
    """
    from ..core.extract import cached_extract
    from ..core.models import load_model

    samples = zoo_samples(profile, k=k, m=m, suffix_start=suffix_start)
    final = checkpoint_steps(profile)[-1]
    prefix = "" if profile == DEFAULT_PROFILE else f"{profile}/"
    names = list(sizes) if sizes is not None else list(get_profile(profile).sizes)
    frames = []
    for size in names:
        for step in steps:
            lm = load_model(f"zoo:{prefix}{size}@{step}", device="cpu")
            frame = cached_extract(lm, samples, batch_size=batch_size, progress=progress)
            frames.append(frame.assign(size=size, params=int(lm.meta["non_embedding_params"]),
                                       step=final if step == "final" else int(step)))
    out = pd.concat(frames, ignore_index=True)
    return out.rename(columns={"meta_level": "level", "meta_kind": "kind", "meta_window": "window",
                               "meta_zlib": "zlib", "meta_copies": "copies"})


def list_zoo() -> list[dict]:
    """One row per zoo folder in the cache: profile, hash, whether it is current, sizes trained."""
    base = cache_dir() / "zoo"
    rows = []
    current = {zoo_root(p).name for p in PROFILES}
    for root in sorted(base.iterdir()) if base.exists() else []:
        if not root.is_dir() or root.name.startswith("."):
            continue
        profile = root.name.rsplit("-", 1)[0]
        done = json.loads((root / "zoo.json").read_text()) if (root / "zoo.json").exists() else None
        for size_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            steps = sorted(int(p.name.split("-")[1]) for p in size_dir.glob("step-*")
                           if (p / "memkit.json").exists())
            meta = json.loads((checkpoint_dir(size_dir, steps[-1]) / "memkit.json").read_text()) if steps else {}
            rows.append({"profile": profile, "zoo": root.name, "current": root.name in current,
                         "size": size_dir.name, "non_embedding_params": meta.get("non_embedding_params"),
                         "checkpoints": steps, "complete": (size_dir / "done.json").exists(),
                         "seconds": (done or {}).get("sizes", {}).get(size_dir.name, {}).get("seconds"),
                         "location": str(size_dir)})
    return sorted(rows, key=lambda r: (r["zoo"], r["non_embedding_params"] or 0, r["size"]))


def remove_stale() -> list[Path]:
    """Delete zoo folders built by other code versions or configs; returns what was removed."""
    base = cache_dir() / "zoo"
    current = {zoo_root(p).name for p in PROFILES}
    removed = [root for root in sorted(base.iterdir()) if root.is_dir() and root.name not in current] \
        if base.exists() else []
    for root in removed:
        shutil.rmtree(root)
    return removed


__all__ = ["PROFILES", "Profile", "ZooSpec", "build_zoo", "checkpoint_steps", "get_profile", "list_zoo",
           "parse_spec", "remove_stale", "window_steps", "zoo_canaries", "zoo_extraction", "zoo_info", "zoo_model_dir",
           "zoo_root", "zoo_samples", "zoo_specs"]
