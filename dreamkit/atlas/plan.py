"""An atlas site as data: what it shows (`Plan`), where each file goes (`Site`), and the
independent jobs that make it.

Phase 1 jobs stream shards of the photo folder into samples of activation vectors; the phase 2
job merges them, lays the sample out and writes each view's cells (their directions as a
direction file, `layout.json`); phase 3 jobs render batches of cells (each picture with its
record, and how faithful it is) and cut each view's dataset examples. Every job writes its files
atomically, so a killed run resumes with only the missing jobs, under one process or many
(`dreamkit.distributed`). `atlas-plan.json` holds the plan: a folder holding another plan is
refused, never overwritten.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from dreamkit.settings import AtlasSettings, RenderSettings

MANIFEST = "atlas-plan.json"
SHARD = 64  # photos per collection job
HELD = 2000  # held-out vectors kept for the layout's trustworthiness


@dataclass(frozen=True)
class Plan:
    """Everything that determines a site's files."""

    model: str
    weights: str  # SHA-256 of the weights
    layer: str
    settings: AtlasSettings
    render: RenderSettings
    classes: tuple[int, ...]
    photos: tuple[str, ...]  # the photo folder's files, in order
    centre: tuple[int, int]  # (x, y) of the renders' centre position in the layer's grid

    def to_dict(self) -> dict:
        return {"model": self.model, "weights": self.weights, "layer": self.layer,
                "settings": self.settings.to_dict(), "render": self.render.to_dict(),
                "classes": list(self.classes), "centre": list(self.centre),
                "photos": len(self.photos),
                "photos_sha256": hashlib.sha256("\n".join(self.photos).encode()).hexdigest()}

    @property
    def views(self) -> tuple[str, ...]:
        """`layer` (every vector alike), then `class<N>` for each class."""
        return ("layer", *(f"class{c}" for c in self.classes))


@dataclass(frozen=True)
class Job:
    """One unit of work: `kind` collect | layout | render | examples."""

    kind: str
    view: str = ""
    rows: tuple[int, ...] = ()  # rows of the view's direction file
    cells: tuple[int, ...] = ()  # their cells
    shard: int = 0


class Site:
    """Paths of a site's files under `root`, and its jobs."""

    def __init__(self, root: Path, plan: Plan):
        self.root, self.plan = Path(root), plan

    def shard(self, i: int) -> Path:
        return self.root / "work" / f"sample-{i}.safetensors"

    @property
    def layout_file(self) -> Path:
        return self.root / "layout.json"

    def directions(self, view: str) -> Path:
        return self.root / "directions" / f"{view}.safetensors"

    def folder(self, view: str) -> Path:
        return self.root / "cells" / view

    def picture(self, view: str, cell: int) -> Path:
        return self.folder(view) / f"c{cell}.jpg"

    def example(self, view: str, cell: int, i: int) -> Path:
        return self.folder(view) / f"e{cell}_{i}.jpg"

    def examples_data(self, view: str) -> Path:
        return self.folder(view) / "examples.json"

    def faith(self, view: str, row: int) -> Path:
        return self.root / "work" / f"faith-{view}-{row}.json"

    def composite(self, view: str) -> Path:
        return self.root / f"atlas-{view}.jpg"

    @cached_property
    def layout(self) -> dict:
        """`layout.json` (after phase 2)."""
        return json.loads(self.layout_file.read_text())

    def phase1(self) -> list[Job]:
        return [Job("collect", shard=i) for i in range(-(-len(self.plan.photos) // SHARD))]

    def phase2(self) -> list[Job]:
        return [Job("layout")]

    def phase3(self) -> list[Job]:
        jobs, batch = [], self.plan.settings.batch
        for view in self.plan.views:
            cells = [c["cell"] for c in self.layout["views"][view]]
            jobs += [Job("render", view, tuple(range(i, min(i + batch, len(cells)))),
                         tuple(cells[i:i + batch])) for i in range(0, len(cells), batch)]
            if self.plan.settings.examples:
                jobs.append(Job("examples", view))
        return jobs

    def outputs(self, job: Job) -> list[Path]:
        """The files a job writes (all of them present = the job is done)."""
        if job.kind == "collect":
            return [self.shard(job.shard)]
        if job.kind == "layout":
            return [*map(self.directions, self.plan.views), self.layout_file]
        if job.kind == "render":
            return [*(self.picture(job.view, c) for c in job.cells),
                    self.faith(job.view, job.rows[0])]
        return [self.examples_data(job.view)]

    def done(self, job: Job) -> bool:
        return all(path.is_file() for path in self.outputs(job))

    def check(self) -> None:
        """Refuse a folder that holds something else, or a place where none can be made (on
        every rank, before any work)."""
        from dreamkit.files import check_job_folder

        check_job_folder(self.root, MANIFEST, self.plan.to_dict(), "atlas",
                         "another layer, photos or settings")

    def claim(self) -> None:
        """Note the plan in the folder (rank 0, after `check`)."""
        from dreamkit.files import write_json

        write_json(self.root / MANIFEST, self.plan.to_dict())
