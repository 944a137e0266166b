"""Checks of what the Python API is handed: images are float RGB in [0, 1], (3, H, W) or
(B, 3, H, W), and models are dreamkit models; anything else is one DreamkitError naming the
argument and what was expected (a uint8 or 0-255 image would otherwise dream as plain white)."""

from __future__ import annotations

import torch

from dreamkit.errors import DreamkitError

TOLERANCE = 1e-4  # resampling overshoots [0, 1] by a little; that is still an image


def check_images(images: object, name: str = "image") -> torch.Tensor:
    """`images` if it is a float tensor of shape (3, H, W) or (B, 3, H, W) in [0, 1]."""
    if not isinstance(images, torch.Tensor):
        raise DreamkitError(f"{name} must be a torch.Tensor of RGB values in [0, 1], not "
                            f"{type(images).__name__}")
    shape = tuple(images.shape)
    if images.dim() not in (3, 4) or images.shape[-3] != 3 or 0 in shape:
        raise DreamkitError(f"{name} must have shape (3, H, W) or (B, 3, H, W), not {shape}")
    if not images.is_floating_point():
        raise DreamkitError(f"{name} must be a float tensor in [0, 1], not {images.dtype} "
                            "(for 0-255 values: images.float() / 255)")
    low, high = torch.aminmax(images.detach())
    low, high = float(low), float(high)
    if not (low == low and high == high) or low < -TOLERANCE or high > 1 + TOLERANCE:
        hint = "; divide 0-255 values by 255" if high > 1 + TOLERANCE else ""
        raise DreamkitError(f"{name} values must be finite and in [0, 1], not {low:g} to "
                            f"{high:g}{hint}")
    return images


def check_model(net: object, name: str = "net") -> None:
    """`net` must be a dreamkit model (`load_model` or `wrap` makes one)."""
    from dreamkit.models.base import Model

    if not isinstance(net, Model):
        raise DreamkitError(f"{name} must be a dreamkit model (dreamkit.load_model(...) or "
                            f"dreamkit.wrap(module)), not {type(net).__name__}")


def check_kind(value: object, kind: type, name: str) -> None:
    """`value` must be an instance of `kind` (a settings object, say)."""
    if not isinstance(value, kind):
        raise DreamkitError(f"{name} must be {kind.__name__}, not {type(value).__name__}")
