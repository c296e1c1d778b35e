"""Experiment driver of the memorization census table (notebook `tab_census`): runs, tables, numbers.

    settings = CensusSettings(sources=("kjv-famous", "licenses"), k=32, m=32, max_windows_per_source=500)
    runs = census_runs(["gemma-3-270m", "smollm2-135m-instruct"], settings)   # {spec: Census}, cached
    table = rates_table(runs, settings, labels=names)        # per source x model: n, memorized, rate, recall
    found = memorized_table(runs, labels=names)              # the memorized windows
    numbers = census_numbers(runs, settings, keys=keys)      # macros of numbers_tab_census.tex

Each model's census runs `memkit.census.run_census` in its own folder under
`paths.cache_dir()/census/`, named after the model and a hash of the model weights, the windows, the
settings and the census code (`census.census_code_version`): a finished census is read back, a killed
one resumes from its finished batches. Counts are over windows screened (duplicates included, as in
`census.census_rates`); memorized = near-verbatim (token Levenshtein similarity >= 0.75, every exact
match included).
"""

from __future__ import annotations

import gc
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import pandas as pd

from .. import census
from ..paths import entry_lock, model_entry
from .report import format_number, latex_escape, macro_key

#: How each census source is named in the paper's table.
SOURCE_LABELS = {"kjv-famous": "KJV: Genesis, Psalms, Matthew, John", "kjv": "KJV: the other 62 books",
                 "licenses": "Debian licence texts", "stdlib": "CPython standard library",
                 "attractors": "attractor texts (no sequences)"}


@dataclass(frozen=True)
class CensusSettings:
    """Everything that decides a census besides the model (the arguments of `census_windows` and `run_census`)."""

    sources: tuple[str, ...] = tuple(census.SOURCES)
    k: int = 32
    m: int = 32
    max_windows_per_source: int = 500
    screen_prefix: int = census.DEFAULT_SCREEN_PREFIX
    screen_accuracy: float = census.DEFAULT_SCREEN_ACCURACY
    recall_fraction: float = census.DEFAULT_RECALL_FRACTION
    recall_min: int = census.DEFAULT_RECALL_MIN
    seed: int = 0
    mode: str = "raw"
    batch_size: int = 8

    def __post_init__(self) -> None:
        object.__setattr__(self, "sources", tuple(census.check_sources(list(self.sources))))


def census_folder(lm, windows: Sequence, settings: CensusSettings) -> Path:
    """The cache folder of one model's census: `<cache>/census/<model>-<hash of weights, windows, settings, code>`."""
    from ..core.extract import samples_fingerprint

    key = {"model": lm.name, "model_sha256": lm.sha256, "windows": samples_fingerprint(windows),
           "settings": asdict(settings), "code": census.census_code_version()}
    return model_entry("census", lm.name, key)


def model_census(lm, settings: CensusSettings, *, progress: bool = False) -> census.Census:
    """The census of one loaded model: read from its cache folder when finished, else run (resuming)."""
    windows = census.census_windows(lm, settings.sources, k=settings.k, m=settings.m,
                                    max_windows_per_source=settings.max_windows_per_source, seed=settings.seed,
                                    mode=settings.mode)
    folder = census_folder(lm, windows, settings)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with entry_lock(folder):  # another process running the same census: wait for it, then read it
        if (folder / "census.json").is_file():  # written last: the census is complete
            return census.load_census(folder)
        return census.run_census(lm, windows, folder, screen_prefix=settings.screen_prefix,
                                 screen_accuracy=settings.screen_accuracy, recall_fraction=settings.recall_fraction,
                                 recall_min=settings.recall_min, seed=settings.seed, batch_size=settings.batch_size,
                                 progress=progress)


def census_runs(specs: Sequence[str], settings: CensusSettings, *, loader: Callable | None = None,
                progress: bool = False) -> dict[str, census.Census]:
    """`model_census` of each model spec in turn (loaded with `loader`, default `load_model`, then released)."""
    if loader is None:
        from ..core.models import load_model

        loader = load_model
    runs = {}
    for spec in specs:
        lm = loader(spec)
        runs[spec] = model_census(lm, settings, progress=progress)
        del lm
        gc.collect()
    return runs


# -- per-source counts ---------------------------------------------------------------------------------
def _flag(frame: pd.DataFrame, column: str) -> pd.Series:
    return frame[column].fillna(False).astype(bool)


