"""Learn directions of a layer's activation space (concept fit, PCA) for `--direction`.

The files are read by `dream --direction`, `dreamkit vis --direction` and the microscope.

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

from dreamkit.commands.common import (
    add_model_arguments,
    add_settings,
    check_output,
    model_files,
    open_model,
    settings_from,
    table_and_model,
)
from dreamkit.settings import DirectionSettings


def _common(parser: argparse.ArgumentParser, only: tuple[str, ...]) -> None:
    parser.add_argument("--layer", "-l", required=True, help="layer name or tier low|mid|high")
    parser.add_argument("-o", "--output", required=True, metavar="FILE",
                        help="direction file to write (.safetensors)")
    add_settings(parser.add_argument_group("sampling"), DirectionSettings,
                 ("crops", "crop_size", "seed", *only))
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
    _common(fit, ("folds",))
    pca = sub.add_parser("pca", help="principal directions of a layer's activations",
                         description="Principal directions of a layer over images and positions.")
    pca.add_argument("--images", nargs="+", required=True, metavar="PATH",
                     help="folders and/or image files")
    _common(pca, ("k",))


def load_all(paths: list[str]):
    """Every image named by `paths` (folders expanded), checked and loaded."""
    from dreamkit.image_io import image_files, load_image

    return [load_image(f) for f in image_files(paths)]


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args, DirectionSettings)
    inputs = [*getattr(args, "positive", []), *getattr(args, "negative", []),
              *getattr(args, "images", [])]
    check_output(Path(args.output), inputs=[*inputs, *model_files(args)],
                 extensions=(".safetensors",))
    table, net = table_and_model(args)
    layer = table.resolve(args.layer).name
    sets = {"positive": args.positive, "negative": args.negative} if args.action == "fit" \
        else {"images": args.images}
    loaded = {name: load_all(paths) for name, paths in sets.items()}  # checked before the model
    model = net or open_model(args)
    from dreamkit.directions import crop_activations, fit_direction, principal_directions

    def crops(images: list, seed: int, positions: bool = False):
        return crop_activations(model, images, settings.crops, settings.crop_size, layer, seed,
                                positions=positions)

    if args.action == "fit":
        pos, pos_groups = crops(loaded["positive"], settings.seed)
        neg, neg_groups = crops(loaded["negative"], settings.seed + 1)
        result = fit_direction(pos, neg, layer, args.model, args.method,
                               folds=settings.folds, pos_groups=pos_groups,
                               neg_groups=neg_groups, seed=settings.seed)
        unit = "images" if result.stats["folds_over_images"] else "crops"
        summary = (f"held-out accuracy {result.stats['accuracy']:.3f} "
                   f"({int(result.stats['folds'])}-fold over {unit}; {len(pos)} positive vs "
                   f"{len(neg)} negative crops)")
    else:
        acts, _ = crops(loaded["images"], settings.seed, positions=True)
        result = principal_directions(acts, settings.k, layer, args.model)
        ratios = ", ".join(f"{r:.3f}" for r in result.stats["explained_variance_ratio"])
        summary = f"explained variance ratio: {ratios}"
    result.save(args.output)
    print(f"{args.output}: {result.method} direction(s) of {args.model} {layer}; {summary}")
    return 0
