"""Render a gallery tile, a `dream` output or a `vis` picture again from the settings stored
in its PNG.

The metadata is validated strictly; the photo a dream started from must be the same file (its
SHA-256 is checked when recorded). A `vis` picture is rendered again with its whole batch (and
the direction files it names). Prints whether the new pixels are identical to the old ones and
exits 1 when they differ. Same pixels need the same CPU thread count (recorded by `vis`; pass
--threads for tiles and dreams) and the same device.

examples:
  dreamkit reproduce out/layers/tiles/r00c01-3f2a9c0e1b.png
  dreamkit reproduce tile.png --input moved/chelsea.jpg -o again.png
  dreamkit reproduce vis4c/inception4c_c7.png
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image

from dreamkit.commands.common import check_output, positive_int, resolve_device
from dreamkit.distributed import deterministic
from dreamkit.errors import DreamkitError
from dreamkit.gallery import METADATA_KEY, read_record, read_tile_spec, render_tile, tile_metadata
from dreamkit.image_io import save_image, to_uint8
from dreamkit.models import load_model
from dreamkit.vis_record import check_record, render_record

NAME = "reproduce"
HELP = "render a tile again from its PNG metadata and compare the pixels"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("tile", help="a PNG written by `dreamkit gallery`, `dream` or `vis`")
    parser.add_argument("-o", "--output", metavar="OUT",
                        help="where to write the new render (default: <stem>_reproduced.png "
                             "in this folder)")
    parser.add_argument("--input", metavar="PHOTO",
                        help="the photo the dream started from, if it has moved")
    parser.add_argument("--weights", metavar="FILE", help="weights file for the tile's model")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="where to run (default: auto)")
    parser.add_argument("--threads", type=positive_int,
                        help="CPU threads, as in the run that made the tile (default: the "
                             "recorded count for vis pictures, else 1)")
    parser.add_argument("--quiet", "-q", action="store_true", help="print nothing")


def run(args: argparse.Namespace) -> int:
    tile = Path(args.tile)
    record = read_record(tile)
    out = check_output(Path(args.output or f"{tile.stem}_reproduced.png"), inputs=[tile])
    if isinstance(record, Mapping) and record.get("command") == "vis":
        try:
            vis = check_record(record)
        except DreamkitError as exc:
            raise DreamkitError(f"{tile}: {exc}") from None
        deterministic(args.threads or vis["threads"])
        net = load_model(vis["model"], args.weights, device=resolve_device(args.device))
        image = render_record(vis, net)
        metadata = {METADATA_KEY: json.dumps(record)}
    else:
        spec = read_tile_spec(tile)
        source = Path(args.input) if args.input else None
        if spec.kind == "dream" and source is None and not Path(str(spec.input)).is_file():
            raise DreamkitError(f"{tile}: its photo {spec.input} is not there; pass --input PHOTO")
        deterministic(args.threads or 1)
        net = load_model(spec.model, args.weights, device=resolve_device(args.device))
        image = render_tile(spec, net, input_path=source)
        metadata = tile_metadata(spec)
    save_image(image, out, metadata=metadata)
    new = to_uint8(image)
    with Image.open(tile) as im:
        old = np.asarray(im.convert("RGB"))
    if old.shape == new.shape and np.array_equal(old, new):
        if not args.quiet:
            print(f"{out}: identical to {tile}")
        return 0
    if not args.quiet:
        if old.shape != new.shape:
            print(f"{out}: differs from {tile} (size {new.shape[1]}x{new.shape[0]} instead of "
                  f"{old.shape[1]}x{old.shape[0]})")
        else:
            diff = np.abs(old.astype(int) - new.astype(int))
            print(f"{out}: differs from {tile} ({int((diff > 0).any(2).sum())} pixels, by up "
                  f"to {int(diff.max())}/255)")
    return 1
