"""The zoo: Pythia-architecture organisms trained on canary-laced streams, at several sizes and seeds.

    build_zoo("smoke")                          # a few minutes; "paper" <= 25 minutes on 2 CPU cores
    lm = memkit.load_model("zoo:397k@final")    # paper profile, first seed, last checkpoint
    lm = memkit.load_model("zoo:smoke/100k-s1@48")
    canaries = zoo_canaries("paper"); samples = zoo_samples("paper", k=32, m=32)
    runs = zoo_extraction("paper", steps=["final"], k=32, m=32)   # every canary x size x seed, cached

Spec syntax: `zoo:[<profile>/]<size>[-s<seed>][@<step>|@final]`; the profile defaults to `paper`,
the seed to the profile's first seed and the step to `final`. Sizes are named by their
non-embedding parameter count.

Design (why it looks like this):
- Size is not confounded with the learning rate: each size's peak LR is chosen by a short
  sweep (`lr_grid`, trained on the first `sweep_frac` of seed 0's stream) as the one with the
  lowest held-out background loss, and every size then trains on the same streams for the same
  number of steps. The held-out loss of every checkpoint is recorded, so an undertrained size
  shows as a loss still falling at the end.
- Seeds change the initialisation and the data order (background order and where each copy
  lands), never the canaries: the canary set is generated once from `data_seed`.
- The schedule is warm-up, constant, linear decay over the last `decay_frac` ("wsd"); the early
  and late insertion windows both lie in the constant phase, so forgetting is not the LR decay.

A zoo lives in `<cache>/zoo/<profile>-<hash>/`, where the hash covers the whole profile, the
corpus checksum, the source of organisms/corpus.py, canaries.py and train.py and the
torch/transformers versions: any change trains a new zoo, and an unchanged one is never
retrained. Layout: `heldout.safetensors` (held-out loss grid), `seed-<s>/` (stream and canary
manifest of one seed), `sweep/<size>/lr-<lr>/` (sweep runs), `<size>/seed-<s>/` (checkpoints).
Runs train in parallel worker processes (`workers`, one torch thread each: the weights do not
depend on the number of workers), largest first; a killed build resumes from the last saved state.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import subprocess
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Sequence

import pandas as pd

from ..core.samples import Sample
from ..errors import MemkitError
from ..paths import atomic_path, cache_dir
from .canaries import Canary, Cell, canary_samples, canaries_version, grid, insert_canaries, make_canaries
from .canaries import KINDS, read_manifest, window_range, word_list, write_manifest
from .corpus import background_stream, build_corpus, corpus_version, encode_docs, heldout_grid, load_tokenizer
from .train import TrainConfig, checkpoint_dir, train, train_version

DEFAULT_PROFILE = "paper"


@dataclass(frozen=True)
class Profile:
    """Everything that defines a zoo: sizes, learning-rate sweep, seeds, stream, canaries, schedule."""

    name: str
    sizes: dict[str, tuple[int, int, int]]  # size name -> (d_model, n_layers, n_heads)
    lr_grid: tuple[float, ...]  # peak learning rates swept per size
    seeds: tuple[int, ...]  # training seeds (initialisation and data order)
    n_sequences: int
    seq_len: int
    batch_size: int
    checkpoints: tuple[int, ...]
    cells: tuple[Cell, ...]
    canary_tokens: int = 64
    windows: dict[str, tuple[float, float]] = field(default_factory=lambda: {"early": (0.05, 0.30),
                                                                             "late": (0.55, 0.80)})
    schedule: str = "wsd"
    decay_frac: float = 0.2
    sweep_frac: float = 0.25
    heldout_sequences: int = 64
    data_seed: int = 0
    threads: int = 1


def _cells(all_counts: dict[int, int], windowed: dict[int, int]) -> tuple[Cell, ...]:
    cells = grid(KINDS, all_counts, "all")
    for window in ("early", "late"):
        cells += grid(KINDS, windowed, window)
    return tuple(cells)


PROFILES: dict[str, Profile] = {
    # 96 steps of 16 x 128 tokens, 2 sizes x 2 seeds + a 2-point LR sweep: a few minutes, for tests
    "smoke": Profile(
        name="smoke", sizes={"13k": (32, 1, 2), "100k": (64, 2, 2)}, lr_grid=(5e-3, 2e-2), seeds=(0, 1),
        n_sequences=1536, seq_len=128, batch_size=16, checkpoints=(24, 48, 72, 96),
        cells=_cells({0: 2, 1: 1, 4: 1, 16: 1, 64: 1, 256: 1}, {16: 1}), heldout_sequences=16,
    ),
    # 2400 steps of 8 x 128 tokens (2.46M tokens, ~3 epochs of the background, canaries 14.8 % of it);
    # 5 sizes spanning 60x in non-embedding parameters (one width per size, 2 layers: the budget of 25
    # minutes on 2 cores allows no deeper models with 3 seeds and the sweep); per kind 16 never-inserted
    # controls, 8 canaries at each level 1-64 and 4 at 256 (24 and 12 over the 3 kinds), and 4 per
    # window at level 16 in each of the early and late windows (12 per window). The LR sweep: 6 rates a
    # factor 2 apart, each trained for the first 20 % of the stream (short runs favour larger rates: stated);
    # a first grid from 2.5e-3 up put the three largest sizes on its lower edge, hence the range.
    "paper": Profile(
        name="paper",
        sizes={"6.6k": (16, 2, 2), "25k": (32, 2, 2), "100k": (64, 2, 4), "224k": (96, 2, 4), "397k": (128, 2, 4)},
        lr_grid=(6.25e-4, 1.25e-3, 2.5e-3, 5e-3, 1e-2, 2e-2), seeds=(0, 1, 2), sweep_frac=0.2,
        n_sequences=19200, seq_len=128, batch_size=8,
        checkpoints=(120, 240, 480, 720, 960, 1200, 1440, 1680, 1920, 2160, 2280, 2400),
        cells=_cells({0: 16, 1: 8, 4: 8, 16: 8, 64: 8, 256: 4}, {16: 4}),
    ),
}


def get_profile(name: str) -> Profile:
    """The named profile, or a MemkitError listing the known ones."""
    if name not in PROFILES:
        raise MemkitError(f"unknown zoo profile {name!r}; choose one of {', '.join(PROFILES)}")
    return PROFILES[name]


def canary_token_fraction(profile: Profile) -> float:
    """Share of the training stream's tokens taken by canary copies (each copy with its two eos)."""
    copies = sum(cell.count * cell.level for cell in profile.cells)
    return copies * (profile.canary_tokens + 2) / (profile.n_sequences * profile.seq_len)


