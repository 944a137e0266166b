"""Contact sheets: pictures in a labelled grid on white (vis grids, gallery sheets, microscope
overviews). One drawer for all of them: an optional title, row labels on the left, column
labels on top and a caption under each cell."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

GAP = 4
PAD = 8
FONT_SIZE = 13
MAX_LABEL = 28  # characters shown of a label
MAX_CELL = 256  # larger pictures are shrunk in the sheet
INK = (30, 30, 30)


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=FONT_SIZE)
    except TypeError:  # Pillow < 10.1: the small bitmap font only
        return ImageFont.load_default()


def _short(label: str) -> str:
    return label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1] + "…"


def to_pil(image: torch.Tensor | Image.Image) -> Image.Image:
    """A (3, H, W) tensor in [0, 1] (or a PIL image) as an RGB PIL image."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    pixels = (image.detach().float().clamp(0, 1) * 255).round().byte().permute(1, 2, 0)
    return Image.fromarray(pixels.cpu().numpy())


def to_tensor(image: Image.Image) -> torch.Tensor:
    """An RGB PIL image as a (3, H, W) float tensor in [0, 1]."""
    return torch.from_numpy(np.asarray(image.convert("RGB")).copy()).permute(2, 0, 1).float() / 255


def contact_sheet(
    cells: Sequence[torch.Tensor | Image.Image],
    *,
    columns: int | None = None,
    captions: Sequence[str] | None = None,
    row_labels: Sequence[str] | None = None,
    column_labels: Sequence[str] | None = None,
    title: str = "",
    max_cell: int = MAX_CELL,
) -> Image.Image:
    """The cells in a grid (row by row), each shrunk to fit `max_cell`, labelled."""
    n = len(cells)
    columns = columns or len(column_labels or []) or min(n, max(1, round(n**0.5 * 1.25)))
    rows = -(-n // columns)
    font = _font()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def width(text: str) -> int:
        return int(math.ceil(measure.textlength(text, font=font)))

    images = []
    for cell in cells:
        image = to_pil(cell)
        image.thumbnail((max_cell, max_cell), Image.Resampling.LANCZOS)
        images.append(image)
    cell_w = max(im.width for im in images)
    cell_h = max(im.height for im in images)
    line = FONT_SIZE + PAD // 2
    caption_h = line if captions else 0
    rows_text = [_short(s) for s in row_labels or []]
    columns_text = [_short(s) for s in column_labels or []]
    left = max(map(width, rows_text)) + 2 * PAD if any(rows_text) else PAD
    top = (line + PAD if title else 0) + (line if any(columns_text) else 0) + PAD
    step_x, step_y = cell_w + GAP, cell_h + caption_h + GAP
    sheet = Image.new("RGB", (max(left + columns * step_x + PAD - GAP, width(title) + 2 * PAD),
                              top + rows * step_y + PAD - GAP), "white")
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((PAD, PAD // 2), title, fill=INK, font=font)
    for c, text in enumerate(columns_text):
        x = left + c * step_x + max(0, (cell_w - width(text)) // 2)
        draw.text((x, top - line), text, fill=INK, font=font)
    for r, text in enumerate(rows_text):
        draw.text((PAD, top + r * step_y + (cell_h - FONT_SIZE) // 2), text, fill=INK, font=font)
    for i, image in enumerate(images):
        x, y = left + (i % columns) * step_x, top + (i // columns) * step_y
        sheet.paste(image, (x, y))
        if captions:
            text = captions[i]
            while text and width(text) > cell_w:
                text = text[:-2] + "…" if len(text) > 2 else ""
            draw.text((x + 1, y + cell_h + 1), text, fill=INK, font=font)
    return sheet
