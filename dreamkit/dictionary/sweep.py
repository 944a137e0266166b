"""The L0 / expansion trade-off: dictionaries of several sizes fitted to one sample.

The activations are collected once, as `fit` collects them (`views` views of each photo, one
photo in ten held out), with the held-out photos' whole activation maps. Then a dictionary is
fitted for every (expansion, L0), and measured on the held-out photos against the baselines of
the same L0: R^2 of the held-out vectors, and downstream fidelity (KL, top-1 agreement, CE
recovered, with 95 % intervals). The folder gets sweep.json, sweep.md (the table) and sweep.png
(R^2, CE recovered and KL against L0, a line per expansion). Every fit is seeded: the same
command on the same machine gives the same numbers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dreamkit.dictionary.collect import HELD_OUT_EVERY, collect, later_layer
from dreamkit.dictionary.downstream import HELD_PHOTOS, fidelity, held_photos, reconstructions
from dreamkit.dictionary.evaluate import r_squared, random_directions
from dreamkit.dictionary.sae import train
from dreamkit.files import write_json, write_text
from dreamkit.settings import DictionarySweepSettings

FILES = ("sweep.json", "sweep.md", "sweep.png")
BASELINES = ("neurons (top-k)", "pca (k components)", "random directions (top-k)")


@dataclass
class Sweep:
    """The sweep's rows (one per fit), its whole report, and the files written."""

    rows: list[dict]
    report: dict
    written: list[Path] = field(default_factory=list)


