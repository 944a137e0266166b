"""Every number of the linearity report for one network, each with its bootstrap interval.

`measure` runs the pixel-space probes of every layer, the latent probes of every layer the
logits depend on alone, the two-objects test and (for trained weights) superposition and,
given a dictionary of the network, the additivity of its feature directions against neurons
and random directions (`features`), and returns flat `Row`s. Two denominators are reported
for every probe: the photos' yardstick (the typical distance between two different photos'
activations; random directions use the photos' one too, so their row compares with the row
above) and the change a linear map predicts (relative error, comparable across k).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from dreamkit.capture import capture_resolved
from dreamkit.directions import Directions
from dreamkit.linearity import baselines, features, objects, superposition
from dreamkit.linearity.probes import Probe, Prober, in_batches, probe_all, random_like, yardstick
from dreamkit.linearity.stats import Resamples, pair_mean, t_interval
from dreamkit.models.base import Model

KS = (-1.0, 0.5, 2.0)
TS = (0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875)


@dataclass(frozen=True)
class Row:
    """One number: `space` pixels | latent | objects | scale | superposition | directions;
    `scale` yardstick | relative | share | rms | value; [low, high] its 95 % interval over
    `n`. A directions row's `parameter` is the norm each direction is added with."""

    network: str
    weights: str  # trained | kaiming | shuffled
    space: str
    directions: str  # photos | random | pca | network | linear network | features.KINDS
    measure: str
    scale: str
    layer: str
    depth: int
    parameter: float | None
    value: float
    low: float
    high: float
    n: int


@dataclass
class Options:
    ks: tuple[float, ...] = KS
    ts: tuple[float, ...] = TS
    seed: int = 0
    batch: int = 16
    resamples: int = 1000
    superposition: tuple[str, ...] = ()  # layers
    layers: tuple[str, ...] = ()  # the layers probed (and the logits); empty: every layer
    seeds: int = 3
    render: dict = field(default_factory=lambda: {"size": 64, "steps": 64})
    dictionary: Directions | None = None  # its feature directions are probed on its model


class _Rows:
    """Collects rows of one network and weights, intervals from shared resamples."""

    def __init__(self, net: Model, weights: str, resamples: Resamples):
        self.net, self.weights, self.resamples, self.rows = net, weights, resamples, []
        self.outside_done: set[tuple] = set()
        self.depth = {name: i for i, name in enumerate(net.layers.names)}

    def add(self, space: str, directions: str, measure: str, scale: str, layer: str,
            parameter: float | None, values: torch.Tensor,
            denominator: torch.Tensor | None = None) -> None:
        value = float(values.double().mean())
        if denominator is not None:
            bottom = pair_mean(denominator) if denominator.dim() == 2 \
                else float(denominator.double().mean())
            value /= max(bottom, 1e-30)
        low, high = self.resamples.interval(values, denominator)
        self.rows.append(Row(self.net.name, self.weights, space, directions, measure, scale,
                             layer, self.depth.get(layer, -1), parameter, value, low, high,
                             len(values)))

    def probes(self, space: str, directions: str, found: dict, yards: dict[str, torch.Tensor],
               names: dict[str, str]) -> None:
        """Rows of `probe_all`'s result; `names` maps output names to layer names."""
        for (measure, parameter), by_output in found.items():
            for output, probe in by_output.items():
                layer = names.get(output.removesuffix(" (own class)"), output)
                label = measure + (" (own class)" if output.endswith("(own class)") else "")
                self._probe(space, directions, label, layer, parameter, probe, yards[output])

    def _probe(self, space: str, directions: str, measure: str, layer: str,
               parameter: float | None, probe: Probe, yard: torch.Tensor) -> None:
        self.add(space, directions, measure, "yardstick", layer, parameter, probe.error, yard)
        self.add(space, directions, measure, "relative", layer, parameter, probe.error,
                 probe.change)
        once = (directions, measure, parameter)  # the input's share, the same at every layer
        if probe.outside is not None and space == "pixels" and once not in self.outside_done:
            self.outside_done.add(once)
            self.add(space, directions, measure, "outside [0, 1]", "", parameter,
                     probe.outside)


