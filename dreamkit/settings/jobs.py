"""The jobs' settings: reproduce's budget, a microscope site, a dictionary, the linearity
report, a dreamed video; each field with its default, bounds and help (flags are generated
from them)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import ClassVar

from dreamkit.errors import DreamkitError
from dreamkit.settings.fields import (
    MAX_CROP_SIDE,
    MAX_CROPS,
    MAX_DIRECTIONS,
    MAX_FEATURES,
    MAX_FOLDS,
    MAX_K,
    MAX_SIDE,
    MAX_STEPS,
    MIN_SIDE,
    Bounds,
    Settings,
    _list,
    _seed,
    setting,
)


@dataclass(frozen=True)
class ReproduceSettings(Settings):
    """How much work `reproduce` may do for a record (it is untrusted input)."""

    kind: ClassVar[str] = "reproduce"
    budget: float | None = setting(
        None, "the most work to do, in millions of pixel-steps (pixels x steps, tiles with "
        "their margins, compiles counted as 16); a record asking for more is refused before "
        "any work, and work past 10 CPU-seconds per million is stopped", kind=float, above=0,
        high=1e9, optional=True, metavar="MILLIONS",
        unset="4 on a CPU, about 10 s on 2 cores; 1024 on a GPU")


@dataclass(frozen=True)
class DirectionSettings(Settings):
    """How `direction fit` and `direction pca` sample a layer: random crops (with flips) per
    image, their side, the seed; the folds of fit's held-out accuracy, pca's direction count."""

    kind: ClassVar[str] = "direction"
    crops: int = setting(32, "random crops (with flips) per image", low=1, high=MAX_CROPS)
    crop_size: int = setting(160, "side of each crop in pixels", low=MIN_SIDE,
                             high=MAX_CROP_SIDE, metavar="PX")
    seed: int = _seed("random seed")
    folds: int = setting(5, "k of the k-fold held-out accuracy (fit)", low=2, high=MAX_FOLDS)
    k: int = setting(8, "number of directions (pca)", low=1, high=MAX_DIRECTIONS)


@dataclass(frozen=True)
class StudioSettings(Settings):
    """How a studio serves: its port and its limits (waiting jobs, jobs per page, work per job,
    uploads, results kept, how long an unwatched job lives)."""

    kind: ClassVar[str] = "studio"
    port: int = setting(8765, "port", low=1, high=65535)
    queue: int = setting(8, "jobs that may wait; more are refused", low=1, high=1000)
    per_page: int = setting(3, "jobs one page may have queued or running", low=1, high=1000)
    budget: float | None = setting(None, "millions of pixel-steps one job may take", kind=float,
                                   above=0, high=1e6, optional=True, metavar="M",
                                   unset="reproduce's: 4 on a CPU, about 10 s; 1024 on a GPU")
    max_upload_mb: int = setting(16, "largest upload, in MB", low=1, high=1024, metavar="MB")
    keep: int = setting(12, "results each page keeps, oldest dropped", low=1, high=1000,
                        metavar="K")
    heartbeat: float = setting(30.0, "drop a job whose page has not asked about it for S "
                               "seconds", low=1, high=3600, metavar="S")


MICROSCOPE_CPU_RENDER = {"size": 112, "steps": 128}  # the vis recipe at a size a CPU finishes


@dataclass(frozen=True)
class MicroscopeSettings(Settings):
    """What a microscope site shows: layers, channels, examples, variants; job size."""

    kind: ClassVar[str] = "microscope"
    layers: str = _list("low,mid,high", "comma-separated layers or tiers")
    channels: str | None = _list(None, "channels of every layer, e.g. 0-15", "all of them")
    examples: int = setting(6, "dataset examples per channel", low=1, high=32, metavar="K")
    variants: int = setting(3, "diverse variants per channel", low=0, high=8)
    diversity: float = setting(20.0, "weight of the variants' diversity term", low=0,
                               high=1000, metavar="W")
    batch: int = setting(16, "pictures per job", low=1, high=256)
    features: int = setting(64, "with --dictionary: the features most often active on the "
                            "photos to show (unless --channels names them)", low=1,
                            high=MAX_DIRECTIONS, metavar="N")


ATLAS_CPU_RENDER = {"size": 80, "steps": 128}  # lucid's atlas icons: a size a CPU finishes
MAX_ATLAS_GRID = 64


@dataclass(frozen=True)
class AtlasSettings(Settings):
    """What an activation atlas shows: the layer, its sample of activation vectors, the grid
    of cells, the class views; job size."""

    kind: ClassVar[str] = "atlas"
    layer: str = setting("mid", "layer name or tier low|mid|high", metavar="LAYER",
                         rule=(lambda text: 0 < len(text) <= 200, "1 to 200 characters"))
    grid: int = setting(20, "cells a side of the map", low=2, high=MAX_ATLAS_GRID)
    positions: int = setting(32, "random positions of each photo's activation map sampled",
                             low=1, high=4096)
    vectors: int = setting(50_000, "the most vectors kept, a uniform random sample of all of "
                           "them (memory follows it, not the folder)", low=64, high=2_000_000)
    classes: str | None = _list(None, "comma-separated ImageNet classes (names or indices): a "
                                "class atlas of each, its vectors weighted by their "
                                "attribution to the class's logit", "none")
    min_count: int = setting(3, "cells with fewer vectors stay empty", low=1, high=100_000)
    examples: int = setting(4, "dataset examples per cell", low=0, high=16, metavar="K")
    batch: int = setting(16, "cells rendered per job", low=1, high=64)
    layout_seed: int = _seed("seed of the vector sample and the layout (the renders' is --seed)")


@dataclass(frozen=True)
class DictionarySettings(Settings):
    """A dictionary's size, sparsity and training (features and k are also checked against the
    layer's channels when it is fitted)."""

    kind: ClassVar[str] = "dictionary"
    features: int | None = setting(None, "number of features", kind=int, low=2,
                                   high=MAX_FEATURES, optional=True,
                                   unset="--expansion x the layer's channels")
    expansion: float = setting(4.0, "features per channel of the layer (when --features is "
                               "not given)", above=0, high=MAX_FEATURES, metavar="E")
    k: int = setting(32, "features active per vector, the sparsity", low=1, high=MAX_FEATURES)
    epochs: int = setting(30, "passes over the sample", low=1, high=1000)
    views: int = setting(2, "views of each photo sampled: its centred square, then zoomed-in "
                         "random crops (more views fill a thin sample from few photos)", low=1,
                         high=MAX_CROPS)
    seed: int = _seed("random seed")


