"""`memkit lens`: teacher-forced logit lens -> parquet (rank/probability of the true token per layer)."""

from __future__ import annotations

import argparse

from .args import add_model_args, add_sample_args, emit, guard_output, layer_list, load


def register(sub) -> None:
    parser = sub.add_parser("lens", help="logit lens: rank/probability of the true continuation per layer -> parquet",
                            description="Teacher-forced logit lens over prefix + true suffix: for every layer and "
                                        "continuation position, the rank and probability of the true token when the "
                                        "layer's residual stream is decoded with the model's final norm and "
                                        "unembedding.")
    add_model_args(parser)
    add_sample_args(parser)
    parser.add_argument("--layers", type=layer_list, help="comma-separated layers (default: all)")
    parser.set_defaults(func=run, writes_file=True)


def run(args: argparse.Namespace) -> None:
    from ..core.extract import write_table
    from ..core.samples import make_samples, read_jsonl
    from ..mechanisms.lens import lock_in, logit_lens

    guard_output(args.out, args.input)
    records = read_jsonl(args.input)
    lm = load(args)
    samples = make_samples(lm, records, k=args.prefix_tokens, m=args.suffix_tokens, mode=args.mode)
    frame = logit_lens(lm, samples, layers=args.layers, batch_size=args.batch_size, progress=not args.no_progress)
    frame.insert(1, "model", lm.name)
    write_table(frame, args.out)
    locked = lock_in(frame)
    final = locked[locked["final_top1"]]
    median = f"{final['lock_in'].median():.1f}" if len(final) else "--"
    emit(f"{args.out}: {len(samples)} samples x {frame['layer'].nunique()} layers x {args.suffix_tokens} positions; "
         f"true token top-1 at the last layer {locked['final_top1'].mean():.3f}, median lock-in layer {median}")
