"""The package's shape: one-way dependencies between sections, no import cycles, cheap imports, one door
for hooks, architecture facts only in `memkit.core.arch` (and those facts checked against real models).

The layer rule (CONTRIBUTING.md) as data: `ALLOWED[section]` = the sections its modules may import,
besides their own section. A section is `memkit.<name>`'s first component (`core`, `dynamics`, ...);
`memkit.dynamics.action_kinds`, the torch-free action vocabulary, is a section of its own so that
every analysis may name the action kinds.
"""

from __future__ import annotations

import ast
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "memkit"

FOUNDATION = {"errors", "paths"}
CORE = FOUNDATION | {"core"}
ANALYSIS_BASE = CORE | {"vocabulary"}
ANALYSES = {"dynamics", "organisms", "mechanisms", "mia", "census"}

#: section -> sections it may import (besides itself): core <- analyses <- paper <- cli, nothing upwards.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "paths": set(),
    "memkit": {"errors"},  # memkit/__init__.py: the lazy facade, names its exports as strings
    "core": FOUNDATION,
    "vocabulary": set(),  # memkit.dynamics.action_kinds
    "dynamics": ANALYSIS_BASE,
    "organisms": ANALYSIS_BASE,
    "mechanisms": ANALYSIS_BASE,
    "mia": ANALYSIS_BASE,
    "census": ANALYSIS_BASE,
    "paper": ANALYSIS_BASE | ANALYSES,
    "cli": ANALYSIS_BASE | ANALYSES | {"paper"},
}

#: Modules that must import without torch (the command line starts in milliseconds; fits redo anywhere).
TORCH_FREE = ("memkit", "memkit.cli", "memkit.core", "memkit.dynamics", "memkit.organisms", "memkit.mechanisms",
              "memkit.paper", "memkit.dynamics.action_kinds", "memkit.dynamics.transitions",
              "memkit.organisms.laws", "memkit.paper.report")


# -- the import graph -------------------------------------------------------------------------------
def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def section(module: str) -> str:
    if module == "memkit.dynamics.action_kinds":
        return "vocabulary"
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "memkit"


def imports_of(module: str) -> list[tuple[str, int]]:
    """Every memkit module imported anywhere in `module` (module level or inside functions), with its line."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names if alias.name.split(".")[0] == "memkit"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "memkit":
                continue
            for alias in node.names:  # `from pkg import submodule` imports the submodule
                candidate = f"{target}.{alias.name}"
                found.append((candidate if candidate in MODULES else target, node.lineno))
    return found


GRAPH = {module: imports_of(module) for module in MODULES}


def test_every_module_belongs_to_a_known_section():
    unknown = sorted(m for m in MODULES if section(m) not in ALLOWED)
    assert not unknown, f"say in ALLOWED (tests/test_architecture.py) which sections these may import: {unknown}"


def test_every_import_names_an_existing_module():
    missing = [(m, target, line) for m, edges in GRAPH.items() for target, line in edges if target not in MODULES]
    assert not missing, missing


def test_layer_rule():
    """core <- {dynamics, organisms, mechanisms, mia} <- paper <- cli; analyses never import each other."""
    broken = []
    for module, edges in GRAPH.items():
        mine = section(module)
        for target, line in edges:
            theirs = section(target)
            if theirs != mine and theirs not in ALLOWED[mine]:
                broken.append(f"{MODULES[module].relative_to(SRC)}:{line}: {mine} may not import {target} ({theirs})")
    assert not broken, "\n".join(broken)


def test_no_import_cycles():
    """No cycle between modules, counting imports inside functions too (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target, _ in GRAPH[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or any(t == node for t, _ in GRAPH[node]):
                cycles.append(sorted(component))

    for module in MODULES:
        if module not in index:
            visit(module)
    assert not cycles, cycles


# -- imports in fresh interpreters ---------------------------------------------------------------------
def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)


def test_import_memkit_works_without_torch():
    out = _python("import memkit; print(memkit.__version__)")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0.1.0"


@pytest.mark.parametrize("module", TORCH_FREE)
def test_light_modules_do_not_import_torch(module):
    out = _python(f"import json, sys, {module}; print(json.dumps('torch' in sys.modules))")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) is False, f"importing {module} imports torch"


