"""Batch functions for your own ``map_batches`` over sample rows.

Each takes a block of sample rows (``batch_format="pyarrow"``; the columns of
:mod:`masklab.ray.arrow`) or, for :func:`encode`, a NumPy batch, and returns a dict of
NumPy arrays: ``id`` plus what it computed, one entry per row. Options are keyword-only;
bind them with :func:`functools.partial`::

    ds.map_batches(batches.decode, batch_format="pyarrow")
    ds.map_batches(partial(batches.class_maps, labels=lm), batch_format="pyarrow")

Ground truth is the row's instances (``rle``, ``iscrowd``, ...); predictions for
:func:`iou` and :func:`sample_metrics` are the same columns under a prefix (``pred_rle``,
``pred_mask_h``, ``pred_mask_w``, ``pred_score``), e.g. after joining a results dataset.
Every mask is computed with :mod:`masklab.core` (COCO-exact rasterisation, COCO's crowd
rule for IoU), a block at a time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from masklab.core import polygon, rle
from masklab.core.labels import LabelMap
from masklab.ray.arrow import _flat, instance_rles, to_samples
from masklab.training import targets

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["class_maps", "decode", "encode", "iou", "rasterise", "sample_metrics"]

Batch = dict[str, npt.NDArray[Any]]


def _objects(values: list[Any]) -> npt.NDArray[np.object_]:
    """A 1-d object array of ``values`` (never stacked into one n-d array)."""
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _ids(table: pa.Table) -> npt.NDArray[np.object_]:
    return _objects(table.column("id").to_pylist())


def decode(batch: pa.Table) -> Batch:
    """``masks``: per row a ``(n, h, w)`` uint8 stack of its instance masks (``(0, h, w)``
    for a row without instances)."""
    masks, offsets = instance_rles(batch)
    hs, ws = batch.column("h").to_pylist(), batch.column("w").to_pylist()
    out = []
    for r in range(batch.num_rows):
        mine = masks[offsets[r] : offsets[r + 1]]
        out.append(rle.decode_batch(mine) if mine else np.zeros((0, hs[r], ws[r]), np.uint8))
    return {"id": _ids(batch), "masks": _objects(out)}


def encode(batch: Mapping[str, npt.NDArray[Any]]) -> Batch:
    """The inverse of :func:`decode`: from ``masks`` (per row an ``(n, h, w)`` stack of
    0/1 masks, any integer or bool dtype) the columns ``rle`` (compressed COCO strings),
    ``mask_h``, ``mask_w`` and ``area``."""
    strings, hs, ws, areas = [], [], [], []
    for stack in batch["masks"]:
        arr = np.asarray(stack)
        rles = rle.encode_batch(arr) if len(arr) else []
        strings.append([d["counts"] for d in rle.to_coco_batch(rles)])
        hs.append([arr.shape[1]] * len(rles))
        ws.append([arr.shape[2]] * len(rles))
        areas.append([rle.area(r) for r in rles])
    return {
        "id": np.asarray(batch["id"], dtype=object),
        "rle": _objects(strings),
        "mask_h": _objects(hs),
        "mask_w": _objects(ws),
        "area": _objects(areas),
    }


def rasterise(batch: pa.Table) -> Batch:
    """Masks from the ``polygons`` column, COCO-exact (pycocotools' ``frPyObjects`` +
    ``merge``): ``rle`` per row a list of compressed strings (an instance without polygons
    keeps its mask), ``area`` and ``bbox`` (COCO ``xywh``) of each."""
    polys, offsets = _flat(batch, "polygons")
    masks, _ = instance_rles(batch)
    hs, ws = batch.column("h").to_pylist(), batch.column("w").to_pylist()
    strings, areas, boxes = [], [], []
    for r in range(batch.num_rows):
        lo, hi = offsets[r], offsets[r + 1]
        mine = list(masks[lo:hi])
        drawn = [k for k in range(lo, hi) if polys[k] is not None]
        if drawn:
            for k, m in zip(
                drawn, polygon.to_rle_batch([polys[k] for k in drawn], hs[r], ws[r]), strict=True
            ):
                mine[k - lo] = m
        area, box = rle.area_bbox_batch(mine) if mine else (np.zeros(0), np.zeros((0, 4)))
        strings.append([d["counts"] for d in rle.to_coco_batch(mine)])
        areas.append(np.asarray(area, np.int64))
        boxes.append(np.asarray(box, np.float64).reshape(-1, 4))
    return {
        "id": _ids(batch),
        "rle": _objects(strings),
        "area": _objects(areas),
        "bbox": _objects(boxes),
    }


def class_maps(
    batch: pa.Table,
    *,
    labels: LabelMap,
    ignore_index: int = 255,
    crowd: targets.CrowdPixels = "ignore",
) -> Batch:
    """``class_map``: per row the int64 ``(h, w)`` training target of
    :func:`masklab.training.targets.class_map` (train ids of ``labels``, crowd regions and
    unknown classes ``ignore_index``)."""
    tid = targets.TrainIds.from_label_map(labels, ignore_index=ignore_index)
    maps = [targets.class_map(s, train_ids=tid, crowd=crowd) for s in to_samples(batch)]
    return {"id": _ids(batch), "class_map": _objects(maps)}


def _pred_rles(batch: pa.Table, prefix: str) -> tuple[list[rle.RLE], list[int]]:
    counts, offsets = _flat(batch, f"{prefix}rle")
    hs, _ = _flat(batch, f"{prefix}mask_h")
    ws, _ = _flat(batch, f"{prefix}mask_w")
    masks = rle.from_coco_batch(
        [{"size": [h, w], "counts": c} for c, h, w in zip(counts, hs, ws, strict=True)]
    )
    return masks, offsets


def _ious(batch: pa.Table, prefix: str) -> list[npt.NDArray[np.float64]]:
    gts, g_off = instance_rles(batch)
    dts, d_off = _pred_rles(batch, prefix)
    crowd, _ = _flat(batch, "iscrowd")
    return [
        rle.iou(
            dts[d_off[r] : d_off[r + 1]],
            gts[g_off[r] : g_off[r + 1]],
            crowd[g_off[r] : g_off[r + 1]],
        )
        for r in range(batch.num_rows)
    ]


def iou(batch: pa.Table, *, prefix: str = "pred_") -> Batch:
    """``iou``: per row the ``(n_pred, n_gt)`` mask IoU matrix of its predictions
    (columns ``{prefix}rle``, ``{prefix}mask_h``, ``{prefix}mask_w``) against its
    instances, COCO's crowd rule included (:func:`masklab.core.rle.iou`)."""
    return {"id": _ids(batch), "iou": _objects(_ious(batch, prefix))}


