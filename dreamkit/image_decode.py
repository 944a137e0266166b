"""Decoding untrusted image files with Pillow, strictly (the reading half of `image_io`).

Every problem with a file becomes one `ImageError` line, `<path>: <what is wrong>`: a
truncated or corrupt file is refused (never returned half grey), the pixel count is checked
from the header before any pixel is decoded (a decompression-bomb guard), and only the formats
dreamkit reads are ever handed to Pillow (a misnamed EPS file would run Ghostscript).

Pillow is used directly rather than through imageio's pillow plugin, because that plugin drops
palette transparency, rotates EXIF-tagged images along the wrong axis after a mode conversion,
and gives no way to tell CMYK from RGBA in the returned array.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import threading
import warnings
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFile, UnidentifiedImageError

from dreamkit.errors import DreamkitError
from dreamkit.files import FileError, regular_file
from dreamkit.settings import MAX_MAX_PIXELS

_READ_FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF")  # JPEG includes MPO
_FORMAT_NAMES = "PNG, JPEG, GIF, WebP, BMP or TIFF"

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
    try:
        return regular_file(_to_path(path), "image file")
    except FileError as exc:
        raise ImageError(str(exc)) from None


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


# --------------------------------------------------------------------------- decoding


def decode_image(path: object, max_pixels: int | None, all_frames: bool) -> torch.Tensor:
    """The pixels of an image file, (3, H, W) or all frames (N, 3, H, W), in [0, 1]."""
    if max_pixels is not None and (not isinstance(max_pixels, int) or isinstance(max_pixels, bool)
                                   or not 1 <= max_pixels <= MAX_MAX_PIXELS):
        raise _error(path, f"max_pixels (--max-pixels) must be an integer from 1 to "
                           f"{MAX_MAX_PIXELS:,} or None, not {max_pixels!r}")
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



def png_text(path: object, max_pixels: int | None) -> dict[str, str]:
    """The text chunks of a PNG file, `{keyword: text}` (under the same pixel guard)."""
    return _embedded_text(path, max_pixels, ("PNG",))


JPEG_QUALITY_KEY = "jpeg quality"  # `save_image` notes the quality beside a JPEG's metadata


def image_text(path: object, max_pixels: int | None) -> dict[str, str]:
    """A PNG's text chunks, or the JSON object in a JPEG's comment, `{keyword: text}`."""
    return _embedded_text(path, max_pixels, ("PNG", "JPEG"))


def _embedded_text(path: object, max_pixels: int | None, formats: tuple[str, ...]
                   ) -> dict[str, str]:
    p = _check_regular_file(path)
    with _strict_pillow(max_pixels):
        try:
            with _open(p, path, max_pixels, formats) as im:
                width, height = im.size
                if max_pixels is not None and width * height > max_pixels:
                    raise _too_big(path, width * height, max_pixels, f"image ({width}x{height})")
                if im.format == "PNG":
                    text = getattr(im, "text", None) or {}
                    return {str(key): str(value) for key, value in text.items()}
                comment = im.info.get("comment", b"")
        except ImageError:
            raise
        except Image.DecompressionBombWarning as exc:
            raise _error(path, f"refused as a possible decompression bomb ({exc})") from None
        except Exception as exc:  # noqa: BLE001 - nothing but ImageError escapes
            raise _error(path, _describe(exc)) from exc
    try:
        found = json.loads(comment)
    except (ValueError, RecursionError, UnicodeDecodeError):
        return {}
    if not isinstance(found, dict):
        return {}
    return {str(key): str(value) for key, value in found.items() if isinstance(value, str)}
