"""A 4 layers x 2 images gallery, opened from disk in headless Chromium: every tile shows, no
broken image, no console error, a click shows a tile large with its settings."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dreamkit.cli import main
from tests.helpers import IMAGES, requires_weights

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    requires_weights,
    pytest.mark.slow,  # a gallery built and Chromium started twice: about 7 s
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed"),
]

# Injected first into a copy of the page: collects script and console errors and failed loads,
# then on load reports the images, the broken ones, and what a click on the first tile shows.
PROBE = """<script>
window.__errors = [];
window.addEventListener("error", (e) => window.__errors.push(
  e.message || "failed to load " + (e.target.src || e.target.href)), true);
window.addEventListener("unhandledrejection", (e) => window.__errors.push(String(e.reason)));
for (const level of ["error", "warn"]) {
  const original = console[level];
  console[level] = (...args) => { window.__errors.push(args.join(" ")); original(...args); };
}
window.addEventListener("load", () => {
  const tiles = [...document.querySelectorAll("a.tile img")];
  const broken = tiles.filter((i) => !i.complete || i.naturalWidth === 0)
                      .map((i) => i.getAttribute("src"));
  document.querySelector("a.tile").click();
  const report = {
    tiles: tiles.length, broken, errors: window.__errors,
    dialog: document.getElementById("view").open,
    big: document.getElementById("view-img").getAttribute("src"),
    settings: document.getElementById("view-settings").textContent,
  };
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify(report);
  document.body.appendChild(out);
});
</script>"""


def _chromium(profile: Path, *args: str) -> subprocess.CompletedProcess:
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
               "--virtual-time-budget=5000", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def _probe(page: Path, profile: Path) -> dict:
    probed = page.with_name("probe.html")
    probed.write_text(page.read_text().replace("<head>", "<head>" + PROBE, 1))
    dom = _chromium(profile, "--dump-dom", probed.as_uri()).stdout
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&")
                      .replace("&lt;", "<").replace("&gt;", ">"))


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    out = tmp_path_factory.mktemp("browser") / "out"
    config = out.parent / "grid.toml"
    config.write_text(f"""
title = "4 layers x 2 images"
size = 64
[settings]
octaves = 1
steps = 2
[rows]
axis = "layer"
values = ["inception3a", "inception3b", "inception4a", "inception4c"]
[columns]
axis = "image"
values = ["{IMAGES / 'chelsea.jpg'}", "{IMAGES / 'astronaut.jpg'}"]
""")
    threads = torch.get_num_threads()
    try:
        assert main(["gallery", str(config), "-o", str(out), "-q"]) == 0
    finally:
        torch.set_num_threads(threads)
    return out


def test_page_shows_every_tile_without_errors(gallery, tmp_path):
    report = _probe(gallery / "index.html", tmp_path / "profile")
    assert report["tiles"] == 8 and report["broken"] == [] and report["errors"] == []
    assert report["dialog"] and report["big"].startswith("tiles/")
    assert '"layer": "inception3a"' in report["settings"]  # the clicked tile's settings

    shot = tmp_path / "shot.png"
    _chromium(tmp_path / "profile", f"--screenshot={shot}", "--window-size=900,1100",
              "--hide-scrollbars", (gallery / "index.html").as_uri())
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert pixels.std() > 20  # not blank
    colourful = (pixels.max(axis=2) - pixels.min(axis=2)) > 40  # the tiles, not text or page
    assert colourful.mean() > 0.03


def test_the_probe_catches_a_broken_image(gallery, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(gallery, broken)
    victim = sorted((broken / "tiles").glob("*.png"))[3]
    victim.write_bytes(victim.read_bytes()[:200])  # a truncated PNG
    (sorted((broken / "tiles").glob("*.png"))[5]).unlink()  # and a missing one
    report = _probe(broken / "index.html", tmp_path / "profile")
    assert len(report["broken"]) == 2 and f"tiles/{victim.name}" in report["broken"]
    assert report["errors"]  # the failed loads are reported as errors too
