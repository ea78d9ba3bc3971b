"""Kaggle-style "start length" run-length CSV (``reference/formats.md`` §6).

One CSV row per instance: an image id, the mask as space-separated ``start length``
pairs, optionally a class and the image height and width::

    ImageId,EncodedPixels
    00003e153.jpg,
    000155de5.jpg,264661 17 265429 33 266197 33

* ``start`` counts pixels from ``index_base`` (1 in every competition) in ``order``:
  ``"column"`` (top to bottom, then left to right, COCO's order) or ``"row"`` (Sartorius).
  Pairs must be sorted, positive and non-overlapping, and end within ``h*w``; a row that
  breaks this is reported with file and line and skipped.
* ``relative`` (SIIM): each start is the gap from the end of the previous run, 0-based,
  so the pairs are exactly COCO's counts without the last background run.
* An empty mask (blank, ``-``, ``-1``) is an image without instances; the image is still a
  sample.
* Image size: the height/width columns if the layout has them, else the ``sizes``
  option (id -> ``(h, w)``), else the image's header in the images folder, else the
  layout's fixed ``size``.

Column-major pairs become COCO counts without decoding any pixel:
``counts = [s1 - base, l1, s2 - (s1 - base + l1), l2, ..., h*w - end]`` (then
canonicalised). Row-major pairs are the COCO counts of the transposed ``w x h`` mask,
transposed back once.

:data:`PRESETS` holds the layouts of the competitions listed in §6 (``airbus``,
``dsb2018``, ``sartorius``, ``severstal``, ``hubmap``, ``siim``, ``contrails``). A reader
takes ``preset=`` and any :class:`Layout` field as options (:func:`with_options`);
without them it uses the ``rle_csv.json`` the writer leaves beside the CSV, else the
preset whose header the CSV has, else the columns it finds by name (``ImageId``,
``EncodedPixels``, ``ClassId``, ``Height``, ``Width``, ...).

The writer writes a preset's layout, or without one :data:`GENERIC` (class, height and
width columns, so nothing depends on the images): one row per instance, a row with the
empty token for an image without one, the images under the layout's folder and
``rle_csv.json`` (layout and label map) so the output reads back exactly. What a layout
cannot hold is reported: other classes where there is no class column (``class``),
scores (``score``), crowd flags (``crowd``), empty masks (``empty``).

In a parallel conversion (:mod:`masklab.formats._parallel`) the reader's plan is each
image's rows, read in the parent (one CSV, read once), and its workers decode the runs;
the writer's workers encode the runs and the parent decides, in order, what the layout
holds (the one class of a layout without a class column is the first one written).
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from masklab.core import rle
from masklab.core.instances import Instance
from masklab.core.labels import Label, LabelMap, voc_color
from masklab.core.rle import RLE
from masklab.errors import FormatError, LabelMapError, MaskFormatError
from masklab.formats import _base
from masklab.formats._base import Capabilities, Detection, FormatSpec, Sample
from masklab.formats.report import ConversionReport

__all__ = [
    "GENERIC",
    "PRESETS",
    "SPEC",
    "Layout",
    "Reader",
    "Writer",
    "decode_pairs",
    "detect",
    "encode_pairs",
    "guess_preset",
    "with_options",
]

SPEC = FormatSpec(
    name="rle-csv",
    description="Kaggle start/length run-length CSV, one row per instance",
    kind="instances",
    holds=Capabilities(holes=True, parts=True, overlap=True, crowd=False, scores=False),
    extensions=(".csv",),
)

Order = Literal["column", "row"]
EMPTY_TOKENS = ("", "-", "-1", "nan", "NaN")
SIDECAR = "rle_csv.json"
RLE_COLUMNS = ("encodedpixels", "encoded_pixels", "annotation", "encoding", "rle", "rle_mask")


@dataclass(frozen=True)
class Layout:
    """How one CSV spells its masks (a preset, or any field given as an option)."""

    id_column: str = "ImageId"
    rle_column: str = "EncodedPixels"
    class_column: str | None = None
    class_values: Literal["id", "name", "auto"] = "id"  # what the class column holds
    height_column: str | None = None
    width_column: str | None = None
    order: Order = "column"
    index_base: int = 1
    relative: bool = False
    size: tuple[int, int] | None = None  # (h, w) of every image, when fixed
    empty: str = ""  # written for an image without instances
    class_name: str = "object"  # the one class when there is no class column
    class_id: int = 1  # its id
    filename: str = "train.csv"
    images: str = "images"  # image folder beside the CSV

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``rle_csv.json``)."""
        out = asdict(self)
        out["size"] = list(self.size) if self.size else None
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Layout:
        """Inverse of :meth:`to_dict`; unknown keys raise TypeError."""
        values = dict(data)
        if values.get("size") is not None:
            values["size"] = _size_pair(values["size"])
        return cls(**values)


