"""Frames and masks in their wire form: compressed COCO RLE, URLs of the image endpoints."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal
from urllib.parse import quote

import numpy as np
import numpy.typing as npt

from masklab.core import polygon as _polygon
from masklab.core import rle as _rle
from masklab.core.labels import LabelMap
from masklab.core.rle import RLE
from masklab.errors import MaskLabError
from masklab.store import Store, Version
from masklab.store.model import Annotation, Frame, Mask, Source
from masklab.viewer.schemas import (
    AnnotationOut,
    FrameOut,
    MaskOut,
    MaskValueOut,
    RleOut,
    SourceOut,
    label_map_out,
)

Geometry = Literal["rle", "polygons", "box", "none"]


def url(*segments: str) -> str:
    """An API URL from ids, each percent-encoded as one path segment (``/`` too)."""
    return "/api/" + "/".join(quote(s, safe="") for s in segments)


def frame_url(version: Version, frame_id: str, *rest: str) -> str:
    """URL of a frame's endpoint (``rest``: ``thumbnail``, ``sources``, ``SID``, ``image``)."""
    base = url("versions", version.dataset.name, version.name, "frames", frame_id)
    return base + "".join("/" + quote(s, safe="") for s in rest)


def rles_out(rles: Sequence[RLE]) -> list[RleOut]:
    """RLEs as wire dicts, compressed in one batch."""
    if not rles:
        return []
    return [
        RleOut(size=(int(d["size"][0]), int(d["size"][1])), counts=str(d["counts"]))
        for d in _rle.to_coco_batch(list(rles))
    ]


def value_rles(array: npt.NDArray[Any]) -> list[tuple[int, RLE]]:
    """One RLE per distinct value of a 2-D array, values ascending.

    One pass over the column-major pixels finds the runs of equal values; each value's RLE
    is then its runs and the gaps between them (no full-frame comparison per value, so a
    class map with thousands of ids costs what one with two does).

    >>> [(v, r.counts.tolist()) for v, r in value_rles(np.array([[0, 1], [1, 1]]))]
    [(0, [0, 1, 3]), (1, [1, 3])]
    """
    h, w = array.shape
    flat = np.ravel(array, order="F")
    n = flat.size
    if n == 0:
        return []
    cut = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    starts = np.concatenate([[0], cut])
    ends = np.concatenate([cut, [n]])
    values = flat[starts]
    order = np.argsort(values, kind="stable")  # runs of each value stay in pixel order
    out = []
    for group in np.split(order, np.flatnonzero(np.diff(values[order])) + 1):
        s, e = starts[group], ends[group]
        counts = np.empty(2 * s.size + 1, np.uint64)
        counts[0:-1:2] = s - np.concatenate([[0], e[:-1]])  # gaps before each run
        counts[1::2] = e - s
        counts[-1] = n - e[-1]  # a trailing 0 is dropped by the RLE's canonical form
        out.append((int(values[group[0]]), RLE((h, w), counts)))
    return out


def mask_out(store: Store, labels: LabelMap, mask_id: str, mask: Mask) -> MaskOut:
    """A source's mask read from the store, one RLE per distinct value (or the read error)."""
    try:
        array = store.read_mask(mask, labels)
    except MaskLabError as err:
        return MaskOut(id=mask_id, mode=mask.mode, size=mask.size, values=[], error=str(err))
    pairs = value_rles(array)
    rles = rles_out([r for _, r in pairs])
    return MaskOut(
        id=mask_id,
        mode=mask.mode,
        size=(int(array.shape[0]), int(array.shape[1])),
        values=[MaskValueOut(value=v, rle=r) for (v, _), r in zip(pairs, rles, strict=True)],
    )


def source_out(
    store: Store, version: Version, labels: LabelMap, frame: Frame, s: Source
) -> SourceOut:
    """A source with its image URL and its masks."""
    image = None if s.uri is None else frame_url(version, frame.id, "sources", s.id, "image")
    return SourceOut(
        id=s.id,
        width=s.width,
        height=s.height,
        content_type=s.content_type,
        image=image,
        masks=[mask_out(store, labels, mid, m) for mid, m in sorted(s.masks.items())],
    )


def annotation_rle(frame: Frame, a: Annotation) -> RLE | None:
    """The annotation's mask: its RLE, else its polygons rasterised on its source's size."""
    if a.rle is not None:
        return a.rle
    size = frame.source(a.source).size
    if a.polygons and size is not None:
        try:
            return _polygon.to_rle([list(p) for p in a.polygons], size[0], size[1])
        except MaskLabError:
            return None
    return None


def annotations_out(frame: Frame) -> list[AnnotationOut]:
    """The frame's annotations with their masks as compressed RLE."""
    masks = [annotation_rle(frame, a) for a in frame.annotations]
    present = [m for m in masks if m is not None]
    encoded = iter(rles_out(present))
    out = []
    for i, (a, m) in enumerate(zip(frame.annotations, masks, strict=True)):
        bbox: tuple[float, float, float, float] | None = a.box
        area = None
        if m is not None:
            area = _rle.area(m)
            x, y, w, h = (float(v) for v in _rle.bbox(m))
            bbox = (x, y, w, h) if a.box is None else a.box
        geometry: Geometry = (
            "rle"
            if a.rle is not None
            else "polygons"
            if a.polygons
            else "box"
            if a.box is not None
            else "none"
        )
        out.append(
            AnnotationOut(
                index=i,
                instance_id=a.instance_id,
                labels=list(a.labels),
                class_id=a.class_id,
                source=a.source,
                score=a.score,
                iscrowd=a.iscrowd,
                area=area,
                bbox=bbox,
                rle=next(encoded) if m is not None else None,
                geometry=geometry,
            )
        )
    return out


def frame_out(version: Version, labels: LabelMap, frame: Frame) -> FrameOut:
    """The whole frame in wire form."""
    store = version.store
    return FrameOut(
        id=frame.id,
        meta=dict(frame.meta),
        context_id=frame.context_id,
        timestamp=frame.timestamp,
        label_map=label_map_out(labels),
        sources=[source_out(store, version, labels, frame, s) for s in frame.sources],
        annotations=annotations_out(frame),
    )


def frame_labels(labels: LabelMap, frame: Frame) -> list[str]:
    """Annotation labels and the label-map names of the frame's pixel-mask values, sorted."""
    names: set[str] = set()
    for a in frame.annotations:
        names.update(a.labels)
    for s in frame.sources:
        for m in s.masks.values():
            if m.mode == "pixel" and m.values:
                for v in m.values:
                    if v in labels:
                        names.update(labels.by_id(v).names)
    return sorted(names)
