"""The tables of the attractor validation (notebook `tab_attractors`): Table 1 and the appendix table.

    runs = add_kind(add_verdicts(run_grid(models, records, k=16, m=16, ...)))      # memkit.paper.experiments
    table, caption, column_format = attractor_table(runs, literature, labels=names, k=16, m=16, biderman_m=32,
                                                    source="tab_attractors")
    full, full_caption, full_format = full_table(runs, labels=names, short_labels={"gemma-3-270m": "Gemma"},
                                                 source="tab_attractors")

Table 1 has one row per attractor (texts, then computed sequences, then shuffled controls) and four
columns per (model, mode) combination, followed by the seed scores quoted from the literature; the
appendix table (a longtable) has one row per attractor x combination with every metric. Cells are
LaTeX (write them with `escape=False`); the formats come from `memkit.paper.report`.
"""

from __future__ import annotations

from typing import Mapping

import pandas as pd

from .experiments import rule_letters
from .report import format_number, latex_escape

#: Short category names of Table 1 (data/attractors.jsonl categories).
CATEGORY = {"literature": "lit", "literature_copyrighted": "lit\\copyright{}", "legal_historical": "legal",
            "religious": "relig", "poetry": "poetry", "license": "license", "code": "code",
            "sequence": "seq", "placeholder": "lorem", "control": "ctrl"}
#: Row order of both tables: texts, then computed sequences, then shuffled controls.
KIND_ORDER = {"text": 0, "sequence": 1, "control": 2}
#: The kind as Table 1's group heading and as the appendix table's short cell.
KIND_LABEL = {"text": "texts", "sequence": "sequences", "control": "controls"}
KIND_SHORT = {"text": "text", "sequence": "seq", "control": "ctrl"}
#: The columns of `summarize_by_kind` the notebook shows: counts per rule, prefix lengths, seed scores.
SUMMARY_COLUMNS = ["spec", "mode", "kind", "n", "mem_exact_count", "mem_biderman_count", "mem_near_verbatim_count",
                   "mem_seed_count", "any_count", "contains_suffix_count", "max_lcs_len", "long_prefix_count",
                   "mean_prefix_match_len", "max_prefix_match_len", "max_seed_score", "max_seed_score_seed_ids"]


def combinations(runs: pd.DataFrame) -> list[tuple[str, str]]:
    """The (spec, mode) combinations of a run frame, in first-seen order (the column order of Table 1)."""
    return list(dict.fromkeys(zip(runs["spec"], runs["mode"])))


def combo_label(spec: str, mode: str, labels: Mapping[str, str]) -> str:
    """A combination's plain-text heading, `Gemma-3-270M (raw)`, so every table names a run the same way."""
    return f"{labels.get(spec, spec)} ({mode})"


def display_id(record_id: str) -> str:
    """An attractor id as the tables print it: controls `shuffled_<id>` (shorter than `control_shuffled_`)."""
    return record_id.replace("control_shuffled_", "shuffled_")


def table_rows(runs: pd.DataFrame) -> pd.DataFrame:
    """The first model's row of every attractor, texts first, then sequences, then controls (stable within a kind)."""
    first = runs[runs["spec"] == runs["spec"].iloc[0]].drop_duplicates("id")
    return first.iloc[first["kind"].map(KIND_ORDER).argsort(kind="stable")]


def attractor_cells(rows: pd.DataFrame, *, k: int, m: int) -> list[str]:
    """Escaped attractor names, with a dagger where the record ran with other (k, m) than the table's."""
    return [latex_escape(display_id(i)) + ("$^\\dagger$" if (kk, mm) != (k, m) else "")
            for i, kk, mm in zip(rows["id"], rows["k"], rows["m"])]


def kind_cells(kinds: pd.Series) -> list[str]:
    """The kind and its n on the first row of each group, blank below (a grouped first column)."""
    sizes = kinds.value_counts()
    return [f"{KIND_LABEL[kd]} ({sizes[kd]})" if i == 0 or kd != kinds.iloc[i - 1] else ""
            for i, kd in enumerate(kinds)]


def short_note(rows: pd.DataFrame, *, k: int, m: int) -> str:
    """The caption's dagger note: which shorter (k, m) the too-short records ran with ('' when none)."""
    short_rows = sorted({(int(kk), int(mm)) for kk, mm in zip(rows["k"], rows["m"])} - {(k, m)})
    return " ".join(f"$^\\dagger$Too short for $k+m$ tokens: run with $k={kk}$, $m={mm}$." for kk, mm in short_rows)


def attractor_caption(*, k: int, m: int, biderman_m: int, note: str, source: str) -> str:
    """Table 1's caption: the settings, the kinds, every column and rule letter, and where the numbers come from."""
    n = min(m, biderman_m)
    return (
        f"Attractor validation: greedy extraction with a prefix of $k={k}$ tokens, compared with the true next "
        f"$m={m}$ tokens, for every embedded model and prompting mode (raw text; where the model has a chat "
        f"template, chat: the prefix as the user message, and chat\\_verbatim: the same with an instruction to "
        f"continue the text verbatim). Kind (number of records): natural-language and code texts, which a "
        f"model can only recite; computed sequences, which it can also reconstruct by rule; shuffled controls. "
        f"P: longest matching prefix (tokens); TM: Biderman score (fraction of the $m$ positions "
        f"reproduced); Seed: the original study's blended score. Rules that call the row memorized: "
        f"E exact match of all $m$ tokens (Carlini); B Biderman score $=1$ on the first {n} tokens; "
        f"N near-verbatim (token Levenshtein similarity $\\geq 0.75$); S seed score $\\geq 0.7$; "
        f"C, position-free: the reply contains {n} consecutive suffix tokens anywhere "
        f"(longest common token substring; not counted as a rule); -- none. "
        f"{note} Literature columns: seed scores quoted from the original study (chat API, instruction-tuned "
        f"models, shorter prompts and reference texts), not measured here. Cat.: category "
        f"(shuffled\\_* are controls). Every metric is in Table~\\ref{{tab:attractors-full}}. "
        f"Made by \\texttt{{notebooks/{latex_escape(source)}.py}}."
    )


