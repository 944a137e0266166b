"""Downstream fidelity: what the rest of the network does with a reconstruction of the layer.

The held-out photos (the fit's: every tenth) are seen whole, as the examples pass sees them
(short side 224, centre crop). Every position of a photo's activation map is replaced by its
reconstruction, and the rest of the network runs from there (`Model.logits_from`). Against the
clean logits: KL(clean || spliced) of the softmax, top-1 agreement, and the share of the
cross-entropy recovered between mean-ablating the layer (every position set to the training
mean: 0) and the clean network (1), (CE_ablated - CE_spliced) / (CE_ablated - CE_clean) as a
ratio of means over photos. The cross-entropy is against each photo's ImageNet class when
every file name gives one (and the network has 1000 logits), else against the clean network's
top-1. Intervals are 95 % bootstrap intervals over photos (`dreamkit.stats`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from dreamkit.capture import capture_resolved
from dreamkit.dictionary.collect import HELD_OUT_EVERY
from dreamkit.dictionary.evaluate import neuron_top_k, random_top_k
from dreamkit.dictionary.sae import Codec
from dreamkit.errors import DreamkitError
from dreamkit.examples import BATCH
from dreamkit.imagenet import photo_class
from dreamkit.models.base import Model
from dreamkit.photos import Photos, collate_photos
from dreamkit.stats import Resamples

HELD_PHOTOS = 256  # at most this many held-out photos (their activation maps stay in memory)
RESAMPLES = 1000
ABLATION = "mean ablation"

Reconstruction = Callable[[torch.Tensor], torch.Tensor]  # vectors (N, C) -> (N, C)


@dataclass
class HeldPhotos:
    """The held-out photos as the network sees them (n, 3, S, S), their activation maps at the
    layer (n, C, H, W) and their ImageNet classes (n,), -1 where the file name gives none."""

    images: torch.Tensor
    maps: torch.Tensor
    classes: torch.Tensor


def held_photos(net: Model, paths: Sequence[Path], layer: str, limit: int = HELD_PHOTOS,
                progress: Callable[[int], None] | None = None) -> HeldPhotos:
    """The readable held-out photos of `paths` (at most `limit`) through `net` to `layer`, a
    batch at a time."""
    held = [p for i, p in enumerate(paths) if i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1][:limit]
    loader = DataLoader(Photos(held), batch_size=BATCH.get(net.device.type, BATCH["cuda"]),
                        num_workers=0, collate_fn=collate_photos)
    images, maps, classes = [], [], []
    for batch, index, bad in loader:
        if batch is not None:
            with torch.no_grad():
                act = capture_resolved(net, batch.to(net.device, net.dtype), [layer])[layer]
            if act.dim() != 4:
                raise DreamkitError(f"{layer} has no spatial positions")
            images.append(batch)
            maps.append(act.float().cpu())
            classes += [photo_class(held[i]) for i in index.tolist()]
        if progress is not None:
            progress(len(index) + bad)
    if not images:
        raise DreamkitError("no readable held-out photo (every tenth photo is held out)")
    return HeldPhotos(torch.cat(images), torch.cat(maps),
                      torch.tensor([-1 if c is None else c for c in classes]))


def reconstructions(codec: Codec, train: torch.Tensor, atoms: torch.Tensor
                    ) -> dict[str, Reconstruction]:
    """The dictionary's reconstruction and its baselines at the same L0 (as `evaluate` scores
    their R^2): each vector's k largest centred neurons, its projection on the training
    vectors' top k principal directions, its k random atoms (`atoms`) of largest |projection|
    fitted by least squares."""
    k, mean = codec.k, train.mean(0)
    _, _, vh = torch.linalg.svd((train - mean).double(), full_matrices=False)
    basis = vh[:min(k, train.shape[1])]

    def pca(x: torch.Tensor) -> torch.Tensor:
        return (mean.double() + ((x - mean).double() @ basis.T) @ basis).float()

    return {"dictionary": lambda x: codec.decode(codec.encode(x)),
            "neurons (top-k)": lambda x: neuron_top_k(x, mean, k),
            "pca (k components)": pca,
            "random directions (top-k)": lambda x: random_top_k(x, mean, atoms, k)}


def spliced_logits(net: Model, layer: str, held: HeldPhotos,
                   rebuild: Reconstruction | None = None) -> torch.Tensor:
    """The logits (n, classes) with every position of `layer` replaced by `rebuild` of its
    vector (None: the clean activations), a batch of photos at a time."""
    maps = held.maps
    if rebuild is not None:
        rows = rebuild(maps.movedim(1, -1).reshape(-1, maps.shape[1]))
        maps = rows.reshape(*maps.shape[:1], *maps.shape[2:], -1).movedim(-1, 1)
    step = BATCH.get(net.device.type, BATCH["cuda"])
    parts = []
    for i in range(0, len(maps), step):
        with torch.no_grad():
            logits = net.logits_from(layer, maps[i:i + step].to(net.device, net.dtype),
                                     held.images[i:i + step].to(net.device, net.dtype))
        parts.append(logits.float().cpu().flatten(1))
    return torch.cat(parts)


def fidelity(net: Model, layer: str, held: HeldPhotos, methods: Mapping[str, Reconstruction],
             mean: torch.Tensor, *, resamples: int = RESAMPLES, seed: int = 0) -> dict:
    """KL, top-1 agreement and CE recovered, with intervals, for each reconstruction of
    `methods` and for mean ablation (`mean`, the layer's training mean vector)."""
    clean = spliced_logits(net, layer, held).double()
    labelled = bool((held.classes >= 0).all()) and clean.shape[1] == 1000
    target = held.classes if labelled else clean.argmax(1)
    ce_clean = F.cross_entropy(clean, target, reduction="none")
    every = {ABLATION: lambda x: mean.expand_as(x), **methods}
    spliced = {name: spliced_logits(net, layer, held, rebuild).double()
               for name, rebuild in every.items()}
    ce_ablated = F.cross_entropy(spliced[ABLATION], target, reduction="none")
    boot = Resamples(len(clean), resamples, seed)
    log_clean = F.log_softmax(clean, 1)
    yardstick = ce_ablated - ce_clean
    found = {}
    for name, logits in spliced.items():
        log_p = F.log_softmax(logits, 1)
        kl = (log_clean.exp() * (log_clean - log_p)).sum(1).clamp_min(0)
        agree = (logits.argmax(1) == clean.argmax(1)).double()
        gained = ce_ablated - F.cross_entropy(logits, target, reduction="none")
        found[name] = {
            "kl": float(kl.mean()), "kl_interval": boot.interval(kl),
            "top1_agreement": float(agree.mean()), "top1_agreement_interval": boot.interval(agree),
            "ce_recovered": float(gained.mean() / yardstick.mean().clamp_min(1e-30)),
            "ce_recovered_interval": boot.interval(gained, yardstick)}
    return {"photos": len(clean), "target": "ImageNet class" if labelled else "clean top-1",
            "clean_top1_accuracy": float((clean.argmax(1) == held.classes).double().mean())
            if labelled else None,
            "ce_clean": float(ce_clean.mean()), "ce_ablated": float(ce_ablated.mean()),
            "methods": found}
