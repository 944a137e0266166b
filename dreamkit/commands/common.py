"""Arguments and helpers shared by several commands."""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch

from dreamkit.errors import DreamkitError
from dreamkit.image_io import DEFAULT_MAX_PIXELS, SAVE_EXTENSIONS
from dreamkit.layers import LayerInfo
from dreamkit.models import DEFAULT_MODEL, load_model
from dreamkit.models.staged import StagedNet


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text}")
    return value


def nonnegative_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, not {text}")
    return value


def tile_size(text: str) -> int:
    value = int(text)
    if value < 0 or value % 32:
        raise argparse.ArgumentTypeError(f"must be 0 or a multiple of 32 pixels, not {text}")
    return value


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", default=DEFAULT_MODEL,
                       help="network to use (default: %(default)s; `dreamkit layers` lists them)")
    group.add_argument("--weights", metavar="FILE",
                       help="weights file (.safetensors); default: $DREAMKIT_WEIGHTS, the cache, "
                            "then a download")
    group.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                       help="where to run (default: auto = cuda when available)")


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, metavar="N",
                        help="refuse input images above N pixels (default: %(default)s)")


def resolve_device(name: str) -> torch.device:
    """`auto` -> cuda when available, else cpu; `cuda` without a GPU is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DreamkitError("--device cuda: no CUDA GPU is available here (use --device cpu)")
    return torch.device(name)


def open_model(args: argparse.Namespace) -> StagedNet:
    return load_model(args.model, args.weights, device=resolve_device(args.device))


def show_progress(args: argparse.Namespace) -> bool:
    return not args.quiet and sys.stderr.isatty()


def check_channel(layer: LayerInfo, channel: int | None) -> None:
    """Refuse a channel the layer does not have, naming its channel count."""
    if channel is not None and not 0 <= channel < layer.channels:
        raise DreamkitError(
            f"channel {channel} is out of range: {layer.name} has {layer.channels} channels "
            f"(0 to {layer.channels - 1})"
        )


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except (OSError, RuntimeError):  # unreadable or looping symlinks: not provably the same
        return False


def check_output(path: Path, *, inputs: Sequence[Path] = (), force: bool = False) -> Path:
    """Refuse an output path before any heavy work: an extension `save_image` cannot write,
    a folder, one of `inputs` (unless `force`), or a folder that cannot take a new file."""
    try:
        if path.is_dir():
            raise DreamkitError(f"{path}: is a folder; give a file name")
        if path.suffix.lower() not in SAVE_EXTENSIONS:
            shown = f"'{path.suffix}'" if path.suffix else "no extension"
            raise DreamkitError(f"{path}: cannot save with {shown}; use .png, .jpg or .webp")
        if not force and any(_same_file(path, source) for source in inputs):
            raise DreamkitError(f"{path}: output is the input image; pass --force to overwrite it")
        folder = path.absolute().parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent  # missing folders are made on save: probe their first parent
        if not folder.is_dir():
            raise DreamkitError(f"{path}: cannot write there, {folder} is not a folder")
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise DreamkitError(f"{path}: cannot write there ({exc.strerror or exc})") from None
    return path
