"""The store's value types: frames, their sources, masks and annotations.

The model is ClearML Hyper-Datasets': a :class:`Frame` (id, context, timestamp, meta) holds
one or more :class:`Source` s (an image and its masks; several sources make a frame group,
e.g. left/right cameras) and :class:`Annotation` s (ROIs: labels, class id, box, polygons,
RLE, score). A source's masks are references by id: a pixel-segmentation mask (a class-index
PNG whose values are the version's label ids) or an alpha mask (opacity, no labels).

Frames are immutable values. Their :attr:`Frame.key` is the sha256 of a canonical JSON form of
everything they hold, so the catalog stores one row per distinct frame and a version is a set
of (frame id -> key) members.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from masklab.core import rle as _rle
from masklab.core.rle import RLE
from masklab.errors import StoreError

__all__ = [
    "BLOB_SCHEME",
    "Annotation",
    "Frame",
    "Mask",
    "MaskMode",
    "Source",
    "blob_uri",
    "masks_by_id",
]

MaskMode = Literal["pixel", "alpha"]
BLOB_SCHEME = "blob:sha256:"
DEFAULT_SOURCE = "default"


def blob_uri(digest: str) -> str:
    """The URI of a blob in the store's blob area (``blob:sha256:<hex>``)."""
    return BLOB_SCHEME + digest


@dataclass(frozen=True, slots=True)
class Mask:
    """A mask of a source: where its PNG is and how to read it.

    ``mode="pixel"``: a class-index map whose values are label ids of the version's label map
    (an RGB mask is read through the label map's colours, ClearML's ``mask_labels``).
    ``mode="alpha"``: opacity 0-255, no labels. ``values`` are the distinct pixel values and
    ``size`` the ``(h, w)`` (both filled in when the store writes the mask), so queries never
    decode a mask and a mask whose size differs from its source is refused.
    """

    uri: str
    mode: MaskMode = "pixel"
    values: tuple[int, ...] | None = None
    size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.uri, str) or not self.uri:
            raise StoreError(f"a mask needs a URI, got {self.uri!r}")
        if self.mode not in ("pixel", "alpha"):
            raise StoreError(f"mask mode must be 'pixel' or 'alpha', got {self.mode!r}")
        if self.values is not None:
            object.__setattr__(self, "values", tuple(sorted({int(v) for v in self.values})))
        if self.size is not None:
            object.__setattr__(self, "size", (int(self.size[0]), int(self.size[1])))


def masks_by_id(
    masks: str | Mask | Mapping[str, str | Mask] | Sequence[str | Mask] | None,
) -> dict[str, Mask]:
    """Normalise ClearML's three ways to give masks: one mask (id ``"00"``), a dict of
    id -> mask, or a list whose ids are assigned ``"00"``, ``"01"``, ...

    >>> sorted(masks_by_id(["a.png", "b.png"]))
    ['00', '01']
    """
    if masks is None:
        return {}
    if isinstance(masks, (str, Mask)):
        masks = [masks]
    if isinstance(masks, Mapping):
        items = [(str(k), v) for k, v in masks.items()]
    else:
        items = [(f"{i:02d}", v) for i, v in enumerate(masks)]
    return {k: v if isinstance(v, Mask) else Mask(str(v)) for k, v in items}


@dataclass(frozen=True, slots=True)
class Source:
    """One image of a frame and its masks. ``width``/``height`` are in pixels."""

    uri: str | None
    id: str = DEFAULT_SOURCE
    width: int | None = None
    height: int | None = None
    content_type: str | None = None
    timestamp: int | None = None
    masks: Mapping[str, Mask] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "masks", masks_by_id(self.masks))
        for name in ("width", "height"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v <= 0):
                raise StoreError(f"source {self.id!r}: {name} must be a positive int, got {v!r}")

    @property
    def size(self) -> tuple[int, int] | None:
        """``(h, w)`` when both are known."""
        if self.height is None or self.width is None:
            return None
        return (self.height, self.width)


@dataclass(frozen=True, slots=True)
class Annotation:
    """A region of interest on a frame (``source=None``) or on one of its sources.

    Geometry is any of ``box`` (COCO ``xywh``), ``polygons`` (COCO rings) and ``rle``; the
    catalog keeps the RLE as a compressed COCO string with its area and bbox, so queries never
    decode pixels. ``labels`` is a list, as in ClearML (``["person", "sitting"]``).
    """

    labels: tuple[str, ...] = ()
    class_id: int | None = None
    box: tuple[float, float, float, float] | None = None
    polygons: tuple[tuple[float, ...], ...] | None = None
    rle: RLE | None = None
    score: float | None = None
    iscrowd: bool = False
    instance_id: int | None = None
    source: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.labels, str):
            object.__setattr__(self, "labels", (self.labels,))
        else:
            object.__setattr__(self, "labels", tuple(str(x) for x in self.labels))
        if self.box is not None:
            box = tuple(float(v) for v in self.box)
            if len(box) != 4 or not all(math.isfinite(v) for v in box) or box[2] < 0 or box[3] < 0:
                raise StoreError(f"a box is (x, y, w, h) with w, h >= 0, got {self.box!r}")
            object.__setattr__(self, "box", box)
        if self.polygons is not None:
            object.__setattr__(
                self, "polygons", tuple(tuple(float(v) for v in ring) for ring in self.polygons)
            )
        if self.rle is not None and not isinstance(self.rle, RLE):
            raise StoreError(f"rle must be a masklab RLE, got {type(self.rle).__name__}")

    @property
    def area(self) -> int | None:
        """Mask area in pixels (None without an RLE)."""
        return None if self.rle is None else _rle.area(self.rle)


