"""Parameterizations, transforms, redirected ReLU, batch independence and the `vis` command."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from dreamkit.cli import main
from dreamkit.errors import DreamkitError
from dreamkit.image_io import load_image, read_png_text
from dreamkit.models.relu import redirected, switchable_relu
from dreamkit.objectives import channel
from dreamkit.param import PARAMS, color_matrix, make_param, spectrum_scale
from dreamkit.render import render
from dreamkit.transforms import (
    Blur,
    Jitter,
    Pad,
    RandomRotate,
    RandomScale,
    apply_all,
    draw_all,
    standard,
)


def _generators(seeds: list[int]) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(s) for s in seeds]


@pytest.mark.parametrize("kind", PARAMS)
def test_params_give_rgb_in_unit_range_and_images_independent_of_the_batch(kind):
    batch = make_param(kind, (20, 27), _generators([5, 6, 7]))()
    alone = make_param(kind, (20, 27), _generators([6]))()
    assert batch.shape == (3, 3, 20, 27) and 0 < batch.min() and batch.max() < 1
    torch.testing.assert_close(batch[1:2], alone)
    assert not torch.allclose(batch[0], batch[1])


def test_fft_spectrum_falls_as_one_over_f_and_colour_matrix_is_normalized():
    scale = spectrum_scale(8, 8, decay=1.0)
    assert scale[0, 1].item() == pytest.approx(8.0)  # 1/f at f = 1/8
    assert scale[0, 4].item() == pytest.approx(2.0)  # 1/f at f = 1/2 (Nyquist)
    assert scale[0, 0] == scale[0, 1]  # DC floored at one cycle per image
    assert color_matrix().norm(dim=0).max().item() == pytest.approx(1.0)
    with pytest.raises(DreamkitError, match="unknown parameterization"):
        make_param("wavelet", (8, 8), _generators([0]))


def test_jitter_shifts_by_whole_pixels_and_chains_compose_exactly():
    x = torch.rand(2, 3, 40, 40)
    shifted = Jitter(8).apply(x, torch.tensor([[3.0, -2.0], [0.0, 0.0]]))
    torch.testing.assert_close(shifted[0, :, 10:30, 10:30], x[0, :, 12:32, 7:27])
    torch.testing.assert_close(shifted[1], x[1])
    chain = [Jitter(4), Jitter(4)]  # two shifts compose into one resampling
    once = apply_all(chain, x, torch.tensor([[1.0, 2.0, 2.0, -4.0]] * 2))
    torch.testing.assert_close(once, Jitter(4).apply(x, torch.tensor([[3.0, -2.0]] * 2)))
    assert Pad(5).apply(x, torch.empty(2, 0)).shape[-1] == 50
    rotated = RandomRotate([90]).apply(x, torch.tensor([[90.0], [90.0]]))
    torch.testing.assert_close(rotated[0], x[0].rot90(1, (1, 2)), atol=1e-4, rtol=0)
    assert Blur(1.0).apply(x, torch.empty(2, 0)).std() < x.std()
    small = torch.rand(1, 3, 5, 9)  # a kernel wider than the image stops at its borders
    assert Blur(40.0).apply(small, torch.empty(1, 0)).std() < small.std()


def test_transform_parameters_come_from_each_images_generator():
    chain = standard() + [RandomScale([0.5, 2.0])]
    first = draw_all(chain, torch.Generator().manual_seed(3), 50)
    again = draw_all(chain, torch.Generator().manual_seed(3), 50)
    other = draw_all(chain, torch.Generator().manual_seed(4), 50)
    assert first.shape == (50, 7) and torch.equal(first, again) and not torch.equal(first, other)
    assert first[:, 0].abs().max() <= 8 and set(first[:, -1].tolist()) == {0.5, 2.0}


def test_redirected_relu_passes_upward_gradient_only_for_dead_images():
    x = torch.tensor([[-1.0, -2.0], [-1.0, 3.0]], requires_grad=True)
    with redirected():
        switchable_relu(x).mul(torch.tensor([[-1.0, 1.0], [-1.0, -1.0]])).sum().backward()
    # image 0 is dead: gradients asking for a larger output (loss grad < 0) pass
    # image 1 has a live unit: plain ReLU gradient
    assert x.grad.tolist() == [[-1.0, 0.0], [0.0, -1.0]]
    alive = torch.tensor([[1.0, -2.0], [-1.0, 3.0]], requires_grad=True)
    with redirected():
        switchable_relu(alive).mul(torch.tensor([[-1.0, -1.0], [-1.0, 2.0]])).sum().backward()
    assert alive.grad.tolist() == [[-1.0, 0.0], [0.0, 2.0]]  # plain ReLU gradient for all
    plain = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    switchable_relu(plain).mul(-1).sum().backward()  # outside `redirected`: a plain ReLU
    assert plain.grad.tolist() == [[0.0, 0.0]]


@pytest.mark.slow
def test_batched_render_of_64_channels_equals_64_single_renders(googlenet):
    """Acceptance 5: image i of a batch = a render of channel i alone with seed + i.

    In float64 the batch and the singles agree to the last float32 digit. (In float32 they
    agree to ~1e-6 for the first steps, then oneDNN's batch-size-dependent convolution
    rounding, flipped at ReLU and max-pool kinks, grows into visible differences.)"""
    channels = list(range(0, 512, 8))
    options = {"size": 32, "steps": 8, "lr": 0.05}
    net64 = copy.deepcopy(googlenet).double()
    batched = render(net64, channel("inception4c", channels), seed=10, **options)
    assert batched.images.shape == (64, 3, 32, 32) and batched.images.std(dim=(1, 2, 3)).min() > 0
    assert batched.history.shape == (2, 64) and batched.history_steps == [0, 7]
    assert batched.settings.size == 32 and batched.ran["plans"] == ["full"]
    for i, c in enumerate(channels):
        single = render(net64, channel("inception4c", c), seed=10 + i, **options)
        torch.testing.assert_close(batched.images[i], single.images[0], atol=1e-6, rtol=0)
        torch.testing.assert_close(batched.history[:, i], single.history[:, 0], atol=0,
                                   rtol=1e-5)


def test_batched_render_in_float32_matches_its_first_steps(googlenet):
    channels = [3, 30, 97, 200]
    options = {"size": 40, "steps": 2, "lr": 0.05}
    batched = render(googlenet, channel("inception4c", channels), seed=10, **options)
    for i, c in enumerate(channels):
        single = render(googlenet, channel("inception4c", c), seed=10 + i, **options)
        torch.testing.assert_close(batched.images[i], single.images[0], atol=1e-4, rtol=0)
    with pytest.raises(DreamkitError, match="defined for 4 images"):
        render(googlenet, channel("inception4c", channels), batch=2, steps=1, size=32)


def test_vis_command_writes_pngs_with_metadata_and_a_grid(googlenet, tmp_path):
    out = tmp_path / "vis"
    code = main(["vis", "--layer", "inception3a", "--channels", "4,7", "--size", "32",
                 "--steps", "2", "--batch", "1", "--seed", "5", "-q", "-o", str(out)])
    assert code == 0
    record = json.loads(read_png_text(out / "inception3a_c7.png")["dreamkit"])
    assert record["target"] == [{"kind": "channel", "layer": "inception3a", "channel": 7}]
    assert record["settings"]["seed"] == 6 and record["settings"]["steps"] == 2
    assert record["ran"]["precision"] == "fp32" and record["ran"]["threads"] >= 1
    assert load_image(out / "grid.png").shape[-1] > 64
    assert main(["vis", "--layer", "inception3a", "--channels", "300", "-o", str(out)]) == 2


def test_the_loop_is_open_to_a_param_an_optimizer_and_a_step_callback():
    """`render` takes a parameterization instance, an optimizer factory and `on_step`."""
    from dreamkit.models import load_model
    from dreamkit.param import PixelParam

    net = load_model("squeezenet1_1", random_weights=True)
    param = PixelParam((40, 40), _generators([1, 2]))
    made, seen = [], []

    def sgd(params):
        optimizer = torch.optim.SGD(params, lr=0.5)
        made.append(optimizer)
        return optimizer

    def watch(step, images, values):
        seen.append((step, tuple(images.shape), tuple(values.shape)))

    result = render(net, channel("fire3", [3, 5]), param=param, optimizer=sgd, on_step=watch,
                    steps=5, transforms=[])
    assert len(made) == 1 and isinstance(made[0], torch.optim.SGD)
    assert seen == [(t, (2, 3, 40, 40), (2,)) for t in range(5)]
    assert result.images.shape == (2, 3, 40, 40)
    torch.testing.assert_close(result.images, param().detach())  # the instance was optimized
    assert result.history[-1].sum() > result.history[0].sum()
