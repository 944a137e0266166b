"""Linearity: every probe reads 0 on a linear network and what the formula says on a quadratic
one; intervals, baselines and the report on the real networks."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dreamkit.cli import main
from dreamkit.linearity import Options, Row, measure, partners
from dreamkit.linearity.baselines import kaiming, shuffled
from dreamkit.linearity.probes import random_like
from dreamkit.linearity.stats import Resamples, pair_mean, t_interval
from dreamkit.models import wrap
from tests.helpers import PHOTOS, requires_photos, requires_weights

KS = (-1.0, 0.5, 2.0)


class LinearNet(nn.Module):
    """Convolutions and average pooling, no nonlinearity: an affine map."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.pool = nn.AvgPool2d(2)
        self.conv2 = nn.Conv2d(8, 6, 3, padding=1)
        self.head = nn.Linear(6, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv2(self.pool(self.conv1(x))).mean(dim=(2, 3)))


class SquareBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) ** 2


class Quadratic(nn.Module):
    """f(x) = conv(x)^2, then a linear read-out."""

    def __init__(self) -> None:
        super().__init__()
        self.block = SquareBlock()
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.block(x).mean(dim=(2, 3)))


def _photos(n: int = 8, size: int = 16) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(3))


def _measure(module: nn.Module, photos: torch.Tensor) -> list[Row]:
    torch.manual_seed(0)
    net = wrap(module, preprocess="none", name=type(module).__name__).double()
    options = Options(ks=KS, batch=4, resamples=200)
    return measure(net, photos.double(), partners(len(photos), 0), "trained", options,
                   Resamples(len(photos), 200, 0))


def test_every_probe_reads_zero_on_a_linear_network():
    rows = _measure(LinearNet(), _photos())
    probes = [r for r in rows if r.space in ("pixels", "latent")
              and r.scale in ("yardstick", "relative")]
    assert {r.measure for r in probes} >= {"homogeneity", "additivity", "blend",
                                           "homogeneity (own class)", "additivity (own class)"}
    assert {r.space for r in probes} == {"pixels", "latent"}
    assert {r.directions for r in probes} == {"photos", "random"}
    assert len(probes) > 50
    for row in probes:
        assert abs(row.value) < 1e-9 and row.high < 1e-9, row  # float64: exactly 0
    mixes = {(r.layer, r.measure, r.directions): r.value for r in rows if r.space == "objects"
             and r.layer.startswith("pixels")}
    for (layer, score, who), value in mixes.items():  # the network is the linear network
        if who == "network":
            assert value == mixes[(layer, score, "linear network")]


def test_chosen_layers_alone_are_probed_and_the_pixel_shares_stay():
    """`--layers` probes the layers asked for (and the logits), in pixel and latent space; the
    share of pixels outside [0, 1] is reported once per probe wherever the first layer is."""
    module = LinearNet()
    net = wrap(module, preprocess="none", name="LinearNet").double()
    photos = _photos().double()
    every = measure(net, photos, partners(len(photos), 0), "trained",
                    Options(ks=KS, batch=4, resamples=200), Resamples(len(photos), 200, 0))
    chosen = measure(net, photos, partners(len(photos), 0), "trained",
                     Options(ks=KS, batch=4, resamples=200, layers=("conv2",)),
                     Resamples(len(photos), 200, 0))
    probed = {r.layer for r in chosen if r.space in ("pixels", "latent")
              and r.scale == "yardstick"}
    assert probed == {"conv2", net.layers.logits} != {r.layer for r in every
                                                      if r.scale == "yardstick"}
    outside = sorted((r.directions, r.measure, r.parameter, r.value) for r in chosen
                     if r.scale == "outside [0, 1]")
    assert outside and outside == sorted((r.directions, r.measure, r.parameter, r.value)
                                         for r in every if r.scale == "outside [0, 1]")


