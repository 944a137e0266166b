"""One module per `dreamkit` subcommand, in the order `dreamkit --help` lists them.

A command module has a docstring (its first line is the command's summary, the rest its
`--help` description), `add_arguments(parser)` and `run(args) -> int`; its name is the module's
(`fetch_weights` -> `fetch-weights`). Command modules import nothing heavy at the top, so
`--help` and argument errors answer without loading torch.
"""

from types import ModuleType

from dreamkit.commands import (
    atlas,
    dictionary,
    direction,
    dream,
    fetch_weights,
    gallery,
    layers,
    linearity,
    microscope,
    reproduce,
    studio,
    video,
    vis,
    zoom,
)

COMMANDS = [dream, layers, vis, microscope, atlas, direction, dictionary, linearity, fetch_weights,
            gallery, reproduce, zoom, video, studio]


def name_of(command: ModuleType) -> str:
    return command.__name__.rsplit(".", 1)[-1].replace("_", "-")


def summary_of(command: ModuleType) -> str:
    """The docstring's first paragraph, as `--help` lists it (lower case, no full stop)."""
    line = " ".join((command.__doc__ or "").strip().split("\n\n")[0].split()).rstrip(".")
    return line[:1].lower() + line[1:]
