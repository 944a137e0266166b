"""Learned directions in a layer's activation space: fit, save, load.

A direction is a vector with one entry per channel of a layer. `fit` learns a concept direction
from two sets of images (the difference of their mean spatially-pooled activations, or the weight
vector of a logistic linear probe) and measures how well it separates held-out examples; `pca`
finds the principal directions of a layer's activations over a set of images. A few images
suffice: each is augmented into many random crops and flips.

A direction file is a safetensors file with one float32 tensor `directions` of shape (K, C) and
string metadata `format`, `dreamkit` (version), `model`, `layer`, `method` and `stats` (a JSON
object of numbers). A dictionary (method `dictionary`, see `dreamkit.dictionary`) also holds its
encoder: `encoder` (K, C), `encoder_bias` (K,), `center` (C,) and `scale` (1,). Loading is
strict (no pickle, no eval): any other tensor, key or shape is refused, as is a file made for
another model or layer.
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from kornia.geometry.transform import crop_and_resize
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from dreamkit.capture import capture_resolved
from dreamkit.errors import DreamkitError
from dreamkit.files import atomic_path, regular_file
from dreamkit.layers import LayerTable
from dreamkit.models.base import Model
from dreamkit.version import __version__

FORMAT = "dreamkit-directions/1"
MAX_BYTES = 2**28  # a direction file is (K, C) float32: far smaller than this
METHODS = ("mean", "probe", "pca", "dictionary")
_TENSOR = "directions"
# the tensors each method keeps besides the directions, as shapes in K and C
EXTRAS = {"dictionary": {"encoder": ("K", "C"), "encoder_bias": ("K",), "center": ("C",),
                         "scale": (1,)}}
_KEYS = {"format", "dreamkit", "model", "layer", "method", "stats"}


@dataclass(frozen=True)
class Directions:
    """K directions (rows of `vectors`, float32 (K, C)) of one layer of one model."""

    vectors: torch.Tensor
    layer: str
    model: str
    method: str
    stats: dict[str, float | list[float]] = field(default_factory=dict)
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    def describe(self) -> str:
        """One line: what these directions are and how good (held-out accuracy, variance)."""
        what = f"{len(self.vectors)} {self.method} direction(s) of {self.model} {self.layer}"
        s = self.stats
        if "accuracy" in s:
            unit = "images" if s.get("folds_over_images") else "crops"
            return (f"{what}: held-out accuracy {s['accuracy']:.1%} ({s.get('folds', 0):.0f}-fold"
                    f" over {unit}; {s.get('positives', 0):.0f} positive, "
                    f"{s.get('negatives', 0):.0f} negative examples)")
        shown = []
        for key, value in s.items():
            values = value if isinstance(value, list) else [value]
            text = ", ".join(f"{v:.3g}" for v in values[:4]) + (", ..." if len(values) > 4 else "")
            shown.append(f"{key.replace('_', ' ')} {text}")
        return f"{what}: {'; '.join(shown)}" if shown else what

    def __repr__(self) -> str:
        return f"Directions({self.describe()})"

    def codes(self, acts: torch.Tensor) -> torch.Tensor:
        """A dictionary's sparse feature codes, as its encoder computes them: vectors (N, C) ->
        (N, K), or activation maps (B, C, H, W) -> (B, K, H, W), position by position."""
        k = self.stats.get("k")
        if self.method != "dictionary":
            raise DreamkitError(f"a {self.method} direction file has no encoder; give a "
                                "dictionary (dreamkit dictionary fit)")
        if not isinstance(k, (int, float)) or k != int(k) or not 1 <= k <= len(self.vectors):
            raise DreamkitError(f"a dictionary's k must be 1 to {len(self.vectors)}, not {k}")
        e = {name: t.to(acts.device) for name, t in self.extras.items()}
        rows = acts.movedim(1, -1) if acts.dim() == 4 else acts
        codes = feature_codes(rows.reshape(-1, rows.shape[-1]).float(), e["encoder"],
                              e["encoder_bias"], e["center"], float(e["scale"]), int(k))
        codes = codes.view(*rows.shape[:-1], -1)
        return codes.movedim(-1, 1) if acts.dim() == 4 else codes

    def _repr_html_(self) -> str:
        from dreamkit.display import heat_strip

        return (f"<p>{html.escape(self.describe())}</p>{heat_strip(self.vectors).html()}"
                "<p><small>each row over the channels: red positive, blue negative</small></p>")

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the safetensors file atomically; reloading gives the same bits."""
        metadata = {
            "format": FORMAT, "dreamkit": __version__, "model": self.model, "layer": self.layer,
            "method": self.method, "stats": json.dumps(self.stats),
        }
        tensors = {name: t.detach().to("cpu", torch.float32).contiguous()
                   for name, t in {**self.extras, _TENSOR: self.vectors}.items()}
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata=metadata)
            _sort_header(tmp)
        return Path(path)


