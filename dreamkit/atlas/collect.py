"""A layer's activation vectors over a folder of photos, streamed into a fixed-size sample.

Every photo is seen as the examples pass sees it (`dreamkit.photos`); `positions` random
positions of its activation map become vectors (all-zero ones, which have no direction, are
dropped), each with the photo, its position and, for class atlases, its attribution to each
class's logit (gradient times activation, summed over channels, positive part). Every tenth
photo is held out (for the layout's trustworthiness). Both samples are bottom-k sketches over
random keys drawn per photo from the seed: a uniform sample without replacement whose memory is
fixed by its capacity, and shards of the folder merged in any order give the same sample.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from dreamkit.capture import capture_resolved
from dreamkit.errors import DreamkitError
from dreamkit.files import atomic_path
from dreamkit.models.base import Model
from dreamkit.photos import Photos, collate_photos

HELD_OUT_EVERY = 10  # photo i is held out when i % 10 == 9
BATCH = {"cpu": 4, "cuda": 32}  # photos per forward


@dataclass
class Sample:
    """Vectors (N, C) float32 with their keys (N,), photo numbers, positions y, x (N,) and
    attributions (N, K) to the K classes (K = 0 without classes)."""

    vectors: torch.Tensor
    keys: torch.Tensor
    photo: torch.Tensor
    y: torch.Tensor
    x: torch.Tensor
    attribution: torch.Tensor

    @classmethod
    def empty(cls, channels: int, classes: int) -> Sample:
        none = torch.zeros(0, dtype=torch.long)
        return cls(torch.zeros(0, channels), torch.zeros(0, dtype=torch.float64), none, none,
                   none, torch.zeros(0, classes))

    def __len__(self) -> int:
        return len(self.keys)

    def joined(self, others: Sequence[Sample], capacity: int) -> Sample:
        """The rows of this sample and `others`, the `capacity` with the smallest keys kept,
        in key order."""
        parts = {f.name: torch.cat([getattr(s, f.name) for s in (self, *others)])
                 for f in fields(self)}
        order = torch.argsort(parts["keys"], stable=True)[:capacity]
        return Sample(**{name: value[order] for name, value in parts.items()})


def save_samples(path: Path, samples: dict[str, Sample], metadata: dict[str, str]) -> None:
    """Write named samples to one safetensors file, atomically."""
    from safetensors.torch import save_file

    tensors = {f"{name}.{f.name}": getattr(sample, f.name).contiguous()
               for name, sample in samples.items() for f in fields(Sample)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def read_samples(path: Path) -> tuple[dict[str, Sample], dict[str, str]]:
    """The named samples of a file `save_samples` wrote, and its metadata."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        names = {key.split(".")[0] for key in f.keys()}
        return {name: Sample(**{x.name: f.get_tensor(f"{name}.{x.name}")
                                for x in fields(Sample)}) for name in names}, f.metadata()


class Sketch:
    """A bottom-k sketch: rows are added in any number, the `capacity` with the smallest keys
    are kept (compacted once twice the capacity has come in, so memory stays bounded)."""

    def __init__(self, capacity: int, channels: int, classes: int):
        self.capacity = capacity
        self.kept = Sample.empty(channels, classes)
        self.waiting: list[Sample] = []

    def add(self, rows: Sample) -> None:
        self.waiting.append(rows)
        if sum(map(len, self.waiting)) >= self.capacity:
            self.result()

    def result(self) -> Sample:
        if self.waiting:
            self.kept, self.waiting = self.kept.joined(self.waiting, self.capacity), []
        return self.kept


def _attributions(net: Model, layer: str, images: torch.Tensor, acts: torch.Tensor,
                  classes: Sequence[int]) -> torch.Tensor:
    """(B, K, H, W): for each class, gradient of its logit times the activation, summed over
    channels, positive part."""
    acts = acts.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = net.logits_from(layer, acts, images)
        maps = []
        for i, c in enumerate(classes):
            (grad,) = torch.autograd.grad(logits[:, c].sum(), acts,
                                          retain_graph=i + 1 < len(classes))
            maps.append((grad * acts).sum(1).clamp_min(0).detach())
    return torch.stack(maps, 1).float()


def _rows(acts: torch.Tensor, attribution: torch.Tensor | None, photo: int, positions: int,
          generator: torch.Generator) -> Sample:
    """`positions` random positions of one photo's (C, H, W) map, all-zero vectors dropped."""
    channels, _, width = acts.shape
    vectors = acts.flatten(1).T  # (H * W, C)
    pick = torch.randperm(len(vectors), generator=generator)[:positions]
    keys = torch.rand(len(pick), generator=generator, dtype=torch.float64)
    keep = vectors[pick].norm(dim=1) > 0
    pick, keys = pick[keep], keys[keep]
    weights = (attribution.flatten(1).T[pick] if attribution is not None
               else torch.zeros(len(pick), 0))
    return Sample(vectors[pick].contiguous(), keys, torch.full((len(pick),), photo),
                  pick // width, pick % width, weights)


def collect(net: Model, paths: Sequence[Path], layer: str, *, first: int = 0,
            positions: int = 32, capacity: int = 50_000, held: int = 2000,
            classes: Sequence[int] = (), seed: int = 0,
            progress: Callable[[int], None] | None = None) -> tuple[Sample, Sample, int]:
    """One pass over `paths` (photo i is number `first + i`): the sample of the layer's
    vectors, the held-out sample, and how many photos could not be read."""
    info = net.layers.resolve(layer)
    if info.stride is None:
        raise DreamkitError(f"{info.name} has no spatial positions; an atlas maps a "
                            "convolutional layer")
    train = Sketch(capacity, info.channels, len(classes))
    kept = Sketch(held, info.channels, len(classes))
    loader = DataLoader(Photos(paths), batch_size=BATCH.get(net.device.type, BATCH["cuda"]),
                        num_workers=0, collate_fn=collate_photos)
    skipped = 0
    for images, index, bad in loader:
        skipped += bad
        if images is not None:
            images = images.to(net.device, net.dtype)
            with torch.no_grad():
                acts = capture_resolved(net, images, [layer])[layer]
            weights = _attributions(net, layer, images, acts, classes).cpu() if classes \
                else None
            acts = acts.float().cpu()
            for j, number in enumerate((index + first).tolist()):
                generator = torch.Generator().manual_seed(seed * 1_000_003 + number)
                rows = _rows(acts[j], None if weights is None else weights[j], number,
                             positions, generator)
                (kept if number % HELD_OUT_EVERY == HELD_OUT_EVERY - 1 else train).add(rows)
        if progress is not None:
            progress(len(index) + bad)
    return train.result(), kept.result(), skipped