def train_config(profile: Profile, size: str, *, lr: float, seed: int, sweep: bool = False) -> TrainConfig:
    """The TrainConfig of one run: a size of `profile` at peak `lr` and training `seed` (sweep runs
    keep only their final step)."""
    d_model, n_layers, n_heads = profile.sizes[size]
    return TrainConfig(d_model=d_model, n_layers=n_layers, n_heads=n_heads, batch_size=profile.batch_size,
                       checkpoints=() if sweep else profile.checkpoints, lr=lr, seed=seed, threads=profile.threads,
                       schedule=profile.schedule, decay_frac=profile.decay_frac)


def zoo_config(profile: Profile) -> dict:
    """The full configuration a zoo's cache key is computed from."""
    import tokenizers
    import torch
    import transformers

    from .corpus import CORPUS_SHA256

    body = asdict(profile)
    body["runs"] = {name: asdict(train_config(profile, name, lr=0.0, seed=0)) for name in profile.sizes}
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


# -- data: one stream per seed, one canary set, one held-out grid ----------------------------------
def _heldout_title(source: str) -> str | None:
    return source.split(" (held out)")[0] if "(held out)" in source else None


def _prepare_data(profile: Profile, root: Path) -> None:
    """Write heldout.safetensors, seed-<s>/{stream.safetensors,manifest.jsonl} and profile.json (once)."""
    if (root / "profile.json").exists():
        return
    from safetensors.numpy import save_file

    root.mkdir(parents=True, exist_ok=True)
    corpus = build_corpus()
    tokenizer = corpus.tokenizer
    docs = encode_docs(tokenizer, corpus.train_docs)
    canaries = make_canaries(tokenizer, list(zip(corpus.heldout_titles, corpus.heldout_docs)),
                             word_list(corpus.train_docs), profile.cells, n_tokens=profile.canary_tokens,
                             seed=profile.data_seed, train_docs=corpus.train_docs)
    used = {_heldout_title(c.source) for c in canaries}
    eval_docs = [doc for title, doc in zip(corpus.heldout_titles, corpus.heldout_docs) if title not in used]
    heldout = heldout_grid(tokenizer, eval_docs, profile.seq_len, profile.heldout_sequences)
    with atomic_path(root / "heldout.safetensors") as tmp:
        save_file({"heldout": heldout}, str(tmp))
    for seed in profile.seeds:
        stream = background_stream(docs, profile.n_sequences, profile.seq_len, tokenizer.eos_token_id, seed)
        placed = insert_canaries(stream, [replace(c, positions=[]) for c in canaries], tokenizer.eos_token_id,
                                 seed=seed, windows=profile.windows)
        (root / f"seed-{seed}").mkdir(exist_ok=True)
        with atomic_path(root / f"seed-{seed}" / "stream.safetensors") as tmp:
            save_file({"stream": stream}, str(tmp))
        write_manifest(placed, root / f"seed-{seed}" / "manifest.jsonl")
    background_tokens = sum(len(d) + 1 for d in docs)
    info = {**zoo_config(profile), "corpus_folder": str(corpus.folder),
            "manifest_sha256": {str(s): hashlib.sha256((root / f"seed-{s}" / "manifest.jsonl").read_bytes()).hexdigest()
                                for s in profile.seeds},
            "stream_tokens": profile.n_sequences * profile.seq_len,
            "canary_token_fraction": round(canary_token_fraction(profile), 6),
            "background_epochs": round(profile.n_sequences * profile.seq_len * (1 - canary_token_fraction(profile))
                                       / background_tokens, 3),
            "n_canaries": len(canaries), "heldout_tokens": int(heldout.size), "heldout_chapters": len(eval_docs)}
    with atomic_path(root / "profile.json") as tmp:  # written last: marks the data as complete
        tmp.write_text(json.dumps(info, indent=1, sort_keys=True))


