"""What a picture remembers, and making it again.

A `Recipe` is everything that determines a picture's pixels: the command (`dream` of a photo
or `vis` from noise), the model, the target (a weighted sum of `Target`s), the settings, the
photo (path, SHA-256, square crop) of a dream and, for `vis`, every target of its batch (a
batch matches single renders only up to float rounding). A `Record` adds where it came from:
the weights' SHA-256, what really ran (device, precision, gradient plans, compiled or not, CPU
threads) and the version. Every PNG dreamkit writes carries its record as JSON (text key
`dreamkit`); `dreamkit reproduce`, the gallery and `vis` all read and write it here. Records
are untrusted input: `Record.from_json` checks every field against the bounds of
`dreamkit.settings`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from dreamkit.errors import DreamkitError
from dreamkit.settings import (
    MAX_PATH,
    MAX_SIDE,
    MAX_TARGETS,
    MIN_SIDE,
    Bounds,
    DreamSettings,
    RenderSettings,
    check,
    check_batch,
    check_text,
)
from dreamkit.strict import only_keys, typed
from dreamkit.targets import SHA256, Target, kind_of
from dreamkit.version import __version__

KEY = "dreamkit"  # the PNG text key
FORMAT = "dreamkit-record/2"
COMMANDS = ("dream", "vis")
MAX_RECORD_CHARS = 2**20
RAN_PRECISIONS = ("fp32", "bf16", "fp16")
PLAN = re.compile(r"full|chunk:[1-9]\d{0,3}|tile:[1-9]\d{1,3}")
_TOP = ("format", "version", "command", "model", "weights", "target", "settings", "input",
        "batch", "index", "ran", "octaves_done")


@dataclass(frozen=True)
class Photo:
    """The photo a dream starts from: absolute path, SHA-256, and the side of the square
    centre crop it is first cut to (None: the whole photo)."""

    path: str
    sha256: str
    crop: int | None = None

    def to_dict(self) -> dict:
        return {"path": self.path, "sha256": self.sha256, "crop": self.crop}

    @classmethod
    def of(cls, path: str | Path, crop: int | None = None) -> Photo:
        from dreamkit.files import file_sha256

        resolved = Path(path).resolve()
        return cls(str(resolved), file_sha256(resolved, "photo"), crop)

    @classmethod
    def from_dict(cls, table: object, where: str = "input") -> Photo:
        table = only_keys(where, table, ("path", "sha256", "crop"))
        path = check_text(f"{where}.path", typed(f"{where}.path", table.get("path"), str),
                          MAX_PATH)
        sha = typed(f"{where}.sha256", table.get("sha256"), str)
        if not SHA256.fullmatch(str(sha)):
            raise DreamkitError(f"{where}.sha256 is not a SHA-256 hex digest")
        crop = table.get("crop")
        if crop is not None:
            check("crop", crop, Bounds(int, low=MIN_SIDE, high=MAX_SIDE))
        return cls(str(path), str(sha), crop)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Recipe:
    """Everything that determines a picture's pixels (same recipe, same pixels)."""

    command: str
    model: str
    target: tuple[Target, ...]
    settings: DreamSettings | RenderSettings
    input: Photo | None = None
    batch: tuple[tuple[Target, ...], ...] = ()
    index: int = 0

    def to_dict(self) -> dict:
        out: dict = {"command": self.command, "model": self.model,
                     "target": [t.to_record() for t in self.target],
                     "settings": self.settings.to_dict()}
        if self.input is not None:
            out["input"] = self.input.to_dict()
        if self.command == "vis":
            out["batch"] = [[t.to_record() for t in picture] for picture in self.batch]
            out["index"] = self.index
        return out

    def key(self) -> str:
        """A short hash of the recipe (a gallery tile's file name and its finished check)."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:10]

    def label(self) -> str:
        return " + ".join(t.label() for t in self.target)


@dataclass(frozen=True)
class Record:
    """A recipe with its provenance: `weights` (SHA-256 of the state dict, or `random`),
    `ran` (device, precision, plans, threads) and the dreamkit version."""

    recipe: Recipe
    weights: str
    ran: Mapping = field(default_factory=dict)
    version: str = __version__
    octaves_done: int | None = None  # a dream saved when interrupted

    def to_json(self) -> str:
        out = {"format": FORMAT, "version": self.version, **self.recipe.to_dict(),
               "weights": self.weights, "ran": dict(self.ran)}
        if self.octaves_done is not None:
            out["octaves_done"] = self.octaves_done
        return json.dumps(out)

    def metadata(self) -> dict[str, str]:
        """The PNG text chunks of this record (`save_image(..., metadata=...)`)."""
        return {KEY: self.to_json()}

    @classmethod
    def from_json(cls, data: object) -> Record:
        """A record from parsed JSON, every field checked (one DreamkitError per problem)."""
        table = only_keys("metadata", data, _TOP)
        fmt = table.get("format")
        if fmt != FORMAT:
            version = table.get("version", "an older version")
            raise DreamkitError(f"this picture's record was written by dreamkit "
                                f"{str(version)[:20]}, in a format this version cannot read "
                                f"(expected {FORMAT}); make it again")
        command = typed("metadata.command", table.get("command"), str)
        if command not in COMMANDS:
            raise DreamkitError(f"metadata.command must be one of {', '.join(COMMANDS)}")
        model = check_text("metadata.model", typed("metadata.model", table.get("model"), str))
        kind = DreamSettings if command == "dream" else RenderSettings
        settings = kind.from_dict(table.get("settings", {}), "metadata.settings")
        target = _terms(table.get("target"), "metadata.target")
        batch: tuple[tuple[Target, ...], ...] = ()
        index = 0
        photo = None
        if command == "vis":
            pictures = table.get("batch")
            if not isinstance(pictures, list) or not pictures:
                raise DreamkitError("metadata.batch must be a non-empty list of targets")
            check_batch(settings.size, len(pictures))  # type: ignore[union-attr]
            batch = tuple(_terms(p, f"metadata.batch[{i}]") for i, p in enumerate(pictures))
            index = check("metadata.index", table.get("index"),  # type: ignore[assignment]
                          Bounds(int, low=0, high=len(batch) - 1))
            if batch[index] != target:
                raise DreamkitError("metadata.target is not the batch's target at "
                                    "metadata.index")
        else:
            photo = Photo.from_dict(table.get("input"), "metadata.input")
        weights = typed("metadata.weights", table.get("weights"), str)
        if weights != "random" and not SHA256.fullmatch(str(weights)):
            raise DreamkitError("metadata.weights must be a SHA-256 hex digest or random")
        ran = _ran(table.get("ran", {}), settings)
        done = table.get("octaves_done")
        if done is not None:
            check("metadata.octaves_done", done, Bounds(int, low=1, high=16))
        version = check_text("metadata.version", typed("metadata.version",
                                                         table.get("version"), str), 40)
        recipe = Recipe(command, model, target, settings, photo, batch, index)  # type: ignore[arg-type]
        return cls(recipe, str(weights), ran, str(version), done)  # type: ignore[arg-type]


def _terms(value: object, where: str) -> tuple[Target, ...]:
    if not isinstance(value, list) or not 1 <= len(value) <= 64:
        raise DreamkitError(f"{where} must be a list of 1 to 64 target terms")
    return tuple(Target.from_record(term, f"{where}[{i}]") for i, term in enumerate(value))


def _ran(value: object, settings: DreamSettings | RenderSettings) -> dict:
    from dreamkit.settings import check_threads

    table = only_keys("metadata.ran", value, ("device", "precision", "plans", "threads",
                                              "torch", "compiled"))
    ran: dict = {}
    if "compiled" in table:
        ran["compiled"] = check("metadata.ran.compiled", table["compiled"], Bounds(bool))
    if "threads" in table:
        ran["threads"] = check_threads(table["threads"], "metadata.ran.threads")
    if "precision" in table:
        ran["precision"] = check("metadata.ran.precision", table["precision"],
                                 Bounds(str, choices=RAN_PRECISIONS))
    for key in ("device", "torch"):
        if key in table:
            ran[key] = check_text(f"metadata.ran.{key}", table[key], 100)
    if "plans" in table:
        plans = table["plans"]
        limit = getattr(settings, "octaves", 1)
        if not isinstance(plans, list) or not 1 <= len(plans) <= limit or not all(
                isinstance(p, str) and PLAN.fullmatch(p) for p in plans):
            raise DreamkitError(f"metadata.ran.plans must be a list of at most {limit} plans "
                                "(full, chunk:N or tile:N)")
        ran["plans"] = list(plans)
    return ran


def read_record(path: str | Path) -> Record:
    """The checked record of a PNG written by dreamkit."""
    from dreamkit.image_io import read_metadata

    text = read_metadata(path).get(KEY)
    if text is None:
        raise DreamkitError(f"{path}: no dreamkit record in this picture")
    if len(text) > MAX_RECORD_CHARS:
        raise DreamkitError(f"{path}: its record is {len(text):,} characters, more than the "
                            f"limit of {MAX_RECORD_CHARS:,}")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        raise DreamkitError(f"{path}: its record is not valid JSON ({exc})") from None
    try:
        if isinstance(data, Mapping) and data.get("command") == "gallery":
            raise DreamkitError("this is a contact sheet; reproduce one of its tiles instead")
        return Record.from_json(data)
    except DreamkitError as exc:
        raise DreamkitError(f"{path}: {exc}") from None


def check_targets(recipe: Recipe, table) -> Recipe:
    """The recipe with its targets resolved against the model's layer table (layer names,
    channels, classes; direction files and guide photos are not read here)."""
    def fix(terms: tuple[Target, ...]) -> tuple[Target, ...]:
        out = []
        for term in terms:
            if kind_of(term.kind).file_flag:  # its file is read when the picture is made
                table.resolve(term.layer or table.default)
                out.append(term)
            else:
                out.append(term.resolve(table, recipe.model))
        return tuple(out)

    if len(recipe.batch) > MAX_TARGETS:
        raise DreamkitError(f"a batch may hold at most {MAX_TARGETS} pictures")
    return replace(recipe, target=fix(recipe.target),
                   batch=tuple(fix(p) for p in recipe.batch))


def relocate(recipe: Recipe, files: Mapping[str, str]) -> Recipe:
    """The recipe with the direction files and guide photos it names moved (old -> new)."""
    def move(terms: tuple[Target, ...]) -> tuple[Target, ...]:
        return tuple(replace(t, file=files.get(t.file, t.file)) if t.file else t for t in terms)

    return replace(recipe, target=move(recipe.target),
                   batch=tuple(move(p) for p in recipe.batch))


def provenance(ran: Mapping) -> dict:
    """What ran, as a record keeps it: device, precision and gradient plans (as `dream` and
    `render` report them), the CPU thread count and the torch version."""
    import torch

    return {**ran, "threads": torch.get_num_threads(), "torch": torch.__version__}
