"""The linearity probes: how far a network's response to a probe is from what a linear map
would give, per photo, so that `stats` can put intervals on every mean.

Notation: x_i are the photos (one view each), x_p their partners (other photos; the
two-photo probes average over a few partners per photo), mu the mean image, f a layer's
activations (flattened). A probe compares f(probe) with a linear prediction and keeps, per
photo, the error ||f(probe) - prediction|| and the predicted change ||prediction -
reference|| (the relative error's denominator). The yardstick is the distance between
different photos' activations, ||f(x_i) - f(x_j)|| (the discussion's "typical distance between
two images"), kept as a pairwise matrix.

* homogeneity(k): f(mu + k (x - mu)) against f(mu) + k (f(x) - f(mu));
* additivity: f(x + x_p - mu) against f(x) + f(x_p) - f(mu);
* blend(t): f((1 - t) x + t x_p) against (1 - t) f(x) + t f(x_p); a convex blend is a valid
  image, unlike the two above, whose pixels leave [0, 1] (their share is reported);
* random: the same homogeneity and additivity along Gaussian directions r of the photos'
  deviations' norms, f(mu + r) in place of f(x), measured with the photos' yardstick.

Latent probes are the same for the map g from a hidden layer's activations h to the logits,
about the photos' mean activation, with the logits' yardstick; `own class` keeps only each
photo's own top class logit.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from dreamkit.probing import (  # noqa: F401 - the probes' vocabulary, used across linearity
    Measured,
    Probe,
    Prober,
    Run,
    in_batches,
    outside,
    random_like,
    yardstick,
)


def averaged(found: list[dict[str, Probe]]) -> dict[str, Probe]:
    """Per photo, the mean of the probes with each of its partners."""
    def mean(values: list[torch.Tensor | None]) -> torch.Tensor | None:
        return None if values[0] is None else torch.stack(values).mean(0)

    return {name: Probe(mean([f[name].error for f in found]),
                        mean([f[name].change for f in found]),
                        mean([f[name].outside for f in found])) for name in found[0]}


def probe_all(prober: Prober, x: torch.Tensor, at: dict[str, torch.Tensor],
              centre: torch.Tensor, at_centre: dict[str, torch.Tensor], deltas: torch.Tensor,
              partners: torch.Tensor, ks: Sequence[float], ts: Sequence[float], pixels: bool
              ) -> dict[tuple[str, float | None], dict[str, Probe]]:
    """Every probe about `centre` along `deltas` (x = centre + deltas), `at` the outputs of x;
    the two-photo probes average over each photo's `partners` (m, n).

    Returns {(measure, parameter): {name: Probe}}; blends only when `ts` is not empty.
    """
    found: dict[tuple[str, float | None], dict[str, Probe]] = {}
    for k in ks:
        found[("homogeneity", k)] = prober.score(
            centre + k * deltas, lambda n, k=k: at_centre[n] + k * (at[n] - at_centre[n]),
            lambda n: at_centre[n], pixels)
    found[("additivity", None)] = averaged([prober.score(
        x + deltas[p], lambda n, p=p: at[n] + at[n][p] - at_centre[n], lambda n: at_centre[n],
        pixels) for p in partners])
    for t in ts:
        found[("blend", t)] = averaged([prober.score(
            (1 - t) * x + t * x[p], lambda n, t=t, p=p: (1 - t) * at[n] + t * at[n][p],
            lambda n: at[n], pixels) for p in partners])
    return found
