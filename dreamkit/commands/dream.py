"""Dream a photo: amplify what a layer of the network sees in it (octave DeepDream).

examples:
  dream photo.jpg                          # inception4c, the classic look
  dream photo.jpg --layer inception3a      # lower layer: strokes and textures
  dream photo.jpg --layer high             # a tier picks that tier's default layer
  dream photo.jpg --layer inception4c --channel 97 -o out.png
  dream photo.jpg --direction cat.safetensors        # a learned direction (dreamkit direction)
  dream photo.jpg --direction cat.safetensors --negate   # suppress it instead
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

from dreamkit import __version__
from dreamkit.commands.common import (
    add_model_arguments,
    add_output_arguments,
    check_channel,
    check_output,
    nonnegative_float,
    open_model,
    positive_int,
    resolve_device,
    show_progress,
    tile_size,
)
from dreamkit.directions import resolve_direction_arg, split_direction_arg
from dreamkit.dream import DivergedError, DreamSettings, dream
from dreamkit.errors import DreamkitError
from dreamkit.image_io import load_image, save_image
from dreamkit.models import StagedNet, get_spec
from dreamkit.objectives import Objective, channel, direction, guide, layer_norm
from dreamkit.precision import PRECISIONS, resolve_precision

NAME = "dream"
HELP = "dream a photo (octave DeepDream)"
DEFAULTS = DreamSettings()
RECOVER_TRIES = 4  # --auto-recover: the lr, then half, a quarter and an eighth of it


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", help="the photo to dream (jpg, png, webp, ...)")
    parser.add_argument("-o", "--output", metavar="OUT",
                        help="output image (default: <stem>_<layer>.png in this folder)")
    parser.add_argument("--force", action="store_true",
                        help="allow writing over the input image")
    parser.add_argument("--save-partial", action="store_true",
                        help="on Ctrl-C, save the dream as of the last finished octave")
    what = parser.add_argument_group("what to amplify")
    what.add_argument("--layer", "-l",
                      help="layer name or tier low|mid|high (default: the model's classic "
                           "layer, inception4c for bvlc_googlenet)")
    what.add_argument("--channel", "-c", type=int, metavar="N",
                      help="amplify one channel of the layer instead of all of it")
    what.add_argument("--guide", metavar="IMAGE",
                      help="guided dream: pull the layer's features toward this image's")
    what.add_argument("--direction", metavar="FILE[:N]",
                      help="amplify a learned direction (row N, default 0) from `dreamkit "
                           "direction`; its layer is the file's")
    what.add_argument("--negate", action="store_true",
                      help="minimize instead of maximize (with --direction: suppress it)")
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
    how.add_argument("--auto-recover", action="store_true",
                     help="if the dream diverges (NaN/inf), retry at half the lr, up to "
                          f"{RECOVER_TRIES - 1} times")
    speed = parser.add_argument_group("speed and memory")
    speed.add_argument("--precision", choices=PRECISIONS, default="auto",
                       help="network precision (default: auto = bf16 on GPUs that have it, "
                            "else fp32)")
    speed.add_argument("--tile", type=tile_size, metavar="PX",
                       help="compute gradients on PX-pixel tiles (a multiple of 32; 0 = never); "
                            "default: only for images too big for the free memory")
    add_model_arguments(parser)
    add_output_arguments(parser)


def output_path(args: argparse.Namespace, layer: str) -> Path:
    """`-o`, else `<stem>_<layer>[_c<N>].png` in the current folder; checked by `check_output`."""
    suffix = f"_c{args.channel}" if args.channel is not None else ""
    if args.direction:
        suffix += f"_{Path(split_direction_arg(args.direction)[0]).stem}"
    suffix += "_neg" if args.negate else ""
    out = Path(args.output) if args.output else Path(f"{Path(args.image).stem}_{layer}{suffix}.png")
    return check_output(out, inputs=[Path(args.image)], force=args.force)


def _metadata(args: argparse.Namespace, layer: str, settings: DreamSettings, **extra) -> dict:
    record = {
        "version": __version__, "command": "dream", "model": args.model, "layer": layer,
        "channel": args.channel, "input": str(args.image), "settings": settings.to_dict(),
        "precision": args.precision,
        **({"guide": str(args.guide)} if args.guide else {}),
        **({"direction": args.direction} if args.direction else {}),
        **({"negate": True} if args.negate else {}), **extra,
    }
    return {"dreamkit": json.dumps(record)}


def _dream(
    args: argparse.Namespace, net: StagedNet, image: torch.Tensor, objective: Objective,
    settings: DreamSettings, finished: dict,
) -> tuple[torch.Tensor, DreamSettings]:
    """`dream`, retried at half the lr on divergence with --auto-recover; -> (image, settings).

    `finished` holds the last finished octave of the current try (for --save-partial).
    """
    tries = RECOVER_TRIES if args.auto_recover else 1
    while True:
        finished.clear()

        def keep(index: int, so_far: torch.Tensor, settings: DreamSettings = settings) -> None:
            finished.update(octaves=index + 1, image=so_far, settings=settings)

        try:
            result = dream(net, image, objective, settings, progress=show_progress(args),
                           on_octave=keep, precision=args.precision, tile=args.tile)
            return result, settings
        except DivergedError as exc:
            tries -= 1
            if tries == 0:
                raise
            settings = replace(settings, lr=settings.lr / 2)
            print(f"{exc}; retrying at lr {settings.lr:g}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    settings = DreamSettings(
        octaves=args.octaves, octave_scale=args.octave_scale, steps=args.steps, lr=args.lr,
        jitter=args.jitter, blur=args.blur, seed=args.seed,
    )
    spec = get_spec(args.model)
    vector = None
    if args.direction:
        if args.guide or args.channel is not None:
            raise DreamkitError("--direction cannot be combined with --channel or --guide")
        args.layer, vector = resolve_direction_arg(args.direction, args.model, args.layer)
    info = spec.layers.resolve(args.layer or spec.default_layer)
    layer = info.name
    check_channel(info, args.channel)
    if args.guide and args.channel is not None:
        raise DreamkitError("--guide and --channel cannot be combined")
    resolve_precision(args.precision, resolve_device(args.device))  # refuse fp16 on a CPU now
    out = output_path(args, layer)
    image = load_image(args.image, max_pixels=args.max_pixels)
    guide_image = load_image(args.guide, max_pixels=args.max_pixels) if args.guide else None
    net = open_model(args)
    if vector is not None:
        objective = direction(layer, vector)
    elif guide_image is not None:
        objective = guide(layer, guide_image)
    else:
        objective = layer_norm(layer) if args.channel is None else channel(layer, args.channel)
    objective = -objective if args.negate else objective
    finished: dict = {}
    try:
        result, settings = _dream(args, net, image, objective, settings, finished)
    except KeyboardInterrupt:
        if args.save_partial and finished:
            done = finished["octaves"]
            save_image(finished["image"], out,
                       metadata=_metadata(args, layer, finished["settings"], octaves_done=done))
            print(f"{out}: saved the dream as of octave {done}", file=sys.stderr)
        raise
    save_image(result, out, metadata=_metadata(args, layer, settings))
    if not args.quiet:
        print(out)
    return 0
