"""Records: what a PNG remembers (one schema for dreams, vis pictures and tiles), checked
strictly, and `dreamkit reproduce` making the same pixels again."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from dreamkit.cli import main
from dreamkit.errors import DreamkitError
from dreamkit.image_io import read_png_text, save_image
from dreamkit.records import Photo, Recipe, Record, read_record
from dreamkit.settings import DreamSettings, RenderSettings
from dreamkit.targets import Target
from dreamkit.version import __version__
from tests.helpers import IMAGES, requires_weights

SHA = "a" * 64


def _dream_record() -> Record:
    recipe = Recipe("dream", "bvlc_googlenet", (Target.of_channel("inception4c", 97),),
                    DreamSettings(steps=3), Photo("/photos/chelsea.jpg", SHA, 64))
    return Record(recipe, SHA, {"device": "cpu", "precision": "fp32", "plans": ["full"] * 4,
                                "threads": 1})


def _vis_record() -> Record:
    pictures = tuple((Target.of_channel("inception3a", c),) for c in (4, 7))
    recipe = Recipe("vis", "bvlc_googlenet", pictures[1], RenderSettings(size=32, steps=3),
                    batch=pictures, index=1)
    return Record(recipe, "random", {"threads": 1})


@pytest.mark.parametrize("make", [_dream_record, _vis_record])
def test_records_round_trip(make):
    record = make()
    again = Record.from_json(json.loads(record.to_json()))
    assert again == record and again.version == __version__
    assert again.recipe.key() == record.recipe.key()


@pytest.mark.parametrize(("path", "value", "message"), [
    (("settings", "steps"), "10", r"steps \(--steps\) must be an integer"),
    (("settings", "steps"), 10**12, "from 1 to 10,000"),
    (("settings", "lr"), 1e308, "up to 255"),
    (("settings", "size"), 5000, "from 16 to 4096"),
    (("settings", "octaves"), 0, "from 1 to 16"),
    (("settings", "colour"), 1, "unknown dream setting 'colour'"),
    (("input", "sha256"), "abc", "SHA-256"),
    (("input", "crop"), 10**9, "crop must be"),
    (("input", "path"), "x" * 10_000, "at most 4,096 characters"),
    (("weights",), 3, "weights must be a string"),
    (("weights",), "abc", "weights must be a SHA-256"),
    (("command",), "linearity", "command must be one of"),
    (("command",), 3, "command must be a string"),
    (("format",), "dreamkit-record/1", "cannot read"),
    (("extra",), 1, "unknown key 'extra'"),
    (("model",), None, "model must be a string"),
    (("target",), [], "list of 1 to 64 target terms"),
    (("target",), [{"kind": "channel", "layer": "inception4c"}], "needs channel"),
    (("target",), [{"kind": "wish"}], "kind must be one of"),
    (("target",), [{"kind": "layer", "layer": "conv1", "weight": 1e300}], "weight must be"),
    (("ran", "threads"), 10**6, "threads must be an integer from 1 to"),
    (("ran", "threads"), 0, "threads must be an integer from 1 to"),
    (("ran", "plans"), ["warp"], "plans must be a list"),
    (("ran", "precision"), "fp8", "precision must be one of"),
    (("octaves_done",), 10**9, "octaves_done must be"),
])
def test_tampered_dream_records_are_refused_with_one_line(path, value, message):
    data = json.loads(_dream_record().to_json())
    table = data
    for key in path[:-1]:
        table = table[key]
    table[path[-1]] = value
    with pytest.raises(DreamkitError, match=message) as caught:
        Record.from_json(data)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("index", 2, "index must be an integer from 0 to 1"),
    ("batch", [], "non-empty list"),
    ("batch", [[{"kind": "channel", "layer": "inception3a", "channel": 1}]] * 100_000,
     "over the budget|batch must be"),
    ("target", [{"kind": "channel", "layer": "inception3a", "channel": 4}],
     "not the batch's target"),
])
def test_tampered_vis_records_are_refused(key, value, message):
    data = json.loads(_vis_record().to_json())
    data[key] = value
    with pytest.raises(DreamkitError, match=message):
        Record.from_json(data)


def test_a_size_times_batch_over_the_budget_is_refused():
    data = json.loads(_vis_record().to_json())
    data["settings"]["size"] = 4096
    with pytest.raises(DreamkitError, match="over the budget"):
        Record.from_json(data)


# --------------------------------------------------------------------------- reproduce


@pytest.mark.slow
@requires_weights
def test_reproduce_works_on_dream_outputs_and_checks_the_photo(tmp_path, capsys):
    photo = tmp_path / "small.png"
    save_image(torch.rand(3, 48, 56, generator=torch.Generator().manual_seed(1)), photo)
    made = tmp_path / "dreamed.png"
    assert main(["dream", str(photo), "--layer", "inception3b", "--octaves", "1", "--steps",
                 "2", "--negate", "-o", str(made), "-q"]) == 0
    record = read_record(made)
    assert record.recipe.target[0].weight == -1 and record.ran["threads"] >= 1
    assert record.recipe.input.path == str(photo.resolve())
    assert main(["reproduce", str(made), "-o", str(tmp_path / "again.png")]) == 0
    assert "identical" in capsys.readouterr().out
    moved = tmp_path / "moved.png"
    photo.rename(moved)
    assert main(["reproduce", str(made)]) == 2
    assert "--input" in capsys.readouterr().err
    assert main(["reproduce", str(made), "--input", str(moved), "-o",
                 str(tmp_path / "again2.png")]) == 0
    save_image(torch.rand(3, 48, 56), moved)  # another photo under that name
    assert main(["reproduce", str(made), "--input", str(moved), "-o",
                 str(tmp_path / "x.png")]) == 2
    assert "SHA-256 differs" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


@requires_weights
def test_reproduce_renders_a_vis_picture_again_with_its_batch(tmp_path, capsys):
    out = tmp_path / "vis"
    assert main(["vis", "--layer", "inception3a", "--channels", "4,7,9", "--size", "32",
                 "--steps", "3", "--batch", "2", "--seed", "5", "-q", "-o", str(out)]) == 0
    picture = out / "inception3a_c7.png"  # the second picture of the first batch of two
    record = json.loads(read_png_text(picture)["dreamkit"])
    assert [t[0]["channel"] for t in record["batch"]] == [4, 7] and record["index"] == 1
    assert record["settings"]["seed"] == 5
    assert record["ran"]["threads"] == torch.get_num_threads()
    again = tmp_path / "again.png"
    assert main(["reproduce", str(picture), "-o", str(again)]) == 0
    assert "identical" in capsys.readouterr().out
    assert json.loads(read_png_text(again)["dreamkit"])["batch"] == record["batch"]

    pixels = torch.from_numpy(np.array(Image.open(picture))).permute(2, 0, 1) / 255.0
    fake = tmp_path / "fake.png"
    for key, value, message in [
        ("settings", {**record["settings"], "param": "dct"}, "param (--param) must be one of"),
        ("settings", {**record["settings"], "size": 64}, "the picture is 32x32"),
        ("target", [{"kind": "channel", "layer": "inception3a", "channel": 999}],
         "not the batch's target"),
        ("model", "alexnet", "alexnet"),
        ("model", "os:system", "pass --model os:system"),
    ]:
        save_image(pixels, fake, metadata={"dreamkit": json.dumps({**record, key: value})})
        assert main(["reproduce", str(fake), "-o", str(tmp_path / "x.png")]) == 2
        assert message in capsys.readouterr().err
    other = {"kind": "channel", "layer": "inception3a", "channel": 8}
    edited = {**record, "batch": [record["batch"][0], [other]], "target": [other]}
    save_image(pixels, fake, metadata={"dreamkit": json.dumps(edited)})
    assert main(["reproduce", str(fake), "-o", str(tmp_path / "x.png")]) == 1
    assert "differs" in capsys.readouterr().out
    bad = {**other, "channel": 999}
    edited = {**record, "batch": [record["batch"][0], [bad]], "target": [bad]}
    save_image(pixels, fake, metadata={"dreamkit": json.dumps(edited)})
    assert main(["reproduce", str(fake), "-o", str(tmp_path / "y.png")]) == 2
    assert "channel 999 is out of range" in capsys.readouterr().err


@requires_weights
def test_reproduce_refuses_other_weights(tmp_path, capsys):
    photo = IMAGES / "chelsea.jpg"
    made = tmp_path / "d.png"
    assert main(["dream", str(photo), "--size", "64", "--octaves", "1", "--steps", "1", "-o",
                 str(made), "-q"]) == 0
    from safetensors.torch import load_file, save_file

    from tests.helpers import weights_dir

    state = load_file(weights_dir() / "bvlc_googlenet.safetensors")
    state["conv1/7x7_s2.bias"] = state["conv1/7x7_s2.bias"] + 1
    save_file(state, tmp_path / "other.safetensors")
    assert main(["reproduce", str(made), "--weights", str(tmp_path / "other.safetensors"),
                 "-o", str(tmp_path / "x.png")]) == 2
    assert "not the ones the picture was made with" in capsys.readouterr().err


@requires_weights
@pytest.mark.slow
def test_the_readme_run_reproduces_from_the_root_and_from_elsewhere(tmp_path, monkeypatch,
                                                                     capsys):
    """Acceptance: `dream gallery/chelsea.jpg`, then `dreamkit reproduce chelsea_inception4c.png`
    from the folder it ran in and from another one: identical (threads, absolute paths and the
    photo's hash are in the record)."""
    import shutil

    from tests.helpers import ROOT

    (tmp_path / "gallery").mkdir()
    shutil.copy(ROOT / "gallery" / "chelsea.jpg", tmp_path / "gallery" / "chelsea.jpg")
    monkeypatch.chdir(tmp_path)
    assert main(["dream", "gallery/chelsea.jpg", "-q"]) == 0
    made = tmp_path / "chelsea_inception4c.png"
    record = read_record(made)
    assert record.ran["threads"] == torch.get_num_threads()
    assert record.recipe.input.path == str(tmp_path / "gallery" / "chelsea.jpg")
    assert main(["reproduce", "chelsea_inception4c.png", "-q"]) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["reproduce", str(made)]) == 0
    assert "identical" in capsys.readouterr().out


