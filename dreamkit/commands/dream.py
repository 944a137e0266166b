"""Dream a photo: amplify what a layer of the network sees in it (octave DeepDream).

examples:
  dream photo.jpg                          # inception4c, the classic look
  dream photo.jpg --layer inception3a      # lower layer: strokes and textures
  dream photo.jpg --layer high             # a tier picks that tier's default layer
  dream photo.jpg --layer inception4c --channel 97 -o out.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dreamkit import __version__
from dreamkit.commands.common import (
    add_model_arguments,
    add_output_arguments,
    nonnegative_float,
    open_model,
    positive_int,
    show_progress,
)
from dreamkit.dream import DreamSettings, dream
from dreamkit.errors import DreamkitError
from dreamkit.image_io import load_image, save_image
from dreamkit.models import get_spec
from dreamkit.objectives import channel, layer_norm

NAME = "dream"
HELP = "dream a photo (octave DeepDream)"
DEFAULTS = DreamSettings()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", help="the photo to dream (jpg, png, webp, ...)")
    parser.add_argument("-o", "--output", metavar="OUT",
                        help="output image (default: <stem>_<layer>.png in this folder)")
    parser.add_argument("--force", action="store_true",
                        help="allow writing over the input image")
    what = parser.add_argument_group("what to amplify")
    what.add_argument("--layer", "-l",
                      help="layer name or tier low|mid|high (default: the model's classic "
                           "layer, inception4c for bvlc_googlenet)")
    what.add_argument("--channel", "-c", type=int, metavar="N",
                      help="amplify one channel of the layer instead of all of it")
    how = parser.add_argument_group("dream settings")
    how.add_argument("--octaves", type=positive_int, default=DEFAULTS.octaves,
                     help="number of scales, smallest first (default: %(default)s)")
    how.add_argument("--octave-scale", type=float, default=DEFAULTS.octave_scale,
                     help="size ratio between octaves, > 1 (default: %(default)s)")
    how.add_argument("--steps", type=positive_int, default=DEFAULTS.steps,
                     help="gradient steps per octave (default: %(default)s)")
    how.add_argument("--lr", type=float, default=DEFAULTS.lr,
                     help="step size in 0-255 pixel units (default: %(default)s)")
    how.add_argument("--jitter", type=int, default=DEFAULTS.jitter,
                     help="max random shift per step, pixels (default: %(default)s)")
    how.add_argument("--blur", type=nonnegative_float, default=DEFAULTS.blur,
                     help="gradient smoothing sigma in pixels, 0 = off (default: %(default)s)")
    how.add_argument("--seed", type=int, default=DEFAULTS.seed,
                     help="random seed; the same seed gives the same image (default: "
                          "%(default)s)")
    add_model_arguments(parser)
    add_output_arguments(parser)


def output_path(args: argparse.Namespace, layer: str) -> Path:
    """`-o`, else `<stem>_<layer>[_c<N>].png` in the current folder; never the input itself."""
    suffix = f"_c{args.channel}" if args.channel is not None else ""
    out = Path(args.output) if args.output else Path(f"{Path(args.image).stem}_{layer}{suffix}.png")
    if out.resolve() == Path(args.image).resolve() and not args.force:
        raise DreamkitError(f"{out}: output is the input image; pass --force to overwrite it")
    return out


def run(args: argparse.Namespace) -> int:
    settings = DreamSettings(
        octaves=args.octaves, octave_scale=args.octave_scale, steps=args.steps, lr=args.lr,
        jitter=args.jitter, blur=args.blur, seed=args.seed,
    )
    spec = get_spec(args.model)
    layer = spec.layers.resolve(args.layer or spec.default_layer).name
    out = output_path(args, layer)
    image = load_image(args.image, max_pixels=args.max_pixels)
    net = open_model(args)
    objective = layer_norm(layer) if args.channel is None else channel(layer, args.channel)
    result = dream(net, image, objective, settings, progress=show_progress(args))
    record = {
        "version": __version__, "command": "dream", "model": args.model, "layer": layer,
        "channel": args.channel, "input": str(args.image), "settings": settings.to_dict(),
    }
    save_image(result, out, metadata={"dreamkit": json.dumps(record)})
    if not args.quiet:
        print(out)
    return 0
