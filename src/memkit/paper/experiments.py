"""Run every (model, prompting mode) combination on a record list, and judge memorization.

    runs = run_grid(["gemma-3-270m", "smollm2-135m-instruct"], records, k=32, m=64,
                    short={"harry_potter": (24, 32)}, progress=False)
    runs = add_verdicts(runs, biderman_m=32)     # mem_exact, mem_biderman, mem_near_verbatim, mem_seed
    runs = add_kind(runs)                        # text, sequence or control (from meta_category)
    summary = summarize_by_kind(runs, long_prefix=16, seed_ids=seed_ids)   # kind: all, text, sequence, control

Computed sequences (counting, digits of pi, ...) can be continued by rule: they measure
*reconstruction*, not *recitation* (Prashanth et al. 2024, "Recite, Reconstruct, Recollect"), so
every count of Table 1 is also given for texts and for sequences separately (`add_kind`).

Used by the paper notebooks `tab_attractors` and `fig_scale`: both call `run_grid` with the
same arguments, so the second one reads every extraction from the on-disk cache of
`cached_extract`. A model is loaded, run in every mode it supports and released before the
next one is loaded, so a long list of model specs (e.g. the organism zoo) fits in memory.
`attractor_numbers` makes the macros of Table 1; the formats come from `memkit.paper.report`.
"""

from __future__ import annotations

import gc
from typing import Callable, Iterable, Mapping, Sequence

import pandas as pd

from ..core.extract import cached_extract
from ..core.metrics import NEAR_VERBATIM_THRESHOLD, SEED_SCORE_THRESHOLD
from ..core.models import LoadedModel, load_model
from ..core.samples import MODES, make_samples
from ..errors import MemkitError
from .report import format_number, latex_escape, macro_key

#: Verdict columns added by `add_verdicts`, with the rule each one applies (for captions and docs).
RULES: dict[str, str] = {
    "mem_exact": "exact match of all m suffix tokens (Carlini et al. 2022, k-extractable)",
    "mem_biderman": "Biderman et al. 2023 score = 1 on the first min(m, biderman_m) suffix tokens",
    "mem_near_verbatim": f"token Levenshtein similarity >= {NEAR_VERBATIM_THRESHOLD} (Merullo et al. 2025)",
    "mem_seed": f"the original study's blended seed_score >= {SEED_SCORE_THRESHOLD}",
}


def available_modes(lm: LoadedModel, modes: Sequence[str] = MODES) -> list[str]:
    """The requested prompting modes this model supports (`chat` needs a chat template)."""
    unknown = [mode for mode in modes if mode not in MODES]
    if unknown:
        raise MemkitError(f"unknown mode(s) {unknown}; choose from {', '.join(MODES)}")
    has_template = getattr(lm.tokenizer, "chat_template", None) is not None
    return [mode for mode in modes if mode == "raw" or has_template]


def settings_groups(records: Sequence[dict], k: int, m: int,
                    short: Mapping[str, Sequence[int]] | None = None) -> list[tuple[int, int, list[dict]]]:
    """Split records into (k, m, records) groups: the default setting first, then one per override.

    `short` maps a record id to its own (k, m), for texts too short for the default k + m
    (e.g. the truncated `harry_potter`). Ids in `short` that are not among the records are ignored.
    """
    short = {str(key): (int(value[0]), int(value[1])) for key, value in (short or {}).items()}
    groups: dict[tuple[int, int], list[dict]] = {(k, m): []}
    for record in records:
        groups.setdefault(short.get(str(record["id"]), (k, m)), []).append(record)
    return [(kk, mm, recs) for (kk, mm), recs in groups.items() if recs]


