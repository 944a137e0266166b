"""dreamkit: DeepDream and feature visualization for PyTorch.

The whole public API is importable from here; names load on first use, so `import dreamkit`
(and every `--help`) stays fast, and no library module imports this facade.
"""

from __future__ import annotations

import importlib
import sys
import types

from dreamkit.version import __version__

_API = {
    "DreamkitError": "dreamkit.errors",
    "DreamSettings": "dreamkit.settings",
    "RenderSettings": "dreamkit.settings",
    "ZoomSettings": "dreamkit.settings",
    "MicroscopeSettings": "dreamkit.settings",
    "AtlasSettings": "dreamkit.settings",
    "DictionarySettings": "dreamkit.settings",
    "DictionarySweepSettings": "dreamkit.settings",
    "LinearitySettings": "dreamkit.settings",
    "ReproduceSettings": "dreamkit.settings",
    "reproduce": "dreamkit.reproduction",
    "Reproduced": "dreamkit.reproduction",
    "microscope": "dreamkit.microscope",
    "atlas": "dreamkit.atlas",
    "linearity": "dreamkit.linearity",
    "fit_dictionary": "dreamkit.dictionary",
    "dictionary_sweep": "dreamkit.dictionary",
    "visualize": "dreamkit.visualize",
    "DirectionSettings": "dreamkit.settings",
    "VideoSettings": "dreamkit.settings",
    "CATALOG": "dreamkit.models.catalog",
    "Model": "dreamkit.models.base",
    "load_model": "dreamkit.models.registry",
    "layer_table": "dreamkit.models.registry",
    "wrap": "dreamkit.models.wrapped",
    "LayerInfo": "dreamkit.layers",
    "LayerTable": "dreamkit.layers",
    "capture": "dreamkit.capture",
    "Objective": "dreamkit.objectives",
    "as_objective": "dreamkit.objectives",
    "channel": "dreamkit.objectives",
    "class_logit": "dreamkit.objectives",
    "direction": "dreamkit.objectives",
    "diversity": "dreamkit.objectives",
    "guide": "dreamkit.objectives",
    "layer_norm": "dreamkit.objectives",
    "neuron": "dreamkit.objectives",
    "per_image": "dreamkit.objectives",
    "Target": "dreamkit.targets",
    "render": "dreamkit.render",
    "RenderResult": "dreamkit.render",
    "dream": "dreamkit.dream",
    "DivergedError": "dreamkit.errors",
    "Dreamed": "dreamkit.dream",
    "Picture": "dreamkit.display",
    "Preview": "dreamkit.display",
    "show": "dreamkit.display",
    "load_image": "dreamkit.image_io",
    "save_image": "dreamkit.image_io",
    "list_images": "dreamkit.image_io",
    "Recipe": "dreamkit.records",
    "Record": "dreamkit.records",
    "read_record": "dreamkit.records",
    "make": "dreamkit.remake",
    "Directions": "dreamkit.directions",
    "load_directions": "dreamkit.directions",
    "fit_direction": "dreamkit.directions",
    "principal_directions": "dreamkit.directions",
    "make_param": "dreamkit.param",
    "ImageParam": "dreamkit.param",
    "standard": "dreamkit.transforms",
    "contact_sheet": "dreamkit.sheets",
    "dream_video": "dreamkit.video",
    "remake_frame": "dreamkit.video",
    "video_stability": "dreamkit.video",
    "read_video_record": "dreamkit.video",
}

__all__ = ["__version__", *sorted(_API)]


def __getattr__(name: str):
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'dreamkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__


class _Facade(types.ModuleType):
    """Importing a submodule sets the package's attribute of that name to the module (Python's
    import system does); `dream`, `render` and `capture` name both a submodule and its
    function, so keep the function, whatever was imported first."""

    def __setattr__(self, name: str, value: object) -> None:
        if isinstance(value, types.ModuleType) and _API.get(name) == value.__name__:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Facade
