"""Read Caffe `.caffemodel` weights without Caffe or protobuf, and fetch the zoo models.

A `.caffemodel` is a binary protobuf `NetParameter`. Only the few fields that hold weights are
decoded: the layers (V2 `layer` = 100 or legacy V1 `layers` = 2), their names and types, and
their `BlobProto`s. Everything else is skipped by wire type.
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.numpy
from tqdm import tqdm

from dreamkit.errors import DreamkitError

__all__ = [
    "CAFFE_ZOO",
    "CaffeSource",
    "convert_caffemodel",
    "fetch_caffe_weights",
    "read_caffemodel",
]

LAYOUT = "conv OIHW float32; fc (out,in)"

# Wire types of the protobuf encoding.
_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5

_V1_INNER_PRODUCT = 14  # V1LayerParameter.LayerType.INNER_PRODUCT
_BLOB_SUFFIXES = ("weight", "bias")
_CHUNK = 1 << 20
_TIMEOUT_S = 60


@dataclass(frozen=True)
class CaffeSource:
    """Where a Caffe model's weights are published, and the SHA-1 of that file."""

    url: str
    sha1: str
    license: str


CAFFE_ZOO: dict[str, CaffeSource] = {
    # SHA-1 from BVLC/caffe models/bvlc_googlenet/readme.md.
    "bvlc_googlenet": CaffeSource(
        url="http://dl.caffe.berkeleyvision.org/bvlc_googlenet.caffemodel",
        sha1="405fc5acd08a3bb12de8ee5e23a96bec22f08204",
        license="unrestricted (BVLC model zoo)",
    ),
    # The file in DeepScale/SqueezeNet at a fixed commit; SHA-1 as listed for this URL in
    # opencv/opencv_extra testdata/dnn/download_models.py.
    "squeezenet1_1": CaffeSource(
        url="https://raw.githubusercontent.com/DeepScale/SqueezeNet/"
        "b5c3f1a23713c8b3fd7b801d229f6b04c64374a5/SqueezeNet_v1.1/squeezenet_v1.1.caffemodel",
        sha1="3397f026368a45ae236403ccc81cfcbe8ebe1bd0",
        license="BSD-2-Clause",
    ),
}


class _Malformed(Exception):
    """The bytes are not the protobuf message they should be (reported with the file name)."""


