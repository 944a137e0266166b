"""The built-in models: exact architectures, layer tables as data, weight lookup."""

from __future__ import annotations

import pickle
import sys

import pytest
import torch
import torch.nn.functional as F

from dreamkit.capture import capture
from dreamkit.errors import DreamkitError
from dreamkit.imagenet import class_index, class_names
from dreamkit.models import CATALOG, layer_table, load_model, registry
from dreamkit.models.weights import read_state

BUILT = [name for name, entry in CATALOG.items() if entry.table is not None]


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


@pytest.mark.slow
@pytest.mark.parametrize("name", BUILT)
def test_layer_table_data_matches_the_network(name):
    """Every listed layer exists, with the channels and stride the catalog's data claims."""
    net = load_model(name, random_weights=True)
    assert net.layers is CATALOG[name].table
    size = 224
    acts = capture(net, torch.rand(1, 3, size, size), [layer.name for layer in net.layers])
    for layer in net.layers:
        act = acts[layer.name]
        assert act.shape[1] == layer.channels, layer.name
        if layer.stride is not None:
            assert abs(act.shape[-1] - size / layer.stride) <= 1, (layer.name, act.shape)
    tiers = [layer.tier for layer in net.layers]
    assert tiers == sorted(tiers, key=["low", "mid", "high"].index), "tiers follow depth"


def test_reading_a_table_builds_no_network(monkeypatch):
    monkeypatch.setattr(registry, "load_model", None)  # any build would crash
    for name in BUILT:
        assert layer_table(name) is CATALOG[name].table


def test_one_default_layer_per_model_for_the_cli_and_the_api():
    """squeezenet1_1's default was fire7 in the CLI and fire5 in the Python API."""
    from dreamkit.cli import build_parser
    from dreamkit.commands.dream import target_of

    for name in BUILT:
        table = CATALOG[name].table
        args = build_parser().parse_args(["dream", "x.jpg", "--model", name])
        assert target_of(args, table).layer == table.default == table.defaults["mid"]


def test_layer_lookup_by_name_tier_and_caffe_spelling():
    layers = CATALOG["bvlc_googlenet"].table
    assert layers.resolve("inception4c").name == "inception4c"
    assert layers.resolve("inception_4c/output").name == "inception4c"
    assert layers.resolve("high").tier == "high"
    assert layers.resolve("low").tier == "low"
    assert layers.resolve("logits").name == "fc"
    with pytest.raises(DreamkitError, match="did you mean inception4c"):
        layers.resolve("inceptoin4c")


def test_layer_suggestions_put_look_alikes_and_owners_first():
    """`_blocks.1O` meant `_blocks.10` (difflib ranked `_blocks.1`, `.15`, `.14` above it), and
    a parameter path names the module that holds it."""
    from dreamkit.layers import suggestions

    blocks = [f"_blocks.{i}" for i in range(16)]
    assert suggestions("_blocks.1O", blocks)[0] == "_blocks.10"
    assert suggestions("_blocks.l5", blocks)[0] == "_blocks.15"
    assert suggestions("layer3.1.conv1.weight", ["layer3.1", "layer3.1.conv1"]) == \
        ["layer3.1.conv1"]
    assert suggestions("2.weight", ["0", "2", "4"]) == ["2"]
    assert suggestions("zzz", blocks) == []


def test_unknown_model_suggests_names():
    with pytest.raises(DreamkitError, match="did you mean bvlc_googlenet"):
        load_model("bvlc_googlenett")


def test_missing_weights_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("DREAMKIT_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("DREAMKIT_CACHE", str(tmp_path / "cache"))
    from dreamkit.models import caffe

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(caffe, "fetch_caffe_weights", offline)
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


def test_weights_hash_ignores_memory_layout():
    net = load_model("squeezenet1_1", random_weights=True)
    digest = net.weights_sha256()
    again = load_model("squeezenet1_1", random_weights=True)
    again.load_state_dict(net.state_dict())
    again.to(memory_format=torch.contiguous_format)
    assert again.weights_sha256() == digest
    with torch.no_grad():
        next(again.parameters()).add_(1)
    again.__dict__.pop("_weights_sha256")
    assert again.weights_sha256() != digest


def test_class_names():
    assert class_index("golden retriever") == 207
    assert class_index("Egyptian cat") == 285
    with pytest.raises(DreamkitError, match="did you mean"):
        class_index("golden retreiver")


def test_importing_dreamkit_and_its_cli_loads_no_torch():
    import subprocess

    code = "import dreamkit, dreamkit.cli, sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_facade_functions_survive_importing_their_submodules_first():
    """`dreamkit.dream` is the function even after `import dreamkit.dream` (Python sets the
    package attribute to the submodule on import)."""
    import subprocess

    code = ("import dreamkit.render, dreamkit.dream, dreamkit.capture\nimport dreamkit as dk\n"
            "print(all(callable(f) and not isinstance(f, type(dk)) "
            "for f in (dk.render, dk.dream, dk.capture)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