def _load_grid(path: Path, name: str):
    from safetensors.numpy import load_file

    return load_file(str(path))[name]


# -- training runs in worker processes -------------------------------------------------------------
def _lr_name(lr: float) -> str:
    return f"lr-{lr:g}"


def _run_dir(root: Path, job: dict) -> Path:
    if job["sweep"]:
        return root / "sweep" / job["size"] / _lr_name(job["lr"])
    return root / job["size"] / f"seed-{job['seed']}"


def _train_job(root: str, profile_name: str, job: dict, progress: bool, position: int) -> dict:
    """Worker: one training run (a sweep run or a zoo member) in `root` (runs in its own process)."""
    import torch

    torch.set_num_threads(1)
    root_path = Path(root)
    profile = get_profile(profile_name)
    out_dir = _run_dir(root_path, job)
    if (out_dir / "done.json").exists():
        return json.loads((out_dir / "done.json").read_text())
    info = json.loads((root_path / "profile.json").read_text())
    tokenizer = load_tokenizer(Path(info["corpus_folder"]))
    stream = _load_grid(root_path / f"seed-{job['seed']}" / "stream.safetensors", "stream")
    if job["sweep"]:
        stream = stream[: int(round(profile.n_sequences * profile.sweep_frac))]
    start = time.perf_counter()
    name = f"zoo:{profile_name}/{job['size']}-s{job['seed']}"
    desc = f"{name} sweep lr={job['lr']:g}" if job["sweep"] else name
    result = train(train_config(profile, job["size"], lr=job["lr"], seed=job["seed"], sweep=job["sweep"]), stream,
                   out_dir, tokenizer, progress=progress, desc=desc, position=position,
                   eval_stream=_load_grid(root_path / "heldout.safetensors", "heldout"),
                   meta={"name": name, "source": f"memkit zoo {root_path.name}", "zoo_profile": profile_name,
                         "zoo_size": job["size"], "zoo_seed": job["seed"], "lr_sweep": job["sweep"]})
    with atomic_path(out_dir / "seconds.json") as tmp:  # wall time of the (last) run: not hashed
        tmp.write_text(json.dumps({"seconds": round(time.perf_counter() - start, 1)}))
    return result


