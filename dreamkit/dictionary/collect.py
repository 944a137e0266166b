"""Activation vectors of a layer over a folder of photos, streamed into fixed-size samples.

Each photo is seen as `CROPS` views (its centred square, and zoomed-in random crops of it, all
at 224 px), and `positions` random positions of each view's activation map become vectors.
Every tenth photo is held out: its views go to the held-out sample as units (their vectors,
plus the view's pooled activation at a later layer, for the monosemanticity measure), the
others' vectors to the training sample. Both samples are bottom-k sketches over random keys
drawn per photo (a uniform sample without replacement, whatever the order or batching of the
photos), so memory is fixed by their capacities, not by the folder.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from dreamkit.capture import capture_resolved
from dreamkit.directions import random_crops
from dreamkit.errors import DreamkitError
from dreamkit.models.base import Model
from dreamkit.photos import Photos, collate_photos

SIDE = 224  # the network sees every view at this size
CROPS = 2  # views per photo: the centred square and a zoomed-in random crop
HELD_OUT_EVERY = 10  # photo i is held out when i % 10 == 9


@dataclass
class Sketch:
    """The `capacity` rows with the smallest keys seen so far (a uniform random sample)."""

    capacity: int
    rows: torch.Tensor | None = None
    keys: torch.Tensor | None = None

    def add(self, rows: torch.Tensor, keys: torch.Tensor) -> None:
        if self.rows is not None:
            rows, keys = torch.cat([self.rows, rows]), torch.cat([self.keys, keys])
        if len(keys) > self.capacity:
            keep = torch.sort(torch.topk(keys, self.capacity, largest=False).indices).values
            rows, keys = rows[keep], keys[keep]
        self.rows, self.keys = rows, keys

    def ordered(self) -> torch.Tensor:
        """The rows in key order (independent of the order they came in)."""
        return self.rows[torch.argsort(self.keys)]


@dataclass
class Samples:
    """Training vectors (N, C); held-out vectors (M, C) with the view each came from, and the
    held-out views' pooled activations at the later layer (V, D)."""

    train: torch.Tensor
    held: torch.Tensor
    held_view: torch.Tensor
    later: torch.Tensor
    photos: int
    skipped: int


def _views(image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    whole = torch.nn.functional.interpolate(image[None], size=(SIDE, SIDE), mode="bilinear",
                                            antialias=True, align_corners=False)
    zoomed = random_crops(image, CROPS - 1, SIDE, generator, scale=(0.4, 0.8))
    return torch.cat([whole, zoomed]).clamp(0, 1)


def collect(net: Model, paths: Sequence[Path], layer: str, later: str, *, positions: int = 64,
            capacity: int = 65536, held_views: int = 256, seed: int = 0,
            progress: Callable[[int], None] | None = None) -> Samples:
    """Stream `paths` through `net` to `layer` (and `later` for held-out photos)."""
    train, held, held_later = Sketch(capacity), Sketch(held_views), Sketch(held_views)
    loader = DataLoader(Photos(paths, side=256), batch_size=4, num_workers=0,
                        collate_fn=collate_photos)
    skipped = 0
    for images, index, bad in loader:
        skipped += bad
        for image, i in zip([] if images is None else images, index.tolist(), strict=False):
            generator = torch.Generator().manual_seed(seed * 1_000_003 + i)
            views = _views(image, generator).to(net.device, net.dtype)
            is_held = i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1
            with torch.no_grad():
                acts = capture_resolved(net, views, [layer, later] if is_held else [layer])
            act = acts[layer].float().cpu()
            if act.dim() != 4:
                raise DreamkitError(f"{layer} has no spatial positions")
            vectors = act.flatten(2).transpose(1, 2)  # (views, positions, C)
            count = min(positions, vectors.shape[1])
            pick = torch.stack([torch.randperm(vectors.shape[1], generator=generator)[:count]
                                for _ in range(len(views))])
            chosen = vectors.gather(1, pick[..., None].expand(-1, -1, vectors.shape[2]))
            keys = torch.rand(len(views), generator=generator)
            if is_held:
                held.add(chosen, keys)
                pooled = acts[later].float().cpu()
                held_later.add(pooled.flatten(2).mean(2) if pooled.dim() == 4 else pooled, keys)
            else:
                train.add(chosen.reshape(-1, vectors.shape[2]),
                          torch.rand(chosen.shape[0] * count, generator=generator))
        if progress is not None:
            progress(len(index) + bad)
    if train.rows is None or held.rows is None:
        raise DreamkitError(f"too few readable photos ({len(paths) - skipped}): at least "
                            f"{HELD_OUT_EVERY} are needed, one in {HELD_OUT_EVERY} held out")
    held_rows = held.ordered()  # (V, P, C)
    return Samples(train.ordered(), held_rows.flatten(0, 1),
                   torch.arange(len(held_rows)).repeat_interleave(held_rows.shape[1]),
                   held_later.ordered(), len(paths) - skipped, skipped)
