"""A gallery's contact sheet: its tiles with the row labels on the left and the column labels
on top (the drawer of `dreamkit.sheets`), saved with the config it was made from."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from dreamkit.gallery.config import Gallery
from dreamkit.image_io import save_image
from dreamkit.records import KEY
from dreamkit.sheets import contact_sheet, to_tensor
from dreamkit.version import __version__


def write_sheet(gallery: Gallery, folder: Path, name: str = "sheet.png") -> Path:
    """Assemble the finished tiles under `folder` into `folder/name` (PNG, atomic)."""
    cells = []
    for tile in sorted(gallery.tiles, key=lambda t: (t.row, t.column)):
        with Image.open(folder / tile.name) as image:
            cells.append(image.convert("RGB"))
    sheet = contact_sheet(cells, columns=len(gallery.columns.values),
                          row_labels=gallery.rows.labels, column_labels=gallery.columns.labels,
                          title=gallery.title)
    record = {"version": __version__, "command": "gallery", "config": gallery.config}
    return save_image(to_tensor(sheet), folder / name, metadata={KEY: json.dumps(record)})
