"""Dreamed videos: flow and warping, probing and bad inputs, the command end to end (frames,
frame rate, audio, record), resuming a killed run, partial saves, re-making a frame, the
stability table, flat memory over 2000 frames and torchrun segments."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("imageio_ffmpeg")
pytest.importorskip("cv2")

from dreamkit.errors import DreamkitError  # noqa: E402
from dreamkit.settings import DreamSettings, VideoSettings  # noqa: E402
from dreamkit.video import (  # noqa: E402
    dream_video,
    probe,
    read_video_record,
    remake_frame,
    warp_error,
)
from dreamkit.video.flow import flow_method, moved_detail, reliable, warp  # noqa: E402
from dreamkit.video.job import read_png, segments  # noqa: E402
from dreamkit.video.stream import ffmpeg, read_frames  # noqa: E402
from tests.helpers import ROOT, SHARED, call, fails_cleanly  # noqa: E402

TINY = DreamSettings(octaves=1, steps=2, size=64)
DREAM = ["--octaves", "1", "--steps", "2", "--layer", "inception3a", "-q"]
BIKES = SHARED / "videos" / "bikes.mp4"


def make_clip(path: Path, *, size: str = "96x64", frames: int = 12, rate: int = 10,
              audio: bool = False, extra: tuple[str, ...] = ()) -> Path:
    """A generated clip: testsrc2 (moving shapes), with a sine tone when `audio`."""
    command = [ffmpeg(), "-y", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
               f"testsrc2=size={size}:rate={rate}"]
    if audio:
        command += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000", "-c:a", "aac",
                    "-shortest"]
    command += ["-frames:v", str(frames), "-c:v", "libx264", "-pix_fmt", "yuv420p", *extra,
                str(path)]
    subprocess.run(command, check=True)
    return path


@pytest.fixture(autouse=True)
def _one_thread():
    """One CPU thread (conftest restores the count): faster on a busy 2-core machine, and the
    pixels of the torchrun ranks (--threads 1)."""
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    made = {"av": make_clip(folder / "av.mp4", audio=True),
            "silent": make_clip(folder / "silent.mp4", frames=8)}
    fast = make_clip(folder / "fast.mp4", extra=("-movflags", "+faststart"))
    data = fast.read_bytes()
    (folder / "truncated.mp4").write_bytes(data[:int(len(data) * 0.6)])
    (folder / "empty.mp4").write_bytes(data[:data.find(b"mdat") + 4])  # a stream, no frames
    (folder / "text.mp4").write_text("not a video at all\n")
    subprocess.run([ffmpeg(), "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                    "sine=duration=1", "-c:a", "aac", str(folder / "audio.m4a")], check=True)
    make_clip(folder / "vfr.mp4", frames=20, extra=(
        "-vf", "setpts='if(lt(N,10),N,N*3)/10/TB'", "-fps_mode", "passthrough"))
    make_clip(folder / "wide.mp4", size="4112x16", frames=2)
    made.update({name: folder / f"{name}.{ext}" for name, ext in (
        ("truncated", "mp4"), ("empty", "mp4"), ("text", "mp4"), ("audio", "m4a"),
        ("vfr", "mp4"), ("wide", "mp4"))})
    return made


def decoded(path: Path) -> list[np.ndarray]:
    info = probe(path)
    return [f for _, f in read_frames(path, 0, 1, info.frames, (info.height, info.width))]


# --------------------------------------------------------------------------- flow


def test_the_detail_moves_with_the_scene_and_occlusions_are_masked():
    """A bright square moving 4 px right: the previous frame's detail follows it."""
    rng = np.random.default_rng(0)
    background = (rng.random((48, 64, 3)) * 60 + 60).astype(np.uint8)
    before, after = background.copy(), np.roll(background, 4, axis=1)
    before[16:32, 16:32] = 250
    after[16:32, 20:36] = 250
    detail = np.zeros((48, 64, 3), np.float32)
    detail[20:28, 20:28] = 1.0  # dreamed on the square
    moved, mask = moved_detail(detail, after, before, flow_method("dis"))
    assert moved[20:28, 25:31].mean() > 0.8 and moved[20:28, 20:23].mean() < 0.5
    assert mask[10:40, 10:50].mean() > 0.8
    assert mask[:, :3].mean() < 0.5  # came from outside the previous frame
    flow = np.full((8, 8, 2), 1.0, np.float32)
    assert warp(np.arange(64, dtype=np.float32).reshape(8, 8, 1), flow)[0, 0] == 9.0
    assert reliable(flow, -flow)[:7, :7].min() == 1 and reliable(flow, flow)[:7, :7].max() == 0
    assert reliable(flow, -flow)[7].max() == 0  # the last row came from outside


