"""Activation vectors of a layer over a folder of photos, streamed into fixed-size samples.

Each photo is seen as `views` views (its centred square, and zoomed-in random crops of it, all
at 224 px), and `positions` random positions of each view's activation map become vectors; the
views of a batch of photos go through the network together (`examples.BATCH` photos: a few on
a CPU, more on a GPU).

Every tenth photo is held out: its views go to the held-out sample as units (their vectors,
plus the view's pooled activation at a later layer, for the monosemanticity measure), the
others' vectors to the training sample. Both samples are bottom-k sketches over random keys
drawn per photo (a uniform sample without replacement, whatever the order or batching of the
photos), so memory is fixed by their capacities, not by the folder.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from dreamkit.capture import capture_resolved
from dreamkit.directions import random_crops
from dreamkit.errors import DreamkitError
from dreamkit.examples import BATCH
from dreamkit.models.base import Model
from dreamkit.photos import Photos, collate_photos

SIDE = 224  # the network sees every view at this size
VIEWS = 2  # views per photo by default: the centred square and a zoomed-in random crop
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


def _views(image: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    whole = torch.nn.functional.interpolate(image[None], size=(SIDE, SIDE), mode="bilinear",
                                            antialias=True, align_corners=False)
    if count == 1:
        return whole.clamp(0, 1)
    zoomed = random_crops(image, count - 1, SIDE, generator, scale=(0.4, 0.8))
    return torch.cat([whole, zoomed]).clamp(0, 1)


def _forward(net: Model, views: list[torch.Tensor], layers: list[str]) -> dict[str, torch.Tensor]:
    """The photos' views (a list of (V, 3, S, S)) through `net`, twice a batch of photos at a
    time, back on the CPU."""
    if not views:
        return {}
    step = 2 * BATCH.get(net.device.type, BATCH["cuda"])
    parts = []
    for batch in torch.cat(views).split(step):
        with torch.no_grad():
            acts = capture_resolved(net, batch.to(net.device, net.dtype), layers)
        parts.append({name: act.float().cpu() for name, act in acts.items()})
    return {name: torch.cat([part[name] for part in parts]) for name in layers}


def later_layer(net, layer: str) -> str:
    """The deepest spatial layer of the model's table (the logits when `layer` is it)."""
    table = net.layers
    deeper = [name for name in table.names[table.index(layer) + 1:]
              if name != table.logits and net.is_cut(name)]
    return deeper[-1] if deeper else table.logits


def collect(net: Model, paths: Sequence[Path], layer: str, later: str, *, positions: int = 64,
            capacity: int = 65536, held_views: int = 256, views: int = VIEWS, seed: int = 0,
            progress: Callable[[int], None] | None = None) -> Samples:
    """Stream `paths` through `net` to `layer` (and `later` for held-out photos)."""
    train, held, held_later = Sketch(capacity), Sketch(held_views), Sketch(held_views)
    workers = 1 if net.device.type != "cpu" or torch.get_num_threads() < (os.cpu_count() or 1) \
        else 0  # a loader process only where a core is free for it
    loader = DataLoader(Photos(paths, side=256), num_workers=workers, collate_fn=collate_photos,
                        batch_size=BATCH.get(net.device.type, BATCH["cuda"]))
    skipped = 0
    for images, index, bad in loader:
        skipped += bad
        photos = []  # (its generator, its views, whether held out) of each photo
        for image, i in zip([] if images is None else images, index.tolist(), strict=False):
            generator = torch.Generator().manual_seed(seed * 1_000_003 + i)
            photos.append((generator, _views(image, views, generator),
                           i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1))
        acts = {is_held: _forward(net, [p[1] for p in photos if p[2] == is_held],
                                  [layer, later] if is_held else [layer])
                for is_held in (False, True)}
        start = {False: 0, True: 0}
        for generator, image_views, is_held in photos:
            first, count_views = start[is_held], len(image_views)
            start[is_held] += count_views
            act = acts[is_held][layer][first:first + count_views]
            if act.dim() != 4:
                raise DreamkitError(f"{layer} has no spatial positions")
            vectors = act.flatten(2).transpose(1, 2)  # (views, positions, C)
            count = min(positions, vectors.shape[1])
            pick = torch.stack([torch.randperm(vectors.shape[1], generator=generator)[:count]
                                for _ in range(count_views)])
            chosen = vectors.gather(1, pick[..., None].expand(-1, -1, vectors.shape[2]))
            keys = torch.rand(count_views, generator=generator)
            if is_held:
                held.add(chosen, keys)
                pooled = acts[True][later][first:first + count_views]
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
