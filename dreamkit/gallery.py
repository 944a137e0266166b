"""Comparison galleries: a grid of tiles over two axes, contact sheets and a static HTML page.

A gallery config (TOML or JSON, parsed strictly) names a base tile (kind, model, layer, channel,
image, size, settings) and up to two axes, `rows` and `columns`, each one field with a list of
values. Every cell of the grid is a `TileSpec`: everything needed to render that one image again,
stored as JSON in the tile PNG's `dreamkit` text key (the same record `dream` writes, so
`dreamkit reproduce` reads both). Tiles are either dreams of a photo (kind `dream`, resized so
its short side is `size` and centre-cropped square) or feature visualizations from noise (kind
`render`). `write_sheet` and `write_html` assemble finished tiles; rendering them, possibly on
many ranks, is `dreamkit.distributed`'s job.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from kornia.geometry.transform import resize
from PIL import Image, ImageDraw, ImageFont, PngImagePlugin

from dreamkit import __version__
from dreamkit.directions import resolve_direction_arg
from dreamkit.dream import DreamSettings, dream
from dreamkit.errors import DreamkitError
from dreamkit.image_io import atomic_path, load_image, read_png_text
from dreamkit.models import DEFAULT_MODEL, StagedNet, get_spec
from dreamkit.objectives import Objective, channel, direction, guide, layer_norm
from dreamkit.param import PARAMS
from dreamkit.precision import PRECISIONS
from dreamkit.strict import only_keys, typed

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

METADATA_KEY = "dreamkit"
KINDS = ("dream", "render")
DEFAULT_SIZE = 128

# settings each kind accepts, with their types (floats accept integers)
DREAM_SETTINGS: dict[str, type] = {
    name: type(value) for name, value in DreamSettings().to_dict().items()
}
RENDER_SETTINGS: dict[str, type] = {
    "param": str, "decorrelate": bool, "steps": int, "lr": float, "seed": int,
    "transforms": str, "redirected_relu": bool,
}
RENDER_TRANSFORMS = ("standard", "none")
SETTINGS = {"dream": DREAM_SETTINGS, "render": RENDER_SETTINGS}

# axes that are tile fields rather than settings
FIELD_AXES: dict[str, type] = {"layer": str, "channel": int, "model": str, "image": str,
                               "size": int, "precision": str}
CONFIG_KEYS = ("title", "kind", *FIELD_AXES, "settings", "rows", "columns")
AXIS_KEYS = ("axis", "values")
# the tile record's fields besides settings (those `dream` writes are required; None allowed)
RECORD_FIELDS: dict[str, type] = {
    "version": str, "command": str, "model": str, "layer": str, "channel": int, "input": str,
    "size": int, "input_sha256": str, "precision": str, "negate": bool, "guide": str,
    "direction": str,
}
RECORD_REQUIRED = ("version", "command", "model", "layer", "channel", "input", "settings")
RECORD_NULLABLE = ("channel", "input", "size", "input_sha256", "precision", "negate", "guide",
                   "direction")


# --------------------------------------------------------------------------- settings


def _settings(kind: str, given: object, where: str = "settings") -> dict[str, object]:
    """Validated settings of a tile kind, dream ones completed with DreamSettings' defaults."""
    types = SETTINGS[kind]
    table = only_keys(where, given, list(types))
    settings = {key: typed(f"{where}.{key}", value, types[key]) for key, value in table.items()}
    if kind == "dream":
        return DreamSettings(**settings).to_dict()  # type: ignore[arg-type]
    checks = [
        (settings.get("transforms", "standard") in RENDER_TRANSFORMS,
         f"transforms must be one of {', '.join(RENDER_TRANSFORMS)}"),
        (settings.get("param", PARAMS[0]) in PARAMS, f"param must be one of {', '.join(PARAMS)}"),
        (settings.get("steps", 1) >= 1, "steps must be at least 1"),  # type: ignore[operator]
        (settings.get("lr", 1.0) > 0, "lr must be a positive number"),  # type: ignore[operator]
    ]
    for ok, message in checks:
        if not ok:
            raise DreamkitError(f"{where}.{message}")
    return settings


def file_sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise DreamkitError(f"{path}: cannot read ({exc.strerror or exc})") from None


# --------------------------------------------------------------------------- one tile


