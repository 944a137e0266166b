"""A top-k sparse autoencoder on a layer's activation vectors, trained with `overcomplete`.

The vectors are centred and divided by one scale (their RMS), so that the loss and learning
rate mean the same at every layer. `overcomplete.sae.TopKSAE` with a linear encoder gives the
model (codes z = top-k(ReLU(W x + b)), reconstruction z D with unit-norm atoms D); dreamkit
runs the training loop itself so that it is seeded, shows one progress bar and adds the
auxiliary loss of Gao et al. (2024) that revives dead features. The result, a `Codec`, is plain
tensors: no overcomplete needed to use it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from dreamkit.directions import feature_codes, feature_response
from dreamkit.errors import DreamkitError

AUX_PENALTY = 1 / 32  # weight of the dead-feature auxiliary loss (Gao et al.)
BATCH = 1024


@dataclass(frozen=True)
class Codec:
    """Atoms `decoder` (K, C), encoder `encoder` (K, C) + `bias` (K,), on vectors centred by
    `center` (C,) and divided by `scale`; `k` features are kept per vector."""

    decoder: torch.Tensor
    encoder: torch.Tensor
    bias: torch.Tensor
    center: torch.Tensor
    scale: float
    k: int

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.center) / self.scale

    def response(self, x: torch.Tensor) -> torch.Tensor:
        """Each feature's activation before the top-k choice, ReLU(W x + b): (N, K)."""
        return feature_response(x, self.encoder, self.bias, self.center, self.scale)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Sparse codes (N, K): the `k` largest responses of each vector, others zero."""
        return feature_codes(x, self.encoder, self.bias, self.center, self.scale, self.k)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Vectors (N, C) in the layer's own units."""
        return codes @ self.decoder * self.scale + self.center


def _overcomplete():
    """overcomplete's SAE module (matplotlib >= 3.9 removed the `cm.get_cmap` it imports)."""
    try:
        import matplotlib

        if not hasattr(matplotlib.cm, "get_cmap"):
            matplotlib.cm.get_cmap = matplotlib.colormaps.get_cmap
        import overcomplete.sae as sae
    except ImportError as exc:
        raise DreamkitError(f"dictionary fitting needs the overcomplete package ({exc}): "
                            "pip install 'dreamkit[dictionary]'") from None
    return sae


def train(vectors: torch.Tensor, features: int, k: int, *, epochs: int = 30, lr: float = 3e-3,
          seed: int = 0, progress: Callable[[int], None] | None = None) -> Codec:
    """Fit a top-k SAE with `features` atoms to `vectors` (N, C); deterministic for a seed
    on one machine."""
    sae_module = _overcomplete()
    channels = vectors.shape[1]
    center = vectors.mean(0)
    scale = float((vectors - center).pow(2).mean().sqrt().clamp_min(1e-12))
    x = ((vectors - center) / scale).float()
    torch.manual_seed(seed)
    model = sae_module.TopKSAE(channels, features, top_k=k, encoder_module="linear")
    linear = model.encoder.final_block[0]
    with torch.no_grad():  # start with the encoder as the decoder's transpose (Gao et al.)
        atoms = model.dictionary._weights
        atoms.copy_(atoms / atoms.norm(dim=1, keepdim=True))
        linear.weight.copy_(atoms)
        linear.bias.zero_()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(x), generator=generator).split(BATCH):
            sample = x[batch]
            pre_codes, codes, x_hat = model(sample)
            loss = sae_module.losses.top_k_auxiliary_loss(
                sample, x_hat, pre_codes, codes, model.get_dictionary(), penalty=AUX_PENALTY)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if progress is not None:
            progress(1)
    with torch.no_grad():
        decoder = model.get_dictionary().detach().clone()
        decoder = decoder / decoder.norm(dim=1, keepdim=True)
    return Codec(decoder, linear.weight.detach().clone(), linear.bias.detach().clone(),
                 center, scale, k)
