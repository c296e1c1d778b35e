"""`memkit census`: screen windows of widely copied texts, confirm by greedy decoding, report rates."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import MemkitError
from .args import (PROMPT_MODES, PROMPT_MODES_HELP, add_model_args, check_writable_dir, emit, fraction, load,
                   non_negative_int, positive_int)

#: Kept here (not imported from memkit.census) so `--help` and usage errors never import torch or pandas.
SOURCE_NAMES = ("kjv-famous", "kjv", "licenses", "stdlib", "attractors")


def source_list(text: str) -> list[str]:
    """`kjv,licenses` -> ["kjv", "licenses"]; unknown, repeated or no names are usage errors."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in SOURCE_NAMES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown source {unknown[0]!r}; choose from {','.join(SOURCE_NAMES)}")
    if not names or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"give each source once, comma-separated (got {text!r})")
    return names


def register(sub) -> None:
    parser = sub.add_parser("census", help="memorization census of famous texts, licences and code -> rates",
                            description="Cut the chosen sources into k+m token windows, screen them all with one "
                                        "teacher-forced pass, decode the candidates and a random sample of the rest, "
                                        "and write DIR/screen.parquet, confirmed.parquet, rates.csv (memorization "
                                        "rates per source with Wilson 95%% CIs). Rerunning resumes a killed run.")
    add_model_args(parser)
    parser.add_argument("--out", required=True, type=Path, help="output folder (created if missing)")
    parser.add_argument("--sources", type=source_list, default=list(SOURCE_NAMES),
                        help=f"comma-separated sources (default: all of {','.join(SOURCE_NAMES)})")
    parser.add_argument("--prefix-tokens", "-k", type=positive_int, default=32, help="prefix length k (default 32)")
    parser.add_argument("--suffix-tokens", "-m", type=positive_int, default=32, help="continuation length m (default 32)")
    parser.add_argument("--max-windows-per-source", type=positive_int, default=500,
                        help="windows screened per source at most: openings first, then a seeded sample (default 500)")
    parser.add_argument("--screen-prefix", type=non_negative_int, default=16,
                        help="decode windows whose greedy prefix match is >= L tokens (default 16)")
    parser.add_argument("--screen-accuracy", type=fraction, default=0.7,
                        help="... or whose teacher-forced top-1 accuracy is >= a (default 0.7)")
    parser.add_argument("--recall-sample", type=fraction, default=0.05,
                        help="fraction of the other windows decoded to measure the screen's recall (default 0.05, "
                             "at least --recall-min)")
    parser.add_argument("--recall-min", type=non_negative_int, default=200, help="at least this many (default 200)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the window and recall samples")
    parser.add_argument("--mode", choices=PROMPT_MODES, default="raw", help=PROMPT_MODES_HELP)
    parser.add_argument("--windows-from", type=Path,
                        help="reuse the window texts of an earlier census folder (e.g. another model's) "
                             "instead of cutting the sources with this model's tokenizer")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="windows per batch (default 8)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.set_defaults(func=run, writes_file=True)


def check_out_dir(out: Path) -> None:
    """The output folder: an existing folder or a new one in an existing, writable folder."""
    if out.exists() and not out.is_dir():
        raise MemkitError(f"--out {out} is a file; give a folder for the census outputs")
    if not out.parent.resolve().is_dir():
        raise MemkitError(f"output directory does not exist: {out.parent}")
    check_writable_dir(out if out.is_dir() else out.parent)


def run(args: argparse.Namespace) -> None:
    from .. import census

    check_out_dir(args.out)
    if args.windows_from is not None:
        census.read_census(args.windows_from, "screen.parquet")  # fails before the model loads
    lm = load(args)
    k, m = args.prefix_tokens, args.suffix_tokens
    if args.windows_from is not None:
        windows = census.windows_from_census(lm, args.windows_from, k=k, m=m, mode=args.mode)
        known = len(census.read_census(args.windows_from, "screen.parquet"))
        emit(f"reusing {len(windows)} of the {known} windows of {args.windows_from} "
             f"(the others give fewer than k+m = {k + m} tokens with this tokenizer)")
    else:
        windows = census.census_windows(lm, args.sources, k=k, m=m, max_windows_per_source=args.max_windows_per_source,
                                        seed=args.seed, mode=args.mode)
    args.out.mkdir(exist_ok=True)
    result = census.run_census(lm, windows, args.out, screen_prefix=args.screen_prefix,
                               screen_accuracy=args.screen_accuracy, recall_fraction=args.recall_sample,
                               recall_min=args.recall_min, seed=args.seed, batch_size=args.batch_size,
                               progress=not args.no_progress)
    for line in census.summary_lines(result):
        emit(line)
    emit(f"written: {args.out}/screen.parquet, confirmed.parquet, rates.csv, recall.csv, census.json")
