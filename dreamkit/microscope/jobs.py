"""Making each job of a microscope site (see `plan`): renders with their records, example
shards, example crops with heat maps, the circuits view, and a dictionary's logit effects."""

from __future__ import annotations

import json
from pathlib import Path

import torch

import dreamkit.examples as examples
from dreamkit.capture import capture_resolved
from dreamkit.files import write_json
from dreamkit.image_io import load_image, save_image
from dreamkit.microscope import features
from dreamkit.microscope.plan import SHARD, Job, Site
from dreamkit.models.base import Model
from dreamkit.photos import SIDE, view
from dreamkit.records import Recipe, Record, provenance
from dreamkit.render import render
from dreamkit.targets import Target, picture_objective

QUALITY = 90  # JPEG quality of every picture (each keeps its record in a JPEG comment)
THUMB = 64  # side of the grid thumbnails
STRONGEST = 6  # inputs shown per sign in the circuits view


def make(job: Job, site: Site, net: Model) -> None:
    {"vis": _vis, "neuron": _vis, "variants": _variants, "examples": _examples,
     "crops": _crops, "circuits": _circuits, "effects": features.effects}[job.kind](
        job, site, net)


def _target(site: Site, layer: str, c: int, neuron: bool = False) -> Target:
    """Channel `c`'s target; on a dictionary site, feature `c`'s decoder atom as a direction."""
    shown = site.plan.features
    if shown is None:
        return Target.of_channel(layer, c, neuron=neuron)
    return Target("direction", layer=layer, file=shown.file, row=c, sha256=shown.sha256)


def _render(site: Site, net: Model, pictures: tuple, seed: int) -> tuple[list, dict]:
    settings = site.plan.settings.replace(seed=seed)
    result = render(net, picture_objective(pictures, net.name), settings, batch=len(pictures))
    return list(result.images), provenance(result.ran)


def _save(site: Site, net: Model, image: torch.Tensor, path: Path, pictures: tuple, index: int,
          seed: int, ran: dict) -> None:
    recipe = Recipe("vis", net.name, pictures[index], site.plan.settings.replace(seed=seed),
                    batch=pictures, index=index)
    save_image(image, path, metadata=Record(recipe, net.weights_sha256(), ran).metadata(),
               quality=QUALITY)


def _vis(job: Job, site: Site, net: Model) -> None:
    neuron = job.kind == "neuron"
    pictures = tuple((_target(site, job.layer, c, neuron),) for c in job.channels)
    seed = site.plan.settings.seed + job.channels[0] + (1_000_003 if neuron else 0)
    images, ran = _render(site, net, pictures, seed)
    for i, (c, image) in enumerate(zip(job.channels, images, strict=True)):
        path = site.neuron(job.layer, c) if neuron else site.vis(job.layer, c)
        _save(site, net, image, path, pictures, i, seed, ran)
        if not neuron:
            small = torch.nn.functional.interpolate(image[None], size=(THUMB, THUMB),
                                                    mode="area")[0]
            save_image(small, site.thumb(job.layer, c), quality=85)


