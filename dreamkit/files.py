"""Files a user hands us and files we write: checked before they are read, written atomically.

* `regular_file` refuses what is not a plain file of bounded size (a folder, a FIFO, a device
  such as /dev/zero) before a byte is read; `file_sha256` hashes in chunks.
* `atomic_path` writes beside the target and renames, so a killed run leaves the old file or
  the complete new one. Its temporaries are named after their host and process, so
  `remove_stale_temporaries` deletes only those of dead processes (or any older than a day),
  never one another live process is still writing.
* `ctrl_c_deferred` holds Ctrl-C during a short write; `same_file` and `check_not_input`
  keep a command from writing over one of its inputs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import secrets
import signal
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from dreamkit.errors import DreamkitError

MAX_FILE_BYTES = 2 * 2**30  # inputs larger than this are refused before reading
MAX_TEXT_BYTES = 2**20  # configs and other small text inputs
STALE_SECONDS = 24 * 3600  # a temporary this old belongs to no run that is still going
_CHUNK = 2**20
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"
_TEMPORARY = re.compile(r"^\..*\.(?P<host>[A-Za-z0-9-]+)-(?P<pid>\d+)-[0-9a-f]{8}\.tmp")


class FileError(DreamkitError):
    """A file that cannot be read or written; the message is `<path>: <problem>`."""


def _error(path: object, what: str) -> FileError:
    return FileError(f"{os.fsdecode(path) if isinstance(path, (str, os.PathLike)) else path}: "
                     f"{' '.join(what.split())}")


# --------------------------------------------------------------------------- reading


def regular_file(path: str | os.PathLike[str], what: str = "file",
                 max_bytes: int = MAX_FILE_BYTES) -> Path:
    """`path` if it is a regular, non-empty file of at most `max_bytes`; checked with one
    stat call, before anything is opened (a FIFO or /dev/zero is never read)."""
    p = Path(path)
    try:
        st = p.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise _error(path, "no such file") from None
    except PermissionError:
        raise _error(path, "permission denied") from None
    except (OSError, ValueError) as exc:
        raise _error(path, f"cannot access {what} ({getattr(exc, 'strerror', None) or exc})") \
            from None
    if stat.S_ISDIR(st.st_mode):
        raise _error(path, f"is a folder, not a {what}")
    if not stat.S_ISREG(st.st_mode):
        raise _error(path, f"is not a regular file (a {what} must be one)")
    if st.st_size == 0:
        raise _error(path, f"{what} is empty (0 bytes)")
    if st.st_size > max_bytes:
        raise _error(path, f"{what} is {st.st_size:,} bytes, more than the limit of "
                           f"{max_bytes:,}")
    return p


def file_sha256(path: str | os.PathLike[str], what: str = "file",
                max_bytes: int = MAX_FILE_BYTES) -> str:
    """The SHA-256 hex digest of a regular file, read in chunks."""
    p = regular_file(path, what, max_bytes)
    digest = hashlib.sha256()
    try:
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(_CHUNK), b""):
                digest.update(chunk)
    except OSError as exc:
        raise _error(path, f"cannot read {what} ({exc.strerror or exc})") from None
    return digest.hexdigest()


def read_text(path: str | os.PathLike[str], what: str = "file",
              max_bytes: int = MAX_TEXT_BYTES) -> str:
    """A small UTF-8 text file (a config), checked to be a regular file of bounded size."""
    p = regular_file(path, what, max_bytes)
    try:
        return p.read_text(encoding="utf-8")
    except OSError as exc:
        raise _error(path, f"cannot read {what} ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise _error(path, f"{what} is not UTF-8 text") from None


# --------------------------------------------------------------------------- inputs and outputs


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """True when `a` and `b` name one file: the same path, a symlink to it or a hard link."""
    a, b = Path(a), Path(b)
    try:
        if a.resolve() == b.resolve():
            return True
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except (OSError, RuntimeError):  # unreadable or looping symlinks: not provably the same
        return False


def check_not_input(output: str | os.PathLike[str], inputs: Iterable[object],
                    force: bool = False, *, forceable: bool = True) -> None:
    """Refuse to write `output` over any of `inputs` (paths; None is skipped) unless `force`;
    the message offers --force where the command has it (`forceable`)."""
    if force:
        return
    hint = "pass --force to write over it" if forceable else "choose another output"
    for source in inputs:
        if source is not None and same_file(output, source):  # type: ignore[arg-type]
            raise FileError(f"{output}: is one of this command's inputs ({source}); {hint}")


def check_writable(path: str | os.PathLike[str]) -> Path:
    """Refuse, before any work, a place where `path` (a file or a folder to make) cannot be
    written: its first existing parent is not a folder or takes no new file."""
    path = Path(path)
    folder = path.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # missing folders are made on writing: probe their first parent
    if not folder.is_dir():
        raise FileError(f"{path}: cannot write there, {folder} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise FileError(f"{path}: cannot write there ({exc.strerror or exc})") from None
    return path


def free_name(path: Path) -> Path:
    """A default output name that replaces nothing: `path`, else `stem_2.png`, `stem_3.png`...
    (`written` says which was used)."""
    if not path.exists():
        return path
    for n in range(2, 10_000):
        other = path.with_name(f"{path.stem}_{n}{path.suffix}")
        if not other.exists():
            return other
    raise FileError(f"{path}: every default name up to _9999 is taken; pass -o")


def check_folder(path: str | os.PathLike[str]) -> Path:
    """An output folder, checked before any work: not a file, and writable (or makeable)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FileError(f"{path}: is a file, not a folder; choose another output folder")
    check_writable(path / "probe" if path.is_dir() else path)
    return path


