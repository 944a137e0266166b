"""torchvision's ImageNet models (googlenet, vgg16, vgg19, resnet50) as staged networks.

Weights come through torchvision's weights API: the published file, checked against the hash in
its name, converted to safetensors in the dreamkit cache.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn

from dreamkit.layers import LayerInfo, LayerTable
from dreamkit.models.staged import Normalize, StagedNet

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
WEIGHTS = {
    "googlenet": "GoogLeNet_Weights.IMAGENET1K_V1",
    "vgg16": "VGG16_Weights.IMAGENET1K_V1",
    "vgg19": "VGG19_Weights.IMAGENET1K_V1",
    "resnet50": "ResNet50_Weights.IMAGENET1K_V1",
}


class Halves(nn.Module):
    """RGB [0, 1] -> [-1, 1]: what torchvision's GoogLeNet sees after `transform_input`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2.0 - 1.0


def _googlenet(state: dict[str, torch.Tensor] | None) -> StagedNet:
    net = torchvision.models.googlenet(
        weights=None, aux_logits=False, transform_input=False, init_weights=state is None
    )
    if state is not None:
        net.load_state_dict({k: v for k, v in state.items() if not k.startswith("aux")})
    names = ["conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a", "inception3b",
             "maxpool3", "inception4a", "inception4b", "inception4c", "inception4d",
             "inception4e", "maxpool4", "inception5a", "inception5b"]
    stages = [(name, getattr(net, name)) for name in names]
    stages.append(("fc", nn.Sequential(net.avgpool, nn.Flatten(1), net.fc)))
    widths = {"3a": 256, "3b": 480, "4a": 512, "4b": 512, "4c": 512, "4d": 528, "4e": 832,
              "5a": 832, "5b": 1024}
    tiers = {"3a": "low", "3b": "low", "4a": "mid", "4b": "mid", "4c": "mid"}
    layers = LayerTable(
        "googlenet",
        [LayerInfo("conv1", "low", 64, 2), LayerInfo("conv2", "low", 64, 4),
         LayerInfo("conv3", "low", 192, 4),
         *(LayerInfo(f"inception{k}", tiers.get(k, "high"), c, 8 if k[0] == "3" else
                     16 if k[0] == "4" else 32) for k, c in widths.items()),
         LayerInfo("fc", "high", 1000, None)],
        defaults={"low": "inception3a", "mid": "inception4c", "high": "inception4e"},
    )
    return StagedNet("googlenet", Halves(), stages, layers, logits="fc")


def _vgg(name: str, state: dict[str, torch.Tensor] | None) -> StagedNet:
    net = getattr(torchvision.models, name)(weights=None)
    if state is not None:
        net.load_state_dict(state)
    stages: list[tuple[str, nn.Module]] = []
    infos: list[LayerInfo] = []
    block, index, stride, pending = 1, 1, 1, None
    for module in net.features:
        if isinstance(module, nn.Conv2d):
            pending = module
        elif isinstance(module, nn.ReLU):
            layer = f"conv{block}_{index}"
            stages.append((layer, nn.Sequential(pending, module)))
            tier = "low" if block <= 2 else "mid" if block <= 4 else "high"
            infos.append(LayerInfo(layer, tier, pending.out_channels, stride))
            index += 1
        else:  # max pool
            stages.append((f"pool{block}", module))
            block, index, stride = block + 1, 1, stride * 2
    stages.append(("fc", nn.Sequential(net.avgpool, nn.Flatten(1), net.classifier)))
    infos.append(LayerInfo("fc", "high", 1000, None))
    layers = LayerTable(
        name, infos, defaults={"low": "conv2_2", "mid": "conv4_2", "high": "conv5_3"}
    )
    return StagedNet(name, Normalize(IMAGENET_MEAN, IMAGENET_STD), stages, layers, logits="fc")


def _resnet50(state: dict[str, torch.Tensor] | None) -> StagedNet:
    net = torchvision.models.resnet50(weights=None)
    if state is not None:
        net.load_state_dict(state)
    stages: list[tuple[str, nn.Module]] = [
        ("conv1", nn.Sequential(net.conv1, net.bn1, net.relu)),
        ("maxpool", net.maxpool),
    ]
    infos = [LayerInfo("conv1", "low", 64, 2)]
    tiers = {1: "low", 2: "mid", 3: "mid", 4: "high"}
    for group in range(1, 5):
        for index, block in enumerate(getattr(net, f"layer{group}")):
            name = f"layer{group}_{index}"
            stages.append((name, block))
            infos.append(LayerInfo(name, tiers[group], block.conv3.out_channels, 2 ** (group + 1)))
    stages.append(("fc", nn.Sequential(net.avgpool, nn.Flatten(1), net.fc)))
    infos.append(LayerInfo("fc", "high", 1000, None))
    layers = LayerTable(
        "resnet50", infos, defaults={"low": "layer1_2", "mid": "layer3_2", "high": "layer4_2"}
    )
    return StagedNet("resnet50", Normalize(IMAGENET_MEAN, IMAGENET_STD), stages, layers, "fc")


def build(name: str, state: dict[str, torch.Tensor] | None) -> StagedNet:
    """The staged network `name` with torchvision-keyed `state` (None: random init)."""
    if name == "googlenet":
        return _googlenet(state)
    if name.startswith("vgg"):
        return _vgg(name, state)
    return _resnet50(state)


def download(name: str, dest: Path, *, progress: bool = True) -> Path:
    """Fetch torchvision's published weights, verify their hash, save them as safetensors."""
    from safetensors.torch import save_file

    from dreamkit.image_io import atomic_path

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
