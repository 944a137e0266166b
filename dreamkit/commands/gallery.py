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

from dreamkit.commands.common import add_device_argument, add_threads_argument, show_progress
from dreamkit.errors import DreamkitError
from dreamkit.settings import PRECISIONS

KINDS = ("dream", "render")


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
    grid.add_argument("--size", type=int, help="tile side in pixels (default: 128)")
    grid.add_argument("--precision", choices=PRECISIONS,
                      help="network precision (default: auto = bf16 on GPUs that have it)")
    grid.add_argument("--title", help="title of the sheet and the page")
    grid.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="a setting of every tile, e.g. --set steps=5 (repeatable)")
    run_group = parser.add_argument_group("running")
    add_device_argument(run_group)
    add_threads_argument(run_group, 1, "keep it the same between runs for identical pixels "
                                       "(default: %(default)s; scale out with torchrun)")
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
    from dreamkit.gallery import load_config

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


def is_finished(path: Path, recipe) -> bool:
    """True when `path` is a complete tile PNG made from `recipe` (by any dreamkit version)."""
    from dreamkit.records import read_record

    if not path.is_file():
        return False
    try:
        return read_record(path).recipe.key() == recipe.key()
    except DreamkitError:
        return False


def run(args: argparse.Namespace) -> int:
    from dreamkit.commands.common import resolve_device, set_threads
    from dreamkit.distributed import (
        deterministic,
        process_group,
        rank_device,
        ranks_from_env,
        run_jobs,
    )
    from dreamkit.files import check_folder, check_not_input
    from dreamkit.gallery import parse_gallery, write_html, write_sheet
    from dreamkit.image_io import save_image
    from dreamkit.models.registry import load_model
    from dreamkit.records import Record, provenance
    from dreamkit.remake import make

    out = check_folder(args.output)
    config, base = config_from_args(args)
    gallery = parse_gallery(config, base, allowed_model=args.model)
    inputs = [args.config, *{t.recipe.input.path for t in gallery.tiles if t.recipe.input}]
    for name in ("sheet.png", "index.html", *(t.name for t in gallery.tiles)):
        check_not_input(out / name, inputs, forceable=False)
    for name in ("sheet.png", "index.html"):  # a gallery's own folder has its tiles/ beside
        if (out / name).exists() and not (out / "tiles").is_dir():
            raise DreamkitError(f"{out / name}: exists and no gallery made it (no tiles/ "
                                "beside it); choose another -o")
    ranks = ranks_from_env()
    set_threads(args.threads)
    device = rank_device(resolve_device(args.device), ranks)
    deterministic()
    nets: dict = {}

    def render(tile) -> None:
        recipe = tile.recipe
        if recipe.model not in nets:
            nets[recipe.model] = load_model(recipe.model, device=device)
        net = nets[recipe.model]
        image, ran = make(recipe, net)
        record = Record(recipe, net.weights_sha256(), provenance(ran))
        save_image(image, out / tile.name, metadata=record.metadata())

    def finish() -> None:
        write_sheet(gallery, out)
        write_html(gallery, out)

    with process_group(device, ranks):
        report = run_jobs(
            gallery.tiles, is_finished=lambda tile: is_finished(out / tile.name, tile.recipe),
            make=render, finish=finish, device=device, ranks=ranks,
            scratch=[out / "tiles", out], progress=show_progress(args),
        )
    if ranks.world > 1 and not args.quiet:
        print(f"rank {ranks.rank}: rendered {report.done_here} tiles", file=sys.stderr)
    if ranks.is_main and not args.quiet:
        print(f"{out / 'index.html'}: {report.total} tiles, {report.pending} rendered now, "
              f"{report.total - report.pending} already done")
    return 0
