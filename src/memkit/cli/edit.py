"""`memkit edit`: K-FAC curvature edit of the MLP weights -> a new safetensors model folder."""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

from .args import add_model_args, emit, fraction, guard_output, layer_list, load, positive_int, read_text_file


def register(sub) -> None:
    parser = sub.add_parser("edit", help="K-FAC curvature edit of the MLP weights -> safetensors model folder",
                            description="Collect K-FAC factors of the MLP weights on --fit-text, keep the highest-"
                                        "curvature components holding --keep-mass of the curvature mass (or remove "
                                        "as many by magnitude / at random), and save the edited model.")
    add_model_args(parser)
    parser.add_argument("--keep-mass", required=True, type=fraction, help="fraction of curvature mass kept, in [0, 1]")
    parser.add_argument("--method", choices=("kfac", "magnitude", "random"), default="kfac", help="default kfac")
    parser.add_argument("--fit-text", required=True, type=Path, help="UTF-8 text file the K-FAC factors are fitted on")
    parser.add_argument("--out", required=True, type=Path, help="new folder for the edited model (must not exist)")
    parser.add_argument("--layers", type=layer_list, help="comma-separated layers to edit (default: all)")
    parser.add_argument("--labels", choices=("true", "sampled"), default="true",
                        help="K-FAC gradient labels: the text's next tokens (default) or sampled from the model")
    parser.add_argument("--seq-len", type=positive_int, default=128, help="tokens per fit window (default 128)")
    parser.add_argument("--max-windows", type=positive_int, help="use only the first N fit windows")
    parser.add_argument("--seed", type=int, default=0, help="seed for sampled labels and the random baseline")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.set_defaults(func=run, writes_file=True)


def run(args: argparse.Namespace) -> None:
    import torch

    from ..mechanisms.curvature import collect_kfac, edit_state, mlp_linears

    out = args.out
    guard_output(out, args.fit_text, folder=True)
    text = read_text_file(args.fit_text)
    lm = load(args)
    factors = collect_kfac(lm, [text], layers=args.layers, seq_len=args.seq_len, max_windows=args.max_windows,
                           labels=args.labels, seed=args.seed, progress=not args.no_progress)
    new, info = edit_state(lm.model, factors, args.keep_mass, args.method, seed=args.seed)
    linears = mlp_linears(lm.model, factors.config["layers"])
    with torch.no_grad():
        for name, weight in new.items():
            linears[name].weight.copy_(weight)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        lm.model.save_pretrained(tmp)
        lm.tokenizer.save_pretrained(tmp)
        meta = {"name": f"{lm.name}-edit-{args.method}-{args.keep_mass:g}", "source": lm.source,
                "arch": lm.arch, "n_params": lm.n_params, "is_instruct": lm.is_instruct,
                "edit": {"base_model": lm.name, "base_sha256": lm.sha256, "method": args.method,
                         "keep_mass": args.keep_mass, "labels": args.labels, "seed": args.seed,
                         "seq_len": args.seq_len, "layers": factors.config["layers"], "n_tokens": factors.n_tokens,
                         "n_removed": int(info["n_removed"].sum()), "n_components": int(info["n_components"].sum())}}
        (tmp / "memkit.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    removed = info["n_removed"].sum() / info["n_components"].sum()
    emit(f"{out}: {len(info)} MLP matrices edited ({args.method}, keep_mass {args.keep_mass:g}), "
         f"{removed:.1%} of components removed, K-FAC fitted on {factors.n_tokens} tokens")
