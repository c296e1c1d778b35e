"""Every architecture of the GPU profile, as a tiny random model on the CPU, in fp32 and bf16.

GPT-NeoX (Pythia), Llama (Llama 3, SmolLM2), Mistral (sliding window), OLMo 2 (norms after
attention / MLP, q/k norms) and Gemma 3 (1 + weight norms, scaled embeddings, soft-capping,
sliding layers), each built from its transformers config with 3 blocks of width 64, go through
extraction, one token / embedding / logit perturbation, the logit lens and head ablation.

fp32: the greedy engine equals HF `generate` token for token, the last-layer lens equals the
model's logits, ablating no head changes nothing and one head changes the outputs. bf16 (the GPU
profile's dtype; `load_model` refuses it on the CPU, so the fp32 model is cast): the same code
paths run and give finite results -- bf16 greedy tokens may differ from fp32, so nothing is
compared across dtypes. What this cannot show: CUDA kernels (SDPA / flash attention in bf16),
real checkpoints, memory at 7-12B parameters.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch

import memkit
from memkit.core.arch import architecture, decoder_layers, head_shape, sliding_window
from memkit.core.extract import pad_token_id
from memkit.core.hooks import record_residuals
from memkit.dynamics.actions import Action
from memkit.dynamics.perturb import perturb
from memkit.mechanisms.ablation import ablate_heads
from memkit.mechanisms.lens import lens_logits, logit_lens

from conftest import hf_greedy
from mech_models import TEXTS

ARCHS = ["gpt_neox", "llama", "mistral", "olmo2", "gemma3"]
DTYPES = ["float32", "bfloat16"]
K, M = 6, 16  # 22+ tokens: longer than the sliding windows (8) of Mistral and Gemma 3


def build(arch: str, folder, tokenizer_dir):
    """A seeded random 3-block model of `arch` next to a copy of the tiny tokenizer (safetensors)."""
    import transformers
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    common = dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                  num_attention_heads=4, max_position_embeddings=256, bos_token_id=tokenizer.bos_token_id,
                  eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, initializer_range=0.2)
    gqa = dict(num_key_value_heads=2)
    if arch == "gpt_neox":  # Pythia: parallel residual, rotary on a quarter of each head, untied unembedding
        config = transformers.GPTNeoXConfig(**common, rotary_pct=0.25, use_parallel_residual=True,
                                            tie_word_embeddings=False)
        cls = transformers.GPTNeoXForCausalLM
    elif arch == "llama":
        config, cls = transformers.LlamaConfig(**common, **gqa), transformers.LlamaForCausalLM
    elif arch == "mistral":
        config = transformers.MistralConfig(**common, **gqa, sliding_window=8)
        cls = transformers.MistralForCausalLM
    elif arch == "olmo2":
        config, cls = transformers.Olmo2Config(**common, **gqa), transformers.Olmo2ForCausalLM
    elif arch == "gemma3":
        config = transformers.Gemma3TextConfig(**common, **gqa, head_dim=16, sliding_window=8,
                                               final_logit_softcapping=3.0,
                                               layer_types=["sliding_attention", "full_attention", "sliding_attention"])
        cls = transformers.Gemma3ForCausalLM
    else:
        raise ValueError(arch)
    torch.manual_seed(0)
    model = cls(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def fp32_models(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("archs")
    return {arch: memkit.load_model(str(build(arch, root / arch, tiny_model_dir)), device="cpu") for arch in ARCHS}


@pytest.fixture(scope="module")
def bf16_models(fp32_models):
    """The same weights cast to bf16 (load_model keeps the CPU at fp32; the library takes any model)."""
    return {arch: dataclasses.replace(lm, model=copy.deepcopy(lm.model).to(torch.bfloat16))
            for arch, lm in fp32_models.items()}


@pytest.fixture(params=[(a, d) for a in ARCHS for d in DTYPES], ids=lambda p: f"{p[0]}-{p[1]}")
def lm(request, fp32_models, bf16_models):
    arch, dtype = request.param
    return (fp32_models if dtype == "float32" else bf16_models)[arch]


def _fp32(lm) -> bool:
    return next(lm.model.parameters()).dtype == torch.float32


def _samples(lm, m=M):
    return memkit.make_samples(lm, TEXTS, k=K, m=m)


def _ids(lm):
    return torch.tensor([list(s.prompt_ids) + list(s.suffix_ids) for s in _samples(lm)])


def test_the_architecture_is_known_and_as_built(fp32_models):
    for arch, lm in fp32_models.items():
        architecture(lm.model)
        assert head_shape(lm.model)[:2] == (3, 4)
        assert sliding_window(lm.model) == (8 if arch in ("mistral", "gemma3") else None)
    assert fp32_models["olmo2"].model.model.layers[0].self_attn.q_norm is not None  # q/k norms present


@pytest.mark.parametrize("fast", [True, False], ids=["drafted", "plain"])
def test_extract(lm, fast):
    samples = _samples(lm)
    frame = memkit.extract(lm, samples, batch_size=2, fast=fast, progress=False)
    assert len(frame) == len(samples) and all(len(g) == M for g in frame["generated_ids"])
    assert all(0 <= t < lm.model.config.vocab_size for g in frame["generated_ids"] for t in g)
    assert frame["min_top2_gap"].map(math.isfinite).all()
    if _fp32(lm):  # exact: token for token what HF generate gives, one sample at a time
        pad = pad_token_id(lm.tokenizer)
        for sample, generated in zip(samples, frame["generated_ids"]):
            assert list(generated) == hf_greedy(lm.model, sample.prompt_ids, M, pad)


@pytest.mark.parametrize("action", [Action("substitute_rare", alpha=0.5, seed=1), Action("embed_random", alpha=2.0, layer=1),
                                    Action("logit_tail", alpha=8.0)], ids=lambda a: a.kind)
def test_perturb(lm, action):
    samples = _samples(lm, m=8)
    clean = memkit.extract(lm, samples, batch_size=3, progress=False)
    frame = perturb(lm, samples, action, batch_size=3, progress=False, clean=clean)
    assert len(frame) == len(samples) and frame["token_match"].between(0, 1).all()
    assert frame["divergence_step"].between(-1, 7).all()  # -1: never diverged
    zero = perturb(lm, samples, dataclasses.replace(action, alpha=0.0), batch_size=3, progress=False, clean=clean)
    if _fp32(lm):  # alpha = 0 reproduces the clean run; the action itself changes something
        assert list(map(list, zero["generated_ids"])) == list(map(list, clean["generated_ids"]))
        assert (frame["divergence_step"] >= 0).any()


def test_lens(lm):
    ids = _ids(lm)
    with torch.inference_mode(), record_residuals(lm.model) as store:
        logits = lm.model(input_ids=ids).logits.float()
    last = lens_logits(lm.model, store[lm.n_layers - 1][0])
    assert torch.isfinite(last).all()
    if _fp32(lm):
        torch.testing.assert_close(last, logits, atol=1e-4, rtol=1e-4)
    else:  # the same bf16 computation, up to the recorded residual's round trip through fp32
        torch.testing.assert_close(last, logits, atol=0.05, rtol=0.02)
    frame = logit_lens(lm, _samples(lm, m=4), batch_size=2, progress=False)
    assert set(frame["layer"]) == set(range(lm.n_layers)) and frame["prob"].map(math.isfinite).all()


def test_ablate(lm):
    ids = _ids(lm)
    with torch.inference_mode():
        clean = lm.model(input_ids=ids).logits
        with ablate_heads(lm.model, []):
            same = lm.model(input_ids=ids).logits
        with ablate_heads(lm.model, [(1, 2)]):
            ablated = lm.model(input_ids=ids).logits
    assert torch.equal(clean, same)
    assert torch.isfinite(ablated.float()).all() and not torch.equal(clean, ablated)
    assert (clean.float() - ablated.float()).abs().max() > 1e-3
    assert all(not block._forward_hooks and not block._forward_pre_hooks for block in decoder_layers(lm.model))
