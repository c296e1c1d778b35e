"""The GPU profile, checked without a GPU or a network: its configs, the hub spec syntax, the
environment defaults of `load_model` and the pickle opt-in.

What this does NOT show: that any hub model downloads, fits in memory or gives sensible numbers
on CUDA in bf16. The profile has never run on a GPU in this artifact (see README, "GPU profile").
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import jupytext
import pytest
import torch
import yaml

import memkit
from memkit.cli import main
from memkit.core import models as models_module
from memkit.core.models import HubSpec, load_model, parse_hub_spec, resolve_spec
from memkit.errors import MemkitError
from memkit.paper import nb

ROOT = Path(__file__).resolve().parents[1]
GPU_PARAMS = sorted((ROOT / "notebooks" / "params" / "gpu").glob("*.yml"))
GPU_MODELS = yaml.safe_load((ROOT / "configs" / "models-gpu.yml").read_text())
CPU_MODELS = yaml.safe_load((ROOT / "configs" / "models-cpu.yml").read_text())
#: notebooks whose experiment needs the organisms only (no pretrained model list): no GPU params
ORGANISM_ONLY = {"fig_dup_scaling", "fig_context", "fig_checkpoints", "tab_latent", "tab_mia"}
#: parameters whose value is a {model spec: ...} mapping (every key must be a model of the file)
PER_MODEL = ("short_labels", "model_alphas", "layer_step", "extra_modes", "keep_masses",
             "layer_frac")


def notebook_parameters(name: str) -> set[str]:
    """Names assigned in the notebook's cell tagged `parameters` (parsed, never executed)."""
    notebook = jupytext.read(ROOT / "notebooks" / f"{name}.py")
    cell = next(c for c in notebook.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", []))
    return {target.id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign)
            for target in node.targets if isinstance(target, ast.Name)}


def gpu_specs() -> list[str]:
    return [m["spec"] for m in GPU_MODELS["models"]]


# -- the profile's files ------------------------------------------------------------------------------------------
def test_gpu_params_cover_every_notebook_with_pretrained_models():
    cpu = {p.stem for p in (ROOT / "notebooks" / "params").glob("*.yml")}
    gpu = {p.stem for p in GPU_PARAMS}
    assert gpu == cpu - ORGANISM_ONLY
    for name in ORGANISM_ONLY:  # really organism-only: no list of pretrained models to swap
        assert "models" not in notebook_parameters(name)


@pytest.mark.parametrize("path", GPU_PARAMS, ids=lambda p: p.stem)
def test_gpu_params_name_only_notebook_parameters_and_profile_models(path):
    params = yaml.safe_load(path.read_text())
    assert isinstance(params, dict) and params
    unknown = set(params) - notebook_parameters(path.stem)
    assert not unknown, f"{path.name}: not parameters of notebooks/{path.stem}.py: {sorted(unknown)}"
    assert str(params["out_dir"]).startswith("build/gpu/"), "the GPU profile builds into build/gpu/"
    listed = set(gpu_specs())
    models = params["models"]
    assert models and len(models) == len(set(models)) and set(models) <= listed
    for key in PER_MODEL:
        if isinstance(params.get(key), dict):
            assert set(params[key]) <= set(models), f"{key} names models the file does not run"
    for action in params.get("profile_actions", []):
        if isinstance(action["alpha"], dict):
            assert set(action["alpha"]) == set(models)
    if "keep_masses" in params:  # fig_editing looks up every model's grid
        assert set(params["keep_masses"]) == set(models)
    # labels and macro names come from the catalogs: every model has its own, none falls back to its spec
    keys, labels = nb.model_keys(models), nb.model_labels(models)
    assert len(set(keys.values())) == len(models) and all(labels[s] != s for s in models)


def test_gpu_model_list():
    specs = gpu_specs()
    assert len(specs) == len(set(specs))
    macros = [m["macro"] for m in GPU_MODELS["models"]]
    assert len(macros) == len(set(macros)) and all(re.fullmatch(r"[A-Za-z]+", x) for x in macros)
    pythia = GPU_MODELS["pythia"]
    for size in ["70m", "160m", "410m", "1b", "1.4b", "2.8b", "6.9b", "12b"]:
        repo = pythia["repo"].format(size=size)
        assert repo in specs  # final checkpoint (main = step143000)
        for step in pythia["checkpoints"]:
            assert f"{repo}@{step}" in specs
    families = {}
    for m in GPU_MODELS["models"]:
        families.setdefault(m["family"], set()).add(m["kind"])
    for family in ("llama3", "mistral", "olmo2", "smollm2", "gemma3"):
        assert families[family] == {"base", "instruct"}
    assert GPU_MODELS["runtime"] == {"device": "cuda", "dtype": "bfloat16", "online": True}
    assert models_module._resolve_dtype(GPU_MODELS["runtime"]["dtype"], "cuda") == torch.bfloat16


