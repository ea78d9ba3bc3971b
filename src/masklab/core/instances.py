"""Instances, semantic class maps and panoptic maps, and the conversions between them.

* An :class:`Instance` is one object: its mask (an :class:`~masklab.core.rle.RLE`), class
  id, optional source id, score, ``iscrowd`` flag, the polygons it was read from (COCO
  rings whose union is the mask) and free attributes.
* A semantic mask is a class-index array (uint8, uint16 or int32) read with a
  :class:`~masklab.core.labels.LabelMap`.
* A panoptic map is an int32 array of segment ids (0 = void) with, per id, a class and a
  crowd flag (COCO panoptic: id = R + 256 G + 256^2 B, ``reference/formats.md`` §2).

Conversions are lossless where the target can hold the data and say what they changed
where it cannot: painting overlapping instances into one class map loses the overlap,
so the painters return how many pixels were contested.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt

from masklab.core import rle as _rle
from masklab.core.rle import RLE
from masklab.errors import MaskFormatError

__all__ = [
    "Instance",
    "Painted",
    "Segment",
    "instances_to_panoptic",
    "instances_to_semantic",
    "panoptic_to_instances",
    "panoptic_to_semantic",
    "semantic_to_instances",
    "semantic_to_panoptic",
    "smallest_dtype",
]

PaintOrder = Literal["given", "area"]
Overlap = Literal["last", "first", "error"]


@dataclass(frozen=True, slots=True)
class Instance:
    """One object: a mask and what it is."""

    mask: RLE
    class_id: int
    id: int | None = None
    score: float | None = None
    iscrowd: bool = False
    polygons: tuple[tuple[float, ...], ...] | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)

    @property
    def area(self) -> int:
        """Foreground pixels."""
        return _rle.area(self.mask)


@dataclass(frozen=True, slots=True)
class Segment:
    """One segment of a panoptic map."""

    id: int
    class_id: int
    iscrowd: bool = False


@dataclass(frozen=True, slots=True)
class Painted:
    """Result of painting instances into one map."""

    array: npt.NDArray[np.integer[Any]]
    contested_px: int  # pixels claimed by two or more instances (the overlap policy chose)
    segments: tuple[Segment, ...] = ()
    visible_px: tuple[int, ...] = ()  # per instance, pixels it kept (panoptic painting)


def smallest_dtype(max_value: int) -> type[np.unsignedinteger[Any]] | type[np.int32]:
    """uint8, uint16 or int32: the smallest dtype holding ``0..max_value``."""
    if max_value < 256:
        return np.uint8
    if max_value < 65536:
        return np.uint16
    return np.int32


def semantic_to_instances(
    classes: npt.ArrayLike,
    *,
    connectivity: Literal[4, 8] = 8,
    stuff: Collection[int] = (),
    skip: Collection[int] = (0,),
) -> list[Instance]:
    """Split a class-index map into instances: one per connected component of each class,
    or one per class for ``stuff`` classes; classes in ``skip`` (background, ignore) are
    left out. Instances come in class order, components in OpenCV's label order.

    >>> m = np.array([[1, 0, 1], [1, 0, 2]])
    >>> [(i.class_id, _rle.area(i.mask)) for i in semantic_to_instances(m)]
    [(1, 2), (1, 1), (2, 1)]
    """
    arr = np.asarray(classes)
    if arr.ndim != 2:
        raise MaskFormatError(f"a class map must be 2-D (h, w), got shape {arr.shape}")
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity!r}")
    h, w = arr.shape
    out: list[Instance] = []
    skip_set = {int(v) for v in skip}
    for value in np.unique(arr).tolist():
        if value in skip_set:
            continue
        binary = (arr == value).view(np.uint8)
        if value in stuff:
            out.append(Instance(_rle.encode(binary), int(value)))
            continue
        n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=connectivity)
        for k in range(1, n):
            x, y, bw, bh = (int(v) for v in stats[k, :4])
            piece = _rle.encode(labels[y : y + bh, x : x + bw] == k)
            out.append(Instance(_rle.crop(piece, [-x, -y, w, h]), int(value)))
    return out


def _paint_order(instances: Sequence[Instance], order: PaintOrder) -> list[int]:
    if order == "given":
        return list(range(len(instances)))
    if order == "area":  # larger first, so smaller objects stay visible on top
        return sorted(range(len(instances)), key=lambda i: -instances[i].area)
    raise ValueError(f"paint order must be 'given' or 'area', got {order!r}")


def _paint(
    instances: Sequence[Instance],
    values: Sequence[int],
    size: tuple[int, int],
    dtype: Any,
    *,
    order: PaintOrder,
    overlap: Overlap,
    fill: int,
    owners: bool = False,
) -> tuple[npt.NDArray[Any], int, npt.NDArray[np.int64]]:
    """Paint; returns the map, the contested pixels and, when ``values`` are the owners
    1..n (``owners``), the pixels each instance kept, found from the overlaps alone."""
    if overlap not in ("last", "first", "error"):
        raise ValueError(f"overlap must be 'last', 'first' or 'error', got {overlap!r}")
    out = np.full(size, fill, dtype)
    # with owners 1..n painted over 0, a nonzero pixel is a claimed one: no second map
    claimed = None if owners and fill == 0 else np.zeros(size, bool)
    contested = 0
    kept = np.zeros(len(instances) + 1, np.int64)
    for i in _paint_order(instances, order):
        inst = instances[i]
        if inst.mask.size != size:
            raise MaskFormatError(f"instance {i} has size {inst.mask.size} but the frame is {size}")
        box, (x, y) = _rle.decode_box(inst.mask)
        if box.size == 0:
            continue
        fg = box.view(bool)
        region = out[y : y + box.shape[0], x : x + box.shape[1]]
        region_claimed = (
            region != 0 if claimed is None else claimed[y : y + box.shape[0], x : x + box.shape[1]]
        )
        clash = fg & region_claimed
        n_clash = int(np.count_nonzero(clash))
        if n_clash and overlap == "error":
            raise MaskFormatError(
                f"instance {i} (class {inst.class_id}) overlaps earlier instances on "
                f"{n_clash} pixels; choose an overlap policy ('last' or 'first')"
            )
        contested += n_clash
        if owners:
            kept[values[i]] += int(np.count_nonzero(fg))
            if n_clash and overlap == "last":  # earlier owners lose these pixels
                kept -= np.bincount(region[clash], minlength=kept.size)
            elif n_clash:
                kept[values[i]] -= n_clash
        target = fg & ~region_claimed if overlap == "first" else fg
        region[target] = values[i]
        if claimed is not None:
            region_claimed |= fg
    return out, contested, kept[1:]


def instances_to_semantic(
    instances: Sequence[Instance],
    size: tuple[int, int],
    *,
    order: PaintOrder = "given",
    overlap: Overlap = "last",
    background: int = 0,
    dtype: Any = None,
) -> Painted:
    """Paint instances' class ids into one class-index map of ``size == (h, w)``.

    ``order`` is the painting order (``given`` or ``area``: larger first); ``overlap``
    says who keeps a contested pixel: the ``last`` painted, the ``first``, or ``error``.

    >>> a = Instance(_rle.encode(np.array([[1, 1, 0]])), 3)
    >>> b = Instance(_rle.encode(np.array([[0, 1, 1]])), 5)
    >>> p = instances_to_semantic([a, b], (1, 3))
    >>> p.array.tolist(), p.contested_px
    ([[3, 5, 5]], 1)
    """
    top = max([background, *(inst.class_id for inst in instances)])
    dt = dtype or smallest_dtype(top)
    values = [inst.class_id for inst in instances]
    array, contested, _ = _paint(
        instances, values, size, dt, order=order, overlap=overlap, fill=background
    )
    return Painted(array, contested)


def instances_to_panoptic(
    instances: Sequence[Instance],
    size: tuple[int, int],
    *,
    order: PaintOrder = "given",
    overlap: Overlap = "last",
    ids: Sequence[int] | None = None,
    dtype: Any = np.int32,
) -> Painted:
    """Paint instances into a panoptic id map (0 = void) with one segment each.

    Segment ids are ``ids`` if given, else 1, 2, ... in list order. A segment whose
    pixels were all taken by others is left out of ``segments``; ``visible_px`` says how
    many pixels each instance kept. ``dtype`` (int32 by default) must hold the ids.
    """
    seg_ids = list(ids) if ids is not None else list(range(1, len(instances) + 1))
    if len(seg_ids) != len(instances) or 0 in seg_ids or len(set(seg_ids)) != len(seg_ids):
        raise MaskFormatError("panoptic segment ids must be unique, non-zero, one per instance")
    # paint local indices 1..n, count what stayed visible, then map to the segment ids
    local = list(range(1, len(instances) + 1))
    paint_dtype = smallest_dtype(len(instances)) if ids is not None else dtype
    array, contested, kept = _paint(
        instances, local, size, paint_dtype, order=order, overlap=overlap, fill=0, owners=True
    )
    visible = np.concatenate([[0], kept])
    if ids is not None:
        lut = np.array([0, *seg_ids], dtype)
        array = lut[array]
    segments = tuple(
        Segment(sid, inst.class_id, inst.iscrowd)
        for k, (sid, inst) in enumerate(zip(seg_ids, instances, strict=True), start=1)
        if visible[k] > 0
    )
    return Painted(array, contested, segments, tuple(visible[1:].tolist()))


def panoptic_to_instances(
    ids: npt.ArrayLike, segments: Sequence[Segment]
) -> tuple[list[Instance], list[int]]:
    """One instance per segment of a panoptic id map, and the ids found in the map that
    no segment describes (reported by readers, never dropped silently)."""
    arr = np.asarray(ids)
    if arr.ndim != 2:
        raise MaskFormatError(f"a panoptic map must be 2-D (h, w), got shape {arr.shape}")
    present = np.unique(arr)
    known = {s.id for s in segments}
    unknown = [int(v) for v in present.tolist() if v != 0 and v not in known]
    out = [
        Instance(_rle.encode(arr == s.id), s.class_id, id=s.id, iscrowd=s.iscrowd) for s in segments
    ]
    return out, unknown


def semantic_to_panoptic(
    classes: npt.ArrayLike,
    *,
    connectivity: Literal[4, 8] = 8,
    stuff: Collection[int] = (),
    skip: Collection[int] = (0,),
) -> Painted:
    """A class map as a panoptic map: one segment per connected component of each thing
    class, one per ``stuff`` class; ``skip`` classes are void (0). Exact: class maps do
    not overlap.

    >>> p = semantic_to_panoptic(np.array([[1, 0, 1], [2, 2, 0]]), stuff=[2])
    >>> p.array.tolist(), [(s.id, s.class_id) for s in p.segments]
    ([[1, 0, 2], [3, 3, 0]], [(1, 1), (2, 1), (3, 2)])
    """
    arr = np.asarray(classes)
    instances = semantic_to_instances(arr, connectivity=connectivity, stuff=stuff, skip=skip)
    return instances_to_panoptic(instances, (arr.shape[0], arr.shape[1]))


def panoptic_to_semantic(
    ids: npt.ArrayLike, segments: Sequence[Segment], *, void: int = 0
) -> npt.NDArray[np.integer[Any]]:
    """The class map of a panoptic map: each segment's pixels get its class, void and
    ids without a segment get ``void``.

    >>> panoptic_to_semantic(np.array([[0, 7], [9, 9]]), [Segment(7, 3), Segment(9, 5)]).tolist()
    [[0, 3], [5, 5]]
    """
    arr = np.asarray(ids)
    known = np.array([s.id for s in segments], np.int64)
    classes = np.array([s.class_id for s in segments], np.int64)
    top = max([void, *classes.tolist()])
    dtype = smallest_dtype(top) if min([void, *classes.tolist()]) >= 0 else np.int64
    order = np.argsort(known)
    pos = np.searchsorted(known[order], arr)
    pos = np.clip(pos, 0, max(len(known) - 1, 0))
    hit = known[order][pos] == arr if len(known) else np.zeros(arr.shape, bool)
    out = np.full(arr.shape, void, dtype)
    if len(known):
        out[hit] = classes[order][pos][hit]
    return out
