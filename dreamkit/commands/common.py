"""Arguments and helpers shared by the commands. Nothing here imports torch: `--help` and
argument errors answer at once, and the settings' flags are generated from
`dreamkit.settings` (the same bounds and messages as configs and records)."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from dreamkit.errors import DreamkitError
from dreamkit.files import FileError, check_not_input, check_writable, free_name  # noqa: F401
from dreamkit.models.catalog import DEFAULT_MODEL
from dreamkit.settings import (
    DEFAULT_MAX_PIXELS,
    MAX_MAX_PIXELS,
    SAVE_EXTENSIONS,
    Settings,
    check_threads,
)


def add_settings(group: argparse._ArgumentGroup, kind: type[Settings],
                 only: Sequence[str] | None = None) -> None:
    """One flag per field of `kind` (`--octave-scale`, `--no-decorrelate`; `only` these), with
    its help, bounds and default. A flag not given stays None, so the model's own defaults (if
    any) or the field's apply (`settings_from`); values are checked when the settings are
    made."""
    for name, (default, bounds, help_text) in kind.spec().items():
        if only is not None and name not in only:
            continue
        flags = [f"--{name.replace('_', '-')}"] + ([f"-{name}"] if len(name) == 1 else [])
        if bounds.kind is bool:
            off = f"--no-{name.replace('_', '-')}"
            group.add_argument(off if default else flags[0], dest=name, action="store_const",
                               const=not default, default=None,
                               help=f"{help_text} (default: {'on' if default else 'off'})")
            continue
        limits = "" if bounds.choices else f"; {bounds.describe()}"
        metavar = kind.metavar(name) or ("{" + ",".join(bounds.choices) + "}" if bounds.choices
                                         else "PX" if name in ("size", "tile")
                                         else "N" if bounds.kind is int else "X")
        value_type = None if bounds.choices else str if bounds.kind is str else _number
        shown = kind.shown_default(name)
        if bounds.kind is tuple:
            shown = " ".join(f"{v:g}" for v in default)
        group.add_argument(*flags, dest=name, type=value_type, default=None, metavar=metavar,
                           nargs="+" if bounds.kind is tuple else None,
                           help=f"{help_text} (default: {shown}{limits})")


def _number(text: str) -> int | float | str:
    """A flag's number as typed (an int, else a float, else the text itself): the settings
    check it, so `--steps abc` gets the same line as `steps = "abc"` in a config."""
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return text


def settings_from(args: argparse.Namespace, kind: type[Settings], base: dict | None = None):
    """The settings of `kind` from the flags given, over `base` (a model's own defaults) over
    the fields' defaults; checked, one line per mistake."""
    given = {name: getattr(args, name) for name in kind.spec()
             if getattr(args, name, None) is not None}
    return kind(**{**(base or {}), **given})


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", "-m", default=DEFAULT_MODEL, metavar="SPEC",
                       help="network: a built-in name (`dreamkit layers --models`), "
                            "torchvision:NAME, timm:NAME or package.module:factory (default: "
                            "%(default)s)")
    group.add_argument("--weights", metavar="FILE",
                       help="weights file (.safetensors or a state dict); default: "
                            "$DREAMKIT_WEIGHTS, the cache, then a download")
    add_device_argument(group)


def add_device_argument(group: argparse._ActionsContainer) -> None:
    group.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                       help="where to run (default: auto = cuda when available)")


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, metavar="N",
                        help="refuse input images above N pixels (default: %(default)s; at "
                             f"most {MAX_MAX_PIXELS:,})")


def add_threads_argument(parser: argparse._ActionsContainer, default: int | None,
                         why: str) -> None:
    parser.add_argument("--threads", type=int, default=default, metavar="N",
                        help=f"CPU threads, 1 to this machine's cores; {why}")


def resolve_device(name: str):
    """`auto` -> cuda when available, else cpu; `cuda` without a GPU is a user error."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DreamkitError("--device cuda: no CUDA GPU is available here (use --device cpu)")
    return torch.device(name)


def open_model(args: argparse.Namespace):
    from dreamkit.models.registry import load_model

    return load_model(args.model, args.weights, device=resolve_device(args.device))


def table_and_model(args: argparse.Namespace):
    """(layer table, model or None): the model loads after every argument is checked, so a
    mistyped layer is named before any download. A built-in model's table is data; a torchvision
    or timm model's is discovered with random weights (no download); a factory's model is loaded
    now for its table."""
    from dreamkit.models.catalog import catalog_entry
    from dreamkit.models.registry import layer_table
    from dreamkit.models.sources import kind_of

    entry = catalog_entry(args.model)
    if entry is not None and entry.table is not None:
        return entry.table, None
    if kind_of(args.model) in ("torchvision", "timm") and not getattr(args, "weights", None):
        return layer_table(args.model), None
    net = open_model(args)
    return net.layers, net


def set_threads(threads: int | None) -> None:
    """Fix torch's CPU thread count (checked against this machine's cores)."""
    if threads is not None:
        import torch

        torch.set_num_threads(check_threads(threads))


def show_progress(args: argparse.Namespace) -> bool:
    return not getattr(args, "quiet", False) and sys.stderr.isatty()


def model_files(args: argparse.Namespace) -> list[Path]:
    """The weights file a command will read (`--weights`, else a built-in model's file found
    through $DREAMKIT_WEIGHTS or the cache): an input no output may replace."""
    from dreamkit.models.weights import find_weights

    if getattr(args, "weights", None):
        return [Path(args.weights)]
    found = find_weights(args.model) if getattr(args, "model", None) else None
    return [found] if found else []


def check_output(path: Path, *, inputs: Sequence[object] = (), force: bool | None = None,
                 extensions: Sequence[str] = SAVE_EXTENSIONS) -> Path:
    """Refuse an output path before any heavy work: an extension that cannot be written, a
    folder, one of `inputs` (unless `force`), or a folder that cannot take a new file."""
    try:
        if path.is_dir():
            raise DreamkitError(f"{path}: is a folder; give a file name")
        if path.suffix.lower() not in extensions:
            shown = f"'{path.suffix}'" if path.suffix else "no extension"
            raise DreamkitError(f"{path}: cannot save with {shown}; use "
                                f"{', '.join(extensions)}")
        check_not_input(path, inputs, bool(force), forceable=force is not None)
        check_writable(path)
    except FileError:
        raise
    except OSError as exc:
        raise DreamkitError(f"{path}: cannot write there ({exc.strerror or exc})") from None
    return path


def written(out: Path, wanted: Path | None, quiet: bool, detail: str = "") -> None:
    """Print the output's path (and `detail`), and why it is not the default name when that
    was taken."""
    if not quiet:
        taken = f" ({wanted} exists, so this name)" if wanted and out != wanted else ""
        print(f"{out}{detail}{taken}")


def slug(text: str) -> str:
    """`torchvision:resnet18` -> `torchvision-resnet18` (for file names)."""
    return re.sub(r"[^A-Za-z0-9._]+", "-", text).strip("-")[:60] or "x"