def dictionary_sweep(net, model: str, images: str | os.PathLike[str], layer: str,
                     output: str | os.PathLike[str],
                     settings: DictionarySweepSettings | None = None, *, plot: bool = True,
                     progress: bool = False) -> Sweep:
    """Fit a dictionary of `layer` of `net` for every (expansion, L0) of `settings` on the
    photos in `images`, measure each on the held-out photos, and write the table and plot to
    the folder `output`. Every input and output is checked before the work."""
    from dreamkit.dictionary import dictionary_size, progress_bars, spatial_layer

    settings = settings or DictionarySweepSettings()
    folder = Path(output)
    paths = check_sweep_outputs(folder, images, plot)
    info = spatial_layer(net, layer)
    sizes = [(e, k, dictionary_size(info.channels, None, e, k, "l0 (--l0)"))
             for e, k in settings.sizes]
    start = time.monotonic()
    with progress_bars(progress) as bar:
        samples = collect(net, paths, info.name, later_layer(net, info.name),
                          views=settings.views, seed=settings.seed,
                          progress=bar("photos", len(paths)))
        held = held_photos(net, paths, info.name, progress=bar(
            "held-out photos", min(len(paths) // HELD_OUT_EVERY, HELD_PHOTOS)))
        epochs = bar("epochs", settings.epochs * len(sizes))
        mean = samples.train.mean(0)
        rows = []
        for expansion, k, features in sizes:
            codec = train(samples.train, features, k, epochs=settings.epochs,
                          seed=settings.seed, progress=epochs)
            methods = reconstructions(codec, samples.train,
                                      random_directions(features, info.channels, settings.seed))
            downstream = fidelity(net, info.name, held, methods, mean, seed=settings.seed)
            rows.append({"expansion": expansion, "features": features, "l0": k,
                         "r2": {name: r_squared(samples.held, rebuild(samples.held), mean)
                                for name, rebuild in methods.items()},
                         "dead_share": float(((codec.encode(samples.held) > 0).sum(0) == 0)
                                             .float().mean()),
                         "downstream": downstream["methods"]})
    report = {"model": model, "layer": info.name, "photos": samples.photos,
              "skipped": samples.skipped, "views": settings.views, "epochs": settings.epochs,
              "seed": settings.seed, "train_vectors": len(samples.train),
              "held_out_vectors": len(samples.held), "held_out_photos": downstream["photos"],
              "target": downstream["target"], "ce_clean": downstream["ce_clean"],
              "ce_ablated": downstream["ce_ablated"], "rows": rows,
              "seconds": round(time.monotonic() - start, 1)}
    written = [write_json(folder / FILES[0], report),
               write_text(folder / FILES[1], sweep_table(report) + "\n")]
    if plot:
        written.append(sweep_plot(report, folder / FILES[2]))
    return Sweep(rows, report, written)


def check_sweep_outputs(folder: Path, images: str | os.PathLike[str], plot: bool,
                        inputs: Sequence[Path] = ()) -> list[Path]:
    """The photos of `images`, after checking that the folder can take the sweep's files and
    that none of them would replace a photo or one of `inputs` (a weights file)."""
    from dreamkit.files import check_folder, check_not_input
    from dreamkit.image_io import list_images

    check_folder(folder)
    paths = list_images(images)
    for name in FILES if plot else FILES[:2]:
        check_not_input(folder / name, [*paths, *inputs], forceable=False)
    return paths


def _ci(entry: dict, key: str, form: str) -> str:
    low, high = entry[f"{key}_interval"]
    return f"{entry[key]:{form}} [{low:{form}}, {high:{form}}]"


def sweep_table(report: dict) -> str:
    """The sweep as a Markdown table, a row per fit."""
    lines = [f"{report['model']} {report['layer']}: {report['photos']} photos, "
             f"{report['held_out_photos']} held out; CE against the {report['target']}; "
             f"dictionary figures with 95% intervals", "",
             "| expansion | features | L0 | R² dictionary | R² neurons | R² PCA | R² random | "
             "dead | KL dictionary | top-1 agreement | CE recovered dictionary | "
             "CE rec. neurons | CE rec. PCA | CE rec. random |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in report["rows"]:
        r2, down = row["r2"], row["downstream"]
        mine = down["dictionary"]
        lines.append(
            f"| {row['expansion']:g} | {row['features']} | {row['l0']} | "
            f"{r2['dictionary']:.3f} | " + " | ".join(f"{r2[b]:.3f}" for b in BASELINES)
            + f" | {row['dead_share']:.1%} | {_ci(mine, 'kl', '.3f')} | "
            f"{_ci(mine, 'top1_agreement', '.0%')} | {_ci(mine, 'ce_recovered', '.2f')} | "
            + " | ".join(f"{down[b]['ce_recovered']:.2f}" for b in BASELINES) + " |")
    return "\n".join(lines)


def sweep_plot(report: dict, path: Path) -> Path:
    """R^2, CE recovered and KL against L0: the dictionary per expansion (95 % intervals),
    the neurons and PCA of the same L0."""
    from dreamkit.plots import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    rows = report["rows"]
    panels = (("r2", "held-out R$^2$"), ("ce_recovered", "CE recovered"),
              ("kl", "KL(clean || spliced), nats"))

    def value(row: dict, name: str, key: str) -> float:
        return row["r2"][name] if key == "r2" else row["downstream"][name][key]

    for axis, (key, label) in zip(axes, panels, strict=True):
        for expansion in dict.fromkeys(row["expansion"] for row in rows):
            mine = [row for row in rows if row["expansion"] == expansion]
            l0s = [row["l0"] for row in mine]
            ys = [value(row, "dictionary", key) for row in mine]
            errors = None
            if key != "r2":
                spans = [row["downstream"]["dictionary"][f"{key}_interval"] for row in mine]
                errors = [[y - s[0] for y, s in zip(ys, spans, strict=True)],
                          [s[1] - y for y, s in zip(ys, spans, strict=True)]]
            axis.errorbar(l0s, ys, yerr=errors, marker="o", capsize=3,
                          label=f"dictionary, {mine[0]['features']} features "
                                f"(x{expansion:g})")
        first = [row for row in rows if row["expansion"] == rows[0]["expansion"]]
        for name, style in zip(BASELINES[:2], ("--", ":"), strict=True):
            axis.plot([row["l0"] for row in first], [value(row, name, key) for row in first],
                      style, color="0.3", label=name.split(" (")[0])
        axis.set_xscale("log", base=2)
        axis.set_xticks(sorted({row["l0"] for row in rows}),
                        [str(v) for v in sorted({row["l0"] for row in rows})])
        axis.minorticks_off()
        axis.set_xlabel("L0 (features active per vector)")
        axis.set_ylabel(label)
        if key == "kl":
            axis.set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{report['model']} {report['layer']}: {report['photos']} photos, "
                 f"{report['held_out_photos']} held out")
    fig.tight_layout()
    return save_figure(fig, path)
