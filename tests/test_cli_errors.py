"""Every bad input and bad argument through the CLI: exit 2, one line naming the problem, no
traceback, nothing written; the odd-but-valid images (16-bit, grayscale, palette, RGBA, CMYK,
EXIF-rotated, animated) dream fine. Internal errors exit 1 with a short report."""

from __future__ import annotations

import importlib
import json
import os
import pickle
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import dreamkit.commands.dream as dream_command
from dreamkit.cli import dream_main, main
from dreamkit.dream import DivergedError
from dreamkit.image_io import load_image, read_png_text
from tests.helpers import (
    assert_user_error,
    call,
    encoded,
    fails_cleanly,
    files_in,
    gradient_picture,
    requires_weights,
    small_png,
)

FAST = ["--octaves", "1", "--steps", "1", "-q"]
SQUEEZE = ["--model", "squeezenet1_1", *FAST]


# --------------------------------------------------------------------------- input files


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def _corrupt_png() -> bytes:
    data = bytearray(encoded(gradient_picture(), "PNG"))
    start = data.index(b"IDAT") + 40
    data[start:start + 16] = b"\xff" * 16
    return bytes(data)


def _cut(data: bytes) -> bytes:
    return data[: len(data) // 2]


BAD_IMAGES = {  # name -> (file name, bytes or None for no file, expected words in the message)
    "missing": ("missing.png", None, "no such file"),
    "empty": ("empty.jpg", b"", "empty"),
    "truncated jpeg": ("cut.jpg", _cut(encoded(gradient_picture(), "JPEG", quality=90)),
                       "truncated"),
    "truncated png": ("cut.png", _cut(encoded(gradient_picture(), "PNG")), "truncated"),
    "corrupt png": ("corrupt.png", _corrupt_png(), "corrupt"),
    "corrupt jpeg": ("corrupt.jpg", encoded(gradient_picture(), "JPEG")[:200] + b"\x00" * 300,
                     "corrupt"),
    "text named .jpg": ("notes.jpg", b"milk\neggs\nflour\nbutter\n", "text file"),
    "decompression bomb": ("bomb.png", _png_claiming(100_000, 100_000), "--max-pixels"),
}


def _call(capsys, argv: list[str], entry=dream_main) -> tuple[int, str]:
    return call(capsys, argv, entry)


def _assert_fails_cleanly(capsys, folder: Path, argv: list[str], *words: str,
                          entry=dream_main) -> str:
    return fails_cleanly(capsys, folder, argv, *words, entry=entry)


# --------------------------------------------------------------------------- bad input images


@pytest.mark.parametrize("case", list(BAD_IMAGES))
def test_bad_input_image(case, workdir, capsys):
    name, data, words = BAD_IMAGES[case]
    if data is not None:
        (workdir / name).write_bytes(data)
    err = _assert_fails_cleanly(capsys, workdir, [name, "-o", "out/dream.png", *FAST], words)
    assert name in err


def test_folder_as_input(workdir, capsys):
    (workdir / "photos").mkdir()
    _assert_fails_cleanly(capsys, workdir, ["photos", *FAST], "photos", "is a folder")


def test_max_pixels_refuses_then_accepts(workdir, capsys, monkeypatch):
    """64 x 64 = 4096 pixels: refused under --max-pixels 4000, dreamed under 4096."""
    small_png(workdir, width=64, height=64)
    _assert_fails_cleanly(capsys, workdir, ["small.png", "--max-pixels", "4000", *FAST],
                          "4,096 pixels", "--max-pixels")
    monkeypatch.setattr(dream_command, "open_model", _tiny_model)
    assert _call(capsys, ["small.png", "--max-pixels", "4096", "-o", "ok.png", *FAST])[0] == 0
    assert load_image(workdir / "ok.png").shape == (3, 64, 64)


def _tiny_model(args):
    """The requested architecture with random weights: exercises the CLI without weight files."""
    from dreamkit.models import load_model

    return load_model(args.model, random_weights=True)


# --------------------------------------------------------------------------- odd but valid images


def _write_odd(folder: Path, case: str) -> tuple[Path, tuple[int, int]]:
    """(path, upright (H, W)) of an unusual image that must dream fine."""
    if case == "16-bit png":
        ramp = np.linspace(0, 65535, 32 * 48).astype(np.uint16).reshape(32, 48)
        img = Image.fromarray(ramp)
        assert img.mode == "I;16"
        img.save(folder / "deep.png")
        return folder / "deep.png", (32, 48)
    if case == "grayscale":
        gradient_picture().convert("L").save(folder / "gray.jpg")
        return folder / "gray.jpg", (32, 48)
    if case == "palette":
        picture = gradient_picture().convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
        picture.save(folder / "pal.png")
        return folder / "pal.png", (32, 48)
    if case == "rgba":
        rgba = gradient_picture().convert("RGBA")
        rgba.putalpha(128)
        rgba.save(folder / "alpha.png")
        return folder / "alpha.png", (32, 48)
    if case == "cmyk jpeg":
        gradient_picture().convert("CMYK").save(folder / "cmyk.jpg")
        return folder / "cmyk.jpg", (32, 48)
    if case == "exif rotated":
        exif = Image.Exif()
        exif[0x0112] = 6  # stored 48 wide x 32 high, shown rotated: 32 wide x 48 high
        gradient_picture().save(folder / "turned.jpg", exif=exif)
        return folder / "turned.jpg", (48, 32)
    raise AssertionError(case)


ODD_IMAGES = ["16-bit png", "grayscale", "palette", "rgba", "cmyk jpeg", "exif rotated"]


@requires_weights
@pytest.mark.parametrize("case", ODD_IMAGES)
def test_odd_but_valid_image_dreams(case, workdir, capsys):
    path, (height, width) = _write_odd(workdir, case)
    rc, err = _call(capsys, [path.name, "-o", "out.png", *SQUEEZE])
    assert rc == 0, err
    result = load_image(workdir / "out.png")
    assert result.shape == (3, height, width)
    assert not [name for name in files_in(workdir) if ".tmp" in name]


@requires_weights
def test_animated_gif_dreams_its_first_frame(workdir, capsys):
    red, blue = Image.new("RGB", (40, 40), (220, 30, 30)), Image.new("RGB", (40, 40), (30, 30, 220))
    red.save(workdir / "anim.gif", save_all=True, append_images=[blue], duration=100, loop=0)
    rc, err = _call(capsys, ["anim.gif", "-o", "out.png", "--lr", "0.5", *SQUEEZE])
    assert rc == 0, err
    r, g, b = load_image(workdir / "out.png").mean(dim=(1, 2)).tolist()
    assert r > 0.6 > 0.3 > b  # the red first frame, lightly dreamed


# --------------------------------------------------------------------------- bad arguments

BAD_ARGS = {  # name -> (extra arguments, expected words)
    "unknown model": (["--model", "bvlc_googlnet"],
                      ["unknown model", "did you mean bvlc_googlenet"]),
    "unknown layer": (["--layer", "inceptoin4c"], ["unknown layer", "did you mean inception4c"]),
    "channel too big": (["--layer", "inception4c", "--channel", "512"],
                        ["channel 512", "512 channels"]),
    "negative channel": (["--channel", "-1"], ["channel -1", "512 channels"]),
    "channel of squeezenet": (["--model", "squeezenet1_1", "--layer", "fire2", "--channel", "200"],
                              ["fire2 has 128 channels"]),
    "zero steps": (["--steps", "0"], ["--steps", "from 1 to 10,000"]),
    "negative octaves": (["--octaves", "-2"], ["--octaves", "from 1 to 16"]),
    "octaves not a number": (["--octaves", "four"], ["--octaves", "four"]),
    "octave scale 1": (["--octave-scale", "1"], ["--octave-scale", "above 1"]),
    "octave scale 0.5": (["--octave-scale", "0.5"], ["--octave-scale", "above 1"]),
    "huge lr": (["--lr", "1e308"], ["--lr", "up to 255"]),
    "huge size": (["--size", "5000"], ["--size", "from 16 to 4096"]),
    "zero lr": (["--lr", "0"], ["lr", "positive"]),
    "negative lr": (["--lr", "-1.5"], ["lr", "positive"]),
    "nan lr": (["--lr", "nan"], ["lr", "positive"]),
    "negative blur": (["--blur", "-1"], ["--blur"]),
    "huge jitter": (["--jitter", str(2**64)], ["jitter"]),
    "huge seed": (["--seed", str(2**70)], ["seed"]),
    "unknown device": (["--device", "tpu"], ["--device", "tpu"]),
    "unknown option": (["--octopus", "3"], ["unrecognized", "--octopus"]),
    "ambiguous option": (["--oct", "3"], ["ambiguous", "--oct"]),
    "bad output extension": (["-o", "dream.txt"], ["dream.txt", ".txt"]),
    "output is a folder": (["-o", "sub"], ["sub", "folder"]),
    "output under a file": (["-o", "small.png/dream.png"], ["not a folder"]),
    "output is the input": (["-o", "small.png"], ["inputs", "--force"]),
    "output is the input by another name": (["-o", "sub/../small.png"], ["--force"]),
    "zero max pixels": (["--max-pixels", "0"], ["max_pixels"]),
}


@pytest.mark.parametrize("case", list(BAD_ARGS))
def test_bad_argument(case, workdir, capsys):
    extra, words = BAD_ARGS[case]
    small_png(workdir)
    (workdir / "sub").mkdir()
    _assert_fails_cleanly(capsys, workdir, ["small.png", *FAST, *extra], *words)


def test_bad_arguments_fail_before_loading_the_model(workdir, capsys, monkeypatch):
    def no_model(args):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr(dream_command, "open_model", no_model)
    test_bad_argument("channel too big", workdir, capsys)
    _assert_fails_cleanly(capsys, workdir, ["small.png", "-o", "small.png/x.png"], "not a folder")
    _assert_fails_cleanly(capsys, workdir, ["small.png", "--guide", "gone.jpg"], "gone.jpg",
                          "no such file")
    _assert_fails_cleanly(capsys, workdir, ["small.png", "--guide", "small.png", "-c", "3"],
                          "--guide and --channel")
    _assert_fails_cleanly(capsys, workdir, ["small.png", "--precision", "fp16", "--device", "cpu"],
                          "fp16 needs a CUDA GPU")


def test_unwritable_output_folder(workdir, capsys):
    small_png(workdir)
    locked = workdir / "locked"
    locked.mkdir(mode=0o500)
    probe = locked / "probe"
    try:
        probe.touch()
    except PermissionError:
        target = "locked/dream.png"
    else:  # root ignores folder permissions: /proc takes no new files, even from root
        probe.unlink()
        target = "/proc/dreamkit-test.png"
        if not Path("/proc").is_dir():
            pytest.skip("running as root without /proc: no folder here is unwritable")
    _assert_fails_cleanly(capsys, workdir, ["small.png", "-o", target, *FAST], "cannot write")


def test_output_equal_to_input_with_force_overwrites_it(workdir, capsys, monkeypatch):
    monkeypatch.setattr(dream_command, "open_model", _tiny_model)
    source = small_png(workdir)
    before = load_image(source)
    rc, err = _call(capsys, ["small.png", "-o", "small.png", "--force", *FAST])
    assert rc == 0, err
    after = load_image(source)
    assert after.shape == before.shape and not torch.equal(after, before)
    assert files_in(workdir) == {"small.png"}


@pytest.mark.parametrize("extra, words", [
    (["--precision", "fp64"], ["fp64"]),
    (["--precision", "fp16", "--device", "cpu"], ["fp16", "cuda"]),
])
@pytest.mark.parametrize("command", ["dream", "vis"])
def test_bad_precision(command, extra, words, workdir, capsys, monkeypatch):
    """An unknown precision, or fp16 on the CPU, is explained (auto falls back by itself)."""
    small_png(workdir)
    if command == "vis":
        argv = ["vis", "--layer", "conv1", "--channels", "1", "--size", "32", "--steps", "1",
                "-o", "vis", "-q"]
    else:
        monkeypatch.setattr(dream_command, "open_model", _tiny_model)
        argv = ["dream", "small.png", *FAST]
    _assert_fails_cleanly(capsys, workdir, [*argv, *extra], *words, entry=main)


# --------------------------------------------------------------------------- untrusted weights


class _Payload:
    """Unpickling this runs code: it writes the file named `marker`."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"import pathlib; pathlib.Path({self.marker!r}).write_text('pwned')",))


@pytest.mark.parametrize("name, words", [
    ("evil.pth", ["evil.pth", "refusing to unpickle"]),
    ("evil.safetensors", ["evil.safetensors", "not a valid safetensors"]),
])
def test_pickle_payload_weights_refused_without_running(name, words, workdir, capsys):
    """Acceptance 4 through the CLI: the payload would create `pwned`; it never runs."""
    marker = workdir / "pwned"
    (workdir / name).write_bytes(pickle.dumps({"conv1.weight": _Payload(marker)}))
    small_png(workdir)
    _assert_fails_cleanly(capsys, workdir, ["small.png", "--weights", name, *FAST], *words)
    _assert_fails_cleanly(capsys, workdir, ["dream", "small.png", "--weights", name, *FAST],
                          *words, entry=main)
    assert not marker.exists()


def _deep_json(folder: Path) -> dict[str, list[str]]:
    """Untrusted files whose JSON/TOML nests 100000 deep; argv of the command that reads each."""
    from PIL import PngImagePlugin
    from safetensors.torch import save_file

    deep = "[" * 100_000
    (folder / "deep.json").write_text(deep)
    (folder / "deep.toml").write_text(f"rows = {deep}")
    info = PngImagePlugin.PngInfo()
    info.add_text("dreamkit", deep)
    gradient_picture().save(folder / "deep_tile.png", pnginfo=info)
    meta = {"format": "dreamkit-directions/1", "dreamkit": "0", "layer": "inception4c",
            "model": "bvlc_googlenet", "method": "pca", "stats": deep}
    save_file({"directions": torch.ones(1, 512)}, folder / "deep.safetensors", metadata=meta)
    return {
        "gallery json": ["gallery", "deep.json", "-o", "gallery"],
        "gallery toml": ["gallery", "deep.toml", "-o", "gallery"],
        "reproduce metadata": ["reproduce", "deep_tile.png"],
        "direction stats": ["vis", "--direction", "deep.safetensors", "-o", "vis"],
    }


@pytest.mark.parametrize("case", ["gallery json", "gallery toml", "reproduce metadata",
                                  "direction stats"])
def test_deeply_nested_untrusted_files_are_user_errors(case, workdir, capsys):
    """A config, tile metadata or direction file nested past Python's recursion limit."""
    argv = _deep_json(workdir)[case]
    err = _assert_fails_cleanly(capsys, workdir, argv, argv[-3] if "-o" in argv else argv[-1],
                                entry=main)
    assert "internal error" not in err


@pytest.mark.parametrize("extra", [["-o", "small.png/vis"], ["-o", "vis", "--seed", str(2**70)]],
                         ids=["output under a file", "huge seed"])
def test_vis_bad_arguments(extra, workdir, capsys):
    small_png(workdir)
    argv = ["vis", "--layer", "conv1", "--channels", "1", "--size", "32", "--steps", "1", "-q"]
    _assert_fails_cleanly(capsys, workdir, [*argv, *extra], extra[-1], entry=main)


# --------------------------------------------------------------------------- numerics


@requires_weights
def test_nan_weights_stop_the_dream_and_write_nothing(workdir, capsys):
    from safetensors.torch import load_file, save_file

    state = load_file(Path(os.environ["DREAMKIT_WEIGHTS"]) / "squeezenet1_1.safetensors")
    key = next(k for k in state if k.endswith("weight"))
    state[key] = torch.full_like(state[key], float("nan"))
    save_file(state, workdir / "nan.safetensors")
    small_png(workdir)
    _assert_fails_cleanly(capsys, workdir, ["small.png", "--weights", "nan.safetensors",
                                            *SQUEEZE], "diverged", "octave 1")
    before = files_in(workdir)
    rc, err = _call(capsys, ["small.png", "--weights", "nan.safetensors", "--auto-recover",
                             *SQUEEZE])
    assert rc == 2 and "Traceback" not in err
    assert err.count("retrying at lr") == dream_command.RECOVER_TRIES - 1
    assert "retrying at lr 0.1875" in err and files_in(workdir) == before


@pytest.mark.parametrize("poison", ["inf loss, finite gradient", "nan gradient"])
def test_non_finite_loss_or_gradient_raises_diverged(poison):
    """`dream` itself: an infinite loss whose gradient is finite is caught too."""
    from dreamkit.dream import DreamSettings, dream
    from dreamkit.models import load_model
    from dreamkit.objectives import Objective

    def value(acts):
        mean = acts["fire2"].mean(dim=(1, 2, 3))
        return mean + float("inf") if poison.startswith("inf") else mean.sqrt() * float("nan")

    net = load_model("squeezenet1_1", random_weights=True)
    seen = []
    with pytest.raises(DivergedError, match="diverged in octave 1 of 2"):
        dream(net, torch.rand(3, 48, 48), Objective(value, ["fire2"], poison),
              DreamSettings(octaves=2, steps=1), on_octave=lambda i, image: seen.append(i))
    assert seen == []


def test_auto_recover_retries_at_a_lower_lr(workdir, capsys, monkeypatch):
    """A dream that diverges above lr 0.5 succeeds at lr 0.375 with --auto-recover."""
    dream_module = importlib.import_module("dreamkit.dream")  # the package exports `dream()`
    real = dream_module._dream  # one attempt; `dream(recover=N)` retries it
    tried = []

    def touchy(net, image, objective, settings, *rest):
        tried.append(settings.lr)
        if settings.lr > 0.5:
            raise DivergedError("the dream diverged in octave 1 of 1")
        return real(net, image, objective, settings, *rest)

    monkeypatch.setattr(dream_module, "_dream", touchy)
    monkeypatch.setattr(dream_command, "open_model", _tiny_model)
    small_png(workdir)
    argv = ["small.png", "--lr", "1.5", "-o", "out.png", *SQUEEZE]
    _assert_fails_cleanly(capsys, workdir, argv, "diverged")
    rc, err = _call(capsys, [*argv, "--auto-recover"])
    assert rc == 0, err
    assert tried == [1.5, 1.5, 0.75, 0.375]
    record = json.loads(read_png_text(workdir / "out.png")["dreamkit"])
    assert record["settings"]["lr"] == 0.375


# --------------------------------------------------------------------------- exit codes


def test_internal_error_exits_1_with_a_short_report(workdir, capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    import dreamkit.image_io

    monkeypatch.setattr(dreamkit.image_io, "load_image", broken)
    small_png(workdir)
    rc, err = _call(capsys, ["small.png", *FAST])
    assert rc == 1 and "internal error: RuntimeError: boom" in err and "Traceback" not in err
    assert "--debug" in err and len(err.strip().splitlines()) <= 3
    rc, err = _call(capsys, ["small.png", "--debug", *FAST])
    assert rc == 1 and "Traceback" in err and "boom" in err


def test_debug_shows_the_traceback_of_a_user_error(workdir, capsys):
    rc, err = _call(capsys, ["missing.png", "--debug", *FAST])
    assert rc == 2 and "Traceback" in err and err.strip().splitlines()[-1].endswith("no such file")


@pytest.mark.slow
def test_real_process_exit_code_and_stderr(workdir):
    """The console scripts themselves: exit status 2 and one line, no traceback."""
    (workdir / "cut.jpg").write_bytes(BAD_IMAGES["truncated jpeg"][1])
    script = Path(sys.executable).parent / "dreamkit"
    done = subprocess.run([str(script), "dream", "cut.jpg", *FAST], capture_output=True,
                          text=True, timeout=3600)  # a hang guard
    assert_user_error(done.returncode, done.stderr, "cut.jpg", "truncated")
    assert done.stdout == "" and files_in(workdir) == {"cut.jpg"}


def test_no_command_writes_over_the_weights_or_a_photo_it_reads(workdir, capsys, monkeypatch):
    """The weights a command loads are one of its inputs (`--weights`, or the file found through
    $DREAMKIT_WEIGHTS), and so are the photos beside a dictionary's report files; commands
    without --force do not offer it."""
    from tests.helpers import call

    small_png(workdir)
    (workdir / "photos").mkdir()
    small_png(workdir / "photos", "tench.png")
    found = workdir / "wd" / "squeezenet1_1.safetensors"
    found.parent.mkdir()
    for path in (found, workdir / "w.png", workdir / "w.safetensors"):
        path.write_bytes(b"weights")
    monkeypatch.setenv("DREAMKIT_WEIGHTS", str(found.parent))
    squeeze = ["--model", "squeezenet1_1", "--layer", "low"]
    runs = {
        "dream": ["dream", "small.png", *squeeze, "--weights", "w.png", "-o", "w.png"],
        "vis": ["vis", *squeeze, "--channels", "1", "--weights", "w.png", "--grid", "w.png",
                "-o", "v"],
        "direction pca": ["direction", "pca", *squeeze, "--images", "photos", "-o", str(found)],
        "direction fit": ["direction", "fit", *squeeze, "--positive", "small.png", "--negative",
                          "photos", "--weights", "w.safetensors", "-o", "w.safetensors"],
        "dictionary fit": ["dictionary", "fit", *squeeze, "--images", "photos", "-o",
                           "photos/tench.safetensors"],  # its report: photos/tench.png
    }
    before = {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()}
    for name, argv in runs.items():
        rc, err = call(capsys, argv)
        assert rc == 2 and "is one of this command's inputs" in err, (name, err)
        assert ("--force" in err) == (name == "dream"), (name, err)
    assert {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()} == before


def test_zoom_picks_a_free_default_name(workdir, capsys, monkeypatch):
    """`zoom photo.png` replaced an existing photo_zoom.gif; like dream it takes the next name."""
    import dreamkit.commands.common as common

    monkeypatch.setattr(common, "open_model", _tiny_model)
    small_png(workdir, width=48, height=48)
    (workdir / "small_zoom.gif").write_bytes(b"precious")
    argv = ["zoom", "small.png", "--frames", "2", "--octaves", "1", "--steps", "1",
            "--model", "squeezenet1_1"]
    assert main(argv) == 0
    assert "small_zoom.gif exists, so this name" in capsys.readouterr().out
    assert (workdir / "small_zoom.gif").read_bytes() == b"precious"
    assert (workdir / "small_zoom_2.gif").stat().st_size > 100


@pytest.mark.parametrize("argv", [
    ["--debug", "dream", "missing.png"],
    ["dream", "missing.png", "--debug"],
    ["direction", "pca", "--layer", "conv1", "--images", "missing.png", "-o", "p.safetensors",
     "--debug"],
])
def test_debug_works_wherever_it_is_given(argv, workdir, capsys):
    """`dreamkit --debug dream ...` lost the flag to the command's default, and an action
    (`direction pca`) did not take it at all, though the internal-error line says to add it."""
    from tests.helpers import call

    rc, err = call(capsys, argv)
    assert rc == 2 and "Traceback" in err and err.strip().endswith("no such file"), err


def test_running_out_of_memory_is_one_line_not_an_internal_error(workdir, capsys, monkeypatch):
    """A failed allocation (here a real 4 PB tensor) says what to ask less of, exit 2; any
    other RuntimeError is still an internal error (exit 1)."""
    import dreamkit.commands.layers as layers_command
    from tests.helpers import call

    monkeypatch.setattr(layers_command, "run", lambda args: torch.empty(2**50).sum())
    rc, err = call(capsys, ["layers"])
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert "out of memory" in err and "smaller --size" in err, err

    def broken(args):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(layers_command, "run", broken)
    rc, err = call(capsys, ["layers"])
    assert rc == 1 and "internal error: RuntimeError: shape mismatch" in err, err