@pytest.mark.parametrize("spec", gpu_specs())
def test_every_gpu_spec_resolves_without_network(spec):
    hub = parse_hub_spec(spec)
    assert hub is not None
    name, location, sha = resolve_spec(spec, online=True)  # hub ids resolve to themselves: nothing is fetched
    assert (name, location, sha) == (str(hub), hub.repo, None)
    with pytest.raises(MemkitError, match="offline by default"):
        resolve_spec(spec, online=False)


def test_cpu_profile_names_only_cpu_models():
    listed = {m["spec"] for m in CPU_MODELS["models"]}
    for path in (ROOT / "notebooks" / "params").glob("*.yml"):
        models = yaml.safe_load(path.read_text()).get("models") or []
        assert set(models) <= listed, path.name


# -- spec syntax ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec, expected", [
    ("EleutherAI/pythia-70m-deduped", HubSpec("EleutherAI/pythia-70m-deduped")),
    ("EleutherAI/pythia-70m-deduped@step143000", HubSpec("EleutherAI/pythia-70m-deduped", "step143000")),
    ("hub:EleutherAI/pythia-1.4b-deduped@step23000", HubSpec("EleutherAI/pythia-1.4b-deduped", "step23000")),
    ("hub:org/model@refs/pr/1", HubSpec("org/model", "refs/pr/1")),
    ("org/model@0123abcd", HubSpec("org/model", "0123abcd")),
    ("zoo:397k@final", None), ("zoo:smoke/100k@96", None), ("gemma-3-270m", None), ("./folder", None),
    ("org/model@", None), ("/abs/path@x", None),
])
def test_parse_hub_spec(spec, expected):
    assert parse_hub_spec(spec) == expected


@pytest.mark.parametrize("spec", ["hub:", "hub:model", "hub:org/model@", "hub:org/model@a b"])
def test_bad_forced_hub_spec_is_one_line(spec):
    with pytest.raises(MemkitError, match="bad hub model spec"):
        resolve_spec(spec, online=True)


def test_hub_prefix_wins_over_a_local_folder(tmp_path, monkeypatch, tiny_model_dir):
    (tmp_path / "org").mkdir()
    (tmp_path / "org" / "model").symlink_to(tiny_model_dir)
    monkeypatch.chdir(tmp_path)
    assert resolve_spec("org/model")[1] == Path("org/model")  # the folder
    assert resolve_spec("hub:org/model", online=True) == ("org/model", "org/model", None)


class _Recorder:
    """Stands in for from_pretrained: records the call, returns the tiny model / tokenizer (no network)."""

    def __init__(self, tiny_model_dir, fail: Exception | None = None):
        self.calls, self.dir, self.fail = [], tiny_model_dir, fail

    def patch(self, monkeypatch):
        import transformers

        real_model = transformers.AutoModelForCausalLM.from_pretrained
        real_tok = transformers.AutoTokenizer.from_pretrained

        def model(location, **kwargs):
            self.calls.append(("model", location, kwargs))
            if self.fail is not None:
                raise self.fail
            return real_model(str(self.dir), dtype=kwargs["dtype"])

        def tokenizer(location, **kwargs):
            self.calls.append(("tokenizer", location, kwargs))
            return real_tok(str(self.dir))

        monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", model)
        monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", tokenizer)
        return self


def test_revision_reaches_from_pretrained(monkeypatch, tiny_model_dir):
    rec = _Recorder(tiny_model_dir).patch(monkeypatch)
    lm = load_model("EleutherAI/pythia-70m-deduped@step23000", device="cpu", online=True)
    assert lm.name == "EleutherAI/pythia-70m-deduped@step23000" and lm.sha256 is None
    assert lm.meta["repo"] == "EleutherAI/pythia-70m-deduped" and lm.meta["revision"] == "step23000"
    for kind, location, kwargs in rec.calls:
        assert location == "EleutherAI/pythia-70m-deduped" and kwargs["revision"] == "step23000"
        assert kwargs["trust_remote_code"] is False and kwargs["local_files_only"] is False
    assert rec.calls[0][2]["use_safetensors"] is True  # default: safetensors only
    rec.calls.clear()
    same = load_model("hub:EleutherAI/pythia-70m-deduped", device="cpu", online=True, revision="step23000")
    assert same.name == lm.name and rec.calls[0][2]["revision"] == "step23000"
    rec.calls.clear()
    load_model("EleutherAI/pythia-70m-deduped", device="cpu", online=True, allow_pickle=True)
    assert "revision" not in rec.calls[0][2] and rec.calls[0][2]["use_safetensors"] is None


def test_revision_conflicts_are_one_line(tiny_model_dir):
    with pytest.raises(MemkitError, match="names revision 'step1'"):
        load_model("org/model@step1", device="cpu", online=True, revision="step2")
    with pytest.raises(MemkitError, match="not a hub id"):
        load_model(str(tiny_model_dir), device="cpu", revision="step2")


