"""Reading, validating and writing images safely.

The rules this module keeps:

* a bad input image never produces a traceback: every problem becomes one
  :class:`ImageError` whose message is ``"<path>: <what is wrong>"`` on one line;
* a truncated or corrupt file is refused, never returned as a half-grey picture;
* the pixel count is checked from the file header before any pixel is decoded
  (:data:`DEFAULT_MAX_PIXELS`, a decompression-bomb guard);
* an image with NaN or infinite values is never written, and no write leaves a
  truncated file behind (:func:`atomic_path`).

Loading decodes with Pillow directly rather than through imageio's pillow
plugin, because that plugin drops palette transparency, rotates EXIF-tagged
images along the wrong axis after a mode conversion, and gives no way to tell
CMYK from RGBA in the returned array. Writing goes through imageio's v3 API.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import stat
import struct
import threading
import warnings
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
from PIL import Image, ImageFile, PngImagePlugin, UnidentifiedImageError

from dreamkit.errors import DreamkitError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "ImageError",
    "SAVE_EXTENSIONS",
    "atomic_path",
    "ctrl_c_deferred",
    "list_images",
    "load_image",
    "read_png_text",
    "save_image",
    "to_uint8",
]

DEFAULT_MAX_PIXELS: int = 64_000_000
"""Largest image (width * height, summed over frames) that :func:`load_image` decodes.

