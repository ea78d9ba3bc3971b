"""labelme JSON annotations (wkentaro/labelme, one ``.json`` per image).

Layout: a folder of ``<name>.json`` beside their images (nested folders allowed)::

    {"version": "5.5.0", "flags": {}, "imagePath": "a.jpg", "imageData": null,
     "imageHeight": 480, "imageWidth": 640,
     "shapes": [{"label": "cat", "points": [[x, y], ...], "group_id": null,
                 "shape_type": "polygon", "flags": {}, "description": "", "mask": null}]}

* Pixels are what labelme's own ``labelme.utils.shape_to_mask`` draws: PIL
  ``ImageDraw`` on the full image with ``outline=1, fill=1``, so a point is a pixel
  *centre* (pixel ``(x, y)`` spans ``x - 0.5 .. x + 0.5``, unlike COCO's corners).
  ``polygon`` (and ``oriented_rectangle``) -> ``draw.polygon``; ``rectangle`` (two
  corners, sorted) -> ``draw.rectangle``; ``circle`` (centre, a point on the rim) ->
  ``draw.ellipse`` of that radius; ``mask`` -> a base64 PNG of the box between its two
  integer points, inclusive, as labelme 5.3+ writes it. ``point``, ``line`` and
  ``linestrip`` shapes are not masks: each is reported and skipped.
* Shapes with the same ``label`` and a non-null ``group_id`` are one instance (their
  union), as in labelme's ``shapes_to_label``; every shape without a group is its own.
* Class ids: ``labels.txt`` beside the files (labelme2voc's convention: line ``i`` is id
  ``i - 1``, ``__ignore__`` = -1, ``_background_`` = 0) when there is one, else the
  labels found in the files in sorted order from 1 (0 = ``_background_``).
* Image size: ``imageHeight``/``imageWidth``; when the image file says otherwise labelme
  trusts the image, and so does this reader (the mismatch is reported). labelme turns
  images by their EXIF orientation on load, so a quarter-turn orientation swaps the
  image file's stored width and height here too (``Sample.image`` is the file as stored).

Writing: ``shape="polygon"`` (default) traces every part of a mask with
``cv2.findContours`` (vertices on boundary pixel centres, labelme's convention), one
polygon shape per part sharing a ``group_id``, and checks the result by drawing it back
with ``ImageDraw``: holes cannot be drawn (``holes`` loss with the IoU kept), any other
difference is a ``resampled`` loss. ``shape="mask"`` writes labelme's ``mask`` shapes,
which hold every mask exactly. Scores (``score``) and crowd flags (``crowd``) are
dropped and reported. ``embed_image=True`` stores the image in ``imageData``.

In a parallel conversion (:mod:`masklab.formats._parallel`) the reader's plan is the json
paths and its workers parse and rasterise them; the writer's workers trace, check and
serialise each sample, and the parent places the images and writes the files in order.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

from masklab.core import rle
from masklab.core.instances import Instance
from masklab.core.labels import Label, LabelMap, voc_color
from masklab.core.rle import RLE
from masklab.errors import FormatError, LabelMapError, MaskFormatError
from masklab.formats import _base
from masklab.formats._base import Capabilities, Detection, FormatSpec, Sample
from masklab.formats.report import ConversionReport

__all__ = ["SPEC", "Reader", "Writer", "detect", "shapes_to_masks", "trace"]

SPEC = FormatSpec(
    name="labelme",
    description="labelme JSON: one file per image, polygon/rectangle/circle/mask shapes",
    kind="instances",
    holds=Capabilities(holes=False, parts=True, overlap=True, crowd=False, scores=False),
    extensions=(".json",),
)

LABELS_FILE = "labels.txt"
VERSION = "5.5.0"  # the labelme version whose files the writer imitates (mask shapes: 5.3+)
AREA_SHAPES = ("polygon", "oriented_rectangle", "rectangle", "circle", "mask")
NOT_MASKS = ("point", "points", "line", "linestrip")
MAX_LABELS_TXT = 10_000  # largest id written to labels.txt (one line per id)
_MARGIN = 2  # px around a shape's box that PIL may touch (outline rounding)
_LABEL_KEY = re.compile(r'"label"\s*:\s*"((?:[^"\\]|\\.)*)"')


# --------------------------------------------------------------------------- rasterise


def shapes_to_masks(
    shapes: Sequence[tuple[str, Sequence[Sequence[float]], str | None]],
    size: tuple[int, int],
) -> list[RLE]:
    """Rasterise labelme shapes ``(shape_type, points, mask_b64)`` as labelme does.

    Each shape is drawn with PIL ``ImageDraw`` on a full-size canvas, so the pixels
    (clipping at the border included) are exactly labelme's ``shape_to_mask``; only the
    shape's box is read back. MaskFormatError says what is wrong with a shape.

    >>> [m] = shapes_to_masks([("rectangle", [[1, 1], [2, 3]], None)], (5, 4))
    >>> rle.decode(m).tolist()
    [[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
    """
    canvas = _Canvas(size)
    return [canvas.rasterise(kind, points, mask_b64) for kind, points, mask_b64 in shapes]


class _Canvas:
    """One full-size PIL canvas reused for every shape of an image (cleared per box)."""

    def __init__(self, size: tuple[int, int]) -> None:
        self.size = size
        self._image: Image.Image | None = None

    def rasterise(self, kind: str, points: Sequence[Sequence[float]], mask_b64: str | None) -> RLE:
        h, w = self.size
        if kind == "mask":
            return _mask_shape(points, mask_b64, self.size)
        if self._image is None:
            self._image = Image.new("L", (w, h), 0)
        lo, hi = _draw(ImageDraw.Draw(self._image), kind, points)
        x0 = max(0, math.floor(lo[0]) - _MARGIN)
        y0 = max(0, math.floor(lo[1]) - _MARGIN)
        x1 = min(w, math.ceil(hi[0]) + _MARGIN + 1)
        y1 = min(h, math.ceil(hi[1]) + _MARGIN + 1)
        if x1 <= x0 or y1 <= y0:
            return rle.empty(self.size)
        box = (x0, y0, x1, y1)
        crop = np.asarray(self._image.crop(box))
        self._image.paste(0, box)
        return rle.pad(rle.encode(crop), top=y0, left=x0, bottom=h - y1, right=w - x1)


def _draw(
    draw: ImageDraw.ImageDraw, kind: str, points: Sequence[Sequence[float]]
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Draw one shape as labelme does; the box of what it may touch, (lo, hi)."""
    pts = _points(points)
    xy = [(float(x), float(y)) for x, y in pts.tolist()]
    if kind == "circle":
        if len(xy) != 2:
            raise MaskFormatError(f"a circle has 2 points (centre, rim), got {len(xy)}")
        (cx, cy), (px, py) = xy
        d = math.sqrt((cx - px) ** 2 + (cy - py) ** 2)
        draw.ellipse([cx - d, cy - d, cx + d, cy + d], outline=1, fill=1)
        return (cx - d, cy - d), (cx + d, cy + d)
    if kind == "rectangle":
        if len(xy) != 2:
            raise MaskFormatError(f"a rectangle has 2 points (corners), got {len(xy)}")
        (ax, ay), (bx, by) = xy
        corners = [(min(ax, bx), min(ay, by)), (max(ax, bx), max(ay, by))]
        draw.rectangle(corners, outline=1, fill=1)
        return corners[0], corners[1]
    if len(xy) < 3:
        raise MaskFormatError(f"a polygon needs more than 2 points, got {len(xy)}")
    draw.polygon(xy, outline=1, fill=1)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    return (float(lo[0]), float(lo[1])), (float(hi[0]), float(hi[1]))


def _points(points: Sequence[Sequence[float]]) -> npt.NDArray[np.float64]:
    try:
        pts = np.asarray(points, np.float64)
    except (TypeError, ValueError) as err:
        raise MaskFormatError(f"points must be [[x, y], ...] numbers: {err}") from err
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise MaskFormatError(f"points must be [[x, y], ...], got shape {pts.shape}")
    if not np.isfinite(pts).all():
        raise MaskFormatError("points hold a non-finite coordinate")
    return pts


def _mask_shape(
    points: Sequence[Sequence[float]], mask_b64: str | None, size: tuple[int, int]
) -> RLE:
    """A ``mask`` shape: the PNG covers the box between its two points, inclusive."""
    pts = _points(points)
    if pts.shape[0] != 2:
        raise MaskFormatError(f"a mask shape has 2 points (its box), got {pts.shape[0]}")
    if not mask_b64:
        raise MaskFormatError("a mask shape has no 'mask' (base64 PNG)")
    try:
        with Image.open(io.BytesIO(base64.b64decode(mask_b64, validate=True))) as im:
            arr = np.asarray(im)
    except (OSError, ValueError, binascii.Error) as err:
        raise MaskFormatError(f"'mask' is not a base64 PNG: {err}") from err
    if arr.ndim == 3:
        arr = np.any(arr, axis=2)
    (x0, y0), (x1, y1) = pts.astype(np.int64).tolist()  # labelme: astype(int)
    if arr.shape != (y1 - y0 + 1, x1 - x0 + 1):
        raise MaskFormatError(
            f"'mask' is {arr.shape[1]}x{arr.shape[0]} but its box "
            f"[{x0}, {y0}]..[{x1}, {y1}] is {x1 - x0 + 1}x{y1 - y0 + 1}"
        )
    h, w = size
    local = rle.encode(arr)
    return rle.crop(local, [-x0, -y0, w, h])


# --------------------------------------------------------------------------- reader


def _read_labels_txt(path: Path) -> LabelMap:
    labels = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        name = line.strip()
        if not name:
            continue
        cid = i - 1
        if name == "__ignore__":
            labels.append(Label(cid, (name,), (0, 0, 0), isthing=False, role="ignore"))
        elif name == "_background_":
            labels.append(Label(cid, (name,), (0, 0, 0), isthing=False, role="background"))
        else:
            labels.append(Label(cid, (name,), voc_color(cid)))
    return LabelMap(tuple(labels))


def _labels_from_names(names: Sequence[str]) -> LabelMap:
    labels = [Label(0, ("_background_",), (0, 0, 0), isthing=False, role="background")]
    for name in sorted(set(names) - {"_background_"}):
        i = len(labels)
        labels.append(Label(i, (name,), voc_color(i)))
    return LabelMap(tuple(labels))


def _head_tail(path: Path, n: int = 8192) -> str:
    with open(path, "rb") as f:
        head = f.read(n)
        f.seek(0, os.SEEK_END)
        size = f.tell()
        tail = b""
        if size > n:
            f.seek(max(n, size - n))
            tail = f.read()
    return (head + b"\n" + tail).decode("utf-8", errors="replace")


def detect(path: Path) -> Detection:
    """labelme JSON: a ``shapes`` list beside ``imagePath`` (head and tail of a few files);
    files only in subfolders count as a weak sign (the folder may be another format's)."""
    path = Path(path)
    nested = False
    if path.is_file():
        files = [path] if path.suffix.lower() == ".json" else []
    elif path.is_dir():
        files = sorted(path.glob("*.json"))[:3]
        if not files:
            files, nested = sorted(path.glob("*/*.json"))[:3], True
    else:
        files = []
    if not files:
        return Detection.no("no .json files")
    for f in files:
        try:
            text = _head_tail(f)
        except OSError:
            continue
        if '"shapes"' in text and ('"imagePath"' in text or '"imageHeight"' in text):
            if nested:
                return Detection(1, f"{f.parent.name}/{f.name} has labelme's shapes")
            return Detection(3, f"{f.name} has labelme's shapes and imagePath")
    return Detection.no("no .json with labelme's 'shapes' and 'imagePath'")


class Reader(_base.Reader):
    """Stream labelme files (sorted), one sample each."""

    spec = SPEC

    def __init__(
        self, path: str | os.PathLike[str], *, labels: LabelMap | None = None, strict: bool = False
    ) -> None:
        super().__init__(path, labels=labels, strict=strict)
        if not self.path.exists():
            raise FormatError(f"{self.path} does not exist", path=str(self.path))
        self.root = self.path.parent if self.path.is_file() else self.path
        self._found: LabelMap | None = None

    def _files(self) -> list[Path]:
        if self.path.is_file():
            return [self.path]
        return sorted(p for p in self.root.rglob("*.json") if p.is_file())

    @property
    def labels(self) -> LabelMap:
        """The given map, else labels.txt, else the files' labels (sorted, from 1)."""
        if self._labels is not None:
            return self._labels
        if self._found is None:
            txt = self.root / LABELS_FILE
            if txt.is_file():
                try:
                    self._found = _read_labels_txt(txt)
                except (OSError, UnicodeDecodeError, LabelMapError) as err:
                    raise FormatError(f"{txt}: cannot read: {err}", path=str(txt)) from err
            else:
                names: set[str] = set()
                for f in self._files():
                    try:
                        text = f.read_text(encoding="utf-8")
                    except (OSError, UnicodeDecodeError):
                        continue  # reported when iterating
                    for m in _LABEL_KEY.finditer(text):
                        try:
                            names.add(json.loads(f'"{m.group(1)}"'))
                        except json.JSONDecodeError:
                            continue
                self._found = _labels_from_names(sorted(names))
        return self._found

    def __len__(self) -> int:
        return len(self._files())

    def __iter__(self) -> Iterator[Sample]:
        yield from (s for s in self.decode(list(self.plan())) if s is not None)

    def plan(self) -> Iterator[Path]:
        """The json files, sorted: one work item a sample (only the label map is read
        here, when no labels.txt gives it)."""
        _ = self.labels  # before the first sample: a labels.txt that cannot be read raises
        return iter(self._files())

    def decode(self, items: Sequence[Path]) -> Iterator[Sample | None]:
        """Each file read and its shapes rasterised; None for a file reported as unreadable
        or not labelme."""
        labels = self.labels
        for f in items:
            sample_id = f.relative_to(self.root).with_suffix("").as_posix()
            try:
                data = json.loads(f.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
                self.problem(f, sample_id, f"cannot read the JSON: {err}")
                yield None
                continue
            if not isinstance(data, dict) or not isinstance(data.get("shapes"), list):
                self.problem(f, sample_id, "not a labelme file: no 'shapes' list")
                yield None
                continue
            try:
                sample = self._sample(f, sample_id, data, labels)
            except FormatError as err:
                self.problem(f, sample_id, err)
                yield None
                continue
            yield sample

    def for_worker(self) -> Reader:
        """A copy with the label map resolved and an empty report, to decode files in
        another process."""
        return self.worker_copy(_found=self.labels)

    def _sample(self, f: Path, sample_id: str, data: dict[str, Any], labels: LabelMap) -> Sample:
        image, image_bytes = self._image(f, data)
        size = self._size(f, data, image, image_bytes)
        canvas = _Canvas(size)
        index: dict[tuple[str, str], int] = {}  # (label, group) -> instance
        groups: list[Any] = []
        classes: list[int] = []
        masks: dict[int, list[RLE]] = {}
        for k, shape in enumerate(data["shapes"]):
            record = f"{sample_id}#shape{k}"
            if not isinstance(shape, dict):
                self.problem(f, record, "a shape must be an object")
                continue
            kind = shape.get("shape_type") or "polygon"
            label = shape.get("label")
            if kind in NOT_MASKS:
                self.problem(f, record, f"shape_type {kind!r} ({label!r}) is not a mask; skipped")
                continue
            if kind not in AREA_SHAPES:
                self.problem(f, record, f"unknown shape_type {kind!r}; expected {AREA_SHAPES}")
                continue
            if not isinstance(label, str):
                self.problem(f, record, f"label must be a string, got {label!r}")
                continue
            try:
                class_id = labels.by_name(label).id
                mask = canvas.rasterise(kind, shape.get("points") or [], shape.get("mask"))
            except LabelMapError as err:
                self.problem(f, record, f"{err}; add it to {LABELS_FILE}")
                continue
            except MaskFormatError as err:
                self.problem(f, record, f"{kind} {label!r}: {err}")
                continue
            group = shape.get("group_id")
            key = (label, f"#{k}" if group is None else json.dumps(group, sort_keys=True))
            if key not in index:
                index[key] = len(groups)
                groups.append(group)
                classes.append(class_id)
            masks.setdefault(index[key], []).append(mask)
        instances = []
        for i in sorted(masks):
            parts = masks[i]
            merged = parts[0] if len(parts) == 1 else rle.merge(parts)
            attrs = {} if groups[i] is None else {"group_id": groups[i]}
            instances.append(Instance(merged, classes[i], attributes=attrs))
        return Sample(
            sample_id, size, image=image, instances=tuple(instances), image_bytes=image_bytes
        )

    def _image(self, f: Path, data: dict[str, Any]) -> tuple[Path | None, bytes | None]:
        name = data.get("imagePath")
        if isinstance(name, str) and name:
            rel = name.replace("\\", "/")
            for cand in (f.parent / rel, f.parent / Path(rel).name):
                if cand.is_file():
                    return cand, None
        encoded = data.get("imageData")
        if isinstance(encoded, str) and encoded:
            try:
                return None, base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError) as err:
                raise FormatError(f"imageData is not base64: {err}") from err
        return None, None

    def _size(
        self, f: Path, data: dict[str, Any], image: Path | None, image_bytes: bytes | None
    ) -> tuple[int, int]:
        h, w = data.get("imageHeight"), data.get("imageWidth")
        given = (h, w) if isinstance(h, int) and isinstance(w, int) and h >= 0 and w >= 0 else None
        actual: tuple[int, int] | None = None
        if image is not None:
            actual = _base.image_size(image, exif=True)
        elif given is None and image_bytes is not None:
            actual = _base.image_size(io.BytesIO(image_bytes), exif=True)
        if given is not None and actual is not None and given != actual:
            self.problem(
                f,
                f.stem,
                f"imageHeight/imageWidth say {given[0]}x{given[1]} but the image is "
                f"{actual[0]}x{actual[1]}; using the image's size, as labelme does",
            )
        size = actual or given
        if size is None:
            raise FormatError(
                "no imageHeight/imageWidth and no image to read the size from; add them"
            )
        return size


# --------------------------------------------------------------------------- writer


def trace(mask: RLE) -> tuple[list[npt.NDArray[np.float64]], int]:
    """Outer boundaries of a mask's parts as ``(k, 2)`` pixel-centre points, and the
    number of holes (which labelme cannot draw).

    Rings come from ``cv2.findContours`` (``RETR_CCOMP``, ``CHAIN_APPROX_SIMPLE``), which
    walks the centres of the boundary pixels: what ``ImageDraw.polygon`` with an outline
    fills back. A ring of 1 or 2 pixels repeats its last point (labelme needs 3).

    >>> rings, holes = trace(rle.encode(np.array([[0, 0, 0], [0, 1, 1], [0, 1, 1]])))
    >>> rings[0].tolist(), holes
    ([[1.0, 1.0], [1.0, 2.0], [2.0, 2.0], [2.0, 1.0]], 0)
    """
    box, (x, y) = rle.decode_box(mask)
    if box.size == 0:
        return [], 0
    padded = cv2.copyMakeBorder(box, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    contours, hierarchy = cv2.findContours(padded, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return [], 0
    parent = hierarchy[0][:, 3]
    offset = np.array([x - 1, y - 1], np.float64)
    rings = []
    for c in (contours[i] for i in np.flatnonzero(parent < 0).tolist()):
        pts = c.reshape(-1, 2).astype(np.float64) + offset
        while len(pts) < 3:
            pts = np.concatenate([pts, pts[-1:]])
        rings.append(pts)
    return rings, int((parent >= 0).sum())


@dataclass(frozen=True, slots=True)
class _Part:
    """What :meth:`Writer.encode` made of a sample (see ``_base.Writer.commit``)."""

    rel: str  # the json's path in the output, without .json
    image: Sample  # the sample without its masks (image file or bytes)
    image_file: str | None  # where the image goes (None: the sample has none)
    json: bytes  # the labelme file
    used: tuple[tuple[int, str], ...]  # (class id, name written)


class Writer(_base.Writer):
    """Write one labelme JSON per sample beside its image (see the module docstring).

    Options: ``shape`` = ``"polygon"`` | ``"mask"``, ``embed_image`` (False). A second
    sample with the same file name is refused (reported; the first is kept).
    """

    spec = SPEC
    parallel = True

    def __init__(self, path: str | os.PathLike[str], *, labels: LabelMap, **options: Any) -> None:
        shape = options.get("shape", "polygon")
        if shape not in ("polygon", "mask"):
            raise ValueError(f"shape must be 'polygon' or 'mask', got {shape!r}")
        base = {"images", "strict", "overwrite"}  # the base Writer's options
        unknown = sorted(set(options) - {"shape", "embed_image", *base})
        if unknown:
            raise TypeError(f"unknown labelme options {unknown}; known: shape, embed_image, images")
        super().__init__(path, labels=labels, **options)
        self.shape: str = shape
        self.embed_image = options.get("embed_image", False) in (True, "true", 1)
        self._used: dict[int, str] = {}  # class id -> the name written
        self._written: set[str] = set()  # json files written (relative, without .json)

    def encode(self, sample: Sample) -> _Part:
        """The sample's json (every instance traced and drawn back to check it, the image
        embedded when asked); the image is placed and the json written at commit."""
        rel = _safe_id(sample.id)
        image_file: str | None = None
        image_name: str | None = None
        image_data: str | None = None
        if sample.image is not None or sample.image_bytes is not None:
            suffix = sample.image.suffix if sample.image is not None else _suffix(sample)
            image_file = f"{rel}{suffix}"
            data = self._image_bytes(sample)
            if data is not None:  # what commit's place_image will put there
                image_name = Path(image_file).name
                if self.embed_image:
                    image_data = base64.b64encode(data).decode()
        used: dict[int, str] = {}
        shapes: list[dict[str, Any]] = []
        group = 0
        for i, inst in enumerate(_base.instances_of(sample, self.labels)):
            try:
                _base.check_size(sample.id, inst.mask, sample.size)
            except MaskFormatError as err:
                self.fail(sample, i, err)
                continue
            label = self._label(sample, i, inst.class_id)
            used[inst.class_id] = label
            if inst.score is not None:
                self.report.loss(sample.id, i, "score", f"score {inst.score:g} dropped")
            if inst.iscrowd:
                self.report.loss(sample.id, i, "crowd", "written as an ordinary instance")
            if rle.area(inst.mask) == 0:
                self.report.loss(sample.id, i, "empty", "empty mask: no shape written")
                continue
            if self.shape == "mask":
                shapes.append(_mask_entry(label, inst.mask))
                self.report.exact += 1
                continue
            rings, holes = trace(inst.mask)
            gid: int | None = None
            if len(rings) > 1:
                group += 1
                gid = group
            entries = [_polygon_entry(label, ring, gid) for ring in rings]
            shapes += entries
            self._check(sample, i, inst.mask, rings, holes)
        doc: dict[str, Any] = {
            "version": VERSION,
            "flags": {},
            "shapes": shapes,
            "imagePath": image_name,
            "imageData": image_data,
            "imageHeight": sample.h,
            "imageWidth": sample.w,
        }
        text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
        image = replace(sample, instances=(), semantic=None, alpha=None)
        return _Part(rel, image, image_file, text.encode("utf-8"), tuple(used.items()))

    def commit(self, part: _Part, report: ConversionReport) -> None:
        """Refuse a second sample at the same file name (then encode's entries are left
        out, as one process never reaches them); place the image, write the json, note
        the class names for labels.txt."""
        if part.rel in self._written:
            self.fail(part.image, None, f"a second sample written as {part.rel}.json")
            return
        self._written.add(part.rel)
        self.absorb(report)
        if part.image_file is not None:
            self.place_image(part.image, self.stage / part.image_file)
        self.write_payload((f"{part.rel}.json", part.json, None))
        self._used.update(part.used)

    def _image_bytes(self, sample: Sample) -> bytes | None:
        """The bytes :meth:`place_image` will put beside the json (None: none placed)."""
        if self.images == "none":
            return None
        if sample.image is not None and sample.image.is_file():
            return sample.image.read_bytes() if self.embed_image else b""
        return sample.image_bytes

    def _label(self, sample: Sample, i: int, class_id: int) -> str:
        try:
            return self.labels.by_id(class_id).name
        except LabelMapError:
            name = f"class_{class_id}"
            self.report.loss(
                sample.id, i, "class", f"class id {class_id} has no name; written as {name!r}"
            )
            return name

    def _check(
        self, sample: Sample, i: int, mask: RLE, rings: list[npt.NDArray[np.float64]], holes: int
    ) -> None:
        """Draw the rings back as labelme would and report what changed."""
        drawn = shapes_to_masks([("polygon", r.tolist(), None) for r in rings], sample.size)
        back = drawn[0] if len(drawn) == 1 else rle.merge(drawn)
        if back == mask:
            self.report.exact += 1
            return
        iou = float(rle.iou([back], [mask])[0, 0])
        if holes:
            detail = f"{holes} hole(s) filled: labelme polygons have no holes"
            self.report.loss(sample.id, i, "holes", detail, iou)
        else:
            self.report.loss(sample.id, i, "resampled", "polygons do not redraw the mask", iou)

    def finish(self) -> None:
        """labels.txt (labelme2voc's form: line i is id i - 1) so ids read back, when the
        ids fit that form (-1 .. 10000)."""
        names = {lab.id: lab.name for lab in self.labels}
        names.update(self._used)
        top = max(names, default=0)
        if min(names, default=0) < -1 or top > MAX_LABELS_TXT:
            return  # ids labels.txt cannot spell: the reader falls back to the names
        lines = []
        for cid in range(-1, top + 1):
            default = {-1: "__ignore__", 0: "_background_"}.get(cid, f"class_{cid}")
            lines.append(names.get(cid, default))
        (self.stage / LABELS_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")


def _polygon_entry(label: str, ring: npt.NDArray[np.float64], group: int | None) -> dict[str, Any]:
    return {
        "label": label,
        "points": ring.tolist(),
        "group_id": group,
        "description": "",
        "shape_type": "polygon",
        "flags": {},
        "mask": None,
    }


def _mask_entry(label: str, mask: RLE) -> dict[str, Any]:
    box, (x, y) = rle.decode_box(mask)
    buf = io.BytesIO()
    Image.fromarray(box).save(buf, format="PNG")
    h, w = box.shape
    return {
        "label": label,
        "points": [[float(x), float(y)], [float(x + w - 1), float(y + h - 1)]],
        "group_id": None,
        "description": "",
        "shape_type": "mask",
        "flags": {},
        "mask": base64.b64encode(buf.getvalue()).decode(),
    }


def _safe_id(sample_id: str) -> str:
    parts = [p for p in sample_id.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    return "/".join(parts) or "image"


def _suffix(sample: Sample) -> str:
    return ".png" if (sample.image_bytes or b"").startswith(b"\x89PNG") else ".jpg"
