"""Untrusted input, round two (issue 29): budgets that count what a record's work really
costs, configs and records that cannot make dreamkit import or call code, a user's failing
code in one line, every output place checked before any work."""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

from dreamkit.errors import DreamkitError
from dreamkit.image_io import read_png_text, save_image
from dreamkit.models import wrap
from tests.helpers import IMAGES, assert_user_error, call, requires_weights

CODE_SPECS = ["os:abort", "sys:exit", "builtins:input", "subprocess:getoutput", "pdb:set_trace",
              "tests.canary:build"]


@pytest.fixture(scope="module")
def picture(tmp_path_factory):
    """A real dream picture and its record (64 px, 1 octave, 1 step)."""
    if not (IMAGES / "chelsea.jpg").is_file():
        pytest.skip("no shared photos")
    from tests.helpers import weights_dir

    if weights_dir() is None:
        pytest.skip("no weights")
    from dreamkit.cli import main

    folder = tmp_path_factory.mktemp("picture")
    made = folder / "d.png"
    assert main(["dream", str(IMAGES / "chelsea.jpg"), "--size", "64", "--octaves", "1",
                 "--steps", "1", "-o", str(made), "-q"]) == 0
    return made, json.loads(read_png_text(made)["dreamkit"])


def _tampered(picture, tmp_path, **changes) -> str:
    """The picture with its record changed (and its pixels of the size the record asks for)."""
    made, record = picture
    pixels = torch.from_numpy(np.array(Image.open(made))).permute(2, 0, 1) / 255.0
    side = changes.get("settings", {}).get("size")
    if side:  # chelsea.jpg is 451 x 300: the dream's longer side is `side`
        pixels = torch.zeros(3, round(300 * side / 451), side)
    edited = json.loads(json.dumps(record))
    for key, value in changes.items():
        if key in ("settings", "ran"):  # None removes a key
            edited[key] = {k: v for k, v in {**edited.get(key, {}), **value}.items()
                           if v is not None}
        else:
            edited[key] = value
    fake = tmp_path / "fake.png"
    save_image(pixels, fake, metadata={"dreamkit": json.dumps(edited)})
    return str(fake)


@requires_weights
@pytest.mark.parametrize(("changes", "words"), [
    # 448 px photo crop, 2 steps, the plan set to 32-pixel tiles: each tile computes its margins
    ({"settings": {"size": 448, "steps": 2, "octaves": 1}, "ran": {"plans": ["tile:32"]}},
     ["million pixel-steps", "--budget"]),
    ({"settings": {"size": 448, "steps": 2, "octaves": 1, "tile": 32}, "ran": {"plans": None}},
     ["million pixel-steps"]),
    # a compile on the CPU: minutes before the first step
    ({"settings": {"compile": "on", "octaves": 4, "steps": 1}}, ["million pixel-steps"]),
    # 2000 x 1330 pixels in one step: under 4 million pixel-steps, but ~3 GB at once
    ({"settings": {"size": 2000, "steps": 1, "octaves": 1}}, ["pixels at once", "--budget"]),
])
def test_a_tampered_record_is_refused_before_any_work(picture, tmp_path, capsys, changes, words):
    fake = _tampered(picture, tmp_path, **changes)
    start = time.monotonic()
    rc, err = call(capsys, ["reproduce", fake, "-o", str(tmp_path / "again.png")])
    assert time.monotonic() - start < 30  # refused before any work (which takes minutes)
    assert_user_error(rc, err, *words)
    assert not (tmp_path / "again.png").exists()


@requires_weights
def test_work_past_the_time_its_budget_allows_is_stopped(picture, tmp_path, capsys,
                                                         monkeypatch):
    from dreamkit import reproduction as reproduce

    monkeypatch.setattr(reproduce, "SECONDS_PER_MILLION", 1e-9)
    made, _ = picture
    rc, err = call(capsys, ["reproduce", str(made), "-o", str(tmp_path / "again.png")])
    assert_user_error(rc, err, "stopped after", "--budget")


def test_the_budget_counts_tiles_compiles_and_chunks():
    from dreamkit.records import Photo, Recipe
    from dreamkit.remake import work
    from dreamkit.settings import DreamSettings
    from dreamkit.targets import Target

    def recipe(**settings):
        return Recipe("dream", "bvlc_googlenet", (Target.layer_norm("inception4c"),),
                      DreamSettings(**{"octaves": 1, "steps": 2, **settings}),
                      Photo("p.jpg", "a" * 64, 448))

    plain = work(recipe())
    assert plain == 2 * (448 * 448 + 4096)
    assert work(recipe(), plans=["tile:32"]) > 20 * plain  # 196 tiles of 224 x 224 context
    assert work(recipe(tile=32)) == work(recipe(), plans=["tile:32"])
    assert work(recipe(compile="on")) >= plain + 16_000_000
    assert work(recipe(compile="auto")) == plain  # auto stays eager on a CPU
    assert work(recipe(compile="auto", steps=300), cuda=True) >= 16_000_000


