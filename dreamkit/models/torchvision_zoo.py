"""torchvision's ImageNet models (googlenet, vgg16, vgg19, resnet50) as staged networks.

Their layer tables are data in `dreamkit.models.catalog`; weights come through torchvision's
weights API (the published file, checked against the hash in its name, converted to
safetensors in the dreamkit cache).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch
import torchvision
from torch import nn

from dreamkit.models.catalog import CATALOG
from dreamkit.models.relu import make_switchable
from dreamkit.models.scaling import IMAGENET_MEAN, IMAGENET_STD
from dreamkit.models.staged import Normalize, StagedNet

WEIGHTS = {
    "googlenet": "GoogLeNet_Weights.IMAGENET1K_V1",
    "vgg16": "VGG16_Weights.IMAGENET1K_V1",
    "vgg19": "VGG19_Weights.IMAGENET1K_V1",
    "resnet50": "ResNet50_Weights.IMAGENET1K_V1",
}
State = dict[str, torch.Tensor] | None


class Halves(nn.Module):
    """RGB [0, 1] -> [-1, 1]: what torchvision's GoogLeNet sees after `transform_input`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2.0 - 1.0


def _staged(name: str, preprocess: nn.Module, stages: list[tuple[str, nn.Module]]) -> StagedNet:
    net = StagedNet(name, preprocess, stages, CATALOG[name].table)  # type: ignore[arg-type]
    return make_switchable(net)  # type: ignore[return-value]


def _unfuse_relus(net: nn.Module) -> None:
    """torchvision's BasicConv2d applies a functional ReLU; rebuild each as conv, bn and a
    `SwitchableReLU` module (same keys, same math) so the redirected ReLU reaches it."""
    from torchvision.models.googlenet import BasicConv2d

    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, BasicConv2d):
                setattr(parent, name, nn.Sequential(OrderedDict(
                    conv=child.conv, bn=child.bn, relu=nn.ReLU())))


def googlenet(state: State) -> StagedNet:
    net = torchvision.models.googlenet(
        weights=None, aux_logits=False, transform_input=False, init_weights=state is None
    )
    if state is not None:
        net.load_state_dict({k: v for k, v in state.items() if not k.startswith("aux")})
    _unfuse_relus(net)
    names = ["conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a", "inception3b",
             "maxpool3", "inception4a", "inception4b", "inception4c", "inception4d",
             "inception4e", "maxpool4", "inception5a", "inception5b"]
    stages = [(name, getattr(net, name)) for name in names]
    stages.append(("fc", nn.Sequential(net.avgpool, nn.Flatten(1), net.fc)))
    return _staged("googlenet", Halves(), stages)


def _vgg(name: str, state: State) -> StagedNet:
    net = getattr(torchvision.models, name)(weights=None)
    if state is not None:
        net.load_state_dict(state)
    stages: list[tuple[str, nn.Module]] = []
    block, index, pending = 1, 1, None
    for module in net.features:
        if isinstance(module, nn.Conv2d):
            pending = module
        elif isinstance(module, nn.ReLU):
            stages.append((f"conv{block}_{index}", nn.Sequential(pending, module)))
            index += 1
        else:  # max pool
            stages.append((f"pool{block}", module))
            block, index = block + 1, 1
    stages.append(("fc", nn.Sequential(net.avgpool, nn.Flatten(1), net.classifier)))
    return _staged(name, Normalize(IMAGENET_MEAN, IMAGENET_STD), stages)


def vgg16(state: State) -> StagedNet:
    return _vgg("vgg16", state)


def vgg19(state: State) -> StagedNet:
    return _vgg("vgg19", state)


def resnet50(state: State) -> StagedNet:
    net = torchvision.models.resnet50(weights=None)
    if state is not None:
        net.load_state_dict(state)
    stages: list[tuple[str, nn.Module]] = [
        ("conv1", nn.Sequential(net.conv1, net.bn1, net.relu)),
        ("maxpool", net.maxpool),
    ]
    for group in range(1, 5):
        for index, block in enumerate(getattr(net, f"layer{group}")):
            stages.append((f"layer{group}_{index}", block))
    stages.append(("fc", nn.Sequential(net.avgpool, nn.Flatten(1), net.fc)))
    return _staged("resnet50", Normalize(IMAGENET_MEAN, IMAGENET_STD), stages)


def download(name: str, dest: Path, *, progress: bool = True) -> Path:
    """Fetch torchvision's published weights, verify their hash, save them as safetensors."""
    from safetensors.torch import save_file

    from dreamkit.files import atomic_path

    url = torchvision.models.get_weight(WEIGHTS[name]).url
    dest.parent.mkdir(parents=True, exist_ok=True)
    download_path = dest.with_name(Path(url).name)
    hash_prefix = Path(url).stem.rsplit("-", 1)[-1]
    torch.hub.download_url_to_file(url, str(download_path), hash_prefix, progress=progress)
    try:
        state = torch.load(download_path, map_location="cpu", weights_only=True)
        with atomic_path(dest) as tmp:
            save_file({k: v.contiguous() for k, v in state.items()}, str(tmp))
    finally:
        download_path.unlink(missing_ok=True)
    return dest