@dataclass(frozen=True)
class DictionarySweepSettings(Settings):
    """The sizes a dictionary sweep fits (every L0 at every expansion) and their training."""

    kind: ClassVar[str] = "dictionary sweep"
    l0: tuple = setting((8.0, 16.0, 32.0), "sparsities (features active per vector) to fit, "
                        "e.g. 8,16,32", kind=tuple, low=1, high=MAX_FEATURES, metavar="K")
    expansion: tuple = setting((2.0, 4.0), "features per channel of the layer, e.g. 2,4",
                               kind=tuple, low=1 / 64, high=MAX_FEATURES, metavar="E")
    epochs: int = setting(30, "passes over the sample, for each fit", low=1, high=1000)
    views: int = setting(2, "views of each photo sampled: its centred square, then zoomed-in "
                         "random crops (more views fill a thin sample from few photos)", low=1,
                         high=MAX_CROPS)
    seed: int = _seed("random seed")

    def __post_init__(self) -> None:
        super().__post_init__()
        odd = [v for v in self.l0 if not float(v).is_integer()]
        if odd:
            raise DreamkitError(f"l0 (--l0) must be whole numbers of features, not {odd[0]:g}")

    @property
    def sizes(self) -> list[tuple[float, int]]:
        """Every (expansion, L0) to fit, in order, each once."""
        return [(e, int(k)) for e in dict.fromkeys(self.expansion)
                for k in dict.fromkeys(self.l0)]


@dataclass(frozen=True)
class LinearitySettings(Settings):
    """The linearity report's sample, probes, bootstrap and superposition renders."""

    kind: ClassVar[str] = "linearity"
    models: str = _list("bvlc_googlenet,squeezenet1_1", "comma-separated model specs (1 to 8)")
    count: int = setting(48, "photos in the sample, spread evenly over the folder", low=8,
                         high=1024)
    size: int = setting(128, "side of each photo's centre crop", low=32, high=512, metavar="PX")
    k: tuple = setting((-1.0, 0.5, 2.0), "homogeneity scales", kind=tuple, low=-MAX_K,
                       high=MAX_K, metavar="K")
    resamples: int = setting(1000, "bootstrap resamples", low=100, high=10000)
    layers: str = _list("all", "comma-separated layers or tiers to probe (the logits "
                        "always), or all")
    superposition_layers: str = _list("low,mid,high", "comma-separated layers or tiers for "
                                      "the superposition probe, or none")
    seeds: int = setting(3, "render seeds per superposition pair", low=1, high=20)
    render_steps: int = setting(64, "steps of each superposition render", low=1,
                                high=MAX_STEPS)
    render_size: int = setting(64, "side of the superposition renders", low=MIN_SIDE,
                               high=MAX_SIDE, metavar="PX")
    seed: int = _seed("seed of the pairings, random directions, bootstrap and renders")