def test_every_module_imports_first_in_a_fresh_memkit():
    """Each module imported as the first memkit module (memkit's entries in sys.modules dropped in
    between, so every import order a user can start from is exercised; torch & co. stay loaded)."""
    names = [m for m in MODULES if not m.endswith("__main__")]
    code = f"""
import importlib, json, sys, traceback
failed = {{}}
for name in {names!r}:
    for loaded in [m for m in sys.modules if m == "memkit" or m.startswith("memkit.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception:
        failed[name] = traceback.format_exc(limit=3)
print(json.dumps(failed))
"""
    out = _python(code)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1]) == {}


def test_lazy_exports_resolve():
    import memkit

    for name in memkit.__all__:
        assert getattr(memkit, name) is not None, name
    assert memkit.mia.__name__ == "memkit.mia" and memkit.organisms.__name__ == "memkit.organisms"
    with pytest.raises(AttributeError):
        memkit.no_such_module


# -- one door for hooks, one place for architecture facts ------------------------------------------------
HOOK_METHODS = {"register_forward_hook", "register_forward_pre_hook", "register_hook", "register_full_backward_hook",
                "register_backward_hook", "register_full_backward_pre_hook"}
#: Module and config attribute names that are architecture facts: spelled only in memkit/core/arch.py.
ARCH_NAMES = {"o_proj", "self_attn", "language_model", "final_layer_norm", "dense_h_to_4h",
              "dense_4h_to_h", "gate_proj", "up_proj", "down_proj", "final_logit_softcapping",
              "num_attention_heads"}