@pytest.mark.parametrize("spec", CODE_SPECS)
def test_a_gallery_config_never_imports_or_calls_code(spec, tmp_path, capsys, monkeypatch):
    mark = tmp_path / "canary"
    monkeypatch.setenv("DREAMKIT_CANARY", str(mark))
    sys.modules.pop("tests.canary", None)
    config = tmp_path / "g.toml"
    config.write_text(f'kind = "render"\nmodel = "{spec}"\nsize = 32\n'
                      '[settings]\nsteps = 1\n')
    rc, err = call(capsys, ["gallery", str(config), "-o", str(tmp_path / "out")])
    assert_user_error(rc, err, "gallery config names the user model", f"--model {spec}")
    assert not mark.exists() and "tests.canary" not in sys.modules


@pytest.mark.parametrize("spec", CODE_SPECS)
def test_a_record_never_imports_or_calls_code(spec, tmp_path, capsys, monkeypatch):
    mark = tmp_path / "canary"
    monkeypatch.setenv("DREAMKIT_CANARY", str(mark))
    sys.modules.pop("tests.canary", None)
    record = {"format": "dreamkit-record/2", "version": "0", "command": "vis", "model": spec,
              "weights": "a" * 64, "target": [{"kind": "layer", "layer": "conv1"}],
              "settings": {"size": 32, "steps": 1}, "index": 0,
              "batch": [[{"kind": "layer", "layer": "conv1"}]], "ran": {}}
    fake = tmp_path / "fake.png"
    save_image(torch.zeros(3, 32, 32), fake, metadata={"dreamkit": json.dumps(record)})
    rc, err = call(capsys, ["reproduce", str(fake), "-o", str(tmp_path / "x.png")])
    assert_user_error(rc, err, "user model", f"--model {spec}")
    assert not mark.exists() and "tests.canary" not in sys.modules


def test_the_users_own_model_on_the_command_line_is_allowed(tmp_path, capsys):
    config = tmp_path / "g.toml"
    config.write_text('kind = "render"\nmodel = "tests.factories:pitfalls"\nlayer = "conv3"\n'
                      'size = 32\n[settings]\nsteps = 2\n')
    from dreamkit.cli import main

    assert main(["gallery", str(config), "--model", "tests.factories:pitfalls", "-o",
                 str(tmp_path / "out"), "-q"]) == 0


@pytest.mark.parametrize(("source", "words"), [
    ("def build(:\n", ["cannot import brokenmod", "SyntaxError"]),
    ("raise ValueError('no GPU here')\n", ["cannot import brokenmod", "ValueError",
                                             "no GPU here"]),
    ("def build():\n    return [][1]\n", ["brokenmod:build() failed", "IndexError"]),
])
def test_a_users_failing_code_is_one_line_naming_it(source, words, workdir, capsys):
    (workdir / "brokenmod.py").write_text(source)
    sys.modules.pop("brokenmod", None)
    rc, err = call(capsys, ["layers", "--model", "brokenmod:build"])
    assert_user_error(rc, err, *words, "(model brokenmod:build)")


def test_a_slow_factory_says_what_is_happening(workdir, capsys, monkeypatch):
    from dreamkit.models import sources

    monkeypatch.setattr(sources, "SLOW_FACTORY_S", 0.05)
    (workdir / "slowmod.py").write_text(
        "import time\nfrom tests.factories import pitfalls\n\n"
        "def build():\n    time.sleep(0.5)\n    return pitfalls()\n")
    sys.modules.pop("slowmod", None)
    rc, err = call(capsys, ["layers", "--model", "slowmod:build"])
    assert rc == 0 and "still waiting for slowmod:build()" in err and "your code" in err


@pytest.mark.parametrize("command", [
    ["linearity", "--images", str(IMAGES), "--count", "8"],
    ["microscope", "--layers", "inception3a", "--channels", "0"],
    ["gallery", "--kind", "render", "--size", "32"],
])
def test_an_output_place_that_cannot_be_written_is_refused_before_any_work(command, workdir,
                                                                           capsys):
    (workdir / "file").write_text("not a folder")
    for out, words in [("file", ["is a file, not a folder"]),
                       ("file/below", ["cannot write there", "is not a folder"])]:
        start = time.monotonic()
        rc, err = call(capsys, [*command, "-o", out])
        assert_user_error(rc, err, *words)
        assert time.monotonic() - start < 30, command  # before any work (minutes)


def test_integer_weights_are_a_one_line_error():
    from tests.factories import Integer

    with pytest.raises(DreamkitError, match="torch.int64 weights.*module.float"):
        wrap(Integer())
