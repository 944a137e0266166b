"""The adversarial matrix: every subcommand, gallery configs and PNG records, tried as a careless
user and an attacker would. Every case runs under a time cap and a memory cap, must end in exit 0
(or 1: reproduce's "pixels differ") or in one line with exit 2, and must leave every input file
byte-identical. The matrix counts its cases in the test run's summary."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from dreamkit.image_io import read_png_text, save_image
from tests.helpers import adversarial_call, gradient_picture, requires_weights

pytestmark = [requires_weights, pytest.mark.slow]

FUZZ = settings(max_examples=45, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Inputs of every kind, and two real records (a dream and a vis picture)."""
    from dreamkit.cli import main
    from dreamkit.directions import Directions

    root = tmp_path_factory.mktemp("adversarial")
    gradient_picture(48, 32).save(root / "small.png")
    gradient_picture(96, 96).save(root / "photo.png")
    Image.new("RGB", (1, 1), "red").save(root / "tiny.png")
    Image.new("RGB", (1, 100_000), "red").save(root / "strip.png")
    gradient_picture(40, 40).save(root / "anim.gif")
    (root / "photos").mkdir()
    for i in range(2):
        gradient_picture(64 + 8 * i, 64).save(root / "photos" / f"p{i}.png")
    (root / "empty").mkdir()
    (root / "notes.txt").write_text("not an image\n")
    (root / "text.jpg").write_text("milk\neggs\n")
    os.mkfifo(root / "pipe.png")
    vector = torch.randn(2, 832)
    Directions(vector, "inception4e", "bvlc_googlenet", "pca").save(root / "cat.safetensors")
    from safetensors.torch import save_file

    save_file({"directions": torch.zeros(1, 832)}, root / "zero.safetensors",
              metadata={"format": "dreamkit-directions/1", "dreamkit": "0",
                        "model": "bvlc_googlenet", "layer": "inception4e", "method": "pca",
                        "stats": "{}"})
    cwd = Path.cwd()
    os.chdir(root)
    try:
        assert main(["dream", "photo.png", "--octaves", "1", "--steps", "1", "-o",
                     "dreamed.png", "-q"]) == 0
        assert main(["vis", "--layer", "inception3a", "--channels", "1,2", "--size", "32",
                     "--steps", "1", "-o", "vis", "-q"]) == 0
    finally:
        os.chdir(cwd)
    return root


def _snapshot(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and p.name != "pipe.png"}


def _run(capsys, folder: Path, argv: list[str], words: tuple[str, ...] = ()) -> int:
    """One case, from `folder`; inputs must stay byte-identical; new files are removed."""
    before = _snapshot(folder)
    cwd = Path.cwd()
    os.chdir(folder)
    try:
        rc, err = adversarial_call(capsys, argv)
    finally:
        os.chdir(cwd)
    after = _snapshot(folder)
    changed = [p for p in before if after.get(p) != before[p]]
    assert not changed, (argv, changed)
    for new in set(after) - set(before):
        new.unlink()
    for word in words:
        assert word in err, (argv, err)
    return rc


