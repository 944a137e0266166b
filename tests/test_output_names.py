"""Default output names never collide: different requests get different files, and a default
name never replaces an existing file (the next free name, said on stdout)."""

from __future__ import annotations

import shutil

import pytest
import torch

from dreamkit.cli import dream_main
from dreamkit.directions import Directions
from tests.helpers import IMAGES, call

TINY = ["--octaves", "1", "--steps", "1", "--size", "96", "--quiet"]


@pytest.mark.slow
def test_guide_direction_rows_and_plain_dreams_leave_four_files(googlenet, workdir, capsys):
    shutil.copy(IMAGES / "chelsea.jpg", workdir / "photo.jpg")
    shutil.copy(IMAGES / "coffee.jpg", workdir / "g.jpg")
    Directions(torch.randn(4, 528), "inception4d", "bvlc_googlenet", "pca").save("p.safetensors")
    runs = [["--guide", "g.jpg"], ["--direction", "p.safetensors:2"],
            ["--direction", "p.safetensors:3"], []]
    for extra in runs:
        rc, err = call(capsys, ["photo.jpg", *extra, *TINY], dream_main)
        assert rc == 0, err
    made = sorted(p.name for p in workdir.glob("*.png"))
    assert made == ["photo_inception4c.png", "photo_inception4c_guide-g.png",
                    "photo_inception4d_direction-p-2.png", "photo_inception4d_direction-p-3.png"]
    before = {p.name: p.read_bytes() for p in workdir.glob("*.png")}
    assert dream_main(["photo.jpg", *TINY[:-1]]) == 0  # not quiet: it says which name
    said = capsys.readouterr().out
    assert "photo_inception4c_2.png (photo_inception4c.png exists, so this name)" in said
    assert (workdir / "photo_inception4c_2.png").is_file()
    assert {p.name: p.read_bytes() for p in workdir.glob("*.png") if p.name in before} == before
