"""Execute the tour notebook end to end and write it with its outputs.

    python scripts/run_tour.py                     # runs gallery/tour.ipynb in place
    python scripts/run_tour.py -o /tmp/tour.ipynb  # leaves the committed one alone

The kernel runs in the notebook's folder; DREAMKIT_WEIGHTS / _PHOTOS / _IMAGES given relative
to here are made absolute first. Needs the test extra (nbclient, ipykernel).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parent.parent / "gallery" / "tour.ipynb"
FOLDERS = ("DREAMKIT_WEIGHTS", "DREAMKIT_PHOTOS", "DREAMKIT_IMAGES")


def execute(notebook: Path, output: Path, timeout: int) -> float:
    """Run every cell (stopping at the first error) and write the result; returns seconds."""
    import nbformat
    from nbclient import NotebookClient

    for name in FOLDERS:
        if os.environ.get(name):
            os.environ[name] = str(Path(os.environ[name]).resolve())
    nb = nbformat.read(notebook, as_version=4)
    start = time.monotonic()
    NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                   resources={"metadata": {"path": str(notebook.parent)}}).execute()
    seconds = time.monotonic() - start
    nbformat.write(nb, output)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", nargs="?", type=Path, default=NOTEBOOK)
    parser.add_argument("-o", "--output", type=Path, help="default: the notebook itself")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = parser.parse_args(argv)
    seconds = execute(args.notebook, args.output or args.notebook, args.timeout)
    print(f"{args.output or args.notebook}: executed in {seconds:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
