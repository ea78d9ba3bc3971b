"""Hypothesis strategies for masks, RLE counts and polygons.

Each strategy draws the shape parameters and a seed; the pixels come from a seeded NumPy
generator so that odd cases (empty, full, 0xN, 1x1, holes, islands in holes, diagonal
touches, noise) are all reached with small sizes. Sizes are bounded on purpose.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

try:
    from hypothesis import strategies as st
except ImportError as err:  # pragma: no cover - only without the dev extra
    raise ImportError('masklab.testing needs hypothesis: pip install "masklab[dev]"') from err

__all__ = [
    "binary_masks",
    "mask_lists",
    "masks_of_any_layout",
    "noncanonical_counts",
    "polygon_lists",
]

KINDS = ("empty", "full", "noise", "sparse", "blobs", "rings", "checker", "stripes")


def _draw_kind(kind: str, h: int, w: int, rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    m = np.zeros((h, w), np.uint8)
    if h == 0 or w == 0 or kind == "empty":
        return m
    if kind == "full":
        m[:] = 1
    elif kind == "noise":
        m[:] = rng.random((h, w)) < rng.uniform(0.05, 0.95)
    elif kind == "sparse":
        m[:] = rng.random((h, w)) < 0.02
    elif kind == "blobs":
        for _ in range(int(rng.integers(1, 5))):
            c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            axes = (int(rng.integers(0, max(1, w // 2))), int(rng.integers(0, max(1, h // 2))))
            cv2.ellipse(m, c, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    elif kind == "rings":
        # holes, and islands inside the holes
        c = (w // 2, h // 2)
        r = max(1, min(h, w) // 2)
        cv2.circle(m, c, r, 1, -1)
        cv2.circle(m, c, max(0, r - 2), 0, -1)
        cv2.circle(m, c, max(0, r - 4), 1, -1)
        cv2.circle(m, c, max(0, r - 6), 0, -1)
    elif kind == "checker":
        # diagonal touches everywhere
        yy, xx = np.mgrid[0:h, 0:w]
        m[:] = ((yy // int(rng.integers(1, 3)) + xx // int(rng.integers(1, 3))) % 2) == 0
    elif kind == "stripes":
        if rng.random() < 0.5:
            m[:, :: int(rng.integers(2, 4))] = 1
        else:
            m[:: int(rng.integers(2, 4)), :] = 1
    return m


@st.composite
def binary_masks(
    draw: Any,
    *,
    max_side: int = 48,
    min_side: int = 0,
    shape: tuple[int, int] | None = None,
    kinds: tuple[str, ...] = KINDS,
) -> npt.NDArray[np.uint8]:
    """C-ordered uint8 masks of 0 and 1, of every kind in ``kinds`` (of ``shape`` if given)."""
    if shape is None:
        h = draw(st.integers(min_side, max_side))
        w = draw(st.integers(min_side, max_side))
    else:
        h, w = shape
    kind = draw(st.sampled_from(kinds))
    seed = draw(st.integers(0, 2**32 - 1))
    return _draw_kind(kind, h, w, np.random.default_rng(seed))


@st.composite
def masks_of_any_layout(draw: Any, *, max_side: int = 48) -> npt.NDArray[Any]:
    """Masks as users hand them over: bool, uint8 0/1 or 0/255, int64 labels, float;
    C- or Fortran-ordered, or a strided view."""
    m = draw(binary_masks(max_side=max_side))
    style = draw(st.sampled_from(["bool", "u8", "u8-255", "labels", "float", "u16"]))
    if style == "bool":
        out: npt.NDArray[Any] = m.astype(bool)
    elif style == "u8":
        out = m
    elif style == "u8-255":
        out = m * np.uint8(255)
    elif style == "labels":
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        out = m.astype(np.int64) * rng.integers(1, 7, m.shape)
    elif style == "float":
        out = m.astype(np.float32) * 0.5
    else:
        out = m.astype(np.uint16) * 300
    layout = draw(st.sampled_from(["C", "F", "view"]))
    if layout == "F":
        out = np.asfortranarray(out)
    elif layout == "view":
        big = np.zeros((out.shape[0] * 2, out.shape[1] * 2 + 1), out.dtype)
        big[::2, 1::2] = out
        out = big[::2, 1::2]
    return out


@st.composite
def noncanonical_counts(draw: Any, *, max_side: int = 12) -> tuple[tuple[int, int], list[int]]:
    """A size and counts that sum to h*w but may hold zero-length runs and a trailing 0,
    as found in real COCO files (``reference/formats.md`` §9.15)."""
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    n = h * w
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=12)))
    counts = list(np.diff([0, *cuts, n]).tolist())
    if draw(st.booleans()):
        counts.append(0)
    return (h, w), counts


@st.composite
def polygon_lists(
    draw: Any, *, max_side: int = 40, max_parts: int = 3, max_points: int = 10
) -> tuple[list[list[float]], int, int]:
    """COCO polygon lists with ``(h, w)``: float, integer and half-integer vertices, some
    outside the image, self-intersections and repeated vertices included."""
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    grid = draw(st.sampled_from(["float", "int", "half"]))
    parts = []
    for _ in range(draw(st.integers(1, max_parts))):
        k = draw(st.integers(3, max_points))
        coords = []
        for _ in range(k):
            x = draw(st.floats(-3, w + 3, allow_nan=False, width=32))
            y = draw(st.floats(-3, h + 3, allow_nan=False, width=32))
            if grid == "int":
                x, y = round(x), round(y)
            elif grid == "half":
                x, y = round(x * 2) / 2, round(y * 2) / 2
            coords += [float(x), float(y)]
        parts.append(coords)
    return parts, h, w


@st.composite
def mask_lists(
    draw: Any, *, max_side: int = 24, min_size: int = 1, max_size: int = 5
) -> list[npt.NDArray[np.uint8]]:
    """Lists of masks that share one (non-empty) shape, for merge and iou."""
    shape = (draw(st.integers(1, max_side)), draw(st.integers(1, max_side)))
    masks: list[npt.NDArray[np.uint8]] = draw(
        st.lists(binary_masks(shape=shape), min_size=min_size, max_size=max_size)
    )
    return masks
