"""The machinery of settings as data: `Bounds` (what a field accepts and how it says so),
`setting` (a dataclass field with bounds and help), the `Settings` base (checked on creation,
strict round trip through dicts), and every limit on what a user, a config or a record may ask
for. No torch: `--help` and argument checks stay fast."""

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
        elif self.kind is str:
            text = "text"
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



def _list(default: str | None, help: str, unset: str = "") -> Any:
    return setting(default, help, kind=str, optional=default is None, unset=unset,
                   metavar="LIST", rule=(lambda text: len(text) <= MAX_LIST,
                                         f"at most {MAX_LIST} characters"))



# --------------------------------------------------------------------------- other limits


def check_threads(threads: object, name: str = "threads") -> int:
    """A CPU thread count: from 1 to this machine's cores."""
    return check(name, threads, Bounds(int, low=1, high=cores()))  # type: ignore[return-value]


def check_max_pixels(value: object) -> int:
    """A cap on an input image's pixels (the decompression-bomb guard)."""
    return check("max_pixels (--max-pixels)", value,  # type: ignore[return-value]
                 Bounds(int, low=1, high=MAX_MAX_PIXELS))


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


