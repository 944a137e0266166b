"""Run a model only as far as the deepest layer asked for, keeping those activations."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from dreamkit.checks import check_images, check_model
from dreamkit.errors import DreamkitError
from dreamkit.layers import LOGITS
from dreamkit.models.base import Model

__all__ = ["LOGITS", "capture", "capture_resolved"]


def capture_resolved(net: Model, images: torch.Tensor, layers: Iterable[str]
                     ) -> dict[str, torch.Tensor]:
    """Activations keyed by the names asked for (layer names, Caffe spellings, tiers or
    `logits`); nothing past the deepest is computed. No checks of `images` (the loop's use)."""
    names = {layer: net.layers.resolve(layer).name for layer in layers}
    found = net.capture(images, list(dict.fromkeys(names.values())))
    return {layer: found[name] for layer, name in names.items()}


def capture(net: Model, images: torch.Tensor, layers: Iterable[str]) -> dict[str, torch.Tensor]:
    """Activations of `layers` for `images` (B, 3, H, W) or (3, H, W), RGB in [0, 1], keyed by
    the names asked for; the network stops after the deepest one."""
    check_model(net)
    images = check_images(images, "images")
    if isinstance(layers, str) or not all(isinstance(layer, str) for layer in layers):
        raise DreamkitError(f"layers must be a list of layer names, not {layers!r:.80}")
    return capture_resolved(net, images[None] if images.dim() == 3 else images, list(layers))
