"""`memkit zoo build|list`: the model organisms (see memkit.organisms.zoo)."""

from __future__ import annotations

import argparse

from .args import emit, positive_int


def register(sub) -> None:
    zoo = sub.add_parser("zoo", help="train and list the model organisms (Pythia-architecture zoo)",
                         description="Model organisms: GPT-NeoX models of several sizes trained on the KJV corpus "
                                     "with inserted canaries. Load them as zoo:[<profile>/]<size>[@<step>|@final].")
    zoo_sub = zoo.add_subparsers(dest="zoo_command", required=True, metavar="ACTION")
    build = zoo_sub.add_parser("build", help="train every size of a profile (resumes a killed build)",
                               description="Train the zoo of a profile into the cache (skips what is built).")
    build.add_argument("--profile", default="paper", help="smoke (~1 minute) or paper (default; <= 15 minutes)")
    build.add_argument("--workers", type=positive_int, default=None,
                       help="parallel training processes (default: min(2, CPUs)); the weights do not depend on it")
    build.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    build.set_defaults(func=run_build)
    listing = zoo_sub.add_parser("list", help="list the zoos in the cache", description="List built zoo checkpoints.")
    listing.set_defaults(func=run_list)


def run_build(args: argparse.Namespace) -> None:
    from ..organisms.zoo import build_zoo, get_profile, zoo_info

    get_profile(args.profile)  # unknown profile: one clear line before any work
    root = build_zoo(args.profile, progress=not args.no_progress, workers=args.workers)
    info = zoo_info(args.profile)
    for size, row in info["sizes"].items():
        emit(f"zoo:{args.profile}/{size}: {row['non_embedding_params']:,} non-embedding params, {row['steps']} steps, "
             f"final loss {row['final_loss']:.3f}, checkpoints {row['checkpoints']}")
    emit(f"{root} (built in {info['wall_seconds']:.0f} s)")


def run_list(args: argparse.Namespace) -> None:
    from ..organisms.zoo import list_zoo

    rows = list_zoo()
    if not rows:
        emit("no zoo built yet: run `memkit zoo build --profile smoke` (or paper)")
        return
    emit(f"{'spec':24} {'non-emb params':>14} {'status':10} {'checkpoints':40} zoo")
    for row in rows:
        spec = f"zoo:{row['profile']}/{row['size']}"
        status = ("complete" if row["complete"] else "partial") if row["current"] else "stale"
        params = f"{row['non_embedding_params']:,}" if row["non_embedding_params"] else "?"
        emit(f"{spec:24} {params:>14} {status:10} {','.join(map(str, row['checkpoints'])) or '-':40} {row['zoo']}")
