"""Shared fixtures: the real weights (via $DREAMKIT_WEIGHTS) and the shared sample photos."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from dreamkit.image_io import load_image
from dreamkit.models import load_model

ROOT = Path(__file__).resolve().parents[1]
if os.environ.get("DREAMKIT_WEIGHTS"):  # tests change folders: pin a relative path now
    os.environ["DREAMKIT_WEIGHTS"] = str(Path(os.environ["DREAMKIT_WEIGHTS"]).resolve())
IMAGES = Path(os.environ.get("DREAMKIT_IMAGES", ROOT.parent / "shared" / "images"))


def _weights_dir() -> Path | None:
    folder = os.environ.get("DREAMKIT_WEIGHTS")
    if folder and (Path(folder) / "bvlc_googlenet.safetensors").is_file():
        return Path(folder)
    return None


requires_weights = pytest.mark.skipif(
    _weights_dir() is None, reason="set DREAMKIT_WEIGHTS to the folder of the real weights"
)


@pytest.fixture(autouse=True)
def _deterministic():
    """Seed torch; restore its thread count after tests (gallery and reproduce set it to 1)."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def googlenet():
    """The real BVLC GoogLeNet on the CPU."""
    if _weights_dir() is None:
        pytest.skip("set DREAMKIT_WEIGHTS to the folder of the real weights")
    return load_model("bvlc_googlenet")


@pytest.fixture(scope="session")
def squeezenet():
    if _weights_dir() is None:
        pytest.skip("set DREAMKIT_WEIGHTS to the folder of the real weights")
    return load_model("squeezenet1_1")


@pytest.fixture(scope="session")
def photo():
    """photo('chelsea') -> (3, H, W) float tensor in [0, 1]."""
    return lambda name: load_image(IMAGES / f"{name}.jpg")
