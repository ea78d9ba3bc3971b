"""Every common segmentation format, read and written through the core types.

One module a format (``coco``, ``voc``, ...), each with ``SPEC``, ``detect``, ``Reader``
and ``Writer`` (see :mod:`masklab.formats._base`). This registry maps names to modules,
imported on first use; :func:`detect` names the format of a path, :func:`convert` streams
samples from a reader into a writer and returns the :class:`ConversionReport`.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from masklab._workers import check_workers, distributed, one_core
from masklab.core.labels import LabelMap
from masklab.errors import AmbiguousFormatError, UnknownFormatError
from masklab.formats import _parallel
from masklab.formats._base import Reader, Sample, Writer
from masklab.formats.report import ConversionReport

__all__ = [
    "ConversionReport",
    "Reader",
    "Sample",
    "Writer",
    "available",
    "convert",
    "detect",
    "get",
    "names",
    "open_reader",
]

# name -> module; the one hand-written table of formats
_REGISTRY: dict[str, str] = {
    "coco": "masklab.formats.coco",
    "coco-panoptic": "masklab.formats.coco_panoptic",
    "yolo-seg": "masklab.formats.yolo_seg",
    "voc": "masklab.formats.voc",
    "cityscapes": "masklab.formats.cityscapes",
    "ade20k": "masklab.formats.ade20k",
    "mapillary": "masklab.formats.mapillary",
    "camvid": "masklab.formats.camvid",
    "kitti": "masklab.formats.kitti",
    "png-masks": "masklab.formats.png_masks",
    "rle-csv": "masklab.formats.rle_csv",
    "tfrecord": "masklab.formats.tfrecord",
    "npz": "masklab.formats.npz",
    "labelme": "masklab.formats.labelme",
    "sa1b": "masklab.formats.sa1b",
}


def names() -> list[str]:
    """Every registered format name."""
    return list(_REGISTRY)


def available() -> list[str]:
    """The registered formats whose module is installed."""
    return [n for n, mod in _REGISTRY.items() if importlib.util.find_spec(mod) is not None]


def get(name: str) -> ModuleType:
    """The module of format ``name``; UnknownFormatError lists the known names."""
    module = _REGISTRY.get(name)
    if module is None or importlib.util.find_spec(module) is None:
        raise UnknownFormatError(
            f"unknown format {name!r}; known formats: {', '.join(available())}"
        )
    return importlib.import_module(module)


def detect(path: str | os.PathLike[str]) -> str:
    """Name the format of a file or folder.

    Every detector gives a confidence (0-3) and a reason; the most confident wins. When
    none matches, UnknownFormatError lists what each looked for; a tie at the top raises
    AmbiguousFormatError naming the candidates (pass the format explicitly).
    """
    p = Path(path)
    if not p.exists():
        raise UnknownFormatError(f"{p} does not exist", path=str(p))
    results = [(name, get(name).detect(p)) for name in available()]
    best = max((d.confidence for _, d in results), default=0)
    if best == 0:
        reasons = "; ".join(f"{name}: {d.reason}" for name, d in results)
        raise UnknownFormatError(
            f"cannot tell the format of {p}; pass --from FORMAT. Looked for: {reasons}",
            path=str(p),
        )
    top = [name for name, d in results if d.confidence == best]
    if len(top) > 1:
        why = "; ".join(f"{name}: {d.reason}" for name, d in results if d.confidence == best)
        raise AmbiguousFormatError(
            f"{p} looks like several formats ({why}); pass --from FORMAT", path=str(p)
        )
    return top[0]


def open_reader(
    path: str | os.PathLike[str],
    format: str | None = None,
    *,
    labels: LabelMap | None = None,
    strict: bool = False,
    **options: Any,
) -> Reader:
    """A reader for ``path`` (format detected when not given); ``options`` go to the
    format's Reader (e.g. COCO's ``gt=`` for a results file)."""
    name = format or detect(path)
    reader: Reader = get(name).Reader(path, labels=labels, strict=strict, **options)
    return reader


def convert(
    src: str | os.PathLike[str] | Reader,
    dst: str | os.PathLike[str],
    *,
    to: str,
    source_format: str | None = None,
    labels: LabelMap | None = None,
    strict: bool = False,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
    workers: int = 1,
    **options: Any,
) -> ConversionReport:
    """Convert a dataset (a path, or an open Reader) to another format, one sample at a
    time.

    The reader's problems and the writer's losses end up in the returned report; the
    output appears at ``dst`` only when the conversion finished (strict mode stops at
    the first problem and leaves ``dst`` untouched).

    ``workers=1`` uses one core: the writer deflates its PNGs on this thread (its
    ``png_threads`` set to 0; a Writer used directly overlaps them on 2 threads) and
    OpenCV runs on one thread for the call. ``workers > 1``
    decodes and encodes the samples in that many spawned processes
    (:mod:`masklab.formats._parallel`): the parent plans the work and writes the results
    in the original order, so every output byte and the report (problems in order,
    losses, counts) equal ``workers=1``'s; memory stays flat. A format whose reader and
    writer have nothing to run apart (neither ``Reader.for_worker`` nor
    ``Writer.parallel``) converts in one process whatever ``workers`` says. Processes are
    started with ``spawn``: in a script, call ``convert(..., workers=N)`` under
    ``if __name__ == "__main__":`` (the CLI does).
    """
    check_workers(workers)
    reader = (
        src
        if isinstance(src, Reader)
        else open_reader(src, source_format, labels=labels, strict=strict)
    )
    label_map = labels or reader.labels
    writer_class: type[Writer] = get(to).Writer
    in_workers = (workers > 1 or distributed()) and _parallel.uses_workers(reader, writer_class)
    with writer_class(
        dst, labels=label_map, strict=strict, overwrite=overwrite, **options
    ) as writer:
        if workers == 1 and not in_workers:
            writer.png_threads = 0  # one core: no deflating threads either
        if in_workers:
            _parallel.convert_in_workers(reader, writer, to=to, workers=workers, progress=progress)
        else:
            with one_core() if workers == 1 else contextlib.nullcontext():
                for sample in reader:
                    _write_one(writer, sample)
                    if progress is not None:
                        progress(1)
    report = writer.report
    report.source = reader.spec.name
    report.target = to
    report.merge(reader.report)
    return report


def _write_one(writer: Writer, sample: Sample) -> None:
    writer.write(sample)
    writer.report.samples += 1
    writer.report.instances += len(sample.instances)
