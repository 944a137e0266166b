"""Settings as data: every knob of a dream, a render and a zoom video, with its default, its
bounds and its help text, in one place.

CLI flags (`dreamkit.commands.options`), gallery configs and PNG records are generated from and
checked against these fields, so a bad value gets the same one-line message from every door:
`steps must be an integer from 1 to 1000, not 0`. The other limits on what a user, a config or
a record can ask for (threads, targets, pixels per batch, grid sizes, text lengths) live here
too. This module imports nothing heavy (no torch), so `--help` and argument checks stay fast.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import Any, ClassVar

from dreamkit.errors import DreamkitError

PARAMS = ("fft", "pixel", "maco")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
TRANSFORMS = ("standard", "none")
COMPILES = ("auto", "on", "off")

MIN_SIDE, MAX_SIDE = 16, 4096  # pixels a side of anything rendered or dreamed
MAX_SEED = 2**63 - 1
MAX_STEPS = 10_000  # steps of a render, or of each octave of a dream
PIXEL_BUDGET = 2**24  # pixels of one batch (size x size x batch): about 16 GB of activations
MAX_TARGETS = 4096  # pictures one `vis` run or one record's batch may ask for
MAX_AXIS_VALUES = 64  # values on one gallery axis
MAX_TILES = 1024  # tiles of one gallery
MAX_TEXT = 200  # characters of a title or a label
MAX_PATH = 4096  # characters of a path in a config or a record
MAX_K = 100.0  # largest |k| of a homogeneity scale
MAX_CROPS = 256  # random crops per image
MAX_CROP_SIDE = 1024
DEFAULT_MAX_PIXELS = 64_000_000  # input images above this are refused (decompression bombs)
MAX_MAX_PIXELS = 2**32  # the most --max-pixels may allow
MAX_FOLDS = 100
MAX_DIRECTIONS = 4096  # rows of a direction file asked for (pca -k)
MAX_NUMBERS = 16  # values of a list setting (linearity's homogeneity scales)
MAX_FEATURES = 65536  # features of a dictionary
MAX_LIST = 1000  # characters of a comma-separated list setting (layers, channels, models)
SAVE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")  # image files dreamkit writes


def cores() -> int:
    """CPU cores this process may use (the upper bound of every thread count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


# --------------------------------------------------------------------------- one field


@dataclass(frozen=True)
class Bounds:
    """What a field accepts: its type, a range (`above` excludes its end), choices, or `None`
    when `optional`; `rule` is an extra (predicate, what it demands) pair."""

    kind: type
    low: float | None = None
    high: float | None = None
    above: float | None = None
    choices: tuple[str, ...] = ()
    optional: bool = False
    rule: tuple[Callable[[Any], bool], str] | None = None

    def describe(self) -> str:
        """`an integer from 1 to 16`, `a number above 1 and at most 4`, `one of a, b`..."""
        if self.kind is tuple:
            return (f"1 to {MAX_NUMBERS} finite numbers from {_show(self.low)} to "
                    f"{_show(self.high)}")
        if self.choices:
            text = f"one of {', '.join(self.choices)}"
        elif self.kind is bool:
            text = "true or false"
        else:
            noun = "an integer" if self.kind is int else "a number"
            if self.above == 0:
                text = f"a positive {noun.split()[-1]} up to {_show(self.high)}"
            elif self.above is not None:
                text = f"{noun} above {_show(self.above)} and at most {_show(self.high)}"
            else:
                text = f"{noun} from {_show(self.low)} to {_show(self.high)}"
        if self.rule:
            text += f" ({self.rule[1]})"
        return text

    def accepts(self, value: object) -> bool:
        if value is None:
            return self.optional
        if self.kind is tuple:  # a list of numbers, each within the range
            one = replace(self, kind=float)
            return isinstance(value, (tuple, list)) and 1 <= len(value) <= MAX_NUMBERS and all(
                one.accepts(v) for v in value)
        if self.kind is bool:
            return isinstance(value, bool)
        if self.kind is str:
            ok = isinstance(value, str) and (not self.choices or value in self.choices)
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        elif self.kind is int and not isinstance(value, int):
            return False
        elif not math.isfinite(value):
            return False
        else:
            ok = ((self.low is None or value >= self.low)
                  and (self.above is None or value > self.above)
                  and (self.high is None or value <= self.high))
        return ok and (self.rule is None or self.rule[0](value))


def _show(number: float | None) -> str:
    if number is None:
        return "any"
    if float(number).is_integer() and abs(number) >= 10_000:
        return f"{int(number):,}"
    return f"{number:g}"


def check(name: str, value: object, bounds: Bounds) -> object:
    """`value` if `bounds` accept it (an int passes as a float), else the one-line error."""
    if bounds.kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if bounds.kind is tuple and isinstance(value, (list, tuple)):
        value = tuple(float(v) if isinstance(v, int) and not isinstance(v, bool) else v
                      for v in value)
    if not bounds.accepts(value):
        raise DreamkitError(f"{name} must be {bounds.describe()}, not {value!r}")
    return value


def label(name: str) -> str:
    """How a setting is named in messages: its config key and its flag, `octave_scale
    (--octave-scale)`, so the same line serves the CLI, configs and records."""
    return f"{name} (--{name.replace('_', '-')})"


def setting(default: Any, help: str, *, unset: str = "", metavar: str = "",
            **bounds: Any) -> Any:
    """A dataclass field with its bounds and help text (the type follows the default unless
    `kind` is given); `unset` says what a None default means, `metavar` names its flag's
    value."""
    kind = bounds.pop("kind", type(default))
    return field(default=default, metadata={"bounds": Bounds(kind, **bounds), "help": help,
                                            "unset": unset, "metavar": metavar})


def _seed(help: str) -> Any:
    return setting(0, help, low=0, high=MAX_SEED)


def _precision() -> Any:
    return setting("auto", "network precision: auto = bf16 on GPUs that have it, else fp32",
                   choices=PRECISIONS)


def _compile() -> Any:
    return setting("auto", "torch.compile the step (one compile per image size): auto = on a "
                   "GPU for runs of many steps per size, on, off", choices=COMPILES)


def _tile_rule(value: int) -> bool:
    return value == 0 or (value % 32 == 0 and value >= 32)


# --------------------------------------------------------------------------- settings records


class Settings:
    """Base of the settings dataclasses: validation on creation, strict dict round trip."""

    kind: ClassVar[str] = "settings"

    def __post_init__(self) -> None:
        for f in fields(self):  # type: ignore[arg-type]
            object.__setattr__(self, f.name, check(label(f.name), getattr(self, f.name),
                                                   f.metadata["bounds"]))

    @classmethod
    def spec(cls) -> dict[str, tuple[Any, Bounds, str]]:
        """{field: (default, bounds, help)} in declaration order."""
        return {f.name: (None if f.default is MISSING else f.default, f.metadata["bounds"],
                         f.metadata["help"]) for f in fields(cls)}  # type: ignore[arg-type]

    @classmethod
    def metavar(cls, name: str) -> str:
        """The flag's value name, when the field names one."""
        return next(f for f in fields(cls) if f.name == name).metadata.get("metavar", "")  # type: ignore[arg-type]

    @classmethod
    def shown_default(cls, name: str) -> str:
        """The default as `--help` shows it (what a None default means)."""
        f = next(f for f in fields(cls) if f.name == name)  # type: ignore[arg-type]
        return f.metadata["unset"] if f.default is None else str(f.default)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    def replace(self, **changes: Any):
        return replace(self, **changes)  # type: ignore[type-var]

    @classmethod
    def from_dict(cls, table: object, where: str = ""):
        """Settings from an untrusted mapping: unknown keys and bad values are one-line errors
        (`where` says where the table came from); missing keys take their defaults."""
        if not isinstance(table, Mapping):
            raise DreamkitError(f"{where or cls.kind} must be a table of keys, not "
                                f"{type(table).__name__}")
        known = cls.spec()
        for key in table:
            if key not in known:
                prefix = f"{where}: " if where else ""
                raise DreamkitError(f"{prefix}unknown {cls.kind} setting {key!r} (known: "
                                    f"{', '.join(known)})")
        return cls(**table)


@dataclass(frozen=True)
class DreamSettings(Settings):
    """The knobs of a dream; defaults are the classic notebook's (4 octaves x 1.4, 10 steps)."""

    kind: ClassVar[str] = "dream"
    octaves: int = setting(4, "number of scales, smallest first", low=1, high=16)
    octave_scale: float = setting(1.4, "size ratio between octaves", above=1, high=4)
    steps: int = setting(10, "gradient steps per octave", low=1, high=MAX_STEPS)
    lr: float = setting(1.5, "step size in 0-255 pixel units", above=0, high=255)
    jitter: int = setting(32, "largest random shift per step, pixels", low=0, high=1024)
    blur: float = setting(0.5, "gradient smoothing sigma in pixels, 0 = off", low=0, high=64)
    seed: int = _seed("random seed; the same seed gives the same image")
    size: int | None = setting(None, "resize the photo so its longer side is PX pixels",
                               unset="the photo's own size", kind=int, low=MIN_SIDE,
                               high=MAX_SIDE, optional=True)
    precision: str = _precision()
    tile: int | None = setting(None, "compute gradients on PX-pixel tiles; 0 = never",
                               unset="only for images too big for the free memory", kind=int,
                               low=0, high=8192, optional=True,
                               rule=(_tile_rule, "0 or a multiple of 32"))
    compile: str = _compile()


@dataclass(frozen=True)
class RenderSettings(Settings):
    """The knobs of a feature visualization rendered from noise (lucid's recipe by default)."""

    kind: ClassVar[str] = "render"
    param: str = setting("fft", "image parameterization", choices=PARAMS)
    decorrelate: bool = setting(True, "optimize decorrelated colours (off: plain RGB)")
    size: int = setting(224, "side of the square images in pixels", low=MIN_SIDE, high=MAX_SIDE)
    steps: int = setting(512, "optimization steps", low=1, high=MAX_STEPS)
    lr: float = setting(0.05, "Adam step size", above=0, high=10)
    seed: int = _seed("random seed of the first image; image k uses SEED + k")
    precision: str = _precision()
    transforms: str = setting("standard", "robustness transforms: standard (pad, jitter, "
                              "scale, rotate) or none", choices=TRANSFORMS)
    redirected_relu: bool = setting(True, "lucid's redirected ReLU gradient (off: deep "
                                    "channels may stay flat grey)")
    compile: str = _compile()


@dataclass(frozen=True)
class ZoomSettings(Settings):
    """A zoom video: frames, the magnification between two frames and the frame rate."""

    kind: ClassVar[str] = "zoom"
    frames: int = setting(30, "number of frames", low=1, high=10000)
    zoom: float = setting(1.05, "magnification from one frame to the next", low=1, high=2)
    fps: int = setting(10, "frames per second", low=1, high=120)


def _list(default: str | None, help: str, unset: str = "") -> Any:
    return setting(default, help, kind=str, optional=default is None, unset=unset,
                   metavar="LIST", rule=(lambda text: len(text) <= MAX_LIST,
                                         f"at most {MAX_LIST} characters"))


@dataclass(frozen=True)
class ReproduceSettings(Settings):
    """How much work `reproduce` may do for a record (it is untrusted input)."""

    kind: ClassVar[str] = "reproduce"
    budget: float | None = setting(
        None, "the most work to do, in millions of pixel-steps (pixels x steps, tiles with "
        "their margins, compiles counted as 16); a record asking for more is refused before "
        "any work, and work past 2.5 s per million is stopped", kind=float, above=0, high=1e9,
        optional=True, metavar="MILLIONS", unset="4 on a CPU, about 10 s on 2 cores; 1024 on "
        "a GPU")


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
    seed: int = _seed("random seed")


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


# --------------------------------------------------------------------------- other limits


def check_threads(threads: object, name: str = "threads") -> int:
    """A CPU thread count: from 1 to this machine's cores."""
    return check(name, threads, Bounds(int, low=1, high=cores()))  # type: ignore[return-value]


def check_batch(size: int | tuple[int, int], batch: int) -> None:
    """A batch of `batch` images of `size` must fit the pixel budget of one batch."""
    h, w = (size, size) if isinstance(size, int) else size
    check("batch", batch, Bounds(int, low=1, high=MAX_TARGETS))
    if h * w * batch > PIXEL_BUDGET:
        raise DreamkitError(f"a batch of {batch} images of {w}x{h} pixels is over the budget of "
                            f"{PIXEL_BUDGET:,} pixels per batch; use fewer or smaller images")


def check_text(name: str, value: object, limit: int = MAX_TEXT) -> str:
    """A title, label or path: a string of at most `limit` characters, no NUL."""
    if not isinstance(value, str):
        raise DreamkitError(f"{name} must be a string, not {value!r}")
    if len(value) > limit or "\0" in value:
        raise DreamkitError(f"{name} must be at most {limit:,} characters, without NUL "
                            f"(got {len(value):,})")
    return value


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
    import re

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
    warmup: int = setting(4, "frames a torchrun rank dreams before its segment, so that the "
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
