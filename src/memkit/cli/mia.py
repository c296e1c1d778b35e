"""`memkit mia`: membership-inference scores (loss, zlib, Min-K%, Min-K%++, reference) -> parquet."""

from __future__ import annotations

import argparse

from .args import add_model_args, add_sample_args, emit, fraction, guard_output, load


def register(sub) -> None:
    parser = sub.add_parser("mia", help="membership-inference scores per record (+ AUC if labelled) -> parquet",
                            description="Score every record with the loss, zlib, Min-K%% and Min-K%%++ attacks (and "
                                        "a reference-model attack with --reference) from one teacher-forced pass. "
                                        "With --label-field, print each attack's ROC AUC and TPR at 1%% FPR.")
    add_model_args(parser)
    add_sample_args(parser)
    parser.add_argument("--reference", help="reference model sharing the tokenizer (e.g. a smaller organism)")
    parser.add_argument("--positions", choices=("all", "suffix"), default="all",
                        help="score prefix + suffix (all, default; raw mode only) or only the m suffix tokens")
    parser.add_argument("--min-k", type=fraction, default=0.2, help="fraction k of Min-K%% / Min-K%%++ (default 0.2)")
    parser.add_argument("--label-field", help="record field that says member (true/1) or not (false/0)")
    parser.set_defaults(func=run, writes_file=True)


def run(args: argparse.Namespace) -> None:
    from ..core.extract import write_table
    from ..core.models import load_model
    from ..core.samples import make_samples, read_jsonl
    from ..errors import MemkitError
    from ..mia import attack_table, mia_scores

    guard_output(args.out, args.input)
    if args.min_k <= 0:
        raise MemkitError("--min-k must be > 0")
    records = read_jsonl(args.input)
    if args.label_field is not None:
        missing = [r["id"] for r in records if r.get(args.label_field) is None]
        if missing:
            raise MemkitError(f"{args.input}: record {missing[0]!r} has no label field {args.label_field!r}")
    lm = load(args)
    reference = (load_model(args.reference, device=args.device, dtype=args.dtype, online=args.online,
                            progress=not args.no_progress, allow_pickle=args.allow_pickle)
                 if args.reference else None)
    samples = make_samples(lm, records, k=args.prefix_tokens, m=args.suffix_tokens, mode=args.mode)
    frame = mia_scores(lm, samples, reference=reference, k=args.min_k, batch_size=args.batch_size,
                       positions=args.positions, progress=not args.no_progress)
    table = attack_table(frame, label=f"meta_{args.label_field}") if args.label_field else None
    write_table(frame, args.out)
    emit(f"{args.out}: {len(frame)} samples, mean loss {frame['loss'].mean():.3f} nats/token")
    for row in ([] if table is None else table.itertuples()):
        ci = f"[{row.auc_lo:.3f}, {row.auc_hi:.3f}]" if row.ci_ok else "(no CI below 20 per class)"
        emit(f"  {row.attack:10} AUC {row.auc:.3f} {ci}  TPR@1%FPR {row.tpr:.3f}  "
             f"(n = {row.n_members} members, {row.n_nonmembers} non-members)")
