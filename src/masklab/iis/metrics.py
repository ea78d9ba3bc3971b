"""Interactive-segmentation metrics as RITM computes them (``reference/iis.md`` §1.5).

``iou``
    Intersection over union of the object (``gt == 1``) and the prediction, both counted only
    over pixels where ``gt != -1`` (RITM's ``get_iou``). An empty union (no object, nothing
    predicted) is 1.0 here; RITM divides by zero (NaN), which a real target cannot reach.
``noc``
    Number of clicks: the 1-based index of the *first* click whose IoU is ``>= threshold``,
    looking at the first ``max_clicks`` values; ``max_clicks`` when none reaches it.
``summarize``
    Over a dataset (one IoU list per sample, one value per click): NoC per threshold (the mean
    over samples, each sample weighing the same), two failure counts, mIoU@k and timing:

    * ``nof`` counts samples with ``NoC == max_clicks``, the ``>=20@90%`` column of RITM,
      SimpleClick and SegNext; it includes a sample that reaches the threshold exactly at the
      last click;
    * ``nof_never`` counts the samples that never reach it within ``max_clicks``;
    * ``miou_at_k[k]`` is the mean IoU after click ``k``; it needs every run to have ``k``
      clicks (RITM prints it only with all clicks run, target IoU 1.01). A ``k`` some run did
      not reach (it stopped early) is left out of ``miou_at_k`` and listed in
      ``miou_missing``: nothing is carried forward or guessed;
    * ``spc`` (seconds per click) is ``seconds / clicks run``, ``spi`` is ``seconds / samples``
      (RITM's ``get_time_metrics``: ``seconds`` is the wall time of the whole loop you
      measured, so it includes whatever that loop did besides the model).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from masklab.iis.clicks import check_pred, check_target

__all__ = ["IISResult", "NocSummary", "iou", "noc", "summarize"]


def iou(gt: npt.ArrayLike, pred: npt.ArrayLike) -> float:
    """IoU of object and prediction over the non-ignore pixels (RITM's ``get_iou``).

    >>> gt = np.array([[1, 1, 0, -1]], np.int8)
    >>> iou(gt, np.array([[True, False, True, True]]))  # 1 shared / 3 (the ignore pixel skipped)
    0.3333333333333333
    """
    g = check_target(gt)
    p = check_pred(pred, (g.shape[0], g.shape[1]))
    obj = g == 1
    inter = int(np.count_nonzero(obj & p))
    union = int(np.count_nonzero(obj | (p & (g != -1))))
    return 1.0 if union == 0 else inter / union


def noc(ious: Sequence[float], threshold: float, *, max_clicks: int = 20) -> int:
    """Clicks needed to reach ``threshold`` (1-based), ``max_clicks`` if never reached.

    >>> noc([0.5, 0.86, 0.91], 0.85), noc([0.5, 0.86, 0.91], 0.90), noc([0.5], 0.9, max_clicks=20)
    (2, 3, 20)
    """
    if max_clicks < 1:
        raise ValueError(f"max_clicks must be at least 1, got {max_clicks!r}")
    reached = np.flatnonzero(np.asarray(ious[:max_clicks], np.float64) >= threshold)
    return int(reached[0]) + 1 if reached.size else max_clicks


def _key(threshold: float) -> str:
    return f"{round(threshold * 100, 6):g}"


@dataclass(frozen=True)
class IISResult:
    """NoC, NoF, mIoU@k and timing of one dataset run (see the module docstring).

    Dicts are keyed by threshold (``0.85``) or by click count ``k``; :meth:`to_dict` gives a
    JSON-ready copy keyed ``"85"`` / ``"5"``.
    """

    n_samples: int
    max_clicks: int
    thresholds: tuple[float, ...]
    noc: dict[float, float]
    nof: dict[float, int]
    nof_never: dict[float, int]
    miou_at_k: dict[int, float]
    miou_missing: tuple[int, ...]
    miou_curve: tuple[float, ...]
    n_clicks: int
    seconds: float | None = None
    spc: float | None = None
    spi: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: thresholds as percent strings, k as strings."""
        return {
            "n_samples": self.n_samples,
            "max_clicks": self.max_clicks,
            "thresholds": list(self.thresholds),
            "noc": {_key(t): v for t, v in self.noc.items()},
            "nof": {_key(t): v for t, v in self.nof.items()},
            "nof_never": {_key(t): v for t, v in self.nof_never.items()},
            "miou_at_k": {str(k): v for k, v in self.miou_at_k.items()},
            "miou_missing": list(self.miou_missing),
            "miou_curve": list(self.miou_curve),
            "n_clicks": self.n_clicks,
            "seconds": self.seconds,
            "spc": self.spc,
            "spi": self.spi,
        }


#: the name of the agreed API for the same result
NocSummary = IISResult


def summarize(
    all_ious: Sequence[Sequence[float]],
    *,
    thresholds: Sequence[float] = (0.85, 0.90),
    max_clicks: int = 20,
    ks: Sequence[int] = (1, 2, 3, 5, 10, 20),
    seconds: float | None = None,
) -> IISResult:
    """NoC / NoF per threshold, mIoU@k and seconds per click over one IoU list per sample.

    >>> runs = [[0.9, 0.95], [0.5, 0.8, 0.86]]
    >>> r = summarize(runs, thresholds=(0.85,), max_clicks=3, ks=(1, 2, 3))
    >>> r.noc, r.nof, r.nof_never, r.miou_at_k, r.miou_missing
    ({0.85: 2.0}, {0.85: 1}, {0.85: 0}, {1: 0.7, 2: 0.875}, (3,))
    """
    if not all_ious:
        raise ValueError("summarize needs at least one sample's IoU list, got none")
    if max_clicks < 1:
        raise ValueError(f"max_clicks must be at least 1, got {max_clicks!r}")
    runs = [np.asarray(s, np.float64)[:max_clicks] for s in all_ious]
    nocs = {t: np.array([noc(list(r), t, max_clicks=max_clicks) for r in runs]) for t in thresholds}
    reached = {t: np.array([bool((r >= t).any()) for r in runs]) for t in thresholds}
    shortest = min(len(r) for r in runs)
    curve = tuple(float(np.mean([r[k] for r in runs])) for k in range(shortest))
    n_clicks = sum(len(s) for s in all_ious)
    n = len(runs)
    return IISResult(
        n_samples=n,
        max_clicks=max_clicks,
        thresholds=tuple(thresholds),
        noc={t: float(v.mean()) for t, v in nocs.items()},
        nof={t: int((v == max_clicks).sum()) for t, v in nocs.items()},
        nof_never={t: int((~v).sum()) for t, v in reached.items()},
        miou_at_k={k: curve[k - 1] for k in ks if 1 <= k <= shortest},
        miou_missing=tuple(k for k in ks if not 1 <= k <= shortest),
        miou_curve=curve,
        n_clicks=n_clicks,
        seconds=seconds,
        spc=None if seconds is None or n_clicks == 0 else seconds / n_clicks,
        spi=None if seconds is None else seconds / n,
    )
