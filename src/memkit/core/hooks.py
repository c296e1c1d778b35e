"""Hooks into the residual stream: the one door into a model's internals (TransformerLens style).

    with residual_edit(model, layer=3, edit=fn):   # fn(hidden, position_ids) -> hidden
        greedy_decode(...)
    # hooks are always removed on exit, even after an error

`hidden` is the output of decoder block `layer` (the residual stream after that block),
shape (batch, new positions, d_model); `position_ids` are the logical positions of those
columns, so an edit can target positions independently of padding and KV caching.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch
from ..errors import MemkitError

ResidualEdit = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def decoder_layers(model) -> torch.nn.ModuleList:
    """The list of decoder blocks of a causal LM (Llama, Gemma 3, GPT-NeoX, ...)."""
    base = getattr(model, "base_model", model)
    for candidate in (base, getattr(base, "model", None), getattr(base, "language_model", None)):
        layers = getattr(candidate, "layers", None)
        if isinstance(layers, torch.nn.ModuleList):
            return layers
    raise MemkitError(f"cannot find the decoder layers of {type(model).__name__}")


def _positions(args, kwargs, hidden: torch.Tensor) -> torch.Tensor:
    position_ids = kwargs.get("position_ids")
    if position_ids is None:  # plain call without explicit positions: 0..T-1
        position_ids = torch.arange(hidden.shape[1], device=hidden.device).expand(hidden.shape[0], -1)
    return position_ids


@contextmanager
def residual_edit(model, layer: int, edit: ResidualEdit) -> Iterator[None]:
    """Apply `edit` to the residual stream after decoder block `layer` during every forward."""
    layers = decoder_layers(model)
    if not 0 <= layer < len(layers):
        raise MemkitError(f"layer {layer} out of range: the model has {len(layers)} layers (0..{len(layers) - 1})")

    def hook(module, args, kwargs, output):
        hidden = output[0] if isinstance(output, tuple) else output
        edited = edit(hidden, _positions(args, kwargs, hidden))
        return (edited, *output[1:]) if isinstance(output, tuple) else edited

    handle = layers[layer].register_forward_hook(hook, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def record_residuals(model) -> Iterator[dict[int, list[torch.Tensor]]]:
    """Collect the residual stream after every decoder block: {layer: [tensor per forward]}."""
    layers = decoder_layers(model)
    store: dict[int, list[torch.Tensor]] = {i: [] for i in range(len(layers))}
    handles = []
    for index, block in enumerate(layers):
        def hook(module, args, output, index=index):
            hidden = output[0] if isinstance(output, tuple) else output
            store[index].append(hidden.detach().float().cpu())
        handles.append(block.register_forward_hook(hook))
    try:
        yield store
    finally:
        for handle in handles:
            handle.remove()