@dataclass(frozen=True)
class TileSpec:
    """Everything that determines one tile's pixels (same spec, same pixels)."""

    kind: str
    model: str
    layer: str
    channel: int | None
    input: str | None  # the photo a dream starts from; None for a render
    size: int | None  # side of the square tile; None: a dream keeps the photo's own size
    settings: dict[str, object] = field(hash=False)
    input_sha256: str | None = None
    precision: str = "auto"  # the network's (see dreamkit.precision)
    negate: bool = False  # minimize instead (recorded by `dream --negate`)
    guide: str | None = None  # guide photo of a guided dream (`dream --guide`)
    direction: str | None = None  # FILE[:N] of a learned direction (`dream --direction`)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise DreamkitError(f"kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        info = get_spec(self.model).layers.resolve(self.layer)
        if self.layer != info.name:
            object.__setattr__(self, "layer", info.name)
        if self.channel is not None and not 0 <= self.channel < info.channels:
            raise DreamkitError(f"channel {self.channel} is out of range: {info.name} has "
                                f"{info.channels} channels (0 to {info.channels - 1})")
        if self.size is not None and not 16 <= self.size <= 4096:
            raise DreamkitError(f"size must be from 16 to 4096 pixels, not {self.size}")
        if self.kind == "dream" and self.input is None:
            raise DreamkitError("a dream tile needs an image")
        if self.kind == "render" and (self.input is not None or self.size is None):
            raise DreamkitError("a render tile takes a size and no image")
        if self.precision not in PRECISIONS:
            raise DreamkitError(f"precision must be one of {', '.join(PRECISIONS)}")
        object.__setattr__(self, "settings", _settings(self.kind, self.settings))

    def record(self) -> dict[str, object]:
        """The JSON record stored in the tile's PNG (a superset of what `dream` writes)."""
        return {
            "version": __version__, "command": self.kind, "model": self.model,
            "layer": self.layer, "channel": self.channel, "input": self.input,
            "settings": self.settings, "size": self.size, "input_sha256": self.input_sha256,
            "precision": self.precision,
            **{key: value for key, value in (("negate", self.negate), ("guide", self.guide),
                                             ("direction", self.direction)) if value},
        }

    def key(self) -> str:
        """A short hash of what determines the pixels (the version is left out)."""
        record = {k: v for k, v in self.record().items() if k != "version"}
        return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:10]

    def objective(self) -> Objective:
        """What the tile maximizes: the layer's norm, a channel, a direction or a guide."""
        if self.direction is not None:
            objective = direction(*resolve_direction_arg(self.direction, self.model, self.layer))
        elif self.guide is not None:
            objective = guide(self.layer, load_image(self.guide))
        elif self.channel is not None:
            objective = channel(self.layer, self.channel)
        else:
            objective = layer_norm(self.layer)
        return -objective if self.negate else objective

    @classmethod
    def from_record(cls, record: object) -> TileSpec:
        """Validate a record read from a PNG; every problem is one DreamkitError line."""
        command = record.get("command") if isinstance(record, Mapping) else None
        if command == "gallery":
            raise DreamkitError("this is a contact sheet; reproduce one of its tiles instead")
        if command == "vis":
            raise DreamkitError("this is a `dreamkit vis` picture, not a gallery tile or dream "
                                "(see dreamkit.vis_record)")
        if isinstance(command, str) and command not in KINDS:
            raise DreamkitError(f"images made by `dreamkit {command}` cannot be reproduced; "
                                "only gallery tiles and `dream` and `vis` outputs can")
        table = only_keys("metadata", record, (*RECORD_FIELDS, "settings", "octaves_done"))
        if "octaves_done" in table:
            raise DreamkitError("this image is a partial dream (interrupted); it cannot be "
                                "reproduced")
        missing = [key for key in RECORD_REQUIRED if key not in table]
        if missing:
            raise DreamkitError(f"metadata: missing {', '.join(missing)}")
        values = {
            key: None if key in RECORD_NULLABLE and table.get(key) is None
            else typed(f"metadata.{key}", table.get(key), kind)
            for key, kind in RECORD_FIELDS.items()
        }
        sha = values["input_sha256"]
        if sha is not None and not re.fullmatch(r"[0-9a-f]{64}", str(sha)):
            raise DreamkitError("metadata.input_sha256 is not a SHA-256 hex digest")
        settings = _settings(str(values["command"]), table["settings"], "metadata.settings")
        return cls(values["command"], values["model"], values["layer"],  # type: ignore[arg-type]
                   values["channel"], values["input"], values["size"],  # type: ignore[arg-type]
                   settings, sha, values["precision"] or "auto",  # type: ignore[arg-type]
                   bool(values["negate"]), values["guide"], values["direction"])  # type: ignore[arg-type]


