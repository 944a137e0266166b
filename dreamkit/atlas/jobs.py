"""Making each job of an atlas site (see `plan`): sample shards, the layout with each view's
cells, renders of cells with their records and faithfulness, and dataset-example crops."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import torch

import dreamkit.examples as examples
from dreamkit.atlas.collect import Sample, Sketch, collect, read_samples, save_samples
from dreamkit.atlas.layout import cells, lay_out, neighbours
from dreamkit.atlas.plan import HELD, SHARD, Job, Site
from dreamkit.capture import capture_resolved
from dreamkit.directions import Directions, load_directions
from dreamkit.errors import DreamkitError
from dreamkit.files import write_json
from dreamkit.image_io import load_image, save_image
from dreamkit.models.base import Model
from dreamkit.objectives import direction
from dreamkit.photos import SIDE, view
from dreamkit.records import Recipe, Record, provenance
from dreamkit.render import render
from dreamkit.targets import Target

QUALITY = 90  # JPEG quality of every render (each keeps its record in a JPEG comment)
VIEW_SEEDS = 1_000_003  # seed offset between views, so their renders differ


def make(job: Job, site: Site, net: Model) -> None:
    {"collect": _collect, "layout": _layout, "render": _render,
     "examples": _examples}[job.kind](job, site, net)


def _collect(job: Job, site: Site, net: Model) -> None:
    plan, start = site.plan, time.monotonic()
    first = job.shard * SHARD
    paths = [Path(p) for p in plan.photos[first:first + SHARD]]
    train, held, skipped = collect(
        net, paths, plan.layer, first=first, positions=plan.settings.positions,
        capacity=plan.settings.vectors, held=HELD, classes=plan.classes,
        seed=plan.settings.layout_seed)
    save_samples(site.shard(job.shard), {"train": train, "held": held},
                 {"skipped": str(skipped), "seconds": f"{time.monotonic() - start:.3f}"})


def _merged(site: Site, net: Model) -> tuple[Sample, Sample, dict]:
    """Every shard's samples merged into the site's capacities, and the shards' totals."""
    plan = site.plan
    channels = net.layers.resolve(plan.layer).channels
    train = Sketch(plan.settings.vectors, channels, len(plan.classes))
    held = Sketch(HELD, channels, len(plan.classes))
    totals = {"skipped": 0, "seconds": 0.0}
    for shard in range(len(site.phase1())):
        samples, meta = read_samples(site.shard(shard))
        train.add(samples["train"])
        held.add(samples["held"])
        totals["skipped"] += int(meta["skipped"])
        totals["seconds"] += float(meta["seconds"])
    return train.result(), held.result(), totals


def _layout(job: Job, site: Site, net: Model) -> None:
    plan, start = site.plan, time.monotonic()
    settings = plan.settings
    train, held, totals = _merged(site, net)
    placed = lay_out(train.vectors, held.vectors, settings.grid, settings.layout_seed)
    views = {}
    for k, name in enumerate(plan.views):
        weights = None if name == "layer" else train.attribution[:, k - 1]
        found = cells(train.vectors, train.photo, placed.cell, settings.grid, weights,
                      min_count=settings.min_count, examples=settings.examples)
        if not found:
            why = ("no sampled vector adds to the class's logit" if weights is not None
                   else f"no cell holds {settings.min_count} vectors")
            raise DreamkitError(f"the {name} view of the atlas is empty ({why}); use more "
                                "photos, more --positions, a smaller --grid or --min-count")
        Directions(torch.stack([c.direction for c in found]).contiguous(), plan.layer,
                   plan.model, "mean", {"atlas_grid": settings.grid, "cells": len(found)}
                   ).save(site.directions(name))
        views[name] = [{"cell": c.cell, "count": c.count, "weight": c.weight,
                        "examples": [[int(train.photo[i]), int(train.y[i]), int(train.x[i])]
                                     for i in c.examples]} for c in found]
    with torch.no_grad():
        grid = capture_resolved(net, torch.zeros(1, 3, SIDE, SIDE, device=net.device,
                                                 dtype=net.dtype), [plan.layer])[plan.layer]
    figures = {**placed.figures, "photos": len(plan.photos) - totals["skipped"],
               "skipped": totals["skipped"]}
    write_json(site.layout_file, {
        "grid": settings.grid, "map": list(grid.shape[-2:]),
        "field": list(examples.receptive_field(net, plan.layer)), "views": views,
        "figures": figures,
        "seconds": {"collection": totals["seconds"], "layout": time.monotonic() - start}})


