"""`visualize(net, model, targets, output)`: render targets from noise in batches, each picture
saved with the record of its whole batch (so `reproduce` makes the same pixels), and a
labelled contact sheet; the library call behind `dreamkit vis`."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from dreamkit.errors import DreamkitError
from dreamkit.settings import (
    MAX_SEED,
    MAX_TARGETS,
    PIXEL_BUDGET,
    SAVE_EXTENSIONS,
    Bounds,
    RenderSettings,
    check,
)
from dreamkit.targets import Target


def visualize(net, model: str, targets: Sequence[Target], output: str | os.PathLike[str],
              settings: RenderSettings | None = None, *, batch: int = 64,
              grid: str | os.PathLike[str] | None = None, inputs: Sequence = (),
              progress: bool = False, saved: Callable[[Path], None] | None = None) -> Path:
    """Render each resolved target of `net` (named `model` in the records) into
    `output/<stem>.png`, `batch` at a time (fewer when a batch would pass the pixel budget;
    target k gets seed `settings.seed + k`), and their contact sheet to `grid` (default
    `output/grid.png`), which is returned. Outputs are checked before any work: none may
    replace one of `inputs` or a target's file. `saved(path)` is called for each picture."""
    from dreamkit.image_io import save_image
    from dreamkit.sheets import contact_sheet, to_tensor

    settings = settings or RenderSettings()
    check("batch", batch, Bounds(int, low=1, high=MAX_TARGETS))
    if settings.seed + len(targets) - 1 > MAX_SEED:
        raise DreamkitError(f"seed {settings.seed} leaves no room for {len(targets)} targets")
    out = Path(output)
    sheet_path = check_outputs(targets, out, grid, inputs)
    size = max(1, min(batch, PIXEL_BUDGET // settings.size**2))
    images = []
    for start in range(0, len(targets), size):
        images += _render_batch(net, model, list(targets[start:start + size]),
                                settings.replace(seed=settings.seed + start), out, progress,
                                saved)
    sheet = contact_sheet(images, captions=[t.label() for t in targets])
    return save_image(to_tensor(sheet), sheet_path)


def check_outputs(targets: Sequence[Target], output: str | os.PathLike[str],
                  grid: str | os.PathLike[str] | None = None, inputs: Sequence = ()) -> Path:
    """The contact sheet's path, after checking every output `visualize` writes: 1 to
    `MAX_TARGETS` targets, an image extension, writable places that replace none of `inputs`
    nor a target's file."""
    from dreamkit.files import check_not_input, check_writable

    if not targets or len(targets) > MAX_TARGETS:
        raise DreamkitError(f"{len(targets)} targets; one run renders at most {MAX_TARGETS}")
    out = Path(output)
    sheet_path = Path(grid) if grid else out / "grid.png"
    if sheet_path.suffix.lower() not in SAVE_EXTENSIONS:
        raise DreamkitError(f"{sheet_path}: cannot save with '{sheet_path.suffix}'; use "
                            f"{', '.join(SAVE_EXTENSIONS)}")
    files = [*(t.file for t in targets), *inputs]
    for path in [*(out / f"{t.stem()}.png" for t in targets), sheet_path]:
        check_not_input(path, files, forceable=False)
        check_writable(path)
    return sheet_path


def _render_batch(net, model: str, chunk: list[Target], settings: RenderSettings, out: Path,
                  progress: bool, saved: Callable[[Path], None] | None) -> list:
    """Render one batch of targets; save each picture with its record."""
    from dreamkit.image_io import save_image
    from dreamkit.records import Recipe, Record, provenance
    from dreamkit.render import render
    from dreamkit.targets import picture_objective

    pictures = tuple((t,) for t in chunk)
    result = render(net, picture_objective(pictures, model), settings, batch=len(chunk),
                    progress=progress)
    ran = provenance(result.ran)
    for i, (target, image) in enumerate(zip(chunk, result.images, strict=True)):
        recipe = Recipe("vis", model, (target,), settings, batch=pictures, index=i)
        record = Record(recipe, net.weights_sha256(), ran)
        path = save_image(image, out / f"{target.stem()}.png", metadata=record.metadata())
        if saved is not None:
            saved(path)
    return list(result.images)
