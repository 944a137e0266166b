"""Learned directions: strict, bit-exact files; fitting and PCA; the cat direction end to end."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from dreamkit.cli import dream_main, main
from dreamkit.directions import (
    Directions,
    cross_validated_accuracy,
    load_directions,
    principal_directions,
)
from dreamkit.errors import DreamkitError
from dreamkit.image_io import load_image, save_image
from dreamkit.models import layer_table
from dreamkit.targets import Target, split_direction_arg
from tests.helpers import IMAGES, requires_weights

CAT_CLASSES = slice(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def resolve_direction_arg(spec: str, model: str, layer: str | None = None):
    """(layer, vector) of a `FILE[:ROW]` direction target checked against `model`."""
    target = Target.of_direction(spec, layer).resolve(layer_table(model), model)
    return target.layer, target.vector(model)


def _saved(tmp_path, vectors, layer="inception4c", model="bvlc_googlenet", name="d"):
    return Directions(vectors, layer, model, "pca", {"accuracy": 1.0}).save(
        tmp_path / f"{name}.safetensors")


def test_save_load_is_bit_exact_and_index_picks_a_row(tmp_path):
    vectors = torch.randn(3, 512) * torch.logspace(-40, 30, 512)  # subnormals to huge
    vectors[0, :4] = torch.tensor([-0.0, 0.0, 1e-45, -3.4e38])
    path = _saved(tmp_path, vectors)
    loaded = load_directions(path, model="bvlc_googlenet", layer="inception_4c/output")
    assert torch.equal(loaded.vectors.view(torch.int32), vectors.view(torch.int32))
    assert (loaded.layer, loaded.model, loaded.method) == ("inception4c", "bvlc_googlenet", "pca")
    layer, vector = resolve_direction_arg(f"{path}:2", "bvlc_googlenet")
    assert layer == "inception4c" and torch.equal(vector.view(torch.int32),
                                                  vectors[2].view(torch.int32))
    assert torch.equal(resolve_direction_arg(str(path), "bvlc_googlenet")[1], vectors[0])


def test_direction_for_another_model_or_layer_is_refused(tmp_path):
    path = _saved(tmp_path, torch.randn(2, 512))
    with pytest.raises(DreamkitError, match="fitted on model bvlc_googlenet, not squeezenet1_1"):
        resolve_direction_arg(str(path), "squeezenet1_1")
    with pytest.raises(DreamkitError, match="is for layer inception4c, not inception4d") as info:
        resolve_direction_arg(str(path), "bvlc_googlenet", "inception4d")
    assert "\n" not in str(info.value)
    with pytest.raises(DreamkitError, match="row 2 is out of range"):
        resolve_direction_arg(f"{path}:2", "bvlc_googlenet")
    wrong_width = _saved(tmp_path, torch.randn(1, 100), name="narrow")
    with pytest.raises(DreamkitError, match="100 entries but inception4c has 512"):
        resolve_direction_arg(str(wrong_width), "bvlc_googlenet")


def test_malformed_files_are_refused(tmp_path):
    good = {"format": "dreamkit-directions/1", "dreamkit": "0.1.0", "model": "bvlc_googlenet",
            "layer": "inception4c", "method": "mean", "stats": "{}"}
    cases = {
        "extra_tensor": ({"directions": torch.zeros(1, 512), "x": torch.zeros(1)}, good),
        "no_metadata": ({"directions": torch.zeros(1, 512)}, None),
        "float64": ({"directions": torch.zeros(1, 512, dtype=torch.float64)}, good),
        "bad_stats": ({"directions": torch.zeros(1, 512)}, {**good, "stats": "[1]"}),
        "nan": ({"directions": torch.full((1, 512), float("nan"))}, good),
    }
    for name, (tensors, metadata) in cases.items():
        path = tmp_path / f"{name}.safetensors"
        save_file(tensors, str(path), metadata=metadata)
        with pytest.raises(DreamkitError, match="not a valid dreamkit direction file"):
            load_directions(path)
    pickled = tmp_path / "pickle.safetensors"
    torch.save({"directions": torch.zeros(1, 512)}, pickled)
    with pytest.raises(DreamkitError, match="not a valid dreamkit direction file"):
        load_directions(pickled)
    with pytest.raises(DreamkitError, match="no such file"):
        load_directions(tmp_path / "missing.safetensors")
    zero = _saved(tmp_path, torch.zeros(2, 512), name="zero")
    with pytest.raises(DreamkitError, match="row 0 is a zero vector"):
        load_directions(zero)


def test_pca_finds_a_planted_direction_with_its_heavy_tail_positive():
    generator = torch.Generator().manual_seed(0)
    planted = F.normalize(torch.randn(64, generator=generator), dim=0)
    strength = torch.randn(2000, generator=generator).exp() * 5  # skewed: a heavy positive tail
    samples = torch.randn(2000, 64, generator=generator) * 0.3 + strength[:, None] * planted
    found = principal_directions(samples, 2, "inception4c", "bvlc_googlenet")
    assert found.vectors[0] @ planted > 0.99
    assert abs(found.vectors[1] @ planted) < 0.1
    ratio = found.stats["explained_variance_ratio"]
    assert ratio[0] > 0.8 > ratio[1]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["mean", "probe"])
def test_held_out_accuracy_is_high_on_signal_and_chance_on_noise(method):
    generator = torch.Generator().manual_seed(1)
    shift = torch.zeros(32)
    shift[3] = 5.0
    pos = torch.randn(60, 32, generator=generator) + shift
    neg = torch.randn(60, 32, generator=generator)
    assert cross_validated_accuracy(pos, neg, method)[0] > 0.9
    noise = torch.randn(60, 32, generator=generator)
    assert cross_validated_accuracy(noise, neg, method)[0] < 0.7


def _cat_probability(net, image: torch.Tensor) -> float:
    with torch.no_grad():
        return net(image[None]).softmax(-1)[0, CAT_CLASSES].sum().item()


@pytest.mark.slow
@requires_weights
def test_cat_direction_separates_crops_and_dreams_cats_in_and_out(googlenet, tmp_path, capsys):
    """Acceptance: fit chelsea vs coffee crops, then `dream --direction` (+ and --negate)."""
    cat = tmp_path / "cat.safetensors"
    assert main(["direction", "fit", "--layer", "inception4e", "--crops", "12", "--crop-size",
                 "128", "--positive", str(IMAGES / "chelsea.jpg"), "--negative",
                 str(IMAGES / "coffee.jpg"), "-o", str(cat)]) == 0
    assert "held-out accuracy" in capsys.readouterr().out
    assert load_directions(cat).stats["accuracy"] >= 0.9

    ratios = {}
    for name, negate in (("coffee", []), ("chelsea", ["--negate"])):
        photo = load_image(IMAGES / f"{name}.jpg")
        small = F.interpolate(photo[None], scale_factor=0.4, mode="bilinear", antialias=True)[0]
        source, out = tmp_path / f"{name}.png", tmp_path / f"{name}_out.png"
        save_image(small, source)
        assert dream_main([str(source), "--direction", str(cat), *negate, "--octaves", "2",
                           "--steps", "6", "-q", "-o", str(out)]) == 0
        before, after = (_cat_probability(googlenet, load_image(p)) for p in (source, out))
        ratios[name] = after / before
    assert ratios["coffee"] >= 10, ratios
    assert ratios["chelsea"] <= 0.1, ratios


@requires_weights
def test_dream_refuses_a_direction_of_another_layer(tmp_path, capsys):
    path = _saved(tmp_path, torch.randn(1, 512))
    assert dream_main([str(IMAGES / "chelsea.jpg"), "--direction", str(path), "--layer",
                       "inception4d", "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "is for layer inception4c, not inception4d" in err and err.count("\n") == 1


def test_direction_arguments_split_at_a_colon_only_before_digits():
    assert split_direction_arg("dirs/cat.safetensors:3") == ("dirs/cat.safetensors", 3)
    assert split_direction_arg("a:b.safetensors") == ("a:b.safetensors", 0)
    assert split_direction_arg("cat.safetensors") == ("cat.safetensors", 0)


def test_crop_activations_are_made_a_few_at_a_time_within_a_bound(monkeypatch):
    """`direction fit/pca` held every crop and every activation map at once (256 crops of
    1024 px: 9 GB and more). Crops are now made and run a few at a time, the same crops
    whatever the batch, and PCA keeps a bounded sample of positions."""
    from torch import nn

    import dreamkit.directions as directions
    from dreamkit.models import wrap

    net = wrap(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()), preprocess="none",
               name="tiny")
    images = [torch.rand(3, 40, 50, generator=torch.Generator().manual_seed(i)) for i in (1, 2)]
    monkeypatch.setattr(directions, "CROP_PIXELS", 3 * 24**2)  # 3 crops a batch: 3 + 3 + 1
    rows, groups = directions.crop_activations(net, images, 7, 24, "0", seed=5)
    whole, _ = directions.augmented(images, 7, 24, seed=5)  # all at once, in memory
    expected = directions.activations(net, whole, "0").mean(dim=(2, 3))
    torch.testing.assert_close(rows, expected)
    assert groups.tolist() == [0] * 7 + [1] * 7
    monkeypatch.setattr(directions, "PCA_VALUES", 4 * 600)  # 600 vectors of 4 channels
    vectors, groups = directions.crop_activations(net, images, 7, 24, "0", positions=True)
    assert vectors.shape[1] == 4 and 500 <= len(vectors) <= 700  # of 14 x 576 positions
    assert len(groups) == len(vectors)
