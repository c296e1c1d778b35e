"""Run every (model, prompting mode) combination on a record list, and judge memorization.

    runs = run_grid(["gemma-3-270m", "smollm2-135m-instruct"], records, k=32, m=64,
                    short={"harry_potter": (24, 32)}, progress=False)
    runs = add_verdicts(runs, biderman_m=32)     # mem_exact, mem_biderman, mem_near_verbatim, mem_seed

Used by the paper notebooks `tab_attractors` and `fig_scale`: both call `run_grid` with the
same arguments, so the second one reads every extraction from the on-disk cache of
`cached_extract`. A model is loaded, run in every mode it supports and released before the
next one is loaded, so a long list of model specs (e.g. the organism zoo) fits in memory.
Macro names and table floats for these results are made by `memkit.paper.report`.
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
    """
    return frame.assign(
        mem_exact=frame["exact_match"].astype(bool),
        mem_biderman=frame["prefix_match_len"] >= frame["m"].clip(upper=biderman_m),
        mem_near_verbatim=frame["near_verbatim"].astype(bool),
        mem_seed=frame["seed_memorized"].astype(bool),
    )


#: One letter per rule, in the order used by `rule_letters` (table legends use the same letters).
RULE_LETTERS: dict[str, str] = {"mem_exact": "E", "mem_biderman": "B", "mem_near_verbatim": "N", "mem_seed": "S"}


def rule_letters(frame: pd.DataFrame, none: str = "--") -> pd.Series:
    """A compact verdict per row: the letters of the rules that call it memorized (e.g. "EBNS")."""
    letters = pd.Series("", index=frame.index)
    for column, letter in RULE_LETTERS.items():
        letters = letters + frame[column].map({True: letter, False: ""})
    return letters.replace("", none)


def summarize(frame: pd.DataFrame, long_prefix: int = 16, seed_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per (spec or model, mode) of a verdict frame (see `add_verdicts`), in first-seen order.

    Columns: `spec` (when the frame has it), `model`, `mode`, `n_params`, `is_instruct`, `n`
    (rows), one `<rule>_count` and `<rule>_rate` per rule in `RULES`, `any_count` (memorized
    under at least one rule), `max_seed_score`,
    `max_seed_score_seed_ids` (over `seed_ids` only, NaN when none is given), the mean and
    maximum `prefix_match_len`, and `long_prefix_count` (rows whose first `long_prefix`
    suffix tokens are reproduced). Filter the frame first (e.g. attractors vs controls).
    """
    rows = []
    key = "spec" if "spec" in frame.columns else "model"
    for (name, mode), group in frame.groupby([key, "mode"], sort=False):
        row = {key: name, "model": group["model"].iloc[0], "mode": mode, "n_params": int(group["n_params"].iloc[0]),
               "is_instruct": bool(group["is_instruct"].iloc[0]), "n": len(group)}
        for column in RULES:
            row[f"{column}_count"] = int(group[column].sum())
            row[f"{column}_rate"] = float(group[column].mean())
        row["any_count"] = int(group[list(RULES)].any(axis=1).sum())
        row["max_seed_score"] = float(group["seed_score"].max())
        chosen = group[group["id"].isin(list(seed_ids))] if seed_ids is not None else group.iloc[:0]
        row["max_seed_score_seed_ids"] = float(chosen["seed_score"].max()) if len(chosen) else float("nan")
        row["mean_prefix_match_len"] = float(group["prefix_match_len"].mean())
        row["max_prefix_match_len"] = int(group["prefix_match_len"].max())
        row["long_prefix_count"] = int((group["prefix_match_len"] >= group["m"].clip(upper=long_prefix)).sum())
        rows.append(row)
    return pd.DataFrame(rows)
