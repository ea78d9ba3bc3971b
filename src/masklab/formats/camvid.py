"""CamVid: colour-coded 32-class label images, or SegNet's 11-class index layout.

Two layouts (``reference/formats.md`` §4.5):

* **SegNet / Datumaro**::

      <root>/train.txt                 lines "/train/<id>.png /trainannot/<id>.png"
      <root>/train/<id>.png            images (likewise val/, test/)
      <root>/trainannot/<id>.png       labels: grayscale indices or RGB colours
      <root>/label_colors.txt          optional: "r g b name" per class, in id order

  Without list files the ``<split>/`` + ``<split>annot/`` folders are paired by name.
  List paths are taken relative to the root (SegNet's absolute paths are resolved by
  their last two components).
* **Original CamVid**: ``<root>/**/<id>_L.png`` RGB label images, images with the same
  stem anywhere under the root (``701_StillsRaw_full/``), ``label_colors.txt``.

Classes: ``label_colors.txt`` when present (ids = line order); else the 32 CamVid
classes of Datumaro's ``CamvidLabelMap`` (``Void`` = (0, 0, 0) = id 0) for colour masks,
or SegNet's 11 classes (Sky 0 .. Bicyclist 10, ``Unlabelled`` 11 = void) for index masks.
Void classes get the ``ignore`` role. A colour missing from the table is counted in
``report.unknown_colors`` with its pixels, reported as a problem, and read as the void
class; an index missing from the label map is reported and kept.

The writer mirrors the layouts (option ``layout``: ``"segnet"`` default, or ``"camvid"``)
with colour label PNGs (option ``colors``, default True; False writes indices, SegNet
layout only) and ``label_colors.txt`` listing the classes in id order (ids are
renumbered to line positions when they are not ``0..n-1``; a ``Void`` class is added
when the label map has no void class and some pixels have no class). The original
layout has no splits, so subsets are not written there. CamVid holds class maps only:
objects are painted in drawing order (overlaps, crowd flags and scores are reported as
losses).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from masklab.core.labels import Label, LabelMap, voc_color
from masklab.errors import FormatError, LabelMapError, MaskFormatError
from masklab.formats import _base
from masklab.formats._base import Capabilities, Detection, FormatSpec, Sample
from masklab.formats.cityscapes import (
    check_image,
    image_ext,
    paint_objects,
    remap_classes,
    report_unknown_values,
    screen_instances,
)
from masklab.formats.report import ConversionReport

__all__ = [
    "CAMVID_COLORS",
    "SEGNET_COLORS",
    "SPEC",
    "Reader",
    "Writer",
    "detect",
    "parse_label_colors",
]

SPEC = FormatSpec(
    name="camvid",
    description="CamVid: 32-class colour labels (*_L.png) or SegNet 11-class index layout",
    kind="semantic",
    holds=Capabilities(
        holes=True,
        parts=True,
        overlap=False,
        crowd=False,
        scores=False,
        semantic=True,
        instances=False,
    ),
    extensions=(".png", ".txt"),
)

#: The 32 CamVid classes and colours (Datumaro ``CamvidLabelMap``, formats.md §4.5).
CAMVID_COLORS: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("Void", (0, 0, 0)),
    ("Animal", (64, 128, 64)),
    ("Archway", (192, 0, 128)),
    ("Bicyclist", (0, 128, 192)),
    ("Bridge", (0, 128, 64)),
    ("Building", (128, 0, 0)),
    ("Car", (64, 0, 128)),
    ("CartLuggagePram", (64, 0, 192)),
    ("Child", (192, 128, 64)),
    ("Column_Pole", (192, 192, 128)),
    ("Fence", (64, 64, 128)),
    ("LaneMkgsDriv", (128, 0, 192)),
    ("LaneMkgsNonDriv", (192, 0, 64)),
    ("Misc_Text", (128, 128, 64)),
    ("MotorcycleScooter", (192, 0, 192)),
    ("OtherMoving", (128, 64, 64)),
    ("ParkingBlock", (64, 192, 128)),
    ("Pedestrian", (64, 64, 0)),
    ("Road", (128, 64, 128)),
    ("RoadShoulder", (128, 128, 192)),
    ("Sidewalk", (0, 0, 192)),
    ("SignSymbol", (192, 128, 128)),
    ("Sky", (128, 128, 128)),
    ("SUVPickupTruck", (64, 128, 192)),
    ("TrafficCone", (0, 0, 64)),
    ("TrafficLight", (0, 64, 64)),
    ("Train", (192, 64, 128)),
    ("Tree", (128, 128, 0)),
    ("Truck_Bus", (192, 128, 192)),
    ("Tunnel", (64, 0, 64)),
    ("VegetationMisc", (192, 192, 0)),
    ("Wall", (64, 192, 0)),
)

#: SegNet's 11 classes + Unlabelled (index 11), colours of SegNet-Tutorial's scripts.
SEGNET_COLORS: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("Sky", (128, 128, 128)),
    ("Building", (128, 0, 0)),
    ("Pole", (192, 192, 128)),
    ("Road", (128, 64, 128)),
    ("Pavement", (60, 40, 222)),
    ("Tree", (128, 128, 0)),
    ("SignSymbol", (192, 128, 128)),
    ("Fence", (64, 64, 128)),
    ("Car", (64, 0, 128)),
    ("Pedestrian", (64, 64, 0)),
    ("Bicyclist", (0, 128, 192)),
    ("Unlabelled", (0, 0, 0)),
)

LABEL_COLORS_FILE = "label_colors.txt"
ANNOT_SUFFIX = "annot"
LABEL_SUFFIX = "_L"
CAMVID_IMAGE_DIR = "701_StillsRaw_full"
CAMVID_LABEL_DIR = "LabeledApproved_full"
_VOID_NAMES = {"void", "unlabelled", "unlabeled", "background"}


def _label_map(entries: list[tuple[str, tuple[int, int, int]]]) -> LabelMap:
    return LabelMap(
        tuple(
            Label(
                i,
                (name,),
                color,
                isthing=not _is_void(name),
                role="ignore" if _is_void(name) else "class",
            )
            for i, (name, color) in enumerate(entries)
        )
    )


def _is_void(name: str) -> bool:
    return name.lower() in _VOID_NAMES


def parse_label_colors(text: str) -> LabelMap:
    """Classes of a ``label_colors.txt`` ("r g b name" per line, ``#`` comments; a line
    with a name alone gets a VOC colour); ids are line positions.

    >>> lm = parse_label_colors("64 128 64\\tAnimal\\n0 0 0 Void\\nSky\\n")
    >>> [(lab.id, lab.name, lab.color, lab.role) for lab in lm][1:]
    [(1, 'Void', (0, 0, 0), 'ignore'), (2, 'Sky', (0, 128, 0), 'class')]
    """
    entries: list[tuple[str, tuple[int, int, int]]] = []
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(maxsplit=3)
        if len(parts) == 4 and all(re.fullmatch(r"\d+", p) for p in parts[:3]):
            rgb = tuple(int(p) for p in parts[:3])
            if max(rgb) > 255:
                raise FormatError(f"line {n}: colour {list(rgb)} is outside 0..255", record=n)
            entries.append((parts[3].strip(), (rgb[0], rgb[1], rgb[2])))
        elif len(parts) == 1 or not parts[0].isdigit():
            entries.append((line, voc_color(len(entries))))
        else:
            raise FormatError(f"line {n}: expected 'r g b name', got {line!r}", record=n)
    names = [name for name, _ in entries]
    dup = sorted({x for x in names if names.count(x) > 1})
    if dup:
        raise FormatError(f"classes {dup} are listed more than once", field="name")
    return _label_map(entries)


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class _Record:
    id: str
    subset: str | None
    image: Path | None
    mask: Path | None


def _list_files(root: Path) -> list[Path]:
    out = []
    for p in sorted(root.glob("*.txt")):
        if p.name == LABEL_COLORS_FILE:
            continue
        try:
            with p.open(encoding="utf-8") as f:
                head = f.readline().strip()
        except (OSError, UnicodeDecodeError):
            continue
        if head and len(_split_line(head)) == 2 and "/" in head:
            out.append(p)
    return out


def _split_line(line: str) -> list[str]:
    if '"' in line:  # Datumaro quotes paths that hold spaces
        return [p for p in line.split('"') if p.strip()]
    return line.split()


def _resolve(root: Path, ref: str) -> Path:
    direct = root / ref.strip().lstrip("/")
    if direct.exists():
        return direct
    parts = Path(ref.strip()).parts
    fallback = root.joinpath(*parts[-2:]) if len(parts) >= 2 else direct
    return fallback if fallback.exists() else direct


def _image(folder: Path, rid: str) -> Path | None:
    for ext in _base.IMAGE_EXTENSIONS:
        if (p := folder / f"{rid}{ext}").is_file():
            return p
    return None


def _below_top(root: Path, path: Path) -> str:
    """A file's id: its path below the root's first folder level, without extension
    (``train/a/b.png`` -> ``a/b``; a file directly in the root keeps its stem)."""
    try:
        parts = path.relative_to(root).with_suffix("").parts
    except ValueError:  # resolved outside the root
        return path.stem
    return "/".join(parts[1:] if len(parts) > 1 else parts)


def _annot_pairs(root: Path) -> list[tuple[str, Path, Path]]:
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        if d.name.endswith(ANNOT_SUFFIX) and (root / d.name[: -len(ANNOT_SUFFIX)]).is_dir():
            out.append((d.name[: -len(ANNOT_SUFFIX)], root / d.name[: -len(ANNOT_SUFFIX)], d))
    return out


def _first_label_png(path: Path, depth: int = 3) -> Path | None:
    """A ``*_L.png`` within ``depth`` folder levels (a bounded walk)."""
    frontier = [path]
    for _ in range(depth + 1):
        nxt: list[Path] = []
        for folder in frontier:
            try:
                with os.scandir(folder) as it:
                    for n, entry in enumerate(it):
                        if entry.name.endswith(f"{LABEL_SUFFIX}.png") and entry.is_file():
                            return Path(entry.path)
                        if entry.is_dir() and len(nxt) < 64:
                            nxt.append(Path(entry.path))
                        if n > 2000:
                            break
            except OSError:
                continue
        frontier = nxt
    return None


def detect(path: Path) -> Detection:
    """Confidence 3 for a SegNet list file or ``<split>annot/`` folders, or ``*_L.png``
    labels with ``label_colors.txt``."""
    path = Path(path)
    if not path.is_dir():
        return Detection.no("not a folder")
    lists = _list_files(path)
    for lst in lists:
        with lst.open(encoding="utf-8") as f:
            refs = _split_line(f.readline().strip())
        if "annot" in refs[1] or (path / refs[1].lstrip("/")).is_file():
            return Detection(3, f"{lst.name} pairs images with {refs[1]}")
    pairs = _annot_pairs(path)
    if pairs:
        return Detection(3, f"{pairs[0][0]}/ and {pairs[0][2].name}/ folders")
    labels = _first_label_png(path)
    if labels is not None:
        sure = 3 if (path / LABEL_COLORS_FILE).is_file() else 2
        return Detection(sure, f"colour labels such as {labels.name}")
    return Detection.no("no train.txt, no <split>annot/ folder, no *_L.png labels")


# --------------------------------------------------------------------------- read


class Reader(_base.RecordReader):
    """CamVid reader (SegNet or original layout, colour or index labels)."""

    spec = SPEC

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        labels: LabelMap | None = None,
        strict: bool = False,
    ) -> None:
        super().__init__(path, labels=labels, strict=strict)
        if not self.path.is_dir():
            raise FormatError(f"{self.path}: not a folder", path=str(self.path))
        self._records: list[_Record] | None = None
        self._label_map: LabelMap | None = None

    @property
    def labels(self) -> LabelMap:
        """The given LabelMap, else ``label_colors.txt``, else the built-in table that
        fits the masks (32 CamVid colours, or SegNet's 11 indices)."""
        if self._labels is not None:
            return self._labels
        if self._label_map is None:
            self._label_map = self._load_labels()
        return self._label_map

    def _load_labels(self) -> LabelMap:
        file = self.path / LABEL_COLORS_FILE
        if file.is_file():
            try:
                return parse_label_colors(file.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, FormatError, LabelMapError) as err:
                self.problem(file, getattr(err, "record", None), err)
        mask = next((r.mask for r in self._index() if r.mask is not None), None)
        if mask is not None:
            try:
                with Image.open(mask) as im:
                    if im.mode in ("L", "P", "I;16", "I"):
                        return _label_map(list(SEGNET_COLORS))
            except OSError:
                pass  # the sample reports it
        return _label_map(list(CAMVID_COLORS))

    def _index(self) -> list[_Record]:
        if self._records is None:
            self._records = self._find_records()
        return self._records

    def _find_records(self) -> list[_Record]:
        root = self.path
        lists = _list_files(root)
        if lists:
            records = []
            for lst in lists:
                for n, raw in enumerate(lst.read_text(encoding="utf-8").splitlines(), 1):
                    refs = _split_line(raw.strip())
                    if not refs:
                        continue
                    if len(refs) > 2:
                        self.problem(lst, n, f"expected 'image [mask]', got {raw.strip()!r}")
                        continue
                    image = _resolve(root, refs[0])
                    mask = _resolve(root, refs[1]) if len(refs) == 2 else None
                    records.append(_Record(_below_top(root, image), lst.stem, image, mask))
            return records
        pairs = _annot_pairs(root)
        if pairs:
            records = []
            for subset, img_dir, ann_dir in pairs:
                for mask in sorted(ann_dir.rglob("*.png")):
                    rid = mask.relative_to(ann_dir).with_suffix("").as_posix()
                    records.append(_Record(rid, subset, _image(img_dir, rid), mask))
            return records
        images: dict[str, Path] = {}
        masks: dict[str, Path] = {}
        for p in sorted(root.rglob("*")):
            if p.suffix.lower() not in _base.IMAGE_EXTENSIONS or not p.is_file():
                continue
            rid = _below_top(root, p)
            if rid.endswith(LABEL_SUFFIX) and p.suffix.lower() == ".png":
                masks.setdefault(rid[: -len(LABEL_SUFFIX)], p)
            else:
                images.setdefault(rid, p)
        return [_Record(rid, None, images.get(rid), m) for rid, m in masks.items()]

    def plan(self) -> Iterator[_Record]:
        """One record per sample, in order (its image and label file; nothing decoded),
        after the label map is resolved (a bad label_colors.txt is reported first)."""
        _ = self.labels
        return iter(self._index())

    def for_worker(self) -> Reader:
        """A copy that decodes in another process: the label map resolved, no file index,
        an empty report."""
        return self.worker_copy(_records=None, _label_map=self.labels)

    def _decode_one(self, rec: _Record) -> Sample | None:
        labels = self.labels
        void = next((lab.id for lab in labels if lab.role == "ignore"), 0)
        try:
            return self._read(rec, labels, void)
        except (FormatError, MaskFormatError, LabelMapError, OSError, ValueError) as err:
            self.problem(rec.mask or rec.image or rec.id, rec.id, err)
            return None

    def _read(self, rec: _Record, labels: LabelMap, void: int) -> Sample:
        image = rec.image if rec.image is not None and rec.image.is_file() else None
        if rec.mask is None:
            if image is None:
                raise FormatError(f"neither the image {rec.image} nor a label file exists")
            return Sample(rec.id, _base.image_size(image), image=image, subset=rec.subset)
        arr = _base.read_png(rec.mask)
        sem: npt.NDArray[np.integer[Any]]
        if arr.ndim == 3:
            ids, unknown = labels.colors_to_ids(arr[..., :3], unknown=void)
            if unknown:
                self.report.unknown_colors.update(unknown)
                self.problem(
                    rec.mask,
                    rec.id,
                    f"colours {sorted(unknown)} are not in the label map "
                    f"({sum(unknown.values())} px, read as the void class {void})",
                )
            sem = ids.astype(np.uint8 if max(labels.ids, default=0) < 256 else np.uint16)
        else:
            sem = arr.astype(arr.dtype if arr.dtype.kind in "iu" else np.uint8, copy=False)
            report_unknown_values(self, rec.mask, rec.id, sem)
        size = (int(sem.shape[0]), int(sem.shape[1]))
        check_image(image, size)
        return Sample(rec.id, size, image=image, semantic=sem, subset=rec.subset)


# --------------------------------------------------------------------------- write


@dataclass(frozen=True, slots=True)
class _Part:
    """What :meth:`Writer.encode` made of a sample (see ``_base.Writer.commit``)."""

    mask: _base.PngPayload
    image: Sample  # the sample without its masks: image file or bytes
    image_file: str  # where the image goes, relative to the stage
    subset: str | None  # the list the sample goes in (None: no lists)
    void: bool  # the sample's pixels use the Void class added to label_colors.txt


class Writer(_base.Writer):
    """CamVid writer. Options: ``layout`` ("segnet" default, or "camvid"), ``colors``
    (RGB label PNGs, default True; the "camvid" layout is always colour)."""

    spec = SPEC
    parallel = True

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
        self.layout = str(options.get("layout", "segnet"))
        if self.layout not in ("segnet", "camvid"):
            raise ValueError(f"layout must be 'segnet' or 'camvid', got {self.layout!r}")
        self.colors = bool(options.get("colors", True)) or self.layout == "camvid"
        ordered = sorted(labels, key=lambda lab: (lab.id < 0, lab.id))  # negatives last
        self._entries: list[tuple[str, tuple[int, int, int]]] = [
            (lab.name, lab.color) for lab in ordered[:256]
        ]
        self._pos: dict[int, int | None] = {
            lab.id: (i if i < 256 else None) for i, lab in enumerate(ordered)
        }
        void = next((lab.id for lab in ordered if lab.role in ("ignore", "background")), None)
        black = next((i for i, (_, c) in enumerate(self._entries) if c == (0, 0, 0)), None)
        self._void = self._pos.get(void) if void is not None else black
        self._void_added = False
        # a colour shared by two classes cannot tell them apart on reading
        first: dict[tuple[int, int, int], int] = {}
        self._shadowed: dict[int, int] = {}
        for i, (_, color) in enumerate(self._entries):
            if color in first:
                self._shadowed[i] = first[color]
            else:
                first[color] = i
        self._lists: dict[str, list[str]] = {}

    def _void_pos(self) -> int:
        """The void class's position; the Void line the writer adds when the label map
        has none (the same place in every process: it follows the label map's lines)."""
        if self._void is not None:
            return self._void
        if len(self._entries) >= 256:
            raise MaskFormatError("256 classes and no void class: no value is left for void")
        return len(self._entries)

    def encode(self, sample: Sample) -> _Part | None:
        """The sample's label PNG (classes painted, colours looked up) and where it and
        its image go; None when it cannot be written (reported)."""
        try:
            if sample.alpha is not None:
                self.report.loss(sample.id, None, "alpha", "CamVid holds no opacity masks")
            classes = self._classes(sample)
            present = np.unique(classes).tolist()
            for pos in present:
                if pos in self._shadowed:
                    self.report.loss(
                        sample.id,
                        None,
                        "class",
                        f"class {self._entries[pos][0]!r} has the colour of "
                        f"{self._entries[self._shadowed[pos]][0]!r}; it reads back as that class",
                    )
            void = self._void is None and len(self._entries) in present
            mask = self._painted(classes) if self.colors else classes
            ext = image_ext(sample)
            if self.layout == "camvid":
                mask_rel = f"{CAMVID_LABEL_DIR}/{sample.id}{LABEL_SUFFIX}.png"
                image_rel, subset = f"{CAMVID_IMAGE_DIR}/{sample.id}{ext}", None
            else:
                subset = sample.subset or "train"
                mask_rel = f"{subset}{ANNOT_SUFFIX}/{sample.id}.png"
                image_rel = f"{subset}/{sample.id}{ext}"
            payload = self.png_payload(mask_rel, mask)
        except (MaskFormatError, FormatError, LabelMapError, OSError, ValueError) as err:
            self.fail(sample, None, err)
            return None
        image = replace(sample, instances=(), semantic=None, alpha=None)
        return _Part(payload, image, image_rel, subset, void)

    def commit(self, part: _Part | None, report: ConversionReport) -> None:
        """Add the Void line if the sample uses it, write the label PNG, place the image
        and list the pair."""
        self.absorb(report)
        if part is None:
            return
        if part.void and self._void is None:
            self._entries.append(("Void", (0, 0, 0)))
            self._void = len(self._entries) - 1
            self._void_added = True
        try:
            self.write_payload(part.mask)
            self.place_image(part.image, self.stage / part.image_file)
        except (MaskFormatError, FormatError, OSError, ValueError) as err:
            self.fail(part.image, None, err)
            return
        if part.subset is not None:
            mask_rel = part.mask[0]
            line = f"/{part.image_file} /{mask_rel}"
            if " " in line:
                line = f'"/{part.image_file}" "/{mask_rel}"'
            self._lists.setdefault(part.subset, []).append(line)

    def _classes(self, sample: Sample) -> npt.NDArray[np.uint8]:
        if sample.semantic is not None:
            unmapped = [v for v in np.unique(sample.semantic).tolist() if self._pos.get(v) is None]
            fill = self._void_pos() if unmapped else (self._void or 0)
            classes = remap_classes(
                self.report, sample, self._pos, labels=self.labels, fill=fill, fill_name="Void"
            )
        else:
            classes = None
        screened = screen_instances(
            self.report,
            sample,
            self._pos,
            class_note="is not in the written label map; the object is not written",
            crowd_note="crowd region painted as its class",
            score_note="CamVid holds no scores",
            labels=self.labels,
        )
        kept, where, values, lossy = (
            screened.kept,
            screened.where,
            screened.values,
            screened.lossy,
        )
        painted = paint_objects(self.report, sample.id, kept, where, sample.size, lossy=lossy)
        fg = painted > 0
        if classes is None:
            covered = bool(fg.all())
            classes = np.full(sample.size, 0 if covered else self._void_pos(), np.uint8)
        if kept:
            classes[fg] = np.asarray(values, np.uint8)[painted[fg] - 1]
        return classes

    def _painted(self, classes: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        lut = np.zeros((256, 3), np.uint8)
        for i, (_, color) in enumerate(self._entries):
            lut[i] = color
        out: npt.NDArray[np.uint8] = lut[classes]
        return out

    def finish(self) -> None:
        for subset, lines in self._lists.items():
            (self.stage / f"{subset}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        text = "".join(f"{r} {g} {b} {name}\n" for name, (r, g, b) in self._entries)
        (self.stage / LABEL_COLORS_FILE).write_text(text, encoding="utf-8")
