"""`memkit zoo build|list`: the model organisms (see memkit.organisms.zoo)."""

from __future__ import annotations

import argparse

from .args import emit, positive_int


def register(sub) -> None:
    zoo = sub.add_parser("zoo", help="train and list the model organisms (Pythia-architecture zoo)",
                         description="Model organisms: GPT-NeoX models of several sizes trained on the KJV corpus "
                                     "with inserted canaries, several seeds per size, the learning rate of each size "
                                     "chosen by a sweep. Load them as zoo:[<profile>/]<size>[-s<seed>][@<step>|@final].")
    zoo_sub = zoo.add_subparsers(dest="zoo_command", required=True, metavar="ACTION")
    build = zoo_sub.add_parser("build", help="sweep the LR, train every size x seed of a profile (resumes)",
                               description="Train the zoo of a profile into the cache: the learning-rate sweep, "
                                           "then every size x seed (skips what is built, resumes killed runs).")
    build.add_argument("--profile", default="paper", help="smoke (a few minutes) or paper (default; about 25 minutes on 2 cores)")
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
        for seed, run in row["seeds"].items():
            final = run["heldout_loss"][str(run["steps"])]
            emit(f"zoo:{args.profile}/{size}-s{seed}: {row['non_embedding_params']:,} non-embedding params, "
                 f"lr {row['lr']:g} (sweep), {run['steps']} steps, held-out loss {final:.3f}")
    emit(f"{root} (built in {info['wall_seconds']:.0f} s)")


def run_list(args: argparse.Namespace) -> None:
    from ..organisms.zoo import list_zoo

    rows = list_zoo()
    if not rows:
        emit("no zoo built yet: run `memkit zoo build --profile smoke` (or paper)")
        return
    emit(f"{'spec':24} {'non-emb params':>14} {'status':10} {'checkpoints':40} zoo")
    for row in rows:
        spec = f"zoo:{row['profile']}/{row['size']}-s{row['seed']}"
        status = ("complete" if row["complete"] else "partial") if row["current"] else "stale"
        params = f"{row['non_embedding_params']:,}" if row["non_embedding_params"] else "?"
        emit(f"{spec:24} {params:>14} {status:10} {','.join(map(str, row['checkpoints'])) or '-':40} {row['zoo']}")
