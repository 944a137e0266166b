"""Networks built in the tests, importable as `tests.factories:NAME` model specs."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Pitfalls(nn.Module):
    """A user's CNN with the peers' known pitfalls: an in-place ReLU right after a module that
    gets captured, one ReLU instance used in three places, a module called twice, and a
    functional in-place ReLU; `calls` counts each module's forward calls."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.twice = nn.Conv2d(8, 8, 3, padding=1)
        self.conv3 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.head = nn.Linear(16, 10)
        self.calls: dict[str, int] = {}
        for name, module in self.named_children():
            module.register_forward_pre_hook(
                lambda m, args, name=name: self.calls.__setitem__(name, self.calls.get(name, 0)
                                                                  + 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.conv1(x))
        y = self.conv2(x)
        x = self.relu(y)
        x = self.relu(self.twice(self.twice(x)))
        x = F.relu(self.conv3(x), inplace=True)
        return self.head(x.mean(dim=(2, 3)))

    def by_hand(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The activations written out by hand (no in-place anything)."""
        out = {"conv1": F.conv2d(x, self.conv1.weight, self.conv1.bias, padding=1)}
        a = out["conv1"].relu()
        out["conv2"] = F.conv2d(a, self.conv2.weight, self.conv2.bias, padding=1)
        a = out["conv2"].relu()
        out["twice"] = F.conv2d(a, self.twice.weight, self.twice.bias, padding=1)  # first call
        a = F.conv2d(out["twice"], self.twice.weight, self.twice.bias, padding=1).relu()
        out["conv3"] = F.conv2d(a, self.conv3.weight, self.conv3.bias, stride=2, padding=1)
        out["logits"] = self.head(out["conv3"].relu().mean(dim=(2, 3)))
        return out


class Untraceable(Pitfalls):
    """The same network with data-dependent control flow, which torch.fx cannot trace."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > -1e30:  # always true, but fx sees a Proxy in a condition
            return super().forward(x)
        return x


def pitfalls() -> nn.Module:
    torch.manual_seed(0)
    return Pitfalls()


def with_preprocessing():
    """A factory returning (module, preprocessing)."""
    return pitfalls(), "none"


def not_a_module():
    return "a string"


def broken():
    raise RuntimeError("the user's code failed")


class Backbone(nn.Module):
    """A user's model holding a whole torchvision classifier as `self.backbone`."""

    def __init__(self, backbone: nn.Module, head: int | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(1000, head) if head else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.backbone(x)
        return self.head(x) if self.head is not None else x


class InPlaceMethods(nn.Module):
    """In-place tensor methods whose results are not assigned, and an in-place `+=`."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1)
        self.act = nn.Hardswish(inplace=True)
        self.c = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.head = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.a(x)
        x.clamp_(min=0)
        y = self.b(x)
        y.mul_(2).add_(1)
        y += x
        self.act(y)  # an in-place module whose result is not assigned either
        x = self.c(y)
        return self.head(x.mean(dim=(2, 3)))


class Functional(nn.Module):
    """A network written with `torch.nn.functional` calls only: no submodules at all."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.w1 = nn.Parameter(torch.randn(8, 3, 3, 3, generator=generator) * 0.3)
        self.w2 = nn.Parameter(torch.randn(16, 8, 3, 3, generator=generator) * 0.2)
        self.w3 = nn.Parameter(torch.randn(10, 16, generator=generator) * 0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(F.conv2d(x, self.w1, padding=1))
        x = F.relu(F.conv2d(x, self.w2, stride=2, padding=1))
        return x.mean(dim=(2, 3)) @ self.w3.t()


class Gray(nn.Module):
    """A network for 1-channel images."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU())
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


class Integer(Gray):
    """The 1-channel network with integer weights (cannot be dreamed with)."""

    def __init__(self) -> None:
        super().__init__()
        self.features[0].weight = nn.Parameter(torch.ones(8, 1, 3, 3, dtype=torch.int64),
                                               requires_grad=False)
