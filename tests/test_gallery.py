"""Gallery configs (strict), tile records, contact sheets, the page, and `dreamkit reproduce`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dreamkit import __version__
from dreamkit.cli import main
from dreamkit.errors import DreamkitError
from dreamkit.gallery import (
    TileSpec,
    contact_sheet,
    html_page,
    load_config,
    parse_gallery,
    read_tile_spec,
    tomllib,
)
from dreamkit.image_io import read_png_text, save_image
from tests.conftest import IMAGES, requires_weights

PHOTO = str(IMAGES / "chelsea.jpg")

TOML = f"""
title = "layers"
size = 64
image = "{PHOTO}"
[settings]
octaves = 2
lr = 2
[rows]
axis = "layer"
values = ["inception3a", "high"]
[columns]
axis = "jitter"
values = [0, 16, 32]
"""


def _gallery(**changes):
    config = {"image": PHOTO, "size": 64, "rows": {"axis": "layer", "values": ["inception3a"]}}
    config.update(changes)
    return parse_gallery({key: value for key, value in config.items() if value is not None})


# --------------------------------------------------------------------------- configs


def test_toml_and_json_configs_expand_to_the_same_grid(tmp_path):
    (tmp_path / "g.toml").write_text(TOML)
    config = load_config(tmp_path / "g.toml")
    (tmp_path / "g.json").write_text(json.dumps(config))
    assert load_config(tmp_path / "g.json") == config
    gallery = parse_gallery(config)
    cells = [(t.row, t.column) for t in gallery.tiles]
    assert cells == [(r, c) for r in range(2) for c in range(3)]
    assert gallery.rows.labels == ["inception3a", "high"]
    last = gallery.tiles[-1].spec
    assert last.layer == "inception4e"  # the tier resolved to its default layer
    assert last.settings["jitter"] == 32 and last.settings["octaves"] == 2
    assert last.settings["lr"] == 2.0 and last.settings["steps"] == 10  # defaults filled in
    assert len({t.name for t in gallery.tiles}) == 6


@pytest.mark.parametrize("changes, message", [
    ({"colour": 1}, "unknown key 'colour'"),
    ({"settings": {"octave": 3}}, "unknown key 'octave'"),
    ({"settings": {"octaves": 2.5}}, "octaves must be an integer"),
    ({"settings": {"octaves": True}}, "octaves must be an integer"),
    ({"settings": {"octaves": 0}}, "octaves must be at least 1"),
    ({"settings": {"blur": float("nan")}}, "blur must be a number"),
    ({"size": "64"}, "size must be an integer"),
    ({"size": 4}, "size must be from 16"),
    ({"rows": {"axis": "colour", "values": [1]}}, "unknown axis 'colour'"),
    ({"rows": {"axis": "layer", "values": []}}, "non-empty list"),
    ({"rows": {"axis": "layer", "values": ["inceptoin4c"]}}, "did you mean"),
    ({"rows": {"axis": "lr", "values": [1, 1.0]}}, "repeated"),
    ({"rows": {"axis": "lr", "values": [1]}, "columns": {"axis": "lr", "values": [2]}}, "both"),
    ({"channel": 9999}, "out of range"),
    ({"kind": "render"}, "take no image"),
    ({"kind": "paint"}, "kind must be one of"),
    ({"kind": "render", "image": None, "settings": {"param": "cppn"}}, "param must be one of"),
    ({"kind": "render", "image": None, "settings": {"steps": 0}}, "steps must be at least"),
    ({"image": "/no/such/photo.jpg"}, "cannot read"),
])
def test_bad_configs_are_refused_with_one_line(changes, message):
    with pytest.raises(DreamkitError, match=message) as caught:
        _gallery(**changes)
    assert "\n" not in str(caught.value)


def test_config_files_are_parsed_not_run(tmp_path):
    (tmp_path / "bad.toml").write_text('title = "x"\nsize = [')
    with pytest.raises(DreamkitError, match="bad.toml"):
        load_config(tmp_path / "bad.toml")
    (tmp_path / "list.json").write_text("[1]")
    with pytest.raises(DreamkitError, match="top level"):
        load_config(tmp_path / "list.json")
    (tmp_path / "g.py").write_text("raise SystemExit")
    with pytest.raises(DreamkitError, match=".toml or .json"):
        load_config(tmp_path / "g.py")


# --------------------------------------------------------------------------- tile records


def test_tile_records_round_trip_and_are_checked_strictly():
    spec = _gallery().tiles[0].spec
    record = json.loads(json.dumps(spec.record()))
    assert TileSpec.from_record(record) == spec and record["version"] == __version__
    for key, value, message in [
        ("settings", {**record["settings"], "steps": "10"}, "steps must be an integer"),
        ("size", 64.5, "size must be an integer"),
        ("input_sha256", "abc", "SHA-256"),
        ("command", "gallery", "contact sheet"),
        ("config", {}, "unknown key 'config'"),
        ("command", "vis", "not a gallery tile"),
        ("command", "linearity", "cannot be reproduced"),
        ("command", 3, "command must be a string"),
        ("extra", 1, "unknown key 'extra'"),
        ("model", None, "model must be a string"),
    ]:
        with pytest.raises(DreamkitError, match=message):
            TileSpec.from_record({**record, key: value})
    with pytest.raises(DreamkitError, match="missing model"):
        TileSpec.from_record({k: v for k, v in record.items() if k != "model"})


def test_records_written_by_dream_are_tile_specs():
    record = {"version": __version__, "command": "dream", "model": "bvlc_googlenet",
              "layer": "inception4c", "channel": 97, "input": "photo.jpg",
              "settings": {"octaves": 4, "octave_scale": 1.4, "steps": 10, "lr": 1.5,
                           "jitter": 32, "blur": 0.5, "seed": 0}}
    spec = TileSpec.from_record(record)
    assert (spec.kind, spec.size, spec.channel, spec.input_sha256) == ("dream", None, 97, None)
    with pytest.raises(DreamkitError, match="partial"):
        TileSpec.from_record({**record, "octaves_done": 2})


# --------------------------------------------------------------------------- sheet and page


def test_contact_sheet_places_tiles_and_draws_labels():
    gallery = parse_gallery(tomllib.loads(TOML))
    colours = {(t.row, t.column): (40 * t.row + 10, 40 * t.column + 10, 200) for t in gallery.tiles}
    sheet = np.asarray(contact_sheet(
        gallery, lambda tile: Image.new("RGB", (64, 64), colours[(tile.row, tile.column)])))
    for colour in colours.values():  # every tile is there, whole
        assert (sheet == colour).all(axis=2).sum() == 64 * 64
    width = sheet.shape[1]
    rows_left = sheet[:, : width - 3 * 68]  # left of the tiles: the row labels
    assert (rows_left < 128).any(axis=2).sum() > 50
    top = sheet[: sheet.shape[0] - 2 * 68]  # above the tiles: title and column labels
    assert (top < 128).all(axis=2).sum() > 50


def test_page_links_every_tile_and_escapes_text():
    gallery = parse_gallery({**tomllib.loads(TOML), "title": "<script>alert(1)</script>"})
    page = html_page(gallery)
    for tile in gallery.tiles:
        assert page.count(f'src="{tile.name}"') == 1
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
    assert "http" not in page  # nothing from a server or a CDN


# --------------------------------------------------------------------------- with the weights


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("gallery") / "out"
    threads = torch.get_num_threads()
    try:
        code = main(["gallery", "--image", PHOTO, "--rows", "layer=inception3a,inception4c",
                     "--size", "64", "--set", "octaves=1", "--set", "steps=2", "-o", str(out),
                     "-q"])
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    return out


@requires_weights
def test_every_png_carries_its_settings_and_the_version(rendered):
    tiles = sorted((rendered / "tiles").glob("*.png"))
    assert len(tiles) == 2
    layers = [read_tile_spec(t).layer for t in tiles]
    assert layers == ["inception3a", "inception4c"]
    for tile in tiles:
        assert json.loads(read_png_text(tile)["dreamkit"])["version"] == __version__
    sheet = json.loads(read_png_text(rendered / "sheet.png")["dreamkit"])
    assert sheet["command"] == "gallery" and sheet["version"] == __version__
    assert sheet["config"]["rows"]["values"] == ["inception3a", "inception4c"]
    with pytest.raises(DreamkitError, match="contact sheet"):
        read_tile_spec(rendered / "sheet.png")
    first, second = (np.asarray(Image.open(t)) for t in tiles)
    assert np.abs(first.astype(int) - second).mean() > 1  # the layers really differ


@requires_weights
def test_reproduce_renders_the_same_pixels(rendered, tmp_path, capsys):
    tile = sorted((rendered / "tiles").glob("*.png"))[1]
    again = tmp_path / "again.png"
    assert main(["reproduce", str(tile), "-o", str(again)]) == 0
    assert "identical" in capsys.readouterr().out
    assert np.array_equal(np.asarray(Image.open(again)), np.asarray(Image.open(tile)))
    assert read_tile_spec(again) == read_tile_spec(tile)

    edited = json.loads(read_png_text(tile)["dreamkit"])  # a tile whose pixels do not match
    edited["settings"]["seed"] = 1
    fake = tmp_path / "fake.png"
    save_image(torch.from_numpy(np.array(Image.open(tile))).permute(2, 0, 1) / 255.0, fake,
               metadata={"dreamkit": json.dumps(edited)})
    assert main(["reproduce", str(fake), "-o", str(tmp_path / "other.png")]) == 1
    assert "differs" in capsys.readouterr().out

    edited["settings"]["seed"] = "one"
    save_image(torch.zeros(3, 16, 16), fake, metadata={"dreamkit": json.dumps(edited)})
    assert main(["reproduce", str(fake)]) == 2
    assert "seed must be an integer" in capsys.readouterr().err


@requires_weights
def test_reproduce_works_on_dream_outputs(tmp_path, capsys):
    photo = tmp_path / "small.png"
    save_image(torch.rand(3, 48, 56, generator=torch.Generator().manual_seed(1)), photo)
    made = tmp_path / "dreamed.png"
    assert main(["dream", str(photo), "--layer", "inception3b", "--octaves", "1", "--steps",
                 "2", "--negate", "-o", str(made), "-q"]) == 0
    assert read_tile_spec(made).negate
    assert main(["reproduce", str(made), "-o", str(tmp_path / "again.png")]) == 0
    assert "identical" in capsys.readouterr().out
    photo.unlink()
    assert main(["reproduce", str(made)]) == 2
    assert "--input" in capsys.readouterr().err


@requires_weights
def test_render_tiles_from_noise_reproduce_too(tmp_path, capsys):
    out = tmp_path / "out"
    threads = torch.get_num_threads()
    try:
        assert main(["gallery", "--kind", "render", "--layer", "inception3b", "--channel", "7",
                     "--size", "32", "--columns", "seed=0,1", "--set", "steps=3", "-o",
                     str(out), "-q"]) == 0
    finally:
        torch.set_num_threads(threads)
    tiles = sorted((out / "tiles").glob("*.png"))
    first, second = (np.asarray(Image.open(t)).astype(int) for t in tiles)
    assert np.abs(first - second).mean() > 1  # the seed matters
    assert read_tile_spec(tiles[1]).settings == {"steps": 3, "seed": 1}
    assert main(["reproduce", str(tiles[1]), "-o", str(tmp_path / "again.png")]) == 0
    assert "identical" in capsys.readouterr().out


@requires_weights
def test_reproduce_renders_a_vis_picture_again_with_its_batch(tmp_path, capsys):
    out = tmp_path / "vis"
    assert main(["vis", "--layer", "inception3a", "--channels", "4,7,9", "--size", "32",
                 "--steps", "3", "--batch", "2", "--seed", "5", "-q", "-o", str(out)]) == 0
    picture = out / "inception3a_c7.png"  # the second picture of the first batch of two
    record = json.loads(read_png_text(picture)["dreamkit"])
    assert [t["channel"] for t in record["batch"]] == [4, 7] and record["index"] == 1
    assert record["render"]["seed"] == 5 and record["threads"] == torch.get_num_threads()
    again = tmp_path / "again.png"
    assert main(["reproduce", str(picture), "-o", str(again)]) == 0
    assert "identical" in capsys.readouterr().out
    assert json.loads(read_png_text(again)["dreamkit"]) == record

    pixels = torch.from_numpy(np.array(Image.open(picture))).permute(2, 0, 1) / 255.0
    fake = tmp_path / "fake.png"
    for key, value, message in [
        ("index", 2, "does not point into"),
        ("objective", record["batch"][0], "not the batch's target"),
        ("render", {**record["render"], "param": "dct"}, "param must be one of"),
        ("batch", [{"kind": "channel", "layer": "inception3a"}] * 2, "missing channel"),
        ("batch", [{**t, "channel": 999} for t in record["batch"]], "out of range"),
        ("threads", 0, "threads must be at least 1"),
        ("model", "alexnet", "alexnet"),
    ]:
        save_image(pixels, fake, metadata={"dreamkit": json.dumps({**record, key: value})})
        assert main(["reproduce", str(fake), "-o", str(tmp_path / "x.png")]) == 2
        assert message in capsys.readouterr().err
    edited = {**record, "batch": [record["batch"][0], {**record["objective"], "channel": 8}],
              "objective": {**record["objective"], "channel": 8}}  # other pixels
    save_image(pixels, fake, metadata={"dreamkit": json.dumps(edited)})
    assert main(["reproduce", str(fake), "-o", str(tmp_path / "x.png")]) == 1
    assert "differs" in capsys.readouterr().out


def test_flags_alone_make_a_config(tmp_path, capsys):
    assert main(["gallery", "-o", str(tmp_path)]) == 2
    assert "give a config" in capsys.readouterr().err
    assert main(["gallery", "--image", "x.jpg", "--set", "steps", "-o", str(tmp_path)]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def test_gallery_paths_are_relative_to_the_config(tmp_path):
    (tmp_path / "photo.jpg").write_bytes(Path(PHOTO).read_bytes())
    gallery = parse_gallery({"image": "photo.jpg"}, tmp_path)
    assert gallery.tiles[0].spec.input == str((tmp_path / "photo.jpg").resolve())
