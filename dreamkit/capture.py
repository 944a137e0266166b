"""Run a staged network only as far as the deepest layer asked for, keeping those activations."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from dreamkit.models.staged import StagedNet

LOGITS = "logits"  # stands for the model's own class-logit stage


def stage_name(net: StagedNet, layer: str) -> str:
    """The stage behind a layer name: a stage, `logits`, a Caffe spelling or a tier."""
    if layer in net.stages:
        return layer
    if layer == LOGITS:
        return net.logits
    return net.layers.resolve(layer).name


def capture(net: StagedNet, images: torch.Tensor, layers: Iterable[str]) -> dict[str, torch.Tensor]:
    """Activations keyed by the names asked for; stages past the deepest one are skipped."""
    wanted: dict[str, list[str]] = {}
    for layer in layers:
        wanted.setdefault(stage_name(net, layer), []).append(layer)
    found: dict[str, torch.Tensor] = {}
    x = net.preprocess(images)
    remaining = len(wanted)
    for name, stage in net.stages.items():
        if remaining == 0:
            break
        x = stage(x)
        if name in wanted:
            remaining -= 1
            for alias in wanted[name]:
                found[alias] = x
    return found


def deepest(net: StagedNet, layers: Iterable[str]) -> str:
    """The deepest stage among `layers` (where `capture` stops)."""
    order = list(net.stages)
    return max((stage_name(net, layer) for layer in layers), key=order.index)
