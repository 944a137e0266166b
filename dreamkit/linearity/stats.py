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

from dreamkit.stats import Resamples as Resamples  # shared with the dictionary report

# two-sided 97.5 % quantiles of Student's t for 1 to 9 degrees of freedom (more: 1.96 + ...)
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262)


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