def read_record(path: str | Path) -> object:
    """The JSON record dreamkit stored in a PNG (not yet validated)."""
    text = read_png_text(path).get(METADATA_KEY)
    if text is None:
        raise DreamkitError(f"{path}: no dreamkit metadata in this PNG")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        raise DreamkitError(f"{path}: dreamkit metadata is not valid JSON ({exc})") from None


def read_tile_spec(path: str | Path) -> TileSpec:
    """The validated spec stored in a tile (or `dream` output) PNG."""
    record = read_record(path)
    try:
        return TileSpec.from_record(record)
    except DreamkitError as exc:
        raise DreamkitError(f"{path}: {exc}") from None


def tile_input(spec: TileSpec, path: Path | None = None) -> torch.Tensor:
    """The photo a dream tile starts from (3, H, W): checked against its hash, resized so its
    short side is `size` and centre-cropped square. `path` overrides the recorded one."""
    source = Path(path or spec.input)  # type: ignore[arg-type]
    image = load_image(source)
    if spec.input_sha256 is not None and file_sha256(source) != spec.input_sha256:
        raise DreamkitError(f"{source}: not the image this tile was made from (SHA-256 differs)")
    if spec.size is None:
        return image
    image = resize(image[None], spec.size, side="short", antialias=True)[0]
    top = (image.shape[1] - spec.size) // 2
    left = (image.shape[2] - spec.size) // 2
    return image[:, top:top + spec.size, left:left + spec.size].contiguous()


def render_tile(spec: TileSpec, net: StagedNet, *, input_path: Path | None = None) -> torch.Tensor:
    """Render the tile's pixels (3, H, W) in [0, 1] with `net` (the spec's model)."""
    if spec.kind == "dream":
        settings = DreamSettings(**spec.settings)  # type: ignore[arg-type]
        return dream(net, tile_input(spec, input_path), spec.objective(), settings,
                     precision=spec.precision)
    from dreamkit.render import render

    options = dict(spec.settings)
    if "transforms" in options:
        options["transforms"] = None if options["transforms"] == "standard" else []
    return render(net, spec.objective(), size=spec.size, precision=spec.precision,
                  **options).images[0]  # type: ignore[arg-type]


def tile_metadata(spec: TileSpec) -> dict[str, str]:
    return {METADATA_KEY: json.dumps(spec.record())}


def is_finished(path: Path, spec: TileSpec) -> bool:
    """True when `path` is a complete tile PNG made from `spec` (by any dreamkit version)."""
    if not path.is_file():
        return False
    try:
        return read_tile_spec(path).key() == spec.key()
    except DreamkitError:
        return False


# --------------------------------------------------------------------------- the grid


@dataclass(frozen=True)
class Axis:
    """One direction of the grid: a field name and its values, with their labels."""

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
    spec: TileSpec

    @property
    def name(self) -> str:
        return f"tiles/r{self.row:02d}c{self.column:02d}-{self.spec.key()}.png"


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
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DreamkitError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") \
            from None
    try:
        if path.suffix.lower() == ".toml":
            return tomllib.loads(text)
        if path.suffix.lower() == ".json":
            config = json.loads(text)
            if not isinstance(config, dict):
                raise ValueError("the top level must be an object")
            return config
    except (ValueError, tomllib.TOMLDecodeError, RecursionError) as exc:
        raise DreamkitError(f"{path}: {' '.join(str(exc).split())}") from None
    raise DreamkitError(f"{path}: a gallery config must be .toml or .json")


def _axis(config: Mapping[str, object], which: str, kind: str) -> Axis:
    if which not in config:
        return Axis("", ("",))
    table = only_keys(which, config[which], AXIS_KEYS)
    if "axis" not in table or "values" not in table:
        raise DreamkitError(f"{which} needs an axis and its values")
    name = typed(f"{which}.axis", table["axis"], str)
    types = {**FIELD_AXES, **SETTINGS[kind]}
    if name not in types:
        raise DreamkitError(f"{which}.axis: unknown axis {name!r} for {kind} tiles "
                            f"(known: {', '.join(types)})")
    values = table["values"]
    if not isinstance(values, list) or not values:
        raise DreamkitError(f"{which}.values must be a non-empty list")
    checked = tuple(typed(f"{which}.values", v, types[name]) for v in values)  # type: ignore[index]
    if len(set(checked)) != len(checked):
        raise DreamkitError(f"{which}.values: a value is repeated")
    return Axis(name, checked)  # type: ignore[arg-type]


