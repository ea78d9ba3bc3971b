"""Semantic segmentation metrics from a streaming confusion matrix.

:class:`ConfusionMatrix` counts, over every pixel of every image it is given, how often
ground-truth class ``i`` was predicted as class ``j`` (``matrix[i, j]``: rows are ground
truth, columns prediction). Every metric is read from those sums:

* ``iou[c] = TP / (TP + FP + FN)`` (Jaccard), ``nan`` for a class absent from both the
  ground truth and the prediction; ``miou`` is the mean over the classes that have one.
* ``dice[c] = 2 TP / (2 TP + FP + FN)`` (F1), ``nan`` likewise.
* ``pixel_accuracy = trace / total``; ``class_accuracy[c] = TP / (TP + FN)`` (recall,
  ``nan`` where the class has no ground-truth pixel); ``mean_accuracy`` their mean.

Conventions:

* Class ids are ``0 .. K-1``. A pixel whose **target** is ``ignore_index`` is skipped,
  whatever was predicted there (``ignore_index=None``: nothing is skipped).
* A target value outside ``0 .. K-1`` that is not the ignore index raises
  :class:`~masklab.errors.LabelMapError` naming the value: it is an unmapped dataset id
  (map it with ``TrainIds.lut``), never counted silently. So does a **prediction** outside
  ``0 .. K-1`` at a counted pixel: a model predicts class ids (an argmax over the class
  axis); counting 255 as "wrong" would hide a mapping bug behind a lower score.
* ``update`` takes one image ``(H, W)`` or a batch ``(B, H, W)`` (any shape, in fact;
  both arrays the same), of any integer (or bool) dtype, from anything ``np.asarray``
  takes: NumPy arrays, lists, torch CPU tensors.

**Dataset-level vs per-image.** The standard (Pascal VOC, Cityscapes, ADE20K,
mmsegmentation) is dataset-level: IoU from the pixel counts summed over the whole dataset,
which is what :meth:`ConfusionMatrix.iou` and :meth:`~ConfusionMatrix.miou` return. The
mean of per-image IoUs weighs a 10-pixel object in one image like a 10 000-pixel one in
another; it is available when asked, with ``per_image=True``:
:meth:`~ConfusionMatrix.mean_image_iou` (per class, the mean over the images where the
class is in the ground truth or the prediction) and :meth:`~ConfusionMatrix.mean_image_miou`
(the mean over images of each image's mIoU). With ``per_image=True`` a 3-D input is a batch
of images along its first axis; any other input is one image. Example: class 1 has one
ground-truth pixel in image A, missed, and 99 in image B, all found: dataset IoU is
99/100 = 0.99, the mean of per-image IoUs (0 and 1) is 0.5.

>>> cm = ConfusionMatrix(3, ignore_index=255)
>>> cm.update(np.array([[0, 1], [2, 2]]), np.array([[0, 1], [1, 255]]))
>>> cm.matrix.tolist()
[[1, 0, 0], [0, 1, 1], [0, 0, 0]]
>>> cm.iou().tolist(), cm.pixel_accuracy()
([1.0, 0.5, 0.0], 0.6666666666666666)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from masklab.errors import LabelMapError, MaskFormatError

__all__ = ["ConfusionMatrix"]

FloatArray = npt.NDArray[np.float64]


def _ratio(num: npt.ArrayLike, den: npt.ArrayLike) -> FloatArray:
    """``num / den`` elementwise as float64, ``nan`` where ``den == 0`` (no warning)."""
    n = np.asarray(num, np.float64)
    d = np.asarray(den, np.float64)
    out = np.full(np.broadcast(n, d).shape, np.nan)
    np.divide(n, d, out=out, where=d != 0)
    return out


def _nanmean(values: FloatArray) -> float:
    """Mean of the non-nan values; ``nan`` when there are none (no warning)."""
    v = np.asarray(values, np.float64)
    keep = ~np.isnan(v)
    return float(v[keep].mean()) if keep.any() else float("nan")


def _json_float(value: float) -> float | None:
    """``value`` as a JSON number, ``None`` for nan."""
    return None if np.isnan(value) else float(value)


def _class_arrays(
    pred: npt.ArrayLike, target: npt.ArrayLike
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """Prediction and target as integer arrays of one shape (MaskFormatError if they
    differ, TypeError for a non-integer dtype)."""
    p = np.asarray(pred)
    t = np.asarray(target)
    for name, a in (("prediction", p), ("target", t)):
        if a.dtype != np.bool_ and not np.issubdtype(a.dtype, np.integer):
            raise TypeError(
                f"{name} must hold integer class ids, got dtype {a.dtype}; take the argmax "
                "over the class axis (scores) or cast label maps to an integer type"
            )
    if p.shape != t.shape:
        raise MaskFormatError(
            f"prediction has shape {p.shape} but target has {t.shape}; they must match "
            "pixel for pixel (resize the prediction to the label's size, nearest)"
        )
    return p, t


def _check_range(values: npt.NDArray[Any], num_classes: int, name: str, ignore: int | None) -> None:
    """LabelMapError naming the first value of ``values`` outside ``0 .. K-1``."""
    if values.size == 0:
        return
    lo, hi = int(values.min()), int(values.max())
    if lo >= 0 and hi < num_classes:
        return
    bad = values[(values < 0) | (values >= num_classes)]
    first = int(bad[0])
    n = int(bad.size)
    if name == "target":
        fix = (
            f"map dataset ids to 0..{num_classes - 1} (TrainIds.lut) or to the ignore index, "
            "or raise num_classes"
        )
        if ignore is not None:
            fix += f" (ignore_index is {ignore})"
        else:
            fix += " (ignore_index is None)"
    else:
        fix = "predictions must be class ids (the argmax over the class axis)"
    raise LabelMapError(
        f"{name} holds class id {first} ({n} counted pixel(s) outside 0..{num_classes - 1}, "
        f"values {lo}..{hi}); {fix}"
    )


def _valid_pixels(
    pred: npt.NDArray[Any], target: npt.NDArray[Any], num_classes: int, ignore: int | None
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """The flattened (prediction, target) values of the counted pixels, checked."""
    t = target.reshape(-1)
    p = pred.reshape(-1)
    if ignore is not None:
        keep = t != ignore
        if not keep.all():
            t, p = t[keep], p[keep]
    _check_range(t, num_classes, "target", ignore)
    _check_range(p, num_classes, "prediction", ignore)
    return p, t


class ConfusionMatrix:
    """Pixel confusion matrix over a dataset: ``matrix[gt, pred]``, ignore index skipped.

    ``names`` label the classes in :meth:`to_dict`. ``per_image=True`` also keeps, per
    class, the sum and count of per-image IoUs (constant memory) for
    :meth:`mean_image_iou` and :meth:`mean_image_miou`.

    >>> cm = ConfusionMatrix(2, ignore_index=None)
    >>> cm.update([[0, 0, 1, 1]], [[0, 1, 1, 1]])
    >>> cm.matrix.tolist(), cm.iou().tolist(), round(cm.miou(), 4)
    ([[1, 0], [1, 2]], [0.5, 0.6666666666666666], 0.5833)
    """

    def __init__(
        self,
        num_classes: int,
        *,
        ignore_index: int | None = 255,
        names: Sequence[str] | None = None,
        per_image: bool = False,
    ) -> None:
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes!r}")
        if names is not None and len(names) != num_classes:
            raise ValueError(f"{len(names)} names given for {num_classes} classes; give one each")
        self.num_classes = int(num_classes)
        self.ignore_index = None if ignore_index is None else int(ignore_index)
        self.names: tuple[str, ...] = (
            tuple(names) if names is not None else tuple(str(c) for c in range(num_classes))
        )
        self.per_image = per_image
        k = self.num_classes
        self._matrix = np.zeros((k, k), np.int64)
        self._image_iou_sum = np.zeros(k, np.float64)
        self._image_iou_count = np.zeros(k, np.int64)
        self._image_miou_sum = 0.0
        self._images = 0

    def __repr__(self) -> str:
        return (
            f"ConfusionMatrix(num_classes={self.num_classes}, ignore_index={self.ignore_index}, "
            f"pixels={self.total})"
        )

    # ---- accumulation

    def update(self, pred: npt.ArrayLike, target: npt.ArrayLike) -> None:
        """Count one image ``(H, W)`` or a batch ``(B, H, W)`` of predictions against targets.

        Raises:
            LabelMapError: a target (other than the ignore index) or a prediction at a
                counted pixel is outside ``0 .. K-1``.
            MaskFormatError: the shapes differ.
        """
        p, t = _class_arrays(pred, target)
        k = self.num_classes
        if not self.per_image:
            pv, tv = _valid_pixels(p, t, k, self.ignore_index)
            idx = tv.astype(np.intp) * k
            idx += pv.astype(np.intp, copy=False)
            self._matrix += np.bincount(idx, minlength=k * k).reshape(k, k)
            return
        n = t.shape[0] if t.ndim == 3 else 1
        t2 = t.reshape(n, -1)
        p2 = p.reshape(n, -1)
        image = np.broadcast_to(np.arange(n, dtype=np.intp)[:, None], t2.shape).reshape(-1)
        tv, pv = t2.reshape(-1), p2.reshape(-1)
        if self.ignore_index is not None:
            keep = tv != self.ignore_index
            tv, pv, image = tv[keep], pv[keep], image[keep]
        _check_range(tv, k, "target", self.ignore_index)
        _check_range(pv, k, "prediction", self.ignore_index)
        idx = (image * k + tv.astype(np.intp, copy=False)) * k + pv.astype(np.intp, copy=False)
        per = np.bincount(idx, minlength=n * k * k).reshape(n, k, k).astype(np.int64)
        self._matrix += per.sum(axis=0)
        inter = np.diagonal(per, axis1=1, axis2=2)
        union = per.sum(axis=1) + per.sum(axis=2) - inter
        iou = _ratio(inter, union)  # (n, k), nan where the class is in neither map
        defined = ~np.isnan(iou)
        self._image_iou_sum += np.where(defined, iou, 0.0).sum(axis=0)
        self._image_iou_count += defined.sum(axis=0)
        n_defined = defined.sum(axis=1)
        scored = n_defined > 0  # images with at least one counted pixel
        image_miou = np.where(defined, iou, 0.0).sum(axis=1)[scored] / n_defined[scored]
        self._image_miou_sum += float(image_miou.sum())
        self._images += int(scored.sum())

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add another matrix's counts (e.g. from another worker) in place; returns self."""
        if not isinstance(other, ConfusionMatrix):
            raise TypeError(f"can only merge a ConfusionMatrix, got {type(other).__name__}")
        mine = (self.num_classes, self.ignore_index, self.per_image)
        theirs = (other.num_classes, other.ignore_index, other.per_image)
        if mine != theirs:
            raise ValueError(
                f"cannot merge a matrix with (num_classes, ignore_index, per_image) = {theirs} "
                f"into one with {mine}; build both with the same settings"
            )
        self._matrix += other._matrix
        self._image_iou_sum += other._image_iou_sum
        self._image_iou_count += other._image_iou_count
        self._image_miou_sum += other._image_miou_sum
        self._images += other._images
        return self

    def reset(self) -> None:
        """Forget every count."""
        self._matrix[:] = 0
        self._image_iou_sum[:] = 0
        self._image_iou_count[:] = 0
        self._image_miou_sum = 0.0
        self._images = 0

    # ---- counts

    @property
    def matrix(self) -> npt.NDArray[np.int64]:
        """``(K, K)`` int64 counts, rows ground truth, columns prediction (read-only)."""
        view = self._matrix.view()
        view.flags.writeable = False
        return view

    @property
    def total(self) -> int:
        """Pixels counted."""
        return int(self._matrix.sum())

    @property
    def num_images(self) -> int:
        """Images with at least one counted pixel (kept with ``per_image=True`` only)."""
        return self._images

    def _parts(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        m = self._matrix
        tp = np.diagonal(m).astype(np.float64)
        return tp, m.sum(axis=1) - tp, m.sum(axis=0) - tp  # tp, fn, fp

    # ---- metrics

    def iou(self) -> FloatArray:
        """Per-class IoU over the dataset; ``nan`` where a class is in neither map."""
        tp, fn, fp = self._parts()
        return _ratio(tp, tp + fn + fp)

    def miou(self) -> float:
        """Mean IoU over the classes that have one (dataset-level)."""
        return _nanmean(self.iou())

    def dice(self) -> FloatArray:
        """Per-class Dice (F1) over the dataset; ``nan`` where a class is in neither map."""
        tp, fn, fp = self._parts()
        return _ratio(2 * tp, 2 * tp + fn + fp)

    def mean_dice(self) -> float:
        """Mean Dice over the classes that have one."""
        return _nanmean(self.dice())

    def pixel_accuracy(self) -> float:
        """Correct pixels over counted pixels (``nan`` before any)."""
        return float(_ratio(np.trace(self._matrix), self._matrix.sum()))

    def class_accuracy(self) -> FloatArray:
        """Per-class recall ``TP / (TP + FN)``; ``nan`` where the class has no GT pixel."""
        tp, fn, _ = self._parts()
        return _ratio(tp, tp + fn)

    def mean_accuracy(self) -> float:
        """Mean of :meth:`class_accuracy` over classes present in the ground truth."""
        return _nanmean(self.class_accuracy())

    def _need_per_image(self) -> None:
        if not self.per_image:
            raise ValueError(
                "per-image IoUs were not kept; build ConfusionMatrix(..., per_image=True)"
            )

    def mean_image_iou(self) -> FloatArray:
        """Per class, the mean of its per-image IoUs over the images where it is in the
        ground truth or the prediction (``per_image=True`` only)."""
        self._need_per_image()
        return _ratio(self._image_iou_sum, self._image_iou_count)

    def mean_image_miou(self) -> float:
        """The mean over images of each image's mIoU (``per_image=True`` only)."""
        self._need_per_image()
        return float(_ratio(self._image_miou_sum, self._images))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: overall metrics, per-class rows, the matrix; nan -> None."""
        iou, dice, acc = self.iou(), self.dice(), self.class_accuracy()
        gt_px = self._matrix.sum(axis=1)
        pred_px = self._matrix.sum(axis=0)
        image_iou = self.mean_image_iou() if self.per_image else None
        classes = []
        for c in range(self.num_classes):
            row: dict[str, Any] = {
                "id": c,
                "name": self.names[c],
                "iou": _json_float(iou[c]),
                "dice": _json_float(dice[c]),
                "accuracy": _json_float(acc[c]),
                "gt_px": int(gt_px[c]),
                "pred_px": int(pred_px[c]),
            }
            if image_iou is not None:
                row["mean_image_iou"] = _json_float(image_iou[c])
            classes.append(row)
        out: dict[str, Any] = {
            "num_classes": self.num_classes,
            "ignore_index": self.ignore_index,
            "pixels": self.total,
            "pixel_accuracy": _json_float(self.pixel_accuracy()),
            "mean_accuracy": _json_float(self.mean_accuracy()),
            "miou": _json_float(self.miou()),
            "mean_dice": _json_float(self.mean_dice()),
        }
        if self.per_image:
            out["images"] = self._images
            out["mean_image_miou"] = _json_float(self.mean_image_miou())
        out["classes"] = classes
        out["matrix"] = self._matrix.tolist()
        return out
