"""The seeds' question in the linearity report: pairs of a dictionary's feature directions
added at its layer, against neurons and random directions, with intervals; exact zeros on a
linear network; bad dictionaries refused in one line before any work."""

from __future__ import annotations

import json

import torch
from torch import nn

from dreamkit.cli import main
from dreamkit.directions import Directions
from dreamkit.linearity import Options, Row, measure, partners, tables
from dreamkit.linearity.features import KINDS, PAIRS, additivity, direction_sets
from dreamkit.linearity.stats import Resamples
from dreamkit.models import wrap
from tests.helpers import PHOTOS, assert_user_error, call, requires_photos, requires_weights
from tests.test_linearity import LinearNet, SquareBlock, _photos


class Bent(nn.Module):
    """conv1, then a squared convolution: the map from conv1 to the logits is quadratic."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.block = SquareBlock()
        self.block.conv = nn.Conv2d(8, 4, 3, padding=1)
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.block(self.conv1(x)).mean(dim=(2, 3)))


def _dictionary(layer: str, channels: int, count: int = 6, model: str = "LinearNet",
                method: str = "dictionary") -> Directions:
    generator = torch.Generator().manual_seed(1)
    atoms = torch.randn(count, channels, generator=generator)
    atoms = atoms / atoms.norm(dim=1, keepdim=True)
    extras = {"encoder": atoms.clone(), "encoder_bias": torch.full((count,), 0.1),
              "center": torch.zeros(channels), "scale": torch.ones(1)}
    return Directions(atoms, layer, model, method, {"k": 2},
                      extras if method == "dictionary" else {})


def test_direction_sets_are_unit_pairs_of_the_most_active():
    saved = _dictionary("conv1", 8, count=40)
    h = torch.randn(5, 8, 4, 4)
    h[:, 3] = h[:, 3].abs() + 1  # neuron 3 is always on
    sets = direction_sets(saved, h)
    assert set(sets) == set(KINDS)
    for rows in sets.values():
        assert rows.shape == (8, 8)  # 2 x PAIRS would be 16: capped by the 8 channels
        torch.testing.assert_close(rows.norm(dim=1), torch.ones(8))
    assert int(sets["neurons"][0].argmax()) == 3
    active = (saved.codes(h) > 0).sum((0, 2, 3))
    assert torch.equal(sets["dictionary features"][0], saved.vectors[int(active.argmax())])
    assert PAIRS == 8


def test_directions_add_exactly_on_a_linear_network_and_not_on_a_bent_one():
    photos = _photos().double()
    zero = {}
    for module, name in ((LinearNet(), "LinearNet"), (Bent(), "Bent")):
        torch.manual_seed(0)
        net = wrap(module, preprocess="none", name=name).double()
        found, yards, size = additivity(net, "conv1", photos, _dictionary("conv1", 8,
                                                                          model=name), batch=4)
        assert size > 0 and set(found) == set(KINDS)
        zero[name] = max(float(p["logits"].error.max()) for p in found.values())
        for probes in found.values():
            assert probes["logits"].change.min() > 0
            assert probes["logits (own class)"].error.shape == (len(photos),)
    assert zero["LinearNet"] < 1e-9 * zero["Bent"], zero


def test_the_rows_and_table_of_the_feature_probe():
    photos = _photos().double()
    net = wrap(LinearNet(), preprocess="none", name="LinearNet").double()
    options = Options(batch=4, resamples=200, layers=("conv1",), dictionary=_dictionary(
        "conv1", 8))
    rows = measure(net, photos, partners(len(photos), 0), "trained", options,
                   Resamples(len(photos), 200, 0))
    probe = [r for r in rows if r.space == "directions"]
    assert {r.directions for r in probe} == set(KINDS)
    assert {(r.measure, r.scale) for r in probe} == {
        (m, s) for m in ("additivity", "additivity (own class)") for s in ("yardstick",
                                                                           "relative")}
    assert all(r.layer == "conv1" and r.parameter > 0 and r.n == len(photos) for r in probe)
    text = tables(rows)
    assert "Directions added in pairs at conv1" in text and "| dictionary features |" in text
    rows = measure(net, photos, partners(len(photos), 0), "kaiming", options,
                   Resamples(len(photos), 200, 0))
    assert not [r for r in rows if r.space == "directions"]  # the trained network's question


@requires_weights
@requires_photos
def test_the_command_probes_a_real_dictionary_with_intervals(tmp_path, capsys):
    """bvlc_googlenet, a dictionary of inception4c, 8 photos: the three kinds, each with a
    95% interval around its value, in the JSON and the printed table."""
    path = _dictionary("inception4c", 512, count=24, model="bvlc_googlenet").save(
        tmp_path / "d.safetensors")
    out = tmp_path / "out"
    torch.set_num_threads(1)  # restored by the conftest fixture
    assert main(["linearity", "--images", str(PHOTOS), "--models", "bvlc_googlenet",
                 "--count", "8", "--size", "64", "--layers", "inception4c",
                 "--superposition-layers", "none", "--resamples", "100", "--no-plot",
                 "--dictionary", str(path), "-o", str(out)]) == 0
    data = json.loads((out / "linearity.json").read_text())
    assert data["dictionary"]["layer"] == "inception4c" and data["dictionary"]["features"] == 24
    probe = [Row(**r) for r in data["rows"] if r["space"] == "directions"]
    assert {r.directions for r in probe} == set(KINDS) and len(probe) == 12
    for row in probe:
        assert row.low <= row.value <= row.high and row.high > row.low > 0, row
    assert "| neurons |" in capsys.readouterr().out


@requires_weights
def test_bad_dictionaries_are_refused_before_any_work(tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    from tests.helpers import small_png

    for i in range(8):
        small_png(photos, f"p{i}.png")
    cases = [
        (_dictionary("inception4c", 512, model="bvlc_googlenet", method="pca"),
         "has no encoder"),
        (_dictionary("fire5", 256, model="squeezenet1_1"), "not among the models"),
        (_dictionary("inception4c", 500, model="bvlc_googlenet"), "512 channels"),
    ]
    for i, (saved, words) in enumerate(cases):
        path = saved.save(tmp_path / f"d{i}.safetensors")
        rc, err = call(capsys, ["linearity", "--images", str(photos), "--models",
                                "bvlc_googlenet", "--count", "8", "--dictionary", str(path),
                                "-o", str(tmp_path / "out")])
        assert_user_error(rc, err, words)
    assert not (tmp_path / "out" / "linearity.json").exists()
