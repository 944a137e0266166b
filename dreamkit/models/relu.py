"""ReLUs whose backward pass can be switched to lucid's redirected gradient while rendering.

Deep layers often start dead: at the grey initial image a channel's ReLU is off everywhere, its
gradient is zero and the image would stay flat grey. With `redirected(True)`, an image whose
gradient through a ReLU is zero everywhere gets the gradient that would raise that ReLU's input
instead. Every ReLU of dreamkit's networks is a `SwitchableReLU` (or, in wrapped modules, a call
of `switchable_relu`), so switching needs no change to the network.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

_STATE = {"redirect": False}


class _RedirectedReLUFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        y = x.clamp_min(0)
        ctx.save_for_backward(y)  # the output, as PyTorch's ReLU saves it
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (y,) = ctx.saved_tensors
        relu_grad = torch.ops.aten.threshold_backward(grad, y, 0)  # plain ReLU's kernel
        dead = relu_grad.abs().amax(tuple(range(1, y.dim()))) == 0
        if grad.device.type == "cpu" and not torch.compiler.is_compiling() and not dead.any():
            return relu_grad  # reading `dead` costs no sync on the CPU; a graph has no branch
        # the loss is minimized, so grad < 0 asks for a larger output: let that through
        redirected = grad.masked_fill((y == 0) & (grad > 0), 0)
        return torch.where(dead.view(-1, *[1] * (y.dim() - 1)), redirected, relu_grad)


def switchable_relu(x: torch.Tensor) -> torch.Tensor:
    """ReLU; its backward is the redirected one inside `redirected(True)`."""
    if _STATE["redirect"] and torch.is_grad_enabled():
        return _RedirectedReLUFunction.apply(x)
    return torch.relu(x)


class SwitchableReLU(nn.ReLU):
    """`nn.ReLU` (never in place) whose backward follows `redirected`."""

    def __init__(self) -> None:
        super().__init__(inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return switchable_relu(x)


@contextlib.contextmanager
def redirected(enabled: bool = True) -> Iterator[None]:
    """Redirect the backward pass of every switchable ReLU for the duration."""
    previous = _STATE["redirect"]
    _STATE["redirect"] = enabled
    try:
        yield
    finally:
        _STATE["redirect"] = previous


def make_switchable(module: nn.Module) -> nn.Module:
    """Replace every plain `nn.ReLU` instance in `module` by one `SwitchableReLU` (an instance
    used in several places stays one instance); returns `module`."""
    replacements: dict[int, SwitchableReLU] = {}
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.ReLU:
                setattr(parent, name, replacements.setdefault(id(child), SwitchableReLU()))
    return module
