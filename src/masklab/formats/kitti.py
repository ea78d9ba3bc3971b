"""KITTI semantic and instance segmentation (the 2015 pixel-level benchmark layout).

Layout (the KITTI devkit, Datumaro's ``kitti_segmentation``)::

    <root>/training/image_2/<id>.png        images
    <root>/training/semantic/<id>.png       8-bit Cityscapes label ids
    <root>/training/instance/<id>.png       16-bit: class_id * 256 + k
    <root>/training/semantic_rgb/<id>.png   RGB, Cityscapes colours (visualisation)
    <root>/testing/image_2/<id>.png         images without annotations

The subset is the folder (``training``/``testing``, or any other folder laid out the
same way); the path may also be one subset folder itself. Classes are Cityscapes' label
ids and colours (:data:`masklab.formats.cityscapes.LABELS`, ``reference/formats.md``
§4.2).

``instance`` PNGs pack ``class_id * 256 + k``: ``k`` 1..255 numbers an object, ``k = 0``
is no object (stuff, or a crowd region of a class that has instances, read as a crowd
instance as Datumaro does). The class map comes from ``semantic/``, else from
``instance/`` (``value // 256``), else from the colours of ``semantic_rgb/``.

The writer maps classes to Cityscapes ids by name (as the Cityscapes writer does),
keeps object numbers that already read ``class*256 + k`` and counts the others from 1
per class; it writes ``image_2``, ``semantic``, ``instance`` and ``semantic_rgb``.
Objects of classes without instances, scores and overlaps are reported as losses;
more than 255 objects of a class are an ``instances`` loss.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import numpy.typing as npt

from masklab.core.labels import LabelMap
from masklab.errors import FormatError, LabelMapError, MaskFormatError
from masklab.formats import _base, cityscapes
from masklab.formats._base import Capabilities, Detection, FormatSpec, Sample
from masklab.formats.cityscapes import KITTI_IDS, check_image, instances_from_ids, read_id_png

__all__ = ["SPEC", "Reader", "Writer", "detect"]

SPEC = FormatSpec(
    name="kitti",
    description="KITTI segmentation: semantic (label ids), instance (class*256+k), image_2",
    kind="panoptic",
    holds=Capabilities(
        holes=True, parts=True, overlap=False, crowd=True, scores=False, semantic=True
    ),
    extensions=(".png",),
)

IMAGE_DIR = "image_2"
SEMANTIC_DIR = "semantic"
INSTANCE_DIR = "instance"
SEMANTIC_RGB_DIR = "semantic_rgb"
SUBSETS = ("training", "testing")
_MASK_DIRS = (SEMANTIC_DIR, INSTANCE_DIR, SEMANTIC_RGB_DIR)


def _is_subset(folder: Path) -> bool:
    return (folder / IMAGE_DIR).is_dir() or any((folder / d).is_dir() for d in _MASK_DIRS)


def _subsets(path: Path) -> list[Path]:
    """The subset folders under ``path`` (``training``, ``testing`` first, then any other
    folder laid out like them), or ``path`` itself when it is one."""
    if any((path / d).is_dir() for d in _MASK_DIRS):
        return [path]
    if not path.is_dir():
        return []
    others = sorted(p for p in path.iterdir() if p.is_dir() and p.name not in SUBSETS)
    found = [path / s for s in SUBSETS if (path / s).is_dir() and _is_subset(path / s)]
    return found + [p for p in others if any((p / d).is_dir() for d in _MASK_DIRS)]


def detect(path: Path) -> Detection:
    """Confidence 3 for ``training/{semantic,instance}/*.png`` beside ``image_2``."""
    path = Path(path)
    if not path.is_dir():
        return Detection.no("not a folder")
    for sub in _subsets(path):
        found = [d for d in _MASK_DIRS if (sub / d).is_dir()]
        if found:
            with os.scandir(sub / found[0]) as it:
                if any(e.name.endswith(".png") for e in it):
                    return Detection(3, f"{sub.name}/{found[0]}/*.png")
            return Detection(1, f"{sub.name}/{found[0]}/ holds no PNG")
    return Detection.no("no training/semantic/ or training/instance/ folder")


@dataclass
class _Record:
    id: str
    subset: str
    files: dict[str, Path] = field(default_factory=dict)


def _pngs(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {
        p.relative_to(folder).with_suffix("").as_posix(): p for p in sorted(folder.rglob("*.png"))
    }


def _images(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {
        p.relative_to(folder).with_suffix("").as_posix(): p
        for p in sorted(folder.rglob("*"))
        if p.suffix.lower() in _base.IMAGE_EXTENSIONS and p.is_file()
    }


class Reader(_base.RecordReader):
    """KITTI segmentation reader (Cityscapes label ids)."""

    spec = SPEC

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        labels: LabelMap | None = None,
        strict: bool = False,
    ) -> None:
        super().__init__(path, labels=labels, strict=strict)
        if not _subsets(self.path):
            raise FormatError(
                f"{self.path}: no training/ or testing/ folder with image_2/, semantic/ or "
                "instance/; point at the KITTI segmentation root",
                path=str(self.path),
            )
        self._records: list[_Record] | None = None

    @property
    def labels(self) -> LabelMap:
        """The given LabelMap, else Cityscapes' label ids."""
        return self._labels if self._labels is not None else cityscapes.label_map("label")

    def _index(self) -> list[_Record]:
        if self._records is None:
            records: list[_Record] = []
            for sub in _subsets(self.path):
                by_id: dict[str, _Record] = {}
                for kind in _MASK_DIRS:
                    for rid, p in _pngs(sub / kind).items():
                        by_id.setdefault(rid, _Record(rid, sub.name)).files[kind] = p
                for rid, p in _images(sub / IMAGE_DIR).items():
                    by_id.setdefault(rid, _Record(rid, sub.name)).files[IMAGE_DIR] = p
                records += [by_id[k] for k in sorted(by_id)]
            self._records = records
        return self._records

    def _decode_one(self, rec: _Record) -> Sample | None:
        try:
            return self._read(rec)
        except (FormatError, MaskFormatError, LabelMapError, OSError, ValueError) as err:
            main = next(rec.files[k] for k in (*_MASK_DIRS, IMAGE_DIR) if k in rec.files)
            self.problem(main, rec.id, err)
            return None

    def _read(self, rec: _Record) -> Sample:
        files = rec.files
        image = files.get(IMAGE_DIR)
        inst = read_id_png(files[INSTANCE_DIR]) if INSTANCE_DIR in files else None
        sem: npt.NDArray[np.uint8] | None
        if SEMANTIC_DIR in files:
            source = files[SEMANTIC_DIR]
            sem = read_id_png(source).astype(np.uint8)
        elif inst is not None:
            source = files[INSTANCE_DIR]
            sem = np.clip(KITTI_IDS.class_map(inst), 0, 255).astype(np.uint8)
        elif SEMANTIC_RGB_DIR in files:
            source = files[SEMANTIC_RGB_DIR]
            sem = self._from_colors(source, rec.id)
        else:
            sem = None
        if sem is None and image is not None:  # an image without annotations (testing)
            return Sample(id=rec.id, size=_base.image_size(image), image=image, subset=rec.subset)
        if sem is None:
            raise FormatError(f"no annotation or image for {rec.id}")
        if inst is not None and inst.shape != sem.shape:
            raise FormatError(
                f"{files[INSTANCE_DIR]}: size {list(inst.shape)} differs from the class map's "
                f"{list(sem.shape)}; regenerate one of them"
            )
        size = (int(sem.shape[0]), int(sem.shape[1]))
        cityscapes.report_unknown_values(self, source, rec.id, sem)
        check_image(image, size)
        instances = [] if inst is None else instances_from_ids(inst, KITTI_IDS)
        return Sample(
            id=rec.id,
            size=size,
            image=image,
            instances=tuple(instances),
            semantic=sem,
            subset=rec.subset,
        )

    def _from_colors(self, source: Path, record: str) -> npt.NDArray[np.uint8]:
        rgb = _base.read_png(source)
        if rgb.ndim != 3:
            raise FormatError(f"{source}: semantic_rgb must be an RGB image", path=str(source))
        ids, unknown = self.labels.colors_to_ids(rgb[..., :3], unknown=0)
        if unknown:
            self.report.unknown_colors.update(unknown)
            self.problem(
                source,
                record,
                f"{len(unknown)} colours are not Cityscapes colours "
                f"({sum(unknown.values())} px, read as unlabeled)",
            )
        return np.clip(ids, 0, 255).astype(np.uint8)


class Writer(cityscapes.Writer):
    """KITTI segmentation writer. Option ``color`` (write semantic_rgb, default True)."""

    spec = SPEC
    codec = KITTI_IDS

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        labels: LabelMap,
        strict: bool = False,
        overwrite: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(path, labels=labels, strict=strict, overwrite=overwrite, **options)

    def _files(
        self, sample: Sample, classes: npt.NDArray[np.uint8], ids: npt.NDArray[np.uint16]
    ) -> tuple[tuple[_base.PngPayload, ...], str]:
        """semantic/, instance/ (and semantic_rgb/) PNGs of a sample and its image's path,
        relative to the stage."""
        sub = PurePosixPath(sample.subset or "training")
        rel = sample.id + ".png"
        pngs = [
            self.png_payload((sub / SEMANTIC_DIR / rel).as_posix(), classes),
            self.png_payload((sub / INSTANCE_DIR / rel).as_posix(), ids),
        ]
        if self._color:
            colors = self.colors[classes]
            pngs.append(self.png_payload((sub / SEMANTIC_RGB_DIR / rel).as_posix(), colors))
        ext = cityscapes.image_ext(sample)
        return tuple(pngs), (sub / IMAGE_DIR / rel).with_suffix(ext).as_posix()
