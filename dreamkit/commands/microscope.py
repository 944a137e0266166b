"""Build a microscope site: every channel of some layers, each with its feature visualization,
diverse variants, centre-neuron visualization, dataset examples and strongest inputs.

For each chosen layer and channel: the channel's visualization (the vis recipe; on a CPU at
112 px and 128 steps unless --size / --steps say otherwise, on a GPU at vis's defaults), a few
diverse variants, the centre neuron's visualization, with --images the photos of the folder
that excite it most (cut around the most active position at the size of the layer's
receptive field, with a heat map and the activation), and the channels of the previous chosen
layer that drive it most (activation x gradient). The site is static: SITE/index.html opens
from disk. Jobs are independent and written atomically: run it again to resume after a kill,
or under torchrun to share the jobs between ranks (rank 0 writes the pages). Every picture
keeps its record (`dreamkit reproduce SITE/layers/L/c7.jpg`).

examples:
  dreamkit microscope --layers inception3b,inception4c --channels 0-15 --images photos/ -o site
  dreamkit microscope --model efficientnet_lite0 --layers mid --channels 0-31 -o lite
  torchrun --nproc-per-node 2 -m dreamkit microscope --layers mid --images photos/ -o site
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from dreamkit.commands.common import (
    add_model_arguments,
    add_settings,
    add_threads_argument,
    show_progress,
)
from dreamkit.errors import DreamkitError
from dreamkit.settings import MAX_TARGETS, Bounds, RenderSettings, check

CPU_RECIPE = {"size": 112, "steps": 128}  # the vis recipe at a size a CPU finishes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", required=True, metavar="SITE", help="site folder")
    what = parser.add_argument_group("what to show")
    what.add_argument("--layers", default="low,mid,high", metavar="LIST",
                      help="comma-separated layers or tiers (default: %(default)s)")
    what.add_argument("--channels", metavar="LIST",
                      help="channels of every layer, e.g. 0-15 (default: all of them)")
    what.add_argument("--images", metavar="DIR",
                      help="a folder of photos for the dataset examples (default: none)")
    what.add_argument("--examples", type=int, default=6, metavar="K",
                      help="dataset examples per channel, 1 to 32 (default: %(default)s)")
    what.add_argument("--variants", type=int, default=3, metavar="N",
                      help="diverse variants per channel, 0 to 8 (default: %(default)s)")
    what.add_argument("--diversity", type=float, default=20.0, metavar="W",
                      help="weight of the variants' diversity term, 0 to 1000 (default: "
                           "%(default)s)")
    how = parser.add_argument_group("render settings (on a CPU the defaults are --size "
                                    f"{CPU_RECIPE['size']} --steps {CPU_RECIPE['steps']})")
    add_settings(how, RenderSettings)
    how.add_argument("--batch", type=int, default=16, metavar="N",
                     help="pictures per job, 1 to 256 (default: %(default)s)")
    run = parser.add_argument_group("running")
    add_threads_argument(run, 1, "keep it the same between runs for identical pixels "
                                 "(default: %(default)s; scale out with torchrun)")
    run.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    add_model_arguments(parser)


def _plan(args: argparse.Namespace, net, settings):
    from dreamkit.image_io import list_images
    from dreamkit.microscope.plan import Plan
    from dreamkit.targets import parse_channel_list

    layers = list(dict.fromkeys(net.layers.resolve(name.strip()).name
                                for name in args.layers.split(",") if name.strip()))
    if not layers:
        raise DreamkitError(f"--layers names no layer ({args.layers[:100]!r}); give names or "
                            "tiers such as low,mid,high")
    infos = [net.layers.resolve(layer) for layer in layers]
    channels = [tuple(parse_channel_list(args.channels, i.name, i.channels)) if args.channels
                else tuple(range(i.channels)) for i in infos]
    if sum(map(len, channels)) > MAX_TARGETS:
        raise DreamkitError(f"{sum(map(len, channels))} channels; one site shows at most "
                            f"{MAX_TARGETS}")
    photos = tuple(str(p.resolve()) for p in list_images(args.images)) if args.images else ()
    return Plan(net.name, net.weights_sha256(), tuple(layers), tuple(channels),
                tuple(i.stride is not None for i in infos), settings, args.variants,
                args.diversity, args.batch, args.examples, photos)


def run(args: argparse.Namespace) -> int:
    check("examples", args.examples, Bounds(int, low=1, high=32))
    check("variants", args.variants, Bounds(int, low=0, high=8))
    check("diversity", args.diversity, Bounds(float, low=0, high=1000))
    check("batch", args.batch, Bounds(int, low=1, high=256))
    from dreamkit.commands.common import open_model, resolve_device, set_threads, settings_from
    from dreamkit.distributed import (
        deterministic,
        process_group,
        rank_device,
        ranks_from_env,
        run_jobs,
    )
    from dreamkit.files import check_folder
    from dreamkit.microscope.jobs import make, merged
    from dreamkit.microscope.pages import write_pages
    from dreamkit.microscope.plan import Site

    check_folder(args.output)  # before the model and the work
    start = time.monotonic()
    ranks = ranks_from_env()
    device = rank_device(resolve_device(args.device), ranks)
    settings = settings_from(args, RenderSettings, {} if device.type == "cuda" else CPU_RECIPE)
    set_threads(args.threads)
    deterministic()
    args.device = str(device)
    net = open_model(args)
    site = Site(Path(args.output), _plan(args, net, settings))
    site.check()
    flat = [layer for layer, spatial in zip(site.plan.layers, site.plan.spatial, strict=True)
            if not spatial]
    if args.images and flat and ranks.is_main and not args.quiet:
        print(f"{', '.join(flat)}: no positions, so visualizations only (no dataset examples "
              "or neurons)", file=sys.stderr)
    progress = show_progress(args)
    with process_group(device, ranks):
        if ranks.is_main:
            site.claim()
        first = run_jobs(site.phase1(), is_finished=site.done,
                         make=lambda job: make(job, site, net), finish=lambda: None,
                         device=device, ranks=ranks, scratch=_scratch(site), progress=progress,
                         unit="job")

        def pages() -> None:
            skipped = merged(site)[1] if site.plan.has_examples else 0
            tiers = {layer: net.layers.resolve(layer).tier for layer in site.plan.layers}
            write_pages(site, tiers, skipped)
            if skipped and not args.quiet:
                print(f"{skipped} unreadable photos skipped", file=sys.stderr)

        second = run_jobs(site.phase2(), is_finished=site.done,
                          make=lambda job: make(job, site, net), finish=pages, device=device,
                          ranks=ranks, scratch=[], progress=progress, unit="job")
    if ranks.is_main and not args.quiet:
        done = first.total + second.total
        print(f"{site.root / 'index.html'}: {done} jobs, {first.pending + second.pending} run "
              f"now, in {time.monotonic() - start:.0f} s")
    return 0


def _scratch(site) -> list[Path]:
    folders = [site.root / "work", *(site.folder(layer) for layer in site.plan.layers)]
    return [folder for folder in folders if folder.is_dir()]
