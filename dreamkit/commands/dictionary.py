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
from pathlib import Path

from dreamkit.commands.common import (
    add_model_arguments,
    add_settings,
    add_threads_argument,
    model_files,
    settings_from,
    show_progress,
    table_and_model,
)
from dreamkit.settings import DictionarySettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(title="actions", dest="action", metavar="ACTION", required=True)
    fit = sub.add_parser("fit", help="fit a dictionary to a layer over a folder of photos",
                         description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    fit.add_argument("--images", required=True, metavar="DIR", help="a folder of photos")
    fit.add_argument("--layer", "-l", required=True, help="layer name or tier low|mid|high")
    fit.add_argument("-o", "--output", required=True, metavar="FILE",
                     help="dictionary to write (.safetensors; the report goes beside it)")
    add_settings(fit.add_argument_group("the dictionary"), DictionarySettings)
    fit.add_argument("--no-plot", action="store_true", help="no FILE.png (no matplotlib needed)")
    add_threads_argument(fit, None, "(default: all cores)")
    fit.add_argument("--quiet", "-q", action="store_true", help="no progress bars or table")
    add_model_arguments(fit)


def run(args: argparse.Namespace) -> int:
    from dreamkit.dictionary import check_outputs

    settings = settings_from(args, DictionarySettings)
    check_outputs(Path(args.output), args.images, not args.no_plot, model_files(args))
    table, net = table_and_model(args)
    table.resolve(args.layer)  # a typo is named before the model loads
    from dreamkit.commands.common import open_model, set_threads
    from dreamkit.dictionary import fit_dictionary
    from dreamkit.dictionary import table as report_table

    set_threads(args.threads)
    result = fit_dictionary(net or open_model(args), args.model, args.images, args.layer,
                            args.output, settings, plot=not args.no_plot,
                            progress=show_progress(args))
    if not args.quiet:
        print(report_table(result.report))
        if result.samples.skipped:
            print(f"{result.samples.skipped} unreadable photos skipped", file=sys.stderr)
    r2, stats = result.report["r2"], result.directions.stats
    print(f"{args.output}: {stats['features']} features of {args.model} "
          f"{result.directions.layer} (k = {stats['k']}), held-out R^2 {r2['dictionary']:.3f} "
          f"(neurons {r2['neurons (top-k)']:.3f}, random "
          f"{r2['random directions (top-k)']:.3f}), {result.report['dead_features']} dead; "
          f"report in {', '.join(str(p) for p in result.written[1:])}; "
          f"{result.report['seconds']:.0f} s")
    return 0
