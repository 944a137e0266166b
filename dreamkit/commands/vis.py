"""Visualize what channels, neurons, classes or directions respond to, rendered from noise.

Writes one PNG per target into the output folder (its settings in the PNG metadata, key
`dreamkit`) and a labelled contact sheet `grid.png`. Targets are rendered --batch at a time;
target k always gets seed SEED + k, so the batch size changes a picture only by float rounding.
Each PNG records its whole batch, so `dreamkit reproduce PNG` renders the same pixels again.

examples:
  dreamkit vis --layer inception4c --channels 0-63 -o vis4c
  dreamkit vis --layer inception3b --channels 0,5,9-12 --param maco --size 160 -o vis3b
  dreamkit vis --layer inception4c --channels 97 --neuron -o neuron97
  dreamkit vis --class "golden retriever" --class 949 -o classes
  dreamkit vis --direction pca.safetensors:3 -o direction
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from dreamkit.commands.common import (
    add_model_arguments,
    check_output,
    open_model,
    positive_int,
    show_progress,
)
from dreamkit.directions import resolve_direction_arg, split_direction_arg
from dreamkit.errors import DreamkitError
from dreamkit.image_io import save_image
from dreamkit.imagenet import class_index, class_names
from dreamkit.models import get_spec
from dreamkit.param import PARAMS
from dreamkit.precision import PRECISIONS
from dreamkit.render import render
from dreamkit.vis_record import batch_objective, make_record

NAME = "vis"
HELP = "feature visualization: render channels, neurons, classes or directions from noise"


@dataclass
class Target:
    """One picture: its file stem, grid label and objective spec (for the metadata)."""

    stem: str
    label: str
    spec: dict


def add_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_argument_group("what to visualize (one of)")
    kind = what.add_mutually_exclusive_group(required=True)
    kind.add_argument("--channels", metavar="LIST",
                      help="channels of --layer, e.g. 0-63 or 0,5,9-12")
    kind.add_argument("--class", dest="classes", action="append", metavar="NAME|INDEX",
                      help="an ImageNet class (repeat for several)")
    kind.add_argument("--direction", dest="directions", action="append", metavar="FILE[:INDEX]",
                      help="a saved direction (repeat for several of one layer)")
    what.add_argument("--layer", "-l", help="layer of --channels (a name or low|mid|high)")
    what.add_argument("--neuron", action="store_true",
                      help="with --channels: the centre neuron instead of the whole channel")
    how = parser.add_argument_group("render settings")
    how.add_argument("--param", choices=PARAMS, default="fft",
                     help="image parameterization (default: %(default)s)")
    how.add_argument("--no-decorrelate", dest="decorrelate", action="store_false",
                     help="optimize plain RGB instead of decorrelated colours")
    how.add_argument("--size", type=positive_int, default=224, help="side in pixels "
                     "(default: %(default)s)")
    how.add_argument("--steps", type=positive_int, default=512,
                     help="optimization steps (default: %(default)s)")
    how.add_argument("--lr", type=float, default=0.05, help="Adam step size (default: %(default)s)")
    how.add_argument("--batch", type=positive_int, default=64,
                     help="images optimized together (default: %(default)s)")
    how.add_argument("--seed", type=int, default=0, help="seed of the first target; target k "
                     "uses SEED + k (default: %(default)s)")
    how.add_argument("--precision", choices=PRECISIONS, default="auto",
                     help="network precision (default: auto = bf16 on GPUs that have it)")
    how.add_argument("--no-redirected-relu", dest="redirected_relu", action="store_false",
                     help="plain ReLU gradients (deep channels may stay flat grey)")
    out = parser.add_argument_group("output")
    out.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    out.add_argument("--grid", metavar="FILE",
                     help="contact sheet path, .png or .jpg (default: DIR/grid.png)")
    out.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    add_model_arguments(parser)


def parse_channels(text: str, count: int) -> list[int]:
    """`0-3,7` -> [0, 1, 2, 3, 7], each checked against the layer's `count` channels."""
    channels: list[int] = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match:
            raise DreamkitError(f"bad channel list {text!r}: expected e.g. 0-63 or 0,5,9-12")
        first, last = int(match[1]), int(match[2] or match[1])
        if first > last:
            raise DreamkitError(f"bad channel range {part.strip()!r}: start is after end")
        channels.extend(range(first, last + 1))
    bad = [c for c in channels if c >= count]
    if bad:
        raise DreamkitError(f"channel {bad[0]} is out of range: the layer has {count} channels "
                            f"(0-{count - 1})")
    return list(dict.fromkeys(channels))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _direction_stem(spec: str) -> str:
    """`dirs/cat.safetensors:3` -> `cat_3` (index 0 when none is given)."""
    path, index = split_direction_arg(spec)
    return f"{_slug(Path(path).stem)}_{index}"


