"""Scoring a network's responses against linear predictions: per input, the error
||f(probe) - prediction|| and the predicted change ||prediction - reference||, and the pairwise
yardstick between inputs' outputs. The linearity probes and the dictionary's steering test use
it."""

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