def test_frame_ranges_are_settings_with_bounds():
    assert VideoSettings(frames="0-23").span() == (0, 23)
    assert VideoSettings(frames=7).frames == "7" and VideoSettings(frames="5-").span() == (5, None)
    for bad in ("x", "9-3", "0-100000", -1):
        with pytest.raises(DreamkitError, match="frames"):
            VideoSettings(frames=bad)
    assert VideoSettings(stride=3, preview=2).step() == 6
    assert segments(10, 3) == [(0, 3), (3, 7), (7, 10)] and segments(2, 4) == [(0, 1), (1, 2)]


# --------------------------------------------------------------------------- probing, bad input


def test_probe_describes_a_clip(clips):
    info = probe(clips["av"])
    assert (info.width, info.height, info.fps, info.frames, info.audio) == (96, 64, 10, 12, True)
    assert not probe(clips["silent"]).audio
    frames = list(read_frames(clips["av"], 2, 3, 3, (32, 48)))
    assert [i for i, _ in frames] == [2, 5, 8] and frames[0][1].shape == (32, 48, 3)


@pytest.mark.parametrize(("name", "flags", "words"), [
    ("text", (), ["not a video"]),
    ("empty", (), ["no frames"]),
    ("truncated", (), ["damaged or truncated"]),
    ("audio", (), ["no video stream", "audio only"]),
    ("vfr", (), ["frame rate is variable"]),
    ("wide", (), ["4096 pixels a side", "--size"]),
    ("silent", ("--frames", "5-50"), ["past the end", "8"]),
    ("silent", ("--frames", "0-200000"), ["frames (--frames) must be"]),
    ("silent", ("--blend", "2"), ["blend (--blend) must be a number from 0 to 1"]),
    ("silent", ("--flow", "magic"), ["flow (--flow) must be one of dis"]),
    ("silent", ("-o", "out.avi"), [".avi"]),
])
def test_bad_input_is_one_line_and_leaves_nothing(clips, name, flags, words, googlenet,
                                                  workdir, capsys):
    argv = ["video", str(clips[name]), *DREAM, *flags]
    if "-o" not in flags:
        argv += ["-o", "out.mp4"]
    fails_cleanly(capsys, clips["av"].parent, argv, *words)
    assert not list(workdir.iterdir())


def test_the_input_is_never_written_over(clips, googlenet, tmp_path, capsys):
    source = tmp_path / "clip.mp4"
    source.write_bytes(clips["silent"].read_bytes())
    fails_cleanly(capsys, tmp_path, ["video", str(source), *DREAM, "-o", str(source)],
                  "one of this command's inputs")
    link = tmp_path / "link.mp4"
    link.symlink_to(source)
    with pytest.raises(DreamkitError, match="inputs"):
        dream_video(googlenet, source, link, "inception3a", TINY)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "link.mp4"]


# --------------------------------------------------------------------------- the job


@pytest.fixture(scope="module")
def made(clips, googlenet, tmp_path_factory):
    """The reference run: 8 frames of the clip with audio, PNG frames kept."""
    folder = tmp_path_factory.mktemp("made")
    out = folder / "ref.mp4"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = dream_video(googlenet, clips["av"], out, "inception3a", TINY,
                             VideoSettings(frames="0-7", keep_frames=True))
    finally:
        torch.set_num_threads(threads)
    return out, result


