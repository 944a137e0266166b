"""A dictionary's features as a microscope layer: the plan of a dictionary site, how often each
feature is active on the photos (which chooses the features shown) with a histogram of its
codes, and each feature's logit effects.

A feature's activation at a position is its code there, as the dictionary's encoder computes
it from the layer's activation vector (`Directions.codes`). Logit effects are measured, not
linearized: the feature's decoder atom, scaled to its mean code where it is active (in the
layer's units), is added at every position of the layer for a few photos, the rest of the
network runs, and the change of each class logit is averaged over the photos.
"""

from __future__ import annotations

import os
from dataclasses import replace
from functools import lru_cache

import torch

from dreamkit.directions import Directions, load_directions
from dreamkit.errors import DreamkitError
from dreamkit.microscope.plan import SHARD, Site
from dreamkit.models.base import Model

EDGES = torch.logspace(-2, 2, 129, dtype=torch.float64)  # histogram bins of active codes
EFFECT_PHOTOS = 8  # photos the logit effects are averaged over
EFFECT_CLASSES = 5  # classes shown per sign


def dictionary_plan(net: Model, path: str | os.PathLike[str], layers: str, channels: str | None,
                    top: int, photos: bool) -> tuple[str, tuple[int, ...], dict]:
    """(layer, channels, Features fields) of a dictionary site, every input checked: a
    dictionary of this model (with its encoder) for a layer with positions; `layers`, when it
    names something, names that layer; features named by `channels`, else the `top` most often
    active on the photos."""
    from dreamkit.files import file_sha256
    from dreamkit.settings import MicroscopeSettings
    from dreamkit.targets import parse_channel_list

    path = os.path.abspath(path)
    saved = load_directions(path, model=net.name, table=net.layers)
    if saved.method != "dictionary":
        raise DreamkitError(f"{path}: a {saved.method} direction file has no encoder; the "
                            "microscope browses a dictionary (dreamkit dictionary fit)")
    info = net.layers.resolve(saved.layer)
    named = {net.layers.resolve(n.strip()).name for n in layers.split(",") if n.strip()}
    if layers != MicroscopeSettings().layers and named != {info.name}:
        raise DreamkitError(f"{path}: the dictionary is for {info.name}, not {layers[:100]}; "
                            "leave out --layers (a dictionary site shows its layer)")
    if info.stride is None:
        raise DreamkitError(f"{path}: {info.name} has no positions; a dictionary site needs a "
                            "convolutional layer")
    saved.codes(torch.zeros(1, info.channels))  # refuses a file whose k is out of range
    count = len(saved.vectors)
    if channels:
        chosen = tuple(parse_channel_list(channels, f"{info.name} dictionary", count))
    elif not photos:
        raise DreamkitError("a dictionary site shows the features most often active on the "
                            "photos: give --images DIR, or name features with --channels")
    else:
        chosen = ()
    return info.name, chosen, {"file": path, "sha256": file_sha256(path, "dictionary"),
                               "count": count, "top": 0 if channels else min(top, count)}


@lru_cache(maxsize=2)
def _loaded(path: str, sha256: str, model: str) -> Directions:
    return load_directions(path, model=model)


def dictionary(site: Site, net: Model) -> Directions:
    """The site's dictionary, checked to be the file the site was planned with."""
    from dreamkit.files import file_sha256

    features = site.plan.features
    if file_sha256(features.file, "dictionary") != features.sha256:
        raise DreamkitError(f"{features.file}: not the dictionary this site was made with "
                            "(SHA-256 differs)")
    return _loaded(features.file, features.sha256, net.name)


