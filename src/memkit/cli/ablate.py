"""`memkit ablate`: zero- or mean-ablate attention heads one at a time -> parquet."""

from __future__ import annotations

import argparse
from pathlib import Path

from .args import (PROMPT_MODES, PROMPT_MODES_HELP, add_io_args, add_model_args, emit, guard_output, head_list, load,
                   read_text_file)


def register(sub) -> None:
    parser = sub.add_parser("ablate", help="ablate attention heads one at a time -> parquet",
                            description="Zero- or mean-ablate each attention head in turn and record the change in "
                                        "teacher-forced log-probability of the true suffix and in greedy retention.")
    add_model_args(parser)
    add_io_args(parser, m_default=32)
    parser.add_argument("--mode", choices=("zero", "mean"), default="zero", help="ablation: zero or mean (default zero)")
    parser.add_argument("--prompt", choices=PROMPT_MODES, default="raw", help="prompt mode: " + PROMPT_MODES_HELP)
    parser.add_argument("--heads", type=head_list, help="only these heads, LAYER:HEAD,... (default: every head)")
    parser.add_argument("--mean-text", type=Path,
                        help="text file for the head means of --mode mean (default: Python's pydoc topics)")
    parser.add_argument("--no-greedy", action="store_true", help="teacher-forced scores only (no greedy decoding)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.set_defaults(func=run, writes_file=True)


def run(args: argparse.Namespace) -> None:
    from ..mechanisms.ablation import head_means, head_scan
    from ..core.extract import write_table
    from ..core.samples import make_samples, read_jsonl
    from ..core.text import generic_texts

    guard_output(args.out, args.input, args.mean_text)
    records = read_jsonl(args.input)
    mean_text = read_text_file(args.mean_text) if args.mean_text is not None else None
    lm = load(args)
    samples = make_samples(lm, records, k=args.prefix_tokens, m=args.suffix_tokens, mode=args.prompt)
    means = None
    if args.mode == "mean":
        means = head_means(lm, [mean_text] if mean_text is not None else generic_texts("fit"))
    frame = head_scan(lm, samples, mode=args.mode, means=means, heads=args.heads, greedy=not args.no_greedy,
                      batch_size=args.batch_size, progress=not args.no_progress)
    frame.insert(1, "model", lm.name)
    write_table(frame, args.out)
    effects = frame[frame["layer"] >= 0].groupby(["layer", "head"])["delta_logprob"].mean()
    worst = effects.idxmin()
    emit(f"{args.out}: {len(samples)} samples x {len(effects)} heads ({args.mode} ablation); largest mean drop in "
         f"suffix log-prob: layer {worst[0]} head {worst[1]} ({effects.min():.3f} nats)")
