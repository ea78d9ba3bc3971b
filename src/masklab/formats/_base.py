"""The contract every format module follows, and the helpers they share.

A format module (``masklab/formats/<name>.py``) holds:

* ``SPEC``: a :class:`FormatSpec` (name, kind, what it can hold);
* ``detect(path) -> Detection``: confidence 0-3 and a reason, reading a few KB at most;
* ``Reader(path, *, labels=None, strict=False)``: iterating yields :class:`Sample` one at a
  time (memory does not grow with the dataset); ``.labels`` is the dataset's
  :class:`~masklab.core.labels.LabelMap`, known before iteration; ``.report`` collects
  problems per record. With ``strict=True`` the first problem raises
  :class:`~masklab.errors.FormatError` naming the file and record.
* ``Writer(path, *, labels, strict=False, overwrite=False, **options)``: a context
  manager; ``write(sample)`` per sample; on a clean exit the output, staged in a temporary
  sibling, replaces ``path`` atomically; ``.report`` says what the target could not hold.

Conversions over several processes (:mod:`masklab.formats._parallel`) split both sides
into a costly, pure half that runs in worker processes and a cheap, ordered half that
runs in the parent, so that every output byte and the report are those of one process:

* a Reader may override :meth:`Reader.plan` (cheap work items, one per sample, in order:
  COCO's image records and their raw annotations), :meth:`Reader.decode` (items to
  samples: polygon and RLE decoding) and :meth:`Reader.for_worker` (a picklable copy that
  decodes). By default the plan is the samples themselves and nothing is decoded apart.
* a Writer with ``parallel = True`` implements :meth:`Writer.encode` (a sample to a
  picklable part: class maps painted, PNGs deflated, json records serialised; no files,
  no state shared between samples) and :meth:`Writer.commit` (the part written, in order:
  file names checked for duplicates, ids numbered, files created). ``write`` is then
  ``commit(encode(sample))``. Other writers keep their ``write`` and run in the parent.

Samples carry core types: instances (:class:`~masklab.core.instances.Instance`) and/or a
class-index map; writers convert between the two with :func:`semantic_of` and
:func:`instances_of`, which report what the conversion changed.
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, ClassVar, Literal, Self

import numpy as np
import numpy.typing as npt
from PIL import Image

from masklab.core import rle
from masklab.core.instances import (
    Instance,
    instances_to_semantic,
    semantic_to_instances,
)
from masklab.core.labels import Label, LabelMap
from masklab.errors import FormatError, MaskFormatError
from masklab.formats import _png
from masklab.formats.report import ConversionReport

__all__ = [
    "Capabilities",
    "Detection",
    "FormatSpec",
    "Reader",
    "Sample",
    "Writer",
    "image_size",
    "instances_of",
    "place_image",
    "read_png",
    "semantic_of",
    "write_png",
]

Kind = Literal["instances", "semantic", "panoptic"]
_BACKLOG = 8  # background PNG writes allowed to wait
_IO_THREADS = 8  # threads writing ready bytes (pure I/O: slow file systems wait, not compute)
_IO_BACKLOG = 64  # background byte writes allowed to wait
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a format can hold; everything else a writer reports as a loss."""

    holes: bool = True
    parts: bool = True
    overlap: bool = False
    crowd: bool = False
    scores: bool = False
    semantic: bool = False  # class-index maps (pixels without instance identity)
    instances: bool = True


@dataclass(frozen=True, slots=True)
class FormatSpec:
    """A format's name and nature."""

    name: str
    description: str
    kind: Kind
    holds: Capabilities
    extensions: tuple[str, ...] = ()
    can_read: bool = True
    can_write: bool = True


@dataclass(frozen=True, slots=True)
class Detection:
    """How sure a detector is that a path holds its format (0 no .. 3 certain), and why."""

    confidence: int
    reason: str

    @classmethod
    def no(cls, reason: str) -> Detection:
        return cls(0, reason)


