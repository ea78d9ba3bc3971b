"""Datasets for interactive segmentation: full masks, and binary targets chosen from them.

Three levels, as ``reference/iis.md`` §2.3 describes (reimplemented, with iislib's bugs
fixed):

* :class:`SegDataset` (abstract): ``get_sample(i) -> SegSample(image, layers, info)``, the
  image as uint8 ``(H, W, 3)`` RGB and the full annotation as int32 ``layers (H, W, C)``.
  Subclass it for any dataset.
* :class:`RegionDataset`: one binary target per image, chosen by a region selector
  (:mod:`masklab.iis.regions`), seeded per ``(seed, epoch, index)``.
* :class:`EvaluationDataset`: a RegionDataset whose targets never change: the same
  target for an index on every access, in every process (no epochs).

**The layers contract** (what every selector reads):

* In every layer 0 means "no region"; each other value is one region.
* Layer 0 holds the *objects* (``info["layer_names"][0]`` is ``"object"`` for the
  benchmark folders, ``"instance"`` for formats and store versions); format and store
  datasets have a second layer ``"class"`` of class codes: code ``k`` is
  ``info["class_names"][k]`` (label id ``info["class_ids"][k]``), codes numbered 1.. over
  the label map's ``class`` labels in id order, so a class with label id 0 still has a
  region value.
* **Ignore travels in** ``info["ignore"]``: a bool ``(H, W)`` array of pixels no target
  may count (GrabCut's 128 band, ignore/void classes, crowd regions), or None. Selectors
  turn it into -1 in the target wherever the chosen region is not.
* ``info["iscrowd"]`` (format and store datasets): per object id ``j`` (layer 0 value),
  ``iscrowd[j - 1]``. Crowd objects are never selected; their pixels are ignore.

Targets are int8: 1 object, 0 background, -1 ignore (RITM's encoding, iis.md §1.1).

**Benchmark folders** read exactly as RITM does (iis.md §1.1): samples are the image
files sorted by name, each paired with the mask of the same stem;

* :class:`GrabCutDataset` (``data_GT/`` + ``boundary_GT/``): mask channel 0 as OpenCV
  reads it (BGR), 128 -> ignore, >128 -> object, the rest background;
* :class:`BerkeleyDataset` (``images/`` + ``masks/``): the same rule (no band). The
  standard folder has 100 images (the 96 BSDS images plus copies ``189011a/b``,
  ``239007a/b``) for the 100 masks; a count that differs is reported and warned about
  (iis.md §6: otherwise 96 samples are evaluated silently);
* :class:`DavisDataset` / :class:`CocoMValDataset` (``img/`` + ``gt/``): every non-black
  colour is an object (one object id per colour), so the union of objects is RITM's
  ``max over BGR > 0`` (DAVIS' void colour counts as object, as in RITM).

Each benchmark sample's info records ``mask_sha256`` and ``image_sha256`` and the
dataset's ``dataset_files`` (image + mask files found), and :meth:`FolderDataset.fingerprint`
hashes every file, to pin the copy evaluated (iis.md §6, InterFormer#3).
"""

from __future__ import annotations

import hashlib
import os
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import numpy.typing as npt

from masklab.core import rle
from masklab.core.instances import Instance, instances_to_panoptic
from masklab.core.labels import Label, LabelMap
from masklab.errors import FormatError, MaskLabError, StoreError, UnknownFormatError
from masklab.formats import names as format_names
from masklab.formats import open_reader
from masklab.formats._base import IMAGE_EXTENSIONS, Sample, instances_of
from masklab.formats.report import ConversionReport
from masklab.iis.regions import Selector, whole
from masklab.store.exporter import frame_to_sample
from masklab.store.query import DataView
from masklab.store.store import Store, Version
from masklab.training.targets import IGNORE_RLE, load_image

