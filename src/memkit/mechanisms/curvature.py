"""Loss-curvature weight editing (after Merullo et al. 2025): drop the flattest K-FAC components of MLP weights.

    factors = cached_kfac(lm, generic_texts, layers=[20, 21, ...])     # A, G per MLP matrix (safetensors cache)
    with edited(lm.model, factors, keep_mass=0.8, method="kfac") as info:
        extract(...); perplexity(lm, held_out_texts)
    # weights restored bit for bit on exit

K-FAC. For an MLP linear map s = W a (W: d_out x d_in; GPT-NeoX `dense_h_to_4h`/`dense_4h_to_h`,
Llama/Gemma `gate_proj`/`up_proj`/`down_proj`, as listed in `memkit.core.arch`) the Fisher block of W is approximated by
G (x) A with A = E[a a^T] over the layer inputs and G = E[g g^T] over g = dL/ds, the gradient
of the *summed* next-token cross-entropy of a window with respect to the layer output at each
position. Expectations run over every token position of the fit windows (`memkit.core.text`),
so A and G are averaged over the same N positions. Labels (`labels`): `true` (default) uses
the text's own next tokens, i.e. the empirical Fisher of the fit text -- the curvature of the
loss on generic data as in Merullo et al., who collect the factors from a sample of training
data under the next-token loss; `sampled` draws each label from the model's own predictive
distribution (seeded), i.e. the true Fisher. Biases are not edited and not part of A.

Editing. With A = U_A diag(lambda_A) U_A^T and G = U_G diag(lambda_G) U_G^T, the weight in the
Kronecker eigenbasis is C = U_G^T W U_A and component (i, j) has curvature
lambda_G[i] * lambda_A[j] (negative round-off eigenvalues clipped to 0). The curvature *mass*
of a set of components is the sum of their curvatures; `keep_mass` = f keeps the smallest set
of highest-curvature components whose mass is at least f times the total (ties broken by
index), zeroes the rest of C and rotates back: W' = U_G C' U_A^T. keep_mass >= 1 keeps W
untouched (bit-identical). Baselines remove exactly as many components of the same matrix
in the same eigenbasis: `magnitude` the smallest |C_ij|, `random` a seeded random set, so only
the *choice* of components differs from `kfac`.
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

    def eig(self, name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(lambda_A, U_A, lambda_G, U_G) in float64, eigenvalues clipped at 0 (memoised)."""
        if name not in self._eig:
            lam_a, u_a = torch.linalg.eigh(self.A[name].double())
            lam_g, u_g = torch.linalg.eigh(self.G[name].double())
            self._eig[name] = (lam_a.clamp(min=0), u_a, lam_g.clamp(min=0), u_g)
        return self._eig[name]


def collect_kfac(lm: LoadedModel, texts: Sequence[str], *, layers: Sequence[int] | None = None, seq_len: int = 128,
                 batch_size: int = 8, max_windows: int | None = None, labels: str = "true", seed: int = 0,
                 progress: bool = True) -> KFACFactors:
    """K-FAC factors of the MLP matrices of `layers` on generic text (see the module docstring)."""
    if labels not in LABELS:
        raise MemkitError(f"unknown K-FAC labels {labels!r}; choose one of {', '.join(LABELS)}")
    model = lm.model
    linears = mlp_linears(model, layers)
    windows = text_windows(lm.tokenizer, texts, seq_len, max_windows)
    A = {n: torch.zeros(m.in_features, m.in_features, dtype=torch.float64) for n, m in linears.items()}
    G = {n: torch.zeros(m.out_features, m.out_features, dtype=torch.float64) for n, m in linears.items()}
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

    def embed_hook(module, args, output):  # gradients flow to activations only, never to weights
        return output.detach().requires_grad_(True)

    hooks = [(model.get_input_embeddings(), "forward", embed_hook)]
    for name, module in linears.items():
        hooks += [(module, "forward", input_hook(name)), (module, "output_grad", grad_hook(name))]
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    generator = torch.Generator().manual_seed(seed)
    n_tokens = 0
    bar = tqdm(total=len(windows), desc=f"K-FAC {lm.name}", unit="window", disable=not progress)
    try:
        with torch.enable_grad(), attach(hooks):
            for ids, mask in padded_batches(windows, batch_size, pad_token_id(lm.tokenizer)):
                state["mask"] = mask
                logits = model(input_ids=ids.to(lm.device), attention_mask=mask.to(lm.device), use_cache=False).logits
                logits = logits[:, :-1].float()
                valid = mask[:, 1:].bool().to(logits.device)
                if labels == "true":
                    target = ids[:, 1:].to(logits.device)
                else:
                    with torch.no_grad():
                        probs = torch.softmax(logits.detach().reshape(-1, logits.shape[-1]), -1).cpu()
                        target = torch.multinomial(probs, 1, generator=generator).reshape(valid.shape).to(logits.device)
                loss = torch.nn.functional.cross_entropy(logits[valid], target[valid], reduction="sum")
                loss.backward()
                n_tokens += int(mask.sum())
                bar.update(len(ids))
    finally:
        bar.close()
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)
    config = {"labels": labels, "seed": seed, "seq_len": seq_len, "n_windows": len(windows),
              "layers": sorted({int(n.split(".")[0]) for n in linears})}
    return KFACFactors({n: (a / n_tokens).float() for n, a in A.items()},
                       {n: (g / n_tokens).float() for n, g in G.items()}, n_tokens, config)


