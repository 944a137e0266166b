"""Video files as streams: probing, decoding frame by frame, encoding, records in the file.

Everything goes through the ffmpeg binary that imageio-ffmpeg ships (the optional `video`
extra), so any format ffmpeg reads is an input. `probe` decodes the frames once (ffmpeg's
null output, no pixels reach Python) and refuses, with one line, what is not a video, a video
without frames, a damaged or truncated one, a variable frame rate or frames past the bounds.
`read_frames` yields one (H, W, 3) uint8 frame at a time, `write_video` takes an iterable of
them, so memory does not grow with the number of frames. An MP4 is H.264 (yuv420p) with the
input's audio stream copied (re-encoded to AAC when MP4 cannot hold it), its record in the
`comment` tag; a GIF keeps its record in its comment; a WebP keeps none (as for pictures).
"""

from __future__ import annotations

import importlib.util
import logging
import re
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dreamkit.errors import DreamkitError
from dreamkit.files import atomic_path, regular_file
from dreamkit.settings import (
    DEFAULT_MAX_PIXELS,
    MAX_ANIMATION_FRAMES,
    MAX_FRAMES,
    check_max_pixels,
)

VIDEO_EXTENSIONS = (".mp4", ".gif", ".webp")
CRF = 16  # H.264 quality of the output: visually lossless, so the dream is what one sees
_STREAM = re.compile(r"Stream #0:\d+.*?: (Video|Audio): (.*)")
_SIZE = re.compile(r", (\d{1,6})x(\d{1,6})[ ,\[]")
_FPS = re.compile(r", (\d+(?:\.\d+)?)(k?) (?:fps|tbr)")
_VFR = re.compile(r"VFR:(\S+) \((\d+)/(\d+)\)(?: min: (-?\d+) max: (-?\d+) avg: (-?\d+))?")
_FRAMES = re.compile(r"frame=\s*(\d+)")
_ROTATION = re.compile(r"rotation of (-?\d+(?:\.\d+)?) degrees")
_BENIGN = ("non monotonically increasing dts",)  # the null muxer's note on VFR timestamps


def ffmpeg() -> str:
    """The ffmpeg binary of imageio-ffmpeg, or the one line that says how to get it."""
    if importlib.util.find_spec("imageio_ffmpeg") is None:
        raise DreamkitError("videos need imageio-ffmpeg: pip install 'dreamkit[video]'")
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@dataclass(frozen=True)
class VideoInfo:
    """What `probe` found: frame size, frame rate, decodable frames (up to the range asked
    for), whether there is an audio stream."""

    path: Path
    width: int
    height: int
    fps: float
    frames: int
    audio: bool


