"""Regenerate the committed showcase in gallery/ from the configs in gallery/configs/.

Each config `NAME.toml` is rendered by `dreamkit gallery` into a work folder (tiles with their
metadata, sheet.png, index.html; not committed) and its contact sheet is saved as the small
JPEG `gallery/NAME.jpg`. The zoom GIF `gallery/zoom.gif` comes from `dreamkit zoom`. Finished
tiles are kept in the work folder, so a second run only redoes what changed.

usage (from the repository root, with DREAMKIT_WEIGHTS set):
  python scripts/make_gallery.py                 # everything (12 min on 2 busy CPU cores)
  python scripts/make_gallery.py --only layers   # one config
  torchrun --nproc-per-node 4 -m dreamkit gallery gallery/configs/layers.toml \\
      -o build/gallery/layers                    # one config on 4 ranks; rerun this script after
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image

from dreamkit.cli import main as dreamkit

ROOT = Path(__file__).resolve().parents[1]
GALLERY = ROOT / "gallery"
LIMIT = 8 * 2**20  # bytes for all of gallery/
ZOOM = ["zoom", str(GALLERY / "chelsea.jpg"), "--frames", "24", "--zoom", "1.04", "--fps", "8",
        "--size", "160", "--octaves", "2", "--steps", "6", "--layer", "inception4c", "-q",
        "-o", str(GALLERY / "zoom.gif")]


def make(name: str, work: Path, extra: list[str]) -> Path:
    """Render gallery/configs/NAME.toml into work/NAME and save its sheet as gallery/NAME.jpg."""
    out = work / name
    code = dreamkit(["gallery", str(GALLERY / "configs" / f"{name}.toml"), "-o", str(out), *extra])
    if code:
        sys.exit(code)
    target = GALLERY / f"{name}.jpg"
    with Image.open(out / "sheet.png") as sheet:
        sheet.convert("RGB").save(target, quality=85, optimize=True)
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="configs to make (no zoom)")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "gallery",
                        help="where tiles and pages go (default: build/gallery)")
    parser.add_argument("--device", default="auto", help="passed to `dreamkit gallery`")
    args = parser.parse_args()
    names = args.only or sorted(p.stem for p in (GALLERY / "configs").glob("*.toml"))
    for name in names:
        print(make(name, args.work, ["--device", args.device]))
    if not args.only:
        if dreamkit(ZOOM):
            return 1
        print(GALLERY / "zoom.gif")
    total = sum(p.stat().st_size for p in GALLERY.rglob("*") if p.is_file())
    print(f"gallery/: {total / 2**20:.2f} MB")
    if total > LIMIT:
        print(f"gallery/ is over {LIMIT / 2**20:.0f} MB; shrink the sizes", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
