"""Model registry and loaders; see `registry.load_model`."""

from dreamkit.models.registry import DEFAULT_MODEL, MODELS, ModelSpec, get_spec, load_model
from dreamkit.models.staged import StagedNet

__all__ = ["DEFAULT_MODEL", "MODELS", "ModelSpec", "StagedNet", "get_spec", "load_model"]
