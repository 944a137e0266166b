"""Do feature directions add? Render directions a, b and a + b from noise and compare.

s_a is the projection on a reached by the image rendered for a + b, over the projection the
image rendered for a alone reaches (s_b likewise). Under the same image budget a linear
network reaches sqrt((1 + cos(a, b)) / 2) for both (1/sqrt(2) = 0.71 for orthogonal
directions): the a + b image spends its budget on both. Renders are noisy, so each pair is
rendered with several seeds and reported as a mean with a t interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from dreamkit.capture import capture_resolved
from dreamkit.directions import principal_directions
from dreamkit.models.base import Model
from dreamkit.objectives import direction


@dataclass(frozen=True)
class Pair:
    """Two unit directions of a layer and what a linear network would give."""

    kind: str  # pca | random
    a: torch.Tensor
    b: torch.Tensor

    @property
    def target(self) -> float:
        return math.sqrt((1 + float(self.a @ self.b)) / 2)


def pairs(net: Model, layer: str, acts: torch.Tensor, generator: torch.Generator
          ) -> list[Pair]:
    """The top two principal directions of `acts` (n, C, ...) and two random ones."""
    top = principal_directions(acts, 2, layer, net.name).vectors
    noise = torch.randn(2, top.shape[1], generator=generator)
    noise = noise / noise.norm(dim=1, keepdim=True)
    return [Pair("pca", top[0], top[1]), Pair("random", noise[0], noise[1])]


def shares(net: Model, layer: str, pair: Pair, seed: int, **render_options
           ) -> tuple[float, float, torch.Tensor]:
    """(s_a, s_b, the three images) for one seed."""
    from dreamkit.render import render

    vectors = torch.stack([pair.a, pair.b, pair.a + pair.b])
    images = render(net, direction(layer, vectors), batch=3, seed=seed, **render_options).images
    with torch.no_grad():
        acts = capture_resolved(net, images.to(net.device), [layer])
        on_a = direction(layer, pair.a)(acts).cpu()
        on_b = direction(layer, pair.b)(acts).cpu()
    return float(on_a[2] / on_a[0]), float(on_b[2] / on_b[1]), images