def _render(job: Job, site: Site, net: Model) -> None:
    plan, start = site.plan, time.monotonic()
    path = site.directions(job.view)
    vectors = load_directions(path, model=plan.model, layer=plan.layer, table=net.layers).vectors
    x, y = plan.centre
    base = Target("direction", plan.layer, file=str(path.resolve()), x=x, y=y).resolve(
        net.layers, plan.model)
    pictures = tuple((replace(base, row=row),) for row in job.rows)
    seed = plan.render.seed + job.rows[0] + VIEW_SEEDS * plan.views.index(job.view)
    settings = plan.render.replace(seed=seed)
    # the objective the pictures' targets build (`targets.batch_objective`), from the rows
    # at hand: a wrapped model's name need not be a spec that finds its layer table again
    objective = direction(plan.layer, vectors[list(job.rows)], x=x, y=y)
    result = render(net, objective, settings, batch=len(pictures))
    ran = provenance(result.ran)
    for i, (cell, image) in enumerate(zip(job.cells, result.images, strict=True)):
        recipe = Recipe("vis", plan.model, pictures[i], settings, batch=pictures, index=i)
        save_image(image, site.picture(job.view, cell), quality=QUALITY,
                   metadata=Record(recipe, net.weights_sha256(), ran).metadata())
    saved = torch.stack([load_image(site.picture(job.view, c)) for c in job.cells])
    write_json(site.faith(job.view, job.rows[0]), {
        "cells": faithfulness(net, plan.layer, saved, vectors, job.rows,
                              [c["cell"] for c in site.layout["views"][job.view]],
                              plan.settings.grid),
        "seconds": time.monotonic() - start})


@torch.no_grad()
def faithfulness(net: Model, layer: str, images: torch.Tensor, vectors: torch.Tensor,
                 rows: tuple[int, ...], cells_of_rows: list[int], grid: int) -> dict:
    """For each render (of direction row `rows[i]`): the cosine of the layer's centre vector
    with its own direction, the best-aligned cell of all, and whether its own direction is
    better aligned than every neighbouring cell's (None: no neighbour on the map)."""
    acts = capture_resolved(net, images.to(net.device, net.dtype), [layer])[layer].float()
    h, w = acts.shape[-2:]
    centre = acts[:, :, h // 2, w // 2].cpu()
    unit = vectors / vectors.norm(dim=1, keepdim=True).clamp_min(1e-12)
    cosines = (centre / centre.norm(dim=1, keepdim=True).clamp_min(1e-12)) @ unit.T
    row_of = {cell: row for row, cell in enumerate(cells_of_rows)}
    found = {}
    for i, row in enumerate(rows):
        cell = cells_of_rows[row]
        around = [row_of[c] for c in neighbours(cell, grid) if c in row_of]
        own = float(cosines[i, row])
        found[str(cell)] = {
            "cosine": own, "best": cells_of_rows[int(cosines[i].argmax())],
            "beats_neighbours": bool(own > float(cosines[i, around].max())) if around
            else None}
    return found


def _examples(job: Job, site: Site, net: Model) -> None:
    plan, start = site.plan, time.monotonic()
    grid, field = tuple(site.layout["map"]), tuple(site.layout["field"])
    wanted: dict[int, list[tuple[int, int, int, int]]] = {}  # photo -> (cell, i, y, x)
    for cell in site.layout["views"][job.view]:
        for i, (photo, y, x) in enumerate(cell["examples"]):
            wanted.setdefault(photo, []).append((cell["cell"], i, y, x))
    shown: dict[str, list] = {}
    for photo in sorted(wanted):
        try:
            image = view(load_image(plan.photos[photo]))
        except DreamkitError:  # read once, unreadable now: no example from it
            continue
        for cell, i, y, x in wanted[photo]:
            top, left, height, width = examples.crop_box(y, x, grid, field)
            save_image(image[:, top:top + height, left:left + width],
                       site.example(job.view, cell, i), quality=85)
            shown.setdefault(str(cell), []).append(
                {"i": i, "photo": Path(plan.photos[photo]).name, "box": [top, left, height,
                                                                        width]})
    write_json(site.examples_data(job.view), {
        "field": list(field), "cells": {c: sorted(v, key=lambda e: e["i"])
                                        for c, v in shown.items()},
        "seconds": time.monotonic() - start})
