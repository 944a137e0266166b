"""Results that show themselves: `show`, `Picture`, render results, dreams, directions,
linearity reports and the live `Preview`, as a notebook would display them."""

from __future__ import annotations

import copy
import io
import pickle
import re
import sys
import types

import pytest
import torch
from PIL import Image

import dreamkit as dk
from dreamkit.directions import Directions, fit_direction
from dreamkit.linearity.report import markdown_html


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return Image.open(io.BytesIO(data)).size


def test_show_lays_out_a_labelled_row_and_refuses_mistakes():
    picture = dk.show(torch.rand(3, 3, 40, 30), labels=["a", "b", "c"])
    width, height = png_size(picture._repr_png_())
    assert 3 * 30 <= width <= 3 * 30 + 40 and 40 < height <= 40 + 40  # one row with captions
    assert dk.show([torch.rand(3, 20, 20), Image.new("RGB", (20, 20))]).size[0] >= 40
    assert dk.show(torch.rand(10, 3, 8, 8)).size[1] > dk.show(torch.rand(8, 3, 8, 8)).size[1]
    mistakes = [(torch.rand(2, 3, 8, 8), ["a"], "per image (2), not 1 labels"),
                (torch.rand(2, 3, 8, 8), "ab", "not a string"),
                ([torch.rand(3, 8, 8)] * 2, [97, 11], "other types"),
                (torch.rand(8, 8), None, "(3, H, W)"), (torch.rand(2, 1, 8, 8), None, "shape"),
                (torch.rand(3, 8, 8) * 255, None, "divide 0-255 values by 255"),
                ([torch.rand(3, 8, 8), torch.rand(2, 3, 8, 8)], None, "images[1]"),
                (None, None, "NoneType"), ([], None, "at least")]
    for images, labels, words in mistakes:
        with pytest.raises(dk.DreamkitError, match=re.escape(words)):
            dk.show(images, labels)
    for option in ({"columns": 0}, {"max_cell": 0}):
        with pytest.raises(dk.DreamkitError, match="whole number"):
            dk.show(torch.rand(3, 8, 8), **option)
    assert dk.show(torch.rand(3, 8, 8), title="x" * 500).size[0] < 900


def test_picture_saves_what_it_shows(tmp_path):
    picture = dk.show(torch.rand(2, 3, 16, 16), ["x", "y"])
    saved = dk.load_image(picture.save(tmp_path / "grid.png"))
    assert tuple(saved.shape[1:]) == picture.size[::-1]
    assert 'src="data:image/png;base64,' in picture.html()


def test_render_result_captions_each_target_with_its_final_value(squeezenet):
    result = dk.render(squeezenet, dk.channel("fire5", [0, 7]), size=32, steps=3)
    assert result.labels == ["fire5:0", "fire5:7"]
    picture = result.show()
    assert picture.alt.startswith("fire5:")  # the shared part is the title
    width, height = png_size(result._repr_png_())
    assert 64 <= width <= 64 + 40 and 32 < height <= 32 + 60
    assert "2 image(s) 32x32" in repr(result) and "tensor" not in repr(result)


def test_labels_follow_objectives_through_sums_and_per_image_lists():
    assert dk.class_logit(["tabby", 967]).labels == ("class 281 tabby", "class 967 espresso")
    made = dk.channel("fire5", [1, 2]) - 0.5 * dk.diversity("fire5")
    assert made.image_labels(2) == ["fire5:1 + -0.5 * (fire5 diversity)",
                                    "fire5:2 + -0.5 * (fire5 diversity)"]
    assert dk.per_image([dk.layer_norm("a"), dk.channel("b", 3)]).image_labels(2) == \
        ["a norm", "b:3"]
    assert dk.layer_norm("fire5").image_labels(3) == ["fire5 norm"] * 3


def test_dream_result_is_a_plain_tensor_that_shows_before_and_after(squeezenet):
    image = torch.rand(3, 40, 60)
    out = dk.dream(squeezenet, image, "fire3", octaves=1, steps=2)
    assert isinstance(out, torch.Tensor) and out.shape == image.shape
    assert type(out * 1) is torch.Tensor and type(out.clamp(0, 1)) is torch.Tensor
    assert torch.equal(out.photo, image) and out.ran["device"] == "cpu"
    again = dk.dream(squeezenet, out, "fire3", octaves=1, steps=1)  # dreams fed back in
    assert type(again.photo) is torch.Tensor  # keep the one photo each, not a chain
    width, height = png_size(out._repr_png_())
    assert 120 <= width <= 120 + 40 and 40 < height <= 40 + 40  # photo | dream
    buffer = io.BytesIO()
    torch.save(out, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer)  # weights_only: a plain tensor comes back
    assert type(loaded) is torch.Tensor and torch.equal(loaded, out)
    assert type(pickle.loads(pickle.dumps(out))) is torch.Tensor
    copied = copy.deepcopy(out)
    assert torch.equal(copied, out) and copied.objective == out.objective == "fire3 norm"


def test_directions_show_accuracy_and_a_strip():
    fitted = fit_direction(torch.randn(12, 64) + 1, torch.randn(12, 64), "fire5", "m")
    text = fitted._repr_html_()
    assert "held-out accuracy" in text and "5-fold over images" in text
    assert "<img" in text and "tensor" not in repr(fitted)
    pca = Directions(torch.randn(3, 64), "fire5", "m", "pca",
                     {"explained_variance_ratio": [0.5, 0.2, 0.1]})
    assert "explained variance ratio 0.5, 0.2, 0.1" in pca.describe()


def test_markdown_tables_become_html_tables():
    text = "### net (8 photos)\n| a | b |\n|---|---|\n| 1 [0, 2] | x<y |\nnote"
    assert markdown_html(text) == ("<h4>net (8 photos)</h4>\n<table><tr><th>a</th><th>b</th>"
                                   "</tr><tr><td>1 [0, 2]</td><td>x&lt;y</td></tr></table>\n"
                                   "<p>note</p>")


class _Handle:
    def __init__(self, shown):
        self.shown = shown

    def update(self, picture):
        self.shown.append(("update", picture))


def test_preview_refreshes_one_picture_every_n_steps(squeezenet, monkeypatch):
    shown: list = []

    def display(picture, display_id=False):
        assert display_id
        shown.append(("display", picture))
        return _Handle(shown)

    fake = types.ModuleType("IPython")
    fake.get_ipython = lambda: object()
    fake_display = types.ModuleType("IPython.display")
    fake_display.display = display
    monkeypatch.setitem(sys.modules, "IPython", fake)
    monkeypatch.setitem(sys.modules, "IPython.display", fake_display)
    dk.render(squeezenet, "fire3", size=32, steps=10, on_step=dk.Preview(every=4))
    assert [kind for kind, _ in shown] == ["display", "update", "update"]  # steps 0, 4, 8
    assert shown[-1][1].alt.startswith("step 8: objective")


def test_preview_outside_ipython_shows_nothing(monkeypatch):
    fake = types.ModuleType("IPython")
    fake.get_ipython = lambda: None
    monkeypatch.setitem(sys.modules, "IPython", fake)
    preview = dk.Preview(every=1)
    preview(0, torch.rand(1, 3, 8, 8), torch.ones(1))
    assert preview.shown == 0
    with pytest.raises(dk.DreamkitError, match="whole number"):
        dk.Preview(every=0)
