"""Dream a photo: amplify what a layer of the network sees in it (octave DeepDream).

The output has the photo's size (or --size), carries its record (settings, photo hash,
weights hash, what ran) in the PNG, and `dreamkit reproduce OUT.png` makes it again. A default
output name never replaces an existing file. The defaults below are the classic ones, for the
Caffe networks; every other model (torchvision:, timm:, a factory, efficientnet_lite0) dreams
with up to 80 steps of lr 2 and jitter 16 per octave, each octave ending once the layer is
2.2x the photo's (--gain), as it responds less to the classic steps; flags override them.

examples:
  dream photo.jpg                          # inception4c, the classic look
  dream photo.jpg --layer inception3a      # lower layer: strokes and textures
  dream photo.jpg --layer high             # a tier picks that tier's default layer
  dream photo.jpg --layer inception4c --channel 97 -o out.png
  dream photo.jpg --direction cat.safetensors        # a learned direction (dreamkit direction)
  dream photo.jpg --direction cat.safetensors --negate   # suppress it instead
  dream photo.jpg --model torchvision:resnet50 --layer layer3.5 --weights resnet50.pth
  dream photo.jpg --model torchvision:resnet50 --gain 0 --steps 30   # every step, no early end
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dreamkit.commands.common import (
    add_model_arguments,
    add_output_arguments,
    add_settings,
    check_output,
    free_name,
    model_files,
    open_model,
    resolve_device,
    settings_from,
    show_progress,
    slug,
    table_and_model,
    written,
)
from dreamkit.models.catalog import DEFAULT_MODEL, dream_defaults
from dreamkit.settings import DreamSettings
from dreamkit.targets import Target, dream_target

RECOVER_TRIES = 4  # --auto-recover: the lr, then half, a quarter and an eighth of it


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", help="the photo to dream (jpg, png, webp, ...)")
    parser.add_argument("-o", "--output", metavar="OUT",
                        help="output image (default: <photo>_<target>.png in this folder, "
                             "never replacing a file)")
    parser.add_argument("--force", action="store_true",
                        help="allow writing over one of the inputs")
    parser.add_argument("--save-partial", action="store_true",
                        help="on Ctrl-C, save the dream as of the last finished octave")
    add_target_arguments(parser)
    how = parser.add_argument_group("dream settings")
    add_settings(how, DreamSettings)
    how.add_argument("--auto-recover", action="store_true",
                     help="if the dream diverges (NaN/inf), retry at half the lr, up to "
                          f"{RECOVER_TRIES - 1} times")
    add_model_arguments(parser)
    add_output_arguments(parser)


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
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
                           "direction` or `dreamkit dictionary`; its layer is the file's")
    what.add_argument("--negate", action="store_true",
                      help="minimize instead of maximize (with --direction: suppress it)")


def target_of(args: argparse.Namespace, table) -> Target:
    """The one target the flags ask for, checked against the model's table."""
    return dream_target(table, args.model, layer=args.layer, channel=args.channel,
                        guide=args.guide, direction=args.direction, negate=args.negate)


def default_output(image: str, target: Target, model: str) -> Path:
    """`<photo>_<target>[_<model>].png`: different whenever what was asked differs."""
    tail = "" if model == DEFAULT_MODEL else f"_{slug(model)}"
    return Path(f"{Path(image).stem}_{target.stem()}{tail}.png")


def run(args: argparse.Namespace) -> int:
    from dreamkit.records import Photo, Recipe

    settings = settings_from(args, DreamSettings, dream_defaults(args.model))
    table, net = table_and_model(args)
    target = target_of(args, table)
    from dreamkit.precision import resolve_precision

    resolve_precision(settings.precision, resolve_device(args.device))  # fp16 on a CPU: now
    photo = Photo.of(args.image)
    wanted = None if args.output else default_output(args.image, target, args.model)
    out = Path(args.output) if args.output else free_name(wanted)
    check_output(out, inputs=[args.image, target.file, *model_files(args)], force=args.force)
    from dreamkit.image_io import load_image

    image = load_image(args.image, max_pixels=args.max_pixels)
    net = net or open_model(args)
    recipe = Recipe("dream", args.model, (target,), settings, photo)
    _dream_and_save(args, net, image, recipe, out)
    written(out, wanted, args.quiet)
    return 0


def _dream_and_save(args, net, image, recipe, out: Path) -> None:
    """Dream and save with the record (retrying at half the lr with --auto-recover); on Ctrl-C
    with --save-partial, save the last finished octave with its record."""
    from dreamkit.image_io import save_image
    from dreamkit.records import Record, provenance
    from dreamkit.remake import dream_picture

    finished: dict = {}

    def keep(index: int, so_far) -> None:
        finished.update(octaves=index + 1, image=so_far)

    try:
        dream_picture(net, image, recipe, out, on_octave=keep, progress=show_progress(args),
                      recover=RECOVER_TRIES - 1 if args.auto_recover else 0)
    except KeyboardInterrupt:
        if args.save_partial and finished:
            done = finished["octaves"]
            record = Record(recipe, net.weights_sha256(), provenance({"device": str(net.device)}),
                            octaves_done=done)
            save_image(finished["image"], out, metadata=record.metadata())
            print(f"{out}: saved the dream as of octave {done}", file=sys.stderr)
        raise