def sample_metrics(batch: pa.Table, *, prefix: str = "pred_", threshold: float = 0.5) -> Batch:
    """Per row: ``tp``, ``fp``, ``fn``, ``precision``, ``recall`` and ``mean_iou`` (of
    the matched pairs; NaN without any) at IoU ``threshold``.

    Predictions are matched greedily in decreasing ``{prefix}score`` (ties: given order;
    no scores: given order), each to the unmatched ground truth it overlaps most, as
    COCO's evaluation does at one threshold: a prediction matching only a crowd region is
    neither a true nor a false positive, and crowd regions are never missed.
    """
    ious = _ious(batch, prefix)
    crowd, g_off = _flat(batch, "iscrowd")
    scores, s_off = (
        _flat(batch, f"{prefix}score")
        if f"{prefix}score" in batch.column_names
        else ([], [0] * (batch.num_rows + 1))
    )
    cols: dict[str, list[float]] = {k: [] for k in ("tp", "fp", "fn", "mean_iou")}
    for r, m in enumerate(ious):
        is_crowd = np.asarray(crowd[g_off[r] : g_off[r + 1]], bool)
        score = scores[s_off[r] : s_off[r + 1]]
        order = (
            np.argsort([-(s if s is not None else 0.0) for s in score], kind="stable")
            if len(score) == m.shape[0]
            else np.arange(m.shape[0])
        )
        taken = np.zeros(m.shape[1], bool)
        tp = fp = 0
        matched: list[float] = []
        for d in order:
            free = np.where(~taken & ~is_crowd, m[d], -1.0)
            best = int(np.argmax(free)) if free.size else -1
            if best >= 0 and free[best] >= threshold:
                taken[best] = True
                tp += 1
                matched.append(float(free[best]))
            elif not (m[d, is_crowd] >= threshold).any():
                fp += 1
        cols["tp"].append(tp)
        cols["fp"].append(fp)
        cols["fn"].append(int((~is_crowd).sum()) - tp)
        cols["mean_iou"].append(float(np.mean(matched)) if matched else float("nan"))
    tp_a = np.asarray(cols["tp"], np.int64)
    fp_a = np.asarray(cols["fp"], np.int64)
    fn_a = np.asarray(cols["fn"], np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp_a + fp_a > 0, tp_a / (tp_a + fp_a), np.nan)
        recall = np.where(tp_a + fn_a > 0, tp_a / (tp_a + fn_a), np.nan)
    return {
        "id": _ids(batch),
        "tp": tp_a,
        "fp": fp_a,
        "fn": fn_a,
        "precision": precision,
        "recall": recall,
        "mean_iou": np.asarray(cols["mean_iou"], np.float64),
    }