def feature_response(x: torch.Tensor, encoder: torch.Tensor, bias: torch.Tensor,
                     center: torch.Tensor, scale: float) -> torch.Tensor:
    """Each dictionary feature's response to vectors x (N, C) before the top-k choice,
    ReLU(W (x - center) / scale + b): (N, K)."""
    return torch.relu(((x - center) / scale) @ encoder.T + bias)


def feature_codes(x: torch.Tensor, encoder: torch.Tensor, bias: torch.Tensor,
                  center: torch.Tensor, scale: float, k: int) -> torch.Tensor:
    """Sparse codes (N, K): the `k` largest responses of each vector, the others zero."""
    response = feature_response(x, encoder, bias, center, scale)
    top = torch.topk(response, k, dim=1)
    return torch.zeros_like(response).scatter(1, top.indices, top.values)


def _sort_header(path: Path) -> None:
    """Rewrite a safetensors header with sorted keys (safetensors writes its maps in hash
    order), so that the same directions always give the same bytes."""
    data = Path(path).read_bytes()
    size = int.from_bytes(data[:8], "little")
    header = json.dumps(json.loads(data[8:8 + size]), sort_keys=True,
                        separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)  # the data stays 8-byte aligned
    Path(path).write_bytes(len(header).to_bytes(8, "little") + header + data[8 + size:])


def _bad(path: object, what: str) -> DreamkitError:
    return DreamkitError(f"{path}: not a valid dreamkit direction file ({what})")


def _check_stats(path: object, text: str) -> dict[str, float | list[float]]:
    try:
        stats = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested too deep
        raise _bad(path, "stats is not JSON") from None

    def number(v: object) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    if not isinstance(stats, dict) or not all(
        number(v) or (isinstance(v, list) and all(number(x) for x in v)) for v in stats.values()
    ):
        raise _bad(path, "stats must map names to numbers")
    return stats


def _check_extras(path: object, method: str, tensors: dict[str, torch.Tensor], k: int,
                  c: int) -> None:
    for name, dims in EXTRAS.get(method, {}).items():
        shape = tuple({"K": k, "C": c}.get(d, d) for d in dims)
        got = tensors[name]
        if got.dtype != torch.float32 or tuple(got.shape) != shape:
            raise _bad(path, f"{name} must be float32 {shape}, got {got.dtype} "
                             f"{tuple(got.shape)}")
        if not torch.isfinite(got).all():
            raise _bad(path, f"non-finite values in {name}")


