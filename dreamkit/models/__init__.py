"""Models: the catalog of built-in networks (data), loaders, and the wrapper for any module.

Importing this package is cheap: the torch-heavy modules load on first use of their names.
"""

from __future__ import annotations

import importlib

from dreamkit.models.catalog import CATALOG, DEFAULT_MODEL

_LAZY = {
    "Model": "dreamkit.models.base",
    "StagedNet": "dreamkit.models.staged",
    "WrappedModel": "dreamkit.models.wrapped",
    "wrap": "dreamkit.models.wrapped",
    "load_model": "dreamkit.models.registry",
    "layer_table": "dreamkit.models.registry",
}

__all__ = ["CATALOG", "DEFAULT_MODEL", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dreamkit.models' has no attribute {name!r}")
