"""`atlas(net, images, output, ...)`: an activation atlas site as one library call (the command
and any other front end call it): plan the jobs from the settings, run them (shared between
torchrun ranks, resumable), measure, write the page."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dreamkit.errors import DreamkitError
from dreamkit.models.base import Model
from dreamkit.settings import ATLAS_CPU_RENDER, AtlasSettings, RenderSettings

if TYPE_CHECKING:
    import torch

    from dreamkit.atlas.plan import Plan


@dataclass
class Atlas:
    """What an atlas run made: the page, the cells of each view, the jobs (all, and run now),
    the measured figures (the site's `atlas.json`; empty on ranks other than 0), the
    seconds."""

    index: Path
    cells: dict[str, int]
    jobs: int
    ran: int
    figures: dict
    seconds: float


def render_defaults(device: torch.device) -> dict:
    """The render settings an atlas uses unless told: vis's defaults on a GPU, a smaller
    recipe on a CPU (`ATLAS_CPU_RENDER`)."""
    return {} if device.type == "cuda" else dict(ATLAS_CPU_RENDER)


def classes_of(net: Model, text: str | None) -> tuple[int, ...]:
    """The class indices a comma-separated list names (ImageNet names or indices), checked
    against the model's logits."""
    from dreamkit.imagenet import class_index

    names = [part.strip() for part in (text or "").split(",") if part.strip()]
    if not names:
        return ()
    table = net.layers
    if table.logits is None:
        raise DreamkitError(f"{net.name} has no logits, so no class atlas (drop --classes)")
    count = table.resolve(table.logits).channels
    found = tuple(dict.fromkeys(class_index(name) for name in names))
    for index in found:
        if index >= count:
            raise DreamkitError(f"class {index} is out of range: {net.name} has {count} classes")
    return found


def plan_of(net: Model, images: str | os.PathLike[str], settings: AtlasSettings,
            render: RenderSettings) -> Plan:
    """The site's plan: the layer, the classes, the photos, the renders' centre, every
    setting."""
    import torch

    from dreamkit.atlas.plan import Plan
    from dreamkit.capture import capture_resolved
    from dreamkit.image_io import list_images

    info = net.layers.resolve(settings.layer)
    if info.stride is None:
        raise DreamkitError(f"{info.name} has no spatial positions; an atlas maps a "
                            "convolutional layer")
    classes = classes_of(net, settings.classes)
    photos = tuple(str(p.resolve()) for p in list_images(images))
    with torch.no_grad():
        probe = torch.zeros(1, 3, render.size, render.size, device=net.device, dtype=net.dtype)
        acts = capture_resolved(net, probe, [info.name])[info.name]
    if acts.dim() != 4 or 0 in acts.shape[-2:]:
        raise DreamkitError(f"{info.name} has no positions at --size {render.size}; render "
                            "larger")
    centre = (acts.shape[-1] // 2, acts.shape[-2] // 2)
    return Plan(net.name, net.weights_sha256(), info.name, settings, render, classes, photos,
                centre)


def atlas(net: Model, images: str | os.PathLike[str], output: str | os.PathLike[str],
          settings: AtlasSettings | None = None, render: RenderSettings | None = None, *,
          dictionary: str | os.PathLike[str] | None = None,
          microscope: str | os.PathLike[str] | None = None, progress: bool = False) -> Atlas:
    """Build (or resume) the activation atlas of a layer of `net` over the photos in `images`,
    in the folder `output`: a sample of the layer's activation vectors laid out with UMAP, a
    grid of cells each rendered from its mean direction, for the whole layer and each class
    of `settings.classes`, with dataset examples; `dictionary` (a direction file of the layer)
    adds its features to the map, `microscope` (a microscope site) links channels to its
    pages. Runs on `net`'s device; under torchrun the ranks share the jobs (rank 0 measures
    and writes the page). `render` defaults to `render_defaults` for the device."""
    from dreamkit.atlas.jobs import make
    from dreamkit.atlas.layout import umap_module
    from dreamkit.atlas.page import write_site
    from dreamkit.atlas.plan import Site
    from dreamkit.directions import load_directions
    from dreamkit.distributed import deterministic, process_group, ranks_from_env, run_jobs
    from dreamkit.files import check_folder

    check_folder(output)
    settings = settings or AtlasSettings()
    device = net.device
    render = render or RenderSettings(**render_defaults(device))
    umap_module()  # a missing extra is named before any work
    site = Site(Path(output), plan_of(net, images, settings, render))
    features = None
    if dictionary is not None:
        features = load_directions(dictionary, model=net.name, layer=site.plan.layer,
                                   table=net.layers)
    if microscope is not None and not (Path(microscope) / "microscope.json").is_file():
        raise DreamkitError(f"{microscope}: not a microscope site (no microscope.json)")
    start = time.monotonic()
    ranks = ranks_from_env()
    deterministic()
    site.check()
    figures: dict = {}

    def pages() -> None:
        figures.update(write_site(site, features, dictionary, microscope,
                                  time.monotonic() - start))

    def phase(jobs, unit: str, finish=lambda: None):
        return run_jobs(jobs, is_finished=site.done, make=lambda job: make(job, site, net),
                        finish=finish, device=device, ranks=ranks, scratch=_scratch(site),
                        progress=progress, unit=unit)

    with process_group(device, ranks):
        if ranks.is_main:
            site.claim()
        reports = [phase(site.phase1(), "shard"), phase(site.phase2(), "layout")]
        reports.append(phase(site.phase3(), "job", pages))  # it reads the layout
    return Atlas(site.root / "index.html",
                 {view: len(site.layout["views"][view]) for view in site.plan.views},
                 sum(r.total for r in reports), sum(r.pending for r in reports), figures,
                 round(time.monotonic() - start, 1))


def _scratch(site) -> list[Path]:
    folders = [site.root / "work", site.root / "directions", site.root,
               *(site.folder(view) for view in site.plan.views)]
    return [folder for folder in folders if folder.is_dir()]