def test_hub_repo_with_only_pickle_weights_is_refused_in_one_line(monkeypatch, tiny_model_dir):
    # the error transformers raises for a hub repo without safetensors when use_safetensors=True
    error = OSError("org/model does not appear to have a file named model.safetensors or "
                    "model.safetensors.index.json and thus cannot be loaded with `safetensors`. Please do not set "
                    "`use_safetensors=True`.")
    _Recorder(tiny_model_dir, fail=error).patch(monkeypatch)
    with pytest.raises(MemkitError) as info:
        load_model("org/model@step1", device="cpu", online=True)
    assert str(info.value) == "org/model@step1 ships only pickle weights (.bin); pass --allow-pickle to load them"


# -- pickle-only local folders ------------------------------------------------------------------------------------
def _logits(lm):
    ids = torch.tensor([[1, 5, 9, 12, 40]])
    with torch.inference_mode():
        return lm.model(input_ids=ids).logits


def test_pickle_only_folder_refused_by_default_loaded_when_allowed(pickle_dir, tiny_lm, monkeypatch):
    monkeypatch.delenv("MEMKIT_ALLOW_PICKLE", raising=False)
    with pytest.raises(MemkitError) as info:
        load_model(str(pickle_dir), device="cpu")
    assert str(info.value) == f"{pickle_dir} ships only pickle weights (.bin); pass --allow-pickle to load them"
    lm = load_model(str(pickle_dir), device="cpu", allow_pickle=True)
    assert torch.equal(_logits(lm), _logits(tiny_lm))
    assert lm.sha256 is not None  # the .bin files fingerprint the weights for cache keys
    monkeypatch.setenv("MEMKIT_ALLOW_PICKLE", "1")
    assert torch.equal(_logits(load_model(str(pickle_dir), device="cpu")), _logits(tiny_lm))
    with pytest.raises(MemkitError, match="ships only pickle"):  # an explicit False beats the environment
        load_model(str(pickle_dir), device="cpu", allow_pickle=False)


def test_cli_allow_pickle(pickle_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MEMKIT_ALLOW_PICKLE", raising=False)
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"id": "a", "text": "The old lighthouse keeper climbed the narrow stairs every "
                                                  "evening to light the great lamp near the sea."}) + "\n")
    argv = ["extract", "--model", str(pickle_dir), "--device", "cpu", "--input", str(data), "-k", "4", "-m", "4",
            "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "a.parquet")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "ships only pickle weights (.bin); pass --allow-pickle" in err
    assert main([*argv, "--out", str(tmp_path / "b.parquet"), "--allow-pickle"]) == 0
    assert (tmp_path / "b.parquet").exists()


# -- environment defaults -----------------------------------------------------------------------------------------
def test_environment_defaults_apply_only_when_nothing_is_passed(monkeypatch, tiny_model_dir):
    monkeypatch.setenv("MEMKIT_ONLINE", "1")
    assert resolve_spec("org/model")[1] == "org/model"
    assert resolve_spec("org/model", online=True)[1] == "org/model"
    with pytest.raises(MemkitError, match="offline by default"):
        resolve_spec("org/model", online=False)
    monkeypatch.setenv("MEMKIT_ONLINE", "maybe")
    with pytest.raises(MemkitError, match="MEMKIT_ONLINE='maybe': expected 1 or 0"):
        resolve_spec("org/model")
    monkeypatch.delenv("MEMKIT_ONLINE")
    # MEMKIT_DTYPE is for CUDA: on the CPU the model stays fp32; an explicit bf16 on the CPU is refused
    monkeypatch.setenv("MEMKIT_DEVICE", "cpu")
    monkeypatch.setenv("MEMKIT_DTYPE", "bfloat16")
    lm = load_model(str(tiny_model_dir))
    assert lm.device.type == "cpu" and next(lm.model.parameters()).dtype == torch.float32
    with pytest.raises(MemkitError, match="only offered on CUDA"):
        load_model(str(tiny_model_dir), dtype="bfloat16")
    monkeypatch.setenv("MEMKIT_DEVICE", "tpu")
    with pytest.raises(MemkitError, match="unknown device 'tpu'"):
        load_model(str(tiny_model_dir))
    assert load_model(str(tiny_model_dir), device="cpu").device.type == "cpu"  # explicit beats the environment
    if not torch.cuda.is_available():
        monkeypatch.setenv("MEMKIT_DEVICE", "cuda")
        with pytest.raises(MemkitError, match="CUDA is not available"):
            load_model(str(tiny_model_dir))


def test_cli_ignores_environment_defaults(monkeypatch, tmp_path, capsys):
    """The command line passes its own defaults (offline, auto, float32): MEMKIT_* never change a CLI run."""
    monkeypatch.setenv("MEMKIT_ONLINE", "1")
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"id": "a", "text": "x " * 20}) + "\n")
    rc = main(["extract", "--model", "org/model", "--input", str(data), "--out", str(tmp_path / "o.parquet")])
    assert rc == 2 and "offline by default" in capsys.readouterr().err
