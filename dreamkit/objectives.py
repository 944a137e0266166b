"""Objectives: what gradient ascent maximizes, as composable functions of captured activations.

An objective maps the activations of the layers it `needs` to one value per image, shape (B,).
They compose with arithmetic (`a + 0.5 * b`, `a - b`, `-a`), each weight scaling only its own
term. Per-image values keep batched renders independent: image i never affects image j.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

from dreamkit.capture import LOGITS
from dreamkit.errors import DreamkitError

Activations = Mapping[str, torch.Tensor]


class Objective:
    """A named function of activations -> (B,) values, with the layers it needs."""

    def __init__(self, fn: Callable[[Activations], torch.Tensor], needs: Sequence[str], name: str):
        self.fn = fn
        self.needs = tuple(dict.fromkeys(needs))
        self.name = name

    def __call__(self, acts: Activations) -> torch.Tensor:
        return self.fn(acts)

    def __repr__(self) -> str:
        return f"Objective({self.name})"

    def __add__(self, other: Objective | float) -> Objective:
        if isinstance(other, (int, float)):
            return Objective(lambda a: self(a) + other, self.needs, f"{self.name} + {other}")
        other = as_objective(other)
        return Objective(
            lambda a: self(a) + other(a), self.needs + other.needs, f"{self.name} + {other.name}"
        )

    def __radd__(self, other: float) -> Objective:  # lets sum() start from 0
        return self if other == 0 else self + other

    def __neg__(self) -> Objective:
        return Objective(lambda a: -self(a), self.needs, f"-({self.name})")

    def __sub__(self, other: Objective | float) -> Objective:
        return self + (-as_objective(other) if not isinstance(other, (int, float)) else -other)

    def __mul__(self, k: float) -> Objective:
        if not isinstance(k, (int, float)):
            return NotImplemented
        return Objective(lambda a: k * self(a), self.needs, f"{k} * ({self.name})")

    __rmul__ = __mul__

    def __truediv__(self, k: float) -> Objective:
        return self * (1.0 / k)


def _per_channel(channels: int | Sequence[int], acts: torch.Tensor) -> torch.Tensor:
    """Index tensor (B,) of the channel each image targets (one int: the same for all)."""
    if isinstance(channels, int):
        return torch.full((acts.shape[0],), channels, device=acts.device)
    if len(channels) != acts.shape[0]:
        raise DreamkitError(f"{len(channels)} channels given for a batch of {acts.shape[0]}")
    return torch.as_tensor(channels, device=acts.device)


def _check_channels(layer: str, channels: int | Sequence[int], acts: torch.Tensor) -> None:
    values = [channels] if isinstance(channels, int) else list(channels)
    bad = [c for c in values if not 0 <= c < acts.shape[1]]
    if bad:
        raise DreamkitError(
            f"channel {bad[0]} is out of range: {layer} has {acts.shape[1]} channels "
            f"(0-{acts.shape[1] - 1})"
        )


def layer_norm(layer: str) -> Objective:
    """DeepDream's objective: the root-mean-square activation of the whole layer."""
    return Objective(
        lambda a: a[layer].float().pow(2).flatten(1).mean(1).sqrt(), [layer], f"{layer} norm"
    )


def channel(layer: str, channels: int | Sequence[int]) -> Objective:
    """Mean activation of one channel; a list gives image i its own channel `channels[i]`."""

    def fn(a: Activations) -> torch.Tensor:
        acts = a[layer]
        _check_channels(layer, channels, acts)
        index = _per_channel(channels, acts)
        picked = acts[torch.arange(acts.shape[0], device=acts.device), index]
        return picked.float().flatten(1).mean(1)

    return Objective(fn, [layer], f"{layer}:{channels}")


def class_logit(classes: int | str | Sequence[int | str]) -> Objective:
    """The logit of an ImageNet class, by index or name; a list gives one class per image."""
    from dreamkit.imagenet import class_index

    if isinstance(classes, (int, str)):
        index: int | list[int] = class_index(classes)
    else:
        index = [class_index(c) for c in classes]

    def fn(a: Activations) -> torch.Tensor:
        logits = a[LOGITS]
        rows = torch.arange(logits.shape[0], device=logits.device)
        return logits[rows, _per_channel(index, logits)].float()

    return Objective(fn, [LOGITS], f"class {classes}")


def as_objective(spec: Objective | str) -> Objective:
    """Objectives pass through; `"inception4c:97"` is a channel; `"inception4c"` a layer norm."""
    if isinstance(spec, Objective):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"not an objective: {spec!r}")
    layer, sep, index = spec.partition(":")
    if not sep:
        return layer_norm(layer)
    try:
        return channel(layer, int(index))
    except ValueError:
        raise DreamkitError(f"bad objective {spec!r}: expected LAYER or LAYER:CHANNEL") from None