def _run(net: Model, layers: list[str]):
    def run(x: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            found = capture_resolved(net, x.to(net.device, net.dtype), layers)
        return {name: act.flatten(1).to(torch.promote_types(act.dtype, torch.float32)).cpu()
                for name, act in found.items()}

    return run


def _decoder(net: Model, layer: str, like: torch.Tensor):
    def decode(h: torch.Tensor) -> dict[str, torch.Tensor]:
        images = like[:1].expand(len(h), -1, -1, -1).to(net.device, net.dtype)
        with torch.no_grad():
            logits = net.logits_from(layer, h.to(net.device, net.dtype), images)
        return {"logits": logits.to(torch.promote_types(logits.dtype, torch.float32)).cpu()}

    return decode


def measure(net: Model, photos: torch.Tensor, partners: torch.Tensor, weights: str,
            options: Options, resamples: Resamples) -> list[Row]:
    """The rows of one network with one kind of weights (see the module docstring)."""
    table = net.layers
    generator = torch.Generator().manual_seed(0)  # one fixed draw of random directions
    logits = table.logits
    layers = [name for name in table.names
              if not options.layers or name in options.layers or name == logits]
    run = _run(net, layers)
    out = _Rows(net, weights, resamples)
    fx = in_batches(run, photos, options.batch)
    classes = fx[logits].argmax(1)
    mu = photos.mean(0, keepdim=True)
    fmu = run(mu)
    deltas = photos - mu
    yards = {name: yardstick(values) for name, values in fx.items()}
    yards[f"{logits} (own class)"] = yardstick(fx[logits], classes)
    prober = Prober(run, options.batch, logits=[logits], classes=classes)
    names = {name: name for name in layers}
    out.probes("pixels", "photos", probe_all(prober, photos, fx, mu, fmu, deltas, partners,
                                             options.ks, options.ts, True), yards, names)
    noise = random_like(deltas, generator)
    fr = in_batches(run, mu + noise, options.batch)
    out.probes("pixels", "random", probe_all(prober, mu + noise, fr, mu, fmu, noise, partners,
                                             options.ks, (), True), yards, names)
    for layer in layers:
        out.add("scale", "photos", "rms", "rms", layer, None, baselines.scale(fx[layer]))
        out.rows.append(Row(net.name, weights, "scale", "photos", "switching units", "share",
                            layer, out.depth[layer], None, baselines.switching(fx[layer]),
                            float("nan"), float("nan"), len(photos)))
    _latent(net, photos, partners, fx, classes, options, out, generator, weights == "trained",
            layers)
    if weights == "trained":
        _objects(net, photos, partners, fx[logits], options, out)
        _superposition(net, photos, options, out, generator)
    if weights == "trained" and options.dictionary and options.dictionary.model == net.name:
        layer = net.layers.resolve(options.dictionary.layer).name
        found, yards, size = features.additivity(net, layer, photos, options.dictionary,
                                                 options.batch, options.seed)
        for kind, probes in found.items():
            out.probes("directions", kind, {("additivity", size): probes}, yards,
                       {"logits": layer})
    return out.rows


def _latent(net: Model, photos: torch.Tensor, partners: torch.Tensor, fx: dict, classes,
            options: Options, out: _Rows, generator: torch.Generator, mixes: bool,
            layers: list[str]) -> None:
    """Latent probes (and, for trained weights, the hidden-layer blend of two objects)."""
    table = net.layers
    logits = fx[table.logits]
    shapes = {}
    for layer in layers:
        if layer == table.logits or not net.is_cut(layer):
            continue
        if layer not in shapes:
            with torch.no_grad():
                shapes[layer] = capture_resolved(net, photos[:1].to(net.device), [layer])[
                    layer].shape[1:]
        h = fx[layer].view(len(photos), *shapes[layer])
        decode = _decoder(net, layer, photos)
        h_mu = h.mean(0, keepdim=True)
        g_mu = decode(h_mu)
        yards = {"logits": yardstick(logits), "logits (own class)": yardstick(logits, classes)}
        prober = Prober(decode, options.batch, logits=["logits"], classes=classes)
        at = {"logits": logits}
        found = probe_all(prober, h, at, h_mu, g_mu, h - h_mu, partners, options.ks, (0.5,),
                          False)
        out.probes("latent", "photos", found, yards, {"logits": layer})
        noise = random_like(h - h_mu, generator)
        at_noise = in_batches(decode, h_mu + noise, options.batch)
        found = probe_all(prober, h_mu + noise, at_noise, h_mu, g_mu, noise, partners,
                          options.ks, (), False)
        out.probes("latent", "random", found, yards, {"logits": layer})
        if mixes:
            for score, values in objects.hidden_blend(decode, h, logits, partners,
                                                      options.batch).items():
                out.add("objects", "network", score, "share", layer, 0.5, values)


def _objects(net: Model, photos: torch.Tensor, partners: torch.Tensor, logits: torch.Tensor,
             options: Options, out: _Rows) -> None:
    logits_run = _run(net, [net.layers.logits])

    def logits_of(x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": next(iter(logits_run(x).values()))}

    mixes = objects.pixel_mixes(logits_of, photos, logits, partners, options.batch)
    for (mix, who), scores in mixes.items():
        for score, values in scores.items():
            out.add("objects", who, score, "share", f"pixels: {mix}", 0.5, values)


def _superposition(net: Model, photos: torch.Tensor, options: Options, out: _Rows,
                   generator: torch.Generator) -> None:
    for layer in options.superposition:
        with torch.no_grad():
            acts = capture_resolved(net, photos.to(net.device), [layer])[layer].float().cpu()
        for pair in superposition.pairs(net, layer, acts, generator):
            found = [superposition.shares(net, layer, pair, options.seed + s, **options.render)
                     for s in range(options.seeds)]
            for which, values in (("a share", [f[0] for f in found]),
                                  ("b share", [f[1] for f in found])):
                mean, low, high = t_interval(values)
                out.rows.append(Row(net.name, out.weights, "superposition", pair.kind, which,
                                    "value", layer, out.depth[layer], None, mean, low, high,
                                    len(values)))
            out.rows.append(Row(net.name, out.weights, "superposition", pair.kind,
                                "linear target", "value", layer, out.depth[layer], None,
                                pair.target, pair.target, pair.target, 1))
