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

#: seconds spent timing each callable of a figure, over all rounds (~0.5-1.5 s a figure)
BUDGET_S = 0.35
#: a single timed sample runs the callable enough times to last at least this long
MIN_SAMPLE_S = 2e-3
MIN_REPEATS = 3
MAX_REPEATS = 2000
#: alternating rounds of masklab / peer samples per figure
ROUNDS = 5

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


def settle_allocator(mib: int = 24) -> None:
    """Put glibc's allocator in the state of a process that has already handled big arrays.

    glibc serves a fresh process's multi-MiB arrays with ``mmap`` and trims the heap after
    freeing them, so every call that allocates a frame-sized temporary pays ~500 page
    faults per 2 MiB; freeing one large block raises the mmap and trim thresholds and ends
    that. Which state a figure sees otherwise depends on what ran before it (decode of a
    1920x1080 frame measured 0.26 ms or 2.9 ms on the same VM), so every run settles it
    first: the steady state of a long-running pipeline, the same for masklab and its peer.
    """
    import numpy as np

    block = np.empty(mib << 20, np.uint8)
    block[::4096] = 1  # touch every page so the block is really mapped
    del block


def _calibrate(fn: Callable[[], object], budget_s: float) -> int:
    """Warm ``fn`` up (caches, lazy imports, allocator) and pick calls per timed sample."""
    t0 = time.perf_counter()
    fn()
    one = time.perf_counter() - t0
    warm_until = time.perf_counter() + min(0.1, 0.2 * budget_s)
    calls = 0
    t0 = time.perf_counter()
    while calls < 2 or (time.perf_counter() < warm_until and calls < 1000):
        fn()
        calls += 1
    one = max(min(one, (time.perf_counter() - t0) / calls), 1e-9)
    return max(1, math.ceil(MIN_SAMPLE_S / one))


def _samples(fn: Callable[[], object], number: int, budget_s: float) -> list[float]:
    """Seconds per call, one value per sample of ``number`` calls, until ``budget_s``."""
    out: list[float] = []
    stop = time.perf_counter() + budget_s
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        while len(out) < MAX_REPEATS and (len(out) < MIN_REPEATS or time.perf_counter() < stop):
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            out.append((time.perf_counter() - t0) / number)
    finally:
        if gc_was_enabled:
            gc.enable()
    return out


def measure(fn: Callable[[], object], *, budget_s: float = BUDGET_S) -> float:
    """Median seconds per call of ``fn``: warm-up, then adaptive repeats.

    Each sample runs ``fn`` enough times to last at least ``MIN_SAMPLE_S``; samples are
    taken until ``budget_s`` is spent (at least ``MIN_REPEATS``, at most ``MAX_REPEATS``).
    The garbage collector is off while timing, as in :mod:`timeit`.
    """
    number = _calibrate(fn, budget_s)
    return statistics.median(_samples(fn, number, budget_s))


def measure_pair(
    a: Callable[[], object],
    b: Callable[[], object],
    *,
    budget_s: float = BUDGET_S,
    rounds: int = ROUNDS,
) -> tuple[float, float]:
    """Seconds per call of ``a`` and ``b``, timed in alternating rounds.

    Each round takes the median of its samples (at least ``MIN_REPEATS``); the figure is
    the best round's median. Interleaving spreads a slow spell of a shared machine over
    both sides, and such spells only ever add time, so the quietest round is the most
    faithful one.
    """
    na, nb = _calibrate(a, budget_s), _calibrate(b, budget_s)
    ma: list[float] = []
    mb: list[float] = []
    for _ in range(rounds):
        ma.append(statistics.median(_samples(a, na, budget_s / rounds)))
        mb.append(statistics.median(_samples(b, nb, budget_s / rounds)))
    return min(ma), min(mb)


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
        "stat": f"best of {ROUNDS} interleaved round medians",
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
    ours_s, theirs_s = measure_pair(ours, theirs)
    rec = make_record(name, ours_s, theirs_s, peer=peer, target=target, op=op)
    print(format_line(rec), flush=True)
    return rec