@dataclass(frozen=True)
class Sample:
    """One image and its masks, in core types.

    ``size`` is ``(h, w)``. ``semantic`` is a class-index map of that size (ids of the
    reader's LabelMap), ``alpha`` an opacity mask (0-255, no labels). ``image`` is the
    image file when there is one; ``image_bytes`` the encoded image for formats that embed
    it. ``labeled`` is False for an image its source has no annotation of any kind for
    (a VOC test image): writers write no masks for it. An image a source lists with no
    objects (COCO) is labeled and empty, and class-map writers write it as background.
    """

    id: str
    size: tuple[int, int]
    image: Path | None = None
    instances: tuple[Instance, ...] = ()
    semantic: npt.NDArray[np.integer[Any]] | None = None
    alpha: npt.NDArray[np.uint8] | None = None
    subset: str | None = None
    image_bytes: bytes | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    labeled: bool = True

    @property
    def h(self) -> int:
        return self.size[0]

    @property
    def w(self) -> int:
        return self.size[1]


class Reader:
    """Base of format readers: path, strict mode, label map, report.

    Iterating must yield what ``decode`` makes of ``plan``'s items, in order (the
    defaults: the plan is the iteration, decode the identity)."""

    spec: ClassVar[FormatSpec]

    def __init__(
        self, path: str | os.PathLike[str], *, labels: LabelMap | None = None, strict: bool = False
    ) -> None:
        self.path = Path(path)
        self.strict = strict
        self.report = ConversionReport(source=self.spec.name)
        self._labels = labels

    @property
    def labels(self) -> LabelMap:
        """The dataset's label map (the one given, else what the files say)."""
        return self._labels if self._labels is not None else LabelMap()

    def __iter__(self) -> Iterator[Sample]:
        raise NotImplementedError

    def plan(self) -> Iterator[Any]:
        """Work items, one per sample, in the order iteration yields them; cheap (runs in
        the parent of a parallel conversion). Problems found here are reported here.
        Default: the samples themselves."""
        return iter(self)

    def decode(self, items: Sequence[Any]) -> Iterator[Sample | None]:
        """One result per item of :meth:`plan`, in order: its sample, or None when it was
        reported and skipped. Runs in a worker on :meth:`for_worker`'s copy, whose
        report collects what decoding found. Default: the items are the samples."""
        return iter(items)

    def for_worker(self) -> Reader | None:
        """A picklable copy of this reader that runs :meth:`decode` in another process
        (its report empty), or None when decoding is the identity (the default)."""
        return None

    def worker_copy(self, **attrs: Any) -> Self:
        """A shallow copy with an empty report and ``attrs`` set (big caches dropped,
        what was resolved kept): what :meth:`for_worker` returns."""
        twin = copy.copy(self)
        twin.report = ConversionReport(source=self.spec.name)
        for name, value in attrs.items():
            setattr(twin, name, value)
        return twin

    def problem(self, path: object, record: object, error: Exception | str) -> None:
        """Report a bad record and go on; in strict mode raise FormatError for it."""
        message = str(error)
        if self.strict:
            raise FormatError(
                f"{path}: record {record}: {message}", path=str(path), record=record
            ) from (error if isinstance(error, Exception) else None)
        self.report.problem(path, record, message)


class RecordReader(Reader):
    """A reader that lists its samples' files once (:meth:`_index`: cheap, nothing read)
    and reads each sample alone (:meth:`_decode_one`: None when it was reported and
    skipped); iteration, plan, decode and the worker copy follow from those two."""

    _records: list[Any] | None = None

    def _index(self) -> list[Any]:
        raise NotImplementedError

    def _decode_one(self, record: Any) -> Sample | None:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self._index())

    def __iter__(self) -> Iterator[Sample]:
        for record in self.plan():
            sample = self._decode_one(record)
            if sample is not None:
                yield sample

    def plan(self) -> Iterator[Any]:
        """One record per sample, in order: its id and files (nothing read)."""
        return iter(self._index())

    def decode(self, items: Sequence[Any]) -> Iterator[Sample | None]:
        """The samples of :meth:`plan`'s records; None for one reported and skipped."""
        for record in items:
            yield self._decode_one(record)

    def for_worker(self) -> Reader:
        """A copy that decodes in another process (no file index, an empty report)."""
        return self.worker_copy(_records=None)


