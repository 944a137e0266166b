"""What to maximize, as data: a layer's norm, a channel, a neuron, a class, a learned direction
or a guide image, with a weight; a picture's target is a weighted sum of such terms.

A `Target` is validated once against the model's layer table (`resolve`), builds its
`Objective` (`objective`, `batch_objective` for one target per image) and round-trips through
a PNG record (`to_record` / `from_record`). Every command, the gallery, the records and the
microscope use it, so a mistake gets one message wherever it is made. Files a target names
(direction files, guide photos) are kept as absolute paths with their SHA-256.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from dreamkit.errors import DreamkitError
from dreamkit.layers import LayerTable
from dreamkit.settings import MAX_PATH, check_text

if TYPE_CHECKING:
    from dreamkit.objectives import Objective

KINDS = ("layer", "channel", "neuron", "class", "direction", "guide", "diversity")
_FIELDS = ("kind", "layer", "channel", "x", "y", "class", "file", "row", "sha256", "weight")
_NEEDS = {  # what each kind must have (besides kind and weight)
    "layer": ("layer",), "channel": ("layer", "channel"), "neuron": ("layer", "channel"),
    "class": ("class",), "direction": ("layer", "file"), "guide": ("layer", "file"),
    "diversity": ("layer",),
}
SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Target:
    """One term of what a picture maximizes; `weight` -1 minimizes it (`--negate`)."""

    kind: str
    layer: str | None = None
    channel: int | None = None
    x: int | None = None  # neuron position in the layer's grid; None: the centre
    y: int | None = None
    class_index: int | None = None
    file: str | None = None  # direction file or guide photo (absolute once resolved)
    row: int = 0  # the row of a direction file
    sha256: str | None = None  # of `file`
    weight: float = 1.0

    # ------------------------------------------------------------------ constructors

    @classmethod
    def layer_norm(cls, layer: str) -> Target:
        return cls("layer", layer=layer)

    @classmethod
    def of_channel(cls, layer: str, channel: int, *, neuron: bool = False) -> Target:
        return cls("neuron" if neuron else "channel", layer=layer, channel=channel)

    @classmethod
    def of_class(cls, label: int | str) -> Target:
        from dreamkit.imagenet import class_index

        return cls("class", class_index=class_index(label))

    @classmethod
    def of_direction(cls, spec: str, layer: str | None = None) -> Target:
        """`FILE[:ROW]` of a direction file (`dreamkit direction`, `dreamkit dictionary`)."""
        path, row = split_direction_arg(spec)
        return cls("direction", layer=layer, file=path, row=row)

    @classmethod
    def of_guide(cls, layer: str, image: str) -> Target:
        return cls("guide", layer=layer, file=image)

    @classmethod
    def diversity(cls, layer: str, weight: float) -> Target:
        """A term that pushes the pictures of a batch with the same other terms apart."""
        return cls("diversity", layer=layer, weight=weight)

    def negated(self) -> Target:
        return replace(self, weight=-self.weight)

    # ------------------------------------------------------------------ checks

    def resolve(self, table: LayerTable, model: str) -> Target:
        """The target checked against `model`'s table: canonical layer name, channel in range,
        files read and hashed (a direction file's model, layer and row checked)."""
        if self.kind not in KINDS:
            raise DreamkitError(f"target kind must be one of {', '.join(KINDS)}, not "
                                f"{self.kind!r}")
        if self.kind == "direction":
            return self._resolve_direction(table, model)
        if self.kind == "class":
            count = table.resolve(table.logits).channels if table.logits else 1000
            if not isinstance(self.class_index, int) or not 0 <= self.class_index < count:
                raise DreamkitError(f"class {self.class_index} is out of range: {model} has "
                                    f"{count} classes (0 to {count - 1})")
            return self
        info = table.resolve(self.layer or table.default)
        target = replace(self, layer=info.name)
        if self.kind in ("channel", "neuron"):
            info.check_channel(self.channel)  # type: ignore[arg-type]
        if self.kind == "guide":
            from dreamkit.files import file_sha256

            path = Path(check_text("guide", self.file or "", MAX_PATH)).resolve()
            target = replace(target, file=str(path), sha256=file_sha256(path, "guide image"))
        return target

    def _resolve_direction(self, table: LayerTable, model: str) -> Target:
        from dreamkit.directions import MAX_BYTES, load_directions
        from dreamkit.files import file_sha256

        path = Path(check_text("direction", self.file or "", MAX_PATH)).resolve()
        saved = load_directions(path, model=model, layer=self.layer, table=table)
        if not 0 <= self.row < len(saved.vectors):
            raise DreamkitError(f"{path}: row {self.row} is out of range, the file holds "
                                f"{len(saved.vectors)} direction(s) (0 to "
                                f"{len(saved.vectors) - 1})")
        return replace(self, layer=saved.layer, file=str(path),
                       sha256=file_sha256(path, "direction file", MAX_BYTES))

    # ------------------------------------------------------------------ objectives

    def objective(self, model: str) -> Objective:
        """The `Objective` of this (resolved) target, weighted."""
        import dreamkit.objectives as o

        if self.kind == "layer":
            made = o.layer_norm(self.layer)  # type: ignore[arg-type]
        elif self.kind == "diversity":
            made = o.diversity(self.layer)  # type: ignore[arg-type]
        elif self.kind == "channel":
            made = o.channel(self.layer, self.channel)  # type: ignore[arg-type]
        elif self.kind == "neuron":
            made = o.neuron(self.layer, self.channel, self.x, self.y)  # type: ignore[arg-type]
        elif self.kind == "class":
            made = o.class_logit(self.class_index)  # type: ignore[arg-type]
        elif self.kind == "direction":
            made = o.direction(self.layer, self.vector(model))  # type: ignore[arg-type]
        else:
            made = o.guide(self.layer, self._guide_image())  # type: ignore[arg-type]
        return made if self.weight == 1 else self.weight * made

    def vector(self, model: str):
        """A direction target's unit vector (C,), from its (checked) file."""
        from dreamkit.directions import load_directions

        self._check_unchanged("direction file")
        return load_directions(self.file, model=model, layer=self.layer).vectors[self.row]

    def _guide_image(self):
        from dreamkit.image_io import load_image

        self._check_unchanged("guide image")
        return load_image(self.file)  # type: ignore[arg-type]

    def _check_unchanged(self, what: str) -> None:
        from dreamkit.files import file_sha256

        if self.sha256 is not None and file_sha256(Path(self.file), what) != self.sha256:
            raise DreamkitError(f"{self.file}: not the {what} this picture was made with "
                                "(SHA-256 differs)")

    # ------------------------------------------------------------------ names

    def label(self) -> str:
        """Short text for a contact sheet: `c97`, `n97`, `285 Egyptian cat`, `cat:2`..."""
        sign = "-" if self.weight < 0 else ""
        if self.kind in ("layer", "diversity"):
            return f"{sign}{self.layer}{' diversity' if self.kind == 'diversity' else ''}"
        if self.kind in ("channel", "neuron"):
            return f"{sign}{self.kind[0]}{self.channel}"
        if self.kind == "class":
            from dreamkit.imagenet import class_names

            return f"{sign}{self.class_index} {class_names()[self.class_index]}"
        return f"{sign}{Path(self.file or '').stem}:{self.row}"

    def stem(self) -> str:
        """A file-name part that differs whenever the target differs (layer, channel, kind,
        class, file and row, sign)."""
        if self.kind in ("layer", "diversity"):
            text = f"{self.layer}{'_diversity' if self.kind == 'diversity' else ''}"
        elif self.kind in ("channel", "neuron"):
            where = "" if self.x is None and self.y is None else f"_x{self.x}y{self.y}"
            text = f"{self.layer}_{self.kind[0]}{self.channel}{where}"
        elif self.kind == "class":
            text = f"class{self.class_index}"
        else:
            text = f"{self.layer}_{self.kind}-{_slug(Path(self.file or '').stem)}"
            text += f"-{self.row}" if self.kind == "direction" else ""
        if self.weight != 1:
            text += "_neg" if self.weight == -1 else f"_w{self.weight:g}"
        return text

    # ------------------------------------------------------------------ records

    def to_record(self) -> dict[str, object]:
        record: dict[str, object] = {"kind": self.kind}
        values = {"layer": self.layer, "channel": self.channel, "x": self.x, "y": self.y,
                  "class": self.class_index, "file": self.file, "sha256": self.sha256}
        record.update({k: v for k, v in values.items() if v is not None})
        if self.kind == "direction":
            record["row"] = self.row
        if self.weight != 1:
            record["weight"] = self.weight
        return record

    @classmethod
    def from_record(cls, record: object, where: str = "target") -> Target:
        """A target from an untrusted record: every problem is one DreamkitError line."""
        from dreamkit.strict import only_keys, typed

        table = only_keys(where, record, _FIELDS)
        kind = typed(f"{where}.kind", table.get("kind"), str)
        if kind not in KINDS:
            raise DreamkitError(f"{where}.kind must be one of {', '.join(KINDS)}, not {kind!r}")
        missing = [k for k in _NEEDS[kind] if k not in table]  # type: ignore[index]
        if missing:
            raise DreamkitError(f"{where}: a {kind} target needs {', '.join(missing)}")
        types = {"layer": str, "channel": int, "x": int, "y": int, "class": int, "file": str,
                 "row": int, "sha256": str, "weight": float}
        values = {k: typed(f"{where}.{k}", table[k], t) for k, t in types.items() if k in table}
        for key in ("layer", "file"):
            if key in values:
                check_text(f"{where}.{key}", values[key], MAX_PATH)
        if "sha256" in values and not SHA256.fullmatch(str(values["sha256"])):
            raise DreamkitError(f"{where}.sha256 is not a SHA-256 hex digest")
        if not -1e6 <= values.get("weight", 1.0) <= 1e6:  # type: ignore[operator]
            raise DreamkitError(f"{where}.weight must be a number from -1,000,000 to 1,000,000")
        if values.get("row", 0) < 0:  # type: ignore[operator]
            raise DreamkitError(f"{where}.row must be 0 or more")
        return cls(kind, layer=values.get("layer"), channel=values.get("channel"),  # type: ignore[arg-type]
                   x=values.get("x"), y=values.get("y"), class_index=values.get("class"),  # type: ignore[arg-type]
                   file=values.get("file"), row=values.get("row", 0),  # type: ignore[arg-type]
                   sha256=values.get("sha256"), weight=values.get("weight", 1.0))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- sums and batches


def objective_of(terms: Sequence[Target], model: str) -> Objective:
    """The weighted sum of resolved targets (one flat sum, however many terms)."""
    from dreamkit.objectives import Objective

    if not terms:
        raise DreamkitError("a picture needs at least one target")
    if len(terms) == 1:
        return terms[0].objective(model)
    return Objective.sum([t.objective(model) for t in terms])


def batch_objective(targets: Sequence[Target], model: str) -> Objective:
    """One objective for a batch of pictures, picture i maximizing `targets[i]`: batched by
    kind when all share one (channels of one layer, classes, directions of one layer), else
    each picture's own objective on its own activations."""
    import dreamkit.objectives as o

    kinds = {(t.kind, t.layer, t.weight, t.x, t.y) for t in targets}
    if len(kinds) == 1:
        kind, layer = targets[0].kind, targets[0].layer
        weight = targets[0].weight
        if kind in ("channel", "neuron") and targets[0].x is None and targets[0].y is None:
            make = o.channel if kind == "channel" else o.neuron
            made = make(layer, [t.channel for t in targets])  # type: ignore[arg-type,misc]
        elif kind == "class":
            made = o.class_logit([t.class_index for t in targets])  # type: ignore[misc]
        elif kind == "direction":
            import torch

            made = o.direction(layer, torch.stack([t.vector(model) for t in targets]))  # type: ignore[arg-type]
        else:
            made = None
        if made is not None:
            return made if weight == 1 else weight * made
    return o.per_image([t.objective(model) for t in targets])


def parse_channel_list(text: str, layer: str, channels: int) -> list[int]:
    """`0-3,7` -> [0, 1, 2, 3, 7], each checked against the layer's channel count."""
    picked: list[int] = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d{1,9})\s*(?:-\s*(\d{1,9})\s*)?", part)
        if not match:
            raise DreamkitError(f"bad channel list {text[:100]!r}: expected e.g. 0-63 or "
                                "0,5,9-12")
        first, last = int(match[1]), int(match[2] or match[1])
        if first > last:
            raise DreamkitError(f"bad channel range {part.strip()!r}: start is after end")
        from dreamkit.layers import check_channel

        check_channel(layer, channels, last)
        picked.extend(range(first, last + 1))
    return list(dict.fromkeys(picked))


def split_direction_arg(spec: str) -> tuple[str, int]:
    """`FILE[:ROW]` -> (FILE, ROW); row 0 when none is given (a colon not followed by digits
    belongs to the file name)."""
    path, sep, index = spec.rpartition(":")
    if not (sep and index.isdigit() and len(index) < 10):
        return spec, 0
    return path, int(index)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[:40] or "x"
