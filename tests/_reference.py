"""Slow, obvious dense references: the oracle where pycocotools is wrong or has no peer.

Everything here works on full pixel arrays with plain NumPy indexing; nothing imports the
code under test.
"""

from __future__ import annotations

import numpy as np


def dense_counts(mask: np.ndarray) -> list[int]:
    """COCO run lengths of a mask, by walking its column-major flattening."""
    flat = (np.asarray(mask) != 0).T.reshape(-1).astype(np.int8)
    if flat.size == 0:
        return [0]
    counts, value, run = [], 0, 0
    for v in flat.tolist():
        if v == value:
            run += 1
        else:
            counts.append(run)
            value, run = v, 1
    counts.append(run)
    return counts


def counts_to_dense(size: tuple[int, int], counts: list[int]) -> np.ndarray:
    """Pixels of (possibly non-canonical) counts, column-major, first run background."""
    h, w = size
    values = np.concatenate(
        [np.full(c, i % 2, np.uint8) for i, c in enumerate(counts)] or [np.zeros(0, np.uint8)]
    )
    return values.reshape(w, h).T.copy()


def dense_bbox(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return [0.0, 0.0, 0.0, 0.0]
    return [
        float(xs.min()),
        float(ys.min()),
        float(xs.max() - xs.min() + 1),
        float(ys.max() - ys.min() + 1),
    ]


def dense_iou(a: np.ndarray, b: np.ndarray, crowd: bool) -> float:
    inter = int(np.logical_and(a, b).sum())
    union = int(a.sum()) if crowd else int(np.logical_or(a, b).sum())
    return inter / union if union else 0.0


def dense_crop(mask: np.ndarray, box: list[int]) -> np.ndarray:
    x, y, w, h = box
    out = np.zeros((h, w), np.uint8)
    for yy in range(h):
        for xx in range(w):
            sy, sx = y + yy, x + xx
            if 0 <= sy < mask.shape[0] and 0 <= sx < mask.shape[1]:
                out[yy, xx] = mask[sy, sx] != 0
    return out


def dense_resize_nearest(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Pixel-centre nearest neighbour: source = floor((dst + 0.5) * in / out)."""
    h, w = mask.shape
    H, W = size
    sy = [min(h - 1, int((y + 0.5) * h / H)) for y in range(H)]
    sx = [min(w - 1, int((x + 0.5) * w / W)) for x in range(W)]
    return (np.asarray(mask)[np.ix_(sy, sx)] != 0).astype(np.uint8)
