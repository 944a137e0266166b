"""BVLC GoogLeNet exactly as Caffe defines it: the network of the original DeepDream.

It differs from torchvision's `googlenet`: no batch norm, local response normalization after the
first pool and the third convolution, a real 5x5 branch, ceil-mode max pooling, and BGR 0-255
mean-subtracted input. Layer names follow torchvision (`conv1`, `inception4c`, `fc`); the weight
file is keyed by Caffe layer names (`inception_4c/5x5.weight`).
"""

from __future__ import annotations

import torch
from torch import nn

from dreamkit.models.catalog import CATALOG
from dreamkit.models.lrn import LocalResponseNorm
from dreamkit.models.staged import CaffeBGR, ConvReLU, GlobalPool, StagedNet

# name: (input channels, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj)
INCEPTIONS = {
    "3a": (192, 64, 96, 128, 16, 32, 32),
    "3b": (256, 128, 128, 192, 32, 96, 64),
    "4a": (480, 192, 96, 208, 16, 48, 64),
    "4b": (512, 160, 112, 224, 24, 64, 64),
    "4c": (512, 128, 128, 256, 24, 64, 64),
    "4d": (512, 112, 144, 288, 32, 64, 64),
    "4e": (528, 256, 160, 320, 32, 128, 128),
    "5a": (832, 256, 160, 320, 32, 128, 128),
    "5b": (832, 384, 192, 384, 48, 128, 128),
}

def _max_pool(kernel: int, stride: int, padding: int = 0) -> nn.MaxPool2d:
    return nn.MaxPool2d(kernel, stride, padding, ceil_mode=True)


def _lrn() -> LocalResponseNorm:
    # Caffe's LRN (across channels) divides alpha by local_size, as PyTorch does.
    return LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)


class Inception(nn.Module):
    """Four parallel branches concatenated: 1x1, 1x1->3x3, 1x1->5x5, 3x3 max pool->1x1."""

    def __init__(self, cin: int, c1: int, c3r: int, c3: int, c5r: int, c5: int, cp: int):
        super().__init__()
        self.add_module("1x1", ConvReLU(cin, c1, 1))
        self.add_module("3x3_reduce", ConvReLU(cin, c3r, 1))
        self.add_module("3x3", ConvReLU(c3r, c3, 3, padding=1))
        self.add_module("5x5_reduce", ConvReLU(cin, c5r, 1))
        self.add_module("5x5", ConvReLU(c5r, c5, 5, padding=2))
        self.pool = _max_pool(3, 1, 1)
        self.add_module("pool_proj", ConvReLU(cin, cp, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self._modules
        return torch.cat(
            [
                m["1x1"](x),
                m["3x3"](m["3x3_reduce"](x)),
                m["5x5"](m["5x5_reduce"](x)),
                m["pool_proj"](self.pool(x)),
            ],
            dim=1,
        )


class Classifier(nn.Sequential):
    """Global average pool, then the 1000-way linear layer (dropout is a no-op at inference)."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = GlobalPool()
        self.fc = nn.Linear(1024, 1000)


def build() -> StagedNet:
    """The architecture with uninitialised weights; see `load_caffe_state` for the weights."""
    stages: list[tuple[str, nn.Module]] = [
        ("conv1", ConvReLU(3, 64, 7, stride=2, padding=3)),
        ("pool1", _max_pool(3, 2)),
        ("norm1", _lrn()),
        ("conv2", ConvReLU(64, 64, 1)),
        ("conv3", ConvReLU(64, 192, 3, padding=1)),
        ("norm2", _lrn()),
        ("pool2", _max_pool(3, 2)),
    ]
    for key, channels in INCEPTIONS.items():
        if key in ("4a", "5a"):
            stages.append((f"pool{int(key[0]) - 1}", _max_pool(3, 2)))
        stages.append((f"inception{key}", Inception(*channels)))
    stages.append(("fc", Classifier()))
    return StagedNet("bvlc_googlenet", CaffeBGR(), stages, CATALOG["bvlc_googlenet"].table)


def caffe_to_module_name(caffe_name: str) -> str:
    """`inception_4c/5x5` -> `stages.inception4c.5x5.conv`; raises KeyError for unknown names."""
    fixed = {
        "conv1/7x7_s2": "conv1.conv",
        "conv2/3x3_reduce": "conv2.conv",
        "conv2/3x3": "conv3.conv",
        "loss3/classifier": "fc.fc",
    }
    if caffe_name in fixed:
        return f"stages.{fixed[caffe_name]}"
    block, _, branch = caffe_name.partition("/")
    if block.startswith("inception_") and block[len("inception_"):] in INCEPTIONS:
        return f"stages.{block.replace('_', '')}.{branch}.conv"
    raise KeyError(caffe_name)
