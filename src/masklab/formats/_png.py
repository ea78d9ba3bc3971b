"""A small, fast PNG encoder for masks.

Masks are written unfiltered (filter type 0 on every scanline: flat masks compress as well
as with PNG's predictors) and deflated at level 1. When the optional ``isal`` package
(Intel ISA-L, ``pip install "masklab[fast]"``) is installed its deflate is used: about ten
times faster than zlib on masks, and smaller. Without it, zlib's RLE strategy.

Supported: 8-bit grayscale, 8-bit palette (a PLTE chunk), 16-bit grayscale (big-endian, as
PNG stores it), 8-bit RGB and RGBA. Any PNG reader decodes the result (tests use PIL).
"""

from __future__ import annotations

import importlib
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

_isal: Any
try:  # optional accelerator
    _isal = importlib.import_module("isal.isal_zlib")
except ImportError:  # pragma: no cover - depends on the environment
    _isal = None

__all__ = ["DEFLATE", "encode_png"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOR_GRAY, _COLOR_RGB, _COLOR_PALETTE, _COLOR_RGBA = 0, 2, 3, 6


def _zlib_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(1, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    return c.compress(data) + c.flush()


def _isal_deflate(data: bytes) -> bytes:
    out: bytes = _isal.compress(data, 1)
    return out


DEFLATE: Callable[[bytes], bytes] = _isal_deflate if _isal is not None else _zlib_deflate


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)) & 0xFFFFFFFF)
    )


def encode_png(
    array: npt.NDArray[Any],
    *,
    palette: npt.NDArray[np.uint8] | None = None,
    deterministic: bool = False,
) -> bytes:
    """PNG bytes of a mask: (h, w) uint8 (gray, or palette indices with ``palette``),
    (h, w) uint16, or (h, w, 3|4) uint8 RGB(A).

    ``deterministic=True`` deflates with zlib, whose bytes depend only on the pixels: for
    content-addressed blobs (the store). ISA-L's faster deflate was once seen, in a
    long-running process, to give other (equally valid) bytes for the same pixels.

    >>> from PIL import Image; import io
    >>> m = np.array([[0, 1], [2, 300]], np.uint16)
    >>> np.asarray(Image.open(io.BytesIO(encode_png(m)))).tolist()
    [[0, 1], [2, 300]]
    """
    arr = np.ascontiguousarray(array)
    if arr.ndim == 2 and arr.dtype == np.uint8:
        color, depth, channels = (_COLOR_PALETTE if palette is not None else _COLOR_GRAY), 8, 1
    elif arr.ndim == 2 and arr.dtype == np.uint16:
        color, depth, channels = _COLOR_GRAY, 16, 1
        arr = arr.astype(">u2")
    elif arr.ndim == 3 and arr.dtype == np.uint8 and arr.shape[2] in (3, 4):
        color, depth, channels = (_COLOR_RGB if arr.shape[2] == 3 else _COLOR_RGBA), 8, arr.shape[2]
    else:
        raise ValueError(f"cannot encode a {arr.dtype} array of shape {arr.shape} as PNG")
    h, w = arr.shape[:2]
    row_bytes = w * channels * (depth // 8)
    raw = np.zeros((h, row_bytes + 1), np.uint8)  # a leading 0 per scanline: filter "none"
    raw[:, 1:] = arr.reshape(h, -1).view(np.uint8).reshape(h, row_bytes)
    header = struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, 0)
    parts = [_SIGNATURE, _chunk(b"IHDR", header)]
    if palette is not None and color == _COLOR_PALETTE:
        pal = np.zeros((256, 3), np.uint8)
        pal[: len(palette)] = np.asarray(palette, np.uint8)[:256]
        parts.append(_chunk(b"PLTE", pal.tobytes()))
    deflate = _zlib_deflate if deterministic else DEFLATE
    parts += [_chunk(b"IDAT", deflate(raw.tobytes())), _chunk(b"IEND", b"")]
    return b"".join(parts)


def write_png_file(
    path: Path, array: npt.NDArray[Any], *, palette: npt.NDArray[np.uint8] | None = None
) -> None:
    """Write :func:`encode_png`'s bytes to ``path``."""
    path.write_bytes(encode_png(array, palette=palette))
