"""Zoom videos: dream, zoom into the centre, dream again; frames written as GIF or MP4.

Frame i is the dream (seed `seed + i`) of frame i-1 zoomed by `zoom` about its centre, so the
network keeps inventing detail as the camera flies in. GIFs are written with imageio's Pillow
plugin; MP4 needs imageio-ffmpeg (the optional `video` extra).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator, Sequence
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
from kornia.geometry.transform import scale

from dreamkit.dream import DreamSettings, dream
from dreamkit.errors import DreamkitError
from dreamkit.files import atomic_path, ctrl_c_deferred
from dreamkit.image_io import to_uint8
from dreamkit.models.base import Model
from dreamkit.objectives import Objective

VIDEO_FORMATS = (".gif", ".mp4")


def zoom_in(image: torch.Tensor, factor: float) -> torch.Tensor:
    """Magnify a (3, H, W) image by `factor` about its centre, keeping its size."""
    if not 1.0 <= factor <= 2.0:
        raise DreamkitError(f"zoom must be a number from 1 to 2, not {factor}")
    zoomed = scale(image[None], torch.tensor([factor], dtype=image.dtype, device=image.device),
                   padding_mode="border")
    return zoomed[0].clamp(0.0, 1.0)


def zoom_frames(
    net: Model,
    image: torch.Tensor,
    objective: Objective | str,
    settings: DreamSettings,
    frames: int,
    zoom: float = 1.05,
) -> Iterator[torch.Tensor]:
    """Yield `frames` dreamed frames (3, H, W), each from the zoomed previous one."""
    if frames < 1:
        raise DreamkitError(f"frames must be at least 1, not {frames}")
    zoom_in(image[:, :1, :1], zoom)  # refuse a bad zoom before the first dream
    frame = image
    for i in range(frames):
        frame = dream(net, frame, objective, settings.replace(seed=settings.seed + i))
        yield frame
        frame = zoom_in(frame, zoom)


def check_video_path(path: Path) -> None:
    """Refuse an unknown extension, or .mp4 without imageio-ffmpeg, before any work is done."""
    suffix = path.suffix.lower()
    if suffix not in VIDEO_FORMATS:
        raise DreamkitError(f"{path}: cannot write a video with {suffix or 'no extension'!r}; "
                            "use .gif or .mp4")
    if suffix == ".mp4" and importlib.util.find_spec("imageio_ffmpeg") is None:
        raise DreamkitError(f"{path}: writing MP4 needs imageio-ffmpeg: pip install "
                            "'dreamkit[video]' (or write a .gif)")


def write_video(frames: Sequence[torch.Tensor], path: str | Path, fps: float = 10.0) -> Path:
    """Write frames (3, H, W) in [0, 1] as an endlessly looping GIF or an MP4, atomically."""
    path = Path(path)
    check_video_path(path)
    if not frames or not 0 < fps <= 120:
        raise DreamkitError(f"{path}: need at least one frame and a positive fps")
    stack = np.stack([to_uint8(frame) for frame in frames])
    with ctrl_c_deferred(), atomic_path(path) as tmp:
        if path.suffix.lower() == ".gif":
            iio.imwrite(tmp, stack, extension=".gif", plugin="pillow",
                        duration=round(1000 / fps), loop=0)
        else:
            iio.imwrite(tmp, stack, extension=".mp4", plugin="FFMPEG", fps=fps)
    return path
