"""Fixtures: the real weights (via $DREAMKIT_WEIGHTS), the shared sample photos, a clean
working folder. Helpers live in tests/helpers.py. Tests using the real networks are marked
`weights` automatically; `pytest -m "not slow"` is the quick loop."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import IMAGES, weights_dir

WEIGHT_FIXTURES = {"googlenet", "squeezenet"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if WEIGHT_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.weights)


@pytest.fixture(autouse=True)
def _deterministic():
    """Seed torch; restore its thread count after tests (some commands set it)."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty current folder, so a default output path would land here and be noticed."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def googlenet():
    """The real BVLC GoogLeNet on the CPU."""
    if weights_dir() is None:
        pytest.skip("set DREAMKIT_WEIGHTS to the folder of the real weights")
    from dreamkit.models import load_model

    return load_model("bvlc_googlenet")


@pytest.fixture(scope="session")
def squeezenet():
    if weights_dir() is None:
        pytest.skip("set DREAMKIT_WEIGHTS to the folder of the real weights")
    from dreamkit.models import load_model

    return load_model("squeezenet1_1")


@pytest.fixture(scope="session")
def photo():
    """photo('chelsea') -> (3, H, W) float tensor in [0, 1]."""
    from dreamkit.image_io import load_image

    return lambda name: load_image(IMAGES / f"{name}.jpg")


def pytest_terminal_summary(terminalreporter):
    from tests.helpers import CASES

    if CASES["run"]:
        terminalreporter.write_line(
            f"adversarial matrix: {CASES['run']} cases run under the time and memory caps, "
            f"{CASES['refused']} refused with one line (exit 2), {CASES['succeeded']} ran to "
            "the end")
