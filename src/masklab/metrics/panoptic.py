"""Panoptic quality (PQ = SQ x RQ) per class, as panopticapi's ``evaluation.py`` computes it.

:class:`PanopticQuality` follows ``pq_compute_single_core`` and ``PQStat.pq_average``
(Kirillov et al., "Panoptic Segmentation", CVPR 2019; ``reference/formats.md`` §2.5) step
by step, per image:

* Id maps hold segment ids, ``0`` is VOID (unlabelled, excluded). The joint histogram of
  (ground-truth id, predicted id) pairs gives every intersection (panopticapi packs the
  pair as ``gt * 256**3 + pred`` and sorts; we histogram the ids' positions among the
  listed segments, the same counts without a sort of the pixels).
* Areas: a predicted segment's area is always counted from its map. A ground-truth
  segment's area is its ``"area"`` entry when the segment is a mapping that has one (the
  json's value, as panopticapi uses it), else counted from the map.
* A ground-truth segment and a predicted one **match** when they have the same category,
  the ground truth is not crowd and ``IoU > 0.5``, with ``union = pred_area + gt_area -
  intersection - (pred ∩ VOID)``: predicted pixels on VOID do not count against it. A
  match adds 1 to the category's TP and its IoU to the category's IoU sum.
* Unmatched non-crowd ground truth is a false negative. An unmatched prediction is a false
  positive unless more than half of its area lies on VOID plus the crowd region of its
  category. As in panopticapi, that crowd region is *one* segment: the last crowd segment
  of the category in ``gt_segments`` order (COCO has at most one per category and image).
* Per category: ``PQ = IoU_sum / (TP + FP/2 + FN/2)``, ``SQ = IoU_sum / TP`` (0 without
  TP), ``RQ = TP / (TP + FP/2 + FN/2)``. The All / Things / Stuff averages are plain
  means over the categories with ``TP + FP + FN > 0`` (``isthing`` from the LabelMap).

Where masklab differs on purpose: a category with ``TP + FP + FN == 0`` reports
``nan`` (panopticapi writes 0.0; both leave it out of the averages), and an average over no
category is ``nan`` (panopticapi divides by zero). Categories come from the LabelMap:
labels with the ``ignore`` role are VOID (their segments' pixels count as id 0, in both
maps, as panopticapi's converters drop such classes), all other labels are evaluated.
Predictions are checked as panopticapi checks them (every non-zero predicted id has a
segment and every predicted segment has pixels; unknown categories raise); the ground
truth is trusted like panopticapi trusts it (an id painted without a segment is neither
VOID nor matched), except that unknown categories raise there too.

>>> from masklab.core.labels import Label, LabelMap
>>> pq = PanopticQuality(LabelMap((Label(1, ("cat",), (0, 0, 0)),)))
>>> gt = np.array([[1, 1, 1, 0]]); pred = np.array([[5, 5, 0, 0]])
>>> pq.update(gt, [{"id": 1, "category_id": 1}], pred, [{"id": 5, "category_id": 1}])
>>> r = pq.result(); round(r.all.pq, 4), r.classes[0].tp
(0.6667, 1)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from masklab.core.instances import Segment, instances_to_panoptic
from masklab.core.labels import LabelMap
from masklab.errors import LabelMapError, MaskFormatError
from masklab.formats._base import Sample, instances_of
from masklab.metrics.semantic import _json_float

__all__ = [
    "OFFSET",
    "VOID",
    "ClassQuality",
    "PanopticQuality",
    "PanopticResult",
    "QualityAverage",
]

OFFSET = 256**3  # panopticapi's pair packing (gt * OFFSET + pred); ids stay below it
VOID = 0

SegmentLike = Segment | Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ClassQuality:
    """PQ, SQ, RQ and the counts of one category (``nan`` scores when it never occurred)."""

    id: int
    name: str
    isthing: bool
    pq: float
    sq: float
    rq: float
    tp: int
    fp: int
    fn: int
    iou: float  # sum of the matched pairs' IoUs

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; nan -> None."""
        return {
            "id": self.id,
            "name": self.name,
            "isthing": self.isthing,
            "pq": _json_float(self.pq),
            "sq": _json_float(self.sq),
            "rq": _json_float(self.rq),
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "iou": self.iou,
        }