GENERIC = Layout(
    class_column="ClassId", class_values="auto", height_column="Height", width_column="Width"
)  # what the writer uses without a preset: classes and sizes in the CSV, nothing lost

PRESETS: dict[str, Layout] = {
    # Airbus Ship Detection: 768x768, one row per ship, blank = no ship
    "airbus": Layout(
        size=(768, 768), class_name="ship", filename="train_ship_segmentations_v2.csv"
    ),
    # Data Science Bowl 2018: stage1_train/<id>/images/<id>.png give the sizes
    "dsb2018": Layout(
        class_name="nucleus", filename="stage1_train_labels.csv", images="stage1_train"
    ),
    # Sartorius cell instance segmentation: row-major, one row per cell, overlaps allowed
    "sartorius": Layout(
        id_column="id",
        rle_column="annotation",
        class_column="cell_type",
        class_values="name",
        height_column="height",
        width_column="width",
        order="row",
        size=(520, 704),
        class_name="cell",
    ),
    # Severstal steel defects: 256x1600, ClassId 1..4
    "severstal": Layout(class_column="ClassId", size=(256, 1600), class_name="defect"),
    # HuBMAP kidney glomeruli: sizes from the tiff images
    "hubmap": Layout(id_column="id", rle_column="encoding", class_name="glomerulus"),
    # SIIM-ACR pneumothorax: relative 0-based starts, -1 = empty
    "siim": Layout(
        index_base=0,
        relative=True,
        size=(1024, 1024),
        empty="-1",
        class_name="pneumothorax",
        filename="train-rle.csv",
    ),
    # Google Research contrails: 256x256, "-" = empty
    "contrails": Layout(
        id_column="record_id",
        rle_column="encoded_pixels",
        size=(256, 256),
        empty="-",
        class_name="contrail",
    ),
}


def _size_pair(value: Any) -> tuple[int, int]:
    """``(h, w)`` from a pair or a string such as ``"768x768"`` or ``"520,704"``."""
    if isinstance(value, str):
        value = re.split(r"[x,\s]+", value.strip("()[] "))
    try:
        h, w = (int(v) for v in value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"size must be (h, w), e.g. 768x768, got {value!r}") from err
    return h, w


_OPTIONAL = ("class_column", "height_column", "width_column", "size")


def with_options(base: Layout, options: Mapping[str, Any]) -> Layout:
    """``base`` with :class:`Layout` fields replaced (strings from the CLI coerced:
    ``size="768x768"``, ``class_column="none"``); TypeError names unknown options.

    >>> with_options(PRESETS["airbus"], {"size": "512x256", "index_base": "0"}).size
    (512, 256)
    """
    known = {f.name: f for f in fields(Layout)}
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise TypeError(f"unknown rle-csv options {unknown}; known: {sorted(known)}")
    values: dict[str, Any] = {}
    for key, value in options.items():
        if key in _OPTIONAL and (value is None or str(value).lower() in ("", "none", "null")):
            values[key] = None
        elif key == "size":
            values[key] = _size_pair(value)
        elif key in ("index_base", "class_id"):
            values[key] = int(value)
        elif key == "relative":
            values[key] = value if isinstance(value, bool) else str(value).lower() == "true"
        else:
            values[key] = str(value)
    if values.get("order", base.order) not in ("column", "row"):
        raise ValueError(f"order must be 'column' or 'row', got {values['order']!r}")
    return replace(base, **values)