class Activity:
    """Per feature: positions seen, positions where it is active, the sum of its codes there,
    and a histogram of those codes (log-spaced bins `EDGES`, clamped at both ends)."""

    def __init__(self, features: int):
        self.positions = 0
        self.active = torch.zeros(features, dtype=torch.long)
        self.total = torch.zeros(features, dtype=torch.float64)
        self.counts = torch.zeros(features, len(EDGES) - 1, dtype=torch.long)

    def observe(self, codes: torch.Tensor) -> None:
        """Add a batch of codes (B, K, H, W) (reduced where they are, on a GPU too)."""
        flat = codes.detach().float().transpose(0, 1).flatten(1)  # (K, N)
        on = flat > 0
        edges = EDGES.to(flat.device, torch.float32)
        bins = torch.bucketize(flat.clamp(edges[0], edges[-1]), edges[1:-1])
        bins += torch.arange(len(flat), device=flat.device)[:, None] * self.counts.shape[1]
        self.positions += flat.shape[1]
        self.active += on.sum(1).cpu()
        self.total += flat.double().sum(1).cpu()
        self.counts += torch.bincount(bins[on], minlength=self.counts.numel()).cpu(
            ).view_as(self.counts)

    def merge(self, other: Activity) -> None:
        self.positions += other.positions
        self.active += other.active
        self.total += other.total
        self.counts += other.counts

    def to_dict(self) -> dict:
        """As JSON; each histogram kept from its first to its last bin in use."""
        spans = []
        for row in self.counts:
            used = row.nonzero().flatten().tolist() or [0]
            spans.append([used[0], row[used[0]:used[-1] + 1].tolist()])
        return {"positions": self.positions, "active": self.active.tolist(),
                "total": self.total.tolist(), "counts": spans}

    @classmethod
    def from_dict(cls, data: dict) -> Activity:
        made = cls(len(data["active"]))
        made.positions = int(data["positions"])
        made.active = torch.tensor(data["active"], dtype=torch.long)
        made.total = torch.tensor(data["total"], dtype=torch.float64)
        for row, (first, counts) in zip(made.counts, data["counts"], strict=True):
            row[first:first + len(counts)] = torch.tensor(counts, dtype=torch.long)
        return made

    def summary(self, channels) -> dict[str, dict]:
        """Per feature: share of positions active, mean code when active, histogram."""
        return {str(c): {"frequency": int(self.active[i]) / max(self.positions, 1),
                         "mean": float(self.total[i]) / max(int(self.active[i]), 1),
                         "counts": self.counts[i].tolist()} for i, c in enumerate(channels)}


def activity(site: Site) -> Activity:
    """The activity of the tracked features over every shard of the photos."""
    import json

    total = Activity(len(site.plan.features.tracked(site.plan.channels[0])))
    for shard in range(-(-len(site.plan.photos) // SHARD)):
        total.merge(Activity.from_dict(json.loads(site.shard(shard).read_text())["activity"]))
    return total


def chosen(site: Site) -> Site:
    """The site with its features chosen: the `top` most often active (ties to the lower
    number) once the examples pass is done; a site that names them stays as it is."""
    plan = site.plan
    if not plan.features or not plan.features.top:
        return site
    active = activity(site).active
    order = torch.argsort(-active, stable=True)[:plan.features.top]
    picked = tuple(int(c) for c in order if active[c] > 0)
    if not picked:
        raise DreamkitError(f"{plan.features.file}: no feature is active on the photos")
    return Site(site.root, replace(plan, channels=(picked,)))


def effects(job, site: Site, net: Model) -> None:
    """The logit effects of each shown feature (see the module docstring), with its activity
    summary and code histogram, as `effects.json`."""
    from dreamkit.capture import capture_resolved
    from dreamkit.files import write_json
    from dreamkit.image_io import load_image
    from dreamkit.imagenet import class_names
    from dreamkit.photos import view

    plan = site.plan
    channels = list(plan.channels[0])
    saved = dictionary(site, net)
    seen = activity(site)
    summary = seen.summary(plan.features.tracked(channels))
    images = []
    step = max(1, len(plan.photos) // EFFECT_PHOTOS)
    for path in plan.photos[::step]:
        try:
            images.append(view(load_image(path)))
        except DreamkitError:
            continue
        if len(images) == EFFECT_PHOTOS:
            break
    found: dict[str, dict] = {}
    if not images:  # no readable photo: no effects to show
        write_json(site.effects(job.layer), {"photos": 0, "features": found})
        return
    images = torch.stack(images).to(net.device, net.dtype)
    with torch.no_grad():
        h = capture_resolved(net, images, [job.layer])[job.layer]
        base = net.logits_from(job.layer, h, images).float()
        for c in channels:
            strength = summary[str(c)]["mean"] * float(saved.extras["scale"])
            atom = (strength * saved.vectors[c]).to(h.device, h.dtype)[None, :, None, None]
            change = (net.logits_from(job.layer, h + atom, images).float() - base).mean(0).cpu()
            order = torch.argsort(change, descending=True)
            names = class_names() if len(change) == 1000 else [f"class {i}"
                                                                for i in range(len(change))]
            found[str(c)] = {
                **summary[str(c)], "strength": strength,
                "up": [[names[i], float(change[i])] for i in order[:EFFECT_CLASSES].tolist()
                       if change[i] > 0],
                "down": [[names[i], float(change[i])] for i in
                         order.flip(0)[:EFFECT_CLASSES].tolist() if change[i] < 0]}
    write_json(site.effects(job.layer), {"photos": len(images), "positions": seen.positions,
                                         "edges": EDGES.tolist(), "features": found})