def _tile_spec(kind: str, values: Mapping[str, object], settings: dict[str, object],
               base: Path, hashes: dict[Path, str]) -> TileSpec:
    """One cell's spec from its field values; photos are hashed once (cached in `hashes`)."""
    image = None
    if kind == "dream":
        if values["image"] is None:
            raise DreamkitError('dream tiles need an image (image = "photo.jpg" or an image axis)')
        image = (base / str(values["image"])).resolve()
        if image not in hashes:
            hashes[image] = file_sha256(image)
    elif values["image"] is not None:
        raise DreamkitError("render tiles start from noise; they take no image")
    model = str(values["model"])
    layer = str(values["layer"] or get_spec(model).default_layer)
    return TileSpec(kind, model, layer, values["channel"],  # type: ignore[arg-type]
                    str(image) if image else None, values["size"],  # type: ignore[arg-type]
                    settings, hashes[image] if image else None,
                    str(values["precision"]))


def parse_gallery(config: Mapping[str, object], base: Path = Path(".")) -> Gallery:
    """Validate a config dict and expand it into its tiles, rows first.

    Image paths are relative to `base` (the config's folder). Raises DreamkitError on an unknown
    key, a wrong type or a bad value, naming it.
    """
    config = only_keys("config", config, CONFIG_KEYS)
    kind = typed("kind", config.get("kind", "dream"), str)
    if kind not in KINDS:
        raise DreamkitError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    rows, columns = _axis(config, "rows", kind), _axis(config, "columns", kind)  # type: ignore[arg-type]
    if rows.name and rows.name == columns.name:
        raise DreamkitError(f"rows and columns are both {rows.name!r}")
    settings = only_keys("settings", config.get("settings", {}), list(SETTINGS[kind]))  # type: ignore[index]
    base_tile = {"model": DEFAULT_MODEL, "size": DEFAULT_SIZE, "layer": None, "channel": None,
                 "image": None, "precision": "auto"}
    for key in base_tile:
        if key in config:
            base_tile[key] = typed(key, config[key], FIELD_AXES[key])
    hashes: dict[Path, str] = {}
    tiles = []
    for r, row_value in enumerate(rows.values):
        for c, column_value in enumerate(columns.values):
            values = dict(base_tile)
            tile_settings = dict(settings)
            for axis, value in ((rows, row_value), (columns, column_value)):
                if axis.name in FIELD_AXES:
                    values[axis.name] = value
                elif axis.name:
                    tile_settings[axis.name] = value
            spec = _tile_spec(kind, values, tile_settings, base, hashes)
            tiles.append(Tile(r, c, spec))
    title = typed("title", config.get("title", ""), str)
    return Gallery(str(title), rows, columns, tuple(tiles), dict(config))


# --------------------------------------------------------------------------- contact sheet

GAP = 4
PAD = 8
FONT_SIZE = 14
MAX_LABEL = 24  # characters
MAX_CELL = 256  # larger tiles are shrunk in the sheet (the page shows them whole)


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=FONT_SIZE)
    except TypeError:  # Pillow < 10.1: the small bitmap font only
        return ImageFont.load_default()


def _short(label: str) -> str:
    return label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1] + "…"