class Writer:
    """Base of format writers: staging folder, atomic replace, report.

    A writer overrides :meth:`write`, or sets ``parallel = True`` and overrides
    :meth:`encode` and :meth:`commit` (see the module docstring)."""

    spec: ClassVar[FormatSpec]
    #: encode() and commit() are implemented: encode may run in worker processes
    parallel: ClassVar[bool] = False

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        labels: LabelMap,
        strict: bool = False,
        overwrite: bool = False,
        **options: Any,
    ) -> None:
        self.path = Path(path)
        self.labels = labels
        self.strict = strict
        self.overwrite = overwrite
        self.options = options
        self.report = ConversionReport(target=self.spec.name)
        if self.path.exists() and not overwrite and _non_empty(self.path):
            raise FormatError(
                f"{self.path} already exists; write to a new path or pass overwrite=True",
                path=str(self.path),
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._stage = Path(
            tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        )
        self._closed = False
        self.images = str(options.pop("images", "link"))
        if self.images not in ("link", "copy", "none"):
            raise ValueError(f"images must be 'link', 'copy' or 'none', got {self.images!r}")
        #: threads deflating PNGs in the background (0: on the calling thread); a one-core
        #: conversion (``convert(workers=1)``) sets 0, so workers=N means N cores of work
        self.png_threads = 2
        self._pool: ThreadPoolExecutor | None = None
        self._io_pool: ThreadPoolExecutor | None = None
        self._pending: deque[Future[None]] = deque()
        #: True in a worker process: encode() deflates PNGs itself (see png_payload)
        self.in_worker = False

    @property
    def stage(self) -> Path:
        """Where to write; becomes ``path`` on close (a folder output)."""
        return self._stage

    def write(self, sample: Sample) -> None:
        """Write one sample: ``commit(encode(sample))`` for a parallel writer."""
        if not self.parallel:
            raise NotImplementedError(f"{type(self).__name__} implements neither write nor encode")
        part, report = self.encode_reported(sample)
        self.commit(part, report)

    def encode(self, sample: Sample) -> Any:
        """The costly, stateless half of writing a sample, as a picklable part; what it
        reports goes to ``self.report`` (strict mode raises). Parallel writers only."""
        raise NotImplementedError

    def commit(self, part: Any, report: ConversionReport) -> None:
        """Write a part made by :meth:`encode`, in sample order; ``report`` is what encode
        reported for it, added with :meth:`absorb` (or left out when the sample is
        refused here, as a one-process write would not have reached encode's checks)."""
        raise NotImplementedError

    def encode_reported(self, sample: Sample) -> tuple[Any, ConversionReport]:
        """:meth:`encode` with what it reports collected apart, for :meth:`commit`."""
        kept, self.report = self.report, ConversionReport(target=self.spec.name)
        try:
            part = self.encode(sample)
        finally:
            report, self.report = self.report, kept
        return part, report

    def absorb(self, report: ConversionReport) -> None:
        """Add another report's entries and exact count to this writer's report."""
        self.report.merge(report)
        self.report.exact += report.exact

    def png_payload(
        self, rel: str, array: npt.NDArray[Any], *, palette: npt.NDArray[np.uint8] | None = None
    ) -> PngPayload:
        """A mask PNG at ``rel`` (relative to the stage) for a part: its bytes when encode
        runs in a worker (the deflate is the costly part), else the array (commit hands it
        to the background writer, as :meth:`write_png`)."""
        if self.in_worker:
            try:
                return rel, _png.encode_png(_png_ready(array), palette=palette), None
            except ValueError as err:
                raise MaskFormatError(f"{self.stage / rel}: {err}") from err
        return rel, array, palette

    def write_payload(self, payload: PngPayload) -> None:
        """Write what :meth:`png_payload` made into the stage, on the background thread."""
        rel, data, palette = payload
        if isinstance(data, bytes):
            if self._io_pool is None:
                self._io_pool = ThreadPoolExecutor(_IO_THREADS, thread_name_prefix="masklab-io")
            while len(self._pending) >= _IO_BACKLOG:
                self._pending.popleft().result()
            self._pending.append(self._io_pool.submit(_write_bytes, self.stage / rel, data))
        else:
            self.write_png(self.stage / rel, data, palette=palette)

    def write_files(self, sample: Sample, pngs: Sequence[PngPayload], image_file: str) -> None:
        """Commit a part's PNGs and place its image at ``image_file`` (relative to the
        stage); a failure is reported on the sample (strict mode raises)."""
        try:
            for png in pngs:
                self.write_payload(png)
            self.place_image(sample, self.stage / image_file)
        except (MaskFormatError, FormatError, OSError, ValueError) as err:
            self.fail(sample, None, err)

    def finish(self) -> None:
        """Write what is written once at the end (index files); override as needed."""

    def checked_id(self, sample: Sample) -> str | None:
        """The sample id as a safe relative path for file names, after checking the class
        map's shape; None (reported through :meth:`fail`) when either is unusable."""
        rel = safe_relpath(sample.id)
        if rel is None:
            self.fail(sample, None, f"sample id {sample.id!r} is not a relative file name")
            return None
        if sample.semantic is not None and tuple(sample.semantic.shape) != tuple(sample.size):
            self.fail(
                sample,
                None,
                f"class map is {list(sample.semantic.shape)} but the sample is "
                f"{list(sample.size)} (h, w)",
            )
            return None
        return rel

    def place_image(self, sample: Sample, dst: Path) -> bool:
        """Put the sample's image at ``dst`` as option ``images`` says: ``link`` (a hard
        link, else a copy; the default), ``copy``, or ``none`` (annotations only, like
        Datumaro's ``save_media=False``). False when no image was written."""
        if self.images == "none":
            return False
        return place_image(sample, dst, copy=self.images == "copy")

    def write_png(
        self, path: Path, array: npt.NDArray[Any], *, palette: npt.NDArray[np.uint8] | None = None
    ) -> None:
        """:func:`write_png` on a background thread (``png_threads`` of them; 0: here): PNG
        encoding and file creation release the GIL, so they overlap with reading and
        painting the next samples. At most ``_BACKLOG`` writes wait, so memory does not
        grow; an error surfaces at close. ``array`` must not be modified afterwards."""
        if self.png_threads == 0:
            write_png(path, array, palette=palette)
            return
        self._submit(write_png, path, array, palette=palette)

    def _submit(self, fn: Any, *args: Any, **kwargs: Any) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=self.png_threads, thread_name_prefix="masklab-png"
            )
        while len(self._pending) >= _BACKLOG:
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(fn, *args, **kwargs))

    def _drain(self, *, wait_errors: bool = True) -> None:
        try:
            while self._pending:
                future = self._pending.popleft()
                if wait_errors:
                    future.result()
                else:
                    future.cancel()
        finally:
            for pool in (self._pool, self._io_pool):
                if pool is not None:
                    pool.shutdown(wait=True)
            self._pool = self._io_pool = None

    def close(self) -> ConversionReport:
        """Finish, wait for background writes, then move the staged output into place."""
        if self._closed:
            return self.report
        try:
            self.finish()
            self._drain()
        except BaseException:
            self.abort()
            raise
        self._commit()
        self._closed = True
        return self.report

    def _commit(self) -> None:
        """Replace ``path`` by the staged folder (every writer's output is a folder)."""
        target = self.path
        if target.exists():
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink()
        os.replace(self._stage, target)

    def abort(self) -> None:
        """Drop the staged output; ``path`` is left as it was."""
        self._drain(wait_errors=False)
        shutil.rmtree(self._stage, ignore_errors=True)
        self._closed = True

    def __enter__(self) -> Writer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def fail(self, sample: Sample, instance: int | None, error: Exception | str) -> None:
        """Report a sample or instance that cannot be written; strict mode raises."""
        if self.strict:
            raise FormatError(
                f"{sample.id}: instance {instance}: {error}",
                path=str(sample.image),
                record=sample.id,
            ) from (error if isinstance(error, Exception) else None)
        self.report.problem(
            sample.image or sample.id,
            sample.id if instance is None else f"{sample.id}#{instance}",
            error,
        )


