"""Extraction benchmark: HF `generate` vs memkit's engine vs the teacher-forced floor.

    python -m memkit.paper.bench --out build/bench            # both embedded models (`make bench`)
    python -m memkit.paper.bench --models smollm2-135m-instruct --samples 16

Two workloads per model, same samples and batch size for every method:
- memorized: attractor prefixes whose suffix is the model's own greedy continuation, so the
  whole continuation is "recited";
- non-memorized: the same kind of prefixes over shuffled words, where the model diverges
  from the reference at once.
Methods: `generate` (batched, greedy, KV cache), `generate_nocache` (use_cache=False, as the
Pythia and latent-memorization evaluations ran), memkit `plain` and `drafted`, and the floor: one
teacher-forced pass over prefix+suffix computing logits only at the suffix positions. Times are
medians over repeats; compare ratios, not seconds. Results go to `<out>/bench.csv`, `.md` and `.tex`.

`generate_nocache` recomputes the whole sequence at every step (m full forward passes per
batch): it is timed once on the first `--nocache-samples` samples of each workload (default 2,
one batch) and its `seconds` is that time scaled to the workload size. Every row says how it
was measured: `timed_samples` (samples actually run), `seconds_per_sample` (measured time /
timed_samples) and `scaled` (True when `seconds` = seconds_per_sample x samples, not a
measurement); the note repeats it in words. Per-sample cost is assumed linear in the number of
samples (the scaled row is a lower bound for larger batches, where padding grows).

A third workload, `census`, times the memorization census (`memkit.census`) on windows of
data/attractors.jsonl and the standard library (available everywhere): its screen (one
teacher-forced pass per batch, exact greedy prefix-match lengths) against cached HF
`generate` and memkit's drafted engine on the same windows, in windows per second;
`tokens_identical_to_generate` says whether the screen's prefix-match lengths equal those
of `generate`'s continuations, and `x_floor` is relative to the screen. `make bench` includes
it (`bench_model(..., with_census=True)`).

Scale-out (`bench_scaleout`, `<out>/scale.csv` and `.md`): one 2,000-sample extraction from a
token memmap (random ids, k = m = 32, 16 chunks of 125) run as 1 process x 1 thread, 1 process x
2 threads and on a local Ray with 2 actors x 1 thread (`memkit.core.distributed`). The model is
the smoke zoo's 100k organism (hidden 64, 2 layers; built once, about a minute): SmolLM2 decodes
about 1-2 such samples per second on 2 cores, too slow for 3 x 2,000. `samples_per_s` is the
steady rate (Ray: after the first round of chunks, i.e. without starting Ray and loading the
actors' models, which `startup_s` shows); `efficiency` = speedup over 1 x 1 / cores used.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

import pandas as pd
import torch

from .. import census
from ..core.batching import left_padded
from ..core.decode import greedy_decode
from ..core.extract import pad_token_id, plan_batches
from ..core.models import load_model
from ..core.metrics import prefix_match_len
from ..core.samples import leading_special_ids
from ..paths import DATA_DIR, atomic_path


def _attractor_texts() -> list[str]:
    records = [json.loads(line) for line in (DATA_DIR / "attractors.jsonl").read_text().splitlines() if line.strip()]
    return [r["text"] for r in records if r["category"] != "control"]


def hf_generate(model, prompts, m, pad_id, batch_size, use_cache=True):
    """Batched greedy `generate` with left padding and no early stop; returns the new tokens."""
    from transformers import GenerationConfig

    config = GenerationConfig(max_new_tokens=m, min_new_tokens=m, do_sample=False, use_cache=use_cache,
                              eos_token_id=None, pad_token_id=pad_id)
    out = []
    for start in range(0, len(prompts), batch_size):
        ids, mask = left_padded(prompts[start:start + batch_size], pad_id)
        with torch.inference_mode():
            generated = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
        out.extend(generated[:, ids.shape[1]:].tolist())
    return out


def teacher_forced_floor(model, prompts, suffixes, pad_id, batch_size):
    """One forward pass over prompt+suffix per batch, logits only at the m suffix positions."""
    m = len(suffixes[0])
    out = []
    for start in range(0, len(prompts), batch_size):
        seqs = [list(p) + list(s)[:-1] for p, s in zip(prompts[start:start + batch_size], suffixes[start:start + batch_size])]
        ids, mask = left_padded(seqs, pad_id)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=m).logits
        out.extend(logits.argmax(-1).tolist())
    return out


def memkit_engine(model, prompts, suffixes, pad_id, batch_size, drafted, **draft_options):
    m = len(suffixes[0])
    out = []
    for start in range(0, len(prompts), batch_size):
        result = greedy_decode(model, prompts[start:start + batch_size], m, pad_id,
                               drafts=suffixes[start:start + batch_size] if drafted else None, **draft_options)
        out.extend(result.generated_ids)
    return out


def build_workloads(lm, n: int, k: int, m: int, batch_size: int, seed: int = 0) -> dict[str, tuple[list, list]]:
    """{workload: (prompts, suffixes)} — see the module docstring."""
    rng = random.Random(seed)
    tokenizer = lm.tokenizer
    specials = leading_special_ids(tokenizer)
    texts = _attractor_texts()
    encoded = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    encoded = [ids for ids in encoded if len(ids) >= k + m]
    prompts = [specials + encoded[i % len(encoded)][:k] for i in range(n)]
    own = memkit_engine(lm.model, prompts, [[0] * m] * n, pad_token_id(tokenizer), batch_size, drafted=False)
    words = " ".join(texts).split()
    shuffled_prompts, shuffled_suffixes = [], []
    while len(shuffled_prompts) < n:
        ids = tokenizer(" ".join(rng.sample(words, 3 * (k + m))), add_special_tokens=False)["input_ids"]
        shuffled_prompts.append(specials + ids[:k])
        shuffled_suffixes.append(ids[k:k + m])
    return {"memorized": (prompts, own), "non-memorized": (shuffled_prompts, shuffled_suffixes)}


def _timed(fn, repeats):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def bench_model(name: str, n: int, k: int, m: int, batch_size: int, repeats: int, nocache_samples: int,
                draft_options: dict | None = None, *, with_census: bool = False) -> list[dict]:
    lm = load_model(name, device="cpu")
    model, pad = lm.model, pad_token_id(lm.tokenizer)
    draft_options = draft_options or {}
    rows = []
    workloads = build_workloads(lm, n, k, m, batch_size)
    warm = workloads["memorized"][0][:2]
    hf_generate(model, warm, 2, pad, 2)  # first calls pay one-time setup costs: keep them out
    hf_generate(model, warm, 2, pad, 2, use_cache=False)
    for workload, (prompts, suffixes) in workloads.items():
        t_gen, reference = _timed(lambda: hf_generate(model, prompts, m, pad, batch_size), repeats)
        few = max(1, min(nocache_samples, n))
        t_nc, nocache = _timed(lambda: hf_generate(model, prompts[:few], m, pad, few, use_cache=False), 1)
        t_plain, plain = _timed(lambda: memkit_engine(model, prompts, suffixes, pad, batch_size, False), repeats)
        t_draft, drafted = _timed(lambda: memkit_engine(model, prompts, suffixes, pad, batch_size, True, **draft_options), repeats)
        t_floor, floor = _timed(lambda: teacher_forced_floor(model, prompts, suffixes, pad, batch_size), repeats)
        timings = {
            "generate": (t_gen, reference == reference),
            "generate_nocache": (t_nc * n / few, nocache == reference[:few]),
            "memkit_plain": (t_plain, plain == reference),
            "memkit_drafted": (t_draft, drafted == reference),
            "floor": (t_floor, floor == reference),
        }
        for method, (seconds, identical) in timings.items():
            if method == "generate_nocache" and few < n:
                rows.append(_row(name, workload, method, n, k, m, batch_size, seconds, t_floor, t_gen, identical,
                                 f"timed on {few} of {n} samples ({t_nc / few:.2f} s each, batch {few}); "
                                 f"seconds = {n} x that", timed=few, measured=t_nc))
            else:
                rows.append(_row(name, workload, method, n, k, m, batch_size, seconds, t_floor, t_gen, identical))
    return rows + (census_rows(lm, n, k, m, batch_size, repeats) if with_census else [])


def _row(model, workload, method, n, k, m, batch_size, seconds, t_floor, t_gen, identical, note="", *,
         timed: int | None = None, measured: float | None = None) -> dict:
    """One table row; `timed`/`measured`: samples actually run and their time when `seconds` is scaled."""
    timed = n if timed is None else timed
    measured = seconds if measured is None else measured
    return {"model": model, "workload": workload, "method": method, "samples": n, "k": k, "m": m,
            "batch_size": batch_size, "seconds": round(seconds, 2), "windows_per_s": round(n / seconds, 2),
            "x_floor": round(seconds / t_floor, 2), "x_generate": round(seconds / t_gen, 2),
            "tokens_identical_to_generate": identical, "timed_samples": timed,
            "seconds_per_sample": round(measured / timed, 3), "scaled": timed != n, "note": note}


def census_rows(lm, n: int, k: int, m: int, batch_size: int, repeats: int) -> list[dict]:
    """The `census` workload: the census screen vs cached HF `generate` and memkit drafted, same windows."""
    windows = census.census_windows(lm, ["attractors", "stdlib"], k=k, m=m, max_windows_per_source=n)[:n]
    prompts, suffixes = [list(w.prompt_ids) for w in windows], [list(w.suffix_ids) for w in windows]
    model, pad = lm.model, pad_token_id(lm.tokenizer)

    def screen():
        frames = [census.screen_batch(lm, [windows[i] for i in batch]) for batch in plan_batches(windows, batch_size)]
        return pd.concat(frames).set_index("id").loc[[w.id for w in windows], "prefix_match_len"].tolist()

    t_gen, reference = _timed(lambda: hf_generate(model, prompts, m, pad, batch_size), repeats)
    t_draft, drafted = _timed(lambda: memkit_engine(model, prompts, suffixes, pad, batch_size, True), repeats)
    t_screen, screened = _timed(screen, repeats)
    leading = [prefix_match_len(g, s) for g, s in zip(reference, suffixes)]
    note = "screen: exact greedy prefix-match lengths from one teacher-forced pass"
    timings = {"generate": (t_gen, True), "memkit_drafted": (t_draft, drafted == reference),
               "census_screen": (t_screen, screened == leading)}
    return [_row(lm.name, "census", method, len(windows), k, m, batch_size, seconds, t_screen, t_gen, identical,
                 note if method == "census_screen" else "")
            for method, (seconds, identical) in timings.items()]


def bench_scaleout(spec: str = "zoo:smoke/100k@final", n: int = 2000, k: int = 32, m: int = 32, *,
                   batch_size: int = 16, chunk_size: int | None = None, actors: int = 2,
                   work: Path = Path("build/bench/scale"),
                   seed: int = 0) -> list[dict]:
    """The same extraction on 1 process x 1 and x 2 threads and on Ray (`actors` x 1 thread); see the docstring."""
    import shutil

    import numpy as np
    import pyarrow.parquet as pq

    from ..core.distributed import run_extraction_ray
    from ..core.extract import run_extraction
    from ..core.sources import open_source

    if spec.startswith("zoo:smoke/"):
        from ..organisms.zoo import build_zoo

        build_zoo("smoke", progress=False)
    lm = load_model(spec, device="cpu", progress=False)
    chunk_size = chunk_size or max(1, n // 16)  # 16 chunks: 8 rounds of 2 actors
    work.mkdir(parents=True, exist_ok=True)
    tokens = work / "tokens.bin"
    np.random.default_rng(seed).integers(0, len(lm.tokenizer), size=(n, k + m)).astype(np.uint16).tofile(tokens)
    source = open_source(tokens, seq_len=k + m)
    config = {"command": "bench-scaleout", "model": spec, "k": k, "m": m, "seed": seed}

    def fresh(name: str) -> Path:
        path = work / name
        path.unlink(missing_ok=True)
        shutil.rmtree(work / f"{name}.parts", ignore_errors=True)
        return path

    rows, saved = [], torch.get_num_threads()
    base = dict(model=spec, workload="scale-out", samples=n, k=k, m=m, batch_size=batch_size, chunk_size=chunk_size)
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            start = time.perf_counter()
            run_extraction(lm, source.samples(lm, k, m), fresh(f"single-{threads}.parquet"), config,
                           batch_size=batch_size, chunk_size=chunk_size, progress=False, return_frame=False)
            seconds = time.perf_counter() - start
            rows.append({**base, "method": f"1 process x {threads} thread{'s' * (threads > 1)}", "cores": threads,
                         "seconds": seconds, "startup_s": 0.0, "samples_per_s": n / seconds})
    finally:
        torch.set_num_threads(saved)
    stats: dict = {}
    run_extraction_ray(spec, source, fresh("ray.parquet"), config, k=k, m=m, num_actors=actors, threads_per_actor=1,
                       batch_size=batch_size, chunk_size=chunk_size, progress=False, return_frame=False, stats=stats)
    arrivals = sorted(stats["chunk_times"], key=lambda mark: mark[2])
    first_round = arrivals[min(actors, len(arrivals)) - 1][2]
    later = sum(samples for _, samples, t in arrivals[actors:])
    # the rate after the first round needs a few more rounds to mean anything
    steady = later / (arrivals[-1][2] - first_round) if len(arrivals) >= 3 * actors else float("nan")
    rows.append({**base, "method": f"ray {actors} actors x 1 thread", "cores": actors,
                 "seconds": stats["end"] - stats["start"], "startup_s": first_round - stats["start"],
                 "samples_per_s": steady})
    reference = pq.read_table(work / "single-1.parquet", columns=["id", "generated_ids"])
    for row, name in zip(rows, ("single-1", "single-2", "ray")):
        row["tokens_identical"] = pq.read_table(work / f"{name}.parquet", columns=["id", "generated_ids"]).equals(reference)
    for row in rows:
        row["speedup"] = row["samples_per_s"] / rows[0]["samples_per_s"]
        row["efficiency"] = row["speedup"] / row["cores"]
        for key in ("seconds", "startup_s", "samples_per_s", "speedup", "efficiency"):
            row[key] = round(row[key], 2)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["gemma-3-270m", "smollm2-135m-instruct"])
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--prefix-tokens", "-k", type=int, default=32)
    parser.add_argument("--suffix-tokens", "-m", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=1, help="median over this many runs per method")
    parser.add_argument("--nocache-samples", type=int, default=2,
                        help="generate_nocache: samples timed per workload (one batch); scaled to --samples")
    parser.add_argument("--first-draft", type=int, default=None, help="override the engine's first probe length")
    parser.add_argument("--draft-growth", type=int, default=None, help="override the engine's chunk growth factor")
    parser.add_argument("--out", type=Path, default=Path("build/bench"))
    parser.add_argument("--scale-samples", type=int, default=2000, help="scale-out rows: samples (0: skip them)")
    parser.add_argument("--scale-model", default="zoo:smoke/100k@final", help="scale-out rows: the model")
    args = parser.parse_args(argv)
    options = {key: value for key, value in (("first_draft", args.first_draft), ("draft_growth", args.draft_growth))
               if value is not None}
    rows = []
    for name in args.models:
        rows += bench_model(name, args.samples, args.prefix_tokens, args.suffix_tokens, args.batch_size,
                            args.repeats, args.nocache_samples, options, with_census=True)
    table = pd.DataFrame(rows)
    table.attrs["threads"] = torch.get_num_threads()
    args.out.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out / "bench.csv") as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(args.out / "bench.md") as tmp:
        tmp.write_text(table.to_markdown(index=False) if _has_tabulate() else table.to_string(index=False))
    shown = table[["model", "workload", "method", "seconds", "x_floor", "x_generate", "tokens_identical_to_generate",
                   "timed_samples", "scaled"]]
    with atomic_path(args.out / "bench.tex") as tmp:
        tmp.write_text(shown.to_latex(index=False, float_format="%.2f"))
    print(f"fp32, {torch.get_num_threads()} threads, {args.samples} samples, k={args.prefix_tokens}, "
          f"m={args.suffix_tokens}, batch {args.batch_size}")
    print(shown.to_string(index=False))
    for row in table[table["scaled"]].itertuples():
        print(f"scaled, not measured: {row.model} {row.workload} {row.method}: {row.note}")
    print(f"written: {args.out}/bench.csv, bench.md, bench.tex")
    if args.scale_samples:
        scale = pd.DataFrame(bench_scaleout(args.scale_model, args.scale_samples, work=args.out / "scale"))
        with atomic_path(args.out / "scale.csv") as tmp:
            scale.to_csv(tmp, index=False)
        with atomic_path(args.out / "scale.md") as tmp:
            tmp.write_text(scale.to_markdown(index=False) if _has_tabulate() else scale.to_string(index=False))
        print(scale[["model", "method", "seconds", "startup_s", "samples_per_s", "speedup", "efficiency",
                     "tokens_identical"]].to_string(index=False))
        print(f"written: {args.out}/scale.csv, scale.md")
    return 0


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    raise SystemExit(main())
