"""A dictionary browsed like channels: `dreamkit microscope --dictionary` makes a site of the
features most often active on the photos, whose examples and heat maps are the features'
codes, whose logit effects have the right sign and size, which resumes, reproduces, shares
jobs between torchrun ranks and opens in Chromium without errors; bad dictionaries are one
line."""

from __future__ import annotations

import json
import os
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
from dreamkit.directions import Directions, load_directions
from dreamkit.examples import crop_box
from dreamkit.image_io import load_image
from dreamkit.photos import view
from tests.helpers import PHOTOS, assert_user_error, call, requires_photos, requires_weights

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SMALL = ["--size", "48", "--steps", "4", "--variants", "1", "--examples", "3", "--batch", "8"]
FEATURES = 24


def _dictionary(path: Path, atoms: torch.Tensor, layer: str, *, model: str = "bvlc_googlenet",
                encoder: torch.Tensor | None = None, bias: torch.Tensor | None = None,
                k: int = 4, method: str = "dictionary") -> Path:
    """A dictionary file made by hand (tied encoder unless given, centre 0, scale 1)."""
    count, channels = atoms.shape
    extras = {"encoder": atoms.clone() if encoder is None else encoder,
              "encoder_bias": torch.zeros(count) if bias is None else bias,
              "center": torch.zeros(channels), "scale": torch.ones(1)}
    return Directions(atoms, layer, model, method, {"k": k},
                      extras if method == "dictionary" else {}).save(path)


def _random_atoms(count: int, channels: int) -> torch.Tensor:
    atoms = torch.randn(count, channels, generator=torch.Generator().manual_seed(0))
    return atoms / atoms.norm(dim=1, keepdim=True)


def _copy_photos(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True)
    for path in sorted(PHOTOS.iterdir())[:count]:
        shutil.copy(path, folder / path.name)
    return folder


def _run(argv: list[str]) -> int:
    threads = torch.get_num_threads()
    try:
        return main(argv)
    finally:
        torch.set_num_threads(threads)


def test_feature_codes_are_the_codecs_at_every_position():
    """`Directions.codes` (what the microscope and linearity use) is the dictionary's own
    encoder, vector by vector and position by position."""
    from dreamkit.dictionary import codec_of

    atoms = _random_atoms(12, 8)
    extras = {"encoder": torch.randn(12, 8), "encoder_bias": torch.randn(12),
              "center": torch.randn(8), "scale": torch.tensor([2.5])}
    saved = Directions(atoms, "conv1", "m", "dictionary", {"k": 3}, extras)
    maps = torch.randn(2, 8, 3, 5)
    codes = saved.codes(maps)
    assert codes.shape == (2, 12, 3, 5)
    vectors = maps.movedim(1, -1).reshape(-1, 8)
    expected = codec_of(saved).encode(vectors).view(2, 3, 5, 12).movedim(-1, 1)
    assert torch.equal(codes, expected) and torch.equal(saved.codes(vectors),
                                                        codec_of(saved).encode(vectors))
    assert ((codes > 0).sum(1) <= 3).all()


def test_activity_merged_from_shards_is_the_activity_of_the_whole():
    """Shards of the photos tallied apart, written as JSON and merged give the same counts,
    sums and histograms as one pass; each histogram holds every active position."""
    from dreamkit.microscope.features import Activity

    codes = torch.relu(torch.randn(6, 5, 3, 4, generator=torch.Generator().manual_seed(2)))
    codes[:, 4] = 0  # a dead feature
    whole, merged = Activity(5), Activity(5)
    whole.observe(codes)
    for part in (codes[:2], codes[2:]):
        shard = Activity(5)
        shard.observe(part)
        merged.merge(Activity.from_dict(json.loads(json.dumps(shard.to_dict()))))
    assert merged.positions == whole.positions == 6 * 3 * 4
    assert torch.equal(merged.active, (codes > 0).sum((0, 2, 3)))
    assert torch.equal(merged.counts, whole.counts) and torch.equal(merged.active, whole.active)
    torch.testing.assert_close(merged.total, codes.double().sum((0, 2, 3)))
    assert torch.equal(merged.counts.sum(1), merged.active)
    summary = merged.summary([10, 11, 12, 13, 14])
    assert summary["14"]["frequency"] == 0 and summary["14"]["mean"] == 0


