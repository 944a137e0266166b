"""Bootstrap confidence intervals over photos, shared by the research reports (linearity,
dictionary): one set of resampled photo indices serves every number of a sample (a paired
bootstrap). `Resamples.interval(values, yardstick)` gives the 95 % percentile interval of
mean(values), or of the ratio mean(values) / mean(yardstick), the yardstick either per photo
(n,) or a pairwise (n, n) distance matrix of which only pairs of *different* photos count.
"""

from __future__ import annotations

import torch

LEVEL = 0.95


class Resamples:
    """`count` bootstrap resamples of `n` photos (seeded), shared by every statistic."""

    def __init__(self, n: int, count: int = 1000, seed: int = 0):
        generator = torch.Generator().manual_seed(seed)
        self.n = n
        self.index = torch.randint(n, (count, n), generator=generator)
        self.distinct = self.index[:, :, None] != self.index[:, None, :]

    def _means(self, values: torch.Tensor) -> torch.Tensor:
        """The statistic's mean over each resample: per photo (n,) or pairwise (n, n)."""
        values = values.double()
        if values.dim() == 1:
            return values[self.index].mean(1)
        pairs = values[self.index[:, :, None], self.index[:, None, :]] * self.distinct
        return pairs.sum((1, 2)) / self.distinct.sum((1, 2)).clamp_min(1)

    def interval(self, errors: torch.Tensor, yardstick: torch.Tensor | None = None
                 ) -> tuple[float, float]:
        """The 95 % interval of mean(errors) [/ mean(yardstick)] over the resamples."""
        values = self._means(errors)
        if yardstick is not None:
            values = values / self._means(yardstick).clamp_min(1e-30)
        low, high = torch.quantile(values, torch.tensor([(1 - LEVEL) / 2, (1 + LEVEL) / 2],
                                                        dtype=values.dtype))
        return float(low), float(high)
