"""The discussion's own test: two objects in one image.

For pairs of photos x, y whose clean top-1 classes are a and b: is the top class of a mix one
of the pair, and are both in its top 5? The mixes: a 50/50 blend (1/2 x + 1/2 y), a
side-by-side collage (the centre halves of x and y), and the blend done at each hidden layer
(half of each photo's activations, decoded to the logits by the rest of the network). A linear
network's answer is exact and is reported beside each: for the blend, the mean of the two
photos' logits; for the collage, g(L) + g(R) - g(M), where L and R hold one photo's half each
beside the mean image's half and M holds the mean's halves only (for an affine g that is
g(collage) exactly).
"""

from __future__ import annotations

import torch

from dreamkit.linearity.probes import Run, in_batches

TOP = 5


def _scores(logits: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per pair: top-1 is one of the pair (0/1), and both are in the top 5 (0/1)."""
    top1 = logits.argmax(1)
    top = logits.topk(min(TOP, logits.shape[1]), dim=1).indices
    both = (top == a[:, None]).any(1) & (top == b[:, None]).any(1)
    return {"top-1 in the pair": ((top1 == a) | (top1 == b)).float(),
            "both in the top 5": both.float()}


def _halves(photos: torch.Tensor) -> torch.Tensor:
    """The centre half (in width) of each photo."""
    width = photos.shape[-1]
    return photos[..., width // 4: width // 4 + width // 2]


def _mean_over(found: list[dict]) -> dict:
    """Per photo, the mean over its partners of each score (nested dicts of (n,) tensors)."""
    first = found[0]
    if isinstance(first, torch.Tensor):
        return torch.stack(found).mean(0)  # type: ignore[return-value]
    return {key: _mean_over([f[key] for f in found]) for key in first}


def pixel_mixes(logits_of: Run, photos: torch.Tensor, logits: torch.Tensor,
                partners: torch.Tensor, batch: int) -> dict[tuple[str, str], dict]:
    """{(mix, "network" | "linear network"): {score: (n,)}} for the blend and the collage,
    per photo the mean over its partners (m, n)."""
    return _mean_over([_pixel_mixes(logits_of, photos, logits, p, batch) for p in partners])


def _pixel_mixes(logits_of: Run, photos: torch.Tensor, logits: torch.Tensor,
                 partner: torch.Tensor, batch: int) -> dict[tuple[str, str], dict]:
    a, b = logits.argmax(1), logits.argmax(1)[partner]
    blend = in_batches(logits_of, 0.5 * photos + 0.5 * photos[partner], batch)["logits"]
    halves = _halves(photos)
    mean = halves.mean(0, keepdim=True).expand_as(halves)
    pieces = {
        "collage": torch.cat([halves, halves[partner]], -1),
        "left": torch.cat([halves, mean], -1),
        "right": torch.cat([mean, halves[partner]], -1),
        "mean": torch.cat([mean[:1], mean[:1]], -1),
    }
    got = {name: in_batches(logits_of, images, batch)["logits"]
           for name, images in pieces.items()}
    linear_collage = got["left"] + got["right"] - got["mean"]
    return {
        ("blend", "network"): _scores(blend, a, b),
        ("blend", "linear network"): _scores(0.5 * logits + 0.5 * logits[partner], a, b),
        ("collage", "network"): _scores(got["collage"], a, b),
        ("collage", "linear network"): _scores(linear_collage, a, b),
    }


def hidden_blend(decode: Run, acts: torch.Tensor, logits: torch.Tensor,
                 partners: torch.Tensor, batch: int) -> dict[str, torch.Tensor]:
    """Scores of the 50/50 blend of two photos' activations at a hidden layer, decoded (per
    photo, the mean over its partners)."""
    found = []
    for partner in partners:
        a, b = logits.argmax(1), logits.argmax(1)[partner]
        mixed = in_batches(decode, 0.5 * acts + 0.5 * acts[partner], batch)["logits"]
        found.append(_scores(mixed, a, b))
    return _mean_over(found)
