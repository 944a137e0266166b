"""`microscope(net, output, ...)`: the whole site as one library call (the command and any
other front end call it): plan the jobs from the settings, run them (shared between torchrun
ranks, resumable), write the pages."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dreamkit.errors import DreamkitError
from dreamkit.models.base import Model
from dreamkit.settings import (
    MAX_TARGETS,
    MICROSCOPE_CPU_RENDER,
    MicroscopeSettings,
    RenderSettings,
)

if TYPE_CHECKING:
    import torch


@dataclass
class Built:
    """What a microscope run did: the site's index, its jobs (all, and run now), the layers
    without positions (visualizations only), the unreadable photos skipped, the seconds."""

    index: Path
    jobs: int
    ran: int
    flat: list[str]
    skipped: int
    seconds: float


def render_defaults(device: torch.device) -> dict:
    """The render settings a site uses unless told: vis's defaults on a GPU, a smaller recipe
    on a CPU (`MICROSCOPE_CPU_RENDER`)."""
    return {} if device.type == "cuda" else dict(MICROSCOPE_CPU_RENDER)


def plan_of(net: Model, settings: MicroscopeSettings, render: RenderSettings,
            images: str | os.PathLike[str] | None,
            dictionary: str | os.PathLike[str] | None = None):
    """The site's plan: layers (names or tiers), channels, photos, every setting; with a
    `dictionary`, its layer, whose channels are the dictionary's features."""
    from dreamkit.image_io import list_images
    from dreamkit.microscope.features import dictionary_plan
    from dreamkit.microscope.plan import Features, Plan
    from dreamkit.targets import parse_channel_list

    features = None
    layers = list(dict.fromkeys(net.layers.resolve(name.strip()).name
                                for name in settings.layers.split(",") if name.strip()))
    if not layers:
        raise DreamkitError(f"layers names no layer ({settings.layers[:100]!r}); give names or "
                            "tiers such as low,mid,high")
    infos = [net.layers.resolve(layer) for layer in layers]
    if dictionary is not None:
        layer, chosen, fields = dictionary_plan(net, dictionary, settings.layers,
                                                settings.channels, settings.features,
                                                bool(images))
        layers, infos, features = [layer], [net.layers.resolve(layer)], Features(**fields)
        channels = [chosen]
    else:
        channels = [tuple(parse_channel_list(settings.channels, i.name, i.channels))
                    if settings.channels else tuple(range(i.channels)) for i in infos]
    if sum(map(len, channels)) > MAX_TARGETS:
        raise DreamkitError(f"{sum(map(len, channels))} channels; one site shows at most "
                            f"{MAX_TARGETS}")
    photos = tuple(str(p.resolve()) for p in list_images(images)) if images else ()
    return Plan(net.name, net.weights_sha256(), tuple(layers), tuple(channels),
                tuple(i.stride is not None for i in infos), render, settings.variants,
                settings.diversity, settings.batch, settings.examples, photos, features)


def microscope(net: Model, output: str | os.PathLike[str],
               settings: MicroscopeSettings | None = None, render: RenderSettings | None = None,
               *, images: str | os.PathLike[str] | None = None,
               dictionary: str | os.PathLike[str] | None = None, progress: bool = False
               ) -> Built:
    """Build (or resume) the microscope site of `net` in the folder `output`: for each chosen
    channel its visualization, variants, centre neuron, with `images` its dataset examples,
    and its strongest inputs from the previous layer. With `dictionary` (a file of
    `dreamkit dictionary fit`), the site shows that dictionary's features as its layer's
    channels: `settings.channels` names them, else the `settings.features` most often active
    on the photos; each with its visualization (the decoder atom as a direction), examples
    with heat maps of its code, logit effects and code histogram. Runs on `net`'s device;
    under torchrun the ranks share the jobs (rank 0 writes the pages). `render` defaults to
    `render_defaults` for the device."""
    from dreamkit.distributed import deterministic, process_group, ranks_from_env, run_jobs
    from dreamkit.files import check_folder
    from dreamkit.microscope.features import chosen
    from dreamkit.microscope.jobs import make, merged
    from dreamkit.microscope.pages import write_pages
    from dreamkit.microscope.plan import Site

    check_folder(output)
    settings = settings or MicroscopeSettings()
    device = net.device
    render = render or RenderSettings(**render_defaults(device))
    start = time.monotonic()
    ranks = ranks_from_env()
    deterministic()
    site = Site(Path(output), plan_of(net, settings, render, images, dictionary))
    site.check()
    flat = [layer for layer, spatial in zip(site.plan.layers, site.plan.spatial, strict=True)
            if not spatial and images]
    skipped = [0]
    with process_group(device, ranks):
        if ranks.is_main:
            site.claim()
        early = run_jobs(site.phase0(), is_finished=site.done,
                         make=lambda job: make(job, site, net), finish=lambda: None,
                         device=device, ranks=ranks, scratch=_scratch(site), progress=progress,
                         unit="job")
        site = chosen(site)
        first = run_jobs(site.phase1(), is_finished=site.done,
                         make=lambda job: make(job, site, net), finish=lambda: None,
                         device=device, ranks=ranks, scratch=_scratch(site), progress=progress,
                         unit="job")

        def pages() -> None:
            skipped[0] = merged(site)[1] if site.plan.has_examples else 0
            tiers = {layer: net.layers.resolve(layer).tier for layer in site.plan.layers}
            write_pages(site, tiers, skipped[0])

        second = run_jobs(site.phase2(), is_finished=site.done,
                          make=lambda job: make(job, site, net), finish=pages, device=device,
                          ranks=ranks, scratch=[], progress=progress, unit="job")
    return Built(site.root / "index.html", early.total + first.total + second.total,
                 early.pending + first.pending + second.pending, flat, skipped[0],
                 round(time.monotonic() - start, 1))


def _scratch(site) -> list[Path]:
    folders = [site.root / "work", *(site.folder(layer) for layer in site.plan.layers)]
    return [folder for folder in folders if folder.is_dir()]