DREAM = ["--octaves", "1", "--steps", "1", "-q"]
REFUSED = {  # argv (run in the inputs' folder) -> words of the one-line message
    # dream: files that are not photos, photos too small, settings out of bounds, outputs
    ("dream", "missing.png"): ("no such file",),
    ("dream", "photos"): ("is a folder",),
    ("dream", "pipe.png"): ("not a regular file",),
    ("dream", "/dev/zero"): ("not a regular file",),
    ("dream", "text.jpg"): ("text file",),
    ("dream", "notes.txt", "-o", "x.png"): ("notes.txt",),
    ("dream", "tiny.png"): ("1x1 pixels", "--size"),
    ("dream", "strip.png"): ("1x100000 pixels",),
    ("dream", "small.png", "--lr", "1e308"): ("--lr", "up to 255"),
    ("dream", "small.png", "--lr", "nan"): ("--lr",),
    ("dream", "small.png", "--lr", "-inf"): ("--lr",),
    ("dream", "small.png", "--steps", "1000000000000"): ("--steps",),
    ("dream", "small.png", "--octaves", "99"): ("--octaves",),
    ("dream", "small.png", "--octave-scale", "inf"): ("--octave-scale",),
    ("dream", "small.png", "--jitter", str(2**40)): ("--jitter",),
    ("dream", "small.png", "--blur", "1e9"): ("--blur",),
    ("dream", "small.png", "--seed", str(2**64)): ("--seed",),
    ("dream", "small.png", "--size", "100000"): ("--size", "4096"),
    ("dream", "small.png", "--size", "3"): ("--size",),
    ("dream", "small.png", "--tile", "33"): ("--tile",),
    ("dream", "small.png", "--max-pixels", "0"): ("--max-pixels",),
    ("dream", "small.png", "--max-pixels", str(2**40)): ("--max-pixels",),
    ("dream", "small.png", "--max-pixels", "100"): ("--max-pixels",),
    ("dream", "small.png", "--channel", "99999999999"): ("out of range",),
    ("dream", "small.png", "--layer", "x" * 5000): ("unknown layer",),
    ("dream", "small.png", "--model", "no_such_net"): ("unknown model",),
    ("dream", "small.png", "--model", "os:getcwd"): ("not an nn.Module",),
    ("dream", "small.png", "-o", "small.png"): ("--force",),
    ("dream", "small.png", "-o", "./photos/../small.png"): ("--force",),
    ("dream", "small.png", "--guide", "photo.png", "-o", "photo.png"): ("--force",),
    ("dream", "small.png", "--direction", "cat.safetensors", "-o", "cat.safetensors"):
        (".safetensors",),
    ("dream", "small.png", "--direction", "zero.safetensors"): ("zero vector",),
    ("dream", "small.png", "--direction", "cat.safetensors:2"): ("row 2 is out of range",),
    ("dream", "small.png", "--direction", "cat.safetensors:99999999999"): (),
    ("dream", "small.png", "--direction", "pipe.png"): ("not a regular file",),
    ("dream", "small.png", "--guide", "/dev/zero"): ("not a regular file",),
    ("dream", "small.png", "--weights", "/dev/zero"): ("not a regular file",),
    ("dream", "small.png", "--weights", "notes.txt"): ("notes.txt",),
    ("dream", "small.png", "-o", "out.exe"): (".exe",),
    ("dream", "small.png", "-o", "photos"): ("is a folder",),
    ("dream", "small.png", "-o", "small.png/x.png"): ("not a folder",),
    ("dream", "small.png", "--precision", "fp16", "--device", "cpu"): ("fp16",),
    # vis
    ("vis", "--layer", "inception4c", "--channels", "0", "--size", "5000", "-o", "v"):
        ("--size", "4096"),
    ("vis", "--layer", "inception4c", "--channels", "0-999999999", "-o", "v"): ("out of range",),
    ("vis", "--layer", "inception4c", "--channels", "9" * 40, "-o", "v"): ("channel list",),
    ("vis", "--layer", "inception4c", "--channels", "0", "--batch", "0", "-o", "v"): ("batch",),
    ("vis", "--layer", "inception4c", "--channels", "0", "--batch", "99999999", "-o", "v"):
        ("batch",),
    ("vis", "--layer", "inception4c", "--channels", "0", "--steps", "99999999", "-o", "v"):
        ("--steps",),
    ("vis", "--layer", "inception4c", "--channels", "0", "--lr", "inf", "-o", "v"): ("--lr",),
    ("vis", "--layer", "inception4c", "--channels", "0", "--seed", "-1", "-o", "v"): ("--seed",),
    ("vis", "--class", "5000", "-o", "v"): ("out of range",),
    ("vis", "--class", "no such thing", "-o", "v"): ("unknown ImageNet class",),
    ("vis", "--direction", "missing.safetensors", "-o", "v"): ("no such file",),
    ("vis", "--direction", "cat.safetensors", "--grid", "cat.safetensors", "-o", "v"):
        ("cat.safetensors",),
    ("vis", "--layer", "inception4c", "--channels", "0", "-o", "small.png"): (),
    # zoom
    ("zoom", "anim.gif", "-o", "anim.gif", *DREAM): ("--force",),
    ("zoom", "small.png", "--zoom", "inf", "-o", "z.gif"): ("--zoom",),
    ("zoom", "small.png", "--zoom", "0.5", "-o", "z.gif"): ("--zoom",),
    ("zoom", "small.png", "--frames", str(10**9), "-o", "z.gif"): ("--frames",),
    ("zoom", "small.png", "--fps", "0", "-o", "z.gif"): ("--fps",),
    ("zoom", "small.png", "-o", "z.avi"): (".avi",),
    ("zoom", "tiny.png", "-o", "z.gif", *DREAM): ("1x1 pixels",),
    # direction
    ("direction", "fit", "--layer", "inception4c", "--positive", "photos", "--negative",
     "small.png", "--crops", "99999999", "-o", "d.safetensors"): ("crops",),
    ("direction", "fit", "--layer", "inception4c", "--positive", "photos", "--negative",
     "small.png", "--crop-size", "99999999", "-o", "d.safetensors"): ("crop_size",),
    ("direction", "fit", "--layer", "inception4c", "--positive", "photos", "--negative",
     "small.png", "--folds", "0", "-o", "d.safetensors"): ("folds",),
    ("direction", "pca", "--layer", "inception4c", "--images", "photos", "-k", "999999999",
     "-o", "d.safetensors"): ("k (--k) must be",),
    ("direction", "pca", "--layer", "inception4c", "--images", "empty", "-o",
     "d.safetensors"): ("no image files",),
    ("direction", "pca", "--layer", "inception4c", "--images", "photos", "-o",
     "cat.png"): (".safetensors",),
    ("direction", "pca", "--layer", "inception4c", "--images", "/dev/zero", "-o",
     "d.safetensors"): ("not a regular file",),
    # linearity
    ("linearity", "--images", "photos", "-o", "lin", "-k", "nan"): ("k (--k) must be",),
    ("linearity", "--images", "photos", "-o", "lin", "-k", "1e9"): ("k (--k) must be",),
    ("linearity", "--images", "empty", "-o", "lin"): ("no image files",),
    ("linearity", "--images", "photos", "-o", "lin", "--crops", "0"): ("crops",),
    ("linearity", "--images", "photos", "-o", "lin", "--render-size", "100000"): ("--render-size",),
    # fetch-weights
    ("fetch-weights", "vgg16", "-o", "small.png/w.safetensors"): ("cannot create",),
    ("fetch-weights", "vgg16", "-o", "w.txt"): (".safetensors",),
    ("fetch-weights", "no_such_net"): ("unknown model",),
    ("fetch-weights", "efficientnet_lite0"): ("no weights to fetch",),
    # layers
    ("layers", "--model", "torchvision:resnet1800"): ("did you mean",),
    ("layers", "--model", "tests.factories:broken"): ("failed",),
    # reproduce: not records
    ("reproduce", "small.png"): ("no dreamkit record",),
    ("reproduce", "text.jpg"): ("text.jpg",),
    ("reproduce", "/dev/zero"): ("not a regular file",),
    ("reproduce", "dreamed.png", "-o", "dreamed.png"): ("inputs",),
    ("reproduce", "dreamed.png", "--input", "photo.png", "-o", "photo.png"): ("inputs",),
    ("reproduce", "dreamed.png", "--input", "small.png"): ("SHA-256 differs",),
    ("reproduce", "dreamed.png", "--budget", "0.001"): ("--budget",),
    ("reproduce", "dreamed.png", "--direction", "cat.safetensors"): ("no SHA-256 matches",),
    ("reproduce", "dreamed.png", "--threads", "100000"): ("threads",),
}


