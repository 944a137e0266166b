"""Gallery configs (strict, bounded), contact sheets, the page, and gallery runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dreamkit.cli import main
from dreamkit.errors import DreamkitError
from dreamkit.gallery import html_page, load_config, parse_gallery
from dreamkit.image_io import read_png_text
from dreamkit.records import read_record
from dreamkit.sheets import contact_sheet
from dreamkit.version import __version__
from tests.helpers import IMAGES, requires_weights

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

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
    last = gallery.tiles[-1].recipe
    assert last.target[0].layer == "inception4e"  # the tier resolved to its default layer
    assert last.settings.jitter == 32 and last.settings.octaves == 2
    assert last.settings.lr == 2.0 and last.settings.steps == 10  # defaults filled in
    assert last.input.crop == 64 and len(last.input.sha256) == 64
    assert len({t.name for t in gallery.tiles}) == 6


@pytest.mark.parametrize("changes, message", [
    ({"colour": 1}, "unknown key 'colour'"),
    ({"settings": {"octave": 3}}, "settings: unknown key 'octave'"),
    ({"settings": {"octaves": 2.5}}, r"octaves \(--octaves\) must be an integer from 1 to 16"),
    ({"settings": {"octaves": True}}, "octaves .* must be an integer"),
    ({"settings": {"octaves": 0}}, "octaves .* must be an integer from 1 to 16, not 0"),
    ({"settings": {"blur": float("nan")}}, "blur .* must be a number"),
    ({"settings": {"lr": 1e308}}, "lr .* up to 255"),
    ({"size": "64"}, r"size \(--size\) must be an integer"),
    ({"size": 4}, r"size \(--size\) must be an integer from 16 to 4096"),
    ({"rows": {"axis": "colour", "values": [1]}}, "unknown axis 'colour'"),
    ({"rows": {"axis": "layer", "values": []}}, "list of 1 to 64 values"),
    ({"rows": {"axis": "lr", "values": list(range(1, 100))}}, "list of 1 to 64 values"),
    ({"rows": {"axis": "layer", "values": ["inceptoin4c"]}}, "did you mean"),
    ({"rows": {"axis": "lr", "values": [1, 1.0]}}, "repeated"),
    ({"rows": {"axis": "lr", "values": [1]}, "columns": {"axis": "lr", "values": [2]}}, "both"),
    ({"rows": {"axis": "lr", "values": [i / 10 for i in range(1, 40)]},
      "columns": {"axis": "blur", "values": list(range(40))}}, "at most 1024 tiles"),
    ({"channel": 9999}, "out of range"),
    ({"kind": "render"}, "take no image"),
    ({"kind": "paint"}, "kind must be one of"),
    ({"kind": "render", "image": None, "settings": {"param": "cppn"}}, "param .* must be one of"),
    ({"kind": "render", "image": None, "settings": {"steps": 0}}, "steps .* from 1 to 10,000"),
    ({"kind": "render", "image": None, "size": 5000}, "size .* from 16 to 4096"),
    ({"image": "/no/such/photo.jpg"}, "no such file"),
    ({"image": "/dev/zero"}, "not a regular file"),
    ({"title": "x" * 10_000}, "at most 200 characters"),
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
    (tmp_path / "huge.toml").write_text("# " + "x" * 2**21)
    with pytest.raises(DreamkitError, match="more than the limit"):
        load_config(tmp_path / "huge.toml")


def test_gallery_paths_are_relative_to_the_config(tmp_path):
    (tmp_path / "photo.jpg").write_bytes(Path(PHOTO).read_bytes())
    gallery = parse_gallery({"image": "photo.jpg"}, tmp_path)
    assert gallery.tiles[0].recipe.input.path == str((tmp_path / "photo.jpg").resolve())


# --------------------------------------------------------------------------- sheet and page


def test_contact_sheet_places_cells_and_draws_labels():
    colours = [(40 * r + 10, 40 * c + 10, 200) for r in range(2) for c in range(3)]
    sheet = np.asarray(contact_sheet([Image.new("RGB", (64, 64), c) for c in colours],
                                     columns=3, row_labels=["inception3a", "high"],
                                     column_labels=["jitter 0", "jitter 16", "jitter 32"],
                                     title="layers"))
    for colour in colours:  # every cell is there, whole
        assert (sheet == colour).all(axis=2).sum() == 64 * 64
    width = sheet.shape[1]
    rows_left = sheet[:, : width - 3 * 68]  # left of the cells: the row labels
    assert (rows_left < 128).any(axis=2).sum() > 50
    top = sheet[: sheet.shape[0] - 2 * 68]  # above the cells: title and column labels
    assert (top < 128).all(axis=2).sum() > 50


def test_page_links_every_tile_and_escapes_text():
    gallery = parse_gallery({**tomllib.loads(TOML), "title": "<script>alert(1)</script>"})
    page = html_page(gallery)
    for tile in gallery.tiles:
        assert page.count(f'src="{tile.name}"') == 1
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
    assert "http" not in page  # nothing from a server or a CDN


def test_flags_alone_make_a_config(tmp_path, capsys):
    assert main(["gallery", "-o", str(tmp_path)]) == 2
    assert "give a config" in capsys.readouterr().err
    assert main(["gallery", "--image", "x.jpg", "--set", "steps", "-o", str(tmp_path)]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


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


@pytest.mark.slow
@requires_weights
def test_every_png_carries_its_record_and_the_version(rendered):
    tiles = sorted((rendered / "tiles").glob("*.png"))
    assert len(tiles) == 2
    layers = [read_record(t).recipe.target[0].layer for t in tiles]
    assert layers == ["inception3a", "inception4c"]
    for tile in tiles:
        assert read_record(tile).version == __version__
        assert read_record(tile).ran["threads"] == 1
    sheet = json.loads(read_png_text(rendered / "sheet.png")["dreamkit"])
    assert sheet["command"] == "gallery" and sheet["version"] == __version__
    assert sheet["config"]["rows"]["values"] == ["inception3a", "inception4c"]
    with pytest.raises(DreamkitError, match="contact sheet"):
        read_record(rendered / "sheet.png")
    first, second = (np.asarray(Image.open(t)) for t in tiles)
    assert np.abs(first.astype(int) - second).mean() > 1  # the layers really differ


@pytest.mark.slow
@requires_weights
def test_a_second_run_renders_nothing(rendered, capsys):
    threads = torch.get_num_threads()
    try:
        assert main(["gallery", "--image", PHOTO, "--rows", "layer=inception3a,inception4c",
                     "--size", "64", "--set", "octaves=1", "--set", "steps=2", "-o",
                     str(rendered)]) == 0
    finally:
        torch.set_num_threads(threads)
    assert "0 rendered now, 2 already done" in capsys.readouterr().out


@pytest.mark.slow
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
    settings = read_record(tiles[1]).recipe.settings
    assert (settings.steps, settings.seed, settings.size) == (3, 1, 32)
    assert main(["reproduce", str(tiles[1]), "-o", str(tmp_path / "again.png")]) == 0
    assert "identical" in capsys.readouterr().out


def test_a_folder_with_someone_elses_index_is_refused(tmp_path, capsys):
    """`gallery -o DIR` replaced an index.html or sheet.png that no gallery had made."""
    from tests.helpers import call, small_png

    small_png(tmp_path)
    config = tmp_path / "g.json"
    config.write_text(json.dumps({"image": "small.png", "size": 64, "layer": "inception4c",
                                  "rows": {"axis": "lr", "values": [1]}}))
    for name in ("index.html", "sheet.png"):
        site = tmp_path / f"site-{name}"
        site.mkdir()
        (site / name).write_text("mine")
        rc, err = call(capsys, ["gallery", str(config), "-o", str(site)])
        assert rc == 2 and "no gallery made it" in err, err
        assert (site / name).read_text() == "mine"
