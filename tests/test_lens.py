"""Logit lens invariants: the last layer is the model's own output, ranks follow the argmax, hooks go away."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

import memkit
from memkit.core.arch import decoder_layers, final_norm, logit_softcap
from memkit.core.hooks import record_residuals
from memkit.mechanisms.lens import lens_logits, lock_in, logit_lens

from mech_models import TEXTS


def _samples(lm, k=6, m=8):
    return memkit.make_samples(lm, TEXTS, k=k, m=m)


def _padded_batch(lm):
    rows = [list(s.prompt_ids) + list(s.suffix_ids) for s in _samples(lm)]
    rows[1] = rows[1][:-3]  # unequal lengths: right padding must not matter
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), 0, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    return ids, mask


def test_last_layer_lens_is_the_models_own_logits(arch_lm):
    ids, mask = _padded_batch(arch_lm)
    with torch.inference_mode(), record_residuals(arch_lm.model) as store:
        logits = arch_lm.model(input_ids=ids, attention_mask=mask).logits
    lens = lens_logits(arch_lm.model, store[arch_lm.n_layers - 1][0])
    valid = mask.bool()
    assert torch.allclose(lens[valid], logits[valid], atol=1e-5, rtol=1e-5)
    # an earlier layer decodes to something else
    assert not torch.allclose(lens_logits(arch_lm.model, store[0][0])[valid], logits[valid], atol=1e-3)


def test_gemma_softcap_and_norms_are_the_models_own(arch_lm):
    cap = logit_softcap(arch_lm.model)
    norm = final_norm(arch_lm.model)
    if arch_lm.arch == "gemma3_text":
        assert cap == 3.0 and norm is arch_lm.model.model.norm
        ids, mask = _padded_batch(arch_lm)
        with torch.inference_mode():
            assert arch_lm.model(input_ids=ids, attention_mask=mask).logits.abs().max() <= cap
    elif arch_lm.arch == "gpt_neox":
        assert cap is None and norm is arch_lm.model.gpt_neox.final_layer_norm
    else:
        assert cap is None and norm is arch_lm.model.model.norm


def test_rank_zero_exactly_where_the_model_argmax_is_the_true_token(arch_lm):
    samples = _samples(arch_lm)
    frame = logit_lens(arch_lm, samples, batch_size=2, chunk=5, progress=False)
    n_layers = arch_lm.n_layers
    assert len(frame) == len(samples) * n_layers * 8
    assert list(frame["id"].unique()) == [s.id for s in samples]
    assert frame["prob"].between(0, 1).all() and (frame["rank"] >= 0).all()
    last = frame[frame["layer"] == n_layers - 1]
    for s in samples:
        ids = torch.tensor([list(s.prompt_ids) + list(s.suffix_ids)])
        with torch.inference_mode():
            logits = arch_lm.model(input_ids=ids).logits[0]
        cols = range(len(s.prompt_ids) - 1, len(s.prompt_ids) - 1 + len(s.suffix_ids))
        argmax_true = [int(logits[c].argmax()) == t for c, t in zip(cols, s.suffix_ids)]
        probs = torch.softmax(logits[list(cols)], -1)[range(len(s.suffix_ids)), list(s.suffix_ids)]
        rows = last[last["id"] == s.id].sort_values("position")
        assert rows["is_top1"].tolist() == argmax_true
        assert torch.allclose(torch.tensor(rows["prob"].to_numpy(), dtype=torch.float32), probs, atol=1e-5)


def test_lens_leaves_no_hooks_and_the_model_unchanged(arch_lm):
    ids, mask = _padded_batch(arch_lm)
    with torch.inference_mode():
        before = arch_lm.model(input_ids=ids, attention_mask=mask).logits
    logit_lens(arch_lm, _samples(arch_lm), layers=[0], progress=False)
    assert all(not block._forward_hooks for block in decoder_layers(arch_lm.model))
    with torch.inference_mode():
        assert torch.equal(arch_lm.model(input_ids=ids, attention_mask=mask).logits, before)


def test_layer_subset_and_bad_layers(tiny_lm):
    frame = logit_lens(tiny_lm, _samples(tiny_lm), layers=[1], progress=False)
    assert set(frame["layer"]) == {1}
    with pytest.raises(memkit.MemkitError):
        logit_lens(tiny_lm, _samples(tiny_lm), layers=[2], progress=False)


def test_lock_in_definitions():
    rows = []
    patterns = {"a": [0, 0, 0, 0], "b": [3, 0, 2, 0], "c": [5, 0, 0, 1], "d": [4, 3, 2, 1], "e": [0, 1, 0, 0]}
    for sid, ranks in patterns.items():
        rows += [{"id": sid, "layer": layer, "position": 0, "rank": r} for layer, r in enumerate(ranks)]
    frame = pd.DataFrame(rows).assign(is_top1=lambda f: f["rank"] == 0)
    got = lock_in(frame).set_index("id")
    assert got["first_top1"].to_dict() == {"a": 0, "b": 1, "c": 1, "d": -1, "e": 0}
    assert got["lock_in"].to_dict() == {"a": 0, "b": 3, "c": -1, "d": -1, "e": 2}
    assert got["final_top1"].to_dict() == {"a": True, "b": True, "c": False, "d": False, "e": True}
    assert got["n_layers_top1"].to_dict() == {"a": 4, "b": 2, "c": 2, "d": 0, "e": 3}


def test_lock_in_on_a_real_lens_is_consistent(tiny_lm):
    frame = logit_lens(tiny_lm, _samples(tiny_lm), progress=False)
    locked = lock_in(frame)
    assert len(locked) == 3 * 8
    final = locked[locked["final_top1"]]
    assert (final["lock_in"] >= final["first_top1"]).all() and (final["first_top1"] >= 0).all()
    assert (locked.loc[~locked["final_top1"], "lock_in"] == -1).all()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["smollm2", "gemma"])
def test_embedded_models_last_layer_lens(name, request):
    lm = request.getfixturevalue(name)
    sample = memkit.make_samples(lm, [TEXTS[0] + " " + TEXTS[1]], k=8, m=6)[0]
    ids = torch.tensor([list(sample.prompt_ids) + list(sample.suffix_ids)])
    with torch.inference_mode(), record_residuals(lm.model) as store:
        logits = lm.model(input_ids=ids).logits
    assert torch.allclose(lens_logits(lm.model, store[lm.n_layers - 1][0]), logits, atol=1e-4, rtol=1e-4)
    frame = logit_lens(lm, [sample], layers=[lm.n_layers - 1], progress=False)
    argmax = logits[0, len(sample.prompt_ids) - 1 : -1].argmax(-1).tolist()
    assert frame["is_top1"].tolist() == [a == t for a, t in zip(argmax, sample.suffix_ids)]
