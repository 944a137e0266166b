"""Pictures that show themselves in notebooks, through IPython's display protocol.

`show(images, labels=...)` turns any batch of images into a `Picture`: a labelled grid that a
notebook displays inline (`_repr_png_`) and a script can `save`. Render results, dreams,
direction files and linearity reports build on it. `Preview` is a step callback (`on_step=`)
that refreshes one displayed picture every few steps while a render or dream runs. Nothing here
imports IPython until a preview is first shown.
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image

from dreamkit.checks import check_images
from dreamkit.errors import DreamkitError
from dreamkit.sheets import MAX_CELL, contact_sheet, to_tensor

MAX_TITLE = 120  # characters of a grid's title
Images = torch.Tensor | Image.Image | Sequence[torch.Tensor | Image.Image]


class Picture:
    """One RGB image that shows itself in a notebook (PNG) and saves like any dreamkit picture."""

    def __init__(self, image: Image.Image, alt: str = ""):
        self.image = image.convert("RGB")
        self.alt = alt

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.image.size

    def png(self) -> bytes:
        buffer = io.BytesIO()
        self.image.save(buffer, format="PNG", optimize=True)
        return buffer.getvalue()

    def _repr_png_(self) -> bytes:
        return self.png()

    def html(self) -> str:
        """An `<img>` tag holding the PNG (for composing richer HTML reprs)."""
        data = base64.b64encode(self.png()).decode("ascii")
        return (f'<img src="data:image/png;base64,{data}" width="{self.size[0]}" '
                f'alt="{html.escape(self.alt)}"/>')

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write it through `save_image` (atomic; PNG or JPEG by the extension)."""
        from dreamkit.image_io import save_image

        return save_image(to_tensor(self.image), path)

    def __repr__(self) -> str:
        return f"Picture({self.size[0]}x{self.size[1]}{', ' + self.alt if self.alt else ''})"


def _cells(images: Images) -> list[torch.Tensor | Image.Image]:
    """The images as a list of (3, H, W) tensors in [0, 1] or PIL images, each checked."""
    if isinstance(images, Image.Image):
        return [images]
    if isinstance(images, torch.Tensor):
        return list(check_images(images, "images")) if images.dim() == 4 else \
            [check_images(images, "images")]
    if isinstance(images, (str, bytes)) or not isinstance(images, Sequence):
        raise DreamkitError(f"show() takes a tensor, a PIL image or a list of them, not "
                            f"{type(images).__name__}")
    cells = []
    for i, cell in enumerate(images):
        if isinstance(cell, torch.Tensor) and cell.dim() == 4 and cell.shape[0] == 1:
            cell = cell[0]
        if not isinstance(cell, Image.Image):
            if not isinstance(cell, torch.Tensor) or cell.dim() != 3:
                what = tuple(cell.shape) if isinstance(cell, torch.Tensor) else \
                    type(cell).__name__
                raise DreamkitError(f"show(): images[{i}] must be a (3, H, W) tensor or a PIL "
                                    f"image, not {what}")
            check_images(cell, f"images[{i}]")
        cells.append(cell)
    return cells


def show(images: Images, labels: Sequence[str] | None = None, *, columns: int | None = None,
         title: str = "", max_cell: int = MAX_CELL) -> Picture:
    """Any batch of images (a (B, 3, H, W) tensor in [0, 1], a list of (3, H, W) tensors or
    PIL images) as one labelled grid (up to 8 a row); in a notebook it displays itself."""
    cells = _cells(images)
    if not cells:
        raise DreamkitError("show() needs at least one image")
    if labels is not None and (isinstance(labels, str) or len(labels) != len(cells)
                               or not all(isinstance(t, str) for t in labels)):
        count = "a string" if isinstance(labels, str) else f"{len(labels)} labels"
        raise DreamkitError(f"show() takes one string label per image ({len(cells)}), not "
                            f"{count}" + ("" if isinstance(labels, str) or len(labels)
                                          != len(cells) else " of other types"))
    for name, value, low in (("columns", columns, 1), ("max_cell", max_cell, 8)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < low):
            raise DreamkitError(f"show(): {name} must be a whole number >= {low}, not {value!r}")
    title = title if len(title) <= MAX_TITLE else title[:MAX_TITLE - 1] + "…"
    sheet = contact_sheet(cells, columns=columns or min(len(cells), 8), title=title,
                          captions=list(labels) if labels else None, max_cell=max_cell)
    return Picture(sheet, title or ", ".join(labels or []))


class Preview:
    """A step callback for `render`/`dream` (`on_step=Preview(every=16)`) that shows the images
    so far and refreshes that one picture every `every` steps (and nothing outside IPython)."""

    def __init__(self, every: int = 16, labels: Sequence[str] | None = None, max_cell: int = 160):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise DreamkitError(f"Preview(every=...) must be a whole number >= 1, not {every!r}")
        self.every, self.labels, self.max_cell = every, labels, max_cell
        self.handle = None
        self.shown = 0

    def __call__(self, step: int, images: torch.Tensor, values: torch.Tensor) -> None:
        if step % self.every:
            return
        try:
            from IPython import get_ipython
            from IPython.display import display
        except ImportError:
            return
        if get_ipython() is None:
            return
        title = f"step {step}: objective {values.float().mean().item():.4g}"
        picture = show(images.detach().float().clamp(0, 1).cpu(), self.labels, title=title,
                       max_cell=self.max_cell)
        if self.handle is None:
            self.handle = display(picture, display_id=True)
        else:
            self.handle.update(picture)
        self.shown += 1


def heat_strip(matrix: torch.Tensor, row_height: int = 12, min_width: int = 512) -> Picture:
    """Rows of values (K, C) as coloured bands, one per row: red positive, blue negative,
    white zero, each row scaled by its largest magnitude (e.g. directions over channels)."""
    m = matrix.detach().float().cpu()
    m = m / m.abs().amax(1, keepdim=True).clamp_min(1e-12)
    pos, neg = m.clamp(min=0), (-m).clamp(min=0)
    rgb = torch.stack([1 - neg, 1 - pos - neg, 1 - pos]).clamp(0, 1)
    widen = max(1, -(-min_width // m.shape[1]))
    rgb = rgb.repeat_interleave(row_height, 1).repeat_interleave(widen, 2)
    return Picture(Image.fromarray((rgb * 255).round().byte().permute(1, 2, 0).numpy()),
                   "directions over channels")