__all__ = [
    "BerkeleyDataset",
    "CocoMValDataset",
    "DavisDataset",
    "EvaluationDataset",
    "FolderDataset",
    "FormatDataset",
    "GrabCutDataset",
    "RegionDataset",
    "RegionSample",
    "SegDataset",
    "SegSample",
    "StoreDataset",
    "open_dataset",
]

Layers = npt.NDArray[np.int32]


@dataclass(frozen=True, eq=False)
class SegSample:
    """An image and its full annotation: ``layers`` int32 ``(H, W, C)`` (see the module's
    layers contract) and ``info`` (``id``, ``index``, ``dataset``, ``layer_names``,
    ``ignore`` and what the dataset adds)."""

    image: npt.NDArray[np.uint8]
    layers: Layers
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.layers.ndim != 3 or self.image.ndim != 3:
            raise ValueError(
                f"sample {self.info.get('id')!r}: image must be (H, W, 3) and layers "
                f"(H, W, C), got {self.image.shape} and {self.layers.shape}"
            )
        if self.image.shape[:2] != self.layers.shape[:2]:
            raise FormatError(
                f"sample {self.info.get('id')!r}: image is {list(self.image.shape[:2])} (h, w) "
                f"but its masks are {list(self.layers.shape[:2])}; they do not belong together"
            )


@dataclass(frozen=True, eq=False)
class RegionSample:
    """An image and one binary target: int8 ``(H, W)``, 1 object, 0 background, -1
    ignore. ``info`` is the SegSample's (without the ``ignore`` array, now in the target)
    plus ``selector``, ``seed`` and ``epoch``."""

    image: npt.NDArray[np.uint8]
    target: npt.NDArray[np.int8]
    info: dict[str, Any] = field(default_factory=dict)


class SegDataset(ABC):
    """A dataset of images with full annotations; subclass it for any dataset.

    Subclasses implement ``__len__`` and :meth:`get_sample`; indexing and iteration
    follow. ``name`` says where the data came from (put in every sample's info).
    """

    name: str = "dataset"

    @abstractmethod
    def __len__(self) -> int:
        """Number of samples."""

    @abstractmethod
    def get_sample(self, i: int) -> SegSample:
        """Sample ``i`` (0 <= i < len)."""

    def __getitem__(self, i: int) -> SegSample:
        return self.get_sample(_index(i, len(self)))

    def __iter__(self) -> Iterator[SegSample]:
        for i in range(len(self)):
            yield self.get_sample(i)


def _index(i: int, n: int) -> int:
    if not isinstance(i, (int, np.integer)) or isinstance(i, bool):
        raise TypeError(f"a dataset index must be an int, got {type(i).__name__}")
    j = int(i) + n if i < 0 else int(i)
    if not 0 <= j < n:
        raise IndexError(f"index {i} out of range for a dataset of {n} samples")
    return j


# --------------------------------------------------------------------------- region datasets


class RegionDataset:
    """Images with one binary target each, chosen from a :class:`SegDataset` by
    ``selector`` (:mod:`masklab.iis.regions`).

    Sample ``i`` draws from ``np.random.default_rng([seed, epoch, i])``: the same index,
    seed and epoch give the same target in any order and any worker process;
    :meth:`set_epoch` moves to other draws for training. ``seed=None`` draws fresh
    entropy on every access.
    """

    def __init__(
        self, seg_dataset: SegDataset, selector: Selector, *, seed: int | None = 0
    ) -> None:
        if not isinstance(seg_dataset, SegDataset):
            raise TypeError(f"seg_dataset must be a SegDataset, got {type(seg_dataset).__name__}")
        if not callable(selector):
            raise TypeError(f"selector must be callable, got {selector!r}")
        if seed is not None and (not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"seed must be a non-negative int or None, got {seed!r}")
        self.seg_dataset = seg_dataset
        self.selector = selector
        self.seed = None if seed is None else int(seed)
        self._epoch = 0

    @property
    def epoch(self) -> int:
        """The epoch mixed into each sample's seed."""
        return self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Draw other targets (a new epoch of training)."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self._epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.seg_dataset)

    def rng(self, i: int) -> np.random.Generator:
        """The generator sample ``i`` draws from."""
        if self.seed is None:
            return np.random.default_rng()
        return np.random.default_rng([self.seed, self._epoch, i])

    def __getitem__(self, i: int) -> RegionSample:
        j = _index(i, len(self))
        sample = self.seg_dataset.get_sample(j)
        target = self.selector(sample.layers, sample.info, self.rng(j))
        if target.dtype != np.int8 or target.shape != sample.layers.shape[:2]:
            raise TypeError(
                f"selector {_name(self.selector)} returned {target.dtype} {target.shape}; "
                f"a selector returns int8 of the layers' (H, W) {sample.layers.shape[:2]}"
            )
        info = {k: v for k, v in sample.info.items() if k != "ignore"}
        info.update(selector=_name(self.selector), seed=self.seed, epoch=self._epoch)
        return RegionSample(sample.image, target, info)

    def __iter__(self) -> Iterator[RegionSample]:
        for i in range(len(self)):
            yield self[i]


