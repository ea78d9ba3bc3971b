"""Weight-free interactive segmentation baselines: a click-seeded graph cut and a random walker.

Both follow the model protocol of :mod:`masklab.iis.loop` (``initialize_z(image) -> z``,
``initialize_y(image) -> y``, ``model(x, z, pcs, ncs) -> (y, z)``), so the harness runs out of
the box and gives classical reference numbers (the "training-free" rows of reference/iis.md
§4.1). They are reimplemented from the papers' descriptions, not from any IIS codebase, and
their NoC is not expected to match the published classical rows, which came from other
implementations and robots (reference/iis.md §7.5).

Clicks are ``(row, col)`` pixel positions. Each click seeds a disk of ``radius`` pixels
(RITM's click disks use 5): pixels of a positive disk are hard foreground, of a negative disk
hard background; a pixel in both is background (the two lists do not say which came last).

* :class:`GraphCutModel`: OpenCV's GrabCut (Rother et al. 2004: colour GMMs + an 8-neighbour
  min cut, the Boykov-Jolly energy) run from a mask instead of a box: the click disks are
  hard labels, a wider disk around each click starts as "probably" its label, and every
  other pixel as "probably" what the previous result said (background before the first), so
  each click refines the last answer. Needs only OpenCV.
* :class:`RandomWalkerModel`: Grady's random walker (2006): the probability that a walker
  leaving a pixel reaches a positive seed before a negative one, on the 4-neighbour image
  graph with weights ``exp(-beta * |dI|^2 / mean |dI|^2)``. The image border is a background
  seed (the robot's first click is positive, and a walker with only positive seeds says 1
  everywhere). Large images are solved at a reduced size (``max_side``) and the probabilities
  resized back. Needs SciPy (``pip install "masklab[iis]"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

__all__ = ["GraphCutModel", "RandomWalkerModel"]

Point = tuple[int, int]


def _seeds(
    pcs: Sequence[Point], ncs: Sequence[Point], size_hw: tuple[int, int], radius: int, scale: float
) -> np.ndarray:
    """int8 (H, W): 1 inside positive disks, 0 inside negative ones, -1 elsewhere.

    The lists do not say which click came last, so negatives are drawn last: a pixel in a
    positive and a negative disk is background. Centres are pixel centres scaled by ``scale``.
    """
    seeds = np.full(size_hw, -1, np.int8)
    for points, value in ((pcs, 1), (ncs, 0)):
        for r, c in points:
            center = (round((c + 0.5) * scale - 0.5), round((r + 0.5) * scale - 0.5))
            cv2.circle(seeds, center, radius, value, thickness=-1)
    return seeds


def _scaled(radius: int, scale: float) -> int:
    """A disk radius at ``scale``: 0 stays 0 (one pixel), others at least 1."""
    return 0 if radius <= 0 else max(1, round(radius * scale))


def _check_image(image: np.ndarray) -> np.ndarray:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise TypeError(f"expected a uint8 (H, W, 3) RGB image, got {image.dtype} {image.shape}")
    return np.ascontiguousarray(image)


class GraphCutModel:
    """Click-seeded graph cut (OpenCV GrabCut from a mask); ``z`` keeps the last labelling.

    ``iterations`` rounds of GMM fitting + min cut per click. Around each click a disk of
    ``prior_radius`` pixels starts as "probably" the click's label (GrabCut learns its colour
    models from the labelling, and a 5-pixel disk alone is too few pixels to learn from).
    ``max_side`` (None = full size) runs the cut on a copy of the image whose longer side is
    at most that many pixels (several times faster on 480x640 images) and resizes the labels
    back (nearest), then pastes the full-size click disks.
    Probabilities are 0/1.
    """

    def __init__(
        self,
        *,
        iterations: int = 3,
        radius: int = 5,
        prior_radius: int = 20,
        max_side: int | None = 400,
    ):
        self.iterations = iterations
        self.radius = radius
        self.prior_radius = prior_radius
        self.max_side = max_side

    def initialize_z(self, image: np.ndarray) -> dict[str, Any]:
        """The (possibly reduced) BGR image and no labelling yet."""
        image = _check_image(image)
        h, w = image.shape[:2]
        scale = 1.0 if self.max_side is None else min(1.0, self.max_side / max(h, w))
        small = image
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        return {"image": small, "scale": scale, "size_hw": (h, w), "labels": None}

    def initialize_y(self, image: np.ndarray) -> np.ndarray:
        """All-zero probabilities."""
        return np.zeros(image.shape[:2], np.float32)

    def __call__(
        self, x: np.ndarray, z: dict[str, Any], pcs: Sequence[Point], ncs: Sequence[Point]
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Cut with the clicks as hard seeds, starting from the previous labelling."""
        small: np.ndarray = z["image"]
        h, w = z["size_hw"]
        if not pcs:
            return np.zeros((h, w), np.float32), {**z, "labels": None}
        scale: float = z["scale"]
        radius = _scaled(self.radius, scale)
        seeds = _seeds(pcs, ncs, small.shape[:2], radius, scale)
        previous = z["labels"]
        if previous is None:
            mask = np.full(small.shape[:2], cv2.GC_PR_BGD, np.uint8)
        else:
            was_fg = (previous == cv2.GC_FGD) | (previous == cv2.GC_PR_FGD)
            mask = np.where(was_fg, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
        if self.prior_radius > self.radius:
            near = _seeds(pcs, ncs, small.shape[:2], _scaled(self.prior_radius, scale), scale)
            mask[near == 1] = cv2.GC_PR_FGD
            mask[near == 0] = cv2.GC_PR_BGD
        mask[seeds == 1] = cv2.GC_FGD
        mask[seeds == 0] = cv2.GC_BGD
        if not (mask == cv2.GC_BGD).any() and not (mask == cv2.GC_PR_BGD).any():
            mask[0, :] = cv2.GC_BGD  # every pixel is a seed: GrabCut needs both sides
        bgd = np.zeros((1, 65), np.float64)
        fgd = np.zeros((1, 65), np.float64)
        rect = (0, 0, 0, 0)  # unused with GC_INIT_WITH_MASK
        bgr = np.ascontiguousarray(small[..., ::-1])
        cv2.grabCut(bgr, mask, rect, bgd, fgd, self.iterations, cv2.GC_INIT_WITH_MASK)
        fg = ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.float32)
        if fg.shape != (h, w):
            fg = cv2.resize(fg, (w, h), interpolation=cv2.INTER_NEAREST)
            full = _seeds(pcs, ncs, (h, w), self.radius, 1.0)
            fg[full == 1] = 1.0
            fg[full == 0] = 0.0
        return fg, {**z, "labels": mask}


