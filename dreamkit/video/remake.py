"""Re-make one frame of a dreamed video from the record it carries.

A frame depends on the frame before it (its dream detail is carried over), so re-making frame
t needs the dream of frame t-1: give it (`previous`: the PNG kept in `OUT.parts/` with
`keep_frames`, and the frame comes out exactly the same), or it is read from the video itself
(H.264 rounding makes the result differ by a little). Frame 0, a frame of a video dreamed
with `blend` 0, and the first frame of a torchrun segment (re-made from its warm-up) need
nothing else.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dreamkit.errors import DreamkitError
from dreamkit.files import file_sha256
from dreamkit.models.base import Model
from dreamkit.targets import objective_of
from dreamkit.video.coherence import Chain, to_tensor
from dreamkit.video.record import read_video_record
from dreamkit.video.stream import read_frames


def remake_frame(video: str | Path, position: int, net: Model, *,
                 source: str | Path | None = None,
                 previous: str | Path | np.ndarray | None = None) -> torch.Tensor:
    """Frame `position` (from 0) of the dreamed `video`, made again with `net` from its
    record: (3, H, W) float in [0, 1]. `source`: the input video if it has moved (checked
    against its SHA-256); `previous`: the dream of frame `position - 1` (a PNG path or an
    (H, W, 3) uint8 array), else read from `video`."""
    from dreamkit.video.job import read_png

    path = Path(video)
    record = read_video_record(path)
    recipe = record.recipe
    if not isinstance(position, int) or not 0 <= position < recipe.count:
        raise DreamkitError(f"{path}: frame {position} is not one of its {recipe.count} frames "
                            f"(0 to {recipe.count - 1})")
    if record.weights not in ("random", net.weights_sha256()):
        raise DreamkitError(f"{path}: made with other weights of {recipe.model} (SHA-256 "
                            "differs)")
    input_path = Path(source or recipe.input.path)
    if file_sha256(input_path, "video") != recipe.input.sha256:
        raise DreamkitError(f"{input_path}: not the video {path.name} was made from (SHA-256 "
                            "differs)")
    chain = Chain(net, objective_of(recipe.target, recipe.model), recipe.settings,
                  recipe.video)
    video_settings = recipe.video
    before = None
    if position > 0 and position in record.segments:  # a segment's start: its warm-up
        begin = max(0, position - video_settings.warmup)
    elif position == 0 or video_settings.blend == 0:
        begin = position
    else:
        begin = position - 1
        if previous is None:
            [(_, before)] = list(read_frames(path, position - 1, 1, 1, recipe.size))
        elif isinstance(previous, np.ndarray):
            before = previous
        else:
            before = read_png(Path(previous))
        if before.shape != (*recipe.size, 3) or before.dtype != np.uint8:
            raise DreamkitError(f"previous must be a {recipe.size[1]}x{recipe.size[0]} RGB "
                                "uint8 frame")
    made = None
    frames = read_frames(input_path, recipe.index(begin), recipe.step, position - begin + 1,
                         recipe.size)
    for at, (index, frame) in enumerate(frames, start=begin):
        if before is not None and at < position:  # the given dream of the frame before
            chain.previous = (frame, before)
            continue
        made = chain(index, frame)
    assert made is not None
    return to_tensor(made)
