"""The linearity report: measure every network (trained, and the two untrained baselines),
write `linearity.json` / `.csv`, print the summary tables and draw `linearity.png`."""

from __future__ import annotations

import csv
import html
import io
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import torch

from dreamkit.files import atomic_path, write_json
from dreamkit.linearity import baselines
from dreamkit.linearity.measure import Options, Row, measure
from dreamkit.linearity.stats import Resamples
from dreamkit.models.base import Model
from dreamkit.progress import tqdm

WEIGHTS = ("trained", "kaiming", "shuffled")


def sample_photos(folder: str | os.PathLike[str], count: int, size: int
                  ) -> tuple[torch.Tensor, list[Path]]:
    """`count` photos spread evenly over the folder's sorted files (one view each: the short
    side resized to `size`, centre-cropped square), and their paths."""
    from kornia.geometry.transform import center_crop, resize

    from dreamkit.errors import DreamkitError
    from dreamkit.image_io import list_images, load_image

    files = list_images(folder)
    if len(files) < count:
        raise DreamkitError(f"{folder}: {len(files)} photos, fewer than the {count} asked for "
                            "(--count)")
    step = len(files) / count
    chosen = [files[int(i * step)] for i in range(count)]
    views = [center_crop(resize(load_image(f)[None], size, side="short", antialias=True),
                         (size, size))[0].clamp(0, 1) for f in chosen]
    return torch.stack(views), chosen


PARTNERS = 2  # other photos each photo is paired with
BASELINE_SEED = 0  # one fixed draw of the baselines' weights and random directions


def partners(n: int, seed: int, count: int = PARTNERS) -> torch.Tensor:
    """`count` pairings (count, n) of each photo with others (never itself, never the same
    partner twice), seeded."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    found = torch.empty(count, n, dtype=torch.long)
    for shift in range(count):
        found[shift, order] = order.roll(-(shift + 1))
    return found


NOTEBOOK_DPI = 56  # the plot shown in a notebook (the file's is 80)


class Report(list):
    """The rows (`Row`) of a report, a list; `tables()` is the summary the command prints, and
    in a notebook the report shows its tables and its plot."""

    def tables(self) -> str:
        return tables(self)

    def __repr__(self) -> str:
        networks = ", ".join(dict.fromkeys(r.network for r in self))
        return f"Report({len(self)} numbers: {networks}; .tables() gives the summary)"

    def _repr_html_(self) -> str:
        from dreamkit.display import Picture
        from dreamkit.errors import DreamkitError
        from dreamkit.sheets import to_pil

        parts = [markdown_html(self.tables())]
        try:
            from dreamkit.linearity.plot import report_figure

            plot = to_pil(report_figure(self, dpi=NOTEBOOK_DPI))
            parts.append(Picture(plot, "linearity plot").html())
        except DreamkitError as exc:  # no matplotlib: the tables alone
            parts.append(f"<p>{html.escape(str(exc))}</p>")
        return "\n".join(parts)


def markdown_html(text: str) -> str:
    """The summary's markdown (### headings, pipe tables, lines) as HTML."""
    out: list[str] = []
    rows: list[list[str]] = []

    def flush() -> None:
        if rows:
            head, *body = rows
            cells = ["<tr>" + "".join(f"<th>{c}</th>" for c in head) + "</tr>"]
            cells += ["<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in body]
            out.append("<table>" + "".join(cells) + "</table>")
            rows.clear()

    for line in text.splitlines():
        if line.startswith("|"):
            cells = [html.escape(c.strip()) for c in line.strip().strip("|").split("|")]
            if not all(set(c) <= set("-: ") for c in cells):  # skip the |---| rule
                rows.append(cells)
            continue
        flush()
        if line.startswith("#"):
            out.append(f"<h4>{html.escape(line.lstrip('#').strip())}</h4>")
        elif line.strip():
            out.append(f"<p>{html.escape(line)}</p>")
    flush()
    return "\n".join(out)


def run_report(nets: Sequence[Callable[[], Model]], photos: torch.Tensor, options: Options,
               progress: bool = False) -> Report:
    """Rows for every network (each made by its loader), with both untrained baselines."""
    partner = partners(len(photos), options.seed)
    resamples = Resamples(len(photos), options.resamples, options.seed)
    rows: list[Row] = []
    jobs = [(load, weights) for load in nets for weights in WEIGHTS]
    for load, weights in tqdm(jobs, disable=not progress, unit="network", leave=False):
        net = load()
        if weights == "kaiming":
            net = baselines.kaiming(net, photos, BASELINE_SEED, options.batch)
        elif weights == "shuffled":
            net = baselines.shuffled(net, photos, BASELINE_SEED, options.batch)
        mine = net.layers.names
        chosen = Options(**{**options.__dict__,
                            "superposition": tuple(n for n in options.superposition if n in mine),
                            "layers": tuple(n for n in options.layers if n in mine)})
        rows += measure(net, photos, partner, weights, chosen, resamples)
    return Report(rows)


# --------------------------------------------------------------------------- files


def write_table(rows: Sequence[Row], outdir: str | os.PathLike[str], info: dict) -> list[Path]:
    """`linearity.json` (info + rows) and `linearity.csv` in `outdir`."""
    outdir = Path(outdir)
    json_path = write_json(outdir / "linearity.json", {**info, "rows": [asdict(r) for r in rows]})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(Row.__dataclass_fields__))
    writer.writeheader()
    writer.writerows(asdict(r) for r in rows)
    with atomic_path(outdir / "linearity.csv") as tmp:
        tmp.write_text(buffer.getvalue())
    return [json_path, outdir / "linearity.csv"]


