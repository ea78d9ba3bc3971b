"""COCO run-length encoding: the canonical mask of masklab.

An :class:`RLE` holds one binary mask of ``size == (h, w)`` as run lengths over the
**column-major** flattening (down column 0, then column 1, ...), the first run being
background, exactly as pycocotools does (``reference/formats.md`` §1.1). In memory the
counts are a read-only ``uint32`` array (``uint64`` once ``h*w >= 2**32``) in *canonical*
form: no zero-length run except a leading one, no trailing zero, ``sum == h*w``. Every
constructor validates and canonicalises, so a malformed RLE cannot exist.

On the wire (JSON, the catalog) an RLE is COCO's dict with the compressed string,
byte-identical to pycocotools' ``encode`` (§1.3).

Where masklab differs from pycocotools on purpose (§1.4, §1.7, §1.8):

* ``encode`` treats every nonzero value as foreground (pycocotools mis-encodes non-binary
  input) and accepts C- or Fortran-ordered arrays of any integer or bool dtype;
* ``decode`` returns a C-contiguous array and rejects counts that do not sum to ``h*w``
  (pycocotools returns uninitialised memory for short counts);
* zero-length runs are merged away on input, so ``merge``, ``iou`` and ``bbox`` are right
  where pycocotools' run walk stops early;
* size mismatches in ``merge`` and ``iou`` raise :class:`~masklab.errors.MaskFormatError`
  instead of returning an empty RLE or ``-1``.

Algebra (``area``, ``bbox``, ``merge``, ``iou``, ``crop``, ``pad``, ``translate``,
``flip``, ``resize_nearest``) works on the runs without expanding them to pixels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt

from masklab.errors import MaskFormatError

__all__ = [
    "RLE",
    "area",
    "area_bbox_batch",
    "bbox",
    "crop",
    "decode",
    "decode_batch",
    "decode_box",
    "empty",
    "encode",
    "encode_batch",
    "flip",
    "from_coco",
    "from_coco_batch",
    "full",
    "iou",
    "merge",
    "pad",
    "resize_nearest",
    "to_coco_batch",
    "translate",
]

MergeOp = Literal["union", "intersection", "difference", "xor"]
FlipAxis = Literal["horizontal", "vertical"]

_U32_LIMIT = 2**32
_ZERO_CHAR = 48  # '0': the compressed alphabet is chr(48) .. chr(111)
_LAST_CHAR = 111
_MAX_GROUPS = 13  # 5-bit groups a signed 64-bit value can need


# --------------------------------------------------------------------------- value type


@dataclass(frozen=True, slots=True, eq=False)
class RLE:
    """COCO run-length encoding of one binary mask (column-major, first run background).

    Build one with :func:`encode`, :func:`from_coco` or ``RLE((h, w), counts)``; the
    constructor copies, validates and canonicalises the counts.

    >>> r = RLE((2, 3), [2, 3, 1])
    >>> r.to_coco()
    {'size': [2, 3], 'counts': '231'}
    >>> RLE((2, 3), [2, 0, 0, 3, 1]) == r  # zero-length runs are merged away
    True
    """

    size: tuple[int, int]
    counts: npt.NDArray[np.unsignedinteger[Any]]

    def __post_init__(self) -> None:
        size = _check_size(self.size)
        counts = _canonical_counts(self.counts, size)
        object.__setattr__(self, "size", size)
        object.__setattr__(self, "counts", counts)

    @property
    def h(self) -> int:
        """Height in pixels (rows)."""
        return self.size[0]

    @property
    def w(self) -> int:
        """Width in pixels (columns)."""
        return self.size[1]

    def to_coco(self, *, compressed: bool = True) -> dict[str, Any]:
        """Return COCO's dict: ``{"size": [h, w], "counts": str}``, ready for ``json.dumps``.

        The string is byte-identical to pycocotools' ``encode`` (as ``str``, not bytes).
        With ``compressed=False`` the counts are a list of ints, the form COCO ground truth
        uses for ``iscrowd`` annotations.
        """
        if compressed:
            counts: str | list[int] = _counts_to_bytes(self.counts).decode("ascii")
        else:
            counts = self.counts.tolist()
        return {"size": [self.size[0], self.size[1]], "counts": counts}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RLE):
            return NotImplemented
        return self.size == other.size and np.array_equal(self.counts, other.counts)

    def __hash__(self) -> int:
        return hash((self.size, self.counts.tobytes()))

    def __repr__(self) -> str:
        return f"RLE(size={self.size}, area={area(self)}, runs={len(self.counts)})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (RLE, (self.size, np.asarray(self.counts)))


def _counts_dtype(n_pixels: int) -> type[np.unsignedinteger[Any]]:
    return np.uint32 if n_pixels < _U32_LIMIT else np.uint64


_SET_SIZE = RLE.__dict__["size"].__set__  # slot descriptors: construction without checks
_SET_COUNTS = RLE.__dict__["counts"].__set__
_NEW = object.__new__


def _view(size: tuple[int, int], counts: npt.NDArray[np.unsignedinteger[Any]]) -> RLE:
    """Wrap counts that are canonical, of the right dtype and read-only (internal)."""
    obj = _NEW(RLE)
    _SET_SIZE(obj, size)
    _SET_COUNTS(obj, counts)
    return obj


def _trusted(size: tuple[int, int], counts: npt.NDArray[np.integer[Any]]) -> RLE:
    """Build an RLE from counts already known to be canonical (internal fast path)."""
    arr = np.asarray(counts).astype(_counts_dtype(size[0] * size[1]))  # an owned copy
    arr.flags.writeable = False
    return _view(size, arr)


def _from_sorted_toggles(
    size: tuple[int, int],
    owner: npt.NDArray[np.int64],
    pos: npt.NDArray[np.int64],
    n_items: int,
) -> list[RLE]:
    """RLEs of ``n_items`` masks from their toggle positions, sorted by (owner, position),
    unique and below ``h*w``; the counts of all masks share one read-only buffer."""
    n_pixels = size[0] * size[1]
    n_tog = np.bincount(owner, minlength=n_items)
    span = n_tog + 2  # per mask: 0, its toggles, h*w
    start = np.cumsum(span) - span
    seq = np.empty(int(span.sum()), np.int64)
    inner = np.ones(seq.size, bool)
    inner[start] = False
    inner[start + span - 1] = False
    seq[start] = 0
    seq[start + span - 1] = n_pixels
    seq[inner] = pos
    counts = np.diff(seq)
    keep = np.ones(counts.size, bool)
    keep[start[1:] - 1] = False  # the step from one mask's h*w to the next mask's 0
    counts = counts[keep].astype(_counts_dtype(n_pixels))
    counts.flags.writeable = False
    ends = np.cumsum(n_tog + 1).tolist()
    return [_view(size, counts[lo:hi]) for lo, hi in zip([0, *ends[:-1]], ends, strict=True)]


def _check_size(size: object) -> tuple[int, int]:
    if isinstance(size, (str, bytes)) or not isinstance(size, (Sequence, np.ndarray)):
        raise MaskFormatError(f"RLE size must be [h, w], got {size!r}")
    if len(size) != 2:
        raise MaskFormatError(f"RLE size must be [h, w] (two numbers), got {list(size)!r}")
    out = []
    for v in size:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise MaskFormatError(f"RLE size must hold integers, got {list(size)!r}")
        if v < 0:
            raise MaskFormatError(f"RLE size must be non-negative, got {list(size)!r}")
        out.append(int(v))
    return out[0], out[1]


def _canonical_counts(
    counts: object, size: tuple[int, int]
) -> npt.NDArray[np.unsignedinteger[Any]]:
    """Validate counts against ``size`` and return a canonical, read-only copy."""
    n_pixels = size[0] * size[1]
    try:
        raw = np.array(counts, copy=True)
    except (TypeError, ValueError) as err:
        raise MaskFormatError(f"RLE counts must be a list of integers: {err}") from err
    if raw.ndim != 1:
        raise MaskFormatError(f"RLE counts must be one-dimensional, got shape {raw.shape}")
    if raw.size == 0:
        raw = np.zeros(0, np.int64)
    if raw.dtype.kind not in "iu":
        if raw.dtype.kind == "f" and np.all(np.isfinite(raw)) and np.all(raw == np.round(raw)):
            raw = raw.astype(np.int64)
        else:
            raise MaskFormatError(f"RLE counts must be integers, got dtype {raw.dtype}")
    if raw.dtype.kind == "i":
        negative = np.flatnonzero(raw < 0)
        if negative.size:
            i = int(negative[0])
            raise MaskFormatError(
                f"RLE counts must be non-negative, got {int(raw[i])} at index {i}"
            )
    total = int(raw.sum(dtype=np.uint64)) if raw.size else 0
    if (raw.size and int(raw.max()) > n_pixels) or total != n_pixels:
        raise MaskFormatError(
            f"RLE counts sum to {total} but size {list(size)} needs {n_pixels}; "
            "fix 'size' or re-encode the mask"
        )
    canon = _canonicalise(raw.astype(np.int64, copy=False), n_pixels)
    out = canon.astype(_counts_dtype(n_pixels))
    out.flags.writeable = False
    return out


def _canonicalise(counts: npt.NDArray[np.int64], n_pixels: int) -> npt.NDArray[np.int64]:
    """Merge runs across zero-length runs and drop a trailing zero (sum already checked)."""
    if n_pixels == 0:
        return np.zeros(1, np.int64)
    if counts.size and (counts.size == 1 or (counts[1:].all() and counts[-1] != 0)):
        return counts
    toggles = np.cumsum(counts[:-1])
    return _counts_from_toggles(toggles, n_pixels)


def _first_of_runs(a: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    """For a sorted array: True where a run of equal values starts."""
    out = np.empty(a.size, bool)
    out[:1] = True
    np.not_equal(a[1:], a[:-1], out=out[1:])
    return out


def _odd_multiplicities(a: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Of a sorted array, the values that occur an odd number of times, once each
    (toggles at one position cancel in pairs)."""
    if a.size < 2:
        return a
    first = _first_of_runs(a)
    if first.all():
        return a
    starts = np.flatnonzero(first)
    mult = np.diff(starts, append=a.size)
    out: npt.NDArray[np.int64] = a[starts[(mult & 1) == 1]]
    return out


