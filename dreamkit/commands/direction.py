"""Learn directions in a layer's activation space and save them for `dream --direction`.

fit: a concept direction from positive and negative images (folders or files), each augmented
     into random crops and flips; prints its k-fold held-out accuracy.
pca: the principal directions of a layer's activations over a set of images.

examples:
  dreamkit direction fit --layer inception4e --positive cats/ --negative other/ -o cat.safetensors
  dreamkit direction fit --layer inception4e --positive cat.jpg --negative coffee.jpg --method probe
  dreamkit direction pca --layer inception4c --images photos/ -k 8 -o pca.safetensors
  dream coffee.jpg --direction cat.safetensors            # amplify the direction
  dream chelsea.jpg --direction pca.safetensors:2 --negate
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from dreamkit.commands.common import add_model_arguments, open_model, positive_int
from dreamkit.directions import (
    activations,
    augmented,
    fit_direction,
    pooled,
    principal_directions,
)
from dreamkit.errors import DreamkitError
from dreamkit.image_io import DEFAULT_MAX_PIXELS, list_images, load_image

NAME = "direction"
HELP = "learn directions of a layer (concept fit, PCA) for dream --direction"


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--layer", "-l", required=True, help="layer name or tier low|mid|high")
    parser.add_argument("-o", "--output", required=True, metavar="FILE",
                        help="direction file to write (.safetensors)")
    parser.add_argument("--crops", type=positive_int, default=32, metavar="N",
                        help="random crops (with flips) per image (default: %(default)s)")
    parser.add_argument("--crop-size", type=positive_int, default=160, metavar="PX",
                        help="side of each crop in pixels (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    add_model_arguments(parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(title="actions", dest="action", metavar="ACTION", required=True)
    fit = sub.add_parser("fit", help="a concept direction from positive vs negative images",
                         description="Fit a concept direction: positive minus negative.")
    fit.add_argument("--positive", nargs="+", required=True, metavar="PATH",
                     help="images of the concept: folders and/or image files")
    fit.add_argument("--negative", nargs="+", required=True, metavar="PATH",
                     help="images without it: folders and/or image files")
    fit.add_argument("--method", choices=["mean", "probe"], default="mean",
                     help="mean = difference of mean pooled activations; probe = logistic "
                          "regression weights (default: %(default)s)")
    fit.add_argument("--folds", type=positive_int, default=5,
                     help="k of the k-fold held-out accuracy (default: %(default)s)")
    _common(fit)
    pca = sub.add_parser("pca", help="principal directions of a layer's activations",
                         description="Principal directions of a layer over images and positions.")
    pca.add_argument("--images", nargs="+", required=True, metavar="PATH",
                     help="folders and/or image files")
    pca.add_argument("-k", type=positive_int, default=8,
                     help="number of directions (default: %(default)s)")
    _common(pca)


def _images(paths: list[str]) -> list[torch.Tensor]:
    files: list[Path] = []
    for path in map(Path, paths):
        files.extend(list_images(path) if path.is_dir() else [path])
    return [load_image(f, max_pixels=DEFAULT_MAX_PIXELS) for f in files]


def run(args: argparse.Namespace) -> int:
    net = open_model(args)
    layer = net.layers.resolve(args.layer).name
    if Path(args.output).suffix != ".safetensors":
        raise DreamkitError(f"{args.output}: direction files end in .safetensors")

    def crops(paths: list[str], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        images, groups = augmented(_images(paths), args.crops, args.crop_size, seed)
        return activations(net, images, layer), groups

    if args.action == "fit":
        pos, pos_groups = crops(args.positive, args.seed)
        neg, neg_groups = crops(args.negative, args.seed + 1)
        result = fit_direction(pooled(pos), pooled(neg), layer, args.model, args.method,
                               folds=args.folds, pos_groups=pos_groups, neg_groups=neg_groups,
                               seed=args.seed)
        unit = "images" if result.stats["folds_over_images"] else "crops"
        folds = int(result.stats["folds"])
        summary = (f"held-out accuracy {result.stats['accuracy']:.3f} ({folds}-fold over "
                   f"{unit}; {len(pos)} positive vs {len(neg)} negative crops)")
    else:
        acts, _ = crops(args.images, args.seed)
        result = principal_directions(acts, args.k, layer, args.model)
        ratios = ", ".join(f"{r:.3f}" for r in result.stats["explained_variance_ratio"])
        summary = f"explained variance ratio: {ratios}"
    result.save(args.output)
    print(f"{args.output}: {result.method} direction(s) of {args.model} {layer}; {summary}")
    return 0
