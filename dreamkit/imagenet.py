"""ImageNet-1k class names (the standard synset order shared by Caffe and torchvision models)."""

from __future__ import annotations

import difflib
from functools import cache

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