def _counts_from_toggles(
    toggles: npt.NDArray[np.int64], n_pixels: int, *, assume_unique: bool = False
) -> npt.NDArray[np.int64]:
    """Counts from sorted positions where the value flips; equal positions cancel in pairs."""
    if not assume_unique:
        toggles = _odd_multiplicities(toggles)
    if toggles.size and toggles[-1] >= n_pixels:
        toggles = toggles[toggles < n_pixels]
    out = np.empty(toggles.size + 1, np.int64)
    if toggles.size:
        out[0] = toggles[0]
        np.subtract(toggles[1:], toggles[:-1], out=out[1:-1])
        out[-1] = n_pixels - toggles[-1]
    else:
        out[0] = n_pixels
    return out


def empty(size: tuple[int, int]) -> RLE:
    """An all-background mask of ``size == (h, w)``.

    >>> empty((4, 5)).to_coco()["counts"]
    'd0'
    """
    size = _check_size(size)
    return _trusted(size, np.array([size[0] * size[1]]))


def full(size: tuple[int, int]) -> RLE:
    """An all-foreground mask of ``size == (h, w)``.

    >>> full((4, 5)).to_coco()["counts"]
    '0d0'
    """
    size = _check_size(size)
    n = size[0] * size[1]
    return _trusted(size, np.array([0, n]) if n else np.array([0]))


# --------------------------------------------------------------------------- string codec


def _counts_to_bytes(counts: npt.NDArray[Any]) -> bytes:
    """COCO's compressed string for one counts array (§1.3), as ASCII bytes."""
    c = counts.astype(np.int64)
    x = c.copy()
    if c.size > 3:
        x[3:] -= c[1:-2]
    return _values_to_chars(x).tobytes()


