"""Gallery configs: a grid of tiles over two axes, parsed strictly into recipes.

A config (TOML or JSON; untrusted, so bounded in size, keys, values and tiles) names a base
tile (kind, model, layer, channel, image, size, precision, settings) and up to two axes,
`rows` and `columns`, each one field or setting with a list of values. Every cell is a
`Recipe` (`dreamkit.records`): a dream of the photo (cut to a `size` square) or a render from
noise (`size` pixels). The settings' keys, types and bounds are `DreamSettings` and
`RenderSettings`'s own, so a bad value reads as it does on the command line.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dreamkit.errors import DreamkitError
from dreamkit.files import read_text
from dreamkit.layers import LayerTable
from dreamkit.models.catalog import DEFAULT_MODEL
from dreamkit.records import Photo, Recipe
from dreamkit.settings import (
    MAX_AXIS_VALUES,
    MAX_PATH,
    MAX_SIDE,
    MAX_TEXT,
    MAX_TILES,
    MIN_SIDE,
    PRECISIONS,
    Bounds,
    DreamSettings,
    RenderSettings,
    check,
    check_text,
    label,
)
from dreamkit.strict import only_keys, typed
from dreamkit.targets import Target

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

KINDS = {"dream": DreamSettings, "render": RenderSettings}
DEFAULT_SIZE = 128
# the tile fields that are not settings, with their bounds (all can be axes)
FIELDS: dict[str, Bounds] = {
    "model": Bounds(str), "layer": Bounds(str), "channel": Bounds(int, low=0, high=100_000),
    "image": Bounds(str), "size": Bounds(int, low=MIN_SIDE, high=MAX_SIDE),
    "precision": Bounds(str, choices=PRECISIONS),
}
CONFIG_KEYS = ("title", "kind", *FIELDS, "settings", "rows", "columns")


@dataclass(frozen=True)
class Axis:
    """One direction of the grid: a field or setting name and its values."""

    name: str
    values: tuple[object, ...]

    @property
    def labels(self) -> list[str]:
        """Image stems, layer and model names as they are; other values after the axis name."""
        if self.name == "image":
            return [Path(str(v)).stem for v in self.values]
        if self.name in ("", "layer", "model"):
            return [str(v) for v in self.values]
        return [f"{self.name} {str(v).lower() if isinstance(v, bool) else v}"
                for v in self.values]


@dataclass(frozen=True)
class Tile:
    row: int
    column: int
    recipe: Recipe

    @property
    def name(self) -> str:
        return f"tiles/r{self.row:02d}c{self.column:02d}-{self.recipe.key()}.png"


@dataclass(frozen=True)
class Gallery:
    title: str
    rows: Axis
    columns: Axis
    tiles: tuple[Tile, ...]
    config: dict[str, object]  # the normalized config, stored in the sheet


def load_config(path: str | Path) -> dict[str, object]:
    """Read a TOML (.toml) or JSON (.json) config file into a dict (no code is ever run)."""
    path = Path(path)
    if path.suffix.lower() not in (".toml", ".json"):
        raise DreamkitError(f"{path}: a gallery config must be .toml or .json")
    text = read_text(path, "gallery config")
    try:
        if path.suffix.lower() == ".toml":
            return tomllib.loads(text)
        config = json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError, RecursionError) as exc:
        raise DreamkitError(f"{path}: {' '.join(str(exc).split())[:300]}") from None
    if not isinstance(config, dict):
        raise DreamkitError(f"{path}: the top level must be an object")
    return config


def _axis(config: Mapping[str, object], which: str, kind: str) -> Axis:
    if which not in config:
        return Axis("", ("",))
    table = only_keys(which, config[which], ("axis", "values"))
    if "axis" not in table or "values" not in table:
        raise DreamkitError(f"{which} needs an axis and its values")
    name = typed(f"{which}.axis", table["axis"], str)
    bounds = {**FIELDS, **{k: b for k, (_, b, _) in KINDS[kind].spec().items()}}
    if name not in bounds:
        raise DreamkitError(f"{which}.axis: unknown axis {str(name)[:50]!r} for {kind} tiles "
                            f"(known: {', '.join(bounds)})")
    values = table["values"]
    if not isinstance(values, list) or not 1 <= len(values) <= MAX_AXIS_VALUES:
        raise DreamkitError(f"{which}.values must be a list of 1 to {MAX_AXIS_VALUES} values")
    checked = tuple(check(label(str(name)), v, bounds[name]) for v in values)  # type: ignore[index]
    if len(set(map(repr, checked))) != len(checked):
        raise DreamkitError(f"{which}.values: a value is repeated")
    return Axis(str(name), checked)


class _Tables:
    """Layer tables by model (built-in ones are data; others are built once). A config may
    name a user's `package.module:factory` only when the user named it too (`allowed`)."""

    def __init__(self, allowed: str | None) -> None:
        self.tables: dict[str, LayerTable] = {}
        self.allowed = allowed

    def __call__(self, model: str) -> LayerTable:
        if model not in self.tables:
            from dreamkit.models.registry import layer_table
            from dreamkit.models.sources import refuse_code

            refuse_code(check_text("model", model), "the gallery config", self.allowed)
            self.tables[model] = layer_table(model)
        return self.tables[model]


