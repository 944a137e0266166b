"""`linearity.png`: each network's probes against depth with their interval bands, the blend
interpolation curves, and the two-objects test at each layer. Needs matplotlib (`pip install
'dreamkit[plot]'`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from dreamkit.image_io import save_image
from dreamkit.linearity.measure import Row
from dreamkit.plots import figure_pixels, pyplot

LINES = [("trained", "photos", "-", "o"), ("trained", "random", "--", "x"),
         ("kaiming", "photos", ":", "s"), ("shuffled", "photos", "-.", "^")]


def _against_depth(ax, rows: Sequence[Row], title: str, **match) -> None:
    names = {}
    for weights, directions, style, marker in LINES:
        line = sorted((r.depth, r.value, r.low, r.high, r.layer) for r in rows
                      if r.weights == weights and r.directions == directions
                      and all(getattr(r, k) == v for k, v in match.items()))
        if not line:
            continue
        depth, value, low, high, layer = zip(*line, strict=True)
        names.update(zip(depth, layer, strict=True))
        ax.plot(depth, value, style, marker=marker, ms=4, label=f"{weights}, {directions}")
        ax.fill_between(depth, low, high, alpha=0.2)
    ax.set_xticks(list(names), list(names.values()), rotation=60, fontsize=7)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)


def _curves(ax, rows: Sequence[Row]) -> None:
    blends = [r for r in rows if r.weights == "trained" and r.space == "pixels"
              and r.measure == "blend" and r.scale == "yardstick"]
    layers = sorted({(r.depth, r.layer) for r in blends})
    for _, layer in layers[:: max(1, len(layers) // 4)]:
        line = sorted((r.parameter, r.value, r.low, r.high) for r in blends if r.layer == layer)
        t, value, low, high = zip(*line, strict=True)
        ax.plot((0, *t, 1), (0, *value, 0), marker="o", ms=3, label=layer)
        ax.fill_between(t, low, high, alpha=0.2)
    ax.set_title("blend (1-t) x + t y: error / yardstick", fontsize=9)
    ax.set_xlabel("t", fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)


def report_figure(rows: Sequence[Row], dpi: int = 80) -> torch.Tensor:
    """The report's panels, one row of four per network, as a (3, H, W) image."""
    plt = pyplot()
    networks = list(dict.fromkeys(r.network for r in rows))
    fig, axes = plt.subplots(len(networks), 4, squeeze=False,
                             figsize=(17, 3.8 * len(networks)))
    for line, network in zip(axes, networks, strict=True):
        mine = [r for r in rows if r.network == network]
        _against_depth(line[0], [r for r in mine if r.space == "pixels"],
                       f"{network}: pixel additivity / yardstick", measure="additivity",
                       scale="yardstick")
        _against_depth(line[1], [r for r in mine if r.space == "pixels"],
                       "pixel homogeneity k=2 / yardstick", measure="homogeneity",
                       parameter=2.0, scale="yardstick")
        _against_depth(line[2], [r for r in mine if r.space == "latent"],
                       "latent additivity (layer -> logits) / yardstick",
                       measure="additivity", scale="yardstick")
        _curves(line[3], mine)
        line[0].legend(fontsize=6)
    fig.tight_layout()
    return figure_pixels(fig, dpi)


def plot_report(rows: Sequence[Row], path: str | os.PathLike[str]) -> Path:
    """`report_figure` written to `path`."""
    return save_image(report_figure(rows), path)
