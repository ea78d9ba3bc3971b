"""Training targets: what to give the loss as the label, for every task.

Every function takes one sample (a formats :class:`~masklab.formats._base.Sample`, or a
store :class:`~masklab.store.model.Frame` with ``store=``) and returns NumPy arrays; no
torch import. Dataset label ids become contiguous training ids through :class:`TrainIds`.

===========================  ===============================================================
:func:`class_map`            int64 ``(H, W)`` train ids, ``ignore_index`` where the loss must
                             not look: ``CrossEntropyLoss(ignore_index=255)``
:func:`binary_maps`          uint8 ``(C, H, W)``, one channel per train class, several set
                             where a label has several names or instances overlap: BCE
:func:`ignore_mask`          bool ``(H, W)``: the pixels :func:`class_map` gives ``ignore_index``
:func:`instance_targets`     the dict torchvision's Mask R-CNN expects (boxes xyxy, labels,
                             masks, area, iscrowd, image_id)
:func:`panoptic_targets`     semantic + instance id maps and per-segment masks and labels
===========================  ===============================================================

Conventions:

* **Semantic is authoritative.** A sample with a class map (``sample.semantic``) is
  mapped pixel by pixel (``TrainIds.lut``); its instances are not painted over it. A
  sample with instances only is painted in the given order (a later instance keeps a
  contested pixel) on the background train id, or on ``ignore_index`` where the train ids
  have no background (``unlabeled="ignore"`` asks for that too: COCO panoptic's void).
* **Crowd** regions (``iscrowd``) are ``ignore_index`` in class maps by default
  (``crowd="class"`` paints their class), left out of instance targets by default (as
  torchvision's detection reference does; ``crowd="keep"`` keeps them with ``iscrowd=1``).
* **Multi-label** (ClearML ``mask_labels``, one pixel value -> several names): each
  distinct name is a train class; :func:`binary_maps` sets every name's channel,
  :func:`class_map` (one label a pixel) takes the label's first name that has a train id,
  the rule the store's ``DataView.remap`` follows.
* A sample with ``labeled=False`` (no annotation at all) is ignore everywhere, and pixels
  in ``sample.meta["ignore_rle"]`` (an RLE: the padding a transform added) are ignore.
* Unknown dataset ids (not in the label map) are ``ignore_index`` in pixel targets and
  left out of instance targets: the readers report them when they read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import cv2
import numpy as np
import numpy.typing as npt

from masklab.core import rle
from masklab.core.instances import Instance, instances_to_panoptic, semantic_to_instances
from masklab.core.labels import LabelMap
from masklab.errors import FormatError, LabelMapError, MaskFormatError
from masklab.formats._base import Sample

if TYPE_CHECKING:
    from masklab.store.model import Frame
    from masklab.store.store import Store

__all__ = [
    "IGNORE_RLE",
    "TrainIds",
    "binary_maps",
    "class_map",
    "ignore_mask",
    "instance_targets",
    "load_image",
    "panoptic_targets",
]

IGNORE_RLE = "ignore_rle"  # Sample.meta key: an RLE of pixels every target ignores (padding)
CrowdPixels = Literal["ignore", "class"]
CrowdInstances = Literal["drop", "keep"]
Unlabeled = Literal["background", "ignore"]


@dataclass(frozen=True, eq=False, repr=False)
class TrainIds:
    """Dataset label ids -> contiguous training ids ``0..K-1``, ignore -> ``ignore_index``.

    Build it with :meth:`from_label_map`. ``names[t]`` names train id ``t``; ``lut`` maps a
    dataset id to its train id (unknown ids -> ``ignore_index``; at least 256 entries, so
    any uint8 class map indexes it); ``multi_hot[id]`` says which train classes a dataset
    id sets (several for a multi-name label); ``background`` is the background's train id
    (0) or None; ``isthing[t]`` whether train class ``t`` has instances.

    >>> lm = LabelMap.from_names(["background", "cat", "dog"], background=0, ignore={255: "void"})
    >>> t = TrainIds.from_label_map(lm)
    >>> t.names, t.num_classes, t.of(2), t.of(255)
    (('background', 'cat', 'dog'), 3, 2, 255)
    """

    label_map: LabelMap
    names: tuple[str, ...]
    ignore_index: int
    lut: npt.NDArray[np.int64]
    multi_hot: npt.NDArray[np.bool_]
    isthing: tuple[bool, ...]
    background: int | None
    negative: Mapping[int, tuple[int, ...]] = field(default_factory=dict)  # ids < 0

    @classmethod
    def from_label_map(
        cls,
        label_map: LabelMap,
        *,
        ignore_index: int = 255,
        classes: Sequence[str] | None = None,
        background: bool | None = None,
    ) -> TrainIds:
        """Train ids of a label map.

        Labels with role ``ignore`` go to ``ignore_index``; the others get ``0..K-1`` in
        label-map order, one per distinct name. With ``background`` (the default when the
        map has a background label, or has no ignore label: COCO) train id 0 is the
        background: the map's background label, or one added for the pixels no instance
        covers, so object labels start at 1 as torchvision's detection models expect. A
        map with ignore labels and no background covers every pixel (Cityscapes, ADE20K):
        there the classes start at 0, the datasets' own train ids. ``classes`` picks and
        orders the train classes by name (every other label -> ``ignore_index``; the
        background, when wanted, is put first unless named).

        >>> coco = LabelMap.from_names(["person", "bicycle", "car"], start=1)
        >>> TrainIds.from_label_map(coco).names
        ('background', 'person', 'bicycle', 'car')
        >>> ade = LabelMap.from_names(["wall", "floor"], start=1, ignore={0: "other"})
        >>> TrainIds.from_label_map(ade).lut[:3].tolist()
        [255, 0, 1]
        >>> TrainIds.from_label_map(coco, classes=["car", "person"]).lut[:4].tolist()
        [255, 2, 255, 1]
        """
        if not isinstance(label_map, LabelMap):
            raise TypeError(f"from_label_map takes a LabelMap, got {type(label_map).__name__}")
        ids = label_map.ids
        bg_label = next((lab for lab in label_map if lab.role == "background"), None)
        has_ignore = any(lab.role == "ignore" for lab in label_map)
        with_bg = (bg_label is not None or not has_ignore) if background is None else background
        bg_name = bg_label.names[0] if bg_label is not None else "background"
        explicit: set[str] = set()
        if classes is None:
            ordered = [bg_name] if with_bg else []
            for lab in label_map:
                if lab.role == "ignore" or (with_bg and lab is bg_label):
                    continue
                for n in lab.names:
                    if n not in ordered:
                        ordered.append(n)
        else:
            ordered = _checked_classes(classes, label_map, bg_name if with_bg else None)
            explicit = set(ordered)
            if with_bg and bg_name not in ordered:
                ordered.insert(0, bg_name)
        index = {n: i for i, n in enumerate(ordered)}
        k = len(ordered)
        if 0 <= ignore_index < k:
            raise LabelMapError(
                f"ignore_index {ignore_index} is the train id of {ordered[ignore_index]!r}; "
                f"pick one outside 0..{k - 1} (255, or -100 as PyTorch's default)"
            )
        size = max(256, max(ids, default=-1) + 1)
        lut = np.full(size, ignore_index, np.int64)
        multi = np.zeros((size, k), bool)
        isthing: list[bool | None] = [None] * k
        negative: dict[int, tuple[int, ...]] = {}
        for lab in label_map:
            if lab.role == "ignore" and not explicit.intersection(lab.names):
                continue
            names = (bg_name,) if with_bg and lab is bg_label else lab.names
            hits = [index[n] for n in names if n in index]
            if not hits:
                continue
            if lab.id < 0:  # not a pixel value (Cityscapes' license plate, -1)
                negative[lab.id] = tuple(hits)
            else:
                lut[lab.id] = hits[0]
                multi[lab.id, hits] = True
            for t in hits:
                if isthing[t] is None:
                    isthing[t] = lab.isthing and lab.role == "class"
        lut.flags.writeable = False
        multi.flags.writeable = False
        return cls(
            label_map=label_map,
            names=tuple(ordered),
            ignore_index=int(ignore_index),
            lut=lut,
            multi_hot=multi,
            isthing=tuple(bool(v) for v in isthing),
            background=index[bg_name] if with_bg else None,
            negative=negative,
        )

    @property
    def num_classes(self) -> int:
        """K: the number of train classes (the width of a classifier's output)."""
        return len(self.names)

    def of(self, label_id: int) -> int:
        """The train id of a dataset label id (``ignore_index`` for ignored labels).

        Raises:
            LabelMapError: the id is not in the label map.
        """
        if label_id not in self.label_map:
            raise LabelMapError(f"no label with id {label_id!r}; known ids: {self.label_map.ids}")
        return _train_id(self, label_id)

    def channels(self, label_id: int) -> tuple[int, ...]:
        """Every train id a dataset label sets (several for a multi-name label; none for
        ignored and unknown ids).

        >>> lm = LabelMap.from_mask_labels({0: ["background"], 7: ["person", "rider"]})
        >>> TrainIds.from_label_map(lm).channels(1)
        (1, 2)
        """
        if label_id < 0:
            return self.negative.get(label_id, ())
        if label_id >= self.lut.size:
            return ()
        return tuple(int(t) for t in np.flatnonzero(self.multi_hot[label_id]))

    def map(self, ids: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Train ids of an array of dataset ids (any integer dtype); unknown -> ignore.

        >>> t = TrainIds.from_label_map(LabelMap.from_names(["bg", "cat"], background=0))
        >>> t.map(np.array([[0, 1, 7], [300, -1, 1]])).tolist()
        [[0, 1, 255], [255, 255, 1]]
        """
        arr = np.asarray(ids)
        if arr.dtype.kind not in "iu":
            raise TypeError(f"dataset ids must be an integer array, got dtype {arr.dtype}")
        out: npt.NDArray[np.int64]
        if arr.dtype == np.uint8 or arr.size == 0 or (arr.min() >= 0 and arr.max() < self.lut.size):
            out = self.lut[arr]
            return out
        inside = (arr >= 0) & (arr < self.lut.size)
        out = np.where(inside, self.lut[np.where(inside, arr, 0)], self.ignore_index)
        return out

    def __repr__(self) -> str:
        shown = ", ".join(self.names[:6]) + (", ..." if len(self.names) > 6 else "")
        return f"TrainIds({self.num_classes} classes: {shown}; ignore_index={self.ignore_index})"


def _checked_classes(classes: Sequence[str], label_map: LabelMap, bg_name: str | None) -> list[str]:
    if isinstance(classes, str):
        raise TypeError(f"classes is a list of names, got the string {classes!r}")
    ordered = [str(c) for c in classes]
    if len(set(ordered)) != len(ordered):
        dup = sorted({c for c in ordered if ordered.count(c) > 1})
        raise LabelMapError(f"classes must be unique, {dup} appear more than once")
    known = {n for lab in label_map for n in lab.names}
    if bg_name is not None:
        known.add(bg_name)
    missing = [c for c in ordered if c not in known]
    if missing:
        raise LabelMapError(
            f"classes {missing} are not names of the label map; known: {sorted(known)}"
        )
    return ordered


# --------------------------------------------------------------------------- input


def _resolve(
    sample: Sample | Frame,
    label_map: LabelMap | None,
    train_ids: TrainIds | None,
    store: Store | None,
    ignore_index: int = 255,
) -> tuple[Sample, TrainIds]:
    """The sample as a Sample and its train ids, from whatever the caller gave."""
    if train_ids is not None:
        if ignore_index not in (255, train_ids.ignore_index):
            raise ValueError(
                f"ignore_index={ignore_index} but the train_ids given use "
                f"{train_ids.ignore_index}; build the TrainIds with the ignore index you want"
            )
        labels = train_ids.label_map if label_map is None else label_map
    elif label_map is not None:
        labels = label_map
    else:
        raise LabelMapError(
            "targets need the dataset's label map: pass label_map= (a reader's .labels, a "
            "version's .label_map) or train_ids=TrainIds.from_label_map(...)"
        )
    if isinstance(sample, Sample):
        out = sample
    else:
        if store is None:
            raise TypeError(
                f"{type(sample).__name__} is not a Sample; a store Frame needs store= to read "
                "its masks"
            )
        from masklab.store.exporter import frame_to_sample

        out = frame_to_sample(store, sample, labels)
    if out.semantic is not None and tuple(out.semantic.shape) != tuple(out.size):
        raise MaskFormatError(
            f"sample {out.id!r}: class map is {list(out.semantic.shape)} but the sample is "
            f"{list(out.size)} (h, w); fix the reader or the transform"
        )
    tid = (
        train_ids
        if train_ids is not None
        else TrainIds.from_label_map(labels, ignore_index=ignore_index)
    )
    return out, tid


def _train_id(tid: TrainIds, class_id: int) -> int:
    if 0 <= class_id < tid.lut.size:
        return int(tid.lut[class_id])
    hits = tid.negative.get(class_id)
    return hits[0] if hits else tid.ignore_index


def _ignore_pixels(sample: Sample) -> npt.NDArray[np.bool_] | None:
    """Pixels ``sample.meta["ignore_rle"]`` marks (padding), or None."""
    mask = sample.meta.get(IGNORE_RLE)
    if mask is None:
        return None
    if not isinstance(mask, rle.RLE) or mask.size != sample.size:
        raise MaskFormatError(
            f"sample {sample.id!r}: meta[{IGNORE_RLE!r}] must be an RLE of size "
            f"{list(sample.size)}, got {mask!r}"
        )
    return rle.decode(mask).view(bool)


def _owners(sample: Sample, instances: Sequence[Instance]) -> npt.NDArray[np.int32]:
    """Which instance (1..n, in paint order, later over earlier) owns each pixel; 0 none."""
    painted = instances_to_panoptic(instances, sample.size, dtype=np.int32)
    return painted.array.astype(np.int32, copy=False)


def _class_map(
    s: Sample, tid: TrainIds, *, crowd: CrowdPixels, unlabeled: Unlabeled
) -> npt.NDArray[np.int64]:
    ig = tid.ignore_index
    if crowd not in ("ignore", "class"):
        raise ValueError(f"crowd must be 'ignore' or 'class', got {crowd!r}")
    if unlabeled not in ("background", "ignore"):
        raise ValueError(f"unlabeled must be 'background' or 'ignore', got {unlabeled!r}")
    if not s.labeled:
        return np.full(s.size, ig, np.int64)
    if s.semantic is not None:
        out = tid.map(s.semantic)
    else:
        bg = tid.background if unlabeled == "background" and tid.background is not None else ig
        values = [bg] + [
            ig if inst.iscrowd and crowd == "ignore" else _train_id(tid, inst.class_id)
            for inst in s.instances
        ]
        out = np.asarray(values, np.int64)[_owners(s, s.instances)]
    pad = _ignore_pixels(s)
    if pad is not None:
        out[pad] = ig
    return out


# --------------------------------------------------------------------------- targets


def class_map(
    sample: Sample | Frame,
    label_map: LabelMap | None = None,
    *,
    ignore_index: int = 255,
    train_ids: TrainIds | None = None,
    crowd: CrowdPixels = "ignore",
    unlabeled: Unlabeled = "background",
    store: Store | None = None,
) -> npt.NDArray[np.int64]:
    """The int64 ``(H, W)`` class-index target of ``CrossEntropyLoss(ignore_index=...)``.

    Train ids of the sample's class map, else of its instances painted in order on the
    background (``unlabeled="ignore"``: on ``ignore_index``, for panoptic void); crowd
    regions ``ignore_index`` (``crowd="class"``: their class). ``train_ids`` carry their
    own ignore index.

    >>> from masklab.core import rle
    >>> lm = LabelMap.from_names(["person", "car"], start=1)  # COCO-like: no background
    >>> car = Instance(rle.encode(np.array([[0, 1, 1], [0, 1, 1]])), 2)
    >>> crowd = Instance(rle.encode(np.array([[1, 1, 0], [0, 0, 0]])), 1, iscrowd=True)
    >>> class_map(Sample("a", (2, 3), instances=(car, crowd)), lm).tolist()
    [[255, 255, 2], [0, 2, 2]]
    """
    s, tid = _resolve(sample, label_map, train_ids, store, ignore_index)
    return _class_map(s, tid, crowd=crowd, unlabeled=unlabeled)


def ignore_mask(
    sample: Sample | Frame,
    label_map: LabelMap | None = None,
    *,
    train_ids: TrainIds | None = None,
    crowd: CrowdPixels = "ignore",
    unlabeled: Unlabeled = "background",
    store: Store | None = None,
) -> npt.NDArray[np.bool_]:
    """bool ``(H, W)``: True where :func:`class_map` is ``ignore_index`` (void, crowd,
    unknown ids, padding); the weight mask of a BCE or Dice loss."""
    s, tid = _resolve(sample, label_map, train_ids, store)
    out: npt.NDArray[np.bool_] = (
        _class_map(s, tid, crowd=crowd, unlabeled=unlabeled) == tid.ignore_index
    )
    return out


def binary_maps(
    sample: Sample | Frame,
    label_map: LabelMap | None = None,
    *,
    train_ids: TrainIds | None = None,
    crowd: CrowdPixels = "ignore",
    store: Store | None = None,
) -> npt.NDArray[np.uint8]:
    """uint8 ``(C, H, W)`` per-class 0/1 targets of ``BCEWithLogitsLoss``, one channel per
    train class (``train_ids.names``).

    Multi-label: a pixel whose label has several names (ClearML ``mask_labels``), or that
    several instances cover, sets several channels. The background channel (when the
    train ids have one) is set where :func:`class_map` says background. Ignore pixels are
    0 in every channel: weight the loss with ``~ignore_mask(...)``.

    >>> lm = LabelMap.from_mask_labels({0: ["background"], 1: ["person", "rider"]})
    >>> binary_maps(Sample("a", (1, 2), semantic=np.array([[0, 1]])), lm).tolist()
    [[[1, 0]], [[0, 1]], [[0, 1]]]
    """
    s, tid = _resolve(sample, label_map, train_ids, store)
    cm = _class_map(s, tid, crowd=crowd, unlabeled="background")
    k = tid.num_classes
    h, w = s.size
    if not s.labeled:
        return np.zeros((k, h, w), np.uint8)
    table = np.ascontiguousarray(tid.multi_hot.T).view(np.uint8)  # (C, L)
    if s.semantic is not None:
        sem = s.semantic
        if sem.dtype != np.uint8 and sem.size and (sem.min() < 0 or sem.max() >= table.shape[1]):
            sem = np.clip(sem, 0, table.shape[1] - 1)  # out of range: ignore in cm, zeroed below
        out = np.ascontiguousarray(table[:, sem])
    else:
        out = np.zeros((k, h, w), np.uint8)
        for inst in s.instances:
            channels = [] if inst.iscrowd and crowd == "ignore" else tid.channels(inst.class_id)
            if not channels:
                continue
            box, (x, y) = rle.decode_box(inst.mask)
            if box.size:
                out[list(channels), y : y + box.shape[0], x : x + box.shape[1]] |= box
        if tid.background is not None:
            out[tid.background] = cm == tid.background
    out[:, cm == tid.ignore_index] = 0
    return out


def _objects(s: Sample, tid: TrainIds) -> Sequence[Instance]:
    """The sample's instances; split from its class map (connected components of thing
    classes) when it has none."""
    if s.instances or s.semantic is None:
        return s.instances
    things = {lab.id for lab in tid.label_map if lab.isthing and lab.role == "class"}
    present = {int(v) for v in np.unique(s.semantic).tolist()}
    return semantic_to_instances(s.semantic, skip=present - things)


def instance_targets(
    sample: Sample | Frame,
    label_map: LabelMap | None = None,
    *,
    train_ids: TrainIds | None = None,
    image_id: int = 0,
    crowd: CrowdInstances = "drop",
    store: Store | None = None,
) -> dict[str, npt.NDArray[Any]]:
    """The target dict of torchvision's Mask R-CNN (built without torchvision).

    Keys: ``boxes`` float32 ``(N, 4)`` xyxy of each mask (COCO bbox ``x, y, x+w, y+h``),
    ``labels`` int64 train ids (background is 0, so objects are >= 1), ``masks`` uint8
    ``(N, H, W)``, ``area`` float32 mask pixels, ``iscrowd`` int64, ``image_id`` int64 0-d.
    Left out: instances of stuff or ignored classes, unknown ids, empty masks, and crowd
    regions unless ``crowd="keep"``. A sample with only a class map gives one instance per
    connected component of each thing class.

    >>> lm = LabelMap.from_names(["person", "car"], start=1)
    >>> car = Instance(rle.encode(np.array([[0, 1, 1], [0, 1, 0]])), 2)
    >>> t = instance_targets(Sample("a", (2, 3), instances=(car,)), lm, image_id=7)
    >>> t["boxes"].tolist(), t["labels"].tolist(), t["area"].tolist(), int(t["image_id"])
    ([[1.0, 0.0, 3.0, 2.0]], [2], [3.0], 7)

    Raises:
        LabelMapError: an object gets train id 0 while 0 is not the background (build the
            TrainIds with ``background=True``).
    """
    if crowd not in ("drop", "keep"):
        raise ValueError(f"crowd must be 'drop' or 'keep', got {crowd!r}")
    s, tid = _resolve(sample, label_map, train_ids, store)
    h, w = s.size
    kept: list[Instance] = []
    labels: list[int] = []
    if s.labeled:
        for inst in _objects(s, tid):
            t = _train_id(tid, inst.class_id)
            if t == tid.ignore_index or not tid.isthing[t] or (inst.iscrowd and crowd == "drop"):
                continue
            kept.append(inst)
            labels.append(t)
    areas, xywh = rle.area_bbox_batch([inst.mask for inst in kept])
    nonempty = np.flatnonzero(areas > 0)
    kept = [kept[i] for i in nonempty]
    label_arr = np.asarray(labels, np.int64)[nonempty]
    if (label_arr == 0).any() and tid.background != 0:
        raise LabelMapError(
            f"sample {s.id!r}: objects of {tid.names[0]!r} get label 0, which torchvision's "
            "detection models reserve for background; build the train ids with "
            "TrainIds.from_label_map(labels, background=True)"
        )
    boxes = xywh[nonempty].astype(np.float32)
    boxes[:, 2:] += boxes[:, :2]
    masks = rle.decode_batch([i.mask for i in kept]) if kept else np.zeros((0, h, w), np.uint8)
    return {
        "boxes": np.ascontiguousarray(boxes.reshape(-1, 4)),
        "labels": label_arr,
        "masks": masks,
        "area": areas[nonempty].astype(np.float32),
        "iscrowd": np.asarray([int(i.iscrowd) for i in kept], np.int64),
        "image_id": np.asarray(image_id, np.int64),
    }


def _segments(s: Sample, tid: TrainIds) -> list[Instance]:
    """Panoptic segments: the instances; with a class map, its stuff classes (whole) under
    the instances, or, without instances, its thing classes as connected components."""
    if s.semantic is None:
        return list(s.instances)
    lm = tid.label_map
    stuff = {lab.id for lab in lm if not lab.isthing and lab.role != "ignore"}
    present = {int(v) for v in np.unique(s.semantic).tolist()}
    if s.instances:
        return [*semantic_to_instances(s.semantic, stuff=stuff, skip=present - stuff), *s.instances]
    usable = {lab.id for lab in lm if lab.role != "ignore"}
    return semantic_to_instances(s.semantic, stuff=stuff, skip=present - usable)


def panoptic_targets(
    sample: Sample | Frame,
    label_map: LabelMap | None = None,
    *,
    train_ids: TrainIds | None = None,
    ignore_index: int = 255,
    store: Store | None = None,
) -> dict[str, npt.NDArray[Any]]:
    """Panoptic targets: ``semantic`` int64 ``(H, W)`` train ids (void -> ``ignore_index``,
    crowd keeps its class), ``instance`` int64 ``(H, W)`` (1..N for the non-crowd thing
    segments in order, 0 for stuff, crowd and void), and per segment ``masks`` uint8
    ``(S, H, W)`` (the pixels it owns), ``labels`` int64, ``isthing`` bool, ``iscrowd``
    int64, ``segment_ids`` int64 (the segments' own ids when each has a distinct one, as a
    COCO panoptic PNG's ``R + 256 G + 256^2 B``; else 1..S).

    Segments are the sample's instances (COCO panoptic: things and stuff); a class map
    adds its stuff classes as whole segments under them, or without instances gives its
    things as connected components. Segments of ignored classes are left out.

    >>> from masklab.core.labels import Label
    >>> lm = LabelMap((Label(1, ("sky",), (1, 1, 1), isthing=False), Label(2, ("car",), (2, 2, 2))))
    >>> sky = Instance(rle.encode(np.array([[1, 1, 0]])), 1, id=9)
    >>> car = Instance(rle.encode(np.array([[0, 0, 1]])), 2, id=4)
    >>> p = panoptic_targets(Sample("a", (1, 3), instances=(sky, car)), lm)
    >>> p["semantic"].tolist(), p["instance"].tolist(), p["segment_ids"].tolist()
    ([[1, 1, 2]], [[0, 0, 1]], [9, 4])
    """
    s, tid = _resolve(sample, label_map, train_ids, store, ignore_index)
    ig = tid.ignore_index
    h, w = s.size
    segs = _segments(s, tid) if s.labeled else []
    painted = instances_to_panoptic(segs, s.size, dtype=np.int32)
    owners = painted.array
    tids = [_train_id(tid, seg.class_id) for seg in segs]
    keep = [k for k in range(len(segs)) if tids[k] != ig and painted.visible_px[k] > 0]
    if not s.labeled:
        semantic = np.full(s.size, ig, np.int64)
    elif s.semantic is not None:
        semantic = tid.map(s.semantic)
    else:
        semantic = np.asarray([ig, *tids], np.int64)[owners]
    number = np.zeros(len(segs) + 1, np.int64)
    n = 0
    for k in keep:
        if tid.isthing[tids[k]] and not segs[k].iscrowd:
            n += 1
            number[k + 1] = n
    instance = number[owners]
    pad = _ignore_pixels(s)
    if pad is not None:
        semantic[pad] = ig
        instance[pad] = 0
    own = np.asarray(keep, np.int32) + 1
    masks = (owners[None] == own[:, None, None]).view(np.uint8) if keep else None
    ids = [segs[k].id for k in keep]
    distinct = all(i is not None for i in ids) and len(set(ids)) == len(ids)
    return {
        "semantic": semantic,
        "instance": instance,
        "masks": np.zeros((0, h, w), np.uint8) if masks is None else np.ascontiguousarray(masks),
        "labels": np.asarray([tids[k] for k in keep], np.int64),
        "isthing": np.asarray([tid.isthing[tids[k]] for k in keep], bool),
        "iscrowd": np.asarray([int(segs[k].iscrowd) for k in keep], np.int64),
        "segment_ids": np.asarray(ids if distinct else range(1, len(keep) + 1), np.int64),
    }


# --------------------------------------------------------------------------- images


def load_image(sample: Sample | Frame, *, store: Store | None = None) -> npt.NDArray[np.uint8]:
    """The sample's image as uint8 ``(H, W, 3)`` RGB (grey and RGBA become RGB, 16-bit
    becomes 8-bit), from ``sample.image`` or ``sample.image_bytes``; a store Frame's first
    source (``store=`` for blob URIs). Pixels as stored; an EXIF rotation is applied only
    when that is what makes the image match the sample's size.

    Raises:
        FormatError: no image, an unreadable one, or one whose size is not the sample's.
    """
    path: Path | None
    data: bytes | None
    size: tuple[int, int] | None
    if isinstance(sample, Sample):
        path, data, size, name = sample.image, sample.image_bytes, sample.size, sample.id
    else:
        from masklab.store.model import BLOB_SCHEME

        src = sample.sources[0]
        path, data, size, name = None, None, src.size, sample.id
        if src.uri is not None and ("://" in src.uri or src.uri.startswith(BLOB_SCHEME)):
            if store is None:
                raise TypeError(f"frame {name!r}: its image {src.uri!r} needs store= to read")
            data = store.read_bytes(src.uri)
        elif src.uri is not None:
            path = Path(src.uri)
    where = str(path) if path is not None else f"embedded image of sample {name!r}"
    buf: npt.NDArray[np.uint8]
    if path is not None:
        try:
            buf = np.fromfile(path, np.uint8)
        except OSError as err:
            if data is None:
                raise FormatError(
                    f"{path}: cannot read the image of sample {name!r}: {err}", path=str(path)
                ) from err
            buf = np.frombuffer(data, np.uint8)
    elif data is not None:
        buf = np.frombuffer(data, np.uint8)
    else:
        raise FormatError(f"sample {name!r} has no image (neither a file nor embedded bytes)")
    image = cv2.imdecode(buf, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise FormatError(f"{where}: OpenCV cannot decode this image", path=str(path))
    if size is not None and image.shape[:2] != tuple(size):
        turned = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        if turned is None or turned.shape[:2] != tuple(size):
            raise FormatError(
                f"{where}: image is {list(image.shape[:2])} (h, w) but the masks of sample "
                f"{name!r} are {list(size)}; the image and its annotation do not belong together",
                path=str(path),
            )
        image = turned
    return np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), dtype=np.uint8)