# --------------------------------------------------------------------------- tables


def _pick(rows: Sequence[Row], **fields) -> dict[str, Row]:
    return {r.layer: r for r in rows if all(getattr(r, k) == v for k, v in fields.items())}


def _cell(row: Row | None, percent: bool = False) -> str:
    if row is None:
        return "–"
    scale = 100 if percent else 1
    text = f"{row.value * scale:.0f}%" if percent else f"{row.value:.2f}"
    if math.isnan(row.low):
        return text
    if percent:
        return f"{text} [{row.low * scale:.0f}, {row.high * scale:.0f}]"
    return f"{text} [{row.low:.2f}, {row.high:.2f}]"


def _table(header: Sequence[str], lines: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(line) + " |" for line in lines]
    return "\n".join(out)


def tables(rows: Sequence[Row]) -> str:
    """The summary the command prints (and the README quotes), network by network."""
    parts = []
    for network in dict.fromkeys(r.network for r in rows):
        mine = [r for r in rows if r.network == network]
        trained = [r for r in mine if r.weights == "trained"]
        layers = sorted({(r.depth, r.layer) for r in trained if r.space == "pixels" and r.layer})
        n = next(r.n for r in trained if r.space == "pixels")
        parts.append(f"### {network} ({n} photos; value [95% bootstrap interval over photos])")
        px = [r for r in trained if r.space == "pixels" and r.directions == "photos"]
        columns = [("homogeneity", 0.5, "yardstick"), ("homogeneity", 2.0, "yardstick"),
                   ("additivity", None, "yardstick"), ("blend", 0.5, "yardstick"),
                   ("additivity", None, "relative"), ("blend", 0.5, "relative")]
        picked = [_pick(px, measure=m, parameter=p, scale=s) for m, p, s in columns]
        parts.append("Pixel space, photo directions (yardstick: error / typical distance "
                     "between two photos; relative: error / the change a linear map predicts)")
        parts.append(_table(["layer", "homog. k=½", "homog. k=2", "additivity", "blend t=½",
                             "additivity (rel.)", "blend t=½ (rel.)"],
                            [[layer] + [_cell(p.get(layer)) for p in picked]
                             for _, layer in layers]))
        outside = {(r.measure, r.parameter): r for r in px if r.scale == "outside [0, 1]"}
        parts.append("Pixels outside [0, 1]: " + ", ".join(
            f"{m}{'' if p is None else f' {p:g}'} {_cell(r, True)}"
            for (m, p), r in outside.items() if m != "blend") + "; blends: none.")
        baseline = [("trained", "photos"), ("trained", "random"), ("kaiming", "photos"),
                    ("shuffled", "photos")]
        picked = [_pick([r for r in mine if r.weights == w and r.directions == d
                         and r.space == "pixels"], measure="additivity", scale="yardstick")
                  for w, d in baseline]
        rms = [_pick([r for r in mine if r.weights == w], measure="rms") for w in WEIGHTS]
        switch = [_pick([r for r in mine if r.weights == w], measure="switching units")
                  for w in WEIGHTS]
        parts.append("Baselines: additivity with the photos' yardstick; activation RMS and "
                     "share of units that switch on some photos and off on others")
        parts.append(_table(
            ["layer", "photos", "random dirs", "kaiming", "shuffled", "RMS trained",
             "RMS kaiming", "RMS shuffled", "switch tr./ka./sh."],
            [[layer] + [_cell(p.get(layer)) for p in picked]
             + [f"{p[layer].value:.3g}" if layer in p else "–" for p in rms]
             + ["/".join(f"{p[layer].value:.0%}" if layer in p else "–" for p in switch)]
             for _, layer in layers]))
        parts.append(_latent_table(trained))
        parts.append(_objects_table(trained))
        parts.append(_superposition_table(trained))
        parts.append(_directions_table(trained))
    return "\n\n".join(p for p in parts if p)


