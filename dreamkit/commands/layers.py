"""List a model's dream-worthy layers with their tier, channels and stride, in network order.

Tiers: low = edges, strokes, colours; mid = textures, patterns, parts; high = objects.
`--layer low|mid|high` in other commands picks the tier's default (marked *).
"""

from __future__ import annotations

import argparse

from dreamkit.models import DEFAULT_MODEL, MODELS, get_spec

NAME = "layers"
HELP = "list the layers of a model (tier, channels, stride)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", "-m", default=DEFAULT_MODEL,
                        help="model to list (default: %(default)s)")
    parser.add_argument("--models", action="store_true", help="list the models instead")


def run(args: argparse.Namespace) -> int:
    if args.models:
        for spec in MODELS.values():
            print(f"{spec.name:<16} {spec.description}")
        return 0
    spec = get_spec(args.model)
    defaults = set(spec.layers.defaults.values())
    print(f"{'layer':<14} {'tier':<5} {'channels':>8} {'stride':>7}   ({spec.name})")
    for layer in spec.layers:
        stride = "global" if layer.stride is None else str(layer.stride)
        mark = " *" if layer.name in defaults else ""
        print(f"{layer.name:<14} {layer.tier:<5} {layer.channels:>8} {stride:>7}{mark}")
    return 0
