"""What changed between two versions: frames added, removed and changed, and per changed mask
the pixels that differ.

Frames are content-addressed, so the frame-level diff is a set difference in SQL (members of
A and B joined on frame id, keys compared) and touches no pixels. Only changed frames are
loaded: instance masks are compared on their runs (``area(a xor b)``), pixel masks decoded.
Annotations are matched by instance id when every one has a distinct id, else by position.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from sqlalchemy import Connection, and_, select

from masklab.core import rle as _rle
from masklab.core.labels import LabelMap
from masklab.errors import StoreError
from masklab.store import catalog as cat
from masklab.store.model import Annotation, Frame
from masklab.store.store import Store, Version

__all__ = ["FrameDiff", "MaskChange", "VersionDiff", "diff"]

ChangeKind = Literal["added", "removed", "changed", "relabeled"]


@dataclass(frozen=True, slots=True)
class MaskChange:
    """One mask of a changed frame: which, how, and how many pixels differ."""

    mask: str  # "annotation 3", "instance 7" or "<source>/<mask id>"
    kind: ChangeKind
    pixels: int
    detail: str = ""


@dataclass(frozen=True, slots=True)
class FrameDiff:
    """A frame present in both versions with different content."""

    frame_id: str
    masks: tuple[MaskChange, ...]
    other: tuple[str, ...] = ()  # non-mask fields that changed (meta, sources, ...)

    @property
    def pixels(self) -> int:
        """Pixels that differ over all its masks."""
        return sum(m.pixels for m in self.masks)


@dataclass
class VersionDiff:
    """Frames added in B, removed from A, and changed between them."""

    a: str
    b: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[FrameDiff] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "a": self.a,
            "b": self.b,
            "added": self.added,
            "removed": self.removed,
            "changed": [
                {
                    "frame_id": f.frame_id,
                    "pixels": f.pixels,
                    "other": list(f.other),
                    "masks": [
                        {"mask": m.mask, "kind": m.kind, "pixels": m.pixels, "detail": m.detail}
                        for m in f.masks
                    ],
                }
                for f in self.changed
            ],
        }


def _only_in(conn: Connection, mine: int, other: int) -> list[str]:
    """Frame ids in version ``mine`` and not in ``other``, in ``mine``'s order."""
    m = cat.members.alias("m")
    o = cat.members.alias("o")
    return list(
        conn.execute(
            select(m.c.frame_id)
            .select_from(
                m.outerjoin(o, and_(o.c.version_id == other, o.c.frame_id == m.c.frame_id))
            )
            .where(m.c.version_id == mine, o.c.frame_id.is_(None))
            .order_by(m.c.seq)
        ).scalars()
    )


def changed_ids(a: Version, b: Version) -> tuple[list[str], list[str], list[tuple[str, str, str]]]:
    """Frame ids added in ``b``, removed from ``a``, and ``(id, key_a, key_b)`` of those whose
    content differs: three indexed joins, no frame loaded."""
    if a.store is not b.store and a.store.catalog.url != b.store.catalog.url:
        raise StoreError("diff compares versions of one store")
    ma = cat.members.alias("ma")
    mb = cat.members.alias("mb")
    with a.store.catalog.read() as conn:
        added_ids = _only_in(conn, b.id, a.id)
        removed_ids = _only_in(conn, a.id, b.id)
        changed = [
            (r[0], r[1], r[2])
            for r in conn.execute(
                select(ma.c.frame_id, ma.c.frame_key, mb.c.frame_key)
                .select_from(
                    ma.join(mb, and_(mb.c.version_id == b.id, mb.c.frame_id == ma.c.frame_id))
                )
                .where(ma.c.version_id == a.id, ma.c.frame_key != mb.c.frame_key)
                .order_by(mb.c.seq)
            )
        ]
    return added_ids, removed_ids, changed


def diff(a: Version, b: Version, *, pixels: bool = True) -> VersionDiff:
    """Compare two versions of a dataset (``b`` against ``a``). With ``pixels`` each changed
    frame says per mask how many pixels differ; without, only which frames changed."""
    added, removed, changed = changed_ids(a, b)
    out = VersionDiff(a.ref, b.ref, added, removed)
    if not pixels:
        out.changed = [FrameDiff(fid, ()) for fid, _, _ in changed]
        return out
    keys_a = [k for _, k, _ in changed]
    keys_b = [k for _, _, k in changed]
    labels = b.label_map
    for fa, fb in zip(a.frames_by_keys(keys_a), b.frames_by_keys(keys_b), strict=True):
        out.changed.append(frame_diff(b.store, labels, fa, fb))
    return out


