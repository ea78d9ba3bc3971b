"""TensorFlow Object Detection API: ``tf.train.Example`` records in TFRecord files.

Layout (``reference/formats.md`` §5), read and written without TensorFlow or protobuf:

* **Files**: one TFRecord file a subset (``train.tfrecord``, ``val.record``), often
  sharded (``train-00000-of-00010``, ``train.tfrecord-00003-of-00010``); a folder holds
  them side by side, with a label map ``label_map.pbtxt`` (or ``label.pbtxt``,
  ``labels.pbtxt``): ``item { id: 1 name: 'cat' }``. GZIP and ZLIB compressed files are
  read too (told by their header).
* **Framing** (§5.4): each record is ``uint64 length``, ``uint32 masked_crc32c(length
  bytes)``, the data, ``uint32 masked_crc32c(data)``, all little-endian. A record whose
  data CRC fails is reported (file, record index) and skipped; a bad length CRC or a
  truncated file is reported and ends that file (nothing after it can be trusted).
* **Records** (§5.1, §5.3): a serialised ``tf.train.Example`` per image: ``image/encoded``
  (the image file's bytes), ``image/format``, ``image/filename``, ``image/source_id``,
  ``image/key/sha256``, ``image/height``, ``image/width``; per object
  ``image/object/bbox/{xmin,xmax,ymin,ymax}`` (normalised to [0, 1]),
  ``image/object/class/label`` (**1-based**, 0 is background), ``image/object/class/text``,
  ``image/object/is_crowd``, ``image/object/area`` and ``image/object/mask``.
* **Masks** (§5.2): either ``PNG_MASKS``, a bytes list with one single-channel PNG of the
  full image per object (``create_coco_tf_record.py`` writes values 0/1), or
  ``NUMERICAL_MASKS``, one float list of ``n * h * w`` values, each mask row-major, masks
  back to back. Either way a pixel is foreground when its value is ``> 0``.

Reading: a sample per record, its ``image_bytes`` the encoded image (``image`` is None),
its id the file name without extension (else ``source_id``, else file and record index),
its subset the file name without shard suffix and extension (``default`` -> None).
Classes come from ``class/label``, named by the label map file when there is one, else by
the ``class/text`` seen with each label (the records are scanned once for them); objects
with only a text are looked up by name. An object without a mask (a box-only record) is
reported and skipped, never rasterised from its box; so is an object whose class the label
map does not know.

Writing: ``<subset or 'default'>.tfrecord`` per subset and ``label_map.pbtxt``, every key
above, masks as PNGs (``mask_type="png"``, default) or floats (``mask_type="numerical"``),
boxes from the masks. TF ids start at 1, so an instance of class id < 1, or of an id not in
the label map, is reported as a ``class`` loss and left out; scores are reported as a
``score`` loss. The image is the sample's ``image_bytes`` or its image file, embedded.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, ClassVar, Literal

import numpy as np
import numpy.typing as npt
from PIL import Image

from masklab.core import rle
from masklab.core.instances import Instance
from masklab.core.labels import Label, LabelMap, voc_color
from masklab.errors import FormatError, LabelMapError, MaskFormatError
from masklab.formats import _base
from masklab.formats._crc32c import masked_crc32c
from masklab.formats._protobuf import (
    Feature,
    bytes_feature,
    encode_example,
    float_feature,
    int64_feature,
    parse_example,
)
from masklab.formats.report import ConversionReport

__all__ = [
    "SPEC",
    "Reader",
    "Writer",
    "detect",
    "format_label_map",
    "frame",
    "parse_label_map",
    "read_records",
]

SPEC = _base.FormatSpec(
    name="tfrecord",
    description="TensorFlow Object Detection API tf.Example records (TFRecord files)",
    kind="instances",
    holds=_base.Capabilities(
        holes=True, parts=True, overlap=True, crowd=True, scores=False, semantic=False
    ),
    extensions=(".tfrecord", ".tfrecords", ".record", ".records", ".tfrec"),
)

MaskType = Literal["png", "numerical"]
MASK_TYPES: tuple[MaskType, ...] = ("png", "numerical")
LABEL_MAP_NAMES = ("label_map.pbtxt", "label.pbtxt", "labels.pbtxt")
HEADER = 12  # uint64 length + uint32 masked CRC of it
_SHARD = re.compile(r"-\d+-of-\d+$")
_RECORD_NAME = re.compile(
    r"(\.(tfrecords?|records?|tfrec)(-\d+-of-\d+)?|-\d+-of-\d+)(\.gz|\.zz|\.zlib)?$",
    re.IGNORECASE,
)
_READ_CHUNK = 1 << 24  # a record is read in pieces of this size (a corrupt length cannot
#                        make us allocate more than the file holds)

# keys of §5.1
ENCODED, FORMAT, FILENAME = "image/encoded", "image/format", "image/filename"
SOURCE_ID, SHA256 = "image/source_id", "image/key/sha256"
HEIGHT, WIDTH = "image/height", "image/width"
XMIN, XMAX = "image/object/bbox/xmin", "image/object/bbox/xmax"
YMIN, YMAX = "image/object/bbox/ymin", "image/object/bbox/ymax"
LABEL, TEXT = "image/object/class/label", "image/object/class/text"
CROWD, AREA, MASK = "image/object/is_crowd", "image/object/area", "image/object/mask"


# --------------------------------------------------------------------------- framing


def frame(data: bytes) -> bytes:
    """One TFRecord record around ``data`` (§5.4).

    >>> r = frame(b"hello")
    >>> r[:8].hex(), r[8:12].hex(), r[12:-4], r[-4:].hex()
    ('0500000000000000', 'eab2043e', b'hello', 'bb1f1c19')
    """
    length = struct.pack("<Q", len(data))
    return b"".join(
        (
            length,
            struct.pack("<I", masked_crc32c(length)),
            data,
            struct.pack("<I", masked_crc32c(data)),
        )
    )


class _Inflate(io.RawIOBase):
    """A ZLIB-compressed stream (TFRecord ``compression_type="ZLIB"``), read as plain."""

    def __init__(self, raw: io.BufferedIOBase) -> None:
        self._raw = raw
        self._z = zlib.decompressobj()
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buf:
            if self._z.eof:
                return 0
            chunk = self._z.unconsumed_tail or self._raw.read(1 << 16)
            if not chunk:
                raise EOFError("the ZLIB stream ends before its end marker")
            self._buf = self._z.decompress(chunk, 1 << 20)
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


def _framing_ok(head: bytes) -> bool:
    return len(head) >= HEADER and masked_crc32c(head[:8]) == int.from_bytes(head[8:12], "little")


def _is_zlib(head: bytes) -> bool:
    return len(head) >= 2 and head[0] & 0x0F == 8 and (head[0] << 8 | head[1]) % 31 == 0


def _open(path: Path) -> io.BufferedIOBase:
    """The file as a stream of records, decompressed when it is GZIP or ZLIB."""
    raw = path.open("rb")
    head = raw.read(HEADER)
    raw.seek(0)
    if head[:2] == b"\x1f\x8b":
        raw.close()
        return gzip.open(path, "rb")
    if _is_zlib(head) and not _framing_ok(head):
        return io.BufferedReader(_Inflate(raw))
    return raw


def _read_exact(f: io.BufferedIOBase, n: int) -> bytes:
    """Up to ``n`` bytes (fewer only at the end of the file)."""
    if n <= _READ_CHUNK:
        return f.read(n)
    parts = []
    while n > 0:
        part = f.read(min(n, _READ_CHUNK))
        if not part:
            break
        parts.append(part)
        n -= len(part)
    return b"".join(parts)


def _records(path: Path, *, verify: bool = True) -> Iterator[tuple[int, bytes | str]]:
    """``(index, data)`` per record, or ``(index, message)`` for a bad one; a bad length
    CRC or a truncated file ends the file after its message."""
    index = 0

    def bad(message: str) -> tuple[int, str]:
        return index, message

    try:
        with _open(path) as f:
            while True:
                head = f.read(HEADER)
                if not head:
                    return
                if len(head) < HEADER:
                    yield bad(
                        f"the file ends inside the record header ({len(head)} of {HEADER} "
                        "bytes); it is truncated: recreate or re-download it"
                    )
                    return
                if verify and not _framing_ok(head):
                    yield bad(
                        "the CRC of the record length does not match; the file is corrupt "
                        "from here on and the rest of it was skipped: recreate it"
                    )
                    return
                (length,) = struct.unpack("<Q", head[:8])
                data = _read_exact(f, length)
                tail = f.read(4)
                if len(data) < length or len(tail) < 4:
                    yield bad(
                        f"the file ends inside the record ({len(data)} of {length} data "
                        "bytes); it is truncated: recreate or re-download it"
                    )
                    return
                if verify and masked_crc32c(data) != int.from_bytes(tail, "little"):
                    yield bad(
                        "the CRC of the record data does not match (corrupt record, "
                        "skipped): recreate the file"
                    )
                else:
                    yield index, data
                index += 1
    except (OSError, EOFError, zlib.error) as err:
        yield bad(f"cannot read the file: {err}")


def read_records(path: str | os.PathLike[str]) -> Iterator[bytes]:
    """The data of each record of a TFRecord file, CRCs verified.

    Raises:
        FormatError: at the first bad CRC or truncation, naming the file and record.
    """
    for index, item in _records(Path(path)):
        if isinstance(item, str):
            raise FormatError(f"{path}: record {index}: {item}", path=str(path), record=index)
        yield item


# --------------------------------------------------------------------------- label map

_PBTXT_TOKEN = re.compile(
    r"""\s+|\#[^\n]*
    |(?P<str>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
    |(?P<word>[-+]?[\w.]+)
    |(?P<punct>[:{}<>\[\],;])""",
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}


def _pbtxt_tokens(text: str, where: str) -> Iterator[tuple[str, str]]:
    pos = 0
    while pos < len(text):
        m = _PBTXT_TOKEN.match(text, pos)
        if m is None:
            line = text.count("\n", 0, pos) + 1
            raise FormatError(f"{where}: line {line}: cannot parse {text[pos : pos + 20]!r}")
        pos = m.end()
        if m.group("str") is not None:
            body = m.group("str")[1:-1]
            yield "str", re.sub(r"\\(.)", lambda e: _ESCAPES.get(e[1], e[1]), body)
        elif m.group("word") is not None:
            yield "word", m.group("word")
        elif m.group("punct") is not None:
            yield "punct", m.group("punct")


def parse_label_map(text: str, *, where: str = "label map") -> LabelMap:
    """A TF OD API ``StringIntLabelMap`` in text format: ``item { id: 1 name: 'cat' }``.

    An item's name is its ``name`` (else its ``display_name``; a ``display_name`` besides a
    name is kept in the label's attributes). Id 0 is the background. Other fields and
    nested messages are read past.

    >>> lm = parse_label_map("item { id: 1 name: 'cat' } item { name: \\"dog\\" id: 2 }")
    >>> [(lab.id, lab.name) for lab in lm]
    [(1, 'cat'), (2, 'dog')]
    """
    tokens = list(_pbtxt_tokens(text, where))
    labels: list[Label] = []
    pos = 0

    def skip_value(i: int) -> int:
        """Index after the value starting at ``i`` (a scalar, list or nested message)."""
        kind, tok = tokens[i]
        if kind == "punct" and tok in "{<[":
            depth = 0
            while i < len(tokens):
                if tokens[i][0] == "punct" and tokens[i][1] in "{<[":
                    depth += 1
                elif tokens[i][0] == "punct" and tokens[i][1] in "}>]":
                    depth -= 1
                    if depth == 0:
                        return i + 1
                i += 1
            raise FormatError(f"{where}: a '{tok}' is never closed")
        return i + 1

    while pos < len(tokens):
        kind, tok = tokens[pos]
        if kind == "punct" and tok in ",;":
            pos += 1
            continue
        if kind != "word":
            raise FormatError(f"{where}: expected a field name, found {tok!r}")
        pos += 1
        if pos < len(tokens) and tokens[pos] == ("punct", ":"):
            pos += 1
        if pos >= len(tokens):
            raise FormatError(f"{where}: field {tok!r} has no value")
        if tok != "item" or tokens[pos][1] not in "{<":
            pos = skip_value(pos)
            continue
        end = skip_value(pos)
        fields: dict[str, str] = {}
        i = pos + 1
        while i < end - 1:
            name_kind, name = tokens[i]
            if name_kind == "punct" and name in ",;":
                i += 1
                continue
            i += 1
            if i < end - 1 and tokens[i] == ("punct", ":"):
                i += 1
            if tokens[i][0] in ("str", "word"):
                fields.setdefault(name, tokens[i][1])
            i = skip_value(i)
        pos = end
        if "id" not in fields:
            raise FormatError(f"{where}: item {len(labels) + 1} has no id; add 'id: N'")
        try:
            label_id = int(fields["id"])
        except ValueError:
            raise FormatError(f"{where}: item id {fields['id']!r} is not an integer") from None
        name = fields.get("name") or fields.get("display_name") or str(label_id)
        extra = {"display_name": fields["display_name"]} if "display_name" in fields else {}
        labels.append(_label(label_id, name, extra))
    return LabelMap(tuple(labels))


def _label(label_id: int, name: str, attributes: dict[str, str] | None = None) -> Label:
    """A label of a TF label map: id 0 is the background."""
    bg = label_id == 0
    return Label(
        label_id,
        (name,),
        voc_color(label_id),
        isthing=not bg,
        role="background" if bg else "class",
        attributes=attributes or {},
    )


def _quote(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def format_label_map(labels: LabelMap) -> str:
    """The ``label_map.pbtxt`` text of every label with an id >= 1 that is not the
    background (TF ids start at 1).

    >>> print(format_label_map(LabelMap.from_names(["bg", "cat"], background=0)), end="")
    item {
      id: 1
      name: 'cat'
    }
    """
    return "".join(
        f"item {{\n  id: {lab.id}\n  name: {_quote(lab.name)}\n}}\n"
        for lab in labels
        if lab.id >= 1 and lab.role != "background"
    )


# --------------------------------------------------------------------------- files


def _is_record_name(name: str) -> bool:
    return _RECORD_NAME.search(name) is not None


def _record_files(path: Path, pattern: str | None) -> list[Path]:
    """The TFRecord files of a file or folder path (``pattern`` globs in a folder)."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        return []
    if pattern is not None:
        return sorted(p for p in path.glob(pattern) if p.is_file())
    return sorted(p for p in path.iterdir() if p.is_file() and _is_record_name(p.name))


def _label_file(folder: Path) -> Path | None:
    for name in LABEL_MAP_NAMES:
        if (folder / name).is_file():
            return folder / name
    found = sorted(folder.glob("*.pbtxt"))
    return found[0] if len(found) == 1 else None


def _subset_of(path: Path) -> str | None:
    name = _RECORD_NAME.sub("", path.name)
    name = _SHARD.sub("", name)
    if name == path.name:
        name = path.stem
    return None if name in ("", "default") else name


def detect(path: Path) -> _base.Detection:
    """TFRecord framing: the first record's length CRC verifies (reads 13 bytes a file)."""
    looked = (
        "a TFRecord file (*.tfrecord, *.record, name-00000-of-00001) whose first record's "
        "length CRC verifies"
    )
    if path.is_dir():
        files = _record_files(path, None)[:4]
    elif path.is_file():
        files = [path]
    else:
        return _base.Detection.no(looked)
    named = [f for f in files if _is_record_name(f.name)]
    for f in files:
        try:
            with _open(f) as stream:
                head = stream.read(HEADER + 1)
        except (OSError, EOFError, zlib.error):
            continue
        if _framing_ok(head):
            if len(head) > HEADER and head[HEADER] == 0x0A:
                return _base.Detection(3, f"{f.name}: TFRecord framing verifies, a tf.Example")
            return _base.Detection(2, f"{f.name}: TFRecord framing verifies")
    if any(f.stat().st_size == 0 for f in named):
        return _base.Detection(2, f"{named[0].name}: an empty TFRecord file")
    if named:
        return _base.Detection(1, f"{named[0].name} is named like a TFRecord file")
    return _base.Detection.no(looked)


# --------------------------------------------------------------------------- reading


def _ints(features: dict[str, Feature], key: str) -> npt.NDArray[np.int64]:
    f = features.get(key)
    if f is None or f.kind == "none":
        return np.zeros(0, np.int64)
    if f.kind != "int64":
        raise FormatError(f"{key} is a {f.kind} list, expected an int64 list")
    return f.int64_list


def _texts(features: dict[str, Feature], key: str) -> tuple[bytes, ...]:
    f = features.get(key)
    if f is None or f.kind == "none":
        return ()
    if f.kind != "bytes":
        raise FormatError(f"{key} is a {f.kind} list, expected a bytes list")
    return f.bytes_list


def _decode_text(value: bytes, key: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as err:
        raise FormatError(f"{key} is not UTF-8 text: {value[:40]!r}") from err


def _text(features: dict[str, Feature], key: str) -> str:
    values = _texts(features, key)
    return _decode_text(values[0], key) if values else ""


def _one_int(features: dict[str, Feature], key: str) -> int | None:
    values = _ints(features, key)
    return int(values[0]) if values.size else None


def _strip_suffix(filename: str) -> str:
    """The file name without its extension (``a/b.jpg`` -> ``a/b``)."""
    path = PurePosixPath(filename)
    return str(path.with_suffix("")) if path.suffix else filename


def _decode_png_mask(data: bytes) -> npt.NDArray[Any]:
    """Pixels of one PNG mask, one channel (TF decodes with ``channels=1``)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            if im.mode in ("1", "L", "I", "I;16", "I;16B", "I;16L", "F"):
                return np.asarray(im)
            return np.asarray(im.convert("L"))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise FormatError(f"cannot decode the PNG mask: {err}") from err


def _image_size(data: bytes) -> tuple[int, int] | None:
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None
    return h, w


#: a record as planned: its data, file, index in the file and subset
_Item = tuple[bytes, Path, int, str | None]


class Reader(_base.Reader):
    """Samples of a TFRecord file, or of the TFRecord files of a folder.

    ``pattern`` picks the files of a folder by glob (``"train-*-of-*"``); without it every
    ``*.tfrecord``, ``*.record`` (...) file and ``name-00000-of-00001`` shard is read, in
    name order.
    """

    spec: ClassVar[_base.FormatSpec] = SPEC

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        labels: LabelMap | None = None,
        strict: bool = False,
        pattern: str | None = None,
    ) -> None:
        super().__init__(path, labels=labels, strict=strict)
        self.files = _record_files(self.path, pattern)
        if not self.files:
            what = f"files matching {pattern!r}" if pattern else "TFRecord files"
            raise FormatError(
                f"{self.path}: no {what} (*.tfrecord, *.record, name-00000-of-00001); "
                "pass the file itself or pattern='...'",
                path=str(self.path),
            )
        folder = self.path if self.path.is_dir() else self.path.parent
        self.label_file = _label_file(folder)
        self._found: LabelMap | None = None

    @property
    def labels(self) -> LabelMap:
        """The label map given, else the label map file's, else the names in the records."""
        if self._labels is not None:
            return self._labels
        if self._found is None:
            self._found = self._read_label_file()
            if self._found is None:
                self._found = self._scan_labels()
        return self._found

    def _read_label_file(self) -> LabelMap | None:
        if self.label_file is None:
            return None
        try:
            return parse_label_map(
                self.label_file.read_text(encoding="utf-8"), where=str(self.label_file)
            )
        except (OSError, UnicodeDecodeError, FormatError, LabelMapError) as err:
            self.problem(self.label_file, None, f"{err}; using the class names in the records")
            return None

    def _scan_labels(self) -> LabelMap:
        """Ids with the first text seen for each, from every record (no CRC checks; bad
        records are reported when iterating)."""
        names: dict[int, str] = {}
        orphans: list[str] = []  # texts of objects without a label id
        for file in self.files:
            for _, data in _records(file, verify=False):
                if isinstance(data, str):
                    continue
                try:
                    f = parse_example(data, keys=(LABEL, TEXT))
                    ids, texts = _ints(f, LABEL), _texts(f, TEXT)
                    for i, t in enumerate(texts):
                        name = _decode_text(t, TEXT)
                        if i < ids.size:
                            names.setdefault(int(ids[i]), name)
                        elif name not in orphans:
                            orphans.append(name)
                    for label_id in ids.tolist():
                        names.setdefault(label_id, str(label_id))
                except FormatError:
                    continue
        known = set(names.values())
        next_id = max(names, default=0) + 1
        for name in orphans:
            if name not in known:
                names[next_id] = name
                next_id += 1
        return LabelMap(tuple(_label(i, n) for i, n in sorted(names.items())))

    def __iter__(self) -> Iterator[_base.Sample]:
        for item in self.plan():
            sample = self._decode_one(item)
            if sample is not None:
                yield sample

    def plan(self) -> Iterator[_Item]:
        """One ``(data, file, index, subset)`` per record, in file order: the framing read
        and its CRCs checked (a bad record is reported here), the Example not parsed."""
        self.labels  # noqa: B018  (the label map, or the scan for names, comes first)
        for file in self.files:
            subset = _subset_of(file)
            for index, data in _records(file):
                if isinstance(data, str):
                    self.problem(file, index, data)
                    continue
                yield data, file, index, subset

    def decode(self, items: Sequence[_Item]) -> Iterator[_base.Sample | None]:
        """The samples of :meth:`plan`'s records (Examples parsed, masks decoded); None
        for one reported and skipped."""
        for item in items:
            yield self._decode_one(item)

    def for_worker(self) -> Reader:
        """A copy that decodes in another process: the label map resolved, an empty
        report."""
        return self.worker_copy(_found=self.labels)

    def _decode_one(self, item: _Item) -> _base.Sample | None:
        data, file, index, subset = item
        try:
            sample, skipped = self._sample(data, file, index, subset, self.labels)
        except (FormatError, MaskFormatError) as err:
            self.problem(file, index, err)
            return None
        for message in skipped:
            self.problem(file, index, message)
        return sample

    def _sample(
        self, data: bytes, file: Path, index: int, subset: str | None, labels: LabelMap
    ) -> tuple[_base.Sample, list[str]]:
        """The record's sample, and a message for each object left out of it."""
        f = parse_example(data)
        encoded = _texts(f, ENCODED)
        image = encoded[0] if encoded else None
        filename, source_id = _text(f, FILENAME), _text(f, SOURCE_ID)
        masks = f.get(MASK, Feature("none"))
        h, w = _one_int(f, HEIGHT) or 0, _one_int(f, WIDTH) or 0
        if h <= 0 or w <= 0:
            found = _image_size(image) if image is not None else None
            if found is None and masks.kind == "bytes" and masks.bytes_list:
                found = _decode_png_mask(masks.bytes_list[0]).shape[:2]
            if found is None:
                raise FormatError("no image/height and image/width, and no image to read them from")
            h, w = found

        if masks.kind == "bytes":
            n_masks = len(masks.bytes_list)
        elif masks.kind == "float":
            n_masks, extra = divmod(masks.float_list.size, h * w)
            if extra:
                raise FormatError(
                    f"{MASK} holds {masks.float_list.size} floats, not a whole number of "
                    f"{h}x{w} masks (NUMERICAL_MASKS); fix image/height, image/width or the masks"
                )
        elif masks.kind == "none":
            n_masks = 0
        else:
            raise FormatError(f"{MASK} is an int64 list; expected PNG bytes or floats")

        ids, texts, crowd = _ints(f, LABEL), _texts(f, TEXT), _ints(f, CROWD)
        n_boxes = max(len(_floats(f, k)) for k in (XMIN, XMAX, YMIN, YMAX))
        n = max(n_boxes, ids.size, len(texts), n_masks)
        instances: list[Instance] = []
        skipped: list[str] = []
        for i in range(n):
            try:
                text = _decode_text(texts[i], TEXT) if i < len(texts) else ""
                class_id = self._class_of(i, ids, text, labels)
                if i >= n_masks:
                    raise FormatError(
                        f"box without mask ({n_masks} masks for {n} objects); "
                        "masklab does not invent masks from boxes: add the mask or drop the box"
                    )
                if masks.kind == "bytes":
                    pixels = _decode_png_mask(masks.bytes_list[i])
                    if pixels.shape[:2] != (h, w):
                        raise FormatError(
                            f"the mask is {pixels.shape[1]}x{pixels.shape[0]} but the "
                            f"image is {w}x{h}; re-encode the mask at the image size"
                        )
                else:
                    pixels = masks.float_list[i * h * w : (i + 1) * h * w].reshape(h, w)
            except FormatError as err:
                skipped.append(f"object {i}: {err}")
                continue
            instances.append(
                Instance(
                    rle.encode(pixels > 0),
                    class_id,
                    iscrowd=bool(crowd[i]) if i < crowd.size else False,
                    attributes={"text": text} if text else {},
                )
            )

        sample_id = _strip_suffix(filename) or source_id or f"{file.name}#{index}"
        sample = _base.Sample(
            id=sample_id,
            size=(h, w),
            instances=tuple(instances),
            subset=subset,
            image_bytes=image,
            meta={
                "file": str(file),
                "record": index,
                "filename": filename,
                "source_id": source_id,
                "format": _text(f, FORMAT),
                "sha256": _text(f, SHA256),
            },
        )
        return sample, skipped

    def _class_of(self, i: int, ids: npt.NDArray[np.int64], text: str, labels: LabelMap) -> int:
        if i < ids.size:
            class_id = int(ids[i])
        elif text:
            lab = labels.find(text)
            if lab is None:
                raise FormatError(
                    f"class text {text!r} has no label id and is not in the "
                    "label map; add it to the label map"
                )
            class_id = lab.id
        else:
            raise FormatError("neither a class label nor a class text")
        if class_id not in labels:
            where = self.label_file if self._labels is None else "the label map given"
            raise FormatError(f"class label {class_id} is not in {where}; add it there")
        return class_id


def _floats(features: dict[str, Feature], key: str) -> npt.NDArray[np.float32]:
    f = features.get(key)
    if f is None or f.kind == "none":
        return np.zeros(0, np.float32)
    if f.kind != "float":
        raise FormatError(f"{key} is a {f.kind} list, expected a float list")
    return f.float_list


# --------------------------------------------------------------------------- writing


def _image_format(data: bytes, suffix: str) -> str:
    """``jpeg``, ``png``, ... from the image's magic bytes (else its file suffix)."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:4] == b"GIF8":
        return "gif"
    if data[:2] == b"BM":
        return "bmp"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return {".jpg": "jpeg", ".tif": "tiff"}.get(suffix.lower(), suffix.lower().lstrip("."))


_SUFFIX = {"jpeg": ".jpg", "png": ".png", "gif": ".gif", "bmp": ".bmp", "webp": ".webp"}


def _png_bytes(mask: npt.NDArray[np.uint8]) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(mask).save(buf, format="PNG")
    return buf.getvalue()


@dataclass(frozen=True, slots=True)
class _Part:
    """What :meth:`Writer.encode` made of a sample (see ``_base.Writer.commit``)."""

    subset: str | None  # the file the record goes to
    record: bytes  # the framed tf.Example
    exact: int  # the instances written


class Writer(_base.Writer):
    """Writes ``<subset>.tfrecord`` files and ``label_map.pbtxt`` (see the module doc).

    Options: ``mask_type`` = ``"png"`` (default, 0/1 PNGs) or ``"numerical"`` (floats).
    """

    spec: ClassVar[_base.FormatSpec] = SPEC
    parallel = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        labels: LabelMap,
        strict: bool = False,
        overwrite: bool = False,
        **options: Any,
    ) -> None:
        mask_type = options.get("mask_type", "png")
        if mask_type not in MASK_TYPES:
            raise FormatError(f"mask_type must be one of {MASK_TYPES}, not {mask_type!r}")
        super().__init__(path, labels=labels, strict=strict, overwrite=overwrite, **options)
        self.mask_type: MaskType = mask_type
        self._named = {lab.id: lab for lab in labels if lab.id >= 1 and lab.role != "background"}
        self._files: dict[str, BinaryIO] = {}

    def _file(self, subset: str | None) -> BinaryIO:
        name = (subset or "default").replace("/", "_")
        if name not in self._files:
            self._files[name] = (self.stage / f"{name}.tfrecord").open("wb")
        return self._files[name]

    def _image(self, sample: _base.Sample) -> bytes | None:
        if sample.image_bytes is not None:
            return sample.image_bytes
        if sample.image is None:
            self.fail(
                sample,
                None,
                "no image: a TFRecord embeds the image, so the sample needs an image file "
                "or image bytes",
            )
            return None
        try:
            return sample.image.read_bytes()
        except OSError as err:
            self.fail(sample, None, f"cannot read the image {sample.image}: {err}")
            return None

    def encode(self, sample: _base.Sample) -> _Part | None:
        """The sample's framed record (image embedded, masks encoded); None when it
        cannot be written (reported)."""
        image = self._image(sample)
        if image is None:
            return None
        h, w = sample.size
        found = _image_size(image)
        if found is not None and found != (h, w):
            self.fail(
                sample,
                None,
                f"the image is {found[1]}x{found[0]} but the masks are {w}x{h}; "
                "fix the sample size or the image",
            )
            return None
        kept: list[Instance] = []
        for i, inst in enumerate(_base.instances_of(sample, self.labels)):
            try:
                _base.check_size(sample.id, inst.mask, sample.size)
            except MaskFormatError as err:
                self.fail(sample, i, err)
                continue
            if inst.class_id < 1:
                self.report.loss(
                    sample.id,
                    i,
                    "class",
                    f"class id {inst.class_id}: TF Object Detection ids start at 1 (0 is the "
                    "background); renumber the label map from 1",
                )
                continue
            if inst.class_id not in self._named:
                self.report.loss(
                    sample.id,
                    i,
                    "class",
                    f"class id {inst.class_id} is not in the label map, so label_map.pbtxt "
                    "cannot name it; add it to the label map",
                )
                continue
            if inst.score is not None:
                self.report.loss(sample.id, i, "score", f"score {inst.score} is not stored")
            kept.append(inst)
        if sample.alpha is not None:
            self.report.loss(sample.id, None, "alpha", "an alpha mask has no place in a tf.Example")
        record = frame(encode_example(self._features(sample, image, kept)))
        return _Part(sample.subset, record, len(kept))

    def commit(self, part: _Part | None, report: ConversionReport) -> None:
        """Append the record to its subset's file."""
        self.absorb(report)
        if part is None:
            return
        self._file(part.subset).write(part.record)
        self.report.exact += part.exact

    def _features(
        self, sample: _base.Sample, image: bytes, instances: list[Instance]
    ) -> dict[str, Feature]:
        h, w = sample.size
        suffix = sample.image.suffix if sample.image is not None else ""
        fmt = _image_format(image, suffix)
        boxes = np.array([rle.bbox(inst.mask) for inst in instances], np.float64).reshape(-1, 4)
        x, y, bw, bh = boxes.T
        if self.mask_type == "png":
            masks = bytes_feature([_png_bytes(rle.decode(inst.mask)) for inst in instances])
        elif instances:
            stack = rle.decode_batch([inst.mask for inst in instances])
            masks = float_feature(stack.astype(np.float32).reshape(-1))
        else:
            masks = float_feature([])
        return {
            ENCODED: bytes_feature([image]),
            FORMAT: bytes_feature([fmt.encode()]),
            FILENAME: bytes_feature([f"{sample.id}{suffix or _SUFFIX.get(fmt, '')}".encode()]),
            SOURCE_ID: bytes_feature([sample.id.encode()]),
            SHA256: bytes_feature([hashlib.sha256(image).hexdigest().encode()]),
            HEIGHT: int64_feature([h]),
            WIDTH: int64_feature([w]),
            XMIN: float_feature(x / w),
            XMAX: float_feature((x + bw) / w),
            YMIN: float_feature(y / h),
            YMAX: float_feature((y + bh) / h),
            LABEL: int64_feature([inst.class_id for inst in instances]),
            TEXT: bytes_feature([self._named[inst.class_id].name.encode() for inst in instances]),
            CROWD: int64_feature([int(inst.iscrowd) for inst in instances]),
            AREA: float_feature([inst.area for inst in instances]),
            MASK: masks,
        }

    def finish(self) -> None:
        """Close the record files (an empty ``default.tfrecord`` if nothing was written)
        and write ``label_map.pbtxt``."""
        if not self._files:
            self._file(None)
        for f in self._files.values():
            f.close()
        (self.stage / "label_map.pbtxt").write_text(format_label_map(self.labels), "utf-8")

    def abort(self) -> None:
        for f in self._files.values():
            f.close()
        super().abort()
