"""COCO detection metrics: mask (``segm``) and box (``bbox``) AP/AR as pycocotools' COCOeval.

:func:`evaluate` takes a COCO instances json dict and a ``loadRes``-style results list and
returns a :class:`CocoEvalResult` whose ``stats``, ``precision``, ``recall`` and ``scores``
equal pycocotools' ``COCOeval`` (``evaluate``, ``accumulate``, ``summarize``) on the same
inputs; :func:`evaluate_samples` does the same for masklab samples. The protocol, as
pycocotools runs it:

* images ``img_ids`` (default all, sorted), categories ``cat_ids`` (default all, sorted);
  with ``use_cats=False`` every image is one group whatever the categories.
* Ground truth: ``area`` is the json's value (never recomputed; ``reference/formats.md``
  §1.9); ``iscrowd`` marks the annotation ignored. COCOeval overwrites a json ``ignore``
  key with ``iscrowd``, so ``ignore`` has no effect here either. Polygons and uncompressed
  RLE become masks exactly as ``annToRLE`` makes them (:mod:`masklab.core.polygon`).
* Results, as ``loadRes`` reads them: the *first* record decides. If it has a non-empty
  ``bbox``, every record's ``area`` is the box's ``w * h`` and a record without
  ``segmentation`` gets the box as its mask; otherwise every record needs a
  ``segmentation``, its ``area`` is the mask's pixel count and its box (for ``bbox``) the
  mask's extent unless it has a ``bbox``. Results are ordered by score, highest first,
  ties in input order; the first ``max(max_dets)`` of each image (and category) count.
* IoU: mask IoU on the runs (crowd regions divide by the detection's area), or box IoU.
  Matching is greedy by score at each threshold ``t`` (as ``min(t, 1 - 1e-10)``): each
  detection takes the unmatched non-ignored ground truth of highest IoU ``>= t`` (ties
  to the later one), or failing that an ignored one (a crowd region may be taken many
  times); a detection matched to an ignored ground truth, or unmatched with an area
  outside the range, is ignored. Precision is interpolated at the ``rec_thresholds``
  (101 points), ``-1`` where a category has no ground truth; ``stats`` are the 12 numbers
  ``summarize`` prints.

Where masklab differs from pycocotools on purpose:

* Annotation ids are not used for matching, so a ground truth with ``id == 0`` (the
  panopticapi sample starts there) is matched like any other; COCOeval stores matches as
  ids with 0 meaning "none" and counts such a match as a false positive and a miss
  (§1.9). On inputs whose ids are ``>= 1`` the numbers are identical. For the same reason
  duplicated annotation ids are harmless (COCOeval's ``loadAnns`` looks them up by id).
* Inputs are never modified (COCOeval writes ``segmentation``, ``area``, ``id`` ... into
  the caller's dicts). Result masks may be compressed or uncompressed RLE or polygons
  (``loadRes`` takes only compressed RLE). A malformed record raises
  :class:`~masklab.errors.FormatError` naming it, where pycocotools asserts or fails
  later; a mask whose size is not its image's is an error, not an IoU of ``-1``.
* ``cat_ids`` are sorted and de-duplicated also with ``use_cats=False``; ``stats`` entries
  that read a ``max_dets`` position that does not exist (fewer than 3 values) are ``-1``.

The evaluation is vectorised: masks are decoded straight from the compressed strings into
column pieces a few thousand at a time, IoUs are computed only for pairs whose boxes meet,
matching runs for all images, area ranges and thresholds at once, one detection rank at a
time, and the precision curves of a category for all thresholds and area ranges at once.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from masklab.core import polygon, rle
from masklab.core.labels import LabelMap
from masklab.core.rle import RLE
from masklab.errors import FormatError, MaskFormatError
from masklab.formats._base import Sample

__all__ = [
    "AREA_RANGES",
    "STAT_NAMES",
    "CocoEvalResult",
    "CocoParams",
    "evaluate",
    "evaluate_samples",
]

IouType = Literal["segm", "bbox"]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bool = npt.NDArray[np.bool_]

#: COCO's area ranges (pixels): name -> (low, high), both inclusive, as ``Params.areaRng``
AREA_RANGES: dict[str, tuple[float, float]] = {
    "all": (0**2, 1e5**2),
    "small": (0**2, 32**2),
    "medium": (32**2, 96**2),
    "large": (96**2, 1e5**2),
}
#: the names of ``CocoEvalResult.stats``, in ``summarize``'s order (default ``max_dets``)
STAT_NAMES = (
    "AP",
    "AP50",
    "AP75",
    "APs",
    "APm",
    "APl",
    "AR1",
    "AR10",
    "AR100",
    "ARs",
    "ARm",
    "ARl",
)

_CHUNK_MASKS = 4096  # masks decoded and intersected at a time: temporaries stay ~10 MB
_MAX_GROUPS = 13  # 5-bit groups of one value in a compressed string
_ZERO = 48  # '0', the first character of COCO's compressed alphabet


# --------------------------------------------------------------------------- result


@dataclass(frozen=True, eq=False)
class CocoParams:
    """What an evaluation ran with (COCOeval's ``Params``)."""

    iou_type: IouType
    img_ids: tuple[Any, ...]
    cat_ids: tuple[int, ...]  # (-1,) with use_cats=False, as COCOeval's accumulate
    iou_thresholds: F64
    rec_thresholds: F64
    max_dets: tuple[int, ...]
    area_names: tuple[str, ...]
    area_ranges: tuple[tuple[float, float], ...]
    use_cats: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters."""
        return {
            "iou_type": self.iou_type,
            "img_ids": list(self.img_ids),
            "cat_ids": list(self.cat_ids),
            "iou_thresholds": self.iou_thresholds.tolist(),
            "rec_thresholds": self.rec_thresholds.tolist(),
            "max_dets": list(self.max_dets),
            "area_ranges": {
                n: list(r) for n, r in zip(self.area_names, self.area_ranges, strict=True)
            },
            "use_cats": self.use_cats,
        }


@dataclass(frozen=True, eq=False)
class CocoEvalResult:
    """COCO AP/AR of one evaluation: COCOeval's ``stats`` and ``eval`` arrays.

    ``precision`` and ``scores`` are ``(T, R, K, A, M)`` (IoU thresholds, recall
    thresholds, categories, area ranges, max detections), ``recall`` is ``(T, K, A, M)``;
    ``-1`` where a category has no ground truth in that area range.
    """

    stats: F64
    precision: F64
    recall: F64
    scores: F64
    params: CocoParams

    def __post_init__(self) -> None:
        for name in ("stats", "precision", "recall", "scores"):
            getattr(self, name).flags.writeable = False

    def per_class(self) -> dict[int, dict[str, float]]:
        """AP, AP50, AP75 and AR of each category over the area range ``all`` (the first
        range if none is so named) at the largest ``max_dets`` (100 by default), averaged
        as ``summarize`` does (over the entries ``> -1``; ``-1`` when there are none).
        """
        p = self.params
        a = p.area_names.index("all") if "all" in p.area_names else 0
        m = len(p.max_dets) - 1
        out: dict[int, dict[str, float]] = {}
        for k, cat in enumerate(p.cat_ids):
            prec = self.precision[:, :, k, a, m]
            out[cat] = {
                "AP": _mean_valid(prec),
                "AP50": _mean_valid(prec[p.iou_thresholds == 0.5]),
                "AP75": _mean_valid(prec[p.iou_thresholds == 0.75]),
                "AR": _mean_valid(self.recall[:, k, a, m]),
            }
        return out

    def to_dict(self, *, arrays: bool = False) -> dict[str, Any]:
        """JSON-ready: the named stats, the parameters, per-category values, and with
        ``arrays=True`` the precision, recall and scores arrays as nested lists."""
        out: dict[str, Any] = {
            "iou_type": self.params.iou_type,
            "stats": dict(zip(STAT_NAMES, self.stats.tolist(), strict=True)),
            "params": self.params.to_dict(),
            "per_class": [{"category_id": k, **v} for k, v in self.per_class().items()],
        }
        if arrays:
            out |= {
                "precision": self.precision.tolist(),
                "recall": self.recall.tolist(),
                "scores": self.scores.tolist(),
            }
        return out

    def summary(self) -> str:
        """The 12 lines pycocotools' ``summarize`` prints."""
        p = self.params
        lines = []
        for value, (ap, thr, area, md) in zip(self.stats.tolist(), _stat_rows(p), strict=True):
            title = "Average Precision" if ap else "Average Recall"
            kind = "(AP)" if ap else "(AR)"
            first, last = (
                (float(p.iou_thresholds[i]) for i in (0, -1)) if p.iou_thresholds.size else (0, 0)
            )
            iou = f"{first:0.2f}:{last:0.2f}" if thr is None else f"{thr:0.2f}"
            dets = f"{md:>3d}" if md is not None else "  -"
            where = f"IoU={iou:<9} | area={area:>6s} | maxDets={dets}"
            lines.append(f" {title:<18} {kind} @[ {where} ] = {value:0.3f}")
        return "\n".join(lines)


def _mean_valid(s: npt.NDArray[np.float64]) -> float:
    valid = s[s > -1]
    return float(np.mean(valid)) if valid.size else -1.0


def _stat_rows(p: CocoParams) -> list[tuple[bool, float | None, str, int | None]]:
    """(is AP, IoU threshold or None for all, area name, max dets) of each stat."""
    md = [p.max_dets[i] if i < len(p.max_dets) else None for i in range(3)]
    return [
        (True, None, "all", 100),
        (True, 0.5, "all", md[2]),
        (True, 0.75, "all", md[2]),
        (True, None, "small", md[2]),
        (True, None, "medium", md[2]),
        (True, None, "large", md[2]),
        (False, None, "all", md[0]),
        (False, None, "all", md[1]),
        (False, None, "all", md[2]),
        (False, None, "small", md[2]),
        (False, None, "medium", md[2]),
        (False, None, "large", md[2]),
    ]


def _stats(precision: F64, recall: F64, p: CocoParams) -> F64:
    """``summarize``'s 12 numbers."""
    out = np.zeros(12)
    for i, (ap, thr, area, md) in enumerate(_stat_rows(p)):
        s = precision if ap else recall
        if thr is not None:
            s = s[p.iou_thresholds == thr]
        aind = [k for k, name in enumerate(p.area_names) if name == area]
        mind = [k for k, m in enumerate(p.max_dets) if m == md]
        if not aind or not mind:
            out[i] = -1
            continue
        s = s[..., aind, :][..., mind]
        out[i] = _mean_valid(s)
    return out


# --------------------------------------------------------------------------- tables


@dataclass
class _Table:
    """Ground truth or detections as arrays, one row per annotation, in input order.

    ``area`` / ``boxes`` rows that are NaN are taken from the mask. ``segs`` holds each
    row's mask as given (json segmentation or RLE); ``where`` names a row in messages.
    """

    img: I64
    cat: I64
    area: F64
    crowd: Bool
    score: F64
    boxes: F64  # (n, 4) xywh
    segs: list[Any]
    where: Callable[[int], str]

    def take(self, idx: I64) -> _Table:
        where = self.where
        return _Table(
            self.img[idx],
            self.cat[idx],
            self.area[idx],
            self.crowd[idx],
            self.score[idx],
            self.boxes[idx],
            [self.segs[i] for i in idx.tolist()] if self.segs else [],
            lambda i: where(int(idx[i])),
        )


def _real(x: object) -> bool:
    t = type(x)
    return t is float or t is int or (isinstance(x, numbers.Real) and t is not bool)


def _box_ok(b: object) -> bool:
    return (
        isinstance(b, (Sequence, np.ndarray))
        and not isinstance(b, (str, bytes))
        and len(b) == 4
        and all(_real(v) and math.isfinite(float(v)) for v in b)
    )


def _check_ids(record: Mapping[str, Any], where: str, i: int) -> None:
    for key in ("image_id", "category_id"):
        try:
            hash(record[key])
        except TypeError:
            raise FormatError(
                f"{where}: {key} {record[key]!r} is not an id; use the integer id",
                record=i,
                field=key,
            ) from None


def _index(ids: Iterable[Any], lut: Mapping[Any, int], default: int) -> I64:
    return np.fromiter((lut.get(i, default) for i in ids), np.int64)


def _gt_table(
    gt: Mapping[str, Any],
    img_lut: Mapping[Any, int],
    cat_lut: Mapping[Any, int],
    iou_type: IouType,
) -> _Table:
    anns = gt.get("annotations", [])
    if not isinstance(anns, Sequence):
        raise FormatError("ground truth 'annotations' must be a list", field="annotations")

    def where(i: int) -> str:
        ann = anns[i]
        known = isinstance(ann, Mapping) and "id" in ann
        return f"annotation {i}" + (f" (id {ann['id']!r})" if known else "")

    key = "segmentation" if iou_type == "segm" else "bbox"
    try:
        img = _index((a["image_id"] for a in anns), img_lut, -1)
        cat = _index((a["category_id"] for a in anns), cat_lut, -1)
        area_raw = [a["area"] for a in anns]
        crowd_raw = [a.get("iscrowd", 0) for a in anns]
        segs = [a[key] for a in anns]
    except (KeyError, TypeError, AttributeError):
        for i, a in enumerate(anns):
            if not isinstance(a, Mapping):
                raise FormatError(
                    f"{where(i)} is a {type(a).__name__}, not an object", record=i
                ) from None
            for k in ("image_id", "category_id", "area", key):
                if k not in a:
                    fix = (
                        " (the mask's pixel count, as COCO writers store it)" if k == "area" else ""
                    )
                    raise FormatError(
                        f"{where(i)} has no {k!r}; add it{fix}", record=i, field=k
                    ) from None
            _check_ids(a, where(i), i)
        raise
    keep = np.flatnonzero((img >= 0) & (cat >= 0))
    area = np.full(len(anns), np.nan)
    crowd = np.zeros(len(anns), bool)
    boxes = np.full((len(anns), 4), np.nan)
    for i in keep.tolist():
        if not _real(area_raw[i]) or not math.isfinite(float(area_raw[i])):
            raise FormatError(
                f"{where(i)}: 'area' must be a number, got {area_raw[i]!r}", record=i, field="area"
            )
        area[i] = area_raw[i]
        crowd[i] = bool(crowd_raw[i])
        if iou_type == "bbox":
            if not _box_ok(segs[i]):
                raise FormatError(
                    f"{where(i)}: 'bbox' must be [x, y, w, h], got {segs[i]!r}",
                    record=i,
                    field="bbox",
                )
            boxes[i] = segs[i]
    table = _Table(
        img, cat, area, crowd, np.zeros(len(anns)), boxes, segs if iou_type == "segm" else [], where
    )
    return table.take(keep)


def _results_table(
    results: Sequence[Mapping[str, Any]],
    img_lut: Mapping[Any, int],
    cat_lut: Mapping[Any, int],
    iou_type: IouType,
) -> _Table:
    n = len(results)

    def where(i: int) -> str:
        return f"result {i}"

    if n == 0:
        z = np.zeros(0, np.int64)
        return _Table(
            z, z, np.zeros(0), np.zeros(0, bool), np.zeros(0), np.zeros((0, 4)), [], where
        )
    first = results[0]
    if not isinstance(first, Mapping):
        raise FormatError(f"result 0 is a {type(first).__name__}, not an object", record=0)
    box = first.get("bbox")
    box_branch = "bbox" in first and not (isinstance(box, (Sequence, np.ndarray)) and len(box) == 0)
    if not box_branch and "segmentation" not in first:
        raise FormatError(
            "result 0 has neither 'segmentation' nor 'bbox'; results need one of them "
            "(loadRes decides from the first record)",
            record=0,
        )
    need = ("image_id", "category_id", "score", "bbox" if box_branch else "segmentation")
    try:
        img_raw = [r["image_id"] for r in results]
        cat = _index((r["category_id"] for r in results), cat_lut, -1)
        score_raw = [r["score"] for r in results]
        box_raw = [r["bbox"] if box_branch else r.get("bbox") for r in results]
        if box_branch:
            segs = [r.get("segmentation") for r in results] if iou_type == "segm" else []
        else:
            segs = [r["segmentation"] for r in results]
    except (KeyError, TypeError, AttributeError):
        for i, r in enumerate(results):
            if not isinstance(r, Mapping):
                raise FormatError(
                    f"result {i} is a {type(r).__name__}, not an object", record=i
                ) from None
            for k in need:
                if k not in r:
                    why = (
                        " (result 0 has a 'bbox', so every result needs one)" if k == "bbox" else ""
                    )
                    raise FormatError(
                        f"result {i} has no {k!r}{why}; add it", record=i, field=k
                    ) from None
            _check_ids(r, where(i), i)
        raise
    try:
        img = _index(img_raw, img_lut, -1)
    except TypeError:
        for i, r in enumerate(results):
            _check_ids(r, where(i), i)
        raise
    unknown = np.flatnonzero(img == -1)
    if unknown.size:
        i = int(unknown[0])
        raise FormatError(
            f"result {i}: image_id {img_raw[i]!r} is not an image of the ground truth; "
            "results must refer to the ground truth's images",
            record=i,
            field="image_id",
        )
    if any(not _real(s) for s in score_raw):
        i = next(i for i, s in enumerate(score_raw) if not _real(s))
        raise FormatError(
            f"result {i}: 'score' must be a number, got {score_raw[i]!r}", record=i, field="score"
        )
    score = np.asarray(score_raw, np.float64)
    bad = np.flatnonzero(~np.isfinite(score))
    if bad.size:
        i = int(bad[0])
        raise FormatError(
            f"result {i}: 'score' must be finite, got {score_raw[i]!r}", record=i, field="score"
        )
    keep = np.flatnonzero((img >= 0) & (cat >= 0))
    area = np.full(n, np.nan)
    boxes = np.full((n, 4), np.nan)
    for i in keep.tolist():
        b = box_raw[i]
        if b is None:
            continue
        if not _box_ok(b):
            raise FormatError(
                f"result {i}: 'bbox' must be [x, y, w, h], got {b!r}", record=i, field="bbox"
            )
        boxes[i] = b
        if box_branch:
            area[i] = float(b[2]) * float(b[3])
    if box_branch and iou_type == "segm":
        for i in keep.tolist():
            if segs[i] is None:  # loadRes: the box as a polygon
                x, y, w, h = (float(v) for v in box_raw[i] or ())
                segs[i] = [[x, y, x, y + h, x + w, y + h, x + w, y]]
    table = _Table(img, cat, area, np.zeros(n, bool), score, boxes, segs, where)
    return table.take(keep)


# --------------------------------------------------------------------------- masks


def _expand(n: I64) -> tuple[I64, I64]:
    """``(owner, k)`` for every ``k < n[owner]``, owners in order."""
    owner = np.repeat(np.arange(n.size), n)
    k = np.arange(owner.size) - np.repeat(np.cumsum(n) - n, n)
    return owner, k


@dataclass(frozen=True)
class _Pieces:
    """Masks as vertical pieces (column, rows ``[y0, y1)``), indexed by column.

    Per mask: area, box (``x1`` inclusive, ``y1`` exclusive; an empty mask has
    ``x1 = x0 - 1``) and the offset of its first column slot; per column slot (one for
    each column of each mask's box): its first piece and number of pieces.
    """

    area: I64
    x0: I64
    x1: I64
    y0: I64
    y1: I64
    col_off: I64
    slot_first: I64
    slot_count: I64
    py0: I64
    py1: I64

    def boxes(self) -> F64:
        """COCO ``[x, y, w, h]`` of each mask, as pycocotools' ``toBbox``."""
        w = self.x1 - self.x0 + 1
        h = self.y1 - self.y0
        out = np.stack([self.x0, self.y0, w, h], axis=1).astype(np.float64)
        out[w <= 0] = 0
        return out


def _pieces(counts: I64, n_counts: I64, h: I64) -> _Pieces:
    """Pieces of masks given as COCO counts back to back (mask k: ``n_counts[k]`` counts,
    height ``h[k]``); zero-length runs are harmless."""
    n = n_counts.size
    start = np.cumsum(n_counts) - n_counts
    csum = np.cumsum(counts)
    before = np.concatenate([[0], csum])[start]
    n_fg = n_counts // 2  # foreground runs are the odd counts
    fg_first = np.cumsum(n_fg) - n_fg
    idx = 2 * np.arange(int(n_fg.sum())) + np.repeat(start + 1 - 2 * fg_first, n_fg)
    length = counts[idx]
    e = csum[idx] - np.repeat(before, n_fg)
    s = e - length
    area = np.zeros(n, np.int64)
    ne = np.flatnonzero(n_fg)
    if ne.size:
        area[ne] = np.add.reduceat(length, fg_first[ne])
    m = np.repeat(np.arange(n), n_fg)
    uniform = n > 0 and bool((h == h[0]).all())
    hh: Any = int(h[0]) if uniform else h[m]
    xs = s // hh
    xe = (e - 1) // hh
    if (xe != xs).any() or not (length > 0).all():  # runs over several columns, empty runs
        o, k = _expand((xe - xs + 1) * (length > 0))
        px = xs[o] + k
        ho = hh if uniform else hh[o]
        base = px * ho
        py0 = np.maximum(s[o] - base, 0)
        py1 = np.minimum(e[o] - base, ho)
        m = m[o]
        n_fg = np.bincount(m, minlength=n)
        fg_first = np.cumsum(n_fg) - n_fg
        ne = np.flatnonzero(n_fg)
    else:
        px, base = xs, xs * hh
        py0, py1 = s - base, e - base
    x0 = np.zeros(n, np.int64)
    x1 = np.full(n, -1, np.int64)
    y0 = np.zeros(n, np.int64)
    y1 = np.zeros(n, np.int64)
    if ne.size:
        x0[ne] = px[fg_first[ne]]
        x1[ne] = px[fg_first[ne] + n_fg[ne] - 1]
        y0[ne] = np.minimum.reduceat(py0, fg_first[ne])
        y1[ne] = np.maximum.reduceat(py1, fg_first[ne])
    width = x1 - x0 + 1
    col_off = np.cumsum(width) - width
    slot = np.repeat(col_off - x0, n_fg) + px
    slot_count = np.bincount(slot, minlength=int(width.sum()))
    slot_first = np.cumsum(slot_count) - slot_count
    return _Pieces(area, x0, x1, y0, y1, col_off, slot_first, slot_count, py0, py1)


def _decode_strings(strings: list[bytes], n_pixels: I64) -> tuple[I64, I64] | int:
    """Counts of compressed RLE strings back to back and each one's number of counts, or
    the index of the first string that is not a valid RLE of ``n_pixels`` pixels.

    The string format is pycocotools' (``reference/formats.md`` §1.3): values of 5-bit
    groups, little-endian, continuation bit 0x20, sign bit 0x10 in the last group; from
    the fourth on, a value is the difference to the count two places back.
    """
    lens = np.fromiter(map(len, strings), np.int64, len(strings))
    data = np.frombuffer(b"".join(strings), np.uint8)
    char_end = np.cumsum(lens)

    def culprit(char_index: int) -> int:
        return int(np.searchsorted(char_end, char_index, side="right"))

    if data.size and (int(data.min()) < _ZERO or int(data.max()) >= _ZERO + 64):
        return culprit(int(np.argmax((data < _ZERO) | (data >= _ZERO + 64))))
    d = data - np.uint8(_ZERO)
    last = d < 32  # a value's last character has no continuation bit
    nonempty = lens > 0
    if not last[char_end[nonempty] - 1].all():
        return int(np.flatnonzero(nonempty)[np.argmin(last[char_end[nonempty] - 1])])
    ends = np.flatnonzero(last)
    n_vals = np.diff(np.searchsorted(ends, char_end, side="left"), prepend=0)
    has = np.flatnonzero(n_vals)
    if ends.size == 0:
        return (np.zeros(0, np.int64), n_vals) if not n_pixels.any() else int(np.argmax(n_pixels))
    lengths = np.diff(ends, prepend=-1)
    longest = int(lengths.max())
    if longest > _MAX_GROUPS:
        return culprit(int(ends[np.argmax(lengths > _MAX_GROUPS)]))
    top = d[ends]
    vals = (top & 0x1F).astype(np.int64) - ((top & 0x10).astype(np.int64) << 1)  # signed
    if longest > 1:  # Horner's rule from the last group down; most values have 1-2 groups
        vals = np.where(lengths > 1, (vals << 5) | (d[ends - 1] & 0x1F), vals)
        for j in range(2, longest):
            more = np.flatnonzero(lengths > j)
            vals[more] = (vals[more] << 5) | (d[ends[more] - j] & 0x1F)
    first = (np.cumsum(n_vals) - n_vals)[has]
    # counts[m] = x[m] + counts[m - 2] for m > 2: running sums of the odd and the even
    # values of each string (its first value apart), restarted at each string
    parity = np.tile(np.array([False, True]), (vals.size + 1) // 2)[: vals.size]
    odd = parity ^ np.repeat(parity[first], n_vals[has])
    chain = vals.copy()
    chain[first] = 0
    run_odd = np.where(odd, chain, 0)
    run_even = chain - run_odd
    for run in (run_odd, run_even):
        total = np.add.reduceat(run, first)
        run[first[1:]] -= total[:-1]  # telescopes: each string's sums start from 0
        np.cumsum(run, out=run)
    counts = np.where(odd, run_odd, run_even)
    counts[first] = vals[first]
    sums = np.zeros(lens.size, np.int64)
    sums[has] = np.add.reduceat(counts, first)
    wrong = sums != n_pixels
    if wrong.any() or int(counts.min()) < 0:
        owner = np.repeat(np.arange(lens.size), n_vals)
        wrong[owner[counts < 0]] = True
        return int(np.argmax(wrong))
    return counts, n_vals


def _mask_pieces(
    items: Sequence[Any], hw: I64, where: Callable[[int], str], *, gt: bool
) -> tuple[_Pieces, I64]:
    """Decode masks (json segmentations or RLEs) of images of size ``hw`` (n, 2) into
    pieces; returns them and the piece-mask index of each item."""
    n = len(items)
    strings: list[bytes] = []
    str_items: list[int] = []
    rles: list[RLE] = []
    rle_items: list[int] = []
    polys: dict[tuple[int, int], list[int]] = {}
    hw_list = hw.tolist()

    def fail(i: int, err: Exception | str) -> FormatError:
        return FormatError(f"{where(i)}: {err}", field="segmentation")

    def check_size(i: int, size: Any) -> None:
        h, w = hw_list[i]
        if not isinstance(size, (Sequence, np.ndarray)) or len(size) != 2 or list(size) != [h, w]:
            raise fail(
                i,
                f"mask size {size!r} is not its image's [{h}, {w}]; "
                "re-encode the mask at the image's size",
            )

    for i, item in enumerate(items):
        if type(item) is dict:  # the common case first: json RLE with a str, or polygons
            counts = item.get("counts")
            size = item.get("size")
            if type(counts) is str and type(size) is list and size == hw_list[i]:
                try:
                    strings.append(counts.encode("ascii"))
                except UnicodeEncodeError as err:
                    raise fail(i, f"compressed counts must be ASCII: {err}") from err
                str_items.append(i)
                continue
        elif type(item) is list:
            polys.setdefault((hw_list[i][0], hw_list[i][1]), []).append(i)
            continue
        if isinstance(item, RLE):
            check_size(i, list(item.size))
            rles.append(item)
            rle_items.append(i)
        elif isinstance(item, Mapping):
            counts = item.get("counts")
            if isinstance(counts, (str, bytes)):
                check_size(i, item.get("size"))
                try:
                    strings.append(counts.encode("ascii") if isinstance(counts, str) else counts)
                except UnicodeEncodeError as err:
                    raise fail(i, f"compressed counts must be ASCII: {err}") from err
                str_items.append(i)
                continue
            h, w = hw_list[i]
            obj = {"size": [h, w], "counts": counts} if gt else item  # annToRLE: image size
            try:
                r = rle.from_coco(obj)
            except (MaskFormatError, TypeError, ValueError) as err:
                raise fail(i, err) from err
            check_size(i, list(r.size))
            rles.append(r)
            rle_items.append(i)
        elif isinstance(item, list):
            polys.setdefault((hw_list[i][0], hw_list[i][1]), []).append(i)
        else:
            raise fail(
                i,
                f"segmentation must be polygons (a list) or an RLE dict, got {type(item).__name__}",
            )
    for (h, w), idx in polys.items():
        try:
            done = polygon.to_rle_batch([items[i] for i in idx], h, w)
        except (MaskFormatError, TypeError, ValueError):
            for i in idx:  # find the culprit
                try:
                    polygon.to_rle(items[i], h, w)
                except (MaskFormatError, TypeError, ValueError) as err:
                    raise fail(i, err) from err
            raise
        rles += done
        rle_items += idx
    parts: list[I64] = []
    lens: list[I64] = []
    if strings:
        n_pixels = hw[str_items, 0] * hw[str_items, 1]
        decoded = _decode_strings(strings, n_pixels)
        if isinstance(decoded, int):
            i = str_items[decoded]
            try:
                rle.from_coco(items[i])
            except (MaskFormatError, TypeError, ValueError) as err:
                raise fail(i, err) from err
            raise fail(i, "invalid compressed RLE counts")
        parts.append(decoded[0])
        lens.append(decoded[1])
    if rles:
        parts.append(np.concatenate([r.counts for r in rles]).astype(np.int64))
        lens.append(np.fromiter((r.counts.size for r in rles), np.int64, len(rles)))
    order = np.asarray(str_items + rle_items, np.int64)
    mask_of_item = np.empty(n, np.int64)
    mask_of_item[order] = np.arange(n)
    counts = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    n_counts = np.concatenate(lens) if lens else np.zeros(0, np.int64)
    return _pieces(counts, n_counts, hw[order, 0] if n else np.zeros(0, np.int64)), mask_of_item


def _intersections(dp: _Pieces, dm: I64, gp: _Pieces, gm: I64) -> F64:
    """Pixels shared by masks ``dm[p]`` of ``dp`` and ``gm[p]`` of ``gp`` for each pair
    ``p`` (their boxes must share at least one column)."""
    cx0 = np.maximum(dp.x0[dm], gp.x0[gm])
    cx1 = np.minimum(dp.x1[dm], gp.x1[gm])
    pair, k = _expand(cx1 - cx0 + 1)  # one entry per shared column
    x = cx0[pair] + k
    dmp, gmp = dm[pair], gm[pair]
    sd = dp.col_off[dmp] + x - dp.x0[dmp]
    sg = gp.col_off[gmp] + x - gp.x0[gmp]
    nd = dp.slot_count[sd]
    ng = gp.slot_count[sg]
    one = (nd == 1) & (ng == 1)  # the common case: one piece of each in the column
    a = dp.slot_first[sd[one]]
    b = gp.slot_first[sg[one]]
    ov = np.minimum(dp.py1[a], gp.py1[b]) - np.maximum(dp.py0[a], gp.py0[b])
    inter = np.bincount(pair[one], weights=np.maximum(ov, 0), minlength=dm.size).astype(np.float64)
    many = np.flatnonzero(~one & (nd > 0) & (ng > 0))
    if many.size:  # every piece of one against every piece of the other
        ngm = ng[many]
        o, kk = _expand(nd[many] * ngm)
        a = dp.slot_first[sd[many]][o] + kk // ngm[o]
        b = gp.slot_first[sg[many]][o] + kk % ngm[o]
        ov = np.minimum(dp.py1[a], gp.py1[b]) - np.maximum(dp.py0[a], gp.py0[b])
        inter += np.bincount(pair[many][o], weights=np.maximum(ov, 0), minlength=dm.size)
    return inter


def _box_iou(d: F64, g: F64, crowd: Bool) -> F64:
    """pycocotools' ``bbIou`` for pairs of boxes, operation for operation."""
    w = np.minimum(d[:, 2] + d[:, 0], g[:, 2] + g[:, 0]) - np.maximum(d[:, 0], g[:, 0])
    h = np.minimum(d[:, 3] + d[:, 1], g[:, 3] + g[:, 1]) - np.maximum(d[:, 1], g[:, 1])
    inter = w * h
    da = d[:, 2] * d[:, 3]
    union = np.where(crowd, da, da + g[:, 2] * g[:, 3] - inter)
    ok = (w > 0) & (h > 0)
    out = np.zeros(d.shape[0])
    out[ok] = inter[ok] / union[ok]
    return out


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class _Groups:
    """Ground truth and detections sorted by group (image, or image and category); only
    the first ``max(max_dets)`` detections of each group, best score first."""

    gt: _Table
    dt: _Table
    dt_rank: I64  # per detection: its place in its group
    pair_start: I64  # per detection: its first (detection, ground truth) pair
    pair_gt: I64  # per pair: the ground-truth row


def _rank(keys: I64) -> I64:
    """Place of each element among the equal ones of sorted ``keys``."""
    n = keys.size
    if n == 0:
        return np.zeros(0, np.int64)
    start = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
    return np.arange(n) - np.repeat(start, np.diff(np.append(start, n)))


def _group(gt: _Table, dt: _Table, n_cat: int, use_cats: bool, max_det: int) -> _Groups:
    gt = gt.take(np.lexsort((np.arange(gt.img.size), gt.cat, gt.img)))
    g_grp = gt.img * n_cat + gt.cat if use_cats else gt.img
    d_grp = dt.img * n_cat + dt.cat if use_cats else dt.img
    d_order = np.lexsort((np.arange(d_grp.size), dt.cat, -dt.score, d_grp))
    d_grp = d_grp[d_order]
    rank = _rank(d_grp)
    keep = rank < max_det
    dt = dt.take(d_order[keep])
    d_grp, rank = d_grp[keep], rank[keep]
    g_lo = np.searchsorted(g_grp, d_grp, side="left")
    n_pairs = np.searchsorted(g_grp, d_grp, side="right") - g_lo
    pair_start = np.cumsum(n_pairs) - n_pairs
    owner, k = _expand(n_pairs)
    return _Groups(gt, dt, rank, pair_start, g_lo[owner] + k)


def _chunks(img_gt: I64, img_dt: I64, n_img: int) -> list[tuple[int, int, int, int]]:
    """Row ranges ``(gt_lo, gt_hi, dt_lo, dt_hi)`` of runs of whole images holding about
    ``_CHUNK_MASKS`` masks each (rows are sorted by image)."""
    per_img = np.bincount(img_gt, minlength=n_img) + np.bincount(img_dt, minlength=n_img)
    cum = np.cumsum(per_img)
    cuts = [0]
    while cuts[-1] < n_img:
        base = int(cum[cuts[-1] - 1]) if cuts[-1] else 0
        nxt = int(np.searchsorted(cum, base + _CHUNK_MASKS, side="right"))
        cuts.append(min(max(nxt, cuts[-1] + 1), n_img))
    g_cut = np.searchsorted(img_gt, cuts)
    d_cut = np.searchsorted(img_dt, cuts)
    return [
        (int(g_cut[i]), int(g_cut[i + 1]), int(d_cut[i]), int(d_cut[i + 1]))
        for i in range(len(cuts) - 1)
    ]


def _pair_ious(gr: _Groups, hw: I64, iou_type: IouType) -> F64:
    """IoU of every (detection, ground truth) pair of a group; fills areas and boxes that
    come from masks."""
    gt, dt = gr.gt, gr.dt
    n_pairs = gr.pair_gt.size
    pair_dt = np.repeat(np.arange(dt.img.size), np.diff(np.append(gr.pair_start, n_pairs)))
    ious = np.zeros(n_pairs)
    need_dt = iou_type == "segm" or bool(np.isnan(dt.area).any() or np.isnan(dt.boxes).any())
    need_gt = iou_type == "segm" or bool(np.isnan(gt.area).any() or np.isnan(gt.boxes).any())
    if need_dt or need_gt:
        for g_lo, g_hi, d_lo, d_hi in _chunks(gt.img, dt.img, hw.shape[0]):
            dpcs = gpcs = None
            if need_dt and d_hi > d_lo:
                dpcs, dmi = _mask_pieces(
                    dt.segs[d_lo:d_hi], hw[dt.img[d_lo:d_hi]], _shifted(dt.where, d_lo), gt=False
                )
                _fill(dt, d_lo, dpcs, dmi)
            if need_gt and g_hi > g_lo:
                gpcs, gmi = _mask_pieces(
                    gt.segs[g_lo:g_hi], hw[gt.img[g_lo:g_hi]], _shifted(gt.where, g_lo), gt=True
                )
                _fill(gt, g_lo, gpcs, gmi)
            if iou_type != "segm" or dpcs is None or gpcs is None:
                continue
            p_lo = int(gr.pair_start[d_lo]) if d_lo < dt.img.size else n_pairs
            p_hi = int(gr.pair_start[d_hi]) if d_hi < dt.img.size else n_pairs
            if p_hi == p_lo:
                continue
            dm = dmi[pair_dt[p_lo:p_hi] - d_lo]
            gm = gmi[gr.pair_gt[p_lo:p_hi] - g_lo]
            meet = (
                np.minimum(dpcs.x1[dm], gpcs.x1[gm]) >= np.maximum(dpcs.x0[dm], gpcs.x0[gm])
            ) & (np.minimum(dpcs.y1[dm], gpcs.y1[gm]) > np.maximum(dpcs.y0[dm], gpcs.y0[gm]))
            sel = np.flatnonzero(meet)
            inter = _intersections(dpcs, dm[sel], gpcs, gm[sel])
            ad = dpcs.area[dm[sel]].astype(np.float64)
            crowd = gt.crowd[gr.pair_gt[p_lo:p_hi][sel]]
            union = np.where(crowd, ad, ad + gpcs.area[gm[sel]] - inter)
            ok = inter > 0
            vals = np.zeros(sel.size)
            vals[ok] = inter[ok] / union[ok]
            ious[p_lo + sel] = vals
    if iou_type == "bbox":
        ious = _box_iou(dt.boxes[pair_dt], gt.boxes[gr.pair_gt], gt.crowd[gr.pair_gt])
    return ious


def _shifted(where: Callable[[int], str], lo: int) -> Callable[[int], str]:
    return lambda i: where(lo + i)


def _fill(t: _Table, lo: int, pcs: _Pieces, mask_of_item: I64) -> None:
    """Areas and boxes of rows ``lo ...`` that come from their masks."""
    rows = np.arange(lo, lo + mask_of_item.size)
    area = t.area[rows]
    missing = np.isnan(area)
    t.area[rows[missing]] = pcs.area[mask_of_item[missing]]
    no_box = np.isnan(t.boxes[rows]).any(axis=1)
    if no_box.any():
        t.boxes[rows[no_box]] = pcs.boxes()[mask_of_item[no_box]]


def _match(gr: _Groups, ious: F64, gt_ignore: Bool, thresholds: F64) -> tuple[Bool, Bool]:
    """COCOeval's greedy matching of every group at every area range and threshold.

    Returns ``(matched, ignored)`` of shape ``(detections, A, T)``: whether each detection
    found a ground truth, and whether that one was ignored.
    """
    dt_n = gr.dt.img.size
    n_area = gt_ignore.shape[1]
    n_thr = thresholds.size
    matched = np.zeros((dt_n, n_area, n_thr), bool)
    ignored = np.zeros((dt_n, n_area, n_thr), bool)
    if dt_n == 0 or gr.pair_gt.size == 0:
        return matched, ignored
    thr = np.minimum(thresholds, 1 - 1e-10)
    # groups with detections and ground truth: first detection row, counts
    first = np.flatnonzero(gr.dt_rank == 0)
    d_count = np.diff(np.append(first, dt_n))
    g_count = np.diff(np.append(gr.pair_start[first], gr.pair_gt.size)) // d_count
    live = g_count > 0
    first, d_count, g_count = first[live], d_count[live], g_count[live]
    g_first = gr.pair_gt[gr.pair_start[first]]
    width = 1 << np.ceil(np.log2(g_count)).astype(np.int64)  # buckets of padded width
    for gp in np.unique(width).tolist():
        sel = np.flatnonzero(width == gp)
        sel = sel[np.argsort(-d_count[sel], kind="stable")]  # active groups are a prefix
        rows0, nd, ng, g0 = first[sel], d_count[sel], g_count[sel], g_first[sel]
        col = np.arange(gp)
        valid = col < ng[:, None]
        gidx = np.where(valid, g0[:, None] + col, 0)
        ig = np.where(valid[:, :, None], gt_ignore[gidx], False).transpose(0, 2, 1)  # (n, A, G)
        crowd = np.where(valid, gr.gt.crowd[gidx], False)
        taken = np.zeros((sel.size, n_area, n_thr, gp), bool)
        active = np.searchsorted(-nd, -np.arange(int(nd[0])), side="left")  # groups with nd > d
        for d in range(int(nd[0])):
            k = int(active[d])
            rows = rows0[:k] + d
            pidx = np.where(valid[:k], gr.pair_start[rows][:, None] + col, 0)
            iou = np.where(valid[:k], ious[pidx], -np.inf)  # (k, G)
            over = iou[:, None, :] >= thr[None, :, None]  # (k, T, G)
            free = ~taken[:k] | crowd[:k, None, None, :]
            cand = over[:, None] & free  # (k, A, T, G)
            ig_k = ig[:k, :, None, :]
            first_pass = cand & ~ig_k
            cand = np.where(first_pass.any(axis=-1, keepdims=True), first_pass, cand)
            val = np.where(cand, iou[:, None, None, :], -np.inf)
            best = val.max(axis=-1, keepdims=True)
            hit = cand & (val == best)
            found = hit.any(axis=-1)
            m = gp - 1 - np.argmax(hit[..., ::-1], axis=-1)  # the last best
            gi, ai, ti = np.nonzero(found)
            mi = m[gi, ai, ti]
            taken[gi, ai, ti, mi] = True
            matched[rows[gi], ai, ti] = True
            ignored[rows[gi], ai, ti] = ig[gi, ai, mi]
    return matched, ignored


def _accumulate(
    gr: _Groups,
    matched: Bool,
    ignored: Bool,
    npig: I64,
    p: CocoParams,
) -> tuple[F64, F64, F64]:
    """COCOeval's ``accumulate``: precision, recall and scores arrays."""
    n_thr, n_rec, n_cat, n_area, n_md = (
        p.iou_thresholds.size,
        p.rec_thresholds.size,
        len(p.cat_ids),
        len(p.area_names),
        len(p.max_dets),
    )
    precision = -np.ones((n_thr, n_rec, n_cat, n_area, n_md))
    recall = -np.ones((n_thr, n_cat, n_area, n_md))
    scores = -np.ones((n_thr, n_rec, n_cat, n_area, n_md))
    dt = gr.dt
    cat = dt.cat if p.use_cats else np.zeros_like(dt.cat)
    order = np.lexsort((gr.dt_rank, dt.img, -dt.score, cat))
    bounds = np.searchsorted(cat[order], np.arange(n_cat + 1))
    for k in range(n_cat):
        areas = np.flatnonzero(npig[k] > 0)
        if areas.size == 0:
            continue
        seg = order[bounds[k] : bounds[k + 1]]
        for mi, md in enumerate(p.max_dets):
            idx = seg[gr.dt_rank[seg] < md]
            prec, rec, sc = _curves(
                matched[idx][:, areas],
                ignored[idx][:, areas],
                dt.score[idx],
                npig[k, areas],
                p.rec_thresholds,
            )
            precision[:, :, k, areas, mi] = prec.transpose(1, 2, 0)
            recall[:, k, areas, mi] = rec.T
            scores[:, :, k, areas, mi] = sc.transpose(1, 2, 0)
    return precision, recall, scores


def _curves(mt: Bool, ig: Bool, score: F64, npig: I64, rec_thr: F64) -> tuple[F64, F64, F64]:
    """Precision at the recall thresholds, final recall and scores there, for detections
    in score order with match / ignore flags ``(n, A, T)``; outputs ``(A, T, R)``, ``(A, T)``."""
    n, n_area, n_thr = mt.shape
    n_rec = rec_thr.size
    if n == 0:
        return (
            np.zeros((n_area, n_thr, n_rec)),
            np.zeros((n_area, n_thr)),
            np.zeros((n_area, n_thr, n_rec)),
        )
    keep = ~ig
    tp = np.cumsum(mt & keep, axis=0).transpose(1, 2, 0)  # (A, T, n) int
    fp = np.cumsum(~mt & keep, axis=0).transpose(1, 2, 0)
    tpf = tp.astype(np.float64)
    fpf = fp.astype(np.float64)
    rc_last = tpf[..., -1] / npig[:, None]
    pr = tpf / (fpf + tpf + np.spacing(1))
    pr = np.maximum.accumulate(pr[..., ::-1], axis=-1)[..., ::-1]
    # first index with tp / npig >= r  <=>  tp >= the least count c with c / npig >= r
    need = np.empty((n_area, n_rec), np.int64)
    for a, g in enumerate(npig.tolist()):
        need[a] = np.searchsorted(np.arange(g + 1) / g, rec_thr, side="left")
    rows = n_area * n_thr
    step = n + int(need.max()) + 2
    off = (np.arange(rows, dtype=np.int64) * step).reshape(n_area, n_thr, 1)
    pos = np.searchsorted((tp + off).ravel(), (need[:, None, :] + off).ravel(), side="left")
    pi = pos.reshape(n_area, n_thr, n_rec) - (np.arange(rows) * n).reshape(n_area, n_thr, 1)
    inside = pi < n
    pic = np.minimum(pi, n - 1)
    prec = np.where(inside, np.take_along_axis(pr, pic, axis=-1), 0.0)
    sc = np.where(inside, score[pic], 0.0)
    return prec, rc_last, sc


def _params(
    iou_type: str,
    img_ids: tuple[Any, ...],
    cat_ids: tuple[int, ...],
    iou_thresholds: Sequence[float] | None,
    rec_thresholds: Sequence[float] | None,
    max_dets: Sequence[int],
    area_ranges: Mapping[str, tuple[float, float]] | None,
    use_cats: bool,
) -> CocoParams:
    if iou_type not in ("segm", "bbox"):
        raise ValueError(f"iou_type must be 'segm' or 'bbox', got {iou_type!r}")
    iou = (
        np.linspace(0.5, 0.95, 10)
        if iou_thresholds is None
        else np.asarray(iou_thresholds, np.float64).reshape(-1)
    )
    rec = (
        np.linspace(0.0, 1.0, 101)
        if rec_thresholds is None
        else np.asarray(rec_thresholds, np.float64).reshape(-1)
    )
    dets = tuple(sorted(int(m) for m in max_dets))
    if not dets or dets[0] < 1:
        raise ValueError(f"max_dets must be positive integers, got {tuple(max_dets)!r}")
    ranges = AREA_RANGES if area_ranges is None else area_ranges
    if not ranges:
        raise ValueError("area_ranges needs at least one range, e.g. {'all': (0, 1e10)}")
    for arr in (iou, rec):
        arr.flags.writeable = False
    return CocoParams(
        iou_type=iou_type,  # type: ignore[arg-type]
        img_ids=img_ids,
        cat_ids=cat_ids if use_cats else (-1,),
        iou_thresholds=iou,
        rec_thresholds=rec,
        max_dets=dets,
        area_names=tuple(ranges),
        area_ranges=tuple((float(lo), float(hi)) for lo, hi in ranges.values()),
        use_cats=use_cats,
    )


def _run(gt: _Table, dt: _Table, hw: I64, cat_index_count: int, p: CocoParams) -> CocoEvalResult:
    """Everything after the tables: group, IoU, match, accumulate, summarize."""
    gr = _group(gt, dt, cat_index_count, p.use_cats, p.max_dets[-1])
    ious = _pair_ious(gr, hw, p.iou_type)
    lo = np.array([r[0] for r in p.area_ranges])
    hi = np.array([r[1] for r in p.area_ranges])
    g_area = gr.gt.area[:, None]
    gt_ignore = gr.gt.crowd[:, None] | (g_area < lo) | (g_area > hi)  # (G, A)
    matched, ignored = _match(gr, ious, gt_ignore, p.iou_thresholds)
    d_area = gr.dt.area[:, None]
    out_of_range = (d_area < lo) | (d_area > hi)  # (D, A)
    ignored |= ~matched & out_of_range[:, :, None]
    n_cat = len(p.cat_ids)
    gcat = gr.gt.cat if p.use_cats else np.zeros_like(gr.gt.cat)
    npig = np.stack(
        [np.bincount(gcat[~gt_ignore[:, a]], minlength=n_cat) for a in range(lo.size)], axis=1
    )
    precision, recall, scores = _accumulate(gr, matched, ignored, npig, p)
    return CocoEvalResult(_stats(precision, recall, p), precision, recall, scores, p)


def evaluate(
    gt: Mapping[str, Any],
    results: Sequence[Mapping[str, Any]],
    *,
    iou_type: IouType = "segm",
    img_ids: Sequence[Any] | None = None,
    cat_ids: Sequence[int] | None = None,
    iou_thresholds: Sequence[float] | None = None,
    rec_thresholds: Sequence[float] | None = None,
    max_dets: Sequence[int] = (1, 10, 100),
    area_ranges: Mapping[str, tuple[float, float]] | None = None,
    use_cats: bool = True,
) -> CocoEvalResult:
    """COCO AP/AR of ``results`` against the COCO instances json ``gt``, as COCOeval.

    ``results`` is what ``loadRes`` takes: records with ``image_id``, ``category_id``,
    ``score`` and a ``segmentation`` (RLE or polygons) and/or ``bbox``. The defaults are
    COCOeval's (10 IoU thresholds 0.5:0.95, 101 recall thresholds, ``max_dets`` 1, 10,
    100, the areas of :data:`AREA_RANGES`). Neither input is modified.

    >>> gt = {"images": [{"id": 1, "height": 4, "width": 4}],
    ...       "categories": [{"id": 1, "name": "box"}],
    ...       "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0,
    ...                        "area": 4.0, "segmentation": [[1, 1, 3, 1, 3, 3, 1, 3]]}]}
    >>> hit = {"image_id": 1, "category_id": 1, "score": 0.9,
    ...        "segmentation": {"size": [4, 4], "counts": "52203"}}
    >>> evaluate(gt, [hit]).stats[:3].round(9).tolist()  # COCO's 1 is tp / (tp + fp + eps)
    [1.0, 1.0, 1.0]

    Masks are decoded, and so checked, only where they count: results in the chosen
    images and categories, at most ``max(max_dets)`` per image (and category).

    Raises:
        FormatError: a malformed annotation or result (naming it), a result on an image
            the ground truth does not have, a mask whose size is not its image's.
    """
    images = gt.get("images")
    if not isinstance(images, Sequence):
        raise FormatError("ground truth has no 'images' list", field="images")
    try:
        sizes = {im["id"]: (int(im["height"]), int(im["width"])) for im in images}
        cats = sorted({c["id"] for c in gt.get("categories", [])})
    except (KeyError, TypeError, ValueError) as err:
        raise FormatError(
            "ground truth 'images' need 'id', 'height' and 'width', 'categories' an 'id'; "
            f"found {err!r}"
        ) from err
    chosen = sorted(set(sizes)) if img_ids is None else sorted(set(img_ids))
    unknown = [i for i in chosen if i not in sizes]
    if unknown:
        raise ValueError(f"img_ids {unknown[:5]!r} are not images of the ground truth")
    cat_list = cats if cat_ids is None else sorted(set(cat_ids))
    p = _params(
        iou_type,
        tuple(chosen),
        tuple(cat_list),
        iou_thresholds,
        rec_thresholds,
        max_dets,
        area_ranges,
        use_cats,
    )
    img_lut = {i: -2 for i in sizes} | {i: k for k, i in enumerate(chosen)}
    cat_lut = {c: k for k, c in enumerate(cat_list)}
    gt_t = _gt_table(gt, img_lut, cat_lut, iou_type)
    if not isinstance(results, Sequence) or isinstance(results, (str, bytes)):
        raise FormatError("results must be a list of records (loadRes' format)")
    dt_t = _results_table(results, img_lut, cat_lut, iou_type)
    hw = np.array([sizes[i] for i in chosen], np.int64).reshape(-1, 2)
    return _run(gt_t, dt_t, hw, len(cat_list), p)


def evaluate_samples(
    gt: Iterable[Sample],
    pred: Iterable[Sample],
    *,
    iou_type: IouType = "segm",
    categories: LabelMap | None = None,
    iou_thresholds: Sequence[float] | None = None,
    rec_thresholds: Sequence[float] | None = None,
    max_dets: Sequence[int] = (1, 10, 100),
    area_ranges: Mapping[str, tuple[float, float]] | None = None,
    use_cats: bool = True,
) -> CocoEvalResult:
    """COCO AP/AR of predicted samples against ground-truth samples, matched by ``id``.

    The same evaluation as :func:`evaluate`, with images in the order ``gt`` yields them
    (so ties in score break as they would with image ids counting up in that order). A
    ground-truth image without a prediction sample counts (all its objects are missed).
    Categories are the ``class`` labels of ``categories`` (not background or ignore), or
    every class id that occurs. A ground-truth instance's area is
    ``instance.attributes["area"]`` when present, else its mask's pixel count (masklab's
    COCO reader does not keep the json's ``area``, so area ranges may then differ from
    :func:`evaluate` on the json); a prediction's area and every box (``bbox``) come from
    the mask, as ``loadRes`` derives them for segmentation results.

    Raises:
        FormatError: a prediction sample whose id is not a ground-truth sample's, a sample
            id given twice, a prediction without a score, a mask of the wrong size.
    """
    gts = list(gt)
    index: dict[str, int] = {}
    for k, s in enumerate(gts):
        if s.id in index:
            raise FormatError(
                f"ground-truth sample id {s.id!r} appears twice; ids must be unique", record=s.id
            )
        index[s.id] = k
    preds = list(pred)
    seen: set[str] = set()
    for s in preds:
        if s.id not in index:
            raise FormatError(
                f"prediction sample {s.id!r} has no ground-truth sample with that id; "
                "evaluate predictions of the ground truth's images",
                record=s.id,
            )
        if s.id in seen:
            raise FormatError(
                f"prediction sample id {s.id!r} appears twice; ids must be unique", record=s.id
            )
        seen.add(s.id)
    if categories is not None:
        cat_list = [lab.id for lab in categories if lab.role == "class"]
    else:
        cat_list = sorted({i.class_id for s in (*gts, *preds) for i in s.instances})
    cat_list = sorted(set(cat_list))
    cat_lut = {c: k for k, c in enumerate(cat_list)}
    p = _params(
        iou_type,
        tuple(s.id for s in gts),
        tuple(cat_list),
        iou_thresholds,
        rec_thresholds,
        max_dets,
        area_ranges,
        use_cats,
    )

    def table(samples: list[Sample], *, is_gt: bool) -> _Table:
        rows = [(index[s.id], j, inst) for s in samples for j, inst in enumerate(s.instances)]
        labels = [(s.id, j) for s in samples for j in range(len(s.instances))]

        def where(i: int) -> str:
            sid, j = labels[i]
            return f"{'ground-truth' if is_gt else 'prediction'} sample {sid!r} instance {j}"

        n = len(rows)
        img = np.fromiter((r[0] for r in rows), np.int64, n)
        cat = _index((r[2].class_id for r in rows), cat_lut, -1)
        area = np.full(n, np.nan)
        score = np.zeros(n)
        crowd = np.zeros(n, bool)
        for i, (_, _, inst) in enumerate(rows):
            if is_gt:
                crowd[i] = inst.iscrowd
                given = inst.attributes.get("area")
                if given is not None:
                    if not _real(given):
                        raise FormatError(
                            f"{where(i)}: attribute 'area' must be a number, got {given!r}"
                        )
                    area[i] = float(given)
            else:
                if inst.score is None or not math.isfinite(inst.score):
                    raise FormatError(
                        f"{where(i)} has no finite score; predictions need one", field="score"
                    )
                score[i] = inst.score
        t = _Table(
            img, cat, area, crowd, score, np.full((n, 4), np.nan), [r[2].mask for r in rows], where
        )
        return t.take(np.flatnonzero(cat >= 0))

    hw = np.array([s.size for s in gts], np.int64).reshape(-1, 2)
    return _run(table(gts, is_gt=True), table(preds, is_gt=False), hw, len(cat_list), p)
