"""Make a zoom video: dream the photo, zoom into the centre, dream again, frame after frame.

Every frame is a full dream with the settings below, so keep photos small (--size) and steps
few for long videos. GIF always works; MP4 needs the optional extra: pip install 'dreamkit[video]'.

examples:
  dreamkit zoom photo.jpg --frames 30 -o zoom.gif
  dreamkit zoom photo.jpg --frames 120 --zoom 1.03 --fps 24 --octaves 2 --steps 5 -o zoom.mp4
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dreamkit.commands import common
from dreamkit.commands.dream import add_target_arguments, target_of
from dreamkit.models.catalog import dream_defaults
from dreamkit.settings import DreamSettings, ZoomSettings

VIDEO_EXTENSIONS = (".gif", ".mp4")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", help="the photo to start from")
    parser.add_argument("-o", "--output", metavar="OUT",
                        help="video file, .gif or .mp4 (default: <stem>_zoom.gif)")
    parser.add_argument("--force", action="store_true",
                        help="allow writing over one of the inputs")
    common.add_settings(parser.add_argument_group("video"), ZoomSettings)
    add_target_arguments(parser)
    every = parser.add_argument_group("dream settings of every frame (as for `dream`)")
    common.add_settings(every, DreamSettings)
    common.add_model_arguments(parser)
    common.add_output_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from dreamkit.zoom import check_video_path

    video = common.settings_from(args, ZoomSettings)
    settings = common.settings_from(args, DreamSettings, dream_defaults(args.model))
    wanted = None if args.output else Path(f"{Path(args.image).stem}_zoom.gif")
    out = Path(args.output) if args.output else common.free_name(wanted)
    check_video_path(out)
    table, net = common.table_and_model(args)
    target = target_of(args, table)
    common.check_output(out, inputs=[args.image, target.file, *common.model_files(args)],
                        force=args.force, extensions=VIDEO_EXTENSIONS)
    from dreamkit.dream import fit_side
    from dreamkit.image_io import load_image
    from dreamkit.progress import tqdm
    from dreamkit.targets import objective_of
    from dreamkit.zoom import write_video, zoom_frames

    photo = load_image(args.image, max_pixels=args.max_pixels)
    image = fit_side(photo[None], settings.size)[0]
    net = net or common.open_model(args)
    made = zoom_frames(net, image, objective_of((target,), args.model),
                       settings.replace(size=None), video.frames, video.zoom)
    quiet = not common.show_progress(args)
    frames = [frame.cpu() for frame in tqdm(made, total=video.frames, unit="frame",
                                             leave=False, disable=quiet)]
    write_video(frames, out, fps=video.fps)
    common.written(out, wanted, args.quiet, f": {len(frames)} frames")
    return 0
