"""Dataset examples (for the microscope, atlases and dictionaries): the photos of a folder that
excite each channel most, in one streaming pass.

Photos are read, checked and batched by a background loader (unreadable files are skipped and
counted), run through the network without gradients as far as the deepest chosen layer, and
each channel keeps only its top k (value, photo, position) so far: memory does not grow with
the folder. Ties go to the earlier photo, so shards of the folder merged in any order give the
same examples as one pass. `crops` then cuts each example around its most active position,
with a size that follows the layer's effective receptive field, beside a heat map of the
channel over the crop.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from dreamkit.capture import capture_resolved
from dreamkit.models.base import Model
from dreamkit.photos import SIDE, Photos, collate_photos


@dataclass
class TopK:
    """The best `k` (value, photo, y, x) of each of a layer's `channels`, best first."""

    channels: list[int]
    k: int
    values: torch.Tensor  # (C, k) float64, -inf where empty
    photos: torch.Tensor  # (C, k) long, -1 where empty
    y: torch.Tensor
    x: torch.Tensor

    @classmethod
    def empty(cls, channels: Sequence[int], k: int) -> TopK:
        shape = (len(channels), k)
        return cls(list(channels), k, torch.full(shape, float("-inf"), dtype=torch.float64),
                   torch.full(shape, -1, dtype=torch.long), torch.zeros(shape, dtype=torch.long),
                   torch.zeros(shape, dtype=torch.long))

    def add(self, values: torch.Tensor, photos: torch.Tensor, y: torch.Tensor,
            x: torch.Tensor) -> None:
        """Merge candidates (C, m); keep the best k, ties to the earlier photo."""
        all_values = torch.cat([self.values, values.double()], 1)
        all_photos = torch.cat([self.photos, photos], 1)
        all_y, all_x = torch.cat([self.y, y], 1), torch.cat([self.x, x], 1)
        order = torch.sort(all_photos.masked_fill(all_photos < 0, 2**62), dim=1,
                           stable=True).indices
        values_sorted = all_values.gather(1, order)
        order = order.gather(1, torch.sort(values_sorted, dim=1, descending=True,
                                           stable=True).indices)[:, :self.k]
        self.values, self.photos = all_values.gather(1, order), all_photos.gather(1, order)
        self.y, self.x = all_y.gather(1, order), all_x.gather(1, order)

    def merge(self, other: TopK) -> None:
        self.add(other.values, other.photos, other.y, other.x)

    def select(self, channels: Sequence[int]) -> TopK:
        """The rows of `channels` (each one this holds), in that order."""
        where = {c: i for i, c in enumerate(self.channels)}
        rows = torch.tensor([where[c] for c in channels], dtype=torch.long)
        return TopK(list(channels), self.k, self.values[rows], self.photos[rows], self.y[rows],
                    self.x[rows])

    def to_dict(self) -> dict:
        return {"channels": self.channels, "k": self.k, "values": self.values.tolist(),
                "photos": self.photos.tolist(), "y": self.y.tolist(), "x": self.x.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> TopK:
        return cls(list(data["channels"]), int(data["k"]),
                   torch.tensor(data["values"], dtype=torch.float64),
                   torch.tensor(data["photos"], dtype=torch.long),
                   torch.tensor(data["y"], dtype=torch.long), torch.tensor(data["x"],
                                                                            dtype=torch.long))


BATCH = {"cpu": 4, "cuda": 32}  # photos per forward: a CPU gains nothing from more


def stream(net: Model, paths: Sequence[Path], layers: dict[str, list[int]], k: int,
           batch: int | None = None, workers: int | None = None, first: int = 0,
           progress: Callable[[int], None] | None = None,
           transforms: dict[str, Callable[[torch.Tensor], torch.Tensor]] | None = None,
           observe: Callable[[str, torch.Tensor], None] | None = None
           ) -> tuple[dict[str, TopK], int]:
    """One pass over `paths` (photo i is number `first + i`): {layer: TopK} for the chosen
    channels of each layer, and how many photos could not be read. Photos are read by a
    background loader process when a core is free for it (`workers` None), else in turn.

    A layer of `transforms` has its activations (B, C, H, W) mapped first, position by
    position, to other units (B, K, H, W), such as a dictionary's feature codes: its
    `layers` entry then names those units. `observe(layer, values)` sees every batch's values
    (B, chosen, H, W) of each layer."""
    transforms = transforms or {}
    found = {layer: TopK.empty(channels, k) for layer, channels in layers.items()}
    batch = batch or BATCH.get(net.device.type, BATCH["cuda"])
    if workers is None:  # a loader process only where a core is free for it
        spare = net.device.type != "cpu" or torch.get_num_threads() < (os.cpu_count() or 1)
        workers = 1 if spare else 0
    loader = DataLoader(Photos(paths), batch_size=batch, num_workers=workers,
                        collate_fn=collate_photos, persistent_workers=False)
    skipped = 0
    for images, index, bad in loader:
        skipped += bad
        if images is not None:
            images = images.to(net.device, net.dtype).contiguous(
                memory_format=torch.channels_last)
            with torch.no_grad():
                acts = capture_resolved(net, images, list(layers))
            for layer, top in found.items():
                act = acts[layer]
                if layer in transforms:
                    act = transforms[layer](act.float())
                act = act[:, top.channels].float()  # (B, C, H, W)
                if observe is not None:
                    observe(layer, act)
                flat = act.flatten(2)
                best, where = flat.max(2)  # (B, C)
                width = act.shape[-1]
                top.add(best.T.cpu(), (index + first)[None].expand(len(top.channels), -1),
                        (where // width).T.cpu(), (where % width).T.cpu())
        if progress is not None:
            progress(len(index) + bad)
    return found, skipped


MASS = 0.8  # share of the gradient's mass an example crop holds


def receptive_field(net: Model, layer: str, side: int = SIDE) -> tuple[int, int]:
    """The side (height, width) in pixels of the centred square that holds 80% of the
    gradient of the layer's centre position (the effective receptive field, averaged over a
    few random inputs): the crop size of an example."""
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, side, side, generator=generator).to(net.device, net.dtype)
    x.requires_grad_(True)
    act = capture_resolved(net, x, [layer])[layer]
    h, w = act.shape[-2:]
    act[:, :, h // 2, w // 2].sum().backward()
    strength = x.grad.abs().sum((0, 1)).double()
    total = float(strength.sum())
    if total == 0:
        return side, side
    centre_y, centre_x = int((h // 2 + 0.5) * side / h), int((w // 2 + 0.5) * side / w)
    for half in range(4, side, 4):
        box = strength[max(0, centre_y - half):centre_y + half,
                       max(0, centre_x - half):centre_x + half]
        if float(box.sum()) >= MASS * total:
            return min(side, 2 * half), min(side, 2 * half)
    return side, side


def crop_box(y: int, x: int, grid: tuple[int, int], field: tuple[int, int], side: int = SIDE
             ) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the crop around activation position (y, x) of a grid."""
    centre_y = (y + 0.5) * side / grid[0]
    centre_x = (x + 0.5) * side / grid[1]
    height, width = min(field[0], side), min(field[1], side)
    top = int(round(min(max(centre_y - height / 2, 0), side - height)))
    left = int(round(min(max(centre_x - width / 2, 0), side - width)))
    return top, left, height, width


def heat(act: torch.Tensor, side: int, top_value: float) -> torch.Tensor:
    """A channel's activation map (h, w) as a (3, side, side) red heat map in [0, 1]."""
    level = (act.float() / max(top_value, 1e-12)).clamp(0, 1)[None, None]
    level = F.interpolate(level, size=(side, side), mode="bilinear", align_corners=False)[0]
    return torch.cat([level, 0.25 * level, 0.1 * level])


def overlay(photo: torch.Tensor, heat_map: torch.Tensor) -> torch.Tensor:
    """The photo dimmed, with the heat map on top."""
    alpha = heat_map[:1]
    return (photo * (1 - 0.6 * alpha) + heat_map * 0.6).clamp(0, 1)
