"""Screenshots of dreamkit studio for the README and docs (`gallery/studio/`), taken with the
browser tests' setup: the studio served on a free port of 127.0.0.1, Debian's headless Chromium
driven by Playwright. Two dreams of the sample photo (the whole of inception3a, then channel 2
picked from the grid) side by side, and the picture refreshing during a longer dream.

  DREAMKIT_WEIGHTS=../shared/weights .venv/bin/python scripts/studio_screenshots.py

About a minute on 2 CPU cores; needs `pip install -e '.[studio]'` and chromium.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]


def serve(app):
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{sock.getsockname()[1]}"


def dream(page, settings: dict, results: int) -> None:
    for name, value in settings.items():
        page.fill(f"#s-{name}", str(value))
    page.click("#dream")
    page.wait_for_function(f"document.querySelectorAll('#gallery .result').length === {results}",
                           timeout=180_000)


def main() -> None:
    from playwright.sync_api import sync_playwright

    from dreamkit.studio.app import create_app
    from dreamkit.studio.config import StudioConfig

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "gallery" / "studio"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    work = Path(tempfile.mkdtemp(prefix="dreamkit-studio-shots-"))
    app = create_app(StudioConfig(workdir=work, device="cpu", grid_size=48, grid_steps=24,
                                  grid_page=12, samples=(ROOT / "gallery" / "chelsea.jpg",)))
    server, url = serve(app)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=ARGS)
            page = browser.new_page(viewport={"width": 1200, "height": 860}, bypass_csp=True)
            page.goto(url)
            page.wait_for_selector("body[data-ready='1']")
            page.select_option("#sample", "sample-0")
            page.select_option("#layer", "inception3a")
            small = {"octaves": 2, "steps": 8, "size": 160}
            dream(page, small, 1)
            page.click("#grid-show")
            page.wait_for_function("[...document.querySelectorAll('#grid .tile img')]"
                                   ".filter(i => i.complete && i.naturalWidth > 0).length "
                                   "=== 12", timeout=180_000)
            page.click("#grid .tile[data-channel='2']")
            dream(page, {**small, "lr": 3}, 2)
            page.screenshot(path=str(out / "studio.png"), full_page=True)
            page.fill("#s-steps", "60")
            page.click("#dream")
            page.wait_for_function("document.getElementById('progress').value > 30",
                                   timeout=180_000)
            page.evaluate("window.scrollTo(0, 0)")
            page.screenshot(path=str(out / "live.png"))
            page.click("#stop")
            browser.close()
    finally:
        server.should_exit = True
        app.state.studio.queue.close()
        shutil.rmtree(work, ignore_errors=True)
    for path in sorted(out.glob("*.png")):
        shrink(path)
        print(f"{path}: {path.stat().st_size // 1024} KB")


def shrink(path: Path, colors: int = 64) -> None:
    """A screenshot with a palette of `colors` (a third of the bytes; the page is flat)."""
    from PIL import Image

    with Image.open(path) as im:
        small = im.convert("RGB").quantize(colors, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


if __name__ == "__main__":
    main()