class EvaluationDataset(RegionDataset):
    """A reproducible :class:`RegionDataset` for benchmarks: targets fixed by ``seed``
    and the index alone (no epochs), the union of objects by default (DAVIS/COCO-MVal's
    rule; GrabCut's and Berkeley's one object). ``info["target_sha256"]`` pins each
    target."""

    def __init__(
        self, seg_dataset: SegDataset, selector: Selector = whole, *, seed: int = 0
    ) -> None:
        if seed is None:
            raise ValueError("an EvaluationDataset needs a fixed seed (an int), not None")
        super().__init__(seg_dataset, selector, seed=seed)

    def set_epoch(self, epoch: int) -> None:
        """Not available: an evaluation's targets never change."""
        raise TypeError("an EvaluationDataset's targets are fixed; it has no epochs")

    def __getitem__(self, i: int) -> RegionSample:
        out = super().__getitem__(i)
        out.info.pop("epoch", None)
        out.info["target_sha256"] = hashlib.sha256(out.target.tobytes()).hexdigest()
        return out


def _name(selector: Callable[..., Any]) -> str:
    return str(getattr(selector, "__name__", repr(selector)))


# --------------------------------------------------------------------------- benchmark folders


@dataclass(frozen=True, slots=True)
class _Pair:
    id: str
    image: Path
    mask: Path


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _image_files(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name (RITM sorts its glob)."""
    return sorted(
        (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
        key=lambda p: p.name,
    )


def _decode(data: bytes, path: Path, what: str) -> npt.NDArray[np.uint8]:
    """OpenCV's BGR decoding of an image or mask file (as ``cv2.imread`` reads it)."""
    out = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if out is None:
        raise FormatError(f"{path}: OpenCV cannot decode this {what}", path=str(path))
    return np.asarray(out, np.uint8)


class FolderDataset(SegDataset):
    """A benchmark laid out as two folders, images and masks paired by file stem.

    Samples are the image files sorted by name. An image without a mask, a mask without
    an image and two files of one stem are problems in :attr:`report`; with
    ``strict=True`` the first raises :class:`~masklab.errors.FormatError`. When the two
    folders hold different numbers of files a warning says so too.
    """

    images_dir: ClassVar[str]
    masks_dir: ClassVar[str]

    def __init__(self, root: str | os.PathLike[str], *, strict: bool = False) -> None:
        self.root = Path(root)
        self.strict = strict
        self.report = ConversionReport(source=self.name)
        images_root, masks_root = self.root / self.images_dir, self.root / self.masks_dir
        for folder in (images_root, masks_root):
            if not folder.is_dir():
                raise FormatError(
                    f"{folder} is not a folder; a {self.name} dataset is "
                    f"{self.images_dir}/ + {self.masks_dir}/ under its root",
                    path=str(folder),
                )
        images, masks = _image_files(images_root), _image_files(masks_root)
        self.n_images, self.n_masks = len(images), len(masks)
        by_stem: dict[str, Path] = {}
        for m in masks:
            if m.stem in by_stem:
                self._problem(m, m.stem, f"a second mask of stem {m.stem!r}; {by_stem[m.stem]}")
                continue
            by_stem[m.stem] = m
        pairs: list[_Pair] = []
        used: set[str] = set()
        for im in images:
            if im.stem in used:
                self._problem(im, im.stem, f"a second image of stem {im.stem!r}; skipped")
                continue
            mask = by_stem.get(im.stem)
            if mask is None:
                self._problem(im, im.stem, f"no mask {im.stem}.* in {masks_root}; skipped")
                continue
            used.add(im.stem)
            pairs.append(_Pair(im.stem, im, mask))
        for stem, m in by_stem.items():
            if stem not in used:
                self._problem(m, stem, f"no image {stem}.* in {images_root}; mask unused")
        if self.n_images != self.n_masks:
            message = (
                f"{self.root}: {self.n_images} images in {self.images_dir}/ but "
                f"{self.n_masks} masks in {self.masks_dir}/; {len(pairs)} samples are "
                f"evaluated{self._count_hint()}"
            )
            self._problem(self.root, None, message)
            warnings.warn(message, UserWarning, stacklevel=2)
        self._pairs = pairs
        self.report.samples = len(pairs)

    def _count_hint(self) -> str:
        return ""

    def _problem(self, path: Path, record: str | None, message: str) -> None:
        if self.strict:
            raise FormatError(f"{path}: {message}", path=str(path), record=record)
        self.report.problem(str(path), record, message)

    @property
    def dataset_files(self) -> int:
        """Image and mask files found in the two folders."""
        return self.n_images + self.n_masks

    @property
    def ids(self) -> list[str]:
        """Sample ids (image stems) in order."""
        return [p.id for p in self._pairs]

    def __len__(self) -> int:
        return len(self._pairs)

    def get_sample(self, i: int) -> SegSample:
        j = _index(i, len(self))
        pair = self._pairs[j]
        image_bytes, mask_bytes = pair.image.read_bytes(), pair.mask.read_bytes()
        image = cv2.cvtColor(_decode(image_bytes, pair.image, "image"), cv2.COLOR_BGR2RGB)
        bgr = _decode(mask_bytes, pair.mask, "mask")
        if bgr.shape[:2] != image.shape[:2]:
            raise FormatError(
                f"{pair.mask}: mask is {list(bgr.shape[:2])} (h, w) but its image "
                f"{pair.image.name} is {list(image.shape[:2])}; they do not belong together",
                path=str(pair.mask),
                record=pair.id,
            )
        objects, ignore, extra = self.decode_mask(bgr)
        info: dict[str, Any] = {
            "id": pair.id,
            "index": j,
            "dataset": self.name,
            "layer_names": ("object",),
            "ignore": ignore,
            "image_path": str(pair.image),
            "mask_path": str(pair.mask),
            "image_sha256": _sha256(image_bytes),
            "mask_sha256": _sha256(mask_bytes),
            "dataset_files": self.dataset_files,
            **extra,
        }
        return SegSample(np.ascontiguousarray(image), objects[:, :, None], info)

    @abstractmethod
    def decode_mask(
        self, bgr: npt.NDArray[np.uint8]
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.bool_] | None, dict[str, Any]]:
        """The object layer, the ignore pixels (or None) and extra info of a mask as
        OpenCV decodes it (BGR)."""

    def fingerprint(self) -> str:
        """sha256 over every image and mask file's folder, name and sha256, in name order:
        equal fingerprints mean the same copy of the benchmark."""
        h = hashlib.sha256()
        for folder in (self.images_dir, self.masks_dir):
            for p in _image_files(self.root / folder):
                h.update(f"{folder}/{p.name}\t{_sha256(p.read_bytes())}\n".encode())
        return h.hexdigest()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r}, {len(self)} samples)"


