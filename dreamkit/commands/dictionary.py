"""Fit a dictionary of sparse feature directions to a layer (a top-k sparse autoencoder).

Activation vectors of the layer are collected over crops of the folder's photos (two views a
photo, 64 positions each, streamed into a fixed-size sample; one photo in ten held out), a
top-k sparse autoencoder is trained on them (with the overcomplete package: pip install
'dreamkit[dictionary]'), and the report compares it on the held-out photos with the neuron
basis, PCA and random directions at the same sparsity, measures interference, shared neurons,
monosemanticity and steering linearity, and is printed and written beside the file
(FILE.json, FILE.png). The file is a direction file: every row is a feature.

examples:
  dreamkit dictionary fit --images photos/ --layer inception4c --expansion 4 --k 32 -o d.safetensors
  dreamkit vis --direction d.safetensors:17 -o feature17      # see feature 17
  dream photo.jpg --direction d.safetensors:17                 # amplify it in a photo
  dream photo.jpg --direction d.safetensors:17 --negate        # suppress it
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from dreamkit.commands.common import (
    add_model_arguments,
    add_threads_argument,
    check_output,
    model_files,
    show_progress,
    table_and_model,
)
from dreamkit.errors import DreamkitError
from dreamkit.settings import MAX_SEED, Bounds, check

MAX_FEATURES = 65536
MAX_EPOCHS = 1000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(title="actions", dest="action", metavar="ACTION", required=True)
    fit = sub.add_parser("fit", help="fit a dictionary to a layer over a folder of photos",
                         description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    fit.add_argument("--images", required=True, metavar="DIR", help="a folder of photos")
    fit.add_argument("--layer", "-l", required=True, help="layer name or tier low|mid|high")
    fit.add_argument("-o", "--output", required=True, metavar="FILE",
                     help="dictionary to write (.safetensors; the report goes beside it)")
    size = fit.add_mutually_exclusive_group()
    size.add_argument("--features", type=int, metavar="N",
                      help=f"number of features, 2 to {MAX_FEATURES} (default: --expansion)")
    size.add_argument("--expansion", type=float, default=4.0, metavar="E",
                      help="features per channel of the layer (default: %(default)s)")
    fit.add_argument("--k", type=int, default=32,
                     help="features active per vector, the sparsity (default: %(default)s)")
    fit.add_argument("--epochs", type=int, default=30,
                     help=f"passes over the sample, 1 to {MAX_EPOCHS} (default: %(default)s)")
    fit.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    fit.add_argument("--no-plot", action="store_true", help="no FILE.png (no matplotlib needed)")
    add_threads_argument(fit, None, "(default: all cores)")
    fit.add_argument("--quiet", "-q", action="store_true", help="no progress bars or table")
    add_model_arguments(fit)


def run(args: argparse.Namespace) -> int:
    from dreamkit.image_io import list_images

    check("seed", args.seed, Bounds(int, low=0, high=MAX_SEED))
    check("epochs", args.epochs, Bounds(int, low=1, high=MAX_EPOCHS))
    output = Path(args.output)
    paths = list_images(args.images)
    inputs = [*paths, *model_files(args)]
    check_output(output, inputs=inputs, extensions=(".safetensors",))
    for suffix in (".json", *(() if args.no_plot else (".png",))):  # the report beside it
        check_output(output.with_suffix(suffix), inputs=inputs, extensions=(suffix,))
    table, net = table_and_model(args)
    info = table.resolve(args.layer)
    if info.stride is None:
        raise DreamkitError(f"{info.name} has no spatial positions; fit a dictionary to a "
                            "convolutional layer")
    check("expansion", args.expansion, Bounds(float, low=2 / info.channels,
                                              high=MAX_FEATURES / info.channels))
    features = args.features if args.features is not None else \
        max(2, round(args.expansion * info.channels))
    check("features", features, Bounds(int, low=2, high=MAX_FEATURES))  # 2: pairs to compare
    check("k", args.k, Bounds(int, low=1, high=min(features, info.channels)))
    from dreamkit.commands.common import open_model, set_threads
    from dreamkit.dictionary import fit, write_report
    from dreamkit.dictionary import table as report_table
    from dreamkit.progress import tqdm

    set_threads(args.threads)
    net = net or open_model(args)
    visible = show_progress(args)
    bars = []

    def progress(unit: str, total: int):
        bar = tqdm(total=total, unit=unit, disable=not visible, leave=False)
        bars.append(bar)
        return bar.update

    start = time.monotonic()
    try:
        result = fit(net, args.model, paths, info.name, features, args.k, seed=args.seed,
                     epochs=args.epochs, progress=progress)
    finally:
        for bar in bars:
            bar.close()
    result.directions.save(output)
    result.report["seconds"] = round(time.monotonic() - start, 1)
    written = write_report(result.report, result.distributions, output, plot=not args.no_plot)
    if not args.quiet:
        print(report_table(result.report))
        if result.samples.skipped:
            print(f"{result.samples.skipped} unreadable photos skipped", file=sys.stderr)
    r2 = result.report["r2"]
    print(f"{output}: {features} features of {args.model} {info.name} (k = {args.k}), held-out "
          f"R^2 {r2['dictionary']:.3f} (neurons {r2['neurons (top-k)']:.3f}, random "
          f"{r2['random directions (top-k)']:.3f}), {result.report['dead_features']} dead; "
          f"report in {', '.join(str(p) for p in written)}; "
          f"{result.report['seconds']:.0f} s")
    return 0
