"""What a dreamed video remembers: the recipe of its frames, checked as strictly as a picture's.

A video's record has the fields of a picture's (`dreamkit.records`: model, target terms,
dream settings, the input file with its SHA-256, weights, what ran, version) and its own: the
video settings, the input frames dreamed (first, step, count), the frame size and rate, and
where each torchrun segment starts (a segment's first frame starts from its warm-up, not from
the frame before). Records are untrusted input: every field is checked against the bounds of
`dreamkit.settings` before any work.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dreamkit.errors import DreamkitError
from dreamkit.records import Photo
from dreamkit.settings import (
    MAX_FPS,
    MAX_FRAMES,
    MAX_SIDE,
    Bounds,
    DreamSettings,
    VideoSettings,
    check,
    check_text,
)
from dreamkit.strict import only_keys, typed
from dreamkit.targets import SHA256, Target
from dreamkit.version import __version__

FORMAT = "dreamkit-video-record/1"
MAX_RECORD_CHARS = 2**20
_TOP = ("format", "version", "command", "model", "weights", "target", "settings", "video",
        "input", "frames", "size", "fps", "segments", "ran")
_RAN = ("device", "precision", "threads", "torch", "flow")


@dataclass(frozen=True)
class VideoRecipe:
    """Everything that determines a dreamed video's frames (same recipe, same frames)."""

    model: str
    target: tuple[Target, ...]
    settings: DreamSettings
    video: VideoSettings
    input: Photo
    first: int  # input frame of the output's frame 0
    step: int  # input frames from one output frame to the next
    count: int  # output frames
    size: tuple[int, int]  # (height, width) of the frames
    fps: float

    def to_dict(self) -> dict:
        return {"command": "video", "model": self.model,
                "target": [t.to_record() for t in self.target],
                "settings": self.settings.to_dict(), "video": self.video.to_dict(),
                "input": self.input.to_dict(),
                "frames": {"first": self.first, "step": self.step, "count": self.count},
                "size": [self.size[1], self.size[0]], "fps": self.fps}

    def key(self) -> str:
        """A hash of what the pixels depend on (not the partial-save or keep-frames flags):
        a work folder of other frames is never mixed in."""
        table = self.to_dict()
        table["video"] = {k: v for k, v in table["video"].items()
                          if k not in ("save_partial", "keep_frames")}
        return hashlib.sha256(json.dumps(table, sort_keys=True).encode()).hexdigest()[:16]

    def index(self, position: int) -> int:
        """The input frame of output frame `position`."""
        return self.first + self.step * position


@dataclass(frozen=True)
class VideoRecord:
    """A recipe with its provenance and the segments it was made in."""

    recipe: VideoRecipe
    weights: str
    segments: tuple[int, ...] = (0,)  # output positions where a segment starts
    ran: Mapping = field(default_factory=dict)
    version: str = __version__

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, "version": self.version, **self.recipe.to_dict(),
                           "weights": self.weights, "segments": list(self.segments),
                           "ran": dict(self.ran)})

    @classmethod
    def from_json(cls, data: object) -> VideoRecord:
        table = only_keys("record", data, _TOP)
        if table.get("format") != FORMAT or table.get("command") != "video":
            raise DreamkitError(f"not a dreamkit video record (expected format {FORMAT})")
        model = check_text("record.model", typed("record.model", table.get("model"), str))
        terms = table.get("target")
        if not isinstance(terms, list) or not 1 <= len(terms) <= 64:
            raise DreamkitError("record.target must be a list of 1 to 64 target terms")
        target = tuple(Target.from_record(t, f"record.target[{i}]") for i, t in enumerate(terms))
        settings = DreamSettings.from_dict(table.get("settings", {}), "record.settings")
        video = VideoSettings.from_dict(table.get("video", {}), "record.video")
        photo = Photo.from_dict(table.get("input"), "record.input")
        frames = only_keys("record.frames", table.get("frames"), ("first", "step", "count"))
        first = _int("record.frames.first", frames.get("first"), 0, 10**9)
        step = _int("record.frames.step", frames.get("step"), 1, MAX_FRAMES)
        count = _int("record.frames.count", frames.get("count"), 1, MAX_FRAMES)
        size = table.get("size")
        if not isinstance(size, list) or len(size) != 2:
            raise DreamkitError("record.size must be [width, height]")
        width, height = (_int("record.size", side, 1, MAX_SIDE) for side in size)
        fps = check("record.fps", table.get("fps"), Bounds(float, above=0, high=MAX_FPS))
        segments = table.get("segments", [0])
        if not isinstance(segments, list) or not 1 <= len(segments) <= 65536:
            raise DreamkitError("record.segments must be a list of frame positions")
        starts = tuple(_int("record.segments", s, 0, count - 1) for s in segments)
        weights = typed("record.weights", table.get("weights"), str)
        if weights != "random" and not SHA256.fullmatch(str(weights)):
            raise DreamkitError("record.weights must be a SHA-256 hex digest or random")
        ran = only_keys("record.ran", table.get("ran", {}), _RAN)
        for key, value in ran.items():
            if not isinstance(value, (str, int, float)) or len(str(value)) > 100:
                raise DreamkitError(f"record.ran.{key} must be a short value")
        version = check_text("record.version", typed("record.version", table.get("version"),
                                                     str), 40)
        recipe = VideoRecipe(model, target, settings, video, photo, first, step, count,
                             (height, width), fps)  # type: ignore[arg-type]
        return cls(recipe, str(weights), starts, dict(ran), str(version))


def _int(where: str, value: object, low: int, high: int) -> int:
    return check(where, value, Bounds(int, low=low, high=high))  # type: ignore[return-value]


def read_video_record(path: str | Path) -> VideoRecord:
    """The checked record of a video written by `dream_video` (MP4 or GIF)."""
    from dreamkit.video.stream import read_comment

    path = Path(path)
    text = read_comment(path)
    if not text:
        raise DreamkitError(f"{path}: no dreamkit record in this video")
    if len(text) > MAX_RECORD_CHARS:
        raise DreamkitError(f"{path}: its record is longer than {MAX_RECORD_CHARS:,} "
                            "characters")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise DreamkitError(f"{path}: its record is not valid JSON ({exc})") from None
    try:
        return VideoRecord.from_json(data)
    except DreamkitError as exc:
        raise DreamkitError(f"{path}: {exc}") from None