class GrabCutDataset(FolderDataset):
    """GrabCut: ``data_GT/`` images, ``boundary_GT/`` masks; mask channel 0 (OpenCV's
    BGR order), 128 -> ignore, >128 -> object (RITM; iislib's >=128 differs). The
    standard copy has 50 samples."""

    name = "grabcut"
    images_dir = "data_GT"
    masks_dir = "boundary_GT"

    def decode_mask(
        self, bgr: npt.NDArray[np.uint8]
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.bool_] | None, dict[str, Any]]:
        channel = bgr[:, :, 0]
        return (channel > 128).astype(np.int32), channel == 128, {}


class BerkeleyDataset(GrabCutDataset):
    """Berkeley: ``images/`` + ``masks/``, decoded as GrabCut (the masks have no 128
    band). The standard copy has 100 images (96 BSDS images and the copies
    ``189011a``, ``189011b``, ``239007a``, ``239007b``) for 100 masks."""

    name = "berkeley"
    images_dir = "images"
    masks_dir = "masks"

    def _count_hint(self) -> str:
        return (
            "; RITM evaluates the image list: copy <id>.jpg to each mask stem "
            "(189011a, 189011b, 239007a, 239007b) so every mask has its image"
        )


class DavisDataset(FolderDataset):
    """DAVIS (IIS version, 345 frames): ``img/`` + ``gt/``; each non-black mask colour is
    one object (ids by colour value), their union RITM's target ``max(BGR) > 0``.
    ``info["colors"]`` maps object id -> RGB."""

    name = "davis"
    images_dir = "img"
    masks_dir = "gt"

    def decode_mask(
        self, bgr: npt.NDArray[np.uint8]
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.bool_] | None, dict[str, Any]]:
        b, g, r = (bgr[:, :, k].astype(np.int32) for k in range(3))
        packed = (r << 16) | (g << 8) | b
        values, inverse = np.unique(packed, return_inverse=True)
        offset = 0 if values.size and values[0] == 0 else 1
        objects = (inverse.reshape(packed.shape) + offset).astype(np.int32)
        colors = {
            int(k) + offset: ((int(v) >> 16) & 255, (int(v) >> 8) & 255, int(v) & 255)
            for k, v in enumerate(values.tolist())
            if v != 0
        }
        return objects, None, {"colors": colors}


