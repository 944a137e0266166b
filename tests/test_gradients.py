"""Tiled gradients: as untiled up to tile borders, on the real network; memory-aware choice."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

import dreamkit.gradients as gradients
from dreamkit.errors import DreamkitError
from dreamkit.gradients import full_gradient, image_gradient, tiled_gradient
from dreamkit.objectives import as_objective, channel, diversity


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return F.cosine_similarity(a.flatten(), b.flatten(), dim=0).item()


@pytest.mark.parametrize("spec", ["inception4c"])
def test_tiled_gradient_matches_the_whole_image(googlenet, photo, spec):
    """Small 96-pixel tiles over a 128x160 photo: 4 tiles, yet nearly the same gradient."""
    image = photo("chelsea")[None, :, 40:168, 100:260]
    objective = as_objective(spec).prepare(googlenet)
    values, grad = full_gradient(googlenet, objective)(image)
    tiled_values, tiled_grad = tiled_gradient(googlenet, objective, tile=96)(image)
    assert torch.allclose(tiled_values, values, rtol=0.01)
    assert _cos(tiled_grad, grad) > 0.99
    # without context around the tiles, the borders spoil the deep layer's gradient
    if spec == "inception4c":
        _, no_halo = tiled_gradient(googlenet, objective, tile=96, halo=0)(image)
        assert _cos(no_halo, grad) < _cos(tiled_grad, grad)


def test_passes_of_a_few_images_give_the_whole_batch_gradient(googlenet):
    """`per_pass` splits only the network's work: the objective (here diversity, which couples
    the images) sees the whole batch, so values and gradient are the one-pass ones."""
    net64 = copy.deepcopy(googlenet).double()
    images = torch.rand(7, 3, 48, 48, generator=torch.Generator().manual_seed(0)).double()
    objective = diversity("inception3b") + 0.1 * channel("inception3b", list(range(7)))
    values, grad = full_gradient(net64, objective)(images)
    split_values, split_grad = full_gradient(net64, objective, per_pass=3)(images)
    torch.testing.assert_close(split_values, values, rtol=1e-12, atol=0)
    torch.testing.assert_close(split_grad, grad, rtol=1e-9, atol=1e-12 * grad.abs().max())
    assert gradients.cpu_images_per_pass(torch.device("cpu"), (64, 3, 128, 128)) == 16
    assert gradients.cpu_images_per_pass(torch.device("cpu"), (1, 3, 1024, 1024)) == 1
    assert gradients.cpu_images_per_pass(torch.device("cuda"), (64, 3, 128, 128)) is None


def test_tiles_keep_images_of_a_batch_apart(googlenet, photo):
    images = torch.stack([photo("chelsea")[:, :64, :96], photo("coffee")[:, :64, :96]])
    objective = as_objective("inception3a").prepare(googlenet)
    _, together = tiled_gradient(googlenet, objective, tile=64, halo=32)(images)
    _, alone = tiled_gradient(googlenet, objective, tile=64, halo=32)(images[1:])
    assert torch.allclose(together[1:], alone, atol=1e-6 * alone.abs().max().item())


def test_automatic_tiling_follows_free_memory(googlenet, monkeypatch):
    objective = as_objective("inception4c").prepare(googlenet)
    shape = (1, 3, 1024, 1024)
    monkeypatch.setattr(gradients, "free_memory", lambda device: 64 * 2**30)
    assert image_gradient(googlenet, objective, None, shape)[1] == "full"
    monkeypatch.setattr(gradients, "free_memory", lambda device: 2**30)
    assert image_gradient(googlenet, objective, None, shape)[1] == "tile:512"
    assert image_gradient(googlenet, objective, None, shape, 0)[1] == "full"
    batch = (16, 3, 256, 256)  # one image fits, sixteen do not: a few at a time
    assert image_gradient(googlenet, objective, None, batch)[1] == "chunk:8"
    small = (1, 3, 300, 300)  # one tile would cover it: no point tiling
    assert image_gradient(googlenet, objective, None, small, 512)[1] == "full"
    forced = image_gradient(googlenet, objective, None, shape, plan="tile:256")  # a record's
    assert forced[1] == "tile:256"
    with pytest.raises(DreamkitError, match="unknown gradient plan"):
        image_gradient(googlenet, objective, None, shape, plan="tile:100")


def test_free_memory_respects_the_address_space_limit():
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cpu = torch.device("cpu")
    used = gradients._proc_kib("/proc/self/status", "VmSize:")
    resource.setrlimit(resource.RLIMIT_AS, (used + 2**30, hard))
    try:
        assert gradients.free_memory(cpu) <= 2**30
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def test_bad_tiles_and_logits_are_user_errors(googlenet):
    with pytest.raises(DreamkitError, match="multiples of 32"):
        tiled_gradient(googlenet, as_objective("inception4c"), tile=100)
    from dreamkit.objectives import class_logit

    with pytest.raises(DreamkitError, match="not a spatial layer"):
        tiled_gradient(googlenet, class_logit(1).prepare(googlenet), tile=64)(
            torch.rand(1, 3, 96, 96))


def test_dream_with_tiles_is_close_to_untiled(googlenet, photo):
    from dreamkit.dream import DreamSettings, dream

    image = photo("astronaut")[:, ::4, ::4][:, :64, :96]
    settings = DreamSettings(octaves=1, steps=2)
    untiled = dream(googlenet, image, "inception3b", settings, tile=0)
    tiled = dream(googlenet, image, "inception3b", settings, tile=64)
    change, difference = (untiled - image).abs().mean(), (tiled - untiled).abs().mean()
    assert difference < 0.2 * change
