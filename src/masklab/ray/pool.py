"""Ray Data as the engine of every ``--workers`` map (``--engine ray``).

masklab's commands split their per-sample work with :func:`masklab._workers.ordered_map`
(convert and export: decode and encode; import: frames; eval: per-image counts; iis
evaluate: click sequences) and fold the results in input order in this process. Inside
:func:`engine`, those maps run on Ray Data instead: the work items become a dataset, one
block an item, and ``map_batches`` computes them on the cluster, each worker process
keeping its per-worker state (a reader copy, a writer, a model) for every block it gets.
The driver iterates the results in order (``preserve_order``) and folds them as the local
engine does, so each command's output and report are the same on both engines.

Items are taken from the caller's iterator in chunks of :data:`CHUNK` (one Ray Data
execution each; memory on the driver stays bounded by a chunk). An exception raised by
the function comes back to the driver and is raised there at its item's place, after the
results before it, as the local engine does.
"""

from __future__ import annotations

import contextlib
import itertools
import pickle
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from masklab import _workers
from masklab.ray._deps import require
from masklab.ray.io import ordered, unwrapped

__all__ = ["CHUNK", "cluster_cpus", "engine", "ordered_map"]

#: items a Ray Data execution: the driver holds at most this many at once
CHUNK = 4096
#: blocks per worker a chunk is cut into at least (fewer, bigger blocks: less per-task
#: overhead; enough of them that the workers stay evenly busy)
BLOCKS_PER_WORKER = 16

_worker_key: str | None = None  # whose state this Ray worker process holds


def cluster_cpus() -> int:
    """The CPUs of the Ray cluster joined (at least 1): the default parallelism."""
    return max(1, int(require().cluster_resources().get("CPU", 1)))


@contextlib.contextmanager
def engine(address: str | None = None) -> Iterator[None]:
    """Ray (joined at ``address``, else started locally; see
    :func:`masklab.ray.engine.session`) runs every ordered map of the block."""
    from masklab.ray.engine import session

    with session(address), _workers.engine(ordered_map):
        yield


def ordered_map(
    fn: Callable[[Any], Any],
    items: Iterable[Any],
    *,
    workers: int,
    initializer: Callable[..., object] | None = None,
    initargs: tuple[Any, ...] = (),
    window: int | None = None,
) -> Iterator[Any]:
    """:func:`masklab._workers.ordered_map` on Ray Data: ``fn(item)`` for each item, at
    most ``workers`` at once across the cluster, yielded in the order of ``items``
    (``window`` is Ray Data's business here and ignored)."""
    rt = require()
    state = rt.put((initializer, initargs))
    key = uuid.uuid4().hex
    source = iter(items)
    while True:
        chunk: list[bytes] = []
        error: Exception | None = None
        try:
            for item in itertools.islice(source, CHUNK):
                chunk.append(pickle.dumps(item, protocol=5))
        except Exception as err:  # the items' own error, raised after the results before it
            error = err
        if chunk:
            yield from _run(rt, chunk, fn, state, key, workers)
        if error is not None:
            raise error
        if len(chunk) < CHUNK:
            return


def _run(
    rt: Any, chunk: list[bytes], fn: Callable[[Any], Any], state: Any, key: str, workers: int
) -> Iterator[Any]:
    with ordered():
        blocks = min(len(chunk), max(1, workers) * BLOCKS_PER_WORKER)
        ds = rt.data.from_items([{"item": blob} for blob in chunk], override_num_blocks=blocks)
        ds = ds.map_batches(
            _apply,
            batch_size=None,
            batch_format="pyarrow",
            fn_kwargs={"fn": fn, "state": state, "key": key},
            concurrency=max(1, min(workers, blocks)),
            num_cpus=1,
        )
        with unwrapped():
            for table in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
                for blob in table.column("out").to_pylist():
                    ok, value = pickle.loads(blob)
                    if not ok:
                        raise value
                    yield value


def _apply(table: Any, *, fn: Callable[[Any], Any], state: Any, key: str) -> Any:
    """One block on a Ray worker: the per-worker state set up once per map, then ``fn``
    of each item, pickled as ``(True, result)`` or ``(False, exception)``."""
    global _worker_key
    import pyarrow as pa
    import ray

    if _worker_key != key:
        _workers.start_worker(*ray.get(state))
        _worker_key = key
    out = []
    for blob in table.column("item").to_pylist():
        try:
            done: tuple[bool, Any] = (True, fn(pickle.loads(blob)))
        except Exception as err:
            done = (False, err)
        out.append(_dumps(done))
    return pa.table({"out": pa.array(out, pa.binary())})


def _dumps(done: tuple[bool, Any]) -> bytes:
    """Pickle an outcome; an exception that cannot be pickled becomes a RuntimeError
    with its text."""
    try:
        return pickle.dumps(done, protocol=5)
    except Exception:
        if done[0]:
            raise
        err = done[1]
        return pickle.dumps((False, RuntimeError(f"{type(err).__name__}: {err}")), protocol=5)
