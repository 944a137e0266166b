"""ImageNet-1k class names (the standard synset order shared by Caffe and torchvision models),
their coarse groups, and the class a photo's file name gives."""

from __future__ import annotations

import difflib
import os
import re
from functools import cache
from pathlib import Path

from dreamkit.errors import DreamkitError


@cache
def class_names() -> tuple[str, ...]:
    """The 1000 class names, index order."""
    from torchvision.models import GoogLeNet_Weights

    return tuple(GoogLeNet_Weights.IMAGENET1K_V1.meta["categories"])


def class_index(label: int | str) -> int:
    """An index 0-999 from an index or a class name (case-insensitive; suggestions on a typo)."""
    names = class_names()
    if isinstance(label, int) or (isinstance(label, str) and label.strip().isdigit()):
        index = int(label)
        if not 0 <= index < len(names):
            raise DreamkitError(f"class index {index} is out of range 0-{len(names) - 1}")
        return index
    lowered = [name.lower() for name in names]
    key = label.strip().lower()
    if key in lowered:
        return lowered.index(key)
    close = difflib.get_close_matches(key, lowered, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(names[lowered.index(c)]) for c in close)}?"
    raise DreamkitError(f"unknown ImageNet class {label!r}{hint if close else ''}")


# Coarse groups of the 1000 classes, each a WordNet ancestor of its classes (or, for "other
# mammal" and "other invertebrate", what is left of one), as ranges of class indices: the
# classes are in WordNet-id order, which keeps the animals, foods and scenes in runs. The
# man-made objects (398-922, 999) are ordered alphabetically by id, so they stay one group.
GROUPS: tuple[tuple[int, int, str], ...] = (
    (0, 6, "fish"), (7, 24, "bird"), (25, 32, "amphibian"), (33, 68, "reptile"),
    (69, 79, "other invertebrate"), (80, 100, "bird"), (101, 106, "other mammal"),
    (107, 126, "other invertebrate"), (127, 146, "bird"), (147, 150, "other mammal"),
    (151, 268, "dog"), (269, 299, "carnivore (not dog)"), (300, 326, "insect"),
    (327, 329, "other invertebrate"), (330, 338, "other mammal"), (339, 355, "hoofed mammal"),
    (356, 362, "carnivore (not dog)"), (363, 364, "other mammal"), (365, 384, "primate"),
    (385, 386, "other mammal"), (387, 388, "carnivore (not dog)"), (389, 397, "fish"),
    (398, 922, "man-made object"), (923, 969, "food"), (970, 980, "scene"),
    (981, 983, "person"), (984, 998, "plant or fungus"), (999, 999, "man-made object"),
)


def class_group(index: int) -> str:
    """The coarse group (`GROUPS`) of class `index`: "dog", "bird", "food", ..."""
    for first, last, name in GROUPS:
        if first <= index <= last:
            return name
    raise DreamkitError(f"class index {index} is out of range 0-999")


def photo_class(path: str | os.PathLike[str]) -> int | None:
    """The ImageNet class a photo's file name gives (`<index>_<wnid>_<name>.jpg`, as in the
    shared photos), or None."""
    found = re.match(r"(\d{1,3})_n\d{8}(_|\.)", Path(path).name)
    return int(found[1]) if found and int(found[1]) < 1000 else None
