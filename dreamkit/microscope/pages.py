"""The static pages of a microscope site: an index of layers, one page per layer with a
lazy-loaded grid of its channels (search by number, arrow keys), and one page per channel with
its visualizations, dataset examples and strongest inputs. On a dictionary site the channels
are features: the index lists them by how often they are active, and each feature's page adds
its logit effects and a histogram of its codes. Pages open from disk: no server, no network,
every text escaped."""

from __future__ import annotations

import html
import json

from dreamkit.files import write_text
from dreamkit.microscope.plan import Site, slug
from dreamkit.version import __version__

STYLE = """
body{font:14px system-ui,sans-serif;margin:1.2em 2em;color:#222;background:#fafafa}
a{color:#2a5db0;text-decoration:none}a:hover{text-decoration:underline}
nav{margin-bottom:1em;color:#666}table{border-collapse:collapse}
td,th{padding:3px 10px;text-align:left;border-bottom:1px solid #ddd}
.grid{display:flex;flex-wrap:wrap;gap:6px}
.card{display:flex;flex-direction:column;align-items:center;padding:3px;border:2px solid
transparent;border-radius:4px;background:#fff;color:#333}
.card:focus,.card.found{border-color:#2a5db0;outline:none}
.card img{width:64px;height:64px;object-fit:cover;object-position:left}
.preview img{width:48px;height:48px;margin-right:2px;vertical-align:middle}
.big{width:224px;image-rendering:auto}.row{display:flex;flex-wrap:wrap;gap:10px}
figure{margin:0 0 8px}figcaption{font-size:12px;color:#555}
.example img{height:112px}ul{margin:4px 0}
.inputs{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:8px}
.inputs img{width:40px;height:40px;vertical-align:middle;margin-right:4px}
.hist rect{fill:#2a5db0}.hist text{font-size:10px;fill:#555}
"""

LAYER_SCRIPT = """
const cards = [...document.querySelectorAll(".card")];
const find = document.getElementById("find");
find.addEventListener("input", () => {
  cards.forEach(c => c.classList.remove("found"));
  const hit = cards.find(c => c.dataset.channel === find.value.trim());
  if (hit) { hit.classList.add("found"); hit.scrollIntoView({block: "center"}); }
});
find.addEventListener("keydown", (e) => {
  const hit = cards.find(c => c.dataset.channel === find.value.trim());
  if (e.key === "Enter" && hit) { window.location.href = hit.getAttribute("href"); }
});
document.addEventListener("keydown", (e) => {
  if (e.target === find) return;
  const i = cards.indexOf(document.activeElement);
  if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
    const next = i < 0 ? 0 : i + (e.key === "ArrowRight" ? 1 : -1);
    if (next >= 0 && next < cards.length) { cards[next].focus(); e.preventDefault(); }
  } else if (e.key === "/") { find.focus(); e.preventDefault(); }
});
"""

CHANNEL_SCRIPT = """
document.addEventListener("keydown", (e) => {
  const go = {ArrowLeft: "prev", ArrowRight: "next", Escape: "up"}[e.key];
  const link = go && document.getElementById(go);
  if (link) { window.location.href = link.getAttribute("href"); }
});
"""


PREVIEW = 10  # thumbnails per layer on the index


def _page(title: str, nav: str, body: str, script: str = "") -> str:
    e = html.escape
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{e(title)}'
            f'</title>\n<link rel="icon" href="data:,"><style>{STYLE}</style></head>\n<body>'
            f'<nav>{nav}</nav><h1>{e(title)}</h1>\n{body}\n'
            + (f"<script>{script}</script>" if script else "") + "</body></html>\n")