def frame_diff(store: Store, labels: LabelMap, fa: Frame, fb: Frame) -> FrameDiff:
    """Per-mask pixel differences between two contents of one frame (RGB pixel masks are
    read through ``labels``)."""
    masks = list(_annotation_changes(fa.annotations, fb.annotations))
    masks.extend(_pixel_mask_changes(store, labels, fa, fb))
    other = []
    if dict(fa.meta) != dict(fb.meta):
        other.append("meta")
    if fa.context_id != fb.context_id or fa.timestamp != fb.timestamp:
        other.append("context/timestamp")
    if [(s.id, s.uri, s.size) for s in fa.sources] != [(s.id, s.uri, s.size) for s in fb.sources]:
        other.append("sources")
    return FrameDiff(fa.id, tuple(masks), tuple(other))


def _keyed(anns: Sequence[Annotation]) -> tuple[str, dict[Any, Annotation]]:
    ids = [a.instance_id for a in anns]
    if ids and None not in ids and len(set(ids)) == len(ids):
        return "instance", {i: a for i, a in zip(ids, anns, strict=True)}
    return "annotation", dict(enumerate(anns))


def _annotation_changes(
    old: Sequence[Annotation], new: Sequence[Annotation]
) -> Iterator[MaskChange]:
    kind_a, ka = _keyed(old)
    kind_b, kb = _keyed(new)
    if kind_a != kind_b:  # ids appeared or vanished: match by position
        kind_a, ka = "annotation", dict(enumerate(old))
        kb = dict(enumerate(new))
    for k in sorted(set(ka) | set(kb), key=str):
        name = f"{kind_a} {k}"
        a, b = ka.get(k), kb.get(k)
        if a is None and b is not None:
            yield MaskChange(name, "added", b.area or 0, "/".join(b.labels))
        elif b is None and a is not None:
            yield MaskChange(name, "removed", a.area or 0, "/".join(a.labels))
        elif a is not None and b is not None and a != b:
            px = _rle_pixels(a, b)
            if px:
                yield MaskChange(name, "changed", px, "/".join(b.labels))
            else:
                before = "/".join(a.labels) or str(a.class_id)
                after = "/".join(b.labels) or str(b.class_id)
                yield MaskChange(name, "relabeled", 0, f"{before} -> {after}")


def _rle_pixels(a: Annotation, b: Annotation) -> int:
    if a.rle is None and b.rle is None:
        return 0
    if a.rle is None or b.rle is None:
        return (a.area or 0) + (b.area or 0)
    if a.rle.size != b.rle.size:
        return _rle.area(a.rle) + _rle.area(b.rle)
    return _rle.area(_rle.merge([a.rle, b.rle], "xor"))


def _pixel_mask_changes(
    store: Store, labels: LabelMap, fa: Frame, fb: Frame
) -> Iterator[MaskChange]:
    sa = {s.id: s for s in fa.sources}
    sb = {s.id: s for s in fb.sources}
    for sid in sorted(set(sa) | set(sb)):
        ma = sa[sid].masks if sid in sa else {}
        mb = sb[sid].masks if sid in sb else {}
        for mid in sorted(set(ma) | set(mb)):
            name = f"{sid}/{mid}"
            a, b = ma.get(mid), mb.get(mid)
            if a == b:
                continue
            if a is None or b is None:
                m = b if a is None else a
                arr = store.read_mask(m, labels)  # type: ignore[arg-type]
                yield MaskChange(name, "added" if a is None else "removed", int(arr.size))
                continue
            xa = store.read_mask(a, labels)
            xb = store.read_mask(b, labels)
            if xa.shape != xb.shape:
                yield MaskChange(name, "changed", int(max(xa.size, xb.size)), "size changed")
            else:
                px = int(np.count_nonzero(xa != xb))
                if px or a.mode != b.mode:
                    yield MaskChange(name, "changed", px, f"{a.mode} mask")
