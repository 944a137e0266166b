"""The model registry: exact architectures, layer tables, weight lookup."""

from __future__ import annotations

import dataclasses
import pickle

import pytest
import torch
import torch.nn.functional as F

from dreamkit.capture import capture
from dreamkit.errors import DreamkitError
from dreamkit.imagenet import class_index, class_names
from dreamkit.models import MODELS, get_spec, load_model
from dreamkit.models.weights import read_state


def _top1(net, image: torch.Tensor) -> str:
    x = F.interpolate(image[None], size=(224, 224), mode="bilinear", antialias=True)
    with torch.no_grad():
        return class_names()[int(net(x).argmax())]


@pytest.mark.parametrize(("name", "label"), [("chelsea", "Egyptian cat"), ("coffee", "espresso")])
def test_bvlc_googlenet_classifies_the_photos(googlenet, photo, name, label):
    assert _top1(googlenet, photo(name)) == label


@pytest.mark.parametrize(("name", "label"), [("chelsea", "Egyptian cat"), ("coffee", "espresso")])
def test_squeezenet_classifies_the_photos(squeezenet, photo, name, label):
    assert _top1(squeezenet, photo(name)) == label


@pytest.mark.parametrize("name", list(MODELS))
def test_layer_table_matches_the_network(name):
    """Every listed layer exists, with the channels and stride the table claims."""
    net = load_model(name, random_weights=True)
    size = 224
    acts = capture(net, torch.rand(1, 3, size, size), [layer.name for layer in net.layers])
    for layer in net.layers:
        act = acts[layer.name]
        assert act.shape[1] == layer.channels, layer.name
        if layer.stride is not None:
            assert abs(act.shape[-1] - size / layer.stride) <= 1, (layer.name, act.shape)
    tiers = [layer.tier for layer in net.layers]
    assert tiers == sorted(tiers, key=["low", "mid", "high"].index), "tiers follow depth"


def test_layer_lookup_by_name_tier_and_caffe_spelling():
    layers = get_spec("bvlc_googlenet").layers
    assert layers.resolve("inception4c").name == "inception4c"
    assert layers.resolve("inception_4c/output").name == "inception4c"
    assert layers.resolve("high").tier == "high"
    assert layers.resolve("low").tier == "low"
    with pytest.raises(DreamkitError, match="did you mean inception4c"):
        layers.resolve("inceptoin4c")


def test_unknown_model_suggests_names():
    with pytest.raises(DreamkitError, match="did you mean bvlc_googlenet"):
        get_spec("bvlc_googlenett")


def test_missing_weights_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("DREAMKIT_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("DREAMKIT_CACHE", str(tmp_path / "cache"))

    def offline(dest):
        raise OSError("network is unreachable")

    spec = dataclasses.replace(get_spec("bvlc_googlenet"), download=offline)
    monkeypatch.setitem(MODELS, "bvlc_googlenet", spec)
    with pytest.raises(DreamkitError) as err:
        load_model("bvlc_googlenet")
    message = str(err.value)
    assert "dreamkit fetch-weights bvlc_googlenet" in message
    assert "DREAMKIT_WEIGHTS" in message and "\n" not in message


def test_weights_of_another_model_are_refused(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "bad.safetensors"
    save_file({"conv1.weight": torch.zeros(64, 3, 3, 3), "conv1.bias": torch.zeros(64)}, path)
    with pytest.raises(DreamkitError, match="do not fit bvlc_googlenet"):
        load_model("bvlc_googlenet", path)


class _Payload:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_pickle_payload_is_refused_without_running(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"w": _Payload()}))
    with pytest.raises(DreamkitError, match="refusing to unpickle"):
        read_state(path)
    assert not (tmp_path / "PWNED").exists()
    fake = tmp_path / "evil.safetensors"
    fake.write_bytes(pickle.dumps({"w": _Payload()}))
    with pytest.raises(DreamkitError, match="not a valid safetensors"):
        read_state(fake)
    assert not (tmp_path / "PWNED").exists()


def test_class_names():
    assert class_index("golden retriever") == 207
    assert class_index("Egyptian cat") == 285
    with pytest.raises(DreamkitError, match="did you mean"):
        class_index("golden retreiver")
