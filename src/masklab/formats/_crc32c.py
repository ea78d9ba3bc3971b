"""CRC-32C (Castagnoli) and TFRecord's masked CRC, in NumPy.

CRC-32C: reflected polynomial ``0x82F63B78``, register initialised to and finally
XORed with ``0xFFFFFFFF``; check value ``crc32c(b"123456789") == 0xE3069283``
(``reference/formats.md`` §5.4). TFRecord stores ``mask(crc)``: rotate right by 15 and add
``0xA282EAD8``, modulo 2**32.

Short inputs go through a 256-entry table, one byte at a time. Long inputs are cut, one
MiB at a time, into many short lanes that NumPy advances together, one byte of every lane
per step (about 250 MB/s); with a zero register the CRC is linear, so lane CRCs join as
``raw(a + b) = shift(raw(a), len(b)) ^ raw(b)``, where ``shift`` feeds zero bytes (a
32x32 bit matrix, tabulated for every power of two at import), and the initial register
adds ``shift(0xFFFFFFFF, len(data))``. When the ``crc32c`` or ``google-crc32c`` package is
importable it is used instead (same values, C speed); neither is a dependency.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["crc32c", "mask", "masked_crc32c", "unmask"]

POLY = 0x82F63B78
MASK_DELTA = 0xA282EAD8
_M32 = 0xFFFFFFFF
_SMALL = 2048  # below this many bytes the plain table loop is as fast as the lanes
_CHUNK = 1 << 20  # lanes work on this much at a time, to stay in cache

U32 = npt.NDArray[np.uint32]


def _table() -> U32:
    t = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        t = np.where(t & 1, (t >> 1) ^ np.uint32(POLY), t >> 1).astype(np.uint32)
    return t


_TABLE = _table()
_TABLE_LIST: list[int] = _TABLE.tolist()


def _update_small(crc: int, data: bytes | memoryview) -> int:
    """Advance a raw register (no pre/post inversion) over ``data`` byte by byte."""
    t = _TABLE_LIST
    for b in bytes(data):
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc


# ---- linear maps of the 32-bit register, kept as four byte-sliced tables (4, 256)


def _tables_from_columns(cols: U32) -> U32:
    """Byte-sliced tables of the linear map whose image of bit ``j`` is ``cols[j]``."""
    bits = ((np.arange(256)[:, None] >> np.arange(8)) & 1).astype(bool)  # (256, 8)
    picked = np.where(bits[None], cols.reshape(4, 1, 8), np.uint32(0))  # (4, 256, 8)
    tables: U32 = np.bitwise_xor.reduce(picked, axis=2).astype(np.uint32)
    return tables


def _apply(tables: U32, v: U32) -> U32:
    """The map given by ``tables`` applied to every register in ``v``."""
    out: U32 = tables[0][v & 0xFF]
    out ^= tables[1][(v >> 8) & 0xFF]
    out ^= tables[2][(v >> 16) & 0xFF]
    out ^= tables[3][v >> 24]
    return out


def _zero_maps(n: int) -> list[U32]:
    """Maps of feeding ``2**i`` zero bytes into the register, for ``i < n``."""
    bits = (np.uint32(1) << np.arange(32, dtype=np.uint32)).astype(np.uint32)
    maps = [_tables_from_columns(_TABLE[bits & 0xFF] ^ (bits >> 8))]  # c -> T[c&ff] ^ c>>8
    for _ in range(n - 1):
        maps.append(_tables_from_columns(_apply(maps[-1], _apply(maps[-1], bits))))
    return maps


_ZEROS = _zero_maps(48)  # 2**47 bytes is more than any record


def _shift(crc: int, n: int) -> int:
    """A raw register after ``n`` zero bytes."""
    v = np.array([crc], np.uint32)
    i = 0
    while n:
        if n & 1:
            v = _apply(_ZEROS[i], v)
        n >>= 1
        i += 1
    return int(v[0])


def _lanes(data: memoryview) -> int:
    """Raw CRC (zero register, no final inversion) of ``data`` with NumPy lanes."""
    n = len(data)
    m = min(8, max(4, -(-n.bit_length() // 3)))
    length = 1 << m  # bytes a lane; many short lanes keep the Python loop short
    k = -(-n // length)
    buf = np.zeros(k * length, np.uint8)
    buf[k * length - n :] = np.frombuffer(data, np.uint8)  # leading zeros change nothing
    rows = buf.reshape(k, length).T.copy()  # (length, k): step i reads byte i of every lane
    crc = np.zeros(k, np.uint32)
    tmp = np.empty(k, np.uint32)
    byte = np.empty(k, np.uint32)
    for row in rows:
        np.bitwise_xor(crc, row, out=byte)
        np.bitwise_and(byte, 0xFF, out=byte)
        np.take(_TABLE, byte, out=tmp)
        np.right_shift(crc, 8, out=crc)
        np.bitwise_xor(crc, tmp, out=crc)
    while crc.size > 1:  # join neighbours: shift the left one past the right one
        if crc.size % 2:
            crc = np.concatenate([np.zeros(1, np.uint32), crc])  # a leading zero lane is free
        crc = _apply(_ZEROS[m], crc[0::2]) ^ crc[1::2]
        m += 1
    return int(crc[0])


def _accelerator() -> Callable[[bytes], int] | None:
    """The C CRC-32C of ``crc32c`` or ``google-crc32c``, when one is installed."""
    for name, attr in (("crc32c", "crc32c"), ("google_crc32c", "value")):
        try:
            module: Any = importlib.import_module(name)
        except ImportError:
            continue
        fn: Callable[[bytes], int] | None = getattr(module, attr, None)
        if callable(fn):
            return fn
    return None


_FAST = _accelerator()


def crc32c(data: bytes | bytearray | memoryview) -> int:
    """CRC-32C of ``data``.

    >>> hex(crc32c(b"123456789"))
    '0xe3069283'
    >>> crc32c(b"")
    0
    """
    if _FAST is not None:
        return int(_FAST(bytes(data)))
    view = memoryview(data).cast("B")
    n = len(view)
    if n < _SMALL:
        return _update_small(_M32, view) ^ _M32
    raw = 0
    for at in range(0, n, _CHUNK):
        chunk = view[at : at + _CHUNK]
        raw = _shift(raw, len(chunk)) ^ _lanes(chunk)
    return _shift(_M32, n) ^ raw ^ _M32


def mask(crc: int) -> int:
    """TFRecord's masked form of a CRC: rotate right 15, add ``0xA282EAD8``."""
    return ((((crc >> 15) | (crc << 17)) & _M32) + MASK_DELTA) & _M32


def unmask(masked: int) -> int:
    """Inverse of :func:`mask`."""
    rot = (masked - MASK_DELTA) & _M32
    return ((rot << 15) | (rot >> 17)) & _M32


def masked_crc32c(data: bytes | bytearray | memoryview) -> int:
    """The masked CRC-32C TFRecord stores after the length and after the data.

    >>> masked_crc32c(b"hello").to_bytes(4, "little").hex()
    'bb1f1c19'
    >>> masked_crc32c((5).to_bytes(8, "little")).to_bytes(4, "little").hex()
    'eab2043e'
    """
    return mask(crc32c(data))
