"""Settings, targets and objectives have one home each: one message for a mistake wherever it
is made (dream, vis, zoom, a gallery config, a record), flat sums, an import graph with one
direction and small modules."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import torch

from dreamkit.errors import DreamkitError
from dreamkit.image_io import save_image
from dreamkit.objectives import Objective, channel, layer_norm
from dreamkit.records import Recipe, Record
from dreamkit.settings import DreamSettings, RenderSettings, ZoomSettings
from dreamkit.targets import Target
from tests.helpers import ROOT, call, small_png

CHANNEL = "channel 999 is out of range: inception4c has 512 channels (0 to 511)"
SIZE = "size (--size) must be an integer from 16 to 4096, not 5000"
STEPS = "steps (--steps) must be an integer from 1 to 10,000, not 0"


def _vis_record_png(folder: Path, **changes) -> Path:
    target = Target.of_channel("inception4c", 1)
    recipe = Recipe("vis", "bvlc_googlenet", (target,), RenderSettings(size=32, steps=1),
                    batch=((target,),))
    data = json.loads(Record(recipe, "a" * 64, {}).to_json())
    for key, value in changes.items():
        section, _, name = key.partition(".")
        if name:
            data[section][name] = value
        else:
            data[section] = value
    path = folder / "picture.png"
    save_image(torch.rand(3, 32, 32), path, metadata={"dreamkit": json.dumps(data)})
    return path


def _gallery_config(folder: Path, **fields) -> Path:
    path = folder / "g.json"
    path.write_text(json.dumps({"image": "small.png", "size": 64, "layer": "inception4c",
                                **fields}))
    return path


@pytest.mark.parametrize(("mistake", "message"), [("channel", CHANNEL), ("size", SIZE),
                                                  ("steps", STEPS)])
def test_one_message_from_every_door(mistake, message, workdir, capsys):
    """Acceptance 4: dream, vis, zoom, a gallery config and reproduce say the same line."""
    small_png(workdir, width=64, height=64)
    flag = {"channel": ["--channel", "999"], "size": ["--size", "5000"],
            "steps": ["--steps", "0"]}[mistake]
    vis_what = ["--channels", "999"] if mistake == "channel" else ["--channels", "1"]
    vis_flag = [] if mistake == "channel" else flag
    config = {"channel": {"channel": 999}, "size": {"kind": "render", "image": None,
                                                    "size": 5000},
              "steps": {"settings": {"steps": 0}}}[mistake]
    record = {"channel": {"target": [{"kind": "channel", "layer": "inception4c",
                                      "channel": 999}],
                          "batch": [[{"kind": "channel", "layer": "inception4c",
                                      "channel": 999}]]},
              "size": {"settings.size": 5000}, "steps": {"settings.steps": 0}}[mistake]
    runs = {
        "dream": ["dream", "small.png", "--layer", "inception4c", *flag],
        "vis": ["vis", "--layer", "inception4c", *vis_what, *vis_flag, "-o", "out"],
        "zoom": ["zoom", "small.png", "--layer", "inception4c", *flag],
        "gallery": ["gallery", str(_gallery_config(workdir, **config)), "-o", "out"],
        "reproduce": ["reproduce", str(_vis_record_png(workdir, **record))],
    }
    for name, argv in runs.items():
        rc, err = call(capsys, argv)
        assert rc == 2, (name, err)
        assert len(err.strip().splitlines()) == 1, (name, err)
        assert message in err, (name, err)
    assert sorted(p.name for p in workdir.iterdir()) == ["g.json", "picture.png", "small.png"]


def test_every_settings_field_has_bounds_help_and_a_flag():
    from dreamkit.cli import build_parser
    from dreamkit.commands.common import settings_from

    parser = build_parser()
    parsed = {DreamSettings: parser.parse_args(["dream", "x.jpg"]),
              RenderSettings: parser.parse_args(["vis", "--channels", "1", "-o", "x"])}
    for kind, args in parsed.items():
        assert settings_from(args, kind) == kind()  # no flag given: the fields' defaults
        for name, (_, bounds, text) in kind.spec().items():
            assert text and bounds.describe()
            assert getattr(args, name) is None, (kind.kind, name)
    lite = parser.parse_args(["dream", "x.jpg", "--model", "efficientnet_lite0", "--lr", "3"])
    made = settings_from(lite, DreamSettings, {"steps": 30, "lr": 2.0})
    assert (made.steps, made.lr) == (30, 3.0)  # the model's default, unless a flag says else
    off = parser.parse_args(["vis", "--channels", "1", "-o", "x", "--no-decorrelate"])
    assert settings_from(off, RenderSettings).decorrelate is False
    for kind in (DreamSettings, RenderSettings, ZoomSettings):
        assert kind.from_dict(kind().to_dict()) == kind()


def test_a_sum_of_hundreds_of_objectives_stays_flat():
    """`sum()` of a few hundred objectives nested that many closures (deep recursion)."""
    acts = {"inception4c": torch.rand(2, 512, 3, 3)}
    terms = [channel("inception4c", c) for c in range(512)]
    total = sum(terms)
    assert len(total.terms) == 512 and all(len(t.terms) == 1 for _, t in total.terms)
    expected = acts["inception4c"].mean(dim=(2, 3)).sum(1)
    torch.testing.assert_close(total(acts), expected)
    flat = Objective.sum(terms, [0.5] * 512)
    torch.testing.assert_close(flat(acts), expected / 2)
    mixed = 2 * (layer_norm("inception4c") - channel("inception4c", 3)) + 1.5
    assert [w for w, _ in mixed.terms] == [2.0, -2.0] and mixed.constant == 1.5
    manual = 2 * (layer_norm("inception4c")(acts) - channel("inception4c", 3)(acts)) + 1.5
    torch.testing.assert_close(mixed(acts), manual)
    with pytest.raises(DreamkitError, match="cannot be added"):
        channel("inception4c", [1, 2]) + channel("inception4c", [1, 2, 3])


def _module_imports(path: Path) -> set[str]:
    """The dreamkit modules `path` imports at its top level (not inside functions)."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(
                "dreamkit"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("dreamkit")}
    return found


