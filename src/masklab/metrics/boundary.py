"""Boundary F-score (BF): how closely predicted class boundaries follow the ground truth's.

Region metrics (IoU) barely notice a contour that is off by a few pixels on a large
object; the boundary F-score does. The definition is the boundary F-measure of Martin et
al. (BSDS), as used per class for semantic segmentation by Csurka et al., "What is a good
evaluation measure for semantic segmentation?" (BMVC 2013), and for one object by DAVIS
(Perazzi et al., CVPR 2016):

* **Boundary.** The boundary of class ``c`` is the set of its pixels with at least one
  4-neighbour of another class (an inner boundary, one pixel thick). The image border is
  not a boundary. See :func:`boundary_pixels`.
* **Tolerance.** A predicted boundary pixel is *matched* when a ground-truth boundary
  pixel of the same class lies within Euclidean distance ``r`` (a disk of radius ``r``,
  as DAVIS dilates with ``disk(r)``), and a ground-truth boundary pixel likewise. With
  ``tolerance < 1``, ``r = ceil(tolerance * image diagonal)``; with ``tolerance >= 1`` it is
  ``r`` in pixels. The default ``0.0075`` (0.75 % of the diagonal) is Csurka et al.'s
  BF score, MATLAB's ``bfscore`` and the BSDS benchmark's ``maxDist``; DAVIS uses
  ``bound_th=0.008`` (pass ``tolerance=0.008``). DAVIS also draws boundaries differently
  (its ``seg2bmap`` marks pixels differing from the right, lower or lower-right
  neighbour), so its figures can differ from ours by a pixel's worth.
* **Scores.** ``precision = matched predicted / predicted boundary pixels``,
  ``recall = matched ground-truth / ground-truth boundary pixels``,
  ``F = 2 P R / (P + R)``.

:class:`BoundaryF` streams over a dataset: per class it sums the four boundary pixel
counts over all images and computes P, R and F from the sums (dataset-level, like the
confusion matrix's IoU). A class with no boundary pixel in either map is not scored
(``nan``); one with boundary pixels in only one of them scores F = 0. The mean over images
of each image's F per class is kept too (:meth:`BoundaryF.mean_image_f`), the way Csurka
et al. average per image.

Ignore pixels (``target == ignore_index``) are neither inside nor outside any class: no
boundary pixel lies on them and the edge between a class and an ignore region is not a
boundary, in the ground truth or the prediction.

Matching is exact (integer ``dy**2 + dx**2 <= r**2``, the same set as dilating the other
map's boundary with the disk) and sparse: it works on the boundary pixels only, every
class at once, with no per-class pass over the image (see ``_within``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from masklab.metrics.semantic import (
    FloatArray,
    _class_arrays,
    _json_float,
    _nanmean,
    _ratio,
    _valid_pixels,
)

__all__ = ["BoundaryF", "BoundaryScore", "boundary_f", "boundary_pixels", "tolerance_px"]

DEFAULT_TOLERANCE = 0.0075  # fraction of the image diagonal (Csurka et al. 2013, bfscore)


class BoundaryScore(NamedTuple):
    """F-score, precision and recall of one boundary comparison."""

    f: float
    precision: float
    recall: float


def tolerance_px(size_hw: tuple[int, int], tolerance: float = DEFAULT_TOLERANCE) -> float:
    """The match radius in pixels: ``ceil(tolerance * diagonal)`` for a fraction
    (``tolerance < 1``), else ``tolerance`` itself.

    >>> tolerance_px((1024, 2048)), tolerance_px((480, 640), 0.008), tolerance_px((5, 5), 2)
    (18.0, 7.0, 2.0)
    """
    if not tolerance > 0:
        raise ValueError(f"tolerance must be positive, got {tolerance!r}")
    if tolerance < 1:
        return float(math.ceil(tolerance * math.hypot(size_hw[0], size_hw[1])))
    return float(tolerance)


def boundary_pixels(
    labels: npt.ArrayLike, *, ignore: npt.ArrayLike | None = None
) -> npt.NDArray[np.bool_]:
    """Pixels of a 2-D class map with a 4-neighbour of another class (both sides of every
    class edge); pixels of ``ignore`` (a bool mask) are never boundary and never make one.
    The boundary of class ``c`` is ``boundary_pixels(m) & (m == c)``.

    >>> boundary_pixels(np.array([[0, 0, 1, 1]])).astype(int).tolist()
    [[0, 1, 1, 0]]
    """
    m = np.asarray(labels)
    if m.ndim != 2:
        raise ValueError(f"a class map must be 2-D (h, w), got shape {m.shape}")
    ign = None if ignore is None else np.asarray(ignore, bool)
    out = np.zeros(m.shape, bool)
    for a, b, sa, sb in (
        (m[1:], m[:-1], np.s_[1:], np.s_[:-1]),
        (m[:, 1:], m[:, :-1], np.s_[:, 1:], np.s_[:, :-1]),
    ):
        edge = a != b
        if ign is not None:
            edge &= ~(ign[sa] | ign[sb])
        out[sa] |= edge
        out[sb] |= edge
    return out


Points = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]


def _within(
    query: Points, ref: Points, size_hw: tuple[int, int], radius_sq: int
) -> npt.NDArray[np.bool_]:
    """For each query point ``(y, x, class)``, whether a ``ref`` point of the same class
    lies within Euclidean distance ``sqrt(radius_sq)``.

    Exact and sparse: the disk is a stack of rows ``dy`` with half-widths
    ``isqrt(radius_sq - dy**2)``; each row is one binary search in the sorted keys
    ``(class, y, x)`` of the reference points, for all query points at once. Rows go
    outwards from ``dy = 0`` and a matched point leaves the search; a coarse occupancy
    grid (cells at least as wide as the radius) first drops points with no reference
    point of their class in the 3 x 3 cells around them.
    """
    qy, qx, qc = query
    ry, rx, rc = ref
    hit = np.zeros(qy.size, bool)
    if qy.size == 0 or ry.size == 0:
        return hit
    h, w = size_hw
    classes = np.unique(rc)  # compact class index: memory follows the classes present
    qk = np.searchsorted(classes, qc)
    known = classes[np.minimum(qk, classes.size - 1)] == qc
    rk = np.searchsorted(classes, rc)
    radius = math.isqrt(radius_sq)
    cell = max(radius, 16)
    occupied = np.zeros((classes.size, h // cell + 3, w // cell + 3), bool)
    occupied[rk, ry // cell + 1, rx // cell + 1] = True
    near = np.zeros_like(occupied)
    gh, gw = occupied.shape[1] - 2, occupied.shape[2] - 2
    for dy in range(3):
        for dx in range(3):
            near[:, 1:-1, 1:-1] |= occupied[:, dy : dy + gh, dx : dx + gw]
    active = np.flatnonzero(known)
    active = active[near[qk[active], qy[active] // cell + 1, qx[active] // cell + 1]]
    keys = np.sort((rk * h + ry) * w + rx)
    last = keys.size - 1
    for dy in [0, *(s * d for d in range(1, radius + 1) for s in (1, -1))]:
        if active.size == 0:
            break
        half = math.isqrt(radius_sq - dy * dy)
        yy = qy[active] + dy
        inside = (yy >= 0) & (yy < h)
        a, yy = active[inside], yy[inside]
        row = (qk[a] * h + yy) * w
        lo = row + np.maximum(qx[a] - half, 0)
        hi = row + np.minimum(qx[a] + half, w - 1)
        i = np.searchsorted(keys, lo)
        found = (i <= last) & (keys[np.minimum(i, last)] <= hi)
        hit[a[found]] = True
        active = active[~hit[active]]
    return hit


def _image_counts(
    pred: npt.NDArray[Any],
    target: npt.NDArray[Any],
    num_classes: int,
    ignore_index: int | None,
    radius: float,
) -> npt.NDArray[np.int64]:
    """``(4, K)`` counts of one image: predicted boundary px, matched ones, ground-truth
    boundary px, matched ones."""
    ign = None if ignore_index is None else target == ignore_index
    if ign is not None and not ign.any():
        ign = None
    size = (int(target.shape[0]), int(target.shape[1]))
    gy, gx = (v.astype(np.int64) for v in np.nonzero(boundary_pixels(target, ignore=ign)))
    py, px = (v.astype(np.int64) for v in np.nonzero(boundary_pixels(pred, ignore=ign)))
    gt = (gy, gx, target[gy, gx].astype(np.int64))
    pr = (py, px, pred[py, px].astype(np.int64))
    radius_sq = math.floor(radius * radius + 1e-9)
    counts = np.zeros((4, num_classes), np.int64)
    counts[0] = np.bincount(pr[2], minlength=num_classes)
    counts[1] = np.bincount(pr[2][_within(pr, gt, size, radius_sq)], minlength=num_classes)
    counts[2] = np.bincount(gt[2], minlength=num_classes)
    counts[3] = np.bincount(gt[2][_within(gt, pr, size, radius_sq)], minlength=num_classes)
    return counts


def _f_from_counts(counts: npt.NDArray[np.int64]) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per-class (F, precision, recall) from ``(4, K)`` counts: nan where a class has no
    boundary in either map, F = 0 where it has one in only one of them."""
    precision = _ratio(counts[1], counts[0])
    recall = _ratio(counts[3], counts[2])
    f = np.full(counts.shape[1], np.nan)
    f[(counts[0] > 0) | (counts[2] > 0)] = 0.0
    both = (counts[0] > 0) & (counts[2] > 0)
    pr = _ratio(2 * precision * recall, precision + recall)
    f[both] = np.nan_to_num(pr[both], nan=0.0)
    return f, precision, recall


