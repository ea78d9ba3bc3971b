"""Import any format masklab reads into a store version.

Each sample becomes a frame: its image a source (referenced where it lies, or copied into the
blob area with ``ingest=True``; embedded image bytes are always stored as blobs), its class
map a pixel-segmentation mask and its alpha an alpha mask (PNG blobs), its instances
annotations with compressed RLE, area and bbox. The reader's label map becomes the version's.

An import writes into a hidden version (status ``importing``) and shows it only once every
frame is in: a failed or killed import leaves no partial version, and a retry starts over.

``workers=N`` turns samples into frames (mask PNG encoding, hashing and blob writes, image
ingest) in N spawned processes while this one reads the samples and writes the catalog in
their order: the version gets the same frames, keys and order as with one process, and the
report the same problems in the same order.
"""

from __future__ import annotations

import contextlib
import mimetypes
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from masklab._workers import check_workers, distributed, ordered_map
from masklab.core.labels import LabelMap
from masklab.errors import MaskLabError
from masklab.formats import open_reader
from masklab.formats._base import Reader, Sample
from masklab.formats.report import ConversionReport
from masklab.store.model import Annotation, Frame, Source, blob_uri
from masklab.store.store import Store, Version, delete_version_rows

__all__ = ["ImportResult", "import_path", "sample_to_frame"]

SEMANTIC_MASK = "semantic"
ALPHA_MASK = "alpha"


@dataclass
class ImportResult:
    """What an import did: the version it made, counts, time, and the reader's problems."""

    version: str
    frames: int = 0
    annotations: int = 0
    seconds: float = 0.0
    report: ConversionReport = field(default_factory=ConversionReport)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "version": self.version,
            "frames": self.frames,
            "annotations": self.annotations,
            "seconds": round(self.seconds, 3),
            "frames_per_second": round(self.frames / self.seconds, 1) if self.seconds else None,
            "problems": len(self.report.problems),
        }


def sample_to_frame(
    store: Store, sample: Sample, labels: LabelMap, *, ingest: bool = False
) -> Frame:
    """A reader's sample as a store frame (masks written as blobs)."""
    h, w = sample.size
    uri: str | None = None
    content_type: str | None = None
    if sample.image_bytes is not None:
        uri = blob_uri(store.blobs.put(sample.image_bytes))
    elif sample.image is not None:
        path = sample.image.resolve()
        uri = blob_uri(store.blobs.ingest(str(path))) if ingest else str(path)
        content_type = mimetypes.guess_type(path.name)[0]
    masks = {}
    if sample.semantic is not None:
        masks[SEMANTIC_MASK] = store.put_mask(sample.semantic)
    if sample.alpha is not None:
        masks[ALPHA_MASK] = store.put_mask(sample.alpha, mode="alpha")
    anns = []
    for inst in sample.instances:
        label = labels.by_id(inst.class_id) if inst.class_id in labels else None
        anns.append(
            Annotation(
                labels=label.names if label is not None else (),
                class_id=inst.class_id,
                rle=inst.mask,
                polygons=inst.polygons,
                score=inst.score,
                iscrowd=inst.iscrowd,
                instance_id=inst.id,
                meta=dict(inst.attributes),
            )
        )
    meta = dict(sample.meta)
    if sample.subset is not None:
        meta["subset"] = sample.subset
    if not sample.labeled:
        meta["labeled"] = False
    src = Source(uri, width=w, height=h, content_type=content_type, masks=masks)
    return Frame(sample.id, (src,), tuple(anns), meta=meta)