def _values_to_chars(x: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
    """Write signed values as little-endian 5-bit groups, continuation bit 0x20, +48."""
    if x.size == 0:
        return np.zeros(0, np.uint8)
    mag = np.where(x < 0, ~x, x)  # a value fits k groups iff mag < 2**(5k - 1)
    groups = np.ones(x.size, np.int64)
    top = int(mag.max())
    k = 1
    while top >= 1 << (5 * k - 1):
        groups += mag >= (1 << (5 * k - 1))
        k += 1
    if k == 1:
        return (np.bitwise_and(x, 0x1F) + _ZERO_CHAR).astype(np.uint8)
    total = int(groups.sum())
    owner = np.repeat(np.arange(x.size), groups)
    first = np.cumsum(groups) - groups
    g = np.arange(total) - first[owner]
    vals = np.right_shift(x[owner], 5 * g) & 0x1F
    vals |= (g < groups[owner] - 1) * 0x20
    vals += _ZERO_CHAR
    out: npt.NDArray[np.uint8] = vals.astype(np.uint8)
    return out


def _bytes_to_values(
    data: npt.NDArray[np.uint8], where: str
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Read 5-bit-group values; returns (values, index of each value's last char).

    A value's groups are little-endian and its last char has no continuation bit (0x20),
    its bit 0x10 the sign; Horner's rule from the last char down reads all values at once.
    """
    if data.size and (int(data.min()) < _ZERO_CHAR or int(data.max()) > _LAST_CHAR):
        i = int(np.flatnonzero((data < _ZERO_CHAR) | (data > _LAST_CHAR))[0])
        raise MaskFormatError(
            f"{where}: character {chr(int(data[i]))!r} at position {i} is not in COCO's "
            "compressed alphabet '0'..'o'; the string was probably mangled (e.g. str(bytes))"
        )
    ends = np.flatnonzero(data < _ZERO_CHAR + 0x20)  # chars without the continuation bit
    if data.size and (ends.size == 0 or ends[-1] != data.size - 1):
        raise MaskFormatError(f"{where}: the compressed string is truncated (ends mid-value)")
    if ends.size == 0:
        return np.zeros(0, np.int64), ends
    lengths = np.diff(ends, prepend=-1)
    longest = int(lengths.max())
    if longest > _MAX_GROUPS:
        raise MaskFormatError(f"{where}: a run length in the compressed string is too long")
    digits = data.astype(np.int64) - _ZERO_CHAR
    top = digits[ends]
    vals = (top & 0x1F) - (top & 0x10) * 2  # the last group carries the sign
    for j in range(1, longest):
        more = np.flatnonzero(lengths > j)
        vals[more] = (vals[more] << 5) | (digits[ends[more] - j] & 0x1F)
    return vals, ends


def _undo_delta(x: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """counts[m] = x[m] + counts[m - 2] for m > 2 (two independent cumulative sums)."""
    out = x.copy()
    if out.size > 3:
        out[1::2] = np.cumsum(x[1::2])
        out[2::2] = np.cumsum(x[2::2])
    return out


def _string_to_counts(s: str | bytes, where: str) -> npt.NDArray[np.int64]:
    if isinstance(s, str):
        try:
            s = s.encode("ascii")
        except UnicodeEncodeError as err:
            raise MaskFormatError(f"{where}: compressed counts must be ASCII: {err}") from err
    vals, _ = _bytes_to_values(np.frombuffer(s, np.uint8), where)
    return _undo_delta(vals)


def _check_counts_array(counts: npt.NDArray[np.int64], size: tuple[int, int], where: str) -> RLE:
    negative = np.flatnonzero(counts < 0)
    if negative.size:
        i = int(negative[0])
        raise MaskFormatError(
            f"{where}: run length {int(counts[i])} at index {i} is negative; "
            "the compressed string is corrupt"
        )
    n_pixels = size[0] * size[1]
    total = int(counts.sum()) if counts.size else 0
    if total != n_pixels and not (n_pixels == 0 and total == 0):
        raise MaskFormatError(
            f"{where}: RLE counts sum to {total} but size {list(size)} needs {n_pixels}; "
            "fix 'size' or re-encode the mask"
        )
    return _trusted(size, _canonicalise(counts, n_pixels))


def from_coco(obj: Mapping[str, Any]) -> RLE:
    """Read COCO's RLE dict: compressed ``counts`` (str or bytes) or a list (iscrowd GT).

    Zero-length runs and a trailing zero are merged away; counts that do not sum to
    ``h*w``, negative runs and characters outside the alphabet raise MaskFormatError.

    >>> compressed = from_coco({"size": [2, 3], "counts": "231"})
    >>> compressed == from_coco({"size": [2, 3], "counts": [2, 3, 1]})
    True
    """
    if not isinstance(obj, Mapping):
        raise TypeError(
            f"from_coco takes a dict with 'size' and 'counts', got {type(obj).__name__}"
        )
    missing = [k for k in ("size", "counts") if k not in obj]
    if missing:
        raise MaskFormatError(f"RLE dict is missing {missing}; COCO RLE needs 'size' and 'counts'")
    size = _check_size(obj["size"])
    counts = obj["counts"]
    if isinstance(counts, (str, bytes)):
        values = _string_to_counts(counts, "RLE")
        return _check_counts_array(values, size, "RLE")
    return RLE(size, counts)


def from_coco_batch(objs: Sequence[Mapping[str, Any]]) -> list[RLE]:
    """Read many COCO RLE dicts at once; compressed strings are decoded in one pass.

    Same rules as :func:`from_coco`; an error names the index of the bad dict.
    """
    strings: list[bytes] = []
    sizes: list[tuple[int, int]] = []
    slots: list[int] = []
    out: list[RLE | None] = [None] * len(objs)
    for i, obj in enumerate(objs):
        counts = obj.get("counts") if isinstance(obj, Mapping) else None
        if isinstance(counts, (str, bytes)) and "size" in obj:
            try:
                sizes.append(_check_size(obj["size"]))
            except MaskFormatError as err:
                raise MaskFormatError(f"RLE {i}: {err}") from err
            strings.append(counts.encode("ascii") if isinstance(counts, str) else counts)
            slots.append(i)
        else:
            try:
                out[i] = from_coco(obj)
            except MaskFormatError as err:
                raise MaskFormatError(f"RLE {i}: {err}") from err
    if strings:
        for slot, rle in zip(slots, _decode_strings(strings, sizes, slots), strict=True):
            out[slot] = rle
    return out  # type: ignore[return-value]


def _decode_strings(
    strings: list[bytes], sizes: list[tuple[int, int]], slots: list[int]
) -> list[RLE]:
    """Decode many compressed strings in one vectorised pass; the counts of all masks
    share one read-only buffer. Anything unusual goes through the single-string path,
    which also words the errors."""
    lens = np.fromiter((len(s) for s in strings), np.int64, len(strings))
    n_pixels = np.fromiter((h * w for h, w in sizes), np.int64, len(sizes))

    def one_by_one() -> list[RLE]:
        return [
            _check_counts_array(_string_to_counts(s, f"RLE {slot}"), size, f"RLE {slot}")
            for s, size, slot in zip(strings, sizes, slots, strict=True)
        ]

    if (lens == 0).any() or (n_pixels >= _U32_LIMIT).any():
        return one_by_one()
    data = np.frombuffer(b"".join(strings), np.uint8)
    try:
        vals, ends = _bytes_to_values(data, "RLE")
    except MaskFormatError:
        return one_by_one()  # raises with the culprit's index
    char_last = np.cumsum(lens) - 1
    last_val = np.searchsorted(ends, char_last)
    if not np.array_equal(ends[np.minimum(last_val, ends.size - 1)], char_last):
        return one_by_one()  # a string ends mid-value
    n_vals = np.diff(last_val, prepend=-1)
    first = last_val + 1 - n_vals
    local = np.arange(vals.size) - np.repeat(first, n_vals)
    # counts[m] = x[m] + counts[m - 2] for m > 2: two running sums (odd m, even m >= 2),
    # each string's part taken relative to where it starts
    odd = (local & 1).astype(bool)
    chain = vals.copy()
    chain[first] = 0
    run_odd = np.cumsum(np.where(odd, chain, 0))
    run_even = np.cumsum(np.where(odd, 0, chain))
    counts = np.where(
        odd,
        run_odd - np.repeat(run_odd[first], n_vals),
        run_even - np.repeat(run_even[first], n_vals),
    )
    counts[first] = vals[first]
    sums = np.add.reduceat(counts, first)
    if (counts < 0).any() or (sums != n_pixels).any():
        return one_by_one()  # raises with the culprit's index
    canonical = (counts != 0) | (local == 0)
    canonical[first + n_vals - 1] &= (counts[first + n_vals - 1] != 0) | (n_vals == 1)
    buffer = counts.astype(np.uint32)
    buffer.flags.writeable = False
    out = []
    ok = np.logical_and.reduceat(canonical, first).tolist()
    for k, (size, lo, n) in enumerate(zip(sizes, first.tolist(), n_vals.tolist(), strict=True)):
        seg = buffer[lo : lo + n]
        if ok[k]:
            out.append(_view(size, seg))
        else:
            out.append(_trusted(size, _canonicalise(seg.astype(np.int64), size[0] * size[1])))
    return out


def to_coco_batch(rles: Sequence[RLE], *, compressed: bool = True) -> list[dict[str, Any]]:
    """COCO dicts for many RLEs, the compressed strings written in one vectorised pass.

    >>> to_coco_batch([empty((4, 5)), full((2, 3))])
    [{'size': [4, 5], 'counts': 'd0'}, {'size': [2, 3], 'counts': '06'}]
    """
    if not compressed or not rles:
        return [r.to_coco(compressed=compressed) for r in rles]
    lens = np.fromiter((r.counts.size for r in rles), np.int64, len(rles))
    c = np.concatenate([r.counts for r in rles]).astype(np.int64)
    first = np.cumsum(lens) - lens
    x = c.copy()
    if c.size > 2:
        local = np.arange(c.size) - np.repeat(first, lens)
        delta = np.flatnonzero(local > 2)
        x[delta] -= c[delta - 2]
    chars = _values_to_chars(x)
    if chars.size == x.size:
        char_first = first
        char_end = first + lens
    else:
        is_last = ((chars - _ZERO_CHAR) & 0x20) == 0
        # value i ends at the i-th char without the continuation bit
        ends = np.flatnonzero(is_last)
        char_end = ends[first + lens - 1] + 1
        char_first = np.concatenate([[0], char_end[:-1]])
    blob = chars.tobytes()
    return [
        {"size": [r.size[0], r.size[1]], "counts": blob[a:b].decode("ascii")}
        for r, a, b in zip(rles, char_first.tolist(), char_end.tolist(), strict=True)
    ]


# --------------------------------------------------------------------------- encode / decode


_WORD = 8


def _as_2d(mask: object) -> npt.NDArray[Any]:
    a = np.asarray(mask)
    if a.ndim != 2:
        raise MaskFormatError(
            f"a mask must be a 2-D array (h, w), got shape {a.shape}; "
            "use encode_batch for (n, h, w) stacks"
        )
    return a


def encode(mask: npt.ArrayLike) -> RLE:
    """Encode a 2-D mask; every nonzero value is foreground.

    Accepts C- or Fortran-ordered arrays of bool or any integer (or float) dtype; the
    input is never modified. The result's compressed string is byte-identical to
    pycocotools' ``encode`` of the binarised mask.

    >>> encode(np.array([[0, 1, 1], [0, 1, 0]])).counts.tolist()
    [2, 3, 1]
    >>> encode(np.array([[0, 2], [3, 0]])).counts.tolist()  # pycocotools gets this wrong
    [1, 2, 1]
    """
    a = _as_2d(mask)
    h, w = a.shape
    n_pixels = h * w
    if n_pixels == 0:
        return _trusted((h, w), np.zeros(1, np.int64))
    return _trusted((h, w), _counts_from_toggles(_transitions(a), n_pixels, assume_unique=True))


def encode_batch(masks: npt.ArrayLike) -> list[RLE]:
    """Encode an ``(n, h, w)`` stack of masks; nonzero is foreground.

    >>> [r.counts.tolist() for r in encode_batch(np.zeros((2, 2, 3), np.uint8))]
    [[6], [6]]
    """
    a = np.asarray(masks)
    if a.ndim != 3:
        raise MaskFormatError(f"encode_batch takes an (n, h, w) stack, got shape {a.shape}")
    return [encode(m) for m in a]


def _transitions(a: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    """Sorted column-major positions where the binarised mask changes value (0 -> 1 or 1 -> 0)."""
    if a.dtype == np.bool_:
        a = a.view(np.uint8)
    elif a.dtype != np.uint8:
        a = (a != 0).view(np.uint8)
    h, w = a.shape
    if a.flags.f_contiguous and not a.flags.c_contiguous:
        a = cv2.transpose(np.ascontiguousarray(a.T))  # blocked SIMD transpose to C order
    elif not a.flags.c_contiguous:
        a = np.ascontiguousarray(a)
    flat = a.reshape(-1)

    # 1. within-column transitions: pixel (y, x) differs from (y-1, x), i.e. flat[i] from
    #    flat[i - w]. Compare 8 pixels at a time as (possibly unaligned) uint64 words, then
    #    look at the bytes of the few words that differ.
    n_cmp = (h - 1) * w
    n_words = n_cmp // _WORD
    upper_words = np.ndarray((n_words,), np.uint64, buffer=flat, offset=0)
    lower_words = np.ndarray((n_words,), np.uint64, buffer=flat, offset=w)
    changed = np.flatnonzero(upper_words != lower_words)
    up = upper_words[changed].view(np.uint8)
    lo = lower_words[changed].view(np.uint8)
    k = np.flatnonzero((up != 0) != (lo != 0))
    lower = changed[k >> 3] * _WORD + (k & 7) + w  # C-order index of the lower pixel
    tail = np.arange(n_words * _WORD, n_cmp)
    if tail.size:
        tail = tail[(flat[tail] != 0) != (flat[tail + w] != 0)] + w
        lower = np.concatenate([lower, tail])
    y, x = np.divmod(lower, w)
    # row-major -> column-major order: stable (radix) sort on the column
    if lower.size > 1:
        order = np.argsort(x.astype(np.uint16) if w <= 0xFFFF else x, kind="stable")
        y, x = y[order], x[order]
    inner = x * h + y

    # 2. column starts: top of column x vs bottom of column x - 1, and pixel 0 vs background.
    top = a[0] != 0
    bottom = a[h - 1] != 0
    starts = np.flatnonzero(top[1:] != bottom[:-1]) + 1
    if top[0]:
        starts = np.concatenate([[0], starts])
    starts = starts * h
    if not inner.size:
        out: npt.NDArray[np.int64] = starts.astype(np.int64)
        return out
    if not starts.size:
        out = inner.astype(np.int64)
        return out
    both = np.concatenate([inner, starts]).astype(np.int64)
    both.sort(kind="stable")
    return both


def decode(rle: RLE) -> npt.NDArray[np.uint8]:
    """Expand an RLE to a C-contiguous ``uint8`` array of 0 and 1, shape ``(h, w)``.

    Only the columns and rows of the mask's bounding box are expanded; the rest is the
    zeros of a fresh array.

    >>> decode(RLE((2, 3), [2, 3, 1])).tolist()
    [[0, 1, 1], [0, 1, 0]]
    """
    if not isinstance(rle, RLE):
        raise TypeError(f"decode takes an RLE, got {type(rle).__name__}; see rle.from_coco")
    out = np.empty(rle.size, np.uint8)
    _decode_into(rle, out, zeroed=False)
    return out


def decode_box(rle: RLE) -> tuple[npt.NDArray[np.uint8], tuple[int, int]]:
    """Expand only a box around the mask: ``(pixels, (x, y))`` with ``(x, y)`` the box's
    top-left corner in the frame. Cheap for small objects in big frames (painting,
    cropping); the box is the bounding box or taller. An empty mask gives a 0x0 box.

    >>> box, xy = decode_box(encode(np.array([[0, 0, 0], [0, 1, 1]])))
    >>> box.tolist(), xy
    ([[1, 1]], (1, 1))
    """
    if rle.counts.size < 2:
        return np.zeros((0, 0), np.uint8), (0, 0)
    x0, _, y0, y1, block = _box_block(rle)
    return np.ascontiguousarray(cv2.transpose(block[:, y0:y1])), (x0, y0)


def decode_batch(rles: Sequence[RLE]) -> npt.NDArray[np.uint8]:
    """Expand RLEs of one size to a C-contiguous ``(n, h, w)`` uint8 stack.

    >>> decode_batch([empty((1, 2)), full((1, 2))]).tolist()
    [[[0, 0]], [[1, 1]]]
    """
    if not rles:
        raise MaskFormatError("decode_batch needs at least one RLE to know (h, w)")
    size = _common_size(rles, "decode_batch")
    out = np.empty((len(rles), *size), np.uint8)
    for i, r in enumerate(rles):
        _decode_into(r, out[i], zeroed=False)
    return out


def _decode_into(rle: RLE, out: npt.NDArray[np.uint8], *, zeroed: bool) -> None:
    """Write the mask into a C-contiguous (h, w) uint8 array (already zero if ``zeroed``).

    Only the bounding box is expanded: its columns in column-major order with np.repeat,
    then OpenCV's blocked SIMD transpose writes the box's rows straight into ``out``.
    """
    if rle.counts.size < 2:
        if not zeroed:
            out.fill(0)
        return
    x0, x1, y0, y1, block = _box_block(rle)
    cv2.transpose(block[:, y0:y1], dst=out[y0:y1, x0:x1])
    if not zeroed:
        out[:y0] = 0
        out[y1:] = 0
        out[y0:y1, :x0] = 0
        out[y0:y1, x1:] = 0


def _box_block(rle: RLE) -> tuple[int, int, int, int, npt.NDArray[np.uint8]]:
    """Columns x0..x1 of a non-empty mask expanded in column-major order, (x1-x0, h), and
    the row range y0..y1 that holds its foreground."""
    h = rle.size[0]
    c = rle.counts
    ends = np.cumsum(c, dtype=np.int64)
    last_fg = c.size - 1 - (c.size % 2)
    x0 = int(ends[0]) // h  # column of the first foreground pixel
    x1 = (int(ends[last_fg]) - 1) // h + 1  # exclusive
    fg_start = ends[0:last_fg:2]
    fg_last = ends[1 : last_fg + 1 : 2] - 1
    ys, ye = fg_start % h, fg_last % h
    if x1 - x0 > 1 and ((fg_last - fg_start) >= h - ys).any():
        y0, y1 = 0, h  # a run wraps into the next column: full height
    else:
        y0, y1 = int(ys.min()), int(ye.max()) + 1
    values = (
        _ALTERNATING[: c.size]
        if c.size <= _ALTERNATING.size
        else (np.arange(c.size) & 1).astype(np.uint8)
    )
    # runs inside columns x0..x1: only the first and the last (background) run stick out
    runs = c.astype(np.int64)
    runs[0] = ends[0] - x0 * h
    if c.size % 2:
        runs[-1] = x1 * h - ends[-2]
    block = np.repeat(values, runs).reshape(x1 - x0, h)
    return x0, x1, y0, y1, block


_ALTERNATING = (np.arange(1 << 16) & 1).astype(np.uint8)


# --------------------------------------------------------------------------- measures


def area(rle: RLE) -> int:
    """Count foreground pixels from the runs, without decoding.

    >>> area(encode(np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]])))  # a ring: 8, not its box's 9
    8
    """
    return int(rle.counts[1::2].sum(dtype=np.uint64))


def bbox(rle: RLE) -> npt.NDArray[np.float64]:
    """Bounding box ``[x, y, w, h]`` (float64, inclusive pixel extents), as COCO's toBbox.

    An empty mask gives ``[0, 0, 0, 0]``. Unlike pycocotools it is right for every input,
    since counts are canonical (§1.7).

    >>> bbox(encode(np.array([[0, 0, 0], [0, 1, 1], [0, 1, 0]]))).tolist()
    [1.0, 1.0, 2.0, 2.0]
    """
    h, _ = rle.size
    c = rle.counts
    if c.size < 2:
        return np.zeros(4, np.float64)
    ends = np.cumsum(c, dtype=np.int64)
    s = (ends - c)[1::2]
    e = ends[1::2] - 1  # inclusive last pixel of each foreground run
    xs, ys = np.divmod(s, h)
    xe, ye = np.divmod(e, h)
    x0, x1 = int(xs[0]), int(xe[-1])
    if (xs != xe).any():
        y0, y1 = 0, h - 1
    else:
        y0, y1 = int(ys.min()), int(ye.max())
    return np.array([x0, y0, x1 - x0 + 1, y1 - y0 + 1], np.float64)


def area_bbox_batch(
    rles: Sequence[RLE],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """:func:`area` and :func:`bbox` of many RLEs in one vectorised pass: ``(n,)`` int64
    areas and ``(n, 4)`` float64 ``[x, y, w, h]`` boxes (what a catalog stores per mask).

    >>> a, b = area_bbox_batch([encode(np.eye(3)), empty((2, 2))])
    >>> a.tolist(), b.tolist()
    ([3, 0], [[0.0, 0.0, 3.0, 3.0], [0.0, 0.0, 0.0, 0.0]])
    """
    n = len(rles)
    areas = np.zeros(n, np.int64)
    boxes = np.zeros((n, 4), np.float64)
    if n == 0:
        return areas, boxes
    lens = np.fromiter((r.counts.size for r in rles), np.int64, n)
    hs = np.fromiter((r.size[0] for r in rles), np.int64, n)
    c = np.concatenate([r.counts for r in rles]).astype(np.int64)
    first = np.cumsum(lens) - lens
    seg = np.repeat(np.arange(n), lens)
    local = np.arange(c.size) - first[seg]
    before = np.concatenate([[0], np.cumsum(c)])[first]  # pixels of earlier RLEs
    ends = np.cumsum(c) - before[seg]
    fg = (local & 1) == 1
    fseg = seg[fg]
    if fseg.size == 0:
        return areas, boxes
    flen = c[fg]
    areas[:] = np.bincount(fseg, weights=flen, minlength=n).astype(np.int64)
    fh = hs[fseg]
    xs, ys = np.divmod(ends[fg] - flen, fh)
    xe, ye = np.divmod(ends[fg] - 1, fh)
    # groups of foreground runs per RLE (fseg is sorted); RLEs without any are left at 0
    starts = np.flatnonzero(np.concatenate([[True], fseg[1:] != fseg[:-1]]))
    stops = np.concatenate([starts[1:], [fseg.size]]) - 1
    who = fseg[starts]
    x0, x1 = xs[starts], xe[stops]
    spans = np.bincount(fseg, weights=(xs != xe), minlength=n)[who] > 0
    y0 = np.where(spans, 0, np.minimum.reduceat(ys, starts))
    y1 = np.where(spans, hs[who] - 1, np.maximum.reduceat(ye, starts))
    boxes[who, 0] = x0
    boxes[who, 1] = y0
    boxes[who, 2] = x1 - x0 + 1
    boxes[who, 3] = y1 - y0 + 1
    return areas, boxes


def _common_size(rles: Sequence[RLE], what: str) -> tuple[int, int]:
    sizes = {r.size for r in rles}
    if len(sizes) > 1:
        raise MaskFormatError(
            f"{what} needs RLEs of one size, got {sorted(sizes)}; resize or pad them first"
        )
    return next(iter(sizes))


def _fg_intervals(rle: RLE) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    ends = np.cumsum(rle.counts, dtype=np.int64)
    return (ends - rle.counts)[1::2], ends[1::2]


def merge(rles: Sequence[RLE], op: MergeOp = "union") -> RLE:
    """Combine masks of one size: ``union``, ``intersection``, ``xor`` (odd count) or
    ``difference`` (the first minus all the others).

    >>> a = encode(np.array([[1, 1, 0]])); b = encode(np.array([[0, 1, 1]]))
    >>> ops = ("union", "intersection", "difference", "xor")
    >>> [decode(merge([a, b], op)).tolist() for op in ops]
    [[[1, 1, 1]], [[0, 1, 0]], [[1, 0, 0]], [[1, 0, 1]]]
    """
    if op not in ("union", "intersection", "difference", "xor"):
        raise ValueError(f"merge op must be union, intersection, difference or xor, got {op!r}")
    if not rles:
        raise MaskFormatError("merge needs at least one RLE")
    size = _common_size(rles, "merge")
    if len(rles) == 1:
        return rles[0]
    n_pixels = size[0] * size[1]
    if op == "xor":
        toggles = np.concatenate([np.cumsum(r.counts[:-1], dtype=np.int64) for r in rles])
        toggles.sort(kind="stable")
        return _trusted(size, _counts_from_toggles(toggles, n_pixels))
    n = len(rles)
    pos_parts, delta_parts = [], []
    for i, r in enumerate(rles):
        s, e = _fg_intervals(r)
        weight = n if (op == "difference" and i == 0) else 1
        pos_parts += [s, e]
        delta_parts += [np.full(s.size, weight, np.int64), np.full(e.size, -weight, np.int64)]
    pos = np.concatenate(pos_parts)
    delta = np.concatenate(delta_parts)
    order = np.argsort(pos, kind="stable")
    pos, level = pos[order], np.cumsum(delta[order])
    last = _first_of_runs(pos[::-1])[::-1]
    pos, level = pos[last], level[last]
    if op == "union":
        inside = level > 0
    elif op == "intersection":
        inside = level == n
    else:  # difference: the first mask (weight n) and none of the others
        inside = level == n
    change = inside.copy()
    np.not_equal(inside[1:], inside[:-1], out=change[1:])
    return _trusted(size, _counts_from_toggles(pos[change], n_pixels, assume_unique=True))


def iou(
    dts: Sequence[RLE], gts: Sequence[RLE], iscrowd: Sequence[bool] | None = None
) -> npt.NDArray[np.float64]:
    """Mask IoU matrix of shape ``(len(dts), len(gts))``, COCO's crowd rule included.

    Where ``iscrowd[j]`` is true the denominator is the detection's own area
    (``|d ∩ g| / |d|``): a detection may cover any part of a crowd region. Empty masks
    give 0. Computed by joining the foreground runs of all masks at once.

    >>> a = encode(np.array([[1, 1, 0, 0]])); b = encode(np.array([[0, 1, 1, 1]]))
    >>> iou([a], [b]).tolist(), iou([a], [b], iscrowd=[True]).tolist()
    ([[0.25]], [[0.5]])
    """
    nd, ng = len(dts), len(gts)
    crowd = np.zeros(ng, bool) if iscrowd is None else np.asarray(iscrowd, bool).reshape(-1)
    if crowd.size != ng:
        raise MaskFormatError(f"iscrowd has {crowd.size} entries for {ng} ground-truth masks")
    if nd == 0 or ng == 0:
        return np.zeros((nd, ng), np.float64)
    size = _common_size([*dts, *gts], "iou")
    # global positions run over all masks back to back: int32 while that fits
    dtype = np.int32 if (max(nd, ng) + 1) * size[0] * size[1] < 2**31 else np.int64
    a, b, md, area_d = _runs_by_start(dts, dtype)
    c, d, mg, area_g = _runs_by_start(gts, dtype)
    # Each overlapping (dt run, gt run) pair is found once: either the gt run starts inside
    # the dt run, or the dt run starts strictly inside the gt run.
    lo = np.searchsorted(c, a, side="left")
    i1, j1 = _expand_ranges(lo, np.searchsorted(c, b, side="left"))
    lo = np.searchsorted(a, c, side="right")
    j2, i2 = _expand_ranges(lo, np.searchsorted(a, d, side="left"))
    ov1 = np.minimum(b[i1], d[j1]) - c[j1]
    ov2 = np.minimum(b[i2], d[j2]) - a[i2]
    pair = np.concatenate([md[i1] * ng + mg[j1], md[i2] * ng + mg[j2]])
    inter = np.bincount(
        pair, weights=np.concatenate([ov1, ov2]).astype(np.float64), minlength=nd * ng
    ).reshape(nd, ng)
    ad = area_d[:, None]
    union = np.where(crowd[None, :], ad, ad + area_g[None, :] - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        out: npt.NDArray[np.float64] = np.where(union > 0, inter / union, 0.0)
    return out


def _runs_by_start(
    rles: Sequence[RLE], dtype: type[np.signedinteger[Any]]
) -> tuple[Any, Any, Any, npt.NDArray[np.float64]]:
    """Foreground runs of many same-size masks as (starts, ends, mask index), sorted by
    start, and each mask's area."""
    n_pixels = rles[0].size[0] * rles[0].size[1]
    parts: list[npt.NDArray[Any]] = []
    n_runs = np.empty(len(rles), np.int64)
    for i, r in enumerate(rles):
        parts.append(r.counts)
        if r.counts.size % 2:  # pad to (bg, fg) pairs: foreground is then every odd entry
            parts.append(_ZERO_RUN)
        n_runs[i] = (r.counts.size + 1) // 2
    allc = np.concatenate(parts).astype(dtype)
    length = allc[1::2]
    owner = np.repeat(np.arange(len(rles), dtype=dtype), n_runs)
    # masks are back to back, so a run's position inside its own mask is its global end
    # minus n_pixels for every mask before it
    e = np.cumsum(allc)[1::2] - owner * dtype(n_pixels)
    s = e - length
    areas = np.bincount(owner, weights=length, minlength=len(rles)).astype(np.float64)
    order = np.argsort(s, kind="stable")  # each mask's runs are sorted: a k-way merge
    return s[order], e[order], owner[order], areas


