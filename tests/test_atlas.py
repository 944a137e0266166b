"""Activation atlases: a site of a layer's map with class views, renders that keep their records
and measure their faithfulness, a fixed-size sample whatever the folder, resumable jobs, any
model, clear messages for bad input, and a page that works in a browser."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dreamkit.cli import main
from tests.helpers import PHOTOS, call, requires_photos, requires_weights

pytest.importorskip("umap")
pytestmark = [requires_weights, requires_photos]

SMALL = ["--layer", "inception4c", "--grid", "4", "--positions", "16", "--size", "48",
         "--steps", "8", "--examples", "2", "--batch", "8", "--classes", "tench,hammerhead"]


@contextlib.contextmanager
def _threads_kept():
    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """The first 12 shared photos and an unreadable file."""
    folder = tmp_path_factory.mktemp("atlas") / "photos"
    folder.mkdir()
    for path in sorted(PHOTOS.iterdir())[:12]:
        shutil.copy(path, folder / path.name)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    return folder


@pytest.fixture(scope="module")
def site(photos) -> tuple[Path, str]:
    """(site, what the command printed)."""
    out = photos.parent / "site"
    printed = io.StringIO()
    with _threads_kept(), contextlib.redirect_stdout(printed):
        assert main(["atlas", *SMALL, "--images", str(photos), "-o", str(out)]) == 0
    return out, printed.getvalue()


def _figures(site: Path) -> dict:
    return json.loads((site / "atlas.json").read_text())


def test_a_site_has_every_part_and_its_figures(site):
    from dreamkit.directions import load_directions

    root, printed = site
    figures = _figures(root)
    layout = figures["layout"]
    assert (layout["photos"], layout["skipped"]) == (12, 1)
    assert 0 < layout["vectors"] <= 16 * 11  # one photo in ten held out
    assert 0.5 < layout["trustworthiness"] <= 1 and 0 < layout["trustworthiness_pca"] <= 1
    views = json.loads((root / "layout.json").read_text())["views"]
    assert list(figures["views"]) == list(views) == ["layer", "class0", "class4"]
    for view, cells in views.items():
        assert cells and all(c["count"] >= 3 for c in cells)
        assert len(load_directions(root / "directions" / f"{view}.safetensors",
                                   model="bvlc_googlenet", layer="inception4c").vectors) \
            == len(cells)
        assert {p.name for p in (root / "cells" / view).glob("c*.jpg")} == \
            {f"c{c['cell']}.jpg" for c in cells}
        assert (root / f"atlas-{view}.jpg").is_file()
        faith = figures["views"][view]["faithfulness"]
        assert faith["rendered"] == len(cells) and 0 <= faith["best_of_all"] <= 1
        shown = [c for c in cells if c["examples"]]
        assert shown and all((root / "cells" / view / f"e{c['cell']}_0.jpg").is_file()
                             for c in shown)
    whole = figures["views"]["layer"]
    assert whole["vectors"] <= layout["vectors"] and whole["weight"] == whole["vectors"]
    assert set(figures["seconds"]) >= {"collection", "layout", "renders", "examples"}
    assert abs(sum(figures["shares"].values()) - 1) < 0.01
    assert figures["memory"]["peak_rss_mb"] > 100
    assert "faithfulness" in printed and "trustworthiness" in printed


def test_a_render_keeps_its_record_and_reproduces(site, capsys):
    from dreamkit.records import read_record

    root, _ = site
    picture = sorted((root / "cells" / "class4").glob("c*.jpg"))[0]
    record = read_record(picture)
    target = record.recipe.target[0]
    assert (target.kind, target.layer, target.x, target.y) == ("direction", "inception4c", 1, 1)
    assert Path(target.file) == (root / "directions" / "class4.safetensors").resolve()
    assert main(["reproduce", str(picture), "-o", str(root.parent / "again.png")]) == 0
    assert "identical" in capsys.readouterr().out


def test_running_again_does_nothing_and_another_plan_is_refused(site, photos, capsys):
    root, _ = site
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*.jpg") if "cells" in p.parts}
    with _threads_kept():
        assert main(["atlas", *SMALL, "--images", str(photos), "-o", str(root)]) == 0
    assert ", 0 run now" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in before} == before
    rc, err = call(capsys, ["atlas", *SMALL, "--grid", "5", "--images", str(photos), "-o",
                            str(root)])
    assert rc == 2 and "holds another atlas" in err


def test_two_class_atlases_differ(site):
    """Each class view weighs the same vectors by their attribution to its own class: other
    cells, other directions in the cells both show."""
    from dreamkit.directions import load_directions

    root, _ = site
    views = json.loads((root / "layout.json").read_text())["views"]
    directions = {v: load_directions(root / "directions" / f"{v}.safetensors").vectors
                  for v in views}
    rows = {v: {c["cell"]: i for i, c in enumerate(cells)} for v, cells in views.items()}
    shared = sorted(rows["class0"].keys() & rows["class4"].keys())
    assert shared
    cosine = torch.nn.functional.cosine_similarity(
        directions["class0"][[rows["class0"][c] for c in shared]],
        directions["class4"][[rows["class4"][c] for c in shared]]).mean()
    assert cosine < 0.98
    found = [d for d in _figures(root)["class_differences"] if d["views"] == ["class0", "class4"]]
    assert found[0]["mean_cosine_shared"] == pytest.approx(float(cosine), abs=1e-5)
    weights = {v: {c["cell"]: c["weight"] for c in cells} for v, cells in views.items()}
    share = {v: torch.tensor([weights[v][c] for c in shared]) for v in ("class0", "class4")}
    share = {v: w / w.sum() for v, w in share.items()}
    assert (share["class0"] - share["class4"]).abs().sum() > 0.1  # other cells weigh most


def test_a_direction_at_a_position_reads_that_neuron_cosine_weighted():
    """The cells' objective: (a . v) * max(cos, 0.1) ** 4 at one position only."""
    from dreamkit.errors import DreamkitError
    from dreamkit.objectives import NEURON_COS_POWER, direction

    acts = torch.zeros(2, 3, 3, 3)
    acts[0, :, 1, 2] = torch.tensor([3.0, 4.0, 0.0])  # at x=2, y=1: |a| 5, a . v 3, cos 0.6
    acts[1, :, 0, 0] = torch.tensor([9.0, 0.0, 0.0])  # elsewhere: not seen
    v = torch.tensor([2.0, 0.0, 0.0])
    values = direction("a", v, x=2, y=1)({"a": acts})
    assert NEURON_COS_POWER == 4
    assert values.tolist() == pytest.approx([3 * 0.6**4, 0.0])
    assert direction("a", v, 0, x=2, y=1)({"a": acts}).tolist() == pytest.approx([3.0, 0.0])
    assert direction("a", v)({"a": acts}).tolist() == pytest.approx([3 / 9, 1.0])  # all
    with pytest.raises(DreamkitError, match="outside a's 3x3 grid"):
        direction("a", v, x=3, y=0)({"a": acts})