# --- protobuf wire format ----------------------------------------------------------------------


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    """Decode the varint at `pos`; return (value, position after it)."""
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise _Malformed("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift >= 70:
            raise _Malformed("varint longer than 10 bytes")


def _int64(value: int) -> int:
    """Reinterpret a decoded varint as a two's-complement int64 (negative ints use 10 bytes)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _fields(buf: memoryview) -> Iterator[tuple[int, int, Any]]:
    """Yield (field number, wire type, value) for each field of one message.

    Varints are ints; length-delimited, 64-bit and 32-bit values are memoryview slices.
    """
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise _Malformed("field number 0")
        if wire == _VARINT:
            value, pos = _varint(buf, pos)
        elif wire in (_FIXED64, _FIXED32, _LENGTH):
            if wire == _LENGTH:
                size, pos = _varint(buf, pos)
            else:
                size = 8 if wire == _FIXED64 else 4
            if pos + size > len(buf):
                raise _Malformed(f"field {field} runs past the end of its message")
            value, pos = buf[pos : pos + size], pos + size
        else:
            raise _Malformed(f"unsupported wire type {wire} (field {field})")
        yield field, wire, value


def _packed_varints(value: int | memoryview) -> list[int]:
    """A repeated varint field element: one value, or a packed run of them."""
    if isinstance(value, int):
        return [value]
    out = []
    pos = 0
    while pos < len(value):
        item, pos = _varint(value, pos)
        out.append(item)
    return out


def _repeated_floats(field: int, wire: int, value: Any, dtype: str) -> np.ndarray:
    """A repeated float/double field element: packed (length-delimited) or a single fixed value."""
    itemsize = np.dtype(dtype).itemsize
    if wire not in (_LENGTH, _FIXED32 if itemsize == 4 else _FIXED64):
        raise _Malformed(f"field {field} has wire type {wire}, expected floating-point data")
    if len(value) % itemsize:
        raise _Malformed(f"packed field {field} has {len(value)} bytes, not whole values")
    return np.frombuffer(value, dtype=dtype)


# --- Caffe messages ----------------------------------------------------------------------------


def _blob(buf: memoryview) -> tuple[np.ndarray, bool]:
    """Decode a BlobProto into a float32 array; the flag says it used the legacy 4-D shape."""
    shape: list[int] | None = None
    legacy = {1: 0, 2: 0, 3: 0, 4: 0}  # num, channels, height, width
    floats: list[np.ndarray] = []
    doubles: list[np.ndarray] = []
    for field, wire, value in _fields(buf):
        if field == 7:
            if wire != _LENGTH:
                raise _Malformed("BlobProto.shape is not a message")
            shape = []
            for dim_field, dim_wire, dim in _fields(value):
                if dim_field == 1:
                    if dim_wire not in (_VARINT, _LENGTH):
                        raise _Malformed("BlobShape.dim is not an integer")
                    shape.extend(_int64(d) for d in _packed_varints(dim))
        elif field in legacy:
            if wire != _VARINT:
                raise _Malformed(f"BlobProto field {field} is not an integer")
            legacy[field] = _int64(value)
        elif field == 5:
            floats.append(_repeated_floats(field, wire, value, "<f4"))
        elif field == 8:
            doubles.append(_repeated_floats(field, wire, value, "<f8"))
    if floats and doubles:
        raise _Malformed("blob has both float and double data")
    dims = tuple(shape) if shape is not None else tuple(legacy.values())
    if any(d < 0 for d in dims):
        raise _Malformed(f"negative blob dimension in {dims}")
    data = np.concatenate(floats or doubles) if floats or doubles else np.empty(0, np.float32)
    if data.size != math.prod(dims):
        raise _Malformed(f"blob holds {data.size} values but its shape {dims} needs "
                         f"{math.prod(dims)}")
    return data.astype(np.float32).reshape(dims), shape is None


def _layer(buf: memoryview, v1: bool) -> tuple[str, bool, list[tuple[np.ndarray, bool]]]:
    """Decode a LayerParameter (or V1LayerParameter): name, is-InnerProduct, blobs."""
    name_field, blobs_field = (4, 6) if v1 else (1, 7)
    name = ""
    inner_product = False
    blobs = []
    for field, wire, value in _fields(buf):
        if field == name_field:
            if wire != _LENGTH:
                raise _Malformed("layer name is not a string")
            try:
                name = bytes(value).decode("utf-8")
            except UnicodeDecodeError:
                raise _Malformed("layer name is not UTF-8") from None
        elif field == blobs_field:
            if wire != _LENGTH:
                raise _Malformed("layer blob is not a message")
            blobs.append(_blob(value))
        elif v1 and field == 5 and wire == _VARINT:
            inner_product = value == _V1_INNER_PRODUCT
        elif not v1 and field == 2 and wire == _LENGTH:
            inner_product = bytes(value) == b"InnerProduct"
    return name, inner_product, blobs


def _tidy(array: np.ndarray, index: int, legacy: bool, inner_product: bool) -> np.ndarray:
    """Drop the padding dims of legacy 4-D blobs: fc weights (1,1,out,in) and (1,1,1,n) biases."""
    if not legacy:
        return array
    if index == 0 and inner_product and array.shape[:2] == (1, 1):
        return array.reshape(array.shape[2:])
    if index == 1 and all(d == 1 for d in array.shape[:-1]):
        return array.reshape(array.shape[-1:])
    return array


def _net(buf: memoryview) -> dict[str, np.ndarray]:
    tensors: dict[str, np.ndarray] = {}
    for field, wire, value in _fields(buf):
        if field not in (2, 100):
            continue
        if wire != _LENGTH:
            raise _Malformed(f"NetParameter field {field} is not a layer message")
        name, inner_product, blobs = _layer(value, v1=field == 2)
        if not blobs:
            continue
        if not name:
            raise _Malformed("a layer with weights has no name")
        for index, (array, legacy) in enumerate(blobs):
            suffix = _BLOB_SUFFIXES[index] if index < len(_BLOB_SUFFIXES) else f"blob{index}"
            key = f"{name}.{suffix}"
            if key in tensors:
                raise _Malformed(f"two layers are named {name!r}")
            tensors[key] = _tidy(array, index, legacy, inner_product)
    if not tensors:
        raise _Malformed("no layer holds weights")
    return tensors


# --- public API --------------------------------------------------------------------------------


def read_caffemodel(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read the weights of a binary `.caffemodel`.

    Returns float32 arrays keyed `"<caffe layer name>.weight"` (blob 0) and `".bias"` (blob 1);
    any further blobs are `".blob<i>"`. Convolutions stay OIHW, fully connected weights are
    (out, in) and biases 1-D. Raises DreamkitError if the file is unreadable or malformed.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DreamkitError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return _net(memoryview(data))
    except _Malformed as exc:
        raise DreamkitError(f"{path} is not a valid .caffemodel: {exc}") from None


def convert_caffemodel(
    src: Path, dst: Path, metadata: dict[str, str] | None = None
) -> Path:
    """Convert `src` (a `.caffemodel`) into the safetensors file `dst`, atomically; return `dst`.

    The file's metadata records the source file name and the layout, plus `metadata`.
    """
    tensors = read_caffemodel(src)
    meta = {"source": Path(src).name, "layout": LAYOUT, **(metadata or {})}
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(f".tmp-{os.getpid()}")
    try:
        safetensors.numpy.save_file(tensors, str(tmp), metadata=meta)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return dst


def _download(
    url: str, target: Path, opener: Callable[..., Any], progress: bool, label: str
) -> str:
    """Stream `url` into `target`; return the hex SHA-1 of the bytes."""
    sha1 = hashlib.sha1()
    with opener(url, timeout=_TIMEOUT_S) as response, open(target, "wb") as out:
        with tqdm(total=getattr(response, "length", None), unit="B", unit_scale=True,
                  desc=label, file=sys.stderr, disable=not progress) as bar:
            while chunk := response.read(_CHUNK):
                sha1.update(chunk)
                out.write(chunk)
                bar.update(len(chunk))
    return sha1.hexdigest()


def fetch_caffe_weights(
    name: str,
    dest: Path,
    *,
    progress: bool = True,
    opener: Callable[..., Any] = urllib.request.urlopen,
) -> Path:
    """Download the zoo model `name`, check its SHA-1, and convert it to safetensors at `dest`.

    `opener(url, timeout=...)` must return a context manager with `read(n)`; it is
    `urllib.request.urlopen` unless a test substitutes one. Returns `dest`.
    """
    source = CAFFE_ZOO.get(name)
    if source is None:
        raise DreamkitError(f"unknown Caffe model {name!r}; known: {', '.join(sorted(CAFFE_ZOO))}")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    download = dest.with_name(f"{dest.name}.caffemodel-{os.getpid()}")
    try:
        try:
            digest = _download(source.url, download, opener, progress, name)
        except (OSError, HTTPException) as exc:  # URLError and timeouts are OSErrors
            raise DreamkitError(
                f"downloading {name} from {source.url} failed ({exc}); place the weights at "
                f"$DREAMKIT_WEIGHTS/{name}.safetensors or pass --weights FILE"
            ) from None
        if digest != source.sha1:
            raise DreamkitError(
                f"refusing the download of {name} from {source.url}: SHA-1 is {digest}, "
                f"expected {source.sha1}"
            )
        convert_caffemodel(
            download,
            dest,
            {"source": source.url.rsplit("/", 1)[-1], "model": name, "sha1": digest,
             "url": source.url, "license": source.license},
        )
    finally:
        download.unlink(missing_ok=True)
    return dest
