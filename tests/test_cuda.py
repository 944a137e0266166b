"""The CUDA paths, on a GPU only (skipped elsewhere; `scripts/gpu_check.sh` runs them): bf16
and fp16 against fp32, the compiled render with CUDA graphs against eager, a big dream within
its memory bound."""

from __future__ import annotations

import pytest
import torch

import dreamkit as dk

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def gpu_net(googlenet):
    import copy

    return copy.deepcopy(googlenet).to("cuda")


def test_half_precisions_keep_the_objective_within_five_percent(gpu_net, photo):
    image = photo("chelsea")[:, :256, :256]
    objective = dk.layer_norm("inception4c")
    values = {}
    for precision in ("fp32", "bf16", "fp16"):
        out = dk.dream(gpu_net, image, objective, octaves=2, steps=5, precision=precision)
        assert out.ran["precision"] == precision
        acts = dk.capture(gpu_net, out[None].cuda(), ["inception4c"])["inception4c"]
        values[precision] = float(acts.float().pow(2).mean().sqrt())
    for precision in ("bf16", "fp16"):
        assert abs(values[precision] / values["fp32"] - 1) < 0.05, values


def test_compiled_render_with_cuda_graphs_matches_eager(gpu_net):
    objective = dk.channel("inception4c", [0, 1, 2, 3])
    settings = dict(size=96, steps=32, precision="fp32")
    eager = dk.render(gpu_net, objective, compile="off", **settings)
    fast = dk.render(gpu_net, objective, compile="on", **settings)
    assert fast.ran["compiled"] and not eager.ran["compiled"]
    assert (fast.images - eager.images).abs().mean() < 1e-3
    torch._dynamo.reset()


def test_a_2048_dream_step_stays_within_its_memory(gpu_net):
    torch.cuda.reset_peak_memory_stats()
    image = torch.rand(3, 2048, 2048, device="cuda")
    out = dk.dream(gpu_net, image, "inception4c", octaves=1, steps=2)
    assert out.shape == image.shape and torch.isfinite(out).all()
    assert torch.cuda.max_memory_allocated() < 16 * 2**30