def test_top_k_select_keeps_the_rows_of_the_channels_asked_for():
    from dreamkit.examples import TopK

    top = TopK.empty([3, 5, 9], 2)
    top.add(torch.tensor([[1.0], [2.0], [3.0]]), torch.tensor([[0], [1], [2]]),
            torch.zeros(3, 1, dtype=torch.long), torch.zeros(3, 1, dtype=torch.long))
    picked = top.select([9, 3])
    assert picked.channels == [9, 3] and picked.values[:, 0].tolist() == [3.0, 1.0]
    assert picked.photos[:, 0].tolist() == [2, 0]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from tests.helpers import weights_dir

    if weights_dir() is None or not PHOTOS.is_dir():
        pytest.skip("set DREAMKIT_WEIGHTS and DREAMKIT_PHOTOS")
    root = tmp_path_factory.mktemp("dictionary_site")
    path = _dictionary(root / "d.safetensors", _random_atoms(FEATURES, 512), "inception4c")
    photos = _copy_photos(root / "photos", 10)
    assert _run(["microscope", "--dictionary", str(path), "--images", str(photos),
                 "--features", "3", *SMALL, "-o", str(root / "site"), "-q"]) == 0
    return root


@requires_weights
@requires_photos
def test_the_features_shown_are_the_most_active_and_their_examples_are_their_codes(site,
                                                                                  googlenet):
    """The three features most often active on the photos are shown; each one's examples are
    its largest codes over the photos (brute force), its frequency the share of positions."""
    layer = site / "site" / "layers" / "inception4c-features"
    saved = load_directions(site / "d.safetensors")
    paths = sorted((site / "photos").iterdir())
    with torch.no_grad():
        acts = capture(googlenet, torch.stack([view(load_image(p)) for p in paths]),
                       ["inception4c"])["inception4c"]
    codes = saved.codes(acts)  # (photos, K, H, W)
    frequency = (codes > 0).float().mean((0, 2, 3))
    top = torch.argsort(-frequency, stable=True)[:3].tolist()
    effects = json.loads((layer / "effects.json").read_text())
    assert list(effects["features"]) == [str(c) for c in top]
    found = json.loads((layer / "examples.json").read_text())
    examples, field = found["channels"], found["field"]
    for c in top:
        assert effects["features"][str(c)]["frequency"] == pytest.approx(float(frequency[c]))
        per_photo = codes[:, c].flatten(1).max(1).values
        best = per_photo.topk(3)
        shown = examples[str(c)]
        torch.testing.assert_close(torch.tensor([e["value"] for e in shown]), best.values,
                                   rtol=1e-4, atol=1e-4)
        assert Path(shown[0]["photo"]).name == paths[int(best.indices[0])].name
        code = codes[int(best.indices[0]), c]  # the crop is centred on the code's maximum
        y, x = divmod(int(code.argmax()), code.shape[1])
        assert shown[0]["box"] == list(crop_box(y, x, tuple(code.shape), tuple(field)))
        assert (layer / f"c{c}.jpg").is_file() and (layer / f"e{c}_2.jpg").is_file()
        assert not (layer / f"n{c}.jpg").exists()  # no centre neuron for a feature
        page = (layer / f"c{c}.html").read_text()
        assert "Logit effects" in page and "<svg" in page and f"feature {c}" in page
    index = (site / "site" / "index.html").read_text()
    assert index.index(f'c{top[0]}.html"') < index.index(f'c{top[2]}.html"')
    assert f"{float(frequency[top[0]]):.2%}" in index


@requires_weights
@requires_photos
def test_a_feature_picture_reproduces_and_running_again_does_nothing(site, capsys):
    layer = site / "site" / "layers" / "inception4c-features"
    feature = next(iter(json.loads((layer / "effects.json").read_text())["features"]))
    picture = layer / f"v{feature}_0.jpg"
    assert _run(["reproduce", str(picture), "-o", str(site / "again.png")]) == 0
    assert "identical" in capsys.readouterr().out
    assert _run(["microscope", "--dictionary", str(site / "d.safetensors"), "--images",
                 str(site / "photos"), "--features", "3", *SMALL, "-o",
                 str(site / "site")]) == 0
    assert ", 0 run now" in capsys.readouterr().out


