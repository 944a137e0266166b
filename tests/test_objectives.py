"""Objectives against hand-computed values; guided dreams measured on the real network."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dreamkit.capture import capture
from dreamkit.dream import DreamSettings, dream
from dreamkit.errors import DreamkitError
from dreamkit.objectives import channel, direction, diversity, guide, layer_norm, neuron


@pytest.fixture
def acts() -> dict[str, torch.Tensor]:
    """Two images, layer `a` (3 channels, 2x3 grid) with simple known values."""
    a = torch.zeros(2, 3, 2, 3)
    a[0, 0] = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])  # mean 3.5, centre (1, 1) = 5
    a[0, 1] = 2.0
    a[1, 0] = -1.0
    a[1, 2] = torch.tensor([[0.0, 0.0, 0.0], [0.0, 9.0, 0.0]])  # mean 1.5
    return {"a": a}


def test_channel_neuron_and_layer_norm(acts):
    assert channel("a", 0)(acts).tolist() == [3.5, -1.0]
    assert channel("a", [1, 2])(acts).tolist() == [2.0, 1.5]
    assert neuron("a", 0)(acts).tolist() == [5.0, -1.0]  # the centre of a 2x3 grid is (x=1, y=1)
    assert neuron("a", [0, 2], x=2, y=0)(acts).tolist() == [3.0, 0.0]
    sq0 = (1 + 4 + 9 + 16 + 25 + 36 + 6 * 4) / 18
    assert layer_norm("a")(acts).tolist() == pytest.approx([math.sqrt(sq0), math.sqrt(87 / 18)])


def test_a_layer_without_positions_is_a_one_by_one_grid():
    """fc and logits have no H, W: each objective reads them as a 1x1 map, not a crash."""
    fc = {"fc": torch.tensor([[1.0, -2.0, 3.0], [0.5, 4.0, 0.0]])}
    assert channel("fc", [2, 1])(fc).tolist() == [3.0, 4.0]
    assert neuron("fc", 0)(fc).tolist() == [1.0, 0.5]
    assert direction("fc", torch.tensor([0.0, 0.0, 2.0]))(fc).tolist() == [3.0, 0.0]
    assert diversity("fc")(fc).shape == (2,)
    with pytest.raises(DreamkitError, match="outside fc's 1x1 grid"):
        neuron("fc", 0, x=1)(fc)


def test_arithmetic_weights_apply_to_their_own_term_only(acts):
    a, b, c = channel("a", 0), channel("a", 1), channel("a", 2)
    combo = a + 0.5 * b - 2 * c + 1
    assert combo(acts).tolist() == pytest.approx([3.5 + 1.0 - 0 + 1, -1.0 + 0 - 3.0 + 1])
    assert (-(a - b) / 2)(acts).tolist() == pytest.approx([(2.0 - 3.5) / 2, (0 + 1.0) / 2])
    assert sum([a, 3 * b])(acts).tolist() == pytest.approx([9.5, -1.0])
    assert set(combo.needs) == {"a"}


def test_per_image_lists_define_the_batch(acts):
    assert channel("a", [0, 1]).batch == 2 and channel("a", 0).batch is None
    assert (channel("a", [0, 1]) + layer_norm("a")).batch == 2
    assert direction("a", torch.ones(3, 3)).batch == 3
    with pytest.raises(DreamkitError):
        channel("a", [0, 1]) + channel("a", [0, 1, 2])
    with pytest.raises(DreamkitError, match="out of range"):
        channel("a", 3)(acts)


def test_direction_projection_and_cosine_power(acts):
    v = torch.tensor([1.0, 0.0, 0.0])
    assert direction("a", 2 * v)(acts).tolist() == pytest.approx([3.5, -1.0])  # unit vector
    # image 1: at every position a = (-1, 0, 0) except one (-1, 0, 9); along (0, 0, 1):
    w = torch.tensor([0.0, 0.0, 1.0])
    cos_peak = 9 / math.sqrt(82)
    assert direction("a", w, cossim_power=1.0)(acts)[1].item() == pytest.approx(9 * cos_peak / 6)
    # per-image vectors; with cos^2 the negative positions count at the floor 0.1^2
    per_image = direction("a", torch.stack([v, v]), cossim_power=2.0)(acts)
    assert per_image[1].item() == pytest.approx(-1.0 * 0.1**2)


def test_diversity_is_minus_mean_gram_similarity():
    x = torch.zeros(3, 2, 1, 2)
    x[0, 0] = 1.0  # Gram only in channel 0
    x[1, 1] = 1.0  # Gram only in channel 1: orthogonal to image 0
    x[2] = 1.0  # Gram all ones: cosine 1/2 with each of the others
    values = diversity("l")({"l": x}).tolist()
    assert values == pytest.approx([-(0 + 0.5) / 2, -(0 + 0.5) / 2, -(0.5 + 0.5) / 2])


def test_guide_pulls_features_toward_the_guide(googlenet, photo):
    """A guided dream of the cat moves inception4c toward the coffee's features, a plain
    dream of the same layer does not (measured as cosine of spatially pooled features)."""
    layer = "inception4c"
    cat = F.interpolate(photo("chelsea")[None], size=(96, 144), mode="area")[0]
    coffee = F.interpolate(photo("coffee")[None], size=(128, 128), mode="area")[0]
    settings = DreamSettings(octaves=2, steps=8, lr=3.0)

    def pooled(image: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return capture(googlenet, image[None], [layer])[layer].mean((2, 3))[0]

    target = pooled(coffee)
    similarity = {
        name: F.cosine_similarity(pooled(image), target, dim=0).item()
        for name, image in {
            "photo": cat,
            "plain": dream(googlenet, cat, layer_norm(layer), settings),
            "guided": dream(googlenet, cat, guide(layer, coffee), settings),
        }.items()
    }
    assert similarity["guided"] > similarity["photo"] + 0.05, similarity
    assert similarity["guided"] > similarity["plain"] + 0.05, similarity


@pytest.mark.parametrize("bad", [1.5, float("nan"), True, "3", [], [1, 2.5],
                                 torch.tensor([0.5])])
def test_channel_indices_are_checked_when_the_objective_is_made(bad):
    """`channel('fire5', 1.5)` raised a bare TypeError from len() at the first step."""
    for make in (lambda: channel("fire5", bad), lambda: neuron("fire5", bad)):
        with pytest.raises(DreamkitError, match="channel must be an integer"):
            make()
    with pytest.raises(DreamkitError, match="x must be an integer"):
        neuron("fire5", 0, x=bad if not isinstance(bad, list) else 1.5)
    with pytest.raises(DreamkitError, match="x and y are single integers"):
        neuron("fire5", 0, x=[1, 2])


def test_integer_like_channels_are_taken(acts):
    import numpy as np

    for same in (np.int64(2), torch.tensor(2)):
        assert channel("a", same)(acts).tolist() == [0.0, 1.5]
    assert channel("a", torch.tensor([1, 2]))(acts).tolist() == [2.0, 1.5]


@pytest.mark.parametrize("weight", [float("nan"), float("inf"), -float("inf")])
def test_a_non_finite_weight_or_constant_is_refused(weight):
    """A nan weight made render hand back nan images without a word."""
    with pytest.raises(DreamkitError, match="must be finite"):
        weight * channel("fire5", 0)
    with pytest.raises(DreamkitError, match="must be finite"):
        channel("fire5", 0) + weight


def test_a_render_that_diverges_is_an_error_not_nan_images():
    from torch import nn

    from dreamkit.errors import DivergedError
    from dreamkit.models import wrap
    from dreamkit.objectives import Objective
    from dreamkit.render import render

    net = wrap(nn.Sequential(nn.Conv2d(3, 4, 3)), preprocess="none", name="tiny")
    blows_up = Objective(lambda a: a["0"].mean((1, 2, 3)) * float("inf"), ["0"], "inf")
    with pytest.raises(DivergedError, match="render diverged"):
        render(net, blows_up, size=32, steps=2)
