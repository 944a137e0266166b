"""Dictionary features: overcomplete sparse directions of a layer (a top-k sparse autoencoder),
fitted on a folder of photos, measured against same-size baselines, and saved as a direction
file that `vis --direction`, `dream --direction` and the rest already read.

collect.py streams activation vectors into fixed-size samples, sae.py trains the autoencoder
(with `overcomplete`), evaluate.py measures it on held-out vectors, downstream.py by what the
rest of the network does with its reconstruction, purity.py by the labels of its features' top
photos; report.py prints and writes the report, sweep.py fits and measures several sizes.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from dreamkit.dictionary.collect import HELD_OUT_EVERY, VIEWS, Samples, collect, later_layer
from dreamkit.dictionary.downstream import HELD_PHOTOS, fidelity, held_photos, reconstructions
from dreamkit.dictionary.evaluate import (
    evaluate,
    random_directions,
    steering,
    steering_directions,
    top_features,
)
from dreamkit.dictionary.purity import TOP_PHOTOS, feature_groups, label_purity, labels, top_photos
from dreamkit.dictionary.report import table, write_report
from dreamkit.dictionary.sae import Codec, train
from dreamkit.dictionary.sweep import Sweep, dictionary_sweep
from dreamkit.directions import Directions
from dreamkit.errors import DreamkitError
from dreamkit.settings import DictionarySettings

STEERING_PHOTOS = 8
STEERING_DIRECTIONS = 4
TOP_FEATURES = 16  # the report lists the features most often active on held-out vectors

__all__ = ["Codec", "Fit", "Sweep", "codec_of", "collect", "dictionary_sweep", "fit",
           "fit_dictionary", "table", "write_report"]


@dataclass
class Fit:
    """A fitted dictionary: the direction file's contents, the codec, the report and its
    distributions, the sample; `written` are the files `fit_dictionary` wrote."""

    directions: Directions
    codec: Codec
    report: dict
    distributions: dict[str, torch.Tensor]
    samples: Samples
    written: list[Path] = field(default_factory=list)


def fit_dictionary(net, model: str, images: str | os.PathLike[str], layer: str,
                   output: str | os.PathLike[str], settings: DictionarySettings | None = None,
                   *, plot: bool = True, progress: bool = False) -> Fit:
    """Fit a dictionary of `settings.features` (or `expansion` x the layer's channels)
    features, `k` active per vector, to `layer` of `net` (named `model` in the file) over the
    photos in `images`; write it to `output` (.safetensors) with its report beside it
    (.json, and with `plot` .png). Every input and output is checked before the work."""
    settings = settings or DictionarySettings()
    output = Path(output)
    paths = check_outputs(output, images, plot)
    info = spatial_layer(net, layer)
    features = dictionary_size(info.channels, settings.features, settings.expansion, settings.k)
    start = time.monotonic()
    with progress_bars(progress) as bar:
        result = fit(net, model, paths, info.name, features, settings.k, seed=settings.seed,
                     epochs=settings.epochs, views=settings.views, progress=bar)
    result.directions.save(output)
    result.report["seconds"] = round(time.monotonic() - start, 1)
    result.written = [output, *write_report(result.report, result.distributions, output,
                                            plot=plot)]
    return result


def spatial_layer(net, layer: str):
    """The layer's table entry (a name or a tier), refused unless it has positions."""
    info = net.layers.resolve(layer)
    if info.stride is None:
        raise DreamkitError(f"{info.name} has no spatial positions; fit a dictionary to a "
                            "convolutional layer")
    return info


def dictionary_size(channels: int, features: int | None, expansion: float, k: int,
                    k_name: str = "k (--k)") -> int:
    """The number of features (`features`, else `expansion` x `channels`), after checking it
    and `k` (at most the features and the channels) against the layer."""
    from dreamkit.settings import MAX_FEATURES, Bounds, check

    if features is None:
        check("expansion (--expansion)", expansion,
              Bounds(float, low=2 / channels, high=MAX_FEATURES / channels))
        features = max(2, round(expansion * channels))
    check(k_name, k, Bounds(int, low=1, high=min(features, channels)))
    return features


def check_outputs(output: Path, images: str | os.PathLike[str], plot: bool,
                  inputs: Sequence[Path] = ()) -> list[Path]:
    """The photos of `images`, after checking that the dictionary `output` (.safetensors) and
    its report beside it (.json, with `plot` .png) can be written and replace none of them
    nor of `inputs` (a weights file)."""
    from dreamkit.files import check_not_input, check_writable
    from dreamkit.image_io import list_images

    if output.suffix.lower() != ".safetensors":
        raise DreamkitError(f"{output}: a dictionary is saved as .safetensors")
    paths = list_images(images)
    for suffix in (".safetensors", ".json", *((".png",) if plot else ())):
        target = output.with_suffix(suffix)  # the report goes beside the file
        check_not_input(target, [*paths, *inputs], forceable=False)
        check_writable(target)
    return paths


@contextlib.contextmanager
def progress_bars(visible: bool) -> Iterator:
    """A `progress(unit, total)` that opens a tqdm bar (shown when `visible`), all closed
    afterwards."""
    from dreamkit.progress import tqdm

    bars = []

    def progress(unit: str, total: int):
        bar = tqdm(total=total, unit=unit, disable=not visible, leave=False)
        bars.append(bar)
        return bar.update

    try:
        yield progress
    finally:
        for bar in bars:
            bar.close()


def codec_of(directions: Directions) -> Codec:
    """The encoder of a dictionary direction file."""
    if directions.method != "dictionary":
        raise ValueError(f"a {directions.method} direction file has no encoder")
    extras = directions.extras
    return Codec(directions.vectors, extras["encoder"], extras["encoder_bias"], extras["center"],
                 float(extras["scale"]), int(directions.stats["k"]))


def fit(net, model: str, paths: Sequence[Path], layer: str, features: int, k: int, *,
        seed: int = 0, epochs: int = 30, views: int = VIEWS, progress=None) -> Fit:
    """Collect, train, evaluate: the dictionary as a direction file and its report."""
    samples = collect(net, paths, layer, later_layer(net, layer), views=views, seed=seed,
                      progress=progress and progress("photos", len(paths)))
    codec = train(samples.train, features, k, epochs=epochs, seed=seed,
                  progress=progress and progress("epochs", epochs))
    report, distributions = evaluate(codec, samples.train, samples.held, samples.held_view,
                                     samples.later, seed)
    report["top_features"] = top_features(codec, samples.held, TOP_FEATURES)
    held = held_photos(net, paths, layer, progress=progress and progress(
        "held-out photos", min(len(paths) // HELD_OUT_EVERY, HELD_PHOTOS)))
    chosen = report["top_features"][:STEERING_DIRECTIONS]
    mean = samples.train.mean(0)
    size = float((samples.held - mean).norm(dim=1).median())
    report["steering"] = steering(net, layer, held.images[:STEERING_PHOTOS],
                                  steering_directions(codec, chosen, seed), size)
    atoms = random_directions(features, codec.decoder.shape[1], seed)  # evaluate's baseline
    report["downstream"] = fidelity(net, layer, held, reconstructions(codec, samples.train,
                                                                      atoms), mean, seed=seed)
    classes = labels(paths)
    if classes is None or len(classes) < TOP_PHOTOS:
        report["label_purity"] = {"skipped": f"needs {TOP_PHOTOS} or more photos whose file "
                                  "names give their ImageNet class (<index>_<wnid>_...)"}
    else:
        tops = top_photos(net, paths, layer, codec, atoms, mean,
                          progress=progress and progress("photos (examples)", len(paths)))
        report["label_purity"], purities = label_purity(tops, classes, seed)
        report["label_purity"]["top_features"] = feature_groups(
            tops["features"], classes, report["top_features"])
        distributions.update(purities)
    report.update(photos=samples.photos, skipped=samples.skipped, seed=seed, epochs=epochs,
                  views=views)
    stats = {"k": k, "features": features, "seed": seed, "epochs": epochs,
             "r2": report["r2"]["dictionary"], "r2_neurons": report["r2"]["neurons (top-k)"],
             "r2_random": report["r2"]["random directions (top-k)"],
             "r2_pca": report["r2"]["pca (k components)"], "mean_l0": report["mean_l0"],
             "dead_features": report["dead_features"], "scale": codec.scale}
    extras = {"encoder": codec.encoder, "encoder_bias": codec.bias, "center": codec.center,
              "scale": torch.tensor([codec.scale])}
    directions = Directions(codec.decoder, layer, model, "dictionary", stats, extras)
    return Fit(directions, codec, report, distributions, samples)
