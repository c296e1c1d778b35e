"""`memkit extract`: greedy extraction and every memorization metric -> one parquet row per record."""

from __future__ import annotations

import argparse

from .args import add_model_args, add_sample_args, emit, file_sha256, guard_output, load


def register(sub) -> None:
    parser = sub.add_parser("extract", help="greedy extraction + memorization metrics -> parquet",
                            description="Greedy-decode m tokens after the k-token prefix of every record and write "
                                        "one metrics row per record. Rerunning with the same arguments resumes where "
                                        "a killed run stopped.")
    add_model_args(parser)
    add_sample_args(parser)
    parser.add_argument("--engine", choices=("drafted", "plain"), default="drafted",
                        help="drafted (default): verify the true suffix in chunks; plain: one token per step. "
                             "Both give the same tokens.")
    parser.set_defaults(func=run, writes_file=True)


def run_config(args: argparse.Namespace, lm, command: str) -> dict:
    """What decides a resumable run's results: a changed model, input, setting or code starts afresh."""
    from ..core import extract as extraction

    return {"command": command, "model": lm.name, "model_sha256": lm.sha256, "dtype": args.dtype,
            "input_sha256": file_sha256(args.input), "k": args.prefix_tokens, "m": args.suffix_tokens,
            "mode": args.mode, "code": extraction.code_version()}


def run(args: argparse.Namespace) -> None:
    from ..core.extract import run_extraction
    from ..core.samples import make_samples, read_jsonl

    guard_output(args.out, args.input)
    records = read_jsonl(args.input)
    lm = load(args)
    samples = make_samples(lm, records, k=args.prefix_tokens, m=args.suffix_tokens, mode=args.mode)
    frame = run_extraction(lm, samples, args.out, run_config(args, lm, "extract"), batch_size=args.batch_size,
                           fast=args.engine == "drafted", progress=not args.no_progress)
    summary = frame[["exact_match", "token_match", "near_verbatim"]].mean()
    emit(f"{args.out}: {len(frame)} samples, exact_match {summary['exact_match']:.3f}, "
         f"token_match {summary['token_match']:.3f}, near_verbatim {summary['near_verbatim']:.3f}, "
         f"near-ties {int(frame['near_tie'].sum())} (top-2 logit gap < 1e-4: batch shape could flip those argmaxes)")