def probe(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS,
          last: int | None = None) -> VideoInfo:
    """Check a video by decoding it (up to frame `last`) and describe it; any problem is one
    DreamkitError line that names the file."""
    source = regular_file(path, "video")
    limit = MAX_FRAMES + 1 if last is None else last + 1
    command = [ffmpeg(), "-hide_banner", "-nostdin", "-loglevel", "level+info", "-i",
               str(source), "-map", "0:v:0", "-frames:v", str(limit), "-vf", "vfrdet", "-fps_mode",
               "passthrough", "-f", "null", "-"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, errors="replace",
                              timeout=3600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DreamkitError(f"{source}: ffmpeg could not read it ({exc})") from None
    return parse_probe(source, done.stderr.replace("\r", "\n"), check_max_pixels(max_pixels))


def parse_probe(source: Path, log: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> VideoInfo:
    """The `VideoInfo` of ffmpeg's log of a null decode (`probe`), or the one-line refusal."""
    streams = [(m[1], m[2]) for m in _STREAM.finditer(log)]
    video = next((text for kind, text in streams if kind == "Video"), None)
    audio = any(kind == "Audio" for kind, _ in streams)
    errors = [_message(line) for line in log.splitlines()
              if ("[error]" in line or "[fatal]" in line)
              and not any(note in line for note in _BENIGN)]
    if video is None:
        if audio:
            raise DreamkitError(f"{source}: has no video stream (audio only)")
        why = f" ({errors[-1]})" if errors else ""
        raise DreamkitError(f"{source}: not a video ffmpeg can read{why}")
    size, fps = _SIZE.search(video), _FPS.search(video)
    if size is None or fps is None:
        raise DreamkitError(f"{source}: cannot tell the frame size and frame rate of its "
                            "video stream")
    width, height = int(size[1]), int(size[2])
    rotation = _ROTATION.search(log)
    if rotation and round(abs(float(rotation[1]))) % 180 == 90:  # ffmpeg decodes upright
        width, height = height, width
    counted = _FRAMES.findall(log)
    frames = int(counted[-1]) if counted else 0
    if frames == 0:
        raise DreamkitError(f"{source}: the video has no frames")
    if errors:
        raise DreamkitError(f"{source}: the video is damaged or truncated (ffmpeg: "
                            f"{errors[0]})")
    if width * height > max_pixels:
        raise DreamkitError(f"{source}: frames of {width}x{height} pixels are more than "
                            f"--max-pixels {max_pixels:,}")
    vfr = _VFR.findall(log)
    if vfr and vfr[-1][3]:
        low, high, mean = (int(v) for v in vfr[-1][3:])
        if high - low > 0.1 * max(mean, 1):
            raise DreamkitError(f"{source}: the frame rate is variable (frame durations from "
                                f"{low} to {high} time units); convert it to a constant rate "
                                "first, e.g. ffmpeg -i IN -fps_mode cfr OUT.mp4")
    rate = float(fps[1]) * (1000 if fps[2] else 1)
    if not 0 < rate <= 1000:
        raise DreamkitError(f"{source}: a frame rate of {rate:g} fps is not a video's")
    return VideoInfo(source, width, height, rate, frames, audio)


def _message(line: str) -> str:
    text = re.sub(r"^(\[[^\]]*\] )+", "", line).strip()
    return text[:160]


def read_frames(path: Path, first: int, step: int, count: int,
                size: tuple[int, int]) -> Iterator[tuple[int, np.ndarray]]:
    """(index, frame) of input frames first, first + step, ... (`count` of them), each
    (H, W, 3) uint8 at `size` (height, width); decoded as a stream, one frame at a time."""
    if count <= 0:
        return
    import imageio_ffmpeg

    ffmpeg()
    h, w = size
    last = first + step * (count - 1)
    pick = f"select='between(n\\,{first}\\,{last})*not(mod(n-{first}\\,{step}))'"
    reader = imageio_ffmpeg.read_frames(
        str(path), pix_fmt="rgb24", output_params=["-vf", f"{pick},scale={w}:{h}:flags=area",
                                                   "-fps_mode", "passthrough"])
    made = 0
    try:
        quiet = logging.getLogger("imageio_ffmpeg")
        level = quiet.level
        quiet.setLevel(logging.ERROR)  # it warns that the frames are resized, as asked
        try:
            header = next(reader)
        finally:
            quiet.setLevel(level)
        if tuple(header.get("size", ())) != (w, h):
            raise DreamkitError(f"{path}: ffmpeg decodes frames of {header.get('size')}, not "
                                f"the {w}x{h} expected")
        for raw in reader:
            yield first + step * made, np.frombuffer(raw, np.uint8).reshape(h, w, 3).copy()
            made += 1
            if made == count:
                break
    except (OSError, RuntimeError) as exc:
        raise DreamkitError(f"{path}: ffmpeg stopped decoding ({str(exc).strip()[:200]})") \
            from None
    finally:
        reader.close()
    if made < count:
        raise DreamkitError(f"{path}: ffmpeg gave {made} of the {count} frames asked for")


def check_extension(path: Path, frames: int) -> None:
    """Refuse an output format dreamkit cannot write, or too many frames for a GIF/WebP."""
    suffix = path.suffix.lower()
    if suffix not in VIDEO_EXTENSIONS:
        raise DreamkitError(f"{path}: cannot write a video with {suffix or 'no extension'!r}; "
                            f"use {', '.join(VIDEO_EXTENSIONS)}")
    if suffix != ".mp4" and frames > MAX_ANIMATION_FRAMES:
        raise DreamkitError(f"{path}: {frames} frames are too many for a {suffix[1:].upper()} "
                            f"(at most {MAX_ANIMATION_FRAMES}); write an .mp4")


def write_video(frames: Iterable[np.ndarray], path: Path, size: tuple[int, int], fps: float,
                *, record: str = "", audio: tuple[Path, float, float] | None = None,
                scratch: Path | None = None) -> Path:
    """Write (H, W, 3) uint8 frames of `size` (height, width) to `path` atomically: an H.264
    MP4 (with `audio` = (file, start seconds, duration) copied in), a looping GIF or a WebP;
    `record` is the JSON the file carries."""
    suffix = path.suffix.lower()
    with atomic_path(path) as tmp:
        if suffix == ".mp4":
            if audio is None:
                _encode(frames, tmp, size, fps, record)
            else:
                silent = (scratch or tmp.parent) / f".{tmp.stem}.video-only.mp4"
                try:
                    _encode(frames, silent, size, fps, record)
                    _add_audio(silent, audio, tmp)
                finally:
                    silent.unlink(missing_ok=True)
        else:
            _animation(frames, tmp, fps, record)
    return path


def _run(command: list[str], stdin=None) -> None:
    done = subprocess.run(command, input=stdin, capture_output=True)
    if done.returncode != 0:
        raise DreamkitError(f"ffmpeg failed: {done.stderr.decode(errors='replace')[-300:]}")


def _encode(frames: Iterable[np.ndarray], out: Path, size: tuple[int, int], fps: float,
            record: str) -> None:
    h, w = size
    command = [ffmpeg(), "-y", "-hide_banner", "-nostdin", "-loglevel", "error", "-f",
               "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-framerate", f"{fps:.6g}",
               "-i", "-", "-an", "-c:v", "libx264", "-crf", str(CRF), "-pix_fmt", "yuv420p",
               "-movflags", "+faststart", "-metadata", f"comment={record}", str(out)]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for frame in frames:
            process.stdin.write(np.ascontiguousarray(frame, np.uint8).tobytes())  # type: ignore[union-attr]
        process.stdin.close()  # type: ignore[union-attr]
    except BrokenPipeError:
        pass
    except BaseException:
        process.kill()
        process.wait()
        raise
    error = process.stderr.read().decode(errors="replace")  # type: ignore[union-attr]
    if process.wait() != 0:
        raise DreamkitError(f"{out}: ffmpeg could not encode the video ({error[-300:]})")


def _add_audio(silent: Path, audio: tuple[Path, float, float], out: Path) -> None:
    """`silent` with the audio of `audio` (from its start, for its duration) copied in, or
    re-encoded to AAC when MP4 cannot hold its codec."""
    source, start, duration = audio
    base = [ffmpeg(), "-y", "-hide_banner", "-nostdin", "-loglevel", "error", "-i",
            str(silent), "-ss", f"{start:.6f}", "-t", f"{duration:.6f}", "-i", str(source),
            "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-map_metadata", "0",
            "-movflags", "+faststart", "-shortest"]
    try:
        _run([*base, "-c:a", "copy", "-f", "mp4", str(out)])
    except DreamkitError:
        _run([*base, "-c:a", "aac", "-f", "mp4", str(out)])


def _animation(frames: Iterable[np.ndarray], out: Path, fps: float, record: str) -> None:
    from PIL import Image

    images = (Image.fromarray(frame) for frame in frames)
    first = next(images)
    options: dict = {"save_all": True, "append_images": images, "loop": 0,
                     "duration": round(1000 / fps)}
    if out.suffix.lower() == ".gif":
        options["comment"] = record
    else:
        options.update(lossless=False, quality=90)
    first.save(out, format="GIF" if out.suffix.lower() == ".gif" else "WEBP", **options)


def read_comment(path: Path) -> str | None:
    """The record text a video written here carries (MP4 comment tag, GIF comment)."""
    regular_file(path, "video")
    if path.suffix.lower() == ".gif":
        from PIL import Image

        with Image.open(path) as image:
            comment = image.info.get("comment")
        return comment.decode("utf-8", "replace") if isinstance(comment, bytes) else comment
    done = subprocess.run([ffmpeg(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i",
                           str(path), "-f", "ffmetadata", "-"], capture_output=True)
    text = done.stdout.decode("utf-8", "replace")
    for line in _metadata_lines(text):
        key, _, value = line.partition("=")
        if key == "comment":
            return re.sub(r"\\(.)", r"\1", value)
    return None


def _metadata_lines(text: str) -> Iterator[str]:
    """ffmetadata's lines, joining those continued by an escaped newline."""
    line = ""
    for part in text.split("\n"):
        line += part
        if line.endswith("\\") and not line.endswith("\\\\"):
            line = line[:-1] + "\n"
            continue
        yield line
        line = ""
