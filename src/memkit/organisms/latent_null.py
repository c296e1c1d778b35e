"""Latent memorization against a permutation null: never-inserted controls as pseudo-canaries.

    pairs = matched_pairs(draws)                      # each eligible canary with a kind- and clean-matched control
    tests = null_tests(pairs, n_resamples=9999)       # per size x family x level: canaries vs pseudo-canaries, Holm

`draws` are `memkit.organisms.latent.latent_draws` rows (one per sample x sigma) with `size`,
`seed` and `family` columns. One statistic is fixed in advance: the *gain* in greedy match length,
best over the noise draws minus clean. A best-of-N statistic rises under pure noise, so canaries
and the never-inserted level-0 controls go through the identical selection (not exactly
extractable by the clean model) and the same statistic; each canary is matched, within its model
and family, to a control of its kind with the nearest clean teacher-forced accuracy
(`memkit.core.stats.nearest_matches`, without replacement per level). The null is that the
inserted/control labels are exchangeable: a permutation test of the mean gain per level,
size and family (`permutation_test_means`, canary gains averaged over the seeds that selected
them, likewise their controls), Holm over every test. *Recovered* (descriptive): some draw
reproduces the whole suffix although the clean model does not. Pure pandas: tested on hand-made frames.
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from ..core.stats import holm, nearest_matches, permutation_test_means
from ..errors import MemkitError

MODEL = ("size", "seed", "family", "sigma")  # one noise setting of one trained model


def eligible(draws: pd.DataFrame) -> pd.DataFrame:
    """The rows the clean model does not extract exactly, with `gain` (best - clean match length) and `recovered`."""
    out = draws[~draws["clean_exact"].astype(bool)].copy()
    out["gain"] = out["best_prefix"] - out["clean_prefix"]
    out["recovered"] = out["exact_draws"] > 0
    return out


def matched_pairs(draws: pd.DataFrame, *, by: Sequence[str] = MODEL, level: str = "meta_level",
                  kind: str = "meta_kind", covariate: str = "clean_accuracy") -> pd.DataFrame:
    """Each eligible canary (level > 0) with its matched eligible control, per model `by` and level.

    Rows: the `by` keys, level, kind, canary, control, distance, and canary_/control_ clean
    (`covariate`), gain, recovered. A canary with no control of its kind left is dropped.
    """
    rows = []
    for keys, group in eligible(draws).groupby(list(by), sort=True):
        keys = keys if isinstance(keys, tuple) else (keys,)
        if group["id"].duplicated().any():
            raise MemkitError(f"matched_pairs: several rows per sample in {dict(zip(by, keys))}; add a `by` column")
        controls = group[group[level] == 0].set_index("id")
        for lv, canaries in group[group[level] > 0].groupby(level, sort=True):
            canaries = canaries.set_index("id")
            match = nearest_matches(canaries[covariate], controls[covariate], treated_strata=canaries[kind],
                                    pool_strata=controls[kind])
            for r in match.itertuples():
                c, p = canaries.loc[r.treated_id], controls.loc[r.control_id]
                rows.append({**dict(zip(by, keys)), "level": int(lv), "kind": c[kind], "canary": r.treated_id,
                             "control": r.control_id, "distance": r.distance,
                             "canary_clean": float(c[covariate]), "control_clean": float(p[covariate]),
                             "canary_gain": float(c["gain"]), "control_gain": float(p["gain"]),
                             "canary_recovered": bool(c["recovered"]), "control_recovered": bool(p["recovered"])})
    return pd.DataFrame(rows)


def null_tests(pairs: pd.DataFrame, *, by: Sequence[str] = ("size", "family", "level"), n_resamples: int = 9999,
               seed: int = 0) -> pd.DataFrame:
    """Per group of `by`: mean gain of canaries vs their matched pseudo-canaries, permutation p and Holm p.

    The unit is the canary: its gains are averaged over the seeds (models) that selected it, and
    so are its matched controls'. Columns: n (canaries), n_pairs, n_seeds, canary_gain,
    control_gain, diff, p, p_holm (over every row), recovered shares (of pairs) and mean clean
    accuracies of both sides.
    """
    rows = []
    for keys, group in pairs.groupby(list(by), sort=True):
        keys = keys if isinstance(keys, tuple) else (keys,)
        unit = group.groupby("canary", sort=True)[["canary_gain", "control_gain"]].mean()
        diff, p = permutation_test_means(unit["canary_gain"], unit["control_gain"], n_resamples=n_resamples,
                                         seed=seed)
        rows.append({**dict(zip(by, keys)), "n": len(unit), "n_pairs": len(group), "n_seeds": group["seed"].nunique(),
                     "canary_gain": float(unit["canary_gain"].mean()), "control_gain": float(unit["control_gain"].mean()),
                     "diff": diff, "p": p,
                     "canary_recovered": float(group["canary_recovered"].mean()),
                     "control_recovered": float(group["control_recovered"].mean()),
                     "canary_clean": float(group["canary_clean"].mean()),
                     "control_clean": float(group["control_clean"].mean())})
    out = pd.DataFrame(rows, columns=[*by, "n", "n_pairs", "n_seeds", "canary_gain", "control_gain", "diff", "p",
                                      "canary_recovered", "control_recovered", "canary_clean", "control_clean"])
    out["p_holm"] = holm(out["p"].to_numpy())
    return out


def pseudo_canary_null(draws: pd.DataFrame, *, by: Sequence[str] = ("size", "family"),
                       level: str = "meta_level") -> pd.DataFrame:
    """The null's distribution: per group of `by` and gain value, the share of eligible controls with that gain.

    Rows: the `by` keys, gain, n (eligible control rows, all seeds), share; plus `recovered` (share of
    eligible controls that some draw reproduces exactly) repeated on the group's rows.
    """
    controls = eligible(draws)
    controls = controls[controls[level] == 0]
    rows = []
    for keys, group in controls.groupby(list(by), sort=True):
        keys = keys if isinstance(keys, tuple) else (keys,)
        counts = group["gain"].value_counts().sort_index()
        for gain, count in counts.items():
            rows.append({**dict(zip(by, keys)), "gain": int(gain), "n": len(group), "share": count / len(group),
                         "recovered": float(group["recovered"].mean())})
    return pd.DataFrame(rows)


__all__ = ["eligible", "matched_pairs", "null_tests", "pseudo_canary_null"]

