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

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

Run = Callable[[torch.Tensor], dict[str, torch.Tensor]]  # inputs -> {name: (b, D) on the CPU}


@dataclass
class Probe:
    """Per photo: `error` and predicted `change` (n,), the probe's out-of-range pixel share."""

    error: torch.Tensor
    change: torch.Tensor
    outside: torch.Tensor | None = None


@dataclass
class Measured:
    """One output's probes: {(measure, parameter): Probe} and the pairwise yardstick (n, n)."""

    yardstick: torch.Tensor
    probes: dict[tuple[str, float | None], Probe] = field(default_factory=dict)


def in_batches(run: Run, inputs: torch.Tensor, batch: int) -> dict[str, torch.Tensor]:
    parts = [run(inputs[i:i + batch]) for i in range(0, len(inputs), batch)]
    return {name: torch.cat([p[name] for p in parts]) for name in parts[0]}


def outside(images: torch.Tensor) -> torch.Tensor:
    """The share of each image's pixels outside [0, 1]."""
    return ((images < 0) | (images > 1)).flatten(1).float().mean(1)


def random_like(deltas: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Gaussian directions with the norms of `deltas`, row by row."""
    noise = torch.randn(deltas.shape, generator=generator, dtype=deltas.dtype)
    norms = deltas.flatten(1).norm(dim=1) / noise.flatten(1).norm(dim=1).clamp_min(1e-12)
    return noise * norms.view(-1, *[1] * (deltas.dim() - 1))


def _own(values: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Each row's entry at its own class, as (b, 1)."""
    return values.gather(1, classes[:, None])


class Prober:
    """Runs probes through `run` and scores them against linear predictions.

    For the outputs named in `logits`, each photo's own class (`classes`, its clean top-1)
    is also scored alone, under `<name> (own class)`.
    """

    def __init__(self, run: Run, batch: int = 16, logits: Sequence[str] = (),
                 classes: torch.Tensor | None = None):
        self.run, self.batch, self.logits, self.classes = run, batch, set(logits), classes

    def score(self, inputs: torch.Tensor, predict: Callable[[str], torch.Tensor],
              reference: Callable[[str], torch.Tensor], pixels: bool = False
              ) -> dict[str, Probe]:
        """{name: Probe} for probe `inputs` (n, ...) against `predict(name)` (n, D); the
        predicted change is measured from `reference(name)` (n or 1, D)."""
        out = in_batches(self.run, inputs, self.batch)
        share = outside(inputs) if pixels else None
        probes = {}
        for name, got in out.items():
            prediction = predict(name)
            base = reference(name).expand_as(prediction)
            probes[name] = Probe((got - prediction).norm(dim=1),
                                 (prediction - base).norm(dim=1), share)
            if name in self.logits and self.classes is not None:
                own = [_own(v, self.classes) for v in (got, prediction, base)]
                probes[f"{name} (own class)"] = Probe((own[0] - own[1]).norm(dim=1),
                                                      (own[1] - own[2]).norm(dim=1), share)
        return probes


def yardstick(values: torch.Tensor, column: torch.Tensor | None = None) -> torch.Tensor:
    """Pairwise distances (n, n) between the photos' outputs (or, with `column`, between
    photo i's own class logit on photo i and on photo j)."""
    if column is None:
        return torch.cdist(values.double(), values.double()).float()
    own = values.gather(1, column[:, None])  # (n, 1): logit c_i on photo i
    across = values[:, column].T  # (n, n): [i, j] = logit c_i on photo j
    return (own - across).abs()


def _averaged(found: list[dict[str, Probe]]) -> dict[str, Probe]:
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
    found[("additivity", None)] = _averaged([prober.score(
        x + deltas[p], lambda n, p=p: at[n] + at[n][p] - at_centre[n], lambda n: at_centre[n],
        pixels) for p in partners])
    for t in ts:
        found[("blend", t)] = _averaged([prober.score(
            (1 - t) * x + t * x[p], lambda n, t=t, p=p: (1 - t) * at[n] + t * at[n][p],
            lambda n: at[n], pixels) for p in partners])
    return found
