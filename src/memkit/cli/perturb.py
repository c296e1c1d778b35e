"""`memkit perturb`: extraction under a controlled perturbation (action) -> parquet."""

from __future__ import annotations

import argparse
import shutil

from ..dynamics.action_kinds import API_ONLY_KINDS, KINDS
from .args import add_model_args, add_sample_args, emit, guard_output, load, non_negative_float
from .extract import run_config

CLI_KINDS = tuple(k for k in KINDS if k not in API_ONLY_KINDS)


def register(sub) -> None:
    parser = sub.add_parser("perturb", help="extraction under a controlled perturbation (action) -> parquet",
                            description="Like `extract`, but with an action of magnitude alpha applied at the token, "
                                        "embedding or logit level, or a forced wrong token mid-sequence. Adds the "
                                        "action and the divergence step from the clean run to each row. "
                                        "(embed_direction needs a direction vector: Python API only.)")
    add_model_args(parser)
    add_sample_args(parser)
    parser.add_argument("--action", required=True, metavar="KIND", choices=CLI_KINDS,
                        help="one of: " + ", ".join(CLI_KINDS))
    parser.add_argument("--alpha", required=True, type=non_negative_float,
                        help="magnitude >= 0 (token kinds: fraction of prefix tokens; embedding kinds: multiple "
                             "of the mean hidden-state norm; logit kinds: logit offset; force_token: tokens forced)")
    parser.add_argument("--layer", type=int, help="decoder block for embedding actions (0-based)")
    parser.add_argument("--position", type=int,
                        help="token kinds: where the shock segment goes; embedding kinds: first prompt position "
                             "edited; force_token: continuation step of the shock")
    parser.add_argument("--seed", type=int, default=0, help="seed of the action's random choices (default 0)")
    parser.set_defaults(func=run, writes_file=True)


def run(args: argparse.Namespace) -> None:
    from ..dynamics.actions import Action
    from ..core.extract import write_table
    from ..core.samples import make_samples, read_jsonl
    from ..dynamics.perturb import code_version, perturb

    action = Action(args.action, alpha=args.alpha, layer=args.layer, position=args.position, seed=args.seed)
    guard_output(args.out, args.input)
    records = read_jsonl(args.input)
    lm = load(args)
    samples = make_samples(lm, records, k=args.prefix_tokens, m=args.suffix_tokens, mode=args.mode)
    config = {**run_config(args, lm, "perturb"), "perturb_code": code_version()}
    # the resumable clean and perturbed runs live in <out>.parts/ until the final table is written
    parts = args.out.with_name(args.out.name + ".parts")
    parts.mkdir(exist_ok=True)
    frame = perturb(lm, samples, action, batch_size=args.batch_size, progress=not args.no_progress,
                    cache_prefix=parts / "run", config=config)
    write_table(frame, args.out, {**config, "action": action.kind, "alpha": action.alpha})
    shutil.rmtree(parts, ignore_errors=True)
    retained = frame["token_match"].mean()
    diverged = (frame["divergence_step"] >= 0).mean()
    emit(f"{args.out}: {len(frame)} samples, {action.kind} alpha={action.alpha:g}: token_match {retained:.3f}, "
         f"exact_match {frame['exact_match'].mean():.3f}, diverged from clean {diverged:.3f}")
