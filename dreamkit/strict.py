"""Strict checks of untrusted structured values (gallery configs, PNG metadata records): every
problem becomes one `DreamkitError` line that says where it is."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from dreamkit.errors import DreamkitError


def typed(where: str, value: object, kind: type) -> object:
    """`value` if it has type `kind` (an int passes as a float; a bool is never a number)."""
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
    if not ok or (kind is float and not math.isfinite(value)):  # type: ignore[arg-type]
        names = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
                 list: "a list"}
        raise DreamkitError(f"{where} must be {names[kind]}, not {value!r}")
    return value


def only_keys(where: str, table: object, allowed: Sequence[str]) -> Mapping[str, object]:
    """`table` if it is a mapping whose keys are all `allowed`."""
    if not isinstance(table, Mapping):
        raise DreamkitError(f"{where} must be a table of keys, not {type(table).__name__}")
    for key in table:
        if key not in allowed:
            raise DreamkitError(f"{where}: unknown key {key!r} (known: {', '.join(allowed)})")
    return table
