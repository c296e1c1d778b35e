"""memkit.paper.mechanism_models: the model list of the mechanism notebooks, keys and labels (zoo stubbed)."""

import pytest

from memkit.organisms import zoo
from memkit.paper.mechanism_models import mechanism_models


def test_pretrained_models_only():
    chosen = mechanism_models(["gemma-3-270m", "smollm2-135m-instruct"], labels={"gemma-3-270m": "G-270M"},
                              macro_names={"gemma-3-270m": "G"})
    assert chosen.specs == ["gemma-3-270m", "smollm2-135m-instruct"]
    # explicit names win; the rest come from the model catalog (configs/models-cpu.yml)
    assert chosen.keys == {"gemma-3-270m": "G", "smollm2-135m-instruct": "Smol"}
    assert chosen.labels == {"gemma-3-270m": "G-270M", "smollm2-135m-instruct": "SmolLM2-135M-Instruct"}


@pytest.fixture
def stub_zoo(monkeypatch):
    built = []
    monkeypatch.setattr(zoo, "build_zoo", lambda profile, progress=True: built.append((profile, progress)))
    monkeypatch.setattr(zoo, "zoo_specs", lambda profile, step="final": [f"zoo:{profile}/1k@{step}",
                                                                          f"zoo:{profile}/2k@{step}"])
    return built


def test_largest_organism_reads_zoo(stub_zoo):
    chosen = mechanism_models(["gemma-3-270m"], zoo_profile="t", zoo_which="largest", macro_names={"gemma-3-270m": "G"})
    assert stub_zoo == [("t", False)]  # built (if missing) before its specs are listed
    assert chosen.specs == ["gemma-3-270m", "zoo:t/2k@final"]
    assert chosen.keys == {"gemma-3-270m": "G", "zoo:t/2k@final": "Zoo"}
    assert chosen.labels["zoo:t/2k@final"] == "organism 2k"


def test_all_organisms_keyed_by_size(stub_zoo):
    chosen = mechanism_models([], zoo_profile="t", zoo_which="all")
    assert chosen.specs == ["zoo:t/1k@final", "zoo:t/2k@final"]
    assert chosen.keys == {"zoo:t/1k@final": "ZooOneK", "zoo:t/2k@final": "ZooTwoK"}


def test_unknown_zoo_which_is_refused_before_building(stub_zoo):
    with pytest.raises(ValueError, match="zoo_which"):
        mechanism_models([], zoo_profile="t", zoo_which="smallest")
    assert stub_zoo == []
