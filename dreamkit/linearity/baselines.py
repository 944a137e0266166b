"""Untrained baselines that keep the signal alive, and what a layer's activations look like.

PyTorch's default initialisation collapses the signal of a deep network (bvlc_googlenet's
inception4e RMS 0.017 against 6.75 trained; 3 % of its units ever switch), which makes it look
trivially linear. The baselines here do not: `kaiming` draws every convolution and linear
weight with variance-preserving (He) initialisation for ReLU networks, `shuffled` permutes the
trained weights within each layer (same distribution, no learned structure). Neither keeps the
trained scale on its own through a deep network (He drifts up to 21x at bvlc_googlenet's
inception5b, shuffled weights fade to 0.03x), so both are then calibrated on the photos,
LSUV-style: in forward order, each convolution and linear layer is rescaled so that the
positive part of its output has the trained network's RMS. The baselines then differ from the
trained network in structure only. Batch norm statistics are measured again on the photos.
`scale` and `switching` say what came out: the activations' RMS, and the share of units that
are on for some photos and off for others.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from dreamkit.models.base import Model

NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
LINEAR = (nn.Conv2d, nn.Linear)


def _positive_rms(output: torch.Tensor) -> float:
    return float(output.detach().clamp_min(0).double().pow(2).mean().sqrt())


def _run_with_hooks(net: Model, hook, photos: torch.Tensor) -> None:
    """One forward pass of `photos` with `hook(path)` on every convolution and linear layer."""
    handles = [m.register_forward_hook(hook(path)) for path, m in net.named_modules()
               if isinstance(m, LINEAR)]
    try:
        with torch.no_grad():
            net(photos.to(net.device))
    finally:
        for handle in handles:
            handle.remove()


def _output_scales(net: Model, photos: torch.Tensor) -> dict[str, float]:
    """The positive-part RMS of each convolution's and linear layer's output on `photos`."""
    found: dict[str, float] = {}
    _run_with_hooks(net, lambda path: lambda m, i, out: found.setdefault(
        path, _positive_rms(out)) and None, photos)
    return found


def calibrate(baseline: Model, scales: dict[str, float], photos: torch.Tensor) -> None:
    """Rescale `baseline`'s convolutions and linear layers, in the order they run, so that
    each output's positive part has the RMS in `scales` (one forward pass: each hook rescales
    its layer's weights and its own output, which the layers after it then see)."""
    def hook(path: str):
        def rescale(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
            factor = scales.get(path, 0.0) / max(_positive_rms(output), 1e-12)
            factor = factor if 0 < factor < 1e12 else 1.0
            module.weight.mul_(factor)
            if module.bias is not None:
                module.bias.mul_(factor)
            return output * factor

        return rescale

    _run_with_hooks(baseline, hook, photos)


def _recalibrate(net: Model, photos: torch.Tensor, batch: int) -> None:
    """Batch norm running statistics measured on `photos` (the weights changed under them)."""
    norms = [m for m in net.modules() if isinstance(m, NORMS)]
    if not norms:
        return
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average over the batches
        norm.train()
    with torch.no_grad():
        for i in range(0, len(photos), batch):
            net(photos[i:i + batch].to(net.device))
    for norm in norms:
        norm.eval()


def kaiming(net: Model, photos: torch.Tensor, seed: int = 0, batch: int = 16) -> Model:
    """A copy of `net` with He-initialised convolutions and linear layers (biases zero),
    calibrated to the trained scale."""
    made = copy.deepcopy(net)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in made.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                weight = torch.empty(module.weight.shape)
                nn.init.kaiming_normal_(weight, nonlinearity="relu", generator=generator)
                module.weight.copy_(weight)
                if module.bias is not None:
                    module.bias.zero_()
    return _finish(net, made, photos, batch)


def shuffled(net: Model, photos: torch.Tensor, seed: int = 0, batch: int = 16) -> Model:
    """A copy of `net` whose every parameter tensor has its entries permuted, calibrated to
    the trained scale."""
    made = copy.deepcopy(net)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in made.parameters():
            flat = parameter.detach().cpu().flatten()
            order = torch.randperm(flat.numel(), generator=generator)
            parameter.copy_(flat[order].view(parameter.shape))
    return _finish(net, made, photos, batch)


def _finish(trained: Model, made: Model, photos: torch.Tensor, batch: int) -> Model:
    made.__dict__.pop("_weights_sha256", None)
    _recalibrate(made, photos, batch)
    calibrate(made, _output_scales(trained, photos[:batch]), photos[:batch])
    _recalibrate(made, photos, batch)
    return made


def scale(acts: torch.Tensor) -> torch.Tensor:
    """Per photo: the RMS of its activations (n,)."""
    return acts.double().pow(2).mean(1).sqrt().float()


def switching(acts: torch.Tensor) -> float:
    """The share of units (entries) that are positive for some photos and not for others."""
    on = acts > 0
    return float((on.any(0) & ~on.all(0)).float().mean())