def test_command_writes_the_frames_at_the_inputs_rate_with_its_audio(clips, googlenet,
                                                                     workdir, capsys):
    """Acceptance 1 at a small size: frames 0-7, the input's fps, its audio, the record."""
    rc, err = call(capsys, ["video", str(clips["av"]), "--frames", "0-7", "--size", "48",
                            *DREAM, "-o", "out.mp4"])
    assert rc == 0, err
    info = probe(workdir / "out.mp4")
    assert (info.frames, info.fps, info.audio, info.width, info.height) == (8, 10, True, 48, 32)
    record = read_video_record(workdir / "out.mp4")
    assert record.recipe.count == 8 and record.recipe.input.sha256 and record.weights
    assert [t.layer for t in record.recipe.target] == ["inception3a"]
    assert sorted(p.name for p in workdir.iterdir()) == ["out.mp4"]  # the work folder is gone


def test_coherent_frames_differ_from_independent_ones(made, clips, googlenet, tmp_path):
    out, result = made
    assert result.frames == result.made == 8 and result.seconds["flow"] > 0
    alone = dream_video(googlenet, clips["av"], tmp_path / "alone.mp4", "inception3a", TINY,
                        VideoSettings(frames="0-7", blend=0, keep_frames=True))
    parts = out.with_name("ref.mp4.parts")
    ours = [read_png(parts / f"frame_{i:06d}.png") for i in range(8)]
    theirs = [read_png(tmp_path / "alone.mp4.parts" / f"frame_{i:06d}.png") for i in range(8)]
    assert np.array_equal(ours[0], theirs[0])  # frame 0 is dreamed alone either way
    assert all(not np.array_equal(a, b) for a, b in zip(ours[1:], theirs[1:], strict=True))
    assert alone.record.recipe.video.blend == 0


def test_a_killed_run_resumes_with_the_same_frames(made, clips, googlenet, tmp_path):
    out = tmp_path / "again.mp4"

    def die(position, frame):
        if position == 2:
            raise SystemExit("killed")

    with pytest.raises(SystemExit):
        dream_video(googlenet, clips["av"], out, "inception3a", TINY,
                    VideoSettings(frames="0-7", keep_frames=True), on_frame=die)
    parts = tmp_path / "again.mp4.parts"
    assert not out.exists() and len(list(parts.glob("frame_*.png"))) == 3
    result = dream_video(googlenet, clips["av"], out, "inception3a", TINY,
                         VideoSettings(frames="0-7", keep_frames=True))
    assert result.made == 5
    reference = made[0].with_name("ref.mp4.parts")
    for i in range(8):
        name = f"frame_{i:06d}.png"
        assert np.array_equal(read_png(parts / name), read_png(reference / name)), name
    assert len(decoded(out)) == 8
    with pytest.raises(DreamkitError, match="another video or other settings"):
        dream_video(googlenet, clips["av"], out, "inception3a", TINY.replace(seed=1),
                    VideoSettings(frames="0-7"))


def test_ctrl_c_with_save_partial_leaves_a_playable_video(clips, googlenet, tmp_path):
    out = tmp_path / "partial.mp4"
    told = []

    def interrupt(position, frame):
        if position == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        dream_video(googlenet, clips["silent"], out, "inception3a", TINY,
                    VideoSettings(save_partial=True), on_frame=interrupt,
                    on_partial=lambda path, n: told.append(n))
    assert told == [3] and probe(out).frames == 3
    assert read_video_record(out).recipe.count == 3


def test_a_frame_is_made_again_from_the_record(made, googlenet):
    out, _ = made
    parts = out.with_name("ref.mp4.parts")
    exact = remake_frame(out, 5, googlenet, previous=parts / "frame_000004.png")
    assert np.array_equal((exact * 255).round().byte().permute(1, 2, 0).numpy(),
                          read_png(parts / "frame_000005.png"))
    first = remake_frame(out, 0, googlenet)
    assert np.array_equal((first * 255).round().byte().permute(1, 2, 0).numpy(),
                          read_png(parts / "frame_000000.png"))
    near = remake_frame(out, 5, googlenet)  # the frame before read from the H.264 video
    assert (near - exact).abs().mean() < 0.03
    with pytest.raises(DreamkitError, match="not one of its 8 frames"):
        remake_frame(out, 8, googlenet)


