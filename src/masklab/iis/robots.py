"""Clicking robots: the simulated user that places the next click (``reference/iis.md`` §1.2, §2.3).

Every robot has the same signature (the :class:`Robot` protocol)::

    robot(gt, pred, clicks, *, rng=None) -> Click

``gt`` is the target (int, 1 object / 0 background / -1 ignore), ``pred`` the current bool
prediction (all ``False`` before the first click), ``clicks`` every click placed so far (both
signs). A robot never mutates its inputs and returns a new :class:`~masklab.iis.clicks.Click`.
Errors never include ignore pixels: ``FN = (gt == 1) & ~pred`` and ``FP = (gt == 0) & pred``.

``ritm``
    The standard evaluation robot, RITM's ``Clicker`` rules (§1.2): the error maps are padded
    with a 1-pixel border of non-error, each gets an exact Euclidean distance transform (the
    distance of every error pixel to the nearest non-error pixel: correct, ignore, or outside
    the image), already clicked pixels are set to 0, and the click is positive iff the largest
    false-negative distance is *strictly* larger than the largest false-positive one. It goes
    to the first maximum in row-major order. With no error left (a perfect prediction, or every
    error pixel already clicked) it clicks negative at ``(0, 0)``, again on every later call,
    as RITM does. The first click (``pred`` all ``False``) is always positive.
``center_largest_false``
    The DIOS / gto99 robot (§2.3): 8-connected components of FP and of FN separately, the
    largest of each, then the one with more pixels (a tie goes to FP, a negative click); the
    click is that region's deepest pixel (padded exact distance transform, first maximum in
    row-major order). Unlike gto99, ignore pixels are never errors, and with
    ``exclude_clicked=True`` (the default, what :data:`ROBOTS` holds) pixels already clicked
    are removed from FP and FN before the components are found, so a click the model ignored
    is never repeated: the next click goes to the centre of what remains.
    ``exclude_clicked=False`` is gto99 exactly. No error left: negative at ``(0, 0)``.
``random_false``
    Uniform over the not-yet-clicked error pixels (FP or FN); the sign is the target's at
    that pixel (positive on FN, negative on FP).
``random_largest_false``
    Uniform over the not-yet-clicked pixels of the largest 4-connected component of the
    error (FP and FN together, as iislib's ``robot_03``); a tie between components goes to
    the one whose first pixel comes first in row-major order. If every pixel of it was
    clicked already, uniform over the whole remaining error.
``random``
    Uniform over the not-yet-clicked non-ignore pixels, the prediction disregarded; the sign
    is the target's at that pixel (iislib's ``robot_01``, one draw per call: nothing shared
    between samples).

Fallbacks of the random robots, never a NaN or an exception: no candidate left -> the next
wider pool (largest component -> all errors -> all non-ignore pixels not clicked yet -> all
non-ignore pixels); a target that is all ignore -> negative at ``(0, 0)``. ``rng=None`` draws
from a fresh, unseeded generator: pass a ``numpy.random.Generator`` to reproduce a run.

Exact distances. OpenCV's precise distance transform (RITM's) is exact in squared distance,
but its ``float32`` square roots carry a rounding of one unit in the last place that depends
on the array it runs on (its size, even its memory alignment), so two pixels at the same
true distance can come out unequal, differently from run to run. masklab compares the exact
integer squared distances (recovered by rounding the square, exact below about 1400 px of
depth), so "strictly larger" and "first maximum in row-major order" hold to the letter and
every run gives the same click; RITM's ``np.where`` on the raw floats may break such an
exact tie either way. The transform runs on the error's bounding box plus the 1-pixel
border only, which gives the same distances as the full padded map: every pixel outside the
box is non-error and nearer than anything beyond.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from masklab.iis.clicks import Click, check_clicks, check_pred, check_target

__all__ = [
    "ROBOTS",
    "Robot",
    "center_largest_false",
    "errors",
    "get_robot",
    "random",
    "random_false",
    "random_largest_false",
    "ritm",
]

BoolMap = npt.NDArray[np.bool_]

#: candidates within this relative distance of the float maximum are compared exactly
_NEAR_MAX = 1e-6


class Robot(Protocol):
    """A clicking robot: the next click from the target, the prediction and the past clicks."""

    def __call__(
        self,
        gt: npt.ArrayLike,
        pred: npt.ArrayLike,
        clicks: Sequence[Click],
        *,
        rng: np.random.Generator | None = None,
    ) -> Click: ...


# --------------------------------------------------------------------------- helpers


def _inputs(
    gt: npt.ArrayLike, pred: npt.ArrayLike, clicks: Sequence[Click]
) -> tuple[npt.NDArray[Any], BoolMap]:
    g = check_target(gt)
    p = check_pred(pred, (g.shape[0], g.shape[1]))
    check_clicks(clicks, (g.shape[0], g.shape[1]))
    return g, p


def errors(gt: npt.ArrayLike, pred: npt.ArrayLike) -> tuple[BoolMap, BoolMap]:
    """The false-negative and false-positive maps; ignore pixels (-1) are in neither.

    >>> fn, fp = errors(np.array([[1, 1, 0, -1]]), np.array([[True, False, True, True]]))
    >>> fn.astype(int).tolist(), fp.astype(int).tolist()
    ([[0, 1, 0, 0]], [[0, 0, 1, 0]])
    """
    g = check_target(gt)
    p = check_pred(pred, (g.shape[0], g.shape[1]))
    return (g == 1) & ~p, (g == 0) & p


def _deepest(err: BoolMap, clicks: Sequence[Click]) -> tuple[int, int, int]:
    """``(squared depth, row, col)`` of the first deepest unclicked pixel of ``err``.

    Depth is the exact Euclidean distance to the nearest non-error pixel, the image border
    counting as non-error (RITM's 1-pixel zero padding). ``(0, 0, 0)`` when no unclicked
    error pixel is left.
    """
    x, y, w, h = cv2.boundingRect(err.view(np.uint8))
    if w == 0:
        return 0, 0, 0
    padded = np.zeros((h + 2, w + 2), np.uint8)
    padded[1:-1, 1:-1] = err[y : y + h, x : x + w]
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
    for c in clicks:
        r, k = c.row - y, c.col - x
        if 0 <= r < h and 0 <= k < w:
            dist[r, k] = 0.0
    top = float(dist.max())
    if top <= 0.0:
        return 0, 0, 0
    rows, cols = np.nonzero(dist >= top * (1.0 - _NEAR_MAX))  # row-major order
    d2 = np.rint(np.square(dist[rows, cols], dtype=np.float64))
    best = d2.max()
    i = int(np.argmax(d2 == best))
    return int(best), y + int(rows[i]), x + int(cols[i])


def _drop_clicked(mask: BoolMap, clicks: Sequence[Click]) -> BoolMap:
    """``mask`` (a fresh array of ours) with the clicked pixels cleared, in place."""
    for c in clicks:
        mask[c.row, c.col] = False
    return mask


def _largest_component(mask: BoolMap, connectivity: int) -> tuple[BoolMap | None, int]:
    """The largest connected component of ``mask`` and its area (ties: first in row-major)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(
        mask.view(np.uint8), connectivity=connectivity, ltype=cv2.CV_32S
    )
    if n <= 1:
        return None, 0
    areas = stats[1:, cv2.CC_STAT_AREA]
    best = int(areas.max())
    tied = np.flatnonzero(areas == best) + 1
    label = int(tied[0])
    if len(tied) > 1:  # OpenCV's label order is not promised to be raster order
        flat = labels.ravel()
        label = int(min(tied, key=lambda t: int(np.argmax(flat == t))))
    return labels == label, best


def _uniform(mask: BoolMap, rng: np.random.Generator) -> tuple[int, int] | None:
    """A uniformly drawn pixel of ``mask``, or ``None`` when it is empty."""
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return None
    r, c = divmod(int(idx[rng.integers(idx.size)]), mask.shape[1])
    return r, c


def _signed(g: npt.NDArray[Any], at: tuple[int, int]) -> Click:
    return Click(at[0], at[1], bool(g[at] == 1))


def _fallback(g: npt.NDArray[Any], clicks: Sequence[Click], rng: np.random.Generator) -> Click:
    """Uniform over unclicked non-ignore pixels, then over all; else negative at ``(0, 0)``."""
    valid = g != -1
    at = _uniform(_drop_clicked(valid.copy(), clicks), rng)
    if at is None:
        at = _uniform(valid, rng)
    return Click(0, 0, False) if at is None else _signed(g, at)


# --------------------------------------------------------------------------- robots


def ritm(
    gt: npt.ArrayLike,
    pred: npt.ArrayLike,
    clicks: Sequence[Click],
    *,
    rng: np.random.Generator | None = None,
) -> Click:
    """RITM's evaluation robot: the deepest pixel of the thicker error (§1.2); deterministic.

    ``rng`` is accepted for the :class:`Robot` protocol and unused.

    >>> gt = np.zeros((5, 7), np.int8)
    >>> gt[1:4, 1:6] = 1
    >>> ritm(gt, np.zeros((5, 7), bool), [])
    Click(row=2, col=2, positive=True)
    >>> ritm(gt, gt == 1, [])  # perfect prediction
    Click(row=0, col=0, positive=False)
    """
    g, p = _inputs(gt, pred, clicks)
    fn = (g == 1) & ~p
    fp = (g == 0) & p
    d_fn, r_fn, c_fn = _deepest(fn, clicks)
    d_fp, r_fp, c_fp = _deepest(fp, clicks)
    if d_fn > d_fp:
        return Click(r_fn, c_fn, True)
    if d_fp > 0:
        return Click(r_fp, c_fp, False)
    return Click(0, 0, False)


def center_largest_false(
    gt: npt.ArrayLike,
    pred: npt.ArrayLike,
    clicks: Sequence[Click],
    *,
    rng: np.random.Generator | None = None,
    exclude_clicked: bool = True,
) -> Click:
    """The centre of the largest connected error region (DIOS / gto99, §2.3); deterministic.

    >>> gt = np.zeros((6, 9), np.int8)
    >>> gt[1:5, 1:4] = 1  # a 12-pixel object the prediction misses ...
    >>> pred = np.zeros((6, 9), bool)
    >>> pred[1:4, 5:8] = True  # ... and a 9-pixel false positive
    >>> center_largest_false(gt, pred, [])
    Click(row=2, col=2, positive=True)
    """
    g, p = _inputs(gt, pred, clicks)
    fn = (g == 1) & ~p
    fp = (g == 0) & p
    if exclude_clicked:
        _drop_clicked(fn, clicks)
        _drop_clicked(fp, clicks)
    region_fp, area_fp = _largest_component(fp, 8)
    region_fn, area_fn = _largest_component(fn, 8)
    if region_fn is not None and area_fn > area_fp:
        _, r, c = _deepest(region_fn, ())
        return Click(r, c, True)
    if region_fp is not None:
        _, r, c = _deepest(region_fp, ())
        return Click(r, c, False)
    return Click(0, 0, False)


def random_false(
    gt: npt.ArrayLike,
    pred: npt.ArrayLike,
    clicks: Sequence[Click],
    *,
    rng: np.random.Generator | None = None,
) -> Click:
    """A uniformly drawn unclicked error pixel, signed by the target.

    >>> gt = np.array([[1, 1, 0, -1]], np.int8)
    >>> random_false(gt, np.array([[True, False, False, True]]), [], rng=np.random.default_rng(0))
    Click(row=0, col=1, positive=True)
    """
    g, p = _inputs(gt, pred, clicks)
    rng = np.random.default_rng() if rng is None else rng
    err = ((g == 1) & ~p) | ((g == 0) & p)
    at = _uniform(_drop_clicked(err, clicks), rng)
    return _fallback(g, clicks, rng) if at is None else _signed(g, at)


def random_largest_false(
    gt: npt.ArrayLike,
    pred: npt.ArrayLike,
    clicks: Sequence[Click],
    *,
    rng: np.random.Generator | None = None,
) -> Click:
    """A uniformly drawn unclicked pixel of the largest 4-connected error, signed by the target.

    >>> gt = np.array([[1, 0, 0, 0, 1]], np.int8)
    >>> pred = np.array([[False, True, True, False, False]])
    >>> random_largest_false(gt, pred, [], rng=np.random.default_rng(0)).positive
    False
    """
    g, p = _inputs(gt, pred, clicks)
    rng = np.random.default_rng() if rng is None else rng
    err = ((g == 1) & ~p) | ((g == 0) & p)
    region, _ = _largest_component(err, 4)
    if region is not None:
        at = _uniform(_drop_clicked(region, clicks), rng)
        if at is not None:
            return _signed(g, at)
    at = _uniform(_drop_clicked(err, clicks), rng)
    return _fallback(g, clicks, rng) if at is None else _signed(g, at)


def random(
    gt: npt.ArrayLike,
    pred: npt.ArrayLike,
    clicks: Sequence[Click],
    *,
    rng: np.random.Generator | None = None,
) -> Click:
    """A uniformly drawn unclicked non-ignore pixel, signed by the target; ``pred`` unused.

    >>> gt = np.array([[-1, 1, -1]], np.int8)
    >>> random(gt, np.zeros((1, 3), bool), [], rng=np.random.default_rng(0))
    Click(row=0, col=1, positive=True)
    """
    g, _ = _inputs(gt, pred, clicks)
    rng = np.random.default_rng() if rng is None else rng
    return _fallback(g, clicks, rng)


#: the robots by name (``center_largest_false`` with its default ``exclude_clicked=True``)
ROBOTS: dict[str, Robot] = {
    "ritm": ritm,
    "center_largest_false": center_largest_false,
    "random_largest_false": random_largest_false,
    "random_false": random_false,
    "random": random,
}


def get_robot(name: str) -> Robot:
    """The robot called ``name``; an unknown name raises ``ValueError`` listing the known ones.

    >>> get_robot("ritm") is ritm
    True
    """
    try:
        return ROBOTS[name]
    except KeyError:
        raise ValueError(
            f"unknown robot {name!r}; known robots: {', '.join(sorted(ROBOTS))}"
        ) from None
