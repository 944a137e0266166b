"""Caffe SqueezeNet v1.1: a small, fast ImageNet network (1.2 M parameters), BGR Caffe input."""

from __future__ import annotations

import torch
from torch import nn

from dreamkit.models.catalog import CATALOG
from dreamkit.models.staged import CaffeBGR, ConvReLU, GlobalPool, StagedNet

# name: (input channels, squeeze, expand 1x1 = expand 3x3)
FIRES = {
    "fire2": (64, 16, 64),
    "fire3": (128, 16, 64),
    "fire4": (128, 32, 128),
    "fire5": (256, 32, 128),
    "fire6": (256, 48, 192),
    "fire7": (384, 48, 192),
    "fire8": (384, 64, 256),
    "fire9": (512, 64, 256),
}
class Fire(nn.Module):
    """Squeeze 1x1, then expand 1x1 and 3x3 side by side, concatenated."""

    def __init__(self, cin: int, squeeze: int, expand: int):
        super().__init__()
        self.squeeze1x1 = ConvReLU(cin, squeeze, 1)
        self.expand1x1 = ConvReLU(squeeze, expand, 1)
        self.expand3x3 = ConvReLU(squeeze, expand, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.squeeze1x1(x)
        return torch.cat([self.expand1x1(s), self.expand3x3(s)], dim=1)


def build() -> StagedNet:
    """The architecture with uninitialised weights."""
    stages: list[tuple[str, nn.Module]] = [("conv1", ConvReLU(3, 64, 3, stride=2))]
    for name, channels in FIRES.items():
        if name in ("fire2", "fire4", "fire6"):
            stages.append((f"pool{int(name[-1]) - 1}", nn.MaxPool2d(3, 2, ceil_mode=True)))
        stages.append((name, Fire(*channels)))
    stages += [("conv10", ConvReLU(512, 1000, 1)), ("pool10", GlobalPool())]
    return StagedNet("squeezenet1_1", CaffeBGR(), stages, CATALOG["squeezenet1_1"].table)


def caffe_to_module_name(caffe_name: str) -> str:
    """`fire2/squeeze1x1` -> `stages.fire2.squeeze1x1.conv`; KeyError for unknown names."""
    if caffe_name in ("conv1", "conv10"):
        return f"stages.{caffe_name}.conv"
    block, _, part = caffe_name.partition("/")
    if block in FIRES and part in ("squeeze1x1", "expand1x1", "expand3x3"):
        return f"stages.{block}.{part}.conv"
    raise KeyError(caffe_name)
