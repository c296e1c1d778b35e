"""Invariants of the perturbation actions (issue: controlled dynamics).

alpha = 0 reproduces the clean run exactly for every kind; embedding actions are causal
(no change before their layer or before their first position); drafting never changes
perturbed tokens; hooks are always removed.
"""

import pytest
import torch

import memkit
from memkit.core.arch import decoder_layers
from memkit.core.hooks import residual_edit
from memkit.dynamics.actions import (EMBEDDING_KINDS, KINDS, Action, apply_token_action, difference_of_means,
                                     logits_transform, perturb_prefix, rare_token_ids)
from memkit.dynamics.perturb import observe, perturb, relock_step
from memkit.errors import MemkitError

from conftest import PLAIN_TEXTS


def _action(kind, alpha, layer=1):
    kwargs = {"layer": layer} if kind in EMBEDDING_KINDS else {}
    if kind == "embed_direction":
        kwargs["direction"] = torch.randn(64, generator=torch.Generator().manual_seed(0))
    if kind == "force_token":
        alpha = round(alpha)
    return Action(kind, alpha=alpha, **kwargs)


@pytest.fixture(scope="module")
def samples(tiny_lm):
    return memkit.make_samples(tiny_lm, PLAIN_TEXTS, k=12, m=10)


@pytest.fixture(scope="module")
def clean(tiny_lm, samples):
    return memkit.extract(tiny_lm, samples, batch_size=2, progress=False)


@pytest.mark.parametrize("kind", KINDS)
def test_alpha_zero_is_the_clean_run(tiny_lm, samples, clean, kind):
    frame = perturb(tiny_lm, samples, _action(kind, 0.0), batch_size=2, clean=clean, progress=False)
    assert [list(g) for g in frame["generated_ids"]] == [list(g) for g in clean["generated_ids"]]
    assert (frame["divergence_step"] == -1).all()
    if kind != "force_token":
        states, steps = observe(tiny_lm, samples[0], _action(kind, 0.0), clean["generated_ids"][0])
        assert (states["rel_distance"] == 0).all()
        assert (steps["kl"] == 0).all()
        assert steps["same"].all()


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "force_token"])
def test_large_alpha_changes_something(tiny_lm, samples, clean, kind):
    alpha = 50.0 if kind.startswith(("embed", "logit")) else 0.5
    states, steps = observe(tiny_lm, samples[0], _action(kind, alpha), clean["generated_ids"][0])
    assert steps["kl"].max() > 0
    if kind.startswith("logit"):
        assert (states["rel_distance"] == 0).all()  # logit actions leave the hidden states alone
    else:
        assert states["rel_distance"].max() > 0


@pytest.mark.parametrize("kind", ["embed_random", "embed_noise"])
def test_embedding_action_is_causal(tiny_lm, samples, kind):
    sample = samples[0]
    position = 6
    action = Action(kind, alpha=2.0, layer=1, position=position)
    states, _ = observe(tiny_lm, sample, action)
    before_layer = states[states["layer"] < 1]
    assert len(before_layer) and (before_layer["rel_distance"] == 0).all()
    before_position = states[states["position"] < position]
    assert len(before_position) and (before_position["rel_distance"] == 0).all()
    at = states[(states["layer"] == 1) & (states["position"] >= position) & (states["position"] < len(sample.prompt_ids))]
    assert (at["rel_distance"] > 0).all()


@pytest.mark.parametrize("kind", ["embed_random", "embed_noise", "logit_tail", "logit_rare_bias", "substitute_rare"])
def test_drafting_does_not_change_perturbed_tokens(tiny_lm, samples, kind):
    alpha = {"embed_random": 1.0, "embed_noise": 1.0, "logit_tail": 3.0, "logit_rare_bias": 5.0}.get(kind, 0.3)
    action = _action(kind, alpha)
    from memkit.dynamics.actions import forward_context

    run = [apply_token_action(tiny_lm.tokenizer, s, action) for s in samples] if action.family == "token" else samples
    transform = logits_transform(tiny_lm.tokenizer, action) if action.family == "logit" else None
    factory = (lambda batch: forward_context(tiny_lm, batch, action)) if action.family == "embedding" else None
    fast = memkit.extract(tiny_lm, run, batch_size=3, fast=True, logits_transform=transform, context_factory=factory,
                          progress=False)
    plain = memkit.extract(tiny_lm, run, batch_size=1, fast=False, logits_transform=transform,
                           context_factory=factory, progress=False)
    assert [list(g) for g in fast["generated_ids"]] == [list(g) for g in plain["generated_ids"]]


def test_token_action_that_changes_nothing_equals_clean(tiny_lm, samples):
    sample = samples[0]
    assert apply_token_action(tiny_lm.tokenizer, sample, Action("delete", alpha=0.0)) is sample
    assert apply_token_action(tiny_lm.tokenizer, sample, Action("truncate", alpha=0.01)) is sample  # rounds to 0