def source_counts(result: census.Census, sources: Sequence[str]) -> pd.DataFrame:
    """One row per source (in `sources` order) and `all`: windows, memorized and exact counts with Wilson CIs,
    and the screen's recall of memorized windows from the recall sample of that source."""
    screen = result.screen
    rows = []
    for source in [*sources, "all"]:
        part = screen if source == "all" else screen[screen["source"] == source]
        n, memorized, exact = len(part), int(_flag(part, "near_verbatim").sum()), int(_flag(part, "exact_match").sum())
        rate_lo, rate_hi = census.wilson_interval(memorized, n)
        exact_lo, exact_hi = census.wilson_interval(exact, n)
        recall = census.screen_recall(part).set_index("rule").loc["near_verbatim"]
        rows.append({"source": source, "windows": n, "candidates": int(part["candidate"].sum()),
                     "decoded": int(part["decoded"].sum()), "memorized": memorized,
                     "rate": memorized / n if n else float("nan"), "rate_lo": rate_lo, "rate_hi": rate_hi,
                     "exact": exact, "exact_rate": exact / n if n else float("nan"), "exact_lo": exact_lo,
                     "exact_hi": exact_hi, "found_by_screen": int(recall["found"]),
                     "non_candidates": int(recall["non_candidates"]), "recall_sampled": int(recall["sampled"]),
                     "recall_missed": int(recall["missed_in_sample"]), "recall": float(recall["recall"]),
                     "recall_lo": float(recall["recall_lo"]), "recall_hi": float(recall["recall_hi"])})
    return pd.DataFrame(rows)


def _percent(value: float) -> str:
    """A rate as a percentage with two decimals, '--' for NaN."""
    return format_number(100 * value)


def _interval(low: float, high: float, fmt: Callable[[float], str]) -> str:
    return "--" if pd.isna(low) or pd.isna(high) else f"[{fmt(low)}, {fmt(high)}]"


def rates_table(runs: Mapping[str, census.Census], settings: CensusSettings, *,
                labels: Mapping[str, str]) -> tuple[pd.DataFrame, str]:
    """The census table (LaTeX cells; one row per source and the total, a column group per model) and its caption."""
    esc = latex_escape
    sources = list(settings.sources)
    table = pd.DataFrame({("", "Source"): [esc(SOURCE_LABELS.get(s, s)) for s in sources] + ["all"]})
    for spec, result in runs.items():
        counts = source_counts(result, sources)
        head = esc(labels.get(spec, spec))
        table[(head, "$n$")] = counts["windows"].to_numpy()
        table[(head, "mem.")] = counts["memorized"].to_numpy()
        table[(head, "\\% [95\\% CI]")] = [f"{_percent(r.rate)} {_interval(r.rate_lo, r.rate_hi, _percent)}"
                                          if r.windows else "--" for r in counts.itertuples()]
        table[(head, "exact")] = counts["exact"].to_numpy()
        table[(head, "recall [95\\% CI]")] = [
            f"{format_number(r.recall)} {_interval(r.recall_lo, r.recall_hi, format_number)}"
            if not pd.isna(r.recall) else "--" for r in counts.itertuples()]
        table[(head, "missed/$n_r$")] = [f"{r.recall_missed}/{r.recall_sampled}" for r in counts.itertuples()]
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    caption = (
        f"Memorization census: non-overlapping windows of $k+m={settings.k}+{settings.m}$ tokens cut from widely "
        f"copied texts (at most {settings.max_windows_per_source} per source: every document's opening first, then "
        f"a seeded sample), prompted with the first $k$ tokens ({esc(settings.mode)} prompt). $n$: windows screened; "
        f"mem.: windows whose greedy continuation is near-verbatim (token Levenshtein similarity $\\geq 0.75$, "
        f"which includes every exact match), with its rate in \\% and Wilson 95\\% CI; exact: all $m$ tokens "
        f"reproduced. A teacher-forced screen decodes in full only the windows with a greedy prefix match of at "
        f"least {settings.screen_prefix} tokens or a teacher-forced accuracy of at least "
        f"{settings.screen_accuracy:g}, plus a seeded random sample of the others ({100 * settings.recall_fraction:g}"
        f"\\%, at least {settings.recall_min} per model); recall: the share of memorized windows the screen finds, "
        f"estimated from that sample (missed/$n_r$: memorized among the $n_r$ sampled windows of the source; -- "
        f"when the screen found none). Made by \\texttt{{notebooks/tab\\_census.py}}."
    )
    return table, caption