def test_the_import_graph_has_one_direction_and_no_module_imports_the_facade():
    package = ROOT / "dreamkit"
    modules = {}
    for path in package.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path
        if name == "dreamkit":
            continue
        for node in ast.walk(ast.parse(path.read_text())):  # also imports inside functions
            if isinstance(node, ast.ImportFrom):
                assert node.module != "dreamkit", f"{name} imports the facade"
            if isinstance(node, ast.Import):
                assert "dreamkit" not in {a.name for a in node.names}, name
    graph = {name: {m for m in _module_imports(path) if m in modules and m != name}
             for name, path in modules.items()}
    state: dict[str, int] = {}

    def visit(name: str, trail: tuple[str, ...]) -> None:
        if state.get(name) == 2:
            return
        assert state.get(name) != 1, f"import cycle: {' -> '.join(trail + (name,))}"
        state[name] = 1
        for other in graph[name]:
            if not other.startswith(name + "."):  # a package importing its own parts
                visit(other, trail + (name,))
        state[name] = 2

    for name in graph:
        visit(name, ())


def test_modules_stay_small():
    sizes = {p.relative_to(ROOT): len(p.read_text().splitlines())
             for p in (ROOT / "dreamkit").rglob("*.py")}
    assert max(sizes.values()) <= 420, max(sizes.items(), key=lambda item: item[1])


FEATURES = ("dictionary", "microscope", "linearity", "gallery", "video", "atlas")  # jobs
# (front ends such as commands/ and studio/ call the jobs)


def test_feature_packages_never_import_each_other():
    """The jobs' packages are siblings: what they share lives below them (photos, plots,
    probing, records, remake), so none imports another, not even inside a function."""
    for feature in FEATURES:
        folder = ROOT / "dreamkit" / feature
        for path in folder.rglob("*.py") if folder.is_dir() else []:
            for node in ast.walk(ast.parse(path.read_text())):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                    [a.name for a in node.names] if isinstance(node, ast.Import) else []
                for name in names:
                    parts = name.split(".")
                    assert not (len(parts) > 1 and parts[0] == "dreamkit" and parts[1] in FEATURES
                                and parts[1] != feature), f"{path} imports {name}"


def test_the_scripts_import_no_cycle():
    """Scripts import each other only one way (imports inside functions count too)."""
    scripts = {p.stem: p for p in (ROOT / "scripts").glob("*.py")}
    graph = {name: {n.module for n in ast.walk(ast.parse(path.read_text()))
                    if isinstance(n, ast.ImportFrom) and n.module in scripts}
             | {a.name for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Import)
                for a in n.names if a.name in scripts}
             for name, path in scripts.items()}
    for name in graph:
        seen, todo = set(), list(graph[name])
        while todo:
            other = todo.pop()
            assert other != name, f"scripts/{name}.py imports itself through {seen}"
            if other not in seen:
                seen.add(other)
                todo += graph[other]
