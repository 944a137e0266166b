"""dreamkit.files: inputs checked before they are read, atomic writes, temporaries that only
their own process removes, no output over an input."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dreamkit import files
from dreamkit.files import (
    FileError,
    atomic_path,
    check_not_input,
    file_sha256,
    regular_file,
    remove_stale_temporaries,
    same_file,
)


def test_atomic_path_success_and_suffix(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".json" and tmp != target
        assert f"-{os.getpid()}-" in tmp.name  # named after its process
        tmp.write_text('{"ok": true}')
        assert not target.exists()
    assert target.read_text() == '{"ok": true}'
    assert list(tmp_path.iterdir()) == [target]


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_atomic_path_failure_cleans_up(tmp_path: Path, exc: BaseException) -> None:
    target = tmp_path / "page.html"
    target.write_text("old")
    with pytest.raises(type(exc)):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise exc
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


def test_atomic_path_replace_failure(tmp_path: Path, monkeypatch) -> None:
    def bad_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "replace", bad_replace)
    with pytest.raises(FileError, match="No space left"):
        with atomic_path(tmp_path / "x.gif") as tmp:
            tmp.write_bytes(b"GIF89a")
    assert list(tmp_path.iterdir()) == []


def test_special_files_are_refused_before_reading(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    start = time.monotonic()
    for path in (fifo, Path("/dev/zero")):
        with pytest.raises(FileError, match="not a regular file"):
            file_sha256(path)
    assert time.monotonic() - start < 30  # nothing waited for the FIFO's writer (for ever)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(FileError, match="empty"):
        regular_file(tmp_path / "empty.png")
    with pytest.raises(FileError, match="no such file"):
        regular_file(tmp_path / "missing.png")
    with pytest.raises(FileError, match="is a folder"):
        regular_file(tmp_path)
    (tmp_path / "big.bin").write_bytes(b"x" * 100)
    with pytest.raises(FileError, match="more than the limit of 10"):
        regular_file(tmp_path / "big.bin", max_bytes=10)


def test_sha256_in_chunks(tmp_path: Path) -> None:
    data = os.urandom(3 * 2**20 + 17)
    (tmp_path / "blob").write_bytes(data)
    assert file_sha256(tmp_path / "blob") == hashlib.sha256(data).hexdigest()


def test_links_count_as_the_same_file(tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"x")
    (tmp_path / "soft.png").symlink_to(photo)
    os.link(photo, tmp_path / "hard.png")
    for other in ("soft.png", "hard.png", "./photo.png"):
        assert same_file(tmp_path / other, photo)
        with pytest.raises(FileError, match="--force"):
            check_not_input(tmp_path / other, [photo])
        check_not_input(tmp_path / other, [photo], force=True)
    assert not same_file(tmp_path / "new.png", photo)
    check_not_input(tmp_path / "new.png", [None, photo])


def test_only_dead_processes_temporaries_are_removed(tmp_path: Path) -> None:
    """A live writer keeps its temporary; a killed one's is cleaned; other files stay."""
    writer = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from dreamkit.files import atomic_path\n"
         f"with atomic_path({str(tmp_path / 'live.png')!r}) as tmp:\n"
         "    tmp.write_bytes(b'x'); print(tmp, flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True)
    try:
        live = Path(writer.stdout.readline().strip())
        dead = tmp_path / f".dead.{files._HOST}-999999-0123abcd.tmp.png"
        dead.write_bytes(b"y")
        old = tmp_path / ".old.otherhost-1-0123abcd.tmp.png"
        old.write_bytes(b"z")
        os.utime(old, (0, 0))
        keep = tmp_path / "keep.png"
        keep.write_bytes(b"k")
        assert remove_stale_temporaries(tmp_path) == 2
        assert live.exists() and keep.exists()
        assert not dead.exists() and not old.exists()
    finally:
        writer.kill()
        writer.wait()


def test_json_is_strict_even_when_a_number_is_not_finite(tmp_path: Path) -> None:
    import json

    from dreamkit.files import write_json

    path = write_json(tmp_path / "t.json", {"a": float("nan"), "b": [1.0, float("inf")],
                                            "c": "x"})
    assert json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(c)) == {
        "a": None, "b": [1.0, None], "c": "x"}
