"""Do a dictionary's feature directions add more linearly than neurons? The seeds' question,
as a latent probe at the dictionary's layer.

For pairs of unit directions a, b of one kind, each added with the same norm s at every
position of the layer's activations h of every photo, additivity compares the logits g(h +
sa + sb) with g(h + sa) + g(h + sb) - g(h) (per photo the mean over the pairs; the yardstick
and the relative denominator are the latent probes'). The kinds: the dictionary's features
most often active on the photos (their decoder atoms), the neurons most often active (unit
vectors of the channel basis) and random unit directions, `PAIRS` pairs each, the 2 x PAIRS
directions of a kind paired in order (1st with 2nd, ...). s is a feature's typical size in
the layer: the median of the features' codes where active over the photos' positions, times
the dictionary's scale (its decoder atoms are unit vectors).
"""

from __future__ import annotations

import torch

from dreamkit.capture import capture_resolved
from dreamkit.directions import Directions
from dreamkit.linearity.probes import Prober, averaged, in_batches, yardstick
from dreamkit.models.base import Model

PAIRS = 8  # pairs of directions per kind
KINDS = ("dictionary features", "neurons", "random directions")


def _most_active(values: torch.Tensor, count: int) -> torch.Tensor:
    """The `count` units (dim 1 of (n, U, H, W)) most often above zero, ties to the lower."""
    on = (values > 0).sum((0, 2, 3))
    return torch.argsort(-on, stable=True)[:count]


def direction_sets(dictionary: Directions, h: torch.Tensor, seed: int = 0
                   ) -> dict[str, torch.Tensor]:
    """The unit directions (2 PAIRS, C) of each kind for activations `h` (n, C, H, W)."""
    count = min(2 * PAIRS, len(dictionary.vectors), h.shape[1]) // 2 * 2
    atoms = dictionary.vectors[_most_active(dictionary.codes(h), count)]
    noise = torch.randn(count, h.shape[1], generator=torch.Generator().manual_seed(seed))
    return {"dictionary features": atoms / atoms.norm(dim=1, keepdim=True),
            "neurons": torch.eye(h.shape[1])[_most_active(h, count)],
            "random directions": noise / noise.norm(dim=1, keepdim=True)}


def step_size(dictionary: Directions, h: torch.Tensor) -> float:
    """A feature's typical size in the layer's units for activations `h` (n, C, H, W)."""
    codes = dictionary.codes(h)
    return float(codes[codes > 0].median()) * float(dictionary.extras["scale"])


def additivity(net: Model, layer: str, photos: torch.Tensor, dictionary: Directions,
               batch: int = 16, seed: int = 0) -> tuple[dict, dict, float]:
    """({kind: {"logits" | "logits (own class)": Probe}}, their yardsticks, s)."""
    with torch.no_grad():
        h = capture_resolved(net, photos.to(net.device, net.dtype), [layer])[layer]
    h = h.to(torch.promote_types(h.dtype, torch.float32)).cpu()

    def decode(z: torch.Tensor) -> dict[str, torch.Tensor]:
        images = photos[:1].expand(len(z), -1, -1, -1).to(net.device, net.dtype)
        with torch.no_grad():
            logits = net.logits_from(layer, z.to(net.device, net.dtype), images)
        return {"logits": logits.to(torch.promote_types(logits.dtype, torch.float32)).cpu()}

    base = in_batches(decode, h, batch)["logits"]
    classes = base.argmax(1)
    prober = Prober(decode, batch, logits=["logits"], classes=classes)
    size = step_size(dictionary, h)
    found = {}
    for kind, rows in direction_sets(dictionary, h, seed).items():
        steps = size * rows[:, :, None, None]  # (2 PAIRS, C, 1, 1)
        single = [in_batches(decode, h + step, batch)["logits"] for step in steps]
        found[kind] = averaged([prober.score(
            h + steps[i] + steps[i + 1],
            lambda _, i=i, s=single: s[i] + s[i + 1] - base, lambda _: base)
            for i in range(0, len(steps), 2)])
    yards = {"logits": yardstick(base), "logits (own class)": yardstick(base, classes)}
    return found, yards, size
