"""The compiled step: when it compiles, one compilation per image shape (a counting backend),
the same images as the eager step (inductor), and a failing compiler falls back to eager with
one warning."""

from __future__ import annotations

import warnings

import pytest
import torch

import dreamkit as dk
from dreamkit import compiled
from dreamkit.compiled import compile_mode
from dreamkit.dream import octave_sizes


@pytest.fixture
def backend(monkeypatch):
    """Swap in a backend that records the input shape of every graph it compiles (and runs
    the graph as traced); dynamo's caches are reset around the test."""
    shapes: list[tuple[int, ...]] = []

    def counting(gm, inputs):
        shapes.append(tuple(next(i for i in inputs if isinstance(i, torch.Tensor)).shape))
        return gm.forward

    torch._dynamo.reset()
    monkeypatch.setattr(compiled, "BACKEND", counting)
    yield shapes
    torch._dynamo.reset()


def test_auto_compiles_only_long_runs_on_a_gpu():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert compile_mode("auto", cpu, 10_000, True) is None  # measured slower on the CPU
    assert compile_mode("auto", cuda, 512, True) == "reduce-overhead"  # CUDA graphs
    assert compile_mode("auto", cuda, 10, False) is None  # a dream octave: too short
    assert compile_mode("on", cpu, 1, False) == "default"
    assert compile_mode("on", cuda, 1, False) == "default"  # octaves change shape: no graphs
    assert compile_mode("off", cuda, 10_000, True) is None
    with pytest.raises(dk.DreamkitError, match="compile must be auto, on or off"):
        compile_mode("yes", cpu, 1, True)
    with pytest.raises(dk.DreamkitError, match=r"compile \(--compile\) must be one of"):
        dk.DreamSettings(compile="yes")


@pytest.mark.slow  # inductor compiles four graphs: about 5 s
def test_one_compilation_per_octave_shape(squeezenet, backend):
    image, objective = torch.rand(3, 100, 150), dk.layer_norm("fire5")
    settings = dk.DreamSettings(octaves=4, steps=3, compile="on")
    out = dk.dream(squeezenet, image, objective, settings)
    sizes = octave_sizes(100, 150, settings, 32)
    assert len(sizes) == 4 and out.ran["compiled"]
    assert backend == [(1, 3, *size) for size in sizes]  # one graph per shape, no breaks
    again = dk.dream(squeezenet, image, objective, settings)  # a zoom's next frame
    assert len(backend) == 4 and torch.equal(again, out)  # cached: nothing recompiled
    result = dk.render(squeezenet, dk.channel("fire5", [0, 1]), size=48, steps=20,
                       compile="on")
    assert result.ran["compiled"] and len(backend) == 5  # 20 steps of one shape: one graph


@pytest.mark.slow
def test_compiled_and_eager_steps_make_the_same_images(squeezenet):
    torch._dynamo.reset()
    settings = dk.DreamSettings(octaves=2, steps=3, seed=1)
    image = torch.rand(3, 64, 80, generator=torch.Generator().manual_seed(0))
    eager = dk.dream(squeezenet, image, "fire3", settings, compile="off")
    fast = dk.dream(squeezenet, image, "fire3", settings, compile="on")
    assert fast.ran["compiled"] and not eager.ran["compiled"]
    torch.testing.assert_close(fast, eager, atol=2e-4, rtol=0)
    objective = dk.channel("fire3", [0, 5])
    eager = dk.render(squeezenet, objective, size=40, steps=6, compile="off")
    fast = dk.render(squeezenet, objective, size=40, steps=6, compile="on")
    assert fast.ran["compiled"]
    torch.testing.assert_close(fast.images, eager.images, atol=2e-4, rtol=0)
    torch._dynamo.reset()


def test_a_failing_compiler_falls_back_to_eager_with_one_warning(squeezenet, monkeypatch):
    def broken(gm, inputs):
        raise RuntimeError("no C++ compiler here\nsecond line")

    torch._dynamo.reset()
    monkeypatch.setattr(compiled, "BACKEND", broken)
    image = torch.rand(3, 60, 60)
    settings = dk.DreamSettings(octaves=3, steps=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = dk.dream(squeezenet, image, "fire3", settings, compile="on")
    said = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(said) == 1 and "running eager instead" in said[0] and "second" not in said[0]
    assert not out.ran["compiled"]
    assert torch.equal(out, dk.dream(squeezenet, image, "fire3", settings, compile="off"))
    torch._dynamo.reset()


def test_past_the_recompile_limit_the_step_runs_eager_and_says_so(squeezenet, backend,
                                                                  monkeypatch):
    monkeypatch.setattr(compiled, "RECOMPILE_LIMIT", 3)
    compiled._warned.clear()
    made = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for k in range(5):  # five sizes, one octave each
            image = torch.rand(3, 40, 40 + 4 * k)
            made.append(dk.dream(squeezenet, image, "fire3", octaves=1, steps=1, compile="on"))
    assert [d.ran["compiled"] for d in made] == [True, True, True, False, False]
    assert len(backend) == 3
    assert sum("running eager instead" in str(w.message) for w in caught) == 1
    compiled._warned.clear()
