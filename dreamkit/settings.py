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
    if not bounds.accepts(value):
        raise DreamkitError(f"{name} must be {bounds.describe()}, not {value!r}")
    return value


def label(name: str) -> str:
    """How a setting is named in messages: its config key and its flag, `octave_scale
    (--octave-scale)`, so the same line serves the CLI, configs and records."""
    return f"{name} (--{name.replace('_', '-')})"


def setting(default: Any, help: str, *, unset: str = "", **bounds: Any) -> Any:
    """A dataclass field with its bounds and help text (the type follows the default unless
    `kind` is given); `unset` says what a None default means."""
    kind = bounds.pop("kind", type(default))
    return field(default=default, metadata={"bounds": Bounds(kind, **bounds), "help": help,
                                            "unset": unset})


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