def check_job_folder(path: Path, manifest: str, plan: dict, what: str, differs: str) -> None:
    """A resumable job folder (a microscope site, an atlas), checked before any work: a folder
    we may write that is empty or holds this very `plan` in its `manifest` file; `what` names
    the kind of folder and `differs` what another plan may differ in, for the error."""
    check_folder(path)
    found_file = path / manifest
    if found_file.is_file():
        try:
            found = json.loads(found_file.read_text())
        except (OSError, ValueError):
            found = None
        if found != plan:
            owner = found.get("model") if isinstance(found, dict) else "an unreadable plan"
            raise DreamkitError(f"{path}: holds another {what} ({owner}, {differs}); choose "
                                "another -o or remove it")
    elif path.exists() and any(path.iterdir()):
        raise DreamkitError(f"{path}: is not empty and holds no {what}; choose another -o")


# --------------------------------------------------------------------------- writing


def _fsync(path: Path, *, directory: bool = False) -> None:
    flags = os.O_RDONLY
    if directory:
        if os.name == "nt":  # Windows cannot open or fsync a folder
            return
        flags |= getattr(os, "O_DIRECTORY", 0)
    elif os.name == "nt":
        flags = os.O_RDWR
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temporary(folder: Path, target: Path) -> Path:
    """Create an empty temporary beside `target`, named after this host and process."""
    stem = target.stem[:60]
    for _ in range(100):
        tmp = folder / f".{stem}.{_HOST}-{os.getpid()}-{secrets.token_hex(4)}.tmp" \
                       f"{target.suffix[:16]}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        except PermissionError:
            raise _error(target, f"folder {folder} is not writable") from None
        except OSError as exc:
            raise _error(target, f"cannot write in {folder} ({exc.strerror or exc})") from None
        os.close(fd)
        return tmp
    raise _error(target, "could not create a temporary file")  # pragma: no cover


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path`.

    The temporary keeps `path`'s extension (format-sniffing writers work). After the body it
    is fsynced and renamed onto `path`; if the body raises, it is deleted and an existing
    `path` is left untouched. Missing parent folders are created. Problems with the folder or
    the rename raise FileError; exceptions from the body propagate unchanged.
    """
    target = Path(path)
    if target.name in ("", ".", ".."):
        raise _error(path, "not a file name")
    if target.is_dir():
        raise _error(path, "is a folder; give a file name")
    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _error(path, f"cannot create folder {folder} ({exc.strerror or exc})") from None
    tmp = _temporary(folder, target)
    try:
        yield tmp
        try:
            _fsync(tmp)
            os.replace(tmp, target)
        except OSError as exc:
            raise _error(path, f"cannot write file ({exc.strerror or exc})") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        _fsync(folder, directory=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike[str]) -> int:
    """Delete the temporaries of `atomic_path` in `folder` that no live process is writing:
    those of dead processes on this host, and any older than `STALE_SECONDS`."""
    folder = Path(folder)
    removed = 0
    now = time.time()
    for entry in folder.iterdir() if folder.is_dir() else ():
        match = _TEMPORARY.match(entry.name)
        if not match:
            continue
        with contextlib.suppress(OSError):
            dead = match["host"] == _HOST and not _alive(int(match["pid"]))
            if dead or now - entry.stat().st_mtime > STALE_SECONDS:
                entry.unlink()
                removed += 1
    return removed


@contextlib.contextmanager
def ctrl_c_deferred() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) until the block is done, then deliver it.

    For short writes: an encoder stopped half-way leaves an object whose finalizer fails
    noisily at exit, and a file written in full is better than a lost one. Off the main
    thread (where signal handlers cannot be set) the block runs as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            signal.raise_signal(signal.SIGINT)


def _finite(value: object) -> object:
    """`value` with every NaN or infinity replaced by None (JSON has no such numbers)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(inner) for key, inner in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(inner) for inner in value]
    return value


def write_json(path: str | os.PathLike[str], data: object) -> Path:
    """Write strict JSON atomically: a number that is not finite is written as null."""
    return write_text(path, json.dumps(_finite(data), indent=1, allow_nan=False) + "\n")


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write a UTF-8 text file (JSON, CSV, HTML) atomically."""
    with ctrl_c_deferred(), atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
