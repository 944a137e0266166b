"""List a model's dream-worthy layers with their tier, channels and stride, in network order.

Tiers: low = edges, strokes, colours; mid = textures, patterns, parts; high = objects.
`--layer low|mid|high` in other commands picks the tier's default (marked *). Built-in models
list their table at once; any other model (torchvision:NAME, timm:NAME, package.module:factory)
is built with random weights (no download needed) and its table discovered by one probe pass.

examples:
  dreamkit layers
  dreamkit layers --model squeezenet1_1
  dreamkit layers --model torchvision:resnet18
  dreamkit layers --models
"""

from __future__ import annotations

import argparse

from dreamkit.models.catalog import CATALOG, DEFAULT_MODEL, catalog_entry


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", "-m", default=DEFAULT_MODEL, metavar="SPEC",
                        help="model to list (default: %(default)s)")
    parser.add_argument("--models", action="store_true", help="list the built-in models")


def run(args: argparse.Namespace) -> int:
    if args.models:
        for entry in CATALOG.values():
            print(f"{entry.name:<20} {entry.description}")
        print("also: torchvision:NAME, timm:NAME (pip install timm), package.module:factory")
        return 0
    entry = catalog_entry(args.model)
    if entry is not None and entry.table is not None:
        table, note = entry.table, ""
    else:
        from dreamkit.models.registry import load_model
        from dreamkit.models.sources import kind_of

        net = load_model(args.model, random_weights=True)
        table = net.layers
        note = "; discovered by one probe pass of the factory's model" if \
            kind_of(args.model) == "factory" else "; discovered with random weights, which " \
            "it does not depend on: nothing was downloaded"
        if isinstance(getattr(net, "inputs", None), str):
            note += f"; inputs normalized with {net.inputs}"
    print(table.text(note))
    return 0