def test_the_sample_has_a_fixed_size_and_shards_merge_to_one_pass(googlenet, photos):
    from dreamkit.atlas.collect import Sample, Sketch, collect

    paths = sorted(photos.iterdir())
    whole, held, skipped = collect(googlenet, paths, "inception4c", positions=16,
                                   capacity=64, held=8, seed=3)
    assert (len(whole), len(held), skipped) == (64, 8, 1)  # 10 photos x 16 vectors: 160
    assert set(whole.photo.tolist()) <= {i for i in range(len(paths)) if i % 10 != 9}
    first, _, _ = collect(googlenet, paths[:5], "inception4c", positions=16, capacity=64,
                          held=8, seed=3)
    second, _, _ = collect(googlenet, paths[5:], "inception4c", positions=16, capacity=64,
                           held=8, seed=3, first=5)
    merged = first.joined([second], 64)
    for name in ("keys", "photo", "y", "x"):
        assert torch.equal(getattr(merged, name), getattr(whole, name)), name
    torch.testing.assert_close(merged.vectors, whole.vectors, rtol=1e-4, atol=1e-4)  # batches
    sketch, held_at_most = Sketch(100, 4, 0), 0
    for _ in range(50):
        rows = Sample(torch.rand(37, 4), torch.rand(37, dtype=torch.float64),
                      torch.zeros(37, dtype=torch.long), torch.zeros(37, dtype=torch.long),
                      torch.zeros(37, dtype=torch.long), torch.zeros(37, 0))
        sketch.add(rows)
        held_at_most = max(held_at_most, len(sketch.kept) + sum(map(len, sketch.waiting)))
    assert len(sketch.result()) == 100 and held_at_most < 2 * 100


