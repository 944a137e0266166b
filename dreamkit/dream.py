"""Octave DeepDream of an existing photo, after the original google/deepdream notebook.

Each octave is the photo at a smaller scale plus the detail dreamed so far (upsampled); each step
rolls the image by a random offset (jitter), smooths the objective's gradient (a blur prior
against high-frequency noise), ascends it normalized by its mean magnitude (step = lr * g /
mean|g|) and rolls back. Only the added detail travels between octaves, so the
output keeps the photo's own resolution and content.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from dreamkit.errors import DreamkitError
from dreamkit.models.staged import StagedNet
from dreamkit.objectives import Objective, as_objective
from dreamkit.precision import resolve_precision
from dreamkit.tiling import Gradient, image_gradient
from dreamkit.transforms import gaussian_blur

MIN_OCTAVE_SIDE = 32  # smaller octaves carry no useful detail and starve deep layers


@dataclass(frozen=True)
class DreamSettings:
    """The knobs of a dream; defaults are the classic notebook's (4 octaves x 1.4, 10 steps)."""

    octaves: int = 4
    octave_scale: float = 1.4
    steps: int = 10
    lr: float = 1.5  # step size in 0-255 pixel units
    jitter: int = 32  # max random roll, pixels
    blur: float = 0.5  # sigma (pixels) of the gradient smoothing; 0 turns it off
    seed: int = 0

    def __post_init__(self) -> None:
        checks = [
            (self.octaves >= 1, "octaves must be at least 1"),
            (self.octave_scale > 1, "octave scale must be greater than 1"),
            (self.steps >= 1, "steps must be at least 1"),
            (self.lr > 0 and math.isfinite(self.lr), "lr must be a positive number"),
            (0 <= self.jitter < 2**31, "jitter must be from 0 to 2147483647 pixels"),
            (self.blur >= 0 and math.isfinite(self.blur), "blur must be 0 or more"),
            (-(2**63) <= self.seed < 2**64, "seed must fit in 64 bits"),
        ]
        for ok, message in checks:
            if not ok:
                raise DreamkitError(message)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


class DivergedError(DreamkitError):
    """The loss or the gradient became NaN or infinite; the image is dropped, never written."""


def octave_sizes(height: int, width: int, settings: DreamSettings) -> list[tuple[int, int]]:
    """Image sizes from the smallest octave to the full size (too-small octaves dropped)."""
    sizes = []
    for i in range(settings.octaves):
        scale = settings.octave_scale**i
        size = (round(height / scale), round(width / scale))
        if i > 0 and min(size) < MIN_OCTAVE_SIDE:
            break
        sizes.append(size)
    return sizes[::-1]


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


def dream_step(
    image: torch.Tensor,
    gradient: Gradient,
    settings: DreamSettings,
    generator: torch.Generator,
) -> torch.Tensor:
    """One jittered, normalized gradient-ascent step on a (B, 3, H, W) image in [0, 1]."""
    dy, dx = torch.randint(-settings.jitter, settings.jitter + 1, (2,), generator=generator)
    shift = (int(dy), int(dx))
    shifted = image.roll(shift, dims=(2, 3))
    values, grad = gradient(shifted)
    grad = gaussian_blur(grad, settings.blur)  # a smoothness prior on the step
    scale = grad.abs().mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
    grad = grad / (scale + values.view(-1, 1, 1, 1) * 0)  # a non-finite loss poisons the step
    stepped = shifted.detach().add_(grad, alpha=settings.lr / 255.0)
    return stepped.roll((-shift[0], -shift[1]), dims=(2, 3)).clamp_(0.0, 1.0)


def dream(
    net: StagedNet,
    image: torch.Tensor,
    objective: Objective | str | None = None,
    settings: DreamSettings | None = None,
    *,
    progress: bool = False,
    on_octave: Callable[[int, torch.Tensor], None] | None = None,
    precision: str = "auto",
    tile: int | None = None,
) -> torch.Tensor:
    """Dream `image` (3, H, W) or (B, 3, H, W), RGB in [0, 1]; returns the same shape.

    `objective` defaults to the layer norm of the model's default mid-level layer.
    `precision` is the network's (auto | fp32 | bf16 | fp16, see `dreamkit.precision`); the image
    and the step stay fp32. `tile` is the side in pixels of the tiles an octave's gradient is
    computed on: None tiles only octaves too big for the free memory, 0 never tiles.
    `on_octave(index, image)` is called after each octave with the dream so far at the input's
    size (e.g. to keep the last finished octave when interrupted). Raises DivergedError when a
    loss or gradient is not finite (checked once per octave, so the loop never waits on a GPU).
    """
    settings = settings or DreamSettings()
    objective = as_objective(objective or net.layers.defaults["mid"]).prepare(net)
    single = image.dim() == 3
    device = next(net.parameters()).device
    dtype = resolve_precision(precision, device)
    base = (image[None] if single else image).to(device=device, dtype=torch.float32)
    generator = torch.Generator().manual_seed(settings.seed)
    sizes = octave_sizes(base.shape[-2], base.shape[-1], settings)
    detail = torch.zeros_like(_resize(base, sizes[0]))
    with tqdm(total=len(sizes) * settings.steps, disable=not progress, unit="step",
              desc="dreaming", leave=False) as bar:
        for index, size in enumerate(sizes):
            octave_base = _resize(base, size)
            dreamed = (octave_base + _resize(detail, size)).clamp_(0.0, 1.0)
            gradient = image_gradient(net, objective, dtype, dreamed.shape, tile)
            for _ in range(settings.steps):
                dreamed = dream_step(dreamed, gradient, settings, generator)
                bar.update()
            if not torch.isfinite(dreamed).all():  # NaN/inf stick, so once per octave suffices
                raise DivergedError(
                    f"the dream diverged in octave {index + 1} of {len(sizes)} (NaN or infinite "
                    "loss or gradient); try a lower lr or fp32 precision"
                )
            detail = dreamed - octave_base
            if on_octave is not None:
                so_far = (base + _resize(detail, tuple(base.shape[-2:]))).clamp_(0.0, 1.0)
                on_octave(index, so_far[0] if single else so_far)
    return dreamed[0] if single else dreamed
