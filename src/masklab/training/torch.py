"""PyTorch datasets over a store version, a DataView, or a dataset path in any format.

:class:`SegmentationDataset` (map-style) and :class:`IterableSegmentationDataset`
(streaming) turn masklab samples into training pairs ``(image, target)``:

=============  ============================================================================
``task``       item
=============  ============================================================================
semantic       ``image`` ``(3, H, W)`` float32 in ``[0, 1]`` (``image_dtype=torch.uint8``:
               0..255), ``target`` int64 ``(H, W)`` of training ids, ``ignore_index``
               where nothing is to be learnt (``CrossEntropyLoss(ignore_index=...)``)
instance       ``image`` and a dict as torchvision's detection models take it:
               ``boxes`` float32 ``(N, 4)`` xyxy, ``labels`` int64 ``(N,)`` (objects >= 1,
               0 is the background), ``masks`` uint8 ``(N, H, W)``, ``area`` float32,
               ``iscrowd`` int64, ``image_id`` int64 (the item's index)
panoptic       ``image`` and a dict: ``semantic``, ``instance`` int64 ``(H, W)``, ``masks``
               uint8 ``(S, H, W)``, ``labels`` int64, ``isthing`` bool, ``iscrowd`` int64,
               ``segment_ids`` int64
=============  ============================================================================

Targets come from :mod:`masklab.training.targets` (``class_map``, ``instance_targets``,
``panoptic_targets``) with the dataset's ``label_map``, ``train_ids`` and ``ignore_index``;
``transforms`` (:mod:`masklab.training.transforms`, or any callable ``(image, sample) ->
(image, sample)``, given ``rng=`` when it takes one) run on the decoded image and the sample
before the targets are built, so masks are cropped or flipped as RLE.

Sources:

* a store :class:`~masklab.store.store.Version`: its committed frames, in version order,
  snapshotted by content key when the dataset is made (later commits do not change it);
* a :class:`~masklab.store.query.DataView`: its frames in the view's order (filters, seeded
  shuffles, weights and ``take`` applied once, when the dataset is made; an infinite view
  is refused); a remapped view's :meth:`~masklab.store.query.DataView.label_map` is the
  dataset's and its :meth:`~masklab.store.query.DataView.pixel_lut` maps pixel masks;
* a path (``str`` / ``Path``) in any format masklab reads (``format=`` or detected). The
  map-style dataset indexes it once when made: instances are kept as RLE, class maps and
  alpha mattes as PNG bytes (masklab's encoder; a few KB each), images as file paths;
  formats that embed images (TFRecord) keep the encoded bytes, so memory grows with the
  file: stream those with the iterable dataset, which reads the file as it goes.

**Workers.** A dataset pickles only plain data (catalog and blob URLs, the version's
``dataset:version`` name, the frame keys as one NumPy byte array, options); every process
opens its own :class:`~masklab.store.store.Store` (catalog connection and blob reader) on
first use and again after a fork, so ``DataLoader(num_workers=N)`` is safe with SQLite and
PostgreSQL catalogs alike. Each batch is one catalog query (``__getitems__``), and in a
worker its images and semantic targets are written straight into one shared-memory tensor
each, which :func:`collate` hands on without copying (a default collate copies them, with
the same result).

**Randomness.** Each sample's transforms draw from a NumPy generator seeded by one draw
from torch's default generator, as torchvision's transforms draw from it: after
``torch.manual_seed`` a run repeats, and each DataLoader worker and epoch has its own
stream (the DataLoader seeds its workers). The iterable dataset shuffles with ``seed`` and
the epoch set by :meth:`IterableSegmentationDataset.set_epoch`.

>>> import tempfile
>>> from pathlib import Path
>>> import numpy as np
>>> from PIL import Image
>>> from masklab.store import Frame, Store
>>> home = Path(tempfile.mkdtemp())
>>> Image.fromarray(np.full((2, 3, 3), 128, np.uint8)).save(home / "a.png")
>>> store = Store(home=home)
>>> v = store.create_dataset("toy").create_version("v1")
>>> v.set_mask_labels({(0, 0, 0): ["background"], (1, 1, 1): ["cat"]})
>>> mask = store.put_mask(np.array([[0, 1, 1], [0, 0, 1]], np.uint8))
>>> v.add_frames([Frame.single("a", str(home / "a.png"), width=3, height=2, masks=mask)])
>>> v.commit()
>>> image, target = SegmentationDataset(v, task="semantic")[0]
>>> tuple(image.shape), image.dtype, round(float(image[0, 0, 0]), 3), target.tolist()
((3, 2, 3), torch.float32, 0.502, [[0, 1, 1], [0, 0, 1]])
>>> store.close()
"""