_ZERO_RUN = np.zeros(1, np.uint32)


def _expand_ranges(lo: Any, hi: Any) -> tuple[Any, Any]:
    """All pairs (i, j) with lo[i] <= j < hi[i]."""
    n = np.maximum(hi - lo, 0)
    i = np.repeat(np.arange(n.size), n)
    j = np.arange(i.size) + np.repeat(lo - (np.cumsum(n) - n), n)
    return i, j


# --------------------------------------------------------------------------- geometry


def _column_pieces(
    rle: RLE,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Foreground as vertical pieces (column x, first row y0, end row y1), column-major order."""
    h = rle.size[0]
    s, e = _fg_intervals(rle)
    if s.size == 0 or h == 0:
        z = np.zeros(0, np.int64)
        return z, z, z
    xs = s // h
    xe = (e - 1) // h
    n = xe - xs + 1
    if (n == 1).all():
        return xs, s - xs * h, e - xs * h
    owner = np.repeat(np.arange(s.size), n)
    k = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
    x = xs[owner] + k
    y0 = np.maximum(s[owner] - x * h, 0)
    y1 = np.minimum(e[owner] - x * h, h)
    return x, y0, y1


def _from_column_pieces(
    size: tuple[int, int],
    x: npt.NDArray[np.int64],
    y0: npt.NDArray[np.int64],
    y1: npt.NDArray[np.int64],
    *,
    ordered: bool,
) -> RLE:
    """Build an RLE from non-overlapping vertical pieces (sorted if ``ordered``)."""
    h, w = size
    keep = y1 > y0
    x, y0, y1 = x[keep], y0[keep], y1[keep]
    if not ordered and x.size > 1:
        order = np.lexsort((y0, x))
        x, y0, y1 = x[order], y0[order], y1[order]
    toggles = np.empty(2 * x.size, np.int64)
    toggles[0::2] = x * h + y0
    toggles[1::2] = x * h + y1
    return _trusted(size, _counts_from_toggles(toggles, h * w))


def crop(rle: RLE, box: Sequence[int]) -> RLE:
    """Cut out the integer box ``[x, y, w, h]``; parts of the box outside the image are
    background, so a box larger than the image pads.

    >>> decode(crop(encode(np.array([[1, 0, 0], [0, 1, 1]])), [1, 0, 2, 2])).tolist()
    [[0, 0], [1, 1]]
    """
    bx, by, bw, bh = _int_box(box)
    x, y0, y1 = _column_pieces(rle)
    inside = (x >= bx) & (x < bx + bw)
    x, y0, y1 = (
        x[inside] - bx,
        np.maximum(y0[inside], by) - by,
        np.minimum(y1[inside], by + bh) - by,
    )
    return _from_column_pieces((bh, bw), x, y0, y1, ordered=True)


def _int_box(box: Sequence[int]) -> tuple[int, int, int, int]:
    vals = [int(v) for v in box]
    if len(vals) != 4 or any(v != b for v, b in zip(vals, box, strict=False)):
        raise MaskFormatError(f"box must be four integers [x, y, w, h], got {list(box)!r}")
    if vals[2] < 0 or vals[3] < 0:
        raise MaskFormatError(f"box width and height must be >= 0, got {list(box)!r}")
    return vals[0], vals[1], vals[2], vals[3]


def pad(rle: RLE, *, top: int = 0, bottom: int = 0, left: int = 0, right: int = 0) -> RLE:
    """Add background rows and columns around the mask (negative values crop).

    >>> pad(encode(np.array([[1]])), top=1, right=2).size
    (2, 3)
    """
    h, w = rle.size
    new_h, new_w = h + top + bottom, w + left + right
    if new_h < 0 or new_w < 0:
        raise MaskFormatError(f"padding {top, bottom, left, right} leaves a negative size")
    return crop(rle, [-left, -top, new_w, new_h])


def translate(rle: RLE, dx: int, dy: int) -> RLE:
    """Shift the mask by ``(dx, dy)`` pixels within the same frame; what leaves is cut.

    >>> decode(translate(encode(np.array([[1, 0, 0]])), 2, 0)).tolist()
    [[0, 0, 1]]
    """
    h, w = rle.size
    return crop(rle, [-int(dx), -int(dy), w, h])


def flip(rle: RLE, axis: FlipAxis) -> RLE:
    """Mirror the mask: ``horizontal`` swaps left and right, ``vertical`` top and bottom.

    >>> decode(flip(encode(np.array([[1, 0, 0], [1, 1, 0]])), "horizontal")).tolist()
    [[0, 0, 1], [0, 1, 1]]
    """
    h, w = rle.size
    if axis == "horizontal":
        x, y0, y1 = _column_pieces(rle)
        return _from_column_pieces(rle.size, w - 1 - x, y0, y1, ordered=False)
    if axis == "vertical":
        x, y0, y1 = _column_pieces(rle)
        return _from_column_pieces(rle.size, x, h - y1, h - y0, ordered=False)
    raise ValueError(f"flip axis must be 'horizontal' or 'vertical', got {axis!r}")


def resize_nearest(rle: RLE, size: tuple[int, int]) -> RLE:
    """Resize to ``size == (h, w)`` with nearest-neighbour sampling of pixel centres.

    Output pixel ``(y, x)`` takes source pixel ``(floor((y + 0.5) * h_in / h_out),
    floor((x + 0.5) * w_in / w_out))``, in exact integer arithmetic: the rule of PIL's
    NEAREST and OpenCV's ``INTER_NEAREST_EXACT``, computed on the runs. Where a sample
    falls exactly on a pixel boundary (``(2y + 1) * h_in`` divisible by ``2 * h_out``) this
    takes the lower/right pixel; PIL and OpenCV, in fixed point, may take the other.

    >>> decode(resize_nearest(encode(np.array([[1, 0]])), (2, 4))).tolist()
    [[1, 1, 0, 0], [1, 1, 0, 0]]
    """
    new = _check_size(size)
    h, w = rle.size
    H, W = new
    if H * W == 0 or h * w == 0:
        return empty(new)
    sy = ((2 * np.arange(H, dtype=np.int64) + 1) * h) // (2 * H)
    sx = ((2 * np.arange(W, dtype=np.int64) + 1) * w) // (2 * W)
    x, y0, y1 = _column_pieces(rle)
    # rows: output y is inside [y0, y1) iff y0 <= sy[y] < y1 (sy is non-decreasing)
    ny0 = np.searchsorted(sy, y0, side="left")
    ny1 = np.searchsorted(sy, y1, side="left")
    keep = ny1 > ny0
    x, ny0, ny1 = x[keep], ny0[keep], ny1[keep]
    # columns: output column X repeats the pieces of source column sx[X]
    lo = np.searchsorted(x, sx, side="left")
    hi = np.searchsorted(x, sx, side="right")
    n = hi - lo
    total = int(n.sum())
    if total == 0:
        return empty(new)
    out_x = np.repeat(np.arange(W), n)
    src = np.arange(total) - np.repeat(np.cumsum(n) - n, n) + np.repeat(lo, n)
    return _from_column_pieces(new, out_x, ny0[src], ny1[src], ordered=True)
