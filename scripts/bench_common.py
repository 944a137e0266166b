"""What every benchmark script measures with: timing with a warm-up, peak memory, and the plain
references (a stock-module copy of a network, a forward truncated at a layer). Imported by
`bench.py` and `bench_compiled.py` (which never import each other)."""

from __future__ import annotations

import copy
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dreamkit.models.base import Model  # noqa: E402
from dreamkit.models.lrn import LocalResponseNorm  # noqa: E402

LAYER = "inception4c"


# ------------------------------------------------------------------------------ measuring


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:  # Linux: writing 5 to clear_refs resets the peak resident set size (VmHWM)
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_mb(device: torch.device) -> float | None:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def measure(fn: Callable[[], object], device: torch.device, repeats: int) -> dict:
    """Median seconds of `repeats` calls after a warm-up call, and the peak memory of them."""
    fn()
    _sync(device)
    _reset_peak(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return {"seconds": statistics.median(times), "times": times, "peak_mb": _peak_mb(device)}


def stock_network(net: Model) -> Model:
    """A copy of `net` with PyTorch's own LocalResponseNorm, as a user's port would have."""
    plain = copy.deepcopy(net).to(memory_format=torch.contiguous_format)
    for parent in plain.modules():
        for name, child in parent.named_children():
            if isinstance(child, LocalResponseNorm):
                stock = nn.LocalResponseNorm(child.size, child.alpha, child.beta, child.k)
                setattr(parent, name, stock)
    return plain


def truncated_forward(net: Model, x: torch.Tensor, layer: str) -> torch.Tensor:
    """The activations of `layer`, running the stages up to it and no further."""
    x = net.preprocess(x)
    for name, stage in net.stages.items():
        x = stage(x)
        if name == layer:
            return x
    raise KeyError(layer)