from __future__ import annotations

import copy
import inspect
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal, TypeAlias

import cv2
import numpy as np
import numpy.typing as npt
import torch
from torch.utils.data import (
    DataLoader,
    Dataset,
    IterableDataset,
    default_collate,
    get_worker_info,
)

from masklab.core.labels import LabelMap
from masklab.errors import FormatError, MaskLabError, StoreError
from masklab.formats import _png, open_reader
from masklab.formats._base import Reader, Sample
from masklab.formats.report import ConversionReport
from masklab.store.exporter import frame_to_sample
from masklab.store.query import DataView
from masklab.store.store import Store, Version
from masklab.training.targets import (
    IGNORE_RLE,
    TrainIds,
    class_map,
    instance_targets,
    load_image,
    panoptic_targets,
)

__all__ = [
    "Item",
    "IterableSegmentationDataset",
    "SegmentationDataset",
    "SegmentationLoader",
    "Source",
    "Task",
    "collate",
    "expand_batch",
]

Task = Literal["semantic", "instance", "panoptic"]
TASKS: tuple[Task, ...] = ("semantic", "instance", "panoptic")
Source: TypeAlias = Version | DataView | str | os.PathLike[str]
Item: TypeAlias = tuple[torch.Tensor, Any]
Transform: TypeAlias = Callable[..., tuple[npt.NDArray[np.uint8], Sample]]
FETCH = 32  # frames per catalog query when streaming


# --------------------------------------------------------------------------- sources


class _StoreFrames:
    """Frames of one store version by content key; each process opens its own Store.

    Pickles to plain data: URLs, the version's name, the keys (one ``S64`` array, so a
    forked worker shares it without touching per-object reference counts), the labels
    and the remap plan of a view.
    """

    def __init__(
        self,
        version: Version,
        keys: Sequence[str],
        plan: Any,  # a DataView's relabeler(): frame -> relabelled frame
        lut: npt.NDArray[np.uint16] | None,
    ) -> None:
        store = version.store
        self.catalog_url = store.catalog.url
        self.blobs_url = store.blobs.url
        self.ref = version.ref
        self.labels = version.label_map  # reads RGB masks and annotation names
        self.keys = np.array(keys, dtype="S64")
        self.plan = plan  # or None
        self.lut = lut  # the view's pixel-mask lookup, or None
        self._memory = self.catalog_url in ("sqlite://", "sqlite:///:memory:")
        self._pid = os.getpid()
        self._version: Version | None = version

    def __len__(self) -> int:
        return int(self.keys.size)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_version"] = None  # never pickle a Store: the receiving process opens its own
        state["_pid"] = None
        return state

    def version(self) -> Version:
        """The version, through this process's own Store (opened once per process)."""
        if self._pid != os.getpid() or self._version is None:
            # after a fork the parent's connections are left alone (closing them here
            # would close the parent's PostgreSQL session); this process opens its own
            if self._memory:
                raise StoreError(
                    f"{self.catalog_url} is an in-memory catalog: another process cannot "
                    "open it; use a file catalog, or num_workers=0"
                )
            store = Store(catalog=self.catalog_url, blobs=self.blobs_url)
            self._version = store.version(self.ref)
            self._pid = os.getpid()
        return self._version

    def samples(self, indices: Sequence[int]) -> list[Sample]:
        """The samples at these positions (one catalog query), remapped for a view."""
        version = self.version()
        keys = [self.keys[i].decode("ascii") for i in indices]
        out = []
        for frame in version.frames_by_keys(keys, batch=max(1, len(keys))):
            if self.plan is not None:
                frame = self.plan(frame)
            try:
                sample = frame_to_sample(version.store, frame, self.labels)
            except (MaskLabError, OSError) as err:
                raise StoreError(f"{self.ref}: frame {frame.id!r}: {err}") from err
            if self.lut is not None and sample.semantic is not None:
                sample = replace(sample, semantic=self.lut[sample.semantic])
            out.append(sample)
        return out


