"""Reading and writing images safely: the public face of dreamkit's image files.

* a bad input image never produces a traceback: every problem becomes one `ImageError` whose
  message is `<path>: <what is wrong>` on one line (decoding: `dreamkit.image_decode`);
* the pixel count is checked from the file header before any pixel is decoded
  (`DEFAULT_MAX_PIXELS`, a decompression-bomb guard);
* an image with NaN or infinite values is never written, and no write leaves a truncated file
  behind (`dreamkit.files.atomic_path`). Writing goes through imageio's v3 API.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
from PIL import PngImagePlugin

from dreamkit.files import FileError, atomic_path, ctrl_c_deferred
from dreamkit.image_decode import (
    JPEG_QUALITY_KEY,
    ImageError,
    _describe,
    _error,
    _to_path,
    decode_image,
    image_text,
    png_text,
)
from dreamkit.settings import DEFAULT_MAX_PIXELS, SAVE_EXTENSIONS

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "JPEG_QUALITY_KEY",
    "IMAGE_EXTENSIONS",
    "ImageError",
    "SAVE_EXTENSIONS",
    "image_files",
    "list_images",
    "load_image",
    "read_metadata",
    "read_png_text",
    "save_image",
    "to_uint8",
]

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
)
"""File extensions :func:`list_images` picks up (compared case-insensitively)."""

_WRITE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


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
    return decode_image(path, max_pixels, all_frames)


def read_png_text(
    path: str | os.PathLike[str], *, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> dict[str, str]:
    """The tEXt/zTXt/iTXt chunks of a PNG file as ``{keyword: text}``.

    Text chunks may follow the pixel data, so the image is decoded (under the
    same ``max_pixels`` guard as :func:`load_image`). Raises ImageError if the
    file is not a readable PNG.
    """
    return png_text(path, max_pixels)


def read_metadata(
    path: str | os.PathLike[str], *, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> dict[str, str]:
    """What `save_image` stored: a PNG's text chunks, or a JPEG's JSON comment (with the
    quality it was written at under `JPEG_QUALITY_KEY`); {} when there is none."""
    return image_text(path, max_pixels)


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


def image_files(paths: list[str | os.PathLike[str]]) -> list[Path]:
    """The image files named by `paths`: files as they are, folders expanded (`list_images`)."""
    files: list[Path] = []
    for path in map(_to_path, paths):
        files.extend(list_images(path) if path.is_dir() else [path])
    return files


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
    tEXt/iTXt chunks, see :func:`read_png_text`), ``.jpg``/``.jpeg`` (``metadata``
    and the quality go into a JSON comment, see :func:`read_metadata`) or ``.webp``
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
        if fmt == "JPEG" and text:
            comment = json.dumps({**text, JPEG_QUALITY_KEY: str(quality)})
            if len(comment.encode()) > 65_000:
                raise _error(path, "metadata is too long for a JPEG comment; save as .png")
            options["comment"] = comment
    try:
        with ctrl_c_deferred(), atomic_path(target) as tmp:
            try:
                _encode(array, tmp, extension, options)
            except Exception as exc:  # noqa: BLE001 - report encoder failures as ImageError
                raise _error(path, f"could not write {fmt} ({_describe(exc)})") from exc
    except FileError as exc:  # the folder or the rename
        raise ImageError(str(exc)) from None
    return target