# --------------------------------------------------------------------------- videos

MAX_FRAMES = 100_000  # frames of one video job; a longer range is refused before any work
MAX_FPS = 240.0
MAX_ANIMATION_FRAMES = 600  # frames of a GIF or WebP (their writers keep every frame)
PREVIEW_SIDE = 160  # --preview renders frames at most this long a side
FLOWS = ("dis", "farneback", "raft", "none")
_FRAME_RANGE = r"(\d{1,9})(-(\d{1,9})?)?"  # N, A-B or A-


def frame_range(text: object) -> tuple[int, int | None]:
    """`--frames` as (first, last) input frame indices, last inclusive (None: to the end):
    `all`, `N` (one frame), `A-B` or `A-` (to the end); refused past `MAX_FRAMES` frames."""
    if isinstance(text, int) and not isinstance(text, bool):
        text = str(text)

    if text == "all":
        return 0, None
    match = re.fullmatch(_FRAME_RANGE, text) if isinstance(text, str) else None
    if not match:
        raise DreamkitError(f"frames (--frames) must be {FrameRange(str).describe()}, not "
                            f"{text!r:.40}")
    first = int(match[1])
    last = first if not match[2] else int(match[3]) if match[3] else None
    if last is not None and (last < first or last - first >= MAX_FRAMES):
        raise DreamkitError(f"frames (--frames) {text}: the last frame must come after the "
                            f"first, at most {MAX_FRAMES:,} frames in all")
    return first, last


@dataclass(frozen=True)
class FrameRange(Bounds):
    """The bounds of a frame range (`frame_range`): a text, or a single frame's number."""

    def describe(self) -> str:
        return (f"A-B (the first and last frame, counted from 0), A- (to the end), N (one "
                f"frame) or all, at most {MAX_FRAMES:,} frames")

    def accepts(self, value: object) -> bool:
        try:
            frame_range(value)
        except DreamkitError:
            return False
        return True


@dataclass(frozen=True)
class VideoSettings(Settings):
    """A dreamed video: which frames, how each frame starts from the previous one's dream
    (optical flow, blend), the frame rate, and how a long job runs (warm-up of torchrun
    ranks, previews, partial saves)."""

    kind: ClassVar[str] = "video"
    frames: str = field(default="all", metadata={
        "bounds": FrameRange(str), "unset": "",
        "help": "which frames of the input to dream"})
    stride: int = setting(1, "dream every Nth frame of the range (the frame rate is divided "
                          "by N unless --fps says otherwise)", low=1, high=1000)
    fps: float | None = setting(None, "frames per second of the output", kind=float,
                                unset="the input's, divided by the stride", above=0,
                                high=MAX_FPS, optional=True)
    blend: float = setting(0.95, "share of the previous frame's dream detail a frame keeps "
                           "(moved by the optical flow, dropped where the flow is "
                           "unreliable): higher is steadier; 0 = every frame dreamed alone",
                           low=0, high=1)
    flow: str = setting("dis", "optical flow: dis or farneback (OpenCV), raft (torchvision's, "
                        "when its weights are downloaded), none = the older tools' plain blend "
                        "of the previous dream into the next frame, unmoved, dreamed in full "
                        "(they used a blend near 0.5)",
                        choices=FLOWS)
    warmup: int = setting(24, "frames a torchrun rank dreams before its segment, so that the "
                          "joins do not jump", low=0, high=100)
    preview: int = setting(0, f"quick look: dream every Nth frame only, at most "
                           f"{PREVIEW_SIDE} px; 0 = off", low=0, high=MAX_FRAMES)
    save_partial: bool = setting(False, "on Ctrl-C, write the frames finished so far as a "
                                 "playable video")
    keep_frames: bool = setting(False, "keep the PNG frames of OUT.parts/ after the video "
                                "is written (remake_frame then re-makes a frame exactly)")

    def __post_init__(self) -> None:
        super().__post_init__()
        first, last = frame_range(self.frames)  # the canonical spelling: 7 -> "7"
        text = "all" if (first, last) == (0, None) else \
            f"{first}" if last == first else f"{first}-{'' if last is None else last}"
        object.__setattr__(self, "frames", text)

    def span(self) -> tuple[int, int | None]:
        """(first, last) input frame of the range, last inclusive (None: to the end)."""
        return frame_range(self.frames)

    def step(self) -> int:
        """Input frames from one dreamed frame to the next (the stride, times the preview's)."""
        return self.stride * max(1, self.preview)