class _PathSamples:
    """Every sample of a dataset path, indexed once for random access.

    Instances stay RLE; class maps and alpha mattes are kept PNG-encoded (decoded again on
    access); images stay file paths, or encoded bytes where the format embeds them.
    """

    def __init__(self, reader_args: _ReaderArgs) -> None:
        reader = reader_args.open()
        self.labels = reader.labels
        self._items: list[tuple[Sample, bytes | None, bytes | None]] = []
        for sample in reader:
            semantic = _png_or_none(sample.semantic)
            alpha = _png_or_none(sample.alpha)
            slim = replace(
                sample,
                semantic=None if semantic is not None else sample.semantic,
                alpha=None if alpha is not None else sample.alpha,
            )
            self._items.append((slim, semantic, alpha))
        self.report: ConversionReport = reader.report

    def __len__(self) -> int:
        return len(self._items)

    def samples(self, indices: Sequence[int]) -> list[Sample]:
        out = []
        for i in indices:
            sample, semantic, alpha = self._items[i]
            if semantic is not None or alpha is not None:
                sample = replace(
                    sample,
                    semantic=_unpng(semantic) if semantic is not None else sample.semantic,
                    alpha=_unpng(alpha) if alpha is not None else sample.alpha,
                )
            out.append(sample)
        return out


def _png_or_none(array: npt.NDArray[Any] | None) -> bytes | None:
    """PNG bytes of a class map / matte that PNG holds exactly (uint8/uint16 values)."""
    if array is None or array.ndim != 2:
        return None
    if array.dtype == np.uint8 or array.dtype == np.uint16:
        return _png.encode_png(array)
    if array.dtype.kind in "iu" and (array.size == 0 or (array.min() >= 0 and array.max() < 65536)):
        return _png.encode_png(array.astype(np.uint16))
    return None


def _unpng(data: bytes) -> npt.NDArray[Any]:
    out: npt.NDArray[Any] | None = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if out is None:  # pragma: no cover - bytes we encoded ourselves
        raise FormatError("cannot decode a class map kept in memory")
    return out


class _ReaderArgs:
    """How to open a path's reader again (in each worker)."""

    def __init__(self, path: str | os.PathLike[str], format: str | None, labels: LabelMap | None):
        self.path = Path(path)
        self.format = format
        self.labels = labels

    def open(self) -> Reader:
        return open_reader(self.path, self.format, labels=self.labels)


def _resolve(
    source: Source, format: str | None, label_map: LabelMap | None
) -> tuple[_StoreFrames | _ReaderArgs, LabelMap, list[str] | None]:
    """Where samples come from, the label map of the targets, and the sample ids (None
    until a path is read)."""
    if isinstance(source, Version):
        keys = source.frame_keys()
        ids = source.frame_ids()
        frames = _StoreFrames(source, keys, None, None)
        return frames, source.label_map if label_map is None else label_map, ids
    if isinstance(source, DataView):
        if source.is_endless:
            raise StoreError(
                f"{source!r} is infinite and a dataset needs an end; use view.take(n), or "
                "a finite view with IterableSegmentationDataset(shuffle=True) per epoch"
            )
        remapped = source.is_remapped
        plan = source.relabeler() if remapped else None
        lut = source.pixel_lut() if remapped else None
        keys = list(source.iter_keys())
        frames = _StoreFrames(source.version, keys, plan, lut)
        by_key = dict(zip(source.keys(), source.frame_ids(), strict=True))
        labels = source.label_map() if label_map is None else label_map
        return frames, labels, [by_key[k] for k in keys]
    if isinstance(source, (str, os.PathLike)):
        # the label map and ids of a path are known once its reader is open
        return _ReaderArgs(source, format, label_map), label_map or LabelMap(), None
    raise TypeError(
        "source must be a store Version, a DataView or a dataset path (str or Path), got "
        f"{type(source).__name__}"
    )


# --------------------------------------------------------------------------- items


