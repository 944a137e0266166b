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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from dreamkit.errors import DreamkitError
from dreamkit.layers import LayerTable
from dreamkit.settings import MAX_PATH, check_text

if TYPE_CHECKING:
    from dreamkit.objectives import Objective

_FIELDS = ("kind", "layer", "channel", "x", "y", "class", "file", "row", "sha256", "weight")
SHA256 = re.compile(r"[0-9a-f]{64}")


def _on_layer(target: Target, table: LayerTable, model: str = "") -> Target:
    """A target on a layer of the table (its default when none is named)."""
    return replace(target, layer=table.resolve(target.layer or table.default).name)


def _layer_text(target: Target) -> str:
    return str(target.layer)


def _unbatched(targets: Sequence[Target], model: str) -> Objective | None:
    return None


@dataclass(frozen=True)
class Kind:
    """One kind of target, as data: what a record of it must hold (`needs`), how it is
    checked against a model (`resolve`), the objective it builds (`build`; `batched` builds
    one for a batch of targets of this kind on one layer, or None), its short label and its
    file-name part. `file_flag` is the reproduce flag that finds its moved file; a `spread`
    kind (diversity) is a term of the batch, not of one picture."""

    name: str
    needs: tuple[str, ...]
    build: Callable[[Target, str], Objective]
    resolve: Callable[[Target, LayerTable, str], Target] = field(default=_on_layer)
    label: Callable[[Target], str] = field(default=_layer_text)
    stem: Callable[[Target], str] = field(default=_layer_text)
    batched: Callable[[Sequence[Target], str], Objective | None] = field(default=_unbatched)
    rows: bool = False  # its file holds rows (a direction file): records keep `row`
    file_flag: str | None = None
    spread: bool = False


KINDS: dict[str, Kind] = {}  # the table of target kinds (`register_kind` adds one)


def register_kind(kind: Kind) -> Kind:
    """Add a kind of target to the table: it then works from the API, records, galleries and
    `reproduce` like the built-in ones."""
    KINDS[kind.name] = kind
    return kind


def kind_of(name: object, where: str = "target kind") -> Kind:
    """The table entry of a kind name, or the one message naming the known kinds."""
    if not isinstance(name, str) or name not in KINDS:
        raise DreamkitError(f"{where} must be one of {', '.join(KINDS)}, not {name!r}")
    return KINDS[name]


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
        return kind_of(self.kind).resolve(self, table, model)

    # ------------------------------------------------------------------ objectives

    def objective(self, model: str) -> Objective:
        """The `Objective` of this (resolved) target, weighted."""
        made = kind_of(self.kind).build(self, model)
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
        return ("-" if self.weight < 0 else "") + kind_of(self.kind).label(self)

    def stem(self) -> str:
        """A file-name part that differs whenever the target differs (layer, channel, kind,
        class, file and row, sign)."""
        text = kind_of(self.kind).stem(self)
        if self.weight != 1:
            text += "_neg" if self.weight == -1 else f"_w{self.weight:g}"
        return text

    # ------------------------------------------------------------------ records

    def to_record(self) -> dict[str, object]:
        record: dict[str, object] = {"kind": self.kind}
        values = {"layer": self.layer, "channel": self.channel, "x": self.x, "y": self.y,
                  "class": self.class_index, "file": self.file, "sha256": self.sha256}
        record.update({k: v for k, v in values.items() if v is not None})
        if kind_of(self.kind).rows:
            record["row"] = self.row
        if self.weight != 1:
            record["weight"] = self.weight
        return record

    @classmethod
    def from_record(cls, record: object, where: str = "target") -> Target:
        """A target from an untrusted record: every problem is one DreamkitError line."""
        from dreamkit.strict import only_keys, typed

        table = only_keys(where, record, _FIELDS)
        kind = kind_of(typed(f"{where}.kind", table.get("kind"), str), f"{where}.kind").name
        missing = [k for k in KINDS[kind].needs if k not in table]
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

    if len({(t.kind, t.layer, t.weight, t.x, t.y) for t in targets}) == 1:
        made = kind_of(targets[0].kind).batched(targets, model)
        if made is not None:
            return made if targets[0].weight == 1 else targets[0].weight * made
    return o.per_image([t.objective(model) for t in targets])


def picture_objective(pictures: tuple[tuple[Target, ...], ...], model: str):
    """One objective for a batch: picture i maximizes the weighted sum `pictures[i]`. A
    diversity term pushes apart the pictures whose other terms are the same (the variants of
    one channel), within one batch however many channels it holds."""
    from dreamkit.objectives import Objective, diversity, per_image

    mains = [tuple(t for t in p if not kind_of(t.kind).spread) for p in pictures]
    spread = {t for p in pictures for t in p if kind_of(t.kind).spread}
    if all(len(m) == 1 for m in mains):
        made = batch_objective([m[0] for m in mains], model)
    else:
        made = per_image([objective_of(m, model) for m in mains])
    if not spread:
        return made
    groups = [mains.index(m) for m in mains]
    terms = [made] + [diversity(t.layer, groups) for t in spread]  # type: ignore[arg-type]
    return Objective.sum(terms, [1.0] + [t.weight for t in spread])


