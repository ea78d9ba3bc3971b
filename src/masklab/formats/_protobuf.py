"""The protobuf wire format of ``tf.train.Example``, by hand (no protobuf package).

``reference/formats.md`` §5.3::

    Example   { Features features = 1; }
    Features  { map<string, Feature> feature = 1; }   # entries: { key = 1; value = 2; }
    Feature   { oneof kind { BytesList bytes_list = 1; FloatList float_list = 2;
                             Int64List int64_list = 3; } }
    BytesList { repeated bytes value = 1; }
    FloatList { repeated float value = 1 [packed = true]; }
    Int64List { repeated int64 value = 1 [packed = true]; }

Fields are ``varint(field << 3 | wire_type)`` followed by a varint (type 0), 8 bytes
(1), a varint length and that many bytes (2) or 4 bytes (5), all little-endian. The
decoder follows protobuf's rules: repeated scalars may come packed (one length-delimited
run) or one by one, or both; a later duplicate map key or oneof member wins; unknown
fields are skipped; embedded messages that repeat are merged. The encoder writes what
TensorFlow writes: packed floats and int64s, negative int64s as 10-byte two's
complement, map entries in key order (protobuf's deterministic serialisation).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from masklab.errors import FormatError

__all__ = [
    "Feature",
    "bytes_feature",
    "encode_example",
    "float_feature",
    "int64_feature",
    "parse_example",
]

Kind = Literal["bytes", "float", "int64", "none"]
Buffer = bytes | bytearray | memoryview

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5


def _empty_floats() -> npt.NDArray[np.float32]:
    return np.zeros(0, np.float32)


def _empty_ints() -> npt.NDArray[np.int64]:
    return np.zeros(0, np.int64)


@dataclass(frozen=True, slots=True)
class Feature:
    """One ``tf.train.Feature``: which list it holds (``none`` when unset) and its values."""

    kind: Kind
    bytes_list: tuple[bytes, ...] = ()
    float_list: npt.NDArray[np.float32] = field(default_factory=_empty_floats)
    int64_list: npt.NDArray[np.int64] = field(default_factory=_empty_ints)

    def __len__(self) -> int:
        return len(self.bytes_list) + len(self.float_list) + len(self.int64_list)


# --------------------------------------------------------------------------- decode


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    """The varint at ``pos`` and the position after it."""
    result = shift = 0
    n = len(buf)
    while True:
        if pos >= n:
            raise FormatError("protobuf varint runs past the end of its message")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise FormatError("protobuf varint is longer than 10 bytes")


def _fields(buf: memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """``(field number, wire type, value)`` of each field of a message; the value is an int
    for varints, else the raw bytes."""
    pos, n = 0, len(buf)
    while pos < n:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise FormatError("protobuf field number 0 is invalid (corrupt message)")
        value: int | memoryview
        if wire == VARINT:
            value, pos = _varint(buf, pos)
        elif wire in (FIXED64, FIXED32, LENGTH):
            if wire == LENGTH:
                size, pos = _varint(buf, pos)
            else:
                size = 8 if wire == FIXED64 else 4
            if pos + size > n:
                raise FormatError(
                    f"protobuf field {number} needs {size} bytes but its message has {n - pos}"
                )
            value = buf[pos : pos + size]
            pos += size
        else:
            raise FormatError(f"protobuf field {number} has unsupported wire type {wire}")
        yield number, wire, value


def _packed_varints(buf: memoryview) -> npt.NDArray[np.int64]:
    """Varints packed back to back, as int64 (two's complement), vectorised."""
    a = np.frombuffer(buf, np.uint8)
    if a.size == 0:
        return _empty_ints()
    if a[-1] & 0x80:
        raise FormatError("packed protobuf varints end in the middle of a value")
    ends = np.flatnonzero(a < 0x80)
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts + 1
    if int(lengths.max()) > 10:
        raise FormatError("packed protobuf varint is longer than 10 bytes")
    digit = np.arange(a.size) - np.repeat(starts, lengths)
    parts = (a & 0x7F).astype(np.uint64) << (7 * digit).astype(np.uint64)
    return np.bitwise_or.reduceat(parts, starts).view(np.int64)


def _signed64(value: int) -> int:
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def _bytes_list(buf: memoryview) -> tuple[bytes, ...]:
    return tuple(
        bytes(v) for num, wire, v in _fields(buf) if num == 1 and isinstance(v, memoryview)
    )


def _float_list(buf: memoryview) -> npt.NDArray[np.float32]:
    chunks: list[npt.NDArray[np.float32]] = []
    for num, wire, v in _fields(buf):
        if num != 1:
            continue
        if isinstance(v, memoryview) and wire in (LENGTH, FIXED32):
            if len(v) % 4:
                raise FormatError(f"packed float list of {len(v)} bytes is not a multiple of 4")
            chunks.append(np.frombuffer(v, "<f4").astype(np.float32))
        else:
            raise FormatError(f"float list value has wire type {wire}, expected 2 or 5")
    return np.concatenate(chunks) if chunks else _empty_floats()


def _int64_list(buf: memoryview) -> npt.NDArray[np.int64]:
    chunks: list[npt.NDArray[np.int64]] = []
    for num, wire, v in _fields(buf):
        if num != 1:
            continue
        if isinstance(v, memoryview) and wire == LENGTH:
            chunks.append(_packed_varints(v))
        elif isinstance(v, int):
            chunks.append(np.array([_signed64(v)], np.int64))
        else:
            raise FormatError(f"int64 list value has wire type {wire}, expected 0 or 2")
    return np.concatenate(chunks) if chunks else _empty_ints()


def _feature(buf: memoryview) -> Feature:
    out = Feature("none")
    for num, wire, v in _fields(buf):
        if not isinstance(v, memoryview) or wire != LENGTH:
            continue
        if num == 1:
            out = Feature("bytes", bytes_list=_bytes_list(v))
        elif num == 2:
            out = Feature("float", float_list=_float_list(v))
        elif num == 3:
            out = Feature("int64", int64_list=_int64_list(v))
    return out


def parse_example(data: Buffer, *, keys: Collection[str] | None = None) -> dict[str, Feature]:
    """The features of a serialised ``tf.train.Example``, by key.

    ``keys`` limits the decoding to those keys (the others are skipped unread). A
    malformed message raises :class:`~masklab.errors.FormatError`.

    >>> parse_example(bytes.fromhex("0a0d0a0b0a017812061a040a020307"))["x"].int64_list
    array([3, 7])
    """
    features: dict[str, Feature] = {}
    for num, wire, example_field in _fields(memoryview(data).cast("B")):
        if num != 1 or wire != LENGTH or not isinstance(example_field, memoryview):
            continue
        for num2, wire2, entry in _fields(example_field):
            if num2 != 1 or wire2 != LENGTH or not isinstance(entry, memoryview):
                continue
            key, value = "", memoryview(b"")
            for num3, wire3, v in _fields(entry):
                if wire3 != LENGTH or not isinstance(v, memoryview):
                    continue
                if num3 == 1:
                    try:
                        key = bytes(v).decode("utf-8")
                    except UnicodeDecodeError as err:
                        raise FormatError(f"feature key {bytes(v)!r} is not UTF-8") from err
                elif num3 == 2:
                    value = v
            if keys is None or key in keys:
                features[key] = _feature(value)
    return features


# --------------------------------------------------------------------------- encode


def _encode_varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64: ten bytes of two's complement
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _length_field(number: int, payload: bytes) -> bytes:
    return _encode_varint(number << 3 | LENGTH) + _encode_varint(len(payload)) + payload


def bytes_feature(values: Sequence[bytes]) -> Feature:
    """A ``bytes_list`` feature."""
    return Feature("bytes", bytes_list=tuple(bytes(v) for v in values))


def float_feature(values: npt.ArrayLike) -> Feature:
    """A ``float_list`` feature (stored as float32)."""
    return Feature("float", float_list=np.asarray(values, np.float32).reshape(-1))


def int64_feature(values: npt.ArrayLike) -> Feature:
    """An ``int64_list`` feature."""
    return Feature("int64", int64_list=np.asarray(values, np.int64).reshape(-1))


def _encode_feature(feature: Feature) -> bytes:
    if feature.kind == "bytes":
        inner = b"".join(_length_field(1, v) for v in feature.bytes_list)
        return _length_field(1, inner)
    if feature.kind == "float":
        packed = feature.float_list.astype("<f4").tobytes()
        return _length_field(2, _length_field(1, packed) if packed else b"")
    if feature.kind == "int64":
        packed = b"".join(_encode_varint(int(v)) for v in feature.int64_list.tolist())
        return _length_field(3, _length_field(1, packed) if packed else b"")
    return b""


def encode_example(features: Mapping[str, Feature]) -> bytes:
    """Serialise a ``tf.train.Example`` (map entries in key order).

    >>> encode_example({"x": int64_feature([3, 7])}).hex()
    '0a0d0a0b0a017812061a040a020307'
    """
    entries = b"".join(
        _length_field(
            1, _length_field(1, key.encode("utf-8")) + _length_field(2, _encode_feature(feat))
        )
        for key, feat in sorted(features.items())
    )
    return _length_field(1, entries)
