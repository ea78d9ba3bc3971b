"""Training click samplers: RITM's ``MultiPointSampler`` and the iterative click (iis.md §2.1).

:class:`MultiPointSampler` draws the initial clicks of one training target:

* **how many**: ``1 + G`` positives and ``G'`` negatives, ``G`` drawn from the truncated
  geometric weights ``gamma**i`` over ``0 .. max_num_points - 1`` and ``G'`` over
  ``0 .. max_num_points``;
* **positives**: uniform over the object, eroded (3x3 kernel, ``positive_erode_iters``
  times) with probability ``positive_erode_prob`` when more than 10 pixels survive; distinct
  pixels while the mask has enough of them. With ``first_click_center`` the first one is
  uniform over the *inner* pixels, where the padded distance transform exceeds its maximum
  divided by ``sfc_inner_k``;
* **negatives**: each from a mixture of three pools, all outside the object and never on an
  ignore pixel: ``bg`` (anything else), ``other`` (pixels of the other annotated objects,
  ``others``; ``bg`` when there are none) and ``border`` (a ring made by dilating the object
  ``ceil(expand_ratio * sqrt(area))`` times with a 3x3 kernel; ``bg`` when it is empty).

Not reproduced: merging several objects into one target and the object hierarchy (choose
the target with :mod:`masklab.iis.regions`), soft targets and the ``(-1, -1, -1)`` padded
triples (the lists simply have the clicks drawn). Every draw comes from the ``rng`` given,
and each call returns new lists: nothing is shared between samples (iislib's
``[[]] * B`` bug).

:func:`next_click_training` is the click RITM's trainer adds after each no-gradient pass
(``ISTrainer``, ``get_next_points``): errors at ``thresh`` (``FN = gt & prob < thresh``,
``FP = ~gt & prob > thresh``, ignore excluded), the padded *approximate* L2 distance
transform (5x5 mask, as RITM), positive iff the largest FN distance is strictly larger, and
the location uniform among the pixels of the chosen map deeper than half its maximum.
Pixels already clicked are excluded. With no error left RITM adds no click; this function
returns a click that agrees with the target (uniform over the unclicked non-ignore pixels,
signed by the target), so a training batch keeps one click per image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass

import cv2
import numpy as np
import numpy.typing as npt

from masklab.errors import MaskFormatError
from masklab.iis.clicks import Click, check_clicks, check_target

__all__ = ["MultiPointSampler", "next_click_training"]

BoolMap = npt.NDArray[np.bool_]
_KERNEL = np.ones((3, 3), np.uint8)


def _geometric(n: int, gamma: float) -> npt.NDArray[np.float64]:
    w = gamma ** np.arange(n, dtype=np.float64)
    return np.asarray(w / w.sum(), np.float64)


def _as_clicks(idx: npt.NDArray[np.intp], width: int, positive: bool) -> list[Click]:
    return [Click(int(i) // width, int(i) % width, positive) for i in idx]


@dataclass(frozen=True)
class MultiPointSampler:
    """RITM's training click sampler for one binary target (module docstring).

    >>> target = np.zeros((40, 40), np.int8)
    >>> target[10:30, 10:30] = 1
    >>> pos, neg = MultiPointSampler(4).sample(target, rng=np.random.default_rng(0))
    >>> 1 <= len(pos) <= 4 and all(target[c.row, c.col] == 1 and c.positive for c in pos)
    True
    >>> all(target[c.row, c.col] == 0 and not c.positive for c in neg)
    True
    """

    max_num_points: int = 12
    _: KW_ONLY
    prob_gamma: float = 0.7
    expand_ratio: float = 0.1
    positive_erode_prob: float = 0.9
    positive_erode_iters: int = 3
    negative_bg_prob: float = 0.1
    negative_other_prob: float = 0.4
    negative_border_prob: float = 0.5
    first_click_center: bool = False
    sfc_inner_k: float = 1.7

    def __post_init__(self) -> None:
        if self.max_num_points < 1:
            raise ValueError(f"max_num_points must be at least 1, got {self.max_num_points!r}")
        if not self.prob_gamma > 0:
            raise ValueError(f"prob_gamma must be > 0, got {self.prob_gamma!r}")
        mix = (self.negative_bg_prob, self.negative_other_prob, self.negative_border_prob)
        if min(mix) < 0 or sum(mix) <= 0:
            raise ValueError(f"negative pool probabilities must be >= 0, not all 0; got {mix}")

    def sample(
        self,
        target: npt.ArrayLike,
        others: npt.ArrayLike | None = None,
        rng: np.random.Generator | None = None,
    ) -> tuple[list[Click], list[Click]]:
        """The positive and the negative clicks of one target (1 object, 0 bg, -1 ignore).

        ``others`` marks (nonzero) the other annotated objects of the image, the ``other``
        pool of the negatives. ``rng=None`` draws from a fresh, unseeded generator.
        """
        g = check_target(target, "target")
        h, w = g.shape
        if others is not None and np.shape(others) != (h, w):
            raise MaskFormatError(f"others has shape {np.shape(others)} but the target is {(h, w)}")
        rng = np.random.default_rng() if rng is None else rng
        obj = g == 1
        valid = g != -1
        n_pos = 1 + int(
            rng.choice(self.max_num_points, p=_geometric(self.max_num_points, self.prob_gamma))
        )
        n_neg = int(
            rng.choice(
                self.max_num_points + 1, p=_geometric(self.max_num_points + 1, self.prob_gamma)
            )
        )

        positives: list[Click] = []
        pos_mask = obj
        if rng.random() < self.positive_erode_prob:
            eroded = cv2.erode(obj.view(np.uint8), _KERNEL, iterations=self.positive_erode_iters)
            if np.count_nonzero(eroded) > 10:
                pos_mask = eroded.astype(bool)
        pool = np.flatnonzero(pos_mask)
        if pool.size:
            if self.first_click_center:
                padded = np.pad(pos_mask.view(np.uint8), 1)
                dist = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
                inner = np.flatnonzero(dist > dist.max() / self.sfc_inner_k)
                if inner.size == 0:
                    inner = pool
                first = inner[rng.integers(inner.size)]
                positives.append(Click(int(first) // w, int(first) % w, True))
                pool = pool[pool != first]
                n_pos -= 1
            take = rng.choice(pool.size, size=min(n_pos, pool.size), replace=False)
            positives += _as_clicks(pool[take], w, True)

        negatives: list[Click] = []
        if n_neg:
            bg = valid & ~obj
            pools: dict[int, npt.NDArray[np.intp]] = {}
            mix = np.array(
                [self.negative_bg_prob, self.negative_other_prob, self.negative_border_prob]
            )
            kinds = rng.choice(3, size=n_neg, p=mix / mix.sum())
            for kind in kinds:
                kind = int(kind)
                if kind not in pools:
                    pools[kind] = self._negative_pool(kind, obj, bg, others)
                cand = pools[kind]
                if cand.size:
                    negatives += _as_clicks(cand[rng.integers(cand.size, size=1)], w, False)
        return positives, negatives

    def _negative_pool(
        self,
        kind: int,
        obj: BoolMap,
        bg: BoolMap,
        others: npt.ArrayLike | None,
    ) -> npt.NDArray[np.intp]:
        """Flat indices of the ``bg`` (0), ``other`` (1) or ``border`` (2) pool."""
        mask = bg
        if kind == 1 and others is not None:
            if np.any(o_bg := (np.asarray(others) != 0) & bg):
                mask = o_bg
        elif kind == 2:
            area = int(np.count_nonzero(obj))
            iters = math.ceil(self.expand_ratio * math.sqrt(area))
            if area and iters:
                grown = cv2.dilate(obj.view(np.uint8), _KERNEL, iterations=iters).astype(bool)
                if np.any(ring := grown & bg):
                    mask = ring
        return np.flatnonzero(mask)


def _padded_dt(err: BoolMap, mask_size: int) -> tuple[npt.NDArray[np.float32], int, int]:
    """Distance transform of ``err`` padded with one non-error pixel, on its bounding box."""
    x, y, w, h = cv2.boundingRect(err.view(np.uint8))
    padded = np.zeros((h + 2, w + 2), np.uint8)
    padded[1:-1, 1:-1] = err[y : y + h, x : x + w]
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, mask_size)[1:-1, 1:-1]
    return np.asarray(dist, np.float32), y, x


def next_click_training(
    gt: npt.ArrayLike,
    prob: npt.ArrayLike,
    clicks: Sequence[Click],
    rng: np.random.Generator | None = None,
    *,
    thresh: float = 0.49,
) -> Click:
    """RITM's iterative training click: random among the deep pixels of the thicker error.

    >>> gt = np.zeros((9, 9), np.int8)
    >>> gt[2:7, 2:7] = 1
    >>> c = next_click_training(gt, np.zeros((9, 9), np.float32), [], np.random.default_rng(0))
    >>> c.positive, 3 <= c.row <= 5 and 3 <= c.col <= 5  # deeper than half the maximum, 3
    (True, True)
    """
    g = check_target(gt)
    p = np.asarray(prob)
    if not np.issubdtype(p.dtype, np.floating):
        raise TypeError(f"prob must be float probabilities in [0, 1], got dtype {p.dtype}")
    if p.shape != g.shape:
        raise MaskFormatError(f"prob has shape {p.shape} but the target is {g.shape}")
    check_clicks(clicks, (g.shape[0], g.shape[1]))
    rng = np.random.default_rng() if rng is None else rng

    maps: list[tuple[float, npt.NDArray[np.float32], int, int]] = []
    for err in ((g == 1) & (p < thresh), (g == 0) & (p > thresh)):  # FN, FP
        if not err.any():
            maps.append((0.0, np.zeros((0, 0), np.float32), 0, 0))
            continue
        dist, y, x = _padded_dt(err, cv2.DIST_MASK_5)
        for c in clicks:
            r, k = c.row - y, c.col - x
            if 0 <= r < dist.shape[0] and 0 <= k < dist.shape[1]:
                dist[r, k] = 0.0
        maps.append((float(dist.max()), dist, y, x))
    positive = maps[0][0] > maps[1][0]  # strictly: a tie goes to FP
    top, dist, y, x = maps[0] if positive else maps[1]
    if top <= 0:
        valid = g != -1
        for c in clicks:
            valid[c.row, c.col] = False
        idx = np.flatnonzero(valid)
        if idx.size == 0:
            idx = np.flatnonzero(g != -1)
        if idx.size == 0:
            return Click(0, 0, False)
        r, k = divmod(int(idx[rng.integers(idx.size)]), g.shape[1])
        return Click(r, k, bool(g[r, k] == 1))
    rows, cols = np.nonzero(dist > top / 2)
    i = int(rng.integers(rows.size))
    return Click(y + int(rows[i]), x + int(cols[i]), positive)
