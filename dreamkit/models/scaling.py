"""The input scaling a wrapped network was trained with (what `preprocess="auto"` uses).

In order: the mean and std the module declares in timm's way (`pretrained_cfg`); else the
usual scaling that best fits the running statistics of its first BatchNorm (a network trained
on [-1, 1] inputs, such as EfficientNet-Lite, keeps statistics that ImageNet-normalized inputs
miss by a factor of about 2.2 in standard deviation); else ImageNet's. The fit feeds the
module natural-looking noise (a 1/f spectrum with correlated colours) under each scaling and
compares the per-channel mean and variance reaching that BatchNorm with the ones it learned.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
Scaling = tuple[tuple[float, ...], tuple[float, ...]]  # (mean, std) of RGB in [0, 1]
SCALINGS: dict[str, Scaling] = {
    "ImageNet's mean and std": (IMAGENET_MEAN, IMAGENET_STD),
    "[-1, 1] (mean 0.5, std 0.5)": ((0.5,) * 3, (0.5,) * 3),
    "[0, 1] (no normalization)": ((0.0,) * 3, (1.0,) * 3),
    "[0, 255] (pixel values)": ((0.0,) * 3, (1 / 255,) * 3),
}
NOISE_IMAGES, NOISE_SIDE = 4, 224
NOISE_MEAN, NOISE_STD = 0.45, 0.25  # of natural photos' pixels, roughly
MISFIT = 1.0  # a best score above this fits no usual scaling (candidates lie ~1.4 apart)


class _Reached(Exception):
    """Stops the forward pass at the first BatchNorm."""


def declared_normalization(module: nn.Module) -> tuple[str, Scaling] | None:
    """Where `module`, or its first submodule that does, declares its input mean and std in
    timm's way (`pretrained_cfg` or `default_cfg`), and the two; None when none does."""
    for path, part in module.named_modules():
        for attribute in ("pretrained_cfg", "default_cfg"):
            config = getattr(part, attribute, None)
            if not isinstance(config, Mapping):
                continue
            mean, std = _three_numbers(config.get("mean")), _three_numbers(config.get("std"))
            if mean and std and min(std) > 0:
                return (f"{path}.{attribute}" if path else attribute), (mean, std)
    return None


def _three_numbers(value: object) -> tuple[float, ...] | None:
    if not isinstance(value, Sequence) or len(value) != 3:
        return None
    if not all(isinstance(v, int | float) and v == v and abs(v) < 1e6 for v in value):
        return None
    return tuple(float(v) for v in value)


def natural_noise(count: int, side: int, seed: int = 0) -> torch.Tensor:
    """(count, 3, side, side) RGB images in [0, 1] with a natural photo's 1/f amplitude
    spectrum, colour correlation, mean and contrast (deterministic for a seed)."""
    generator = torch.Generator().manual_seed(seed)
    frequency = torch.fft.fftfreq(side).abs()
    radius = (frequency[:, None] ** 2 + frequency[None, :] ** 2).sqrt().clamp_min(1 / side)
    spectrum = torch.complex(*torch.randn(2, count, 3, side, side, generator=generator))
    spectrum = 0.9 * spectrum[:, :1] + 0.3 * spectrum  # shared luminance, some colour
    images = torch.fft.ifft2(spectrum / radius).real
    images = (images - images.mean(dim=(2, 3), keepdim=True)) / images.std(dim=(2, 3),
                                                                          keepdim=True)
    return (NOISE_MEAN + NOISE_STD * images).clamp(0.0, 1.0)


def _has_statistics(part: nn.Module) -> bool:
    """A BatchNorm that keeps running statistics (torch's, or a frozen one as torchvision's
    detection backbones use)."""
    return all(isinstance(getattr(part, name, None), torch.Tensor)
               for name in ("running_mean", "running_var"))


def first_batchnorm_input(module: nn.Module, images: torch.Tensor
                          ) -> tuple[str, nn.Module, torch.Tensor] | None:
    """The first BatchNorm with running statistics that `module(images)` calls, with its path
    and its input; None when the forward pass reaches none."""
    names = {part: path for path, part in module.named_modules()}
    reached: list = []

    def stop(part: nn.Module, inputs: tuple) -> None:
        reached.append((names[part], part, inputs[0]))
        raise _Reached

    norms = [part for part in module.modules() if _has_statistics(part)]
    handles = [part.register_forward_pre_hook(stop) for part in norms]
    try:
        with torch.no_grad():
            module(images)
    except _Reached:
        pass
    finally:
        for handle in handles:
            handle.remove()
    return reached[0] if reached else None


def inferred_normalization(module: nn.Module, side: int | None = None
                           ) -> tuple[str, str, Scaling] | None:
    """The name of the usual scaling (`SCALINGS`) that best fits the running statistics of
    `module`'s first BatchNorm, that BatchNorm's path and the scaling; None when the module
    has no trained BatchNorm, cannot run on RGB noise, or no usual scaling fits. One forward
    pass, up to that BatchNorm, of the noise under every scaling (eval mode: the images of a
    batch do not mix)."""
    weights = next(module.parameters())
    noise = natural_noise(NOISE_IMAGES, side or NOISE_SIDE).to(weights.device, weights.dtype)
    means, stds = (torch.tensor(values, device=noise.device, dtype=noise.dtype)
                   .repeat_interleave(NOISE_IMAGES, dim=0)[:, :, None, None]
                   for values in zip(*SCALINGS.values(), strict=True))
    try:
        reached = first_batchnorm_input(module, (noise.repeat(len(SCALINGS), 1, 1, 1) - means)
                                        / stds)
    except Exception:  # noqa: BLE001 - a module that does not take RGB: discovery says why
        return None
    if reached is None or not _trained(reached[1]):
        return None
    path, norm, inputs = reached
    scores = {name: _misfit(norm, part.float())
              for name, part in zip(SCALINGS, inputs.split(NOISE_IMAGES), strict=True)}
    best = min(scores, key=scores.get)
    return (best, path, SCALINGS[best]) if scores[best] <= MISFIT else None


def _trained(norm: nn.Module) -> bool:
    """Whether a BatchNorm's running statistics were learned (not their initial 0 and 1)."""
    return not bool((norm.running_mean == 0).all() and (norm.running_var == 1).all())


def _misfit(norm: nn.Module, inputs: torch.Tensor) -> float:
    """How far the channels reaching `norm` are from the statistics it learned: the median
    log variance ratio and the median standardized mean shift (medians, so that dead
    channels and the noise's own quirks do not decide)."""
    learned_mean, learned_var = norm.running_mean.float(), norm.running_var.float()
    channels = inputs.transpose(0, 1).reshape(inputs.shape[1], -1)
    live = learned_var > 1e-4 * learned_var.max()
    var = channels.var(dim=1)[live].clamp_min(1e-12)
    shift = (channels.mean(dim=1)[live] - learned_mean[live]) / learned_var[live].sqrt()
    log_ratio = (var / (learned_var[live] + getattr(norm, "eps", 1e-5))).log()
    return float(log_ratio.median().abs() + shift.median().abs())
