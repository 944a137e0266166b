"""The .caffemodel reader, its safetensors conversion and the checked download.

The test writes its own tiny .caffemodel files with the small protobuf encoder below.
"""

from __future__ import annotations

import hashlib
import io
import struct
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import safetensors
import safetensors.numpy

from dreamkit.errors import DreamkitError
from dreamkit.models import caffe
from dreamkit.models.caffe import (
    CAFFE_ZOO,
    CaffeSource,
    convert_caffemodel,
    fetch_caffe_weights,
    read_caffemodel,
)

RNG = np.random.default_rng(0)

# --- a minimal protobuf encoder --------------------------------------------------------------


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative ints are sent as 10-byte two's complement
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def tag(field: int, wire: int) -> bytes:
    return varint(field << 3 | wire)


def integer(field: int, n: int) -> bytes:
    return tag(field, 0) + varint(n)


def message(field: int, payload: bytes) -> bytes:
    return tag(field, 2) + varint(len(payload)) + payload


def text(field: int, s: str) -> bytes:
    return message(field, s.encode())


def packed_floats(field: int, values: np.ndarray) -> bytes:
    return message(field, np.asarray(values, "<f4").tobytes())


def unpacked_floats(field: int, values: np.ndarray) -> bytes:
    return b"".join(tag(field, 5) + struct.pack("<f", v) for v in np.ravel(values))


def blob_v2(values: np.ndarray, packed_dims: bool = True) -> bytes:
    """BlobProto with a BlobShape and packed float data."""
    if packed_dims:
        shape = message(1, b"".join(varint(d) for d in values.shape))
    else:
        shape = b"".join(integer(1, d) for d in values.shape)
    # diff (6) and double_diff (9) are there to be skipped
    return message(7, shape) + packed_floats(5, values) + packed_floats(6, values * 0 + 9)


def blob_legacy(values: np.ndarray, dims: tuple[int, int, int, int]) -> bytes:
    """BlobProto with num/channels/height/width and unpacked float data."""
    header = b"".join(integer(field, d) for field, d in zip((1, 2, 3, 4), dims, strict=True))
    return header + unpacked_floats(5, values)


def layer_v2(name: str, kind: str, *blobs: bytes) -> bytes:
    extras = text(3, "bottom") + text(4, "top") + message(6, text(1, "param"))
    extras += tag(999, 1) + b"\0" * 8 + tag(998, 5) + b"\0" * 4  # unknown 64- and 32-bit fields
    return message(100, text(1, name) + text(2, kind) + extras
                   + b"".join(message(7, b) for b in blobs))


def layer_v1(name: str, kind: int, *blobs: bytes) -> bytes:
    return message(2, text(4, name) + integer(5, kind) + text(2, "bottom")
                   + b"".join(message(6, b) for b in blobs))


