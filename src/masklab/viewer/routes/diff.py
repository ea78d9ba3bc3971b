"""``/api/diff/{dataset}/{a}/{b}/frames/{frame_id}``: one frame in two versions, pixel diff.

Annotations are matched as :mod:`masklab.store.diff` matches them (by instance id when every
annotation on both sides has a distinct one, else by position); an instance mask's changed
pixels are ``a xor b`` on the runs. Pixel and alpha masks are matched by source and mask id,
decoded (each through its own version's label map) and compared value by value. A frame only
in B is ``added`` (all its masks added), only in A ``removed``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, HTTPException, Path

from masklab.core import rle as _rle
from masklab.core.labels import LabelMap
from masklab.core.rle import RLE
from masklab.errors import MaskLabError, NotFoundError
from masklab.store import Store, Version
from masklab.store.model import Annotation, Frame, Mask
from masklab.viewer.deps import StoreDep, find_version, segment
from masklab.viewer.routes._encode import annotation_rle, rles_out
from masklab.viewer.schemas import ChangeOut, FrameDiffOut

router = APIRouter(prefix="/api/diff", tags=["diff"])

Kind = Literal["added", "removed", "changed", "relabeled"]
Change = tuple[Kind, str, int | None, list[str], int, RLE | None]  # kind, mask, id, labels, px, rle


@router.get("/{dataset}/{version_a}/{version_b}/frames/{frame_id}")
def frame_diff(
    store: StoreDep,
    dataset: Annotated[str, Path(description="Dataset name, percent-encoded.")],
    version_a: Annotated[str, Path(description="Version A (before), percent-encoded.")],
    version_b: Annotated[str, Path(description="Version B (after), percent-encoded.")],
    frame_id: Annotated[str, Path(description="Frame id, percent-encoded.")],
) -> FrameDiffOut:
    """What changed in one frame from version A to version B, pixels included."""
    name = segment(dataset, "dataset")
    va = find_version(store, name, segment(version_a, "version"))
    vb = find_version(store, name, segment(version_b, "version"))
    fid = segment(frame_id, "frame")
    fa, fb = _frame_or_none(va, fid), _frame_or_none(vb, fid)
    if fa is None and fb is None:
        raise HTTPException(404, f"neither {va.ref} nor {vb.ref} has frame {fid!r}")
    if fa is not None and fb is not None and fa.key == fb.key:
        return FrameDiffOut(frame=fid, a=va.ref, b=vb.ref, status="same", changes=[])
    status: Literal["added", "removed", "changed"] = (
        "added" if fa is None else "removed" if fb is None else "changed"
    )
    changes = list(_annotation_changes(fa, fb))
    changes += _mask_changes(store, va.label_map, vb.label_map, fa, fb)
    encoded = iter(rles_out([c[5] for c in changes if c[5] is not None]))
    return FrameDiffOut(
        frame=fid,
        a=va.ref,
        b=vb.ref,
        status=status,
        changes=[
            ChangeOut(
                kind=kind,
                mask=mask,
                instance_id=iid,
                labels=labels,
                pixels=px,
                rle=next(encoded) if r is not None else None,
            )
            for kind, mask, iid, labels, px, r in changes
        ],
        other=_other(fa, fb) if fa is not None and fb is not None else [],
    )


def _frame_or_none(version: Version, frame_id: str) -> Frame | None:
    try:
        return version.frame(frame_id)
    except NotFoundError:
        return None


def _other(fa: Frame, fb: Frame) -> list[str]:
    out = []
    if dict(fa.meta) != dict(fb.meta):
        out.append("meta")
    if fa.context_id != fb.context_id or fa.timestamp != fb.timestamp:
        out.append("context/timestamp")
    if [(s.id, s.uri, s.size) for s in fa.sources] != [(s.id, s.uri, s.size) for s in fb.sources]:
        out.append("sources")
    return out


def _keyed(anns: Sequence[Annotation]) -> dict[Any, Annotation] | None:
    """Annotations by instance id when every one has a distinct id, else None."""
    ids = [a.instance_id for a in anns]
    if ids and None not in ids and len(set(ids)) == len(ids):
        return dict(zip(ids, anns, strict=True))
    return None


def _annotation_changes(fa: Frame | None, fb: Frame | None) -> Iterator[Change]:
    old = fa.annotations if fa is not None else ()
    new = fb.annotations if fb is not None else ()
    ka, kb = _keyed(old), _keyed(new)
    kind = "instance"
    if (ka is None and old) or (kb is None and new):  # some lack distinct ids: by position
        kind, ka, kb = "annotation", dict(enumerate(old)), dict(enumerate(new))
    ka, kb = ka or {}, kb or {}
    for k in sorted(set(ka) | set(kb), key=lambda k: (str(type(k)), k)):
        a, b = ka.get(k), kb.get(k)
        name = f"{kind} {k}"
        ra = None if a is None or fa is None else annotation_rle(fa, a)
        rb = None if b is None or fb is None else annotation_rle(fb, b)
        if a is None and b is not None:
            yield ("added", name, b.instance_id, list(b.labels), _area(rb), rb)
        elif b is None and a is not None:
            yield ("removed", name, a.instance_id, list(a.labels), _area(ra), ra)
        elif a is not None and b is not None and a != b:
            labels = list(b.labels)
            if ra is not None and rb is not None and ra.size == rb.size:
                xor = _rle.merge([ra, rb], "xor")
                px = _rle.area(xor)
                yield ("changed" if px else "relabeled", name, b.instance_id, labels, px, xor)
            elif ra is None and rb is None:
                yield ("relabeled", name, b.instance_id, labels, 0, None)
            else:  # a mask appeared, vanished or changed size: every pixel of both differs
                px = _area(ra) + _area(rb)
                one = ra if rb is None else rb if ra is None else None
                yield ("changed", name, b.instance_id, labels, px, one)


def _area(r: RLE | None) -> int:
    return 0 if r is None else _rle.area(r)


def _masks(frame: Frame | None) -> dict[str, Mask]:
    if frame is None:
        return {}
    return {f"{s.id}/{mid}": m for s in frame.sources for mid, m in s.masks.items()}


def _mask_changes(
    store: Store, labels_a: LabelMap, labels_b: LabelMap, fa: Frame | None, fb: Frame | None
) -> list[Change]:
    ma, mb = _masks(fa), _masks(fb)
    out: list[Change] = []
    for name in sorted(set(ma) | set(mb)):
        a, b = ma.get(name), mb.get(name)
        if a == b:
            continue
        xa = _read(store, a, labels_a)
        xb = _read(store, b, labels_b)
        if xa is None and xb is not None:
            out.append(("added", name, None, _names(labels_b, xb, b), int(xb.size), _full(xb)))
        elif xb is None and xa is not None:
            out.append(("removed", name, None, _names(labels_a, xa, a), int(xa.size), _full(xa)))
        elif xa is not None and xb is not None:
            if xa.shape != xb.shape:
                out.append(("changed", name, None, [], int(max(xa.size, xb.size)), None))
                continue
            differ = xa != xb
            px = int(np.count_nonzero(differ))
            changed = np.unique(np.concatenate([xa[differ], xb[differ]]))
            labels = _names(labels_b, changed, b)
            out.append(("changed", name, None, labels, px, _rle.encode(differ)))
    return out


def _read(store: Store, mask: Mask | None, labels: LabelMap) -> np.ndarray[Any, Any] | None:
    if mask is None:
        return None
    try:
        return store.read_mask(mask, labels)
    except MaskLabError as err:
        raise HTTPException(502, f"a mask of this frame cannot be read: {err}") from None


def _full(x: np.ndarray[Any, Any]) -> RLE:
    return _rle.full((int(x.shape[0]), int(x.shape[1])))


def _names(labels: LabelMap, values: np.ndarray[Any, Any], mask: Mask | None) -> list[str]:
    """Label names of the pixel values involved (none for alpha masks)."""
    if mask is None or mask.mode != "pixel":
        return []
    names: list[str] = []
    for v in np.unique(values).tolist():
        if v in labels:
            names.extend(n for n in labels.by_id(int(v)).names if n not in names)
    return names
