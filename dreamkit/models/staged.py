"""A network seen as an ordered list of named stages, with its preprocessing built in.

Capturing a layer means reading a stage's output while running the stages in order, so no
forward hooks are needed and the run stops right after the deepest stage asked for. dreamkit's
exact rebuilds (BVLC GoogLeNet, SqueezeNet) and its torchvision adaptations are staged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dreamkit.layers import LayerTable
from dreamkit.models.base import Model
from dreamkit.models.relu import SwitchableReLU


class StagedNet(Model):
    """`preprocess` then `stages` in order; `layers` names the stages worth capturing."""

    def __init__(self, name: str, preprocess: nn.Module, stages: Sequence[tuple[str, nn.Module]],
                 layers: LayerTable):
        super().__init__()
        self.name = name
        self.preprocess = preprocess
        self.stages = nn.ModuleDict(dict(stages))
        unknown = [layer.name for layer in layers if layer.name not in self.stages]
        if unknown or layers.logits not in self.stages:
            raise ValueError(f"{name}: layers {unknown + [layers.logits]} are not stages")
        self.layers = layers
        for module in self.modules():  # in-place ops would overwrite captured activations
            if hasattr(module, "inplace"):
                module.inplace = False

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The class logits."""
        x = self.preprocess(images)
        for stage in self.stages.values():
            x = stage(x)
        return x

    def capture(self, images: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        wanted = set(layers)
        found: dict[str, torch.Tensor] = {}
        x = self.preprocess(images)
        for name, stage in self.stages.items():
            if len(found) == len(wanted):
                break
            x = stage(x)
            if name in wanted:
                found[name] = x
        return found

    def logits_from(self, layer: str, acts: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        names = list(self.stages)
        x = acts
        for name in names[names.index(layer) + 1:]:
            x = self.stages[name](x)
        return x


class CaffeBGR(nn.Module):
    """RGB [0, 1] -> Caffe input: BGR, 0-255, per-channel mean subtracted."""

    def __init__(self, mean_bgr: tuple[float, float, float] = (104.0, 117.0, 123.0)):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean_bgr).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flip(1) * 255.0 - self.mean.to(x.dtype)


class Normalize(nn.Module):
    """RGB [0, 1] -> (x - mean) / std, as torchvision's ImageNet models expect."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


class ConvReLU(nn.Sequential):
    """A Caffe convolution followed by its ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding)
        self.relu = SwitchableReLU()


class GlobalPool(nn.Module):
    """Average over all positions and flatten (any input size, unlike a fixed 7x7 pool)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))