def boundary_f(
    pred: npt.ArrayLike, target: npt.ArrayLike, *, tolerance: float = DEFAULT_TOLERANCE
) -> BoundaryScore:
    """Boundary F-score of one binary mask against another (DAVIS's F for one object).

    Empty boundaries follow DAVIS: none in either mask scores 1; none in only one of them
    scores F = 0 (precision 1 and recall 0 for an empty prediction, the reverse for an
    empty target).

    >>> gt = np.zeros((10, 10), np.uint8); gt[2:6, 2:6] = 1
    >>> boundary_f(gt, gt)
    BoundaryScore(f=1.0, precision=1.0, recall=1.0)
    """
    p, t = _class_arrays(pred, target)
    if t.ndim != 2:
        raise ValueError(f"masks must be 2-D (h, w), got shape {t.shape}")
    counts = _image_counts(
        (p != 0).view(np.uint8), (t != 0).view(np.uint8), 2, None, tolerance_px(t.shape, tolerance)
    )[:, 1]
    if counts[0] == 0 or counts[2] == 0:
        both_empty = counts[0] == counts[2] == 0
        return BoundaryScore(
            1.0 if both_empty else 0.0,
            1.0 if counts[0] == 0 else 0.0,
            1.0 if counts[2] == 0 else 0.0,
        )
    f, precision, recall = _f_from_counts(counts[:, None])
    return BoundaryScore(float(f[0]), float(precision[0]), float(recall[0]))


