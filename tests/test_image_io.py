"""dreamkit.image_io: bad inputs become ImageError, good ones load right, writes are atomic."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile, ImageOps, PngImagePlugin

from dreamkit.errors import DreamkitError
from dreamkit.image_io import (
    DEFAULT_MAX_PIXELS,
    ImageError,
    list_images,
    load_image,
    read_png_text,
    save_image,
    to_uint8,
)
from tests.helpers import IMAGES

HYPOTHESIS = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


# --------------------------------------------------------------------------- helpers


def _encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` RGB pixels but holds almost no data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def _photo(size: tuple[int, int] = (48, 32)) -> Image.Image:
    with Image.open(IMAGES / "chelsea.jpg") as im:
        return im.convert("RGB").resize(size)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _assert_image(t: torch.Tensor, shape: tuple[int, ...]) -> None:
    assert isinstance(t, torch.Tensor)
    assert t.dtype == torch.float32
    assert tuple(t.shape) == shape
    assert torch.isfinite(t).all()
    assert float(t.min()) >= 0.0 and float(t.max()) <= 1.0


def _assert_one_line(exc: ImageError, path: object) -> str:
    message = str(exc)
    assert "\n" not in message
    assert message.startswith(f"{os.fspath(path)}: ")
    assert isinstance(exc, DreamkitError)
    return message


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


# --------------------------------------------------------------------------- bad inputs


def _bad_missing(tmp: Path) -> Path:
    return tmp / "missing.png"


def _bad_folder(tmp: Path) -> Path:
    (tmp / "folder.png").mkdir()
    return tmp / "folder.png"


def _bad_empty(tmp: Path) -> Path:
    return _write(tmp / "empty.jpg", b"")


def _bad_text(tmp: Path) -> Path:
    return _write(tmp / "notes.jpg", b"this is a shopping list\nmilk\neggs\n")


def _bad_binary(tmp: Path) -> Path:
    return _write(tmp / "noise.png", bytes(range(256)) * 4)


def _bad_truncated_jpeg(tmp: Path) -> Path:
    data = _encode(_photo(), "JPEG", quality=90)
    return _write(tmp / "cut.jpg", data[: len(data) // 2])


def _bad_truncated_progressive_jpeg(tmp: Path) -> Path:
    data = _encode(_photo(), "JPEG", quality=90, progressive=True)
    return _write(tmp / "cutp.jpg", data[: len(data) * 2 // 3])


def _bad_truncated_png(tmp: Path) -> Path:
    data = _encode(_photo(), "PNG")
    return _write(tmp / "cut.png", data[: len(data) // 2])


def _bad_corrupt_png(tmp: Path) -> Path:
    data = bytearray(_encode(_photo(), "PNG"))
    start = data.index(b"IDAT") + 40
    data[start : start + 16] = b"\xff" * 16
    return _write(tmp / "corrupt.png", bytes(data))


def _bad_truncated_gif(tmp: Path) -> Path:
    data = _encode(_photo(), "GIF")
    return _write(tmp / "cut.gif", data[: len(data) // 2])


def _bad_huge_header(tmp: Path) -> Path:
    return _write(tmp / "bomb.png", _png_header_only(100_000, 100_000))


def _bad_float_nan(tmp: Path) -> Path:
    arr = np.zeros((4, 4), np.float32)
    arr[1, 1] = np.nan
    Image.fromarray(arr, mode="F").save(tmp / "nan.tif")
    return tmp / "nan.tif"


BAD_INPUTS = {
    "missing": (_bad_missing, "no such file"),
    "folder": (_bad_folder, "is a folder"),
    "empty": (_bad_empty, "empty"),
    "text named .jpg": (_bad_text, "text file"),
    "binary noise": (_bad_binary, "not a recognised image"),
    "truncated jpeg": (_bad_truncated_jpeg, "truncated"),
    "truncated progressive jpeg": (_bad_truncated_progressive_jpeg, "truncated"),
    "truncated png": (_bad_truncated_png, "truncated"),
    "corrupt png": (_bad_corrupt_png, "corrupt"),
    "truncated gif": (_bad_truncated_gif, "truncated"),
    "huge dimensions": (_bad_huge_header, "--max-pixels"),
    "float with nan": (_bad_float_nan, "NaN"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_raises_image_error(tmp_path: Path, case: str) -> None:
    make, expected = BAD_INPUTS[case]
    path = make(tmp_path)
    with pytest.raises(ImageError) as info:
        load_image(path)
    message = _assert_one_line(info.value, path)
    assert expected in message


def test_huge_header_message_names_the_limit(tmp_path: Path) -> None:
    path = _bad_huge_header(tmp_path)
    with pytest.raises(ImageError, match="10,000,000,000 pixels.*64,000,000.*--max-pixels"):
        load_image(path)
    assert DEFAULT_MAX_PIXELS == 64_000_000


@pytest.mark.parametrize("max_pixels", [100, 1000, 1200, 1535])
def test_max_pixels_override(tmp_path: Path, max_pixels: int) -> None:
    # 48x32 = 1536 pixels; limits below that trip Pillow's own warning or error
    # as well as dreamkit's check, and all report the same way.
    path = tmp_path / "small.png"
    _photo().save(path)
    with pytest.raises(ImageError, match=f"limit of {max_pixels:,}.*--max-pixels"):
        load_image(path, max_pixels=max_pixels)
    _assert_image(load_image(path, max_pixels=1536), (3, 32, 48))
    _assert_image(load_image(path, max_pixels=None), (3, 32, 48))


def test_max_pixels_counts_all_frames(tmp_path: Path) -> None:
    path = _animated_gif(tmp_path)  # 3 frames of 20x12
    assert load_image(path, all_frames=True, max_pixels=720).shape[0] == 3
    with pytest.raises(ImageError, match="the first 3 frames.*limit of 700"):
        load_image(path, all_frames=True, max_pixels=700)
    _assert_image(load_image(path, max_pixels=240), (3, 12, 20))


@pytest.mark.parametrize("bad", [0, -5, 2.5, "many"])
def test_bad_max_pixels_argument(tmp_path: Path, bad: object) -> None:
    path = tmp_path / "ok.png"
    _photo().save(path)
    with pytest.raises(ImageError, match="max_pixels"):
        load_image(path, max_pixels=bad)  # type: ignore[arg-type]


def test_not_a_path() -> None:
    with pytest.raises(ImageError, match="not a file path"):
        load_image(None)  # type: ignore[arg-type]


def test_pillow_globals_restored_and_strict_even_if_lenient(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    before = Image.MAX_IMAGE_PIXELS
    path = _bad_truncated_jpeg(tmp_path)
    with pytest.raises(ImageError, match="truncated"):
        load_image(path)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True
    assert Image.MAX_IMAGE_PIXELS == before


# --------------------------------------------------------------------------- good conversions


def _load_from(tmp_path: Path, img: Image.Image, name: str, **save_kwargs) -> torch.Tensor:
    path = tmp_path / name
    img.save(path, **save_kwargs)
    return load_image(path)


def test_rgb_png_exact(tmp_path: Path) -> None:
    img = _photo()
    t = _load_from(tmp_path, img, "rgb.png")
    _assert_image(t, (3, 32, 48))
    expected = np.asarray(img).astype(np.float32).transpose(2, 0, 1) / 255
    assert np.array_equal(t.numpy(), expected)


def test_grayscale_l(tmp_path: Path) -> None:
    t = _load_from(tmp_path, Image.new("L", (5, 3), 100), "gray.png")
    _assert_image(t, (3, 3, 5))
    assert torch.allclose(t, torch.full_like(t, 100 / 255))


def test_one_bit(tmp_path: Path) -> None:
    img = Image.new("1", (8, 4), 0)
    img.putpixel((3, 2), 1)
    t = _load_from(tmp_path, img, "bits.png")
    _assert_image(t, (3, 4, 8))
    assert t[:, 2, 3].tolist() == [1.0, 1.0, 1.0] and t[:, 0, 0].tolist() == [0.0, 0.0, 0.0]


def test_16bit_png_keeps_precision(tmp_path: Path) -> None:
    ramp = np.linspace(0, 65535, 300 * 4).round().astype(np.uint16).reshape(4, 300)
    img = Image.fromarray(ramp)
    assert img.mode == "I;16"
    t = _load_from(tmp_path, img, "deep.png")
    _assert_image(t, (3, 4, 300))
    assert len(torch.unique(t[0])) > 256
    assert np.allclose(t[0].numpy(), ramp / 65535, atol=1e-6)
    assert torch.equal(t[0], t[1]) and torch.equal(t[1], t[2])


def test_32bit_int_tiff(tmp_path: Path) -> None:
    arr = np.array([[0, 1000], [40000, 65535]], np.int32)
    t = _load_from(tmp_path, Image.fromarray(arr, mode="I"), "int.tif")
    _assert_image(t, (3, 2, 2))
    assert np.allclose(t[0].numpy(), arr / 65535, atol=1e-6)


def test_float_tiff_in_range_and_stretched(tmp_path: Path) -> None:
    arr = np.array([[0.0, 0.25], [0.5, 1.0]], np.float32)
    t = _load_from(tmp_path, Image.fromarray(arr, mode="F"), "unit.tif")
    assert np.allclose(t[0].numpy(), arr)
    wide = np.array([[-10.0, 0.0], [10.0, 30.0]], np.float32)
    t = _load_from(tmp_path, Image.fromarray(wide, mode="F"), "wide.tif")
    _assert_image(t, (3, 2, 2))
    assert np.allclose(t[0].numpy(), (wide + 10) / 40)


def test_rgba_alpha_over_white(tmp_path: Path) -> None:
    img = Image.new("RGBA", (3, 1))
    img.putdata([(255, 0, 0, 0), (255, 0, 0, 255), (0, 0, 0, 128)])
    t = _load_from(tmp_path, img, "alpha.png")
    _assert_image(t, (3, 1, 3))
    assert t[:, 0, 0].tolist() == [1.0, 1.0, 1.0]  # fully transparent -> white
    assert t[:, 0, 1].tolist() == [1.0, 0.0, 0.0]  # opaque -> unchanged
    assert np.allclose(t[:, 0, 2].numpy(), 1 - 128 / 255)  # half black over white


def test_la_alpha_over_white(tmp_path: Path) -> None:
    img = Image.new("LA", (2, 1))
    img.putdata([(0, 0), (50, 255)])
    t = _load_from(tmp_path, img, "la.png")
    assert t[:, 0, 0].tolist() == [1.0, 1.0, 1.0]
    assert np.allclose(t[:, 0, 1].numpy(), 50 / 255)


def _palette_image() -> Image.Image:
    img = Image.new("P", (4, 2), 0)
    img.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    img.putpixel((1, 0), 1)
    img.putpixel((2, 0), 2)
    return img


def test_palette_png(tmp_path: Path) -> None:
    t = _load_from(tmp_path, _palette_image(), "pal.png")
    _assert_image(t, (3, 2, 4))
    assert t[:, 0, 0].tolist() == [1.0, 0.0, 0.0]
    assert t[:, 0, 1].tolist() == [0.0, 1.0, 0.0]
    assert t[:, 0, 2].tolist() == [0.0, 0.0, 1.0]


def test_palette_png_with_transparency(tmp_path: Path) -> None:
    t = _load_from(tmp_path, _palette_image(), "palt.png", transparency=0)
    assert t[:, 0, 0].tolist() == [1.0, 1.0, 1.0]  # transparent red -> white
    assert t[:, 0, 1].tolist() == [0.0, 1.0, 0.0]


def test_grayscale_trns_over_white(tmp_path: Path) -> None:
    img = Image.new("L", (2, 1), 7)
    img.putpixel((1, 0), 30)
    t = _load_from(tmp_path, img, "ltrns.png", transparency=7)
    assert t[:, 0, 0].tolist() == [1.0, 1.0, 1.0]
    assert np.allclose(t[:, 0, 1].numpy(), 30 / 255)


@pytest.mark.parametrize(
    ("cmyk", "rgb"),
    [
        ((255, 0, 0, 0), (0, 255, 255)),
        ((0, 255, 0, 0), (255, 0, 255)),
        ((0, 0, 255, 0), (255, 255, 0)),
        ((0, 0, 0, 255), (0, 0, 0)),
        ((0, 0, 0, 0), (255, 255, 255)),
    ],
)
def test_cmyk_jpeg(tmp_path: Path, cmyk: tuple, rgb: tuple) -> None:
    t = _load_from(tmp_path, Image.new("CMYK", (16, 16), cmyk), "cmyk.jpg", quality=95)
    _assert_image(t, (3, 16, 16))
    assert np.allclose(t[:, 8, 8].numpy() * 255, rgb, atol=12)


def test_exif_orientation_6_jpeg(tmp_path: Path) -> None:
    # Stored 40 wide x 24 tall, red block in the stored top-left corner. Orientation
    # 6 means "rotate 90 degrees clockwise to view", so upright it is 24 x 40 with
    # the red block in the top-right corner.
    img = Image.new("RGB", (40, 24), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 12, 12))
    exif = Image.Exif()
    exif[0x0112] = 6
    t = _load_from(tmp_path, img, "rotated.jpg", exif=exif, quality=95)
    _assert_image(t, (3, 40, 24))
    assert np.allclose(t[:, 3, 24 - 4].numpy(), [1, 0, 0], atol=0.1)  # top-right red
    assert np.allclose(t[:, 3, 3].numpy(), [0, 0, 1], atol=0.1)  # top-left blue
    assert np.allclose(t[:, 40 - 4, 24 - 4].numpy(), [0, 0, 1], atol=0.1)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_matches_pillow(tmp_path: Path, orientation: int) -> None:
    rng = np.random.default_rng(orientation)
    img = Image.fromarray(rng.integers(0, 256, (5, 7, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "o.png"
    img.save(path, exif=exif)
    with Image.open(path) as im:
        expected = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    t = load_image(path)
    assert np.array_equal(to_uint8(t), expected)


def test_broken_exif_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "badexif.jpg"
    _photo().save(path, exif=b"Exif\0\0MM\0*garbage")
    _assert_image(load_image(path), (3, 32, 48))


def _animated_gif(tmp_path: Path) -> Path:
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    frames = [Image.new("RGB", (20, 12), c) for c in colours]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    return path


def test_animated_gif_first_and_all_frames(tmp_path: Path) -> None:
    path = _animated_gif(tmp_path)
    first = load_image(path)
    _assert_image(first, (3, 12, 20))
    assert first[:, 5, 5].tolist() == [1.0, 0.0, 0.0]
    every = load_image(path, all_frames=True)
    _assert_image(every, (3, 3, 12, 20))
    assert every[:, :, 5, 5].tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]


@pytest.mark.parametrize("name", ["anim.png", "anim.webp"])
def test_animated_png_and_webp(tmp_path: Path, name: str) -> None:
    frames = [Image.new("RGB", (10, 6), (40 * i, 200, 255 - 40 * i)) for i in range(4)]
    path = tmp_path / name
    kwargs = {"lossless": True} if name.endswith("webp") else {}
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=40, **kwargs)
    _assert_image(load_image(path), (3, 6, 10))
    every = load_image(path, all_frames=True)
    _assert_image(every, (4, 3, 6, 10))
    assert np.allclose(every[:, 0, 0, 0].numpy() * 255, [0, 40, 80, 120], atol=2)


def test_single_frame_all_frames(tmp_path: Path) -> None:
    path = tmp_path / "one.png"
    _photo().save(path)
    _assert_image(load_image(path, all_frames=True), (1, 3, 32, 48))


@pytest.mark.parametrize("name", ["x.bmp", "x.tif", "x.webp", "x.jpeg", "x.gif"])
def test_other_formats(tmp_path: Path, name: str) -> None:
    _assert_image(_load_from(tmp_path, _photo(), name), (3, 32, 48))


# --------------------------------------------------------------------------- saving


def test_png_round_trip_with_metadata(tmp_path: Path) -> None:
    t = torch.rand(3, 10, 14)
    meta = {"dreamkit:layer": "inception4c", "prompt": "café ☃ 夢", "empty": ""}
    out = save_image(t, tmp_path / "out.png", metadata=meta)
    assert out == tmp_path / "out.png"
    back = load_image(out)
    assert torch.equal(back, torch.from_numpy(to_uint8(t).transpose(2, 0, 1)).float() / 255)
    assert read_png_text(out) == meta
    assert _leftovers(tmp_path) == []


def test_save_batch_of_one_and_clamp(tmp_path: Path) -> None:
    t = torch.tensor([-1.0, 0.5, 2.0]).view(1, 3, 1, 1).expand(1, 3, 2, 2).contiguous()
    back = load_image(save_image(t, tmp_path / "c.png"))
    assert np.allclose(back[:, 0, 0].numpy(), [0.0, 128 / 255, 1.0])


@pytest.mark.parametrize("name", ["o.jpg", "o.JPEG", "o.webp"])
def test_lossy_formats(tmp_path: Path, name: str) -> None:
    t = torch.full((3, 16, 16), 0.5)
    back = load_image(save_image(t, tmp_path / name, quality=90, metadata={"a": "b"}))
    assert (back - t).abs().max() < 0.05


def test_save_creates_missing_parent(tmp_path: Path) -> None:
    out = save_image(torch.rand(3, 4, 4), tmp_path / "a" / "b" / "c.png")
    assert out.is_file()


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_refused_and_nothing_written(tmp_path: Path, value: float) -> None:
    t = torch.rand(3, 8, 8)
    t[1, 2, 3] = value
    target = tmp_path / "bad.png"
    with pytest.raises(ImageError, match="NaN or infinite") as info:
        save_image(t, target)
    _assert_one_line(info.value, target)
    assert list(tmp_path.iterdir()) == []


def test_non_finite_keeps_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "keep.png"
    target.write_bytes(b"old")
    with pytest.raises(ImageError):
        save_image(torch.full((3, 2, 2), float("nan")), target)
    assert target.read_bytes() == b"old"


@pytest.mark.parametrize(
    ("image", "match"),
    [
        (torch.rand(4, 4), "shape"),
        (torch.rand(2, 3, 4, 4), "shape"),
        (torch.rand(1, 4, 4), "shape"),
        (torch.rand(3, 0, 4), "shape"),
        (torch.zeros(3, 4, 4, dtype=torch.uint8), "float"),
        (np.zeros((3, 4, 4), np.float32), "torch.Tensor"),
    ],
)
def test_bad_tensors_refused(tmp_path: Path, image: object, match: str) -> None:
    with pytest.raises(ImageError, match=match):
        save_image(image, tmp_path / "x.png")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["x.bmp", "x.tga", "noext", "x.png.txt"])
def test_unknown_extension(tmp_path: Path, name: str) -> None:
    with pytest.raises(ImageError, match="use .png, .jpg, .jpeg or .webp"):
        save_image(torch.rand(3, 4, 4), tmp_path / name)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("quality", [0, 101, 9.5, True])
def test_bad_quality(tmp_path: Path, quality: object) -> None:
    with pytest.raises(ImageError, match="quality"):
        save_image(torch.rand(3, 4, 4), tmp_path / "x.jpg", quality=quality)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "metadata",
    [{"": "x"}, {"a\nb": "x"}, {" lead": "x"}, {"k" * 80: "x"}, {"k": 3}, {"k": "a\0b"}, ["k"]],
)
def test_bad_metadata(tmp_path: Path, metadata: object) -> None:
    with pytest.raises(ImageError, match="metadata"):
        save_image(torch.rand(3, 4, 4), tmp_path / "x.png", metadata=metadata)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_encoder_failure_leaves_old_file_intact(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "keep.png"
    save_image(torch.zeros(3, 4, 4), target, metadata={"v": "old"})
    old = target.read_bytes()

    def exploding_save(im, fp, filename, *args, **kwargs):
        fp.write(b"\x89PNG\r\n\x1a\n half an image")
        raise OSError("disk on fire")

    monkeypatch.setitem(Image.SAVE, "PNG", exploding_save)
    with pytest.raises(ImageError, match="could not write PNG.*disk on fire") as info:
        save_image(torch.ones(3, 4, 4), target, metadata={"v": "new"})
    _assert_one_line(info.value, target)
    assert target.read_bytes() == old
    assert _leftovers(tmp_path) == []


def test_unwritable_destinations(tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(ImageError, match="cannot create folder"):
        save_image(torch.rand(3, 4, 4), blocker / "out.png")
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(ImageError, match="is a folder"):
        save_image(torch.rand(3, 4, 4), tmp_path / "dir.png")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores modes")
def test_read_only_folder(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(ImageError, match="not writable"):
            save_image(torch.rand(3, 4, 4), locked / "out.png")
    finally:
        locked.chmod(0o700)


# ------------------------------------------------------------------ read_png_text, list_images


def test_read_png_text(tmp_path: Path) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("plain", "value")
    info.add_text("zipped", "z" * 200, zip=True)
    info.add_itxt("intl", "夢")
    path = tmp_path / "t.png"
    _photo().save(path, pnginfo=info)
    assert read_png_text(path) == {"plain": "value", "zipped": "z" * 200, "intl": "夢"}
    bare = tmp_path / "bare.png"
    _photo().save(bare)
    assert read_png_text(bare) == {}


@pytest.mark.parametrize("make", [_bad_missing, _bad_text, _bad_truncated_png, _bad_empty])
def test_read_png_text_errors(tmp_path: Path, make) -> None:
    path = make(tmp_path)
    with pytest.raises(ImageError) as info:
        read_png_text(path)
    _assert_one_line(info.value, path)


def test_read_png_text_rejects_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    _photo().save(path, "JPEG")
    with pytest.raises(ImageError, match="expected PNG"):
        read_png_text(path)


def test_list_images(tmp_path: Path) -> None:
    for name in ["b.PNG", "a.jpg", "c.webp", "d.tiff", "e.gif", "f.bmp", "g.jpeg", "h.tif"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / ".hidden.png").write_bytes(b"x")
    (tmp_path / "sub.png").mkdir()
    names = [p.name for p in list_images(tmp_path)]
    assert names == ["a.jpg", "b.PNG", "c.webp", "d.tiff", "e.gif", "f.bmp", "g.jpeg", "h.tif"]
    assert all(p.parent == tmp_path for p in list_images(str(tmp_path)))


def test_list_images_errors(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="no such folder"):
        list_images(tmp_path / "nope")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ImageError, match="not a folder"):
        list_images(tmp_path / "notes.txt")
    with pytest.raises(ImageError, match="no image files"):
        list_images(tmp_path)


def test_to_uint8() -> None:
    t = torch.tensor([0.0, 0.5, 1.0, 1.5]).view(1, 1, 4).expand(3, 1, 4)
    arr = to_uint8(t.to(torch.float16))
    assert arr.dtype == np.uint8 and arr.shape == (1, 4, 3)
    assert arr[0, :, 0].tolist() == [0, 128, 255, 255]


# --------------------------------------------------------------------------- property tests


def _small_encoded() -> dict[str, bytes]:
    img = _photo((12, 9))
    return {
        "png": _encode(img, "PNG"),
        "jpeg": _encode(img, "JPEG", quality=80),
        "progressive": _encode(img, "JPEG", quality=80, progressive=True),
        "gif": _encode(img, "GIF"),
        "webp": _encode(img, "WEBP", quality=80),
        "bmp": _encode(img, "BMP"),
        "tiff": _encode(img, "TIFF"),
        "rgba-png": _encode(img.convert("RGBA"), "PNG"),
        "palette-png": _encode(img.convert("P"), "PNG", transparency=3),
        "cmyk-jpeg": _encode(img.convert("CMYK"), "JPEG"),
    }


ENCODED = _small_encoded()
HEADERS = [
    b"",
    b"\x89PNG\r\n\x1a\n",
    ENCODED["png"][:33],  # signature + IHDR
    b"\xff\xd8\xff\xe0",
    ENCODED["jpeg"][:200],
    b"GIF89a",
    ENCODED["gif"][:13],
    b"RIFF\x00\x01\x00\x00WEBPVP8 ",
    b"BM",
    b"II*\x00",
    b"MM\x00*",
]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _load_or_image_error(path: Path, max_pixels: int = 100_000) -> None:
    try:
        t = load_image(path, max_pixels=max_pixels)
    except ImageError as exc:
        assert "\n" not in str(exc) and str(exc).startswith(f"{path}: ")
        return
    assert t.dtype == torch.float32 and t.ndim == 3 and t.shape[0] == 3
    assert t.shape[1] >= 1 and t.shape[2] >= 1
    assert torch.isfinite(t).all() and float(t.min()) >= 0 and float(t.max()) <= 1


@HYPOTHESIS
@given(header=st.sampled_from(HEADERS), body=st.binary(max_size=300))
def test_fuzz_random_bytes(scratch: Path, header: bytes, body: bytes) -> None:
    path = scratch / "fuzz.jpg"
    path.write_bytes(header + body)
    _load_or_image_error(path)


@HYPOTHESIS
@given(
    kind=st.sampled_from(sorted(ENCODED)),
    cut=st.floats(0.0, 1.0),
    flips=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)), max_size=3),
)
def test_fuzz_truncated_and_corrupted(scratch: Path, kind: str, cut: float, flips: list) -> None:
    data = bytearray(ENCODED[kind])
    for where, value in flips:
        data[min(int(where * len(data)), len(data) - 1)] = value
    data = data[: max(1, int(cut * len(data)))]
    path = scratch / f"fuzz.{kind}"
    path.write_bytes(bytes(data))
    _load_or_image_error(path)


MODES = {
    # mode: (numpy dtype, channels, value range, formats that can store it)
    "1": (np.bool_, 0, (0, 1), ["PNG", "TIFF", "BMP", "GIF"]),
    "L": (np.uint8, 0, (0, 255), ["PNG", "JPEG", "TIFF", "BMP", "GIF", "WEBP"]),
    "LA": (np.uint8, 2, (0, 255), ["PNG", "TIFF"]),
    "P": (np.uint8, 0, (0, 255), ["PNG", "GIF", "BMP", "TIFF"]),
    "RGB": (np.uint8, 3, (0, 255), ["PNG", "JPEG", "TIFF", "BMP", "GIF", "WEBP"]),
    "RGBA": (np.uint8, 4, (0, 255), ["PNG", "TIFF", "WEBP"]),
    "CMYK": (np.uint8, 4, (0, 255), ["JPEG", "TIFF"]),
    "I;16": (np.uint16, 0, (0, 65535), ["PNG", "TIFF"]),
    "I": (np.int32, 0, (-(2**31), 2**31 - 1), ["TIFF"]),
    "F": (np.float32, 0, (float(np.float32(-3e38)), float(np.float32(3e38))), ["TIFF"]),
}


@st.composite
def pil_images(draw) -> tuple[Image.Image, str]:
    mode = draw(st.sampled_from(sorted(MODES)))
    dtype, channels, (lo, hi), formats = MODES[mode]
    h, w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    shape = (h, w, channels) if channels else (h, w)
    count = int(np.prod(shape))
    if dtype is np.float32:
        values = st.floats(lo, hi, width=32, allow_nan=False, allow_infinity=False)
    elif dtype is np.bool_:
        values = st.booleans()
    else:
        values = st.integers(lo, hi)
    arr = np.array(draw(st.lists(values, min_size=count, max_size=count)), dtype=dtype)
    arr = arr.reshape(shape)
    if mode == "P":
        img = Image.fromarray(arr, mode="L").convert("P")
        img.putpalette(draw(st.binary(min_size=768, max_size=768)))
        if draw(st.booleans()):
            img.info["transparency"] = draw(st.integers(0, 255))
    elif mode == "1":
        img = Image.fromarray(arr.astype(np.uint8) * 255, mode="L").convert("1")
    elif mode == "CMYK":
        img = Image.frombytes("CMYK", (w, h), arr.tobytes())
    else:
        img = Image.fromarray(arr, mode=mode) if mode != "I;16" else Image.fromarray(arr)
    return img, draw(st.sampled_from(formats))


@HYPOTHESIS
@given(case=pil_images())
def test_random_arrays_of_any_mode_load(scratch: Path, case: tuple[Image.Image, str]) -> None:
    img, fmt = case
    path = scratch / f"random.{fmt.lower()}"
    kwargs = {}
    if "transparency" in img.info:
        kwargs["transparency"] = img.info["transparency"]
    img.save(path, fmt, **kwargs)
    t = load_image(path)
    _assert_image(t, (3, img.height, img.width))
    if fmt in ("PNG", "TIFF", "BMP") and img.mode in ("L", "RGB"):
        expected = np.asarray(img.convert("RGB")).astype(np.float32).transpose(2, 0, 1) / 255
        assert np.array_equal(t.numpy(), expected)