@dataclass(frozen=True, slots=True)
class QualityAverage:
    """Mean PQ, SQ, RQ over ``n`` categories (panopticapi's ``pq_average``)."""

    pq: float
    sq: float
    rq: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; nan -> None."""
        return {
            "pq": _json_float(self.pq),
            "sq": _json_float(self.sq),
            "rq": _json_float(self.rq),
            "n": self.n,
        }


@dataclass(frozen=True)
class PanopticResult:
    """Per-category qualities (LabelMap order) and the All / Things / Stuff averages."""

    classes: tuple[ClassQuality, ...]
    all: QualityAverage
    things: QualityAverage
    stuff: QualityAverage

    def by_id(self, class_id: int) -> ClassQuality:
        """The category with this id; LabelMapError if it is not evaluated."""
        for c in self.classes:
            if c.id == class_id:
                return c
        raise LabelMapError(f"no evaluated category {class_id!r}; known: {self.ids}")

    @property
    def ids(self) -> list[int]:
        """Evaluated category ids in order."""
        return [c.id for c in self.classes]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; nan -> None."""
        return {
            "all": self.all.to_dict(),
            "things": self.things.to_dict(),
            "stuff": self.stuff.to_dict(),
            "classes": [c.to_dict() for c in self.classes],
        }

    def summary(self) -> str:
        """panopticapi's table: PQ, SQ, RQ in percent and N for All, Things, Stuff."""
        lines = [f"{'':10}| {'PQ':>6} {'SQ':>6} {'RQ':>6} {'N':>5}", "-" * 38]
        for name, avg in (("All", self.all), ("Things", self.things), ("Stuff", self.stuff)):
            lines.append(
                f"{name:10}| {100 * avg.pq:6.1f} {100 * avg.sq:6.1f} {100 * avg.rq:6.1f} {avg.n:5d}"
            )
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class _Seg:
    id: int
    category: int
    crowd: bool
    area: float | None


def _segments(segments: Sequence[SegmentLike], which: str) -> list[_Seg]:
    """Segments as (id, category, crowd, json area); MaskFormatError on a bad or repeated id."""
    out: list[_Seg] = []
    seen: set[int] = set()
    for i, seg in enumerate(segments):
        if isinstance(seg, Segment):
            sid, cat, crowd, area = seg.id, seg.class_id, seg.iscrowd, None
        elif isinstance(seg, Mapping):
            if "id" not in seg or "category_id" not in seg:
                raise MaskFormatError(
                    f"{which} segment #{i} {dict(seg)!r} needs 'id' and 'category_id' "
                    "(COCO panoptic segments_info entries)"
                )
            sid, cat = seg["id"], seg["category_id"]
            crowd = bool(seg.get("iscrowd", 0))
            area = seg.get("area")
        else:
            raise TypeError(
                f"{which} segment #{i} must be a Segment or a mapping, got {type(seg).__name__}"
            )
        sid, cat = int(sid), int(cat)
        if not 0 < sid < OFFSET:
            raise MaskFormatError(
                f"{which} segment #{i} has id {sid}; segment ids are 1..{OFFSET - 1} "
                "(0 is VOID: leave void pixels out of the segments)"
            )
        if sid in seen:
            raise MaskFormatError(f"{which} segment id {sid} appears twice; ids must be unique")
        seen.add(sid)
        out.append(_Seg(sid, cat, crowd, None if area is None else float(area)))
    return out


def _id_map(ids: npt.ArrayLike, which: str) -> npt.NDArray[Any]:
    arr = np.asarray(ids)
    if arr.ndim != 2:
        hint = " (an RGB PNG: convert with coco_panoptic.rgb_to_id)" if arr.ndim == 3 else ""
        raise MaskFormatError(f"{which} id map must be 2-D (h, w), got shape {arr.shape}{hint}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{which} id map must hold integer segment ids, got dtype {arr.dtype}")
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= OFFSET):
        raise MaskFormatError(f"{which} id map holds ids outside 0..{OFFSET - 1}")
    return arr


def _lookup(
    ids: npt.NDArray[Any], values: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.bool_]]:
    """Index of each pixel's id in the sorted ``values``, and whether it is one of them."""
    flat = ids.reshape(-1).astype(np.int64, copy=False)
    i = np.searchsorted(values, flat)
    np.minimum(i, values.size - 1, out=i)
    return i, values[i] == flat