def test_homogeneity_of_a_quadratic_network_is_what_the_formula_says():
    """For f(x) = (W x + b)^2 the error of homogeneity(k) is |k^2 - k| ||(W (x - mu))^2||."""
    module = Quadratic()
    photos = _photos().double()
    rows = _measure(module, photos)
    mu = photos.mean(0, keepdim=True)
    weight = module.block.conv.weight.double()
    linear_part = F.conv2d(photos - mu, weight, None, padding=1)  # W (x - mu)
    f = module.block.conv.double()(photos) ** 2
    f_mu = module.block.conv.double()(mu) ** 2
    yard = torch.cdist(f.flatten(1), f.flatten(1))
    for k in KS:
        error = abs(k * k - k) * (linear_part ** 2).flatten(1).norm(dim=1)
        change = (k * (f - f_mu)).flatten(1).norm(dim=1)
        got = {r.scale: r.value for r in rows if r.space == "pixels" and r.layer == "block"
               and r.measure == "homogeneity" and r.parameter == k
               and r.directions == "photos" and r.scale in ("yardstick", "relative")}
        assert got["yardstick"] == pytest.approx(float(error.mean()) / pair_mean(yard),
                                                 rel=1e-6)
        assert got["relative"] == pytest.approx(float(error.mean() / change.mean()), rel=1e-6)
        assert got["yardstick"] > 0.01


def test_intervals_contain_their_value_and_shrink_with_more_photos():
    generator = torch.Generator().manual_seed(0)
    widths = []
    for n in (8, 64):
        errors = torch.rand(n, generator=generator) + 1
        yard = torch.rand(n, n, generator=generator) + 2
        low, high = Resamples(n, 500, 1).interval(errors, yard)
        value = float(errors.mean()) / pair_mean(yard)
        assert low <= value <= high
        widths.append(high - low)
    assert widths[1] < widths[0]
    mean, low, high = t_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and low < 1.0 and high > 3.0 and math.isnan(t_interval([1.0])[1])


def test_random_like_keeps_each_norm():
    deltas = torch.randn(4, 3, 8, 8) * torch.tensor([1.0, 2.0, 3.0, 4.0]).view(4, 1, 1, 1)
    noise = random_like(deltas, torch.Generator().manual_seed(7))
    assert torch.allclose(noise.flatten(1).norm(dim=1), deltas.flatten(1).norm(dim=1))
    assert not torch.allclose(noise, deltas)


def test_partners_pair_every_photo_with_two_others():
    found = partners(9, 4)
    assert found.shape == (2, 9)
    for partner in found:
        assert sorted(partner.tolist()) == list(range(9))
        assert all(partner[i] != i for i in range(9))
    assert all(found[0, i] != found[1, i] for i in range(9))


@requires_weights
@requires_photos
def test_untrained_baselines_keep_the_signal(googlenet):
    """Acceptance 2: within 10x of the trained activations' RMS at every layer."""
    from dreamkit.capture import capture
    from dreamkit.linearity import sample_photos

    photos, _ = sample_photos(PHOTOS, 16, 96)
    layers = googlenet.layers.names
    with torch.no_grad():
        trained = capture(googlenet, photos, layers)
        for make in (kaiming, shuffled):
            other = capture(make(googlenet, photos), photos, layers)
            for layer in layers:
                ratio = other[layer].pow(2).mean().sqrt() / trained[layer].pow(2).mean().sqrt()
                assert 0.1 < float(ratio) < 10, (make.__name__, layer, float(ratio))
            assert not torch.equal(other["inception4c"], trained["inception4c"])


@requires_weights
@requires_photos
@pytest.mark.slow
def test_the_report_of_both_networks(tmp_path, capsys):
    """A small run of the command: every pixel number has an interval; the two-objects test
    and per-class linearity are there for both networks; the table is printed."""
    out = tmp_path / "out"
    assert main(["linearity", "--images", str(PHOTOS), "--count", "8", "--size", "64",
                 "--resamples", "100", "--superposition-layers", "mid", "--seeds", "2",
                 "--render-steps", "2", "--render-size", "32", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    data = json.loads((out / "linearity.json").read_text())
    rows = [Row(**r) for r in data["rows"]]
    assert {r.network for r in rows} == {"bvlc_googlenet", "squeezenet1_1"}
    for network in ("bvlc_googlenet", "squeezenet1_1"):
        mine = [r for r in rows if r.network == network]
        assert {r.weights for r in mine} == {"trained", "kaiming", "shuffled"}
        pixels = [r for r in mine if r.space == "pixels"]
        assert pixels and all(r.low <= r.value <= r.high for r in pixels), network
        assert {"top-1 in the pair", "both in the top 5"} <= {r.measure for r in mine}
        assert any("(own class)" in r.measure for r in mine if r.space == "latent")
        assert any(r.space == "superposition" for r in mine)
        assert f"### {network} (8 photos" in printed
    assert (out / "linearity.png").stat().st_size > 10_000
    assert (out / "linearity.csv").read_text().count("\n") == len(rows) + 1
