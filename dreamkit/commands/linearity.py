"""Measure how linear each layer of one or more networks is, with intervals and baselines.

On a sample of photos (one view each, spread evenly over a folder such as ../shared/photos),
for every layer f: homogeneity(k), f(mu + k (x - mu)) against f(mu) + k (f(x) - f(mu));
additivity, f(x + y - mu) against f(x) + f(y) - f(mu); convex blends (1 - t) x + t y (valid
images) against (1 - t) f(x) + t f(y); the same for the map from each layer to the logits
(latent, whole logit vector and each photo's own class); two objects in one image (blends,
collages, and blends at each hidden layer: is the top class one of the pair, are both in the
top 5, against what a linear network gives); superposition of rendered directions over several
seeds. Each error is divided by the typical distance between two photos' activations
(yardstick) and by the change a linear map predicts (relative). Baselines: random pixel
directions (with the photos' yardstick), He-initialised weights, and the trained weights
shuffled within each layer. Every error and share has a 95% bootstrap interval over photos.
Writes OUTDIR/linearity.json, .csv and .png and prints the summary tables.

examples:
  dreamkit linearity --images ../shared/photos -o linearity/
  dreamkit linearity --images ../shared/photos --models bvlc_googlenet,squeezenet1_1 -o out/
  dreamkit linearity --images photos/ --count 16 --superposition-layers none --no-plot -o out/
  dreamkit linearity --images photos/ --models squeezenet1_1 --layers low,mid,high -o out/
"""

from __future__ import annotations

import argparse
import math
import time

from dreamkit.commands.common import (
    add_device_argument,
    positive_int,
    resolve_device,
    show_progress,
)
from dreamkit.errors import DreamkitError
from dreamkit.settings import MAX_K, MAX_SEED, Bounds, check


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", required=True, metavar="DIR", help="folder of photos")
    parser.add_argument("-o", "--output", required=True, metavar="OUTDIR",
                        help="folder for linearity.json, .csv and .png")
    parser.add_argument("--models", default="bvlc_googlenet,squeezenet1_1", metavar="LIST",
                        help="comma-separated model specs (default: %(default)s)")
    parser.add_argument("--count", type=int, default=48, metavar="N",
                        help="photos in the sample, 8 to 1024, spread evenly over the folder "
                             "(default: %(default)s)")
    parser.add_argument("--size", type=int, default=128, metavar="PX",
                        help="side of each photo's centre crop, 32 to 512 (default: "
                             "%(default)s)")
    parser.add_argument("-k", type=float, nargs="+", default=[-1.0, 0.5, 2.0],
                        help=f"homogeneity scales, finite, |k| <= {MAX_K:g} (default: "
                             "%(default)s)")
    parser.add_argument("--resamples", type=int, default=1000, metavar="N",
                        help="bootstrap resamples, 100 to 10000 (default: %(default)s)")
    parser.add_argument("--layers", default="all", metavar="LIST",
                        help="comma-separated layers or tiers to probe (the logits always), "
                             "or all (default: %(default)s)")
    parser.add_argument("--superposition-layers", default="low,mid,high", metavar="LIST",
                        help="comma-separated layers or tiers for the superposition probe, or "
                             "none (default: %(default)s)")
    parser.add_argument("--seeds", type=int, default=3, metavar="N",
                        help="render seeds per superposition pair, 1 to 20 (default: "
                             "%(default)s)")
    parser.add_argument("--render-steps", type=positive_int, default=64, metavar="N",
                        help="steps of each superposition render (default: %(default)s)")
    parser.add_argument("--render-size", type=positive_int, default=64, metavar="PX",
                        help="side of the superposition renders (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the pairings, random directions, bootstrap and renders "
                             "(default: %(default)s)")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG plot")
    parser.add_argument("--quiet", "-q", action="store_true", help="print only the file names")
    add_device_argument(parser)


def _check(args: argparse.Namespace) -> list[str]:
    check("count", args.count, Bounds(int, low=8, high=1024))
    check("size", args.size, Bounds(int, low=32, high=512))
    check("resamples", args.resamples, Bounds(int, low=100, high=10000))
    check("seeds", args.seeds, Bounds(int, low=1, high=20))
    check("seed", args.seed, Bounds(int, low=0, high=MAX_SEED))
    if not all(math.isfinite(k) and abs(k) <= MAX_K for k in args.k):
        raise DreamkitError(f"k must be finite numbers from {-MAX_K:g} to {MAX_K:g}")
    from dreamkit.settings import RenderSettings

    RenderSettings(size=args.render_size, steps=args.render_steps)  # bounds, before the work
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models or len(models) > 8:
        raise DreamkitError("--models takes 1 to 8 comma-separated model specs")
    return models


def run(args: argparse.Namespace) -> int:
    models = _check(args)
    from dreamkit.files import check_folder, check_not_input
    from dreamkit.image_io import image_files
    from dreamkit.linearity import Options, run_report, sample_photos, tables, write_table
    from dreamkit.models.registry import load_model

    outdir = check_folder(args.output)
    files = image_files([args.images])
    for name in ("linearity.json", "linearity.csv", "linearity.png"):
        check_not_input(outdir / name, files, forceable=False)
    device = resolve_device(args.device)
    start = time.monotonic()
    photos, chosen = sample_photos(args.images, args.count, args.size)
    tiers = [] if args.superposition_layers == "none" else args.superposition_layers.split(",")
    probed = [] if args.layers == "all" else [t.strip() for t in args.layers.split(",")]
    loaders, layers, chosen_layers = [], [], []
    for spec in models:
        net = load_model(spec, device=device)  # fails here, before any work, if it cannot
        layers += [net.layers.resolve(t).name for t in tiers]
        chosen_layers += [net.layers.resolve(t).name for t in probed]
        loaders.append(lambda spec=spec: load_model(spec, device=device))
    options = Options(ks=tuple(args.k), seed=args.seed, resamples=args.resamples,
                      superposition=tuple(dict.fromkeys(layers)), seeds=args.seeds,
                      layers=tuple(dict.fromkeys(chosen_layers)),
                      render={"size": args.render_size, "steps": args.render_steps})
    rows = run_report(loaders, photos, options, progress=show_progress(args))
    info = {"models": models, "photos": [str(f) for f in chosen], "size": args.size,
            "layers": list(options.layers) or "all",
            "ks": args.k, "seed": args.seed, "resamples": args.resamples,
            "seeds": args.seeds, "render": options.render,
            "seconds": round(time.monotonic() - start, 1)}
    written = write_table(rows, outdir, info)
    if not args.no_plot:
        from dreamkit.linearity.plot import plot_report

        written.append(plot_report(rows, outdir / "linearity.png"))
    if not args.quiet:
        print(tables(rows))
        print(f"\n{len(rows)} numbers from {len(chosen)} photos in {info['seconds']} s")
    for path in written:
        print(path)
    return 0