def memorized_table(runs: Mapping[str, census.Census], *, labels: Mapping[str, str]) -> pd.DataFrame:
    """The memorized windows of every model (LaTeX cells): model, source, document, token position, P, similarity."""
    esc = latex_escape
    rows = []
    for spec, result in runs.items():
        found = result.confirmed[_flag(result.confirmed, "near_verbatim")]
        for r in found.sort_values(["source", "doc", "token_start"], kind="stable").itertuples():
            rows.append({"Model": esc(labels.get(spec, spec)), "Source": esc(r.source),
                         "Document": f"\\texttt{{{esc(r.doc)}}}", "Token": int(r.token_start),
                         "$P$": int(r.prefix_match_len), "Lev sim": format_number(r.lev_similarity),
                         "Exact": "yes" if r.exact_match else "no"})
    columns = ["Model", "Source", "Document", "Token", "$P$", "Lev sim", "Exact"]
    return pd.DataFrame(rows, columns=columns)


def _source_list(found: pd.DataFrame) -> str:
    """'\\texttt{attractors} (3), \\texttt{stdlib} (1)' from memorized rows, or 'none'."""
    counts = found["source"].value_counts().sort_index()
    return ", ".join(f"\\texttt{{{latex_escape(s)}}} ({n})" for s, n in counts.items()) or "none"


def _window_list(found: pd.DataFrame) -> str:
    """'\\texttt{source/doc}@token' of memorized rows, in source/document order, or 'none'."""
    rows = found.sort_values(["source", "doc", "token_start"], kind="stable")
    return ", ".join(f"\\texttt{{{latex_escape(r.source + '/' + r.doc)}}}@{int(r.token_start)}"
                     for r in rows.itertuples()) or "none"


def census_numbers(runs: Mapping[str, census.Census], settings: CensusSettings, *,
                   keys: Mapping[str, str]) -> dict[str, object]:
    """The macros of `numbers_tab_census.tex`: settings, and per model the totals, rate, CI, recall, sources."""
    numbers: dict[str, object] = {
        "CensusPrefixTokens": settings.k, "CensusSuffixTokens": settings.m,
        "CensusMaxWindows": settings.max_windows_per_source, "CensusNSources": len(settings.sources),
        "CensusScreenPrefix": settings.screen_prefix, "CensusScreenAccuracy": f"{settings.screen_accuracy:g}",
        "CensusRecallPercent": f"{100 * settings.recall_fraction:g}", "CensusRecallMin": settings.recall_min,
        "CensusNModels": len(runs)}
    for spec, result in runs.items():
        key = keys[spec] + "Census"
        counts = source_counts(result, settings.sources).set_index("source")
        total = counts.loc["all"]
        found = result.confirmed[_flag(result.confirmed, "near_verbatim")]
        numbers.update({
            f"{key}Windows": int(total["windows"]), f"{key}Candidates": int(total["candidates"]),
            f"{key}Decoded": int(total["decoded"]), f"{key}Memorized": int(total["memorized"]),
            f"{key}Rate": _percent(total["rate"]), f"{key}RateLo": _percent(total["rate_lo"]),
            f"{key}RateHi": _percent(total["rate_hi"]), f"{key}Exact": int(total["exact"]),
            f"{key}ExactRate": _percent(total["exact_rate"]), f"{key}ExactRateLo": _percent(total["exact_lo"]),
            f"{key}ExactRateHi": _percent(total["exact_hi"]),
            f"{key}Recall": format_number(total["recall"]), f"{key}RecallLo": format_number(total["recall_lo"]),
            f"{key}RecallHi": format_number(total["recall_hi"]), f"{key}RecallSampled": int(total["recall_sampled"]),
            f"{key}RecallMissed": int(total["recall_missed"]), f"{key}NonCandidates": int(total["non_candidates"]),
            f"{key}MemorizedSources": _source_list(found), f"{key}MemorizedWindows": _window_list(found)})
        for source in settings.sources:
            numbers[f"{key}{macro_key(source)}Windows"] = int(counts.loc[source, "windows"])
            numbers[f"{key}{macro_key(source)}Memorized"] = int(counts.loc[source, "memorized"])
    return numbers
