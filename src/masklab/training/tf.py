"""A ``tf.data`` pipeline over TFRecord files of the TensorFlow Object Detection API.

:func:`dataset` reads the records with ``tf.data.TFRecordDataset``, parses the TF OD API
features with ``tf.io.parse_single_example`` and decodes them with TensorFlow ops into the
targets :mod:`masklab.training.targets` builds from the same records read by masklab's
``tfrecord`` reader (``reference/formats.md`` §5):

=============  ============================================================================
``task``       element
=============  ============================================================================
instance       ``(image, target)``: ``image`` uint8 ``(H, W, 3)``; ``target`` a dict of
               ``boxes`` float32 ``(N, 4)`` xyxy in pixels (of the mask, as
               :func:`~masklab.training.targets.instance_targets`: the records' normalised
               boxes are not read), ``labels`` int64 train ids (objects >= 1), ``masks``
               uint8 ``(N, H, W)`` 0/1, ``area`` float32 (mask pixels), ``iscrowd`` int64
semantic       ``(image, class_map)``: int64 ``(H, W)`` train ids, the objects painted in
               record order (a later one keeps a contested pixel) on the background,
               crowd objects ``ignore_index``, as :func:`~masklab.training.targets.class_map`
=============  ============================================================================

As in masklab's targets, crowd objects, objects of ignored or stuff classes and empty masks
are left out of instance targets. As in masklab's reader, an object without a mask
(``image/object/mask`` shorter than the labels) or of a class the label map does not know
is left out. Masks are PNG strings (``PNG_MASKS``) or one float list (``NUMERICAL_MASKS``);
a pixel is foreground where its value is ``> 0``. Objects need ``image/object/class/label``
ids (masklab's reader also looks up objects that carry only a ``class/text``; this pipeline
does not). The elements are not batched: object counts vary, so use
``padded_batch`` or ``ragged_batch``.

TensorFlow is imported when :func:`dataset` is first called (``pip install
"masklab[tf]"``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from masklab.core.labels import LabelMap
from masklab.errors import FormatError
from masklab.formats import tfrecord
from masklab.training.targets import TrainIds

__all__ = ["MaskType", "TfTask", "dataset"]

TfTask = Literal["instance", "semantic"]
MaskType = Literal["png", "numerical"]
_PEEK = 64  # records looked at to tell PNG masks from numerical ones


def _tf() -> Any:
    try:
        import tensorflow as tf
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            'masklab.tf needs TensorFlow: pip install "masklab[tf]" (or tensorflow-cpu)'
        ) from err
    return tf


def _files(paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not items:
        raise FormatError("dataset() needs at least one TFRecord file or folder")
    files: list[Path] = []
    for p in items:
        files += tfrecord.Reader(p).files  # a file, or a folder's record files (or FormatError)
    return files


def _compression(files: Sequence[Path]) -> str:
    kinds = set()
    for f in files:
        with f.open("rb") as stream:
            kinds.add("GZIP" if stream.read(2) == b"\x1f\x8b" else "")
    if len(kinds) > 1:
        raise FormatError(
            f"{files[0].parent}: some TFRecord files are GZIP-compressed and some are not; "
            "read them in two dataset() calls"
        )
    return kinds.pop()


def _mask_type(files: Sequence[Path], compression: str) -> MaskType:
    """PNG or numerical masks: the kind of the first non-empty ``image/object/mask``."""
    tf = _tf()
    for raw in tf.data.TFRecordDataset([str(f) for f in files], compression).take(_PEEK):
        example = tf.train.Example.FromString(raw.numpy())
        feature = example.features.feature.get(tfrecord.MASK)
        if feature is None:
            continue
        if len(feature.float_list.value):
            return "numerical"
        if len(feature.bytes_list.value):
            return "png"
    return "png"


def dataset(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    task: TfTask = "instance",
    label_map: LabelMap | None = None,
    train_ids: TrainIds | None = None,
    ignore_index: int = 255,
    mask_type: MaskType | None = None,
    num_parallel_calls: int | None = None,
) -> Any:
    """A ``tf.data.Dataset`` of ``(image, target)`` from TFRecord files or folders.

    ``label_map`` defaults to the folder's ``label_map.pbtxt`` (else the classes named in
    the records), as masklab's reader finds it; ``train_ids`` to
    ``TrainIds.from_label_map(label_map, ignore_index=...)``. ``mask_type`` is detected
    from the first records with masks when not given. ``num_parallel_calls`` defaults to
    ``tf.data.AUTOTUNE``.

    Raises:
        FormatError: no TFRecord file at a path, or GZIP and plain files mixed.
    """
    tf = _tf()
    if task not in ("instance", "semantic"):
        raise ValueError(f"task must be 'instance' or 'semantic', got {task!r}")
    files = _files(paths)
    compression = _compression(files)
    labels = label_map
    if labels is None:  # as masklab's reader: the label map file, else the records' names
        labels = tfrecord.Reader(files[0]).labels
        for f in files[1:]:
            labels = labels.merged(tfrecord.Reader(f).labels)
    tid = (
        train_ids
        if train_ids is not None
        else TrainIds.from_label_map(labels, ignore_index=ignore_index)
    )
    kind = mask_type or _mask_type(files, compression)
    if kind not in ("png", "numerical"):
        raise ValueError(f"mask_type must be 'png' or 'numerical', got {kind!r}")
    decode = _Decoder(tf, tid, labels, kind, task)
    calls = tf.data.AUTOTUNE if num_parallel_calls is None else num_parallel_calls
    records = tf.data.TFRecordDataset([str(f) for f in files], compression_type=compression)
    return records.map(decode, num_parallel_calls=calls, deterministic=True)


class _Decoder:
    """One record -> ``(image, target)`` with TensorFlow ops (runs inside ``map``)."""

    def __init__(
        self, tf: Any, tid: TrainIds, labels: LabelMap, mask_type: MaskType, task: TfTask
    ) -> None:
        self.tf = tf
        self.task = task
        self.mask_type = mask_type
        self.ignore = int(tid.ignore_index)
        self.background = self.ignore if tid.background is None else int(tid.background)
        known = np.zeros(tid.lut.size, bool)
        for lab in labels:
            if 0 <= lab.id < known.size:
                known[lab.id] = True
        self.lut = tf.constant(np.asarray(tid.lut, np.int64))
        self.known = tf.constant(known)
        self.isthing = tf.constant(np.asarray((*tid.isthing, False), bool))  # last: ignore
        self.num_classes = tid.num_classes
        mask_feature = (
            tf.io.VarLenFeature(tf.string)
            if mask_type == "png"
            else tf.io.VarLenFeature(tf.float32)
        )
        self.features = {
            tfrecord.ENCODED: tf.io.FixedLenFeature([], tf.string),
            tfrecord.HEIGHT: tf.io.FixedLenFeature([], tf.int64, default_value=0),
            tfrecord.WIDTH: tf.io.FixedLenFeature([], tf.int64, default_value=0),
            tfrecord.LABEL: tf.io.VarLenFeature(tf.int64),
            tfrecord.CROWD: tf.io.VarLenFeature(tf.int64),
            tfrecord.MASK: mask_feature,
        }

    def __call__(self, record: Any) -> tuple[Any, Any]:
        tf = self.tf
        f = tf.io.parse_single_example(record, self.features)
        encoded = f[tfrecord.ENCODED]
        image = tf.cond(
            tf.io.is_jpeg(encoded),
            lambda: tf.io.decode_jpeg(encoded, channels=3, dct_method="INTEGER_ACCURATE"),
            lambda: tf.io.decode_image(encoded, channels=3, expand_animations=False),
        )
        image = tf.ensure_shape(image, [None, None, 3])
        size = tf.cast(tf.stack([f[tfrecord.HEIGHT], f[tfrecord.WIDTH]]), tf.int32)
        size = tf.where(size > 0, size, tf.shape(image)[:2])  # missing: the image's
        h, w = size[0], size[1]
        masks = self._masks(f[tfrecord.MASK], h, w)  # bool (M, H, W)
        ids = tf.sparse.to_dense(f[tfrecord.LABEL])
        crowd = tf.sparse.to_dense(f[tfrecord.CROWD])
        n = tf.minimum(tf.shape(masks)[0], tf.shape(ids)[0])  # objects with a mask and an id
        masks, ids = masks[:n], ids[:n]
        crowd = tf.concat([crowd, tf.zeros([tf.maximum(n - tf.shape(crowd)[0], 0)], tf.int64)], 0)
        crowd = crowd[:n] > 0
        inside = (ids >= 0) & (ids < tf.cast(tf.shape(self.lut)[0], tf.int64))
        safe = tf.where(inside, ids, 0)
        known = inside & tf.gather(self.known, safe)  # the reader skips unknown classes
        masks, crowd = tf.boolean_mask(masks, known), tf.boolean_mask(crowd, known)
        train = tf.gather(self.lut, tf.boolean_mask(safe, known))
        if self.task == "semantic":
            return image, self._paint(masks, train, crowd, h, w)
        return image, self._instances(masks, train, crowd)

    def _masks(self, feature: Any, h: Any, w: Any) -> Any:
        tf = self.tf
        if self.mask_type == "numerical":
            values = tf.sparse.to_dense(feature)
            return tf.reshape(values, tf.stack([-1, h, w])) > 0
        pngs = tf.sparse.to_dense(feature, default_value="")

        def one(png: Any) -> Any:
            return tf.io.decode_png(png, channels=1)[..., 0]

        decoded = tf.map_fn(one, pngs, fn_output_signature=tf.TensorSpec([None, None], tf.uint8))
        return tf.reshape(decoded, tf.stack([-1, h, w])) > 0

    def _paint(self, masks: Any, train: Any, crowd: Any, h: Any, w: Any) -> Any:
        """Train ids, later objects over earlier, crowd ignore, the rest background."""
        tf = self.tf
        values = tf.where(crowd, tf.constant(self.ignore, tf.int64), train)
        values = tf.concat([tf.constant([self.background], tf.int64), values], 0)
        order = tf.range(1, tf.shape(masks)[0] + 1)[:, None, None]
        owner = tf.reduce_max(
            tf.concat([tf.zeros(tf.stack([1, h, w]), tf.int32), tf.where(masks, order, 0)], 0),
            axis=0,
        )
        return tf.gather(values, owner)

    def _instances(self, masks: Any, train: Any, crowd: Any) -> dict[str, Any]:
        tf = self.tf
        last = tf.constant(self.num_classes, tf.int64)  # isthing's extra False entry
        thing = tf.gather(self.isthing, tf.where(train == self.ignore, last, train))
        area = tf.reduce_sum(tf.cast(masks, tf.int64), axis=[1, 2])
        keep = thing & ~crowd & (train != self.ignore) & (area > 0)
        masks = tf.boolean_mask(masks, keep)
        rows = tf.cast(tf.reduce_any(masks, axis=2), tf.int32)  # (N, H)
        cols = tf.cast(tf.reduce_any(masks, axis=1), tf.int32)  # (N, W)
        height, width = tf.shape(rows)[1], tf.shape(cols)[1]
        y0 = tf.argmax(rows, axis=1, output_type=tf.int32)
        y1 = height - tf.argmax(rows[:, ::-1], axis=1, output_type=tf.int32)
        x0 = tf.argmax(cols, axis=1, output_type=tf.int32)
        x1 = width - tf.argmax(cols[:, ::-1], axis=1, output_type=tf.int32)
        boxes = tf.cast(tf.stack([x0, y0, x1, y1], axis=1), tf.float32)
        return {
            "boxes": tf.reshape(boxes, [-1, 4]),
            "labels": tf.boolean_mask(train, keep),
            "masks": tf.cast(masks, tf.uint8),
            "area": tf.cast(tf.boolean_mask(area, keep), tf.float32),
            "iscrowd": tf.zeros_like(tf.boolean_mask(train, keep)),
        }
