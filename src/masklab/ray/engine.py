"""``formats.convert`` on Ray Data: the engine behind ``masklab convert --engine ray``.

Every format's reader splits decoding off and every writer splits encoding off
(:mod:`masklab.formats._parallel`): the driver plans the work, Ray Data's ``map_batches``
decodes and encodes it on every CPU of the cluster (:mod:`masklab.ray.pool`), and the
driver commits the encoded parts in order, joining what the format needs joined (one COCO
json, a data.yaml). Output and :class:`~masklab.formats.ConversionReport` equal those of
:func:`masklab.formats.convert`: the same files, problems with file and record, losses.

Ray is started for the call when it is not running (``address``: a cluster to join, else
a local one), and stopped after; a running Ray is used as it is.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

from masklab.core.labels import LabelMap
from masklab.formats import ConversionReport, Reader
from masklab.formats import convert as local_convert
from masklab.ray._deps import require

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
    from masklab.ray import pool

    with pool.engine(address):
        return local_convert(
            src,
            dst,
            to=to,
            source_format=source_format,
            labels=labels,
            strict=strict,
            overwrite=overwrite,
            workers=workers or pool.cluster_cpus(),
            progress=progress,
            **options,
        )
