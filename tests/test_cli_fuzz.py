"""Random argument combinations for every command: parsing ends in a namespace or SystemExit,
and running `dream` / `layers` exits 0 or 2 (one line, no traceback), never 1 (an internal error).

Model loading is stubbed with random weights and the dream capped at one step on a tiny image, so
the properties run fast; everything else (validation, image loading, saving) is the real code.
"""

from __future__ import annotations

import argparse
import importlib
import string
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

import dreamkit.commands.dream as dream_command
from dreamkit.cli import Parser, build_parser, dream_main, main
from dreamkit.image_io import load_image
from dreamkit.models import CATALOG, load_model, registry
from dreamkit.models.weights import find_weights, read_state

FUZZ = settings(max_examples=30, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

# What users type: numbers of every kind, names that exist, and junk (no "/": runs stay in tmp).
EDGE = ["0", "1", "2", "-1", "3", "0.5", "1.4", "-0", "1e309", "-1e309", "nan", "inf", "1e-320",
        str(2**63), str(2**64), "9" * 30, "", " ", "-", "--", "abc", "0x10", "1_000", "½", "٣"]
NAMES = ["bvlc_googlenet", "squeezenet1_1", "googlenet_", "inception4c", "inception_4c/output",
         "conv1", "fire7", "fc", "logits", "low", "mid", "high", "inceptoin4c", "auto", "cpu",
         "cuda", "fp32", "bf16", "fp16", "fp64", "out.png", "out.jpg", "out.txt", "out", ".", "..",
         "small.png", "missing.png"]
TEXT = st.text(string.ascii_letters + string.digits + "._-:, éß😀", max_size=12)
VALUE = st.one_of(st.sampled_from(EDGE), st.sampled_from(NAMES), st.integers(-3, 600).map(str),
                  st.floats().map(str), TEXT)
MODELS_USED = {"bvlc_googlenet", "squeezenet1_1"}  # others are slow to build, even at random


def _optionals(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.option_strings and a.dest not in ("help", "debug")]


@st.composite
def _argv(draw, parser: argparse.ArgumentParser, positional: st.SearchStrategy) -> list[str]:
    """A positional (mostly) and a few options of `parser`, each with a plausible value."""
    argv = [draw(positional)] if draw(st.integers(0, 9)) else []
    for action in draw(st.lists(st.sampled_from(_optionals(parser)), max_size=6)):
        argv.append(draw(st.sampled_from(action.option_strings)))
        if action.nargs == 0:
            continue
        choices = [str(c) for c in action.choices or ()]
        value = draw(st.sampled_from(choices) | VALUE if choices else VALUE)
        if action.dest == "model" and value not in MODELS_USED and value in CATALOG:
            value = "squeezenet1_1"
        argv.append(value)
    return argv


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Input files in an empty current folder; models with random weights (cached); dreams capped
    at one step. Weight files named by --weights are still looked up and read."""
    monkeypatch.chdir(tmp_path)
    y, x = np.mgrid[0:32, 0:40]  # one octave: the next would be under 32 pixels
    Image.fromarray(np.stack([x * 6, y * 7, x + y], -1).astype(np.uint8)).save("small.png")
    Path("folder.png").mkdir()
    Path("text.jpg").write_text("not an image\n")
    Path("cut.png").write_bytes(Path("small.png").read_bytes()[:200])
    nets = {}

    def fake_load_model(name, weights=None, *, device="cpu", random_weights=False):
        if weights is not None:
            read_state(find_weights(name, weights))
        if name not in nets:
            nets[name] = load_model(name, random_weights=True)
        return nets[name].to(device)

    dream_module = importlib.import_module("dreamkit.dream")  # the package exports `dream()`
    real_dream = dream_module.dream

    def capped_dream(net, image, objective, dream_settings, **kwargs):
        capped = replace(dream_settings, steps=1)
        return real_dream(net, image, objective, capped, **kwargs)

    monkeypatch.setattr(registry, "load_model", fake_load_model)
    monkeypatch.setattr(dream_module, "dream", capped_dream)
    return tmp_path


IMAGES = st.sampled_from(["small.png", "small.png", "small.png", "missing.png", "folder.png",
                          "text.jpg", "cut.png", "-", ""]) | TEXT


def _exit(entry, argv: list[str]) -> int:
    try:
        return entry(argv)
    except SystemExit as exc:  # argparse: usage errors, --help, --version
        return 0 if exc.code is None else exc.code


def _check_run(capsys, entry, argv: list[str]) -> None:
    rc = _exit(entry, argv)
    out, err = capsys.readouterr()
    event(f"exit {rc}")
    assert rc in (0, 2), f"{argv} -> exit {rc}\n{err}"
    assert "Traceback" not in err, f"{argv}\n{err}"
    if rc == 2:
        assert len(err.strip().splitlines()) == 1, f"{argv}\n{err}"
    elif out.strip().endswith((".png", ".jpg", ".jpeg", ".webp")):
        assert load_image(out.strip().splitlines()[-1]).shape[0] == 3


def _dream_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="dream")
    dream_command.add_arguments(parser)
    return parser


@FUZZ
@given(data=st.data())
def test_dream_random_arguments(data, workdir, capsys):
    _check_run(capsys, dream_main, data.draw(_argv(_dream_parser(), IMAGES)))


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@FUZZ
@given(data=st.data())
def test_dreamkit_random_arguments(data, workdir, capsys):
    """Every command's parser; `dream` and `layers` also run (the others are heavy)."""
    commands = _subparsers()
    name = data.draw(st.sampled_from(sorted(commands)) | TEXT, label="command")
    if name not in commands:
        _check_run(capsys, main, [name, *data.draw(st.lists(VALUE, max_size=3))])
        return
    positional = IMAGES if name == "dream" else VALUE
    argv = [name, *data.draw(_argv(commands[name], positional), label="argv")]
    if name in ("dream", "layers"):
        _check_run(capsys, main, argv)
    else:
        try:
            build_parser().parse_args(argv)
        except SystemExit as exc:
            assert exc.code in (0, 2, None)
        capsys.readouterr()


def test_the_command_list_shows_each_summary_whole(capsys):
    """`dreamkit --help` lists every command with its docstring's whole first paragraph (the
    microscope's wrapped onto a second line was cut at a comma)."""
    from dreamkit.commands import COMMANDS, name_of

    with pytest.raises(SystemExit):
        main(["--help"])
    listing = "".join(capsys.readouterr().out.split())  # argparse wraps at its own width
    for command in COMMANDS:
        first = " ".join(command.__doc__.strip().split("\n\n")[0].split()).rstrip(".")
        assert "".join(first[1:].split()) in listing, name_of(command)
        assert not first.endswith(","), name_of(command)
