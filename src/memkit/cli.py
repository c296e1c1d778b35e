"""Command line: `memkit models`, `memkit extract`, `memkit zoo build|list`, ... (see `memkit <command> --help`).

Every user error ends as one line on stderr and exit code 2, with no partial output.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

from .errors import MemkitError


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True,
                        help="embedded name (gemma-3-270m, smollm2-135m-instruct), a model folder, a .gguf file, "
                             "zoo:<size>@<step>, or a hub id together with --online")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    parser.add_argument("--dtype", default="float32", help="float32 (default; CPU always), bfloat16 or float16 on CUDA")
    parser.add_argument("--online", action="store_true", help="allow downloading a hub model (offline by default)")


def _add_sample_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, type=Path,
                        help='JSONL, one record per line: {"id","text"} or {"id","prefix","suffix"}')
    parser.add_argument("--out", required=True, type=Path, help="output parquet file (written atomically)")
    parser.add_argument("--prefix-tokens", "-k", type=_positive_int, default=32, help="prefix length k (default 32)")
    parser.add_argument("--suffix-tokens", "-m", type=_positive_int, default=64, help="continuation length m (default 64)")
    parser.add_argument("--batch-size", type=_positive_int, default=16, help="samples per batch (default 16)")
    parser.add_argument("--mode", choices=("raw", "chat"), default="raw",
                        help="raw: prefix as-is; chat: prefix as a user message via the chat template")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="memkit", description="Measure verbatim memorization in causal LMs.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    models = sub.add_parser("models", help="list embedded and cached models",
                            description="List the embedded models and every model converted into the cache.")
    models.set_defaults(func=cmd_models)

    extract = sub.add_parser("extract", help="greedy extraction + memorization metrics -> parquet",
                             description="Greedy-decode m tokens after the k-token prefix of every record and "
                                         "write one metrics row per record. Rerunning with the same arguments "
                                         "resumes where a killed run stopped.")
    _add_model_args(extract)
    _add_sample_args(extract)
    extract.add_argument("--engine", choices=("drafted", "plain"), default="drafted",
                         help="drafted (default): verify the true suffix in chunks; plain: one token per step. "
                              "Both give the same tokens.")
    extract.set_defaults(func=cmd_extract)

    from .actions import KINDS

    perturb = sub.add_parser("perturb", help="extraction under a controlled perturbation (action) -> parquet",
                             description="Like `extract`, but with an action of magnitude alpha applied at the "
                                         "token, embedding or logit level, or a forced wrong token mid-sequence. "
                                         "Adds the action and the divergence step from the clean run to each row.")
    _add_model_args(perturb)
    _add_sample_args(perturb)
    perturb.add_argument("--action", required=True, metavar="KIND", help="one of: " + ", ".join(KINDS))
    perturb.add_argument("--alpha", required=True, type=float,
                         help="magnitude >= 0 (token kinds: fraction of prefix tokens; embedding kinds: multiple "
                              "of the mean hidden-state norm; logit kinds: logit offset; force_token: tokens forced)")
    perturb.add_argument("--layer", type=int, help="decoder block for embedding actions (0-based)")
    perturb.add_argument("--position", type=int,
                         help="token kinds: where the shock segment goes; embedding kinds: first prompt position "
                              "edited; force_token: continuation step of the shock")
    perturb.add_argument("--seed", type=int, default=0, help="seed of the action's random choices (default 0)")
    perturb.set_defaults(func=cmd_perturb)
    _add_zoo_parser(sub)
    from .cli_mech import add_mech_parsers  # lens, ablate, edit

    add_mech_parsers(sub)
    return parser


def _add_zoo_parser(sub) -> None:
    """`memkit zoo build|list`: the organisms (see memkit.zoo)."""
    zoo = sub.add_parser("zoo", help="train and list the model organisms (Pythia-architecture zoo)",
                         description="Model organisms: GPT-NeoX models of several sizes trained on the KJV corpus "
                                     "with inserted canaries. Load them as zoo:[<profile>/]<size>[@<step>|@final].")
    zoo_sub = zoo.add_subparsers(dest="zoo_command", required=True, metavar="ACTION")
    build = zoo_sub.add_parser("build", help="train every size of a profile (resumes a killed build)",
                               description="Train the zoo of a profile into the cache (skips what is built).")
    build.add_argument("--profile", default="paper", help="smoke (~1 minute) or paper (default; <= 15 minutes)")
    build.add_argument("--workers", type=_positive_int, default=None,
                       help="parallel training processes (default: min(2, CPUs)); the weights do not depend on it")
    build.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    build.set_defaults(func=cmd_zoo_build)
    listing = zoo_sub.add_parser("list", help="list the zoos in the cache", description="List built zoo checkpoints.")
    listing.set_defaults(func=cmd_zoo_list)


def cmd_models(args: argparse.Namespace) -> None:
    from .models import list_models

    rows = list_models()
    header = f"{'name':28} {'params':>12} {'arch':14} {'type':9} {'cached':6}  location"
    print(header)
    for row in rows:
        params = f"{row['params'] / 1e6:.1f}M" if row["params"] else "?"
        print(f"{row['name']:28} {params:>12} {row['arch'] or '?':14} {row['type'] or '?':9} "
              f"{'yes' if row['cached'] else 'no':6}  {row['location']}")


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_output_path(out: Path) -> None:
    if not out.parent.resolve().is_dir():
        raise MemkitError(f"output directory does not exist: {out.parent}")
    if out.is_dir():
        raise MemkitError(f"output {out} is a directory; give the path of a .parquet file")


def cmd_extract(args: argparse.Namespace) -> None:
    from .extract import run_extraction
    from .models import load_model
    from .samples import make_samples, read_jsonl

    check_output_path(args.out)
    records = read_jsonl(args.input)
    lm = load_model(args.model, device=args.device, dtype=args.dtype, online=args.online)
    samples = make_samples(lm, records, k=args.prefix_tokens, m=args.suffix_tokens, mode=args.mode)
    config = {"command": "extract", "model": lm.name, "model_sha256": lm.sha256, "dtype": args.dtype,
              "input_sha256": _file_sha256(args.input), "k": args.prefix_tokens, "m": args.suffix_tokens,
              "mode": args.mode}
    frame = run_extraction(lm, samples, args.out, config, batch_size=args.batch_size,
                           fast=args.engine == "drafted", progress=not args.no_progress)
    summary = frame[["exact_match", "token_match", "near_verbatim"]].mean()
    print(f"{args.out}: {len(frame)} samples, exact_match {summary['exact_match']:.3f}, "
          f"token_match {summary['token_match']:.3f}, near_verbatim {summary['near_verbatim']:.3f}, "
          f"near-ties {int(frame['near_tie'].sum())} (top-2 logit gap < 1e-4: batch shape could flip those argmaxes)")


def cmd_perturb(args: argparse.Namespace) -> None:
    from .actions import Action, check_layer
    from .models import load_model
    from .perturb import perturb
    from .samples import make_samples, read_jsonl

    action = Action(args.action, alpha=args.alpha, layer=args.layer, position=args.position, seed=args.seed)
    check_output_path(args.out)
    records = read_jsonl(args.input)
    lm = load_model(args.model, device=args.device, dtype=args.dtype, online=args.online)
    check_layer(lm, args.layer)
    samples = make_samples(lm, records, k=args.prefix_tokens, m=args.suffix_tokens, mode=args.mode)
    config = {"command": "perturb", "model": lm.name, "model_sha256": lm.sha256, "dtype": args.dtype,
              "input_sha256": _file_sha256(args.input), "k": args.prefix_tokens, "m": args.suffix_tokens,
              "mode": args.mode}
    # resumable intermediate runs live next to the output; the final table is written atomically
    frame = perturb(lm, samples, action, batch_size=args.batch_size, progress=not args.no_progress,
                    cache_prefix=args.out.parent / f".{args.out.name}", config=config)
    from .paths import atomic_path

    with atomic_path(args.out) as tmp:
        frame.to_parquet(tmp, index=False)
    retained = frame["token_match"].mean()
    diverged = (frame["divergence_step"] >= 0).mean()
    print(f"{args.out}: {len(frame)} samples, {action.kind} alpha={action.alpha:g}: token_match {retained:.3f}, "
          f"exact_match {frame['exact_match'].mean():.3f}, diverged from clean {diverged:.3f}")


def cmd_zoo_build(args: argparse.Namespace) -> None:
    from .zoo import build_zoo, get_profile, zoo_info

    get_profile(args.profile)  # unknown profile: one clear line before any work
    root = build_zoo(args.profile, progress=not args.no_progress, workers=args.workers)
    info = zoo_info(args.profile)
    for size, row in info["sizes"].items():
        print(f"zoo:{args.profile}/{size}: {row['non_embedding_params']:,} non-embedding params, {row['steps']} steps, "
              f"final loss {row['final_loss']:.3f}, checkpoints {row['checkpoints']}")
    print(f"{root} (built in {info['wall_seconds']:.0f} s)")


def cmd_zoo_list(args: argparse.Namespace) -> None:
    from .zoo import list_zoo

    rows = list_zoo()
    if not rows:
        print("no zoo built yet: run `memkit zoo build --profile smoke` (or paper)")
        return
    print(f"{'spec':24} {'non-emb params':>14} {'status':10} {'checkpoints':40} zoo")
    for row in rows:
        spec = f"zoo:{row['profile']}/{row['size']}"
        status = ("complete" if row["complete"] else "partial") if row["current"] else "stale"
        params = f"{row['non_embedding_params']:,}" if row["non_embedding_params"] else "?"
        print(f"{spec:24} {params:>14} {status:10} {','.join(map(str, row['checkpoints'])) or '-':40} {row['zoo']}")


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except MemkitError as exc:
        print(f"memkit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("memkit: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
