"""Mapillary Vistas v1.2 / v2.0: palette label PNGs and 16-bit instance PNGs.

Layout (``reference/formats.md`` §4.4; the v2.0 release holds both versions)::

    <root>/config_v2.0.json                      labels: name, readable, color, instances
    <root>/<split>/images/<id>.jpg
    <root>/<split>/v2.0/labels/<id>.png          8-bit palette, index = label id
    <root>/<split>/v2.0/instances/<id>.png       16-bit: label * 256 + instance
    <root>/<split>/v2.0/panoptic/, polygons/     not read (same pixels, see below)
    <root>/<split>/v1.2/...                      the same for v1.2 (config_v1.2.json)

The v1.2 release's flat ``<split>/{images,labels,instances}`` with ``config.json`` is read
too; the config may also sit in the split folder (Datumaro). The reader's ``version``
option picks ``"v2.0"`` or ``"v1.2"`` (default: the newest present).

Label ids are positions in the config's ``labels`` list; ``instances: true`` makes a
class a thing, ``evaluate: false`` an ``ignore`` class. In ``instances/*.png`` every
value of a thing class is one object (``Instance.id`` = the value, instance numbers from
0); values of other classes are stuff, kept in the class map only. Without a labels PNG
the class map is ``value >> 8``. The panoptic PNGs and polygons hold the same regions
and are not read (their ``iscrowd`` flags are therefore not read either).

The writer writes ``config_<version>.json`` (labels in id order: ids are renumbered to
positions when they are not ``0..n-1``; a ``void--unlabeled`` class is appended when the
label map has no background/ignore class to fill unlabelled pixels), palette label PNGs
and instance PNGs. Object numbers already reading ``label*256 + k`` are kept, the rest
are counted from 0 per class. A class map without objects is split into objects per
connected component of each thing class (``_base.instances_of``). Crowd flags, scores,
objects of stuff classes and overlaps are reported as losses; more than 256 labels or
256 objects of a class do not fit the 8-bit fields and are reported too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import numpy.typing as npt

from masklab.core.instances import Instance, Segment, panoptic_to_instances
from masklab.core.labels import Label, LabelMap, voc_color
from masklab.errors import FormatError, LabelMapError, MaskFormatError
from masklab.formats import _base
from masklab.formats._base import Capabilities, Detection, FormatSpec, Sample
from masklab.formats.cityscapes import (
    check_image,
    image_ext,
    label_name,
    paint_objects,
    remap_classes,
    report_unknown_values,
)
from masklab.formats.report import ConversionReport

__all__ = ["SPEC", "VERSIONS", "Reader", "Writer", "detect", "label_map_from_config"]

SPEC = FormatSpec(
    name="mapillary",
    description="Mapillary Vistas v1.2/v2.0: palette labels, 16-bit instances (label*256+k)",
    kind="panoptic",
    holds=Capabilities(
        holes=True, parts=True, overlap=False, crowd=False, scores=False, semantic=True
    ),
    extensions=(".png", ".json"),
)

VERSIONS = ("v2.0", "v1.2")
LABELS_DIR = "labels"
INSTANCES_DIR = "instances"
IMAGES_DIR = "images"
INSTANCE_SHIFT = 8  # instances/*.png: label = v >> 8, instance = v & 255 (formats.md §4.4)
MAX_LABELS = 256
VOID_NAME = "void--unlabeled"


def label_map_from_config(config: dict[str, Any]) -> LabelMap:
    """The LabelMap of a Vistas config: id = position in ``labels``.

    >>> cfg = {"labels": [{"name": "animal--bird", "color": [165, 42, 42], "instances": True},
    ...                   {"name": "void--unlabeled", "color": [0, 0, 0], "instances": False,
    ...                    "evaluate": False}]}
    >>> [(lab.id, lab.name, lab.isthing, lab.role) for lab in label_map_from_config(cfg)]
    [(0, 'animal--bird', True, 'class'), (1, 'void--unlabeled', False, 'ignore')]
    """
    entries = config.get("labels")
    if not isinstance(entries, list):
        raise FormatError("a Vistas config needs a 'labels' list")
    labels = []
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or "name" not in e:
            raise FormatError(f"label {i} of the config has no 'name'", record=i, field="labels")
        color = e.get("color", voc_color(i))
        labels.append(
            Label(
                i,
                (str(e["name"]),),
                (int(color[0]), int(color[1]), int(color[2])),
                isthing=bool(e.get("instances", False)),
                role="class" if e.get("evaluate", True) else "ignore",
                attributes={k: v for k, v in e.items() if k in ("readable", "evaluate")},
            )
        )
    return LabelMap(tuple(labels))


# --------------------------------------------------------------------------- layout


def _splits(root: Path) -> list[Path]:
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        versioned = [d / v for v in VERSIONS]
        if any((a / x).is_dir() for a in (d, *versioned) for x in (LABELS_DIR, INSTANCES_DIR)):
            out.append(d)
    return out


def _ann_dir(split: Path, version: str | None) -> Path | None:
    if version is not None and (split / version).is_dir():
        return split / version
    if version is None and ((split / LABELS_DIR).is_dir() or (split / INSTANCES_DIR).is_dir()):
        return split
    return None


def _pick_version(splits: list[Path]) -> str | None:
    for v in VERSIONS:
        if any((s / v).is_dir() for s in splits):
            return v
    return None


def _config_path(root: Path, splits: list[Path], version: str | None) -> Path | None:
    names = [f"config_{version}.json"] if version else []
    names += ["config.json"]
    for folder in (root, *splits):
        for name in names:
            if (folder / name).is_file():
                return folder / name
    found = sorted(root.glob("config_v*.json"))
    return found[-1] if found else None


def detect(path: Path) -> Detection:
    """Confidence 3 for a Vistas config or ``<split>/<version>/labels|instances`` folders."""
    path = Path(path)
    if not path.is_dir():
        return Detection.no("not a folder")
    splits = _splits(path)
    configs = sorted(path.glob("config*.json"))
    if configs:
        try:
            with configs[0].open(encoding="utf-8") as f:
                head = f.read(4096)
        except OSError:
            head = ""
        if '"labels"' in head and ('"instances"' in head or '"readable"' in head):
            return Detection(3, f"{configs[0].name} lists Vistas labels")
    if splits and _pick_version(splits):
        return Detection(3, f"{splits[0].name}/{_pick_version(splits)}/labels or instances")
    flat = [s for s in splits if (s / LABELS_DIR).is_dir() and (s / INSTANCES_DIR).is_dir()]
    if flat:
        return Detection(1, f"{flat[0].name}/labels/ and instances/ without a Vistas config")
    return Detection.no("no config_v*.json and no <split>/v2.0/labels/ folder")


# --------------------------------------------------------------------------- read


@dataclass
class _Record:
    id: str
    split: str
    files: dict[str, Path] = field(default_factory=dict)


class Reader(_base.RecordReader):
    """Mapillary Vistas reader; ``version`` = "v2.0" | "v1.2" | None (newest present)."""

    spec = SPEC

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        labels: LabelMap | None = None,
        strict: bool = False,
        version: str | None = None,
    ) -> None:
        super().__init__(path, labels=labels, strict=strict)
        if version is not None and version not in VERSIONS:
            raise ValueError(f"version must be one of {VERSIONS}, got {version!r}")
        self._splits = _splits(self.path) if self.path.is_dir() else []
        if not self._splits:
            raise FormatError(
                f"{self.path}: no <split>/v2.0/labels/, <split>/v1.2/labels/ or "
                "<split>/labels/ folder; point at the Vistas root",
                path=str(self.path),
            )
        self.version = version or _pick_version(self._splits)
        self._config = _config_path(self.path, self._splits, self.version)
        self._label_map: LabelMap | None = None
        self._records: list[_Record] | None = None

    @property
    def labels(self) -> LabelMap:
        """The given LabelMap, else the config's (read once)."""
        if self._labels is not None:
            return self._labels
        if self._label_map is None:
            self._label_map = self._load_labels()
        return self._label_map

    def _load_labels(self) -> LabelMap:
        if self._config is not None:
            try:
                with self._config.open(encoding="utf-8") as f:
                    return label_map_from_config(json.load(f))
            except (OSError, json.JSONDecodeError, FormatError, LabelMapError) as err:
                self.problem(self._config, None, f"cannot read the config: {err}")
        else:
            self.problem(
                self.path,
                None,
                "no config_v2.0.json / config_v1.2.json / config.json; classes are named "
                "class_<id> from the label PNGs (pass labels= to name them)",
            )
        return self._scan_labels()

    def _scan_labels(self) -> LabelMap:
        """Classes found in the label/instance PNGs (a pass over the masks)."""
        seen: set[int] = set()
        for rec in self._index():
            try:
                if LABELS_DIR in rec.files:
                    arr = _base.read_png(rec.files[LABELS_DIR])
                    if arr.ndim == 2:
                        seen.update(np.unique(arr).tolist())
                elif INSTANCES_DIR in rec.files:
                    inst = _base.read_png(rec.files[INSTANCES_DIR])
                    seen.update((np.unique(inst) >> INSTANCE_SHIFT).tolist())
            except FormatError:
                continue  # reported when the sample is read
        return LabelMap(tuple(Label(i, (f"class_{i}",), voc_color(i)) for i in sorted(seen)))

    def _index(self) -> list[_Record]:
        if self._records is None:
            records: list[_Record] = []
            for split in self._splits:
                ann = _ann_dir(split, self.version) or _ann_dir(split, None)
                if ann is None:
                    continue
                by_id: dict[str, _Record] = {}
                for kind in (LABELS_DIR, INSTANCES_DIR):
                    folder = ann / kind
                    if folder.is_dir():
                        for p in sorted(folder.rglob("*.png")):
                            rid = p.relative_to(folder).with_suffix("").as_posix()
                            by_id.setdefault(rid, _Record(rid, split.name)).files[kind] = p
                records += [by_id[k] for k in sorted(by_id)]
            self._records = records
        return self._records

    def plan(self) -> Iterator[_Record]:
        """One record per sample, in order (its PNGs; nothing decoded), after the config
        is read (and reported on)."""
        self.labels  # noqa: B018  (read the config before the samples)
        return iter(self._index())

    def for_worker(self) -> Reader:
        """A copy that decodes in another process: the label map resolved, no file index,
        an empty report."""
        return self.worker_copy(_records=None, _label_map=self.labels)

    def _decode_one(self, rec: _Record) -> Sample | None:
        try:
            image = _image(self.path / rec.split / IMAGES_DIR, rec.id)
            return self._read(rec, self.labels, image)
        except (FormatError, MaskFormatError, LabelMapError, OSError, ValueError) as err:
            main = rec.files.get(LABELS_DIR) or rec.files[INSTANCES_DIR]
            self.problem(main, rec.id, err)
            return None

    def _read(self, rec: _Record, labels: LabelMap, image: Path | None) -> Sample:
        inst = None
        if INSTANCES_DIR in rec.files:
            inst = _base.read_png(rec.files[INSTANCES_DIR])
            if inst.ndim != 2:
                raise FormatError(
                    f"{rec.files[INSTANCES_DIR]}: instance PNGs are 16-bit grayscale "
                    f"(label*256+instance), got {inst.shape[2]} channels"
                )
        if LABELS_DIR in rec.files:
            source = rec.files[LABELS_DIR]
            sem = self._classes(source, rec.id, labels)
        elif inst is not None:
            source = rec.files[INSTANCES_DIR]
            sem = (inst.astype(np.int64) >> INSTANCE_SHIFT).astype(np.uint8)
        else:
            raise FormatError(f"no labels or instances PNG for {rec.id}")
        size = (int(sem.shape[0]), int(sem.shape[1]))
        if inst is not None and inst.shape != sem.shape:
            raise FormatError(
                f"{rec.files[INSTANCES_DIR]}: size {list(inst.shape)} differs from the label "
                f"PNG's {list(sem.shape)}"
            )
        report_unknown_values(self, source, rec.id, sem)
        instances: list[Instance] = []
        if inst is not None:
            if source != rec.files[INSTANCES_DIR]:
                differ = int(np.count_nonzero((inst.astype(np.int64) >> INSTANCE_SHIFT) != sem))
                if differ:
                    self.problem(
                        rec.files[INSTANCES_DIR],
                        rec.id,
                        f"{differ} px have another label in the instance PNG than in the "
                        "label PNG; the label PNG's classes are kept",
                    )
            things = {lab.id for lab in labels if lab.isthing}
            values = np.unique(inst).tolist()
            segments = [
                Segment(int(v), int(v) >> INSTANCE_SHIFT)
                for v in values
                if int(v) >> INSTANCE_SHIFT in things
            ]
            instances = panoptic_to_instances(inst, segments)[0]
        check_image(image, size)
        return Sample(
            id=rec.id,
            size=size,
            image=image,
            instances=tuple(instances),
            semantic=sem,
            subset=rec.split,
            meta={"version": self.version or "v1.2"},
        )

    def _classes(self, source: Path, record: str, labels: LabelMap) -> npt.NDArray[np.uint8]:
        arr = _base.read_png(source)
        if arr.ndim == 2:
            return arr.astype(np.uint8)
        ids, unknown = labels.colors_to_ids(arr[..., :3], unknown=0)
        if unknown:  # a colour-coded label PNG: unknown colours are counted, read as 0
            self.report.unknown_colors.update(unknown)
            self.problem(
                source,
                record,
                f"{len(unknown)} colours are not in the config ({sum(unknown.values())} px, "
                "read as label 0)",
            )
        return np.clip(ids, 0, 255).astype(np.uint8)


