"""`reproduce(picture)`: make a recorded picture again and say whether the pixels are the same
(identical), not (differs), or why it was not made (refused). The record is untrusted input:
it is checked strictly before any work, its cost is budgeted (`ReproduceSettings`), and it
never makes dreamkit import code (a user's `package.module:factory` model runs only when the
caller names the same spec as `model`)."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from dreamkit.errors import DreamkitError
from dreamkit.settings import ReproduceSettings, check_threads

CPU_BUDGET, GPU_BUDGET = 4.0, 1024.0  # millions of pixel-steps: about 10 s on a 2-core CPU
SECONDS_PER_MILLION = 10.0  # CPU seconds a budget allows (4 million: 40, ~20 s on 2 idle cores)


@dataclass
class Reproduced:
    """What `reproduce` found: `status` identical, differs or refused; `why` says why (the
    refusal's one line, or how the pixels differ); `output` the new picture when made."""

    status: str
    why: str
    picture: Path
    output: Path | None = None
    ran: dict = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.status == "identical"


def budget_of(settings: ReproduceSettings, device: torch.device) -> float:
    """The budget in millions of pixel-steps: the settings', else the device's default."""
    if settings.budget is not None:
        return settings.budget
    return GPU_BUDGET if device.type == "cuda" else CPU_BUDGET


def reproduce(picture: str | os.PathLike[str], output: str | os.PathLike[str] | None = None, *,
              photo: str | os.PathLike[str] | None = None,
              files: Sequence[str | os.PathLike[str]] = (), model: str | None = None,
              weights: str | os.PathLike[str] | None = None, device: str | torch.device = "cpu",
              threads: int | None = None, settings: ReproduceSettings | None = None
              ) -> Reproduced:
    """Make `picture` (a PNG or JPEG written by dreamkit) again from its record and compare.

    `photo` is the dream's photo when it has moved, `files` direction files or guide photos
    that have moved (matched by their SHA-256); `model` must name the record's model when that
    is a user's factory (it imports and runs that code); `weights` a weights file; `threads`
    the CPU threads (default: the record's, which identical pixels need). `output` defaults to
    `<stem>_reproduced.png` in the current folder, never replacing a file. A record that
    cannot be made (tampered, over budget, missing files, other weights) comes back refused,
    with why; nothing is written then.
    """
    picture = Path(picture)
    try:
        return _reproduce(picture, output, photo, files, model, weights, torch.device(device),
                          threads, settings or ReproduceSettings())
    except DreamkitError as exc:
        return Reproduced("refused", str(exc), picture)


def _reproduce(picture: Path, output, photo, files, model, weights, device: torch.device,
               threads, settings: ReproduceSettings) -> Reproduced:
    from dreamkit.records import check_targets, read_record, relocate
    from dreamkit.targets import kind_of

    record = read_record(picture)
    recipe = relocate(record.recipe, _moved_files(record, files))
    for target in {t for terms in (recipe.target, *recipe.batch) for t in terms if t.file}:
        if not Path(target.file).is_file():
            raise DreamkitError(f"{picture}: its {target.kind} file {target.file} is not there; "
                                f"pass {kind_of(target.kind).file_flag} (found by its SHA-256)")
    _check_model(record, model)
    from dreamkit.models.registry import layer_table

    recipe = check_targets(recipe, layer_table(recipe.model))
    vis = recipe.command == "vis"
    _check_size(picture, (recipe.settings.size,) * 2 if vis else None)  # type: ignore[union-attr]
    photo = photo or (recipe.input.path if recipe.input else None)
    if not vis and not Path(str(photo)).is_file():
        raise DreamkitError(f"{picture}: its photo {photo} is not there; pass --input PHOTO")
    size = None
    if not vis:
        from dreamkit.dream import fit_side
        from dreamkit.remake import photo_pixels

        pixels = fit_side(photo_pixels(recipe.input, photo)[None], recipe.settings.size)
        size = tuple(pixels.shape[-2:])
        _check_size(picture, size)
    _check_budget(record, recipe, picture, settings, device, size)
    out = _output(picture, output, [picture, photo, *files, weights])
    chosen = record.ran.get("threads") if threads is None else threads
    if chosen is not None:
        torch.set_num_threads(check_threads(chosen))
    return _make_and_compare(record, recipe, picture, photo, out, weights, device,
                             budget_of(settings, device))


def _check_budget(record, recipe, picture: Path, settings: ReproduceSettings,
                  device: torch.device, size) -> None:
    """Refuse a record that asks for more work or memory than the budget (a tampered record
    may ask for 10,000 steps of a 4096-pixel batch, 32-pixel tiles or a compile on a CPU)."""
    from dreamkit.remake import check_work

    check_work(recipe, size, record.ran.get("plans"), budget_of(settings, device),
               device.type == "cuda", what=f"{picture}: making it again")


def _deadline(budget: float):
    """An `on_step` that stops the work once it has used more CPU time than its budget allows
    (CPU time, not the clock: other programs on a busy machine do not count against it)."""
    seconds = budget * SECONDS_PER_MILLION
    end = time.process_time() + seconds

    def check(step: int, images, values) -> None:
        if time.process_time() > end:
            raise DreamkitError(f"stopped after {seconds:g} s of CPU time, what a budget of "
                                f"{budget:g} allows (the work costs more than its estimate); "
                                "pass a larger --budget")

    return check


def _moved_files(record, files: Sequence) -> dict[str, str]:
    """{recorded path: new path} for the files given, matched by their SHA-256."""
    from dreamkit.files import file_sha256

    named = {t.sha256: t.file for picture in (record.recipe.target, *record.recipe.batch)
             for t in picture if t.file}
    moved = {}
    for path in files:
        digest = file_sha256(path)
        if digest not in named:
            raise DreamkitError(f"{path}: not a file this picture used (no SHA-256 matches)")
        moved[named[digest]] = str(Path(path).resolve())
    return moved


def _check_model(record, model: str | None) -> None:
    from dreamkit.models.sources import refuse_code

    if model is not None and model != record.recipe.model:
        raise DreamkitError(f"--model {model} is not the picture's model {record.recipe.model}")
    refuse_code(record.recipe.model, "this picture's record", model)
    if record.weights == "random":
        raise DreamkitError("this picture was made with random weights; it cannot be made again")


def _check_size(picture: Path, expected: tuple[int, int] | None) -> tuple[int, int]:
    from PIL import Image

    with Image.open(picture) as im:
        size = (im.height, im.width)
    if expected is not None and size != expected:
        raise DreamkitError(f"{picture}: the record asks for {expected[1]}x{expected[0]} pixels "
                            f"but the picture is {size[1]}x{size[0]}; it was tampered with")
    return size


def _output(picture: Path, output, inputs: list) -> Path:
    from dreamkit.files import check_not_input, check_writable, free_name
    from dreamkit.settings import SAVE_EXTENSIONS

    out = Path(output) if output else free_name(Path(f"{picture.stem}_reproduced.png"))
    if out.is_dir():
        raise DreamkitError(f"{out}: is a folder; give a file name")
    if out.suffix.lower() not in SAVE_EXTENSIONS:
        raise DreamkitError(f"{out}: cannot save with '{out.suffix}'; use "
                            f"{', '.join(SAVE_EXTENSIONS)}")
    check_not_input(out, inputs, forceable=False)
    return check_writable(out)


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


def _make_and_compare(record, recipe, picture: Path, photo, out: Path, weights, device,
                      budget: float) -> Reproduced:
    import numpy as np
    from PIL import Image

    from dreamkit.distributed import deterministic
    from dreamkit.image_io import save_image, to_uint8
    from dreamkit.models.registry import load_model
    from dreamkit.records import Record, provenance
    from dreamkit.remake import make

    net = load_model(recipe.model, weights, device=device)
    if net.weights_sha256() != record.weights:
        raise DreamkitError(f"{recipe.model}: these weights are not the ones the picture was "
                            "made with (SHA-256 differs); pass --weights FILE")
    deterministic()
    image, ran = make(recipe, net, photo=photo, plans=record.ran.get("plans"),
                      on_step=_deadline(budget))
    save_image(image, out, metadata=Record(recipe, record.weights, provenance(ran)).metadata())
    new = _as_stored(to_uint8(image), picture)
    with Image.open(picture) as im:
        old = np.asarray(im.convert("RGB"))
    if np.array_equal(old, new):
        return Reproduced("identical", f"identical to {picture}", picture, out, ran)
    diff = np.abs(old.astype(int) - new.astype(int))
    why = (f"differs from {picture} ({int((diff > 0).any(2).sum())} pixels, by up to "
           f"{int(diff.max())}/255; made on {ran.get('device')} with {ran.get('threads', '?')} "
           f"threads, recorded: {record.ran.get('device')} with "
           f"{record.ran.get('threads', '?')})")
    return Reproduced("differs", why, picture, out, ran)