A guard against decompression bombs: a few kilobytes of PNG or GIF can claim to
be 100000 x 100000 pixels and exhaust memory once decoded. The check reads only
the header. Pass ``max_pixels=`` (the CLI's ``--max-pixels``) to raise it, or
``None`` to switch it off for trusted files.
"""

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
)
"""File extensions :func:`list_images` picks up (compared case-insensitively)."""

# Pillow formats load_image accepts. Restricting them keeps Pillow from handing a
# misnamed file to an exotic decoder (EPS, for one, runs Ghostscript).
_READ_FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF")  # JPEG includes MPO
_FORMAT_NAMES = "PNG, JPEG, GIF, WebP, BMP or TIFF"

_WRITE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
SAVE_EXTENSIONS: frozenset[str] = frozenset(_WRITE_FORMATS)
"""File extensions :func:`save_image` writes (lower case)."""

# Exceptions Pillow, zlib and the OS raise on bad files; all become ImageError.
_DECODE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    struct.error,
    zlib.error,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
    OverflowError,
    MemoryError,
    RuntimeError,
    AssertionError,
    Image.DecompressionBombError,
)

# Pillow's strictness switches are module globals; hold this lock while they are
# changed so concurrent loads from dreamkit threads do not undo each other.
_PILLOW_LOCK = threading.Lock()

# EXIF orientation -> the (H, W, C) array operation that makes the picture upright
# (the same as Pillow's FLIP_LEFT_RIGHT, ROTATE_180, ..., ROTATE_90 transposes).
_EXIF_TRANSPOSE: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a, 2).swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}
_EXIF_ORIENTATION_TAG = 0x0112


class ImageError(DreamkitError):
    """An image file that cannot be read or written; the message is ``"<path>: <problem>"``."""


class _BadPixels(ValueError):
    """Decoded pixels that cannot be turned into an image (the message says why)."""


# --------------------------------------------------------------------------- helpers


def _show(path: object) -> str:
    """The path as it goes into an error message (one line, however odd the name)."""
    try:
        text = os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else repr(path)
    except (TypeError, ValueError):
        text = repr(path)
    if not text.isprintable():
        text = repr(text)
    return text


def _error(path: object, what: object) -> ImageError:
    """Build ``ImageError("<path>: <what>")`` with ``what`` collapsed onto one line."""
    detail = " ".join(str(what).split()) or "unknown error"
    return ImageError(f"{_show(path)}: {detail}")


def _describe(exc: BaseException) -> str:
    """A short, one-line account of a low-level exception for an error message."""
    if isinstance(exc, _BadPixels):
        return str(exc)
    if isinstance(exc, Image.DecompressionBombError):
        return f"refused as a possible decompression bomb ({exc})"
    if isinstance(exc, MemoryError):
        return "not enough memory to decode the image"
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return exc.strerror
    text = " ".join(str(exc).split())
    if "truncated" in text.lower():
        return f"file is truncated or corrupt ({text})"
    detail = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return f"corrupt or unreadable image ({detail})"


def _to_path(path: object) -> Path:
    try:
        return Path(os.fsdecode(path) if isinstance(path, bytes) else path)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise _error(path, f"not a file path ({type(path).__name__})") from None


def _check_regular_file(path: object) -> Path:
    """Fail early on a missing path, a folder, a special file or an empty file."""
    p = _to_path(path)
    try:
        st = p.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise _error(path, "no such file") from None
    except PermissionError:
        raise _error(path, "permission denied") from None
    except (OSError, ValueError) as exc:
        raise _error(path, f"cannot access file ({_describe(exc)})") from None
    if stat.S_ISDIR(st.st_mode):
        raise _error(path, "is a folder, not an image file")
    if not stat.S_ISREG(st.st_mode):
        raise _error(path, "is not a regular file")
    if st.st_size == 0:
        raise _error(path, "file is empty (0 bytes)")
    return p


def _looks_like_text(p: Path) -> bool:
    try:
        with open(p, "rb") as fh:
            head = fh.read(512)
    except OSError:
        return False
    if len(head) < 8 or b"\0" in head:  # too short to tell a text from a cut-off header
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:  # a multibyte character cut at byte 512
        if exc.start < len(head) - 4:
            return False
        text = head[: exc.start].decode("utf-8")
    return all(ch.isprintable() or ch in "\t\r\n\f" for ch in text)


@contextlib.contextmanager
def _strict_pillow(max_pixels: int | None) -> Iterator[None]:
    """Make Pillow refuse truncated files and apply our pixel limit, then restore it."""
    with _PILLOW_LOCK, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        old_truncated, old_max = ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        # Pillow warns above MAX_IMAGE_PIXELS and refuses twice that; tie both to
        # the caller's limit so --max-pixels can raise it (or None lift it).
        Image.MAX_IMAGE_PIXELS = max_pixels
        try:
            yield
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = old_truncated
            Image.MAX_IMAGE_PIXELS = old_max


def _too_big(path: object, pixels: int, max_pixels: int, what: str) -> ImageError:
    return _error(
        path,
        f"{what} has {pixels:,} pixels, more than the limit of {max_pixels:,} "
        "(a guard against decompression bombs); raise it with --max-pixels "
        "(max_pixels=) if you trust this file",
    )


def _open(p: Path, path: object, max_pixels: int | None, formats: tuple[str, ...]) -> Image.Image:
    """Open lazily (header only), turning identification failures into ImageError."""
    try:
        return Image.open(p, formats=formats)
    except UnidentifiedImageError:
        if _looks_like_text(p):
            raise _error(path, "is a text file, not an image") from None
        names = _FORMAT_NAMES if len(formats) > 1 else formats[0]
        raise _error(path, f"not a recognised image file (expected {names})") from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        # Raised by Image.open from the header size (the warning is an error here).
        pixels = _pixels_in(exc)
        if max_pixels is None or pixels is None:
            raise _error(path, f"refused as a possible decompression bomb ({exc})") from None
        raise _too_big(path, pixels, max_pixels, "image") from None


def _pixels_in(exc: BaseException) -> int | None:
    """The pixel count in Pillow's decompression-bomb message, if it can be found."""
    for word in str(exc).replace("(", " ").split():
        if word.isdigit():
            return int(word)
    return None


def _orientation(im: Image.Image) -> int:
    """EXIF orientation (1-8) of an opened image; 1 when absent or unreadable."""
    try:
        value = int(im.getexif().get(_EXIF_ORIENTATION_TAG, 1))
    except Exception:  # noqa: BLE001 - a broken EXIF block must not reject the pixels
        return 1
    return value if value in _EXIF_TRANSPOSE else 1


def _scale_wide(values: np.ndarray, top: float) -> np.ndarray:
    """Map 32-bit int/float samples to [0, 1]: divide by ``top`` when they fit in
    [0, top], otherwise stretch min..max to 0..1."""
    data = values.astype(np.float64)
    lo, hi = float(data.min()), float(data.max())
    if lo >= 0.0 and hi <= top:
        return data / top
    if hi == lo:
        return np.full_like(data, min(max(lo, 0.0), 1.0))
    return (data - lo) / (hi - lo)


def _frame_to_rgb(frame: Image.Image) -> np.ndarray:
    """One decoded Pillow frame -> float32 (H, W, 3) RGB array in [0, 1]."""
    mode = frame.mode
    if mode == "P" or mode == "PA":
        has_alpha = mode == "PA" or "transparency" in frame.info
        frame = frame.convert("RGBA" if has_alpha else "RGB")
    elif mode in ("L", "RGB") and "transparency" in frame.info:
        frame = frame.convert("RGBA")
    elif mode in ("La", "RGBa"):  # premultiplied alpha
        frame = frame.convert("LA" if mode == "La" else "RGBA")
    elif mode == "1":
        frame = frame.convert("L")
    elif mode not in ("L", "LA", "RGB", "RGBA", "RGBX", "I", "F") and not mode.startswith("I;16"):
        frame = frame.convert("RGB")  # CMYK, YCbCr, LAB, HSV, ...
    mode = frame.mode

    arr = np.asarray(frame)
    alpha = None
    if mode.startswith("I;16"):
        gray = arr.astype(np.float32) / np.float32(65535.0)
    elif mode == "I":
        gray = _scale_wide(arr, 65535.0)
    elif mode == "F":
        if not np.isfinite(arr).all():
            raise _BadPixels("float image contains NaN or infinite values")
        gray = _scale_wide(arr, 1.0)
    else:
        scaled = arr.astype(np.float32) / np.float32(255.0)
        if mode == "L":
            gray = scaled
        elif mode == "LA":
            gray, alpha = scaled[..., 0], scaled[..., 1]
        elif mode in ("RGB", "RGBX"):
            return np.ascontiguousarray(scaled[..., :3])
        elif mode == "RGBA":
            rgb, alpha = scaled[..., :3], scaled[..., 3:]
            return rgb * alpha + (1.0 - alpha)  # over white
        else:  # pragma: no cover - every mode was converted above
            raise _BadPixels(f"unsupported image mode {mode}")
    gray = gray.astype(np.float32, copy=False)
    if alpha is not None:
        gray = gray * alpha + (1.0 - alpha)
    return np.repeat(gray[..., None], 3, axis=2)


def _to_tensor(rgb: np.ndarray) -> torch.Tensor:
    chw = np.clip(rgb, 0.0, 1.0).astype(np.float32, copy=False).transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(chw))


