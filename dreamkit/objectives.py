"""Objectives: what gradient ascent maximizes, as composable functions of captured activations.

An objective maps the activations of the layers it `needs` to one value per image, shape (B,).
They compose with arithmetic (`a + 0.5 * b`, `a - b`, `-a`), each weight scaling only its own
term. Per-image values keep batched renders independent: image i never affects image j.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from dreamkit.errors import DreamkitError
from dreamkit.layers import LOGITS, check_channel

Activations = Mapping[str, torch.Tensor]


class Objective:
    """A named function of activations -> (B,) values, with the layers it needs.

    `batch` is the number of images a per-image objective (one channel, class or vector per
    image) is defined for, None when it fits any batch. `setup` holds callables run once with
    the network before optimizing (`prepare(net)`), e.g. to compute a guide image's features.
    Sums are kept flat (a list of weighted terms), so adding hundreds of objectives nests
    nothing.
    """

    def __init__(
        self,
        fn: Callable[[Activations], torch.Tensor],
        needs: Sequence[str],
        name: str,
        *,
        batch: int | None = None,
        setup: Sequence[Callable[[nn.Module], None]] = (),
        labels: Sequence[str] | None = None,
    ):
        self.fn = fn
        self.needs = tuple(dict.fromkeys(needs))
        self.name = name
        self.batch = batch
        self.setup = tuple(setup)
        self.labels = tuple(labels) if labels is not None else None  # one per image, if batch
        self.terms: tuple[tuple[float, Objective], ...] = ((1.0, self),)
        self.constant = 0.0

    def __call__(self, acts: Activations) -> torch.Tensor:
        return self.fn(acts)

    def __repr__(self) -> str:
        return f"Objective({self.name})"

    def image_labels(self, count: int) -> list[str]:
        """What image i of a batch of `count` maximizes (for captions)."""
        if self.labels is not None and len(self.labels) == count:
            return list(self.labels)
        return [self.name] * count

    def prepare(self, net: nn.Module) -> Objective:
        """Run the setup steps (once per render or dream) with the network; returns self."""
        for step in self.setup:
            step(net)
        return self

    @staticmethod
    def sum(terms: Sequence[Objective | float], weights: Sequence[float] | None = None
            ) -> Objective:
        """The weighted sum of `terms` (numbers are constants), as one flat objective."""
        weights = [1.0] * len(terms) if weights is None else list(weights)
        if len(weights) != len(terms):
            raise DreamkitError(f"{len(weights)} weights for {len(terms)} objectives")
        flat: list[tuple[float, Objective]] = []
        constant = 0.0
        for term, weight in zip(terms, weights, strict=True):
            if isinstance(term, (int, float)):
                constant += weight * term
                continue
            term = as_objective(term)
            constant += weight * term.constant
            flat += [(weight * w, leaf) for w, leaf in term.terms]
        if not flat:
            raise DreamkitError("a sum of objectives needs at least one objective")
        if not all(math.isfinite(w) for w, _ in flat) or not math.isfinite(constant):
            raise DreamkitError("objective weights and constants must be finite numbers (an "
                                "inf or nan one makes every step's value nan)")
        batches = {o.batch for _, o in flat} - {None}
        if len(batches) > 1:
            raise DreamkitError(f"objectives for {' and '.join(map(str, sorted(batches)))} "
                                "images cannot be added")

        def fn(acts: Activations) -> torch.Tensor:
            total = None
            for weight, leaf in flat:
                value = leaf(acts) if weight == 1 else weight * leaf(acts)
                total = value if total is None else total + value
            return total if constant == 0 else total + constant  # type: ignore[return-value]

        def named(weight: float, text: str) -> str:
            return text if weight == 1 else f"{weight:g} * ({text})"

        tail = f" + {constant:g}" if constant else ""
        name = " + ".join(named(w, o.name) for w, o in flat) + tail
        batch = batches.pop() if batches else None
        labels = None if batch is None else [
            " + ".join(named(w, o.image_labels(batch)[i]) for w, o in flat) + tail
            for i in range(batch)]
        made = Objective(fn, [n for _, o in flat for n in o.needs], name, batch=batch,
                         setup=[s for _, o in flat for s in o.setup], labels=labels)
        made.terms, made.constant = tuple(flat), constant
        return made

    def __add__(self, other: Objective | float) -> Objective:
        return Objective.sum([self, other])

    def __radd__(self, other: float) -> Objective:  # lets sum() start from 0
        return self if other == 0 else Objective.sum([other, self])

    def __neg__(self) -> Objective:
        return Objective.sum([self], [-1.0])

    def __sub__(self, other: Objective | float) -> Objective:
        return Objective.sum([self, other], [1.0, -1.0])

    def __rsub__(self, other: float) -> Objective:
        return Objective.sum([other, self], [1.0, -1.0])

    def __mul__(self, k: float) -> Objective:
        if isinstance(k, bool) or not isinstance(k, (int, float)):
            return NotImplemented
        return Objective.sum([self], [float(k)])

    __rmul__ = __mul__

    def __truediv__(self, k: float) -> Objective:
        return self * (1.0 / k)


@functools.lru_cache(maxsize=64)
def _index_tensor(values: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """`values` on `device`, made once (a host-to-GPU copy every step would wait for the GPU)."""
    return torch.as_tensor(values, device=device)


def _per_channel(channels: int | Sequence[int], acts: torch.Tensor) -> torch.Tensor:
    """Index tensor (B,) of the channel each image targets (one int: the same for all)."""
    if isinstance(channels, int):
        return torch.full((acts.shape[0],), channels, device=acts.device)
    if len(channels) != acts.shape[0]:
        raise DreamkitError(f"{len(channels)} channels given for a batch of {acts.shape[0]}")
    if torch.compiler.is_compiling():  # a constant of the compiled graph
        return torch.as_tensor(list(channels), device=acts.device)
    return _index_tensor(tuple(channels), acts.device)


def _maps(acts: torch.Tensor) -> torch.Tensor:
    """Activations as (B, C, H, W) maps: a layer without positions (fc, logits) is 1x1."""
    if acts.dim() < 2 or acts.dim() > 4:
        raise DreamkitError(f"activations of shape {tuple(acts.shape)} are not (B, C[, H, W])")
    return acts.reshape(*acts.shape[:2], *(1,) * (4 - acts.dim()), *acts.shape[2:])


def _check_channels(layer: str, channels: int | Sequence[int], acts: torch.Tensor) -> None:
    for value in [channels] if isinstance(channels, int) else channels:
        check_channel(layer, acts.shape[1], value)


def _indices(what: str, values: object) -> int | list[int]:
    """An index (int) or a non-empty per-image list of them, checked at construction."""
    def index(value: object) -> int:
        try:
            if not isinstance(value, bool):
                return operator.index(value)  # int, numpy and 0-d integer tensors
        except TypeError:
            pass
        raise DreamkitError(f"{what} must be an integer or a list of integers, not "
                            f"{value!r}"[:200])

    if isinstance(values, torch.Tensor) and values.dim() == 1:
        values = values.tolist()
    if isinstance(values, (list, tuple, range)) and len(values):
        return [index(v) for v in values]
    return index(values)


def _list_length(values: object) -> int | None:
    """The batch a per-image list defines; None for one value shared by all images."""
    return None if isinstance(values, int) else len(values)  # type: ignore[arg-type]


def _each(values: object, label: Callable[[int], str]) -> list[str] | None:
    """Per-image labels for a per-image list of indices (None for one shared value)."""
    return None if isinstance(values, int) else [label(v) for v in values]  # type: ignore


def layer_norm(layer: str) -> Objective:
    """DeepDream's objective: the root-mean-square activation of the whole layer."""
    return Objective(
        lambda a: a[layer].float().pow(2).flatten(1).mean(1).sqrt(), [layer], f"{layer} norm"
    )