class _Items:
    """Builds training items from samples: decode, transform, targets, tensors."""

    def __init__(
        self,
        task: Task,
        label_map: LabelMap,
        *,
        transforms: Transform | None,
        train_ids: TrainIds | None,
        ignore_index: int,
        image_dtype: torch.dtype,
    ) -> None:
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        if not (image_dtype == torch.uint8 or image_dtype.is_floating_point):
            raise ValueError(f"image_dtype must be torch.uint8 or a float dtype, got {image_dtype}")
        if transforms is not None and not callable(transforms):
            raise TypeError(f"transforms must be callable, got {type(transforms).__name__}")
        self.task = task
        self.label_map = label_map
        self.train_ids = (
            train_ids
            if train_ids is not None
            else TrainIds.from_label_map(label_map, ignore_index=int(ignore_index))
        )
        self.ignore_index = self.train_ids.ignore_index
        self.transforms = transforms
        self.takes_rng = transforms is not None and _takes_rng(transforms)
        self.image_dtype = image_dtype
        self.target_dtype = torch.int64
        self.compact = False  # uint8 images, class maps in their smallest dtype (loader)
        self._lut_cache: npt.NDArray[Any] | None = None

    def _lut(self) -> npt.NDArray[Any]:
        """The train ids' lut in the class-map dtype carried (cached)."""
        dtype = _numpy_dtype(self.carried_dtypes()[1])
        if self._lut_cache is None or self._lut_cache.dtype != dtype:
            self._lut_cache = np.ascontiguousarray(self.train_ids.lut, dtype=dtype)
        return self._lut_cache

    def compacted(self) -> _Items:
        """A copy that builds uint8 images and class maps in the smallest dtype holding
        the train ids and the ignore index (what :class:`SegmentationLoader` carries)."""
        out = copy.copy(self)
        out.compact = True
        out._lut_cache = None
        return out

    def carried_dtypes(self) -> tuple[torch.dtype, torch.dtype]:
        """(image, class map) dtypes of the tensors this builds."""
        if not self.compact:
            return self.image_dtype, self.target_dtype
        k, ig = self.train_ids.num_classes, self.ignore_index
        if k <= 256 and 0 <= ig <= 255:
            return torch.uint8, torch.uint8
        if k <= 32768 and -32768 <= ig <= 32767:
            return torch.uint8, torch.int16
        return torch.uint8, torch.int64

    @staticmethod
    def rng() -> np.random.Generator:
        """A generator for one sample's transforms, seeded from torch's default generator
        (so ``torch.manual_seed`` and the DataLoader's per-worker seeds govern it)."""
        return np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))

    def decoded(self, sample: Sample) -> tuple[npt.NDArray[np.uint8], Sample]:
        """The sample's RGB image, and the sample, transformed."""
        image = load_image(sample)
        if self.transforms is None:
            return image, sample
        if self.takes_rng:
            return self.transforms(image, sample, rng=self.rng())
        return self.transforms(image, sample)

    def target(self, sample: Sample, index: int) -> Any:
        """The task's target as NumPy: a dict of arrays, or for ``semantic`` a class map
        as ``(lut, ids)``: the target is ``lut[ids]`` (``lut`` None: ``ids`` is it)."""
        if self.task == "semantic":
            sem = sample.semantic
            if (
                sem is not None
                and sample.labeled
                and IGNORE_RLE not in sample.meta
                and sem.dtype == np.uint8
                and sem.shape == tuple(sample.size)
            ):
                # class_map's rule for a labeled class map without padding is the train
                # ids' lut (targets: "semantic is authoritative"); looked up straight into
                # the batch, in the dtype carried, without an int64 temporary
                return self._lut(), sem
            return None, class_map(
                sample, self.label_map, ignore_index=self.ignore_index, train_ids=self.train_ids
            )
        if self.task == "instance":
            return instance_targets(
                sample, self.label_map, train_ids=self.train_ids, image_id=index
            )
        return panoptic_targets(
            sample, self.label_map, train_ids=self.train_ids, ignore_index=self.ignore_index
        )

    def build(
        self, samples: Sequence[Sample], indices: Sequence[int], *, batch: bool
    ) -> list[Item]:
        """Items for these samples. With ``batch`` (and images of one size) the images,
        and semantic targets, are views of one tensor each, allocated in shared memory in
        a DataLoader worker; :func:`collate` hands those on without copying."""
        decoded = [self.decoded(s) for s in samples]
        targets = [self.target(s, i) for (_, s), i in zip(decoded, indices, strict=True)]
        image_dtype, target_dtype = self.carried_dtypes()
        images = _image_tensors([im for im, _ in decoded], image_dtype, batch=batch)
        if self.task == "semantic":
            out_t: list[Any] = _class_map_tensors(targets, target_dtype, batch=batch)
        else:
            out_t = [{k: torch.from_numpy(np.asarray(v)) for k, v in t.items()} for t in targets]
        return list(zip(images, out_t, strict=True))


