"""Image parameterizations: what the optimizer actually changes when rendering from noise.

Every parameterization is an `nn.Module` holding one (B, ...) parameter tensor and returning RGB
images in [0, 1], shape (B, 3, H, W), through a sigmoid. Image i is initialised from its own
generator only, so a batch renders exactly like B single renders.

- `pixel`: the pixels themselves (in logit space).
- `fft`: a Fourier spectrum scaled by 1/f^decay, so low frequencies move first (lucid's trick
  against high-frequency noise).
- `maco`: MACO (Fel et al. 2023): only the Fourier phase is optimized; the magnitude is fixed
  to a fitted natural-image law, 1/f^decay (photos' mean amplitude spectra follow it closely),
  and each image is standardized, so the result keeps natural-image statistics.

With `decorrelate`, the three channels live in a decorrelated colour space and are mapped to
RGB by the square root of ImageNet's colour correlation matrix (the one lucid uses, normalized
to unit largest column norm), which makes colours vary together as in photos.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from dreamkit.errors import DreamkitError
from dreamkit.settings import PARAMS

# sqrt of the colour correlation of ImageNet RGB pixels (rows: R, G, B), as published by lucid
COLOR_CORRELATION_SQRT = torch.tensor(
    [[0.26, 0.09, 0.02],
     [0.27, 0.00, -0.05],
     [0.27, -0.09, 0.03]]
)
FFT_INIT_STD = 0.01
FFT_SCALE = 4.0  # lucid's divisor of the inverse FFT; larger keeps colours less saturated
MACO_STD = 2.5  # pre-sigmoid standard deviation of a MACO image


def color_matrix() -> torch.Tensor:
    """Decorrelated -> RGB (3, 3): the colour correlation square root, unit max column norm."""
    return COLOR_CORRELATION_SQRT / COLOR_CORRELATION_SQRT.norm(dim=0).max()


def _noise(shape: Sequence[int], generators: Sequence[torch.Generator]) -> torch.Tensor:
    """Standard normal noise (B, *shape), image i drawn from generators[i] alone."""
    return torch.stack([torch.randn(tuple(shape), generator=g) for g in generators])


def frequencies(height: int, width: int) -> torch.Tensor:
    """|f| (cycles per pixel) of every bin of a real 2-D FFT, shape (H, W // 2 + 1)."""
    fy = torch.fft.fftfreq(height)[:, None]
    fx = torch.fft.rfftfreq(width)[None, :]
    return (fx * fx + fy * fy).sqrt()


def spectrum_scale(height: int, width: int, decay: float) -> torch.Tensor:
    """1 / |f|^decay per FFT bin, with |f| floored at one cycle per image (no infinite DC)."""
    return frequencies(height, width).clamp_min(1.0 / max(height, width)).pow(-decay)


class ImageParam(nn.Module):
    """Base: `raw()` gives the (B, 3, H, W) pre-sigmoid image; forward maps it to RGB [0, 1]."""

    def __init__(self, decorrelate: bool):
        super().__init__()
        self.decorrelate = decorrelate
        self.register_buffer("colors", color_matrix(), persistent=False)

    def raw(self) -> torch.Tensor:
        raise NotImplementedError

    def forward(self) -> torch.Tensor:
        x = self.raw()
        if self.decorrelate:
            x = torch.einsum("rc,bchw->brhw", self.colors, x)
        return torch.sigmoid(x)


class PixelParam(ImageParam):
    """The image's logits themselves."""

    def __init__(self, size: tuple[int, int], generators: Sequence[torch.Generator],
                 decorrelate: bool = True, std: float = FFT_INIT_STD):
        super().__init__(decorrelate)
        self.pixels = nn.Parameter(std * _noise((3, *size), generators))

    def raw(self) -> torch.Tensor:
        return self.pixels


class FFTParam(ImageParam):
    """A spectrum (real and imaginary parts), scaled by 1/f^decay, through an inverse FFT."""

    def __init__(self, size: tuple[int, int], generators: Sequence[torch.Generator],
                 decorrelate: bool = True, decay: float = 1.0, std: float = FFT_INIT_STD):
        super().__init__(decorrelate)
        self.size = size
        h, w = size
        self.spectrum = nn.Parameter(std * _noise((3, h, w // 2 + 1, 2), generators))
        self.register_buffer("scale", spectrum_scale(h, w, decay), persistent=False)

    def raw(self) -> torch.Tensor:
        spectrum = torch.view_as_complex(self.spectrum) * self.scale
        return torch.fft.irfft2(spectrum, s=self.size, norm="ortho") / FFT_SCALE


class MacoParam(ImageParam):
    """MACO: optimized phases, magnitudes fixed to 1/f^decay, each image standardized."""

    def __init__(self, size: tuple[int, int], generators: Sequence[torch.Generator],
                 decorrelate: bool = True, decay: float = 1.0):
        super().__init__(decorrelate)
        self.size = size
        h, w = size
        uniform = torch.stack([torch.rand((3, h, w // 2 + 1), generator=g) for g in generators])
        self.phase = nn.Parameter((2 * uniform - 1) * math.pi)
        self.register_buffer("magnitude", spectrum_scale(h, w, decay), persistent=False)

    def raw(self) -> torch.Tensor:
        spectrum = torch.polar(self.magnitude.expand_as(self.phase), self.phase)
        x = torch.fft.irfft2(spectrum, s=self.size, norm="ortho")
        x = x - x.mean(dim=(1, 2, 3), keepdim=True)
        return MACO_STD * x / x.std(dim=(1, 2, 3), keepdim=True).clamp_min(1e-8)


def make_param(kind: str, size: tuple[int, int], generators: Sequence[torch.Generator],
               decorrelate: bool = True) -> ImageParam:
    """The parameterization `kind` (fft | pixel | maco) for len(generators) images."""
    builders = {"fft": FFTParam, "pixel": PixelParam, "maco": MacoParam}
    if kind not in builders:
        raise DreamkitError(f"unknown parameterization {kind!r}; choose from {', '.join(PARAMS)}")
    return builders[kind](size, generators, decorrelate=decorrelate)