@pytest.mark.slow
def test_memory_does_not_grow_with_the_folder(tmp_path):
    """Peak memory of the collection over 60 and over 600 photos with every position sampled
    (a fresh process each): all their vectors would take 24 MB and 240 MB."""
    import numpy as np
    from PIL import Image

    folder = tmp_path / "many"
    folder.mkdir()
    generator = np.random.default_rng(0)
    for i in range(600):
        Image.fromarray(generator.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(
            folder / f"p{i:04d}.png")
    code = ("import sys, resource; from pathlib import Path; import torch\n"
            "torch.set_num_threads(1)\n"
            "from dreamkit.models import load_model; from dreamkit.atlas.collect import collect\n"
            "net = load_model('bvlc_googlenet')\n"
            "paths = sorted(Path(sys.argv[1]).iterdir())[:int(sys.argv[2])]\n"
            "collect(net, paths, 'inception4c', positions=196, capacity=1000, held=100)\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    peaks = {}
    for count in (60, 600):
        done = subprocess.run([sys.executable, "-c", code, str(folder), str(count)],
                              capture_output=True, text=True, timeout=600,
                              env={**os.environ, "MALLOC_ARENA_MAX": "2"})
        assert done.returncode == 0, done.stderr[-2000:]
        peaks[count] = int(done.stdout.split()[-1]) / 1024  # MB
    assert peaks[600] < peaks[60] + 100, peaks


def test_a_wrapped_torchvision_model_makes_an_atlas(photos, tmp_path):
    """Any model: torchvision's ResNet-18 with random weights, wrapped generically."""
    torchvision = pytest.importorskip("torchvision")
    from dreamkit.atlas import atlas
    from dreamkit.models.wrapped import wrap
    from dreamkit.records import read_record
    from dreamkit.settings import AtlasSettings, RenderSettings

    torch.manual_seed(0)
    net = wrap(torchvision.models.resnet18(weights=None))
    made = atlas(net, photos, tmp_path / "site",
                 AtlasSettings(layer="layer3.1", grid=3, positions=8, examples=1,
                               classes="7"),
                 RenderSettings(size=48, steps=2))
    assert made.index.is_file() and made.cells["layer"] > 0 and made.cells["class7"] > 0
    picture = next((tmp_path / "site" / "cells" / "layer").glob("c*.jpg"))
    assert read_record(picture).recipe.model == "ResNet"
    assert made.figures["layout"]["channels"] == 256


@pytest.mark.parametrize(("argv", "words"), [
    (["--images", "{missing}"], "no such folder"),
    (["--classes", "tenhc"], "unknown ImageNet class 'tenhc'; did you mean 'tench'"),
    (["--grid", "1"], "grid (--grid) must be an integer from 2 to 64"),
    (["--grid", "65"], "grid (--grid) must be an integer from 2 to 64"),
    (["--layer", "fc"], "fc has no spatial positions"),
    (["--layer", "inceptoin4c"], "did you mean"),
    (["--dictionary", "{other}"], "is for layer inception3a, not inception4c"),
    (["-o", "{full}"], "is not empty and holds no atlas"),
])
def test_bad_input_is_one_line(argv, words, photos, tmp_path, capsys):
    from dreamkit.directions import Directions

    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    Directions(torch.rand(2, 256), "inception3a", "bvlc_googlenet", "pca").save(
        tmp_path / "other.safetensors")
    argv = [a.format(missing=tmp_path / "missing", full=tmp_path / "full",
                     other=tmp_path / "other.safetensors") for a in argv]
    given = {"--images": ["--images", str(photos)], "-o": ["-o", str(tmp_path / "site")]}
    extra = [part for flag, parts in given.items() if flag not in argv for part in parts]
    rc, err = call(capsys, ["atlas", "--layer", "inception4c", *argv, *extra])
    assert rc == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert (tmp_path / "full" / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "site" / "work").exists()


def test_without_umap_the_command_says_what_to_install(photos, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)  # `import umap` fails
    rc, err = call(capsys, ["atlas", "--images", str(photos), "-o", str(tmp_path / "site")])
    assert rc == 2 and "pip install 'dreamkit[atlas]'" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "site").exists()


def test_a_dictionary_and_a_microscope_join_the_page(site, photos, tmp_path, capsys):
    from dreamkit.directions import Directions

    root, _ = site
    Directions(torch.rand(8, 512), "inception4c", "bvlc_googlenet", "pca").save(
        tmp_path / "d.safetensors")
    pages = tmp_path / "micro" / "layers" / "inception4c"
    pages.mkdir(parents=True)
    (tmp_path / "micro" / "microscope.json").write_text("{}")
    for c in range(512):
        (pages / f"c{c}.html").write_text("")
    with _threads_kept():
        assert main(["atlas", *SMALL, "--images", str(photos), "-o", str(root), "--dictionary",
                     str(tmp_path / "d.safetensors"), "--microscope",
                     str(tmp_path / "micro")]) == 0
    assert ", 0 run now" in capsys.readouterr().out
    assert _figures(root)["dictionary"]["features"] == 8
    page = (root / "index.html").read_text()
    data = json.loads(page.split('id="atlas-data">')[1].split("</script>")[0])
    placed = data["dictionary"]["placed"]
    assert sum(map(len, placed.values())) == 8
    channel, _, link = data["views"][0]["cells"][0]["channels"][0]
    assert (root / link).resolve() == (pages / f"c{channel}.html").resolve()
    assert len(data["views"][0]["cells"][0]["features"]) == 6


@pytest.mark.slow  # two ranks and one process, each laying out its map: about a minute
def test_torchrun_makes_the_same_site_and_a_killed_run_resumes(photos, tmp_path):
    """Ranks share every phase's jobs and make the single process's pixels; a site missing a
    render makes only that render's job again."""
    import numpy as np
    from PIL import Image

    from tests.test_distributed import _free_port

    argv = ["atlas", *SMALL, "--batch", "4", "--images", str(photos), "--threads", "1", "-q"]
    with _threads_kept():
        assert main([*argv, "-o", str(tmp_path / "one")]) == 0
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
               "--master-addr", "127.0.0.1", "--master-port", str(_free_port()), "-m",
               "dreamkit", *argv, "-o", str(tmp_path / "two")]
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    one = {p.relative_to(tmp_path / "one"): p for p in (tmp_path / "one").rglob("*.jpg")}
    two = {p.relative_to(tmp_path / "two"): p for p in (tmp_path / "two").rglob("*.jpg")}
    assert one.keys() == two.keys() and len(one) > 20
    for name, path in one.items():
        assert np.array_equal(np.asarray(Image.open(path)), np.asarray(Image.open(two[name]))), \
            name
    victim = sorted((tmp_path / "one" / "cells" / "class4").glob("c*.jpg"))[-1]
    victim.unlink()
    kept = {p: p.stat().st_mtime_ns for p in (tmp_path / "one" / "cells").rglob("*.jpg")}
    with _threads_kept():
        assert main([*argv, "-o", str(tmp_path / "one")]) == 0
    redone = {p for p, t in kept.items() if p.stat().st_mtime_ns != t}
    assert victim.is_file() and redone and all(p.parent == victim.parent for p in redone)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow  # Chromium starts: a few seconds
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_the_page_opens_from_disk_and_a_click_shows_a_cell(site):
    """Acceptance 1: in headless Chromium (Playwright), the page opens from disk without an
    error or a broken picture; a click on a cell shows its render and its examples, in the
    whole-layer view and in a class view."""
    sync_api = pytest.importorskip("playwright.sync_api")
    root, _ = site
    figures = _figures(root)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"])
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning")
                    else None)
            page.on("requestfailed", lambda r: errors.append(f"failed: {r.url}"))
            page.goto((root / "index.html").as_uri())
            page.wait_for_load_state("load")
            for tab, view in (("whole layer", "layer"), ("class 4: hammerhead", "class4")):
                page.click(f"#tabs button:text-is('{tab}')")
                assert page.locator(".cell").count() == figures["views"][view]["cells"]
                page.wait_for_function("document.getElementById('map').naturalWidth > 0")
                page.click(".cell >> nth=0")
                page.wait_for_function("() => { const r = document.getElementById('render');"
                                       " return r.complete && r.naturalWidth > 0; }")
                assert page.get_attribute("#render", "src").startswith(f"cells/{view}/c")
                assert "vectors" in page.text_content("#count")
                examples = page.locator("#examples img")
                assert examples.count() >= 1
                page.wait_for_function("[...document.querySelectorAll('#examples img')]"
                                       ".every((i) => i.complete && i.naturalWidth > 0)")
                assert page.locator("#channels li").count() == 6
            assert errors == []
        finally:
            browser.close()
