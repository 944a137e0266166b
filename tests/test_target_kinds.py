"""Target kinds are one table: a new objective is one function plus one `register_kind` entry,
and then works from the API, in records, and from the CLI's `reproduce` (issue 24)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dreamkit.errors import DreamkitError
from dreamkit.targets import KINDS, Kind, Target, register_kind
from tests.helpers import IMAGES, requires_weights


def _spatial_mean(target: Target, model: str):
    """The toy objective: the mean activation of a layer (not its norm)."""
    from dreamkit.objectives import Objective

    return Objective(lambda acts: acts[target.layer].float().mean(dim=(1, 2, 3)),
                     [target.layer], f"{target.layer} mean")


@pytest.fixture
def toy_kind():
    kind = register_kind(Kind("mean", ("layer",), _spatial_mean,
                              stem=lambda t: f"{t.layer}_mean"))
    yield kind
    KINDS.pop("mean")


def test_the_target_module_has_no_kind_branches():
    source = (Path(__file__).parents[1] / "dreamkit" / "targets.py").read_text()
    assert source.count("kind ==") == 0


@requires_weights
def test_a_toy_kind_works_from_the_api_records_and_reproduce(toy_kind, googlenet, workdir,
                                                             capsys):
    from dreamkit.cli import main
    from dreamkit.dream import dream
    from dreamkit.image_io import load_image, save_image
    from dreamkit.records import Photo, Recipe, Record, provenance, read_record
    from dreamkit.settings import DreamSettings
    from dreamkit.targets import objective_of

    target = Target("mean", layer="inception3b").resolve(googlenet.layers, "bvlc_googlenet")
    assert target.stem() == "inception3b_mean" and target.label() == "inception3b"
    photo = IMAGES / "chelsea.jpg"
    settings = DreamSettings(size=64, octaves=1, steps=2)
    ran: dict = {}
    image = dream(googlenet, load_image(photo), objective_of([target], "bvlc_googlenet"),
                  settings, ran=ran)
    recipe = Recipe("dream", "bvlc_googlenet", (target,), settings, Photo.of(photo))
    save_image(image, Path("toy.png"), metadata=Record(recipe, googlenet.weights_sha256(),
                                                       provenance(ran)).metadata())
    assert json.loads(json.dumps(read_record("toy.png").recipe.target[0].to_record())) == \
        {"kind": "mean", "layer": "inception3b"}
    assert main(["reproduce", "toy.png", "-o", "again.png"]) == 0
    assert "identical" in capsys.readouterr().out


def test_an_unknown_kind_names_the_known_ones():
    with pytest.raises(DreamkitError, match="must be one of layer, channel, neuron"):
        Target.from_record({"kind": "mean", "layer": "conv1"})
    assert "mean" not in KINDS

