"""`load_model(spec)`: any model dreamkit accepts, ready to dream with.

A spec is a built-in name (`dreamkit.models.catalog`), `torchvision:NAME`, `timm:NAME`, or a
user's `package.module:factory` (`dreamkit.models.sources`). Built-in weights are found in
this order: `weights` file > `$DREAMKIT_WEIGHTS/<name>.safetensors` > the user cache > a
download into that cache.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from pathlib import Path

import torch

from dreamkit.errors import DreamkitError
from dreamkit.layers import LayerTable
from dreamkit.models import sources
from dreamkit.models.base import Model
from dreamkit.models.catalog import CatalogEntry, catalog_entry, unknown_model
from dreamkit.models.weights import cache_dir, find_weights, how_to_get, read_state


def _builder(entry: CatalogEntry):
    module, _, function = entry.builder.partition(":")
    return getattr(importlib.import_module(f"dreamkit.models.{module}"), function)


def _caffe_state(entry: CatalogEntry, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Caffe-keyed weights (`inception_4c/5x5.weight`) renamed to module names."""
    names = importlib.import_module(f"dreamkit.models.{entry.builder.partition(':')[0]}")
    renamed = {}
    for key, value in state.items():
        layer, _, kind = key.rpartition(".")
        renamed[f"{names.caffe_to_module_name(layer)}.{kind}"] = value
    return renamed


def download_weights(name: str, dest: Path) -> Path:
    """Fetch a built-in model's published weights into `dest` (safetensors)."""
    entry = catalog_entry(name)
    if entry is None or entry.source == "package":
        raise DreamkitError(f"{name}: no weights to fetch (built-in Caffe and torchvision "
                            "models only; packaged models bring theirs)")
    made = [p for p in (dest.parent, *dest.parent.parents) if not p.exists()]
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DreamkitError(f"{dest}: cannot create its folder ({exc.strerror or exc})") from None
    try:
        if entry.source == "caffe":
            from dreamkit.models.caffe import fetch_caffe_weights

            return fetch_caffe_weights(name, dest)
        from dreamkit.models import torchvision_zoo

        return torchvision_zoo.download(name, dest)
    except BaseException as exc:
        for folder in made:  # a failed fetch leaves no empty folders behind
            with contextlib.suppress(OSError):
                folder.rmdir()
        if isinstance(exc, DreamkitError) or not isinstance(exc, Exception):
            raise
        raise DreamkitError(f"{how_to_get(name)} (download failed: {type(exc).__name__}: "
                            f"{exc})") from None


def _builtin(entry: CatalogEntry, weights: str | os.PathLike | None,
             random_weights: bool) -> Model:
    if entry.source == "package":
        from dreamkit.models import packaged

        return getattr(packaged, entry.name)(weights, random_weights)
    state = None
    if not random_weights:
        path = find_weights(entry.name, weights)
        if path is None:
            path = download_weights(entry.name, cache_dir() / f"{entry.name}.safetensors")
        state = read_state(path)
        if entry.source == "caffe":
            try:
                state = _caffe_state(entry, state)
            except KeyError as exc:
                raise DreamkitError(f"the weights do not fit {entry.name}: unknown layer "
                                    f"{exc}") from None
    net = _builder(entry)() if entry.source == "caffe" else _builder(entry)(state)
    if entry.source == "caffe" and state is not None:
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise DreamkitError(f"the weights do not fit {entry.name}: "
                                f"{str(exc).splitlines()[0]}") from None
    return net


def load_model(
    spec: str = "bvlc_googlenet",
    weights: str | os.PathLike | None = None,
    *,
    device: str | torch.device = "cpu",
    random_weights: bool = False,
) -> Model:
    """A ready network in eval mode with frozen parameters, channels_last on `device`.

    `random_weights=True` skips the weights (tests, baselines, layer tables offline).
    """
    if not isinstance(spec, str):
        raise DreamkitError(f"a model is named by a string, not {type(spec).__name__}")
    entry = catalog_entry(spec)
    kind = sources.kind_of(spec)
    if entry is not None:
        net = _builtin(entry, weights, random_weights)
    elif kind == "torchvision":
        net = sources.torchvision_model(spec, weights, random_weights)
    elif kind == "timm":
        net = sources.timm_model(spec, weights, random_weights)
    elif kind == "factory":
        net = sources.factory_model(spec, weights)
    else:
        raise unknown_model(spec)
    net = net.eval().requires_grad_(False)
    if entry is not None:
        net.dream_defaults = dict(entry.dream)
    # channels_last is what oneDNN and cuDNN run fastest; images are made so in `gradients`
    return net.to(device=device, memory_format=torch.channels_last)


def layer_table(spec: str) -> LayerTable:
    """A model's layer table: data for the built-in networks (nothing is built), discovered
    from the network with random weights for any other spec."""
    entry = catalog_entry(spec)
    if entry is not None and entry.table is not None:
        return entry.table
    return load_model(spec, random_weights=True).layers
