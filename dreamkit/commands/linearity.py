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
With --dictionary (a file of `dreamkit dictionary fit`), the seeds' question: do pairs of its
feature directions, added at its layer, act on the logits more additively than pairs of
neurons or of random directions of the same norm? Writes OUTDIR/linearity.json, .csv and .png
and prints the summary tables.

examples:
  dreamkit linearity --images ../shared/photos -o linearity/
  dreamkit linearity --images ../shared/photos --models bvlc_googlenet,squeezenet1_1 -o out/
  dreamkit linearity --images photos/ --count 16 --superposition-layers none --no-plot -o out/
  dreamkit linearity --images photos/ --models squeezenet1_1 --layers low,mid,high -o out/
  dreamkit linearity --images photos/ --models bvlc_googlenet --dictionary d.safetensors -o out/
"""

from __future__ import annotations

import argparse

from dreamkit.commands.common import (
    add_device_argument,
    add_settings,
    resolve_device,
    settings_from,
    show_progress,
)
from dreamkit.settings import LinearitySettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", required=True, metavar="DIR", help="folder of photos")
    parser.add_argument("-o", "--output", required=True, metavar="OUTDIR",
                        help="folder for linearity.json, .csv and .png")
    what = parser.add_argument_group("what to measure")
    add_settings(what, LinearitySettings)
    what.add_argument("--dictionary", metavar="FILE",
                      help="also probe the feature directions of this dictionary (dreamkit "
                           "dictionary fit) against neurons and random directions")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG plot")
    parser.add_argument("--quiet", "-q", action="store_true", help="print only the file names")
    add_device_argument(parser)


def run(args: argparse.Namespace) -> int:
    from dreamkit.linearity import linearity, tables

    settings = settings_from(args, LinearitySettings)
    measured = linearity(args.images, args.output, settings, dictionary=args.dictionary,
                         device=resolve_device(args.device), plot=not args.no_plot,
                         progress=show_progress(args))
    if not args.quiet:
        print(tables(measured.rows))
        print(f"\n{len(measured.rows)} numbers from {len(measured.info['photos'])} photos in "
              f"{measured.info['seconds']} s")
    for path in measured.written:
        print(path)
    return 0
