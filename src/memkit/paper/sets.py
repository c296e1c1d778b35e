"""Memorized vs control samples and generic text for the mechanism notebooks (lens, heads, editing).

    samples, groups = memorization_sets(lm, records, k=32, m=32, max_memorized=6, max_controls=6)
    fit_texts, heldout_texts = generic_texts_for(lm)

Pretrained models (anything but a zoo organism): the attractors of data/attractors.jsonl the
model recites (clean greedy Biderman score >= threshold on the first m tokens, or exact; via
`memkit.dynamics.sweeps.dynamics_samples`, which reuses Table 1's cached runs when clean_m = 64) are
`memorized`; the shuffled-text records of category `control` are the `control` set.

Organisms (`zoo:` specs): canaries of the highest duplication level whose clean greedy
continuation reaches the threshold at this checkpoint are `memorized`; never-inserted level-0
canaries (the same kinds) are `control`. Only the `all` insertion window is used.

Generic text: organisms see their own background corpus (training chapters to fit, held-out
chapters for perplexity; `memkit.organisms.corpus`); pretrained models get Python's pydoc topics
(`memkit.core.text`), which share no 8-word run with the attractors.

Paper level because it combines the organisms and the dynamics' sample selection, which the
mechanism modules themselves never import.
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from ..core.models import LoadedModel
from ..core.samples import Sample


def is_organism(lm_or_spec) -> bool:
    """True for zoo organisms (spec `zoo:...` or a LoadedModel whose meta names a zoo profile)."""
    if isinstance(lm_or_spec, str):
        return lm_or_spec.startswith("zoo:")
    return "zoo_profile" in (lm_or_spec.meta or {}) or str(lm_or_spec.name).startswith("zoo:")


def zoo_sets(lm: LoadedModel, *, k: int = 32, m: int = 32, threshold: float = 0.9, max_memorized: int | None = None,
             max_controls: int | None = None, batch_size: int = 32) -> tuple[list[Sample], pd.Series, pd.DataFrame]:
    """Memorized top-level canaries and level-0 controls of an organism, with their clean runs."""
    from ..core.extract import cached_extract
    from ..organisms.zoo import parse_spec, zoo_samples

    profile = lm.meta.get("zoo_profile") or parse_spec(lm.name).profile
    samples = [s for s in zoo_samples(profile, k=k, m=m) if s.meta.get("window") == "all"]
    top = max(s.meta["level"] for s in samples)
    candidates = [s for s in samples if s.meta["level"] in (0, top)]
    clean = cached_extract(lm, candidates, batch_size=batch_size, progress=False)
    recited = (clean["token_match"] >= threshold) | clean["exact_match"].astype(bool)
    level = clean["meta_level"]
    memorized = list(clean.loc[(level == top) & recited, "id"])[:max_memorized]
    controls = list(clean.loc[level == 0, "id"])[:max_controls]
    groups = pd.Series({**{i: "memorized" for i in memorized}, **{i: "control" for i in controls}}, name="group")
    keep = [s for s in candidates if s.id in groups.index]
    return keep, groups, clean[clean["id"].isin(groups.index)].reset_index(drop=True)


def pretrained_sets(lm: LoadedModel, records: Sequence[dict], *, k: int = 32, m: int = 32, clean_m: int = 64,
                    threshold: float = 0.9, max_memorized: int | None = None, max_controls: int | None = None,
                    batch_size: int = 16) -> tuple[list[Sample], pd.Series, pd.DataFrame]:
    """Recited attractors and shuffled-text controls of a pretrained model, with their clean runs."""
    from ..dynamics.sweeps import dynamics_samples

    samples, clean, groups = dynamics_samples(lm, records, k=k, m=m, clean_m=max(clean_m, m), threshold=threshold,
                                              max_memorized=max_memorized, max_controls=max_controls,
                                              batch_size=batch_size)
    chosen = pd.Series({s.id: groups[s.id] for s in samples}, name="group")
    return samples, chosen, clean


def memorization_sets(lm: LoadedModel, records: Sequence[dict] | None = None, *, k: int = 32, m: int = 32,
                      threshold: float = 0.9, max_memorized: int | None = None, max_controls: int | None = None,
                      batch_size: int = 16) -> tuple[list[Sample], pd.Series]:
    """(samples, id -> 'memorized' | 'control') for any model: organisms or pretrained (needs `records`)."""
    if is_organism(lm):
        samples, groups, _ = zoo_sets(lm, k=k, m=m, threshold=threshold, max_memorized=max_memorized,
                                      max_controls=max_controls, batch_size=max(batch_size, 32))
    else:
        if records is None:
            raise ValueError("pretrained models need the attractor records")
        samples, groups, _ = pretrained_sets(lm, records, k=k, m=m, threshold=threshold, max_memorized=max_memorized,
                                             max_controls=max_controls, batch_size=batch_size)
    return samples, groups


def generic_texts_for(lm: LoadedModel) -> tuple[list[str], list[str]]:
    """(fit texts, held-out texts) suited to the model (see the module docstring)."""
    if is_organism(lm):
        from ..organisms.corpus import build_corpus

        corpus = build_corpus()
        return list(corpus.train_docs), list(corpus.heldout_docs)
    from ..core.text import generic_texts

    return generic_texts("fit"), generic_texts("heldout")
