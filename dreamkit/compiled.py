"""torch.compile for the inner loop: the forward of one step (the network to the deepest layer
asked for, then the objective) compiled once per image shape, its backward compiled with it
(AOTAutograd), and CUDA graphs for the fixed-shape render step on GPUs. A compiler failure
falls back to the eager step with one warning, never a crash.

`auto` compiles only where compiling can pay: on a CUDA device, for shapes that get at least
`AUTO_MIN_STEPS` steps (a render; not the 10 steps of a dream octave). On the CPU it stays
eager: there the compiled step measured slower (`scripts/bench.py`, case g). The GPU side is
not measured yet (`scripts/gpu_check.sh`).

Each image shape and objective compiles once per process, up to `RECOMPILE_LIMIT` graphs;
past that the step runs eager (with the one warning), and `ran["compiled"]` says so.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch

from dreamkit.errors import DreamkitError
from dreamkit.settings import COMPILES

AUTO_MIN_STEPS = 256  # steps on one shape before `auto` compiles (on a GPU)
RECOMPILE_LIMIT = 64  # graphs of the step per process (dynamo's default, 8, is a few dreams)
BACKEND: str | Callable = "inductor"  # tests swap in a counting backend
_warned: set[str] = set()


def compile_mode(choice: str, device: torch.device, steps_per_shape: int,
                 fixed_shape: bool) -> str | None:
    """The `torch.compile` mode for a run (None: eager). `choice` is auto, on or off;
    `fixed_shape` runs (renders) use CUDA graphs on a GPU."""
    if choice not in COMPILES:
        raise DreamkitError(f"compile must be {', '.join(COMPILES[:-1])} or {COMPILES[-1]}, "
                            f"not {choice!r}")
    if choice == "off" or (choice == "auto" and (device.type != "cuda"
                                                 or steps_per_shape < AUTO_MIN_STEPS)):
        return None
    return "reduce-overhead" if fixed_shape and device.type == "cuda" else "default"


def compile_forward(fn: Callable[[torch.Tensor], torch.Tensor], mode: str
                    ) -> Callable[[torch.Tensor], torch.Tensor]:
    """`fn` under torch.compile: static shapes, so each new shape compiles once and is cached."""
    return torch.compile(fn, backend=BACKEND, mode=None if BACKEND != "inductor" else mode,
                         dynamic=False)


class WithFallback:
    """A gradient that runs `fast` (compiled) until it fails, then `slow` (eager) for good,
    after one warning per kind of failure. `compiled` says whether every call so far ran fast."""

    def __init__(self, fast: Callable, slow: Callable):
        self.fast, self.slow = fast, slow
        self.compiled = True

    def __call__(self, image: torch.Tensor):
        if self.compiled:
            try:
                with _limits():
                    return self.fast(image)
            except DreamkitError:
                raise
            except Exception as exc:  # noqa: BLE001 - any compiler failure: run eager instead
                self.compiled = False
                what = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}" \
                    if str(exc).strip() else type(exc).__name__
                if what not in _warned:
                    _warned.add(what)
                    warnings.warn(f"torch.compile failed, running eager instead ({what})",
                                  RuntimeWarning, stacklevel=2)
        return self.slow(image)


def _limits():
    """Room for `RECOMPILE_LIMIT` graphs, and an error (so: the fallback) past it, instead of
    dynamo's silent eager run."""
    return torch._dynamo.config.patch(recompile_limit=RECOMPILE_LIMIT,
                                      fail_on_recompile_limit_hit=True)
