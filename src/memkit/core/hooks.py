"""Hooks into a model: the one door into its internals (every torch hook in memkit goes through here).

    with attach([(block, "forward", fn), (o_proj, "pre_forward", fn2)]):   # any modules, any kinds
        model(...)
    # every hook is removed on exit, even after an error

    with residual_edit(model, layer=3, edit=fn):   # fn(hidden, position_ids) -> hidden
        greedy_decode(...)
    with record_residuals(model) as store:         # {layer: [tensor per forward]}
        model(...)

Kinds of `attach` (the function's signature and what it may return, as in torch):
- `forward`             fn(module, args, output) -> new output or None
- `forward_kwargs`      fn(module, args, kwargs, output) -> new output or None
- `pre_forward`         fn(module, args) -> new args or None
- `pre_forward_kwargs`  fn(module, args, kwargs) -> (new args, new kwargs) or None
- `output_grad`         fn(grad) -> new grad or None, called with dL/d(output) of every forward
                        of the module (a gradient hook on that forward's output tensor, which
                        must require grad)
Hooks fire in the order given (and after hooks attached earlier on the same module).

For `residual_edit`, `hidden` is the output of decoder block `layer` (the residual stream
after that block), shape (batch, new positions, d_model); `position_ids` are the logical
positions of those columns, so an edit can target positions independently of padding and
KV caching. Where the decoder blocks are is an architecture fact (`memkit.core.arch`).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterable, Iterator

import torch

from ..errors import MemkitError
from .arch import decoder_layers

ResidualEdit = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Hook = tuple[torch.nn.Module, str, Callable]
KINDS = ("forward", "forward_kwargs", "pre_forward", "pre_forward_kwargs", "output_grad")


@contextmanager
def attach(hooks: Iterable[Hook]) -> Iterator[None]:
    """Register every (module, kind, fn) hook for the duration of the block (kinds: module docstring)."""
    handles: list = []  # module hooks, then the gradient hooks planted on forward outputs

    def plant_grad(fn):
        def forward(module, args, output):
            handles.append(output.register_hook(fn))
        return forward

    try:
        for module, kind, fn in hooks:
            if kind == "forward":
                handles.append(module.register_forward_hook(fn))
            elif kind == "forward_kwargs":
                handles.append(module.register_forward_hook(fn, with_kwargs=True))
            elif kind == "pre_forward":
                handles.append(module.register_forward_pre_hook(fn))
            elif kind == "pre_forward_kwargs":
                handles.append(module.register_forward_pre_hook(fn, with_kwargs=True))
            elif kind == "output_grad":
                handles.append(module.register_forward_hook(plant_grad(fn)))
            else:
                raise ValueError(f"unknown hook kind {kind!r}; choose one of {', '.join(KINDS)}")
        yield
    finally:
        for handle in handles:
            handle.remove()


def _positions(kwargs, hidden: torch.Tensor) -> torch.Tensor:
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
        edited = edit(hidden, _positions(kwargs, hidden))
        return (edited, *output[1:]) if isinstance(output, tuple) else edited

    with attach([(layers[layer], "forward_kwargs", hook)]):
        yield


@contextmanager
def record_residuals(model) -> Iterator[dict[int, list[torch.Tensor]]]:
    """Collect the residual stream after every decoder block: {layer: [tensor per forward]} (float32, CPU)."""
    layers = decoder_layers(model)
    store: dict[int, list[torch.Tensor]] = {i: [] for i in range(len(layers))}

    def recorder(index: int):
        def hook(module, args, output):
            hidden = output[0] if isinstance(output, tuple) else output
            store[index].append(hidden.detach().float().cpu())
        return hook

    with attach([(block, "forward", recorder(index)) for index, block in enumerate(layers)]):
        yield store