def _directions_table(trained: Sequence[Row]) -> str:
    rows = [r for r in trained if r.space == "directions"]
    if not rows:
        return ""
    got = {(r.directions, r.measure, r.scale): r for r in rows}
    kinds = list(dict.fromkeys(r.directions for r in rows))
    def cell(row: Row | None) -> str:  # three digits: at a feature's size errors are small
        return "–" if row is None else f"{row.value:.3g} [{row.low:.3g}, {row.high:.3g}]"

    lines = [[kind, *(cell(got.get((kind, m, s))) for m, s in (
        ("additivity", "yardstick"), ("additivity (own class)", "yardstick"),
        ("additivity", "relative")))] for kind in kinds]
    return (f"Directions added in pairs at {rows[0].layer} (each of norm {rows[0].parameter:.3g}"
            " at every position): additivity of the logits, g(h + a + b) against g(h + a) + "
            "g(h + b) - g(h), per photo the mean over the pairs\n\n" +
            _table(["directions", "additivity", "additivity, own class", "additivity (rel.)"],
                   lines))


def _latent_table(trained: Sequence[Row]) -> str:
    lat = [r for r in trained if r.space == "latent"]
    if not lat:
        return ""
    layers = sorted({(r.depth, r.layer) for r in lat})
    columns = [("photos", "additivity", None), ("photos", "additivity (own class)", None),
               ("photos", "homogeneity", 2.0), ("random", "additivity", None)]
    picked = [_pick(lat, directions=d, measure=m, parameter=p, scale="yardstick")
              for d, m, p in columns]
    mixes = [_pick(trained, space="objects", measure=m) for m in ("top-1 in the pair",
                                                                   "both in the top 5")]
    return ("Latent: the map from a layer to the logits (yardstick: the logits' typical "
            "distance between two photos); two objects blended 50/50 at the layer\n\n" +
            _table(["layer", "additivity", "additivity, own class", "homog. k=2",
                    "random dirs additivity", "blend: top-1 in pair", "blend: both in top 5"],
                   [[layer] + [_cell(p.get(layer)) for p in picked]
                    + [_cell(m.get(layer), True) for m in mixes] for _, layer in layers]))


def _objects_table(trained: Sequence[Row]) -> str:
    rows = [r for r in trained if r.space == "objects" and r.layer.startswith("pixels")]
    lines = []
    for mix in ("blend", "collage"):
        cells = []
        for score in ("top-1 in the pair", "both in the top 5"):
            for who in ("network", "linear network"):
                hit = [r for r in rows if r.layer == f"pixels: {mix}" and r.measure == score
                       and r.directions == who]
                cells.append(_cell(hit[0] if hit else None, True))
        lines.append([mix, *cells])
    return ("Two objects in one image (pixel space; pairs of photos with their own top-1 "
            "classes)\n\n" + _table(["mix", "top-1 in pair", "linear network",
                                     "both in top 5", "linear network"], lines))


def _superposition_table(trained: Sequence[Row]) -> str:
    rows = [r for r in trained if r.space == "superposition"]
    if not rows:
        return ""
    lines = []
    for layer in dict.fromkeys(r.layer for r in rows):
        for kind in ("pca", "random"):
            got = {r.measure: r for r in rows if r.layer == layer and r.directions == kind}
            if got:
                lines.append([layer, kind, _cell(got.get("a share")), _cell(got.get("b share")),
                              f"{got['linear target'].value:.2f}", str(got["a share"].n)])
    return ("Superposition: share of a's (b's) solo projection the a + b render keeps, mean "
            "[95% t interval over seeds]\n\n" +
            _table(["layer", "directions", "a", "b", "linear network", "seeds"], lines))
