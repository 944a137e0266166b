"""The compiled loop's cases of `scripts/bench.py` (which imports this module):

  (g) a batched render of inception4c channels, eager against compiled (`compile="on"`), at
      each precision: the step time (a run / its steps, compile excluded: a second run), the
      compile time (first run minus a later one), the final objective, and a bare compiled
      fp32 forward + backward of the stock network (the floor of a compiled step);
  (h) the sweep: every channel of inception4c in one batch (512 at 128 px, 512 steps by
      default), compiled: a GPU case (hours on a CPU);
  (i) one 4096x4096 dream (4 octaves x 10 steps, inception4c): its time and peak memory.
"""

from __future__ import annotations

import time

import torch
from bench_common import LAYER, _sync, measure, stock_network, truncated_forward

from dreamkit.dream import DreamSettings, dream
from dreamkit.models.base import Model
from dreamkit.objectives import channel
from dreamkit.render import render

BARE_COMPILED = "bare forward + backward, compiled (stock modules, fp32)"


def _timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def bench_compiled(net: Model, device: torch.device, channels: int, steps: int, size: int,
                   repeats: int, precisions: list[str]) -> list[dict]:
    what = f"(g) render of {channels} channels of {LAYER}, {steps} steps, {size} px"
    objective = channel(LAYER, list(range(channels)))
    rows = []
    last: dict = {}  # each variant's last result, for its objective value
    for precision in precisions:
        def run(mode: str, precision: str = precision):
            result = render(net, objective, size=size, steps=steps, precision=precision,
                            compile=mode, device=device)
            _sync(device)
            return result

        torch._dynamo.reset()
        eager = measure(lambda: last.__setitem__("eager", run("off")), device, repeats)
        cold, _ = _timed(lambda: run("on"))
        compiled = measure(lambda: last.__setitem__("compiled", run("on")), device, repeats)
        for variant, timing in (("eager", eager), ("compiled", compiled)):
            result = last[variant]
            rows.append(dict(case=what, variant=f"render step, {variant}, {precision}",
                             seconds=timing["seconds"] / steps, peak_mb=timing["peak_mb"],
                             objective=float(result.history[-1].mean()),
                             ran_compiled=result.ran["compiled"]))
        rows.append(dict(case=what, variant=f"compile time, {precision}",
                         seconds=max(0.0, cold - compiled["seconds"]), peak_mb=None))
    rows += _dream_rows(net, device)
    plain = stock_network(net)
    forward = torch.compile(lambda x: truncated_forward(plain, x, LAYER), dynamic=False)
    x = torch.rand(channels, 3, size, size, device=device)

    def bare() -> None:
        forward(x.detach().requires_grad_(True)).mean().backward()

    bare()  # compiles
    rows.append(dict(case=what, variant=BARE_COMPILED, **measure(bare, device, max(5, repeats))))
    torch._dynamo.reset()
    return rows


def _dream_rows(net: Model, device: torch.device, size: int = 512) -> list[dict]:
    """A whole 4-octave dream, eager against compiled with its compile time included (four
    shapes, four compilations): what `auto` weighs for a dream."""
    image = torch.rand(3, size, size, generator=torch.Generator().manual_seed(0)).to(device)
    settings = DreamSettings(octaves=4, steps=10)
    what = f"(g) DeepDream {size}x{size}, 4 octaves x 10 steps, {LAYER}"
    torch._dynamo.reset()
    rows = []
    for variant, mode in (("eager", "off"), ("compiled, compile included", "on")):
        seconds, out = _timed(lambda mode=mode: dream(net, image, LAYER, settings, compile=mode))
        rows.append(dict(case=what, variant=f"dream, {variant}", seconds=seconds, peak_mb=None,
                         ran_compiled=out.ran["compiled"]))
    return rows


def bench_sweep(net: Model, device: torch.device, size: int, steps: int) -> list[dict]:
    """Every channel of the layer, one batch, compiled; the compile time included."""
    count = net.layers.resolve(LAYER).channels
    seconds, result = _timed(lambda: render(net, channel(LAYER, list(range(count))), size=size,
                                            steps=steps, compile="on", device=device))
    _sync(device)
    return [dict(case=f"(h) all {count} channels of {LAYER}, {steps} steps, {size} px",
                 variant="dreamkit render, one batch, compiled (compile included)",
                 seconds=seconds, peak_mb=None, ran_compiled=result.ran["compiled"])]


def bench_big_dream(net: Model, device: torch.device) -> list[dict]:
    image = torch.rand(3, 4096, 4096, generator=torch.Generator().manual_seed(0)).to(device)
    settings = DreamSettings(octaves=4, steps=10)
    timing = measure(lambda: dream(net, image, LAYER, settings), device, 1)
    return [dict(case=f"(i) DeepDream 4096x4096, 4 octaves x 10 steps, {LAYER}",
                 variant="dreamkit dream (defaults)", **timing)]
