"""Plots as pictures: matplotlib (the optional `plot` extra) drawn off screen and written like
every dreamkit image, through `save_image`. Shared by the reports (linearity, dictionary)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from dreamkit.errors import DreamkitError
from dreamkit.image_io import save_image


def pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise DreamkitError("the plot needs matplotlib: pip install 'dreamkit[plot]' (or pass "
                            "--no-plot)") from None
    return plt


def figure_pixels(fig, dpi: int = 80) -> torch.Tensor:
    """A matplotlib figure as a (3, H, W) image in [0, 1] (the figure is closed)."""
    plt = pyplot()
    fig.set_dpi(dpi)
    fig.canvas.draw()
    rgba = torch.from_numpy(np.asarray(fig.canvas.buffer_rgba()).copy())
    plt.close(fig)
    return rgba[..., :3].permute(2, 0, 1).float() / 255


def save_figure(fig, path: str | os.PathLike[str], dpi: int = 80) -> Path:
    """A matplotlib figure written like every dreamkit picture: through `save_image`."""
    return save_image(figure_pixels(fig, dpi), path)
