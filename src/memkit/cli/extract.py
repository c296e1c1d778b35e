"""`memkit extract`: greedy extraction and every memorization metric -> one parquet row per record."""

from __future__ import annotations

import argparse

from .args import (add_model_args, add_ray_args, add_sample_args, add_source_args, emit, guard_output,
                   load)


def register(sub) -> None:
    parser = sub.add_parser("extract", help="greedy extraction + memorization metrics -> parquet",
                            description="Greedy-decode m tokens after the k-token prefix of every record and write "
                                        "one metrics row per record. Rerunning with the same arguments resumes where "
                                        "a killed run stopped. Inputs of any size are read chunk by chunk; --ray "
                                        "spreads the chunks over a Ray actor pool.")
    add_model_args(parser)
    add_sample_args(parser)
    add_source_args(parser)
    parser.add_argument("--engine", choices=("drafted", "plain"), default="drafted",
                        help="drafted (default): verify the true suffix in chunks; plain: one token per step. "
                             "Both give the same tokens.")
    add_ray_args(parser)
    parser.set_defaults(func=run, writes_file=True)


def run_config(args: argparse.Namespace, lm, command: str, source=None) -> dict:
    """What decides a resumable run's results: a changed model, input, setting or code starts afresh.

    `source` (memkit.core.sources): its fingerprint and reading settings replace the input
    file's sha256 (the same value for a JSONL file).
    """
    from ..core import extract as extraction
    from ..core.models import file_sha256

    config = {"command": command, "model": lm.name, "model_sha256": lm.sha256, "dtype": args.dtype,
              "input_sha256": file_sha256(args.input) if source is None else source.sha256(),
              "k": args.prefix_tokens, "m": args.suffix_tokens, "mode": args.mode, "code": extraction.code_version()}
    return config if source is None else {**config, **source.describe()}


def run(args: argparse.Namespace) -> None:
    from ..core.decode import NEAR_TIE
    from ..core.extract import run_extraction, summarize
    from ..core.sources import open_source

    guard_output(args.out, args.input, args.indices)
    source = open_source(args.input, kind=args.input_format, seq_len=args.seq_len, indices=args.indices,
                         dtype=args.dtype_tokens)
    k, m = args.prefix_tokens, args.suffix_tokens
    source.scan(k, m)  # every record checked before a model is loaded
    options = dict(batch_size=args.batch_size, fast=args.engine == "drafted", progress=not args.no_progress,
                   chunk_size=args.chunk_size, return_frame=False)
    if args.ray is not None:
        from ..core.distributed import model_info, run_extraction_ray, stderr_to_log

        pickle = getattr(args, "allow_pickle", None)
        config = run_config(args, model_info(args.model, args.online, pickle), "extract", source)
        with stderr_to_log(args.out):
            run_extraction_ray(args.model, source, args.out, config, k=k, m=m, mode=args.mode,
                               num_actors=args.num_actors, threads_per_actor=args.threads_per_actor,
                               device=args.device, dtype=args.dtype, address=args.ray, online=args.online,
                               allow_pickle=pickle, **options)
    else:
        lm = load(args)
        stream = source.samples(lm, k, m, args.mode)
        run_extraction(lm, stream, args.out, run_config(args, lm, "extract", source), **options)
    summary = summarize(args.out)
    emit(f"{args.out}: {summary['samples']} samples, exact_match {summary['exact_match']:.3f}, "
         f"token_match {summary['token_match']:.3f}, near_verbatim {summary['near_verbatim']:.3f}, "
         f"near-ties {summary['near_ties']} (top-2 logit gap < {NEAR_TIE:g}: batch shape could flip those argmaxes)")
