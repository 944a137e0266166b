"""The layer table of any `nn.Module`, discovered with a probe pass at two image sizes.

Every submodule's first output is recorded (shape at both sizes, how often it ran, in what
order). The dream-worthy layers are the blocks along the network's main line: the children of
the root and of its `Sequential` / `ModuleList` containers that are blocks themselves (not a
bare convolution, norm or activation), descending into a block when a container inside it
carries its output (a transformer's encoder, a stage's blocks), when its own output is not a
map (a whole classifier held as `self.backbone`) or when it is the only block there is. A
network made of bare layers only (a VGG) lists its activations instead, or else its
convolutions; one built from functional calls only lists its traced activation (or
convolution) calls by node name. Modules that ran more than once are left out of the list
(ambiguous), as is anything whose output is not an image-like map (B, C, H, W), a channels-last
map (B, H, W, C: the dimensions that grow with the image tell) or a token sequence (B, N, C).
Strides come from how much a map grows between the two sizes. Tiers follow the stride: the
largest stride is high, the next one mid, the rest low (by thirds of the list when there are
fewer than three strides); each tier's default is its last layer (the middle one for high).
Every other module path still resolves by name (`LayerTable.extra`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import nn

from dreamkit.layers import LOGITS, TIERS, LayerInfo, LayerTable

CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Hardswish, nn.LeakyReLU, nn.ELU,
               nn.Mish, nn.Tanh, nn.Sigmoid, nn.PReLU)
ACTIVATION_CALLS = {"relu", "relu6", "gelu", "silu", "hardswish", "leaky_relu", "elu", "mish",
                    "tanh", "sigmoid", "hardtanh", "switchable_relu"}
CONV_CALLS = {"conv2d", "conv_transpose2d"}
MAX_PREFIX_TOKENS = 8  # class, distillation and register tokens before the patch grid


@dataclass(frozen=True)
class Seen:
    """What the probe saw of one module: first output shape, calls, completion order, and the
    shape at the larger probe size (None when the module was not probed there)."""

    shape: tuple[int, ...]
    calls: int
    order: int
    bigger: tuple[int, ...] | None = None
    declared: str | None = None  # a layout the user declared

    def layout(self) -> str:
        """`BCHW`, `BHWC` or `BNC` (see `LayerInfo.layout`)."""
        if len(self.shape) == 3:
            return "BNC"
        if self.declared:
            return self.declared
        if self.bigger is not None and len(self.bigger) == 4:
            grew = [i for i in (1, 2, 3) if self.bigger[i] != self.shape[i]]
            if grew == [1, 2]:
                return "BHWC"
            if grew == [2, 3]:
                return "BCHW"
        return "BHWC" if self.shape[1] == self.shape[2] != self.shape[3] else "BCHW"

    def channels_and_side(self, shape: tuple[int, ...] | None = None) -> tuple[int, int]:
        """(channels, spatial side) of a map or token output."""
        shape = shape or self.shape
        if len(shape) == 3:
            return shape[2], grid_of(shape[1])[1]  # type: ignore[index]
        layout = self.layout()
        return (shape[3], shape[1]) if layout == "BHWC" else (shape[1], shape[2])


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
    """The blocks among `module`'s children, looking through chaining containers and into
    blocks whose output is not a map (a backbone with its classifier)."""
    found: list[str] = []
    for name, child in module.named_children():
        child_path = _join(path, name)
        if isinstance(child, CONTAINERS) and _chain(child, child_path, seen):
            found += _blocks(child, child_path, seen)
        elif not _is_leaf(child):
            inner = _inner(child, child_path, seen)
            if not inner and child_path in seen and not _usable(seen[child_path]):
                inner = _blocks(child, child_path, seen)
            found += inner or [child_path]
    return found


def _expand_lone(module: nn.Module, listed: list[str], seen: dict[str, Seen],
                 listable: Callable[[str], bool]) -> list[str]:
    """A list of one block (a backbone returning its feature map) becomes that block's own
    blocks, followed by the block itself."""
    while len(listed) == 1:
        inner = [p for p in _blocks(module.get_submodule(listed[0]), listed[0], seen)
                 if listable(p)]
        if len(inner) < 2:
            break
        listed = inner + listed
    return listed


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
    return _map_like(seen.shape)


def _map_like(shape: tuple[int, ...]) -> bool:
    if len(shape) == 4:
        return all(s > 0 for s in shape)
    return len(shape) == 3 and grid_of(shape[1]) is not None


def info(path: str, seen: Seen, tier: str, side: int, grown: int) -> LayerInfo:
    """The table entry of a module output: channels, layout and stride (pixels per step of
    the map, from its growth over `grown` more input pixels when it was probed twice)."""
    channels, extent = seen.channels_and_side()
    stride = max(1, round(side / extent))
    if seen.bigger is not None and len(seen.bigger) == len(seen.shape) \
            and _map_like(seen.bigger):
        more = seen.channels_and_side(seen.bigger)[1] - extent
        if more > 0:
            stride = max(1, round(grown / more))
    return LayerInfo(path, tier, channels, stride, seen.layout())


def _tiers(strides: list[int]) -> list[str]:
    """High for the largest stride, mid for the next, low below (a layer after a deeper one,
    such as a head at a finer stride, is at least that deep); by thirds of the list when there
    are fewer than three strides."""
    reached = [max(strides[: i + 1]) for i in range(len(strides))]
    distinct = sorted(set(reached))
    if len(distinct) >= 3:
        return ["high" if s == distinct[-1] else "mid" if s == distinct[-2] else "low"
                for s in reached]
    count = len(strides)
    return [TIERS[min(2, 3 * i // max(count, 1))] for i in range(count)]


def layer_table(name: str, module: nn.Module, seen: dict[str, Seen], output: tuple[int, ...],
                side: int, grown: int = 0, calls: dict[str, tuple[Seen, str]] | None = None,
                logits: bool = True) -> LayerTable:
    """The table of `module` from what the probes at `side` and `side + grown` pixels saw
    (see the docstring); `calls` are the traced functional calls ({node name: (what it saw,
    the function called)}), listed when no module qualifies. `output` is the logits' shape;
    `logits=False` for a model without them."""

    def listable(path: str) -> bool:
        return path in seen and seen[path].calls == 1 and _usable(seen[path])

    listed = [p for p in _blocks(module, "", seen) if listable(p)]
    listed = _expand_lone(module, listed, seen, listable)
    if not listed:
        bare = [(p, m) for p, m in _bare(module) if listable(p)]
        listed = [p for p, m in bare if isinstance(m, ACTIVATIONS)] \
            or [p for p, m in bare if any(True for _ in m.parameters())]
    if not listed and calls:
        seen = {**{p: s for p, (s, _) in calls.items()}, **seen}
        usable = [p for p, (s, _) in calls.items() if _usable(s)]
        listed = [p for p in usable if calls[p][1] in ACTIVATION_CALLS] \
            or [p for p in usable if calls[p][1] in CONV_CALLS]
    listed = sorted(dict.fromkeys(listed), key=lambda p: seen[p].order)
    if not listed:
        raise ValueError(f"{name}: no module outputs an image-like map (B, C, H, W) or a token "
                         "sequence (B, N, C)")
    infos = [info(p, seen[p], "low", side, grown) for p in listed]
    tiers = _tiers([i.stride or 0 for i in infos])
    infos = [replace(i, tier=t) for i, t in zip(infos, tiers, strict=True)]
    by_tier = {t: [i.name for i in infos if i.tier == t] for t in TIERS}
    for tier in TIERS:  # very short lists: borrow a neighbour's layers
        by_tier[tier] = by_tier[tier] or by_tier["mid"] or by_tier["low"] or by_tier["high"]
    defaults = {"low": by_tier["low"][-1], "mid": by_tier["mid"][-1],
                "high": by_tier["high"][len(by_tier["high"]) // 2]}
    order = sorted(seen, key=lambda p: seen[p].order)
    extra = [info(p, seen[p], TIERS[min(2, 3 * order.index(p) // len(order))], side, grown)
             for p in order if p not in listed and _usable(seen[p])]
    if not logits or len(output) not in (2, 4):
        return LayerTable(name, infos, defaults, logits=None, extra=extra)
    if len(output) == 2:
        infos.append(LayerInfo(LOGITS, "high", output[1], None))
    else:  # a map of class scores (segmentation): one channel per class
        infos.append(LayerInfo(LOGITS, "high", output[1], max(1, round(side / output[2]))))
    return LayerTable(name, infos, defaults, logits=LOGITS, extra=extra)
