"""Timing helpers for the benchmark suite: adaptive medians and one-line reports.

A figure times masklab and a peer (pycocotools, or a floor such as ``ndarray.copy``) on the
same data in the same process, prints one line and returns a JSON-ready record.
"""

from __future__ import annotations

import gc
import importlib.metadata
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from functools import cache
from typing import Any, Literal

Op = Literal[">=", "<="]

#: seconds spent timing each callable of a figure (two per figure: ~0.5-1.5 s a figure)
BUDGET_S = 0.35
#: a single timed sample runs the callable enough times to last at least this long
MIN_SAMPLE_S = 2e-3
MIN_REPEATS = 5
MAX_REPEATS = 2000

FIGURE_WIDTH = 34
PEER_WIDTH = 12


class Disagreement(AssertionError):
    """masklab and its peer gave different results: the figure would be meaningless."""


def agree(condition: object, message: str) -> None:
    """Raise :class:`Disagreement` unless ``condition`` holds (survives ``python -O``)."""
    if not condition:
        raise Disagreement(message)


# --------------------------------------------------------------------------- environment


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


@cache
def versions() -> dict[str, str]:
    """Versions of everything a figure depends on."""
    import cv2
    import numpy as np

    import masklab

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pycocotools": _version("pycocotools"),
        "opencv": cv2.__version__,
        "masklab": masklab.__version__,
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


@cache
def machine() -> dict[str, Any]:
    """Where the figures were taken."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    return {
        "platform": platform.platform(),
        "arch": platform.machine(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_usable": usable,
        "node": platform.node(),
    }


# --------------------------------------------------------------------------- timing


def measure(fn: Callable[[], object], *, budget_s: float = BUDGET_S) -> float:
    """Median seconds per call of ``fn``: warm-up, then adaptive repeats.

    Each sample runs ``fn`` ``number`` times so it lasts at least ``MIN_SAMPLE_S``; the
    number of samples fills ``budget_s`` (between ``MIN_REPEATS`` and ``MAX_REPEATS``).
    The garbage collector is off while timing, as in :mod:`timeit`.
    """
    # warm-up: caches, lazy imports, allocator; also a first estimate of the cost
    t0 = time.perf_counter()
    fn()
    one = time.perf_counter() - t0
    warm_until = time.perf_counter() + min(0.1, 0.2 * budget_s)
    calls = 0
    t0 = time.perf_counter()
    while calls < 2 or time.perf_counter() < warm_until:
        fn()
        calls += 1
        if calls >= 1000:
            break
    one = min(one, (time.perf_counter() - t0) / calls)
    one = max(one, 1e-9)

    number = max(1, math.ceil(MIN_SAMPLE_S / one))
    repeats = int(min(MAX_REPEATS, max(MIN_REPEATS, budget_s / (number * one))))
    samples = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            samples.append((time.perf_counter() - t0) / number)
    finally:
        if gc_was_enabled:
            gc.enable()
    return statistics.median(samples)


# --------------------------------------------------------------------------- reporting


def fmt_ms(ms: float) -> str:
    """Milliseconds with about three significant digits."""
    if ms >= 100:
        return f"{ms:.0f}"
    if ms >= 10:
        return f"{ms:.1f}"
    if ms >= 1:
        return f"{ms:.2f}"
    if ms >= 0.1:
        return f"{ms:.3f}"
    return f"{ms:.4f}"


def _fmt_x(x: float) -> str:
    if x >= 100:
        return f"{x:.0f}x"
    if x >= 1:
        return f"{x:.1f}x"
    if x >= 0.1:
        return f"{x:.2f}x"
    return f"{x:.3f}x"


def make_record(
    figure: str,
    masklab_s: float,
    peer_s: float,
    *,
    peer: str = "pycocotools",
    target: float | None = None,
    op: Op = ">=",
) -> dict[str, Any]:
    """The JSON record of one figure.

    With ``op == ">="`` the ratio is the speed-up ``peer / masklab`` and must reach
    ``target``; with ``op == "<="`` it is the cost ``masklab / peer`` (e.g. encode time over
    a plain copy) and must stay at or below ``target``. ``ok`` is ``None`` without a target.
    """
    ratio = peer_s / masklab_s if op == ">=" else masklab_s / peer_s
    ok = None if target is None else (ratio >= target if op == ">=" else ratio <= target)
    return {
        "figure": figure,
        "masklab_ms": masklab_s * 1e3,
        "peer": peer,
        "peer_ms": peer_s * 1e3,
        "ratio": ratio,
        "ratio_is": "peer/masklab" if op == ">=" else "masklab/peer",
        "target": target,
        "op": op,
        "ok": ok,
        "versions": versions(),
        "machine": machine(),
    }


def format_line(rec: dict[str, Any]) -> str:
    """One line: figure, both medians, the ratio, the target and ok / MISS."""
    if rec["target"] is None:
        target, verdict = "(no target)", ""
    else:
        target = f"(target {rec['op']} {rec['target']:g}x)"
        verdict = "ok" if rec["ok"] else "MISS"
    return (
        f"{rec['figure']:<{FIGURE_WIDTH}} masklab {fmt_ms(rec['masklab_ms']):>7} ms  "
        f"{rec['peer']:<{PEER_WIDTH}} {fmt_ms(rec['peer_ms']):>7} ms  "
        f"{_fmt_x(rec['ratio']):>6}  {target:<17} {verdict}"
    ).rstrip()


def figure(
    name: str,
    ours: Callable[[], object],
    theirs: Callable[[], object],
    *,
    peer: str = "pycocotools",
    target: float | None = None,
    op: Op = ">=",
) -> dict[str, Any]:
    """Time masklab (``ours``) and the peer, print the line, return the record."""
    ours_s = measure(ours)
    theirs_s = measure(theirs)
    rec = make_record(name, ours_s, theirs_s, peer=peer, target=target, op=op)
    print(format_line(rec), flush=True)
    return rec