def test_python_api_settings_of_the_wrong_kind_are_named_errors():
    from dreamkit.dream import dream
    from dreamkit.models import load_model
    from dreamkit.render import render

    net = load_model("squeezenet1_1", random_weights=True)
    image = torch.rand(3, 64, 64)
    cases = [
        (lambda: dream(net, image, "fire3", "fast"), "settings must be DreamSettings"),
        (lambda: dream(net, image, "fire3", stepz=3), "unknown settings stepz"),
        (lambda: dream(net, image, "fire3", steps="3"), r"steps \(--steps\) must be"),
        (lambda: dream("net", image), "net must be a dreamkit model"),
        (lambda: render(net, "fire3", RenderSettings, steps=1), "settings must be"),
        (lambda: render(net, 42, steps=1), "an objective must be"),
        (lambda: render(net, "fire3", size=10**6), r"size \(--size\) must be"),
    ]
    for make, message in cases:
        with pytest.raises(DreamkitError, match=message):
            make()


@requires_weights
def test_a_jpeg_keeps_its_record_and_reproduces(tmp_path, capsys):
    """Small pictures for sites: a JPEG carries its record in a comment, and reproduce
    compares at the quality it was written at."""
    out = tmp_path / "vis"
    assert main(["vis", "--layer", "inception3a", "--channels", "3", "--size", "32",
                 "--steps", "2", "-q", "-o", str(out)]) == 0
    record = read_record(out / "inception3a_c3.png")
    picture = tmp_path / "small.jpg"
    image = torch.from_numpy(np.asarray(Image.open(out / "inception3a_c3.png")).copy())
    save_image(image.permute(2, 0, 1).float() / 255, picture, metadata=record.metadata(),
               quality=80)
    assert read_record(picture) == record
    assert main(["reproduce", str(picture), "-o", str(tmp_path / "again.png")]) == 0
    assert "identical" in capsys.readouterr().out