def dream_target(table: LayerTable, model: str, *, layer: str | None = None,
                 channel: int | None = None, guide: str | None = None,
                 direction: str | None = None, negate: bool = False) -> Target:
    """The one target of a dream (`dreamkit dream`'s flags, the studio's form), checked: a
    layer's norm (default layer), a channel, a guide image or a direction `FILE[:ROW]`."""
    if (direction and (guide or channel is not None)) or (guide and channel is not None):
        raise DreamkitError("--direction, --guide and --channel cannot be combined")
    name = layer or (None if direction else table.default)
    target = (Target.of_direction(direction, name) if direction
              else Target.of_guide(name, guide) if guide  # type: ignore[arg-type]
              else Target.of_channel(name, channel) if channel is not None  # type: ignore[arg-type]
              else Target.layer_norm(name))  # type: ignore[arg-type]
    target = target.resolve(table, model)
    return target.negated() if negate else target


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


# --------------------------------------------------------------------------- the built-in kinds


def _resolve_channel(target: Target, table: LayerTable, model: str) -> Target:
    resolved = _on_layer(target, table)
    table.resolve(resolved.layer).check_channel(target.channel)  # type: ignore[arg-type]
    return resolved


def _resolve_class(target: Target, table: LayerTable, model: str) -> Target:
    count = table.resolve(table.logits).channels if table.logits else 1000
    if not isinstance(target.class_index, int) or not 0 <= target.class_index < count:
        raise DreamkitError(f"class {target.class_index} is out of range: {model} has "
                            f"{count} classes (0 to {count - 1})")
    return target


def _resolve_guide(target: Target, table: LayerTable, model: str) -> Target:
    from dreamkit.files import file_sha256

    path = Path(check_text("guide", target.file or "", MAX_PATH)).resolve()
    return replace(_on_layer(target, table), file=str(path),
                   sha256=file_sha256(path, "guide image"))


def _resolve_direction(target: Target, table: LayerTable, model: str) -> Target:
    from dreamkit.directions import MAX_BYTES, load_directions
    from dreamkit.files import file_sha256

    path = Path(check_text("direction", target.file or "", MAX_PATH)).resolve()
    saved = load_directions(path, model=model, layer=target.layer, table=table)
    if not 0 <= target.row < len(saved.vectors):
        raise DreamkitError(f"{path}: row {target.row} is out of range, the file holds "
                            f"{len(saved.vectors)} direction(s) (0 to "
                            f"{len(saved.vectors) - 1})")
    return replace(target, layer=saved.layer, file=str(path),
                   sha256=file_sha256(path, "direction file", MAX_BYTES))


def _channel_stem(target: Target) -> str:
    where = "" if target.x is None and target.y is None else f"_x{target.x}y{target.y}"
    return f"{target.layer}_{target.kind[0]}{target.channel}{where}"


def _file_stem(target: Target) -> str:
    text = f"{target.layer}_{target.kind}-{_slug(Path(target.file or '').stem)}"
    return text + (f"-{target.row}" if kind_of(target.kind).rows else "")


def _class_label(target: Target) -> str:
    from dreamkit.imagenet import class_names

    return f"{target.class_index} {class_names()[target.class_index]}"  # type: ignore[index]


def _channels_batched(neuron: bool) -> Callable[[Sequence[Target], str], Objective | None]:
    def batched(targets: Sequence[Target], model: str) -> Objective | None:
        import dreamkit.objectives as o

        if targets[0].x is not None or targets[0].y is not None:
            return None
        make = o.neuron if neuron else o.channel
        return make(targets[0].layer, [t.channel for t in targets])  # type: ignore[arg-type,misc]

    return batched


def _directions_batched(targets: Sequence[Target], model: str) -> Objective:
    import torch

    import dreamkit.objectives as o

    first = targets[0]  # a batch shares the position (`batch_objective`)
    return o.direction(first.layer, torch.stack([t.vector(model) for t in targets]),  # type: ignore[arg-type]
                       x=first.x, y=first.y)


def _objectives():
    import dreamkit.objectives as o

    return o


for _kind in (
    Kind("layer", ("layer",), lambda t, m: _objectives().layer_norm(t.layer)),
    Kind("channel", ("layer", "channel"),
         lambda t, m: _objectives().channel(t.layer, t.channel), resolve=_resolve_channel,
         label=lambda t: f"c{t.channel}", stem=_channel_stem, batched=_channels_batched(False)),
    Kind("neuron", ("layer", "channel"),
         lambda t, m: _objectives().neuron(t.layer, t.channel, t.x, t.y),
         resolve=_resolve_channel, label=lambda t: f"n{t.channel}", stem=_channel_stem,
         batched=_channels_batched(True)),
    Kind("class", ("class",), lambda t, m: _objectives().class_logit(t.class_index),
         resolve=_resolve_class, label=_class_label, stem=lambda t: f"class{t.class_index}",
         batched=lambda ts, m: _objectives().class_logit([t.class_index for t in ts])),
    Kind("direction", ("layer", "file"),
         lambda t, m: _objectives().direction(t.layer, t.vector(m), x=t.x, y=t.y),
         resolve=_resolve_direction, label=lambda t: f"{Path(t.file or '').stem}:{t.row}",
         stem=_file_stem, batched=_directions_batched, rows=True,
         file_flag="--direction FILE"),
    Kind("guide", ("layer", "file"), lambda t, m: _objectives().guide(t.layer, t._guide_image()),
         resolve=_resolve_guide, label=lambda t: f"{Path(t.file or '').stem}:{t.row}",
         stem=_file_stem, file_flag="--guide IMAGE"),
    Kind("diversity", ("layer",), lambda t, m: _objectives().diversity(t.layer),
         label=lambda t: f"{t.layer} diversity", stem=lambda t: f"{t.layer}_diversity",
         spread=True),
):
    register_kind(_kind)
