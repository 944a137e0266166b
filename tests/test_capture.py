"""Capture runs only as far as needed and returns exactly the full network's activations."""

from __future__ import annotations

import pytest
import torch

from dreamkit.capture import LOGITS, capture
from dreamkit.errors import DreamkitError
from dreamkit.models import load_model


@pytest.fixture(scope="module")
def net():
    return load_model("bvlc_googlenet", random_weights=True)


def test_stops_after_the_deepest_layer(net, monkeypatch):
    def boom(*args):
        raise AssertionError("ran a stage past the deepest layer")

    monkeypatch.setattr(net.stages["inception4d"], "forward", boom)
    acts = capture(net, torch.rand(1, 3, 96, 96), ["inception3a", "inception4c"])
    assert set(acts) == {"inception3a", "inception4c"}


def test_matches_the_full_forward_and_survives_inplace_relu(net):
    x = torch.rand(2, 3, 128, 128)
    logits = net(x)
    acts = capture(net, x, ["inception3a", "conv1", LOGITS, "high"])
    assert torch.equal(acts[LOGITS], logits)
    assert (acts["conv1"] >= 0).all()  # captured after its ReLU, and not modified later
    reference = net.stages["conv1"](net.preprocess(x))
    assert torch.equal(acts["conv1"], reference)
    assert acts["high"].shape[1] == 832  # the high tier's default, inception4e


@pytest.mark.parametrize(("images", "words"), [
    ("not a tensor", "torch.Tensor"),
    (torch.rand(4, 32, 32), "shape"),
    (torch.randint(0, 255, (3, 32, 32), dtype=torch.uint8), "float"),
    (torch.rand(3, 32, 32) * 255, "divide 0-255 values by 255"),
    (torch.full((3, 32, 32), float("nan")), "finite"),
])
def test_bad_images_name_the_argument(net, images, words):
    with pytest.raises(DreamkitError, match=words) as err:
        capture(net, images, ["conv1"])
    assert str(err.value).startswith("images ")
