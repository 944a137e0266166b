"""A microscope site as data: what it shows (`Plan`), where each file goes (`Site`), and the
independent jobs that make it.

Phase 1 jobs render feature visualizations (a batch of channels per job), centre-neuron
visualizations, diverse variants, and stream shards of the photo folder for dataset examples;
phase 2 jobs cut the examples and weigh each channel's inputs from the previous layer. A
dictionary site (`Features`: a dictionary's features are its layer's channels) streams the
photos first (phase 0: examples, and how often each feature is active, which chooses the
features shown), and its phase 2 also measures each feature's logit effects. Every
job writes its files atomically, so a killed run resumes with only the missing jobs, under one
process or many (`dreamkit.distributed`). `microscope.json` holds the plan: a folder holding
another plan is refused, never overwritten.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from dreamkit.settings import RenderSettings

MANIFEST = "microscope.json"
SHARD = 64  # photos per examples job


@dataclass(frozen=True)
class Features:
    """A dictionary shown as a layer: its file (absolute) and SHA-256, its feature count, and
    how many of the features most often active on the photos to show (0: the plan's
    channels name them)."""

    file: str
    sha256: str
    count: int
    top: int

    def tracked(self, channels: tuple[int, ...]) -> list[int]:
        """The features the examples pass follows: all of them while the shown ones are still
        to be chosen, else the chosen ones."""
        return list(range(self.count)) if self.top else list(channels)


@dataclass(frozen=True)
class Plan:
    """Everything that determines a site's files."""

    model: str
    weights: str  # SHA-256 of the weights
    layers: tuple[str, ...]
    channels: tuple[tuple[int, ...], ...]  # per layer
    spatial: tuple[bool, ...]  # per layer: has positions (examples, neurons)
    settings: RenderSettings
    variants: int
    diversity: float
    batch: int
    examples: int
    photos: tuple[str, ...]  # the photo folder's files, in order
    features: Features | None = None  # a dictionary site: its one layer's features

    def to_dict(self) -> dict:
        found = {"model": self.model, "weights": self.weights, "layers": list(self.layers),
                 "channels": [list(c) for c in self.channels], "spatial": list(self.spatial),
                 "settings": self.settings.to_dict(), "variants": self.variants,
                 "diversity": self.diversity, "batch": self.batch, "examples": self.examples,
                 "photos": len(self.photos),
                 "photos_sha256": hashlib.sha256("\n".join(self.photos).encode()).hexdigest()}
        if self.features is not None:
            found["dictionary"] = asdict(self.features)
        return found

    @property
    def has_examples(self) -> bool:
        """Whether the site shows dataset examples (photos and a layer with positions)."""
        return bool(self.photos) and any(self.spatial)

    def previous(self, layer: str) -> str | None:
        """The chosen layer before `layer` (the circuits view's inputs)."""
        i = self.layers.index(layer)
        return self.layers[i - 1] if i > 0 else None


@dataclass(frozen=True)
class Job:
    """One unit of work: `kind` vis | neuron | variants | examples | crops | circuits |
    effects."""

    kind: str
    layer: str = ""
    channels: tuple[int, ...] = ()
    shard: int = 0


def slug(layer: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", layer).strip("-") or "layer"


class Site:
    """Paths of a site's files under `root`."""

    def __init__(self, root: Path, plan: Plan):
        self.root, self.plan = Path(root), plan

    def folder(self, layer: str) -> Path:
        """A layer's folder; a dictionary site's is named for its features (`-features`), so
        that nothing takes its pictures for the layer's channels."""
        shown = self.plan is not None and self.plan.features is not None
        return self.root / "layers" / (slug(layer) + ("-features" if shown else ""))

    def vis(self, layer: str, c: int) -> Path:
        return self.folder(layer) / f"c{c}.jpg"

    def thumb(self, layer: str, c: int) -> Path:
        return self.folder(layer) / f"t{c}.jpg"

    def neuron(self, layer: str, c: int) -> Path:
        return self.folder(layer) / f"n{c}.jpg"

    def variant(self, layer: str, c: int, i: int) -> Path:
        return self.folder(layer) / f"v{c}_{i}.jpg"

    def example(self, layer: str, c: int, i: int) -> Path:
        return self.folder(layer) / f"e{c}_{i}.jpg"

    def examples_data(self, layer: str) -> Path:
        return self.folder(layer) / "examples.json"

    def circuits(self, layer: str) -> Path:
        return self.folder(layer) / "circuits.json"

    def effects(self, layer: str) -> Path:
        return self.folder(layer) / "effects.json"

    def shard(self, i: int) -> Path:
        return self.root / "work" / f"examples-{i}.json"

    def _examples_jobs(self) -> list[Job]:
        return [Job("examples", shard=i) for i in range(-(-len(self.plan.photos) // SHARD))]

    def phase0(self) -> list[Job]:
        """A dictionary site's examples pass, which the choice of features needs."""
        return self._examples_jobs() if self.plan.features and self.plan.has_examples else []

    def phase1(self) -> list[Job]:
        plan, jobs = self.plan, []
        for layer, channels, spatial in zip(plan.layers, plan.channels, plan.spatial,
                                            strict=True):
            kinds = ("vis", "neuron") if spatial and not plan.features else ("vis",)
            for kind in kinds:
                jobs += [Job(kind, layer, channels[i:i + plan.batch])
                         for i in range(0, len(channels), plan.batch)]
            per = max(1, plan.batch // max(plan.variants, 1))
            if plan.variants:
                jobs += [Job("variants", layer, channels[i:i + per])
                         for i in range(0, len(channels), per)]
        if plan.has_examples and not plan.features:
            jobs += self._examples_jobs()
        return jobs

    def phase2(self) -> list[Job]:
        plan, jobs = self.plan, []
        for layer, spatial in zip(plan.layers, plan.spatial, strict=True):
            if plan.photos and spatial:
                jobs.append(Job("crops", layer))
            if plan.previous(layer) is not None:
                jobs.append(Job("circuits", layer))
            if plan.photos and plan.features:
                jobs.append(Job("effects", layer))
        return jobs

    def outputs(self, job: Job) -> list[Path]:
        """The files a job writes (all of them present = the job is done)."""
        if job.kind == "vis":
            return [p for c in job.channels for p in (self.vis(job.layer, c),
                                                      self.thumb(job.layer, c))]
        if job.kind == "neuron":
            return [self.neuron(job.layer, c) for c in job.channels]
        if job.kind == "variants":
            return [self.variant(job.layer, c, i) for c in job.channels
                    for i in range(self.plan.variants)]
        if job.kind == "examples":
            return [self.shard(job.shard)]
        if job.kind == "crops":
            return [self.examples_data(job.layer)]
        if job.kind == "effects":
            return [self.effects(job.layer)]
        return [self.circuits(job.layer)]

    def done(self, job: Job) -> bool:
        return all(path.is_file() for path in self.outputs(job))

    def check(self) -> None:
        """Refuse a folder that holds something else, or a place where none can be made (on
        every rank, before any work)."""
        from dreamkit.files import check_job_folder

        check_job_folder(self.root, MANIFEST, self.plan.to_dict(), "microscope site",
                         "other layers, channels or settings")

    def claim(self) -> None:
        """Note the plan in the folder (rank 0, after `check`)."""
        from dreamkit.files import write_json

        write_json(self.root / MANIFEST, self.plan.to_dict())
