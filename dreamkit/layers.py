"""The layer table of a model: which layers are worth dreaming on, and how abstract they are.

Tables are plain data (no network is built to read one): the built-in models write theirs by
hand, wrapped modules discover theirs with one probe pass (`dreamkit.models.discover`).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from dreamkit.errors import DreamkitError

TIERS = ("low", "mid", "high")
LOGITS = "logits"  # every model's name for its class logits, besides the layer's own name


@dataclass(frozen=True)
class LayerInfo:
    """One capture point: `tier` is low (edges, strokes), mid (textures, parts) or high
    (objects); `stride` is input pixels per activation step, None past global pooling;
    `layout` is how the module lays its output out (dreamkit always hands objectives
    (B, C, H, W)): `BCHW`, channels-last `BHWC` (Swin blocks) or tokens `BNC` (transformers)."""

    name: str
    tier: str
    channels: int
    stride: int | None
    layout: str = "BCHW"

    def __post_init__(self) -> None:
        if self.tier not in TIERS:
            raise ValueError(f"tier must be one of {TIERS}, not {self.tier!r}")

    def check_channel(self, channel: int) -> int:
        """`channel` if the layer has it, else the one message for every command."""
        return check_channel(self.name, self.channels, channel)


def check_channel(layer: str, channels: int, channel: object) -> int:
    """The one check (and message) of a channel index against a layer's channel count."""
    if isinstance(channel, bool) or not isinstance(channel, int) or not 0 <= channel < channels:
        raise DreamkitError(f"channel {channel} is out of range: {layer} has {channels} channels "
                            f"(0 to {channels - 1})")
    return channel


def _normalize(name: str) -> str:
    """Caffe spellings (`inception_4c/output`) and case variants of registry names."""
    name = name.strip().lower()
    for suffix in ("/output", "/out"):
        name = name.removesuffix(suffix)
    return name.replace("inception_", "inception")


class LayerTable(Sequence[LayerInfo]):
    """The dream-worthy layers of one model, in network order, with a default per tier.

    `extra` holds layers that resolve by name without being listed (every other module path
    of a wrapped module). The model's one default layer is the mid tier's.
    """

    def __init__(self, model: str, layers: Sequence[LayerInfo], defaults: Mapping[str, str],
                 logits: str | None = None, extra: Sequence[LayerInfo] = ()):
        self.model = model
        self._layers = tuple(layers)
        self._by_name = {layer.name: layer for layer in (*extra, *self._layers)}
        self._lowered = {_normalize(name): name for name in self._by_name}
        if set(defaults) != set(TIERS) or any(n not in self._by_name for n in defaults.values()):
            raise ValueError(f"{model}: every tier needs a default layer from the table")
        if logits is not None and logits not in self._by_name:
            raise ValueError(f"{model}: the logits layer {logits!r} is not in the table")
        self.defaults = dict(defaults)
        self.logits = logits

    def __getitem__(self, index):  # type: ignore[override]
        return self._layers[index]

    def __len__(self) -> int:
        return len(self._layers)

    def __iter__(self) -> Iterator[LayerInfo]:
        return iter(self._layers)

    @property
    def names(self) -> list[str]:
        return [layer.name for layer in self._layers]

    @property
    def default(self) -> str:
        """The model's one default layer (the mid tier's): `dream` and the Python API agree."""
        return self.defaults["mid"]

    def text(self, note: str = "") -> str:
        """The table as `dreamkit layers` prints it (tier defaults marked *)."""
        defaults = set(self.defaults.values())
        width = max(14, *(len(layer.name) for layer in self))
        layouts = any(layer.layout != "BCHW" for layer in self)
        lines = [f"{'layer':<{width}} {'tier':<5} {'channels':>8} {'stride':>7}"
                 f"{'  layout' if layouts else ''}   ({self.model}{note})"]
        for layer in self:
            stride = "global" if layer.stride is None else str(layer.stride)
            mark = " *" if layer.name in defaults else ""
            layout = f"  {layer.layout:>6}" if layouts else ""
            lines.append(f"{layer.name:<{width}} {layer.tier:<5} {layer.channels:>8} "
                         f"{stride:>7}{layout}{mark}")
        tiers = ", ".join(f"{t}: {n}" for t, n in self.defaults.items())
        lines.append(f"* the tier defaults ({tiers}); the model's default layer is {self.default}")
        if layouts:
            lines.append("layout: how the module outputs it (BHWC channels-last, BNC tokens); "
                         "dreamkit reads every layer as (B, C, H, W)")
        return "\n".join(lines)

    def index(self, name: str) -> int:  # type: ignore[override]
        return self.names.index(self.resolve(name).name)

    def resolve(self, name_or_tier: str) -> LayerInfo:
        """A layer by name (exact, or a Caffe spelling), a tier (its default) or `logits`."""
        if not isinstance(name_or_tier, str):
            raise DreamkitError(f"a layer name must be a string, not {name_or_tier!r}")
        if name_or_tier in self._by_name:
            return self._by_name[name_or_tier]
        key = _normalize(name_or_tier)
        if key in TIERS:
            return self._by_name[self.defaults[key]]
        if key == LOGITS and self.logits is not None:
            return self._by_name[self.logits]
        if key in self._lowered:
            return self._by_name[self._lowered[key]]
        choices = self.names + list(TIERS) + [n for n in self._by_name if n not in self.names]
        close = suggestions(name_or_tier, choices)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise DreamkitError(
            f"unknown layer {name_or_tier[:100]!r} for model {self.model}{hint} "
            f"(`dreamkit layers --model {self.model}` lists them)"
        )


CONFUSABLE = str.maketrans("oOlIi", "00111")  # letters typed for the digits they look like


def suggestions(name: str, choices: list[str], n: int = 3) -> list[str]:
    """Up to `n` layer names a mistyped `name` may have meant: a choice that differs only by a
    look-alike character (`_blocks.1O`) or that owns the path (`layer3.1.conv1.weight`) first,
    then the closest spellings."""
    alike = [c for c in choices if c.translate(CONFUSABLE) == name.translate(CONFUSABLE)]
    owners = [c for c in choices if name.startswith(c + ".")]
    owners.sort(key=len, reverse=True)  # the deepest module that holds the path
    close = difflib.get_close_matches(name, choices, n=n, cutoff=0.6)
    return list(dict.fromkeys(alike + owners[:1] + close))[:n]

