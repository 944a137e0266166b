"""dreamkit: DeepDream and feature visualization for PyTorch."""

__version__ = "0.1.0"

from dreamkit.capture import capture
from dreamkit.dream import DreamSettings, dream
from dreamkit.errors import DreamkitError
from dreamkit.layers import LayerInfo
from dreamkit.models import MODELS, load_model
from dreamkit.objectives import Objective, as_objective, channel, class_logit, layer_norm

__all__ = [
    "MODELS",
    "DreamSettings",
    "DreamkitError",
    "LayerInfo",
    "Objective",
    "__version__",
    "as_objective",
    "capture",
    "channel",
    "class_logit",
    "dream",
    "layer_norm",
    "load_model",
]
