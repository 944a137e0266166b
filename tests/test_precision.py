"""Precision: bf16 autocast on the CPU dreams what fp32 does; the LRN stays exact and fp32."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dreamkit.capture import capture
from dreamkit.dream import DreamSettings, dream
from dreamkit.errors import DreamkitError
from dreamkit.gradients import full_gradient
from dreamkit.models.lrn import LocalResponseNorm
from dreamkit.objectives import as_objective
from dreamkit.precision import autocast, loss_scale, resolve_precision


def test_resolve_precision_on_the_cpu():
    assert resolve_precision("auto", "cpu") is None
    assert resolve_precision("fp32", "cpu") is None
    assert resolve_precision("bf16", "cpu") is torch.bfloat16
    with pytest.raises(DreamkitError, match="fp16 needs a CUDA GPU"):
        resolve_precision("fp16", "cpu")
    with pytest.raises(DreamkitError, match="unknown precision"):
        resolve_precision("fp8", "cpu")
    assert loss_scale(torch.float16) > 1 and loss_scale(torch.bfloat16) == loss_scale(None) == 1


def test_lrn_is_torchs_and_computes_in_fp32():
    x = torch.randn(2, 16, 9, 11) * 80
    ours, theirs = LocalResponseNorm(5, 1e-4, 0.75, 1.0), torch.nn.LocalResponseNorm(5, 1e-4, 0.75)
    assert torch.allclose(ours(x), theirs(x), rtol=1e-5, atol=1e-5)
    channels_last = x.contiguous(memory_format=torch.channels_last)
    assert ours(channels_last).is_contiguous(memory_format=torch.channels_last)
    with autocast("cpu", torch.bfloat16):
        half = ours(x.bfloat16())
    assert half.dtype == torch.bfloat16
    assert torch.allclose(half.float(), theirs(x.bfloat16().float()), rtol=1e-2)


@pytest.mark.parametrize("size", [5, 4])
def test_lrn_backward_is_the_exact_derivative(size):
    x = (torch.randn(2, 7, 4, 5, dtype=torch.float64) * 80).requires_grad_(True)
    ours = LocalResponseNorm(size, 1e-3, 0.75, 2.0)
    assert torch.autograd.gradcheck(ours, (x,))
    theirs = torch.nn.LocalResponseNorm(size, 1e-3, 0.75, 2.0)
    weights = torch.randn_like(x)
    (grad,) = torch.autograd.grad((ours(x) * weights).sum(), x)
    (expected,) = torch.autograd.grad((theirs(x) * weights).sum(), x)
    torch.testing.assert_close(grad, expected)


@pytest.mark.parametrize("size", [5, 4, 1])
def test_lrn_as_the_compiler_sees_it_is_the_same_function(size):
    from dreamkit.models.lrn import _traced_lrn

    x = (torch.randn(2, 7, 4, 5, dtype=torch.float64) * 80).requires_grad_(True)
    theirs = torch.nn.LocalResponseNorm(size, 1e-3, 0.75, 2.0)
    torch.testing.assert_close(_traced_lrn(x, size, 1e-3, 0.75, 2.0), theirs(x))
    assert torch.autograd.gradcheck(lambda t: _traced_lrn(t, size, 1e-3, 0.75, 2.0), (x,))


def test_bf16_runs_the_network_in_bf16(googlenet):
    with autocast("cpu", torch.bfloat16):
        acts = capture(googlenet, torch.rand(1, 3, 64, 64), ["inception3a"])
    assert acts["inception3a"].dtype == torch.bfloat16


def test_bf16_gradient_and_dream_match_fp32(googlenet, photo):
    """Acceptance 3 on the CPU: same look, objective value within 5%."""
    image = photo("chelsea")[:, 100:180, 150:230]
    objective = as_objective("inception4c").prepare(googlenet)
    values, grad = full_gradient(googlenet, objective)(image[None])
    half_values, half_grad = full_gradient(googlenet, objective, torch.bfloat16)(image[None])
    assert half_grad.dtype == torch.float32
    assert torch.allclose(half_values, values, rtol=0.05)
    assert F.cosine_similarity(half_grad.flatten(), grad.flatten(), dim=0) > 0.9

    settings = DreamSettings(octaves=1, steps=3)
    fp32 = dream(googlenet, image, objective, settings, precision="fp32")
    bf16 = dream(googlenet, image, objective, settings, precision="bf16")
    with torch.no_grad():
        score = [objective(capture(googlenet, x[None], ["inception4c"])).item()
                 for x in (image, fp32, bf16)]
    assert score[1] > 1.2 * score[0]  # the dream did something
    assert abs(score[2] - score[1]) <= 0.05 * score[1]
    added = [(x - image).flatten() for x in (fp32, bf16)]  # the dreamed detail looks the same
    assert F.cosine_similarity(*added, dim=0) > 0.75
