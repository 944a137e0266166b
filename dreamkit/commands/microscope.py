"""Build a microscope site: every channel of some layers, each with its feature visualization,
diverse variants, centre-neuron visualization, dataset examples and strongest inputs.

For each chosen layer and channel: the channel's visualization (the vis recipe; on a CPU at
112 px and 128 steps unless --size / --steps say otherwise, on a GPU at vis's defaults), a few
diverse variants, the centre neuron's visualization, with --images the photos of the folder
that excite it most (cut around the most active position at the size of the layer's
receptive field, with a heat map and the activation), and the channels of the previous chosen
layer that drive it most (activation x gradient). With --dictionary (a file of `dreamkit
dictionary fit`) the site shows the dictionary's features as its layer's channels: those
--channels names, else the --features most often active on the photos, each with its
visualization (the decoder atom as a direction), examples with heat maps of its code, the
classes it pushes up and down, and a histogram of its codes. The site is static:
SITE/index.html opens from disk. Jobs are independent and written atomically: run it again to
resume after a kill, or under torchrun to share the jobs between ranks (rank 0 writes the
pages). Every picture keeps its record (`dreamkit reproduce SITE/layers/L/c7.jpg`).

examples:
  dreamkit microscope --layers inception3b,inception4c --channels 0-15 --images photos/ -o site
  dreamkit microscope --model efficientnet_lite0 --layers mid --channels 0-31 -o lite
  dreamkit microscope --dictionary d.safetensors --images photos/ --features 64 -o features
  torchrun --nproc-per-node 2 -m dreamkit microscope --layers mid --images photos/ -o site
"""

from __future__ import annotations

import argparse
import sys

from dreamkit.commands.common import (
    add_model_arguments,
    add_settings,
    add_threads_argument,
    show_progress,
)
from dreamkit.settings import MICROSCOPE_CPU_RENDER, MicroscopeSettings, RenderSettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", required=True, metavar="SITE", help="site folder")
    what = parser.add_argument_group("what to show")
    what.add_argument("--images", metavar="DIR",
                      help="a folder of photos for the dataset examples (default: none)")
    what.add_argument("--dictionary", metavar="FILE",
                      help="show this dictionary's features (dreamkit dictionary fit) as the "
                           "channels of its layer")
    add_settings(what, MicroscopeSettings)
    how = parser.add_argument_group("render settings (on a CPU the defaults are --size "
                                    f"{MICROSCOPE_CPU_RENDER['size']} --steps "
                                    f"{MICROSCOPE_CPU_RENDER['steps']})")
    add_settings(how, RenderSettings)
    run = parser.add_argument_group("running")
    add_threads_argument(run, 1, "keep it the same between runs for identical pixels "
                                 "(default: %(default)s; scale out with torchrun)")
    run.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    add_model_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from dreamkit.commands.common import open_model, resolve_device, set_threads, settings_from
    from dreamkit.distributed import rank_device, ranks_from_env
    from dreamkit.files import check_folder
    from dreamkit.microscope import microscope
    from dreamkit.microscope.build import render_defaults

    settings = settings_from(args, MicroscopeSettings)
    check_folder(args.output)  # before the model and the work
    ranks = ranks_from_env()
    device = rank_device(resolve_device(args.device), ranks)
    render = settings_from(args, RenderSettings, render_defaults(device))
    set_threads(args.threads)
    args.device = str(device)
    built = microscope(open_model(args), args.output, settings, render, images=args.images,
                       dictionary=args.dictionary, progress=show_progress(args))
    if built.flat and ranks.is_main and not args.quiet:
        print(f"{', '.join(built.flat)}: no positions, so visualizations only (no dataset "
              "examples or neurons)", file=sys.stderr)
    if built.skipped and ranks.is_main and not args.quiet:
        print(f"{built.skipped} unreadable photos skipped", file=sys.stderr)
    if ranks.is_main and not args.quiet:
        print(f"{built.index}: {built.jobs} jobs, {built.ran} run now, in {built.seconds:.0f} s")
    return 0