# --------------------------------------------------------------------------- reading


def load_image(
    path: str | os.PathLike[str],
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    all_frames: bool = False,
) -> torch.Tensor:
    """Read an image file as a float32 RGB tensor in [0, 1] of shape (3, H, W).

    Accepts PNG (incl. 16-bit and APNG), JPEG (incl. CMYK), GIF, WebP, BMP and
    TIFF. Grayscale and palette images become RGB; 16-bit samples are divided
    by 65535 (32-bit integer samples too when they fit, float samples are used
    as they are when within [0, 1]; otherwise both are stretched min..max).
    Transparency (LA, RGBA, palette or tRNS) is composited over a **white**
    background. An EXIF orientation tag is applied, so the result is upright.

    With ``all_frames=True`` every frame of an animated GIF/WebP/APNG (or
    multi-page TIFF) is returned as (N, 3, H, W); by default only the first.

    ``max_pixels`` caps width * height (summed over the frames read), checked
    from the header before decoding; ``None`` disables it together with
    Pillow's own bomb check (prefer a larger number: a 200-byte file can claim
    billions of pixels).

    Raises:
        ImageError: for anything wrong with the file (missing, a folder, empty,
            not an image, truncated, corrupt, too large), as
            ``"<path>: <problem>"``.
    """
    if max_pixels is not None and (not isinstance(max_pixels, int) or max_pixels < 1):
        raise _error(path, f"max_pixels must be a positive integer or None, not {max_pixels!r}")
    p = _check_regular_file(path)
    with _strict_pillow(max_pixels):
        try:
            with _open(p, path, max_pixels, _READ_FORMATS) as im:
                return _decode(im, path, max_pixels, all_frames)
        except ImageError:
            raise
        except PermissionError:
            raise _error(path, "permission denied") from None
        except Image.DecompressionBombWarning as exc:  # raised by our warnings filter
            raise _error(path, f"refused as a possible decompression bomb ({exc})") from None
        except _DECODE_ERRORS as exc:
            raise _error(path, _describe(exc)) from exc
        except Exception as exc:  # noqa: BLE001 - the contract: nothing but ImageError escapes
            raise _error(path, _describe(exc)) from exc