def _code_names(path: Path) -> list[tuple[str, int]]:
    """Attribute names and string constants of a module's code (docstrings excluded), with their lines."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            names.append((node.attr, node.lineno))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            names.append((node.value, node.lineno))
    return names


def test_torch_hooks_are_registered_only_in_core_hooks():
    outside = [f"{path.relative_to(SRC)}:{line}: {name}" for module, path in MODULES.items()
               if module != "memkit.core.hooks" for name, line in _code_names(path) if name in HOOK_METHODS]
    assert not outside, "register hooks through memkit.core.hooks.attach:\n" + "\n".join(outside)


def test_architecture_facts_live_in_core_arch():
    outside = [f"{path.relative_to(SRC)}:{line}: {name}" for module, path in MODULES.items()
               if module != "memkit.core.arch" for name, line in _code_names(path) if name in ARCH_NAMES]
    assert not outside, "look these up in memkit.core.arch:\n" + "\n".join(outside)


# -- the facts of memkit.core.arch, checked on real (tiny) models -----------------------------------------
@pytest.fixture(scope="module", params=["gpt_neox", "llama", "gemma3"])
def arch_model(request, tiny_model_dir, tmp_path_factory):
    from transformers import AutoModelForCausalLM

    from mech_models import build_arch_model

    folder = tiny_model_dir if request.param == "gpt_neox" else build_arch_model(
        request.param, tmp_path_factory.mktemp(request.param) / "model", tiny_model_dir)
    return AutoModelForCausalLM.from_pretrained(str(folder)).eval()


def test_arch_entries_match_the_models(arch_model):
    import torch

    from memkit.core import arch

    entry = arch.architecture(arch_model)
    config = arch.text_config(arch_model)
    blocks = arch.decoder_layers(arch_model)
    assert len(blocks) == config.num_hidden_layers
    n_layers, n_heads, head_dim = arch.head_shape(arch_model)
    assert (n_layers, n_heads) == (config.num_hidden_layers, config.num_attention_heads)
    assert arch.attention_output(arch_model, n_layers - 1).in_features == n_heads * head_dim
    mlp = arch.mlp_matrices(arch_model, 0)
    assert list(mlp) == [path.rsplit(".", 1)[-1] for path in entry.mlp]
    assert mlp[list(mlp)[-1]].out_features == arch.d_model(arch_model)  # the last matrix writes the residual

    # embedding scale: Gemma multiplies the token embeddings by sqrt(d_model)
    ids = torch.tensor([[1, 2, 3]])
    embedding = arch_model.get_input_embeddings()
    scale = math.sqrt(arch.d_model(arch_model)) if entry.embed_scale else 1.0
    with torch.no_grad():
        assert torch.allclose(embedding(ids), embedding.weight[ids] * scale, rtol=1e-3)

    # final norm: LayerNorm, RMSNorm (x * w) or Gemma's RMSNorm (x * (1 + w)), told apart with a random w
    norm = arch.final_norm(arch_model)
    x = torch.randn(2, 5, arch.d_model(arch_model))
    if entry.norm == "layernorm":
        assert isinstance(norm, torch.nn.LayerNorm)
    else:
        eps = getattr(norm, "eps", None) or getattr(norm, "variance_epsilon")
        saved = norm.weight.detach().clone()
        with torch.no_grad():
            norm.weight.copy_(torch.randn_like(saved))
            weight = norm.weight.detach()
            rms = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
            expected = rms * ((1 + weight) if entry.norm == "rmsnorm_1p" else weight)
            assert torch.allclose(norm(x), expected, atol=1e-5)
            norm.weight.copy_(saved)

    # soft-capping: only where the config names a cap
    cap = arch.logit_softcap(arch_model)
    assert (cap is not None) == bool(entry.softcap and getattr(config, entry.softcap, None))


@pytest.mark.parametrize("model_type", ["mistral", "qwen2", "olmo2", "gemma3"])
def test_arch_paths_resolve_on_other_architectures(model_type):
    """Entries not covered by tiny real models: every path resolves on a meta-device model."""
    import torch
    import transformers as T

    from memkit.core import arch

    common = dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=64, eos_token_id=1, bos_token_id=0, pad_token_id=0)
    if model_type == "gemma3":
        config = T.Gemma3Config(text_config={**common, "vocab_size": 300, "head_dim": 8},
                                vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                                   num_attention_heads=2, image_size=28, patch_size=14))
        factory = T.Gemma3ForConditionalGeneration
    else:
        config = T.AutoConfig.for_model(model_type, **common)
        factory = T.AutoModelForCausalLM.from_config
    with torch.device("meta"):
        model = factory(config)
    assert model.config.model_type == model_type
    assert len(arch.decoder_layers(model)) == 2
    assert isinstance(arch.final_norm(model), torch.nn.Module)
    assert arch.head_shape(model) == (2, 4, 8)
    assert list(arch.mlp_matrices(model, 1)) == ["gate_proj", "up_proj", "down_proj"]


def test_unknown_architecture_is_a_clear_error():
    import torch
    import transformers as T

    import memkit
    from memkit.core import arch, hooks

    with torch.device("meta"):
        model = T.GPT2LMHeadModel(T.GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=32))
    for probe in (arch.decoder_layers, arch.final_norm, arch.logit_softcap, lambda m: hooks.record_residuals(m).__enter__()):
        with pytest.raises(memkit.MemkitError, match="'gpt2'"):
            probe(model)
    assert arch.sliding_window(model) is None and arch.d_model(model) == 16  # config facts work for any model


# -- the hook door ---------------------------------------------------------------------------------------------
def _n_hooks(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_attach_registers_every_kind_and_always_removes(tiny_lm):
    import torch

    from memkit.core.arch import decoder_layers
    from memkit.core.hooks import attach

    model = tiny_lm.model
    block = decoder_layers(model)[0]
    calls: list[str] = []
    grads: list[torch.Tensor] = []
    embed = model.get_input_embeddings()
    hooks = [
        (block, "forward", lambda m, a, o: calls.append("forward")),
        (block, "forward_kwargs", lambda m, a, k, o: calls.append("forward_kwargs")),
        (block, "pre_forward", lambda m, a: calls.append("pre_forward")),
        (block, "pre_forward_kwargs", lambda m, a, k: calls.append("pre_forward_kwargs")),
        (embed, "forward", lambda m, a, o: o.detach().requires_grad_(True)),
        (embed, "output_grad", grads.append),
    ]
    ids = torch.tensor([[1, 2, 3, 4]])
    with attach(hooks):
        assert _n_hooks(model) == 6
        model(input_ids=ids).logits.sum().backward()
    assert calls == ["pre_forward", "pre_forward_kwargs", "forward", "forward_kwargs"]
    assert len(grads) == 1 and grads[0].shape == (1, 4, 64)
    assert _n_hooks(model) == 0
    model.zero_grad(set_to_none=True)

    with pytest.raises(RuntimeError, match="boom"):
        with attach([(block, "forward", lambda m, a, o: None)]):
            raise RuntimeError("boom")
    assert _n_hooks(model) == 0
    with pytest.raises(ValueError, match="unknown hook kind"):
        with attach([(block, "forward", lambda m, a, o: None), (block, "backward", lambda *a: None)]):
            pass
    assert _n_hooks(model) == 0  # hooks registered before the bad one are removed too