# --------------------------------------------------------------------------- codec


def decode_pairs(
    text: str,
    size: tuple[int, int],
    *,
    order: Order = "column",
    index_base: int = 1,
    relative: bool = False,
) -> RLE:
    """The mask of a ``start length`` string (an empty mask for an empty token).

    MaskFormatError names the pair that is unsorted, overlapping, not positive or past
    ``h*w``.

    >>> decode_pairs("10 2 14 2 18 2", (4, 5)).counts.tolist()  # §6's worked example
    [9, 2, 2, 2, 2, 2, 1]
    >>> decode_pairs("8 3 13 3", (4, 5), order="row").counts.tolist()
    [9, 2, 2, 2, 2, 2, 1]
    """
    h, w = size
    n = h * w
    s = text.strip()
    if s in EMPTY_TOKENS:
        return rle.empty(size)
    try:
        values = np.array(s.split(), dtype=np.int64)
    except ValueError:
        token = next(t for t in s.split() if not re.fullmatch(r"[-+]?\d+", t))
        raise MaskFormatError(f"{token!r} is not an integer; pairs are 'start length'") from None
    if values.size % 2:
        raise MaskFormatError(
            f"odd number of values ({values.size}); the mask is 'start length' pairs"
        )
    a, lengths = values[0::2], values[1::2]
    bad_len = np.flatnonzero(lengths < 1)
    if bad_len.size:
        i = int(bad_len[0])
        raise MaskFormatError(f"pair {i}: length {int(lengths[i])} is not positive")
    if relative:
        gaps = a
        bad = np.flatnonzero(gaps < 0)
        if bad.size:
            i = int(bad[0])
            raise MaskFormatError(f"pair {i}: relative start {int(gaps[i])} is negative")
        end = int(values.sum())
    else:
        starts = a - index_base
        bad = np.flatnonzero(starts < 0)
        if bad.size:
            i = int(bad[0])
            raise MaskFormatError(
                f"pair {i}: start {int(a[i])} is below the index base {index_base}"
            )
        ends = starts + lengths
        back = np.flatnonzero(starts[1:] < ends[:-1])
        if back.size:
            i = int(back[0]) + 1
            raise MaskFormatError(
                f"pair {i}: start {int(a[i])} overlaps or precedes the run before it "
                f"(which ends at {int(ends[i - 1]) + index_base}); pairs must be sorted "
                "and non-overlapping"
            )
        gaps = starts - np.concatenate([[0], ends[:-1]])
        end = int(ends[-1])
    if end > n:
        raise MaskFormatError(
            f"runs end at pixel {end} but the image {h}x{w} has {n} pixels; "
            "check the size and the pixel order"
        )
    counts = np.empty(values.size + 1, np.uint64)  # every entry checked >= 0 above
    counts[0:-1:2] = gaps
    counts[1:-1:2] = lengths
    counts[-1] = n - end
    if order == "column":
        return RLE(size, counts)
    transposed = RLE((w, h), counts)  # row-major runs = column-major runs of the transpose
    return rle.encode(rle.decode(transposed).T)


def encode_pairs(
    mask: RLE, *, order: Order = "column", index_base: int = 1, relative: bool = False
) -> str:
    """The ``start length`` string of a mask ('' when it is empty).

    >>> m = decode_pairs("10 2 14 2 18 2", (4, 5))
    >>> encode_pairs(m), encode_pairs(m, order="row"), encode_pairs(m, relative=True)
    ('10 2 14 2 18 2', '8 3 13 3', '9 2 2 2 2 2')
    """
    if order == "row":
        mask = rle.encode(rle.decode(mask).T)
    counts = np.asarray(mask.counts, np.int64)
    if counts.size < 2:
        return ""
    k = counts.size - (counts.size % 2)  # drop the last background run
    if relative:
        pairs = counts[:k]
    else:
        pos = np.cumsum(counts[:k])
        pairs = np.empty(k, np.int64)
        pairs[0::2] = pos[0::2] + index_base  # where each run starts
        pairs[1::2] = counts[1:k:2]
    return " ".join(map(str, pairs.tolist()))


# --------------------------------------------------------------------------- layout