def _image(folder: Path, rid: str) -> Path | None:
    for ext in (".jpg", *_base.IMAGE_EXTENSIONS):
        if (p := folder / f"{rid}{ext}").is_file():
            return p
    return None


# --------------------------------------------------------------------------- write


@dataclass(frozen=True, slots=True)
class _Part:
    """What :meth:`Writer.encode` made of a sample (see ``_base.Writer.commit``)."""

    pngs: tuple[_base.PngPayload, ...]  # the labels and instances PNGs
    image: Sample  # the sample without its masks: image file or bytes
    image_file: str  # where the image goes, relative to the stage
    void_used: bool  # the labels PNG uses the Void label the config gets at the end


class Writer(_base.Writer):
    """Vistas writer. Option ``version`` ("v2.0" default, or "v1.2")."""

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
        self.version = str(options.get("version", "v2.0"))
        if self.version not in VERSIONS:
            raise ValueError(f"version must be one of {VERSIONS}, got {self.version!r}")
        ordered = sorted(labels, key=lambda lab: (lab.id < 0, lab.id))  # negatives last
        self._pos: dict[int, int | None] = {
            lab.id: (i if i < MAX_LABELS else None) for i, lab in enumerate(ordered)
        }
        self._entries = [_entry(lab) for lab in ordered[:MAX_LABELS]]
        void = next((lab.id for lab in ordered if lab.role in ("background", "ignore")), None)
        void_pos = self._pos.get(void) if void is not None else None
        if void_pos is None and len(self._entries) < MAX_LABELS:
            void_pos = len(self._entries)
            self._void_added = True
        else:
            self._void_added = False
        self._void = void_pos if void_pos is not None else 0
        self._things = {lab.id for lab in labels if lab.isthing}
        self._void_used = False
        self._pal = self._palette()

    def _palette(self) -> npt.NDArray[np.uint8]:
        pal = np.zeros((MAX_LABELS, 3), np.uint8)
        for i, e in enumerate(self._entries):
            pal[i] = e["color"]
        return pal

    def encode(self, sample: Sample) -> _Part | None:
        """The sample's labels and instances PNGs and where its image goes; None when it
        cannot be written (reported)."""
        try:
            return self._encode(sample)
        except (MaskFormatError, FormatError, LabelMapError, OSError, ValueError) as err:
            self.fail(sample, None, err)
            return None

    def commit(self, part: _Part | None, report: ConversionReport) -> None:
        """Note the Void label's use, write the PNGs and place the image."""
        self.absorb(report)
        if part is None:
            return
        self._void_used = self._void_used or part.void_used
        self.write_files(part.image, part.pngs, part.image_file)

    def _encode(self, sample: Sample) -> _Part:
        if sample.alpha is not None:
            self.report.loss(sample.id, None, "alpha", "Vistas holds no opacity masks")
        if sample.semantic is not None:
            classes = remap_classes(
                self.report,
                sample,
                self._pos,
                labels=self.labels,
                fill=self._void,
                fill_name=VOID_NAME,
            )
        else:
            classes = np.full(sample.size, self._void, np.uint8)
        instances = sample.instances
        if not instances and sample.semantic is not None:  # things split into components
            derived = _base.instances_of(sample, self.labels)
            instances = tuple(i for i in derived if i.class_id in self._things)
        ids = classes.astype(np.uint16) << INSTANCE_SHIFT
        kept: list[Instance] = []
        where: list[int] = []
        values: list[int] = []
        lossy: list[int] = []
        used: dict[int, set[int]] = {}
        pending: list[int] = []
        for i, inst in enumerate(instances):
            pos = self._pos.get(inst.class_id)
            if pos is None:
                self.report.loss(
                    sample.id,
                    i,
                    "class",
                    f"class {inst.class_id} ({label_name(self.labels, inst.class_id)}) has no "
                    "label in the written config; the object is not written",
                )
                continue
            at = len(kept)
            kept.append(inst)
            where.append(i)
            values.append(pos << INSTANCE_SHIFT)
            if inst.score is not None:
                self.report.loss(sample.id, i, "score", "Vistas holds no scores")
                lossy.append(at)
            if inst.iscrowd:
                self.report.loss(sample.id, i, "crowd", "written as an ordinary object")
                lossy.append(at)
            if inst.class_id not in self._things:
                self.report.loss(
                    sample.id,
                    i,
                    "instances",
                    f"class {label_name(self.labels, inst.class_id)} has no instances; the "
                    "object is painted as class pixels",
                )
                lossy.append(at)
                continue
            k = _kept_number(inst.id, pos, used)
            if k is None:
                pending.append(at)
            else:
                values[at] = (pos << INSTANCE_SHIFT) | k
        for at in pending:
            pos = values[at] >> INSTANCE_SHIFT
            taken = used.setdefault(pos, set())
            k = next((k for k in range(256) if k not in taken), None)
            if k is None:
                self.report.loss(
                    sample.id, where[at], "instances", "more than 256 objects of one class"
                )
                lossy.append(at)
                continue
            taken.add(k)
            values[at] = (pos << INSTANCE_SHIFT) | k
        painted = paint_objects(self.report, sample.id, kept, where, sample.size, lossy=lossy)
        fg = painted > 0
        if kept and fg.any():
            idx = painted[fg] - 1
            vals = np.asarray(values, np.uint16)[idx]
            new = (vals >> INSTANCE_SHIFT).astype(np.uint8)
            changed = int(np.count_nonzero(classes[fg] != new))
            if changed and sample.semantic is not None:
                self.report.loss(
                    sample.id,
                    None,
                    "class",
                    f"{changed} px of the class map disagree with the objects drawn on them; "
                    "the objects' classes were written",
                )
            classes[fg] = new
            ids[fg] = vals
        void_used = self._void_added and bool(np.any(classes == self._void))
        split = PurePosixPath(sample.subset or "training")
        ann = split / self.version
        pngs = (
            self.png_payload(
                (ann / LABELS_DIR / f"{sample.id}.png").as_posix(), classes, palette=self._pal
            ),
            self.png_payload((ann / INSTANCES_DIR / f"{sample.id}.png").as_posix(), ids),
        )
        image_file = split / IMAGES_DIR / f"{sample.id}{image_ext(sample, '.jpg')}"
        image = replace(sample, instances=(), semantic=None, alpha=None)
        return _Part(pngs, image, image_file.as_posix(), void_used)

    def finish(self) -> None:
        entries = list(self._entries)
        if self._void_used:
            entries.append(
                {
                    "name": VOID_NAME,
                    "readable": "Unlabeled",
                    "color": [0, 0, 0],
                    "instances": False,
                    "evaluate": False,
                }
            )
        config = {"labels": entries, "version": self.version.lstrip("v"), "mapping": "public"}
        with (self.stage / f"config_{self.version}.json").open("w", encoding="utf-8") as f:
            json.dump(config, f, indent=1)


def _entry(lab: Label) -> dict[str, Any]:
    readable = lab.attributes.get("readable")
    return {
        "name": lab.name,
        "readable": readable if isinstance(readable, str) else lab.name,
        "color": list(lab.color),
        "instances": lab.isthing,
        "evaluate": lab.role == "class",
    }


def _kept_number(inst_id: int | None, pos: int, used: dict[int, set[int]]) -> int | None:
    """The source instance number when the id already reads ``pos*256 + k``."""
    if inst_id is None or not 0 <= inst_id < 65536 or inst_id >> INSTANCE_SHIFT != pos:
        return None
    k = inst_id & 0xFF
    taken = used.setdefault(pos, set())
    if k in taken:
        return None
    taken.add(k)
    return k
