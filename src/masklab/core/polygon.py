"""Polygons: COCO-exact rasterisation and lossless tracing of masks.

Coordinates are ``(x, y)`` in pixel units with pixel ``(col c, row r)`` covering
``[c, c+1) x [r, r+1)``: integers are pixel *corners*, the centre of a pixel is at
``n + 0.5`` (COCO's convention, ``reference/formats.md`` §1.5).

* :func:`to_rle` rasterises exactly as pycocotools' ``rleFrPoly`` does (5x grid snap, DDA,
  column-centre crossings, even-odd per ring), so the pixels equal pycocotools'
  ``merge(frPyObjects(...))`` for every polygon it accepts. COCO's list of flat lists is
  the **union** of its rings; a :class:`Polygons` value is the union of its parts, each
  part its outer ring minus its holes. Unlike pycocotools, a ring with fewer than three
  points or an odd number of coordinates is an error, never a silently dropped value.
* :func:`from_mask` traces a mask into :class:`Polygons` whose rings run along pixel
  edges (integer corners), so ``to_rle(from_mask(m), h, w)`` gives back exactly ``m``:
  holes, islands inside holes and diagonal touches included.
* :meth:`Polygons.to_coco` writes COCO rings that pycocotools rasterises to the same
  pixels: each hole is joined to its outer ring by a zero-width "keyhole" bridge, which
  the even-odd fill cancels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from masklab.core import rle as _rle
from masklab.core.rle import RLE
from masklab.errors import MaskFormatError

__all__ = [
    "Part",
    "Polygons",
    "box_to_rle",
    "from_mask",
    "to_rle",
    "to_rle_batch",
]

_SCALE = 5.0  # pycocotools snaps vertices to a 1/5 px grid
_INT_MIN = -(2**31)  # what (int)NaN gives on x86: a zero-length edge's DDA sample

Coco = Sequence[Sequence[float]]


def _ring(points: npt.ArrayLike, what: str) -> npt.NDArray[np.float64]:
    arr = np.array(points, dtype=np.float64)
    if arr.ndim == 1:
        if arr.size % 2:
            raise MaskFormatError(
                f"{what} has an odd number of coordinates ({arr.size}); "
                "a polygon is a flat list x1, y1, x2, y2, ..."
            )
        arr = arr.reshape(-1, 2)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise MaskFormatError(f"{what} must be (k, 2) points or a flat list, got shape {arr.shape}")
    if arr.shape[0] < 3:
        raise MaskFormatError(
            f"{what} has {arr.shape[0]} point(s); a polygon needs at least 3 "
            "(pycocotools reads a 4-coordinate polygon as a box)"
        )
    if not np.isfinite(arr).all():
        raise MaskFormatError(f"{what} has a non-finite coordinate")
    arr.flags.writeable = False
    return arr


@dataclass(frozen=True, slots=True, eq=False)
class Part:
    """One connected piece of a mask: an outer ring and the rings of its holes.

    Rings are ``(k, 2)`` float64 arrays of ``(x, y)`` vertices, not closed (the last
    vertex joins the first).
    """

    outer: npt.NDArray[np.float64]
    holes: tuple[npt.NDArray[np.float64], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "outer", _ring(self.outer, "outer ring"))
        holes = tuple(_ring(h, f"hole {i}") for i, h in enumerate(self.holes))
        object.__setattr__(self, "holes", holes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Part):
            return NotImplemented
        return (
            np.array_equal(self.outer, other.outer)
            and len(self.holes) == len(other.holes)
            and all(np.array_equal(a, b) for a, b in zip(self.holes, other.holes, strict=True))
        )

    def __hash__(self) -> int:
        return hash((self.outer.tobytes(), tuple(h.tobytes() for h in self.holes)))


@dataclass(frozen=True, slots=True)
class Polygons:
    """A mask as polygons: the union of ``parts``, each an outer ring minus its holes.

    ``iou`` is the IoU of these polygons' rasterisation with the mask they were traced
    from: 1.0 for an exact trace, less after simplification.
    """

    parts: tuple[Part, ...] = ()
    iou: float = field(default=1.0, compare=False)

    @property
    def has_holes(self) -> bool:
        """True if any part has a hole (which COCO's plain union of rings would fill)."""
        return any(p.holes for p in self.parts)

    @property
    def n_holes(self) -> int:
        """Number of holes over all parts."""
        return sum(len(p.holes) for p in self.parts)

    def to_coco(self, *, keep_holes: bool = True) -> list[list[float]]:
        """COCO ``segmentation``: one flat ``[x1, y1, x2, y2, ...]`` list per part.

        With ``keep_holes`` each hole is joined to its outer ring by a zero-width bridge
        walked there and back; pycocotools' even-odd fill cancels the bridge, so the
        pixels are exactly this value's. Without it holes are left out (filled).

        >>> ring = from_mask(np.pad(np.ones((3, 3), np.uint8), 1) - np.pad([[1]], 2))
        >>> ring.to_coco(keep_holes=False)
        [[1.0, 1.0, 1.0, 4.0, 4.0, 4.0, 4.0, 1.0]]
        """
        out = []
        for part in self.parts:
            ring = _keyhole(part) if keep_holes and part.holes else part.outer
            out.append(ring.reshape(-1).tolist())
        return out


def _keyhole(part: Part) -> npt.NDArray[np.float64]:
    """One ring for a part: at the outer vertex nearest each hole, walk to the hole,
    around it and back along the same segment."""
    outer = part.outer
    inserts: dict[int, list[npt.NDArray[np.float64]]] = {}
    for hole in part.holes:
        j = int(np.argmin(((outer - hole[0]) ** 2).sum(axis=1)))
        inserts.setdefault(j, []).append(hole)
    pieces: list[npt.NDArray[np.float64]] = []
    for j in range(len(outer)):
        pieces.append(outer[j : j + 1])
        for hole in inserts.get(j, ()):
            pieces += [hole, hole[:1], outer[j : j + 1]]
    return np.concatenate(pieces)


# --------------------------------------------------------------------------- rasterise


def _ring_toggles(
    xy: npt.NDArray[np.float64], k: npt.NDArray[np.int64], h: int, w: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Column-major toggle positions of every ring, as pycocotools' rleFrPoly finds them.

    ``xy`` holds the vertices of all rings back to back, ``k`` the vertex count of each.
    Returns ``(positions, ring index)``. rleFrPoly snaps vertices to a 5x grid (C
    truncation), samples every edge with a DDA (endpoints ordered so the rounding does not
    depend on direction), and keeps the sample steps whose ``u`` goes from ``5c+2`` to
    ``5c+3``: a crossing of pixel column ``c``'s centre, at row ``ceil`` of the lower sample.
    Instead of sampling every grid point, this computes those steps directly for all
    edges of all rings at once, with the same floating-point expressions, so the result is
    bit-identical.
    """
    gx = np.trunc(_SCALE * xy[:, 0] + 0.5).astype(np.int64)
    gy = np.trunc(_SCALE * xy[:, 1] + 0.5).astype(np.int64)
    first = np.cumsum(k) - k
    last = first + k - 1
    nxt = np.arange(1, xy.shape[0] + 1)
    nxt[last] = first
    xs, ys, xe, ye = gx, gy, gx[nxt], gy[nxt]
    dx, dy = np.abs(xe - xs), np.abs(ye - ys)
    xdom = dx >= dy
    flip = (xdom & (xs > xe)) | (~xdom & (ys > ye))
    xs, xe = np.where(flip, xe, xs), np.where(flip, xs, xe)
    ys, ye = np.where(flip, ye, ys), np.where(flip, ys, ye)
    n = np.maximum(dx, dy)
    zero = n == 0
    # (ye - ys) / dx for x-major edges, (xe - xs) / dy for y-major ones: n is that divisor
    slope = np.where(xdom, ye - ys, xe - xs) / np.maximum(n, 1)
    xsf, ysf = xs.astype(np.float64), ys.astype(np.float64)
    ring_of_edge = np.repeat(np.arange(k.size), k)

    def minor(base: Any, e: Any, t: Any) -> Any:
        """The DDA's rounded minor coordinate: (int)(base + s * t + .5), as in C."""
        return np.trunc(base[e] + slope[e] * t.astype(np.float64) + 0.5).astype(np.int64)

    # (a) steps inside x-major edges: u = t + xs, a crossing where t + xs = 5c + 2
    ex = np.flatnonzero(xdom & ~zero)
    xs_x = xs[ex]
    c_lo = np.maximum(0, -((2 - xs_x) // 5))  # ceil((xs - 2) / 5)
    cnt = np.maximum(0, np.minimum(w - 1, (xs_x + n[ex] - 3) // 5) - c_lo + 1)
    col_a = np.arange(int(cnt.sum())) + np.repeat(c_lo - (np.cumsum(cnt) - cnt), cnt)
    sl = np.repeat(slope[ex], cnt)
    # v is monotone along an edge, so the lower of samples t and t + 1 is known by the slope
    t = 5 * col_a + 2 - np.repeat(xs_x, cnt) + (sl < 0)
    vmin_a = np.trunc(np.repeat(ysf[ex], cnt) + sl * t + 0.5).astype(np.int64)
    e_a = np.repeat(ex, cnt)

    # (b) steps inside y-major edges: u = trunc(xs + s t + 0.5) is monotone and moves by at
    #     most 1, so each 5c+2 -> 5c+3 step is found by solving for t, then checked exactly.
    ey = np.flatnonzero(~xdom & (slope != 0))
    u_start = minor(xsf, ey, np.zeros_like(ey))
    u_end = minor(xsf, ey, n[ey])
    lo_u, hi_u = np.minimum(u_start, u_end), np.maximum(u_start, u_end)
    c_lo = np.maximum(0, -((2 - lo_u) // 5))  # first K = 5c+2 >= lo_u
    c_hi = np.minimum(w - 1, (hi_u - 3) // 5)  # last K with K + 1 <= hi_u
    cnt = np.maximum(0, c_hi - c_lo + 1)
    col_b = np.arange(int(cnt.sum())) + np.repeat(c_lo - (np.cumsum(cnt) - cnt), cnt)
    e_b = np.repeat(ey, cnt)
    s_e, x_e, n_e = np.repeat(slope[ey], cnt), np.repeat(xsf[ey], cnt), np.repeat(n[ey], cnt)
    kk = 5 * col_b + 2
    rising = s_e > 0
    guess = (kk + 0.5 - x_e) / s_e
    # t: the last sample with u <= K (rising) or u > K (falling); the float guess can be one
    # off, so check both neighbours with the exact expression.
    t = np.clip(np.where(rising, np.ceil(guess) - 1, np.floor(guess)).astype(np.int64), 0, None)
    t = np.minimum(t, n_e - 1)
    u_t = np.trunc(x_e + s_e * t.astype(np.float64) + 0.5)
    u_next = np.trunc(x_e + s_e * (t + 1).astype(np.float64) + 0.5)
    t = t + (np.where(rising, u_next <= kk, u_next > kk) & (t + 2 <= n_e))
    t = t - (np.where(rising, u_t > kk, u_t <= kk) & (t > 0))
    vmin_b = t + np.repeat(ys[ey], cnt)

    cols, vmins, owners = [col_a, col_b], [vmin_a, vmin_b], [e_a, e_b]

    # (c) steps across edge junctions: the last sample of edge j and the first of edge j + 1
    #     are the same vertex unless C's truncation moved a negative coordinate.
    negative = (gx < 0) | (gy < 0)
    if negative.any():
        ring_neg = np.zeros(k.size, bool)
        ring_neg[ring_of_edge[negative]] = True
        ej = np.flatnonzero(ring_neg[ring_of_edge])
        ej = ej[ej != last[ring_of_edge[ej]]]

        def sample(e: Any, t: Any) -> tuple[Any, Any]:
            u = np.where(xdom[e], t + xs[e], minor(xsf, e, t))
            v = np.where(zero[e], _INT_MIN, np.where(xdom[e], minor(ysf, e, t), t + ys[e]))
            return u, v

        ua, va = sample(ej, np.where(flip[ej], 0, n[ej]))
        ub, vb = sample(ej + 1, np.where(flip[ej + 1], n[ej + 1], 0))
        xd = np.where(ub < ua, ub, ub - 1)
        c, rem = np.divmod(xd - 2, 5)
        ok = (ua != ub) & (rem == 0) & (c >= 0) & (c <= w - 1)
        cols.append(c[ok])
        vmins.append(np.minimum(va, vb)[ok])
        owners.append(ej[ok])

    col = np.concatenate(cols)
    # C: yd = ceil(clamp((vmin + .5) / 5 - .5, 0, h)); for integer vmin that is exactly
    # ceil((vmin - 2) / 5), which integer floor division computes without rounding
    yd = np.clip(-((2 - np.concatenate(vmins)) // 5), 0, h)
    return col * h + yd, ring_of_edge[np.concatenate(owners)]


def _rasterise(
    xy: npt.NDArray[np.float64],
    k: npt.NDArray[np.int64],
    ring_group: npt.NDArray[np.int64],
    group_item: npt.NDArray[np.int64],
    n_items: int,
    size: tuple[int, int],
) -> list[RLE]:
    """Rasterise rings; rings of one group combine even-odd, groups of one item by union."""
    h, w = size
    n_pixels = h * w
    if k.size == 0 or n_pixels == 0:
        return [_rle.empty(size) for _ in range(n_items)]
    pos, ring = _ring_toggles(xy, k, h, w)
    # even-odd within a group: sort by (group, position), keep odd multiplicities
    stride = n_pixels + 1
    key = ring_group[ring] * stride + pos
    key.sort(kind="stable")  # the tracer emits long monotone runs: timsort merges them fast
    key = _rle._odd_multiplicities(key)
    group, pos = np.divmod(key, stride)
    item = group_item[group]
    groups_per_item = np.bincount(group_item, minlength=n_items)
    multi = groups_per_item[item] > 1
    if multi.any():
        # union of an item's groups: each group's toggles alternate start (+1) / end (-1)
        m_group, m_pos, m_item = group[multi], pos[multi], item[multi]
        starts = np.flatnonzero(_rle._first_of_runs(m_group))
        rank = np.arange(m_pos.size) - np.repeat(starts, np.diff(starts, append=m_pos.size))
        m_key = m_item * stride + m_pos
        order = np.argsort(m_key, kind="stable")
        m_key = m_key[order]
        level = np.cumsum(np.where(rank % 2 == 0, 1, -1)[order])
        last = _rle._first_of_runs(m_key[::-1])[::-1]
        m_key, level = m_key[last], level[last]
        m_item = m_key // stride
        inside = level > 0
        prev = np.empty_like(inside)
        prev[:1] = False
        prev[1:] = inside[:-1]
        prev[_rle._first_of_runs(m_item)] = False  # each item starts outside
        single_key = item[~multi] * stride + pos[~multi]
        key = np.sort(np.concatenate([single_key, m_key[inside != prev]]), kind="stable")
    else:
        key = item * stride + pos
    item, pos = np.divmod(key, stride)
    keep = pos < n_pixels  # a toggle at the very end changes nothing
    return _rle._from_sorted_toggles(size, item[keep], pos[keep], n_items)


def to_rle_batch(items: Sequence[Polygons | Coco], h: int, w: int) -> list[RLE]:
    """Rasterise many polygon sets on one ``h x w`` frame in one vectorised pass.

    Each item is a :class:`Polygons` (union of parts, holes cut out) or COCO's list of
    flat ``[x1, y1, ...]`` lists (union of rings, pycocotools' semantics).
    """
    size = _rle._check_size((h, w))
    flat: list[float] = []  # COCO rings' coordinates, back to back
    flat_len: list[int] = []
    flat_group: list[int] = []
    flat_where: list[tuple[int, int]] = []
    arrays: list[npt.NDArray[np.float64]] = []  # Polygons rings
    array_group: list[int] = []
    group_item: list[int] = []
    for i, item in enumerate(items):
        if isinstance(item, Polygons):
            for part in item.parts:
                g = len(group_item)
                group_item.append(i)
                arrays.append(part.outer)
                arrays.extend(part.holes)
                array_group.extend([g] * (1 + len(part.holes)))
            continue
        if isinstance(item, (str, bytes)) or not isinstance(item, Sequence):
            raise TypeError(
                f"item {i}: expected Polygons or a list of flat [x1, y1, ...] lists, "
                f"got {type(item).__name__}"
            )
        for j, ring in enumerate(item):
            if isinstance(ring, (str, bytes)) or not isinstance(ring, (Sequence, np.ndarray)):
                raise MaskFormatError(
                    f"item {i}: COCO polygons are a list of flat lists; wrap a single "
                    "polygon as [[x1, y1, x2, y2, ...]]"
                )
            flat.extend(ring)
            flat_len.append(len(ring))
            flat_group.append(len(group_item))
            flat_where.append((i, j))
            group_item.append(i)
    lengths = np.asarray(flat_len, np.int64)
    try:
        coords = np.fromiter(flat, np.float64, len(flat))  # faster than np.array on lists
    except (TypeError, ValueError):
        coords = np.zeros(0)
    if (
        coords.size != lengths.sum()
        or (lengths % 2).any()
        or (lengths < 6).any()
        or not np.isfinite(coords).all()
    ):
        for (i, j), ring in zip(flat_where, _split(flat, flat_len), strict=True):
            _ring(ring, f"item {i} polygon {j}")  # raises the precise error
    xy = np.concatenate([coords.reshape(-1, 2), *arrays]) if arrays else coords.reshape(-1, 2)
    k = np.concatenate([lengths // 2, [len(a) for a in arrays]]).astype(np.int64)
    ring_group = np.asarray(flat_group + array_group, np.int64)
    return _rasterise(xy, k, ring_group, np.asarray(group_item, np.int64), len(items), size)


def _split(flat: list[float], lengths: list[int]) -> list[list[float]]:
    out, at = [], 0
    for n in lengths:
        out.append(flat[at : at + n])
        at += n
    return out


def to_rle(polygons: Polygons | Coco, h: int, w: int) -> RLE:
    """Rasterise polygons on an ``h x w`` frame exactly as pycocotools does.

    ``polygons`` is a :class:`Polygons` value or COCO's list of flat lists (their union).

    >>> to_rle([[1, 1, 3, 1, 3, 3, 1, 3]], 4, 4).counts.tolist()  # pixels cols 1-2 x rows 1-2
    [5, 2, 2, 2, 5]
    """
    return to_rle_batch([polygons], h, w)[0]


def box_to_rle(box: Sequence[float], h: int, w: int) -> RLE:
    """Rasterise the box ``[x, y, w, h]`` as pycocotools' ``frBbox`` (pixel centres inside
    the box snapped to 1/5 px).

    >>> box_to_rle([0, 0, 1, 1], 2, 2).counts.tolist()
    [0, 1, 3]
    """
    vals = np.asarray(box, dtype=np.float64).reshape(-1)
    if vals.size != 4 or not np.isfinite(vals).all():
        raise MaskFormatError(f"box must be four finite numbers [x, y, w, h], got {list(box)!r}")
    x, y, bw, bh = vals.tolist()
    if bw < 0 or bh < 0:
        raise MaskFormatError(f"box width and height must be >= 0, got {list(box)!r}")
    ring = [x, y, x, y + bh, x + bw, y + bh, x + bw, y]
    return to_rle([ring], h, w)


# --------------------------------------------------------------------------- trace


def from_mask(mask: RLE | npt.ArrayLike, *, tolerance: float = 0.0) -> Polygons:
    """Trace a mask (array or RLE) into :class:`Polygons` along pixel edges.

    With ``tolerance == 0`` the trace is exact: ``to_rle(from_mask(m), h, w)`` equals
    ``m``. A positive ``tolerance`` (pixels) simplifies each ring with Douglas-Peucker;
    the result's ``iou`` says how much of the mask it kept.

    >>> p = from_mask(np.array([[1, 1], [1, 0]]))
    >>> p.parts[0].outer.tolist()
    [[0.0, 0.0], [0.0, 2.0], [1.0, 2.0], [1.0, 1.0], [2.0, 1.0], [2.0, 0.0]]
    """
    origin = (0, 0)
    if isinstance(mask, RLE):
        m, origin = _rle.decode_box(mask)  # only the box around the mask, not the frame
    else:
        arr = np.asarray(mask)
        if arr.ndim != 2:
            raise MaskFormatError(f"a mask must be a 2-D array (h, w), got shape {arr.shape}")
        m = (arr != 0).view(np.uint8)
    rows = np.flatnonzero(m.any(axis=1))
    if rows.size == 0:
        return Polygons(())
    cols = np.flatnonzero(m.any(axis=0))
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    crop = m[y0:y1, x0:x1]
    x0, y0 = x0 + origin[0], y0 + origin[1]
    # Trace at 2x: every region is a union of aligned 2x2 blocks, so each contour vertex
    # (a sub-pixel centre) rounds to the nearest pixel corner, giving the crack boundary.
    up = cv2.resize(crop, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    up = cv2.copyMakeBorder(up, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    contours, hierarchy = cv2.findContours(up, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return Polygons(())
    offset = np.array([x0, y0], np.int64)
    rings = [_clean_ring(c.reshape(-1, 2).astype(np.int64) // 2 + offset) for c in contours]
    parent = hierarchy[0][:, 3]
    parts: list[Part] = []
    index: dict[int, int] = {}
    for i in np.flatnonzero(parent < 0).tolist():
        if len(rings[i]) >= 3:
            index[i] = len(parts)
            parts.append(Part(rings[i].astype(np.float64)))
    holes: dict[int, list[npt.NDArray[np.float64]]] = {}
    for i in np.flatnonzero(parent >= 0).tolist():
        if len(rings[i]) >= 3 and int(parent[i]) in index:
            holes.setdefault(index[int(parent[i])], []).append(rings[i].astype(np.float64))
    parts = [Part(p.outer, tuple(holes.get(j, ()))) for j, p in enumerate(parts)]
    exact = Polygons(tuple(parts))
    if tolerance <= 0:
        return exact
    return _simplify(exact, tolerance, mask if isinstance(mask, RLE) else _rle.encode(m))


def _clean_ring(pts: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Drop repeated vertices and vertices in the middle of a straight run."""
    if len(pts) > 1:
        keep = np.any(pts != np.roll(pts, 1, axis=0), axis=1)
        pts = pts[keep] if keep.any() else pts[:1]
    if len(pts) < 3:
        return pts
    prev = pts - np.roll(pts, 1, axis=0)
    nxt = np.roll(pts, -1, axis=0) - pts
    cross = prev[:, 0] * nxt[:, 1] - prev[:, 1] * nxt[:, 0]
    dot = (prev * nxt).sum(axis=1)
    out: npt.NDArray[np.int64] = pts[(cross != 0) | (dot < 0)]
    return out


def _simplify(exact: Polygons, tolerance: float, source: RLE) -> Polygons:
    def simp(ring: npt.NDArray[np.float64]) -> npt.NDArray[np.float64] | None:
        approx = cv2.approxPolyDP(ring.astype(np.float32).reshape(-1, 1, 2), tolerance, True)
        out = approx.reshape(-1, 2).astype(np.float64)
        return out if len(out) >= 3 else None

    parts = []
    for part in exact.parts:
        outer = simp(part.outer)
        if outer is None:
            continue
        holes = tuple(h for h in (simp(r) for r in part.holes) if h is not None)
        parts.append(Part(outer, holes))
    simplified = Polygons(tuple(parts))
    h, w = source.size
    kept = float(_rle.iou([to_rle(simplified, h, w)], [source])[0, 0])
    return Polygons(simplified.parts, iou=kept)
