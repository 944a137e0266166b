"""Feature visualizations reach their objective on the real BVLC GoogLeNet (acceptance 1, 2).

Reduced size and steps so that they run on a CPU; the full-size renders only get better.
"""

from __future__ import annotations

import pytest
import torch

from dreamkit.capture import capture
from dreamkit.imagenet import class_index
from dreamkit.objectives import channel, class_logit
from dreamkit.render import render

pytestmark = pytest.mark.slow

SPREAD = list(range(0, 64, 4))  # 16 channels spread over the layer
CLASSES = ["goldfish", "flamingo", "golden retriever", "monarch", "strawberry", "pineapple",
           "volcano", "school bus", "teapot", "jellyfish"]
MIN_CONTRAST = 0.03  # per-image pixel std; a dead render stays flat grey (std ~ 0.003)


@pytest.mark.parametrize(("layer", "channels", "size", "steps"), [
    ("inception3b", SPREAD, 48, 24),
    ("inception4c", SPREAD, 48, 24),
    ("inception5a", list(range(16)), 72, 48),  # dead channels wake later: 48 px/24 steps left
])                                             # 13 of 16 grey
def test_each_channel_is_driven_hardest_by_its_own_visualization(
    googlenet, layer, channels, size, steps
):
    result = render(googlenet, channel(layer, channels), size=size, steps=steps, lr=0.05)
    contrast = result.images.flatten(1).std(1)
    assert (contrast > MIN_CONTRAST).all(), f"flat images: {contrast.tolist()}"
    with torch.no_grad():
        acts = capture(googlenet, result.images, [layer])[layer][:, channels].mean((2, 3))
    by_channel = acts.T  # row: a channel; column: the visualization it is measured on
    own = by_channel.diagonal()
    others = by_channel.masked_fill(torch.eye(len(channels), dtype=torch.bool), -torch.inf)
    wins = (own > others.amax(1)).sum().item()
    assert wins >= 15, f"{layer}: only {wins}/16 channels peak on their own visualization"


def test_class_visualizations_are_classified_as_their_class(googlenet):
    indices = [class_index(name) for name in CLASSES]
    result = render(googlenet, class_logit(indices), size=128, steps=64, lr=0.05)
    assert (result.images.flatten(1).std(1) > MIN_CONTRAST).all()
    with torch.no_grad():
        top1 = googlenet(result.images).argmax(1).tolist()
    hits = sum(p == k for p, k in zip(top1, indices, strict=True))
    assert hits >= 9, f"top-1 {top1} for classes {indices}"