def test_gif_and_webp_for_short_clips(clips, googlenet, tmp_path):
    gif = dream_video(googlenet, clips["silent"], tmp_path / "clip.gif", "inception3a",
                      TINY.replace(size=32), VideoSettings(frames="0-3"))
    assert len(decoded(gif.path)) == 4
    assert read_video_record(gif.path).recipe.count == 4
    webp = dream_video(googlenet, clips["silent"], tmp_path / "clip.webp", "inception3a",
                       TINY.replace(size=32), VideoSettings(preview=3))
    assert webp.frames == 3  # frames 0, 3 and 6
    from PIL import Image

    with Image.open(webp.path) as image:
        assert image.n_frames == 3


def test_compare_writes_the_stability_table(clips, googlenet, workdir, capsys):
    rc, err = call(capsys, ["video", str(clips["silent"]), "--frames", "0-3", "--size", "48",
                            *DREAM, "--compare", "-o", "table.json"])
    assert rc == 0, err
    table = json.loads((workdir / "table.json").read_text())
    assert set(table["variants"]) == {"independent", "blend", "flow"}
    for row in table["variants"].values():
        assert row["ratio"] > 0 and row["strength_vs_independent"] > 0
    assert table["variants"]["independent"]["strength_vs_independent"] == 1


def test_warp_error_of_a_video_against_itself_is_its_floor(clips):
    frames = decoded(clips["silent"])
    same = warp_error((f, f) for f in frames)
    noisy = warp_error((f, np.clip(f + np.random.default_rng(i).normal(0, 20, f.shape), 0, 255)
                        .astype(np.uint8)) for i, f in enumerate(frames))
    assert 0 <= same < noisy


@pytest.mark.skipif(not BIKES.is_file(), reason="needs ../shared/videos/bikes.mp4")
def test_real_footage_probes_and_decodes():
    info = probe(BIKES)
    assert (info.width, info.height, info.fps, info.frames) == (640, 272, 25, 250)
    assert [i for i, _ in read_frames(BIKES, 240, 5, 2, (136, 320))] == [240, 245]


def test_raft_without_its_weights_is_one_line(clips, googlenet, tmp_path, monkeypatch,
                                              capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    fails_cleanly(capsys, tmp_path, ["video", str(clips["silent"]), *DREAM, "--flow", "raft",
                                     "-o", str(tmp_path / "o.mp4")], "RAFT", "--flow dis")


# --------------------------------------------------------------------------- scale


def _resident_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status
                    if line.startswith("VmRSS"))


@pytest.mark.slow
def test_two_thousand_frames_dream_with_flat_memory(googlenet, tmp_path):
    """Acceptance 3: memory does not grow with the number of frames."""
    clip = make_clip(tmp_path / "long.mp4", size="32x24", frames=2000, rate=25)
    seen: dict[int, float] = {}

    def sample(position, frame):
        if position % 250 == 0 or position == 1999:
            seen[position] = _resident_mb()

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = dream_video(googlenet, clip, tmp_path / "long.mp4.out.mp4", "conv2",
                             DreamSettings(octaves=1, steps=1), on_frame=sample)
    finally:
        torch.set_num_threads(threads)
    assert result.frames == 2000 and probe(result.path).frames == 2000
    assert seen[1999] - seen[250] < 20, seen  # MB


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_torchrun_two_ranks_dream_segments_joined_by_warm_ups(made, clips, tmp_path):
    """Two ranks: rank 1 starts at frame 4 from a 2-frame warm-up; frames before the seam are
    the single process's exactly, and the seam is close to it."""
    out = tmp_path / "two.mp4"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
               "--master-addr", "127.0.0.1", "--master-port", str(_free_port()), "-m",
               "dreamkit", "video", str(clips["av"]), "--frames", "0-7", "--size", "64",
               "--warmup", "2", "--keep-frames", "--device", "cpu", "--threads", "1", *DREAM,
               "-o", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert read_video_record(out).segments == (0, 4)
    reference = made[0].with_name("ref.mp4.parts")
    two = [read_png(tmp_path / "two.mp4.parts" / f"frame_{i:06d}.png") for i in range(8)]
    one = [read_png(reference / f"frame_{i:06d}.png") for i in range(8)]
    assert all(np.array_equal(two[i], one[i]) for i in range(4))
    seam = np.abs(two[4].astype(int) - one[4]).mean()
    assert seam < 10, seam
