"""Command-line front ends: `dream IMAGE` and `dreamkit <command>`.

Every command module in `dreamkit.commands` has a docstring, `add_arguments(parser)` and
`run(args) -> int`. Errors a user can fix exit 2 with one line on stderr; anything else exits 1
with a short report (`--debug` shows the traceback either way).
"""

from __future__ import annotations

import argparse
import sys
import traceback
import warnings
from collections.abc import Sequence

from dreamkit.allocator import keep_freed_memory
from dreamkit.commands import COMMANDS, name_of, summary_of
from dreamkit.commands import dream as dream_command
from dreamkit.errors import DreamkitError
from dreamkit.version import __version__


class Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit 2, no usage dump), and --debug and --version
    on every parser: the program's, each command's and each action's (`direction fit`), which
    argparse makes of this class too. --debug is absent from the namespace unless given, so a
    command's parser cannot reset what `dreamkit --debug COMMAND` set."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                          help="show tracebacks on errors")
        self.add_argument("--version", action="version", version=f"dreamkit {__version__}")

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _run(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    args = parser.parse_args(argv)
    args.debug = getattr(args, "debug", False)
    keep_freed_memory()
    try:
        with warnings.catch_warnings():
            if not args.debug:  # the library's warnings as one line each
                warnings.showwarning = _one_line(parser.prog)
            return args.run(args)
    except DreamkitError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130
    except (MemoryError, RuntimeError) as exc:
        if not _out_of_memory(exc):
            return _internal_error(parser, args, exc)
        if args.debug:
            traceback.print_exc()
        print(f"{parser.prog}: error: out of memory ({_first_line(exc)}); ask for less: a "
              "smaller --size, --batch, --crops or --crop-size, or fewer targets",
              file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        return _internal_error(parser, args, exc)


def _one_line(prog: str):
    def show(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"{prog}: warning: {message}", file=sys.stderr)

    return show


OUT_OF_MEMORY = ("can't allocate memory", "not enough memory", "out of memory")


def _out_of_memory(exc: BaseException) -> bool:
    """A failed allocation (CPU or GPU), as torch or Python reports it."""
    return isinstance(exc, MemoryError) or any(text in str(exc) for text in OUT_OF_MEMORY)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def _internal_error(parser: argparse.ArgumentParser, args: argparse.Namespace,
                    exc: BaseException) -> int:
    """Exit 1 for a bug of ours: say so, and how to get the traceback (called while `exc` is
    being handled, so --debug prints it)."""
    if args.debug:
        traceback.print_exc()
    print(
        f"{parser.prog}: internal error: {type(exc).__name__}: {exc}\n"
        f"  please report it with the command you ran (add --debug for the traceback)",
        file=sys.stderr,
    )
    return 1


def build_parser() -> argparse.ArgumentParser:
    """The `dreamkit` parser with one subparser per command."""
    parser = Parser(
        prog="dreamkit",
        description="DeepDream and feature visualization for PyTorch.",
        epilog="Run `dreamkit COMMAND --help` for a command's options.",
    )
    sub = parser.add_subparsers(
        title="commands", metavar="COMMAND", required=True, parser_class=Parser
    )
    for command in COMMANDS:
        child = sub.add_parser(
            name_of(command),
            help=summary_of(command),
            description=command.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.add_arguments(child)
        child.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """`dreamkit COMMAND ...`"""
    return _run(build_parser(), argv)


def dream_main(argv: Sequence[str] | None = None) -> int:
    """`dream IMAGE ...`: the same as `dreamkit dream`."""
    parser = Parser(
        prog="dream",
        description=dream_command.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    dream_command.add_arguments(parser)
    parser.set_defaults(run=dream_command.run)
    return _run(parser, argv)