def import_path(
    store: Store,
    path: str | os.PathLike[str] | Reader,
    *,
    dataset: str,
    version: str | None = None,
    parent: str | None = None,
    format: str | None = None,
    labels: LabelMap | None = None,
    strict: bool = False,
    ingest: bool = False,
    progress: Callable[[int], None] | None = None,
    workers: int = 1,
) -> ImportResult:
    """Import a dataset folder or file (any readable format) as a new version.

    With ``parent`` the version starts from the parent's frames: imported frames with an id
    the parent has replace it, others are added. The version appears, committed, only when
    the import finished; on any error it is removed. ``workers > 1`` builds the frames in
    that many spawned processes (see the module docstring; a script must guard its entry
    point with ``if __name__ == "__main__":``); each opens the store's blob area by its URL.
    """
    check_workers(workers)
    start = time.perf_counter()
    reader = (
        path
        if isinstance(path, Reader)
        else open_reader(path, format, strict=strict, labels=labels)
    )
    ds = store.get_or_create_dataset(dataset)
    name = version or _next_name(ds.versions())
    v = ds.create_version(name, parent=parent, _status="importing")
    result = ImportResult(version=v.ref)
    try:
        label_map = labels or reader.labels
        if parent is not None:
            label_map = v.label_map.merged(label_map) if len(v.label_map) else label_map
        v.set_label_map(label_map)

        def frames() -> Iterator[Frame]:
            made = (
                _frames_here(store, reader, label_map, ingest)
                if workers == 1 and not distributed()
                else _frames_in_workers(store, reader, label_map, ingest, workers)
            )
            for frame in made:
                result.frames += 1
                result.annotations += len(frame.annotations)
                if progress is not None:
                    progress(1)
                yield frame

        v._write(frames(), "upsert" if parent is not None else "add", _batch())
        v.commit()
    except BaseException:
        _discard(store, v)
        raise
    result.report = reader.report
    result.seconds = time.perf_counter() - start
    return result


def _frames_here(store: Store, reader: Reader, labels: LabelMap, ingest: bool) -> Iterator[Frame]:
    for sample in reader:
        try:
            frame = sample_to_frame(store, sample, labels, ingest=ingest)
        except (MaskLabError, OSError) as e:
            reader.problem(sample.image or sample.id, sample.id, e)
            continue
        yield frame


def _frames_in_workers(
    store: Store, reader: Reader, labels: LabelMap, ingest: bool, workers: int
) -> Iterator[Frame]:
    """:func:`_frames_here`, with ``sample_to_frame`` run in ``workers`` processes.

    The reader runs here, ahead of the workers, and may report its own problems meanwhile;
    a sample that fails to become a frame is reported at the place in the report it has in
    a one-process import (after the problems read before that sample), so the report reads
    the same for any number of workers.
    """
    sent: deque[tuple[object, str, int]] = deque()  # (path, id, problems before it)

    def samples() -> Iterator[Sample]:
        for sample in reader:
            sent.append((sample.image or sample.id, sample.id, len(reader.report.problems)))
            yield sample

    made = ordered_map(
        _worker_frame,
        samples(),
        workers=workers,
        initializer=_worker_init,
        initargs=(store.blobs.url, labels, ingest),
    )
    failed = 0  # frame problems reported so far (each shifts the later places by one)
    with contextlib.closing(made):
        for frame in made:
            path, sample_id, before = sent.popleft()
            if isinstance(frame, Frame):
                yield frame
                continue
            reader.problem(path, sample_id, frame)  # raises in strict mode
            problems = reader.report.problems
            problems.insert(before + failed, problems.pop())
            failed += 1


# a worker process's blob-only store, label map and ingest flag (set once by _worker_init)
_WORKER: list[tuple[Store, LabelMap, bool]] = []


def _worker_init(blobs: str, labels: LabelMap, ingest: bool) -> None:
    # an in-memory catalog: a worker writes blobs only; the catalog is the parent's
    _WORKER[:] = [(Store(catalog="sqlite://", blobs=blobs), labels, ingest)]


def _worker_frame(sample: Sample) -> Frame | MaskLabError | OSError:
    """In a worker: the sample's frame, or the error that stopped it (reported by the
    parent, in order)."""
    store, labels, ingest = _WORKER[0]
    try:
        return sample_to_frame(store, sample, labels, ingest=ingest)
    except (MaskLabError, OSError) as e:
        return e


def _batch() -> int:
    return int(os.environ.get("MASKLAB_IMPORT_BATCH", "1000"))


def _next_name(existing: list[Version]) -> str:
    names = {v.name for v in existing}
    n = len(existing) + 1
    while f"v{n}" in names:
        n += 1
    return f"v{n}"


def _discard(store: Store, v: Version) -> None:
    """Remove a failed import's hidden version (best effort: a dead process's is collected
    by the next import of the same name or by ``store.gc()``)."""
    # the original error matters more than one in cleaning up
    with contextlib.suppress(Exception), store.catalog.write() as conn:
        delete_version_rows(conn, v.id)
