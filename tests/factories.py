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