class PanopticQuality:
    """Streaming PQ / SQ / RQ per category of a LabelMap (see the module docstring)."""

    def __init__(self, label_map: LabelMap) -> None:
        self.label_map = label_map
        self._labels = tuple(lab for lab in label_map if lab.role != "ignore")
        self._index = {lab.id: i for i, lab in enumerate(self._labels)}
        self._void_categories = frozenset(lab.id for lab in label_map if lab.role == "ignore")
        k = len(self._labels)
        self._tp = np.zeros(k, np.int64)
        self._fp = np.zeros(k, np.int64)
        self._fn = np.zeros(k, np.int64)
        self._iou = np.zeros(k, np.float64)

    def __repr__(self) -> str:
        return f"PanopticQuality(categories={len(self._labels)}, tp={int(self._tp.sum())})"

    def _category(self, cat: int, which: str, sid: int) -> int | None:
        """Index of an evaluated category, None for a VOID (ignore-role) one."""
        if cat in self._void_categories:
            return None
        try:
            return self._index[cat]
        except KeyError:
            raise LabelMapError(
                f"{which} segment {sid} has category_id {cat}, which is not in the label map "
                f"(known: {sorted(self._index)}); evaluate with the dataset's LabelMap"
            ) from None

    def update(
        self,
        gt_ids: npt.ArrayLike,
        gt_segments: Sequence[SegmentLike],
        pred_ids: npt.ArrayLike,
        pred_segments: Sequence[SegmentLike],
    ) -> None:
        """Add one image: ``(H, W)`` segment id maps (0 = VOID; uint32 as ``rgb_to_id``
        gives) and their segments (core :class:`~masklab.core.instances.Segment`, or
        mappings with ``id``, ``category_id``, optional ``iscrowd`` and, for the ground
        truth, optional ``area``: COCO ``segments_info`` entries).

        Raises:
            MaskFormatError: shapes differ; a predicted id has no segment or a predicted
                segment no pixel; a segment id is 0, repeated or out of range.
            LabelMapError: a segment's category is not in the label map.
        """
        g = _id_map(gt_ids, "ground-truth")
        p = _id_map(pred_ids, "prediction")
        if g.shape != p.shape:
            raise MaskFormatError(
                f"ground-truth id map is {g.shape} but the prediction is {p.shape}; "
                "predict at the annotation's size"
            )
        gsegs = _segments(gt_segments, "ground-truth")
        psegs = _segments(pred_segments, "prediction")
        gcat = {s.id: self._category(s.category, "ground-truth", s.id) for s in gsegs}
        pcat = {s.id: self._category(s.category, "prediction", s.id) for s in psegs}

        # the joint histogram over (listed GT id or "unlisted", listed predicted id)
        g_vals = np.array(sorted({VOID, *gcat}), np.int64)
        p_vals = np.array(sorted({VOID, *pcat}), np.int64)
        gi, g_known = _lookup(g, g_vals)
        pi, p_known = _lookup(p, p_vals)
        if not p_known.all():  # panopticapi's prediction sanity checks
            unlisted = np.unique(p.reshape(-1)[~p_known])[:10].tolist()
            raise MaskFormatError(
                f"prediction ids {unlisted} are painted in the map but have no segment; "
                "add them to pred_segments or paint those pixels 0 (VOID)"
            )
        gi[~g_known] = g_vals.size  # GT ids without a segment: one row, never matched
        ng, npred = g_vals.size + 1, p_vals.size
        joint = np.bincount(gi * npred + pi, minlength=ng * npred).reshape(ng, npred)
        g_row = {int(v): i for i, v in enumerate(g_vals.tolist())}
        p_col = {int(v): j for j, v in enumerate(p_vals.tolist())}
        pred_area = joint.sum(axis=0)
        gt_area = joint.sum(axis=1)
        missing = [s.id for s in psegs if pred_area[p_col[s.id]] == 0]
        if missing:
            raise MaskFormatError(
                f"prediction segments {missing[:10]} have no pixel in the map; "
                "drop them from pred_segments"
            )

        # VOID: id 0 and segments of ignore-role categories, in either map
        void_ids = [VOID, *(sid for sid, c in gcat.items() if c is None)]
        g_void = np.zeros(ng, bool)
        g_void[[g_row[v] for v in void_ids if v in g_row]] = True
        void_pred = joint[g_void].sum(axis=0)  # per predicted column, pixels on GT VOID

        gts = [s for s in gsegs if gcat[s.id] is not None]
        preds = [s for s in psegs if pcat[s.id] is not None]
        pred_by_cat: dict[int, list[_Seg]] = {}
        for s in preds:
            pred_by_cat.setdefault(s.category, []).append(s)

        gt_matched: set[int] = set()
        pred_matched: set[int] = set()
        for gs in gts:
            if gs.crowd:
                continue
            i = g_row[gs.id]
            area_g = gs.area if gs.area is not None else float(gt_area[i])
            for ps in pred_by_cat.get(gs.category, ()):
                j = p_col[ps.id]
                inter = int(joint[i, j])
                if inter == 0:
                    continue
                union = float(pred_area[j]) + area_g - inter - float(void_pred[j])
                if union <= 0:
                    continue
                iou = inter / union
                if iou > 0.5:
                    c = self._index[gs.category]
                    self._tp[c] += 1
                    self._iou[c] += iou
                    gt_matched.add(gs.id)
                    pred_matched.add(ps.id)

        crowd_of: dict[int, int] = {}  # category -> its last crowd segment (panopticapi)
        for gs in gts:
            if gs.id in gt_matched:
                continue
            if gs.crowd:
                crowd_of[gs.category] = gs.id
                continue
            self._fn[self._index[gs.category]] += 1

        for ps in preds:
            if ps.id in pred_matched:
                continue
            j = p_col[ps.id]
            ignored = int(void_pred[j])
            crowd = crowd_of.get(ps.category)
            if crowd is not None:
                ignored += int(joint[g_row[crowd], j])
            if ignored / int(pred_area[j]) > 0.5:
                continue
            self._fp[self._index[ps.category]] += 1

    def update_samples(
        self,
        gt: Sample,
        pred: Sample,
        *,
        overlap: Literal["error", "last", "first"] = "error",
    ) -> None:
        """Add one image given as two Samples (e.g. from the ``coco-panoptic`` reader).

        Each sample's instances are painted into an id map with
        :func:`~masklab.core.instances.instances_to_panoptic` (their ``id`` as segment id
        when every instance has a distinct one, else 1..N); areas are counted from the
        painted map (equal to the json's ``area`` for COCO panoptic files). Panoptic
        segments never overlap, so overlapping instances raise unless ``overlap`` says
        who keeps the contested pixels. A sample with only a class map is split into
        segments as :func:`~masklab.formats._base.instances_of` does.
        """
        if gt.size != pred.size:
            raise MaskFormatError(
                f"ground truth {gt.id!r} is {list(gt.size)} (h, w) but prediction "
                f"{pred.id!r} is {list(pred.size)}; predict at the annotation's size"
            )
        g_ids, g_segs = self._paint(gt, overlap)
        p_ids, p_segs = self._paint(pred, overlap)
        self.update(g_ids, g_segs, p_ids, p_segs)

    def _paint(
        self, sample: Sample, overlap: Literal["error", "last", "first"]
    ) -> tuple[npt.NDArray[Any], tuple[Segment, ...]]:
        instances = instances_of(sample, self.label_map)
        own = [inst.id for inst in instances]
        usable = all(i is not None and 0 < i < OFFSET for i in own) and len(set(own)) == len(own)
        ids = [int(i) for i in own if i is not None] if usable else None
        painted = instances_to_panoptic(instances, sample.size, ids=ids, overlap=overlap)
        return painted.array, painted.segments

    def merge(self, other: PanopticQuality) -> PanopticQuality:
        """Add another accumulator's counts (same label map) in place; returns self."""
        if not isinstance(other, PanopticQuality):
            raise TypeError(f"can only merge a PanopticQuality, got {type(other).__name__}")
        mine = [(lab.id, lab.isthing) for lab in self._labels]
        theirs = [(lab.id, lab.isthing) for lab in other._labels]
        if mine != theirs:
            raise ValueError(
                "cannot merge PanopticQuality built on different label maps; "
                "build both with the same LabelMap"
            )
        self._tp += other._tp
        self._fp += other._fp
        self._fn += other._fn
        self._iou += other._iou
        return self

    def reset(self) -> None:
        """Forget every count."""
        for a in (self._tp, self._fp, self._fn, self._iou):
            a[:] = 0

    def result(self) -> PanopticResult:
        """Per-category PQ / SQ / RQ and the All / Things / Stuff averages."""
        tp = self._tp.astype(np.float64)
        den = tp + 0.5 * self._fp + 0.5 * self._fn
        present = (self._tp + self._fp + self._fn) > 0
        classes = []
        for c, lab in enumerate(self._labels):
            if present[c]:
                pq = float(self._iou[c] / den[c])
                sq = float(self._iou[c] / tp[c]) if self._tp[c] else 0.0
                rq = float(tp[c] / den[c])
            else:
                pq = sq = rq = float("nan")
            classes.append(
                ClassQuality(
                    lab.id,
                    lab.name,
                    lab.isthing,
                    pq,
                    sq,
                    rq,
                    int(self._tp[c]),
                    int(self._fp[c]),
                    int(self._fn[c]),
                    float(self._iou[c]),
                )
            )

        def average(keep: list[ClassQuality]) -> QualityAverage:
            used = [c for c in keep if c.tp + c.fp + c.fn > 0]
            if not used:
                return QualityAverage(float("nan"), float("nan"), float("nan"), 0)
            n = len(used)
            return QualityAverage(
                sum(c.pq for c in used) / n,
                sum(c.sq for c in used) / n,
                sum(c.rq for c in used) / n,
                n,
            )

        return PanopticResult(
            tuple(classes),
            average(classes),
            average([c for c in classes if c.isthing]),
            average([c for c in classes if not c.isthing]),
        )

    def to_dict(self) -> dict[str, Any]:
        """``result().to_dict()``."""
        return self.result().to_dict()
