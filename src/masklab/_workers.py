"""Local parallelism: how many worker processes to start, and an ordered map over them.

``eval``, ``iis evaluate`` and ``import`` split their per-sample work over processes
(``--workers N``) and must give exactly what one process gives. The rule that makes this
hold is here: :func:`ordered_map` yields results in the order of its inputs, whatever the
order the workers finish in, so the caller folds them (counts merged, records appended,
problems reported) exactly as the one-process loop does.

Workers are started with ``spawn`` (no inherited threads, locks or open database
connections; the same on Linux, macOS and Windows): each imports masklab afresh, which costs
about half a second, paid once per pool. A script that asks for workers must therefore
guard its entry point with ``if __name__ == "__main__":`` (the CLI does). Functions and
arguments travel by pickle: functions must be module-level. Per-worker state (a model, a
dataset) is sent once through ``initializer`` / ``initargs`` rather than with every item.

Another engine can take the map over: inside ``with engine(mapper):`` every
:func:`ordered_map` call runs through ``mapper`` (same signature, same contract), and
:func:`distributed` is true, so callers take their worker path even for ``workers=1``.
``masklab.ray.pool`` installs Ray Data this way (``--engine ray``): the commands keep their
one fold of ordered results, so their output cannot depend on the engine.

Only the standard library is used here (layer 0).
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import multiprocessing
import os
import sys
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextvars import ContextVar
from typing import Any, TypeVar

__all__ = [
    "Mapper",
    "auto_workers",
    "check_workers",
    "default_workers",
    "distributed",
    "engine",
    "one_core",
    "ordered_map",
    "settle_allocator",
    "single_threaded",
    "start_worker",
]

T = TypeVar("T")
R = TypeVar("R")

#: an ordered map with :func:`ordered_map`'s signature and contract, run by another engine
Mapper = Callable[..., Iterator[Any]]

_mapper: ContextVar[Mapper | None] = ContextVar("masklab_mapper", default=None)


@contextlib.contextmanager
def engine(mapper: Mapper) -> Iterator[None]:
    """Run every :func:`ordered_map` of the block through ``mapper`` (see the module)."""
    token = _mapper.set(mapper)
    try:
        yield
    finally:
        _mapper.reset(token)


def distributed() -> bool:
    """Whether another engine runs the maps (inside :func:`engine`): callers then use
    their worker path whatever ``workers`` says.

    >>> distributed()
    False
    """
    return _mapper.get() is not None


def default_workers() -> int:
    """The cores this process may run on (its CPU affinity where the OS has one).

    >>> default_workers() >= 1
    True
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def check_workers(workers: int) -> int:
    """``workers`` if it is a positive int, else ValueError naming the fix.

    >>> check_workers(2)
    2
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an int >= 1 (1: no extra process), got {workers!r}")
    return workers


def auto_workers(items: int | None, *, per_worker: int) -> int:
    """The default worker count for ``items`` pieces of work: every core, but no more
    processes than ``ceil(items / per_worker)`` when ``items`` is known (starting a process
    costs about half a second; below ``per_worker`` items it does not pay).

    >>> auto_workers(10, per_worker=32)
    1
    >>> auto_workers(None, per_worker=32) == default_workers()
    True
    """
    cores = default_workers()
    if items is None:
        return cores
    return max(1, min(cores, math.ceil(items / per_worker)))


def single_threaded() -> None:
    """Make this process compute on one thread: OpenCV's own thread pool (when OpenCV is
    loaded) set to 1, so N worker processes on N cores do not oversubscribe them."""
    cv2 = sys.modules.get("cv2")
    if cv2 is not None:
        cv2.setNumThreads(1)


@contextlib.contextmanager
def one_core() -> Iterator[None]:
    """This process on one thread for the block (``workers=1``: one core of work), OpenCV's
    thread count restored after."""
    cv2 = sys.modules.get("cv2")
    before = cv2.getNumThreads() if cv2 is not None else None
    single_threaded()
    try:
        yield
    finally:
        if cv2 is not None and before is not None:
            cv2.setNumThreads(before)


def settle_allocator() -> None:
    """glibc only (a no-op elsewhere): keep freed heap memory for reuse instead of handing it
    back to the OS after every image. A fresh worker process otherwise maps and unmaps
    its large arrays again and again (page faults: about a fifth of a conversion worker's
    time). Memory up to 256 MiB a worker stays mapped after use."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl, ...)
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's mallopt parameters
    libc.mallopt(m_mmap_threshold, 32 << 20)
    libc.mallopt(m_trim_threshold, 256 << 20)


def start_worker(initializer: Callable[..., object] | None, initargs: tuple[Any, ...]) -> None:
    """A worker's start: the allocator settled, the caller's initializer, then one thread
    (:func:`single_threaded`)."""
    settle_allocator()
    if initializer is not None:
        initializer(*initargs)
    single_threaded()


def ordered_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    workers: int,
    initializer: Callable[..., object] | None = None,
    initargs: tuple[Any, ...] = (),
    window: int | None = None,
) -> Generator[R, None, None]:
    """``fn(item)`` for each item, computed in ``workers`` spawned processes, yielded in the
    order of ``items``.

    ``items`` is consumed lazily: at most ``window`` items (default ``4 * workers``) are in
    flight, so memory stays flat on a long stream and the caller's own work on results
    (writing a catalog, merging counts) overlaps with the workers'. An exception raised by
    ``fn``, or by ``items`` itself, is re-raised here at its place in the order (the results
    of the items before it are yielded first), as a loop in one process would raise it;
    closing the iterator early cancels what is queued. ``initializer(*initargs)`` runs once
    in each worker before any item. Inside :func:`engine`, the engine's mapper runs it.
    """
    check_workers(workers)
    mapper = _mapper.get()
    if mapper is not None:
        yield from mapper(
            fn, items, workers=workers, initializer=initializer, initargs=initargs, window=window
        )
        return
    limit = window if window is not None else 4 * workers
    if limit < 1:
        raise ValueError(f"window must be >= 1, got {window!r}")
    pool = ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=start_worker,
        initargs=(initializer, initargs),
    )
    pending: deque[Future[R]] = deque()
    source = iter(items)
    try:
        while True:
            try:
                item = next(source)
            except StopIteration:
                break
            except Exception:  # raised after the results of the items before it, as in a loop
                while pending:
                    yield pending.popleft().result()
                raise
            pending.append(pool.submit(fn, item))
            if len(pending) >= limit:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
