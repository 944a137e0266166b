"""Build an activation atlas: the map of what a layer represents over a folder of photos.

The layer's activation vectors at random positions of the photos (a fixed-size random sample,
one photo in ten held out) are laid out in 2-D with UMAP (pip install 'dreamkit[atlas]'), a
grid of cells is laid over the map, and each cell's mean direction is rendered (the direction
at the centre neuron, cosine-weighted; on a CPU at 80 px and 128 steps unless --size /
--steps say otherwise), drawn with opacity by how many vectors fell in it. --classes adds a
class atlas per class on the same map (each vector weighted by its attribution to the class's
logit), --dictionary places a dictionary's features on it, --microscope links channels to a
microscope site's pages. The site is static: SITE/index.html opens from disk; click a cell for
its render, dataset examples, nearest channels and features. SITE/atlas.json holds the
figures: faithfulness (does each render's centre align best with its own cell), the layout's
trustworthiness, the time of each phase. Jobs are independent and written atomically: run it
again to resume after a kill, or under torchrun to share the jobs between ranks. Every render
keeps its record (`dreamkit reproduce SITE/cells/layer/c42.jpg --budget 100`).

examples:
  dreamkit atlas --layer inception4c --images photos/ -o atlas
  dreamkit atlas --layer inception4c --images photos/ --classes snorkel,"scuba diver" -o dive
  dreamkit atlas --layer inception4c --images photos/ --dictionary d.safetensors -o atlas
  torchrun --nproc-per-node 2 -m dreamkit atlas --layer mid --images photos/ -o atlas
"""

from __future__ import annotations

import argparse

from dreamkit.commands.common import (
    add_model_arguments,
    add_settings,
    add_threads_argument,
    show_progress,
)
from dreamkit.settings import ATLAS_CPU_RENDER, AtlasSettings, RenderSettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", required=True, metavar="SITE", help="site folder")
    what = parser.add_argument_group("what to map")
    what.add_argument("--images", required=True, metavar="DIR", help="a folder of photos")
    add_settings(what, AtlasSettings)
    what.add_argument("--dictionary", metavar="FILE",
                      help="a dictionary (direction file) of the layer: its features on the map")
    what.add_argument("--microscope", metavar="SITE",
                      help="a microscope site of the model: channels link to its pages")
    how = parser.add_argument_group("render settings (on a CPU the defaults are --size "
                                    f"{ATLAS_CPU_RENDER['size']} --steps "
                                    f"{ATLAS_CPU_RENDER['steps']})")
    add_settings(how, RenderSettings)
    run = parser.add_argument_group("running")
    add_threads_argument(run, None, "keep it the same between runs for identical pixels "
                                    "(default: all cores; 1 per rank under torchrun)")
    run.add_argument("--quiet", "-q", action="store_true", help="no progress bars or summary")
    add_model_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from dreamkit.commands.common import open_model, resolve_device, set_threads, settings_from
    from dreamkit.distributed import rank_device, ranks_from_env
    from dreamkit.files import check_folder

    settings = settings_from(args, AtlasSettings)
    check_folder(args.output)  # before the model and the work
    ranks = ranks_from_env()
    device = rank_device(resolve_device(args.device), ranks)
    from dreamkit.atlas import atlas
    from dreamkit.atlas.build import render_defaults

    render = settings_from(args, RenderSettings, render_defaults(device))
    set_threads(args.threads if args.threads is not None else 1 if ranks.world > 1 else None)
    args.device = str(device)
    made = atlas(open_model(args), args.images, args.output, settings, render,
                 dictionary=args.dictionary, microscope=args.microscope,
                 progress=show_progress(args))
    if ranks.is_main and not args.quiet:
        print(summary(made))
    return 0


def summary(made) -> str:
    """What the run made and measured, in a few lines."""
    figures = made.figures
    lines = [f"{made.index}: {made.jobs} jobs, {made.ran} run now, in {made.seconds:.0f} s"]
    layout = figures["layout"]
    trust = layout["trustworthiness"]
    lines.append(f"  {layout['vectors']} vectors of {layout['photos']} photos"
                 + (f" ({layout['skipped']} unreadable skipped)" if layout["skipped"] else "")
                 + ("" if trust is None else f"; layout trustworthiness {trust:.3f} "
                    f"(2-D PCA {layout['trustworthiness_pca']:.3f})"))
    for view, numbers in figures["views"].items():
        faith = numbers["faithfulness"]
        near, best = faith["beats_neighbours"], faith["best_of_all"]
        lines.append(f"  {view}: {numbers['cells']} cells; faithfulness "
                     f"{'n/a' if near is None else f'{near:.2f}'} beat their neighbours, "
                     f"{'n/a' if best is None else f'{best:.2f}'} beat every cell")
    seconds = figures["seconds"]
    lines.append("  seconds (all jobs): " + ", ".join(
        f"{k} {seconds[k]:.0f}" for k in ("collection", "layout", "renders", "examples"))
        + f"; peak memory {figures['memory']['peak_rss_mb']:.0f} MB")
    return "\n".join(lines)