def test_token_actions_do_what_they_say(tiny_lm, samples):
    tokenizer = tiny_lm.tokenizer
    prefix = list(samples[0].prefix_ids)
    k = len(prefix)
    rare = set(rare_token_ids(tokenizer))
    assert len(perturb_prefix(tokenizer, prefix, Action("delete", alpha=0.25))) == k - round(0.25 * k)
    assert perturb_prefix(tokenizer, prefix, Action("truncate", alpha=0.5)) == prefix[round(0.5 * k):]
    inserted = perturb_prefix(tokenizer, prefix, Action("insert_rare", alpha=0.5))
    assert len(inserted) == k + round(0.5 * k)
    substituted = perturb_prefix(tokenizer, prefix, Action("substitute_rare", alpha=0.5))
    changed = [i for i in range(k) if substituted[i] != prefix[i]]
    assert len(substituted) == k and 0 < len(changed) <= round(0.5 * k)
    assert all(substituted[i] in rare for i in changed)
    shocked = perturb_prefix(tokenizer, prefix, Action("insert_shock", alpha=0.5, position=3))
    assert shocked[:3] == prefix[:3] and shocked[3 + round(0.5 * k):] == prefix[3:]
    assert perturb_prefix(tokenizer, prefix, Action("typo", alpha=1.0, seed=1)) != prefix
    # deterministic for a seed, different across seeds
    a = perturb_prefix(tokenizer, prefix, Action("substitute_rare", alpha=0.5, seed=3))
    assert a == perturb_prefix(tokenizer, prefix, Action("substitute_rare", alpha=0.5, seed=3))
    assert a != perturb_prefix(tokenizer, prefix, Action("substitute_rare", alpha=0.5, seed=4))


def test_rare_tokens_exclude_specials(tiny_lm):
    rare = rare_token_ids(tiny_lm.tokenizer, size=50)
    assert len(rare) == 50 and not set(rare) & set(tiny_lm.tokenizer.all_special_ids)


def test_force_token_shock_and_relock(tiny_lm, samples, clean):
    frame = perturb(tiny_lm, samples, Action("force_token", alpha=1, position=3), clean=clean, progress=False)
    for row, clean_ids in zip(frame.itertuples(), clean["generated_ids"]):
        assert list(row.generated_ids[:3]) == list(clean_ids[:3])
        assert row.generated_ids[3] != clean_ids[3]
        assert row.divergence_step == 3
    assert relock_step([1, 2, 9, 4, 5], [1, 2, 3, 4, 5], after=2) == 3
    assert relock_step([1, 2, 9, 4, 6], [1, 2, 3, 4, 5], after=2) == -1


def test_bad_actions_are_clear_errors(tiny_lm, samples):
    with pytest.raises(MemkitError, match="unknown action kind"):
        Action("melt", alpha=1)
    with pytest.raises(MemkitError, match="alpha"):
        Action("delete", alpha=-0.1)
    with pytest.raises(MemkitError, match="needs a layer"):
        Action("embed_random", alpha=1)
    with pytest.raises(MemkitError, match="out of range"):
        perturb(tiny_lm, samples, Action("embed_random", alpha=1, layer=99), progress=False)


def test_hooks_are_removed_even_after_errors(tiny_lm, samples):
    model = tiny_lm.model
    ids = torch.tensor([list(samples[0].prompt_ids)])
    before = model(input_ids=ids).logits
    with pytest.raises(RuntimeError):
        with residual_edit(model, 0, lambda h, p: h + 1.0):
            raise RuntimeError("boom")
    assert all(not layer._forward_hooks for layer in decoder_layers(model))
    assert torch.equal(model(input_ids=ids).logits, before)


def test_difference_of_means_is_a_unit_vector(tiny_lm):
    v = difference_of_means(tiny_lm, 1, ["the cat sat on the mat"], ["one two three four five"])
    assert v.shape == (tiny_lm.model.config.hidden_size,)
    assert torch.isclose(v.norm(), torch.tensor(1.0))


def test_perturb_cli_resumes_and_reports_bad_input(tiny_model_dir, tmp_path, capsys):
    import json

    from memkit.cli import main

    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps({"id": str(i), "text": t}) + "\n" for i, t in enumerate(PLAIN_TEXTS)))
    out = tmp_path / "p.parquet"
    args = ["perturb", "--model", str(tiny_model_dir), "--input", str(data), "--out", str(out), "-k", "12", "-m", "8",
            "--action", "embed_random", "--alpha", "1", "--layer", "1", "--no-progress"]
    assert main(args) == 0
    first = out.read_bytes()
    assert main(args) == 0
    assert out.read_bytes() == first  # deterministic rerun (the intermediates were removed: recomputed)
    for bad, message in ((["--alpha", "-1"], "alpha"), (["--layer", "7"], "out of range"),
                         (["--action", "melt"], "invalid choice")):
        capsys.readouterr()
        changed = list(args)
        for flag, value in zip(bad[::2], bad[1::2]):
            changed[changed.index(flag) + 1] = value
        changed[changed.index("--out") + 1] = str(tmp_path / "bad.parquet")
        assert main(changed) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0]
        assert not (tmp_path / "bad.parquet").exists()
