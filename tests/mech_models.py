"""Tiny random Llama and Gemma 3 models (with the tiny tokenizer) for the mechanistic tests.

Together with the tiny GPT-NeoX of conftest.py they cover the three architectures memkit's
lens, ablation and curvature code must handle: LayerNorm + untied unembedding (GPT-NeoX),
RMSNorm + grouped-query attention (Llama), and Gemma 3's (1 + weight) RMSNorm, sliding-window
layers, scaled embeddings and final logit soft-capping.
"""

from __future__ import annotations

from pathlib import Path

#: Short texts for lens / ablation / curvature samples (tokenized by the tiny tokenizer).
TEXTS = [
    "The old lighthouse keeper climbed the narrow stairs every evening to light the great lamp near the sea.",
    "From the top he could see the fishing boats coming home across the grey water, and the gulls circling.",
    "The village school had one room, one stove, and one teacher who knew the name of every child there.",
]


def build_arch_model(arch: str, folder: Path, tokenizer_dir: Path) -> Path:
    """Save a seeded random 2-layer `llama` or `gemma3` model next to a copy of the tiny tokenizer."""
    import torch
    from transformers import AutoTokenizer, Gemma3ForCausalLM, Gemma3TextConfig, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    common = dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                  bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                  pad_token_id=tokenizer.pad_token_id, initializer_range=0.2)
    torch.manual_seed(0)
    if arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(**common, tie_word_embeddings=True))
    elif arch == "gemma3":
        config = Gemma3TextConfig(**common, head_dim=16, sliding_window=8, final_logit_softcapping=3.0,
                                  layer_types=["sliding_attention", "full_attention", "sliding_attention"])
        model = Gemma3ForCausalLM(config)
    else:
        raise ValueError(arch)
    model.eval().save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder
