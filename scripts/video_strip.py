"""The README's video strip: a few frames of a clip, input | independent dreams | coherent dreams.

  python scripts/video_strip.py                      # bikes.mp4 frames 0-23 at 320 px
  python scripts/video_strip.py --frames 0-23 --rows 0,8,16,23 -o gallery/video/strip.jpg

Dreams the frames twice with `dream_video` (blend 0, then the default flow variant, PNG
frames kept in a temporary folder) and stacks the chosen rows with labels.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dreamkit import DreamSettings, VideoSettings, dream_video, load_model  # noqa: E402
from dreamkit.video.stream import probe, read_frames  # noqa: E402

VIDEO = Path(__file__).resolve().parents[2] / "shared" / "videos" / "bikes.mp4"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, default=VIDEO)
    parser.add_argument("--frames", default="0-23")
    parser.add_argument("--rows", default="0,8,16,23", help="output frames shown, one a row")
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("-o", "--output", type=Path, default=Path("gallery/video/strip.jpg"))
    args = parser.parse_args(argv)
    net = load_model("bvlc_googlenet")
    rows = [int(r) for r in args.rows.split(",")]
    columns = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name, blend in (("independent", 0.0), ("coherent (flow)", None)):
            video = VideoSettings(frames=args.frames, keep_frames=True)
            video = video if blend is None else video.replace(blend=blend)
            out = Path(scratch) / f"{len(columns)}.mp4"
            made = dream_video(net, args.video, out, None, DreamSettings(size=args.size), video)
            parts = out.with_name(out.name + ".parts")
            columns[name] = [np.asarray(Image.open(parts / f"frame_{r:06d}.png")) for r in rows]
        recipe = made.record.recipe
        info = probe(args.video)
        first = recipe.first
        picked = {first + r * recipe.step for r in rows}
        inputs = [f for i, f in read_frames(info.path, first, recipe.step, max(rows) + 1,
                                            recipe.size) if i in picked]
    columns = {"input": inputs, **columns}
    h, w = recipe.size
    pad, top = 4, 18
    sheet = Image.new("RGB", (3 * w + 4 * pad, top + len(rows) * (h + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    for c, (name, frames) in enumerate(columns.items()):
        x = pad + c * (w + pad)
        draw.text((x, 3), name, fill="black")
        for r, frame in enumerate(frames):
            sheet.paste(Image.fromarray(frame), (x, top + r * (h + pad)))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.output, quality=85)
    print(f"{args.output}: frames {rows} of {args.video.name}, {w}x{h}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
