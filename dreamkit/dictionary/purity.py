"""Label purity: do a unit's top dataset examples share a label?

Each photo of the folder is seen whole, as the microscope's examples pass sees it (short side
224, centre crop), and each unit keeps the `TOP_PHOTOS` distinct photos on which its largest
activation over positions is highest: a feature's activation is its sparse code, a neuron's its
channel, a random unit direction's the projection of the centred vector (as many random
directions as features). A unit's purity is the largest share of its top photos that have one
coarse ImageNet group (`dreamkit.imagenet.GROUPS`: dog, bird, food, man-made object...), or one
class. Chance is the same share for random sets of as many distinct photos of the folder. Units
active on fewer than `TOP_PHOTOS` photos (dead features) are left out, and counted.

The photos are every photo of the folder, training ones included: purity asks what a feature
means, not how well the dictionary generalizes (the held-out measures do that).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from dreamkit.dictionary.sae import Codec
from dreamkit.errors import DreamkitError
from dreamkit.examples import TopK, stream
from dreamkit.imagenet import GROUPS, class_group, photo_class
from dreamkit.models.base import Model

TOP_PHOTOS = 16
CHANCE_DRAWS = 10_000
FAMILIES = ("features", "neurons", "random directions")
GROUP_NAMES = tuple(dict.fromkeys(name for _, _, name in GROUPS))


def labels(paths: Sequence[Path]) -> list[int] | None:
    """Every photo's ImageNet class from its file name, or None when one gives none."""
    found = [photo_class(p) for p in paths]
    return None if any(c is None for c in found) else found  # type: ignore[return-value]


def top_photos(net: Model, paths: Sequence[Path], layer: str, codec: Codec, atoms: torch.Tensor,
               mean: torch.Tensor, progress: Callable[[int], None] | None = None
               ) -> dict[str, TopK]:
    """{family: TopK}: each feature's, neuron's and random direction's (`atoms`, about `mean`)
    best photos of `paths`, in one streaming pass."""
    features, channels = codec.decoder.shape

    def units(act: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, K + C + R, H, W)
        act = act.float().cpu()
        rows = act.movedim(1, -1).reshape(-1, channels)
        every = torch.cat([codec.encode(rows), rows, (rows - mean) @ atoms.T], 1)
        return every.reshape(*act.shape[:1], *act.shape[2:], -1).movedim(-1, 1)

    sizes = (features, channels, len(atoms))
    found, _ = stream(net, paths, {layer: list(range(sum(sizes)))}, TOP_PHOTOS,
                      progress=progress, transforms={layer: units})
    top, start, parts = found[layer], 0, {}
    for family, size in zip(FAMILIES, sizes, strict=True):
        rows = slice(start, start + size)
        parts[family] = TopK(list(range(size)), top.k, top.values[rows], top.photos[rows],
                             top.y[rows], top.x[rows])
        start += size
    return parts


def purity(photo_labels: torch.Tensor, top: torch.Tensor) -> torch.Tensor:
    """The largest share of each row of photo indices `top` (U, T) with one label."""
    chosen = photo_labels[top]  # (U, T)
    same = (chosen[:, :, None] == chosen[:, None, :]).sum(2)  # each photo's label count
    return same.max(1).values.double() / top.shape[1]


def chance(photo_labels: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    """Purity of `CHANCE_DRAWS` random sets of `count` distinct photos."""
    generator = torch.Generator().manual_seed(seed)
    keys = torch.rand(CHANCE_DRAWS, len(photo_labels), generator=generator)
    return purity(photo_labels, keys.topk(count, dim=1).indices)


def _summary(values: torch.Tensor, floor: float, left_out: int) -> dict:
    q1, median, q3 = torch.quantile(values, torch.tensor([0.25, 0.5, 0.75],
                                                         dtype=values.dtype)).tolist()
    return {"units": len(values), "left_out": left_out, "mean": float(values.mean()),
            "q1": q1, "median": median, "q3": q3,
            "above_chance": float((values > floor).double().mean())}


def label_purity(tops: dict[str, TopK], classes: Sequence[int], seed: int = 0
                 ) -> tuple[dict, dict[str, torch.Tensor]]:
    """The purity report by group, and by class where a class has several photos (each
    family's distribution summarised, chance, the share of units above chance's 95th
    percentile), and the group-purity distributions."""
    if len(classes) < TOP_PHOTOS:
        raise DreamkitError(f"label purity needs at least {TOP_PHOTOS} photos, not "
                            f"{len(classes)}")
    by = {"group": torch.tensor([GROUP_NAMES.index(class_group(c)) for c in classes])}
    if len(set(classes)) < len(classes):  # with one photo a class, class purity is 1 / top
        by["class"] = torch.tensor(list(classes))
    report: dict = {"photos": len(classes), "top": TOP_PHOTOS,
                    "groups": len(set(by["group"].tolist()))}
    distributions = {}
    for level, photo_labels in by.items():
        floor = chance(photo_labels, TOP_PHOTOS, seed)
        p95 = float(torch.quantile(floor, 0.95))
        entry = {"chance": {"median": float(floor.median()), "p95": p95}}
        for family, top in tops.items():
            usable = (top.photos >= 0).all(1) & (top.values > 0).all(1)
            values = purity(photo_labels, top.photos[usable])
            entry[family] = _summary(values, p95, int((~usable).sum()))
            if level == "group":
                distributions[f"purity_{family.split()[0]}"] = values.float()
        if level == "group":
            distributions["purity_chance"] = floor.float()
        report[level] = entry
    return report, distributions


def feature_groups(top: TopK, classes: Sequence[int], features: Sequence[int]) -> list[dict]:
    """For each of `features`: its top photos' most common group and that group's share."""
    found = []
    for feature in features:
        active = (top.photos[feature] >= 0) & (top.values[feature] > 0)
        photos = top.photos[feature][active].tolist()
        groups = [class_group(classes[p]) for p in photos]
        name = max(dict.fromkeys(groups), key=groups.count) if groups else None
        found.append({"feature": feature, "group": name,
                      "share": groups.count(name) / len(groups) if groups else 0.0})
    return found