class BoundaryF:
    """Per-class boundary F-score streamed over a dataset (see the module docstring).

    >>> bf = BoundaryF(2, ignore_index=None, tolerance=1)
    >>> gt = np.zeros((8, 8), int); gt[2:6, 2:6] = 1
    >>> bf.update(np.roll(gt, 1, axis=1), gt)  # the square shifted one pixel right
    >>> bf.f_score().round(3).tolist()
    [1.0, 1.0]
    """

    def __init__(
        self,
        num_classes: int,
        *,
        ignore_index: int | None = 255,
        tolerance: float = DEFAULT_TOLERANCE,
        names: Sequence[str] | None = None,
    ) -> None:
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes!r}")
        if names is not None and len(names) != num_classes:
            raise ValueError(f"{len(names)} names given for {num_classes} classes; give one each")
        tolerance_px((1, 1), tolerance)  # validates
        self.num_classes = int(num_classes)
        self.ignore_index = None if ignore_index is None else int(ignore_index)
        self.tolerance = float(tolerance)
        self.names: tuple[str, ...] = (
            tuple(names) if names is not None else tuple(str(c) for c in range(num_classes))
        )
        self._counts = np.zeros((4, self.num_classes), np.int64)
        self._image_f_sum = np.zeros(self.num_classes, np.float64)
        self._image_f_count = np.zeros(self.num_classes, np.int64)

    def __repr__(self) -> str:
        return (
            f"BoundaryF(num_classes={self.num_classes}, ignore_index={self.ignore_index}, "
            f"tolerance={self.tolerance})"
        )

    def update(self, pred: npt.ArrayLike, target: npt.ArrayLike) -> None:
        """Add one image ``(H, W)`` or a batch ``(B, H, W)``.

        Raises:
            LabelMapError: a target (other than the ignore index) or a prediction at a
                counted pixel is outside ``0 .. K-1``.
            MaskFormatError: the shapes differ.
        """
        p, t = _class_arrays(pred, target)
        if t.ndim not in (2, 3):
            raise ValueError(f"expected (H, W) or (B, H, W) class maps, got shape {t.shape}")
        _valid_pixels(p, t, self.num_classes, self.ignore_index)
        if t.ndim == 2:
            p, t = p[None], t[None]
        radius = tolerance_px((t.shape[1], t.shape[2]), self.tolerance)
        for pi, ti in zip(p, t, strict=True):
            counts = _image_counts(pi, ti, self.num_classes, self.ignore_index, radius)
            self._counts += counts
            f, _, _ = _f_from_counts(counts)
            scored = ~np.isnan(f)
            self._image_f_sum[scored] += f[scored]
            self._image_f_count += scored

    def merge(self, other: BoundaryF) -> BoundaryF:
        """Add another accumulator's counts in place; returns self."""
        if not isinstance(other, BoundaryF):
            raise TypeError(f"can only merge a BoundaryF, got {type(other).__name__}")
        mine = (self.num_classes, self.ignore_index, self.tolerance)
        theirs = (other.num_classes, other.ignore_index, other.tolerance)
        if mine != theirs:
            raise ValueError(
                f"cannot merge BoundaryF with (num_classes, ignore_index, tolerance) = {theirs} "
                f"into one with {mine}; build both with the same settings"
            )
        self._counts += other._counts
        self._image_f_sum += other._image_f_sum
        self._image_f_count += other._image_f_count
        return self

    def reset(self) -> None:
        """Forget every count."""
        self._counts[:] = 0
        self._image_f_sum[:] = 0
        self._image_f_count[:] = 0

    @property
    def counts(self) -> npt.NDArray[np.int64]:
        """``(4, K)`` sums: predicted boundary px, matched predicted px, ground-truth
        boundary px, matched ground-truth px (read-only)."""
        view = self._counts.view()
        view.flags.writeable = False
        return view

    def precision(self) -> FloatArray:
        """Per class, matched over predicted boundary pixels (nan: no predicted boundary)."""
        return _f_from_counts(self._counts)[1]

    def recall(self) -> FloatArray:
        """Per class, matched over ground-truth boundary pixels (nan: no GT boundary)."""
        return _f_from_counts(self._counts)[2]

    def f_score(self) -> FloatArray:
        """Per-class F from the dataset's sums (nan: no boundary in either map)."""
        return _f_from_counts(self._counts)[0]

    def mean_f(self) -> float:
        """Mean of :meth:`f_score` over the scored classes."""
        return _nanmean(self.f_score())

    def mean_image_f(self) -> FloatArray:
        """Per class, the mean of its per-image F over the images where it was scored."""
        return _ratio(self._image_f_sum, self._image_f_count)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary; nan -> None."""
        f, precision, recall = _f_from_counts(self._counts)
        image_f = self.mean_image_f()
        return {
            "num_classes": self.num_classes,
            "ignore_index": self.ignore_index,
            "tolerance": self.tolerance,
            "mean_f": _json_float(self.mean_f()),
            "classes": [
                {
                    "id": c,
                    "name": self.names[c],
                    "f": _json_float(f[c]),
                    "precision": _json_float(precision[c]),
                    "recall": _json_float(recall[c]),
                    "mean_image_f": _json_float(image_f[c]),
                    "pred_boundary_px": int(self._counts[0, c]),
                    "gt_boundary_px": int(self._counts[2, c]),
                }
                for c in range(self.num_classes)
            ],
        }
