"""The microscope: a static site of channels with visualizations, dataset examples and inputs;
examples that are the folder's true maxima in bounded memory; clear messages for bad input."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dreamkit.capture import capture
from dreamkit.cli import main
from dreamkit.examples import TopK, stream
from dreamkit.photos import view
from tests.helpers import PHOTOS, call, requires_photos, requires_weights

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SMALL = ["--channels", "0-2", "--size", "48", "--steps", "4", "--variants", "2", "--examples",
         "3", "--batch", "6"]


def _photos(folder: Path, count: int, size: int = 48) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    generator = np.random.default_rng(0)
    for i in range(count):
        pixels = generator.integers(0, 256, (size, size + 8 * (i % 3), 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"p{i:04d}.png")
    return folder


def test_top_k_keeps_the_best_and_breaks_ties_by_photo():
    top = TopK.empty([5, 9], 3)
    top.add(torch.tensor([[1.0, 3.0], [0.0, 0.0]]), torch.tensor([[4, 1], [4, 1]]),
            torch.zeros(2, 2, dtype=torch.long), torch.zeros(2, 2, dtype=torch.long))
    top.add(torch.tensor([[2.0, 3.0], [0.0, 5.0]]), torch.tensor([[2, 0], [2, 0]]),
            torch.ones(2, 2, dtype=torch.long), torch.ones(2, 2, dtype=torch.long))
    assert top.photos.tolist() == [[0, 1, 2], [0, 1, 2]]  # 3.0 from 0 and 1; then 2.0
    assert top.values.tolist() == [[3.0, 3.0, 2.0], [5.0, 0.0, 0.0]]
    again = TopK.from_dict(json.loads(json.dumps(top.to_dict())))
    assert torch.equal(again.values, top.values) and torch.equal(again.photos, top.photos)


@requires_weights
def test_examples_are_the_folders_true_maxima(tmp_path, googlenet):
    """Acceptance 2: for every channel, the best example's activation equals the channel's
    maximum over every position of every photo (brute force), in one pass or in shards."""
    folder = _photos(tmp_path / "photos", 20)
    paths = sorted(folder.iterdir())
    layers = {"inception3a": [0, 7, 100], "inception4c": [3, 511]}
    found, skipped = stream(googlenet, paths, layers, k=4, batch=6, workers=0)
    assert skipped == 0
    views = torch.stack([view(load) for load in map(_load, paths)])
    with torch.no_grad():
        acts = capture(googlenet, views, list(layers))
    for layer, channels in layers.items():
        for row, c in enumerate(channels):
            per_photo = acts[layer][:, c].flatten(1).max(1).values.double()
            best = per_photo.topk(4).values
            torch.testing.assert_close(found[layer].values[row], best, rtol=1e-5, atol=1e-4)
            assert per_photo[found[layer].photos[row, 0]] == per_photo.max()
    first, _ = stream(googlenet, paths[:9], layers, k=4, batch=4, workers=0)
    second, _ = stream(googlenet, paths[9:], layers, k=4, batch=5, workers=0, first=9)
    for layer in layers:
        first[layer].merge(second[layer])
        assert torch.equal(first[layer].photos, found[layer].photos)


def _load(path: Path) -> torch.Tensor:
    from dreamkit.image_io import load_image

    return load_image(path)


@requires_weights
@pytest.mark.slow
def test_the_streaming_pass_memory_does_not_grow_with_the_folder(tmp_path):
    """Peak memory of the examples pass over 100 and over 1000 photos (a fresh process each).

    Keeping any per-photo tensor (a 224 px view is 0.6 MB, inception3a's activations 0.8 MB)
    would add 500 MB or more; the allocator's own noise is a few tens of MB."""
    folder = _photos(tmp_path / "many", 1000, size=24)
    code = ("import sys, resource; from pathlib import Path; import torch\n"
            "torch.set_num_threads(1)\n"
            "from dreamkit.models import load_model; from dreamkit.examples import"
            " stream\n"
            "net = load_model('bvlc_googlenet')\n"
            "paths = sorted(Path(sys.argv[1]).iterdir())[:int(sys.argv[2])]\n"
            "found, skipped = stream(net, paths, {'inception3a': list(range(256))}, 8,"
            " batch=16, workers=1)\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    peaks = {}
    for count in (100, 1000):
        done = subprocess.run([sys.executable, "-c", code, str(folder), str(count)],
                              capture_output=True, text=True, timeout=600,
                              env={**os.environ, "MALLOC_ARENA_MAX": "2"})
        assert done.returncode == 0, done.stderr[-2000:]
        peaks[count] = int(done.stdout.split()[-1]) / 1024  # MB
    assert peaks[1000] < peaks[100] + 120, peaks


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    if not (Path(__file__).parents[2] / "shared" / "weights").exists():
        from tests.helpers import weights_dir

        if weights_dir() is None:
            pytest.skip("set DREAMKIT_WEIGHTS")
    root = tmp_path_factory.mktemp("microscope")
    photos = _photos(root / "photos", 10)
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    out = root / "site"
    threads = torch.get_num_threads()
    try:
        assert main(["microscope", "--layers", "inception3a,inception4c", *SMALL, "--images",
                     str(photos), "-o", str(out), "-q"]) == 0
    finally:
        torch.set_num_threads(threads)
    return out


@requires_weights
def test_a_site_has_every_part_and_every_picture_keeps_its_record(site, capsys):
    layer = site / "layers" / "inception4c"
    for c in range(3):
        for name in (f"c{c}.jpg", f"t{c}.jpg", f"n{c}.jpg", f"v{c}_0.jpg", f"v{c}_1.jpg",
                     f"e{c}_0.jpg", f"c{c}.html"):
            assert (layer / name).is_file(), name
    circuits = json.loads((layer / "circuits.json").read_text())
    inputs = circuits["channels"]["0"]
    assert circuits["from"] == "inception3a" and inputs["all"]["positive"]
    assert {j for j, _ in inputs["site"]["positive"] + inputs["site"]["negative"]} <= {0, 1, 2}
    examples = json.loads((layer / "examples.json").read_text())
    assert len(examples["channels"]["1"]) == 3 and examples["field"][0] < 224
    assert "1 unreadable photos skipped" in (site / "index.html").read_text()
    assert main(["reproduce", str(layer / "v1_1.jpg"), "-o", str(site.parent / "again.png")]) \
        == 0
    assert "identical" in capsys.readouterr().out
    page = (layer / "c1.html").read_text()
    assert 'href="../inception3a/c' in page  # inputs link to the previous layer's channels
    assert "Strongest inputs" not in (site / "layers" / "inception3a" / "c1.html").read_text()


@requires_weights
def test_running_again_does_nothing_and_another_plan_is_refused(site, capsys):
    assert main(["microscope", "--layers", "inception3a,inception4c", *SMALL, "--images",
                 str(site.parent / "photos"), "-o", str(site)]) == 0
    assert ", 0 run now" in capsys.readouterr().out
    before = {p: p.stat().st_mtime_ns for p in site.rglob("*") if p.is_file()}
    rc, err = call(capsys, ["microscope", "--layers", "inception3b", *SMALL, "-o", str(site)])
    assert rc == 2 and "holds another microscope site" in err
    assert {p: p.stat().st_mtime_ns for p in site.rglob("*") if p.is_file()} == before


@requires_weights
@pytest.mark.parametrize(("argv", "words"), [
    (["--images", "{empty}"], "no image files"),
    (["--layers", "inceptoin4c"], "did you mean"),
    (["--layers", ",,,"], "names no layer"),
    (["--examples", "0"], "examples (--examples) must be"),
    (["--channels", "0-9999"], "out of range"),
    (["-o", "{full}"], "is not empty and holds no microscope site"),
])
def test_bad_input_is_one_line(argv, words, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    argv = [a.format(empty=tmp_path / "empty", full=tmp_path / "full") for a in argv]
    output = [] if "-o" in argv else ["-o", str(tmp_path / "site")]
    rc, err = call(capsys, ["microscope", "--layers", "inception3a", *SMALL, *output, *argv])
    assert rc == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert (tmp_path / "full" / "notes.txt").read_text() == "mine"


@requires_weights
def test_a_layer_without_positions_gets_visualizations_only(tmp_path):
    out = tmp_path / "site"
    assert main(["microscope", "--layers", "fc", "--channels", "1,2", "--size", "48", "--steps",
                 "2", "--variants", "0", "--images", str(_photos(tmp_path / "p", 3)), "-o",
                 str(out), "-q"]) == 0
    files = {p.name for p in (out / "layers" / "fc").iterdir()}
    assert {"c1.jpg", "c2.jpg", "c1.html"} <= files
    assert not any(name.startswith(("e", "n")) for name in files)


# --------------------------------------------------------------------------- in a browser

PROBE = """<script>
window.__errors = [];
window.addEventListener("error", (e) => window.__errors.push(
  e.message || "failed to load " + (e.target.src || e.target.href)), true);
for (const level of ["error", "warn"]) {
  const original = console[level];
  console[level] = (...args) => { window.__errors.push(args.join(" ")); original(...args); };
}
window.addEventListener("load", () => {
  const images = [...document.images];
  const seen = JSON.parse(window.name || "[]");
  seen.push({page: location.pathname.split("/").slice(-2).join("/"), errors: window.__errors,
             images: images.length,
             broken: images.filter((i) => i.complete && i.naturalWidth === 0).length,
             sections: [...document.querySelectorAll("h2")].map((h) => h.textContent),
             links: document.querySelectorAll("a").length});
  window.name = JSON.stringify(seen);
  const links = [...document.querySelectorAll("a.layer, a.card")];
  const next = links[links.length - 1];
  if (next) { next.click(); return; }
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = window.name;
  document.body.appendChild(out);
});
</script>"""


@requires_weights
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_click_from_the_index_to_a_layer_to_a_channel(site, tmp_path):
    """Acceptance 1: in headless Chromium, the index leads to a layer page, its first channel
    leads to the channel's page, which shows the visualization, examples and inputs; no page
    logs an error or has a broken image."""
    copy = tmp_path / "site"
    shutil.copytree(site, copy)
    for page in copy.rglob("*.html"):
        page.write_text(page.read_text().replace("<head>", "<head>" + PROBE, 1))
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync",
               f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=15000",
               "--dump-dom", (copy / "index.html").as_uri()]
    dom = subprocess.run(command, capture_output=True, text=True, timeout=120).stdout
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    pages = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&")
                       .replace("&lt;", "<").replace("&gt;", ">"))
    assert [p["page"] for p in pages] == ["site/index.html", "inception4c/index.html",
                                          "inception4c/c2.html"]
    for page in pages:
        assert page["errors"] == [] and page["broken"] == 0, page
    assert pages[1]["images"] == 6  # three thumbnails and three best examples
    assert pages[2]["sections"] == ["Feature visualization", "Dataset examples",
                                    "Strongest inputs"]
    assert pages[2]["images"] >= 1 + 1 + 2 + 3  # vis, neuron, variants, examples, inputs


@requires_weights
@requires_photos
@pytest.mark.slow
def test_torchrun_makes_the_same_site_and_resumes(tmp_path):
    """Acceptance 3: two ranks make the single process's pixels; a killed run resumes."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in sorted(PHOTOS.iterdir())[:12]:
        shutil.copy(path, photos / path.name)
    argv = ["microscope", "--layers", "inception3a,inception4c", *SMALL, "--images", str(photos)]
    threads = torch.get_num_threads()
    try:
        assert main([*argv, "-o", str(tmp_path / "one"), "-q"]) == 0
    finally:
        torch.set_num_threads(threads)
    from tests.test_distributed import _free_port

    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
               "--master-addr", "127.0.0.1", "--master-port", str(_free_port()), "-m",
               "dreamkit", *argv, "-o", str(tmp_path / "two"), "-q"]
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    one = {p.relative_to(tmp_path / "one"): p for p in (tmp_path / "one").rglob("*.jpg")}
    two = {p.relative_to(tmp_path / "two"): p for p in (tmp_path / "two").rglob("*.jpg")}
    assert one.keys() == two.keys() and len(one) > 30
    for name, path in one.items():
        assert np.array_equal(np.asarray(Image.open(path)), np.asarray(Image.open(two[name]))), \
            name
    for page in ("index.html", "layers/inception4c/c1.html"):
        assert (tmp_path / "one" / page).read_text() == (tmp_path / "two" / page).read_text()
    victim = tmp_path / "one" / "layers" / "inception4c" / "v2_1.jpg"
    victim.unlink()
    kept = {p: p.stat().st_mtime_ns for p in (tmp_path / "one").rglob("*.jpg")}
    threads = torch.get_num_threads()
    try:
        assert main([*argv, "-o", str(tmp_path / "one")]) == 0
    finally:
        torch.set_num_threads(threads)
    assert victim.is_file()
    redone = [p for p, t in kept.items() if p.stat().st_mtime_ns != t]
    assert all(p.name.startswith("v") for p in redone)  # only that variants job ran again