def code_version() -> str:
    """Hash of this module, the windowing, padding, hook and architecture code (part of the factor cache key)."""
    return code_fingerprint("mechanisms/curvature.py", "core/text.py", "core/batching.py", "core/hooks.py",
                            "core/arch.py")


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
                batch_size: int = 8, max_windows: int | None = None, labels: str = "true", seed: int = 0,
                progress: bool = True, cache_root: Path | None = None) -> KFACFactors:
    """`collect_kfac` with an on-disk safetensors cache keyed by (model weights, texts, settings, code)."""
    settings = dict(layers=layers, seq_len=seq_len, batch_size=batch_size, max_windows=max_windows, labels=labels,
                    seed=seed)
    if lm.sha256 is None:  # no fingerprint of the weights: never reuse a cache entry
        return collect_kfac(lm, texts, **settings, progress=progress)
    key = {"model": lm.sha256, "texts": hashlib.sha256(json.dumps(list(texts)).encode()).hexdigest(),
           "layers": None if layers is None else sorted({int(x) for x in layers}), "seq_len": seq_len,
           "batch_size": batch_size, "max_windows": max_windows, "labels": labels, "seed": seed,
           "code": code_version()}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    root = Path(cache_root) if cache_root is not None else cache_dir() / "kfac"
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{digest}.safetensors"
    with entry_lock(path):  # another process collecting the same factors: wait, then read them
        if path.exists():
            return load_factors(path)
        factors = collect_kfac(lm, texts, **settings, progress=progress)
        save_factors(factors, path)
        return factors


def removal_mask(curvature: torch.Tensor, coeffs: torch.Tensor, keep_mass: float, method: str,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Boolean mask (same shape) of the components to zero; all methods remove the count `kfac` removes."""
    if method not in METHODS:
        raise MemkitError(f"unknown edit method {method!r}; choose one of {', '.join(METHODS)}")
    if not 0.0 <= keep_mass:
        raise MemkitError(f"keep_mass must be in [0, 1], got {keep_mass}")
    flat = curvature.reshape(-1)
    size = flat.numel()
    order = torch.sort(flat, descending=True, stable=True).indices
    if keep_mass >= 1.0:
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
                seed: int = 0) -> tuple[torch.Tensor, dict]:
    """The edited copy of one weight matrix and what was removed (count, curvature share, weight change)."""
    lam_a, u_a, lam_g, u_g = eig
    w = weight.detach().double().cpu()
    coeffs = u_g.T @ w @ u_a
    curvature = lam_g[:, None] * lam_a[None, :]
    remove = removal_mask(curvature, coeffs, keep_mass, method, torch.Generator().manual_seed(seed))
    n_removed = int(remove.sum())
    total = float(curvature.sum())
    info = {"n_components": int(remove.numel()), "n_removed": n_removed,
            "removed_mass": float(curvature[remove].sum()) / total if total > 0 else 0.0}
    if n_removed == 0:
        return weight.detach().clone(), {**info, "rel_change": 0.0}
    new = u_g @ coeffs.masked_fill(remove, 0.0) @ u_a.T
    info["rel_change"] = float((new - w).norm() / w.norm()) if float(w.norm()) > 0 else 0.0
    return new.to(dtype=weight.dtype, device=weight.device), info


def edit_state(model, factors: KFACFactors, keep_mass: float, method: str = "kfac", *, seed: int = 0
               ) -> tuple[dict[str, torch.Tensor], pd.DataFrame]:
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
        new[name], info = edit_weight(weight, eig, keep_mass, method, seed=seed * 100003 + index)
        rows.append({"matrix": name, "keep_mass": keep_mass, "method": method, **info})
    return new, pd.DataFrame(rows)


@contextmanager
def edited(model, factors: KFACFactors, keep_mass: float, method: str = "kfac", *, seed: int = 0
           ) -> Iterator[pd.DataFrame]:
    """Temporarily replace the MLP weights by their edited versions; the originals come back bit for bit."""
    new, info = edit_state(model, factors, keep_mass, method, seed=seed)
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
