"""Arguments and helpers shared by several commands."""

from __future__ import annotations

import argparse
import math
import sys

import torch

from dreamkit.errors import DreamkitError
from dreamkit.image_io import DEFAULT_MAX_PIXELS
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
