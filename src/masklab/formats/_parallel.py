"""A conversion over several processes, written exactly as one process writes it.

The work of a conversion is split in four (see :mod:`masklab.formats._base`):

* **plan** (parent, in order): ``Reader.plan`` yields cheap work items (COCO: an image
  record and its raw annotations) and reports the records it cannot use;
* **decode** (worker): ``Reader.decode`` on the reader's ``for_worker`` copy turns items
  into samples (polygon and RLE decoding);
* **encode** (worker): ``Writer.encode`` on a writer made in the worker turns a sample
  into a part (class maps painted, PNGs deflated, json records serialised);
* **commit** (parent, in order): ``Writer.commit`` writes the part (duplicate names
  refused, ids numbered, files created in the stage).

Items travel in batches through :func:`masklab._workers.ordered_map`, which hands results
back in input order, so the parent commits sample ``k`` only after ``k - 1``. What each
step reports travels with its sample as a report *delta* (:func:`mark`, :func:`take`,
:func:`absorb`) and is added to the reader's or the writer's report at commit, in sample
order: the final report equals the one-process report entry for entry. An exception (strict
mode, a bug) is raised in the parent at its sample's place, after the samples before it;
the writer then aborts and nothing is left behind. At most ``4 * workers`` batches are in
flight, so memory stays flat.

Whether a side runs in the workers is the format's choice: a reader without
``for_worker`` is read in the parent and its samples are shipped to the workers; a writer
without ``parallel`` writes in the parent what the workers decoded. When neither side can
use a worker, :func:`convert_in_workers` is not called (``formats.convert`` runs one
process).
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from masklab._workers import ordered_map
from masklab.core.labels import LabelMap
from masklab.formats._base import Reader, Sample, Writer
from masklab.formats.report import ConversionReport

__all__ = [
    "BATCH",
    "Mark",
    "absorb",
    "convert_in_workers",
    "mark",
    "since",
    "take",
    "uses_workers",
]

#: samples a message between the processes
BATCH = 16

#: where a report stood: problems, losses, clipped, unknown colours (None: none yet)
Mark = tuple[int, int, int, Counter[tuple[int, int, int]] | None]


def mark(report: ConversionReport) -> Mark:
    """Where ``report`` stands now, for :func:`since`."""
    colors = Counter(report.unknown_colors) if report.unknown_colors else None
    return len(report.problems), len(report.losses), report.clipped, colors


def since(report: ConversionReport, start: Mark) -> ConversionReport | None:
    """What was added to ``report`` after ``start`` (None when nothing was), as a report.

    >>> r = ConversionReport()
    >>> m = mark(r)
    >>> r.problem("a.json", 3, "bad")
    >>> [p.record for p in since(r, m).problems]
    [3]
    """
    problems, losses, clipped, colors = start
    now_colors = sum(report.unknown_colors.values())
    if (
        len(report.problems) == problems
        and len(report.losses) == losses
        and report.clipped == clipped
        and now_colors == (sum(colors.values()) if colors else 0)
    ):
        return None
    delta = ConversionReport(
        problems=report.problems[problems:],
        losses=report.losses[losses:],
        clipped=report.clipped - clipped,
    )
    delta.unknown_colors = Counter(report.unknown_colors)
    if colors:
        delta.unknown_colors.subtract(colors)
        delta.unknown_colors = +delta.unknown_colors
    return delta


def take(report: ConversionReport, start: Mark) -> ConversionReport | None:
    """:func:`since`, and those entries removed from ``report`` (it is back at ``start``):
    what planning reported waits there for its sample's turn.

    >>> r = ConversionReport()
    >>> m = mark(r)
    >>> r.problem("a.json", 3, "bad")
    >>> [p.record for p in take(r, m).problems], r.problems
    ([3], [])
    """
    delta = since(report, start)
    if delta is not None:
        problems, losses, clipped, colors = start
        del report.problems[problems:]
        del report.losses[losses:]
        report.clipped = clipped
        report.unknown_colors = Counter(colors) if colors else Counter()
    return delta


def absorb(report: ConversionReport, delta: ConversionReport | None) -> None:
    """Add a delta (entries, clipped, unknown colours, exact count) to ``report``."""
    if delta is not None:
        report.merge(delta)
        report.exact += delta.exact


def uses_workers(reader: Reader, writer_class: type[Writer]) -> bool:
    """Whether a worker process has anything to do for this reader and writer."""
    return writer_class.parallel or type(reader).for_worker is not Reader.for_worker


# --------------------------------------------------------------------------- worker side


@dataclass(frozen=True, slots=True)
class _WriterSpec:
    """How a worker makes its own writer (for encode only; its stage stays empty)."""

    format: str
    path: Path
    labels: LabelMap
    strict: bool
    options: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Done:
    """One item's outcome: the reader's delta, then (unless the item was skipped) the
    part, the writer's delta and the sample's instance count."""

    read: ConversionReport | None
    skipped: bool
    part: Any = None
    written: ConversionReport | None = None
    instances: int = 0


_state: tuple[Reader | None, Writer | None] | None = None  # this worker's conversion


def _start(reader: Reader | None, spec: _WriterSpec | None) -> None:
    """Worker initializer: keep the reader copy, make the writer."""
    global _state
    writer = None
    if spec is not None:
        from masklab.formats import get

        writer = get(spec.format).Writer(
            spec.path, labels=spec.labels, strict=spec.strict, overwrite=True, **spec.options
        )
        writer.in_worker = True
    _state = (reader, writer)


def _run(items: list[Any]) -> tuple[list[_Done], BaseException | None]:
    """Decode and encode a batch; on an exception, the outcomes before it and it."""
    assert _state is not None, "worker used before _start"
    reader, writer = _state
    done: list[_Done] = []
    try:
        samples: Iterator[Sample | None] = iter(items) if reader is None else reader.decode(items)
        start = mark(reader.report) if reader is not None else None
        for sample in samples:
            read = None
            if reader is not None and start is not None:
                read = take(reader.report, start)
            if sample is None:
                done.append(_Done(read, True))
            elif writer is None:
                done.append(_Done(read, False, sample, None, len(sample.instances)))
            else:
                part, written = writer.encode_reported(sample)
                done.append(_Done(read, False, part, written, len(sample.instances)))
    except Exception as err:  # raised in the parent at this item's place
        return done, err
    return done, None


# --------------------------------------------------------------------------- parent side


def convert_in_workers(
    reader: Reader,
    writer: Writer,
    *,
    to: str,
    workers: int,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Stream ``reader`` into ``writer`` (open; the caller closes or aborts it) with the
    decoding and encoding in ``workers`` spawned processes; the reader's and the writer's
    reports end as one process leaves them. Call under ``if __name__ == "__main__":``."""
    copy = reader.for_worker()
    scratch = Path(
        tempfile.mkdtemp(prefix=f".{writer.path.name}.", suffix=".workers", dir=writer.path.parent)
    )
    spec = None
    if writer.parallel:
        options = {**writer.options, "images": writer.images}
        spec = _WriterSpec(to, scratch / "writer", writer.labels, writer.strict, options)
    before: deque[ConversionReport | None] = deque()  # what planning reported, per item
    after: list[ConversionReport | None] = []  # ... after the last item

    def planned() -> Iterator[Any]:
        start = mark(reader.report)
        for item in reader.plan() if copy is not None else iter(reader):
            before.append(take(reader.report, start))
            yield item
        after.append(take(reader.report, start))

    batches = ordered_map(
        _run,
        _batched(planned(), BATCH),
        workers=workers,
        initializer=_start,
        initargs=(copy, spec),
    )
    try:
        for done, error in batches:
            for d in done:
                absorb(reader.report, before.popleft())
                absorb(reader.report, d.read)
                if d.skipped:
                    continue
                if spec is None:
                    writer.write(d.part)
                else:
                    writer.commit(d.part, d.written or ConversionReport())
                writer.report.samples += 1
                writer.report.instances += d.instances
                if progress is not None:
                    progress(1)
            if error is not None:
                raise error
        for delta in after:
            absorb(reader.report, delta)
    finally:
        batches.close()  # the pool shut down here, not by the garbage collector later
        shutil.rmtree(scratch, ignore_errors=True)


def _batched(items: Iterable[Any], n: int) -> Iterator[list[Any]]:
    it = iter(items)
    while batch := list(itertools.islice(it, n)):
        yield batch
