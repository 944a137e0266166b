"""Named models: how to build each, where its weights come from, and its layer table."""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch

from dreamkit.errors import DreamkitError
from dreamkit.layers import LayerTable
from dreamkit.models import bvlc_googlenet, squeezenet
from dreamkit.models.staged import StagedNet
from dreamkit.models.weights import cache_dir, find_weights, how_to_get, read_state

DEFAULT_MODEL = "bvlc_googlenet"


@dataclass(frozen=True)
class ModelSpec:
    """`build(state)` makes the network from a weight dict (None: random weights)."""

    name: str
    description: str
    build: Callable[[dict[str, torch.Tensor] | None], StagedNet]
    download: Callable[[Path], Path]
    default_layer: str

    @cached_property
    def layers(self) -> LayerTable:
        """The layer table (builds the architecture once, without weights)."""
        return self.build(None).layers


def _caffe_builder(module) -> Callable[[dict[str, torch.Tensor] | None], StagedNet]:
    def build(state: dict[str, torch.Tensor] | None) -> StagedNet:
        net = module.build()
        if state is None:
            return net
        try:
            renamed = {}
            for key, value in state.items():
                layer, _, kind = key.rpartition(".")
                renamed[f"{module.caffe_to_module_name(layer)}.{kind}"] = value
            net.load_state_dict(renamed, strict=True)
        except (KeyError, RuntimeError) as exc:
            raise DreamkitError(
                f"the weights do not fit {net.name}: {str(exc).splitlines()[0]}"
            ) from exc
        return net

    return build


def _caffe_download(name: str) -> Callable[[Path], Path]:
    def download(dest: Path) -> Path:
        from dreamkit.models.caffe import fetch_caffe_weights

        return fetch_caffe_weights(name, dest)

    return download


def _torchvision_spec(name: str, description: str, default_layer: str) -> ModelSpec:
    def build(state: dict[str, torch.Tensor] | None) -> StagedNet:
        from dreamkit.models import torchvision_zoo  # torchvision.models is slow to import

        return torchvision_zoo.build(name, state)

    def download(dest: Path) -> Path:
        from dreamkit.models import torchvision_zoo

        return torchvision_zoo.download(name, dest)

    return ModelSpec(name, description, build, download, default_layer)


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "bvlc_googlenet",
            "BVLC GoogLeNet (Caffe), the original DeepDream network",
            _caffe_builder(bvlc_googlenet),
            _caffe_download("bvlc_googlenet"),
            "inception4c",
        ),
        ModelSpec(
            "squeezenet1_1",
            "SqueezeNet v1.1 (Caffe), small and fast",
            _caffe_builder(squeezenet),
            _caffe_download("squeezenet1_1"),
            "fire7",
        ),
        _torchvision_spec("googlenet", "torchvision GoogLeNet (batch norm, 3x3 '5x5')",
                          "inception4c"),
        _torchvision_spec("vgg16", "torchvision VGG-16", "conv4_2"),
        _torchvision_spec("vgg19", "torchvision VGG-19", "conv4_2"),
        _torchvision_spec("resnet50", "torchvision ResNet-50", "layer3_2"),
    )
}


def get_spec(name: str) -> ModelSpec:
    """The spec of a registered model; unknown names fail with the closest names."""
    if name in MODELS:
        return MODELS[name]
    close = difflib.get_close_matches(name, list(MODELS), n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    raise DreamkitError(f"unknown model {name!r}{hint} (known: {', '.join(MODELS)})")


def load_model(
    name: str = DEFAULT_MODEL,
    weights: str | os.PathLike | None = None,
    *,
    device: str | torch.device = "cpu",
    random_weights: bool = False,
) -> StagedNet:
    """A ready network in eval mode with frozen parameters.

    Weights: `weights` file, else `$DREAMKIT_WEIGHTS/<name>.safetensors`, else the user cache,
    else a download into the cache. `random_weights=True` skips them (for tests and baselines).
    """
    spec = get_spec(name)
    state = None
    if not random_weights:
        path = find_weights(name, weights)
        if path is None:
            try:
                path = spec.download(cache_dir() / f"{name}.safetensors")
            except DreamkitError:
                raise
            except Exception as exc:  # noqa: BLE001 - offline, proxy, HTTP errors alike
                raise DreamkitError(f"{how_to_get(name)} (download failed: {exc})") from exc
        state = read_state(path)
    net = spec.build(state).eval().requires_grad_(False)
    # channels_last is what oneDNN and cuDNN run fastest; images are made so in `tiling`
    return net.to(device=device, memory_format=torch.channels_last)
