"""The layer table of any `nn.Module`, discovered with one probe pass.

Every submodule's first output is recorded (shape, how often it ran, in what order). The
dream-worthy layers are the blocks along the network's main line: the children of the root
and of its `Sequential` / `ModuleList` containers that are blocks themselves (not a bare
convolution, norm or activation), descending into a block when a container inside it carries
its output (a transformer's encoder, a stage's blocks). A network made of bare layers only (a
VGG) lists its activations instead, or else its convolutions. Modules that ran more than once
are left out of the list (ambiguous), as is anything whose output is not an image-like map
(B, C, H, W) or a token sequence (B, N, C). Tiers split the list in thirds by depth; each
tier's default is its last layer (the middle one for high). Every other module path still
resolves by name (`LayerTable.extra`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from dreamkit.layers import LOGITS, TIERS, LayerInfo, LayerTable

CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Hardswish, nn.LeakyReLU, nn.ELU,
               nn.Mish, nn.Tanh, nn.Sigmoid, nn.PReLU)
MAX_PREFIX_TOKENS = 8  # class, distillation and register tokens before the patch grid


@dataclass(frozen=True)
class Seen:
    """What the probe saw of one module: first output shape, calls, completion order."""

    shape: tuple[int, ...]
    calls: int
    order: int


def grid_of(tokens: int) -> tuple[int, int] | None:
    """(prefix tokens, grid side) of a (B, N, C) output whose last tokens form a square grid."""
    side = math.isqrt(tokens)
    prefix = tokens - side * side
    return (prefix, side) if side > 0 and prefix <= MAX_PREFIX_TOKENS else None


def probe(module: nn.Module, x: torch.Tensor) -> tuple[dict[str, Seen], object]:
    """Run `module(x)` once with a hook on every submodule: what each one output first, and
    the module's own output."""
    seen: dict[str, dict] = {}
    counter = [0]

    def hook(path: str) -> Callable:
        def record(mod: nn.Module, inputs: tuple, output: object) -> None:
            entry = seen.setdefault(path, {"calls": 0})
            entry["calls"] += 1
            if "order" not in entry:
                entry["order"] = counter[0]
                entry["shape"] = tuple(output.shape) if isinstance(output, torch.Tensor) else ()
                counter[0] += 1

        return record

    handles = [m.register_forward_hook(hook(path))
               for path, m in module.named_modules() if path]
    try:
        with torch.no_grad():
            output = module(x)
    finally:
        for handle in handles:
            handle.remove()
    return {path: Seen(e["shape"], e["calls"], e["order"]) for path, e in seen.items()}, output


def _is_leaf(module: nn.Module) -> bool:
    return next(module.children(), None) is None


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _last_child(container: nn.Module, path: str, seen: dict[str, Seen]) -> str | None:
    ran = [_join(path, name) for name, _ in container.named_children()
           if _join(path, name) in seen]
    return max(ran, key=lambda p: seen[p].order) if ran else None


def _chain(container: nn.Module, path: str, seen: dict[str, Seen]) -> bool:
    """Whether a container passes its children's outputs along (its last child's output is its
    own); a list that never runs as a module counts as one. A dense block does not."""
    last = _last_child(container, path, seen)
    return path not in seen or (last is not None and seen[last].shape == seen[path].shape)


def _blocks(module: nn.Module, path: str, seen: dict[str, Seen]) -> list[str]:
    """The blocks among `module`'s children, looking through chaining containers."""
    found: list[str] = []
    for name, child in module.named_children():
        child_path = _join(path, name)
        if isinstance(child, CONTAINERS) and _chain(child, child_path, seen):
            found += _blocks(child, child_path, seen)
        elif not _is_leaf(child):
            found += _inner(child, child_path, seen) or [child_path]
    return found


def _inner(block: nn.Module, path: str, seen: dict[str, Seen]) -> list[str]:
    """The blocks of a container inside `block` that carries `block`'s output (a chain whose
    last child is a block with the block's own output shape), or nothing."""
    for name, child in block.named_children():
        child_path = _join(path, name)
        if not isinstance(child, CONTAINERS) or not _chain(child, child_path, seen):
            continue
        last = _last_child(child, child_path, seen)
        inner = [p for p in _blocks(child, child_path, seen) if p in seen]
        if inner and last in inner and path in seen and seen[last].shape == seen[path].shape:
            return inner
    return []


def _bare(module: nn.Module, path: str = "") -> list[tuple[str, nn.Module]]:
    """The leaf modules reachable from `module` through containers only."""
    found = []
    for name, child in module.named_children():
        child_path = _join(path, name)
        if isinstance(child, CONTAINERS):
            found += _bare(child, child_path)
        elif _is_leaf(child):
            found.append((child_path, child))
    return found


def _usable(seen: Seen) -> bool:
    if len(seen.shape) == 4:
        return all(s > 0 for s in seen.shape)
    return len(seen.shape) == 3 and grid_of(seen.shape[1]) is not None


def info(path: str, seen: Seen, tier: str, side: int) -> LayerInfo:
    """The table entry of a module output: channels and stride, (B, N, C) tokens on their grid."""
    if len(seen.shape) == 3:
        _, grid = grid_of(seen.shape[1])  # type: ignore[misc]
        return LayerInfo(path, tier, seen.shape[2], max(1, round(side / grid)))
    return LayerInfo(path, tier, seen.shape[1], max(1, round(side / seen.shape[2])))


def _tiers(count: int) -> list[str]:
    return [TIERS[min(2, 3 * i // max(count, 1))] for i in range(count)]


def layer_table(name: str, module: nn.Module, seen: dict[str, Seen], output: tuple[int, ...],
                side: int) -> LayerTable:
    """The table of `module` from what the probe at `side` pixels saw (see the docstring)."""

    def listable(path: str) -> bool:
        return path in seen and seen[path].calls == 1 and _usable(seen[path])

    listed = [p for p in _blocks(module, "", seen) if listable(p)]
    if not listed:
        bare = [(p, m) for p, m in _bare(module) if listable(p)]
        listed = [p for p, m in bare if isinstance(m, ACTIVATIONS)] \
            or [p for p, m in bare if any(True for _ in m.parameters())]
    listed = sorted(dict.fromkeys(listed), key=lambda p: seen[p].order)
    if not listed:
        raise ValueError(f"{name}: no module outputs an image-like map (B, C, H, W) or a token "
                         "sequence (B, N, C)")
    tiers = _tiers(len(listed))
    infos = [info(p, seen[p], t, side) for p, t in zip(listed, tiers, strict=True)]
    by_tier = {t: [i.name for i in infos if i.tier == t] for t in TIERS}
    for tier in TIERS:  # very short lists: borrow a neighbour's layers
        by_tier[tier] = by_tier[tier] or by_tier["mid"] or by_tier["low"] or by_tier["high"]
    defaults = {"low": by_tier["low"][-1], "mid": by_tier["mid"][-1],
                "high": by_tier["high"][len(by_tier["high"]) // 2]}
    order = sorted(seen, key=lambda p: seen[p].order)
    extra = [info(p, seen[p], TIERS[min(2, 3 * order.index(p) // len(order))], side)
             for p in order if p not in listed and _usable(seen[p])]
    logits = None
    if len(output) == 2:
        infos.append(LayerInfo(LOGITS, "high", output[1], None))
        logits = LOGITS
    return LayerTable(name, infos, defaults, logits=logits, extra=extra)
