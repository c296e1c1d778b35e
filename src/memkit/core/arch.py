"""Every architecture fact memkit relies on, once, as data (TransformerLens style).

    arch = architecture(model)            # the ARCHS entry of model.config.model_type
    blocks = decoder_layers(model)        # ModuleList of decoder blocks
    o_proj = attention_output(model, 3)   # its input holds the per-head outputs of block 3
    mlp = mlp_matrices(model, 3)          # {"gate_proj": Linear, ...} in forward order

One `Arch` per supported `model_type`; all module locations are dotted attribute paths,
from the `*ForCausalLM` model for `layers` and `final_norm`, from a decoder block for
`attn_out` and `mlp`. Supporting a new architecture means adding one entry to `ARCHS`
(and, ideally, a tiny random model to `tests/mech_models.py`); every mechanistic tool
(hooks, logit lens, head ablation, K-FAC editing) then works on it. A model whose
`model_type` is not listed raises `MemkitError` naming it.

Facts that need no entry (plain config values, valid for any causal LM, so greedy decoding
and extraction work on every architecture): `text_config`, `d_model`, `sliding_window`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import MemkitError

NORMS = ("layernorm", "rmsnorm", "rmsnorm_1p")


@dataclass(frozen=True)
class Arch:
    """Where things live in one architecture (dotted attribute paths) and how it transforms them."""

    layers: str  # decoder blocks (a ModuleList), from the model
    final_norm: str  # norm applied after the last block, from the model
    attn_out: str  # attention output projection (Linear; input = heads x head_dim columns), from a block
    mlp: tuple[str, ...]  # MLP weight matrices (Linear), from a block, in forward order
    norm: str = "rmsnorm"  # layernorm | rmsnorm | rmsnorm_1p (RMSNorm scaled by 1 + weight, Gemma)
    embed_scale: bool = False  # input embeddings multiplied by sqrt(d_model) before block 0 (Gemma)
    softcap: str | None = None  # config attribute c of the final logit soft-cap: logits -> c tanh(logits / c)


_GATED_MLP = ("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
_LLAMA_LIKE = Arch(layers="model.layers", final_norm="model.norm", attn_out="self_attn.o_proj", mlp=_GATED_MLP)
_GEMMA3 = Arch(layers="model.layers", final_norm="model.norm", attn_out="self_attn.o_proj", mlp=_GATED_MLP,
               norm="rmsnorm_1p", embed_scale=True, softcap="final_logit_softcapping")

#: model_type -> Arch. GPT-NeoX: Pythia and the zoo; llama: SmolLM2; gemma3_text: Gemma 3 (text only).
ARCHS: dict[str, Arch] = {
    "gpt_neox": Arch(layers="gpt_neox.layers", final_norm="gpt_neox.final_layer_norm", attn_out="attention.dense",
                     mlp=("mlp.dense_h_to_4h", "mlp.dense_4h_to_h"), norm="layernorm"),
    "llama": _LLAMA_LIKE,
    "mistral": _LLAMA_LIKE,
    "qwen2": _LLAMA_LIKE,
    "olmo2": _LLAMA_LIKE,  # norms after attention / MLP instead of before: same module paths
    "gemma3_text": _GEMMA3,
    # the multimodal Gemma 3 wrapper: the language model sits under model.language_model
    "gemma3": Arch(layers="model.language_model.layers", final_norm="model.language_model.norm",
                   attn_out=_GEMMA3.attn_out, mlp=_GATED_MLP, norm=_GEMMA3.norm, embed_scale=True,
                   softcap=_GEMMA3.softcap),
}


def text_config(model):
    """The config holding the language model's settings (the text part of multimodal configs)."""
    return getattr(model.config, "get_text_config", lambda: model.config)()


def d_model(model) -> int:
    """Width of the residual stream."""
    return int(text_config(model).hidden_size)


def sliding_window(model) -> int | None:
    """Attention window of sliding-window layers (Gemma 3, Mistral, ...), or None."""
    window = getattr(text_config(model), "sliding_window", None)
    return int(window) if window else None


def architecture(model) -> Arch:
    """The `ARCHS` entry of a causal LM; MemkitError naming its model_type when there is none."""
    model_type = getattr(model.config, "model_type", None)
    if model_type not in ARCHS:
        raise MemkitError(f"unsupported architecture {model_type!r} ({type(model).__name__}): memkit's hooks and "
                          f"mechanistic tools know {', '.join(sorted(ARCHS))}; add an entry to memkit.core.arch.ARCHS")
    return ARCHS[model_type]


def _resolve(root, path: str, what: str, model, kind: type = torch.nn.Module):
    module = root
    for name in path.split("."):
        module = getattr(module, name, None)
    if not isinstance(module, kind):
        raise MemkitError(f"{type(model).__name__} (model_type {model.config.model_type!r}) has no {what} at "
                          f"{path!r}: memkit.core.arch.ARCHS does not match this model")
    return module


def decoder_layers(model) -> torch.nn.ModuleList:
    """The decoder blocks, in order."""
    return _resolve(model, architecture(model).layers, "decoder layers", model, torch.nn.ModuleList)


def final_norm(model) -> torch.nn.Module:
    """The norm applied after the last decoder block (before the unembedding)."""
    return _resolve(model, architecture(model).final_norm, "final norm", model)


def attention_output(model, layer: int) -> torch.nn.Linear:
    """The attention output projection of decoder block `layer` (its input holds the per-head outputs)."""
    return _resolve(decoder_layers(model)[layer], architecture(model).attn_out, "attention output projection", model,
                    torch.nn.Linear)


def head_shape(model) -> tuple[int, int, int]:
    """(layers, query heads per layer, head dim) as seen by the attention output projection."""
    n_heads = int(text_config(model).num_attention_heads)
    width = attention_output(model, 0).in_features
    if width % n_heads:
        raise MemkitError(f"o_proj input width {width} is not a multiple of {n_heads} heads")
    return len(decoder_layers(model)), n_heads, width // n_heads


def mlp_matrices(model, layer: int) -> dict[str, torch.nn.Linear]:
    """The MLP weight matrices of decoder block `layer`, by their own name (e.g. `up_proj`), in forward order."""
    block = decoder_layers(model)[layer]
    return {path.rsplit(".", 1)[-1]: _resolve(block, path, "MLP matrix", model, torch.nn.Linear)
            for path in architecture(model).mlp}


def logit_softcap(model) -> float | None:
    """The final logit soft-capping constant c, or None when the model has none."""
    attribute = architecture(model).softcap
    cap = getattr(text_config(model), attribute, None) if attribute is not None else None
    return float(cap) if cap else None