class CocoMValDataset(DavisDataset):
    """COCO-MVal (800 instances): ``img/`` + ``gt/``, decoded as DAVIS (binary masks:
    one object)."""

    name = "coco-mval"


# --------------------------------------------------------------------------- formats and store


class _SampleLayers:
    """Builds instance and class layers from format samples over one label map."""

    def __init__(self, labels: LabelMap) -> None:
        self.labels = labels
        classes = sorted((lab for lab in labels if lab.role == "class"), key=lambda x: x.id)
        self.code = {lab.id: k for k, lab in enumerate(classes, start=1)}
        self.class_names = {k: lab.name for k, lab in enumerate(classes, start=1)}
        self.class_ids = {k: lab.id for k, lab in enumerate(classes, start=1)}
        self.ignore_ids = {lab.id for lab in labels if lab.role == "ignore"}

    def build(self, sample: Sample) -> tuple[Layers, dict[str, Any]]:
        h, w = sample.size
        instances: tuple[Instance, ...] = instances_of(sample, self.labels)
        crowd = [inst.iscrowd for inst in instances]
        # crowd regions first, so that objects are painted over them; ids stay list positions
        order = sorted(range(len(instances)), key=lambda k: not crowd[k])
        painted = instances_to_panoptic(
            [instances[k] for k in order], (h, w), ids=[k + 1 for k in order]
        )
        objects = np.ascontiguousarray(painted.array, np.int32)
        lut = np.zeros(len(instances) + 1, np.int32)
        for k, inst in enumerate(instances, start=1):
            lut[k] = 0 if inst.iscrowd else self.code.get(inst.class_id, 0)
        ignore = np.zeros((h, w), bool)
        if any(crowd):
            ignore |= np.asarray([False, *crowd])[objects]
        if sample.semantic is not None:
            classes, unknown = self._codes(sample.semantic)
            ignore |= unknown
        else:
            classes = lut[objects]
        extra = sample.meta.get(IGNORE_RLE)
        if isinstance(extra, rle.RLE) and extra.size == (h, w):
            ignore |= rle.decode(extra).view(bool)
        info: dict[str, Any] = {
            "layer_names": ("instance", "class"),
            "ignore": ignore if ignore.any() else None,
            "iscrowd": tuple(crowd),
            "instance_class_ids": tuple(inst.class_id for inst in instances),
            "class_names": self.class_names,
            "class_ids": self.class_ids,
        }
        if sample.image is not None:
            info["image_path"] = str(sample.image)
        return np.stack([objects, classes], axis=-1), info

    def _codes(
        self, semantic: npt.NDArray[np.integer[Any]]
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.bool_]]:
        """Class codes of a class-index map, and its ignore pixels (ignore/void labels
        and ids the label map does not know)."""
        values, inverse = np.unique(semantic, return_inverse=True)
        known = set(self.labels.ids)
        codes = np.array([self.code.get(int(v), 0) for v in values.tolist()], np.int32)
        bad = np.array([int(v) in self.ignore_ids or int(v) not in known for v in values.tolist()])
        inverse = inverse.reshape(semantic.shape)
        return codes[inverse], bad[inverse].astype(bool)


