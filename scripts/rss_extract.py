"""Peak resident memory of `memkit extract` on pre-tokenized inputs of growing size.

    .venv/bin/python scripts/rss_extract.py                      # 20k and 200k samples (a few minutes)
    .venv/bin/python scripts/rss_extract.py --sizes 2000 20000 --out build/rss

For each size N: a uint16 token memmap of N sequences of k+m tokens (random ids of the tiny
test model's vocabulary), then `memkit extract --input tokens.bin --seq-len k+m` in a child
process; its peak RSS is the child's own `ru_maxrss` (from `os.wait4`, so one run's peak is
not mixed with another's). Streaming works if the peak does not grow with N. The model is
the 2-layer GPT-NeoX the test suite builds (tests/conftest.py), so decoding is cheap and the
run is dominated by reading, bookkeeping and writing -- where a leak in N would show.
Results: a table on stdout and `<out>/rss.csv`.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build_model(folder: Path) -> Path:
    if not (folder / "model.safetensors").exists():
        sys.path.insert(0, str(ROOT / "tests"))
        from conftest import build_tiny_model  # the test suite's tiny model, built from scratch

        build_tiny_model(folder)
    return folder


def write_tokens(path: Path, n: int, width: int, vocab: int = 512, seed: int = 0) -> Path:
    import numpy as np

    rng = np.random.default_rng(seed)
    with open(path, "wb") as fh:
        for start in range(0, n, 100_000):  # written in slices: the generator's memory stays flat too
            rng.integers(3, vocab, size=(min(n, start + 100_000) - start, width), dtype=np.uint16).tofile(fh)
    return path


def measure(model: Path, tokens: Path, out: Path, k: int, m: int, batch_size: int, chunk_size: int,
            extra: list[str]) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of one `memkit extract` child process."""
    argv = [sys.executable, "-m", "memkit.cli", "extract", "--model", str(model), "--input", str(tokens),
            "--seq-len", str(k + m), "-k", str(k), "-m", str(m), "--out", str(out), "--batch-size", str(batch_size),
            "--chunk-size", str(chunk_size), "--no-progress", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "TOKENIZERS_PARALLELISM": "false"}
    start = time.perf_counter()
    child = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    summary = child.stdout.read().decode().strip()
    child.stdout.close()
    if status != 0:
        raise SystemExit(f"memkit extract failed (status {status})")
    print(f"  {summary}", file=sys.stderr)
    return usage.ru_maxrss / 1024, seconds  # ru_maxrss is in KB on Linux


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 200_000])
    parser.add_argument("-k", type=int, default=8)
    parser.add_argument("-m", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--chunk-size", type=int, default=4096)
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "rss")
    args, extra = parser.parse_known_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    model = build_model(args.out / "tiny-model")
    rows = []
    for n in args.sizes:
        tokens = write_tokens(args.out / f"tokens-{n}.bin", n, args.k + args.m)
        result = args.out / f"result-{n}.parquet"
        result.unlink(missing_ok=True)
        rss, seconds = measure(model, tokens, result, args.k, args.m, args.batch_size, args.chunk_size, extra)
        rows.append({"samples": n, "peak_rss_mb": round(rss, 1), "seconds": round(seconds, 1),
                     "samples_per_s": round(n / seconds), "input_mb": round(tokens.stat().st_size / 1e6, 1),
                     "output_mb": round(result.stat().st_size / 1e6, 1)})
        print(rows[-1], flush=True)
    with open(args.out / "rss.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"written: {args.out / 'rss.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
