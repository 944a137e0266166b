"""Download a model's published weights, verify their checksum and store them.

bvlc_googlenet and squeezenet1_1 come from the Caffe model zoo (.caffemodel, SHA-1 checked,
converted without Caffe); googlenet, vgg16, vgg19 and resnet50 from torchvision (hash checked),
as safetensors in the user cache (~/.cache/dreamkit) unless -o says otherwise. For
torchvision:NAME and timm:NAME the weights go to that library's own cache.

examples:
  dreamkit fetch-weights bvlc_googlenet
  dreamkit fetch-weights vgg16 -o weights/vgg16.safetensors
  dreamkit fetch-weights torchvision:resnet18
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dreamkit.errors import DreamkitError
from dreamkit.models.catalog import catalog_entry, unknown_model


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model name, e.g. bvlc_googlenet or torchvision:resnet18")
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="where to write a built-in model's weights (default: "
                             "<cache>/<model>.safetensors)")


def run(args: argparse.Namespace) -> int:
    from dreamkit.models.sources import kind_of

    if catalog_entry(args.model) is None:
        if kind_of(args.model) not in ("torchvision", "timm"):
            raise unknown_model(args.model)
        if args.output:
            raise DreamkitError(f"-o: {args.model}'s weights go to its library's own cache")
        from dreamkit.models.sources import fetch_library_weights

        try:
            print(fetch_library_weights(args.model))
        except DreamkitError:
            raise
        except Exception as exc:  # noqa: BLE001 - offline, proxy, HTTP errors alike
            raise DreamkitError(f"downloading {args.model}'s weights failed "
                                f"({type(exc).__name__}: {exc})") from None
        return 0
    from dreamkit.models.registry import download_weights
    from dreamkit.models.weights import cache_dir

    dest = Path(args.output) if args.output else cache_dir() / f"{args.model}.safetensors"
    if dest.suffix != ".safetensors":
        raise DreamkitError(f"{dest}: weights are written as .safetensors")
    print(download_weights(args.model, dest))
    return 0