def _recipe(kind: str, values: Mapping[str, object], settings: dict[str, object], base: Path,
            photos: dict[Path, Photo], tables: _Tables) -> Recipe:
    """One cell's recipe from its field values; photos are hashed once."""
    model = str(values["model"])
    table = tables(model)
    layer = str(values["layer"] or table.default)
    target = Target.layer_norm(layer) if values["channel"] is None else \
        Target.of_channel(layer, values["channel"])  # type: ignore[arg-type]
    target = target.resolve(table, model)
    if values["precision"] is not None:
        settings = {**settings, "precision": values["precision"]}
    if kind == "render":
        made = RenderSettings.from_dict({**settings, "size": values["size"]}, "settings")
        return Recipe("vis", model, (target,), made, batch=((target,),), index=0)
    if values["image"] is None:
        raise DreamkitError('dream tiles need an image (image = "photo.jpg" or an image axis)')
    path = (base / check_text("image", str(values["image"]), MAX_PATH)).resolve()
    if path not in photos:
        photos[path] = Photo.of(path, crop=values["size"])  # type: ignore[arg-type]
    photo = Photo(photos[path].path, photos[path].sha256, values["size"])  # type: ignore[arg-type]
    return Recipe("dream", model, (target,), DreamSettings.from_dict(settings, "settings"), photo)


def parse_gallery(config: Mapping[str, object], base: Path = Path("."),
                  allowed_model: str | None = None) -> Gallery:
    """Validate a config dict and expand it into its tiles, rows first (image paths are
    relative to `base`, the config's folder). Every problem is one DreamkitError line. A
    config never makes dreamkit import code: a `package.module:factory` model is refused
    unless it is `allowed_model` (what the user passed as --model)."""
    config = only_keys("config", config, CONFIG_KEYS)
    kind = check("kind", config.get("kind", "dream"), Bounds(str, choices=tuple(KINDS)))
    rows, columns = _axis(config, "rows", kind), _axis(config, "columns", kind)  # type: ignore[arg-type]
    if rows.name and rows.name == columns.name:
        raise DreamkitError(f"rows and columns are both {rows.name!r}")
    if len(rows.values) * len(columns.values) > MAX_TILES:
        raise DreamkitError(f"a gallery may have at most {MAX_TILES} tiles, not "
                            f"{len(rows.values) * len(columns.values)}")
    settings = dict(only_keys("settings", config.get("settings", {}),
                              list(KINDS[kind].spec())))  # type: ignore[index]
    fields = {"model": DEFAULT_MODEL, "size": DEFAULT_SIZE, "layer": None, "channel": None,
              "image": None, "precision": None}
    for key in fields:
        if key in config:
            fields[key] = check(label(key), config[key], FIELDS[key])
    if kind == "render" and (fields["image"] is not None or "image" in (rows.name, columns.name)):
        raise DreamkitError("render tiles start from noise; they take no image")
    photos: dict[Path, Photo] = {}
    tables = _Tables(allowed_model)
    tiles = []
    for r, row_value in enumerate(rows.values):
        for c, column_value in enumerate(columns.values):
            values, tile_settings = dict(fields), dict(settings)
            for axis, value in ((rows, row_value), (columns, column_value)):
                if axis.name in FIELDS:
                    values[axis.name] = value
                elif axis.name:
                    tile_settings[axis.name] = value
            tiles.append(Tile(r, c, _recipe(kind, values, tile_settings, base, photos, tables)))  # type: ignore[arg-type]
    title = check_text("title", config.get("title", ""), MAX_TEXT)
    return Gallery(title, rows, columns, tuple(tiles), dict(config))
