"""The PNG encoder against PIL's decoder."""

from __future__ import annotations

import io
import zlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from masklab.core.labels import voc_colormap
from masklab.formats import _png


def decode(data: bytes) -> tuple[str, np.ndarray, Image.Image]:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im.mode, np.asarray(im), im


shapes = st.tuples(st.integers(1, 40), st.integers(1, 40))


@given(shapes, st.integers(0, 2**32 - 1))
def test_uint8_gray_round_trips(shape, seed):
    a = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    mode, back, _ = decode(_png.encode_png(a))
    assert mode == "L"
    np.testing.assert_array_equal(back, a)


@given(shapes, st.integers(0, 2**32 - 1))
def test_palette_keeps_indices_and_colours(shape, seed):
    a = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    mode, back, im = decode(_png.encode_png(a, palette=voc_colormap()))
    assert mode == "P"
    np.testing.assert_array_equal(back, a)
    assert im.getpalette()[3 * 15 : 3 * 16] == [192, 128, 128]  # VOC person


@given(shapes, st.integers(0, 2**32 - 1))
def test_uint16_round_trips(shape, seed):
    a = np.random.default_rng(seed).integers(0, 65536, shape, dtype=np.uint16)
    _, back, _ = decode(_png.encode_png(a))
    np.testing.assert_array_equal(back, a)


@pytest.mark.parametrize("channels", [3, 4])
def test_rgb_and_rgba_round_trip(channels):
    a = np.random.default_rng(channels).integers(0, 256, (7, 9, channels), dtype=np.uint8)
    mode, back, _ = decode(_png.encode_png(a))
    assert mode == ("RGB" if channels == 3 else "RGBA")
    np.testing.assert_array_equal(back, a)


def test_chunks_carry_valid_crcs():
    data = _png.encode_png(np.zeros((3, 4), np.uint8))
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos = 8
    kinds = []
    while pos < len(data):
        n = int.from_bytes(data[pos : pos + 4], "big")
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        crc = int.from_bytes(data[pos + 8 + n : pos + 12 + n], "big")
        assert crc == zlib.crc32(kind + body)
        kinds.append(kind)
        pos += 12 + n
    assert kinds == [b"IHDR", b"IDAT", b"IEND"]


def test_unsupported_arrays_raise():
    with pytest.raises(ValueError, match="cannot encode"):
        _png.encode_png(np.zeros((2, 2), np.float32))


def test_the_same_pixels_give_the_same_bytes_in_any_thread():
    """The mask for which ISA-L's deflate gave two different streams in one test run (a
    worker thread and a fresh process): PNG bytes must depend on the pixels alone."""
    from concurrent.futures import ThreadPoolExecutor

    a = np.zeros((5, 6), np.uint8)
    a[:2, 1:4] = 2
    palette = np.array([[0, 0, 0], [128, 0, 0], [0, 128, 0]], np.uint8)
    with ThreadPoolExecutor(4) as pool:
        made = set(pool.map(lambda _: _png.encode_png(a, palette=palette), range(2000)))
    assert len(made) == 1
    np.testing.assert_array_equal(decode(made.pop())[1], a)