@pytest.mark.parametrize("argv", list(REFUSED), ids=lambda argv: " ".join(argv)[:60])
def test_every_mistake_is_one_line_and_changes_nothing(argv, folder, capsys):
    assert _run(capsys, folder, list(argv), REFUSED[argv]) == 2


def test_the_odd_but_valid_cases_succeed(folder, capsys):
    assert _run(capsys, folder, ["dream", "tiny.png", "--size", "64", *DREAM, "-o",
                                 "ok.png"]) == 0
    assert _run(capsys, folder, ["reproduce", "dreamed.png", "-o", "again.png"]) == 0
    assert _run(capsys, folder, ["reproduce", "vis/inception3a_c2.png", "-o", "again.png"]) == 0


# --------------------------------------------------------------------------- gallery configs

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10**15, 10**15) | st.sampled_from(
        [0, 1, -1, 2**63, 2**64, 10**12, 1e308, -1e308, 0.5, math.inf, math.nan]) |
    st.text(max_size=8) | st.sampled_from(["/dev/zero", "pipe.png", "photos", "../", "x" * 5000,
                                           "inception4c", "fft", "auto"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=6)
CONFIG_KEYS = ["title", "kind", "model", "layer", "channel", "image", "size", "precision",
               "settings", "rows", "columns"]
SETTING_KEYS = ["octaves", "steps", "lr", "jitter", "blur", "seed", "size", "precision",
                "param", "decorrelate", "transforms", "tile"]


@st.composite
def _configs(draw) -> dict:
    config = {"image": "small.png", "size": 32, "settings": {"steps": 1, "octaves": 1},
              "rows": {"axis": "layer", "values": ["inception3a"]}}
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(CONFIG_KEYS + ["settings." + k for k in SETTING_KEYS] +
                                   ["rows.values", "rows.axis", "columns"]))
        value = draw(JSON)
        if "." in key:
            table, field = key.split(".")
            if not isinstance(config.get(table), dict):
                config[table] = {}
            config[table][field] = value
        else:
            config[key] = value
    return config