def attractor_table(runs: pd.DataFrame, literature: pd.DataFrame, *, labels: Mapping[str, str], k: int, m: int,
                    biderman_m: int, source: str) -> tuple[pd.DataFrame, str, str]:
    """Table 1 as (frame with two-level LaTeX headers, caption, column format): P, TM, Seed, rules per combination.

    `runs`: `run_grid` rows with `add_verdicts` and `add_kind`; `literature`: data/literature.csv,
    whose seed scores per model are quoted in the last columns (blank where the study has none).
    """
    esc = latex_escape
    rows = table_rows(runs)
    combos = combinations(runs)
    table = pd.DataFrame({("", "Kind"): kind_cells(rows["kind"]),
                          ("", "Attractor"): attractor_cells(rows, k=k, m=m),
                          ("", "Cat."): rows["meta_category"].map(CATEGORY).to_numpy()})
    for spec, mode in combos:
        part = runs[(runs["spec"] == spec) & (runs["mode"] == mode)].set_index("id").loc[rows["id"]]
        head = esc(combo_label(spec, mode, labels))
        table[(head, "P")] = part["prefix_match_len"].to_numpy()
        table[(head, "TM")] = part["token_match"].map(format_number).to_numpy()
        table[(head, "Seed")] = part["seed_score"].map(format_number).to_numpy()
        table[(head, "Rules")] = rule_letters(part).to_numpy()
    quoted = literature.pivot(index="attractor_id", columns="model", values="seed_score")
    for model in dict.fromkeys(literature["model"]):
        values = rows["id"].map(quoted[model]).map(lambda v: "" if pd.isna(v) else format_number(v, 3))
        table[("Literature (quoted)", esc(model))] = values.to_numpy()
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    caption = attractor_caption(k=k, m=m, biderman_m=biderman_m, note=short_note(rows, k=k, m=m), source=source)
    column_format = "lll" + "rrrl" * len(combos) + "r" * literature["model"].nunique()
    return table, caption, column_format


def full_caption(*, k: int, m: int, note: str, source: str) -> str:
    """The appendix table's caption: settings, order of the rows and the meaning of every column."""
    return (
        f"Every memkit metric for every attractor, model and prompting mode (Run; greedy decoding, fp32, prefix "
        f"$k={k}$, continuation $m={m}$), texts first, then computed sequences (seq) and shuffled controls (ctrl). "
        "P longest matching prefix; TM Biderman score; Lev token Levenshtein similarity $1-d/m$ ($d$ the token "
        "edit distance); Char the same on characters; Seed the original study's blend; zlib compressed/raw bytes "
        "of the true suffix; Gap smallest top-1 minus top-2 logit gap along the greedy path (below $10^{-4}$ the "
        f"argmax could flip with batch shape); Rules as in Table~\\ref{{tab:attractors}}. {note} "
        f"Made by \\texttt{{notebooks/{latex_escape(source)}.py}}."
    )


def full_table(runs: pd.DataFrame, *, labels: Mapping[str, str], short_labels: Mapping[str, str] | None = None,
               k: int, m: int, source: str) -> tuple[pd.DataFrame, str, str]:
    """The appendix table as (frame, caption, column format): every metric per attractor x combination.

    Rows: per combination (first-seen order) texts, sequences, controls. The Run cell names the model
    by `short_labels` (else `labels`) and the mode. To fit the text width, records run with other
    (k, m) get a dagger (as in Table 1) instead of a k/m column, and the token edit distance is
    left out (it is m(1 - Lev)).
    """
    esc, fmt = latex_escape, (lambda v: format_number(v, 3))
    short_labels = short_labels or {}
    combos = combinations(runs)
    ordered = runs.assign(_combo=[combos.index(c) for c in zip(runs["spec"], runs["mode"])],
                          _kind=runs["kind"].map(KIND_ORDER))
    ordered = ordered.sort_values(["_combo", "_kind"], kind="stable")
    runs_of = [esc(f"{short_labels.get(s, labels.get(s, s))} {mode}") for s, mode in zip(ordered["spec"],
                                                                                          ordered["mode"])]
    full = pd.DataFrame({
        "Attractor": attractor_cells(ordered, k=k, m=m), "Kind": ordered["kind"].map(KIND_SHORT).to_numpy(),
        "Run": runs_of, "P": ordered["prefix_match_len"].to_numpy(),
        "TM": ordered["token_match"].map(fmt).to_numpy(),
        "Lev": ordered["lev_similarity"].map(fmt).to_numpy(),
        "Char": ordered["char_lev_similarity"].map(fmt).to_numpy(),
        "Seed": ordered["seed_score"].map(fmt).to_numpy(),
        "zlib": ordered["zlib_ratio"].map(fmt).to_numpy(),
        "Gap": ordered["min_top2_gap"].map("{:.1e}".format).to_numpy(),
        "Rules": rule_letters(ordered).to_numpy(),
    })
    caption = full_caption(k=k, m=m, note=short_note(ordered, k=k, m=m), source=source)
    return full, caption, "lll" + "r" * 7 + "l"
