"""Download a model's published weights, verify their checksum and store them as safetensors.

bvlc_googlenet and squeezenet1_1 come from the Caffe model zoo (.caffemodel, SHA-1 checked,
converted without Caffe); torchvision models from torchvision (hash checked). The file lands in
the user cache (~/.cache/dreamkit) unless -o says otherwise.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dreamkit.models import get_spec
from dreamkit.models.weights import cache_dir

NAME = "fetch-weights"
HELP = "download and convert a model's weights"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model name, e.g. bvlc_googlenet")
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="where to write (default: <cache>/<model>.safetensors)")


def run(args: argparse.Namespace) -> int:
    spec = get_spec(args.model)
    dest = Path(args.output) if args.output else cache_dir() / f"{spec.name}.safetensors"
    print(spec.download(dest))
    return 0
