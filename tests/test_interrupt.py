"""Interrupted dreams never leave a truncated image: real `dream` processes are stopped with
SIGINT (Ctrl-C) and SIGKILL mid-write and at random moments; afterwards the output is either
absent or a complete, valid image. `--save-partial` keeps the last finished octave."""

from __future__ import annotations

import importlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import dreamkit.commands.dream as dream_command
from dreamkit.cli import dream_main
from dreamkit.dream import DreamSettings, dream
from dreamkit.image_io import ctrl_c_deferred, load_image, read_png_text
from dreamkit.models import load_model
from dreamkit.objectives import layer_norm
from tests.helpers import requires_weights

pytestmark = pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals")
dream_module = importlib.import_module("dreamkit.dream")  # `dreamkit.dream` is the function

BIG = (480, 640)  # (H, W) of noise: slow to encode as PNG, so the write takes a while
INTERRUPTED = {-signal.SIGINT, 130}  # killed during start-up, or stopped cleanly by the CLI
WRITE_STARTS: list[float] = []  # seconds from launch to the temp file, seen by mid-write runs


@pytest.fixture(scope="module")
def big_image(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("input") / "big.png"
    noise = np.random.default_rng(0).integers(0, 256, (*BIG, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path)
    return path


def _start(big_image: Path, folder: Path) -> subprocess.Popen:
    dream_script = Path(sys.executable).parent / "dream"
    return subprocess.Popen(
        [str(dream_script), str(big_image), "-o", "out.png", "--model", "squeezenet1_1",
         "--octaves", "1", "--steps", "1", "-q"],
        cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _temp_files(folder: Path) -> list[str]:
    return [name for name in os.listdir(folder) if ".tmp" in name]


def _check_output(folder: Path, old: bytes | None = None) -> str:
    """No out.png (or the `old` one, untouched) or a complete new one; says which."""
    out = folder / "out.png"
    if not out.exists():
        assert old is None, "the old output was deleted"
        return "none"
    if old is not None and out.read_bytes() == old:
        return "old"
    assert load_image(out).shape == (3, *BIG)  # raises on a truncated or corrupt file
    assert json.loads(read_png_text(out)["dreamkit"])["command"] == "dream"
    return "complete"


def _finish(proc: subprocess.Popen) -> tuple[int, str]:
    _, err = proc.communicate(timeout=3600)  # a hang guard, not a time limit
    return proc.returncode, err


def _kill_mid_write(proc: subprocess.Popen, folder: Path, sig: signal.Signals) -> bool:
    """Send `sig` as soon as the temporary output file appears; False if the run ended first."""
    start = time.monotonic()
    while proc.poll() is None:
        if _temp_files(folder):
            proc.send_signal(sig)
            WRITE_STARTS.append(time.monotonic() - start)
            return True
        time.sleep(0.001)
    return False


@pytest.mark.slow
@requires_weights
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_killed_mid_write(sig, big_image, tmp_path):
    """An older out.png is there: it stays as it was, or is replaced by a complete new one."""
    Image.new("RGB", (16, 16), "red").save(tmp_path / "out.png")
    old = (tmp_path / "out.png").read_bytes()
    proc = _start(big_image, tmp_path)
    hit = _kill_mid_write(proc, tmp_path, sig)
    rc, err = _finish(proc)
    state = _check_output(tmp_path, old)
    if not hit:
        pytest.skip(f"the write finished before the poll saw it (rc {rc}, output {state})")
    if sig == signal.SIGINT:
        assert rc in INTERRUPTED | {0}, err
        assert _temp_files(tmp_path) == [], "Ctrl-C left a temporary file behind"
        if rc == 130:
            assert "Traceback" not in err and "interrupted" in err
    else:  # the temp file may stay: nothing runs after SIGKILL
        assert rc in (-signal.SIGKILL, 0), err


@pytest.mark.slow
@requires_weights
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_killed_at_a_random_moment(sig, big_image, tmp_path):
    """Anywhere from start-up to just past the write (timed by the mid-write runs above)."""
    until = 1.2 * max(WRITE_STARTS, default=5.0)
    seed = random.randrange(2**32)
    delay = random.Random(seed).uniform(0.0, until)
    proc = _start(big_image, tmp_path)
    time.sleep(delay)
    proc.send_signal(sig)
    rc, err = _finish(proc)
    note = f"seed {seed}: {sig.name} after {delay:.2f} s, rc {rc}: {err[-500:]}"
    _check_output(tmp_path)
    if sig == signal.SIGINT:
        assert rc in INTERRUPTED | {0}, note
        assert _temp_files(tmp_path) == [], note
        assert rc != 130 or "Traceback" not in err, note
    else:
        assert rc in (-signal.SIGKILL, 0), note


# --------------------------------------------------------------------------- --save-partial


@pytest.fixture(scope="module")
def tiny_net():
    torch.manual_seed(0)
    return load_model("squeezenet1_1", random_weights=True)


def _ctrl_c_in_octave(monkeypatch, octave: int, steps: int) -> None:
    """Deliver a real SIGINT to this process during the first step of `octave` (1-based)."""
    real_step = dream_module.dream_step
    calls = []

    def step(*args, **kwargs):
        calls.append(1)
        if len(calls) == (octave - 1) * steps + 1:
            if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
                raise KeyboardInterrupt  # e.g. in a test worker that ignores SIGINT
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # the KeyboardInterrupt arrives here
        return real_step(*args, **kwargs)

    monkeypatch.setattr(dream_module, "dream_step", step)


def test_save_partial_keeps_the_last_finished_octave(tmp_path, monkeypatch, capsys, tiny_net):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(dream_command, "open_model", lambda args: tiny_net)
    noise = np.random.default_rng(1).integers(0, 256, (72, 96, 3), dtype=np.uint8)
    Image.fromarray(noise).save("in.png")
    argv = ["in.png", "--model", "squeezenet1_1", "--octaves", "3", "--octave-scale", "1.4",
            "--steps", "2", "--seed", "5", "-q"]

    _ctrl_c_in_octave(monkeypatch, octave=3, steps=2)
    assert dream_main([*argv, "-o", "plain.png"]) == 130
    assert not (tmp_path / "plain.png").exists() and _temp_files(tmp_path) == []

    _ctrl_c_in_octave(monkeypatch, octave=3, steps=2)
    assert dream_main([*argv, "-o", "partial.png", "--save-partial"]) == 130
    err = capsys.readouterr().err
    assert "saved the dream as of octave 2" in err and "Traceback" not in err
    saved = load_image(tmp_path / "partial.png")
    record = json.loads(read_png_text(tmp_path / "partial.png")["dreamkit"])
    assert record["octaves_done"] == 2 and record["settings"]["octaves"] == 3

    monkeypatch.undo()
    snapshots = {}
    settings = DreamSettings(octaves=3, octave_scale=1.4, steps=2, seed=5)
    full = dream(tiny_net, load_image(tmp_path / "in.png"), layer_norm("fire5"), settings,
                 on_octave=lambda i, image: snapshots.setdefault(i, image))
    assert saved.shape == full.shape == (3, 72, 96)
    assert (saved - snapshots[1]).abs().max() <= 1 / 255  # octave 2 as it was, at full size
    assert (saved - full).abs().mean() > 1e-3  # and not the finished dream


def test_ctrl_c_during_a_write_is_delivered_after_it():
    before, done = signal.getsignal(signal.SIGINT), []
    with pytest.raises(KeyboardInterrupt):
        with ctrl_c_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the signal arrives here, and waits
            done.append(True)
        time.sleep(1)  # delivered by now
    assert done == [True]
    assert signal.getsignal(signal.SIGINT) is before