@given(config=_configs())
@FUZZ
def test_fuzzed_gallery_configs(config, folder, capsys):
    text = json.dumps(config, allow_nan=True)
    (folder / "g.json").write_text(text)
    try:
        _run(capsys, folder, ["gallery", "g.json", "-o", "gallery_out"])
    finally:
        (folder / "g.json").unlink()
        for path in sorted((folder / "gallery_out").rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        if (folder / "gallery_out").exists():
            (folder / "gallery_out").rmdir()


# --------------------------------------------------------------------------- records


def _paths(record: dict) -> list[tuple]:
    """Every (key, ...) path into a record, to tamper with."""
    found = []

    def walk(value, path):
        found.append(path)
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(inner, (*path, key))
        elif isinstance(value, list):
            for i, inner in enumerate(value[:3]):
                walk(inner, (*path, i))

    walk(record, ())
    return [p for p in found if p]


def _tampered(record: dict, path: tuple, value) -> dict:
    copy = json.loads(json.dumps(record))
    table = copy
    for key in path[:-1]:
        table = table[key]
    table[path[-1]] = value
    return copy


@given(data=st.data())
@FUZZ
def test_fuzzed_records_finish_or_refuse_in_time(data, folder, capsys):
    """Acceptance 3: `reproduce` of a tampered record refuses it in one line or finishes,
    within the caps (10 s, 2 GB), and never writes over an input."""
    source = folder / data.draw(st.sampled_from(["dreamed.png", "vis/inception3a_c2.png"]))
    record = json.loads(read_png_text(source)["dreamkit"])
    for _ in range(data.draw(st.integers(1, 2))):
        path = data.draw(st.sampled_from(_paths(record)))
        record = _tampered(record, path, data.draw(JSON))
    pixels = torch.from_numpy(np.asarray(Image.open(source).convert("RGB")).copy())
    fake = folder / "fake.png"
    save_image(pixels.permute(2, 0, 1).float() / 255, fake,
               metadata={"dreamkit": json.dumps(record, allow_nan=True)[:2**21]})
    try:
        _run(capsys, folder, ["reproduce", "fake.png", "-o", "fake_again.png"])
    finally:
        fake.unlink()


@requires_weights
@pytest.mark.parametrize(("settings", "word"), [
    ({"steps": 1600}, "--budget"), ({"steps": 10_000, "octaves": 16}, "--budget"),
    ({"size": 4096}, "tampered"), ({"compile": "on", "steps": 900}, "--budget")],
    ids=["steps", "steps+octaves", "size", "compile+steps"])
def test_tampered_magnitudes_are_refused_before_the_work(settings, word, folder, capsys):
    """A dream record of the small photo asking for far more work than it did is refused (the
    `--budget` it would need is named) within the caps, not run for minutes."""
    record = json.loads(read_png_text(folder / "dreamed.png")["dreamkit"])
    record["settings"].update(settings)
    record["ran"].pop("plans", None)
    pixels = torch.from_numpy(np.asarray(Image.open(folder / "dreamed.png").convert("RGB")).copy())
    fake = folder / "greedy.png"
    save_image(pixels.permute(2, 0, 1).float() / 255, fake,
               metadata={"dreamkit": json.dumps(record)})
    try:
        assert _run(capsys, folder, ["reproduce", "greedy.png"], (word,)) == 2
    finally:
        fake.unlink()


@requires_weights
def test_a_moved_direction_file_is_named_with_the_flag_that_finds_it(tmp_path, capsys):
    from dreamkit.cli import main
    from dreamkit.directions import Directions

    gradient_picture(64, 64).save(tmp_path / "p.png")
    Directions(torch.randn(2, 832), "inception4e", "bvlc_googlenet", "pca").save(
        tmp_path / "d.safetensors")
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        assert main(["dream", "p.png", "--direction", "d.safetensors:1", *DREAM, "-o",
                     "d.png"]) == 0
        (tmp_path / "moved").mkdir()
        (tmp_path / "d.safetensors").rename(tmp_path / "moved" / "d.safetensors")
        rc, err = adversarial_call(capsys, ["reproduce", "d.png"])
        assert rc == 2 and "pass --direction FILE" in err
        rc, err = adversarial_call(capsys, ["reproduce", "d.png", "--direction",
                                            "moved/d.safetensors", "-o", "again.png"])
        assert rc == 0, err
    finally:
        os.chdir(cwd)