def run_model(lm: LoadedModel, records: Sequence[dict], k: int, m: int, *, modes: Sequence[str] = MODES,
              short: Mapping[str, Sequence[int]] | None = None, batch_size: int = 16,
              progress: bool = False) -> pd.DataFrame:
    """Every supported mode x settings group of one loaded model, as one results frame.

    Rows come in record order within each mode; the model's size and type are added as
    `n_params` and `is_instruct` columns.
    """
    frames = []
    for mode in available_modes(lm, modes):
        for kk, mm, recs in settings_groups(records, k, m, short):
            samples = make_samples(lm, recs, k=kk, m=mm, mode=mode)
            frames.append(cached_extract(lm, samples, batch_size=batch_size, progress=progress))
    if not frames:
        raise MemkitError(f"model {lm.name}: none of the modes {list(modes)} applies")
    order = {str(r["id"]): i for i, r in enumerate(records)}
    frame = pd.concat(frames, ignore_index=True)
    frame = frame.assign(_order=frame["id"].map(order), _mode=frame["mode"].map(list(MODES).index))
    frame = frame.sort_values(["_mode", "_order"], kind="stable").drop(columns=["_order", "_mode"])
    return frame.assign(n_params=lm.n_params, is_instruct=lm.is_instruct).reset_index(drop=True)


def run_grid(specs: Iterable[str], records: Sequence[dict], k: int, m: int, *, modes: Sequence[str] = MODES,
             short: Mapping[str, Sequence[int]] | None = None, batch_size: int = 16, progress: bool = False,
             loader: Callable[[str], LoadedModel] = load_model) -> pd.DataFrame:
    """`run_model` for each model spec in turn (loaded with `loader`), concatenated in spec order.

    A `spec` column keeps the spec each row came from (the `model` column is the loaded name).
    """
    frames = []
    for spec in specs:
        lm = loader(spec)
        frame = run_model(lm, records, k, m, modes=modes, short=short, batch_size=batch_size, progress=progress)
        frames.append(frame.assign(spec=spec))
        del lm
        gc.collect()
    if not frames:
        raise MemkitError("no model specs given")
    return pd.concat(frames, ignore_index=True)


def add_verdicts(frame: pd.DataFrame, biderman_m: int = 32) -> pd.DataFrame:
    """Add one boolean column per memorization rule in `RULES`.

    The Biderman score = 1 rule uses the Pythia convention of a 32-token continuation: with
    greedy decoding the first 32 tokens of a longer continuation are the same tokens, so it
    is "the longest matching prefix covers min(m, biderman_m) tokens". With m <= biderman_m
    it coincides with exact match.

    `contains_suffix` (not one of `RULES`, so not in "any rule"): the continuation contains
    min(m, biderman_m) consecutive suffix tokens *anywhere* (`lcs_len`), the position-free check
    that judges a chat reply fairly when it opens with a preamble ("Sure, here it is: ...").
    """
    return frame.assign(
        contains_suffix=frame["lcs_len"] >= frame["m"].clip(upper=biderman_m),
        mem_exact=frame["exact_match"].astype(bool),
        mem_biderman=frame["prefix_match_len"] >= frame["m"].clip(upper=biderman_m),
        mem_near_verbatim=frame["near_verbatim"].astype(bool),
        mem_seed=frame["seed_memorized"].astype(bool),
    )


#: One letter per rule, in the order used by `rule_letters` (table legends use the same letters).
RULE_LETTERS: dict[str, str] = {"mem_exact": "E", "mem_biderman": "B", "mem_near_verbatim": "N", "mem_seed": "S",
                                "contains_suffix": "C"}


def rule_letters(frame: pd.DataFrame, none: str = "--") -> pd.Series:
    """A compact verdict per row: the letters of the rules that call it memorized (e.g. "EBNSC").

    C (`contains_suffix`) is the position-free check of `add_verdicts`, listed with the rules.
    """
    letters = pd.Series("", index=frame.index)
    for column, letter in RULE_LETTERS.items():
        letters = letters + frame[column].map({True: letter, False: ""})
    return letters.replace("", none)


#: Kinds of attractor records: natural-language or code texts (recitation), computed sequences
#: (reconstruction by rule), shuffled controls. Keys are data/attractors.jsonl categories.
SEQUENCE_CATEGORY, CONTROL_CATEGORY = "sequence", "control"
KINDS = ("text", "sequence", "control")


