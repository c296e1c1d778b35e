"""Command line for the mechanistic tools: `memkit lens`, `memkit ablate`, `memkit edit`.

Same rules as `memkit extract`: every user error is one line on stderr and exit code 2, and
outputs are written atomically (a parquet file, or for `edit` a model folder renamed into
place only when complete), so a failed run leaves nothing half-written.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

from .errors import MemkitError


def _layers(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated layer numbers, got {text!r}") from None


def _heads(text: str) -> list[tuple[int, int]]:
    try:
        return [(int(a), int(b)) for a, b in (item.split(":") for item in text.split(",") if item.strip())]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected heads as LAYER:HEAD,LAYER:HEAD,..., got {text!r}") from None


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1], got {value}")
    return value


def read_text_file(path: Path) -> str:
    """A UTF-8 text file, or a MemkitError naming it (missing, not UTF-8, empty)."""
    if not path.is_file():
        raise MemkitError(f"text file not found: {path}")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MemkitError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    if not text.strip():
        raise MemkitError(f"{path}: empty text file")
    return text


def _check_layers(lm, layers: list[int] | None) -> None:
    if layers is not None:
        bad = [x for x in layers if not 0 <= x < lm.n_layers]
        if bad:
            raise MemkitError(f"--layers {bad[0]} out of range: {lm.name} has {lm.n_layers} layers (0..{lm.n_layers - 1})")


def add_mech_parsers(sub) -> None:
    """Register the lens / ablate / edit subcommands on the `memkit` parser."""
    from .cli import _add_model_args, _add_sample_args, _positive_int

    lens = sub.add_parser("lens", help="logit lens: rank/probability of the true continuation per layer -> parquet",
                          description="Teacher-forced logit lens over prefix + true suffix: for every layer and "
                                      "continuation position, the rank and probability of the true token when the "
                                      "layer's residual stream is decoded with the model's final norm and unembedding.")
    _add_model_args(lens)
    _add_sample_args(lens)
    lens.add_argument("--layers", type=_layers, help="comma-separated layers (default: all)")
    lens.set_defaults(func=cmd_lens)

    ablate = sub.add_parser("ablate", help="ablate attention heads one at a time -> parquet",
                            description="Zero- or mean-ablate each attention head in turn and record the change in "
                                        "teacher-forced log-probability of the true suffix and in greedy retention.")
    _add_model_args(ablate)
    ablate.add_argument("--input", required=True, type=Path, help='JSONL records {"id","text"} or {"id","prefix","suffix"}')
    ablate.add_argument("--out", required=True, type=Path, help="output parquet file (written atomically)")
    ablate.add_argument("--prefix-tokens", "-k", type=_positive_int, default=32, help="prefix length k (default 32)")
    ablate.add_argument("--suffix-tokens", "-m", type=_positive_int, default=32, help="continuation length m (default 32)")
    ablate.add_argument("--mode", choices=("zero", "mean"), default="zero", help="ablation: zero or mean (default zero)")
    ablate.add_argument("--prompt", choices=("raw", "chat"), default="raw", help="prompt mode (default raw)")
    ablate.add_argument("--heads", type=_heads, help="only these heads, LAYER:HEAD,... (default: every head)")
    ablate.add_argument("--mean-text", type=Path,
                        help="text file for the head means of --mode mean (default: Python's pydoc topics)")
    ablate.add_argument("--no-greedy", action="store_true", help="teacher-forced scores only (no greedy decoding)")
    ablate.add_argument("--batch-size", type=_positive_int, default=16, help="samples per batch (default 16)")
    ablate.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    ablate.set_defaults(func=cmd_ablate)

    edit = sub.add_parser("edit", help="K-FAC curvature edit of the MLP weights -> safetensors model folder",
                          description="Collect K-FAC factors of the MLP weights on --fit-text, keep the highest-"
                                      "curvature components holding --keep-mass of the curvature mass (or remove as "
                                      "many by magnitude / at random), and save the edited model.")
    _add_model_args(edit)
    edit.add_argument("--keep-mass", required=True, type=_fraction, help="fraction of curvature mass kept, in [0, 1]")
    edit.add_argument("--method", choices=("kfac", "magnitude", "random"), default="kfac", help="default kfac")
    edit.add_argument("--fit-text", required=True, type=Path, help="UTF-8 text file the K-FAC factors are fitted on")
    edit.add_argument("--out", required=True, type=Path, help="new folder for the edited model (must not exist)")
    edit.add_argument("--layers", type=_layers, help="comma-separated layers to edit (default: all)")
    edit.add_argument("--labels", choices=("true", "sampled"), default="true",
                      help="K-FAC gradient labels: the text's next tokens (default) or sampled from the model")
    edit.add_argument("--seq-len", type=_positive_int, default=128, help="tokens per fit window (default 128)")
    edit.add_argument("--max-windows", type=_positive_int, help="use only the first N fit windows")
    edit.add_argument("--seed", type=int, default=0, help="seed for sampled labels and the random baseline")
    edit.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    edit.set_defaults(func=cmd_edit)


def cmd_lens(args: argparse.Namespace) -> None:
    from .cli import check_output_path
    from .lens import lock_in, logit_lens
    from .models import load_model
    from .paths import atomic_path
    from .samples import make_samples, read_jsonl

    check_output_path(args.out)
    records = read_jsonl(args.input)
    lm = load_model(args.model, device=args.device, dtype=args.dtype, online=args.online)
    _check_layers(lm, args.layers)
    samples = make_samples(lm, records, k=args.prefix_tokens, m=args.suffix_tokens, mode=args.mode)
    frame = logit_lens(lm, samples, layers=args.layers, batch_size=args.batch_size, progress=not args.no_progress)
    frame.insert(1, "model", lm.name)
    with atomic_path(args.out) as tmp:
        frame.to_parquet(tmp, index=False)
    locked = lock_in(frame)
    final = locked[locked["final_top1"]]
    median = f"{final['lock_in'].median():.1f}" if len(final) else "--"
    print(f"{args.out}: {len(samples)} samples x {frame['layer'].nunique()} layers x {args.suffix_tokens} positions; "
          f"true token top-1 at the last layer {locked['final_top1'].mean():.3f}, median lock-in layer {median}")


def cmd_ablate(args: argparse.Namespace) -> None:
    from .ablation import head_means, head_scan
    from .cli import check_output_path
    from .generic import generic_texts
    from .models import load_model
    from .paths import atomic_path
    from .samples import make_samples, read_jsonl

    check_output_path(args.out)
    records = read_jsonl(args.input)
    mean_text = read_text_file(args.mean_text) if args.mean_text is not None else None
    lm = load_model(args.model, device=args.device, dtype=args.dtype, online=args.online)
    if args.heads is not None:
        from .ablation import head_shape

        n_layers, n_heads, _ = head_shape(lm.model)
        bad = [h for h in args.heads if not (0 <= h[0] < n_layers and 0 <= h[1] < n_heads)]
        if bad:
            raise MemkitError(f"--heads {bad[0][0]}:{bad[0][1]} out of range: {lm.name} has {n_layers} layers x "
                              f"{n_heads} heads")
    samples = make_samples(lm, records, k=args.prefix_tokens, m=args.suffix_tokens, mode=args.prompt)
    means = None
    if args.mode == "mean":
        means = head_means(lm, [mean_text] if mean_text is not None else generic_texts("fit"))
    frame = head_scan(lm, samples, mode=args.mode, means=means, heads=args.heads, greedy=not args.no_greedy,
                      batch_size=args.batch_size, progress=not args.no_progress)
    frame.insert(1, "model", lm.name)
    with atomic_path(args.out) as tmp:
        frame.to_parquet(tmp, index=False)
    effects = frame[frame["layer"] >= 0].groupby(["layer", "head"])["delta_logprob"].mean()
    worst = effects.idxmin()
    print(f"{args.out}: {len(samples)} samples x {len(effects)} heads ({args.mode} ablation); largest mean drop in "
          f"suffix log-prob: layer {worst[0]} head {worst[1]} ({effects.min():.3f} nats)")


def cmd_edit(args: argparse.Namespace) -> None:
    import torch

    from .curvature import collect_kfac, edit_state, mlp_linears
    from .models import load_model

    out = args.out
    if not out.parent.resolve().is_dir():
        raise MemkitError(f"output directory does not exist: {out.parent}")
    if out.exists():
        raise MemkitError(f"output {out} already exists; give a new folder for the edited model")
    text = read_text_file(args.fit_text)
    lm = load_model(args.model, device=args.device, dtype=args.dtype, online=args.online)
    _check_layers(lm, args.layers)
    try:
        factors = collect_kfac(lm, [text], layers=args.layers, seq_len=args.seq_len, max_windows=args.max_windows,
                               labels=args.labels, seed=args.seed, progress=not args.no_progress)
    except ValueError as exc:  # e.g. a fit text shorter than two tokens
        raise MemkitError(f"{args.fit_text}: {exc}") from None
    new, info = edit_state(lm.model, factors, args.keep_mass, args.method, args.seed)
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
    print(f"{out}: {len(info)} MLP matrices edited ({args.method}, keep_mass {args.keep_mass:g}), "
          f"{removed:.1%} of components removed, K-FAC fitted on {factors.n_tokens} tokens")
