"""Make a zoom video: dream the photo, zoom into the centre, dream again, frame after frame.

Every frame is a full dream with the settings below, so keep photos small (--side) and steps
few for long videos. GIF always works; MP4 needs the optional extra: pip install 'dreamkit[video]'.

examples:
  dreamkit zoom photo.jpg --frames 30 -o zoom.gif
  dreamkit zoom photo.jpg --frames 120 --zoom 1.03 --fps 24 --octaves 2 --steps 5 -o zoom.mp4
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kornia.geometry.transform import resize
from tqdm.auto import tqdm

from dreamkit.commands.common import (
    add_model_arguments,
    add_output_arguments,
    check_channel,
    open_model,
    positive_int,
    show_progress,
)
from dreamkit.dream import DreamSettings
from dreamkit.image_io import load_image
from dreamkit.models import get_spec
from dreamkit.objectives import channel, layer_norm
from dreamkit.zoom import check_video_path, write_video, zoom_frames

NAME = "zoom"
HELP = "dream, zoom in, dream again: a GIF or MP4 video"
DEFAULTS = DreamSettings()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", help="the photo to start from")
    parser.add_argument("-o", "--output", metavar="OUT",
                        help="video file, .gif or .mp4 (default: <stem>_zoom.gif)")
    video = parser.add_argument_group("video")
    video.add_argument("--frames", type=positive_int, default=30,
                       help="number of frames (default: %(default)s)")
    video.add_argument("--zoom", type=float, default=1.05,
                       help="magnification from one frame to the next (default: %(default)s)")
    video.add_argument("--fps", type=positive_int, default=10,
                       help="frames per second (default: %(default)s)")
    video.add_argument("--side", type=positive_int, metavar="PX",
                       help="shrink the photo so its longer side is at most PX")
    what = parser.add_argument_group("what to amplify")
    what.add_argument("--layer", "-l", help="layer name or tier low|mid|high")
    what.add_argument("--channel", "-c", type=int, metavar="N", help="one channel of the layer")
    how = parser.add_argument_group("dream settings of every frame (as for `dream`)")
    for name, default in DEFAULTS.to_dict().items():
        how.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default,
                         help=f"(default: {default})")
    add_model_arguments(parser)
    add_output_arguments(parser)


def run(args: argparse.Namespace) -> int:
    settings = DreamSettings(**{name: getattr(args, name) for name in DEFAULTS.to_dict()})
    out = Path(args.output or f"{Path(args.image).stem}_zoom.gif")
    check_video_path(out)
    spec = get_spec(args.model)
    info = spec.layers.resolve(args.layer or spec.default_layer)
    check_channel(info, args.channel)
    layer = info.name
    objective = layer_norm(layer) if args.channel is None else channel(layer, args.channel)
    image = load_image(args.image, max_pixels=args.max_pixels)
    if args.side and max(image.shape[1:]) > args.side:
        image = resize(image[None], args.side, side="long", antialias=True)[0]
    net = open_model(args)
    made = zoom_frames(net, image, objective, settings, args.frames, args.zoom)
    frames = [frame.cpu() for frame in tqdm(made, total=args.frames, unit="frame", leave=False,
                                             disable=not show_progress(args))]
    write_video(frames, out, fps=args.fps)
    if not args.quiet:
        print(f"{out}: {len(frames)} frames")
    return 0
