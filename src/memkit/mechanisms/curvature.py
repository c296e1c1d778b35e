"""Loss-curvature weight editing (after Merullo et al. 2025): drop the flattest K-FAC components of MLP weights.

    factors = cached_kfac(lm, broad_texts, layers=[9, ..., 17], n_tokens=1_000_000, labels="sampled")
    with edited(lm.model, factors, keep_mass=0.8, method="kfac") as info:          # K-FAC's own sweep
        extract(...); perplexity(lm, held_out_texts)
    with edited(lm.model, factors, 1.0, "magnitude", remove_frac=0.3): ...       # a baseline's own sweep
    # weights restored bit for bit on exit

K-FAC. For an MLP linear map s = W a (W: d_out x d_in; GPT-NeoX `dense_h_to_4h`/`dense_4h_to_h`,
Llama/Gemma `gate_proj`/`up_proj`/`down_proj`, as listed in `memkit.core.arch`) the Fisher block of W is approximated by
G (x) A with A = E[a a^T] over the layer inputs and G = E[g g^T] over g = dL/ds, the gradient
of the *summed* next-token cross-entropy of a window with respect to the layer output at each
position. Expectations run over every token position of the fit windows (`fit_windows`: the
`memkit.core.text` windows, or as many passes over the text as a token budget needs), so A and
G are averaged over the same N positions. Labels (`labels`): `sampled` draws each label from
the model's own predictive distribution (`sample_labels`, a seeded generator), i.e. K-FAC's true
Fisher as Merullo et al. use it; `true` (the CLI's default) uses the text's own next tokens, the
empirical Fisher. Biases are not edited and not part of A.

Streaming. `accumulate_kfac` keeps float64 running sums of a a^T and g g^T per matrix, batch by
batch; with a checkpoint path the sums, the batch count and the label generator's state are saved
atomically every `save_every` batches and a killed fit resumes there with the same result
(`cached_kfac` does this next to its cache entry). Gradients start at the first edited block.

Editing. With A = U_A diag(lambda_A) U_A^T and G = U_G diag(lambda_G) U_G^T, the weight in the
Kronecker eigenbasis is C = U_G^T W U_A and component (i, j) has curvature
lambda_G[i] * lambda_A[j] (negative round-off eigenvalues clipped to 0). The curvature *mass*
of a set of components is the sum of their curvatures; `keep_mass` = f keeps the smallest set
of highest-curvature components whose mass is at least f times the total (ties broken by
index), zeroes the rest of C and rotates back: W' = U_G C' U_A^T. keep_mass >= 1 keeps W
untouched (bit-identical). Baselines choose other components of the same matrix in the same
eigenbasis: `magnitude` the smallest |C_ij|, `random` a seeded random set -- by default exactly
as many as K-FAC removes at `keep_mass`, or, with `remove_frac`, that share of the components
(each method swept on its own and compared at equal perplexity, `memkit.paper.editing_runs`).
"""

from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import pandas as pd
import torch
from tqdm import tqdm

from ..core.arch import decoder_layers, mlp_matrices
from ..core.batching import padded_batches
from ..core.extract import pad_token_id
from ..core.samples import leading_special_ids
from ..core.hooks import attach
from ..core.models import LoadedModel
from ..core.text import text_windows
from ..errors import MemkitError
from ..paths import atomic_path, cache_dir, code_fingerprint, entry_lock

METHODS = ("kfac", "magnitude", "random")
LABELS = ("true", "sampled")


def mlp_linears(model, layers: Sequence[int] | None = None) -> dict[str, torch.nn.Linear]:
    """The MLP weight matrices of the chosen decoder blocks, keyed `<layer>.<name>` in block order."""
    n_layers = len(decoder_layers(model))
    layers = range(n_layers) if layers is None else sorted({int(x) for x in layers})
    out = {}
    for layer in layers:
        if not 0 <= layer < n_layers:
            raise MemkitError(f"layer {layer} out of range: the model has {n_layers} layers (0..{n_layers - 1})")
        for name, module in mlp_matrices(model, layer).items():
            out[f"{layer}.{name}"] = module
    return out


