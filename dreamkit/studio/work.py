"""What the studio's buttons do, each a call to the library (the web server only parses
requests and calls these):

| action                       | library call                                                |
|------------------------------|-------------------------------------------------------------|
| check an uploaded photo      | `dreamkit.image_io.load_image(path, max_pixels=...)`        |
| a model's layer table        | `dreamkit.layer_table` / `load_model(...).layers`           |
| the dream's target           | `dreamkit.targets.dream_target` (as `dreamkit dream`)       |
| the dream's settings         | `DreamSettings.from_dict` over `dream_defaults(model)`      |
| the work a job may take      | `dreamkit.remake.work` / `peak_pixels`, reproduce's budget   |
| dream and save with a record | `dream`, `objective_of`, `Record`, `provenance`, `save_image`|
| a channel grid               | `dreamkit.visualize` (as `dreamkit vis`), or a microscope   |
|                              | site's pictures (`dreamkit.microscope.plan.Site`)           |
| a direction file's rows      | `dreamkit.load_directions`                                  |
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections import OrderedDict
from pathlib import Path

from dreamkit.errors import DreamkitError
from dreamkit.models.catalog import CATALOG, dream_defaults, unknown_model
from dreamkit.settings import MAX_TEXT, DreamSettings, RenderSettings, check_text

PREVIEW_SECONDS = 0.5  # the live picture is re-encoded at most this often
MODELS_KEPT = 2  # networks kept loaded (the worker's cache)


# --------------------------------------------------------------------------- models


class Models:
    """Model specs the studio accepts, their layer tables (any thread) and loaded networks
    (the worker's; at most `MODELS_KEPT`). A `package.module:factory` spec imports and runs
    code: only the specs the server was started with (`--allow-factory SPEC`) are accepted."""

    def __init__(self, device, factories: tuple[str, ...] = ()):
        self.device, self.factories = device, tuple(factories)
        self._tables: dict[str, object] = {}
        self._nets: OrderedDict[str, object] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, spec: object) -> str:
        from dreamkit.models.sources import kind_of

        spec = check_text("model", spec, MAX_TEXT).strip()
        kind = kind_of(spec)
        if spec in CATALOG or kind in ("torchvision", "timm") or spec in self.factories:
            return spec
        if kind == "factory":
            raise DreamkitError(f"the model {spec[:100]} is a user's factory: loading it imports "
                                "and runs code, which this studio allows only for the specs it "
                                "was started with (dreamkit studio --allow-factory SPEC)")
        raise unknown_model(spec)

    def table(self, spec: str):
        """The layer table (data for built-ins; a random-weights probe for other specs)."""
        from dreamkit.models.registry import layer_table, load_model
        from dreamkit.models.sources import kind_of

        spec = self.check(spec)
        with self._lock:
            if spec not in self._tables:
                factory = kind_of(spec) == "factory" and spec not in CATALOG
                self._tables[spec] = (load_model(spec).layers if factory
                                      else layer_table(spec))
            return self._tables[spec]

    def net(self, spec: str):
        """The network with its weights on the studio's device (loaded once, kept a while)."""
        from dreamkit.models.registry import load_model

        spec = self.check(spec)
        if spec not in self._nets:
            while len(self._nets) >= MODELS_KEPT:
                self._nets.popitem(last=False)
            self._nets[spec] = load_model(spec, device=self.device)
        self._nets.move_to_end(spec)
        return self._nets[spec]


def table_rows(table) -> dict:
    """A layer table as the page shows it (the rows of `dreamkit layers`)."""
    return {"model": table.model, "default": table.default, "defaults": table.defaults,
            "text": table.text(),
            "layers": [{"name": i.name, "tier": i.tier, "channels": i.channels,
                        "stride": i.stride} for i in table]}


def settings_spec() -> list[dict]:
    """The dream form: every field of `DreamSettings.spec()`, with its bounds and help."""
    out = []
    for name, (default, bounds, help_text) in DreamSettings.spec().items():
        out.append({"name": name, "default": default, "help": help_text,
                    "kind": bounds.kind.__name__, "low": bounds.low, "high": bounds.high,
                    "above": bounds.above, "choices": list(bounds.choices),
                    "optional": bounds.optional, "describe": bounds.describe(),
                    "unset": DreamSettings.shown_default(name)})
    return out


def model_defaults(spec: str) -> dict:
    """The settings a model dreams with unless told otherwise (`dream_defaults`)."""
    return {**DreamSettings().to_dict(), **dream_defaults(spec)}


# --------------------------------------------------------------------------- photos


def check_photo(path: Path, max_pixels: int) -> tuple[int, int]:
    """(height, width) of an uploaded photo, decoded with the CLI's checks (bombs, non-images,
    truncated files, too many pixels: one-line DreamkitErrors)."""
    from dreamkit.image_io import load_image

    image = load_image(path, max_pixels=max_pixels)
    return int(image.shape[1]), int(image.shape[2])


def png_bytes(image) -> bytes:
    """A (3, H, W) float image as PNG bytes (a live preview)."""
    from PIL import Image

    from dreamkit.image_io import to_uint8

    buffer = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


# --------------------------------------------------------------------------- dreams


def dream_recipe(models: Models, ask: dict, photo: Path, direction_file: str | None):
    """The `Recipe` of a dream the page asks for (model, layer, channel or direction row,
    negate, settings), checked exactly as `dreamkit dream` checks its flags."""
    from dreamkit.records import Photo, Recipe
    from dreamkit.targets import dream_target

    model = models.check(ask.get("model"))
    given = ask.get("settings") or {}
    if not isinstance(given, dict):
        raise DreamkitError("settings must be a table of values")
    settings = DreamSettings.from_dict({**dream_defaults(model), **given}, "settings")
    layer = ask.get("layer") or None
    channel = ask.get("channel")
    if layer is not None:
        layer = check_text("layer", layer, MAX_TEXT)
    if direction_file is not None:
        row = ask.get("row", 0)
        if isinstance(row, bool) or not isinstance(row, int) or row < 0:
            raise DreamkitError("row must be 0 or more")
        direction = f"{direction_file}:{row}"
    else:
        direction = None
    target = dream_target(models.table(model), model, layer=layer, channel=channel,
                          direction=direction, negate=bool(ask.get("negate")))
    return Recipe("dream", model, (target,), settings, Photo.of(photo))


def dreamed_size(photo: Path, settings: DreamSettings, max_pixels: int) -> tuple[int, int]:
    """The photo's size as the dream sees it (`fit_side` to `settings.size`)."""
    from dreamkit.dream import fit_side
    from dreamkit.image_io import load_image

    image = load_image(photo, max_pixels=max_pixels)
    return tuple(fit_side(image[None], settings.size).shape[-2:])  # type: ignore[return-value]


def check_work(recipe, size: tuple[int, int] | None, budget: float, cuda: bool) -> float:
    """The job's work in millions of pixel-steps, refused over `budget`: the count and memory
    bound `dreamkit reproduce` applies (`dreamkit.remake.check_work`)."""
    from dreamkit.remake import check_work as checked

    return checked(recipe, size, None, budget, cuda, what="this dream",
                   advice="use a smaller size, fewer octaves or fewer steps")


def dream_picture(job, models: Models, recipe, out: Path, max_pixels: int) -> dict:
    """Dream `recipe` into `out` with its record (`dreamkit.remake.dream_picture`, as `dreamkit
    dream` does), showing the picture as it grows."""
    from dreamkit.image_io import load_image
    from dreamkit.remake import dream_picture as made

    shown = [0.0]

    def on_step(step: int, dreamed, values) -> None:
        now = time.monotonic()
        preview = None
        if now - shown[0] > PREVIEW_SECONDS:
            shown[0], preview = now, png_bytes(dreamed[0])
        job.step_done(step + 1, preview)

    def on_octave(index: int, so_far) -> None:
        job.step_done(job.step, png_bytes(so_far))

    result = made(models.net(recipe.model), load_image(recipe.input.path, max_pixels=max_pixels),
                  recipe, out, on_step=on_step, on_octave=on_octave)
    job.step_done(job.step, png_bytes(result))
    return {"ran": {k: v for k, v in result.ran.items() if k in ("device", "precision")}}


class Microscope:
    """A microscope site's channel pictures (`SITE/layers/<layer>/c<N>.jpg`), when one was
    given; its `microscope.json` names its model (a site without one is taken as any
    model's)."""

    def __init__(self, root: Path | None):
        from dreamkit.files import read_text
        from dreamkit.microscope.plan import MANIFEST, Site

        self.site = Site(Path(root), None) if root else None  # type: ignore[arg-type]
        self.model = None
        if root and (Path(root) / MANIFEST).is_file():
            try:
                self.model = json.loads(read_text(Path(root) / MANIFEST, "site plan"))["model"]
            except (ValueError, KeyError, TypeError):
                raise DreamkitError(f"{root}: its {MANIFEST} is not a microscope plan") from None

    def picture(self, model: str, layer: str, channel: int) -> Path | None:
        if self.site is None or (self.model is not None and self.model != model):
            return None
        path = self.site.vis(layer, channel)
        return path if path.is_file() else None


def grid_settings(size: int, steps: int) -> RenderSettings:
    return RenderSettings(size=size, steps=steps)


def grid_folder(root: Path, model: str, layer: str, settings: RenderSettings) -> Path:
    from dreamkit.commands.common import slug

    return root / slug(model) / slug(layer) / f"s{settings.size}-n{settings.steps}"


def channel_targets(models: Models, model: str, layer: str, channels: list[int]):
    """The channel targets, checked against the table (layer name, channel range)."""
    from dreamkit.targets import Target

    table = models.table(model)
    return [Target.of_channel(layer, c).resolve(table, model) for c in channels]


def channel_picture(folder: Path, target) -> Path:
    """Where `visualize` writes a target's picture (`<folder>/<stem>.png`)."""
    return folder / f"{target.stem()}.png"


def render_channels(job, models: Models, model: str, targets: list, folder: Path,
                    settings: RenderSettings, batch: int = 4) -> dict:
    """Render channel pictures with `dreamkit.visualize` (each with its record, as `dreamkit
    vis` writes them), `batch` at a time so that a stop is heard between batches."""
    from dreamkit.visualize import visualize

    net = models.net(model)
    done = [0]

    def saved(path: Path) -> None:
        done[0] += 1
        job.step_done(done[0])

    for start in range(0, len(targets), batch):
        visualize(net, model, targets[start:start + batch], folder, settings, batch=batch,
                  grid=folder / "grid.png", saved=saved)
    return {}


# --------------------------------------------------------------------------- directions


def direction_files(folder: Path | None) -> list[dict]:
    """The direction files of the server's `--directions` folder, each described (model,
    layer, rows); unreadable ones are listed with why."""
    from dreamkit.directions import load_directions

    if folder is None:
        return []
    out = []
    for index, path in enumerate(sorted(Path(folder).glob("*.safetensors"))[:256]):
        entry = {"index": index, "name": path.name, "path": str(path.resolve())}
        try:
            found = load_directions(path)
            entry.update(model=found.model, layer=found.layer, rows=len(found.vectors),
                         method=found.method, describe=found.describe())
        except DreamkitError as exc:
            entry["error"] = str(exc)
        out.append(entry)
    return out