def _non_empty(path: Path) -> bool:
    return path.is_file() or (path.is_dir() and any(path.iterdir()))


# --------------------------------------------------------------------------- kinds


def semantic_of(
    sample: Sample,
    report: ConversionReport,
    *,
    order: Literal["given", "area"] = "given",
    background: int = 0,
) -> npt.NDArray[np.integer[Any]]:
    """The sample's class-index map; painted from its instances when it has none, with
    any contested pixels reported as an ``overlap`` loss."""
    if sample.semantic is not None:
        return sample.semantic
    painted = instances_to_semantic(
        sample.instances, sample.size, order=order, overlap="last", background=background
    )
    if painted.contested_px:
        report.loss(
            sample.id,
            None,
            "overlap",
            f"{painted.contested_px} px claimed by several instances; the later one kept them",
        )
    for i, inst in enumerate(sample.instances):
        if inst.iscrowd:
            report.loss(sample.id, i, "crowd", "crowd region painted as its class")
    return painted.array


def instances_of(
    sample: Sample,
    labels: LabelMap,
    *,
    connectivity: Literal[4, 8] = 8,
) -> tuple[Instance, ...]:
    """The sample's instances; split from its class map (connected components per class,
    stuff classes whole, background and ignore left out) when it has none."""
    if sample.instances or sample.semantic is None:
        return sample.instances
    stuff = [lab.id for lab in labels if not lab.isthing and lab.role == "class"]
    skip = [lab.id for lab in labels if lab.role in ("background", "ignore")]
    if not skip and 0 not in labels:
        skip = [0]
    return tuple(
        semantic_to_instances(sample.semantic, connectivity=connectivity, stuff=stuff, skip=skip)
    )


