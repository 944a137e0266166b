"""Linearity probes: how close is each layer of a network to a linear function of its input?

Notation: f is a layer's activation map (flattened), x and y are images of a set (random crops),
mu is their mean image, and E a mean over the set (over pairs for two-image terms). Pixel
deviations are scaled about the mean image and are not clipped to [0, 1], so the probes measure
the network itself.

* homogeneity(k) = E||f(mu + k(x - mu)) - [f(mu) + k(f(x) - f(mu))]|| / E||f(x) - f(y)||
* additivity     = E||f(mu + (x - mu) + (y - mu)) - [f(x) + f(y) - f(mu)]|| / E||f(x) - f(y)||
* latent homogeneity / additivity: the same two measures for the map g from layer L to the
  logits, with the activations h = f(x) at L in place of the images and mu the mean of h.
* superposition: render directions a, b and a + b (unit vectors of layer L) from noise; s_a is
  the projection on a reached by the a + b image divided by the one the a image reaches, s_b
  likewise (both near 1 = the features add; one near 0 = one feature wins).

0 means exactly linear; 1 means the error is as large as the typical distance between two
images' activations. Baselines in the same table: `directions=random` replaces each deviation
x - mu (or h - mu) by a Gaussian direction of the same norm (for superposition: two random
directions instead of the top two principal directions); `weights=random` is the same
architecture with random weights (not for superposition, which needs features to render).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from dreamkit.capture import capture_resolved as capture
from dreamkit.directions import activations, principal_directions
from dreamkit.errors import DreamkitError
from dreamkit.files import atomic_path, write_json
from dreamkit.image_io import save_image
from dreamkit.models.base import Model
from dreamkit.objectives import direction

Batched = Callable[[torch.Tensor], dict[str, torch.Tensor]]
DEFAULT_KS = (-1.0, 0.5, 2.0)


@dataclass(frozen=True)
class Row:
    """One number of the table; `k` only for homogeneity, `depth` the layer's index."""

    measure: str
    layer: str
    depth: int
    weights: str  # trained | random
    directions: str  # photos | random (pca | random for superposition)
    k: float | None
    value: float


def _flat(acts: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: a.detach().float().flatten(1).cpu() for name, a in acts.items()}


def _in_batches(f: Batched, inputs: torch.Tensor, batch: int) -> dict[str, torch.Tensor]:
    parts = [f(inputs[i:i + batch]) for i in range(0, len(inputs), batch)]
    return {name: torch.cat([p[name] for p in parts]) for name in parts[0]}