def _json(path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def write_pages(site: Site, tiers: dict[str, str], skipped: int) -> list:
    """Write every page of the site; returns their paths."""
    e = html.escape
    plan = site.plan
    unit = "feature" if plan.features else "channel"
    rows = []
    for layer, channels in zip(plan.layers, plan.channels, strict=True):
        folder = e(site.folder(layer).relative_to(site.root).as_posix())
        preview = "".join(f'<a href="{folder}/c{c}.html"><img loading="lazy" '
                          f'src="{folder}/t{c}.jpg" alt="{unit} {c}"></a>'
                          for c in channels[:PREVIEW])
        rows.append(f'<tr><td><a class="layer" href="{folder}/index.html">{e(layer)}</a></td>'
                    f"<td>{e(tiers.get(layer, ''))}</td><td>{len(channels)}</td>"
                    f'<td class="preview">{preview}</td></tr>')
    note = f"; {skipped} unreadable photos skipped" if skipped else ""
    what = (f"{sum(map(len, plan.channels))} channels of {len(plan.layers)} layers" if not
            plan.features else f"{len(plan.channels[0])} of the {plan.features.count} features "
            f"of the dictionary {e(plan.features.file.rsplit('/', 1)[-1])} of {e(plan.layers[0])}")
    body = (f"<p>{what}, with their feature visualizations"
            f"{', dataset examples from ' if plan.photos else ''}"
            f"{f'{len(plan.photos)} photos' if plan.photos else ''}{note}. Made by dreamkit "
            f"{e(__version__)}; every picture keeps its record: <code>dreamkit reproduce "
            "PICTURE.jpg</code> makes it again.</p>\n<table><tr><th>layer</th><th>tier</th>"
            f"<th>{unit}s</th><th>first {unit}s</th></tr>" + "".join(rows) + "</table>")
    if plan.features:
        body += _feature_table(site)
    written = [write_text(site.root / "index.html",
                          _page(f"{plan.model} microscope", "dreamkit microscope", body))]
    for layer, channels, spatial in zip(plan.layers, plan.channels, plan.spatial, strict=True):
        written += _layer_pages(site, layer, list(channels), spatial)
    return written


def _layer_pages(site: Site, layer: str, channels: list[int], spatial: bool) -> list:
    e = html.escape
    plan = site.plan
    examples = _json(site.examples_data(layer)).get("channels", {})
    circuits = _json(site.circuits(layer))
    previous = plan.previous(layer)
    before = set(plan.channels[plan.layers.index(previous)]) if previous else set()
    unit = "feature" if plan.features else "channel"
    effects = _json(site.effects(layer))
    cards = []
    for c in channels:
        best = (f'<img loading="lazy" src="e{c}_0.jpg" alt="best example of {c}">'
                if examples.get(str(c)) else "")
        cards.append(f'<a class="card" href="c{c}.html" data-channel="{c}" tabindex="0">'
                     f'<img loading="lazy" src="t{c}.jpg" alt="{unit} {c}">{best}'
                     f"<span>{c}</span></a>")
    nav = '<a href="../../index.html">all layers</a>'
    body = (f'<p><label>{unit} <input id="find" type="number" min="0" autocomplete="off">'
            "</label> (/ to search, arrow keys to move, Enter to open)</p>\n"
            f'<div class="grid">{"".join(cards)}</div>')
    title = f"{plan.model} · {layer}" + (" features" if plan.features else "")
    written = [write_text(site.folder(layer) / "index.html",
                          _page(title, nav, body, LAYER_SCRIPT))]
    for i, c in enumerate(channels):
        links = [f'<a id="up" href="index.html">{e(layer)}</a>']
        if i > 0:
            links.append(f'<a id="prev" href="c{channels[i - 1]}.html">← {channels[i - 1]}</a>')
        if i + 1 < len(channels):
            links.append(f'<a id="next" href="c{channels[i + 1]}.html">{channels[i + 1]} →</a>')
        objective = ("the decoder atom as a direction objective" if plan.features
                     else "channel objective")
        parts = [f'<section><h2>Feature visualization</h2><div class="row"><figure>'
                 f'<img class="big" src="c{c}.jpg" alt="visualization of {unit} {c}">'
                 f"<figcaption>{objective}</figcaption></figure>"]
        if spatial and not plan.features:
            parts.append(f'<figure><img class="big" src="n{c}.jpg" alt="neuron {c}">'
                         "<figcaption>centre neuron</figcaption></figure>")
        parts.append("</div>")
        if plan.variants:
            variants = "".join(f'<figure><img src="v{c}_{j}.jpg" alt="variant {j}"></figure>'
                               for j in range(plan.variants))
            parts.append(f'<h3>Diverse variants</h3><div class="row">{variants}</div>')
        parts.append("</section>")
        shown = examples.get(str(c), [])
        if shown:
            figures = "".join(
                f'<figure class="example"><img src="e{c}_{j}.jpg" alt="example {j}">'
                f"<figcaption>{item['value']:.3g} · {e(item['photo'].rsplit('/', 1)[-1])}"
                "</figcaption></figure>" for j, item in enumerate(shown))
            what = ("feature's code (its activation, from the dictionary's encoder at each "
                    "position)" if plan.features else "channel's activation")
            parts.append("<section><h2>Dataset examples</h2><p>The photos that excite it most"
                         f", cut around the most active position (left) and with the {what}"
                         f' over it (right).</p><div class="row">{figures}</div></section>')
        inputs = circuits.get("channels", {}).get(str(c))
        if inputs:
            parts.append(_circuit(inputs, previous or "", before))
        if effects.get("features", {}).get(str(c)):
            parts.append(_effects(effects, str(c), layer))
        written.append(write_text(site.folder(layer) / f"c{c}.html", _page(
            f"{plan.model} · {layer} · {unit} {c}", " · ".join(links), "".join(parts),
            CHANNEL_SCRIPT)))
    return written


def _circuit(inputs: dict, previous: str, before: set[int]) -> str:
    e = html.escape
    folder = f"../{e(slug(previous))}"

    def item(j: int, weight: float) -> str:
        name = f"{e(previous)} {j}: {weight:+.3g}"
        if j not in before:
            return f"<li>{name}</li>"
        return (f'<li><a href="{folder}/c{j}.html"><img loading="lazy" src="{folder}/t{j}.jpg" '
                f'alt="channel {j}">{name}</a></li>')

    def lists(found: dict) -> str:
        return "".join(f'<h3>{sign}</h3><ul class="inputs">'
                       f"{''.join(item(j, w) for j, w in found[sign])}</ul>"
                       for sign in ("positive", "negative") if found.get(sign))

    text = ("<section><h2>Strongest inputs</h2><p>Channels of the previous layer on this site, "
            f"{e(previous)}, by activation × gradient on this channel's visualization.</p>"
            + lists(inputs["site"]))
    if inputs["all"] != inputs["site"]:
        text += f"<p>Among all of {e(previous)}'s channels:</p>" + lists(inputs["all"])
    return text + "</section>"


def _classes(pairs: list) -> str:
    return ", ".join(f"{html.escape(name)} ({change:+.2f})" for name, change in pairs) or "none"


def _effects(effects: dict, c: str, layer: str) -> str:
    """A feature's logit effects and the histogram of its codes."""
    mine = effects["features"][c]
    return ("<section><h2>Logit effects</h2><p>The change of the logits when the feature's "
            f"decoder atom, at its mean code where active (+{mine['strength']:.3g} in "
            f"{html.escape(layer)}'s units), is added at every position, measured through the "
            f"rest of the network (not a linear approximation), mean over {effects['photos']} "
            "photos.</p>"
            f"<p><b>pushes up</b>: {_classes(mine['up'])}</p>"
            f"<p><b>pushes down</b>: {_classes(mine['down'])}</p></section>"
            "<section><h2>Activation histogram</h2>"
            f"<p>Active at {mine['frequency']:.2%} of {effects['positions']:,} positions of the"
            f" photos (mean code there {mine['mean']:.3g}); the codes where active, on a log "
            f"scale:</p>{_histogram(mine['counts'], effects['edges'])}</section>")


def _histogram(counts: list[int], edges: list[float], bars: int = 32) -> str:
    """An inline SVG bar chart of counts over log-spaced bins, cropped to the bins in use and
    merged to at most `bars` bars."""
    used = [i for i, n in enumerate(counts) if n] or [0]
    first, last = used[0], used[-1] + 1
    group = -(-(last - first) // bars)
    merged = [sum(counts[i:min(i + group, last)]) for i in range(first, last, group)]
    width, height, top = 320, 80, max(max(merged), 1)
    step = width / len(merged)
    shapes = "".join(f'<rect x="{i * step:.1f}" y="{height - height * n / top:.1f}" '
                     f'width="{max(step - 1, 1):.1f}" height="{height * n / top:.1f}"></rect>'
                     for i, n in enumerate(merged) if n)
    ends = (edges[first], edges[min(first + group * len(merged), len(edges) - 1)])
    labels = (f'<text x="0" y="{height + 12}">{ends[0]:.3g}</text>'
              f'<text x="{width - 30}" y="{height + 12}">{ends[1]:.3g}</text>')
    return (f'<svg class="hist" width="{width}" height="{height + 16}" role="img" '
            f'aria-label="histogram of the codes">{shapes}{labels}</svg>')


def _feature_table(site: Site) -> str:
    """The index's list of a dictionary site's features, most often active first, with what
    each pushes up."""
    e = html.escape
    layer = site.plan.layers[0]
    folder = e(site.folder(layer).relative_to(site.root).as_posix())
    found = _json(site.effects(layer)).get("features", {})
    channels = sorted(site.plan.channels[0],
                      key=lambda c: -found.get(str(c), {}).get("frequency", 0))
    rows = []
    for c in channels:
        mine = found.get(str(c), {})
        share = f"{mine['frequency']:.2%}" if mine else "–"
        up = _classes(mine.get("up", [])[:3]) if mine else "–"
        rows.append(f'<tr><td><a class="feature" href="{folder}/c{c}.html"><img loading="lazy" '
                    f'src="{folder}/t{c}.jpg" alt="feature {c}"> {c}</a></td><td>{share}</td>'
                    f"<td>{up}</td></tr>")
    return ("<h2>Features</h2><p>Most often active on the photos first: the share of the "
            "photos' positions where the feature's code is above zero, and the classes it "
            "pushes up most.</p><table class=\"preview\"><tr><th>feature</th><th>active</th>"
            "<th>pushes up</th></tr>" + "".join(rows) + "</table>")
