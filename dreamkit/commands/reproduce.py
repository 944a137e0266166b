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
from pathlib import Path

from dreamkit.commands.common import (
    add_device_argument,
    add_threads_argument,
    check_output,
    free_name,
    resolve_device,
    set_threads,
)
from dreamkit.errors import DreamkitError


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
    parser.add_argument("--budget", type=float, metavar="MILLIONS",
                        help="the most work to do, in millions of pixel-steps (pixels x steps, "
                             "tiles with their margins, compiles counted as 16; "
                             f"default: {CPU_BUDGET:g} on a CPU, about 10 s on 2 cores, "
                             f"{GPU_BUDGET:g} on a GPU): a record asking for more is refused "
                             "before any work")
    parser.add_argument("--quiet", "-q", action="store_true", help="print nothing")


CPU_BUDGET, GPU_BUDGET = 4.0, 1024.0  # millions of pixel-steps: about 10 s on a 2-core CPU
SECONDS_PER_MILLION = 2.5  # the time a budget allows (4 million: 10 s), however busy the CPU
PIXELS_PER_MILLION = 500_000  # pixels one step may hold per million of budget (4: ~2 GB)


def _budget(args: argparse.Namespace) -> float:
    from dreamkit.settings import Bounds, check

    if args.budget is not None:
        return check("--budget", args.budget, Bounds(float, above=0, high=1e9))
    return GPU_BUDGET if resolve_device(args.device).type == "cuda" else CPU_BUDGET


def _check_budget(args: argparse.Namespace, record, recipe, picture: Path, size=None) -> None:
    """Refuse a record that asks for more work or memory than the budget (a tampered record
    may ask for 10,000 steps of a 4096-pixel batch, 32-pixel tiles or a compile on a CPU)."""
    from dreamkit.remake import peak_pixels, work

    budget = _budget(args)
    cuda = resolve_device(args.device).type == "cuda"
    plans = record.ran.get("plans")
    needed = work(recipe, size, plans, cuda) / 1e6
    if needed > budget:
        raise DreamkitError(f"{picture}: making it again takes {needed:,.1f} million pixel-steps "
                            f"of work, more than the budget of {budget:g} (--budget); pass "
                            f"--budget {needed:.0f} to go ahead")
    peak = peak_pixels(recipe, size, plans)
    if peak > budget * PIXELS_PER_MILLION:
        wanted = peak / PIXELS_PER_MILLION
        raise DreamkitError(f"{picture}: one step of it holds {peak:,} pixels at once, more "
                            f"memory than the budget of {budget:g} allows; pass --budget "
                            f"{wanted:.0f} to go ahead")


def _deadline(args: argparse.Namespace):
    """An `on_step` that stops the work once it runs past the time its budget allows."""
    import time

    seconds = _budget(args) * SECONDS_PER_MILLION
    end = time.monotonic() + seconds

    def check(step: int, images, values) -> None:
        if time.monotonic() > end:
            raise DreamkitError(f"stopped after {seconds:g} s, the time a budget of "
                                f"{_budget(args):g} allows (this machine is slower or busier "
                                "than the budget assumes); pass a larger --budget")

    return check


def _moved_files(record, args: argparse.Namespace) -> dict[str, str]:
    """{recorded path: new path} for the files given, matched by their SHA-256."""
    from dreamkit.files import file_sha256

    named = {t.sha256: t.file for picture in (record.recipe.target, *record.recipe.batch)
             for t in picture if t.file}
    moved = {}
    for path in [*args.direction, *args.guide]:
        digest = file_sha256(path)
        if digest not in named:
            raise DreamkitError(f"{path}: not a file this picture used (no SHA-256 matches)")
        moved[named[digest]] = str(Path(path).resolve())
    return moved


def _check_model(record, args: argparse.Namespace) -> str:
    from dreamkit.models.sources import refuse_code

    model = record.recipe.model
    if args.model is not None and args.model != model:
        raise DreamkitError(f"--model {args.model} is not the picture's model {model}")
    refuse_code(model, "this picture's record", args.model)
    if record.weights == "random":
        raise DreamkitError("this picture was made with random weights; it cannot be made again")
    return model


def _check_size(picture: Path, expected: tuple[int, int] | None) -> tuple[int, int]:
    from PIL import Image

    with Image.open(picture) as im:
        size = (im.height, im.width)
    if expected is not None and size != expected:
        raise DreamkitError(f"{picture}: the record asks for {expected[1]}x{expected[0]} pixels "
                            f"but the picture is {size[1]}x{size[0]}; it was tampered with")
    return size


