"""Render a comparison gallery: a grid of tiles over two axes, a contact sheet and index.html.

The grid comes from a TOML or JSON config, from flags, or both (flags win). Axes: layer,
channel, model, image, size, precision, or any setting (octaves, lr, steps, jitter, blur, ...;
for renders param, decorrelate, transforms, ...). Every tile PNG carries its full settings;
`dreamkit reproduce TILE.png` renders it again. Finished tiles are skipped, so an interrupted
run picks up where it stopped. Scale out with torchrun: each rank renders its share of the
tiles and rank 0 assembles the sheet and the page.

examples:
  dreamkit gallery gallery/configs/layers.toml -o out/layers
  dreamkit gallery --image photo.jpg --rows layer=inception3a,inception4c,inception5a \\
      --columns octaves=1,4 --set steps=5 -o out/grid
  torchrun --nproc-per-node 4 -m dreamkit gallery big.toml -o out/big

config (TOML; JSON has the same keys):
  title = "Lower vs higher layers"
  kind = "dream"              # or "render" (feature visualization from noise; no image)
  model = "bvlc_googlenet"
  image = "chelsea.jpg"       # relative to the config's folder
  size = 128                  # tiles are size x size (short side resized, centre-cropped)
  precision = "auto"          # or fp32, bf16, fp16 (also an axis)
  [settings]                  # dream: octaves, octave_scale, steps, lr, jitter, blur, seed
  octaves = 3
  [rows]
  axis = "layer"
  values = ["inception3a", "inception4c", "inception5a"]
  [columns]
  axis = "jitter"
  values = [0, 32]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dreamkit.commands.common import positive_int, resolve_device, show_progress
from dreamkit.distributed import (
    deterministic,
    process_group,
    rank_device,
    ranks_from_env,
    run_jobs,
)
from dreamkit.errors import DreamkitError
from dreamkit.gallery import (
    KINDS,
    Tile,
    is_finished,
    load_config,
    parse_gallery,
    render_tile,
    tile_metadata,
    write_html,
    write_sheet,
)
from dreamkit.image_io import save_image
from dreamkit.models import StagedNet, load_model
from dreamkit.precision import PRECISIONS

NAME = "gallery"
HELP = "render a grid of dreams or visualizations over two axes, with a sheet and a web page"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", help="gallery config (.toml or .json)")
    parser.add_argument("-o", "--output", metavar="DIR", required=True,
                        help="output folder (tiles/, sheet.png, index.html)")
    grid = parser.add_argument_group("grid (override the config)")
    grid.add_argument("--rows", metavar="AXIS=V1,V2,...", help="the row axis and its values")
    grid.add_argument("--columns", metavar="AXIS=V1,V2,...", help="the column axis and values")
    grid.add_argument("--kind", choices=KINDS, help="dream a photo or render from noise")
    grid.add_argument("--image", help="the photo every dream tile starts from")
    grid.add_argument("--model", help="network (default: bvlc_googlenet)")
    grid.add_argument("--layer", help="layer name or tier low|mid|high")
    grid.add_argument("--channel", type=int, help="one channel of the layer")
    grid.add_argument("--size", type=positive_int, help="tile side in pixels (default: 128)")
    grid.add_argument("--precision", choices=PRECISIONS,
                      help="network precision (default: auto = bf16 on GPUs that have it)")
    grid.add_argument("--title", help="title of the sheet and the page")
    grid.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="a setting of every tile, e.g. --set steps=5 (repeatable)")
    run_group = parser.add_argument_group("running")
    run_group.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                           help="where to run (default: auto = cuda when available; under "
                                "torchrun each rank takes GPU LOCAL_RANK)")
    run_group.add_argument("--threads", type=positive_int, default=1,
                           help="CPU threads per process; keep it the same between runs for "
                                "identical pixels (default: %(default)s; scale out with "
                                "torchrun)")
    run_group.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def _scalar(text: str) -> object:
    """A flag value as the config would hold it: int, float, true/false, else the string."""
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text, text)


def _pair(flag: str, text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key or not value:
        raise DreamkitError(f"{flag} expects KEY=VALUE, not {text!r}")
    return key.strip(), value


def _image(value: object) -> object:
    return str(Path.cwd() / value) if isinstance(value, str) else value


def config_from_args(args: argparse.Namespace) -> tuple[dict, Path]:
    """The config file (if any) with the flags laid over it, and the folder images are in."""
    config = load_config(args.config) if args.config else {}
    base = Path(args.config).parent if args.config else Path.cwd()
    for key in ("kind", "model", "layer", "channel", "size", "precision", "title"):
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)
    if args.image is not None:
        config["image"] = _image(args.image)
    if args.set:
        config["settings"] = dict(config.get("settings", {}))
        for text in args.set:
            key, value = _pair("--set", text)
            config["settings"][key] = _scalar(value)
    for which in ("rows", "columns"):
        text = getattr(args, which)
        if text is not None:
            axis, values = _pair(f"--{which}", text)
            parsed = [_scalar(v.strip()) for v in values.split(",")]
            if axis == "image":
                parsed = [_image(v) for v in parsed]
            config[which] = {"axis": axis, "values": parsed}
    if not config:
        raise DreamkitError("give a config file or at least --image and --rows (see --help)")
    return config, base


def run(args: argparse.Namespace) -> int:
    config, base = config_from_args(args)
    gallery = parse_gallery(config, base)
    out = Path(args.output)
    ranks = ranks_from_env()
    device = rank_device(resolve_device(args.device), ranks)
    deterministic(args.threads)
    nets: dict[str, StagedNet] = {}

    def make(tile: Tile) -> None:
        spec = tile.spec
        if spec.model not in nets:
            nets[spec.model] = load_model(spec.model, device=device)
        image = render_tile(spec, nets[spec.model])
        save_image(image, out / tile.name, metadata=tile_metadata(spec))

    def finish() -> None:
        write_sheet(gallery, out)
        write_html(gallery, out)

    with process_group(device, ranks):
        report = run_jobs(
            gallery.tiles, is_finished=lambda tile: is_finished(out / tile.name, tile.spec),
            make=make, finish=finish, device=device, ranks=ranks, scratch=out / "tiles",
            progress=show_progress(args),
        )
    if ranks.world > 1 and not args.quiet:
        print(f"rank {ranks.rank}: rendered {report.done_here} tiles", file=sys.stderr)
    if ranks.is_main and not args.quiet:
        print(f"{out / 'index.html'}: {report.total} tiles, {report.pending} rendered now, "
              f"{report.total - report.pending} already done")
    return 0