def with_background(labels: LabelMap) -> LabelMap:
    """The map with a ``background`` label at id 0 when it has no background and 0 is
    free: class maps painted from instances (COCO has no background category) are 0
    where no instance is, and a reader must find that value in the map."""
    if labels.background_id is not None or 0 in labels:
        return labels
    return labels.with_label(Label(0, ("background",), (0, 0, 0), isthing=False, role="background"))


def check_size(sample_id: str, mask: rle.RLE, size: tuple[int, int]) -> None:
    """MaskFormatError if a mask's size differs from its image's."""
    if mask.size != size:
        raise MaskFormatError(
            f"mask of {sample_id} has size {list(mask.size)} but its image is {list(size)}; "
            "fix the image size or re-encode the mask"
        )


# --------------------------------------------------------------------------- files


def read_png(path: Path) -> npt.NDArray[Any]:
    """Pixels of a PNG as stored: palette indices for mode P, 16-bit values kept, RGB(A)
    as (h, w, 3|4). FormatError naming the file if it cannot be decoded."""
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                return np.asarray(im, dtype=np.int32 if im.mode == "I" else np.uint16)
            return np.asarray(im)
    except (OSError, SyntaxError, ValueError) as err:
        raise FormatError(f"{path}: cannot read the image: {err}", path=str(path)) from err