def run(args: argparse.Namespace) -> int:
    from dreamkit.records import read_record, relocate
    from dreamkit.targets import kind_of

    picture = Path(args.picture)
    record = read_record(picture)
    recipe = relocate(record.recipe, _moved_files(record, args))
    for target in {t for terms in (recipe.target, *recipe.batch) for t in terms if t.file}:
        if not Path(target.file).is_file():
            flag = kind_of(target.kind).file_flag
            raise DreamkitError(f"{picture}: its {target.kind} file {target.file} is not there; "
                                f"pass {flag} (found by its SHA-256)")
    model = _check_model(record, args)
    from dreamkit.models.registry import layer_table
    from dreamkit.records import check_targets

    recipe = check_targets(recipe, layer_table(model))
    vis = recipe.command == "vis"
    _check_size(picture, (recipe.settings.size,) * 2 if vis else None)  # type: ignore[union-attr]
    if vis:
        _check_budget(args, record, recipe, picture)
    photo = args.input or (recipe.input.path if recipe.input else None)
    if not vis and not Path(str(photo)).is_file():
        raise DreamkitError(f"{picture}: its photo {photo} is not there; pass --input PHOTO")
    set_threads(record.ran.get("threads") if args.threads is None else args.threads)
    return _make_and_compare(args, record, recipe, picture, photo)


def _output(args: argparse.Namespace, picture: Path, photo) -> Path:
    out = Path(args.output) if args.output else free_name(Path(f"{picture.stem}_reproduced.png"))
    return check_output(out, inputs=[picture, photo, *args.direction, *args.guide, args.weights])


def _as_stored(pixels, picture: Path):
    """The new pixels as the picture's file stores them: a JPEG's are encoded again at the
    quality it was written at (JPEG encoding is deterministic), a PNG's are exact."""
    if picture.suffix.lower() not in (".jpg", ".jpeg"):
        return pixels
    import io

    import numpy as np
    from PIL import Image

    from dreamkit.image_io import JPEG_QUALITY_KEY, read_metadata

    text = read_metadata(picture).get(JPEG_QUALITY_KEY, "")
    quality = int(text) if text.isdigit() and 1 <= int(text) <= 100 else 95
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=quality)
    with Image.open(buffer) as im:
        return np.asarray(im.convert("RGB"))


def _make_and_compare(args, record, recipe, picture: Path, photo) -> int:
    import numpy as np
    from PIL import Image

    from dreamkit.distributed import deterministic
    from dreamkit.image_io import save_image, to_uint8
    from dreamkit.models.registry import load_model
    from dreamkit.records import Record, provenance
    from dreamkit.remake import make, photo_pixels

    if recipe.command == "dream":
        from dreamkit.dream import fit_side

        pixels = fit_side(photo_pixels(recipe.input, photo)[None], recipe.settings.size)
        _check_size(picture, tuple(pixels.shape[-2:]))
        _check_budget(args, record, recipe, picture, tuple(pixels.shape[-2:]))
    out = _output(args, picture, photo)
    net = load_model(recipe.model, args.weights, device=resolve_device(args.device))
    if net.weights_sha256() != record.weights:
        raise DreamkitError(f"{recipe.model}: these weights are not the ones the picture was "
                            "made with (SHA-256 differs); pass --weights FILE")
    deterministic()
    image, ran = make(recipe, net, photo=photo, plans=record.ran.get("plans"),
                      on_step=_deadline(args))
    save_image(image, out, metadata=Record(recipe, record.weights, provenance(ran)).metadata())
    new = _as_stored(to_uint8(image), picture)
    with Image.open(picture) as im:
        old = np.asarray(im.convert("RGB"))
    if np.array_equal(old, new):
        if not args.quiet:
            print(f"{out}: identical to {picture}")
        return 0
    if not args.quiet:
        diff = np.abs(old.astype(int) - new.astype(int))
        print(f"{out}: differs from {picture} ({int((diff > 0).any(2).sum())} pixels, by up "
              f"to {int(diff.max())}/255; made on {ran.get('device')} with "
              f"{ran.get('threads', '?')} threads, recorded: {record.ran.get('device')} with "
              f"{record.ran.get('threads', '?')})")
    return 1
