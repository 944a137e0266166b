"""Photos as networks see them in the dataset passes (microscope examples, dictionary samples):
short side resized, centre crop, read by a background loader that skips and counts unreadable
files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

SIDE = 224  # photos are seen at this size (short side resized, centre crop)


def view(image: torch.Tensor, side: int = SIDE) -> torch.Tensor:
    """The photo as the examples pass sees it: short side `side` (antialiased bilinear),
    centre crop."""
    height, width = image.shape[-2:]
    scale = side / min(height, width)
    size = max(side, round(height * scale)), max(side, round(width * scale))
    resized = F.interpolate(image[None].float(), size=size, mode="bilinear", antialias=True,
                            align_corners=False)[0]
    top, left = (size[0] - side) // 2, (size[1] - side) // 2
    return resized[:, top:top + side, left:left + side].clamp(0, 1)


class Photos(Dataset):
    """The photos `paths[i]` as views; an unreadable one gives (None, i)."""

    def __init__(self, paths: Sequence[Path], side: int = SIDE):
        self.paths, self.side = list(paths), side

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        from dreamkit.errors import DreamkitError
        from dreamkit.image_io import load_image

        try:
            return view(load_image(self.paths[i]), self.side), i
        except DreamkitError:
            return None, i


def collate_photos(items):
    good = [(image, i) for image, i in items if image is not None]
    images = torch.stack([image for image, _ in good]) if good else None
    return images, torch.tensor([i for _, i in good], dtype=torch.long), len(items) - len(good)
