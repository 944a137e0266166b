"""Dictionary features: overcomplete sparse directions of a layer (a top-k sparse autoencoder),
fitted on a folder of photos, measured against same-size baselines, and saved as a direction
file that `vis --direction`, `dream --direction` and the rest already read.

collect.py streams activation vectors into fixed-size samples, sae.py trains the autoencoder
(with `overcomplete`), evaluate.py measures it, report.py prints and writes the report.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from dreamkit.dictionary.collect import Samples, collect
from dreamkit.dictionary.evaluate import evaluate, steering, steering_directions, top_features
from dreamkit.dictionary.report import table, write_report
from dreamkit.dictionary.sae import Codec, train
from dreamkit.directions import Directions
from dreamkit.errors import DreamkitError
from dreamkit.settings import DictionarySettings

STEERING_PHOTOS = 8
STEERING_DIRECTIONS = 4
TOP_FEATURES = 16  # the report lists the features most often active on held-out vectors

__all__ = ["Codec", "Fit", "codec_of", "collect", "fit", "fit_dictionary", "table",
           "write_report"]


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
    from dreamkit.settings import MAX_FEATURES, Bounds, check

    settings = settings or DictionarySettings()
    output = Path(output)
    paths = check_outputs(output, images, plot)
    info = net.layers.resolve(layer)
    if info.stride is None:
        raise DreamkitError(f"{info.name} has no spatial positions; fit a dictionary to a "
                            "convolutional layer")
    features = settings.features
    if features is None:
        check("expansion (--expansion)", settings.expansion,
              Bounds(float, low=2 / info.channels, high=MAX_FEATURES / info.channels))
        features = max(2, round(settings.expansion * info.channels))
    check("k (--k)", settings.k, Bounds(int, low=1, high=min(features, info.channels)))
    start = time.monotonic()
    with _bars(progress) as bar:
        result = fit(net, model, paths, info.name, features, settings.k, seed=settings.seed,
                     epochs=settings.epochs, progress=bar)
    result.directions.save(output)
    result.report["seconds"] = round(time.monotonic() - start, 1)
    result.written = [output, *write_report(result.report, result.distributions, output,
                                            plot=plot)]
    return result


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
def _bars(visible: bool) -> Iterator:
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


def later_layer(net, layer: str) -> str:
    """The deepest spatial layer of the model's table (the logits when `layer` is it)."""
    table = net.layers
    deeper = [name for name in table.names[table.index(layer) + 1:]
              if name != table.logits and net.is_cut(name)]
    return deeper[-1] if deeper else table.logits


def fit(net, model: str, paths: Sequence[Path], layer: str, features: int, k: int, *,
        seed: int = 0, epochs: int = 30, progress=None) -> Fit:
    """Collect, train, evaluate: the dictionary as a direction file and its report."""
    samples = collect(net, paths, layer, later_layer(net, layer), seed=seed,
                      progress=progress and progress("photos", len(paths)))
    codec = train(samples.train, features, k, epochs=epochs, seed=seed,
                  progress=progress and progress("epochs", epochs))
    report, distributions = evaluate(codec, samples.train, samples.held, samples.held_view,
                                     samples.later, seed)
    report["top_features"] = top_features(codec, samples.held, TOP_FEATURES)
    chosen = report["top_features"][:STEERING_DIRECTIONS]
    size = float((samples.held - samples.train.mean(0)).norm(dim=1).median())
    photos = _steering_photos(paths)
    report["steering"] = steering(net, layer, photos,
                                  steering_directions(codec, chosen, seed), size)
    report.update(photos=samples.photos, skipped=samples.skipped, seed=seed, epochs=epochs)
    stats = {"k": k, "features": features, "seed": seed, "epochs": epochs,
             "r2": report["r2"]["dictionary"], "r2_neurons": report["r2"]["neurons (top-k)"],
             "r2_random": report["r2"]["random directions (top-k)"],
             "r2_pca": report["r2"]["pca (k components)"], "mean_l0": report["mean_l0"],
             "dead_features": report["dead_features"], "scale": codec.scale}
    extras = {"encoder": codec.encoder, "encoder_bias": codec.bias, "center": codec.center,
              "scale": torch.tensor([codec.scale])}
    directions = Directions(codec.decoder, layer, model, "dictionary", stats, extras)
    return Fit(directions, codec, report, distributions, samples)


def _steering_photos(paths: Sequence[Path]) -> torch.Tensor:
    """A few of the readable held-out photos, as the network sees them."""
    from dreamkit.dictionary.collect import HELD_OUT_EVERY, SIDE
    from dreamkit.photos import Photos

    held = Photos([p for i, p in enumerate(paths) if i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1],
                  side=SIDE)
    found = []
    for i in range(len(held)):
        image, _ = held[i]
        if image is not None:
            found.append(image)
        if len(found) == STEERING_PHOTOS:
            break
    return torch.stack(found)
