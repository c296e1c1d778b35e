"""Broad text for the curvature-editing figure: what the K-FAC factors are fitted on, and held-out perplexity text.

    fit, heldout = editing_texts(lm)      # organisms: KJV train chapters / unused held-out chapters

Organisms (`zoo:` specs): the fit text is their own training distribution without the canaries,
the KJV training chapters of `memkit.organisms.corpus` (~0.95M tokens of its 4096-token BPE);
perplexity is measured on the held-out chapters that no canary was cut from (canary sources from
`zoo_canaries`), so neither the fit nor the perplexity text contains an inserted string.

Pretrained models: everything here is offline and fixed by the environment. Fit: the Python
language-reference help topics (`pydoc_data.topics`, both splits of `memkit.core.text`)
interleaved document by document with the KJV training chapters, two registers of English.
Held out: a different source, the docstrings of a fixed list of standard-library modules (the
module's, then its public members' in name order; what `pydoc` shows). Debian's /usr/share/doc
is not used: its files depend on the installed packages, so it would differ between machines.
"""

from __future__ import annotations

import importlib
import inspect
from itertools import chain, zip_longest

#: Standard-library modules whose docstrings form the pretrained models' held-out text (Python 3.11).
HELDOUT_MODULES = ("argparse", "bisect", "calendar", "collections", "csv", "datetime", "decimal", "difflib",
                   "fractions", "functools", "heapq", "ipaddress", "itertools", "json", "logging", "pathlib",
                   "shutil", "statistics", "string", "tempfile", "textwrap", "zipfile")


def module_docs(names=HELDOUT_MODULES) -> list[str]:
    """One document per module: its docstring and its public members' docstrings, members in name order."""
    docs = []
    for name in names:
        module = importlib.import_module(name)
        parts = [inspect.getdoc(module) or ""]
        for member in sorted(n for n in dir(module) if not n.startswith("_")):
            obj = getattr(module, member)
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and getattr(obj, "__module__", None) == name:
                doc = inspect.getdoc(obj)
                if doc:
                    parts.append(f"{member}: {doc}")
        docs.append("\n\n".join(p for p in parts if p))
    return docs


def interleave(*sources: list[str]) -> list[str]:
    """Documents taken alternately from each source (a, b, a, b, ...), the longer source's rest at the end."""
    return [d for d in chain.from_iterable(zip_longest(*sources)) if d is not None]


def canary_chapters(profile: str) -> set[str]:
    """Titles of the held-out chapters passage canaries were cut from (their `source`: '<title> (held out), ...')."""
    from ..organisms.zoo import zoo_canaries

    return {c.source.split(" (held out)")[0] for c in zoo_canaries(profile) if "(held out)" in c.source}


def editing_texts(lm) -> tuple[list[str], list[str]]:
    """(fit texts, held-out texts) for `lm` (see the module docstring)."""
    from ..core.text import generic_texts
    from ..organisms.corpus import build_corpus
    from .sets import is_organism

    corpus = build_corpus()
    if is_organism(lm):
        from ..organisms.zoo import parse_spec

        used = canary_chapters(lm.meta.get("zoo_profile") or parse_spec(lm.name).profile)
        heldout = [d for t, d in zip(corpus.heldout_titles, corpus.heldout_docs) if t not in used]
        return list(corpus.train_docs), heldout
    return interleave(generic_texts("fit") + generic_texts("heldout"), list(corpus.train_docs)), module_docs()