def guess_preset(header: list[str], first: list[dict[str, str]] | None = None) -> str | None:
    """The preset whose columns the header has (first rows break ties), or None.

    >>> guess_preset(["ImageId", "ClassId", "EncodedPixels"])
    'severstal'
    """
    names = {h.strip().lower() for h in header}
    if names & {"height", "width"} and not {"id", "annotation"} <= names:
        return None  # sizes in the CSV: not a competition's layout
    if {"imageid", "classid", "encodedpixels"} <= names:
        return "severstal"
    if {"id", "annotation"} <= names:
        return "sartorius"
    if {"record_id", "encoded_pixels"} <= names:
        return "contrails"
    if {"id", "encoding"} <= names:
        return "hubmap"
    if {"imageid", "encodedpixels"} <= names:
        if any(h != h.strip() for h in header):
            return "siim"  # its header is "ImageId, EncodedPixels"
        rows = first or []
        values = [r.get("EncodedPixels", r.get(" EncodedPixels", "")) for r in rows]
        if any(v.strip() == "-1" for v in values):
            return "siim"
        ids = [next(iter(r.values()), "") for r in rows]
        if ids and all(re.fullmatch(r"[0-9a-f]{64}", i) for i in ids):
            return "dsb2018"
        if ids and all(i.lower().endswith(".jpg") for i in ids):
            return "airbus"
    return None


def _find_csv(path: Path) -> Path:
    if path.is_file():
        return path
    if not path.is_dir():
        raise FormatError(f"{path} does not exist", path=str(path))
    sidecar = path / SIDECAR
    if sidecar.is_file():
        try:
            name = json.loads(sidecar.read_text(encoding="utf-8"))["layout"]["filename"]
        except (OSError, KeyError, TypeError, json.JSONDecodeError) as err:
            raise FormatError(f"{sidecar}: cannot read: {err}", path=str(sidecar)) from err
        return path / str(name)
    found = sorted(path.glob("*.csv"))
    if len(found) != 1:
        raise FormatError(
            f"{path} holds {len(found)} CSV files; pass the CSV file itself", path=str(path)
        )
    return found[0]