@dataclass
class KFACFactors:
    """A (input covariance) and G (output-gradient covariance) per MLP matrix, averaged over n_tokens."""

    A: dict[str, torch.Tensor]
    G: dict[str, torch.Tensor]
    n_tokens: int
    config: dict = field(default_factory=dict)
    _eig: dict = field(default_factory=dict, repr=False)

    @property
    def names(self) -> list[str]:
        return list(self.A)

    def subset(self, layers: Sequence[int]) -> "KFACFactors":
        """The factors of the matrices of `layers` only (sharing the memoised eigendecompositions)."""
        wanted = {int(x) for x in layers}
        names = [n for n in self.names if int(n.split(".")[0]) in wanted]
        if not names:
            raise MemkitError(f"no K-FAC factors for layers {sorted(wanted)} (fitted: {self.config.get('layers')})")
        return KFACFactors({n: self.A[n] for n in names}, {n: self.G[n] for n in names}, self.n_tokens,
                           {**self.config, "layers": sorted(wanted)}, self._eig)

    def eig(self, name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(lambda_A, U_A, lambda_G, U_G) in float64, eigenvalues clipped at 0 (memoised)."""
        if name not in self._eig:
            lam_a, u_a = torch.linalg.eigh(self.A[name].double())
            lam_g, u_g = torch.linalg.eigh(self.G[name].double())
            self._eig[name] = (lam_a.clamp(min=0), u_a, lam_g.clamp(min=0), u_g)
        return self._eig[name]


def sample_labels(logits: torch.Tensor, generator: torch.Generator, *, chunk_elements: int = 1 << 24) -> torch.Tensor:
    """One label per row of `logits` (N, V) drawn from softmax(row) with `generator` (inverse CDF, float64 sums).

    Uniforms come from the generator in row order, so the labels depend only on the logits and the
    generator's state; rows are processed in chunks of about `chunk_elements` logits (memory).
    """
    n, vocab = logits.shape
    uniforms = torch.rand(n, generator=generator, dtype=torch.float64)
    out = torch.empty(n, dtype=torch.long)
    step = max(1, chunk_elements // max(vocab, 1))
    for start in range(0, n, step):
        cdf = torch.softmax(logits[start : start + step].detach().float().cpu(), -1).cumsum(-1, dtype=torch.float64)
        u = uniforms[start : start + step, None] * cdf[:, -1:]
        out[start : start + step] = torch.searchsorted(cdf, u, right=True).reshape(-1).clamp(max=vocab - 1)
    return out.to(logits.device)


def fit_windows(tokenizer, texts: Sequence[str], *, seq_len: int = 128, n_tokens: int | None = None,
                max_windows: int | None = None) -> list[list[int]]:
    """Token windows for a fit: `text_windows`, or passes over the texts until `n_tokens` positions are reached.

    Pass p cuts every document at token offset 0 (even p) or seq_len // 2 (odd p), so a second pass
    sees new contexts (windows straddling the first pass's cuts); windows are taken in order until
    their positions (leading specials included) reach `n_tokens`. `max_windows` keeps the first windows.
    """
    if n_tokens is None:
        return text_windows(tokenizer, texts, seq_len, max_windows)
    lead = leading_special_ids(tokenizer)
    docs = [list(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in texts]
    windows, total, passes = [], 0, 0
    while total < n_tokens:
        offset = (seq_len // 2) * (passes % 2)
        before = len(windows)
        for ids in docs:
            cuts = [0, *range(offset or seq_len, len(ids), seq_len), len(ids)]
            for begin, end in zip(cuts, cuts[1:]):
                if end - begin >= 2 and total < n_tokens:
                    windows.append(lead + ids[begin:end])
                    total += len(lead) + end - begin
        passes += 1
        if len(windows) == before:
            raise MemkitError("no text window of two or more tokens in the given texts (the text is too short)")
    return windows[:max_windows] if max_windows is not None else windows


def _save_partial(path: Path, A: dict, G: dict, done: int, n_tokens: int, generator: torch.Generator) -> None:
    """Running sums, batches done and the label generator's state, written atomically (resume point)."""
    from safetensors.torch import save_file

    tensors = {**{f"A/{n}": t.contiguous() for n, t in A.items()}, **{f"G/{n}": t.contiguous() for n, t in G.items()},
               "generator_state": generator.get_state()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"batches_done": str(done), "n_tokens": str(n_tokens)})


def _load_partial(path: Path, A: dict, G: dict, generator: torch.Generator) -> tuple[int, int]:
    """Restore the sums and generator state of `_save_partial` into A, G, generator; (batches done, n_tokens)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata()
        for name in A:
            A[name].copy_(fh.get_tensor(f"A/{name}"))
            G[name].copy_(fh.get_tensor(f"G/{name}"))
        generator.set_state(fh.get_tensor("generator_state"))
    return int(meta["batches_done"]), int(meta["n_tokens"])


def accumulate_kfac(lm: LoadedModel, windows: Sequence[Sequence[int]], *, layers: Sequence[int] | None = None,
                    batch_size: int = 8, labels: str = "true", seed: int = 0, checkpoint: Path | None = None,
                    save_every: int = 50, progress: bool = True) -> KFACFactors:
    """K-FAC factors of the MLP matrices of `layers`, streamed over `windows` batch by batch.

    Running float64 sums of a a^T and g g^T per matrix; with `checkpoint`, the sums, the number of
    batches done and the label generator's state are saved there atomically every `save_every`
    batches, and a run that finds the file resumes after its last saved batch (same result as an
    uninterrupted run). Gradients start at the input of the first edited block (nothing below it
    needs one).
    """
    if labels not in LABELS:
        raise MemkitError(f"unknown K-FAC labels {labels!r}; choose one of {', '.join(LABELS)}")
    model = lm.model
    linears = mlp_linears(model, layers)
    used = sorted({int(n.split(".")[0]) for n in linears})
    A = {n: torch.zeros(m.in_features, m.in_features, dtype=torch.float64) for n, m in linears.items()}
    G = {n: torch.zeros(m.out_features, m.out_features, dtype=torch.float64) for n, m in linears.items()}
    generator = torch.Generator().manual_seed(seed)
    done, n_tokens = 0, 0
    if checkpoint is not None and Path(checkpoint).exists():
        done, n_tokens = _load_partial(Path(checkpoint), A, G, generator)
    state: dict = {}

    def kept(x: torch.Tensor) -> torch.Tensor:  # the rows of real (unpadded) positions, float32
        keep = state["mask"].to(x.device).bool().reshape(-1)
        return x.reshape(-1, x.shape[-1])[keep].float()

    def input_hook(name):
        def hook(module, args, output):
            a = kept(args[0].detach())
            A[name] += (a.T @ a).double().cpu()
        return hook

    def grad_hook(name):
        def hook(grad):
            g = kept(grad)
            G[name] += (g.T @ g).double().cpu()
        return hook

    def start_grad(module, args, kwargs):  # the first edited block's input becomes the leaf of the graph
        if args:
            return (args[0].detach().requires_grad_(True), *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": kwargs["hidden_states"].detach().requires_grad_(True)}

    hooks = [(decoder_layers(model)[used[0]], "pre_forward_kwargs", start_grad)]
    for name, module in linears.items():
        hooks += [(module, "forward", input_hook(name)), (module, "output_grad", grad_hook(name))]
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    n_batches = -(-len(windows) // batch_size)
    bar = tqdm(total=n_batches, initial=done, desc=f"K-FAC {lm.name}", unit="batch", disable=not progress)
    try:
        with torch.enable_grad(), attach(hooks):
            batches = padded_batches(windows[done * batch_size :], batch_size, pad_token_id(lm.tokenizer))
            for index, (ids, mask) in enumerate(batches, start=done + 1):
                state["mask"] = mask
                logits = model(input_ids=ids.to(lm.device), attention_mask=mask.to(lm.device), use_cache=False).logits
                logits = logits[:, :-1].float()
                valid = mask[:, 1:].bool().to(logits.device)
                if labels == "true":
                    target = ids[:, 1:].to(logits.device)[valid]
                else:
                    target = sample_labels(logits[valid], generator)
                loss = torch.nn.functional.cross_entropy(logits[valid], target, reduction="sum")
                loss.backward()
                n_tokens += int(mask.sum())
                bar.update(1)
                if checkpoint is not None and (index % save_every == 0 or index == n_batches):
                    _save_partial(Path(checkpoint), A, G, index, n_tokens, generator)
    finally:
        bar.close()
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)
    config = {"labels": labels, "seed": seed, "n_windows": len(windows), "layers": used}
    return KFACFactors({n: (a / n_tokens).float() for n, a in A.items()},
                       {n: (g / n_tokens).float() for n, g in G.items()}, n_tokens, config)


def collect_kfac(lm: LoadedModel, texts: Sequence[str], *, layers: Sequence[int] | None = None, seq_len: int = 128,
                 batch_size: int = 8, max_windows: int | None = None, n_tokens: int | None = None,
                 labels: str = "true", seed: int = 0, checkpoint: Path | None = None, save_every: int = 50,
                 progress: bool = True) -> KFACFactors:
    """K-FAC factors of the MLP matrices of `layers` on the `fit_windows` of `texts` (see the module docstring)."""
    if labels not in LABELS:
        raise MemkitError(f"unknown K-FAC labels {labels!r}; choose one of {', '.join(LABELS)}")
    windows = fit_windows(lm.tokenizer, texts, seq_len=seq_len, n_tokens=n_tokens, max_windows=max_windows)
    factors = accumulate_kfac(lm, windows, layers=layers, batch_size=batch_size, labels=labels, seed=seed,
                              checkpoint=checkpoint, save_every=save_every, progress=progress)
    factors.config["seq_len"] = seq_len
    return factors


def code_version() -> str:
    """Hash of this module, the windowing, padding, hook and architecture code (part of the factor cache key)."""
    return code_fingerprint("mechanisms/curvature.py", "core/text.py", "core/samples.py", "core/batching.py",
                            "core/hooks.py", "core/arch.py")


def save_factors(factors: KFACFactors, path: Path | str) -> None:
    """Write factors to one safetensors file (atomically), config and token count in its metadata."""
    from safetensors.torch import save_file

    tensors = {**{f"A/{n}": t.contiguous() for n, t in factors.A.items()},
               **{f"G/{n}": t.contiguous() for n, t in factors.G.items()}}
    meta = {"n_tokens": str(factors.n_tokens), "config": json.dumps(factors.config, sort_keys=True),
            "names": json.dumps(factors.names)}
    with atomic_path(Path(path)) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def load_factors(path: Path | str) -> KFACFactors:
    """Read factors written by `save_factors`."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata()
        names = json.loads(meta["names"])
        A = {n: fh.get_tensor(f"A/{n}") for n in names}
        G = {n: fh.get_tensor(f"G/{n}") for n in names}
    return KFACFactors(A, G, int(meta["n_tokens"]), json.loads(meta["config"]))


def cached_kfac(lm: LoadedModel, texts: Sequence[str], *, layers: Sequence[int] | None = None, seq_len: int = 128,
                batch_size: int = 8, max_windows: int | None = None, n_tokens: int | None = None,
                labels: str = "true", seed: int = 0, save_every: int = 50, progress: bool = True,
                cache_root: Path | None = None) -> KFACFactors:
    """`collect_kfac` with an on-disk safetensors cache keyed by (model weights, texts, settings, code).

    The running sums of an unfinished fit live in `<key>.partial.safetensors` next to the entry, so a
    killed fit resumes; the partial file is removed once the entry is written.
    """
    settings = dict(layers=layers, seq_len=seq_len, batch_size=batch_size, max_windows=max_windows,
                    n_tokens=n_tokens, labels=labels, seed=seed)
    if lm.sha256 is None:  # no fingerprint of the weights: never reuse a cache entry
        return collect_kfac(lm, texts, **settings, progress=progress)
    key = {"model": lm.sha256, "texts": hashlib.sha256(json.dumps(list(texts)).encode()).hexdigest(),
           "layers": None if layers is None else sorted({int(x) for x in layers}), "seq_len": seq_len,
           "batch_size": batch_size, "max_windows": max_windows, "n_tokens": n_tokens, "labels": labels,
           "seed": seed, "code": code_version()}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    root = Path(cache_root) if cache_root is not None else cache_dir() / "kfac"
    root.mkdir(parents=True, exist_ok=True)
    path, partial = root / f"{digest}.safetensors", root / f"{digest}.partial.safetensors"
    with entry_lock(path):  # another process collecting the same factors: wait, then read them
        if path.exists():
            return load_factors(path)
        factors = collect_kfac(lm, texts, **settings, checkpoint=partial, save_every=save_every,
                               progress=progress)
        save_factors(factors, path)
        partial.unlink(missing_ok=True)
        return factors


def removal_mask(curvature: torch.Tensor, coeffs: torch.Tensor, keep_mass: float, method: str,
                 generator: torch.Generator | None = None, *, remove_frac: float | None = None) -> torch.Tensor:
    """Boolean mask (same shape) of the components to zero.

    How many: the count `kfac` removes at `keep_mass`, or, with `remove_frac`, round(remove_frac x
    size) (each method's own sweep); which: the method's choice (module docstring).
    """
    if method not in METHODS:
        raise MemkitError(f"unknown edit method {method!r}; choose one of {', '.join(METHODS)}")
    if not 0.0 <= keep_mass:
        raise MemkitError(f"keep_mass must be in [0, 1], got {keep_mass}")
    if remove_frac is not None and not 0.0 <= remove_frac <= 1.0:
        raise MemkitError(f"remove_frac must be in [0, 1], got {remove_frac}")
    flat = curvature.reshape(-1)
    size = flat.numel()
    order = torch.sort(flat, descending=True, stable=True).indices
    if remove_frac is not None:
        n_keep = size - int(round(remove_frac * size))
    elif keep_mass >= 1.0:
        n_keep = size
    elif keep_mass <= 0.0:
        n_keep = 0
    else:
        cum = torch.cumsum(flat[order], 0)
        n_keep = min(size, int(torch.searchsorted(cum, keep_mass * cum[-1], side="left")) + 1)
    n_remove = size - n_keep
    remove = torch.zeros(size, dtype=torch.bool)
    if n_remove:
        if method == "kfac":
            chosen = order[n_keep:]
        elif method == "magnitude":
            chosen = torch.sort(coeffs.reshape(-1).abs(), stable=True).indices[:n_remove]
        else:
            chosen = torch.randperm(size, generator=generator)[:n_remove]
        remove[chosen] = True
    return remove.reshape(curvature.shape)


def edit_weight(weight: torch.Tensor, eig: tuple, keep_mass: float, method: str = "kfac", *,
                seed: int = 0, remove_frac: float | None = None) -> tuple[torch.Tensor, dict]:
    """The edited copy of one weight matrix and what was removed (count, curvature share, weight change)."""
    lam_a, u_a, lam_g, u_g = eig
    w = weight.detach().double().cpu()
    coeffs = u_g.T @ w @ u_a
    curvature = lam_g[:, None] * lam_a[None, :]
    remove = removal_mask(curvature, coeffs, keep_mass, method, torch.Generator().manual_seed(seed),
                          remove_frac=remove_frac)
    n_removed = int(remove.sum())
    total = float(curvature.sum())
    info = {"n_components": int(remove.numel()), "n_removed": n_removed,
            "removed_mass": float(curvature[remove].sum()) / total if total > 0 else 0.0}
    if n_removed == 0:
        return weight.detach().clone(), {**info, "rel_change": 0.0}
    new = u_g @ coeffs.masked_fill(remove, 0.0) @ u_a.T
    info["rel_change"] = float((new - w).norm() / w.norm()) if float(w.norm()) > 0 else 0.0
    return new.to(dtype=weight.dtype, device=weight.device), info


def edit_state(model, factors: KFACFactors, keep_mass: float, method: str = "kfac", *, seed: int = 0,
               remove_frac: float | None = None) -> tuple[dict[str, torch.Tensor], pd.DataFrame]:
    """Edited weights of every matrix in `factors` ({"<layer>.<name>": tensor}) and a per-matrix info table."""
    linears = mlp_linears(model, factors.config.get("layers") or sorted({int(n.split(".")[0]) for n in factors.names}))
    missing = [n for n in factors.names if n not in linears]
    if missing:
        raise MemkitError(f"the K-FAC factors name matrices this model does not have: {missing[:3]}")
    new, rows = {}, []
    for index, name in enumerate(factors.names):
        weight = linears[name].weight
        eig = factors.eig(name)
        if tuple(weight.shape) != (eig[2].numel(), eig[0].numel()):
            raise MemkitError(f"K-FAC factors of {name} do not fit its weight of shape {tuple(weight.shape)}")
        new[name], info = edit_weight(weight, eig, keep_mass, method, seed=seed * 100003 + index,
                                      remove_frac=remove_frac)
        rows.append({"matrix": name, "keep_mass": keep_mass, "remove_frac": remove_frac, "method": method, **info})
    return new, pd.DataFrame(rows)


@contextmanager
def edited(model, factors: KFACFactors, keep_mass: float, method: str = "kfac", *, seed: int = 0,
           remove_frac: float | None = None) -> Iterator[pd.DataFrame]:
    """Temporarily replace the MLP weights by their edited versions; the originals come back bit for bit."""
    new, info = edit_state(model, factors, keep_mass, method, seed=seed, remove_frac=remove_frac)
    linears = mlp_linears(model, sorted({int(n.split(".")[0]) for n in new}))
    saved = {name: linears[name].weight.detach().clone() for name in new}
    try:
        with torch.no_grad():
            for name, weight in new.items():
                linears[name].weight.copy_(weight)
        yield info
    finally:
        with torch.no_grad():
            for name, weight in saved.items():
                linears[name].weight.copy_(weight)


@torch.inference_mode()
def perplexity(lm: LoadedModel, texts: Sequence[str], *, seq_len: int = 128, batch_size: int = 8,
               max_windows: int | None = None) -> float:
    """exp(mean next-token cross-entropy) over the windows of `texts` (every predicted token counts once)."""
    total, count = 0.0, 0
    windows = text_windows(lm.tokenizer, texts, seq_len, max_windows)
    for ids, mask in padded_batches(windows, batch_size, pad_token_id(lm.tokenizer)):
        logits = lm.model(input_ids=ids.to(lm.device), attention_mask=mask.to(lm.device), use_cache=False).logits
        logits = logits[:, :-1].float()
        valid = mask[:, 1:].bool().to(logits.device)
        target = ids[:, 1:].to(logits.device)
        total += float(torch.nn.functional.cross_entropy(logits[valid], target[valid], reduction="sum"))
        count += int(valid.sum())
    return float(torch.exp(torch.tensor(total / count)))
