"""An atlas site's page: each view's cells composited into one picture (opacity by how many
vectors, or how much attribution, fell in each cell), and one static page that opens from
disk (no server, no fetch: its data is in the page) with the map zoomable under a grid of
clickable cells; a click shows the cell's render, its count, its dataset examples, its
nearest channels (linked to a microscope site's channel pages when one is given) and its
nearest dictionary features.

A microscope site keeps channel c of layer L at `layers/<slug of L>/c<c>.html`, the slug being
L with every run of characters other than letters, digits, `_`, `.` and `-` replaced by `-`;
the links are relative paths from the atlas to those pages, made only where the page exists.
"""

from __future__ import annotations

import html
import json
import os
import re
from pathlib import Path
from urllib.parse import quote

import torch

from dreamkit.atlas.measure import measured, per_cell
from dreamkit.atlas.plan import Site
from dreamkit.directions import Directions, load_directions
from dreamkit.files import write_json, write_text
from dreamkit.image_io import load_image, save_image
from dreamkit.version import __version__

TILE = 64  # pixels a side of a cell in the composite
SIDE = 2048  # the most pixels a side of a composite (cells get smaller on large grids)
CHANNELS = 6  # nearest channels shown per cell
FEATURES = 6  # nearest dictionary features shown per cell
FAINTEST = 0.15  # opacity of the emptiest cell shown


