"""What a `dreamkit vis` PNG records, and rendering its pixels again from that record.

A vis picture is one image of a batch, and a batch matches single renders only up to float
rounding (see `dreamkit.render`), so the record holds the whole batch: every target's objective
spec, the picture's index among them, the batch's seed, the render settings and the CPU thread
count. `dreamkit reproduce` renders that batch again and keeps the picture.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from dreamkit import __version__
from dreamkit.errors import DreamkitError
from dreamkit.models import StagedNet, get_spec
from dreamkit.objectives import Objective, channel, class_logit, direction, neuron
from dreamkit.param import PARAMS
from dreamkit.precision import PRECISIONS
from dreamkit.render import render
from dreamkit.strict import only_keys, typed

# each kind of target, with the fields of its spec (besides "kind") and their types
SPEC_FIELDS: dict[str, dict[str, type]] = {
    "channel": {"layer": str, "channel": int},
    "neuron": {"layer": str, "channel": int},
    "class": {"class": int, "name": str},
    "direction": {"layer": str, "direction": str},
}
RENDER_FIELDS: dict[str, type] = {
    "param": str, "decorrelate": bool, "size": int, "steps": int, "lr": float, "seed": int,
    "precision": str, "redirected_relu": bool,
}
RECORD_FIELDS: dict[str, type] = {
    "version": str, "command": str, "model": str, "objective": dict, "batch": list,
    "index": int, "threads": int, "render": dict,
}


def batch_objective(specs: Sequence[Mapping], model: str) -> Objective:
    """One objective for a batch of targets of one kind and layer: image i gets specs[i]."""
    kinds = {spec["kind"] for spec in specs}
    if len(kinds) != 1:
        raise DreamkitError(f"a batch mixes kinds of target ({', '.join(sorted(kinds))})")
    kind = kinds.pop()
    if kind == "class":
        return class_logit([spec["class"] for spec in specs])
    layers = {spec["layer"] for spec in specs}
    if len(layers) != 1:
        raise DreamkitError(f"a batch mixes layers ({', '.join(sorted(layers))})")
    layer = layers.pop()
    if kind in ("channel", "neuron"):
        make = channel if kind == "channel" else neuron
        return make(layer, [spec["channel"] for spec in specs])
    from dreamkit.directions import resolve_direction_arg

    vectors = [resolve_direction_arg(spec["direction"], model, layer)[1] for spec in specs]
    return direction(layer, torch.stack(vectors))


def make_record(model: str, specs: Sequence[Mapping], index: int, settings: Mapping,
                threads: int) -> dict:
    """The record of picture `index` of a batch rendered with `settings` (RENDER_FIELDS)."""
    return {"version": __version__, "command": "vis", "model": model,
            "objective": dict(specs[index]), "batch": [dict(s) for s in specs], "index": index,
            "threads": threads, "render": {key: settings[key] for key in RENDER_FIELDS}}


def _check_spec(where: str, spec: object, model: str) -> dict:
    kind = spec.get("kind") if isinstance(spec, Mapping) else None
    if not isinstance(kind, str) or kind not in SPEC_FIELDS:
        raise DreamkitError(f"{where} must be a table whose kind is one of "
                            f"{', '.join(SPEC_FIELDS)}")
    fields = SPEC_FIELDS[kind]
    table = only_keys(where, spec, ["kind", *fields])
    missing = [key for key in fields if key not in table]
    if missing:
        raise DreamkitError(f"{where}: missing {', '.join(missing)}")
    checked = {"kind": kind, **{k: typed(f"{where}.{k}", table[k], t) for k, t in fields.items()}}
    if "layer" in checked:
        info = get_spec(model).layers.resolve(checked["layer"])  # type: ignore[arg-type]
        if "channel" in checked and not 0 <= checked["channel"] < info.channels:  # type: ignore[operator]
            raise DreamkitError(f"{where}.channel is out of range for {info.name}")
    if kind == "class" and not 0 <= checked["class"] < 1000:  # type: ignore[operator]
        raise DreamkitError(f"{where}.class must be an ImageNet class index (0-999)")
    return checked


def check_record(record: object) -> dict:
    """The record of a vis picture, validated strictly; every problem is one DreamkitError."""
    table = only_keys("metadata", record, list(RECORD_FIELDS))
    missing = [key for key in RECORD_FIELDS if key not in table]
    if missing:
        raise DreamkitError(f"metadata: missing {', '.join(missing)}")
    values = {key: typed(f"metadata.{key}", table[key], kind)
              for key, kind in RECORD_FIELDS.items() if kind is not dict}
    if values["command"] != "vis":
        raise DreamkitError(f"metadata.command is {values['command']!r}, not 'vis'")
    model = str(values["model"])
    get_spec(model)  # an unknown model is refused here
    batch = [_check_spec(f"metadata.batch[{i}]", spec, model)
             for i, spec in enumerate(values["batch"])]  # type: ignore[arg-type]
    index = values["index"]
    if not batch or not 0 <= index < len(batch):  # type: ignore[operator]
        raise DreamkitError("metadata.index does not point into metadata.batch")
    if table["objective"] != values["batch"][index]:  # type: ignore[index]
        raise DreamkitError("metadata.objective is not the batch's target at metadata.index")
    if values["threads"] < 1:  # type: ignore[operator]
        raise DreamkitError("metadata.threads must be at least 1")
    settings = only_keys("metadata.render", table["render"], list(RENDER_FIELDS))
    missing = [key for key in RENDER_FIELDS if key not in settings]
    if missing:
        raise DreamkitError(f"metadata.render: missing {', '.join(missing)}")
    checked = {k: typed(f"metadata.render.{k}", settings[k], t) for k, t in RENDER_FIELDS.items()}
    rules = [
        (checked["param"] in PARAMS, f"param must be one of {', '.join(PARAMS)}"),
        (checked["precision"] in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}"),
        (16 <= checked["size"] <= 4096, "size must be from 16 to 4096"),  # type: ignore[operator]
        (checked["steps"] >= 1, "steps must be at least 1"),  # type: ignore[operator]
        (checked["lr"] > 0, "lr must be positive"),  # type: ignore[operator]
        (0 <= checked["seed"] < 2**63 - len(batch), "seed is out of range"),  # type: ignore[operator]
    ]
    for ok, message in rules:
        if not ok:
            raise DreamkitError(f"metadata.render.{message}")
    return {**values, "batch": batch, "objective": batch[index], "render": checked}  # type: ignore[index]


def render_record(record: Mapping, net: StagedNet) -> torch.Tensor:
    """Picture (3, H, W) of a checked record, from its whole batch rendered again with `net`."""
    objective = batch_objective(record["batch"], record["model"])
    return render(net, objective, **record["render"]).images[record["index"]]
