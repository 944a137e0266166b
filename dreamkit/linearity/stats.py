"""Bootstrap confidence intervals over photos, and t intervals over a few seeds.

Every number of the linearity report is a ratio of means over photos (errors over a yardstick),
so one set of resampled photo indices serves every number of a network (a paired bootstrap):
`Resamples.interval(errors, yardstick)` gives the 95 % percentile interval of
mean(errors) / mean(yardstick), the yardstick either per photo (n,) or a pairwise (n, n)
distance matrix of which only pairs of *different* photos count.
"""

from __future__ import annotations

import math

import torch

LEVEL = 0.95
# two-sided 97.5 % quantiles of Student's t for 1 to 9 degrees of freedom (more: 1.96 + ...)
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262)


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


def pair_mean(matrix: torch.Tensor) -> float:
    """The mean of a pairwise matrix over pairs of different items."""
    n = matrix.shape[0]
    mask = ~torch.eye(n, dtype=torch.bool)
    return float(matrix.double()[mask].mean())


def t_interval(values: list[float]) -> tuple[float, float, float]:
    """(mean, low, high): the mean of a few values with its 95 % t interval."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan, math.nan
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    t = T975[n - 2] if n - 2 < len(T975) else 1.96 + 2.5 / (n - 1)
    half = t * sd / math.sqrt(n)
    return mean, mean - half, mean + half