def _takes_rng(fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "rng" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _empty(shape: tuple[int, ...], dtype: torch.dtype, *, shared: bool) -> torch.Tensor:
    """An uninitialised tensor; in shared memory (as DataLoader workers pass tensors on)
    when ``shared``."""
    if not shared:
        return torch.empty(shape, dtype=dtype)
    nbytes = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
    storage: torch.UntypedStorage = torch.UntypedStorage._new_shared(  # type: ignore[no-untyped-call]
        max(nbytes, 1)
    )
    strides = [1] * len(shape)
    for k in range(len(shape) - 2, -1, -1):
        strides[k] = strides[k + 1] * shape[k + 1]
    return torch.empty(0, dtype=dtype).set_(storage, 0, shape, strides)


def _into(dst: torch.Tensor, image: npt.NDArray[np.uint8]) -> None:
    """Write an ``(H, W, 3)`` uint8 image into a ``(3, H, W)`` tensor, scaled to [0, 1]
    for float dtypes (``x / 255`` in float32, as ``ToTensor`` computes it)."""
    planes = cv2.split(image)
    if dst.dtype == torch.uint8:
        out = dst.numpy()
        for k, plane in enumerate(planes):
            out[k] = plane
    elif dst.dtype == torch.float32:
        out = dst.numpy()
        for k, plane in enumerate(planes):
            np.divide(plane, np.float32(255), out=out[k], dtype=np.float32)
    else:  # other float dtypes: x / 255 in float32, then rounded once
        tmp = torch.empty(dst.shape, dtype=torch.float32)
        _into(tmp, image)
        dst.copy_(tmp)


def _image_tensors(
    images: Sequence[npt.NDArray[np.uint8]], dtype: torch.dtype, *, batch: bool
) -> list[torch.Tensor]:
    if not images:
        return []
    for im in images:
        if im.ndim != 3 or im.shape[2] != 3 or im.dtype != np.uint8:
            raise ValueError(
                f"an image must be (H, W, 3) uint8 RGB after transforms, got {im.dtype} "
                f"{im.shape}; return images as load_image gives them"
            )
    shapes = {im.shape for im in images}
    if batch and len(shapes) == 1:
        h, w, _ = images[0].shape
        stack = _empty((len(images), 3, h, w), dtype, shared=get_worker_info() is not None)
        for k, im in enumerate(images):
            _into(stack[k], im)
        return list(stack.unbind(0))
    out = []
    for im in images:
        t = torch.empty((3, im.shape[0], im.shape[1]), dtype=dtype)
        _into(t, im)
        out.append(t)
    return out


def _numpy_dtype(dtype: torch.dtype) -> np.dtype[Any]:
    return torch.empty((), dtype=dtype).numpy().dtype


def _class_map_tensors(
    maps: Sequence[tuple[npt.NDArray[Any] | None, npt.NDArray[Any]]],
    dtype: torch.dtype,
    *,
    batch: bool,
) -> list[torch.Tensor]:
    """Tensors of ``dtype`` of class maps given as ``(lut, ids)`` (``lut[ids]``) or
    ``(None, map)``; views of one tensor when ``batch``. Values are train ids and the
    ignore index, which ``dtype`` holds."""
    if not maps:
        return []
    np_dtype = _numpy_dtype(dtype)
    if batch and len({ids.shape for _, ids in maps}) == 1:
        stack = _empty((len(maps), *maps[0][1].shape), dtype, shared=get_worker_info() is not None)
        out = stack.numpy()
        for k, (lut, ids) in enumerate(maps):
            if lut is None:
                out[k] = ids
            elif lut.dtype == np.uint8 and ids.dtype == np.uint8:
                cv2.LUT(ids, lut[:256], dst=out[k])  # several times np.take's speed
            else:
                np.take(lut, ids, out=out[k])
        return list(stack.unbind(0))
    return [
        torch.from_numpy(
            np.ascontiguousarray(ids, dtype=np_dtype) if lut is None else np.take(lut, ids)
        )
        for lut, ids in maps
    ]


# --------------------------------------------------------------------------- collate


def _views_of_one(tensors: Sequence[torch.Tensor]) -> torch.Tensor | None:
    """The tensor these are ``unbind(0)`` of, in order, if they are; else None."""
    base = tensors[0]._base
    if base is None or base.dim() != tensors[0].dim() + 1 or base.shape[0] != len(tensors):
        return None
    step = base.stride(0)
    for k, t in enumerate(tensors):
        if (
            t._base is not base
            or t.storage_offset() != base.storage_offset() + k * step
            or t.shape != base.shape[1:]
            or t.stride() != base.stride()[1:]
        ):
            return None
    return base


def _stack_or_list(tensors: Sequence[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
    whole = _views_of_one(tensors)
    if whole is not None:
        return whole
    if len({(t.shape, t.dtype) for t in tensors}) == 1:
        stacked: torch.Tensor = default_collate(list(tensors))
        return stacked
    return list(tensors)


def collate(batch: Sequence[Item]) -> tuple[Any, Any]:
    """Batch items: images (and semantic targets) stacked when their shapes agree, else
    lists; instance and panoptic target dicts as a list (their counts vary).

    Use as ``DataLoader(dataset, collate_fn=collate)``. Items a dataset built together
    (one ``__getitems__`` call) are handed on without a copy.

    >>> a = (torch.zeros(3, 2, 2), torch.zeros(2, 2, dtype=torch.int64))
    >>> images, targets = collate([a, a])
    >>> tuple(images.shape), tuple(targets.shape)
    ((2, 3, 2, 2), (2, 2, 2))
    >>> images, targets = collate([(torch.zeros(3, 2, 2), {"labels": torch.zeros(0)})] * 2)
    >>> tuple(images.shape), type(targets).__name__, len(targets)
    ((2, 3, 2, 2), 'list', 2)
    """
    if not batch:
        return [], []
    images = [item[0] for item in batch]
    targets = [item[1] for item in batch]
    if all(isinstance(t, torch.Tensor) for t in targets):
        return _stack_or_list(images), _stack_or_list(targets)
    return _stack_or_list(images), list(targets)


# --------------------------------------------------------------------------- loader


class SegmentationLoader(DataLoader[Item]):
    """A DataLoader giving the batches of ``DataLoader(dataset, collate_fn=collate)`` while
    carrying a quarter of the bytes out of its workers.

    Workers build images as uint8 and class maps in the smallest integer dtype holding the
    train ids and the ignore index (uint8 for up to 256 classes and ignore 255); each batch
    is expanded in this process to the dataset's ``image_dtype`` (``x / 255``, as
    ``ToTensor``) and int64 targets, on ``device`` when one is given (the compact batch
    crosses to it first). Moving a float32 image and an int64 class map out of a worker
    costs more than decoding them (every batch goes through fresh shared memory), so this
    is the faster way to feed a model; the values are the same. Other keyword arguments
    are DataLoader's (``collate_fn`` is :func:`collate`).

    >>> items = [(torch.zeros(3, 2, 2, dtype=torch.uint8), torch.zeros(2, 2, dtype=torch.uint8))]
    >>> expand_batch(collate(items), image_dtype=torch.float32)[1].dtype
    torch.int64
    """

    def __init__(
        self,
        dataset: SegmentationDataset | IterableSegmentationDataset,
        *,
        batch_size: int = 1,
        device: torch.device | str | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(dataset, (SegmentationDataset, IterableSegmentationDataset)):
            raise TypeError(
                "SegmentationLoader takes a SegmentationDataset or an "
                f"IterableSegmentationDataset, got {type(dataset).__name__}; use DataLoader"
            )
        if "collate_fn" in kwargs:
            raise TypeError(
                "SegmentationLoader batches with masklab.torch.collate; for another "
                "collate_fn use torch.utils.data.DataLoader"
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        carried = copy.copy(dataset)
        carried._items = dataset._items.compacted()
        self.image_dtype = dataset._items.image_dtype
        self.device = None if device is None else torch.device(device)
        super().__init__(carried, batch_size=batch_size, collate_fn=collate, **kwargs)

    def __iter__(self) -> Iterator[tuple[Any, Any]]:  # type: ignore[override]
        for batch in super().__iter__():
            yield expand_batch(batch, image_dtype=self.image_dtype, device=self.device)


def expand_batch(
    batch: tuple[Any, Any],
    *,
    image_dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> tuple[Any, Any]:
    """A compact batch (uint8 images, small-int class maps) as training tensors: images of
    ``image_dtype`` (floats scaled by 1/255), class maps int64, target dicts' tensors
    moved, all on ``device`` (default: where they are)."""
    images, targets = batch
    return _expand_images(images, image_dtype, device), _expand_targets(targets, device)


def _expand_images(x: Any, dtype: torch.dtype, device: torch.device | str | None) -> Any:
    if isinstance(x, list):
        return [_expand_images(t, dtype, device) for t in x]
    if device is not None:
        x = x.to(device, non_blocking=True)
    if dtype == torch.uint8 or x.dtype == dtype:
        return x
    if x.device.type != "cpu" or dtype != torch.float32:
        scaled = x.float().div_(255)
        return scaled if dtype == torch.float32 else scaled.to(dtype)
    out = torch.empty(x.shape, dtype=torch.float32)
    # NumPy's uint8 -> float32 divide is several times faster than torch's on the CPU
    # (and gives the same IEEE quotients as ``x.float().div(255)``)
    np.divide(x.numpy(), np.float32(255), out=out.numpy(), dtype=np.float32)
    return out


def _expand_targets(y: Any, device: torch.device | str | None) -> Any:
    if isinstance(y, list):
        return [_expand_targets(t, device) for t in y]
    if isinstance(y, dict):  # instance / panoptic targets: carried as built, moved
        return {k: v if device is None else v.to(device, non_blocking=True) for k, v in y.items()}
    if device is not None:
        y = y.to(device, non_blocking=True)
    if y.dtype == torch.int64:
        return y
    if y.device.type != "cpu":
        return y.long()
    out = torch.empty(y.shape, dtype=torch.int64)
    out.numpy()[...] = y.numpy()  # a class map; NumPy widens it faster than torch
    return out


# --------------------------------------------------------------------------- datasets


class _Described:
    """What both dataset kinds tell about their targets."""

    _items: _Items

    @property
    def task(self) -> Task:
        """``semantic``, ``instance`` or ``panoptic``."""
        return self._items.task

    @property
    def label_map(self) -> LabelMap:
        """The label map the targets are built with."""
        return self._items.label_map

    @property
    def train_ids(self) -> TrainIds:
        """Dataset label id -> training id (``.names``, ``.num_classes``, ``.ignore_index``)."""
        return self._items.train_ids


class SegmentationDataset(_Described, Dataset[Item]):
    """Map-style dataset of ``(image, target)`` over a store version, a DataView or a
    path (see the module docstring for sources, items and workers).

    ``label_map`` replaces the source's for the targets; ``train_ids`` maps its ids to
    training ids (default :meth:`TrainIds.from_label_map` with ``ignore_index``).
    ``format`` names a path's format (detected when None). A path source is read once,
    here; what its reader reported (bad records skipped) is in :attr:`report` (None for
    store sources, which were checked when imported).
    """

    def __init__(
        self,
        source: Source,
        *,
        task: Task = "semantic",
        transforms: Transform | None = None,
        format: str | None = None,
        label_map: LabelMap | None = None,
        train_ids: TrainIds | None = None,
        ignore_index: int = 255,
        image_dtype: torch.dtype = torch.float32,
    ) -> None:
        where, labels, ids = _resolve(source, format, label_map)
        self._frames: _StoreFrames | _PathSamples
        if isinstance(where, _ReaderArgs):
            self._frames = _PathSamples(where)
            labels = self._frames.labels if label_map is None else label_map
            self.report: ConversionReport | None = self._frames.report
            ids = [s.id for s, _, _ in self._frames._items]
        else:
            self._frames = where
            self.report = None
        self._ids = ids or []
        self._items = _Items(
            task,
            labels,
            transforms=transforms,
            train_ids=train_ids,
            ignore_index=ignore_index,
            image_dtype=image_dtype,
        )

    def __repr__(self) -> str:
        return (
            f"SegmentationDataset(task={self.task!r}, samples={len(self)}, "
            f"classes={self.train_ids.num_classes})"
        )

    @property
    def ids(self) -> list[str]:
        """Sample (frame) ids, in item order."""
        return list(self._ids)

    def __len__(self) -> int:
        return len(self._frames)

    def sample(self, index: int) -> Sample:
        """The sample at ``index`` as stored, before transforms."""
        return self._frames.samples([self._check(index)])[0]

    def _check(self, index: int) -> int:
        n = len(self)
        i = int(index)
        if i < -n or i >= n:
            raise IndexError(f"index {index} is out of range for a dataset of {n} samples")
        return i % n if n else i

    def __getitem__(self, index: int) -> Item:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[Item]:
        """Items for a batch of indices: one catalog query, images written into one tensor."""
        idx = [self._check(i) for i in indices]
        return self._items.build(self._frames.samples(idx), idx, batch=len(idx) > 1)


class IterableSegmentationDataset(_Described, IterableDataset[Item]):
    """Streaming dataset of ``(image, target)``; the same sources, items and options as
    :class:`SegmentationDataset`.

    Samples are dealt to DataLoader workers round-robin (every sample exactly once an
    epoch); a store source is fetched 32 frames a catalog query. A path is read by
    every worker, each keeping its share; records its reader cannot read are skipped, as
    the reader does (read it with :class:`SegmentationDataset` to see its ``report``).

    ``shuffle``: a store source is permuted with ``seed`` and the epoch; a path is streamed
    through a shuffle buffer of ``buffer`` samples per worker (seeded the same way). Call
    :meth:`set_epoch` before each epoch for a new order (as with ``DistributedSampler``);
    with ``persistent_workers=True`` workers keep the epoch they started with.
    """

    def __init__(
        self,
        source: Source,
        *,
        task: Task = "semantic",
        transforms: Transform | None = None,
        format: str | None = None,
        label_map: LabelMap | None = None,
        train_ids: TrainIds | None = None,
        ignore_index: int = 255,
        image_dtype: torch.dtype = torch.float32,
        shuffle: bool = False,
        seed: int = 0,
        buffer: int = 1000,
    ) -> None:
        where, labels, _ = _resolve(source, format, label_map)
        if isinstance(where, _ReaderArgs) and label_map is None:
            labels = where.open().labels
        self._where = where
        self._items = _Items(
            task,
            labels,
            transforms=transforms,
            train_ids=train_ids,
            ignore_index=ignore_index,
            image_dtype=image_dtype,
        )
        if int(buffer) < 1:
            raise ValueError(f"buffer must be >= 1, got {buffer}")
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.buffer = int(buffer)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Pick the epoch whose order the next iteration follows (with ``shuffle``)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        if isinstance(self._where, _StoreFrames):
            return len(self._where)
        raise TypeError("a streamed path has no length until it is read; use a store source")

    def __iter__(self) -> Iterator[Item]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        if isinstance(self._where, _StoreFrames):
            yield from self._iter_store(self._where, worker, workers)
        else:
            yield from self._iter_path(self._where, worker, workers)

    def _iter_store(self, frames: _StoreFrames, worker: int, workers: int) -> Iterator[Item]:
        n = len(frames)
        order = (
            np.random.default_rng([self.seed, self.epoch]).permutation(n)
            if self.shuffle
            else np.arange(n)
        )
        mine = order[worker::workers].tolist()
        for start in range(0, len(mine), FETCH):
            chunk = mine[start : start + FETCH]
            samples = frames.samples(chunk)
            for index, sample in zip(chunk, samples, strict=True):
                yield self._items.build([sample], [index], batch=False)[0]

    def _iter_path(self, args: _ReaderArgs, worker: int, workers: int) -> Iterator[Item]:
        reader = args.open()
        # every worker reads the file and keeps its share
        mine: Iterator[tuple[int, Sample]] = (
            (i, s) for i, s in enumerate(reader) if i % workers == worker
        )
        if self.shuffle:
            rng = np.random.default_rng([self.seed, self.epoch, worker])
            mine = _shuffled(mine, self.buffer, rng)
        for index, sample in mine:
            yield self._items.build([sample], [index], batch=False)[0]


def _shuffled(
    stream: Iterator[tuple[int, Sample]], size: int, rng: np.random.Generator
) -> Iterator[tuple[int, Sample]]:
    """A shuffle buffer: each item out is drawn from the next ``size`` in."""
    pool: list[tuple[int, Sample]] = []
    for item in stream:
        if len(pool) < size:
            pool.append(item)
            continue
        k = int(rng.integers(size))
        pool[k], item = item, pool[k]
        yield item
    order = rng.permutation(len(pool))
    for k in order.tolist():
        yield pool[k]
