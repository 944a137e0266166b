"""The tour notebook (gallery/tour.ipynb) runs end to end, and every display in it holds an
image of the size its cell promises (cell metadata `dreamkit.expect`, one entry per picture:
a grid of columns x rows cells of a given size, or an exact size)."""

from __future__ import annotations

import base64
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from tests.helpers import PHOTOS, ROOT, requires_photos, requires_weights

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

TOUR = ROOT / "gallery" / "tour.ipynb"
MARGIN = 48  # labels, titles and padding around a grid, in pixels


def pictures(cell) -> list[Image.Image]:
    """The images a code cell displayed, in order (PNG outputs and PNGs inside HTML)."""
    found = []
    for output in cell.get("outputs", []):
        data = output.get("data", {})
        blobs = [data["image/png"]] if "image/png" in data else \
            re.findall(r'src="data:image/png;base64,([^"]+)"', data.get("text/html", ""))
        found += [Image.open(io.BytesIO(base64.b64decode(b))).convert("RGB") for b in blobs]
    return found


def check_picture(image: Image.Image, expect: dict) -> None:
    width, height = image.size
    if expect["kind"] == "exact":
        assert [width, height] == expect["size"]
        return
    columns, rows = expect["columns"], expect["rows"]
    cell_w, cell_h = expect["cell"]
    assert columns * cell_w <= width <= columns * (cell_w + 8) + MARGIN, (image.size, expect)
    assert rows * cell_h <= height <= rows * (cell_h + 24) + MARGIN, (image.size, expect)
    assert max(ImageStat.Stat(image).stddev) > 10, "a flat picture"


def check_notebook(notebook) -> int:
    shown = 0
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, errors
        expected = cell.metadata.get("dreamkit", {}).get("expect", [])
        found = pictures(cell)
        assert len(found) == len(expected), cell.source
        for image, expect in zip(found, expected, strict=True):
            check_picture(image, expect)
        shown += len(found)
    return shown


def test_committed_tour_is_executed_and_small():
    assert TOUR.stat().st_size < 1_000_000
    assert check_notebook(nbformat.read(TOUR, as_version=4)) >= 10


@pytest.mark.slow
@requires_weights
@requires_photos
def test_tour_executes_from_scratch(tmp_path: Path):
    out = tmp_path / "tour.ipynb"
    command = [sys.executable, str(ROOT / "scripts" / "run_tour.py"), "-o", str(out)]
    done = subprocess.run(command, env={**os.environ, "DREAMKIT_PHOTOS": str(PHOTOS)},
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    executed = nbformat.read(out, as_version=4)
    committed = nbformat.read(TOUR, as_version=4)
    assert [c.source for c in executed.cells] == [c.source for c in committed.cells]
    assert check_notebook(executed) >= 10
