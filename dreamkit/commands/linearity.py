"""Measure how linear each layer of a network is, on random crops of a folder of photos.

For every layer f: homogeneity(k) = E||f(mu + k(x - mu)) - [f(mu) + k(f(x) - f(mu))]|| and
additivity = E||f(mu + (x - mu) + (y - mu)) - [f(x) + f(y) - f(mu)]||, both divided by
E||f(x) - f(y)|| (mu: the mean image; 0 = linear), the same two for the map from the layer to
the logits (latent), and superposition (render directions a, b, a + b; the share of a's and b's
solo projection the a + b image keeps) on a few layers. Baselines: random directions instead of
the photos' own, and random weights (not for superposition). Writes OUTDIR/linearity.json,
.csv and, with matplotlib, linearity.png (definitions: the docs of dreamkit.linearity).

examples:
  dreamkit linearity --images photos/ -o linearity/
  dreamkit linearity --images photos/ -o out/ --superposition-layers none --no-plot
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from dreamkit.commands.common import add_model_arguments, open_model, positive_int, resolve_device
from dreamkit.commands.direction import add_crop_arguments, check_crops, load_all
from dreamkit.errors import DreamkitError
from dreamkit.settings import MAX_K, MAX_SEED, Bounds, check


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", required=True, metavar="DIR", help="folder of photos")
    parser.add_argument("-o", "--output", required=True, metavar="OUTDIR",
                        help="folder for linearity.json, .csv and .png")
    add_crop_arguments(parser, 2, 128)
    parser.add_argument("--layers", metavar="LIST",
                        help="comma-separated layers to probe (default: all of the model's)")
    parser.add_argument("-k", type=float, nargs="+", default=[-1.0, 0.5, 2.0],
                        help=f"homogeneity scales, finite, |k| <= {MAX_K:g} (default: "
                             "%(default)s)")
    parser.add_argument("--superposition-layers", default="low,mid,high", metavar="LIST",
                        help="comma-separated layers or tiers for the superposition probe, or "
                             "none (default: %(default)s)")
    parser.add_argument("--render-steps", type=positive_int, default=64, metavar="N",
                        help="optimization steps of each superposition render (default: "
                             "%(default)s)")
    parser.add_argument("--render-size", type=positive_int, default=64, metavar="PX",
                        help="side of the superposition renders (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG plot")
    add_model_arguments(parser)


def run(args: argparse.Namespace) -> int:
    check_crops(args)
    check("seed", args.seed, Bounds(int, low=0, high=MAX_SEED))
    if not all(math.isfinite(k) and abs(k) <= MAX_K for k in args.k):
        raise DreamkitError(f"k must be finite numbers from {-MAX_K:g} to {MAX_K:g}")
    import torch

    from dreamkit.directions import augmented
    from dreamkit.files import check_not_input
    from dreamkit.image_io import image_files, save_image
    from dreamkit.linearity import linearity_table, plot_table, superposition_rows, write_table
    from dreamkit.models.registry import load_model
    from dreamkit.settings import RenderSettings

    RenderSettings(size=args.render_size, steps=args.render_steps)  # bounds, before the work
    start = time.monotonic()
    outdir = Path(args.output)
    files = image_files([args.images])
    for name in ("linearity.json", "linearity.csv", "linearity.png"):
        check_not_input(outdir / name, files)
    images, _ = augmented(load_all([args.images]), args.crops, args.crop_size, args.seed)
    trained = open_model(args)
    torch.manual_seed(args.seed)
    random = load_model(args.model, device=resolve_device(args.device), random_weights=True)
    tiers = [] if args.superposition_layers == "none" else args.superposition_layers.split(",")
    chosen = list(dict.fromkeys(trained.layers.resolve(t).name for t in tiers))
    layers = [trained.layers.resolve(name).name for name in args.layers.split(",")] \
        if args.layers else trained.layers.names
    rows = []
    for weights, net in (("trained", trained), ("random", random)):
        rows += linearity_table(net, images, weights=weights, ks=args.k, layers=layers,
                                seed=args.seed)
    render = {"size": args.render_size, "steps": args.render_steps}
    sup_rows, renders = superposition_rows(trained, images, chosen, seed=args.seed, **render)
    rows += sup_rows
    for (layer, kind), panel in renders.items():
        save_image(torch.cat(list(panel), dim=2), outdir / f"superposition_{layer}_{kind}.png")
    info = {"model": args.model, "images": [str(f) for f in files], "crops": args.crops,
            "size": args.crop_size, "ks": args.k, "seed": args.seed, "render": render,
            "seconds": round(time.monotonic() - start, 1)}
    written = write_table(rows, outdir, info)
    if not args.no_plot:
        written.append(plot_table(rows, outdir / "linearity.png",
                                  f"{args.model}: linearity against depth ({len(images)} crops)"))
    for path in written:
        print(path)
    return 0