def _variants(job: Job, site: Site, net: Model) -> None:
    plan = site.plan
    spread = Target.diversity(job.layer, plan.diversity)
    pictures = tuple((_target(site, job.layer, c), spread) for c in job.channels
                     for _ in range(plan.variants))
    seed = plan.settings.seed + job.channels[0] + 2_000_003
    images, ran = _render(site, net, pictures, seed)
    for i, image in enumerate(images):
        c = job.channels[i // plan.variants]
        _save(site, net, image, site.variant(job.layer, c, i % plan.variants), pictures, i,
              seed, ran)


def _spatial_layers(site: Site, tracked: bool = False) -> dict[str, list[int]]:
    """The channels of each layer with positions (`tracked`: the features a dictionary
    site's examples pass follows)."""
    plan = site.plan
    shown = plan.features
    return {layer: shown.tracked(channels) if tracked and shown else list(channels)
            for layer, channels, spatial in
            zip(plan.layers, plan.channels, plan.spatial, strict=True) if spatial}


def _codes(site: Site, net: Model) -> dict:
    """{layer: activations -> feature codes} on a dictionary site, else {}."""
    if site.plan.features is None:
        return {}
    return {site.plan.layers[0]: features.dictionary(site, net).codes}


def _examples(job: Job, site: Site, net: Model) -> None:
    plan = site.plan
    first = job.shard * SHARD
    paths = [Path(p) for p in plan.photos[first:first + SHARD]]
    layers = _spatial_layers(site, tracked=True)
    seen = features.Activity(len(next(iter(layers.values())))) if plan.features else None
    found, skipped = examples.stream(net, paths, layers, plan.examples, first=first,
                                     transforms=_codes(site, net),
                                     observe=None if seen is None else lambda _, c: seen.observe(c))
    data = {"skipped": skipped, "layers": {k: v.to_dict() for k, v in found.items()}}
    write_json(site.shard(job.shard), {**data, **({"activity": seen.to_dict()} if seen else {})})


def merged(site: Site) -> tuple[dict[str, examples.TopK], int]:
    """The examples of every shard merged, and how many photos could not be read."""
    plan = site.plan
    total = {layer: examples.TopK.empty(channels, plan.examples)
             for layer, channels in _spatial_layers(site).items()}
    skipped = 0
    for shard in range(-(-len(plan.photos) // SHARD)):
        data = json.loads(site.shard(shard).read_text())
        skipped += int(data["skipped"])
        for layer, top in data["layers"].items():
            total[layer].merge(examples.TopK.from_dict(top).select(total[layer].channels))
    return total, skipped


def _crops(job: Job, site: Site, net: Model) -> None:
    plan = site.plan
    top = merged(site)[0][job.layer]
    field = examples.receptive_field(net, job.layer)
    photos = sorted({int(p) for p in top.photos.flatten() if p >= 0})
    views = {p: view(load_image(plan.photos[p])) for p in photos}
    maps = {}
    transform = _codes(site, net).get(job.layer, lambda acts: acts)
    for start in range(0, len(photos), 16):
        chunk = photos[start:start + 16]
        with torch.no_grad():
            acts = capture_resolved(net, torch.stack([views[p] for p in chunk]).to(
                net.device, net.dtype), [job.layer])[job.layer].float()
        maps.update(zip(chunk, transform(acts)[:, top.channels].cpu(), strict=True))
    data = {"field": list(field), "channels": {}}
    for row, c in enumerate(top.channels):
        shown = []
        for i in range(plan.examples):
            p = int(top.photos[row, i])
            if p < 0:
                continue
            act = maps[p][row]
            box = examples.crop_box(int(top.y[row, i]), int(top.x[row, i]), tuple(act.shape),
                                    field)
            t, left, h, w = box
            heat = examples.heat(act, SIDE, float(top.values[row, 0]))
            pair = torch.cat([views[p][:, t:t + h, left:left + w],
                              examples.overlay(views[p], heat)[:, t:t + h, left:left + w]], 2)
            save_image(pair, site.example(job.layer, c, i), quality=85)
            shown.append({"value": float(top.values[row, i]), "photo": plan.photos[p],
                          "box": list(box)})
        data["channels"][str(c)] = shown
    write_json(site.examples_data(job.layer), data)


def _circuits(job: Job, site: Site, net: Model) -> None:
    """Each channel's strongest inputs from the previous chosen layer: activation times
    gradient, summed over positions, on the channel's own visualization."""
    plan = site.plan
    previous = plan.previous(job.layer)
    channels = plan.channels[plan.layers.index(job.layer)]
    images = torch.stack([load_image(site.vis(job.layer, c)) for c in channels])
    images = images.to(net.device, net.dtype).requires_grad_(True)  # builds the graph
    acts = capture_resolved(net, images, [previous, job.layer])
    before, after = acts[previous], acts[job.layer]
    index = torch.tensor(channels, device=after.device)
    picked = after[torch.arange(len(channels), device=after.device), index]
    (grad,) = torch.autograd.grad(picked.flatten(1).mean(1).sum(), before, allow_unused=True)
    data: dict = {"from": previous, "channels": {}}
    if grad is None:
        write_json(site.circuits(job.layer), data)
        return
    weights = (before * grad).detach().flatten(2).sum(2).float().cpu()  # (channels, C_before)
    on_site = plan.channels[plan.layers.index(previous)]
    for row, c in enumerate(channels):
        data["channels"][str(c)] = {"all": _strongest(weights[row], range(len(weights[row]))),
                                    "site": _strongest(weights[row], on_site)}
    write_json(site.circuits(job.layer), data)


def _strongest(weights: torch.Tensor, among) -> dict[str, list]:
    """The STRONGEST largest positive and negative entries of `weights` among channel numbers
    `among`, as [channel, weight] pairs."""
    pairs = sorted(((float(weights[j]), int(j)) for j in among), reverse=True)
    return {"positive": [[j, w] for w, j in pairs[:STRONGEST] if w > 0],
            "negative": [[j, w] for w, j in pairs[::-1][:STRONGEST] if w < 0]}
