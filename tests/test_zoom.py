"""Zoom videos: zooming about the centre, GIF writing, MP4 only with imageio-ffmpeg, the CLI."""

from __future__ import annotations

import importlib.util

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from dreamkit.cli import main
from dreamkit.errors import DreamkitError
from dreamkit.image_io import save_image
from dreamkit.zoom import write_video, zoom_in
from tests.helpers import requires_weights


def test_zoom_magnifies_about_the_centre():
    image = torch.zeros(3, 41, 41)
    image[:, 16:25, 16:25] = 1.0  # a 9 px white square in the middle
    zoomed = zoom_in(image, 2.0)
    assert zoomed.shape == image.shape
    assert torch.allclose(zoom_in(image, 1.0), image, atol=1e-5)
    side = int((zoomed[0, 20] > 0.5).sum())
    assert 16 <= side <= 20 and zoomed[:, 20, 20].min() > 0.99  # twice as wide, same centre
    with pytest.raises(DreamkitError, match="from 1 to 2"):
        zoom_in(image, 0.5)


def test_gif_has_every_frame(tmp_path):
    frames = [torch.full((3, 24, 32), i / 4) for i in range(5)]
    path = write_video(frames, tmp_path / "out.gif", fps=5)
    read = iio.imread(path, index=None)
    assert read.shape[:3] == (5, 24, 32)
    assert [int(f[..., 0].mean()) for f in read] == [round(255 * i / 4) for i in range(5)]
    assert iio.immeta(path, index=None).get("loop") == 0  # loops forever


def test_mp4_with_the_video_extra(tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    import imageio.v2 as iio2

    path = write_video([torch.full((3, 48, 64), i / 5) for i in range(6)], tmp_path / "z.mp4",
                       fps=5)
    with iio2.get_reader(str(path)) as reader:
        assert sum(1 for _ in reader) == 6 and reader.get_meta_data()["fps"] == 5


def test_unknown_formats_and_missing_ffmpeg_are_clear(tmp_path, monkeypatch):
    with pytest.raises(DreamkitError, match="use .gif or .mp4"):
        write_video([torch.zeros(3, 8, 8)], tmp_path / "out.avi")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "imageio_ffmpeg" else real(name, *a))
    with pytest.raises(DreamkitError, match=r"dreamkit\[video\]"):
        write_video([torch.zeros(3, 8, 8)], tmp_path / "out.mp4")
    assert not list(tmp_path.iterdir())


@requires_weights
def test_zoom_command_writes_a_playable_gif_of_n_frames(tmp_path, capsys):
    photo = tmp_path / "photo.png"
    save_image(torch.rand(3, 48, 64, generator=torch.Generator().manual_seed(0)), photo)
    out = tmp_path / "zoom.gif"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two threads on a busy 2-core machine are many times slower
    try:
        assert main(["zoom", str(photo), "--frames", "3", "--octaves", "1", "--steps", "2",
                     "--layer", "inception3a", "-o", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    assert "3 frames" in capsys.readouterr().out
    frames = iio.imread(out, index=None)
    assert frames.shape == (3, 48, 64, 3)
    assert all(np.abs(frames[i].astype(int) - frames[i + 1]).mean() > 1 for i in range(2))
    assert main(["zoom", str(photo), "-o", str(tmp_path / "zoom.webm")]) == 2
