"""`linearity(images, output, settings)`: the whole linearity report as one library call (the
command and any other front end call it): sample the photos, probe every model, write
linearity.json, .csv and (with `plot`) .png."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from dreamkit.errors import DreamkitError
from dreamkit.settings import LinearitySettings

MAX_MODELS = 8


@dataclass
class Measured:
    """The report's rows, the files written and what the run used (`info`, also in the JSON)."""

    rows: list
    written: list[Path]
    info: dict


def _names(text: str, none: str) -> list[str]:
    return [] if text.strip() == none else [t.strip() for t in text.split(",") if t.strip()]


def linearity(images: str | os.PathLike[str], output: str | os.PathLike[str],
              settings: LinearitySettings | None = None, *,
              dictionary: str | os.PathLike[str] | None = None, device: str = "cpu",
              plot: bool = True, progress: bool = False) -> Measured:
    """Measure how linear each layer of `settings.models` is on a sample of the photos in
    `images`, with intervals and baselines; the tables go to the folder `output`. With
    `dictionary` (a file of `dreamkit dictionary fit` for one of the models), also how
    additively pairs of its feature directions act on the logits, against neurons and random
    directions. Everything is checked (output place, photos, models, layers, dictionary)
    before the first probe runs."""
    from dreamkit.files import check_folder, check_not_input
    from dreamkit.image_io import image_files
    from dreamkit.linearity.measure import Options
    from dreamkit.linearity.report import run_report, sample_photos, write_table
    from dreamkit.models.registry import load_model

    settings = settings or LinearitySettings()
    models = _names(settings.models, "")
    if not models or len(models) > MAX_MODELS:
        raise DreamkitError(f"models takes 1 to {MAX_MODELS} comma-separated model specs")
    outdir = check_folder(output)
    files = image_files([images])
    for name in ("linearity.json", "linearity.csv", "linearity.png"):
        check_not_input(outdir / name, files, forceable=False)
    start = time.monotonic()
    photos, chosen = sample_photos(images, settings.count, settings.size)
    tiers = _names(settings.superposition_layers, "none")
    probed = _names(settings.layers, "all")
    loaders, layers, chosen_layers, names = [], [], [], []
    saved = _dictionary(dictionary) if dictionary is not None else None
    for spec in models:
        net = load_model(spec, device=device)  # fails here, before any work, if it cannot
        layers += [net.layers.resolve(t).name for t in tiers]
        chosen_layers += [net.layers.resolve(t).name for t in probed]
        loaders.append(lambda spec=spec: load_model(spec, device=device))
        names.append(net.name)
        if saved is not None and net.name == saved.model:
            saved = _dictionary(dictionary, net)
    if saved is not None and saved.model not in names:
        raise DreamkitError(f"{dictionary}: the dictionary is for {saved.model}, which is not "
                            f"among the models ({', '.join(names)})")
    options = Options(ks=settings.k, seed=settings.seed, resamples=settings.resamples,
                      superposition=tuple(dict.fromkeys(layers)), seeds=settings.seeds,
                      layers=tuple(dict.fromkeys(chosen_layers)),
                      render={"size": settings.render_size, "steps": settings.render_steps},
                      dictionary=saved)
    rows = run_report(loaders, photos, options, progress=progress)
    info = {"models": models, "photos": [str(f) for f in chosen], "size": settings.size,
            "layers": list(options.layers) or "all",
            "ks": list(settings.k), "seed": settings.seed, "resamples": settings.resamples,
            "seeds": settings.seeds, "render": options.render,
            "seconds": round(time.monotonic() - start, 1)}
    if saved is not None:
        from dreamkit.linearity.features import PAIRS

        info["dictionary"] = {"file": str(Path(dictionary).resolve()), "model": saved.model,
                              "layer": saved.layer, "features": len(saved.vectors),
                              "pairs": PAIRS}
    written = write_table(rows, outdir, info)
    if plot:
        from dreamkit.linearity.plot import plot_report

        written.append(plot_report(rows, outdir / "linearity.png"))
    return Measured(rows, written, info)


def _dictionary(path: str | os.PathLike[str], net=None):
    """The dictionary file, checked: a dictionary (with its encoder); with its network `net`,
    for a layer of it with positions that the logits depend on alone."""
    import torch

    from dreamkit.directions import load_directions

    saved = load_directions(path, model=net and net.name, table=net and net.layers)
    if saved.method != "dictionary":
        raise DreamkitError(f"{path}: a {saved.method} direction file has no encoder; give a "
                            "dictionary (dreamkit dictionary fit)")
    if net is not None:
        info = net.layers.resolve(saved.layer)
        if info.stride is None or not net.is_cut(info.name):
            raise DreamkitError(f"{path}: {info.name} has no positions, or the logits do not "
                                "depend on it alone; fit the dictionary to another layer")
        saved.codes(torch.zeros(1, info.channels))  # refuses a file whose k is out of range
    return saved
