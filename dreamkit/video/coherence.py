"""Frame coherence: each frame starts from the previous frame's dream, moved with the scene.

The classic recipe: frame 0 is dreamed as a photo. For frame t, the optical flow between the
*input* frames t-1 and t (backward: where each pixel of t was in t-1) moves the previous
frame's dream detail (dreamed t-1 minus input t-1) into frame t's place; where the flow is
unreliable (occlusions, forward and backward flows that disagree, pixels that came from
outside the frame) the detail is dropped. Frame t's dream starts from input t + blend x that
masked, moved detail, so the dream keeps its eyes and dogs where the scene takes them; where
that detail was carried, only (1 - blend) of the new dream's detail is added (elsewhere all of
it), so the detail settles at the strength of one dream instead of growing, and changes by
about (1 - blend) from a frame to the next. `--flow none` is the older tools' plain blend:
(1 - blend) x input t + blend x dreamed t-1, dreamed in full; `--blend 0` dreams every frame
alone. Frame t uses seed + t (its input frame number), so a
frame's pixels do not depend on where a run started or which rank made it.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from dreamkit.dream import dream
from dreamkit.image_io import to_uint8
from dreamkit.models.base import Model
from dreamkit.objectives import Objective
from dreamkit.settings import MAX_SEED, DreamSettings, VideoSettings
from dreamkit.video.flow import flow_method, moved_detail


def to_tensor(frame: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 or float32 in [0, 1] -> (3, H, W) float32 tensor."""
    image = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)
    return image.float() / 255 if frame.dtype == np.uint8 else image.float()


class Chain:
    """Dreams a stream of frames, each from the previous one's dream (`previous`, the input
    and dreamed frames as uint8: what a resumed run reads back from its PNGs)."""

    def __init__(self, net: Model, objective: Objective, settings: DreamSettings,
                 video: VideoSettings) -> None:
        self.net, self.objective, self.video = net, objective, video
        self.settings = settings.replace(size=None)
        coherent = video.blend > 0 and video.flow != "none"
        self.flow = flow_method(video.flow) if coherent else None
        self.previous: tuple[np.ndarray, np.ndarray] | None = None
        self.seconds = {"flow": 0.0, "dream": 0.0}
        self.ran: dict = {}

    def start_of(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray | float]:
        """The image frame `frame`'s dream starts from, (H, W, 3) float32 in [0, 1], and the
        share of that dream's new detail to keep (1 - blend where the carried detail is
        reliable, 1 elsewhere)."""
        image = frame.astype(np.float32) / 255
        if self.previous is None or self.video.blend == 0:
            return image, 1.0
        before, dreamed = (x.astype(np.float32) / 255 for x in self.previous)
        blend = self.video.blend
        if self.flow is None:  # --flow none: the older tools' plain blend, a whole new dream
            return (1 - blend) * image + blend * dreamed, 1.0
        tic = time.perf_counter()
        moved, mask = moved_detail(dreamed - before, frame, self.previous[0], self.flow)
        self.seconds["flow"] += time.perf_counter() - tic
        carried = blend * mask[..., None]
        return np.clip(image + carried * moved, 0, 1), 1 - carried

    def __call__(self, index: int, frame: np.ndarray) -> np.ndarray:
        """Dream input frame number `index` (H, W, 3 uint8) -> the dreamed frame, uint8."""
        start, keep = self.start_of(frame)
        tic = time.perf_counter()
        seed = (self.settings.seed + index) % (MAX_SEED + 1)
        made = dream(self.net, to_tensor(start), self.objective,
                     self.settings.replace(seed=seed), ran=self.ran)
        if not isinstance(keep, float) or keep != 1:
            new = made.cpu().permute(1, 2, 0).numpy() - start
            made = to_tensor(np.clip(start + keep * new, 0, 1))
        dreamed = to_uint8(made)
        self.seconds["dream"] += time.perf_counter() - tic
        self.previous = (frame, dreamed)
        return dreamed