def contact_sheet(gallery: Gallery, tile_image: Callable[[Tile], Image.Image]) -> Image.Image:
    """The grid of tiles with the row labels on the left and the column labels on top."""
    font = _font()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def width(text: str) -> int:
        return int(math.ceil(measure.textlength(text, font=font)))

    images = {}
    for tile in gallery.tiles:
        image = tile_image(tile).convert("RGB")
        image.thumbnail((MAX_CELL, MAX_CELL), Image.Resampling.LANCZOS)
        images[(tile.row, tile.column)] = image
    cell_w = max(im.width for im in images.values())
    cell_h = max(im.height for im in images.values())
    row_labels = [_short(s) for s in gallery.rows.labels]
    column_labels = [_short(s) for s in gallery.columns.labels]
    line = FONT_SIZE + PAD
    left = max(width(s) for s in row_labels) + 2 * PAD if any(row_labels) else PAD
    top = (line if gallery.title else 0) + (line if any(column_labels) else 0) + PAD
    n_rows, n_cols = len(gallery.rows.values), len(gallery.columns.values)
    grid_width = left + n_cols * (cell_w + GAP) + PAD - GAP
    sheet = Image.new("RGB", (max(grid_width, width(gallery.title) + 2 * PAD),
                              top + n_rows * (cell_h + GAP) + PAD - GAP), "white")
    draw = ImageDraw.Draw(sheet)
    ink = (30, 30, 30)
    if gallery.title:
        draw.text((PAD, PAD // 2), gallery.title, fill=ink, font=font)
    label_y = top - line
    for c, text in enumerate(column_labels):
        x = left + c * (cell_w + GAP) + (cell_w - width(text)) // 2
        draw.text((max(x, left + c * (cell_w + GAP)), label_y), text, fill=ink, font=font)
    for r, text in enumerate(row_labels):
        y = top + r * (cell_h + GAP) + (cell_h - FONT_SIZE) // 2
        draw.text((PAD, y), text, fill=ink, font=font)
    for (r, c), im in images.items():
        sheet.paste(im, (left + c * (cell_w + GAP), top + r * (cell_h + GAP)))
    return sheet


def _gallery_record(gallery: Gallery) -> dict[str, str]:
    record = {"version": __version__, "command": "gallery", "config": gallery.config}
    return {METADATA_KEY: json.dumps(record)}


def write_sheet(gallery: Gallery, folder: Path, name: str = "sheet.png") -> Path:
    """Assemble the finished tiles under `folder` into `folder/name` (PNG, atomic)."""
    sheet = contact_sheet(gallery, lambda tile: Image.open(folder / tile.name))
    info = PngImagePlugin.PngInfo()
    for key, value in _gallery_record(gallery).items():
        info.add_text(key, value)
    with atomic_path(folder / name) as tmp:
        sheet.save(tmp, format="PNG", pnginfo=info)
    return folder / name


# --------------------------------------------------------------------------- static page

STYLE = """
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
table{border-collapse:collapse}th{font-weight:600;padding:4px 8px}
th.row{text-align:right}td{padding:2px}
a.tile img{display:block;width:128px;height:auto;image-rendering:auto;border:1px solid #ccc}
a.tile:hover img{border-color:#36c}
dialog{max-width:95vw;max-height:95vh;border:none;padding:1em;box-shadow:0 0 24px #0006}
dialog img{max-width:min(90vw,1024px);max-height:75vh;display:block;margin:auto}
dialog pre{white-space:pre-wrap;font-size:12px;background:#f2f2f2;padding:.6em}
"""

SCRIPT = """
const view = document.getElementById("view");
for (const link of document.querySelectorAll("a.tile")) {
  link.addEventListener("click", (event) => {
    event.preventDefault();
    document.getElementById("view-img").src = link.getAttribute("href");
    document.getElementById("view-title").textContent = link.dataset.title;
    const settings = JSON.parse(link.dataset.settings);
    document.getElementById("view-settings").textContent = JSON.stringify(settings, null, 2);
    view.showModal();
  });
}
view.addEventListener("click", (event) => { if (event.target === view) view.close(); });
"""


def html_page(gallery: Gallery, sheet: str = "sheet.png") -> str:
    """The index page: the grid of tiles; a click shows a tile large with its settings."""
    e = html.escape
    title = gallery.title or "dreamkit gallery"
    head = "".join(f"<th>{e(label)}</th>" for label in gallery.columns.labels)
    by_cell = {(t.row, t.column): t for t in gallery.tiles}
    body = []
    for r, row_label in enumerate(gallery.rows.labels):
        cells = []
        for c, column_label in enumerate(gallery.columns.labels):
            tile = by_cell[(r, c)]
            caption = " · ".join(x for x in (row_label, column_label) if x)
            cells.append(
                f'<td><a class="tile" href="{e(tile.name)}" data-title="{e(caption)}" '
                f'data-settings="{e(json.dumps(tile.spec.record()))}">'
                f'<img src="{e(tile.name)}" alt="{e(caption)}" loading="eager"></a></td>'
            )
        body.append(f'<tr><th class="row">{e(row_label)}</th>'
                    f'{"".join(cells)}</tr>')
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>
<link rel="icon" href="data:,"><style>{STYLE}</style></head>
<body><h1>{e(title)}</h1>
<p>{len(gallery.tiles)} tiles made by dreamkit {e(__version__)}; click a tile to see it large with
its settings. <a href="{e(sheet)}">Contact sheet</a>.
Any tile: <code>dreamkit reproduce TILE.png</code> renders it again.</p>
<table><thead><tr><th></th>{head}</tr></thead><tbody>
{chr(10).join(body)}
</tbody></table>
<dialog id="view"><form method="dialog"><button>close</button></form>
<figure><img id="view-img" alt="the selected tile"><figcaption id="view-title"></figcaption>
</figure><pre id="view-settings"></pre></dialog>
<script>{SCRIPT}</script>
</body></html>
"""


def write_html(gallery: Gallery, folder: Path, sheet: str = "sheet.png") -> Path:
    """Write `folder/index.html` (atomic); it opens from disk, no server or network needed."""
    target = folder / "index.html"
    with atomic_path(target) as tmp:
        tmp.write_text(html_page(gallery, sheet), encoding="utf-8")
    return target
