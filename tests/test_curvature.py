"""Curvature editing invariants: K-FAC factors are symmetric PSD averages, keeping 100% of the mass changes
nothing, edits are undone bit for bit, baselines remove as many components as K-FAC (or their own share);
streamed and resumed fits equal a one-shot computation; sampled labels come from a seeded generator; `memkit edit`."""

from __future__ import annotations

import math

import pytest
import torch

import memkit
from memkit.cli import main
from memkit.core.samples import leading_special_ids
from memkit.core.text import text_windows
from memkit.mechanisms import curvature
from memkit.mechanisms.curvature import (METHODS, accumulate_kfac, cached_kfac, collect_kfac, edit_state, edit_weight,
                                         edited, fit_windows, load_factors, mlp_linears, perplexity, removal_mask,
                                         sample_labels, save_factors)

from conftest import BASE_TEXT, tiny_corpus
from mech_models import TEXTS

FIT = [tiny_corpus()[3000:9000]]
HELD_OUT = [BASE_TEXT]


@pytest.fixture(scope="module")
def factors(arch_lm):
    return collect_kfac(arch_lm, FIT, seq_len=32, max_windows=12, progress=False)


def _weights(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _logits(lm):
    ids = torch.tensor([list(s.prompt_ids) + list(s.suffix_ids) for s in memkit.make_samples(lm, TEXTS, k=6, m=8)])
    with torch.inference_mode():
        return lm.model(input_ids=ids).logits


def test_mlp_matrices_per_architecture(arch_lm):
    names = {n.split(".", 1)[1] for n in mlp_linears(arch_lm.model)}
    expected = {"gpt_neox": {"dense_h_to_4h", "dense_4h_to_h"}}.get(arch_lm.arch, {"gate_proj", "up_proj", "down_proj"})
    assert names == expected
    assert {n.split(".")[0] for n in mlp_linears(arch_lm.model, [1])} == {"1"}
    with pytest.raises(memkit.MemkitError):
        mlp_linears(arch_lm.model, [arch_lm.n_layers])


def test_factors_are_symmetric_psd_with_the_right_shapes(arch_lm, factors):
    linears = mlp_linears(arch_lm.model)
    assert factors.names == list(linears)
    assert factors.n_tokens == sum(len(w) for w in text_windows(arch_lm.tokenizer, FIT, 32, 12))
    for name, module in linears.items():
        a, g = factors.A[name], factors.G[name]
        assert a.shape == (module.in_features,) * 2 and g.shape == (module.out_features,) * 2
        for m in (a, g):
            assert torch.allclose(m, m.T, atol=1e-6 * float(m.abs().max()))
            assert float(torch.linalg.eigvalsh(m.double()).min()) >= -1e-6 * float(m.abs().max())
        assert float(g.trace()) > 0 and float(a.trace()) > 0


def test_activation_factor_is_the_mean_outer_product(tiny_lm):
    factors = collect_kfac(tiny_lm, FIT, layers=[1], seq_len=32, max_windows=3, batch_size=2, progress=False)
    name = "1.dense_4h_to_h"
    module = mlp_linears(tiny_lm.model, [1])[name]
    seen = []
    handle = module.register_forward_hook(lambda m, args, out: seen.append(args[0][0]))
    try:
        with torch.inference_mode():
            for window in text_windows(tiny_lm.tokenizer, FIT, 32, 3):
                tiny_lm.model(input_ids=torch.tensor([window]))
    finally:
        handle.remove()
    acts = torch.cat(seen).double()
    assert torch.allclose(factors.A[name].double(), acts.T @ acts / len(acts), rtol=1e-4, atol=1e-6)


def test_keeping_all_the_mass_changes_nothing(arch_lm, factors):
    before, logits = _weights(arch_lm.model), _logits(arch_lm)
    for method in METHODS:
        with edited(arch_lm.model, factors, 1.0, method) as info:
            assert (info["n_removed"] == 0).all() and (info["rel_change"] == 0).all()
            assert all(torch.equal(p, before[n]) for n, p in arch_lm.model.named_parameters())
            assert torch.equal(_logits(arch_lm), logits)
    # rotating into the eigenbasis and back, with nothing removed, is the identity up to round-off
    name = factors.names[0]
    w = mlp_linears(arch_lm.model)[name].weight
    lam_a, u_a, lam_g, u_g = factors.eig(name)
    assert torch.allclose((u_g @ (u_g.T @ w.double() @ u_a) @ u_a.T).float(), w, atol=1e-5)


def test_edits_change_weights_and_are_undone_exactly(arch_lm, factors):
    before, logits = _weights(arch_lm.model), _logits(arch_lm)
    with edited(arch_lm.model, factors, 0.5, "kfac") as info:
        assert (info["n_removed"] > 0).all() and (info["rel_change"] > 0).all()
        assert not torch.equal(_logits(arch_lm), logits)
        changed = {n for n, p in arch_lm.model.named_parameters() if not torch.equal(p, before[n])}
        path = {id(m): n for n, m in arch_lm.model.named_modules()}
        assert changed == {f"{path[id(m)]}.weight" for m in mlp_linears(arch_lm.model).values()}
    assert all(torch.equal(p, before[n]) for n, p in arch_lm.model.named_parameters())
    with pytest.raises(RuntimeError):
        with edited(arch_lm.model, factors, 0.2, "random"):
            raise RuntimeError("boom")
    assert all(torch.equal(p, before[n]) for n, p in arch_lm.model.named_parameters())
    assert torch.equal(_logits(arch_lm), logits)


def test_baselines_remove_as_many_components_as_kfac(arch_lm, factors):
    for keep in (0.0, 0.3, 0.9, 0.99):
        counts = {m: edit_state(arch_lm.model, factors, keep, m)[1]["n_removed"].tolist() for m in METHODS}
        assert counts["kfac"] == counts["magnitude"] == counts["random"]
    _, info0 = edit_state(arch_lm.model, factors, 0.0, "kfac")
    assert (info0["n_removed"] == info0["n_components"]).all()
    new, _ = edit_state(arch_lm.model, factors, 0.0, "kfac")
    assert all(float(w.abs().max()) < 1e-5 for w in new.values())  # nothing kept: the matrices vanish


def test_removal_mask_keeps_the_smallest_high_curvature_set():
    gen = torch.Generator().manual_seed(0)
    curvature = torch.rand(6, 5, generator=gen, dtype=torch.float64) ** 3
    coeffs = torch.randn(6, 5, generator=gen, dtype=torch.float64)
    total = float(curvature.sum())
    for keep in (0.1, 0.5, 0.8, 0.95):
        remove = removal_mask(curvature, coeffs, keep, "kfac")
        kept = curvature[~remove]
        assert float(kept.sum()) >= keep * total - 1e-12
        assert float(kept.sum() - kept.min()) < keep * total  # minimal: one fewer would not reach it
        if remove.any():  # highest curvature kept
            assert float(curvature[remove].max()) <= float(kept.min())
        mag = removal_mask(curvature, coeffs, keep, "magnitude")
        assert int(mag.sum()) == int(remove.sum())
        if mag.any() and (~mag).any():
            assert float(coeffs[mag].abs().max()) <= float(coeffs[~mag].abs().min())
        rnd = removal_mask(curvature, coeffs, keep, "random", torch.Generator().manual_seed(1))
        assert int(rnd.sum()) == int(remove.sum())
        assert torch.equal(rnd, removal_mask(curvature, coeffs, keep, "random", torch.Generator().manual_seed(1)))
    with pytest.raises(memkit.MemkitError):
        removal_mask(curvature, coeffs, 0.5, "svd")


def test_edit_weight_zeroes_the_removed_components(factors, arch_lm):
    name = factors.names[-1]
    w = mlp_linears(arch_lm.model)[name].weight
    eig = factors.eig(name)
    new, info = edit_weight(w, eig, 0.7, "kfac")
    lam_a, u_a, lam_g, u_g = eig
    coeffs = u_g.T @ new.double() @ u_a
    remove = removal_mask(lam_g[:, None] * lam_a[None, :], u_g.T @ w.double() @ u_a, 0.7, "kfac")
    assert int(remove.sum()) == info["n_removed"] > 0
    assert float(coeffs[remove].abs().max()) < 1e-5
    assert torch.allclose(coeffs[~remove], (u_g.T @ w.double() @ u_a)[~remove], atol=1e-5)


def test_factor_cache_and_sampled_labels(tiny_lm, tmp_path):
    first = cached_kfac(tiny_lm, FIT, layers=[0], seq_len=32, max_windows=4, progress=False, cache_root=tmp_path)
    files = list(tmp_path.glob("*.safetensors"))
    assert len(files) == 1
    again = cached_kfac(tiny_lm, FIT, layers=[0], seq_len=32, max_windows=4, progress=False, cache_root=tmp_path)
    assert all(torch.equal(first.A[n], again.A[n]) and torch.equal(first.G[n], again.G[n]) for n in first.names)
    save_factors(first, tmp_path / "f.safetensors")
    loaded = load_factors(tmp_path / "f.safetensors")
    assert loaded.n_tokens == first.n_tokens and loaded.config == first.config
    s1 = collect_kfac(tiny_lm, FIT, layers=[0], seq_len=32, max_windows=4, labels="sampled", seed=3, progress=False)
    s2 = collect_kfac(tiny_lm, FIT, layers=[0], seq_len=32, max_windows=4, labels="sampled", seed=3, progress=False)
    name = s1.names[0]
    assert torch.equal(s1.G[name], s2.G[name]) and torch.equal(s1.A[name], first.A[name])
    assert not torch.equal(s1.G[name], first.G[name])
    with pytest.raises(memkit.MemkitError):
        collect_kfac(tiny_lm, FIT, labels="guess", progress=False)
    assert all(p.requires_grad for p in tiny_lm.model.parameters())  # flags restored after collection


def test_perplexity_is_the_models_own_loss(arch_lm):
    window = text_windows(arch_lm.tokenizer, HELD_OUT, 40, 1)[0]
    ids = torch.tensor([window])
    with torch.inference_mode():
        loss = arch_lm.model(input_ids=ids, labels=ids).loss
    assert perplexity(arch_lm, HELD_OUT, seq_len=40, max_windows=1) == pytest.approx(float(loss.exp()), rel=1e-5)
    assert perplexity(arch_lm, HELD_OUT, seq_len=40, batch_size=3) > 1


def _cli(capsys, argv):
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_edit_writes_a_loadable_edited_model(tiny_model_dir, tiny_lm, tmp_path, capsys):
    fit = tmp_path / "fit.txt"
    fit.write_text(FIT[0], encoding="utf-8")
    out = tmp_path / "edited"
    rc, stdout, err = _cli(capsys, ["edit", "--model", tiny_model_dir, "--keep-mass", 0.5, "--method", "kfac",
                                    "--fit-text", fit, "--out", out, "--layers", "1", "--seq-len", 32,
                                    "--max-windows", 4, "--no-progress"])
    assert rc == 0, err
    lm = memkit.load_model(str(out), device="cpu")
    assert lm.meta["edit"]["method"] == "kfac" and lm.meta["edit"]["layers"] == [1]
    original = dict(tiny_lm.model.named_parameters())
    changed = {n for n, p in lm.model.named_parameters() if not torch.equal(p, original[n])}
    assert changed == {"gpt_neox.layers.1.mlp.dense_h_to_4h.weight", "gpt_neox.layers.1.mlp.dense_4h_to_h.weight"}
    expected = collect_kfac(tiny_lm, FIT, layers=[1], seq_len=32, max_windows=4, progress=False)
    new, _ = edit_state(tiny_lm.model, expected, 0.5, "kfac")
    assert torch.equal(dict(lm.model.named_parameters())["gpt_neox.layers.1.mlp.dense_4h_to_h.weight"],
                       new["1.dense_4h_to_h"])
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("argv, fragment", [
    (["--fit-text", "{tmp}/missing.txt"], "text file not found"),
    (["--fit-text", "{tmp}/binary.txt"], "not valid UTF-8"),
    (["--fit-text", "{tmp}/empty.txt"], "empty text file"),
    (["--out", "{tmp}/exists"], "already exists"),
    (["--out", "{tmp}/nodir/edited"], "output directory does not exist"),
    (["--layers", "7"], "out of range"),
])
def test_cli_edit_bad_input(tiny_model_dir, tmp_path, capsys, argv, fragment):
    (tmp_path / "fit.txt").write_text(FIT[0], encoding="utf-8")
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00abc")
    (tmp_path / "empty.txt").write_text("  \n")
    (tmp_path / "exists").mkdir()
    base = {"--fit-text": str(tmp_path / "fit.txt"), "--out": str(tmp_path / "edited")}
    extra = [a.format(tmp=tmp_path) for a in argv]
    for key in list(base):
        if key in extra:
            del base[key]
    rc, stdout, err = _cli(capsys, ["edit", "--model", tiny_model_dir, "--keep-mass", 0.5, "--max-windows", 2,
                                    "--no-progress", *[x for kv in base.items() for x in kv], *extra])
    assert rc == 2 and fragment in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "edited").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["binary.txt", "empty.txt", "exists", "fit.txt"]


