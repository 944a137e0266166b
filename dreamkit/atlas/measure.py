"""What an atlas site measures, from its jobs' files: each view's faithfulness (is a cell's
render, read at its centre, best aligned with its own cell's direction, among all cells and
among its neighbours), the layout's trustworthiness, how the class views differ, the time of
each phase and the peak memory."""

from __future__ import annotations

import json
import resource
import sys

import torch

from dreamkit.atlas.plan import Site
from dreamkit.directions import load_directions


def _share(values: list[bool]) -> float | None:
    return sum(values) / len(values) if values else None


def per_cell(site: Site, view: str) -> tuple[dict[str, dict], float]:
    """Each rendered cell's faithfulness (as its render job found it), and the seconds the
    view's render jobs took."""
    found, seconds = {}, 0.0
    for job in site.phase3():
        if job.kind == "render" and job.view == view:
            data = json.loads(site.faith(view, job.rows[0]).read_text())
            found.update(data["cells"])
            seconds += float(data["seconds"])
    return found, seconds


def faithfulness(site: Site, view: str) -> tuple[dict, float]:
    """The view's faithfulness figures, and the seconds its render jobs took."""
    found, seconds = per_cell(site, view)
    near = [f["beats_neighbours"] for f in found.values() if f["beats_neighbours"] is not None]
    return {"rendered": len(found),
            "best_of_all": _share([f["best"] == int(c) for c, f in found.items()]),
            "beats_neighbours": _share(near), "with_neighbours": len(near),
            "mean_cosine": (sum(f["cosine"] for f in found.values()) / len(found)
                            if found else None)}, seconds


def class_differences(site: Site) -> list[dict]:
    """For each pair of views: the cells both show (and their share of all either shows), and
    the mean cosine of their directions in those cells."""
    views = site.plan.views
    rows = {v: {c["cell"]: i for i, c in enumerate(site.layout["views"][v])} for v in views}
    vectors = {v: load_directions(site.directions(v)).vectors for v in views}
    found = []
    for i, a in enumerate(views):
        for b in views[i + 1:]:
            shared = sorted(rows[a].keys() & rows[b].keys())
            cosine = None
            if shared:
                va = vectors[a][[rows[a][c] for c in shared]]
                vb = vectors[b][[rows[b][c] for c in shared]]
                cosine = float(torch.nn.functional.cosine_similarity(va, vb).mean())
            found.append({"views": [a, b], "shared_cells": len(shared),
                          "jaccard": len(shared) / len(rows[a].keys() | rows[b].keys()),
                          "mean_cosine_shared": cosine})
    return found


def measured(site: Site, wall: float) -> dict:
    """Every figure of the site (`atlas.json`): counts, faithfulness, trustworthiness, class
    differences, seconds per phase (summed over jobs, whichever run made them), this run's
    wall time and peak memory."""
    layout = site.layout
    views, render_seconds = {}, 0.0
    for view in site.plan.views:
        cells = layout["views"][view]
        faith, seconds = faithfulness(site, view)
        render_seconds += seconds
        views[view] = {"cells": len(cells), "vectors": sum(c["count"] for c in cells),
                       "weight": sum(c["weight"] for c in cells), "faithfulness": faith}
    examples = sum(json.loads(site.examples_data(v).read_text())["seconds"]
                   for v in site.plan.views if site.examples_data(v).is_file())
    seconds = {**layout["seconds"], "renders": render_seconds, "examples": examples}
    total = sum(seconds.values())
    unit = 2**20 if sys.platform == "darwin" else 2**10  # ru_maxrss: bytes there, else KB
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / unit
    memory = {"peak_rss_mb": round(peak, 1)}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        memory["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return {"model": site.plan.model, "layer": site.plan.layer, "grid": layout["grid"],
            "layout": layout["figures"], "views": views,
            "class_differences": class_differences(site) if len(site.plan.views) > 1 else [],
            "seconds": {**{k: round(v, 1) for k, v in seconds.items()},
                        "total_of_jobs": round(total, 1), "this_run": round(wall, 1)},
            "shares": {k: round(v / total, 3) if total else None for k, v in seconds.items()},
            "memory": memory}