def _decode(
    im: Image.Image, path: object, max_pixels: int | None, all_frames: bool
) -> torch.Tensor:
    width, height = im.size
    if width < 1 or height < 1:
        raise _error(path, f"image has no pixels ({width}x{height})")
    if max_pixels is not None and width * height > max_pixels:
        raise _too_big(path, width * height, max_pixels, f"image ({width}x{height})")
    im.load()  # the full decode of frame 0; strict mode raises on truncated data
    orient = _EXIF_TRANSPOSE.get(_orientation(im))

    frames: list[torch.Tensor] = []
    total = 0
    index = 0
    while True:
        if index:
            try:
                im.seek(index)
            except EOFError:
                break
            if im.size != (width, height):
                w, h = im.size
                raise _error(path, f"frame {index} is {w}x{h} but frame 0 is {width}x{height}")
        total += width * height
        if max_pixels is not None and total > max_pixels:
            raise _too_big(path, total, max_pixels, f"the first {index + 1} frames")
        im.load()
        rgb = _frame_to_rgb(im)
        if orient is not None:
            rgb = orient(rgb)
        frames.append(_to_tensor(rgb))
        index += 1
        if not all_frames:
            return frames[0]
    return torch.stack(frames)


def read_png_text(
    path: str | os.PathLike[str], *, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> dict[str, str]:
    """The tEXt/zTXt/iTXt chunks of a PNG file as ``{keyword: text}``.

    Text chunks may follow the pixel data, so the image is decoded (under the
    same ``max_pixels`` guard as :func:`load_image`). Raises ImageError if the
    file is not a readable PNG.
    """
    p = _check_regular_file(path)
    with _strict_pillow(max_pixels):
        try:
            with _open(p, path, max_pixels, ("PNG",)) as im:
                width, height = im.size
                if max_pixels is not None and width * height > max_pixels:
                    raise _too_big(path, width * height, max_pixels, f"image ({width}x{height})")
                text = getattr(im, "text", None) or {}
                return {str(key): str(value) for key, value in text.items()}
        except ImageError:
            raise
        except Image.DecompressionBombWarning as exc:
            raise _error(path, f"refused as a possible decompression bomb ({exc})") from None
        except Exception as exc:  # noqa: BLE001 - nothing but ImageError escapes
            raise _error(path, _describe(exc)) from exc


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """The image files (see :data:`IMAGE_EXTENSIONS`) directly in ``folder``, sorted by name.

    Hidden files (names starting with ``.``) are skipped. Raises ImageError if
    the folder is missing, is not a folder, cannot be read, or holds no image.
    """
    root = _to_path(folder)
    try:
        if not root.exists():
            raise _error(folder, "no such folder")
        if not root.is_dir():
            raise _error(folder, "is not a folder")
        found = [
            entry
            for entry in root.iterdir()
            if not entry.name.startswith(".")
            and entry.suffix.lower() in IMAGE_EXTENSIONS
            and entry.is_file()
        ]
    except (OSError, ValueError) as exc:
        raise _error(
            folder, f"cannot list folder ({getattr(exc, 'strerror', None) or exc})"
        ) from None
    if not found:
        kinds = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise _error(folder, f"no image files ({kinds}) in this folder")
    return sorted(found, key=lambda entry: entry.name)


# --------------------------------------------------------------------------- writing


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """A (3, H, W) or (1, 3, H, W) float tensor in [0, 1] -> (H, W, 3) uint8 array.

    Values are clamped to [0, 1] and rounded. Raises ImageError for a wrong
    type or shape or for NaN/infinite values.
    """
    if not isinstance(image, torch.Tensor):
        raise ImageError(f"expected a torch.Tensor image, got {type(image).__name__}")
    shape = tuple(image.shape)
    if image.ndim == 4 and shape[0] == 1:
        image = image[0]
    if image.ndim != 3 or image.shape[0] != 3 or image.shape[1] < 1 or image.shape[2] < 1:
        raise ImageError(f"expected an image of shape (3, H, W) or (1, 3, H, W), got {shape}")
    if not image.is_floating_point():
        raise ImageError(f"expected a float image in [0, 1], got dtype {image.dtype}")
    image = image.detach().to(device="cpu", dtype=torch.float32)
    bad = int((~torch.isfinite(image)).sum())
    if bad:
        raise ImageError(f"image contains {bad} NaN or infinite values; nothing was written")
    scaled = (image.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
    return np.ascontiguousarray(scaled.permute(1, 2, 0).numpy())


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


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``.

    The temporary file is created (empty) in the same folder, so the final
    ``os.replace`` is atomic; it keeps ``path``'s extension so format-sniffing
    writers still work. After the ``with`` body it is fsynced and renamed onto
    ``path``; if the body raises, it is deleted and an existing ``path`` is left
    untouched. Missing parent folders are created. Problems with the folder or
    the rename raise ImageError; exceptions from the body propagate unchanged.
    """
    target = _to_path(path)
    if target.name in ("", ".", ".."):
        raise _error(path, "not a file name")
    if target.is_dir():
        raise _error(path, "is a folder; give a file name")
    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _error(
            path, f"cannot create folder {_show(folder)} ({exc.strerror or exc})"
        ) from None

    stem = target.stem[:80]
    for _ in range(100):
        tmp = folder / f".{stem}.{secrets.token_hex(4)}.tmp{target.suffix[:16]}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        except PermissionError:
            raise _error(path, f"folder {_show(folder)} is not writable") from None
        except OSError as exc:
            raise _error(path, f"cannot write in {_show(folder)} ({exc.strerror or exc})") from None
        os.close(fd)
        break
    else:  # pragma: no cover - 100 collisions of 32 random bits
        raise _error(path, "could not create a temporary file")

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


def _png_info(metadata: dict[str, str]) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    for key, value in metadata.items():
        info.add_text(key, value)  # Pillow picks iTXt when value is not Latin-1
    return info


def _check_metadata(path: object, metadata: object) -> dict[str, str]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise _error(path, f"metadata must be a dict of str to str, not {type(metadata).__name__}")
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise _error(path, f"metadata keys and values must be str, got {key!r}: {value!r}")
        printable = all(32 <= ord(ch) <= 126 or 161 <= ord(ch) <= 255 for ch in key)
        if not 1 <= len(key) <= 79 or not printable or key != key.strip() or "  " in key:
            raise _error(
                path,
                f"metadata key {key!r} is not a valid PNG keyword (1-79 printable Latin-1 "
                "characters, no leading, trailing or double spaces)",
            )
        if "\0" in value:
            raise _error(path, f"metadata value for {key!r} contains a NUL character")
    return dict(metadata)


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


def _encode(array: np.ndarray, tmp: Path, extension: str, options: dict[str, object]) -> None:
    """Write ``array`` (H, W, 3 uint8) to ``tmp`` in the format of ``extension``."""
    iio.imwrite(tmp, array, plugin="pillow", extension=extension, **options)


def save_image(
    image: torch.Tensor,
    path: str | os.PathLike[str],
    *,
    metadata: dict[str, str] | None = None,
    quality: int = 95,
) -> Path:
    """Write a (3, H, W) or (1, 3, H, W) float image in [0, 1] atomically; return the path.

    The format follows the extension: ``.png`` (``metadata`` is stored as
    tEXt/iTXt chunks, see :func:`read_png_text`), ``.jpg``/``.jpeg`` or ``.webp``
    (lossy, ``quality`` 1-100; ``metadata`` is validated but not stored).
    Values are clamped to [0, 1]. NaN/infinite values, an unknown extension or
    an unwritable folder raise ImageError and write nothing; an existing file at
    ``path`` is replaced only once the new one is complete (:func:`atomic_path`).
    """
    target = _to_path(path)
    extension = target.suffix.lower()
    if extension not in _WRITE_FORMATS:
        shown = f"'{target.suffix}'" if target.suffix else "no extension"
        raise _error(path, f"cannot save with {shown}; use .png, .jpg, .jpeg or .webp")
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise _error(path, f"quality must be an integer from 1 to 100, not {quality!r}")
    text = _check_metadata(path, metadata)
    try:
        array = to_uint8(image)
    except ImageError as exc:
        raise _error(path, exc) from None

    fmt = _WRITE_FORMATS[extension]
    options: dict[str, object] = {}
    if fmt == "PNG":
        if text:
            options["pnginfo"] = _png_info(text)
    else:
        options["quality"] = quality
    with ctrl_c_deferred(), atomic_path(target) as tmp:
        try:
            _encode(array, tmp, extension, options)
        except ImageError:
            raise
        except Exception as exc:  # noqa: BLE001 - report encoder failures as ImageError
            raise _error(path, f"could not write {fmt} ({_describe(exc)})") from exc
    return target