@dataclass(frozen=True, slots=True)
class Frame:
    """An immutable frame: sources, annotations, context and metadata.

    >>> f = Frame("img1", [Source("cat.jpg", width=4, height=3, masks="cat.png")])
    >>> f.sources[0].masks["00"].uri, len(f.key)
    ('cat.png', 64)
    """

    id: str
    sources: tuple[Source, ...]
    annotations: tuple[Annotation, ...] = ()
    context_id: str | None = None
    timestamp: int | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise StoreError(f"a frame needs a non-empty string id, got {self.id!r}")
        sources = tuple(self.sources)
        if not sources:
            raise StoreError(f"frame {self.id!r} has no source; give it at least one")
        ids = [s.id for s in sources]
        if len(set(ids)) != len(ids):
            raise StoreError(f"frame {self.id!r}: source ids repeat: {ids}")
        object.__setattr__(self, "sources", sources)
        anns = tuple(self.annotations)
        for a in anns:
            if a.source is not None and a.source not in ids:
                raise StoreError(
                    f"frame {self.id!r}: an annotation names source {a.source!r}; "
                    f"the frame's sources are {ids}"
                )
        object.__setattr__(self, "annotations", anns)

    @classmethod
    def single(
        cls,
        id: str,
        uri: str | None,
        *,
        width: int | None = None,
        height: int | None = None,
        masks: str | Mask | Mapping[str, str | Mask] | Sequence[str | Mask] | None = None,
        annotations: Iterable[Annotation] = (),
        context_id: str | None = None,
        timestamp: int | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> Frame:
        """A one-source frame, like ClearML's ``SingleFrame``."""
        src = Source(uri, width=width, height=height, masks=masks_by_id(masks))
        return cls(id, (src,), tuple(annotations), context_id, timestamp, dict(meta or {}))

    def source(self, source_id: str | None = None) -> Source:
        """The source with this id (the first one when None)."""
        if source_id is None:
            return self.sources[0]
        for s in self.sources:
            if s.id == source_id:
                return s
        raise StoreError(
            f"frame {self.id!r} has no source {source_id!r}; it has {[s.id for s in self.sources]}"
        )

    def with_annotations(self, annotations: Iterable[Annotation]) -> Frame:
        """A copy with other annotations (frames are immutable)."""
        return replace(self, annotations=tuple(annotations))

    @property
    def key(self) -> str:
        """sha256 of the canonical content: equal frames share one catalog row."""
        return content_key(
            canonical_json(frame_doc(self)),
            (canonical_json(annotation_doc(a)) for a in self.annotations),
        )


# ---- canonical documents (what the catalog stores, and what the key hashes)


def source_doc(s: Source) -> dict[str, Any]:
    """JSON-ready form of a source."""
    return {
        "id": s.id,
        "uri": s.uri,
        "width": s.width,
        "height": s.height,
        "content_type": s.content_type,
        "timestamp": s.timestamp,
        "masks": {
            k: {
                "uri": m.uri,
                "mode": m.mode,
                "values": None if m.values is None else list(m.values),
                "size": None if m.size is None else list(m.size),
            }
            for k, m in sorted(s.masks.items())
        },
    }


def source_from_doc(d: Mapping[str, Any]) -> Source:
    """Inverse of :func:`source_doc`."""
    masks = {
        k: Mask(
            m["uri"],
            m["mode"],
            None if m.get("values") is None else tuple(m["values"]),
            None if m.get("size") is None else (m["size"][0], m["size"][1]),
        )
        for k, m in d.get("masks", {}).items()
    }
    return Source(
        d.get("uri"),
        id=d["id"],
        width=d.get("width"),
        height=d.get("height"),
        content_type=d.get("content_type"),
        timestamp=d.get("timestamp"),
        masks=masks,
    )


def frame_doc(f: Frame) -> dict[str, Any]:
    """JSON-ready form of a frame without its annotations (those have their own rows)."""
    return {
        "id": f.id,
        "context_id": f.context_id,
        "timestamp": f.timestamp,
        "meta": dict(f.meta),
        "sources": [source_doc(s) for s in f.sources],
    }


def annotation_doc(a: Annotation, rle_string: str | None = None) -> dict[str, Any]:
    """JSON-ready form of an annotation; ``rle_string`` saves re-encoding a known string."""
    if a.rle is not None and rle_string is None:
        rle_string = a.rle.to_coco()["counts"]
    return {
        "labels": list(a.labels),
        "class_id": a.class_id,
        "box": None if a.box is None else list(a.box),
        "polygons": None if a.polygons is None else [list(r) for r in a.polygons],
        "rle": None if a.rle is None else {"size": list(a.rle.size), "counts": rle_string},
        "score": a.score,
        "iscrowd": bool(a.iscrowd),
        "instance_id": a.instance_id,
        "source": a.source,
        "meta": dict(a.meta),
    }


def canonical_json(obj: Any) -> str:
    """Deterministic JSON (sorted keys, no spaces): the hashed and stored form."""
    if not obj and isinstance(obj, dict):
        return "{}"
    try:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as e:
        raise StoreError(f"frame metadata must be JSON-serialisable: {e}") from e


def content_key(frame_text: str, annotation_texts: Iterable[str]) -> str:
    """sha256 hex of a frame's canonical JSON and its annotations' (one per line)."""
    h = hashlib.sha256(frame_text.encode("utf-8"))
    for text in annotation_texts:
        h.update(b"\n")
        h.update(text.encode("utf-8"))
    return h.hexdigest()
