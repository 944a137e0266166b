"""dreamkit studio in a real browser (Playwright driving Debian's headless Chromium): upload a
photo, choose bvlc_googlenet / inception3a, dream with small settings, download the picture
and check that `dreamkit reproduce` makes it again identically; pick a channel from the grid
(rendered on demand) and dream it; stop a long dream while its picture refreshes."""

from __future__ import annotations

import shutil

import pytest

from tests.helpers import IMAGES, requires_weights

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
pytestmark = [
    requires_weights,
    pytest.mark.slow,  # Chromium, three dreams and a grid: about 20 s on 2 cores
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed"),
]


@pytest.fixture
def studio_page(tmp_path):
    """(page, errors): the studio served on a free port, open in headless Chromium."""
    from dreamkit.studio.app import create_app
    from tests.test_studio import config, running

    app = create_app(config(tmp_path, grid_page=4))
    with running(app) as url, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            strict = browser.new_page()  # the page runs under its own CSP (no inline script)
            strict.goto(url)
            strict.wait_for_selector("body[data-ready='1']", timeout=30_000)
            strict.close()
            # the test's own waits evaluate JavaScript strings, which that CSP forbids
            page = browser.new_page(accept_downloads=True, bypass_csp=True)
            page.set_default_timeout(60_000)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(url)
            page.wait_for_selector("body[data-ready='1']")
            yield page, errors
        finally:
            browser.close()


def _results(page) -> int:
    return page.locator("#gallery .result").count()


def test_dream_download_reproduce_and_dream_a_channel_from_the_grid(studio_page, tmp_path):
    import dreamkit

    page, errors = studio_page
    page.set_input_files("#photo-file", str(IMAGES / "chelsea.jpg"))
    page.wait_for_function("document.getElementById('photo-info').textContent"
                           ".includes('chelsea.jpg')")
    assert page.input_value("#model") == "bvlc_googlenet"
    page.select_option("#layer", "inception3a")
    for name, value in (("octaves", "1"), ("steps", "2"), ("size", "64")):
        page.fill(f"#s-{name}", value)
    page.click("#dream")
    page.wait_for_selector("#gallery .result")
    assert "inception3a" in page.text_content("#status")
    with page.expect_download() as download:
        page.click("#gallery .result a.download")
    picture = tmp_path / "downloaded.png"
    download.value.save_as(picture)
    reproduced = dreamkit.reproduce(picture, tmp_path / "again.png")
    assert reproduced.status == "identical", reproduced.why

    page.click("#grid-show")  # no microscope site: channels 0-3 are rendered on demand
    page.wait_for_function("[...document.querySelectorAll('#grid .tile img')]"
                           ".filter(i => i.complete && i.naturalWidth > 0).length === 4")
    page.click("#grid .tile[data-channel='2']")
    assert page.is_checked("#target-channel") and page.input_value("#channel") == "2"
    page.click("#dream")
    page.wait_for_function("document.querySelectorAll('#gallery .result').length === 2")
    newest = page.text_content("#gallery .result strong")
    assert "inception3a_c2" in newest
    assert page.locator("#gallery .result dd.differs").count() == 0  # same settings
    broken = page.evaluate("[...document.images].filter(i => i.src && i.complete && "
                           "i.naturalWidth === 0).map(i => i.src)")
    assert not broken and not errors, (broken, errors)


def test_a_long_dream_refreshes_its_picture_and_stops(studio_page):
    page, errors = studio_page
    page.select_option("#sample", "sample-0")
    page.select_option("#layer", "inception3a")
    for name, value in (("octaves", "1"), ("steps", "400"), ("size", "64")):
        page.fill(f"#s-{name}", value)
    page.click("#dream")
    page.wait_for_function("document.getElementById('live').src.includes('preview.png')")
    assert "dreaming: step" in page.text_content("#status")
    page.click("#stop")
    page.wait_for_function("document.getElementById('message').textContent"
                           ".startsWith('stopped')")
    assert _results(page) == 0 and page.is_disabled("#stop")
    page.fill("#s-steps", "100000")  # a bad value: the server's one-line message shows
    page.click("#dream")
    page.wait_for_function("document.getElementById('message').textContent.includes('steps')")
    assert "10,000" in page.text_content("#message")
    expected = "the server responded with a status of 400"  # Chromium logs the refusal
    assert not [e for e in errors if expected not in e], errors
