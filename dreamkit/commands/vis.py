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
from pathlib import Path

from dreamkit.commands.common import (
    add_model_arguments,
    add_settings,
    check_output,
    model_files,
    open_model,
    settings_from,
    show_progress,
    table_and_model,
)
from dreamkit.errors import DreamkitError
from dreamkit.settings import MAX_SEED, MAX_TARGETS, PIXEL_BUDGET, RenderSettings
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
    if len(targets) > MAX_TARGETS:
        raise DreamkitError(f"{len(targets)} targets; one run renders at most {MAX_TARGETS}")
    return [t.resolve(table, args.model) for t in targets]


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args, RenderSettings)
    if not 1 <= args.batch <= MAX_TARGETS:
        raise DreamkitError(f"batch must be an integer from 1 to {MAX_TARGETS}, not "
                            f"{args.batch}")
    table, net = table_and_model(args)
    targets = plan(args, table)
    if settings.seed + len(targets) - 1 > MAX_SEED:
        raise DreamkitError(f"seed {settings.seed} leaves no room for {len(targets)} targets")
    out = Path(args.output)
    grid = Path(args.grid) if args.grid else out / "grid.png"
    inputs = [*(t.file for t in targets), *model_files(args)]
    for target in targets:
        check_output(out / f"{target.stem()}.png", inputs=inputs)
    check_output(grid, inputs=inputs)
    net = net or open_model(args)
    batch = max(1, min(args.batch, PIXEL_BUDGET // settings.size**2))
    images = []
    for start in range(0, len(targets), batch):
        images += render_batch(args, net, targets[start:start + batch],
                               settings.replace(seed=settings.seed + start), out)
    from dreamkit.image_io import save_image
    from dreamkit.sheets import contact_sheet, to_tensor

    sheet = contact_sheet(images, captions=[t.label() for t in targets])
    save_image(to_tensor(sheet), grid)
    if not args.quiet:
        print(grid)
    return 0


def render_batch(args: argparse.Namespace, net, chunk: list[Target],
                 settings: RenderSettings, out: Path) -> list:
    """Render one batch of targets; save each picture with its record."""
    from dreamkit.image_io import save_image
    from dreamkit.records import Recipe, Record, provenance
    from dreamkit.render import render
    from dreamkit.targets import picture_objective

    pictures = tuple((t,) for t in chunk)
    result = render(net, picture_objective(pictures, args.model), settings, batch=len(chunk),
                    progress=show_progress(args))
    ran = provenance(result.ran)
    for i, (target, image) in enumerate(zip(chunk, result.images, strict=True)):
        recipe = Recipe("vis", args.model, (target,), settings, batch=pictures, index=i)
        record = Record(recipe, net.weights_sha256(), ran)
        path = save_image(image, out / f"{target.stem()}.png", metadata=record.metadata())
        if not args.quiet:
            print(path)
    return list(result.images)
