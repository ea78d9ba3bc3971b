"""The click of interactive segmentation, and the mask checks the robots and encoders share.

A :class:`Click` is ``(row, col, positive)``: integer pixel coordinates in row-major order
(``row`` down, ``col`` right, both 0-based) and the click's sign, ``True`` for "this pixel is
object", ``False`` for "this pixel is background" (``reference/iis.md`` §1.2).

Conventions of the whole ``masklab.iis`` package: a ground-truth *target* is an integer
``(H, W)`` array with 1 = object, 0 = background and -1 = ignore; a *prediction* is a bool
``(H, W)`` array (probabilities are thresholded before a robot or a metric sees them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from masklab.errors import MaskFormatError

__all__ = ["Click", "split"]


class Click(NamedTuple):
    """One click: pixel ``(row, col)`` and its sign (``positive=True``: object).

    >>> Click(3, 4, True)
    Click(row=3, col=4, positive=True)
    """

    row: int
    col: int
    positive: bool


def split(clicks: Sequence[Click]) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The ``(row, col)`` of the positive clicks and of the negative clicks, in click order.

    >>> split([Click(1, 2, True), Click(0, 0, False), Click(5, 6, True)])
    ([(1, 2), (5, 6)], [(0, 0)])
    """
    pos = [(int(c.row), int(c.col)) for c in clicks if c.positive]
    neg = [(int(c.row), int(c.col)) for c in clicks if not c.positive]
    return pos, neg


# --------------------------------------------------------------------------- shared checks


def check_target(gt: npt.ArrayLike, name: str = "gt") -> npt.NDArray[Any]:
    """``gt`` as a 2-D integer array (1 object, 0 background, -1 ignore); no copy if possible."""
    a = np.asarray(gt)
    if a.dtype == np.bool_:
        a = a.view(np.uint8)
    elif not np.issubdtype(a.dtype, np.integer):
        raise TypeError(
            f"{name} must be an integer target (1 object, 0 background, -1 ignore), got dtype "
            f"{a.dtype}; threshold or cast it first"
        )
    if a.ndim != 2:
        raise MaskFormatError(f"{name} must be 2-D (h, w), got shape {a.shape}")
    return np.ascontiguousarray(a)


def check_pred(
    pred: npt.ArrayLike, size_hw: tuple[int, int], name: str = "pred"
) -> npt.NDArray[np.bool_]:
    """``pred`` as a 2-D bool array of ``size_hw`` (integer input: nonzero is object)."""
    a = np.asarray(pred)
    if a.dtype != np.bool_:
        if not np.issubdtype(a.dtype, np.integer):
            raise TypeError(
                f"{name} must be a bool mask, got dtype {a.dtype}; threshold probabilities "
                f"first (e.g. prob > 0.49)"
            )
        a = a != 0
    if a.shape != tuple(size_hw):
        raise MaskFormatError(f"{name} has shape {a.shape} but the target is {tuple(size_hw)}")
    return np.ascontiguousarray(a)


def check_clicks(clicks: Sequence[Click], size_hw: tuple[int, int]) -> None:
    """Raise :class:`MaskFormatError` naming the first click outside an image of ``size_hw``."""
    h, w = size_hw
    for i, c in enumerate(clicks):
        if not (0 <= c.row < h and 0 <= c.col < w):
            raise MaskFormatError(
                f"click {i} {tuple(c)} lies outside the {h}x{w} image; clicks are (row, col) "
                f"with 0 <= row < {h} and 0 <= col < {w}"
            )
