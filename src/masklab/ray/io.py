"""Read any format into a Ray Dataset of sample rows; write such a dataset in any format.

:func:`read` runs the format's reader on the driver and cuts its samples into Arrow blocks
(:mod:`masklab.ray.arrow`), put in Ray's object store as they are made; the dataset keeps
the reader's order. :func:`write` pulls the blocks back in order and feeds the format's
writer, so the output is the one ``formats.convert`` writes, byte for byte where the
format is deterministic.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from masklab.core.labels import LabelMap
from masklab.errors import MaskLabError
from masklab.formats import ConversionReport, Reader, Writer, get, open_reader
from masklab.ray._deps import require
from masklab.ray.arrow import to_samples, to_table

if TYPE_CHECKING:
    import ray.data

__all__ = ["BLOCK_SAMPLES", "labels_of", "read", "write"]

#: samples a block: big enough that Ray's per-block cost vanishes, small enough to stream
BLOCK_SAMPLES = 256
STREAM_BLOCK_BYTES = 1 << 20


def dataset(reader: Reader, *, block_size: int = BLOCK_SAMPLES) -> ray.data.Dataset:
    """A dataset of the reader's samples, in order (read on the driver, block by block)."""
    rt = require()
    context()
    samples = iter(reader)
    refs = []
    while batch := list(itertools.islice(samples, block_size)):
        refs.append(rt.put(to_table(batch)))
    if not refs:
        from masklab.ray.arrow import schema

        refs = [rt.put(schema().empty_table())]
    ds: ray.data.Dataset = rt.data.from_arrow_refs(refs)
    return ds


def read(
    path: str | os.PathLike[str],
    format: str | None = None,
    *,
    labels: LabelMap | None = None,
    strict: bool = False,
    block_size: int = BLOCK_SAMPLES,
    report: ConversionReport | None = None,
    **options: Any,
) -> ray.data.Dataset:
    """A ``ray.data.Dataset`` of the samples at ``path``, one row a sample.

    The format is detected when not given; ``options`` go to its reader. Records the
    reader cannot read are skipped and, when ``report`` is given, added to it (with
    ``strict=True`` the first raises FormatError). The dataset's label map is
    :func:`labels_of` the same path.
    """
    reader = open_reader(path, format, labels=labels, strict=strict, **options)
    ds = dataset(reader, block_size=block_size)
    if report is not None:
        report.source = reader.spec.name
        report.merge(reader.report)
    return ds


def labels_of(path: str | os.PathLike[str], format: str | None = None, **options: Any) -> LabelMap:
    """The label map the reader of ``path`` finds (what :func:`write` wants as ``labels``)."""
    return open_reader(path, format, **options).labels


def context() -> Any:
    """Ray Data's current ``DataContext``, made quietly: Ray 2.60 warns about its own
    defaults when it first makes one (a DeprecationWarning, an error under ``-W error``)."""
    rt = require()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="ray.data.context")
        return rt.data.DataContext.get_current()


@contextlib.contextmanager
def ordered() -> Iterator[None]:
    """Ray Data keeps the blocks' order (``preserve_order``) and passes blocks on as they
    come (a small ``target_max_block_size``: the default, 128 MiB, holds a whole dataset
    back until it is computed); restored after."""
    ctx = context()
    before = ctx.execution_options.preserve_order, ctx.target_max_block_size
    ctx.execution_options.preserve_order = True
    ctx.target_max_block_size = STREAM_BLOCK_BYTES
    try:
        yield
    finally:
        ctx.execution_options.preserve_order, ctx.target_max_block_size = before


def write_into(
    ds: ray.data.Dataset,
    writer: Writer,
    *,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Feed every row of ``ds`` to ``writer`` in the dataset's order (blocks fetched ahead
    while the driver writes)."""
    with ordered(), unwrapped():
        for table in ds.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=4):
            samples = to_samples(table)
            for sample in samples:
                writer.write(sample)
                writer.report.samples += 1
                writer.report.instances += len(sample.instances)
            if progress is not None:
                progress(len(samples))


@contextlib.contextmanager
def unwrapped() -> Iterator[None]:
    """Raise a masklab error from a Ray task as itself (strict mode's FormatError), not
    wrapped in Ray's task error."""
    rt = require()
    try:
        yield
    except rt.exceptions.RayTaskError as err:
        cause = err.cause if isinstance(err.cause, MaskLabError) else None
        if cause is None:
            raise
        raise cause from None


def write(
    ds: ray.data.Dataset,
    dst: str | os.PathLike[str],
    format: str,
    *,
    labels: LabelMap | None = None,
    strict: bool = False,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
    **options: Any,
) -> ConversionReport:
    """Write a dataset of sample rows (from :func:`read`, or your own with the columns of
    :mod:`masklab.ray.arrow`) as ``format`` at ``dst``; returns the writer's report.

    ``labels`` is the label map to write with (:func:`labels_of` the source); without it
    the writer gets an empty map, fine for formats that keep bare class ids. The output
    appears at ``dst`` only when every row was written.
    """
    with get(format).Writer(
        dst, labels=labels or LabelMap(), strict=strict, overwrite=overwrite, **options
    ) as writer:
        write_into(ds, writer, progress=progress)
    report: ConversionReport = writer.report
    report.target = format
    return report
