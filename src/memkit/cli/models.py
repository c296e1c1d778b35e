"""`memkit models`: the embedded models and every model converted into the cache."""

from __future__ import annotations

import argparse

from .args import emit


def register(sub) -> None:
    parser = sub.add_parser("models", help="list embedded and cached models",
                            description="List the embedded models and every model converted into the cache.")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from ..core.models import list_models

    emit(f"{'name':28} {'params':>12} {'arch':14} {'type':9} {'cached':6}  location")
    for row in list_models():
        params = f"{row['params'] / 1e6:.1f}M" if row["params"] else "?"
        emit(f"{row['name']:28} {params:>12} {row['arch'] or '?':14} {row['type'] or '?':9} "
             f"{'yes' if row['cached'] else 'no':6}  {row['location']}")