def test_cli_edit_rejects_a_keep_mass_outside_0_1(tiny_model_dir, tmp_path, capsys):
    rc = main(["edit", "--model", str(tiny_model_dir), "--keep-mass", "1.5", "--fit-text", "x", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "[0, 1]" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_smollm2_full_mass_edit_is_the_identity(smollm2):
    layers = [smollm2.n_layers - 1]
    factors = collect_kfac(smollm2, HELD_OUT, layers=layers, seq_len=32, max_windows=2, progress=False)
    logits = _logits(smollm2)
    before = {n: w.weight.detach().clone() for n, w in mlp_linears(smollm2.model, layers).items()}
    with edited(smollm2.model, factors, 1.0, "kfac"):
        assert torch.equal(_logits(smollm2), logits)
    with edited(smollm2.model, factors, 0.9, "kfac") as info:
        assert (info["n_removed"] > 0).all()
        assert not torch.equal(_logits(smollm2), logits)
    assert all(torch.equal(w.weight, before[n]) for n, w in mlp_linears(smollm2.model, layers).items())
    assert torch.equal(_logits(smollm2), logits)


def _reference_factors(lm, windows, name):
    """A and G of one matrix computed window by window with plain autograd (no memkit hooks, true labels)."""
    module = mlp_linears(lm.model)[name]
    seen = {}

    def hook(mod, args, out):
        out.retain_grad()
        seen["a"], seen["s"] = args[0].detach()[0], out

    handle = module.register_forward_hook(hook)
    a_sum, g_sum, n = 0.0, 0.0, 0
    try:
        for window in windows:
            ids = torch.tensor([window])
            logits = lm.model(input_ids=ids).logits[0, :-1]
            torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum").backward()
            a, g = seen["a"].double(), seen["s"].grad[0].double()
            a_sum, g_sum, n = a_sum + a.T @ a, g_sum + g.T @ g, n + len(window)
    finally:
        handle.remove()
        lm.model.zero_grad(set_to_none=True)
    return a_sum / n, g_sum / n


def test_streamed_factors_equal_a_one_shot_computation(tiny_lm):
    windows = text_windows(tiny_lm.tokenizer, FIT, 32, 5)
    streamed = accumulate_kfac(tiny_lm, windows, layers=[1], batch_size=2, progress=False)
    name = "1.dense_h_to_4h"
    a_ref, g_ref = _reference_factors(tiny_lm, windows, name)
    assert streamed.n_tokens == sum(len(w) for w in windows)
    assert torch.allclose(streamed.A[name].double(), a_ref, rtol=1e-4, atol=1e-7)
    assert torch.allclose(streamed.G[name].double(), g_ref, rtol=1e-3, atol=1e-9 * float(g_ref.abs().max()))


def test_a_killed_fit_resumes_to_the_same_factors(tiny_lm, tmp_path, monkeypatch):
    windows = text_windows(tiny_lm.tokenizer, FIT, 32, 7)
    settings = dict(layers=[0, 1], batch_size=2, labels="sampled", seed=5, progress=False)
    whole = accumulate_kfac(tiny_lm, windows, **settings)
    real = curvature.padded_batches

    def dies_after_two(*args, **kwargs):
        for index, batch in enumerate(real(*args, **kwargs)):
            if index == 2:
                raise KeyboardInterrupt
            yield batch

    checkpoint = tmp_path / "partial.safetensors"
    monkeypatch.setattr(curvature, "padded_batches", dies_after_two)
    with pytest.raises(KeyboardInterrupt):
        accumulate_kfac(tiny_lm, windows, **settings, checkpoint=checkpoint, save_every=1)
    monkeypatch.setattr(curvature, "padded_batches", real)
    assert checkpoint.exists()
    resumed = accumulate_kfac(tiny_lm, windows, **settings, checkpoint=checkpoint, save_every=1)
    assert resumed.n_tokens == whole.n_tokens
    assert all(torch.equal(resumed.A[n], whole.A[n]) and torch.equal(resumed.G[n], whole.G[n]) for n in whole.names)
    assert all(p.requires_grad for p in tiny_lm.model.parameters())


def test_cached_fit_leaves_no_partial_file(tiny_lm, tmp_path):
    cached_kfac(tiny_lm, FIT, layers=[1], seq_len=32, n_tokens=200, labels="sampled", progress=False,
                cache_root=tmp_path, save_every=1)
    assert [p.name.endswith(".partial.safetensors") for p in tmp_path.iterdir()] == [False]


def test_sampled_labels_come_from_the_seeded_generator():
    logits = torch.tensor([[0.0, 0.0, 50.0], [50.0, 0.0, 0.0], [0.0, math.log(3.0), -1e9]] * 2000)
    labels = sample_labels(logits, torch.Generator().manual_seed(7), chunk_elements=600)
    assert torch.equal(labels, sample_labels(logits, torch.Generator().manual_seed(7)))
    assert not torch.equal(labels, sample_labels(logits, torch.Generator().manual_seed(8)))
    assert set(labels[0::3].tolist()) == {2} and set(labels[1::3].tolist()) == {0}  # near-certain rows
    share = float((labels[2::3] == 1).double().mean())  # p = 3/4 for token 1, 1/4 for token 0, 0 for token 2
    assert abs(share - 0.75) < 0.03 and not (labels[2::3] == 2).any()
    # inverse CDF with the generator's uniforms, row by row
    u = torch.rand(len(logits), generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    cdf = torch.softmax(logits, -1).cumsum(-1, dtype=torch.float64)
    assert torch.equal(labels, torch.searchsorted(cdf, (u[:, None] * cdf[:, -1:]), right=True).reshape(-1))


def test_fit_windows_pass_over_the_text_until_the_token_budget(tiny_lm):
    tok = tiny_lm.tokenizer
    first = text_windows(tok, FIT, 32)
    one_pass = sum(len(w) for w in first)
    assert fit_windows(tok, FIT, seq_len=32) == first
    windows = fit_windows(tok, FIT, seq_len=32, n_tokens=one_pass + 40)
    assert windows[: len(first)] == first
    total = sum(len(w) for w in windows)
    assert total >= one_pass + 40 and total - len(windows[-1]) < one_pass + 40  # minimal
    lead = leading_special_ids(tok)
    ids = first[0][len(lead):] + first[1][len(lead):]  # pass 2 cuts at 16: tokens 0-15, then 16-47
    assert windows[len(first)] == lead + ids[:16] and windows[len(first) + 1] == lead + ids[16:48]


def test_baselines_sweep_their_own_removal_share(arch_lm, factors):
    for method in METHODS:
        _, info = edit_state(arch_lm.model, factors, 1.0, method, remove_frac=0.25)
        assert (info["n_removed"] == (info["n_components"] * 0.25).round()).all()
    with pytest.raises(memkit.MemkitError):
        removal_mask(torch.ones(2, 2), torch.ones(2, 2), 1.0, "kfac", remove_frac=1.5)


def test_factor_subsets_share_the_eigendecompositions(factors):
    sub = factors.subset([1])
    assert sub.names == [n for n in factors.names if n.startswith("1.")] and sub.config["layers"] == [1]
    sub.eig(sub.names[0])
    assert sub.names[0] in factors._eig
    with pytest.raises(memkit.MemkitError):
        factors.subset([99])