@torch.no_grad()
def probe(
    f: Batched, mu: torch.Tensor, deltas: torch.Tensor, ks: Sequence[float], batch: int = 16
) -> dict[str, dict[str, float]]:
    """Homogeneity for each k and additivity of `f` about `mu` (1, ...) along `deltas` (N, ...).

    `f` maps a batch to flattened outputs by name; returns {name: {"homogeneity k": .,
    "additivity": .}}. Pairs are (i, i + N/2): with the deltas ordered by source image they
    join different images.
    """
    n = len(deltas)
    if n < 2:
        raise DreamkitError("the linearity probes need at least two images")
    partner = (torch.arange(n) + n // 2) % n
    f_mu = f(mu)
    f_x = _in_batches(f, mu + deltas, batch)
    scaled = {k: _in_batches(f, mu + k * deltas, batch) for k in ks}
    summed = _in_batches(f, mu + deltas + deltas[partner], batch)
    results: dict[str, dict[str, float]] = {}
    for name, fx in f_x.items():
        scale = torch.pdist(fx).mean().clamp_min(1e-12)
        out = {f"homogeneity {k:g}": float((scaled[k][name] - (f_mu[name] + k * (fx - f_mu[name])))
                                          .norm(dim=1).mean() / scale) for k in ks}
        predicted = fx + fx[partner] - f_mu[name]
        out["additivity"] = float((summed[name] - predicted).norm(dim=1).mean() / scale)
        results[name] = out
    return results


def random_like(deltas: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Gaussian directions with the norms of `deltas`, row by row."""
    noise = torch.randn(deltas.shape, generator=generator)
    norms = deltas.flatten(1).norm(dim=1) / noise.flatten(1).norm(dim=1).clamp_min(1e-12)
    return noise * norms.view(-1, *[1] * (deltas.dim() - 1))


def run_from(net: Model, layer: str, acts: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The logits computed from a layer's activations (the network after it); `like` is an
    image batch of the size that made such activations."""
    name = net.layers.resolve(layer).name
    return net.logits_from(name, acts, like[:1].expand(len(acts), -1, -1, -1))


def _rows(results: dict, layer_of: Callable[[str], str], depth: dict[str, int], prefix: str,
          weights: str, dirs: str) -> list[Row]:
    rows = []
    for name, values in results.items():
        layer = layer_of(name)
        for key, value in values.items():
            measure, _, k = key.partition(" ")
            rows.append(Row(prefix + measure, layer, depth[layer], weights, dirs,
                            float(k) if k else None, value))
    return rows


def linearity_table(
    net: Model, images: torch.Tensor, *, weights: str = "trained",
    ks: Sequence[float] = DEFAULT_KS, layers: Sequence[str] | None = None, seed: int = 0,
    batch: int = 16,
) -> list[Row]:
    """Homogeneity, additivity and their latent versions for every layer, on `images` (N, 3,
    H, W) ordered by source photo, along the images' own deviations and random ones."""
    layers = list(layers or net.layers.names)
    depth = {name: i for i, name in enumerate(net.layers.names)}
    device = next(net.parameters()).device
    generator = torch.Generator().manual_seed(seed)

    def pixels(x: torch.Tensor) -> dict[str, torch.Tensor]:
        return _flat(capture(net, x.to(device), layers))

    mu = images.mean(0, keepdim=True)
    rows: list[Row] = []
    for dirs, deltas in (("photos", images - mu), ("random", random_like(images - mu, generator))):
        rows += _rows(probe(pixels, mu, deltas, ks, batch), lambda n: n, depth, "", weights, dirs)
    hidden = {name: activations(net, images, name, batch) for name in layers}
    for name in layers:
        if net.layers.resolve(name).name == net.layers.logits or not net.is_cut(name):
            continue  # the identity, or a layer the logits do not depend on alone

        def latent(h: torch.Tensor, name: str = name) -> dict[str, torch.Tensor]:
            like = images[:1].to(device)
            return {name: run_from(net, name, h.to(device), like).float().cpu()}

        h = hidden[name]
        h_mu = h.mean(0, keepdim=True)
        for dirs, deltas in (("photos", h - h_mu), ("random", random_like(h - h_mu, generator))):
            rows += _rows(probe(latent, h_mu, deltas, ks, batch), lambda n: n, depth, "latent ",
                          weights, dirs)
    return rows


def superposition(
    net: Model, layer: str, a: torch.Tensor, b: torch.Tensor, **render_options
) -> tuple[float, float, torch.Tensor]:
    """Render a, b and a + b (unit directions of `layer`) from noise in one batch; returns
    (s_a, s_b, images (3, 3, H, W)): the share of a's and b's solo projection that the a + b
    image reaches."""
    from dreamkit.render import render

    a, b = a / a.norm(), b / b.norm()
    vectors = torch.stack([a, b, a + b])
    images = render(net, direction(layer, vectors), batch=3, **render_options).images
    device = next(net.parameters()).device
    with torch.no_grad():
        acts = capture(net, images.to(device), [layer])
        on_a = direction(layer, a)(acts).cpu()
        on_b = direction(layer, b)(acts).cpu()
    return float(on_a[2] / on_a[0]), float(on_b[2] / on_b[1]), images


def superposition_rows(
    net: Model, images: torch.Tensor, layers: Sequence[str], *, seed: int = 0,
    **render_options,
) -> tuple[list[Row], dict[tuple[str, str], torch.Tensor]]:
    """s_a and s_b for the top two principal directions of each layer (over `images`) and for
    two random directions, on `net`'s trained weights; also returns the rendered (a, b, a + b)
    images by (layer, kind)."""
    depth = {name: i for i, name in enumerate(net.layers.names)}
    generator = torch.Generator().manual_seed(seed)
    rows, renders = [], {}
    for layer in layers:
        top = principal_directions(activations(net, images, layer), 2, layer, net.name).vectors
        pairs = {"pca": (top[0], top[1]),
                 "random": tuple(torch.randn(2, top.shape[1], generator=generator))}
        for kind, (a, b) in pairs.items():
            s_a, s_b, panel = superposition(net, layer, a, b, seed=seed, **render_options)
            renders[(layer, kind)] = panel
            rows += [Row("superposition a", layer, depth[layer], "trained", kind, None, s_a),
                     Row("superposition b", layer, depth[layer], "trained", kind, None, s_b)]
    return rows, renders


# --------------------------------------------------------------------------- output


def write_table(rows: Sequence[Row], outdir: str | os.PathLike[str], info: dict) -> list[Path]:
    """`linearity.json` (info + rows) and `linearity.csv` in `outdir`."""
    outdir = Path(outdir)
    json_path, csv_path = outdir / "linearity.json", outdir / "linearity.csv"
    write_json(json_path, {**info, "rows": [asdict(r) for r in rows]})
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(Row.__dataclass_fields__))
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)
    return [json_path, csv_path]


def plot_table(rows: Sequence[Row], path: str | os.PathLike[str], title: str) -> Path:
    """A PNG with one panel per measure (and k) against depth, one line per baseline."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise DreamkitError(
            "the plot needs matplotlib: pip install 'dreamkit[plot]' (or pass --no-plot)"
        ) from None
    panels = sorted({(r.measure, r.k) for r in rows},
                    key=lambda p: (p[0].startswith("superposition"), p[0], p[1] or 0))
    names = sorted({(r.depth, r.layer) for r in rows})
    cols = 4
    fig, axes = plt.subplots((len(panels) + cols - 1) // cols, cols, squeeze=False,
                             figsize=(4.2 * cols, 3.4 * ((len(panels) + cols - 1) // cols)))
    for ax, (measure, k) in zip(axes.flat, panels, strict=False):
        chosen = [r for r in rows if r.measure == measure and r.k == k]
        for weights, dirs in sorted({(r.weights, r.directions) for r in chosen}, reverse=True):
            line = sorted((r.depth, r.value) for r in chosen
                          if (r.weights, r.directions) == (weights, dirs))
            style = "-" if weights == "trained" else ":"
            marker = "o" if dirs in ("photos", "pca") else "x"
            depths, values = zip(*line, strict=True)
            what = "random directions" if dirs == "random" else dirs
            ax.plot(depths, values, style, marker=marker, label=f"{weights} weights, {what}")
        ax.set_title(measure + ("" if k is None else f", k = {k:g}"))
        ax.set_xticks([d for d, _ in names], [n for _, n in names], rotation=60, fontsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def save_figure(fig, path: str | os.PathLike[str], dpi: int = 80) -> Path:
    """A matplotlib figure written like every dreamkit picture: through `save_image`."""
    import matplotlib.pyplot as plt

    fig.set_dpi(dpi)
    fig.canvas.draw()
    rgba = torch.from_numpy(np.asarray(fig.canvas.buffer_rgba()).copy())
    plt.close(fig)
    return save_image(rgba[..., :3].permute(2, 0, 1).float() / 255, path)