class FormatDataset(SegDataset):
    """Any dataset path masklab reads (format detected when not given), as layers
    ``("instance", "class")`` (see the module's layers contract).

    The samples are read once at construction (instances stay RLE; class maps are kept
    as read), so indexing is random access; :attr:`report` holds the reader's problems.
    Images are loaded on access (:func:`masklab.training.targets.load_image`).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        format: str | None = None,
        *,
        labels: LabelMap | None = None,
        strict: bool = False,
    ) -> None:
        self.path = Path(path)
        reader = open_reader(self.path, format, labels=labels, strict=strict)
        self._samples = [s for s in reader if s.labeled]
        self.format = reader.spec.name
        self.name = self.format
        self.report = reader.report
        self.labels = labels if labels is not None else reader.labels
        if not len(self.labels):
            self.labels = _labels_seen(self._samples)
        self._layers = _SampleLayers(self.labels)

    def __len__(self) -> int:
        return len(self._samples)

    @property
    def ids(self) -> list[str]:
        """Sample ids in order."""
        return [s.id for s in self._samples]

    def get_sample(self, i: int) -> SegSample:
        j = _index(i, len(self))
        sample = self._samples[j]
        return _seg_sample(sample, self._layers, j, self.name)

    def __repr__(self) -> str:
        return f"FormatDataset({str(self.path)!r}, format={self.format!r}, {len(self)} samples)"


def _labels_seen(samples: list[Sample]) -> LabelMap:
    """A label map for a dataset that has none: 0 background, every other class id seen
    (instances and class maps) a class named ``class <id>``."""
    seen: set[int] = set()
    for s in samples:
        seen.update(inst.class_id for inst in s.instances)
        if s.semantic is not None:
            seen.update(int(v) for v in np.unique(s.semantic).tolist())
    bg = Label(0, ("background",), (0, 0, 0), isthing=False, role="background")
    found = [Label(i, (f"class {i}",), (0, 0, 0)) for i in sorted(seen - {0})]
    return LabelMap((bg, *found))


def _seg_sample(sample: Sample, layers: _SampleLayers, index: int, dataset: str) -> SegSample:
    image = load_image(sample)
    stacked, info = layers.build(sample)
    info = {"id": sample.id, "index": index, "dataset": dataset, **info}
    return SegSample(image, stacked, info)


class StoreDataset(SegDataset):
    """A store version, or a finite :class:`~masklab.store.query.DataView` of one (filters
    and remaps applied), as layers ``("instance", "class")``. The frames are pinned by
    content key at construction: later edits of a draft version do not change it."""

    def __init__(self, version: Version | DataView) -> None:
        self._plan: Callable[[Any], Any] | None = None
        self._lut: npt.NDArray[np.uint16] | None = None
        if isinstance(version, Version):
            self.version = version
            self._keys = version.frame_keys()
            self.labels = version.label_map
        elif isinstance(version, DataView):
            if version.is_endless:
                raise StoreError(f"{version!r} is infinite; a dataset needs an end: take(n)")
            self.version = version.version
            self._keys = version.keys()
            self.labels = version.label_map()
            remapped = version.is_remapped
            self._plan = version.relabeler() if remapped else None
            self._lut = version.pixel_lut() if remapped else None
            if remapped:  # remapped pixel masks use 255 for what no mapping reaches
                self.labels = _with_void(self.labels)
        else:
            raise TypeError(f"version must be a store Version or DataView, got {version!r}")
        self.name = f"store:{self.version.ref}"
        self._layers = _SampleLayers(self.labels)

    def __len__(self) -> int:
        return len(self._keys)

    def get_sample(self, i: int) -> SegSample:
        j = _index(i, len(self))
        store = self.version.store
        frame = next(self.version.frames_by_keys([self._keys[j]]))
        if self._plan is not None:
            frame = self._plan(frame)
        try:
            sample = frame_to_sample(store, frame, self.labels)
        except (MaskLabError, OSError) as err:
            raise StoreError(f"{self.version.ref}: frame {frame.id!r}: {err}") from err
        if self._lut is not None and sample.semantic is not None:
            sample = replace(sample, semantic=self._lut[sample.semantic])
        return _seg_sample(sample, self._layers, j, self.name)

    def __repr__(self) -> str:
        return f"StoreDataset({self.version.ref!r}, {len(self)} frames)"


def _with_void(labels: LabelMap) -> LabelMap:
    if 255 in labels:
        return labels
    return labels.with_label(Label(255, ("void",), (0, 0, 0), isthing=False, role="ignore"))


# --------------------------------------------------------------------------- open_dataset

_FOLDERS: Mapping[str, type[FolderDataset]] = {
    "grabcut": GrabCutDataset,
    "berkeley": BerkeleyDataset,
    "davis": DavisDataset,
    "coco-mval": CocoMValDataset,
}


def open_dataset(
    spec: str,
    *,
    selector: Selector | None = None,
    seed: int = 0,
    strict: bool = False,
    store: Store | None = None,
) -> SegDataset | EvaluationDataset:
    """Open ``"KIND:PATH"``.

    Kinds: the benchmarks ``grabcut``, ``berkeley``, ``davis``, ``coco-mval`` (a root
    folder), ``store`` (``store:DATASET:VERSION`` in ``store`` or the default store), or
    any masklab format name (``coco:annotations.json``); a spec without a known kind is a
    path whose format is detected. Benchmarks come as an :class:`EvaluationDataset` with
    the benchmark's target rule (union of objects); stores and formats as their
    :class:`SegDataset`, or an EvaluationDataset when ``selector`` is given.
    """
    kind, sep, rest = spec.partition(":")
    known = [*_FOLDERS, "store", *format_names()]
    if not sep or kind not in known:
        if Path(spec).exists():
            kind, rest = "", spec
        else:
            raise UnknownFormatError(
                f"cannot open {spec!r}: write KIND:PATH with KIND one of {', '.join(known)}, "
                "or give an existing path (its format is detected)"
            )
    if not rest:
        raise ValueError(f"{spec!r} names no path after {kind + ':'!r}")
    if kind in _FOLDERS:
        folder = _FOLDERS[kind](rest, strict=strict)
        return EvaluationDataset(folder, selector or whole, seed=seed)
    seg: SegDataset
    if kind == "store":
        seg = StoreDataset((store or Store()).version(rest))
    else:
        seg = FormatDataset(rest, kind or None, strict=strict)
    return seg if selector is None else EvaluationDataset(seg, selector, seed=seed)
