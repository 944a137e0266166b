"""What every dreamkit model is: RGB images in [0, 1] in, named layers and class logits out.

`Model` is the one interface the engine uses (capture, objectives, render, dream, directions,
linearity, galleries, records): the exact built-in networks (`StagedNet`) and any wrapped
`nn.Module` (`WrappedModel`) both implement it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch
from torch import nn

from dreamkit.errors import DreamkitError
from dreamkit.layers import LayerTable

MAX_PROBE_SIDE = 1024


class Model(nn.Module):
    """A network taking RGB images in [0, 1], shape (B, 3, H, W), with a layer table.

    Subclasses implement `capture` (run only as far as the deepest layer asked for) and
    `logits_from` (run from a layer's activations to the logits); `forward` gives the logits.
    """

    name: str
    layers: LayerTable
    dream_defaults: dict = {}  # DreamSettings fields this model dreams best with

    def capture(self, images: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """Activations of `layers` (names of the table), computing nothing past the deepest."""
        raise NotImplementedError

    def logits_from(self, layer: str, acts: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """The logits when `layer`'s activations are replaced by `acts` for `images`."""
        raise NotImplementedError

    def is_cut(self, layer: str) -> bool:
        """Whether the logits depend on the input only through `layer` (its activations carry
        everything downstream needs); true for every layer of a staged network."""
        return True

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def weights_sha256(self) -> str:
        """SHA-256 of the weights (every tensor of the state dict, in key order, whatever its
        memory layout); a record keeps it so that `reproduce` can tell other weights apart."""
        cached = self.__dict__.get("_weights_sha256")
        if cached is None:
            digest = hashlib.sha256()
            for key, value in sorted(self.state_dict().items()):
                digest.update(f"{key}:{value.dtype}:{tuple(value.shape)};".encode())
                digest.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
                              .numpy().tobytes())
            cached = self.__dict__["_weights_sha256"] = digest.hexdigest()
        return cached

    @torch.no_grad()
    def min_side(self, layer: str) -> int:
        """The smallest square input side for which `layer` has at least one position."""
        cache = self.__dict__.setdefault("_min_side", {})
        if layer not in cache:
            low, high = 1, MAX_PROBE_SIDE  # `high` works, `low - 1` does not
            if not self._reaches(layer, high):
                raise DreamkitError(f"{self.name}: {layer} produces nothing even from "
                                    f"{high}x{high} pixels")
            while low < high:
                middle = (low + high) // 2
                if self._reaches(layer, middle):
                    high = middle
                else:
                    low = middle + 1
            cache[layer] = high
        return cache[layer]

    def _reaches(self, layer: str, side: int) -> bool:
        probe = torch.zeros(1, 3, side, side, device=self.device, dtype=self.dtype)
        probe = probe.contiguous(memory_format=torch.channels_last)
        try:
            act = self.capture(probe, [layer])[layer]
        except (RuntimeError, ValueError, IndexError, AssertionError):
            return False
        return act.numel() > 0 and all(s > 0 for s in act.shape)
