"""The static page of a gallery: the grid of tiles, and each tile large with its record on
click. It opens from disk (no server, no network) and escapes everything it shows."""

from __future__ import annotations

import html
import json
from pathlib import Path

from dreamkit.files import write_text
from dreamkit.gallery.config import Gallery
from dreamkit.version import __version__

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
    """The index page: the grid of tiles; a click shows a tile large with its recipe."""
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
                f'data-settings="{e(json.dumps(tile.recipe.to_dict()))}">'
                f'<img src="{e(tile.name)}" alt="{e(caption)}" loading="eager"></a></td>'
            )
        body.append(f'<tr><th class="row">{e(row_label)}</th>{"".join(cells)}</tr>')
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>
<link rel="icon" href="data:,"><style>{STYLE}</style></head>
<body><h1>{e(title)}</h1>
<p>{len(gallery.tiles)} tiles made by dreamkit {e(__version__)}; click a tile to see it large with
its settings. <a href="{e(sheet)}">Contact sheet</a>.
Any tile: <code>dreamkit reproduce TILE.png</code> makes it again.</p>
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
    return write_text(folder / "index.html", html_page(gallery, sheet))
