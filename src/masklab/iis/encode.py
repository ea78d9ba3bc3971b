"""Click encodings: the click maps a model takes beside the image (``reference/iis.md`` §1.4).

Every encoder maps a list of :class:`~masklab.iis.clicks.Click` to a ``float32`` array of
shape ``(2, H, W)``: channel 0 encodes the positive clicks, channel 1 the negative ones.
Clicks are ``(row, col)`` pixel centres and must lie inside the image.

``disks``
    1 within ``radius`` pixels of a click (``drow**2 + dcol**2 <= radius**2``), else 0: RITM's
    ``DistMaps(use_disks=True, norm_radius=5)`` and iislib's disk maps, clipped at the borders.
``distance_maps``
    The Euclidean distance to the nearest click of the channel's sign, clipped at ``clip``
    (DIOS: two distance maps truncated at 255). A channel with no click is ``clip``
    everywhere.
``gaussians``
    ``exp(-d**2 / (2 * sigma**2))`` with ``d`` the distance to the nearest click of the sign,
    i.e. the maximum of one Gaussian bump per click; a channel with no click is 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

from masklab.errors import MaskFormatError
from masklab.iis.clicks import Click, check_clicks

__all__ = ["disks", "distance_maps", "gaussians"]

F32 = npt.NDArray[np.float32]


def _size(size_hw: tuple[int, int]) -> tuple[int, int]:
    h, w = (int(v) for v in size_hw)
    if h < 0 or w < 0:
        raise MaskFormatError(f"size_hw must be non-negative (h, w), got {tuple(size_hw)}")
    return h, w


def _stencil(radius: float) -> npt.NDArray[np.bool_]:
    r = int(np.floor(radius))
    d = np.arange(-r, r + 1)
    return np.asarray(d[:, None] ** 2 + d[None, :] ** 2 <= radius * radius)


def disks(clicks: Sequence[Click], size_hw: tuple[int, int], *, radius: float = 5) -> F32:
    """Binary disks of ``radius`` pixels around the clicks: (positive, negative) maps.

    >>> m = disks([Click(1, 1, True), Click(0, 4, False)], (3, 5), radius=1)
    >>> m[0].astype(int).tolist()
    [[0, 1, 0, 0, 0], [1, 1, 1, 0, 0], [0, 1, 0, 0, 0]]
    >>> m[1].astype(int).tolist()
    [[0, 0, 0, 1, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]]
    """
    h, w = _size(size_hw)
    if not radius >= 0:
        raise ValueError(f"radius must be >= 0, got {radius!r}")
    check_clicks(clicks, (h, w))
    out = np.zeros((2, h, w), np.float32)
    stencil = _stencil(radius)
    r = stencil.shape[0] // 2
    for c in clicks:
        y0, y1 = max(c.row - r, 0), min(c.row + r + 1, h)
        x0, x1 = max(c.col - r, 0), min(c.col + r + 1, w)
        part = stencil[y0 - c.row + r : y1 - c.row + r, x0 - c.col + r : x1 - c.col + r]
        out[0 if c.positive else 1, y0:y1, x0:x1][part] = 1.0
    return out


def _nearest(clicks: Sequence[Click], size_hw: tuple[int, int]) -> list[F32 | None]:
    """Per sign, the exact Euclidean distance of every pixel to the nearest click, or None."""
    h, w = size_hw
    out: list[F32 | None] = []
    for positive in (True, False):
        pts = [c for c in clicks if c.positive == positive]
        if not pts or h == 0 or w == 0:
            out.append(None)
            continue
        seeds = np.ones((h, w), np.uint8)
        for c in pts:
            seeds[c.row, c.col] = 0
        dist = cv2.distanceTransform(seeds, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        out.append(np.asarray(dist, np.float32))
    return out


def distance_maps(clicks: Sequence[Click], size_hw: tuple[int, int], *, clip: float = 255.0) -> F32:
    """Distance to the nearest positive / negative click, clipped at ``clip``.

    >>> m = distance_maps([Click(0, 0, True)], (2, 3), clip=2.0)
    >>> m[0].astype(np.float64).round(3).tolist()
    [[0.0, 1.0, 2.0], [1.0, 1.414, 2.0]]
    >>> float(m[1].min())  # no negative click
    2.0
    """
    h, w = _size(size_hw)
    if not clip > 0:
        raise ValueError(f"clip must be > 0, got {clip!r}")
    check_clicks(clicks, (h, w))
    out = np.full((2, h, w), clip, np.float32)
    for ch, dist in enumerate(_nearest(clicks, (h, w))):
        if dist is not None:
            np.minimum(dist, np.float32(clip), out=out[ch])
    return out


def gaussians(clicks: Sequence[Click], size_hw: tuple[int, int], *, sigma: float = 10.0) -> F32:
    """A Gaussian bump of ``sigma`` pixels on every click (the maximum where they overlap).

    >>> m = gaussians([Click(0, 1, False)], (1, 3), sigma=1.0)
    >>> m[1].astype(np.float64).round(4).tolist()
    [[0.6065, 1.0, 0.6065]]
    >>> float(m[0].max())  # no positive click
    0.0
    """
    h, w = _size(size_hw)
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma!r}")
    check_clicks(clicks, (h, w))
    out = np.zeros((2, h, w), np.float32)
    for ch, dist in enumerate(_nearest(clicks, (h, w))):
        if dist is not None:
            np.square(dist, out=out[ch])
            out[ch] *= np.float32(-0.5 / (sigma * sigma))
            np.exp(out[ch], out=out[ch])
    return out
