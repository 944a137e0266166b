"""MkDocs hook: the pages show the pictures of the repository's `gallery/` without copies.

The pages link them as `../gallery/NAME` (a path that also works when the Markdown is read on
a forge or on disk); this hook adds the files of `gallery/` to the site under `gallery/` and
points those links there, so `mkdocs build --strict` checks every one of them.
"""

from __future__ import annotations

import os
import re

from mkdocs.structure.files import File

GALLERY = "gallery"
LINK = re.compile(r"(\]\(|src=\")\.\./((?:\.\./)*" + GALLERY + r"/)")


def on_files(files, config):
    root = os.path.dirname(os.path.abspath(config.config_file_path))
    for folder, _, names in os.walk(os.path.join(root, GALLERY)):
        for name in sorted(names):
            uri = os.path.relpath(os.path.join(folder, name), root).replace(os.sep, "/")
            files.append(File(uri, root, config.site_dir, config.use_directory_urls))
    return files


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri.startswith(GALLERY + "/"):
        return markdown
    return LINK.sub(r"\1\2", markdown)