def _worker_main() -> None:
    """Entry point of a training worker process: argv = root, profile, job (JSON), progress (0/1), position."""
    root, profile, job, progress, position = sys.argv[1:6]
    _train_job(root, profile, json.loads(job), progress == "1", int(position))


def _run_jobs(root: Path, profile: str, jobs: list[dict], progress: bool, workers: int) -> None:
    """Run training `jobs` in at most `workers` parallel `python` processes (plain subprocesses: no fork
    of a process that already runs torch threads, no re-import of the caller's main module)."""
    if workers == 1:
        for position, job in enumerate(jobs):
            _train_job(str(root), profile, job, progress, position)
        return
    pending = list(enumerate(jobs))
    running: list[tuple[str, subprocess.Popen]] = []
    failed = []
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    try:
        while pending or running:
            while pending and len(running) < workers:
                position, job = pending.pop(0)
                command = [sys.executable, "-c", "from memkit.organisms.zoo import _worker_main; _worker_main()",
                           str(root), profile, json.dumps(job), "1" if progress else "0", str(position % workers)]
                running.append((_run_dir(root, job).relative_to(root).as_posix(), subprocess.Popen(command, env=env)))
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
        raise MemkitError(f"training failed for zoo runs {', '.join(failed)}; rerun `memkit zoo build --profile "
                          f"{profile}` to resume (see the messages above)")


def _cost(profile: Profile, size: str) -> int:
    d_model, n_layers, _ = profile.sizes[size]
    return d_model * d_model * n_layers + d_model * 4096  # blocks + output layer, for ordering only


def choose_lr(sweep: dict[float, float]) -> float:
    """The learning rate with the lowest held-out loss (NaN counts as worst; ties: the smaller rate)."""
    finite = {lr: loss for lr, loss in sweep.items() if loss == loss}
    if not finite:
        raise MemkitError(f"every learning rate of the sweep diverged: {sorted(sweep)}")
    return min(sorted(finite), key=lambda lr: finite[lr])


def _sweep(profile: Profile, root: Path, progress: bool, workers: int) -> dict[str, dict]:
    """Train the LR sweep's runs and write sweep.json: per size, held-out loss per LR and the chosen LR."""
    if (root / "sweep.json").exists():
        return json.loads((root / "sweep.json").read_text())
    sizes = sorted(profile.sizes, key=lambda s: -_cost(profile, s))
    jobs = [{"size": size, "seed": profile.seeds[0], "lr": lr, "sweep": True} for size in sizes for lr in profile.lr_grid]
    _run_jobs(root, profile.name, jobs, progress, workers)
    table = {}
    for size in profile.sizes:
        losses = {}
        for lr in profile.lr_grid:
            done = json.loads((_run_dir(root, {"size": size, "lr": lr, "sweep": True}) / "done.json").read_text())
            losses[lr] = list(done["heldout_loss"].values())[-1]
        table[size] = {"heldout_loss": {f"{lr:g}": loss for lr, loss in losses.items()}, "lr": choose_lr(losses),
                       "steps": done["steps"]}
    with atomic_path(root / "sweep.json") as tmp:
        tmp.write_text(json.dumps(table, indent=1, sort_keys=True))
    return table


