"""The dictionary report: a printed table, `<dictionary>.json` and `<dictionary>.png`."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from dreamkit.dictionary.evaluate import TOP_EXAMPLES
from dreamkit.files import write_json
from dreamkit.plots import pyplot, save_figure


def table(report: dict) -> str:
    """The report as Markdown tables (what `dreamkit dictionary fit` prints)."""
    k, features, channels = report["k"], report["features"], report["channels"]
    r2 = report["r2"]
    lines = [f"| held-out R^2 at L0 = {k} ({features} features, {channels} channels) | R^2 |",
             "|---|---:|"]
    lines += [f"| {name} | {value:.3f} |" for name, value in r2.items()]
    cos, share = report["abs_cos"], report["top_examples_share_one_neuron"]
    mono, steer = report["monosemanticity"], report.get("steering", {})
    lines += ["", "| measure | value |", "|---|---:|",
              f"| mean L0 | {report['mean_l0']:.1f} |",
              f"| dead features | {report['dead_features']} of {features} "
              f"({report['dead_share']:.1%}) |",
              f"| alive features per dimension | {report['features_per_dimension']:.2f} |",
              f"| mean (p99) \\|cos\\| between atoms | {cos['mean']:.3f} ({cos['p99']:.3f}) |",
              f"| same for random unit directions | {cos['random_mean']:.3f} "
              f"({cos['random_p99']:.3f}) |",
              f"| share of a feature's top {TOP_EXAMPLES} examples led by one neuron | "
              f"{share['mean_share']:.2f} |",
              f"| features whose top examples mostly share one neuron | "
              f"{share['features_mostly_one_neuron']:.1%} |"]
    lines += [f"| monosemanticity (median top-view consistency), {name} | {value:.3f} |"
              for name, value in mono.items()]
    lines += [f"| features more consistent than the median neuron | "
              f"{report['features_above_median_neuron']:.1%} |"]
    lines += [f"| steering: logits' homogeneity error along {name} | {value:.3f} |"
              for name, value in steer.items()]
    return "\n".join(lines)


def write_report(report: dict, distributions: dict[str, torch.Tensor],
                 path: str | os.PathLike[str], plot: bool = True) -> list[Path]:
    """`path`.json, and with `plot` `path`.png (R^2 bars, |cos| and consistency histograms)."""
    path = Path(path)
    written = [write_json(path.with_suffix(".json"), report)]
    if not plot:
        return written
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    names = list(report["r2"])
    axes[0].barh(names[::-1], [report["r2"][n] for n in names[::-1]], color="#4c72b0")
    axes[0].set_xlabel(f"held-out R$^2$ at L0 = {report['k']}")
    axes[0].set_xlim(0, 1)
    axes[1].hist(distributions["abs_cos"].numpy(), bins=60, alpha=0.7, density=True,
                 label="dictionary atoms")
    axes[1].hist(distributions["abs_cos_random"].numpy(), bins=60, alpha=0.6, density=True,
                 label="random unit directions")
    axes[1].set_xlabel("|cos| between pairs")
    axes[1].legend()
    for name in ("features", "neurons", "random"):
        axes[2].hist(distributions[f"mono_{name}"].numpy(), bins=30, alpha=0.6, density=True,
                     label=name)
    axes[2].set_xlabel("top views' consistency at a later layer")
    axes[2].legend()
    fig.tight_layout()
    written.append(save_figure(fig, path.with_suffix(".png")))
    return written