def channel(layer: str, channels: int | Sequence[int]) -> Objective:
    """Mean activation of one channel; a list gives image i its own channel `channels[i]`."""
    channels = _indices("channel", channels)

    def fn(a: Activations) -> torch.Tensor:
        acts = _maps(a[layer])
        _check_channels(layer, channels, acts)
        index = _per_channel(channels, acts)
        picked = acts[torch.arange(acts.shape[0], device=acts.device), index]
        return picked.float().flatten(1).mean(1)

    return Objective(fn, [layer], f"{layer}:{channels}", batch=_list_length(channels),
                     labels=_each(channels, lambda c: f"{layer}:{c}"))


def class_logit(classes: int | str | Sequence[int | str]) -> Objective:
    """The logit of an ImageNet class, by index or name; a list gives one class per image."""
    from dreamkit.imagenet import class_index, class_names

    if isinstance(classes, (int, str)):
        index: int | list[int] = class_index(classes)
    else:
        index = [class_index(c) for c in classes]

    def fn(a: Activations) -> torch.Tensor:
        logits = a[LOGITS]
        rows = torch.arange(logits.shape[0], device=logits.device)
        return logits[rows, _per_channel(index, logits)].float()

    return Objective(fn, [LOGITS], f"class {classes}", batch=_list_length(index),
                     labels=_each(index, lambda c: f"class {c} {class_names()[c]}"))