def load_directions(
    path: str | os.PathLike[str], *, model: str | None = None, layer: str | None = None,
    table: LayerTable | None = None,
) -> Directions:
    """Read a direction file, refusing one made for another `model` or `layer` when given
    (`table`, the model's layer table, resolves the layer name and checks the channels)."""
    regular_file(path, "direction file", MAX_BYTES)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            keys = set(f.keys())
            extras = set(EXTRAS.get(meta.get("method", ""), {}))
            if keys != {_TENSOR, *extras}:
                raise _bad(path, f"expected tensors {sorted({_TENSOR, *extras})}, found "
                                 f"{sorted(keys)}")
            tensors = {name: f.get_tensor(name) for name in keys}
            vectors = tensors.pop(_TENSOR)
    except (SafetensorError, OSError, ValueError) as exc:
        raise _bad(path, " ".join(str(exc).split())) from None
    if set(meta) != _KEYS or meta["format"] != FORMAT:
        raise _bad(path, f"metadata keys {sorted(meta)}, expected {sorted(_KEYS)} and {FORMAT}")
    if meta["method"] not in METHODS:
        raise _bad(path, f"unknown method {meta['method']!r}")
    if vectors.dtype != torch.float32 or vectors.dim() != 2 or vectors.shape[0] < 1:
        raise _bad(path, f"expected a float32 (K, C) tensor, got {vectors.dtype} "
                         f"{tuple(vectors.shape)}")
    if not torch.isfinite(vectors).all():
        raise _bad(path, "non-finite values")
    norms = vectors.norm(dim=1)
    if (norms < 1e-6).any():
        raise _bad(path, f"row {int((norms < 1e-6).nonzero()[0])} is a zero vector (it has no "
                         "direction)")
    _check_extras(path, meta["method"], tensors, *vectors.shape)
    saved = Directions(vectors, meta["layer"], meta["model"], meta["method"],
                       _check_stats(path, meta["stats"]), tensors)
    if model is not None and saved.model != model:
        raise DreamkitError(
            f"{path}: direction was fitted on model {saved.model}, not {model} (pass --model "
            f"{saved.model} or fit one for {model})"
        )
    if model is not None:
        if table is None:
            from dreamkit.models.registry import layer_table

            table = layer_table(model)
        info = table.resolve(saved.layer)
        if layer is not None and table.resolve(layer).name != info.name:
            raise DreamkitError(
                f"{path}: direction is for layer {saved.layer}, not {table.resolve(layer).name} "
                f"(use --layer {saved.layer} or fit one for {table.resolve(layer).name})"
            )
        if vectors.shape[1] != info.channels:
            raise _bad(path, f"{vectors.shape[1]} entries but {info.name} has {info.channels} "
                             "channels")
    return saved


# --------------------------------------------------------------------------- data


def random_crops(
    image: torch.Tensor, count: int, size: int, generator: torch.Generator,
    scale: tuple[float, float] = (0.3, 1.0),
) -> torch.Tensor:
    """`count` random square crops of a (3, H, W) image, each resized to `size` and flipped
    left-right with probability 1/2; the crop side is a `scale` fraction of the shorter side."""
    return torch.cat(list(crop_batches(image, count, size, generator, scale)))


def crop_batches(
    image: torch.Tensor, count: int, size: int, generator: torch.Generator,
    scale: tuple[float, float] = (0.3, 1.0), batch: int | None = None,
) -> Iterator[torch.Tensor]:
    """`random_crops`, made `batch` at a time (all drawn first, so the crops do not depend on
    `batch`)."""
    _, h, w = image.shape
    sides = torch.empty(count).uniform_(*scale, generator=generator) * min(h, w)
    x0 = torch.rand(count, generator=generator) * (w - sides)
    y0 = torch.rand(count, generator=generator) * (h - sides)
    flip = torch.rand(count, generator=generator) < 0.5
    x1, y1 = x0 + sides - 1, y0 + sides - 1
    boxes = torch.stack([torch.stack([x0, y0], 1), torch.stack([x1, y0], 1),
                         torch.stack([x1, y1], 1), torch.stack([x0, y1], 1)], 1)
    for start in range(0, count, batch or count):
        part = boxes[start:start + (batch or count)]
        crops = crop_and_resize(image[None].expand(len(part), -1, -1, -1), part, (size, size))
        flipped = flip[start:start + len(part)]
        crops[flipped] = crops[flipped].flip(-1)
        yield crops


