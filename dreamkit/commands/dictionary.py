"""Fit a dictionary of sparse feature directions to a layer (a top-k sparse autoencoder)

Activation vectors of the layer are collected over views of the folder's photos (--views a
photo, 64 positions each, streamed into a fixed-size sample; one photo in ten held out), a
top-k sparse autoencoder is trained on them (with the overcomplete package: pip install
'dreamkit[dictionary]'), and the report compares it on the held-out photos with the neuron
basis, PCA and random directions at the same sparsity: R^2, downstream fidelity (the layer
replaced by each reconstruction: KL of the logits, top-1 agreement, cross-entropy recovered,
with 95% intervals), the label purity of each unit's top photos (from ImageNet file names),
interference, shared neurons, monosemanticity and steering linearity. It is printed and
written beside the file (FILE.json, FILE.png). The file is a direction file: every row is a
feature.

examples:
  dreamkit dictionary fit --images photos/ --layer inception4c --expansion 4 --k 32 -o d.safetensors
  dreamkit dictionary sweep --images photos/ -l inception4c --l0 8,16,32 --expansion 2,4 -o sweep/
  dreamkit vis --direction d.safetensors:17 -o feature17      # see feature 17
  dream photo.jpg --direction d.safetensors:17                 # amplify it in a photo
  dream photo.jpg --direction d.safetensors:17 --negate        # suppress it
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dreamkit.commands.common import (
    _number,
    add_model_arguments,
    add_settings,
    add_threads_argument,
    model_files,
    settings_from,
    show_progress,
    table_and_model,
)
from dreamkit.settings import DictionarySettings, DictionarySweepSettings

SWEEP = """Fit dictionaries of several sizes to one sample of a layer's activations (collected once)
and measure each on the held-out photos: R^2 and downstream fidelity against L0, a line per
expansion, beside the neurons, PCA and random directions of the same L0. Writes
OUTPUT/sweep.json, sweep.md (the table) and sweep.png (the plot); seeded, so the same command
gives the same numbers. Lists take commas or spaces: --l0 8,16,32 or --l0 8 16 32.

examples:
  dreamkit dictionary sweep --images photos/ -l inception4c --l0 8,16,32 --expansion 2,4 -o sweep/
  dreamkit dictionary fit --images photos/ --layer inception4c --expansion 4 --k 16 -o d.safetensors
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(title="actions", dest="action", metavar="ACTION", required=True)
    fit = sub.add_parser("fit", help="fit a dictionary to a layer over a folder of photos",
                         description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _photos_and_layer(fit)
    fit.add_argument("-o", "--output", required=True, metavar="FILE",
                     help="dictionary to write (.safetensors; the report goes beside it)")
    add_settings(fit.add_argument_group("the dictionary"), DictionarySettings)
    _common(fit, "FILE.png")
    sweep = sub.add_parser("sweep", help="R^2 and downstream fidelity against L0 and expansion",
                           description=SWEEP,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    _photos_and_layer(sweep)
    sweep.add_argument("-o", "--output", required=True, metavar="DIR",
                       help="folder for sweep.json, sweep.md and sweep.png")
    add_settings(sweep.add_argument_group("the sizes"), DictionarySweepSettings)
    _common(sweep, "sweep.png")


def _photos_and_layer(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", required=True, metavar="DIR", help="a folder of photos")
    parser.add_argument("--layer", "-l", required=True,
                        help="layer name or tier low|mid|high")


def _common(parser: argparse.ArgumentParser, plot: str) -> None:
    parser.add_argument("--no-plot", action="store_true",
                        help=f"no {plot} (no matplotlib needed)")
    add_threads_argument(parser, None, "(default: all cores)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bars or table")
    add_model_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if args.action == "sweep":
        return _sweep(args)
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
    ce = {name: m["ce_recovered"] for name, m in result.report["downstream"]["methods"].items()}
    print(f"{args.output}: {stats['features']} features of {args.model} "
          f"{result.directions.layer} (k = {stats['k']}), held-out R^2 {r2['dictionary']:.3f} "
          f"(neurons {r2['neurons (top-k)']:.3f}, random "
          f"{r2['random directions (top-k)']:.3f}), CE recovered {ce['dictionary']:.2f} "
          f"(neurons {ce['neurons (top-k)']:.2f}), {result.report['dead_features']} dead; "
          f"report in {', '.join(str(p) for p in result.written[1:])}; "
          f"{result.report['seconds']:.0f} s")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from dreamkit.dictionary.sweep import check_sweep_outputs

    for name in ("l0", "expansion"):  # --l0 8,16,32 as well as --l0 8 16 32
        if getattr(args, name) is not None:
            setattr(args, name, [_number(part) for text in getattr(args, name)
                                 for part in str(text).split(",") if part.strip()])
    settings = settings_from(args, DictionarySweepSettings)
    check_sweep_outputs(Path(args.output), args.images, not args.no_plot, model_files(args))
    table, net = table_and_model(args)
    channels = table.resolve(args.layer).channels
    from dreamkit.commands.common import open_model, set_threads
    from dreamkit.dictionary import dictionary_size, dictionary_sweep

    for expansion, k in settings.sizes if channels else ():  # named before the model loads
        dictionary_size(channels, None, expansion, k, "l0 (--l0)")

    set_threads(args.threads)
    result = dictionary_sweep(net or open_model(args), args.model, args.images, args.layer,
                              args.output, settings, plot=not args.no_plot,
                              progress=show_progress(args))
    if not args.quiet:
        print(Path(result.written[1]).read_text().rstrip())
    print(f"{args.output}: {len(result.rows)} dictionaries of {args.model} "
          f"{result.report['layer']}; {', '.join(str(p) for p in result.written)}; "
          f"{result.report['seconds']:.0f} s")
    return 0
