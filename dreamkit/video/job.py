"""`dream_video`: a video dreamed frame by frame, resumably, on one process or torchrun's ranks.

Every check runs before any work (`plan`): the input is probed whole, the range, frame size,
output format and the layer's reach are checked, so a bad input leaves nothing behind. Frames
are then decoded as a stream, dreamed by a `Chain` and written atomically as PNGs to the work
folder `OUT.parts/` (with the recipe's key, so frames of another recipe are never mixed in). A
killed run resumes at the first missing frame, starting from the PNG before it: the same
frames as an uninterrupted run. Under torchrun the frames are cut into one contiguous segment
per rank; a segment's first frame starts from `warmup` frames dreamed just before it (not
written), so the joins do not jump; rank 0 encodes the video when every segment is done and
removes the work folder (unless `keep_frames`).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from dreamkit.distributed import Ranks, process_group, run_jobs
from dreamkit.errors import DreamkitError
from dreamkit.files import atomic_path, check_not_input, file_sha256
from dreamkit.models.base import Model
from dreamkit.progress import tqdm
from dreamkit.records import Photo, provenance
from dreamkit.settings import (
    DEFAULT_MAX_PIXELS,
    MAX_FRAMES,
    MAX_SIDE,
    PREVIEW_SIDE,
    DreamSettings,
    VideoSettings,
)
from dreamkit.targets import Target, objective_of
from dreamkit.video.coherence import Chain
from dreamkit.video.record import VideoRecipe, VideoRecord
from dreamkit.video.stream import VideoInfo, check_extension, probe, read_frames, write_video

Segment = tuple[int, int]  # output positions [start, end)


@dataclass(frozen=True)
class VideoResult:
    """What `dream_video` did: the file, its frames, those this process made now, the record
    and where the time went (seconds of flow and of dreaming on this process)."""

    path: Path
    frames: int
    made: int
    record: VideoRecord
    seconds: dict


def targets_of(net: Model, target, model: str) -> tuple[Target, ...]:
    """`target` as resolved terms: None (the model's classic layer), a layer name, a `Target`
    or a sequence of them."""
    if target is None or isinstance(target, str):
        terms: Sequence[Target] = (Target.layer_norm(target or net.layers.default),)
    elif isinstance(target, Target):
        terms = (target,)
    else:
        terms = tuple(target)
    if not terms or not all(isinstance(t, Target) for t in terms):
        raise DreamkitError("target must be a layer name, a Target or a list of Targets")
    return tuple(t.resolve(net.layers, model) for t in terms)


def plan(net: Model, source: str | Path, output: str | Path | None, target,
         settings: DreamSettings, video: VideoSettings, model: str | None = None,
         max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[VideoRecipe, VideoInfo]:
    """The recipe of a run, every check done (nothing is written; `output` None: frames
    dreamed in memory only)."""
    from dreamkit.dream import check_reach
    from dreamkit.precision import resolve_precision

    resolve_precision(settings.precision, net.device)  # fp16 on a CPU: refused now
    model = model or net.name
    terms = targets_of(net, target, model)
    first, last = video.span()
    if output is not None:
        check_extension(Path(output), 1)
    info = probe(source, max_pixels, last)
    if output is not None:
        check_not_input(output, [info.path], forceable=False)
    if first >= info.frames or (last is not None and last >= info.frames):
        raise DreamkitError(f"{info.path}: frames {video.frames} are past the end of the "
                            f"video, which has {info.frames} (0 to {info.frames - 1})")
    if last is None and info.frames > MAX_FRAMES:
        raise DreamkitError(f"{info.path}: more than {MAX_FRAMES:,} frames; dream a part of "
                            "it with --frames A-B")
    last = info.frames - 1 if last is None else last
    step = video.step()
    count = (last - first) // step + 1
    if output is not None:
        check_extension(Path(output), count)
    side = settings.size or max(info.width, info.height)
    if video.preview:
        side = min(side, PREVIEW_SIDE)
    if side > MAX_SIDE:
        raise DreamkitError(f"{info.path}: frames of {info.width}x{info.height} are more than "
                            f"{MAX_SIDE} pixels a side; make them smaller with --size PX")
    scale = side / max(info.width, info.height)
    size = tuple(max(2, 2 * round(n * scale / 2)) for n in (info.height, info.width))  # even
    check_reach(net, objective_of(terms, model), *size)
    if video.blend > 0 and video.flow != "none":
        from dreamkit.video.flow import flow_method

        flow_method(video.flow)
    fps = video.fps or info.fps / step
    photo = Photo(str(info.path), file_sha256(info.path, "video"))
    recipe = VideoRecipe(model, terms, settings, video, photo, first, step, count,
                         size, round(fps, 6))  # type: ignore[arg-type]
    return recipe, info


def segments(count: int, world: int) -> list[Segment]:
    """`count` frames cut into `world` contiguous segments (as even as can be)."""
    cuts = [round(count * r / world) for r in range(world + 1)]
    return [(a, b) for a, b in zip(cuts, cuts[1:], strict=False) if b > a]


def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")).copy()


class Run:
    """One run of a recipe: the work folder, the segments, the frames made here."""

    def __init__(self, net: Model, recipe: VideoRecipe, info: VideoInfo, output: Path,
                 ranks: Ranks, progress: bool, on_frame: Callable | None) -> None:
        self.net, self.recipe, self.info, self.output = net, recipe, info, output
        self.work = output.with_name(output.name + ".parts")
        self.ranks, self.progress, self.on_frame = ranks, progress, on_frame
        self.parts = segments(recipe.count, ranks.world)
        self.chain = Chain(net, objective_of(recipe.target, recipe.model), recipe.settings,
                           recipe.video)
        self.made = 0

    # ------------------------------------------------------------------ the work folder

    def frame_path(self, position: int) -> Path:
        return self.work / f"frame_{position:06d}.png"

    def claim(self) -> None:
        """Refuse a work folder of another recipe; rank 0 marks a new one as this recipe's."""
        mark = self.work / "recipe.json"
        key = self.recipe.key()
        if mark.is_file():
            try:
                found = json.loads(mark.read_text()).get("key")
            except (OSError, ValueError, AttributeError):
                found = None
            if found != key:
                raise DreamkitError(f"{self.work}: holds frames of another video or other "
                                    "settings; delete it or choose another output")
        elif self.work.is_dir() and any(self.work.glob("frame_*.png")):
            raise DreamkitError(f"{self.work}: holds frames of an unknown recipe; delete it or "
                                "choose another output")
        elif self.ranks.is_main:
            with atomic_path(mark) as tmp:
                tmp.write_text(json.dumps({"key": key, **self.recipe.to_dict()}))

    def done(self, segment: Segment) -> bool:
        return all(self.frame_path(p).is_file() for p in range(*segment))

    def finished_prefix(self) -> int:
        """How many frames from the first are written."""
        count = 0
        while count < self.recipe.count and self.frame_path(count).is_file():
            count += 1
        return count

    # ------------------------------------------------------------------ dreaming

    def make(self, segment: Segment) -> None:
        """Dream the missing frames of `segment`, from the first missing one on."""
        a, b = segment
        start = next((p for p in range(a, b) if not self.frame_path(p).is_file()), None)
        if start is None:
            return
        resume = start > a
        begin = start - 1 if resume else max(0, a - self.recipe.video.warmup)
        self.chain.previous = None
        recipe = self.recipe
        frames = read_frames(self.info.path, recipe.index(begin), recipe.step, b - begin,
                             recipe.size)
        desc = f"rank {self.ranks.rank}" if self.ranks.world > 1 else "frames"
        with closing(frames), tqdm(total=b - start, disable=not self.progress, unit="frame",
                                   desc=desc, leave=False) as bar:
            for position, (index, frame) in enumerate(frames, start=begin):
                if resume and position == start - 1:
                    self.chain.previous = (frame, read_png(self.frame_path(position)))
                    continue
                dreamed = self.chain(index, frame)
                if position < start:  # a warm-up frame: dreamed, not written
                    continue
                with atomic_path(self.frame_path(position)) as tmp:
                    Image.fromarray(dreamed).save(tmp, format="PNG", compress_level=1)
                self.made += 1
                bar.update()
                if self.on_frame is not None:
                    self.on_frame(position, dreamed)

    # ------------------------------------------------------------------ the video

    def record(self, count: int | None = None) -> VideoRecord:
        from dataclasses import replace

        recipe = self.recipe if count is None else replace(self.recipe, count=count)
        ran = {k: v for k, v in provenance(self.chain.ran).items()
               if k in ("device", "precision", "threads", "torch")}
        ran["flow"] = self.recipe.video.flow
        starts = tuple(a for a, _ in self.parts if a < recipe.count)
        return VideoRecord(recipe, self.net.weights_sha256(), starts, ran)

    def write(self, count: int) -> VideoRecord:
        """Encode the first `count` frames of the work folder into the output."""
        record = self.record(count)
        audio = None
        if self.info.audio and self.output.suffix.lower() == ".mp4":
            start = self.recipe.first / self.info.fps
            audio = (self.info.path, start, count * self.recipe.step / self.info.fps)
        frames = (read_png(self.frame_path(p)) for p in range(count))
        write_video(frames, self.output, self.recipe.size, self.recipe.fps,
                    record=record.to_json(), audio=audio, scratch=self.work)
        return record

    def finish(self) -> None:
        self.written = self.write(self.recipe.count)
        if not self.recipe.video.keep_frames:
            shutil.rmtree(self.work, ignore_errors=True)


def dream_video(net: Model, source: str | Path, output: str | Path, target=None,
                settings: DreamSettings | None = None, video: VideoSettings | None = None, *,
                model: str | None = None, ranks: Ranks | None = None, progress: bool = False,
                max_pixels: int = DEFAULT_MAX_PIXELS,
                on_frame: Callable[[int, np.ndarray], None] | None = None,
                on_partial: Callable[[Path, int], None] | None = None) -> VideoResult:
    """Dream the video `source` into `output` (.mp4, .gif or .webp) with `net`.

    `target`: a layer name (default: the model's classic layer), a `Target` or a list of them;
    `settings`: every frame's dream settings (`size` = the frames' longer side); `video`: the
    frames, stride, frame rate, blend and flow (`VideoSettings`). Resumes from `OUT.parts/`;
    under torchrun pass `ranks` (`dreamkit.distributed.ranks_from_env()`) and each rank
    dreams its segment. On Ctrl-C with `video.save_partial`, the frames finished so far are
    written as a playable video (`on_partial(path, frames)` is told) before it propagates.
    """
    settings = settings or DreamSettings()
    video = video or VideoSettings()
    output = Path(output)
    ranks = ranks or Ranks()
    recipe, info = plan(net, source, output, target, settings, video, model, max_pixels)
    run = Run(net, recipe, info, output, ranks, progress, on_frame)
    with process_group(net.device, ranks):
        run.claim()
        try:
            run_jobs(run.parts, is_finished=run.done, make=run.make, finish=run.finish,
                     device=net.device, ranks=ranks, scratch=[run.work], unit="segment")
        except KeyboardInterrupt:
            count = run.finished_prefix()
            if video.save_partial and ranks.is_main and count:
                from dreamkit.files import ctrl_c_deferred

                with ctrl_c_deferred():
                    run.write(count)
                if on_partial is not None:
                    on_partial(output, count)
            raise
    record = getattr(run, "written", None) or run.record()
    return VideoResult(output, recipe.count, run.made, record, dict(run.chain.seconds))
