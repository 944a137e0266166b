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
              settings: LinearitySettings | None = None, *, device: str = "cpu",
              plot: bool = True, progress: bool = False) -> Measured:
    """Measure how linear each layer of `settings.models` is on a sample of the photos in
    `images`, with intervals and baselines; the tables go to the folder `output`. Everything
    is checked (output place, photos, models, layers) before the first probe runs."""
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
    loaders, layers, chosen_layers = [], [], []
    for spec in models:
        net = load_model(spec, device=device)  # fails here, before any work, if it cannot
        layers += [net.layers.resolve(t).name for t in tiers]
        chosen_layers += [net.layers.resolve(t).name for t in probed]
        loaders.append(lambda spec=spec: load_model(spec, device=device))
    options = Options(ks=settings.k, seed=settings.seed, resamples=settings.resamples,
                      superposition=tuple(dict.fromkeys(layers)), seeds=settings.seeds,
                      layers=tuple(dict.fromkeys(chosen_layers)),
                      render={"size": settings.render_size, "steps": settings.render_steps})
    rows = run_report(loaders, photos, options, progress=progress)
    info = {"models": models, "photos": [str(f) for f in chosen], "size": settings.size,
            "layers": list(options.layers) or "all",
            "ks": list(settings.k), "seed": settings.seed, "resamples": settings.resamples,
            "seeds": settings.seeds, "render": options.render,
            "seconds": round(time.monotonic() - start, 1)}
    written = write_table(rows, outdir, info)
    if plot:
        from dreamkit.linearity.plot import plot_report

        written.append(plot_report(rows, outdir / "linearity.png"))
    return Measured(rows, written, info)