def floats(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


CONV_W, CONV_B = floats(4, 3, 2, 2), floats(4)
FC_W, FC_B = floats(3, 16), floats(3)
SCALE = np.array([0.1, -2.5], np.float64)
V2_NET = (
    text(1, "tiny")
    + layer_v2("data", "Input")
    + layer_v2("conv1/7x7_s2", "Convolution", blob_v2(CONV_W), blob_v2(CONV_B, packed_dims=False))
    + layer_v2("relu1", "ReLU")
    + layer_v2("fc", "InnerProduct", blob_v2(FC_W), blob_v2(FC_B))
    + layer_v2("scale", "Scale", message(7, message(1, varint(2))) + message(8, SCALE.tobytes()))
)

V1_CONV_W, V1_CONV_B = floats(2, 3, 1, 2), floats(2)
V1_FC_W, V1_FC_B = floats(3, 4), floats(3)
V1_NET = (
    text(1, "legacy")
    + layer_v1("data", 5)
    + layer_v1("conv1", 4, blob_legacy(V1_CONV_W, (2, 3, 1, 2)),
               blob_legacy(V1_CONV_B, (1, 1, 1, 2)))
    + layer_v1("relu1", 18)
    + layer_v1("fc8", 14, blob_legacy(V1_FC_W, (1, 1, 3, 4)), blob_legacy(V1_FC_B, (1, 1, 1, 3)))
)


def write(tmp_path: Path, data: bytes, name: str = "net.caffemodel") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def assert_same(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert sorted(got) == sorted(want)
    for key, value in want.items():
        assert got[key].dtype == np.float32, key
        assert got[key].shape == value.shape, key
        assert got[key].tobytes() == value.astype(np.float32).tobytes(), key


# --- reading ---------------------------------------------------------------------------------


def test_reads_v2_layers_with_blob_shapes(tmp_path: Path) -> None:
    got = read_caffemodel(write(tmp_path, V2_NET))
    assert list(got)[:2] == ["conv1/7x7_s2.weight", "conv1/7x7_s2.bias"]  # file order
    assert_same(got, {
        "conv1/7x7_s2.weight": CONV_W,
        "conv1/7x7_s2.bias": CONV_B,
        "fc.weight": FC_W,
        "fc.bias": FC_B,
        "scale.weight": SCALE.astype(np.float32),
    })


def test_reads_v1_layers_with_legacy_shapes(tmp_path: Path) -> None:
    got = read_caffemodel(write(tmp_path, V1_NET))
    # conv stays OIHW; the fc weight loses its (1, 1) padding, biases are 1-D
    assert_same(got, {
        "conv1.weight": V1_CONV_W,
        "conv1.bias": V1_CONV_B,
        "fc8.weight": V1_FC_W,
        "fc8.bias": V1_FC_B,
    })


def test_every_truncation_is_an_error_or_a_prefix_of_the_layers(tmp_path: Path) -> None:
    full = read_caffemodel(write(tmp_path, V1_NET))
    path = tmp_path / "cut.caffemodel"
    valid = 0
    for cut in range(len(V1_NET)):
        path.write_bytes(V1_NET[:cut])
        try:
            got = read_caffemodel(path)
        except DreamkitError as exc:
            assert "cut.caffemodel" in str(exc) and "\n" not in str(exc)
        else:  # a cut between two layers is a valid, shorter net
            assert_same(got, {key: full[key] for key in got})
            valid += 1
    assert valid == 2  # right after conv1 and after relu1


BAD = {
    "empty": b"",
    "text": b"this is not a caffemodel\n",
    "ff": b"\xff" * 32,
    "random": RNG.integers(0, 256, 256, dtype=np.uint8).tobytes(),
    "truncated": V2_NET[:-3],
    "short data": layer_v2("c", "Convolution", message(7, message(1, varint(2) + varint(2)))
                           + packed_floats(5, np.ones(3))),
    "ragged packed": layer_v2("c", "Convolution", message(7, message(1, varint(1)))
                              + message(5, b"\0" * 6)),
    "no shape": layer_v2("c", "Convolution", packed_floats(5, np.ones(2))),
    "negative dim": layer_v2("c", "Convolution", message(7, message(1, varint(-1)))),
    "float and double": layer_v2("c", "Scale", message(7, message(1, varint(1)))
                                 + packed_floats(5, np.ones(1)) + message(8, b"\0" * 8)),
    "duplicate": layer_v2("c", "Scale", blob_v2(np.ones(1))) * 2,
    "nameless": layer_v2("", "Scale", blob_v2(np.ones(1))),
    "layer as varint": integer(100, 7),
}


@pytest.mark.parametrize("case", list(BAD))
def test_malformed_files_raise_one_line_dreamkit_errors(tmp_path: Path, case: str) -> None:
    path = write(tmp_path, BAD[case], "bad.caffemodel")
    with pytest.raises(DreamkitError) as info:
        read_caffemodel(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_file_raises_dreamkit_error(tmp_path: Path) -> None:
    with pytest.raises(DreamkitError, match="nope.caffemodel"):
        read_caffemodel(tmp_path / "nope.caffemodel")


# --- conversion ------------------------------------------------------------------------------


def test_convert_round_trips_bit_exactly(tmp_path: Path) -> None:
    src = write(tmp_path, V2_NET)
    dst = tmp_path / "out" / "tiny.safetensors"
    assert convert_caffemodel(src, dst, {"model": "tiny"}) == dst
    assert_same(safetensors.numpy.load_file(dst), read_caffemodel(src))
    with safetensors.safe_open(dst, framework="np") as f:
        assert f.metadata() == {"source": "net.caffemodel", "model": "tiny",
                                "layout": "conv OIHW float32; fc (out,in)"}
    assert sorted(p.name for p in dst.parent.iterdir()) == ["tiny.safetensors"]


def test_convert_of_a_bad_file_leaves_nothing(tmp_path: Path) -> None:
    dst = tmp_path / "tiny.safetensors"
    with pytest.raises(DreamkitError):
        convert_caffemodel(write(tmp_path, BAD["truncated"]), dst)
    assert not dst.exists()


# --- download --------------------------------------------------------------------------------


def serve(data: bytes, calls: list[str]):
    def opener(url: str, timeout: float) -> io.BytesIO:
        calls.append(url)
        return io.BytesIO(data)

    return opener


def zoo_entry(monkeypatch: pytest.MonkeyPatch, sha1: str) -> CaffeSource:
    source = CaffeSource("http://example.invalid/models/tiny.caffemodel", sha1, "test")
    monkeypatch.setitem(caffe.CAFFE_ZOO, "tiny", source)
    return source


def test_fetch_checks_sha1_and_converts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source = zoo_entry(monkeypatch, hashlib.sha1(V1_NET).hexdigest())
    calls: list[str] = []
    dest = tmp_path / "weights" / "tiny.safetensors"
    assert fetch_caffe_weights("tiny", dest, opener=serve(V1_NET, calls)) == dest
    assert calls == [source.url]
    assert_same(safetensors.numpy.load_file(dest), read_caffemodel(write(tmp_path, V1_NET)))
    with safetensors.safe_open(dest, framework="np") as f:
        meta = f.metadata()
    assert meta["source"] == "tiny.caffemodel" and meta["sha1"] == source.sha1
    assert [p.name for p in dest.parent.iterdir()] == ["tiny.safetensors"]
    assert "tiny" in capsys.readouterr().err  # the progress bar


def test_fetch_refuses_a_checksum_mismatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    zoo_entry(monkeypatch, "0" * 40)
    dest = tmp_path / "tiny.safetensors"
    with pytest.raises(DreamkitError, match="SHA-1"):
        fetch_caffe_weights("tiny", dest, progress=False, opener=serve(V1_NET, []))
    assert list(tmp_path.iterdir()) == []


def test_fetch_network_error_says_where_to_put_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    zoo_entry(monkeypatch, hashlib.sha1(V1_NET).hexdigest())

    def offline(url: str, timeout: float) -> io.BytesIO:
        raise urllib.error.URLError("no route to host")

    with pytest.raises(DreamkitError, match="failed") as info:
        fetch_caffe_weights("tiny", tmp_path / "tiny.safetensors", progress=False, opener=offline)
    assert "$DREAMKIT_WEIGHTS/tiny.safetensors" in str(info.value)
    assert "--weights FILE" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_fetch_unknown_name_lists_known_models(tmp_path: Path) -> None:
    with pytest.raises(DreamkitError, match="bvlc_googlenet"):
        fetch_caffe_weights("alexnet", tmp_path / "a.safetensors", opener=serve(b"", []))


def test_zoo_entries_are_pinned_by_sha1() -> None:
    assert "bvlc_googlenet" in CAFFE_ZOO
    for source in CAFFE_ZOO.values():
        assert len(source.sha1) == 40 and set(source.sha1) <= set("0123456789abcdef")
        assert source.url.endswith(".caffemodel")


def test_a_failed_fetch_leaves_no_empty_folders(tmp_path: Path, monkeypatch) -> None:
    from dreamkit.errors import DreamkitError
    from dreamkit.models import caffe
    from dreamkit.models.registry import download_weights

    def offline(name, dest, **kwargs):
        raise DreamkitError("downloading failed (offline)")

    monkeypatch.setattr(caffe, "fetch_caffe_weights", offline)
    with pytest.raises(DreamkitError, match="offline"):
        download_weights("bvlc_googlenet", tmp_path / "new" / "dir" / "w.safetensors")
    assert list(tmp_path.iterdir()) == []