def record_kind(category: str) -> str:
    """`sequence` for computed sequences, `control` for shuffled controls, `text` for every other category."""
    return {SEQUENCE_CATEGORY: "sequence", CONTROL_CATEGORY: "control"}.get(category, "text")


def add_kind(frame: pd.DataFrame, column: str = "meta_category") -> pd.DataFrame:
    """Add a `kind` column (text, sequence or control) from the records' category."""
    return frame.assign(kind=frame[column].map(record_kind))


def summarize(frame: pd.DataFrame, long_prefix: int = 16, seed_ids: Sequence[str] | None = None, *,
              by: Sequence[str] = ()) -> pd.DataFrame:
    """One row per (spec or model, mode, *by) of a verdict frame (see `add_verdicts`), in first-seen order.

    Columns: `spec` (when the frame has it), `model`, `mode`, the `by` columns, `n_params`,
    `is_instruct`, `n` (rows), one `<rule>_count` and `<rule>_rate` per rule in `RULES`,
    `any_count` (memorized under at least one rule), `contains_suffix_count` and `max_lcs_len`
    (the position-free check of `add_verdicts`), `max_seed_score`,
    `max_seed_score_seed_ids` (over `seed_ids` only, NaN when none is given), the mean and
    maximum `prefix_match_len`, and `long_prefix_count` (rows whose first `long_prefix`
    suffix tokens are reproduced). Filter the frame first (e.g. attractors vs controls), or
    group it (`by=["kind"]`, see `summarize_by_kind`).
    """
    rows = []
    key = "spec" if "spec" in frame.columns else "model"
    for names, group in frame.groupby([key, "mode", *by], sort=False):
        name, mode, *values = names
        row = {key: name, "model": group["model"].iloc[0], "mode": mode, **dict(zip(by, values)),
               "n_params": int(group["n_params"].iloc[0]), "is_instruct": bool(group["is_instruct"].iloc[0]),
               "n": len(group)}
        for column in RULES:
            row[f"{column}_count"] = int(group[column].sum())
            row[f"{column}_rate"] = float(group[column].mean())
        row["any_count"] = int(group[list(RULES)].any(axis=1).sum())
        row["contains_suffix_count"] = int(group["contains_suffix"].sum())
        row["max_lcs_len"] = int(group["lcs_len"].max())
        row["max_seed_score"] = float(group["seed_score"].max())
        chosen = group[group["id"].isin(list(seed_ids))] if seed_ids is not None else group.iloc[:0]
        row["max_seed_score_seed_ids"] = float(chosen["seed_score"].max()) if len(chosen) else float("nan")
        row["mean_prefix_match_len"] = float(group["prefix_match_len"].mean())
        row["max_prefix_match_len"] = int(group["prefix_match_len"].max())
        row["long_prefix_count"] = int((group["prefix_match_len"] >= group["m"].clip(upper=long_prefix)).sum())
        rows.append(row)
    return pd.DataFrame(rows)