def plan(args: argparse.Namespace) -> list[Target]:
    """The targets, checked (a batch of them makes one objective: `batch_objective`)."""
    if args.channels is not None:
        if not args.layer:
            raise DreamkitError("--channels needs --layer")
        info = get_spec(args.model).layers.resolve(args.layer)
        chans = parse_channels(args.channels, info.channels)
        kind, tag = ("neuron", "n") if args.neuron else ("channel", "c")
        return [Target(f"{info.name}_{tag}{c}", f"{tag}{c}",
                       {"kind": kind, "layer": info.name, "channel": c}) for c in chans]
    if args.layer or args.neuron:
        raise DreamkitError("--layer and --neuron go with --channels")
    if args.classes:
        indices = [class_index(c) for c in args.classes]
        names = class_names()
        return [Target(f"class{k}_{_slug(names[k])}", f"{k} {names[k]}",
                       {"kind": "class", "class": k, "name": names[k]}) for k in indices]
    resolved = [resolve_direction_arg(spec, args.model) for spec in args.directions]
    layers = {layer for layer, _ in resolved}
    if len(layers) > 1:
        raise DreamkitError(f"directions of different layers ({', '.join(sorted(layers))}); "
                            "run vis once per layer")
    layer = layers.pop()
    return [Target(f"direction_{_direction_stem(spec)}", spec,
                   {"kind": "direction", "layer": layer, "direction": spec})
            for spec in args.directions]


def contact_sheet(images: torch.Tensor, labels: list[str], columns: int | None = None,
                  pad: int = 4, label_height: int = 14) -> torch.Tensor:
    """The images (N, 3, H, W) in a labelled grid on white, as a (3, H', W') tensor."""
    n, _, h, w = images.shape
    columns = columns or min(n, max(1, round(n**0.5 * 1.25)))
    rows = -(-n // columns)
    sheet = Image.new("RGB", (columns * (w + pad) + pad, rows * (h + label_height + pad) + pad),
                      "white")
    draw = ImageDraw.Draw(sheet)
    pixels = (images.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
    for i, (tile, label) in enumerate(zip(pixels, labels, strict=True)):
        x = pad + (i % columns) * (w + pad)
        y = pad + (i // columns) * (h + label_height + pad)
        sheet.paste(Image.fromarray(tile), (x, y))
        draw.text((x + 1, y + h + 1), label[: max(4, w // 6)], fill="black")
    return torch.from_numpy(np.asarray(sheet).copy()).permute(2, 0, 1).float() / 255


def run(args: argparse.Namespace) -> int:
    targets = plan(args)
    if not np.isfinite(args.lr) or args.lr <= 0:
        raise DreamkitError("--lr must be a positive number")
    if not 0 <= args.seed < 2**63 - len(targets):
        raise DreamkitError(f"--seed {args.seed} is out of range (0 to 2**63 - 1 - targets)")
    out = Path(args.output)
    grid = Path(args.grid) if args.grid else out / "grid.png"
    check_output(out / "probe.png")
    check_output(grid)
    out.mkdir(parents=True, exist_ok=True)
    net = open_model(args)
    images = []
    for start in range(0, len(targets), args.batch):
        chunk = targets[start:start + args.batch]
        specs = [target.spec for target in chunk]
        settings = {"param": args.param, "decorrelate": args.decorrelate, "size": args.size,
                    "steps": args.steps, "lr": args.lr, "seed": args.seed + start,
                    "precision": args.precision, "redirected_relu": args.redirected_relu}
        result = render(net, batch_objective(specs, args.model), **settings,
                        progress=show_progress(args))
        for i, (target, image) in enumerate(zip(chunk, result.images, strict=True)):
            record = make_record(args.model, specs, i, settings, torch.get_num_threads())
            path = save_image(image, out / f"{target.stem}.png",
                              metadata={"dreamkit": json.dumps(record)})
            if not args.quiet:
                print(path)
        images.append(result.images)
    save_image(contact_sheet(torch.cat(images), [t.label for t in targets]), grid)
    if not args.quiet:
        print(grid)
    return 0