def composite(site: Site, view: str) -> None:
    """The view's cells on one white picture, each at its place with opacity following the
    square root of its weight."""
    cells = site.layout["views"][view]
    grid = site.layout["grid"]
    tile = min(TILE, SIDE // grid)
    canvas = torch.ones(3, grid * tile, grid * tile)
    heaviest = max(c["weight"] for c in cells)
    for cell in cells:
        picture = load_image(site.picture(view, cell["cell"]))
        small = torch.nn.functional.interpolate(picture[None], size=(tile, tile),
                                                mode="area")[0]
        alpha = max(FAINTEST, (cell["weight"] / heaviest) ** 0.5)
        row, column = divmod(cell["cell"], grid)
        place = canvas[:, row * tile:(row + 1) * tile, column * tile:(column + 1) * tile]
        place.mul_(1 - alpha).add_(alpha * small)
    save_image(canvas, site.composite(view), quality=90)


def _slug(layer: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", layer).strip("-") or "layer"


def _channel_links(site: Site, microscope: str | os.PathLike[str] | None) -> dict[int, str]:
    """Channel -> relative link to its microscope page (those that exist)."""
    if microscope is None:
        return {}
    folder = Path(microscope).resolve() / "layers" / _slug(site.plan.layer)
    pages = {int(p.stem[1:]): p for p in folder.glob("c*.html") if p.stem[1:].isdigit()}
    root = site.root.resolve()
    return {c: quote(Path(os.path.relpath(p, root)).as_posix()) for c, p in pages.items()}


def _nearest(unit: torch.Tensor, others: torch.Tensor, count: int) -> list[list]:
    """Per row of `unit`, the `count` rows of `others` (unit) with the largest cosine."""
    cosines = unit @ others.T
    top = cosines.topk(min(count, others.shape[0]), dim=1)
    return [[[int(j), round(float(v), 3)] for v, j in zip(vs, js, strict=True)]
            for vs, js in zip(top.values, top.indices, strict=True)]


def _unit(vectors: torch.Tensor) -> torch.Tensor:
    return vectors / vectors.norm(dim=1, keepdim=True).clamp_min(1e-12)


def _view_data(site: Site, view: str, title: str, links: dict[int, str],
               features: Directions | None, faith: dict) -> dict:
    grid = site.layout["grid"]
    cells = site.layout["views"][view]
    unit = _unit(load_directions(site.directions(view)).vectors)
    shown = (json.loads(site.examples_data(view).read_text())["cells"]
             if site.examples_data(view).is_file() else {})
    top = unit.topk(min(CHANNELS, unit.shape[1]), dim=1)
    nearest = _nearest(unit, _unit(features.vectors), FEATURES) if features else None
    out = []
    for i, cell in enumerate(cells):
        number = cell["cell"]
        out.append({
            "cell": number, "row": number // grid, "col": number % grid, "count": cell["count"],
            "weight": round(cell["weight"], 4),
            "picture": f"cells/{view}/c{number}.jpg",
            "examples": [{"src": f"cells/{view}/e{number}_{e['i']}.jpg", "photo": e["photo"]}
                         for e in shown.get(str(number), [])],
            "channels": [[int(c), round(float(v), 3), links.get(int(c))]
                         for v, c in zip(top.values[i], top.indices[i], strict=True)],
            "features": nearest[i] if nearest else [],
            "faith": faith.get(str(number))})
    return {"name": view, "title": title, "image": f"atlas-{view}.jpg", "cells": out}


def write_site(site: Site, features: Directions | None,
               dictionary: str | os.PathLike[str] | None,
               microscope: str | os.PathLike[str] | None, wall: float) -> dict:
    """Composites, `atlas.json` (the figures, returned) and `index.html`."""
    from dreamkit.imagenet import class_names

    plan = site.plan
    for view in plan.views:
        composite(site, view)
    figures = measured(site, wall)
    links = _channel_links(site, microscope)
    names = class_names()
    titles = ["whole layer", *(f"class {c}: {names[c] if c < len(names) else c}"
                               for c in plan.classes)]
    views = [_view_data(site, view, title, links, features, per_cell(site, view)[0])
             for view, title in zip(plan.views, titles, strict=True)]
    dictionary_data = None
    if features is not None:
        layer = views[0]
        rows = _unit(load_directions(site.directions("layer")).vectors)
        best = (_unit(features.vectors) @ rows.T).max(dim=1)
        placed: dict[int, list] = {}
        for k, (cosine, row) in enumerate(zip(best.values, best.indices, strict=True)):
            placed.setdefault(layer["cells"][int(row)]["cell"], []).append(
                [k, round(float(cosine), 3)])
        dictionary_data = {"file": Path(dictionary).name, "features": len(features.vectors),
                           "placed": {str(c): v for c, v in placed.items()}}
        figures["dictionary"] = {"file": str(Path(dictionary).resolve()),
                                 "features": len(features.vectors),
                                 "cells_with_features": len(placed)}
    write_json(site.root / "atlas.json", figures)
    data = {"model": plan.model, "layer": plan.layer, "grid": site.layout["grid"],
            "views": views, "dictionary": dictionary_data, "figures": figures,
            "microscope": bool(links)}
    write_text(site.root / "index.html", _page(data))
    return figures


STYLE = """
body{font:14px system-ui,sans-serif;margin:1em 1.5em;color:#222;background:#fafafa}
h1{font-size:20px;margin:0 0 6px}.tabs button,.zoom button{margin-right:4px}
.tabs button.on{background:#2a5db0;color:#fff}#summary{color:#555;margin:4px 0 8px}
main{display:flex;gap:16px;align-items:flex-start}
#viewport{width:min(70vw,800px);height:min(70vw,800px);overflow:auto;border:1px solid #ccc;
background:#fff}
#stage{position:relative;width:100%}#map{display:block;width:100%}
#cells{position:absolute;inset:0;background-image:linear-gradient(to right,rgba(0,0,0,.12)
1px,transparent 1px),linear-gradient(to bottom,rgba(0,0,0,.12) 1px,transparent 1px)}
.cell{position:absolute;padding:0;border:0;background:transparent;cursor:pointer;
color:#fff;font:bold 11px sans-serif;text-shadow:0 0 2px #000}
.cell:hover,.cell:focus{outline:2px solid #2a5db0;outline-offset:-2px}
.cell.on{outline:3px solid #e0462a;outline-offset:-3px}
.cell.marked::after{content:"";position:absolute;right:3px;top:3px;width:7px;height:7px;
border-radius:50%;background:#e0462a;box-shadow:0 0 0 1px #fff}
#panel{flex:1;min-width:260px}#render{width:192px;height:192px;image-rendering:auto}
.row{display:flex;flex-wrap:wrap;gap:6px}figure{margin:0}
figcaption{font-size:11px;color:#555;max-width:112px;overflow-wrap:anywhere}
.examples img{height:96px}ul{margin:4px 0;padding-left:18px}
"""

SCRIPT = r"""
const A = JSON.parse(document.getElementById("atlas-data").textContent);
const $ = (id) => document.getElementById(id);
const el = (tag, text, attrs) => {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = text;
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
};
let current = null, zoom = 1;
const views = A.views.map((v) => ({...v, markers: false}));
if (A.dictionary) views.push({...A.views[0], name: "dictionary",
  title: "dictionary: " + A.dictionary.file, markers: true});
const f = A.figures, trust = f.layout.trustworthiness;
$("summary").textContent = `${A.model} · ${A.layer} · ${f.layout.vectors} vectors of ` +
  `${f.layout.photos} photos on a ${A.grid}×${A.grid} grid` + (trust === null ? "" :
  ` · trustworthiness ${trust.toFixed(3)} (PCA ${f.layout.trustworthiness_pca.toFixed(3)})`);
function show(view) {
  current = view;
  $("map").src = view.image;
  $("map").alt = "atlas of " + view.title;
  const layer = $("cells");
  layer.replaceChildren();
  layer.style.backgroundSize = `${100 / A.grid}% ${100 / A.grid}%`;
  for (const cell of view.cells) {
    const b = el("button", null, {"class": "cell", "data-cell": cell.cell,
      title: `cell ${cell.cell}: ${cell.count} vectors`});
    Object.assign(b.style, {left: `${cell.col * 100 / A.grid}%`, top: `${cell.row * 100 / A.grid}%`,
      width: `${100 / A.grid}%`, height: `${100 / A.grid}%`});
    if (view.markers && A.dictionary.placed[cell.cell]) b.classList.add("marked");
    b.addEventListener("click", () => pick(cell, b));
    layer.appendChild(b);
  }
  for (const t of document.querySelectorAll(".tabs button"))
    t.classList.toggle("on", t.dataset.view === view.name);
  const faith = f.views[view.name === "dictionary" ? "layer" : view.name].faithfulness;
  $("view-note").textContent = `${view.cells.length} cells; faithfulness: ` +
    `${pct(faith.beats_neighbours)} of cells beat their neighbours, ` +
    `${pct(faith.best_of_all)} beat every cell`;
  $("cell").hidden = true;
  $("hint").hidden = false;
}
const pct = (x) => x === null ? "n/a" : `${Math.round(100 * x)}%`;
function list(items, make) {
  const ul = el("ul");
  for (const item of items) ul.appendChild(make(item));
  return ul;
}
function pick(cell, button) {
  for (const b of document.querySelectorAll(".cell.on")) b.classList.remove("on");
  button.classList.add("on");
  $("cell").hidden = false;
  $("hint").hidden = true;
  $("cell-title").textContent = `cell ${cell.cell} (row ${cell.row}, column ${cell.col})`;
  $("render").src = cell.picture;
  $("count").textContent = `${cell.count} vectors` + (current.name.startsWith("class") ?
    `, attribution ${cell.weight.toPrecision(3)}` : "") + (cell.faith ?
    ` · its render's centre: cosine ${cell.faith.cosine.toFixed(2)} with this cell, ` +
    (cell.faith.best === cell.cell ? "the best of all cells" : `best cell ${cell.faith.best}`)
    : "");
  $("reproduce").textContent = "dreamkit reproduce " + cell.picture;
  const ex = $("examples");
  ex.replaceChildren();
  $("examples-box").hidden = !cell.examples.length;
  for (const e of cell.examples) {
    const fig = el("figure");
    fig.appendChild(el("img", null, {src: e.src, alt: "example from " + e.photo}));
    fig.appendChild(el("figcaption", e.photo));
    ex.appendChild(fig);
  }
  $("channels").replaceChildren(list(cell.channels, ([c, v, href]) => {
    const li = el("li");
    li.appendChild(href ? el("a", `channel ${c}`, {href}) : el("span", `channel ${c}`));
    li.appendChild(document.createTextNode(` ${v.toFixed(2)} of the direction`));
    return li;
  }));
  $("features-box").hidden = !A.dictionary;
  if (A.dictionary) {
    const placed = current.markers ? A.dictionary.placed[cell.cell] || [] : [];
    $("features").replaceChildren(list(cell.features, ([k, v]) =>
      el("li", `feature ${k}: cosine ${v.toFixed(2)}`)));
    $("placed").textContent = current.markers ? (placed.length ? "features placed here: " +
      placed.map(([k, v]) => `${k} (${v.toFixed(2)})`).join(", ") : "no feature placed here") : "";
  }
}
function setZoom(z) {
  zoom = Math.min(8, Math.max(1, z));
  $("stage").style.width = `${100 * zoom}%`;
  $("zoom-level").textContent = `${Math.round(zoom * 100)}%`;
}
$("zoom-in").addEventListener("click", () => setZoom(zoom * 1.25));
$("zoom-out").addEventListener("click", () => setZoom(zoom / 1.25));
$("viewport").addEventListener("wheel", (e) => {
  if (!e.ctrlKey && !e.altKey) return;
  e.preventDefault();
  setZoom(zoom * (e.deltaY < 0 ? 1.25 : 0.8));
}, {passive: false});
for (const view of views) {
  const t = el("button", view.title, {"data-view": view.name});
  t.addEventListener("click", () => show(view));
  $("tabs").appendChild(t);
}
show(views[0]);
setZoom(1);
"""


def _page(data: dict) -> str:
    e = html.escape
    title = f"{data['model']} · {data['layer']} · activation atlas"
    payload = json.dumps(data).replace("<", "\\u003c")
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{e(title)}'
            f'</title>\n<link rel="icon" href="data:,"><style>{STYLE}</style></head>\n<body>'
            f"<h1>{e(title)}</h1><div id=\"summary\"></div>"
            '<div class="tabs" id="tabs"></div>'
            '<p class="zoom"><button id="zoom-out" aria-label="zoom out">−</button>'
            '<button id="zoom-in" aria-label="zoom in">+</button><span id="zoom-level"></span>'
            ' · Ctrl + wheel zooms · <span id="view-note"></span></p>'
            '<main><div id="viewport"><div id="stage"><img id="map" alt="atlas">'
            '<div id="cells"></div></div></div>'
            '<section id="panel"><p id="hint">Click a cell to see its render and examples.</p>'
            '<div id="cell" hidden><h2 id="cell-title"></h2><img id="render" alt="render">'
            '<p id="count"></p><p><code id="reproduce"></code></p>'
            '<div id="examples-box"><h3>Dataset examples</h3>'
            '<div class="row examples" id="examples"></div></div>'
            '<h3>Nearest channels</h3><div id="channels"></div>'
            '<div id="features-box" hidden><h3>Nearest dictionary features</h3>'
            '<div id="features"></div><p id="placed"></p></div></div></section></main>'
            f"<p><small>Made by dreamkit {e(__version__)}; every render keeps its record."
            "</small></p>"
            f'<script type="application/json" id="atlas-data">{payload}</script>'
            f"<script>{SCRIPT}</script></body></html>\n")