def build_zoo(profile: str = DEFAULT_PROFILE, *, progress: bool = True, workers: int | None = None) -> Path:
    """Sweep the LR, then train every size x seed of `profile` not trained yet (resuming killed runs);
    returns the zoo folder."""
    prof = get_profile(profile)
    root = zoo_root(prof)
    if (root / "zoo.json").exists():
        return root
    start = time.perf_counter()
    _prepare_data(prof, root)
    workers = workers or min(2, os.cpu_count() or 1)
    sweep = _sweep(prof, root, progress, workers)
    sizes = sorted(prof.sizes, key=lambda s: -_cost(prof, s))
    jobs = [{"size": size, "seed": seed, "lr": sweep[size]["lr"], "sweep": False} for size in sizes for seed in prof.seeds]
    _run_jobs(root, prof.name, jobs, progress, workers)
    summary = {"profile": prof.name, "root": str(root), "wall_seconds": round(time.perf_counter() - start, 1),
               "workers": workers, "sweep": sweep, "sizes": {}}
    for size in prof.sizes:
        runs = {}
        for seed in prof.seeds:
            run_dir = _run_dir(root, {"size": size, "seed": seed, "sweep": False})
            done = json.loads((run_dir / "done.json").read_text())
            runs[str(seed)] = {key: done[key] for key in ("steps", "checkpoints", "weights_sha256", "heldout_loss")}
            runs[str(seed)] |= {"final_loss": done["losses"][-1],
                                "seconds": json.loads((run_dir / "seconds.json").read_text())["seconds"]}
        summary["sizes"][size] = {"lr": sweep[size]["lr"], "non_embedding_params": done["non_embedding_params"],
                                  "n_params": done["n_params"], "seeds": runs}
    with atomic_path(root / "zoo.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=1, sort_keys=True))
    return root


# -- specs and lookups ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ZooSpec:
    profile: str
    size: str
    seed: int
    step: int | None  # None = final


SPEC_FORM = "zoo:[<profile>/]<size>[-s<seed>][@<step>|@final]"


def parse_spec(spec: str) -> ZooSpec:
    """`zoo:[<profile>/]<size>[-s<seed>][@<step>|@final]` -> ZooSpec (MemkitError naming the bad part)."""
    if not spec.startswith("zoo:"):
        raise MemkitError(f"not a zoo spec: {spec!r} (expected {SPEC_FORM})")
    name, _, step_text = spec[4:].partition("@")
    profile_name, _, size = name.rpartition("/")
    profile = get_profile(profile_name or DEFAULT_PROFILE)
    seed = profile.seeds[0]
    if size not in profile.sizes and "-s" in size:
        size, _, seed_text = size.rpartition("-s")
        if not seed_text.isdigit() or int(seed_text) not in profile.seeds:
            raise MemkitError(f"{spec!r}: unknown seed {seed_text!r} in zoo profile {profile.name!r}; "
                              f"choose one of {', '.join(map(str, profile.seeds))}")
        seed = int(seed_text)
    if size not in profile.sizes:
        raise MemkitError(f"{spec!r}: unknown size {size!r} in zoo profile {profile.name!r}; "
                          f"choose one of {', '.join(profile.sizes)}")
    if step_text in ("", "final"):
        return ZooSpec(profile.name, size, seed, None)
    if not step_text.isdigit():
        raise MemkitError(f"{spec!r}: step must be an integer or 'final', got {step_text!r}")
    step = int(step_text)
    steps = checkpoint_steps(profile.name)
    if step not in steps:
        raise MemkitError(f"{spec!r}: no checkpoint at step {step}; zoo profile {profile.name!r} has {steps}")
    return ZooSpec(profile.name, size, seed, step)


def checkpoint_steps(profile: str = DEFAULT_PROFILE) -> list[int]:
    """The steps at which every run of `profile` is checkpointed (the last one is 'final')."""
    prof = get_profile(profile)
    total = prof.n_sequences // prof.batch_size
    return sorted({s for s in prof.checkpoints if 0 < s <= total} | {total})


def window_steps(profile: str = DEFAULT_PROFILE) -> dict[str, tuple[int, int]]:
    """Training steps [start, stop) during which each insertion window's copies are seen."""
    from .canaries import WINDOWS

    prof = get_profile(profile)
    steps = {}
    for window in WINDOWS:
        start, stop = window_range(window, prof.n_sequences, prof.windows)  # in training sequences
        steps[window] = (start // prof.batch_size, -(-stop // prof.batch_size))
    return steps


def decay_start_step(profile: str = DEFAULT_PROFILE) -> int:
    """First step of the learning-rate decay (the end of the constant phase)."""
    prof = get_profile(profile)
    total = checkpoint_steps(profile)[-1]
    return total - int(round(prof.decay_frac * total)) if prof.schedule == "wsd" else 0


def _not_built(profile: str) -> MemkitError:
    return MemkitError(f"zoo profile {profile!r} is not built for this code version: run "
                       f"`memkit zoo build --profile {profile}` (the paper profile takes about 25 minutes)")


def zoo_model_dir(spec: str) -> Path:
    """The HF folder of a zoo checkpoint spec; MemkitError with the build command if it is not built."""
    parsed = parse_spec(spec)
    step = parsed.step if parsed.step is not None else checkpoint_steps(parsed.profile)[-1]
    run = _run_dir(zoo_root(parsed.profile), {"size": parsed.size, "seed": parsed.seed, "sweep": False})
    folder = checkpoint_dir(run, step)
    if not (folder / "memkit.json").exists():
        raise _not_built(parsed.profile)
    return folder


def zoo_specs(profile: str = DEFAULT_PROFILE, step: int | str = "final", *,
              seeds: Sequence[int] | None = None) -> list[str]:
    """Specs of every size of `profile` at one step, smallest first; one seed (the first, spec
    without `-s`) unless `seeds` are given (then size-major, every seed)."""
    prof = get_profile(profile)
    prefix = "" if profile == DEFAULT_PROFILE else f"{profile}/"
    if seeds is None:
        return [f"zoo:{prefix}{size}@{step}" for size in prof.sizes]
    return [f"zoo:{prefix}{size}-s{seed}@{step}" for size in prof.sizes for seed in seeds]


def zoo_info(profile: str = DEFAULT_PROFILE) -> dict:
    """The build summary of a built zoo (zoo.json: sweep, per size its LR, params and per seed the
    steps, weights hashes, held-out losses, seconds) plus training losses and the data summary."""
    root = zoo_root(profile)
    if not (root / "zoo.json").exists():
        raise _not_built(profile)
    info = json.loads((root / "zoo.json").read_text())
    for size, row in info["sizes"].items():
        for seed, run in row["seeds"].items():
            done = _run_dir(root, {"size": size, "seed": int(seed), "sweep": False}) / "done.json"
            run["losses"] = json.loads(done.read_text())["losses"]
    info["data"] = json.loads((root / "profile.json").read_text())
    return info


def zoo_canaries(profile: str = DEFAULT_PROFILE, seed: int | None = None) -> list[Canary]:
    """The canary manifest of a built zoo for one training seed (default: the first): every canary
    with its level, window and its copies' positions in that seed's stream (texts are the same for all seeds)."""
    prof = get_profile(profile)
    seed = prof.seeds[0] if seed is None else seed
    if seed not in prof.seeds:
        raise MemkitError(f"zoo profile {profile!r} has no seed {seed}; choose one of {', '.join(map(str, prof.seeds))}")
    root = zoo_root(profile)
    if not (root / "profile.json").exists():
        raise _not_built(profile)
    return read_manifest(root / f"seed-{seed}" / "manifest.jsonl")


def zoo_samples(profile: str = DEFAULT_PROFILE, k: int = 32, m: int = 32, suffix_start: int | None = None,
                ids: Sequence[str] | None = None) -> list[Sample]:
    """Extraction samples of the zoo's canaries, the same for every seed (see
    `memkit.organisms.canaries.canary_samples`)."""
    return canary_samples(zoo_canaries(profile), k=k, m=m, suffix_start=suffix_start, ids=ids)


# -- running the zoo ------------------------------------------------------------------------------
def zoo_extraction(profile: str = DEFAULT_PROFILE, *, steps: Sequence[int | str] = ("final",), k: int = 32,
                   m: int = 32, suffix_start: int | None = None, sizes: Sequence[str] | None = None,
                   seeds: Sequence[int] | None = None, samples: Sequence[Sample] | None = None,
                   batch_size: int = 32, progress: bool = False) -> pd.DataFrame:
    """Greedy extraction of every canary by every (size, seed, step) of a built zoo, one row per canary.

    `seeds` default to all of the profile's; `samples` (default: every canary at k, m) may be any
    subset or variant of the canary samples (e.g. eos-prefixed prompts). Adds `size`, `params`
    (non-embedding), `seed`, `step`, `level`, `kind`, `window`, `zlib`, `copies` columns to the
    `memkit.extract` metrics. Results come from `cached_extract`, so a warm rerun computes nothing.
    """
    from ..core.extract import cached_extract
    from ..core.models import load_model

    prof = get_profile(profile)
    samples = list(samples) if samples is not None else zoo_samples(profile, k=k, m=m, suffix_start=suffix_start)
    final = checkpoint_steps(profile)[-1]
    prefix = "" if profile == DEFAULT_PROFILE else f"{profile}/"
    frames = []
    for size in (list(sizes) if sizes is not None else list(prof.sizes)):
        for seed in (list(seeds) if seeds is not None else list(prof.seeds)):
            for step in steps:
                lm = load_model(f"zoo:{prefix}{size}-s{seed}@{step}", device="cpu")
                frame = cached_extract(lm, samples, batch_size=batch_size, progress=progress)
                frames.append(frame.assign(size=size, params=int(lm.meta["non_embedding_params"]), seed=seed,
                                           step=final if step == "final" else int(step)))
    out = pd.concat(frames, ignore_index=True)
    return out.rename(columns={"meta_level": "level", "meta_kind": "kind", "meta_window": "window",
                               "meta_zlib": "zlib", "meta_copies": "copies"})


def list_zoo() -> list[dict]:
    """One row per trained run (size x seed) of every zoo folder in the cache: profile, hash, whether it
    is current, checkpoints, completeness."""
    base = cache_dir() / "zoo"
    rows = []
    current = {zoo_root(p).name for p in PROFILES}
    for root in sorted(base.iterdir()) if base.exists() else []:
        if not root.is_dir() or root.name.startswith("."):
            continue
        profile = root.name.rsplit("-", 1)[0]
        done = json.loads((root / "zoo.json").read_text()) if (root / "zoo.json").exists() else None
        for run_dir in sorted(root.glob("*/seed-*")):
            size = run_dir.parent.name
            if size in ("sweep",) or not run_dir.is_dir():
                continue
            steps = sorted(int(p.name.split("-")[1]) for p in run_dir.glob("step-*") if (p / "memkit.json").exists())
            meta = json.loads((checkpoint_dir(run_dir, steps[-1]) / "memkit.json").read_text()) if steps else {}
            seed = run_dir.name.split("-", 1)[1]
            rows.append({"profile": profile, "zoo": root.name, "current": root.name in current, "size": size,
                         "seed": int(seed), "non_embedding_params": meta.get("non_embedding_params"),
                         "checkpoints": steps, "complete": (run_dir / "done.json").exists(),
                         "seconds": (done or {}).get("sizes", {}).get(size, {}).get("seeds", {}).get(seed, {})
                         .get("seconds"), "location": str(run_dir)})
    return sorted(rows, key=lambda r: (r["zoo"], r["non_embedding_params"] or 0, r["size"], r["seed"]))


def remove_stale() -> list[Path]:
    """Delete zoo folders built by other code versions or configs; returns what was removed."""
    base = cache_dir() / "zoo"
    current = {zoo_root(p).name for p in PROFILES}
    removed = [root for root in sorted(base.iterdir()) if root.is_dir() and root.name not in current] \
        if base.exists() else []
    for root in removed:
        shutil.rmtree(root)
    return removed


__all__ = ["PROFILES", "Profile", "ZooSpec", "build_zoo", "canary_token_fraction", "checkpoint_steps", "choose_lr",
           "decay_start_step", "get_profile", "list_zoo", "parse_spec", "remove_stale", "window_steps", "zoo_canaries", "zoo_extraction", "zoo_info", "zoo_model_dir",
           "zoo_root", "zoo_samples", "zoo_specs"]
