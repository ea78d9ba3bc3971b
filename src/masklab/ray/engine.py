"""``formats.convert`` on Ray Data: the engine behind ``masklab convert --engine ray``.

Two pipelines, both with the output and :class:`~masklab.formats.ConversionReport` of
:func:`masklab.formats.convert` (the same files, problems with file and record, losses):

* **sharded** (a reader that splits decoding off, ``Reader.for_worker``, or a writer that
  splits encoding off, ``Writer.parallel``: COCO, VOC, YOLO-seg...): the driver plans the
  work, Ray Data's ``map_batches`` decodes and encodes it on every CPU of the cluster
  (:mod:`masklab.ray.pool` running :mod:`masklab.formats._parallel`), and the driver
  commits the encoded parts in order, joining what the format needs joined (one COCO
  json, a data.yaml);
* **streamed** (any other pair): the reader runs in a Ray read task and cuts its samples
  into Arrow blocks (:mod:`masklab.ray.arrow`), which the driver pulls back in order and
  writes; reading overlaps with writing.

Ray is started for the call when it is not running (``address``: a cluster to join, else
a local one), and stopped after; a running Ray is used as it is.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

from masklab import _workers
from masklab.core.labels import LabelMap
from masklab.formats import ConversionReport, Reader, _parallel, get, open_reader
from masklab.formats import convert as local_convert
from masklab.ray._deps import require
from masklab.ray.io import BLOCK_SAMPLES, ordered, streamed, write_into

__all__ = ["convert", "session"]


@contextlib.contextmanager
def session(address: str | None = None, **init: Any) -> Iterator[None]:
    """Ray for the duration of the block: the running one, else one started (and stopped
    after) at ``address`` (``"auto"``, ``"ray://host:10001"``; None: a local cluster)."""
    ray = require()
    if ray.is_initialized():
        yield
        return
    init.setdefault("include_dashboard", False)
    init.setdefault("log_to_driver", False)
    ray.init(address=address, **init)
    try:
        yield
    finally:
        ray.shutdown()


def convert(
    src: str | os.PathLike[str] | Reader,
    dst: str | os.PathLike[str],
    *,
    to: str,
    source_format: str | None = None,
    labels: LabelMap | None = None,
    strict: bool = False,
    overwrite: bool = False,
    address: str | None = None,
    block_size: int = BLOCK_SAMPLES,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
    **options: Any,
) -> ConversionReport:
    """Convert a dataset to another format on Ray Data; same arguments, output and report
    as :func:`masklab.formats.convert` (``options`` go to the writer).

    ``address`` is the Ray cluster to join when Ray is not running yet (None: start a
    local one for this call); ``workers`` caps the blocks computed at once (default: the
    cluster's CPUs). A bad record is reported and the rest converts; with ``strict=True``
    the first raises and ``dst`` is left untouched.
    """
    from masklab.ray.pool import cluster_cpus, ordered_map

    with session(address):
        reader = (
            src
            if isinstance(src, Reader)
            else open_reader(src, source_format, labels=labels, strict=strict)
        )
        if _parallel.uses_workers(reader, get(to).Writer):
            with _workers.engine(ordered_map):
                return local_convert(
                    reader,
                    dst,
                    to=to,
                    labels=labels,
                    strict=strict,
                    overwrite=overwrite,
                    workers=workers or cluster_cpus(),
                    progress=progress,
                    **options,
                )
        label_map = labels or reader.labels
        with (
            get(to).Writer(
                dst, labels=label_map, strict=strict, overwrite=overwrite, **options
            ) as writer,
            ordered(),
        ):  # before the dataset is made: it keeps that context
            ds = streamed(reader, block_size=block_size)
            trailers = write_into(ds, writer, progress=progress)
        report: ConversionReport = writer.report
    report.source = reader.spec.name
    report.target = to
    for read_report in trailers or [reader.report]:
        report.merge(read_report)
    return report
