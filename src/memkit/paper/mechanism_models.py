"""The models a mechanism notebook (fig_lens, fig_heads, fig_editing) runs, with their macro keys and labels.

    chosen = mechanism_models(["gemma-3-270m"], zoo_profile="paper", zoo_which="largest")
    chosen.specs    # ["gemma-3-270m", "zoo:<largest size>@final"]
    chosen.keys     # {"gemma-3-270m": "Gemma", "zoo:...": "Zoo"}
    chosen.labels   # {"gemma-3-270m": "Gemma-3-270M", "zoo:...": "organism <size>"}

The pretrained models come first, then the organisms of a zoo profile (trained once if missing)
at their final step: only the largest size, or every size smallest first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from . import nb

ZOO_WHICH = ("largest", "all")


@dataclass(frozen=True)
class ModelSet:
    """Model specs in run order with their letters-only macro keys and display labels."""

    specs: list[str]
    keys: dict[str, str]
    labels: dict[str, str]


def zoo_organisms(zoo_profile: str | None, *, zoo_which: str = "largest", progress: bool = False) -> list[str]:
    """Final-step organism specs of `zoo_profile` (built if missing): the largest size or all of them."""
    if zoo_profile is None:
        return []
    if zoo_which not in ZOO_WHICH:
        raise ValueError(f"zoo_which must be one of {ZOO_WHICH}, not {zoo_which!r}")
    from ..organisms import zoo

    zoo.build_zoo(zoo_profile, progress=progress)
    sizes = zoo.zoo_specs(zoo_profile, step="final")
    return sizes[-1:] if zoo_which == "largest" else sizes


def mechanism_models(models: Sequence[str], *, zoo_profile: str | None = None, zoo_which: str = "largest",
                     labels: Mapping[str, str] | None = None, macro_names: Mapping[str, str] | None = None,
                     progress: bool = False) -> ModelSet:
    """The pretrained `models` plus the zoo organisms, keyed for macros (one organism reads `Zoo`).

    Keys and labels come from the model catalogs (`nb.model_keys` / `nb.model_labels`); `labels` and
    `macro_names` override them per spec.
    """
    specs = list(models) + zoo_organisms(zoo_profile, zoo_which=zoo_which, progress=progress)
    return ModelSet(specs, nb.model_keys(specs, macro_names, zoo_single=zoo_which == "largest"),
                    nb.model_labels(specs, labels))
