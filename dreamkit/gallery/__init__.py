"""Comparison galleries: a grid of tiles over two axes (`config`), its contact sheet (`sheet`)
and its static page (`page`). Rendering the tiles, possibly on many ranks, is
`dreamkit.distributed`'s job; each tile is a `dreamkit.records.Recipe`."""

from dreamkit.gallery.config import Axis, Gallery, Tile, load_config, parse_gallery
from dreamkit.gallery.page import html_page, write_html
from dreamkit.gallery.sheet import write_sheet

__all__ = ["Axis", "Gallery", "Tile", "html_page", "load_config", "parse_gallery",
           "write_html", "write_sheet"]