def neuron(
    layer: str, channels: int | Sequence[int], x: int | None = None, y: int | None = None
) -> Objective:
    """One channel's activation at one position, (x, y) in the layer's grid (default: centre)."""
    channels = _indices("channel", channels)
    x, y = (None if v is None else _indices(name, v) for v, name in ((x, "x"), (y, "y")))
    if isinstance(x, list) or isinstance(y, list):
        raise DreamkitError("a neuron's x and y are single integers")

    def fn(a: Activations) -> torch.Tensor:
        acts = _maps(a[layer])
        _check_channels(layer, channels, acts)
        h, w = acts.shape[-2:]
        col, row = w // 2 if x is None else x, h // 2 if y is None else y
        if not (0 <= col < w and 0 <= row < h):
            raise DreamkitError(f"neuron position ({col}, {row}) is outside {layer}'s {w}x{h} grid")
        rows = torch.arange(acts.shape[0], device=acts.device)
        return acts[rows, _per_channel(channels, acts), row, col].float()

    where = "centre" if x is None and y is None else f"x={x},y={y}"
    return Objective(fn, [layer], f"{layer}:{channels} @{where}", batch=_list_length(channels),
                     labels=_each(channels, lambda c: f"{layer}:{c} @{where}"))


COS_FLOOR = 0.1  # cosines below this count as this in `direction` (as lucid's floor)
NEURON_COS_POWER = 4.0  # `direction`'s default cosine power at one position (lucid's atlases)


def direction(layer: str, vector: torch.Tensor, cossim_power: float | None = None,
              x: int | None = None, y: int | None = None) -> Objective:
    """Alignment of the activations with a direction, (C,) for all images or (B, C) per image.

    Per image: the mean over positions of (a . v) * max(cos(a, v), COS_FLOOR) ** cossim_power,
    with v the unit vector; power 0 is the plain mean projection, higher powers reward the
    direction itself over merely large activations. With a position `x`, `y` in the layer's
    grid (one of them missing: the centre's) only that position counts: the direction of one
    neuron, as activation atlases render their cells. The power defaults to 0 over all
    positions and to `NEURON_COS_POWER` at one position.
    """
    vector = torch.as_tensor(vector, dtype=torch.float32)
    if vector.dim() not in (1, 2):
        raise DreamkitError(f"a direction is a (C,) or (B, C) vector, not {tuple(vector.shape)}")
    unit = vector / vector.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    batch = unit.shape[0] if unit.dim() == 2 else None
    at = None if x is None and y is None else (x, y)
    power = (NEURON_COS_POWER if at else 0.0) if cossim_power is None else cossim_power
    moved: dict[torch.device, torch.Tensor] = {}

    def fn(a: Activations) -> torch.Tensor:
        acts = _maps(a[layer].float())
        if unit.shape[-1] != acts.shape[1]:
            raise DreamkitError(
                f"direction has {unit.shape[-1]} values but {layer} has {acts.shape[1]} channels"
            )
        if acts.device not in moved:  # once per device, not every step
            moved[acts.device] = unit.to(acts.device)
        if at is not None:
            h, w = acts.shape[-2:]
            col, row = w // 2 if x is None else x, h // 2 if y is None else y
            if not (0 <= col < w and 0 <= row < h):
                raise DreamkitError(f"position ({col}, {row}) is outside {layer}'s {w}x{h} grid")
            acts = acts[..., row:row + 1, col:col + 1]
        v = moved[acts.device].expand(acts.shape[0], -1)
        dot = torch.einsum("bchw,bc->bhw", acts, v)
        if power:
            cos = dot / acts.norm(dim=1).clamp_min(1e-6)
            dot = dot * cos.clamp_min(COS_FLOOR).pow(power)
        return dot.flatten(1).mean(1)

    name = f"{layer} direction (cos^{power})" + ("" if at is None else f" @x={x},y={y}")
    return Objective(fn, [layer], name, batch=batch,
                     labels=None if batch is None else [f"{name} {i}" for i in range(batch)])


