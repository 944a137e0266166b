"""Linearity probes: zero on linear maps, positive on ReLU, and the CLI table on the real net."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from dreamkit.capture import capture
from dreamkit.cli import main
from dreamkit.errors import DreamkitError
from dreamkit.image_io import load_image, save_image
from dreamkit.linearity import Row, plot_table, probe, random_like, run_from
from tests.helpers import IMAGES, requires_weights

LAYERS = ("conv1", "inception3a", "inception5b", "fc")


def test_probe_is_zero_for_affine_maps_and_not_for_relu():
    generator = torch.Generator().manual_seed(0)
    weight, bias = torch.randn(5, 7, generator=generator), torch.randn(5, generator=generator)
    maps = {
        "affine": lambda x: {"f": x.flatten(1) @ weight.T + bias},
        "relu": lambda x: {"f": torch.relu(x.flatten(1) @ weight.T + bias)},
    }
    mu, deltas = torch.randn(1, 7, generator=generator), torch.randn(6, 7, generator=generator)
    results = {name: probe(f, mu, deltas, ks=(-1.0, 0.5, 2.0))["f"] for name, f in maps.items()}
    assert set(results["affine"]) == {"homogeneity -1", "homogeneity 0.5", "homogeneity 2",
                                      "additivity"}
    assert max(results["affine"].values()) < 1e-5
    assert results["relu"]["homogeneity -1"] > 0.1 and results["relu"]["additivity"] > 0.01


def test_random_like_keeps_each_norm():
    deltas = torch.randn(4, 3, 8, 8) * torch.tensor([1.0, 2.0, 3.0, 4.0]).view(4, 1, 1, 1)
    noise = random_like(deltas, torch.Generator().manual_seed(7))
    assert torch.allclose(noise.flatten(1).norm(dim=1), deltas.flatten(1).norm(dim=1))
    assert not torch.allclose(noise, deltas)


def test_plot_needs_matplotlib(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    rows = [Row("additivity", "conv1", 0, "trained", "photos", None, 0.5)]
    with pytest.raises(DreamkitError, match=r"pip install 'dreamkit\[plot\]'"):
        plot_table(rows, tmp_path / "x.png", "title")


@requires_weights
def test_run_from_a_layer_gives_the_logits(googlenet, photo):
    image = photo("chelsea")[None, :, :96, :128]
    with torch.no_grad():
        acts = capture(googlenet, image, ["inception4a"])["inception4a"]
        assert torch.allclose(run_from(googlenet, "inception4a", acts, image), googlenet(image),
                              rtol=1e-4, atol=1e-4)


@pytest.mark.slow
@requires_weights
def test_cli_writes_table_and_plot(tmp_path):
    """A small run of the acceptance command: two small photos, one crop each, a few layers,
    a one-step render (the full run over all layers is in gallery/README.md)."""
    folder = tmp_path / "photos"
    for name in ("chelsea", "coffee"):
        save_image(load_image(IMAGES / f"{name}.jpg")[:, ::3, ::3], folder / f"{name}.png")
    out = tmp_path / "out"
    assert main(["linearity", "--images", str(folder), "-o", str(out), "--crops", "1",
                 "--crop-size", "64", "-k", "0.5", "2", "--layers", ",".join(LAYERS),
                 "--superposition-layers", "inception3a", "--render-steps", "1",
                 "--render-size", "32"]) == 0
    table = json.loads((out / "linearity.json").read_text())
    rows = table["rows"]
    assert (out / "linearity.csv").read_text().count("\n") == len(rows) + 1
    assert (out / "linearity.png").stat().st_size > 1000
    assert (out / "superposition_inception3a_pca.png").is_file()
    for layer in LAYERS:
        for weights in ("trained", "random"):
            mine = {(r["measure"], r["k"]) for r in rows
                    if r["layer"] == layer and r["weights"] == weights}
            assert {("homogeneity", 0.5), ("homogeneity", 2.0), ("additivity", None)} <= mine

    def value(measure, layer, k=None, weights="trained"):
        (hit,) = [r["value"] for r in rows if (r["measure"], r["layer"], r["k"], r["weights"],
                                               r["directions"]) ==
                  (measure, layer, k, weights, "photos")]
        return hit

    # after inception5b come only global pooling and the linear classifier: exactly linear
    assert value("latent additivity", "inception5b") < 1e-4
    assert value("latent homogeneity", "inception3a", 2.0) > 0.05
    assert value("homogeneity", "conv1", 0.5) < value("homogeneity", "inception5b", 0.5)
    assert {r["measure"] for r in rows} >= {"superposition a", "superposition b"}
