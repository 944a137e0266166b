"""Octave DeepDream: the classic algorithm on the real network, end to end through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dreamkit.capture import capture
from dreamkit.dream import DreamSettings, dream, octave_sizes
from dreamkit.errors import DreamkitError
from dreamkit.image_io import load_image, read_png_text
from tests.helpers import IMAGES, requires_weights


def _rms(net, image: torch.Tensor, layer: str) -> float:
    with torch.no_grad():
        return capture(net, image[None], [layer])[layer].pow(2).mean().sqrt().item()


@pytest.mark.slow
@requires_weights
def test_cli_dream_raises_the_layer_norm(tmp_path):
    """The acceptance run: `dream chelsea.jpg --layer inception4c -o out.png` with defaults."""
    from dreamkit.models import load_model

    out = tmp_path / "out.png"
    cmd = [str(Path(sys.executable).parent / "dream"), str(IMAGES / "chelsea.jpg"),
           "--layer", "inception4c", "-o", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)  # a hang guard
    assert done.returncode == 0, done.stderr
    source, result = load_image(IMAGES / "chelsea.jpg"), load_image(out)
    assert result.shape == source.shape == (3, 300, 451)
    net = load_model()
    assert _rms(net, result, "inception4c") >= 2 * _rms(net, source, "inception4c")
    record = json.loads(read_png_text(out)["dreamkit"])
    assert record["target"] == [{"kind": "layer", "layer": "inception4c"}]
    assert record["settings"]["octaves"] == 4


def test_same_seed_same_image_and_seed_matters(googlenet, photo):
    image = photo("chelsea")[:, :96, :128]
    settings = DreamSettings(octaves=2, steps=2)
    a = dream(googlenet, image, "inception3b", settings)
    b = dream(googlenet, image, "inception3b", settings)
    c = dream(googlenet, image, "inception3b", DreamSettings(octaves=2, steps=2, seed=1))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert a.shape == image.shape and 0 <= a.min() and a.max() <= 1


def test_channel_objective_raises_that_channel(googlenet, photo):
    from dreamkit.objectives import channel

    image = photo("coffee")[:, ::3, ::3]
    target = channel("inception4a", 11)
    before = target(capture(googlenet, image[None], ["inception4a"])).item()
    after_image = dream(googlenet, image, target, DreamSettings(octaves=2, steps=5))
    after = target(capture(googlenet, after_image[None], ["inception4a"])).item()
    assert after > before + 1.0


def test_gain_ends_each_octave_once_the_layer_is_that_much_stronger(googlenet, photo):
    """`gain` stops an octave's steps when the objective reaches gain x the photo's at that
    size: the reachable target stops early and is met; an unreachable one runs every step."""
    image = photo("chelsea")[:, :128, :160]
    counts: dict[float, list[int]] = {}
    results = {}
    for gain in (1.3, 50.0):
        steps: list[int] = []
        results[gain] = dream(googlenet, image, "inception4c", DreamSettings(
            octaves=2, steps=24, gain=gain), on_step=lambda i, im, v, s=steps: s.append(i))
        counts[gain] = steps
    assert len(counts[50.0]) == 2 * 24
    assert len(counts[1.3]) < 2 * 24 and len(counts[1.3]) % 4 == 0
    before = _rms(googlenet, image, "inception4c")
    assert _rms(googlenet, results[1.3], "inception4c") >= 1.25 * before  # met, up to the jitter
    assert _rms(googlenet, results[50.0], "inception4c") > _rms(googlenet, results[1.3],
                                                                "inception4c")


def test_octave_sizes_end_at_the_input_size():
    sizes = octave_sizes(300, 451, DreamSettings())
    assert sizes[-1] == (300, 451) and len(sizes) == 4
    assert sizes[0] == (round(300 / 1.4**3), round(451 / 1.4**3))
    assert len(octave_sizes(40, 40, DreamSettings())) == 1  # too small to shrink
    assert len(octave_sizes(300, 451, DreamSettings(), min_side=200)) == 2  # the layer's reach


def test_a_photo_smaller_than_the_layer_can_see_is_refused(googlenet):
    """A 12x12 photo ended in an internal error; now one message says the size it needs."""
    with pytest.raises(DreamkitError, match=r"12x12 pixels; inception4c .* needs at least "
                                            r"\d+x\d+ .*--size"):
        dream(googlenet, torch.rand(3, 12, 12), "inception4c", DreamSettings(steps=1))
    reach = googlenet.min_side("inception4c")
    assert 12 < reach <= 96
    out = dream(googlenet, torch.rand(3, reach, reach), "inception4c",
                DreamSettings(octaves=2, steps=1))
    assert out.shape == (3, reach, reach)
    bigger = dream(googlenet, torch.rand(3, 12, 12), "inception4c", DreamSettings(steps=1),
                   size=reach + 10)
    assert bigger.shape == (3, reach + 10, reach + 10)


@pytest.mark.parametrize(("image", "words"), [
    (torch.randint(0, 255, (3, 64, 64), dtype=torch.uint8), "float"),
    (torch.rand(3, 64, 64) * 255, "0-255"),
    (torch.rand(64, 64), "shape"),
])
def test_bad_images_are_named_errors_not_white_pictures(googlenet, image, words):
    with pytest.raises(DreamkitError, match=words) as err:
        dream(googlenet, image, "inception3a", DreamSettings(steps=1))
    assert str(err.value).startswith("image ")


@pytest.mark.parametrize(
    "bad",
    [dict(octaves=0), dict(octave_scale=1.0), dict(steps=0), dict(lr=0), dict(lr=float("nan")),
     dict(jitter=-1), dict(blur=-1)],
)
def test_bad_settings_are_user_errors(bad):
    with pytest.raises(DreamkitError):
        DreamSettings(**bad)
