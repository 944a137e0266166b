"""Shared helpers of the test suite: where the real weights and photos are, small generated
pictures, and running the CLI in-process."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
if os.environ.get("DREAMKIT_WEIGHTS"):  # tests change folders: pin a relative path now
    os.environ["DREAMKIT_WEIGHTS"] = str(Path(os.environ["DREAMKIT_WEIGHTS"]).resolve())
IMAGES = Path(os.environ.get("DREAMKIT_IMAGES", SHARED / "images")).resolve()
PHOTOS = Path(os.environ.get("DREAMKIT_PHOTOS", SHARED / "photos")).resolve()


def weights_dir() -> Path | None:
    folder = os.environ.get("DREAMKIT_WEIGHTS")
    if folder and (Path(folder) / "bvlc_googlenet.safetensors").is_file():
        return Path(folder)
    return None


requires_weights = pytest.mark.skipif(
    weights_dir() is None, reason="set DREAMKIT_WEIGHTS to the folder of the real weights"
)
requires_photos = pytest.mark.skipif(
    not PHOTOS.is_dir(), reason="set DREAMKIT_PHOTOS to the folder of the ImageNet photos"
)


def gradient_picture(width: int = 48, height: int = 32) -> Image.Image:
    """A smooth colourful test picture (no need for a real photo)."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1),
                    (x + y) * 255 // (width + height)], axis=-1)
    return Image.fromarray(rgb.astype(np.uint8))


def encoded(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def small_png(folder: Path, name: str = "small.png", **kw) -> Path:
    path = folder / name
    gradient_picture(**kw).save(path)
    return path


def files_in(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def call(capsys, argv: list[str], entry=None) -> tuple[int, str]:
    """(exit status, stderr) of an in-process CLI run (`dreamkit` unless `entry`)."""
    from dreamkit.cli import main

    try:
        rc = (entry or main)(argv)
    except SystemExit as exc:
        rc = exc.code
    return rc, capsys.readouterr().err


def assert_user_error(rc: int, err: str, *words: str) -> str:
    """Exit 2 with one line naming the problem (every word of `words`), no traceback."""
    assert rc == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for word in words:
        assert word.lower() in lines[0].lower(), err
    return lines[0]


def fails_cleanly(capsys, folder: Path, argv: list[str], *words: str, entry=None) -> str:
    """A CLI run that exits 2 with one line and leaves `folder` exactly as it was."""
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    rc, err = call(capsys, argv, entry)
    line = assert_user_error(rc, err, *words)
    after = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert after == before, "a failed run changed or left a file"
    return line


# --------------------------------------------------------------------------- capped runs

CASES = {"run": 0, "refused": 0, "succeeded": 0}  # the adversarial matrix's count


@contextlib.contextmanager
def capped(seconds: int = 10, memory: int = 2 * 2**30):
    """Run a block under a time cap (SIGALRM raises TimeoutError, which the CLI reports as an
    internal error, so the test fails instead of hanging) and an address-space cap `memory`
    bytes above what the process has mapped already."""
    import resource
    import signal

    def late(signum, frame):
        raise TimeoutError(f"took more than {seconds} s")

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/status") as status:
        used = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize"))
    limit = used + memory if hard == resource.RLIM_INFINITY else min(hard, used + memory)
    previous = signal.signal(signal.SIGALRM, late)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def adversarial_call(capsys, argv: list[str], seconds: int = 10) -> tuple[int, str]:
    """A CLI run of the adversarial matrix: capped, counted, and checked to end in exit 0 or
    1 (reproduce: pixels differ) or 2 with one line, never a traceback or an internal error."""
    with capped(seconds):
        rc, err = call(capsys, argv)
    CASES["run"] += 1
    CASES["refused" if rc == 2 else "succeeded"] += 1
    assert "Traceback" not in err and "internal error" not in err, (argv, err)
    assert rc in (0, 1, 2), (argv, rc, err)
    if rc == 2:
        assert len(err.strip().splitlines()) == 1, (argv, err)
    return rc, err