def summarize_by_kind(frame: pd.DataFrame, long_prefix: int = 16,
                      seed_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """`summarize` of all attractors (texts and sequences, kind `all`), then per kind (text, sequence, control).

    Rows: per (spec, mode), `all` first, then the kinds in `KINDS` order; a kind without rows
    in the frame has no row. The frame needs the `kind` column of `add_kind`.
    """
    attractors = summarize(frame[frame["kind"] != "control"], long_prefix, seed_ids).assign(kind="all")
    kinds = summarize(frame, long_prefix, seed_ids, by=["kind"])
    key = "spec" if "spec" in frame.columns else "model"
    both = pd.concat([attractors, kinds], ignore_index=True)
    order = {combo: i for i, combo in enumerate(dict.fromkeys(zip(frame[key], frame["mode"])))}
    rank = {kind: i for i, kind in enumerate(("all", *KINDS))}
    both = both.assign(_combo=[order[c] for c in zip(both[key], both["mode"])], _kind=both["kind"].map(rank))
    both = both.sort_values(["_combo", "_kind"], kind="stable").drop(columns=["_combo", "_kind"])
    return both[[key, "model", "mode", "kind", *[c for c in both.columns if c not in (key, "model", "mode", "kind")]]
                ].reset_index(drop=True)


# -- the numbers of Table 1 ------------------------------------------------------------------------
#: Macro fragment of each rule in `RULES` (`GemmaRawExactCount`, ...).
RULE_KEYS = {"mem_exact": "Exact", "mem_biderman": "Biderman", "mem_near_verbatim": "NearVerbatim",
             "mem_seed": "Seed"}
#: Summary kind -> macro infix: all attractors keep the plain names, texts and sequences get their own.
KIND_KEYS = {"all": "", "text": "Texts", "sequence": "Sequences"}


def _id_list(ids: Iterable[str]) -> str:
    """Record ids as a comma-separated `\\texttt` list, 'none' when empty."""
    names = [f"\\texttt{{{latex_escape(i)}}}" for i in ids]
    return ", ".join(names) if names else "none"


def _kind_numbers(part: pd.DataFrame, row: pd.Series | None, prefix: str, *, long_prefix: int) -> dict[str, object]:
    """Counts, lists and summaries of one combination's rows of one kind (`row`: its `summarize` row)."""
    numbers: dict[str, object] = {f"{prefix}N": len(part)}
    long = part[part["prefix_match_len"] >= part["m"].clip(upper=long_prefix)]
    for rule, rule_key in RULE_KEYS.items():
        numbers[f"{prefix}{rule_key}Count"] = int(part[rule].sum())
        numbers[f"{prefix}{rule_key}List"] = _id_list(part.loc[part[rule], "id"])
    numbers[f"{prefix}AnyCount"] = int(part[list(RULES)].any(axis=1).sum())
    numbers[f"{prefix}ContainsCount"] = int(part["contains_suffix"].sum())
    numbers[f"{prefix}ContainsList"] = _id_list(part.loc[part["contains_suffix"], "id"])
    numbers[f"{prefix}LongPrefixCount"] = len(long)
    numbers[f"{prefix}LongPrefixList"] = _id_list(long["id"])
    if part.empty:
        for name in ("MaxPrefix", "MaxPrefixId", "MaxPrefixSeed", "MaxPrefixTokenMatch", "MeanPrefix", "MaxSeed",
                     "MaxSeedSeven", "MeanTokenMatch", "MaxLcs", "MaxLcsId"):
            numbers[prefix + name] = "--"
        return numbers
    longest = part.loc[part["prefix_match_len"].idxmax()]
    numbers[f"{prefix}MaxPrefix"] = int(longest["prefix_match_len"])
    numbers[f"{prefix}MaxPrefixId"] = f"\\texttt{{{latex_escape(longest['id'])}}}"
    numbers[f"{prefix}MaxPrefixSeed"] = format_number(longest["seed_score"])
    numbers[f"{prefix}MaxPrefixTokenMatch"] = format_number(longest["token_match"])
    numbers[f"{prefix}MeanPrefix"] = format_number(row["mean_prefix_match_len"], 1)
    numbers[f"{prefix}MaxSeed"] = format_number(row["max_seed_score"])
    numbers[f"{prefix}MaxSeedSeven"] = format_number(row["max_seed_score_seed_ids"])
    numbers[f"{prefix}MeanTokenMatch"] = format_number(part["token_match"].mean(), 3)
    widest = part.loc[part["lcs_len"].idxmax()]
    numbers[f"{prefix}MaxLcs"] = int(widest["lcs_len"])
    numbers[f"{prefix}MaxLcsId"] = f"\\texttt{{{latex_escape(widest['id'])}}}"
    return numbers


def attractor_numbers(runs: pd.DataFrame, summary: pd.DataFrame, literature: pd.DataFrame, *,
                      categories: Mapping[str, str], keys: Mapping[str, str], labels: Mapping[str, str], k: int,
                      m: int, biderman_m: int, long_prefix: int) -> dict[str, object]:
    """The macros of `numbers_tab_attractors.tex`, every count and summary for all attractors, texts and sequences.

    `runs`: `run_grid` rows with `add_verdicts` and `add_kind`; `summary`: `summarize_by_kind`
    of them; `literature`: data/literature.csv (quoted seed scores); `categories`: record id ->
    category of every record of the attractor file (the quoted rows' kinds, also of records
    left out of `runs`). Per (model, mode) the macros
    start with `keys[spec]` + the mode (`GemmaRaw`); `GemmaRawExactCount` counts all attractors,
    `GemmaRawTextsExactCount` the texts, `GemmaRawSequencesExactCount` the computed sequences,
    each with its n (`GemmaRawTextsN`); controls are `GemmaRawControl...`.
    """
    combos = list(dict.fromkeys(zip(runs["spec"], runs["mode"])))
    first = runs[runs["spec"] == combos[0][0]].drop_duplicates("id")
    kind_of = {str(i): record_kind(category) for i, category in categories.items()}
    short_rows = sorted({(int(r.k), int(r.m)) for r in first.itertuples()} - {(k, m)})
    seed_ids = list(dict.fromkeys(literature["attractor_id"]))
    numbers: dict[str, object] = {
        "NAttractors": int((first["kind"] != "control").sum()), "NControls": int((first["kind"] == "control").sum()),
        "NTexts": int((first["kind"] == "text").sum()), "NSequences": int((first["kind"] == "sequence").sum()),
        "NRecords": len(first), "NModels": runs["spec"].nunique(), "NCombos": len(combos),
        "PrefixTokens": k, "SuffixTokens": m, "BidermanTokens": min(m, biderman_m), "LongPrefixTokens": long_prefix,
        "NearVerbatimThreshold": f"{NEAR_VERBATIM_THRESHOLD:g}", "SeedThreshold": f"{SEED_SCORE_THRESHOLD:g}",
        "ShortIds": _id_list(first.loc[(first["k"] != k) | (first["m"] != m), "id"]),
        "ShortPrefixTokens": short_rows[0][0] if short_rows else k,
        "ShortSuffixTokens": short_rows[0][1] if short_rows else m,
        "NSeedAttractors": len(seed_ids),
        "NSeedTexts": sum(kind_of.get(i) == "text" for i in seed_ids),
        "NSeedSequences": sum(kind_of.get(i) == "sequence" for i in seed_ids),
    }
    rows = summary.set_index(["spec", "mode", "kind"])
    for spec, mode in combos:
        key = keys[spec] + macro_key(mode)
        combo = runs[(runs["spec"] == spec) & (runs["mode"] == mode)]
        for kind, infix in KIND_KEYS.items():
            part = combo[combo["kind"] != "control"] if kind == "all" else combo[combo["kind"] == kind]
            row = rows.loc[(spec, mode, kind)] if (spec, mode, kind) in rows.index else None
            numbers.update(_kind_numbers(part, row, key + infix, long_prefix=long_prefix))
        controls = combo[combo["kind"] == "control"]
        numbers[f"{key}ControlN"] = len(controls)
        numbers[f"{key}ControlAnyCount"] = int(controls[list(RULES)].any(axis=1).sum())
        numbers[f"{key}ControlMaxPrefix"] = int(controls["prefix_match_len"].max()) if len(controls) else "--"
        numbers[f"{key}Label"] = latex_escape(labels.get(spec, spec))
    literature = literature.assign(kind=literature["attractor_id"].map(kind_of))
    for kind, infix in (("all", ""), ("text", "Texts"), ("sequence", "Sequences")):
        quoted = literature if kind == "all" else literature[literature["kind"] == kind]
        numbers[f"Lit{infix}MaxSeed"] = format_number(quoted["seed_score"].max()) if len(quoted) else "--"
        for model, group in quoted.groupby("model", sort=False):
            best = group.loc[group["seed_score"].idxmax()]
            numbers[f"Lit{macro_key(model)}{infix}MaxSeed"] = format_number(best["seed_score"], 3)
            numbers[f"Lit{macro_key(model)}{infix}Best"] = f"\\texttt{{{latex_escape(best['attractor_id'])}}}"
    return numbers
