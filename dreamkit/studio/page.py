"""The studio's one page: HTML, its script and its style, in `static/` (no build step, no
framework, no third-party files: the page works offline). The settings form is generated in
the page from `/api/info`, which lists `DreamSettings.spec()` with every field's bounds and
help."""

from __future__ import annotations

from importlib.resources import files


def _read(name: str) -> str:
    return (files("dreamkit.studio") / "static" / name).read_text(encoding="utf-8")


HTML, SCRIPT, STYLE = _read("index.html"), _read("studio.js"), _read("studio.css")
