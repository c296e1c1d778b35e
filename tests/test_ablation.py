"""Head ablation invariants: no head = identical outputs, effects start at the ablated layer, the fast
paths (per-row hooks, tail reruns, skipped greedy decoding) equal plain runs, hooks always go away."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

import memkit
from memkit.cli import main
from memkit.core.arch import attention_output, head_shape
from memkit.core.decode import greedy_decode
from memkit.core.extract import pad_token_id
from memkit.core.hooks import record_residuals
from memkit.mechanisms.ablation import (LayerInputs, ablate_heads, ablate_rows, concentration, gini, head_effects,
                                        head_means, head_scan, suffix_logprobs, top_heads)

from mech_models import TEXTS

GENERIC = ["Some generic reference text about boats, gardens, markets and the weather in the village. " * 3]


def _samples(lm, k=6, m=8):
    return memkit.make_samples(lm, TEXTS, k=k, m=m)


def _ids(lm):
    s = _samples(lm)
    return torch.tensor([list(x.prompt_ids) + list(x.suffix_ids) for x in s])


def _no_hooks(model):
    return all(not m._forward_pre_hooks and not m._forward_hooks for m in model.modules())


def test_head_shape_counts_query_heads(arch_lm):
    n_layers, n_heads, head_dim = head_shape(arch_lm.model)
    assert (n_layers, n_heads) == (arch_lm.n_layers, 4)
    assert n_heads * head_dim == attention_output(arch_lm.model, 0).in_features


def test_ablating_no_head_gives_identical_outputs(arch_lm):
    ids = _ids(arch_lm)
    with torch.inference_mode():
        clean = arch_lm.model(input_ids=ids).logits
        with ablate_heads(arch_lm.model, []):
            same = arch_lm.model(input_ids=ids).logits
        with ablate_rows(arch_lm.model, [None] * len(ids)):
            same_rows = arch_lm.model(input_ids=ids).logits
    assert torch.equal(clean, same) and torch.equal(clean, same_rows)
    assert _no_hooks(arch_lm.model)


@pytest.mark.parametrize("mode", ["zero", "mean"])
def test_ablation_changes_outputs_only_from_its_layer_on(arch_lm, mode):
    means = head_means(arch_lm, GENERIC, seq_len=16) if mode == "mean" else None
    ids = _ids(arch_lm)
    layer = 1
    with torch.inference_mode(), record_residuals(arch_lm.model) as clean:
        arch_lm.model(input_ids=ids)
    with torch.inference_mode(), ablate_heads(arch_lm.model, [(layer, 2)], mode, means), \
            record_residuals(arch_lm.model) as ablated:
        arch_lm.model(input_ids=ids)
    for i in range(arch_lm.n_layers):
        same = torch.equal(clean[i][0], ablated[i][0])
        assert same == (i < layer), f"layer {i}"
    assert _no_hooks(arch_lm.model)


def test_zero_ablation_zeroes_exactly_that_heads_slice(tiny_lm):
    _, n_heads, head_dim = head_shape(tiny_lm.model)
    seen = []
    proj = attention_output(tiny_lm.model, 0)
    ids = _ids(tiny_lm)
    with torch.inference_mode(), ablate_heads(tiny_lm.model, [(0, 1)]):
        handle = proj.register_forward_pre_hook(lambda m, args: seen.append(args[0].clone()))
        try:
            tiny_lm.model(input_ids=ids)
        finally:
            handle.remove()
    x = seen[0]
    assert torch.equal(x[..., head_dim : 2 * head_dim], torch.zeros_like(x[..., head_dim : 2 * head_dim]))
    assert x[..., :head_dim].abs().sum() > 0 and x[..., 2 * head_dim :].abs().sum() > 0


def test_head_means_are_the_mean_projection_input(tiny_lm):
    means = head_means(tiny_lm, GENERIC, seq_len=12, batch_size=2)
    assert means.shape == (tiny_lm.n_layers, attention_output(tiny_lm.model, 0).in_features)
    from memkit.core.text import text_windows
    windows = text_windows(tiny_lm.tokenizer, GENERIC, 12)
    seen = []
    handle = attention_output(tiny_lm.model, 1).register_forward_pre_hook(lambda m, a: seen.append(a[0][0]))
    try:
        with torch.inference_mode():
            for w in windows:
                tiny_lm.model(input_ids=torch.tensor([w]))
    finally:
        handle.remove()
    assert torch.allclose(torch.cat(seen).double().mean(0).float(), means[1], atol=1e-5)


def test_per_row_ablation_equals_one_head_at_a_time(arch_lm):
    ids = _ids(arch_lm)
    heads = [(0, 1), None, (1, 3)]
    with torch.inference_mode():
        with ablate_rows(arch_lm.model, heads):
            batched = arch_lm.model(input_ids=ids).logits
        for row, head in enumerate(heads):
            with ablate_heads(arch_lm.model, [head] if head else []):
                alone = arch_lm.model(input_ids=ids[row : row + 1]).logits
            assert torch.allclose(batched[row], alone[0], atol=1e-5)


def test_tail_rerun_equals_the_full_forward(arch_lm):
    ids = _ids(arch_lm)
    mask = torch.ones_like(ids)
    inputs = LayerInputs(arch_lm.model, ids, mask)
    from memkit.mechanisms.lens import lens_logits
    for layer in range(arch_lm.n_layers):
        assert torch.allclose(lens_logits(arch_lm.model, inputs.tail(layer)), inputs.logits, atol=1e-5)
    with ablate_heads(arch_lm.model, [(1, 0)]):
        tail = lens_logits(arch_lm.model, inputs.tail(1))
        with torch.inference_mode():
            full = arch_lm.model(input_ids=ids).logits
    assert torch.allclose(tail, full, atol=1e-5) and not torch.allclose(tail, inputs.logits, atol=1e-4)
    assert _no_hooks(arch_lm.model)


@pytest.mark.parametrize("mode", ["zero", "mean"])
def test_head_scan_matches_plain_runs(arch_lm, mode):
    samples = _samples(arch_lm)
    means = head_means(arch_lm, GENERIC, seq_len=16) if mode == "mean" else None
    heads = [(0, 0), (1, 3), (1, 1)]
    scan = head_scan(arch_lm, samples, mode=mode, means=means, heads=heads, batch_size=2, progress=False)
    assert len(scan) == len(samples) * (len(heads) + 1)
    base = scan[scan["layer"] == -1]
    assert (base["delta_logprob"] == 0).all() and (base["retention"] == 1).all()
    pad = pad_token_id(arch_lm.tokenizer)
    for head in heads:
        rows = scan[(scan["layer"] == head[0]) & (scan["head"] == head[1])]
        logprob, hits = suffix_logprobs(arch_lm, samples, heads=[head], mode=mode, means=means)
        assert np.allclose(rows["logprob"], logprob, atol=1e-4)
        assert np.allclose(rows["argmax_share"], [np.mean(h) for h in hits])
        with ablate_heads(arch_lm.model, [head], mode, means):  # plain greedy, no drafts, no shortcut
            plain = greedy_decode(arch_lm.model, [s.prompt_ids for s in samples], 8, pad).generated_ids
        expected = [sum(a == b for a, b in zip(g, s.suffix_ids)) / 8 for g, s in zip(plain, samples)]
        assert np.allclose(rows["token_match"], expected)
    assert _no_hooks(arch_lm.model)


def test_hooks_are_removed_after_an_error(tiny_lm):
    with pytest.raises(RuntimeError):
        with ablate_heads(tiny_lm.model, [(0, 0)]):
            raise RuntimeError("boom")
    assert _no_hooks(tiny_lm.model)
    with pytest.raises(memkit.MemkitError):
        with ablate_heads(tiny_lm.model, [(5, 0)]):
            pass
    with pytest.raises(memkit.MemkitError):
        with ablate_heads(tiny_lm.model, [(0, 0)], mode="mean"):
            pass
    assert _no_hooks(tiny_lm.model)


def test_concentration_summaries():
    assert gini([0, 0, 0, 5]) == pytest.approx(0.75)
    assert gini([2, 2, 2, 2]) == pytest.approx(0.0)
    scan = pd.DataFrame({"id": ["a", "b"] * 5, "layer": [-1, -1, 0, 0, 0, 0, 1, 1, 1, 1],
                         "head": [-1, -1, 0, 0, 1, 1, 0, 0, 1, 1],
                         "delta_logprob": [0, 0, -4, -2, 0, 0, -1, -1, 1, 1]})
    effects = head_effects(scan)
    assert effects["delta_logprob"].tolist() == [-3, 0, -1, 1]
    top = top_heads(scan, n=2)
    assert list(zip(top["layer"], top["head"])) == [(0, 0), (1, 0)]
    assert top["share"].tolist() == pytest.approx([0.6, 0.2])
    conc = concentration(effects)
    assert conc["top1_share"] == pytest.approx(0.6) and conc["top3_share"] == pytest.approx(1.0)
    assert conc["top_layer"] == 0 and conc["top_layer_share"] == pytest.approx(0.6)
    groups = pd.Series({"a": "memorized", "b": "control"})
    by_group = top_heads(scan, n=1, groups=groups, group="memorized")
    assert (by_group["layer"].item(), by_group["delta_logprob"].item()) == (0, -4)


def _cli(capsys, argv):
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_ablate(tiny_model_dir, tmp_path, capsys):
    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps({"id": f"s{i}", "text": t}) + "\n" for i, t in enumerate(TEXTS)))
    out = tmp_path / "scan.parquet"
    rc, stdout, err = _cli(capsys, ["ablate", "--model", tiny_model_dir, "--input", data, "--out", out, "-k", 6, "-m", 6,
                                    "--heads", "0:1,1:2", "--mode", "mean", "--no-progress"])
    assert rc == 0, err
    frame = pd.read_parquet(out)
    assert len(frame) == 3 * 3 and set(frame["mode"]) == {"mean"} and "retention" in frame
    assert "largest mean drop" in stdout


@pytest.mark.parametrize("argv, fragment", [
    (["--input", "{tmp}/missing.jsonl"], "input file not found"),
    (["--heads", "9:0"], "out of range"),
    (["--out", "{tmp}/nodir/x.parquet"], "output directory does not exist"),
    (["--mode", "mean", "--mean-text", "{tmp}/nothing.txt"], "text file not found"),
])
def test_cli_ablate_bad_input(tiny_model_dir, tmp_path, capsys, argv, fragment):
    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps({"id": "a", "text": TEXTS[0]}) + "\n")
    base = {"--input": str(data), "--out": str(tmp_path / "x.parquet")}
    extra = [a.format(tmp=tmp_path) for a in argv]
    for key in list(base):
        if key in extra:
            del base[key]
    args = ["ablate", "--model", tiny_model_dir, *[x for kv in base.items() for x in kv], "-k", 6, "-m", 6,
            "--no-progress", *extra]
    rc, stdout, err = _cli(capsys, args)
    assert rc == 2 and fragment in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.parquet").exists()


@pytest.mark.slow
def test_smollm2_tail_rerun_and_no_head(smollm2):
    samples = memkit.make_samples(smollm2, [TEXTS[0] + " " + TEXTS[1]], k=8, m=6)
    logprob, _ = suffix_logprobs(smollm2, samples)
    scan = head_scan(smollm2, samples, mode="zero", heads=[(0, 0), (smollm2.n_layers - 1, 8)], greedy=False,
                     progress=False)
    assert scan.loc[scan["layer"] == -1, "logprob"].item() == pytest.approx(logprob[0], abs=1e-4)
    for layer, head in [(0, 0), (smollm2.n_layers - 1, 8)]:
        expected, _ = suffix_logprobs(smollm2, samples, heads=[(layer, head)])
        got = scan[(scan["layer"] == layer) & (scan["head"] == head)]["logprob"].item()
        assert got == pytest.approx(expected[0], abs=1e-3)
    assert _no_hooks(smollm2.model)
