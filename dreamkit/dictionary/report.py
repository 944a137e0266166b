"""The dictionary report: a printed table, `<dictionary>.json` and `<dictionary>.png`."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from dreamkit.dictionary.evaluate import TOP_EXAMPLES
from dreamkit.dictionary.purity import FAMILIES, TOP_PHOTOS
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
    if "downstream" in report:
        lines += ["", *downstream_table(report["downstream"])]
    if "label_purity" in report:
        lines += ["", *purity_table(report["label_purity"])]
    return "\n".join(lines)


def _interval(value: float, interval: list[float], form: str = ".3f") -> str:
    return f"{value:{form}} [{interval[0]:{form}}, {interval[1]:{form}}]"


def downstream_table(downstream: dict) -> list[str]:
    """The downstream fidelity table: the layer replaced by each reconstruction."""
    lines = [f"| layer replaced by, on {downstream['photos']} held-out photos | KL(clean \\|\\| "
             f"spliced) | top-1 agreement | CE recovered (vs {downstream['target']}) |",
             "|---|---:|---:|---:|"]
    for name, m in downstream["methods"].items():
        lines.append(f"| {name} | {_interval(m['kl'], m['kl_interval'])} | "
                     f"{_interval(m['top1_agreement'], m['top1_agreement_interval'], '.0%')} | "
                     f"{_interval(m['ce_recovered'], m['ce_recovered_interval'], '.2f')} |")
    return lines


def purity_table(purity: dict) -> list[str]:
    """The label-purity table: each family's distribution against chance."""
    if "skipped" in purity:
        return [f"label purity: skipped ({purity['skipped']})"]
    lines = []
    for level in ("group", "class"):
        if level not in purity:
            continue
        entry = purity[level]
        what = f"one of {purity['groups']} groups" if level == "group" else "one class"
        lines += [f"| label purity: share of the top {purity['top']} of {purity['photos']} "
                  f"photos in {what} | median (quartiles) | mean | above chance's p95 |",
                  "|---|---:|---:|---:|"]
        for family in FAMILIES:
            s = entry[family]
            lines.append(f"| {family} ({s['units']}; {s['left_out']} left out) | "
                         f"{s['median']:.2f} ({s['q1']:.2f}-{s['q3']:.2f}) | {s['mean']:.3f} | "
                         f"{s['above_chance']:.1%} |")
        lines += [f"| random sets of {purity['top']} photos (chance) | "
                  f"{entry['chance']['median']:.2f} (p95 {entry['chance']['p95']:.2f}) | | |", ""]
    return lines[:-1]


def write_report(report: dict, distributions: dict[str, torch.Tensor],
                 path: str | os.PathLike[str], plot: bool = True) -> list[Path]:
    """`path`.json, and with `plot` `path`.png (R^2 bars, |cos| and consistency histograms;
    downstream bars with intervals and label-purity histograms when measured)."""
    path = Path(path)
    written = [write_json(path.with_suffix(".json"), report)]
    if not plot:
        return written
    plt = pyplot()
    fig, grid = plt.subplots(2, 3, figsize=(14, 7.2))
    axes = grid.flatten()
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
        values = distributions[f"mono_{name}"]
        spread = float(values.max() - values.min()) if len(values) else 0.0
        axes[2].hist(values.numpy(), bins=30 if spread > 1e-6 else 1, alpha=0.6, density=True,
                     label=name)  # one bin where a few views make every unit alike
    axes[2].set_xlabel("top views' consistency at a later layer")
    axes[2].legend()
    if "downstream" in report:
        _downstream_bars(axes[3], axes[4], report["downstream"])
    if "purity_features" in distributions:
        bins = [i / TOP_PHOTOS - 0.5 / TOP_PHOTOS for i in range(TOP_PHOTOS + 2)]
        for name in ("features", "neurons", "random", "chance"):
            axes[5].hist(distributions[f"purity_{name}"].numpy(), bins=bins, alpha=0.5,
                         density=True, label="random photo sets" if name == "chance" else name)
        axes[5].set_xlabel(f"label purity of the top {TOP_PHOTOS} photos")
        axes[5].legend()
    for axis in axes[3:]:
        if not axis.has_data():
            axis.set_axis_off()
    fig.tight_layout()
    written.append(save_figure(fig, path.with_suffix(".png")))
    return written


def _downstream_bars(ce_axis, kl_axis, downstream: dict) -> None:
    """CE recovered and KL per reconstruction, with their 95 % intervals."""
    methods = downstream["methods"]
    names = list(methods)[::-1]
    for axis, key, label in ((ce_axis, "ce_recovered", "CE recovered"),
                             (kl_axis, "kl", "KL(clean || spliced), nats")):
        values = [methods[n][key] for n in names]
        low = [methods[n][key] - methods[n][f"{key}_interval"][0] for n in names]
        high = [methods[n][f"{key}_interval"][1] - methods[n][key] for n in names]
        axis.barh(names, values, xerr=[low, high], color="#55a868", capsize=3)
        axis.set_xlabel(f"{label} ({downstream['photos']} held-out photos, 95% CI)")
