"""The speed paths: channels_last, one gradient function per octave shape, and the benchmark."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest
import torch

from dreamkit.dream import DreamSettings, dream, octave_sizes
from tests.helpers import ROOT, requires_weights

dream_module = importlib.import_module("dreamkit.dream")  # `dreamkit.dream` is the function


def test_dream_runs_the_network_channels_last(googlenet, photo):
    seen = []
    conv = googlenet.stages["conv1"].conv
    hook = conv.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0]))
    try:
        dream(googlenet, photo("coffee")[:, :64, :64], "inception3a",
              DreamSettings(octaves=1, steps=1))
    finally:
        hook.remove()
    assert seen and all(x.is_contiguous(memory_format=torch.channels_last) for x in seen)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_one_gradient_per_octave_shape_with_the_options(googlenet, photo, monkeypatch):
    made = []
    real = dream_module.image_gradient

    def spy(net, objective, dtype, shape, tile=None, plan=None):
        made.append((tuple(shape), dtype, tile))
        return real(net, objective, dtype, shape, tile, plan)

    monkeypatch.setattr(dream_module, "image_gradient", spy)
    image = photo("rocket")[:, :80, :100]
    settings = DreamSettings(octaves=2, steps=2)
    dream(googlenet, image, "inception3a", settings, precision="bf16", tile=0)
    sizes = octave_sizes(80, 100, settings)
    assert len(sizes) == 2
    assert made == [((1, 3, *size), torch.bfloat16, 0) for size in sizes]


@pytest.mark.slow
@requires_weights
def test_bench_quick_smoke(tmp_path):
    """`scripts/bench.py --quick` at tiny sizes: every case runs and the JSON has the ratios."""
    out = tmp_path / "bench.json"
    cmd = [sys.executable, str(ROOT / "scripts" / "bench.py"), "--quick", "--threads", "1",
           "--dream-size", "64", "--dream-steps", "1", "--channels", "2", "--vis-steps", "2",
           "--vis-size", "32", "--cases", "abcdef", "-o", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "| ratio | value |" in done.stdout
    record = json.loads(out.read_text())
    assert record["device"] == "cpu" and len(record["rows"]) == 16
    assert set(record["ratios"]) == {
        "dream / reference (stock modules)", "dream / reference (dreamkit's network)",
        "batched / one at a time", "render step / bare step", "wrapped / staged googlenet",
        "examples pass speed-up (photos/s, streaming / plain, stock modules)",
        "examples pass speed-up (photos/s, streaming / plain on dreamkit's network)",
        "dream --help / importing torch"}
    assert all(row["photos_per_second"] > 0 for row in record["rows"] if row["case"][1] == "e")
    work, startup = [[row for row in record["rows"] if (row["case"][0] == "f") == s]
                     for s in (False, True)]
    assert all(row["seconds"] > 0 and row["peak_mb"] > 0 for row in work)
    assert [row["imports_torch"] for row in startup] == [False, False, False, True]
    assert record["ratios"]["dream --help / importing torch"] < 0.5  # no torch behind --help


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_tensors_stay_in_the_process():
    """Three 24 MB blocks made and freed in a fresh process through glibc's malloc, as torch's
    CPU allocator makes its tensors: glibc's defaults hand their memory back to the kernel (so
    the next step faults every page in again); with `keep_freed_memory` it stays resident for
    reuse. Measured on resident memory, which transparent huge pages do not change (page-fault
    counts do: one fault per 2 MB)."""
    code = ("import ctypes, resource, sys\n"
            "from dreamkit.allocator import keep_freed_memory\n"
            "if sys.argv[1] == '1': assert keep_freed_memory()\n"
            "libc = ctypes.CDLL(None); libc.malloc.restype = ctypes.c_void_p\n"
            "libc.free.argtypes = [ctypes.c_void_p]\n"
            "def resident(): return int(open('/proc/self/statm').read().split()[1])"
            " * resource.getpagesize()\n"
            "held = [libc.malloc(24 * 2**20) for _ in range(3)]\n"
            "for block in held: ctypes.memset(block, 1, 24 * 2**20)\n"
            "peak = resident()\n"
            "for block in held: libc.free(block)\n"
            "print(peak - resident())")
    dropped = {}
    for keep in ("0", "1"):
        done = subprocess.run([sys.executable, "-c", code, keep], capture_output=True,
                              text=True, timeout=120, cwd=ROOT)
        assert done.returncode == 0, done.stderr
        dropped[keep] = int(done.stdout.split()[-1])
    assert dropped["0"] >= 48 * 2**20, dropped  # defaults: the 72 MB went back to the kernel
    assert dropped["1"] < 4 * 2**20, dropped  # kept for the next step
