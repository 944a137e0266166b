"""The gradient of an objective with respect to images: at once, a few images at a time for big
batches, or tile by tile for big images.

Tiled, the gradient is the whole image's up to the tiles' borders: a first pass runs the network
on each tile plus a margin (`halo`) of context and keeps the activations of the tile's core, the
objective sees all the cores stitched into the whole image's activations (so objectives over the
whole layer, such as its norm, mean the same as untiled), and a second pass backpropagates each
core's share of the objective's gradient through its tile, margins included. Only one tile's
activations are alive at a time. Tiles sit on a grid aligned to the network's coarsest stride;
DeepDream's random roll moves the image under that grid at every step, so seams never stay put.
Chunked, the same two passes run a few images at a time, and the gradient is exact.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

import torch

from dreamkit.capture import capture_resolved as capture
from dreamkit.compiled import WithFallback, compile_forward
from dreamkit.errors import DreamkitError
from dreamkit.models.base import Model
from dreamkit.objectives import Objective
from dreamkit.precision import autocast, loss_scale

Gradient = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]  # image -> (values, grad)

ALIGN = 32  # tile corners and margins are multiples of the coarsest stride dreamed on
BYTES_PER_PIXEL = 1000  # fp32 forward + backward to inception4c, measured peak; a rough guide
MEMORY_SHARE = 0.5  # an untiled step may use at most this share of the free memory
TILE = {"cpu": 512, "cuda": 1024}
HALO = 96
CPU_PASS_PIXELS = 2**18  # pixels per network pass on the CPU: 16 images of 128 px


def cpu_images_per_pass(device: torch.device, shape: torch.Size | tuple[int, ...]) -> int | None:
    """How many images of `shape` (B, 3, H, W) to run through the network at a time: on the
    CPU about `CPU_PASS_PIXELS` pixels' worth, which keeps a layer's tensors in cache (64
    images of 128 px forward + backward: 1.4x faster per image in passes of 16; at 224 px,
    1.6x in passes of 4 to 8); GPUs take the whole batch (None)."""
    if device.type != "cpu":
        return None
    return max(1, CPU_PASS_PIXELS // (shape[-2] * shape[-1]))


def _backward_scale(dtype: torch.dtype | None) -> float:
    """Backward passes carry a loss to minimize, -values (render's redirected ReLU relies on
    that sign), scaled up for fp16; the gradient is divided by this again."""
    return -loss_scale(dtype)


def full_gradient(
    net: Model, objective: Objective, dtype: torch.dtype | None = None, *,
    per_pass: int | None = None, compile: str | None = None,
) -> Gradient:
    """image (B, 3, H, W) -> (objective values (B,), d sum(values) / d image), nothing computed
    twice.

    `per_pass` images go through the network at a time (default: all); every pass keeps its
    graph and the objective sees the whole batch, so the gradient is the same, but on the CPU
    a pass over a few images keeps each layer's tensors in cache (see `cpu_images_per_pass`).
    `compile` is a torch.compile mode for the forward (None: eager; see `dreamkit.compiled`).
    """

    def values_of(image: torch.Tensor) -> torch.Tensor:
        with autocast(image.device, dtype):
            found = [capture(net, part, objective.needs)
                     for part in image.split(per_pass or len(image))]
        acts = found[0] if len(found) == 1 else {
            name: torch.cat([f[name] for f in found]) for name in objective.needs}
        return objective(acts).float()

    def step(image: torch.Tensor, forward: Callable) -> tuple[torch.Tensor, torch.Tensor]:
        image = image.detach().contiguous(memory_format=torch.channels_last).requires_grad_(True)
        values = forward(image)
        scale = _backward_scale(dtype)
        (grad,) = torch.autograd.grad(values.sum() * scale, image)
        return values.detach(), grad / scale

    if compile is None:
        return lambda image: step(image, values_of)
    fast = compile_forward(values_of, compile)

    def compiled_step(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        values, grad = step(image, fast)
        return values.clone(), grad  # CUDA graphs reuse their outputs at the next replay

    return WithFallback(compiled_step, lambda image: step(image, values_of))


def chunked_gradient(
    net: Model, objective: Objective, dtype: torch.dtype | None = None, *, chunk: int
) -> Gradient:
    """Like `full_gradient`, `chunk` images at a time (the objective sees the whole batch)."""

    def gradient(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        parts = images.detach().contiguous(memory_format=torch.channels_last).split(chunk)
        with torch.no_grad(), autocast(images.device, dtype):
            found = [capture(net, part, objective.needs) for part in parts]
        stitched = {name: torch.cat([f[name].float() for f in found]).requires_grad_(True)
                    for name in objective.needs}
        values = objective(stitched).float()
        scale = _backward_scale(dtype)
        act_grads = torch.autograd.grad(
            values.sum() * scale, list(stitched.values()), allow_unused=True, materialize_grads=True
        )
        grads = []
        for i, part in enumerate(parts):
            part = part.clone().requires_grad_(True)
            with autocast(images.device, dtype):
                outputs = capture(net, part, objective.needs)
            pieces = [g[i * chunk : i * chunk + len(part)] for g in act_grads]
            torch.autograd.backward(
                [outputs[name] for name in stitched],
                [p.to(outputs[name].dtype) for name, p in zip(stitched, pieces, strict=True)],
            )
            grads.append(part.grad)
        grad = torch.cat(grads)
        return values.detach(), grad / scale

    return gradient


def _spans(length: int, tile: int, halo: int) -> list[tuple[int, int, int, int]]:
    """(region start, core start, core end, region end) of the tiles along one side."""
    return [
        (max(0, start - halo), start, min(start + tile, length), min(length, start + tile + halo))
        for start in range(0, length, tile)
    ]


def _strides(net: Model, objective: Objective, device: torch.device) -> dict[str, int]:
    """Each needed layer's stride in pixels, from a probe whose side is a multiple of all."""
    probe = torch.zeros(1, 3, 4 * ALIGN, 4 * ALIGN, device=device,
                        dtype=next(net.parameters()).dtype)
    with torch.no_grad():
        acts = capture(net, probe, objective.needs)
    for name, act in acts.items():
        if act.dim() != 4:
            raise DreamkitError(f"cannot tile the image for {name!r}: it is not a spatial layer; "
                                "dream it untiled (tile 0)")
    return {name: probe.shape[-1] // act.shape[-1] for name, act in acts.items()}


def _core(region: tuple[int, int, int, int], side: int, stride: int, length: int) -> slice:
    """The part of a tile's activation (`length` long along one side) in the tile's core."""
    r0, c0, c1, _ = region
    return slice((c0 - r0) // stride, length if c1 == side else (c1 - r0) // stride)


def tiled_gradient(
    net: Model,
    objective: Objective,
    dtype: torch.dtype | None = None,
    *,
    tile: int,
    halo: int = HALO,
) -> Gradient:
    """Like `full_gradient`, computed on `tile`-pixel tiles with `halo` pixels of context."""
    if tile < ALIGN or tile % ALIGN or halo % ALIGN or halo < 0:
        raise DreamkitError(f"tile size and margin must be multiples of {ALIGN} pixels")
    strides: dict[str, int] = {}

    def cores(tile_image: torch.Tensor, rows: tuple, cols: tuple, size: tuple) -> dict:
        """The activations of the core of a tile (`tile_image`: the tile with its margins)."""
        return {
            name: act[..., _core(rows, size[0], strides[name], act.shape[2]),
                      _core(cols, size[1], strides[name], act.shape[3])]
            for name, act in capture(net, tile_image, objective.needs).items()
        }

    def gradient(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        image = image.detach()
        if not strides:
            strides.update(_strides(net, objective, image.device))
        size = tuple(image.shape[-2:])
        grid = [[(rows, cols) for cols in _spans(size[1], tile, halo)]
                for rows in _spans(size[0], tile, halo)]

        def crop(rows: tuple, cols: tuple) -> torch.Tensor:
            return image[..., rows[0] : rows[3], cols[0] : cols[3]]

        with torch.no_grad(), autocast(image.device, dtype):
            found = [[cores(crop(*t).contiguous(memory_format=torch.channels_last), *t, size)
                      for t in line] for line in grid]
        stitched = {
            name: torch.cat([torch.cat([f[name].float() for f in line], 3) for line in found], 2)
            .requires_grad_(True)
            for name in objective.needs
        }
        values = objective(stitched).float()
        scale = _backward_scale(dtype)
        act_grads = torch.autograd.grad(
            values.sum() * scale, list(stitched.values()), allow_unused=True, materialize_grads=True
        )
        act_grads = dict(zip(stitched, act_grads, strict=True))
        grad = torch.zeros_like(image)
        top = dict.fromkeys(stitched, 0)
        for line, line_found in zip(grid, found, strict=True):
            left = dict.fromkeys(stitched, 0)
            for rows, cols in line:
                part = crop(rows, cols).clone(memory_format=torch.channels_last)
                part.requires_grad_(True)
                with autocast(image.device, dtype):
                    outputs = cores(part, rows, cols, size)
                pieces = []
                for name, out in outputs.items():
                    h, w = out.shape[-2:]
                    piece = act_grads[name][..., top[name] : top[name] + h,
                                            left[name] : left[name] + w]
                    pieces.append(piece.to(out.dtype))
                    left[name] += w
                torch.autograd.backward(list(outputs.values()), pieces)
                grad[..., rows[0] : rows[3], cols[0] : cols[3]] += part.grad
            for name in stitched:
                top[name] += line_found[0][name].shape[2]
        return values.detach(), grad / scale

    return gradient


def _proc_kib(path: str, key: str) -> int | None:
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _limits() -> list[int]:
    """Bytes this process may still allocate under its address-space and cgroup limits."""
    room = []
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        used = _proc_kib("/proc/self/status", "VmSize:")
        if soft != resource.RLIM_INFINITY and used is not None:
            room.append(max(0, soft - used))
    except (ImportError, OSError, ValueError):
        pass
    try:
        with open("/sys/fs/cgroup/memory.max") as fh:
            top = fh.read().strip()
        with open("/sys/fs/cgroup/memory.current") as fh:
            current = int(fh.read().strip())
        if top != "max":
            room.append(max(0, int(top) - current))
    except (OSError, ValueError):
        pass
    return room


def free_memory(device: torch.device) -> int:
    """Bytes free for tensors: the GPU's free memory, or the available RAM within this
    process's address-space and cgroup limits."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    available = _proc_kib("/proc/meminfo", "MemAvailable:")
    if available is None:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return min([available, *_limits()])


def choose_plan(net: Model, shape: torch.Size | tuple[int, ...], tile: int | None = None) -> str:
    """How to compute the gradient for images of `shape` (B, 3, H, W): `full`, `chunk:N` (N
    images at a time) or `tile:N` (N-pixel tiles). `tile` N tiles, 0 never does; None decides
    from the free memory: a few images at a time when one image fits, else tiles."""
    device = next(net.parameters()).device
    if tile is None:
        per_image = shape[-2] * shape[-1] * BYTES_PER_PIXEL
        budget = MEMORY_SHARE * free_memory(device)
        if shape[0] * per_image <= budget:
            return "full"
        if per_image <= budget:
            return f"chunk:{max(1, int(budget // per_image))}"
        tile = TILE.get(device.type, TILE["cpu"])
    return f"tile:{tile}" if tile and max(shape[-2:]) > tile else "full"


PLAN = re.compile(r"full|chunk:[1-9]\d{0,3}|tile:[1-9]\d{1,3}")


def image_gradient(
    net: Model,
    objective: Objective,
    dtype: torch.dtype | None,
    shape: torch.Size | tuple[int, ...],
    tile: int | None = None,
    plan: str | None = None,
    *,
    compile: str | None = None,
) -> tuple[Gradient, str]:
    """The gradient for images of `shape` (B, 3, H, W) and the plan it follows: `plan` when
    given (as a record keeps it), else `choose_plan`. `compile` (a torch.compile mode) applies
    to the `full` plan; chunks and tiles run eager."""
    plan = plan or choose_plan(net, shape, tile)
    if not PLAN.fullmatch(plan) or (plan.startswith("tile:") and int(plan[5:]) % ALIGN):
        raise DreamkitError(f"unknown gradient plan {plan!r} (full, chunk:N or tile:N, N a "
                            f"multiple of {ALIGN})")
    kind, _, count = plan.partition(":")
    if kind == "tile":
        return tiled_gradient(net, objective, dtype, tile=int(count)), plan
    if kind == "chunk":
        return chunked_gradient(net, objective, dtype, chunk=int(count)), plan
    per_pass = cpu_images_per_pass(next(net.parameters()).device, shape)
    return full_gradient(net, objective, dtype, per_pass=per_pass, compile=compile), plan