def _gram(acts: torch.Tensor) -> torch.Tensor:
    flat = _maps(acts.float()).flatten(2)
    return flat @ flat.transpose(1, 2)


def diversity(layer: str, groups: Sequence[int] | None = None) -> Objective:
    """Minus the mean cosine similarity of each image's Gram matrix to the other images'.

    Unlike every other objective it couples the images of a batch (that is its purpose);
    with `groups` (one label per image), only images of the same group are compared, so one
    batch can hold the diverse variants of several channels.
    """
    labels = None if groups is None else torch.as_tensor(list(groups))

    def fn(a: Activations) -> torch.Tensor:
        grams = _gram(a[layer]).flatten(1)
        grams = grams / grams.norm(dim=1, keepdim=True).clamp_min(1e-10)
        n = grams.shape[0]
        same = torch.ones(n, n, dtype=torch.bool, device=grams.device) if labels is None \
            else (labels[:, None] == labels[None, :]).to(grams.device)
        same.fill_diagonal_(False)
        others = same.sum(1)
        sims = (grams @ grams.T) * same
        return torch.where(others > 0, -sims.sum(1) / others.clamp_min(1), 0.0)

    batch = None if labels is None else len(labels)
    return Objective(fn, [layer], f"{layer} diversity", batch=batch)


def guide(layer: str, image: torch.Tensor) -> Objective:
    """Guided dream: pull each position's features toward the best-matching guide feature.

    As in the original DeepDream notebook, every position of the dream's activations is scored
    by its largest dot product with any position of the guide's activations (mean over
    positions), so the dream and the guide may have any sizes. The guide's activations are
    computed once, without gradients, by `prepare(net)` (render and dream call it).
    """
    from dreamkit.capture import capture_resolved

    guide_image = image[None] if image.dim() == 3 else image
    features: dict[str, torch.Tensor] = {}

    def setup(net: nn.Module) -> None:
        device = next(net.parameters()).device
        with torch.no_grad():
            acts = capture_resolved(net, guide_image.to(device, torch.float32), [layer])[layer]
        features["guide"] = _maps(acts)[0].float().flatten(1)  # (C, N)

    def fn(a: Activations) -> torch.Tensor:
        if "guide" not in features:
            raise DreamkitError("guide objective used before prepare(net)")
        acts = _maps(a[layer].float()).flatten(2)  # (B, C, M)
        scores = torch.einsum("bcm,cn->bmn", acts, features["guide"].to(acts.device))
        return scores.amax(2).mean(1)

    return Objective(fn, [layer], f"{layer} guided", setup=[setup])


def per_image(objectives: Sequence[Objective]) -> Objective:
    """Image i of the batch maximizes `objectives[i]` (each evaluated on its own image)."""
    objectives = [as_objective(o) for o in objectives]

    def fn(a: Activations) -> torch.Tensor:
        return torch.cat([o({k: v[i:i + 1] for k, v in a.items()}).float().reshape(1)
                          for i, o in enumerate(objectives)])

    return Objective(fn, [n for o in objectives for n in o.needs],
                     f"per image: {', '.join(o.name for o in objectives)}",
                     batch=len(objectives), setup=[s for o in objectives for s in o.setup],
                     labels=[o.name for o in objectives])


def as_objective(spec: Objective | str) -> Objective:
    """Objectives pass through; `"inception4c:97"` is a channel; `"inception4c"` a layer norm."""
    if isinstance(spec, Objective):
        return spec
    if not isinstance(spec, str):
        raise DreamkitError(f"an objective must be an Objective or a layer name (LAYER or "
                            f"LAYER:CHANNEL), not {type(spec).__name__}")
    layer, sep, index = spec.partition(":")
    if not sep:
        return layer_norm(layer)
    try:
        return channel(layer, int(index))
    except ValueError:
        raise DreamkitError(f"bad objective {spec!r}: expected LAYER or LAYER:CHANNEL") from None