class RandomWalkerModel:
    """Grady's random walker seeded by click disks; ``y`` is the walker's probability.

    ``beta`` scales the edge weights ``exp(-beta * |dI|^2 / mean |dI|^2)`` (RGB in [0, 1]);
    ``max_side`` bounds the solved image's longer side (probabilities are resized back
    bilinearly, and the full-resolution click disks are then pasted as 0/1);
    ``border_background`` seeds the image border as background.

    Raises:
        ImportError: SciPy is missing (``pip install "masklab[iis]"``).
    """

    def __init__(
        self,
        *,
        beta: float = 4.0,
        radius: int = 5,
        max_side: int = 256,
        border_background: bool = True,
    ):
        _scipy()
        self.beta = beta
        self.radius = radius
        self.max_side = max_side
        self.border_background = border_background

    def initialize_z(self, image: np.ndarray) -> dict[str, Any]:
        """The graph Laplacian of the (reduced) image, built once per image."""
        image = _check_image(image)
        h, w = image.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        small = image
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        return {
            "laplacian": _laplacian(small.astype(np.float32) / 255.0, self.beta),
            "small_hw": small.shape[:2],
            "scale": scale,
            "size_hw": (h, w),
        }

    def initialize_y(self, image: np.ndarray) -> np.ndarray:
        """All-zero probabilities."""
        return np.zeros(image.shape[:2], np.float32)

    def __call__(
        self, x: np.ndarray, z: dict[str, Any], pcs: Sequence[Point], ncs: Sequence[Point]
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Solve the Dirichlet problem with the click disks (and the border) as seeds."""
        h, w = z["size_hw"]
        if not pcs:
            return np.zeros((h, w), np.float32), z
        sh, sw = z["small_hw"]
        scale: float = z["scale"]
        seeds = _seeds(pcs, ncs, (sh, sw), _scaled(self.radius, scale), scale)
        if self.border_background:
            border = np.ones((sh, sw), bool)
            border[1:-1, 1:-1] = False
            seeds[border & (seeds == -1)] = 0
        prob = _solve(z["laplacian"], seeds.ravel()).reshape(sh, sw)
        if (sh, sw) != (h, w):
            prob = cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR)
            full = _seeds(pcs, ncs, (h, w), self.radius, 1.0)
            prob[full == 1] = 1.0
            prob[full == 0] = 0.0
        return np.clip(prob, 0.0, 1.0).astype(np.float32), z


def _scipy() -> Any:
    try:
        import scipy.sparse
        import scipy.sparse.linalg
    except ImportError as err:  # pragma: no cover - scipy is in the dev environment
        raise ImportError(
            'the random-walker baseline needs SciPy: pip install "masklab[iis]"'
        ) from err
    return scipy


def _laplacian(image: np.ndarray, beta: float) -> Any:
    """Graph Laplacian (CSR, N x N) of the 4-neighbour grid of a float (H, W, C) image."""
    sp = _scipy().sparse
    h, w = image.shape[:2]
    index = np.arange(h * w).reshape(h, w)
    dh = ((image[:, 1:] - image[:, :-1]) ** 2).sum(axis=2).ravel()
    dv = ((image[1:] - image[:-1]) ** 2).sum(axis=2).ravel()
    grad = np.concatenate([dh, dv]).astype(np.float64)
    mean = float(grad.mean()) if grad.size else 0.0
    weight = np.exp(-beta * grad / max(mean, 1e-12)) + 1e-6  # floor: the graph stays connected
    i = np.concatenate([index[:, :-1].ravel(), index[:-1].ravel()])
    j = np.concatenate([index[:, 1:].ravel(), index[1:].ravel()])
    n = h * w
    adjacency = sp.coo_matrix(
        (np.concatenate([weight, weight]), (np.concatenate([i, j]), np.concatenate([j, i]))),
        shape=(n, n),
    ).tocsr()
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    return (sp.diags(degree) - adjacency).tocsr()


def _solve(laplacian: Any, seeds: np.ndarray) -> np.ndarray:
    """Probabilities (N,) of reaching a 1-seed first; seeds int8 (N,) with -1 = free."""
    linalg = _scipy().sparse.linalg
    prob = (seeds == 1).astype(np.float64)
    free = np.flatnonzero(seeds < 0)
    if free.size == 0 or not (seeds == 0).any():
        prob[free] = 1.0
        return np.asarray(prob, np.float32)
    fixed = np.flatnonzero(seeds >= 0)
    rows = laplacian[free]
    system = rows[:, free].tocsc()
    rhs = -(rows[:, fixed] @ prob[fixed])
    prob[free] = linalg.spsolve(system, rhs)
    return np.asarray(prob, np.float32)