def _read_header(csv_path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        first = []
        for row in reader:
            first.append(dict(zip(header, row, strict=False)))
            if len(first) >= 5:
                break
    return header, first


def detect(path: Path) -> Detection:
    """A CSV (or a folder with one) whose header has a run-length column."""
    path = Path(path)
    try:
        csv_path = _find_csv(path)
    except FormatError as err:
        return Detection.no(f"no single CSV file ({err})")
    if csv_path.suffix.lower() != ".csv" or not csv_path.is_file():
        return Detection.no("not a .csv file")
    try:
        with open(csv_path, encoding="utf-8-sig", errors="replace") as f:
            head = f.read(4096)
    except OSError as err:
        return Detection.no(f"cannot read {csv_path}: {err}")
    header = next(csv.reader(head.splitlines()[:1]), [])
    names = [h.strip().lower() for h in header]
    if not any(n in RLE_COLUMNS for n in names):
        return Detection.no(f"CSV header {header!r} has no run-length column")
    if (csv_path.parent / SIDECAR).is_file() or guess_preset(header) is not None:
        return Detection(3, "CSV with a run-length column of a known layout")
    return Detection(2, "CSV with a run-length column")


# --------------------------------------------------------------------------- reader


#: a work item of the reader: an image id and its rows (line number, cells)
_Item = tuple[str, list[tuple[int, list[str]]]]


class Reader(_base.Reader):
    """Stream samples from a run-length CSV, one image at a time.

    Options: ``preset`` (a :data:`PRESETS` name), any :class:`Layout` field, ``sizes``
    (image id -> ``(h, w)``) and ``images`` (the folder to take images and sizes from).
    """

    spec = SPEC

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        labels: LabelMap | None = None,
        strict: bool = False,
        preset: str | None = None,
        sizes: Mapping[str, tuple[int, int]] | None = None,
        images: str | os.PathLike[str] | None = None,
        **layout: Any,
    ) -> None:
        super().__init__(path, labels=labels, strict=strict)
        self.csv = _find_csv(self.path)
        if not self.csv.is_file():
            raise FormatError(f"{self.csv} does not exist", path=str(self.csv))
        try:
            self._header, first = _read_header(self.csv)
        except (OSError, UnicodeDecodeError, csv.Error) as err:
            raise FormatError(f"{self.csv}: cannot read: {err}", path=str(self.csv)) from err
        base: Layout
        sidecar = self.csv.parent / SIDECAR
        stored_labels: LabelMap | None = None
        if preset is not None:
            if preset not in PRESETS:
                raise FormatError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
            base = PRESETS[preset]
        elif sidecar.is_file():
            try:
                data = json.loads(sidecar.read_text(encoding="utf-8"))
                base = Layout.from_dict(data["layout"])
                stored_labels = LabelMap.from_dict(data["labels"]) if "labels" in data else None
            except (OSError, KeyError, TypeError, ValueError, LabelMapError) as err:
                raise FormatError(f"{sidecar}: cannot read: {err}", path=str(sidecar)) from err
        else:
            guessed = guess_preset(self._header, first)
            base = PRESETS[guessed] if guessed else _layout_from_header(self._header)
        self.layout = with_options(base, layout)
        self._columns = {h.strip(): i for i, h in enumerate(self._header)}
        wanted = [self.layout.id_column, self.layout.rle_column, self.layout.class_column]
        wanted += [self.layout.height_column, self.layout.width_column]
        for col in wanted:
            if col is not None and col not in self._columns:
                raise FormatError(
                    f"{self.csv}: no column {col!r} in the header {self._header!r}; pass "
                    "the column names (id_column=, rle_column=, ...) or a preset",
                    path=str(self.csv),
                    field=col,
                )
        self.sizes = dict(sizes or {})
        folder = Path(images) if images is not None else self.csv.parent / self.layout.images
        self.images = folder if folder.is_dir() else None
        self._stored_labels = stored_labels
        self._index: tuple[dict[str, int], list[str]] | None = None

    # ---- pre-scan: rows per image and class values (ids and classes only)

    def _scan(self) -> tuple[dict[str, int], list[str]]:
        if self._index is None:
            counts: dict[str, int] = {}
            classes: set[str] = set()
            id_col = self._columns[self.layout.id_column]
            rle_col = self._columns[self.layout.rle_column]
            cls_col = self._columns.get(self.layout.class_column or "")
            for _, row in self._rows():
                key = row[id_col].strip() if id_col < len(row) else ""
                counts[key] = counts.get(key, 0) + 1
                if (
                    cls_col is not None
                    and max(cls_col, rle_col) < len(row)
                    and row[rle_col].strip() not in EMPTY_TOKENS
                    and row[cls_col].strip()
                ):
                    classes.add(row[cls_col].strip())
            self._index = (counts, sorted(classes))
            if self.layout.class_values == "auto":
                ints = all(re.fullmatch(r"[-+]?\d+", v) for v in classes)
                self.layout = replace(self.layout, class_values="id" if ints else "name")
        return self._index

    def _rows(self) -> Iterator[tuple[int, list[str]]]:
        try:
            with open(self.csv, newline="", encoding="utf-8-sig") as f:
                reader = csv.reader(f)
                next(reader, None)
                line = reader.line_num
                for row in reader:
                    yield line + 1, row
                    line = reader.line_num
        except (OSError, UnicodeDecodeError, csv.Error) as err:
            self.problem(self.csv, None, f"cannot read the CSV: {err}")

    @property
    def labels(self) -> LabelMap:
        """The given map, else the stored one, else built from the class column."""
        if self._labels is not None:
            return self._labels
        if self._stored_labels is not None:
            return self._stored_labels
        _, values = self._scan()
        lay = self.layout
        if lay.class_column is None:
            one = Label(lay.class_id, (lay.class_name,), voc_color(lay.class_id))
            return LabelMap((_background(), one) if lay.class_id != 0 else (one,))
        if lay.class_values == "id":
            ids = sorted({int(v) for v in values if re.fullmatch(r"[-+]?\d+", v)})
            labs = [Label(i, (f"{lay.class_name}_{i}",), voc_color(i)) for i in ids]
        else:
            labs = [Label(i, (v,), voc_color(i)) for i, v in enumerate(values, start=1)]
        if all(lab.id != 0 for lab in labs):
            labs.insert(0, _background())
        return LabelMap(tuple(labs))

    def __len__(self) -> int:
        return len(self._scan()[0])

    def __iter__(self) -> Iterator[Sample]:
        for key, rows in self.plan():
            sample = self._sample(key, rows)
            if sample is not None:
                yield sample

    def plan(self) -> Iterator[_Item]:
        """One item per image: its id and its rows (line number, cells), yielded once its
        last row is read; the runs are decoded by :meth:`decode`."""
        counts, _ = self._scan()
        remaining = dict(counts)
        pending: dict[str, list[tuple[int, list[str]]]] = {}
        id_col = self._columns[self.layout.id_column]
        for line, row in self._rows():
            key = row[id_col].strip() if id_col < len(row) else ""
            pending.setdefault(key, []).append((line, row))
            remaining[key] -= 1
            if remaining[key] == 0:
                yield key, pending.pop(key)

    def decode(self, items: Sequence[_Item]) -> Iterator[Sample | None]:
        """Each image's runs decoded and its size found; None for an image reported and
        skipped (no id, no size)."""
        for key, rows in items:
            yield self._sample(key, rows)

    def for_worker(self) -> Reader:
        """A copy with the layout and label map resolved, without the per-image row
        counts and with an empty report, to decode images in another process."""
        self._scan()  # resolves class_values="auto"
        return self.worker_copy(_labels=self.labels, _index=None)

    def _sample(self, key: str, rows: list[tuple[int, list[str]]]) -> Sample | None:
        if not key:
            for line, _ in rows:
                self.problem(self.csv, line, f"empty {self.layout.id_column!r}; fix the row")
            return None
        image = self._image(key)
        size = self._size(key, image, rows)
        if size is None:
            return None
        lay = self.layout
        instances = []
        rle_col = self._columns[lay.rle_column]
        cls_col = self._columns.get(lay.class_column or "")
        used = {lay.id_column, lay.rle_column, lay.class_column}
        used |= {lay.height_column, lay.width_column}
        extra = [(h, i) for h, i in self._columns.items() if h not in used]
        for line, row in rows:
            text = row[rle_col] if rle_col < len(row) else ""
            if text.strip() in EMPTY_TOKENS:
                continue
            try:
                mask = decode_pairs(
                    text,
                    size,
                    order=lay.order,
                    index_base=lay.index_base,
                    relative=lay.relative,
                )
                class_id = self._class_id(row[cls_col].strip() if cls_col is not None else None)
            except (MaskFormatError, FormatError, LabelMapError, IndexError) as err:
                self.problem(self.csv, line, f"image {key!r}: {err}")
                continue
            attrs = {h: row[i] for h, i in extra if i < len(row)}
            instances.append(Instance(mask, class_id, attributes=attrs))
        return Sample(key, size, image=image, instances=tuple(instances))

    def _class_id(self, value: str | None) -> int:
        lay = self.layout
        if value is None:
            return lay.class_id
        if lay.class_values == "id":
            if not re.fullmatch(r"[-+]?\d+", value):
                raise FormatError(f"class {value!r} in {lay.class_column!r} is not an integer")
            return int(value)
        return self.labels.by_name(value).id

    def _image(self, key: str) -> Path | None:
        if self.images is None:
            return None
        direct = self.images / key
        if direct.is_file():
            return direct
        for ext in _base.IMAGE_EXTENSIONS:
            for cand in (self.images / f"{key}{ext}", self.images / key / "images" / f"{key}{ext}"):
                if cand.is_file():
                    return cand
        return None

    def _size(
        self, key: str, image: Path | None, rows: list[tuple[int, list[str]]]
    ) -> tuple[int, int] | None:
        lay = self.layout
        if lay.height_column in self._columns and lay.width_column in self._columns:
            hc, wc = self._columns[lay.height_column or ""], self._columns[lay.width_column or ""]
            seen = set()
            for line, row in rows:
                try:
                    seen.add((int(row[hc]), int(row[wc])))
                except (ValueError, IndexError):
                    self.problem(self.csv, line, f"image {key!r}: height/width are not integers")
            if len(seen) == 1:
                return seen.pop()
            if len(seen) > 1:
                self.problem(
                    self.csv, rows[0][0], f"image {key!r} has rows of different sizes {seen}"
                )
                return None
        if key in self.sizes:
            return _size_pair(self.sizes[key])
        if image is not None:
            try:
                return _base.image_size(image)
            except FormatError as err:
                self.problem(image, key, err)
                return None
        if lay.size is not None:
            return lay.size
        self.problem(
            self.csv,
            rows[0][0],
            f"size of image {key!r} unknown; pass size=(h, w), sizes= or images=FOLDER",
        )
        return None


