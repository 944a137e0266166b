"""Dream a video: every frame dreamed, the dream moving with the scene (optical flow).

Frame t starts from frame t-1's dream detail, moved by the optical flow between the two input
frames and dropped where the flow is unreliable, blended in at --blend; --flow none blends
without moving it (the older tools), --blend 0 dreams every frame alone. The output is an H.264
MP4 at the input's frame rate and size (or --size) with the input's audio, or a GIF/WebP for
short clips, and carries its record. Frames are written to OUT.parts/ first: a killed run
resumes where it stopped; under torchrun each rank dreams a segment. --compare measures how
much each variant boils instead (a JSON table). Needs: pip install 'dreamkit[video]'.

examples:
  dreamkit video clip.mp4 -o dream.mp4
  dreamkit video clip.mp4 --frames 0-23 --size 320 -o short.mp4
  dreamkit video clip.mp4 --preview 10 -o look.gif       # every 10th frame, small: try settings
  dreamkit video clip.mp4 --layer inception3b --blend 0.8 --octaves 3 -o soft.mp4
  dreamkit video clip.mp4 --frames 0-23 --size 320 --compare -o table.json
  torchrun --nproc-per-node 4 -m dreamkit video film.mp4 --device cuda -o film_dream.mp4
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dreamkit.commands import common
from dreamkit.commands.dream import add_target_arguments, target_of
from dreamkit.models.catalog import dream_defaults
from dreamkit.settings import DreamSettings, VideoSettings

VIDEO_EXTENSIONS = (".mp4", ".gif", ".webp")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", help="the video to dream (any format ffmpeg reads)")
    parser.add_argument("-o", "--output", metavar="OUT",
                        help="video file, .mp4, .gif or .webp (default: <video>_dream.mp4 in "
                             "this folder, never replacing a file); with --compare a .json")
    parser.add_argument("--compare", action="store_true",
                        help="measure temporal stability and dream strength of the variants "
                             "independent, blend and flow on the frames asked for, write "
                             "the table as JSON instead of a video")
    group = parser.add_argument_group("video")
    common.add_settings(group, VideoSettings)
    for action in group._group_actions:
        if action.dest == "frames":
            action.metavar = "A-B"
    add_target_arguments(parser)
    every = parser.add_argument_group("dream settings of every frame (as for `dream`; "
                                      "--size is the frames' longer side)")
    common.add_settings(every, DreamSettings)
    common.add_model_arguments(parser)
    common.add_threads_argument(parser, None, "keep it the same between runs for identical "
                                "frames (default: torch's)")
    common.add_output_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from dreamkit.distributed import deterministic, rank_device, ranks_from_env

    video = common.settings_from(args, VideoSettings)
    settings = common.settings_from(args, DreamSettings, dream_defaults(args.model))
    tail = "_stability.json" if args.compare else "_dream.mp4"
    wanted = None if args.output else Path(f"{Path(args.video).stem}{tail}")
    out = Path(args.output) if args.output else common.free_name(wanted)
    table, net = common.table_and_model(args)
    target = target_of(args, table)
    common.check_output(out, inputs=[args.video, target.file, *common.model_files(args)],
                        extensions=(".json",) if args.compare else VIDEO_EXTENSIONS)
    ranks = ranks_from_env()
    device = rank_device(common.resolve_device(args.device), ranks)
    common.set_threads(args.threads)
    deterministic()
    args.device = str(device)
    net = net or common.open_model(args)
    quiet = not common.show_progress(args)
    if args.compare:
        from dreamkit.files import write_json
        from dreamkit.video import video_stability

        found = video_stability(net, args.video, target, settings, video, model=args.model,
                                max_pixels=args.max_pixels, progress=not quiet)
        write_json(out, found)
        if not args.quiet:
            print(f"{out}: warp error of the input {found['input_warp_error']:.2f}")
            for name, row in found["variants"].items():
                print(f"  {name:12s} warp error x{row['ratio']:.2f} of the input's, strength "
                      f"{row['strength_vs_independent']:.0%} of independent, "
                      f"{row['frames_per_second']:.2f} frames/s")
        return 0
    from dreamkit.video import dream_video

    def partial(path: Path, frames: int) -> None:
        print(f"{path}: saved the {frames} frames finished so far", file=sys.stderr)

    result = dream_video(net, args.video, out, target, settings, video, model=args.model,
                         ranks=ranks, progress=not quiet, max_pixels=args.max_pixels,
                         on_partial=partial)
    if ranks.is_main:
        recipe = result.record.recipe
        common.written(out, wanted, args.quiet, f": {result.frames} frames of "
                       f"{recipe.size[1]}x{recipe.size[0]} at {recipe.fps:g} fps, "
                       f"{result.made} dreamed now")
    return 0
