"""The layer table of a model: which layers are worth dreaming on, and how abstract they are."""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from dreamkit.errors import DreamkitError

TIERS = ("low", "mid", "high")


@dataclass(frozen=True)
class LayerInfo:
    """One capture point: `tier` is low (edges, strokes), mid (textures, parts), high (objects)."""

    name: str
    tier: str
    channels: int
    stride: int | None  # input pixels per activation step; None after global pooling

    def __post_init__(self) -> None:
        if self.tier not in TIERS:
            raise ValueError(f"tier must be one of {TIERS}, not {self.tier!r}")


def _normalize(name: str) -> str:
    """Caffe spellings (`inception_4c/output`) and case variants map to registry names."""
    name = name.strip().lower()
    for suffix in ("/output", "/out"):
        name = name.removesuffix(suffix)
    return name.replace("inception_", "inception")


class LayerTable(Sequence[LayerInfo]):
    """The dream-worthy layers of one model, in network order, with a default per tier."""

    def __init__(self, model: str, layers: Sequence[LayerInfo], defaults: dict[str, str]):
        self.model = model
        self._layers = tuple(layers)
        self._by_name = {layer.name: layer for layer in self._layers}
        missing = set(TIERS) - set(defaults)
        if missing or any(name not in self._by_name for name in defaults.values()):
            raise ValueError(f"{model}: every tier needs a default layer from the table")
        self.defaults = dict(defaults)

    def __getitem__(self, index):  # type: ignore[override]
        return self._layers[index]

    def __len__(self) -> int:
        return len(self._layers)

    def __iter__(self) -> Iterator[LayerInfo]:
        return iter(self._layers)

    @property
    def names(self) -> list[str]:
        return [layer.name for layer in self._layers]

    def index(self, name: str) -> int:  # type: ignore[override]
        return self.names.index(self.resolve(name).name)

    def resolve(self, name_or_tier: str) -> LayerInfo:
        """A layer by name (Caffe spellings accepted) or by tier (`high` -> its default)."""
        key = _normalize(name_or_tier)
        if key in TIERS:
            return self._by_name[self.defaults[key]]
        if key in self._by_name:
            return self._by_name[key]
        close = difflib.get_close_matches(key, self.names + list(TIERS), n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise DreamkitError(
            f"unknown layer {name_or_tier!r} for model {self.model}{hint} "
            f"(`dreamkit layers --model {self.model}` lists them)"
        )