_ID_NAMES = ("imageid", "image_id", "id", "record_id", "image")
_CLASS_NAMES = ("classid", "class_id", "class", "label", "category_id", "category")


def _layout_from_header(header: list[str]) -> Layout:
    """A layout from the column names (case-insensitive), for CSVs of no known preset."""
    by_name = {h.strip().lower(): h.strip() for h in header}

    def pick(names: tuple[str, ...]) -> str | None:
        return next((by_name[n] for n in names if n in by_name), None)

    return Layout(
        id_column=pick(_ID_NAMES) or Layout.id_column,
        rle_column=pick(RLE_COLUMNS) or Layout.rle_column,
        class_column=pick(_CLASS_NAMES),
        class_values="auto",
        height_column=pick(("height", "img_height")),
        width_column=pick(("width", "img_width")),
    )


def _background() -> Label:
    return Label(0, ("background",), (0, 0, 0), isthing=False, role="background")


# --------------------------------------------------------------------------- writer


@dataclass(frozen=True, slots=True)
class _Runs:
    """One instance as :meth:`Writer.encode` left it for commit: its runs as text, or
    why it cannot be written, and what the layout may not hold."""

    index: int
    class_id: int
    size_error: str | None  # the mask's size is not the image's
    iscrowd: bool = False
    score: float | None = None
    empty: bool = False
    text: str = ""