def write_png(
    path: Path, array: npt.NDArray[Any], *, palette: npt.NDArray[np.uint8] | None = None
) -> None:
    """Write a mask PNG losslessly: uint8 (grayscale, or palette indices with ``palette``),
    uint16 / int32 / int64 within 0..65535 (16-bit grayscale), (h, w, 3|4) uint8 as RGB(A).
    Encoded by :mod:`masklab.formats._png` (zlib level 1: the bytes depend on the pixels)."""
    ensure_dir(path.parent)
    try:
        _png.write_png_file(path, _png_ready(array), palette=palette)
    except ValueError as err:
        raise MaskFormatError(f"{path}: {err}") from err


#: (path relative to the stage, PNG bytes or the array, palette)
PngPayload = tuple[str, bytes | npt.NDArray[Any], npt.NDArray[np.uint8] | None]


def _png_ready(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """The array as the PNG encoder takes it (wide ints narrowed to 16 bits)."""
    arr = np.ascontiguousarray(array)
    if arr.ndim == 2 and arr.dtype in (np.int32, np.int64, np.uint32):
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise ValueError("values outside 0..65535 do not fit a 16-bit PNG")
        arr = arr.astype(np.uint16)
    return arr


def _write_bytes(path: Path, data: bytes) -> None:
    ensure_dir(path.parent)
    path.write_bytes(data)


def safe_relpath(sample_id: str) -> str | None:
    """The id as a relative posix path, or None if it would leave the folder.

    >>> safe_relpath("train/a b"), safe_relpath("../x"), safe_relpath("/etc/x")
    ('train/a b', None, None)
    """
    parts = sample_id.replace("\\", "/").split("/")
    if not sample_id or sample_id.startswith("/") or any(p in ("", ".", "..") for p in parts):
        return None
    return "/".join(parts)


def ensure_dir(path: Path) -> Path:
    """``path`` as an existing folder. A stat first: on some file systems
    ``mkdir(exist_ok=True)`` on an existing folder costs as much as writing a small file."""
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True)
    return path


def image_size(source: Path | BinaryIO, *, exif: bool = False) -> tuple[int, int]:
    """``(h, w)`` of an image from its header. With ``exif`` an EXIF quarter turn
    (orientations 5-8) swaps width and height, as Ultralytics' ``exif_size`` and labelme
    do when they load the image."""
    where = source if isinstance(source, Path) else "embedded image"
    try:
        with Image.open(source) as im:
            w, h = im.size
            turned = exif and im.getexif().get(_EXIF_ORIENTATION, 1) in (5, 6, 7, 8)
    except (OSError, SyntaxError) as err:
        raise FormatError(f"{where}: cannot read the image: {err}", path=str(where)) from err
    return (w, h) if turned else (h, w)


_EXIF_ORIENTATION = 0x0112


def place_image(sample: Sample, dst: Path, *, copy: bool = False) -> bool:
    """Put the sample's image at ``dst``: a hard link when possible, else a copy; the
    embedded bytes when the source had no file. False if there is no image at all."""
    ensure_dir(dst.parent)
    if sample.image is not None and copy:
        if sample.image.is_file():
            shutil.copyfile(sample.image, dst)
            return True
    elif sample.image is not None:
        try:  # no stat first: on slow file systems each one costs as much as the link
            os.link(sample.image, dst)
            return True
        except FileNotFoundError:
            pass  # the file is gone: fall back to the embedded bytes, if any
        except OSError:
            if sample.image.is_file():
                shutil.copyfile(sample.image, dst)
                return True
    if sample.image_bytes is not None:
        dst.write_bytes(sample.image_bytes)
        return True
    return False


def find_images(folder: Path) -> dict[str, Path]:
    """Image files directly in ``folder``, by stem."""
    if not folder.is_dir():
        return {}
    return {
        p.stem: p
        for p in sorted(folder.iterdir())
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    }
