"""Visualize what channels, neurons, classes or directions respond to, rendered from noise.

Writes one PNG per target into the output folder (its record in the PNG metadata, key
`dreamkit`) and a labelled contact sheet `grid.png`. Targets are rendered --batch at a time
(fewer when the batch would pass the pixel budget); target k always gets seed SEED + k, so the
batch size changes a picture only by float rounding. Each PNG records its whole batch, so
`dreamkit reproduce PNG` renders the same pixels again.

examples:
  dreamkit vis --layer inception4c --channels 0-63 -o vis4c
  dreamkit vis --layer inception3b --channels 0,5,9-12 --param maco --size 160 -o vis3b
  dreamkit vis --layer inception4c --channels 97 --neuron -o neuron97
  dreamkit vis --class "golden retriever" --class 949 -o classes
  dreamkit vis --direction pca.safetensors:3 -o direction
  dreamkit vis --model efficientnet_lite0 --layer _blocks.10 --channels 0-7 --size 128 -o eff
"""

from __future__ import annotations

import argparse

from dreamkit.commands.common import (
    add_model_arguments,
    add_settings,
    model_files,
    open_model,
    settings_from,
    show_progress,
    table_and_model,
)
from dreamkit.errors import DreamkitError
from dreamkit.settings import PIXEL_BUDGET, RenderSettings
from dreamkit.targets import Target, parse_channel_list


def add_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_argument_group("what to visualize (one of)")
    kind = what.add_mutually_exclusive_group(required=True)
    kind.add_argument("--channels", metavar="LIST",
                      help="channels of --layer, e.g. 0-63 or 0,5,9-12")
    kind.add_argument("--class", dest="classes", action="append", metavar="NAME|INDEX",
                      help="an ImageNet class (repeat for several)")
    kind.add_argument("--direction", dest="directions", action="append", metavar="FILE[:N]",
                      help="a saved direction, row N (repeat for several)")
    what.add_argument("--layer", "-l", help="layer of --channels (a name or low|mid|high)")
    what.add_argument("--neuron", action="store_true",
                      help="with --channels: the centre neuron instead of the whole channel")
    how = parser.add_argument_group("render settings")
    add_settings(how, RenderSettings)
    how.add_argument("--batch", type=int, default=64, metavar="N",
                     help="images optimized together; lowered to fit the budget of "
                          f"{PIXEL_BUDGET:,} pixels per batch (default: %(default)s)")
    out = parser.add_argument_group("output")
    out.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    out.add_argument("--grid", metavar="FILE",
                     help="contact sheet path, .png or .jpg (default: DIR/grid.png)")
    out.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    add_model_arguments(parser)


def plan(args: argparse.Namespace, table) -> list[Target]:
    """The targets the flags ask for, checked against the model's table."""
    if args.channels is not None:
        if not args.layer:
            raise DreamkitError("--channels needs --layer")
        info = table.resolve(args.layer)
        channels = parse_channel_list(args.channels, info.name, info.channels)
        targets = [Target.of_channel(info.name, c, neuron=args.neuron) for c in channels]
    else:
        if args.layer or args.neuron:
            raise DreamkitError("--layer and --neuron go with --channels")
        targets = [Target.of_class(c) for c in args.classes] if args.classes else \
            [Target.of_direction(spec) for spec in args.directions]
    return [t.resolve(table, args.model) for t in targets]


def run(args: argparse.Namespace) -> int:
    from dreamkit.visualize import check_outputs, visualize

    settings = settings_from(args, RenderSettings)
    table, net = table_and_model(args)
    targets = plan(args, table)
    check_outputs(targets, args.output, args.grid, model_files(args))  # before the model
    grid = visualize(net or open_model(args), args.model, targets, args.output, settings,
                     batch=args.batch, grid=args.grid, inputs=model_files(args),
                     progress=show_progress(args),
                     saved=None if args.quiet else print)
    if not args.quiet:
        print(grid)
    return 0
