"""A user module that says when it is imported or called: a record or config must never make
dreamkit do either (tests/test_untrusted.py)."""

from __future__ import annotations

import os
from pathlib import Path

MARK = os.environ.get("DREAMKIT_CANARY")
if MARK:
    Path(MARK).write_text("imported")


def build():
    if MARK:
        Path(MARK).write_text("called")
    from tests.factories import pitfalls

    return pitfalls()
