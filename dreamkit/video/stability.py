"""How much a dreamed video boils: temporal stability, dream strength and speed, per variant.

Temporal stability is the warp error of consecutive output frames: output t-1 moved by the
optical flow of the *input* frames (OpenCV DIS) is compared with output t, where that flow is
reliable (occlusions masked), as a mean absolute difference in 0-255 units. The same error of
the input video itself (flow is never perfect, light changes) is the floor; a variant's ratio
is its error over the input's (1 = as steady as the input). Dream strength is the objective's
gain over the input frame (for DeepDream, the layer's RMS activation: dreamed / input - 1),
reported relative to dreaming every frame alone. `video_stability` dreams the same frames
with each variant: independent (blend 0), blend (the older tools' plain blend of the previous
dream into the next frame at 0.5, no flow) and flow (the detail moved by the optical flow, at
the blend asked for), streaming, in memory, no files written.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from dreamkit.capture import capture_resolved
from dreamkit.models.base import Model
from dreamkit.settings import DEFAULT_MAX_PIXELS, DreamSettings, VideoSettings
from dreamkit.targets import objective_of
from dreamkit.video.coherence import Chain, to_tensor
from dreamkit.video.flow import flow_method, reliable, warp
from dreamkit.video.stream import read_frames, write_video

# independent dreams, the older tools' plain blend (at their usual 0.5), the optical flow
VARIANTS = {"independent": {"blend": 0.0}, "blend": {"flow": "none", "blend": 0.5}, "flow": {}}


class WarpError:
    """The running warp error of a stream of (input, output) frame pairs."""

    def __init__(self) -> None:
        self.flow = flow_method("dis")
        self.previous: tuple[np.ndarray, np.ndarray] | None = None
        self.errors: list[float] = []

    def add(self, frame: np.ndarray, output: np.ndarray) -> None:
        if self.previous is not None:
            before, made = self.previous
            backward, forward = self.flow(frame, before), self.flow(before, frame)
            mask = reliable(backward, forward)[..., None]
            moved = warp(made.astype(np.float32), backward)
            diff = np.abs(output.astype(np.float32) - moved) * mask
            self.errors.append(float(diff.sum() / max(3 * mask.sum(), 1)))
        self.previous = (frame, output)

    @property
    def mean(self) -> float:
        return float(np.mean(self.errors)) if self.errors else 0.0


def warp_error(pairs: Iterable[tuple[np.ndarray, np.ndarray]]) -> float:
    """The mean warp error of consecutive outputs of (input, output) uint8 frame pairs."""
    error = WarpError()
    for frame, output in pairs:
        error.add(frame, output)
    return error.mean


def _value(net: Model, objective, frame: np.ndarray) -> float:
    with torch.no_grad():
        x = to_tensor(frame)[None].to(net.device)
        return float(objective(capture_resolved(net, x, objective.needs))[0])


def video_stability(net: Model, source: str | Path, target=None,
                    settings: DreamSettings | None = None, video: VideoSettings | None = None,
                    *, variants: dict[str, dict] | None = None, model: str | None = None,
                    max_pixels: int = DEFAULT_MAX_PIXELS, progress: bool = False) -> dict:
    """The stability table of `source`'s frames (`video.frames`, at `settings.size`) dreamed
    with each of `variants` (name: changes to `video`; default: independent, blend, flow)."""
    from dreamkit.progress import tqdm
    from dreamkit.video.job import plan

    settings = settings or DreamSettings()
    video = video or VideoSettings()
    recipe, info = plan(net, source, None, target, settings, video, model, max_pixels)
    objective = objective_of(recipe.target, recipe.model)

    def frames():
        return read_frames(info.path, recipe.first, recipe.step, recipe.count, recipe.size)

    floor = warp_error((frame, frame) for _, frame in frames())
    table: dict = {"input": str(info.path), "frames": recipe.count,
                   "size": [recipe.size[1], recipe.size[0]], "model": recipe.model,
                   "target": [t.label() for t in recipe.target], "settings": settings.to_dict(),
                   "blend": video.blend, "input_warp_error": floor, "variants": {}}
    rows = table["variants"]
    for name, changes in (variants or VARIANTS).items():
        chain = Chain(net, objective, recipe.settings, video.replace(**changes))
        error, gains = WarpError(), []
        tic = time.perf_counter()
        for index, frame in tqdm(frames(), total=recipe.count, disable=not progress,
                                 desc=name, unit="frame", leave=False):
            dreamed = chain(index, frame)
            error.add(frame, dreamed)
            gains.append(_value(net, objective, dreamed) / _value(net, objective, frame) - 1)
        seconds = time.perf_counter() - tic
        rows[name] = {"changes": changes, "warp_error": error.mean,
                      "ratio": error.mean / floor if floor else None,
                      "gain": float(np.mean(gains)), "seconds": seconds,
                      "frames_per_second": recipe.count / seconds,
                      "flow_share": chain.seconds["flow"] / seconds}
    base = rows.get("independent", {}).get("gain")
    for row in rows.values():
        row["strength_vs_independent"] = row["gain"] / base if base else None
    return table


def pan_zoom_clip(photo: str | Path, output: str | Path, frames: int = 24,
                  size: tuple[int, int] = (136, 320), fps: float = 25.0) -> Path:
    """A synthetic camera move over a photo (a pan from left to right while zooming in by
    a quarter), written as an MP4 of `frames` frames of `size` (height, width)."""
    import torch.nn.functional as F

    from dreamkit.image_io import load_image

    image = load_image(photo)[None]
    h, w = size
    _, _, ph, pw = image.shape

    def frame(t: float) -> np.ndarray:
        zoom = 1 + 0.25 * t
        ch = min(ph, pw * h / w) / zoom  # crop height, the output's aspect ratio
        cw = ch * w / h
        top = (ph - ch) / 2
        left = (pw - cw) * (0.2 + 0.6 * t)
        ys = torch.linspace(top, top + ch, h) / (ph - 1) * 2 - 1
        xs = torch.linspace(left, left + cw, w) / (pw - 1) * 2 - 1
        grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1)[None]
        crop = F.grid_sample(image, grid, mode="bilinear", align_corners=True)[0]
        return (crop.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()

    made = (frame(i / max(frames - 1, 1)) for i in range(frames))
    return write_video(made, Path(output), size, fps)
