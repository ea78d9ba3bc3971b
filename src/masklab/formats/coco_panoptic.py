"""COCO panoptic: one json plus one RGB PNG of segment ids per image (``reference/formats.md`` §2).

Layouts read (every json is one subset, named after the file)::

    root/annotations/panoptic_<subset>.json    PNGs in root/annotations/panoptic_<subset>/,
                                               images in root/images/<subset>/ or root/<subset>/
    folder/<name>.json + folder/<name>/*.png   panopticapi's default: PNG folder named like the
                                               json without ``.json`` (images in folder/images/,
                                               folder/input_images/ or beside the json)
    any.json                                   the json given as a file (PNGs in its sibling folder)

Conventions (§2.1-2.2):

* A PNG pixel's segment id is ``R + 256 G + 256^2 B``, computed in uint32 (8-bit channels
  multiplied in uint8/uint16 wrap silently, §2.2); id 0 is void (no segment). PNGs are
  read with PIL as RGB, never with OpenCV's BGR.
* Each ``segments_info`` entry becomes one :class:`~masklab.core.instances.Instance`:
  its pixels, ``category_id``, ``id`` = the segment id, ``iscrowd``. Segments never
  overlap. Categories (with ``isthing`` and ``color``) become the LabelMap.
* Every id painted in a PNG must be described in ``segments_info`` and vice versa: an id
  found in only one of them is reported (file, image, segment, pixel count), never dropped
  silently. So are unknown categories, PNGs whose size is not the image's, images with no
  annotation record and annotations of unknown images. ``area``/``bbox`` in the json are
  not checked against the pixels (they are stored metadata; the mask is the PNG).

The writer paints each sample's instances with
:func:`~masklab.core.instances.instances_to_panoptic` (later instances over earlier ones:
pixels taken from an instance are an ``overlap`` loss with the IoU it kept; an instance
left with no pixel is not written). Segment ids are ``1..N`` per image, written as RGB.
Output: ``annotations/panoptic_<subset or "default">.json`` with ``segments_info`` (``id``,
``category_id``, ``area``, ``bbox`` as integer ``[x, y, w, h]`` with inclusive extents,
``iscrowd``) and categories with ``isthing`` and ``color``; the PNGs in
``annotations/panoptic_<subset>/<sample id>.png``; images in ``images/<subset>/``. Panoptic
holds no scores, attributes or empty masks: those are reported as losses.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar, TypeGuard

import numpy as np
import numpy.typing as npt

from masklab.core import rle
from masklab.core.instances import Instance, instances_to_panoptic
from masklab.core.labels import LabelMap
from masklab.errors import FormatError, MaskFormatError
from masklab.formats import _base
from masklab.formats._base import Capabilities, Detection, FormatSpec, Sample
from masklab.formats.coco import (
    DEFAULT_SUBSET,
    JsonReader,
    JsonWriter,
    find_image,
    image_dirs,
    image_error,
    image_suffix,
    labels_of,
    relative_file,
    safe_name,
    sniff,
    subset_of,
    writable_class,
)
from masklab.formats.report import ConversionReport

__all__ = ["SPEC", "Reader", "Writer", "detect", "id_to_rgb", "rgb_to_id", "segment_masks"]

SPEC = FormatSpec(
    name="coco-panoptic",
    description="COCO panoptic: json segments_info + RGB PNGs of segment ids",
    kind="panoptic",
    holds=Capabilities(holes=True, parts=True, overlap=False, crowd=True, scores=False),
    extensions=(".json", ".png"),
)

PANOPTIC_PREFIX = "panoptic_"
VOID = 0
MAX_SEGMENT_ID = 256**3 - 1  # three 8-bit channels


# --------------------------------------------------------------------------- id codec


def rgb_to_id(rgb: npt.ArrayLike) -> npt.NDArray[np.uint32]:
    """Segment ids of an ``(h, w, 3)`` RGB array: ``R + 256 G + 256^2 B`` in uint32.

    >>> rgb_to_id(np.array([[[10, 20, 30]]], np.uint8)).tolist()  # not 5130 (uint16 wrap)
    [[1971210]]
    """
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] < 3:
        raise MaskFormatError(f"a panoptic PNG must be RGB (h, w, 3), got shape {arr.shape}")
    c = arr[..., :3].astype(np.uint32)
    out: npt.NDArray[np.uint32] = c[..., 0] + (c[..., 1] << 8) + (c[..., 2] << 16)
    return out


def id_to_rgb(ids: npt.ArrayLike) -> npt.NDArray[np.uint8]:
    """``(h, w, 3)`` uint8 RGB of segment ids (``R = id % 256``, ``G = id // 256 % 256``,
    ``B = id // 256^2``); ids must be in ``0 .. 256^3 - 1``.

    >>> id_to_rgb(np.array([[1971210, 0]])).tolist()
    [[[10, 20, 30], [0, 0, 0]]]
    """
    arr = np.asarray(ids).astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() > MAX_SEGMENT_ID):
        raise MaskFormatError(f"panoptic segment ids must be in 0..{MAX_SEGMENT_ID}")
    out = np.empty((*arr.shape, 3), np.uint8)
    out[..., 0] = arr & 0xFF
    out[..., 1] = (arr >> 8) & 0xFF
    out[..., 2] = (arr >> 16) & 0xFF
    return out


def segment_masks(ids: npt.ArrayLike) -> dict[int, rle.RLE]:
    """One RLE per distinct value of a 2-D id map (void 0 included), from a single pass
    over the runs of its column-major flattening (no per-segment frame compare).

    >>> masks = segment_masks(np.array([[0, 7], [7, 7]]))
    >>> sorted(masks), masks[7].counts.tolist()
    ([0, 7], [1, 3])
    """
    arr = np.asarray(ids)
    if arr.ndim != 2:
        raise MaskFormatError(f"a panoptic id map must be 2-D (h, w), got shape {arr.shape}")
    h, w = arr.shape
    flat = arr.T.reshape(-1)
    n = flat.size
    if n == 0:
        return {}
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    starts = np.concatenate([[0], change]).astype(np.int64)
    ends = np.concatenate([change, [n]]).astype(np.int64)
    values = flat[starts]
    order = np.argsort(values, kind="stable")
    values, starts, ends = values[order], starts[order], ends[order]
    bounds = np.flatnonzero(values[1:] != values[:-1]) + 1
    out: dict[int, rle.RLE] = {}
    for lo, hi in zip(
        np.concatenate([[0], bounds]).tolist(),
        np.concatenate([bounds, [values.size]]).tolist(),
        strict=True,
    ):
        s, e = starts[lo:hi], ends[lo:hi]
        counts = np.empty(2 * (hi - lo) + 1, np.int64)
        counts[0] = s[0]
        counts[1::2] = e - s
        counts[2:-1:2] = s[1:] - e[:-1]
        counts[-1] = n - e[-1]
        out[int(values[lo])] = rle.RLE((h, w), counts)
    return out


# --------------------------------------------------------------------------- detect


def detect(path: Path) -> Detection:
    """COCO panoptic: a json with ``segments_info`` in its first 64 KB and/or a sibling
    PNG folder of the same name (both: certain), or a folder holding such a json."""
    path = Path(path)
    if path.is_file():
        return _detect_file(path)
    if not path.is_dir():
        return Detection.no(f"{path} is neither a file nor a folder")
    best = Detection.no(
        "no annotations/panoptic_*.json and no <name>.json beside a <name>/ PNG folder"
    )
    for json_path in _folder_jsons(path):
        found = _detect_file(json_path)
        if found.confidence > best.confidence:
            best = Detection(found.confidence, f"{json_path.relative_to(path)}: {found.reason}")
    return best


def _detect_file(path: Path) -> Detection:
    if path.suffix.lower() != ".json":
        return Detection.no("not a .json file")
    has_info = '"segments_info"' in sniff(path)
    has_pngs = path.with_suffix("").is_dir()
    if has_info and has_pngs:
        return Detection(3, f"segments_info and the PNG folder {path.stem}/")
    if has_info:
        return Detection(2, "json with segments_info (its PNG folder is missing)")
    if has_pngs and path.name.startswith(PANOPTIC_PREFIX):
        return Detection(2, f"{path.name} beside its PNG folder {path.stem}/")
    return Detection.no("json without segments_info or a PNG folder of the same name")


def _folder_jsons(root: Path) -> list[Path]:
    found: list[Path] = []
    ann = root / "annotations"
    if ann.is_dir():
        found += sorted(ann.glob(f"{PANOPTIC_PREFIX}*.json"))
    found += sorted(p for p in root.glob("*.json") if p.with_suffix("").is_dir() and p not in found)
    return found


# --------------------------------------------------------------------------- reader


@dataclass(frozen=True, slots=True)
class _Source:
    json: Path
    subset: str | None
    png_dir: Path
    image_dirs: tuple[Path, ...]


@dataclass(frozen=True, slots=True)
class _Item:
    """An image record of a json and its annotation record (None: it has none), the PNG
    not read yet."""

    src: _Source
    cats: frozenset[int]
    image: dict[str, Any]
    annotation: dict[str, Any] | None


class Reader(JsonReader):
    """Samples of COCO panoptic jsons and PNGs, one image at a time."""

    spec: ClassVar[FormatSpec] = SPEC

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        labels: LabelMap | None = None,
        strict: bool = False,
    ) -> None:
        super().__init__(path, labels=labels, strict=strict)
        if not self.path.exists():
            raise FormatError(f"{self.path} does not exist", path=str(self.path))
        jsons = [self.path] if self.path.is_file() else _folder_jsons(self.path)
        if not jsons:
            raise FormatError(
                f"{self.path}: no COCO panoptic json found; looked for "
                "annotations/panoptic_*.json and <name>.json beside a <name>/ PNG folder "
                "(or pass the json file itself)",
                path=str(self.path),
            )
        self._sources = []
        for p in jsons:
            subset = subset_of(p, PANOPTIC_PREFIX)
            dirs = image_dirs(p, subset)
            if p.parent.name != "annotations":
                dirs = (*dirs, p.parent / "input_images")  # panopticapi's sample_data
            self._sources.append(_Source(p, subset, p.with_suffix(""), dirs))
        self._init_cache()

    def _invalid(self, doc: Any) -> tuple[str | None, str] | None:
        if (
            isinstance(doc, dict)
            and isinstance(doc.get("images"), list)
            and isinstance(doc.get("annotations"), list)
        ):
            return None
        return None, (
            "not a COCO panoptic json: expected an object with 'images' and 'annotations' lists"
        )

    def __iter__(self) -> Iterator[Sample]:
        for item in self.plan():
            yield self._decode_one(item)

    def decode(self, items: Sequence[_Item]) -> Iterator[Sample]:
        """The samples of :meth:`plan`'s items: PNGs decoded into segments, checked
        against their ``segments_info``."""
        for item in items:
            yield self._decode_one(item)

    def _plan_source(self, src: _Source, doc: dict[str, Any]) -> Iterator[_Item]:
        """One item per usable image record: it and its annotation record, PNG not read
        yet. Bad records, images without an annotation and annotations of unknown images
        are reported here."""
        path = src.json
        cats = frozenset(lab.id for lab in labels_of(doc.get("categories"), path, _ignore))
        by_image: dict[object, dict[str, Any]] = {}
        for i, ann in enumerate(doc["annotations"]):
            image_id = ann.get("image_id") if isinstance(ann, dict) else None
            where = (
                f"annotation of image {image_id!r}" if image_id is not None else f"annotations[{i}]"
            )
            if not isinstance(ann, dict) or not isinstance(image_id, (int, str)):
                self.problem(path, where, "an annotation must be an object with an 'image_id'")
            elif image_id in by_image:
                self.problem(path, where, "a second annotation for this image; the first is kept")
            else:
                by_image[image_id] = ann
        seen: set[object] = set()
        for i, im in enumerate(doc["images"]):
            where = f"image {im.get('id', f'#{i}')}" if isinstance(im, dict) else f"image #{i}"
            err = image_error(im)
            if err is None and im["id"] in seen:
                err = f"image id {im['id']!r} appears twice; the first is kept"
            if err is not None:
                self.problem(path, where, err)
                continue
            seen.add(im["id"])
            ann = by_image.pop(im["id"], None)
            if ann is None:
                self.problem(path, where, "no panoptic annotation (PNG, segments_info) for it")
            yield _Item(src, cats, im, ann)
        for image_id in by_image:
            self.problem(
                path, f"annotation of image {image_id!r}", "image_id is not in the json's images"
            )

    def _decode_one(self, item: _Item) -> Sample:
        im = item.image
        h, w = int(im["height"]), int(im["width"])
        png: str | None = None
        instances: list[Instance] = []
        if item.annotation is not None:
            png, instances = self._instances(item.src, item.annotation, im["id"], (h, w), item.cats)
        file_name = str(im["file_name"])
        return Sample(
            id=PurePosixPath(file_name).with_suffix("").as_posix(),
            size=(h, w),
            image=find_image(item.src.image_dirs, file_name),
            instances=tuple(instances),
            subset=item.src.subset,
            meta={"image_id": im["id"], "file_name": file_name, "png": png},
        )

    def _instances(
        self,
        src: _Source,
        ann: dict[str, Any],
        image_id: object,
        size: tuple[int, int],
        cats: frozenset[int],
    ) -> tuple[str | None, list[Instance]]:
        """The segments of one annotation record, checked against its PNG."""
        where = f"image {image_id!r}"
        png_name = ann.get("file_name")
        infos = ann.get("segments_info")
        if not isinstance(png_name, str) or not isinstance(infos, list):
            self.problem(src.json, where, "annotation needs 'file_name' and a 'segments_info' list")
            return None, []
        png_path = src.png_dir / png_name
        try:
            ids = rgb_to_id(_base.read_png(png_path))
        except (FormatError, MaskFormatError) as err:
            self.problem(png_path, where, err)
            return png_name, []
        if ids.shape != size:
            self.problem(
                png_path,
                where,
                f"PNG is {ids.shape[0]}x{ids.shape[1]} (h x w) but the image is "
                f"{size[0]}x{size[1]}; re-export the PNG at the image's size",
            )
            return png_name, []
        masks = segment_masks(ids)
        masks.pop(VOID, None)
        out: list[Instance] = []
        described: set[int] = set()
        for j, info in enumerate(infos):
            sid = info.get("id") if isinstance(info, dict) else None
            rec = f"{where} segment {sid if sid is not None else f'#{j}'}"
            if not isinstance(info, dict) or not _is_int(sid) or not 0 < sid <= MAX_SEGMENT_ID:
                self.problem(src.json, rec, f"a segment needs an id in 1..{MAX_SEGMENT_ID}")
                continue
            if sid in described:
                self.problem(src.json, rec, "segment id appears twice in segments_info")
                continue
            described.add(sid)
            cid = info.get("category_id")
            if not _is_int(cid) or cid not in cats:
                self.problem(src.json, rec, f"category_id {cid!r} is not one of the categories")
                continue
            mask = masks.get(sid)
            if mask is None:
                self.problem(png_path, rec, "segment is in segments_info but not in the PNG")
                continue
            out.append(Instance(mask, cid, id=sid, iscrowd=bool(info.get("iscrowd", 0))))
        for sid, mask in masks.items():
            if sid not in described:
                self.problem(
                    png_path,
                    f"{where} segment {sid}",
                    f"id {sid} paints {rle.area(mask)} px of the PNG but is not in "
                    "segments_info; add it there or repaint those pixels void (0)",
                )
        return png_name, out


def _ignore(path: object, record: object, error: Exception | str) -> None:
    """A problem sink that drops (the categories were reported during the scan)."""


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _dumps(value: Any) -> str:
    """Compact json text, as :meth:`masklab.formats.coco.JsonIndex.add_annotation` writes."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


# --------------------------------------------------------------------------- writer


@dataclass(frozen=True, slots=True)
class _Part:
    """What :meth:`Writer.encode` made of a sample (see ``_base.Writer.commit``)."""

    subset: str
    file_name: str | None  # None: the sample id is not a file name (reported by encode)
    png_name: str
    image: Sample  # the sample without its masks (image file or bytes, size)
    png: _base.PngPayload | None
    segments: str  # its segments_info, json text


class Writer(JsonWriter):
    """Write samples as COCO panoptic (json + RGB PNGs of segment ids 1..N)."""

    spec: ClassVar[FormatSpec] = SPEC
    json_prefix = PANOPTIC_PREFIX
    parallel = True

    def encode(self, sample: Sample) -> _Part:
        """The sample's PNG of segment ids (instances painted, later over earlier) and
        its ``segments_info``; no file name when the sample id is unusable."""
        subset = safe_name(sample.subset) if sample.subset else DEFAULT_SUBSET
        file_name = relative_file(sample.id, image_suffix(sample))
        png_name = relative_file(sample.id, ".png")
        image = replace(sample, instances=(), semantic=None, alpha=None)
        if file_name is None or png_name is None:
            self.fail(sample, None, f"sample id {sample.id!r} is not a relative file name")
            return _Part(subset, None, "", image, None, "[]")
        kept: list[tuple[int, Instance]] = []
        for i, inst in enumerate(_base.instances_of(sample, self.labels)):
            why = writable_class(self.labels, inst.class_id)
            if why is not None:
                self.report.loss(sample.id, i, "class", f"{why}; the instance is not written")
                continue
            try:
                _base.check_size(sample.id, inst.mask, sample.size)
            except MaskFormatError as err:
                self.fail(sample, i, err)
                continue
            if inst.area == 0:
                self.report.loss(sample.id, i, "empty", "an empty mask has no pixels to paint")
                continue
            if inst.score is not None:
                self.report.loss(sample.id, i, "score", f"panoptic has no scores ({inst.score})")
            if inst.attributes:
                self.report.loss(sample.id, i, "attributes", "panoptic has no attributes")
            kept.append((i, inst))
        painted = instances_to_panoptic([inst for _, inst in kept], sample.size, overlap="last")
        areas = (
            np.bincount(painted.array.reshape(-1), minlength=len(kept) + 1)
            if painted.contested_px
            else None
        )
        segments: list[dict[str, Any]] = []
        for sid, (i, inst) in enumerate(kept, start=1):
            mask = inst.mask
            if areas is not None and int(areas[sid]) < inst.area:
                left = int(areas[sid])
                self.report.loss(
                    sample.id,
                    i,
                    "overlap",
                    f"{inst.area - left} of {inst.area} px painted over by later instances",
                    iou=left / inst.area,
                )
                if left == 0:
                    continue
                mask = rle.encode(painted.array == sid)
            else:
                self.report.exact += 1
            segments.append(
                {
                    "id": sid,
                    "category_id": inst.class_id,
                    "area": rle.area(mask),
                    "bbox": [int(v) for v in rle.bbox(mask).tolist()],
                    "iscrowd": int(inst.iscrowd),
                }
            )
        rel = f"annotations/{PANOPTIC_PREFIX}{subset}/{png_name}"
        png = self.png_payload(rel, id_to_rgb(painted.array))
        return _Part(subset, file_name, png_name, image, png, _dumps(segments))

    def commit(self, part: _Part, report: ConversionReport) -> None:
        """:meth:`admit` the image (its PNG's name must be new in the subset), write the
        PNG and append its annotation record."""
        file_name = part.file_name if part.png is not None else None
        admitted = self.admit(part.image, part.subset, file_name, report, key=part.png_name)
        if admitted is None or part.png is None:
            return
        index, image_id = admitted
        self.write_payload(part.png)
        index.add_text(
            f'{{"image_id":{image_id},"file_name":{_dumps(part.png_name)},'
            f'"segments_info":{part.segments}}}'
        )
