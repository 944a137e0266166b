"""Make a picture again from the record in its PNG and say whether the pixels are identical.

Works on `dream` outputs, `vis` pictures, gallery tiles and microscope images.

The record is untrusted input and is checked strictly before any work: its settings against
the same bounds as the commands, its size against the picture's own, its photo, direction
files and guide photos against their SHA-256, the weights against theirs. Files that have
moved are found with --input (the photo) and --direction / --guide (matched by their hash).
A record naming a user's `package.module:factory` runs only with --model naming it too (that
imports and runs the code). Same pixels need the same CPU thread count (the record's, unless
--threads) and the same kind of device. Exits 0 when identical, 1 when the pixels differ.

examples:
  dreamkit reproduce chelsea_inception4c.png
  dreamkit reproduce tile.png --input moved/chelsea.jpg -o again.png
  dreamkit reproduce vis4c/inception4c_c7.png
  dreamkit reproduce coffee_inception4e_direction-cat-0.png --direction new/cat.safetensors
"""

from __future__ import annotations

import argparse
import sys

from dreamkit.commands.common import (
    add_device_argument,
    add_settings,
    add_threads_argument,
    resolve_device,
    settings_from,
)
from dreamkit.settings import ReproduceSettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("picture", help="a PNG written by `dream`, `dreamkit vis` or a gallery")
    parser.add_argument("-o", "--output", metavar="OUT",
                        help="where to write the new picture (default: <stem>_reproduced.png "
                             "in this folder, never replacing a file)")
    moved = parser.add_argument_group("files that have moved")
    moved.add_argument("--input", metavar="PHOTO", help="the photo the dream started from")
    moved.add_argument("--direction", action="append", default=[], metavar="FILE",
                       help="a direction file the picture used (matched by its SHA-256)")
    moved.add_argument("--guide", action="append", default=[], metavar="IMAGE",
                       help="a guide photo the picture used (matched by its SHA-256)")
    model = parser.add_argument_group("model")
    model.add_argument("--model", metavar="SPEC",
                       help="required when the record names a package.module:factory (it runs "
                            "that code); otherwise the record's model is used")
    model.add_argument("--weights", metavar="FILE", help="weights file for the picture's model")
    add_device_argument(model)
    add_threads_argument(parser, None, "default: the record's count (same pixels need it)")
    add_settings(parser.add_argument_group("budget"), ReproduceSettings)
    parser.add_argument("--quiet", "-q", action="store_true", help="print nothing")


def run(args: argparse.Namespace) -> int:
    from dreamkit.errors import DreamkitError
    from dreamkit.reproduction import reproduce

    result = reproduce(args.picture, args.output, photo=args.input,
                       files=[*args.direction, *args.guide], model=args.model,
                       weights=args.weights, device=resolve_device(args.device),
                       threads=args.threads, settings=settings_from(args, ReproduceSettings))
    if result.status == "refused":
        raise DreamkitError(result.why)
    if not args.quiet:
        print(f"{result.output}: {result.why}", file=sys.stdout)
    return 0 if result.status == "identical" else 1