@requires_weights
@requires_photos
def test_logit_effects_have_the_sign_and_size_of_the_classifier(tmp_path, googlenet):
    """At inception5b only a global mean pool and the classifier follow, so adding a vector v
    at every position changes the logits by exactly W v. Feature 0 is class 281's weight row
    (unit norm), code 1 everywhere; feature 1 is its opposite, code 2 everywhere."""
    weight = googlenet.stages["fc"].fc.weight.detach().float()
    row = weight[281] / weight[281].norm()
    atoms = torch.stack([row, -row])
    path = _dictionary(tmp_path / "d.safetensors", atoms, "inception5b",
                       encoder=torch.zeros(2, 1024), bias=torch.tensor([1.0, 2.0]), k=2)
    out = tmp_path / "site"
    assert _run(["microscope", "--dictionary", str(path), "--channels", "0,1", "--images",
                 str(_copy_photos(tmp_path / "photos", 3)), "--size", "48", "--steps", "2",
                 "--variants", "0", "--examples", "1", "-o", str(out), "-q"]) == 0
    found = json.loads((out / "layers" / "inception5b-features" / "effects.json").read_text())
    up, down = found["features"]["0"], found["features"]["1"]
    assert up["frequency"] == 1 and up["strength"] == pytest.approx(1.0)
    assert down["strength"] == pytest.approx(2.0)
    expected = weight @ row
    order = torch.argsort(expected, descending=True)[:5].tolist()
    from dreamkit.imagenet import class_names

    names = class_names()
    assert [name for name, _ in up["up"]] == [names[i] for i in order]
    assert names[281] in [name for name, _ in up["up"]]
    torch.testing.assert_close(torch.tensor([v for _, v in up["up"]]), expected[order],
                               rtol=1e-3, atol=1e-3)
    assert [name for name, _ in down["down"]] == [names[i] for i in order]
    torch.testing.assert_close(torch.tensor([v for _, v in down["down"]]),
                               -2 * expected[order], rtol=1e-3, atol=1e-3)


@requires_weights
def test_bad_dictionaries_are_one_line(tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(photos / "p.png")
    atoms = _random_atoms(4, 512)
    good = _dictionary(tmp_path / "good.safetensors", atoms, "inception4c")
    images = ["--images", str(photos)]
    cases = [
        (_dictionary(tmp_path / "other.safetensors", atoms, "inception4c",
                     model="squeezenet1_1"), images, "fitted on model squeezenet1_1"),
        (_dictionary(tmp_path / "pca.safetensors", atoms, "inception4c", method="pca"), images,
         "has no encoder"),
        (good, [*images, "--layers", "inception3a"], "the dictionary is for inception4c"),
        (good, [*images, "--channels", "0-9"], "out of range"),
        (good, [], "give --images"),
    ]
    for path, extra, words in cases:
        rc, err = call(capsys, ["microscope", "--dictionary", str(path), *extra, "-o",
                                str(tmp_path / "site")])
        assert_user_error(rc, err, words)
    assert not (tmp_path / "site").exists()


@requires_weights
@requires_photos
@pytest.mark.slow  # Chromium: a few seconds
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_the_site_opens_in_chromium_without_errors(site):
    """Acceptance 2: the index lists the features; a click opens a feature's page, which shows
    its visualization, examples, logit effects and histogram; no page logs an error or has a
    broken image."""
    sync_api = pytest.importorskip("playwright.sync_api")
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
            seen = []
            page.goto((site / "site" / "index.html").as_uri())
            assert page.locator("a.feature").count() == 3
            seen.append(_broken(page))
            page.locator("a.feature").first.click()
            page.wait_for_load_state("load")
            sections = page.locator("h2").all_text_contents()
            seen.append(_broken(page))
            page.goto((site / "site" / "layers" / "inception4c-features" / "index.html").as_uri())
            seen.append(_broken(page))
        finally:
            browser.close()
    assert sections == ["Feature visualization", "Dataset examples", "Logit effects",
                        "Activation histogram"]
    assert errors == [] and seen == [0, 0, 0], (errors, seen)


def _broken(page) -> int:
    page.wait_for_function("[...document.images].every((i) => i.complete)")
    return page.evaluate("[...document.images].filter((i) => i.naturalWidth === 0).length")


@requires_weights
@requires_photos
@pytest.mark.slow  # two ranks and one process: about a minute on 2 cores
def test_torchrun_ranks_make_the_same_dictionary_site(site, tmp_path):
    argv = ["microscope", "--dictionary", str(site / "d.safetensors"), "--images",
            str(site / "photos"), "--features", "3", *SMALL]
    from tests.test_distributed import _free_port

    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
               "--master-addr", "127.0.0.1", "--master-port", str(_free_port()), "-m",
               "dreamkit", *argv, "-o", str(tmp_path / "two"), "-q"]
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = site / "site", tmp_path / "two"
    pictures = sorted(p.relative_to(one) for p in one.rglob("*.jpg"))
    assert pictures == sorted(p.relative_to(two) for p in two.rglob("*.jpg"))
    for name in pictures:
        assert np.array_equal(np.asarray(Image.open(one / name)),
                              np.asarray(Image.open(two / name))), name
    for name in ("index.html", "layers/inception4c-features/effects.json"):
        assert (one / name).read_text() == (two / name).read_text()
