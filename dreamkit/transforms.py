"""Robustness transforms applied to the image before every step (on kornia).

A visualization should survive small shifts, zooms and rotations; optimizing through random
ones keeps it from exploiting pixel-exact adversarial patterns. Each transform splits its
randomness from its work: `draw(generator, steps)` draws the parameters of every step for one
image up front, from that image's own generator, and `apply(x, params)` transforms a batch with
one parameter row per image, on the device, without host round trips. So image i of a batch
sees exactly the transforms a single render with its seed would, and a chain is a plain list.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from kornia.filters import gaussian_blur2d
from kornia.geometry.transform import get_rotation_matrix2d, warp_affine


def _choices(values: Sequence[float], generator: torch.Generator, steps: int) -> torch.Tensor:
    index = torch.randint(len(values), (steps,), generator=generator)
    return torch.as_tensor(values, dtype=torch.float32)[index]


class Transform:
    """`n_params` random numbers per image and step; no randomness by default."""

    n_params = 0

    def draw(self, generator: torch.Generator, steps: int) -> torch.Tensor:
        return torch.empty(steps, 0)

    def apply(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class Pad(Transform):
    """Pad every side by `width` pixels (reflect, or constant `value`)."""

    def __init__(self, width: int, mode: str = "reflect", value: float = 0.5):
        self.width, self.mode, self.value = width, mode, value

    def apply(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        w = self.width
        if self.mode == "constant":
            return F.pad(x, (w, w, w, w), mode="constant", value=self.value)
        return F.pad(x, (w, w, w, w), mode=self.mode)


class Affine(Transform):
    """A geometric transform given by a (B, 3, 3) pixel-space matrix; consecutive ones in a
    chain are composed and resampled once."""

    def matrix(self, params: torch.Tensor, height: int, width: int) -> torch.Tensor:
        raise NotImplementedError

    def apply(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        return warp(x, self.matrix(params, *x.shape[-2:]))


def warp(x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Resample x (B, C, H, W) through the forward pixel-space transforms `matrix` (B, 3, 3)."""
    return warp_affine(x, matrix[:, :2], tuple(x.shape[-2:]), mode="bilinear",
                       padding_mode="reflection", align_corners=False)


def _about_centre(params: torch.Tensor, height: int, width: int, angle: torch.Tensor,
                  factor: torch.Tensor) -> torch.Tensor:
    centre = params.new_empty(len(params), 2)  # filled on the device: no host-to-device copy
    centre[:, 0], centre[:, 1] = (width - 1) / 2, (height - 1) / 2
    m = get_rotation_matrix2d(centre, angle, factor[:, None].expand(-1, 2))
    bottom = m.new_zeros(len(m), 1, 3)
    bottom[..., 2] = 1.0
    return torch.cat([m, bottom], dim=1)


class Jitter(Affine):
    """Shift by a random whole number of pixels in [-d, d] along each axis."""

    n_params = 2

    def __init__(self, d: int):
        self.d = d

    def draw(self, generator: torch.Generator, steps: int) -> torch.Tensor:
        return torch.randint(-self.d, self.d + 1, (steps, 2), generator=generator).float()

    def matrix(self, params: torch.Tensor, height: int, width: int) -> torch.Tensor:
        m = torch.eye(3, device=params.device, dtype=params.dtype).repeat(len(params), 1, 1)
        m[:, :2, 2] = params
        return m


class RandomScale(Affine):
    """Zoom about the centre by a factor picked from `scales`."""

    n_params = 1

    def __init__(self, scales: Sequence[float]):
        self.scales = list(scales)

    def draw(self, generator: torch.Generator, steps: int) -> torch.Tensor:
        return _choices(self.scales, generator, steps)[:, None]

    def matrix(self, params: torch.Tensor, height: int, width: int) -> torch.Tensor:
        return _about_centre(params, height, width, torch.zeros_like(params[:, 0]), params[:, 0])


class RandomRotate(Affine):
    """Rotate about the centre by an angle (degrees) picked from `angles`."""

    n_params = 1

    def __init__(self, angles: Sequence[float]):
        self.angles = list(angles)

    def draw(self, generator: torch.Generator, steps: int) -> torch.Tensor:
        return _choices(self.angles, generator, steps)[:, None]

    def matrix(self, params: torch.Tensor, height: int, width: int) -> torch.Tensor:
        return _about_centre(params, height, width, params[:, 0], torch.ones_like(params[:, 0]))


class Blur(Transform):
    """Gaussian blur with standard deviation `sigma` pixels."""

    def __init__(self, sigma: float):
        self.sigma = sigma

    def apply(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        return gaussian_blur(x, self.sigma)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of x (B, C, H, W) with reflected borders; the kernel reaches 2 sigma, or
    at most to the image's borders (reflection needs that)."""
    radius = min(math.ceil(2 * sigma), min(x.shape[-2:]) - 1)
    if sigma <= 0 or radius < 1:
        return x
    k = 2 * radius + 1
    return gaussian_blur2d(x, (k, k), (sigma, sigma), border_type="reflect")


def standard() -> list[Transform]:
    """The default chain, lucid's but with reflected instead of grey padding: pad 12, jitter 8,
    scale 0.9-1.1, rotate +-10 deg, jitter 4."""
    return [
        Pad(12),
        Jitter(8),
        RandomScale([1 + (i - 5) / 50 for i in range(11)]),
        RandomRotate(list(range(-10, 11)) + 5 * [0]),
        Jitter(4),
    ]


def draw_all(chain: Sequence[Transform], generator: torch.Generator, steps: int) -> torch.Tensor:
    """The parameters of every step of `chain` for one image, (steps, sum of n_params)."""
    return torch.cat([torch.empty(steps, 0)] + [t.draw(generator, steps) for t in chain], dim=1)


def apply_all(chain: Sequence[Transform], x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """Apply `chain` to a batch, `params` (B, sum of n_params) as made by `draw_all`; runs of
    geometric transforms become one resampling."""
    start, pending = 0, None
    for t in chain:
        p = params[:, start:start + t.n_params]
        start += t.n_params
        if isinstance(t, Affine):
            m = t.matrix(p, *x.shape[-2:])
            pending = m if pending is None else m @ pending
            continue
        if pending is not None:
            x, pending = warp(x, pending), None
        x = t.apply(x, p)
    return x if pending is None else warp(x, pending)