@dataclass(frozen=True, slots=True)
class _Part:
    """What :meth:`Writer.encode` made of a sample (see ``_base.Writer.commit``)."""

    image: Sample  # the sample without its masks (image file or bytes, size)
    name: str  # the image's file name under the layout's images folder
    runs: tuple[_Runs, ...]


class Writer(_base.Writer):
    """Write the CSV of a layout (``preset=`` or :class:`Layout` fields), its images and
    ``rle_csv.json``. Option ``copy_images=False`` leaves the images out."""

    spec = SPEC
    parallel = True

    def __init__(self, path: str | os.PathLike[str], *, labels: LabelMap, **options: Any) -> None:
        opts = dict(options)
        preset = opts.pop("preset", None)
        copy_images = opts.pop("copy_images", True)
        for key in ("strict", "overwrite", "images"):  # the base Writer's
            opts.pop(key, None)
        if preset is not None and preset not in PRESETS:
            raise FormatError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
        layout = with_options(PRESETS[preset] if preset else GENERIC, opts)  # before staging
        super().__init__(path, labels=labels, **options)
        self.copy_images = copy_images if isinstance(copy_images, bool) else copy_images == "true"
        self.layout = layout
        if self.layout.class_values == "auto":
            self.layout = replace(self.layout, class_values="id")
        things = [lab.id for lab in labels if lab.role == "class"]
        self._single: int | None = things[0] if len(things) == 1 else None
        lay = self.layout
        header = [lay.id_column, lay.rle_column]
        if lay.class_column:
            header.append(lay.class_column)
        if lay.height_column and lay.width_column:
            header += [lay.height_column, lay.width_column]
        self._file = open(self.stage / lay.filename, "w", newline="", encoding="utf-8")  # noqa: SIM115
        self._csv = csv.writer(self._file, lineterminator="\n")
        self._csv.writerow(header)

    def encode(self, sample: Sample) -> _Part:
        """Each instance's ``start length`` text (class maps split into instances first);
        what the layout can hold is decided, in order, at commit."""
        lay = self.layout
        runs: list[_Runs] = []
        for i, inst in enumerate(_base.instances_of(sample, self.labels)):
            try:
                _base.check_size(sample.id, inst.mask, sample.size)
            except MaskFormatError as err:
                runs.append(_Runs(i, inst.class_id, str(err)))
                continue
            empty = rle.area(inst.mask) == 0
            text = (
                ""
                if empty
                else encode_pairs(
                    inst.mask, order=lay.order, index_base=lay.index_base, relative=lay.relative
                )
            )
            runs.append(_Runs(i, inst.class_id, None, inst.iscrowd, inst.score, empty, text))
        image = replace(sample, instances=(), semantic=None, alpha=None)
        return _Part(image, _image_name(sample), tuple(runs))

    def commit(self, part: _Part, report: ConversionReport) -> None:
        """Place the image; refuse a sample whose size the CSV cannot say; report what
        the layout cannot hold and append the rows."""
        self.absorb(report)
        lay = self.layout
        sample = part.image
        image_placed = False
        if self.copy_images:
            image_placed = self.place_image(sample, self.stage / lay.images / part.name)
        has_columns = bool(lay.height_column and lay.width_column)
        if not has_columns and not image_placed and sample.size != lay.size:
            self.fail(
                sample,
                None,
                f"size {sample.size} is not the layout's {lay.size} and there is no "
                "image to read it from; pass a layout with height/width columns",
            )
            return
        rows = []
        for runs in part.runs:
            row = self._row(sample, runs)
            if row is not None:
                rows.append(row)
        if not rows:
            rows.append(self._cells(sample, lay.empty, ""))
        self._csv.writerows(rows)

    def _cells(self, sample: Sample, text: str, cls: str) -> list[str]:
        lay = self.layout
        cells = [sample.id, text]
        if lay.class_column:
            cells.append(cls)
        if lay.height_column and lay.width_column:
            cells += [str(sample.h), str(sample.w)]
        return cells

    def _row(self, sample: Sample, runs: _Runs) -> list[str] | None:
        lay = self.layout
        i = runs.index
        if runs.size_error is not None:
            self.fail(sample, i, runs.size_error)
            return None
        if runs.iscrowd:
            self.report.loss(sample.id, i, "crowd", "written as an ordinary instance")
        if runs.score is not None:
            self.report.loss(sample.id, i, "score", f"score {runs.score:g} dropped")
        cls = ""
        if lay.class_column is None:
            if self._single is None:
                self._single = runs.class_id
            if runs.class_id != self._single:
                self.report.loss(
                    sample.id,
                    i,
                    "class",
                    f"class id {runs.class_id}: the layout has no class column and holds "
                    f"class {self._single} only; left out",
                )
                return None
        elif lay.class_values == "id":
            cls = str(runs.class_id)
        else:
            try:
                cls = self.labels.by_id(runs.class_id).name
            except LabelMapError:
                self.report.loss(sample.id, i, "class", f"class id {runs.class_id} has no name")
                return None
        if runs.empty:
            self.report.loss(sample.id, i, "empty", "empty mask: it reads back as no instance")
            return None
        self.report.exact += 1
        return self._cells(sample, runs.text, cls)

    def finish(self) -> None:
        self._file.close()
        labels = self.labels
        layout = self.layout
        single = self._single
        if layout.class_column is None and single is not None:
            layout = replace(layout, class_id=single)
            if single not in labels:
                labels = labels.with_label(Label(single, (layout.class_name,), voc_color(single)))
        sidecar = {"layout": layout.to_dict(), "labels": labels.to_dict()}
        (self.stage / SIDECAR).write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")

    def abort(self) -> None:
        self._file.close()
        super().abort()


def _image_name(sample: Sample) -> str:
    if sample.image is not None:
        suffix = sample.image.suffix
    else:
        suffix = ".png" if (sample.image_bytes or b"").startswith(b"\x89PNG") else ".jpg"
    parts = [p for p in sample.id.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    stem = "/".join(parts) or "image"
    return stem if stem.lower().endswith(suffix.lower()) else stem + suffix