def augmented(
    images: Sequence[torch.Tensor], crops: int, size: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random crops of every image -> (N, 3, size, size) and the source index of each crop, all
    in memory (for a few crops; `crop_activations` streams any number)."""
    generator = torch.Generator().manual_seed(seed)
    batches = [random_crops(image, crops, size, generator) for image in images]
    groups = torch.arange(len(images)).repeat_interleave(crops)
    return torch.cat(batches), groups


@torch.no_grad()
def activations(net: Model, images: torch.Tensor, layer: str, batch: int = 16) -> torch.Tensor:
    """The layer's activations (N, C, H, W), or (N, C) past global pooling, in float32."""
    device = next(net.parameters()).device
    parts = [capture_resolved(net, images[i:i + batch].to(device), [layer])[layer].float().cpu()
             for i in range(0, len(images), batch)]
    return torch.cat(parts)


CROP_PIXELS = 2**21  # pixels of crops run through the network at once (2 crops of 1024 px)
PCA_VALUES = 2**25  # activation values kept for PCA (128 MB): positions are sampled to fit


@torch.no_grad()
def crop_activations(net: Model, images: Sequence[torch.Tensor], crops: int, size: int,
                     layer: str, seed: int = 0, *, positions: bool = False
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """The layer's float32 activations over `crops` random crops of every image, made and run a
    few at a time so that memory stays bounded whatever the counts and sizes; and each row's
    source image. Rows are crops (activations pooled over positions), or with `positions`
    activation vectors at positions sampled at random, evenly over the crops, up to
    `PCA_VALUES` values in all."""
    generator = torch.Generator().manual_seed(seed)  # the crops: as `augmented` draws them
    sampler = torch.Generator().manual_seed(seed + 10**6)  # the positions kept
    device = next(net.parameters()).device
    batch = max(1, min(16, CROP_PIXELS // size**2))
    batches = len(images) * math.ceil(crops / batch)
    rows, groups = [], []
    for index, image in enumerate(images):
        for part in crop_batches(image, crops, size, generator, batch=batch):
            acts = capture_resolved(net, part.to(device), [layer])[layer].float().cpu()
            if positions and acts.dim() == 4:
                vectors = acts.movedim(1, -1).reshape(-1, acts.shape[1])
                keep = min(len(vectors), math.ceil(PCA_VALUES / acts.shape[1] / batches))
                acts = vectors[torch.randperm(len(vectors), generator=sampler)[:keep]]
            elif not positions:
                acts = pooled(acts)
            rows.append(acts)
            groups.append(torch.full((len(acts),), index))
    return torch.cat(rows), torch.cat(groups)


def pooled(acts: torch.Tensor) -> torch.Tensor:
    """Spatial mean: (N, C, H, W) -> (N, C); (N, C) stays."""
    return acts.mean(dim=(2, 3)) if acts.dim() == 4 else acts


# --------------------------------------------------------------------------- fitting


def _separator(pos: torch.Tensor, neg: torch.Tensor, method: str) -> tuple[torch.Tensor, float]:
    """(direction, offset) with score = x . direction + offset > 0 for the positive class."""
    if method == "mean":
        direction = pos.mean(0) - neg.mean(0)
        return direction, -float(direction @ (pos.mean(0) + neg.mean(0))) / 2
    if method != "probe":
        raise DreamkitError(f"unknown method {method!r}: use mean or probe")
    x = torch.cat([pos, neg]).double()
    y = torch.cat([torch.ones(len(pos)), torch.zeros(len(neg))]).double()
    center, spread = x.mean(0), x.std(0).clamp_min(1e-6)
    z = (x - center) / spread
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([w, b], max_iter=200, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        optimizer.zero_grad()
        value = torch.nn.functional.binary_cross_entropy_with_logits(z @ w + b, y)
        value = value + 1e-3 * w.pow(2).sum()  # L2: a unique, finite answer on separable data
        value.backward()
        return value

    optimizer.step(loss)
    direction = (w.detach() / spread).float()
    return direction, float(b.detach() - (w.detach() / spread) @ center)


def _folds(groups: torch.Tensor, k: int, generator: torch.Generator) -> tuple[torch.Tensor, str]:
    """Fold of each example: whole source images when there are >= k of them, else crops."""
    distinct = groups.unique()
    if len(distinct) >= k:
        order = distinct[torch.randperm(len(distinct), generator=generator)]
        fold_of = {int(g): i % k for i, g in enumerate(order)}
        return torch.tensor([fold_of[int(g)] for g in groups]), "images"
    return torch.randperm(len(groups), generator=generator) % k, "crops"


def cross_validated_accuracy(
    pos: torch.Tensor, neg: torch.Tensor, method: str, *, folds: int = 5,
    pos_groups: torch.Tensor | None = None, neg_groups: torch.Tensor | None = None, seed: int = 0,
) -> tuple[float, str, int]:
    """k-fold held-out accuracy of the separator, whether folds split images or crops, and the
    k used (`folds`, at least 2 and at most the smaller group's size)."""
    generator = torch.Generator().manual_seed(seed)
    pos_groups = torch.arange(len(pos)) if pos_groups is None else pos_groups
    neg_groups = torch.arange(len(neg)) if neg_groups is None else neg_groups
    k = max(2, min(folds, len(pos), len(neg)))
    pos_fold, pos_unit = _folds(pos_groups, k, generator)
    neg_fold, neg_unit = _folds(neg_groups, k, generator)
    correct = 0
    for i in range(k):
        direction, offset = _separator(pos[pos_fold != i], neg[neg_fold != i], method)
        correct += int((pos[pos_fold == i] @ direction + offset > 0).sum())
        correct += int((neg[neg_fold == i] @ direction + offset <= 0).sum())
    unit = "images" if pos_unit == neg_unit == "images" else "crops"
    return correct / (len(pos) + len(neg)), unit, k


def fit_direction(
    pos: torch.Tensor, neg: torch.Tensor, layer: str, model: str, method: str = "mean", *,
    folds: int = 5, pos_groups: torch.Tensor | None = None,
    neg_groups: torch.Tensor | None = None, seed: int = 0,
) -> Directions:
    """A concept direction from pooled activations (N, C) of positive and negative examples;
    its stats hold the k-fold held-out accuracy."""
    accuracy, unit, k = cross_validated_accuracy(pos, neg, method, folds=folds, seed=seed,
                                                 pos_groups=pos_groups, neg_groups=neg_groups)
    direction, _ = _separator(pos, neg, method)
    stats = {"accuracy": accuracy, "folds": k, "folds_over_images": float(unit == "images"),
             "positives": len(pos), "negatives": len(neg)}
    return Directions(direction[None].contiguous(), layer, model, method, stats)


def principal_directions(acts: torch.Tensor, k: int, layer: str, model: str) -> Directions:
    """The top-k principal directions (unit rows) of activations (N, C, H, W) over all images
    and positions, or of activation vectors (N, C); each sign is chosen so the projections'
    heavy tail (skew) is positive."""
    samples = acts.movedim(1, -1).reshape(-1, acts.shape[1]) if acts.dim() == 4 else acts
    if k > min(samples.shape):
        raise DreamkitError(f"-k {k} is more than the {min(samples.shape)} principal directions "
                            f"{len(samples)} samples of {samples.shape[1]} channels allow")
    centered = (samples - samples.mean(0)).double()
    _, singular, vh = torch.linalg.svd(centered, full_matrices=False)
    vectors = vh[:k]
    skew = (centered @ vectors.T).pow(3).sum(0)
    vectors = (vectors * torch.where(skew < 0, -1.0, 1.0).double()[:, None]).float()
    variance = singular.pow(2)
    ratio = (variance[:k] / variance.sum()).tolist()
    stats = {"explained_variance_ratio": [r if math.isfinite(r) else 0.0 for r in ratio],
             "samples": len(samples)}
    return Directions(vectors.contiguous(), layer, model, "pca", stats)
