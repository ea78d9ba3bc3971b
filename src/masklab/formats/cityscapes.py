"""Cityscapes: ``gtFine`` label, instance and colour PNGs beside ``leftImg8bit`` images.

Layout (``reference/formats.md`` §4.2)::

    <root>/leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png
    <root>/gtFine/<split>/<city>/<stem>_gtFine_labelIds.png       8-bit label ids 0..33
    <root>/gtFine/<split>/<city>/<stem>_gtFine_instanceIds.png    16-bit, see below
    <root>/gtFine/<split>/<city>/<stem>_gtFine_color.png          RGB, visualisation only
    <root>/gtFine/<split>/<city>/<stem>_gtFine_labelTrainIds.png  optional, trainIds 0..18, 255

``gtCoarse`` is read the same way when there is no ``gtFine``. A sample's id is the stem
(``aachen_000000_000019``), its subset the split, ``meta["city"]`` the city folder.

Conventions (cityscapesScripts ``helpers/labels.py``, ``json2instanceImg.py``):

* Label ids 0..33 and -1 (``license plate``, never drawn), the table :data:`LABELS`;
  ``trainId`` 0..18 for the 19 evaluated classes, 255 for every other (ignored) class.
* ``instanceIds``: a value ``>= 1000`` is an object, ``class_id * 1000 + k`` with ``k``
  from 0 in drawing order (the first car is 26000); a value ``< 1000`` is a plain class id:
  stuff, or a *group* (``cargroup``) of a class that has instances. The reader yields
  objects as instances (``Instance.id`` = the stored value) and groups of instance
  classes as crowd instances, as ``createPanopticImgs.py`` and Detectron2 read them;
  stuff stays in the class map only.
* The reader's ``ids`` option picks the class ids: ``"label"`` (default: label ids,
  ``labelIds.png``) or ``"train"`` (trainIds: ``labelTrainIds.png`` when present, else
  label ids mapped as ``createTrainIdLabelImgs.py`` does; objects of classes without a
  trainId, caravan and trailer, are then ignore pixels, not instances).

The writer maps the classes of its LabelMap to Cityscapes label ids *by name* ("car",
"traffic light", ...); classes with no Cityscapes namesake are written as ``unlabeled``
(0) and reported as ``class`` losses (ignore/background classes map to 0 silently).
It writes ``labelIds``, ``instanceIds`` (source ids kept when they already read
``class*1000+k``, else ``k`` counted from 0 per class in drawing order), the colour PNG
and, with ``train_ids=True``, ``labelTrainIds``. Objects of classes without instances
are painted as their class (an ``instances`` loss), crowd objects as their class
(Cityscapes' group encoding: no loss), pixels taken by a later object are an
``overlap`` loss. Samples without a subset go to ``train``; the city is
``meta["city"]``, else the stem's prefix before the first ``_``. The ``*_polygons.json``
files (the source the PNGs were drawn from) are neither read nor written.

The id-PNG helpers the KITTI, Mapillary, ADE20K and CamVid modules share live here too
(:class:`InstanceCodec`, :func:`instances_from_ids`, :func:`paint_objects`,
:func:`remap_classes`, ...).
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from masklab.core.instances import Instance, Segment, instances_to_panoptic, panoptic_to_instances
from masklab.core.labels import Label, LabelMap
from masklab.errors import FormatError, LabelMapError, MaskFormatError
from masklab.formats import _base
from masklab.formats._base import Capabilities, Detection, FormatSpec, Sample
from masklab.formats.report import ConversionReport

__all__ = [
    "CITYSCAPES_IDS",
    "KITTI_IDS",
    "LABELS",
    "SPEC",
    "CityscapesLabel",
    "InstanceCodec",
    "Reader",
    "Screened",
    "Writer",
    "check_image",
    "detect",
    "image_ext",
    "instances_from_ids",
    "label_id_of",
    "label_map",
    "label_name",
    "paint_objects",
    "read_id_png",
    "remap_classes",
    "report_unknown_values",
    "screen_instances",
    "train_id_lut",
]

SPEC = FormatSpec(
    name="cityscapes",
    description="Cityscapes gtFine: labelIds, 16-bit instanceIds (class*1000+k), color PNGs",
    kind="panoptic",
    holds=Capabilities(
        holes=True, parts=True, overlap=False, crowd=True, scores=False, semantic=True
    ),
    extensions=(".png",),
)

IdKind = Literal["label", "train"]

INSTANCE_DIVISOR = 1000  # instanceIds: class_id * 1000 + k (formats.md §4.2)
IGNORE_TRAIN_ID = 255
ANNOTATION_DIRS = ("gtFine", "gtCoarse")
IMAGE_DIR = "leftImg8bit"
_KINDS = ("labelIds", "instanceIds", "labelTrainIds", "color", "instanceTrainIds", "polygons")
_FILE_RE = re.compile(r"^(?P<stem>.+)_(?P<ann>gtFine|gtCoarse)_(?P<kind>[A-Za-z]+)\.png$")


@dataclass(frozen=True, slots=True)
class CityscapesLabel:
    """One row of cityscapesScripts' ``labels`` table."""

    name: str
    id: int
    train_id: int
    category: str
    category_id: int
    has_instances: bool
    ignore_in_eval: bool
    color: tuple[int, int, int]


_L = CityscapesLabel
#: cityscapesScripts ``helpers/labels.py``, in its order (formats.md §4.2).
LABELS: tuple[CityscapesLabel, ...] = (
    _L("unlabeled", 0, 255, "void", 0, False, True, (0, 0, 0)),
    _L("ego vehicle", 1, 255, "void", 0, False, True, (0, 0, 0)),
    _L("rectification border", 2, 255, "void", 0, False, True, (0, 0, 0)),
    _L("out of roi", 3, 255, "void", 0, False, True, (0, 0, 0)),
    _L("static", 4, 255, "void", 0, False, True, (0, 0, 0)),
    _L("dynamic", 5, 255, "void", 0, False, True, (111, 74, 0)),
    _L("ground", 6, 255, "void", 0, False, True, (81, 0, 81)),
    _L("road", 7, 0, "flat", 1, False, False, (128, 64, 128)),
    _L("sidewalk", 8, 1, "flat", 1, False, False, (244, 35, 232)),
    _L("parking", 9, 255, "flat", 1, False, True, (250, 170, 160)),
    _L("rail track", 10, 255, "flat", 1, False, True, (230, 150, 140)),
    _L("building", 11, 2, "construction", 2, False, False, (70, 70, 70)),
    _L("wall", 12, 3, "construction", 2, False, False, (102, 102, 156)),
    _L("fence", 13, 4, "construction", 2, False, False, (190, 153, 153)),
    _L("guard rail", 14, 255, "construction", 2, False, True, (180, 165, 180)),
    _L("bridge", 15, 255, "construction", 2, False, True, (150, 100, 100)),
    _L("tunnel", 16, 255, "construction", 2, False, True, (150, 120, 90)),
    _L("pole", 17, 5, "object", 3, False, False, (153, 153, 153)),
    _L("polegroup", 18, 255, "object", 3, False, True, (153, 153, 153)),
    _L("traffic light", 19, 6, "object", 3, False, False, (250, 170, 30)),
    _L("traffic sign", 20, 7, "object", 3, False, False, (220, 220, 0)),
    _L("vegetation", 21, 8, "nature", 4, False, False, (107, 142, 35)),
    _L("terrain", 22, 9, "nature", 4, False, False, (152, 251, 152)),
    _L("sky", 23, 10, "sky", 5, False, False, (70, 130, 180)),
    _L("person", 24, 11, "human", 6, True, False, (220, 20, 60)),
    _L("rider", 25, 12, "human", 6, True, False, (255, 0, 0)),
    _L("car", 26, 13, "vehicle", 7, True, False, (0, 0, 142)),
    _L("truck", 27, 14, "vehicle", 7, True, False, (0, 0, 70)),
    _L("bus", 28, 15, "vehicle", 7, True, False, (0, 60, 100)),
    _L("caravan", 29, 255, "vehicle", 7, True, True, (0, 0, 90)),
    _L("trailer", 30, 255, "vehicle", 7, True, True, (0, 0, 110)),
    _L("train", 31, 16, "vehicle", 7, True, False, (0, 80, 100)),
    _L("motorcycle", 32, 17, "vehicle", 7, True, False, (0, 0, 230)),
    _L("bicycle", 33, 18, "vehicle", 7, True, False, (119, 11, 32)),
    _L("license plate", -1, -1, "vehicle", 7, False, True, (0, 0, 142)),
)
del _L

_BY_ID = {lab.id: lab for lab in LABELS}
_HAS_INSTANCES = np.zeros(256, bool)
_HAS_INSTANCES[[lab.id for lab in LABELS if lab.has_instances]] = True


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name.strip().lower())


_BY_NORM_NAME = {_norm(lab.name): lab for lab in reversed(LABELS)}


def label_map(ids: IdKind = "label") -> LabelMap:
    """The Cityscapes classes as a LabelMap: label ids 0..33 and -1, or trainIds.

    Roles: ``ignore`` for classes with ``ignoreInEval`` (and the trainId 255);
    ``isthing`` = ``hasInstances``. Each label keeps its row in ``attributes``.

    >>> lm = label_map()
    >>> lm.by_id(7).name, lm.by_id(26).attributes["train_id"], lm.by_id(-1).name
    ('road', 13, 'license plate')
    >>> lm = label_map("train")
    >>> lm.by_id(0).name, lm.by_id(13).name, lm.by_id(255).role, len(lm)
    ('road', 'car', 'ignore', 20)
    """
    if ids == "label":
        return LabelMap(
            tuple(
                Label(
                    lab.id,
                    (lab.name,),
                    lab.color,
                    isthing=lab.has_instances,
                    role="ignore" if lab.ignore_in_eval else "class",
                    attributes=_row(lab),
                )
                for lab in LABELS
            )
        )
    if ids == "train":
        labels: list[Label] = []
        seen: set[int] = set()
        for lab in LABELS:  # trainId2label: the first-defined label wins
            if lab.train_id in seen or lab.train_id in (-1, IGNORE_TRAIN_ID):
                continue
            seen.add(lab.train_id)
            labels.append(
                Label(
                    lab.train_id,
                    (lab.name,),
                    lab.color,
                    isthing=lab.has_instances,
                    attributes=_row(lab),
                )
            )
        labels.append(Label(IGNORE_TRAIN_ID, ("ignore",), (0, 0, 0), isthing=False, role="ignore"))
        return LabelMap(tuple(labels))
    raise ValueError(f"ids must be 'label' or 'train', got {ids!r}")


def _row(lab: CityscapesLabel) -> dict[str, Any]:
    return {
        "label_id": lab.id,
        "train_id": lab.train_id,
        "category": lab.category,
        "category_id": lab.category_id,
        "has_instances": lab.has_instances,
        "ignore_in_eval": lab.ignore_in_eval,
    }


def train_id_lut() -> npt.NDArray[np.uint8]:
    """A 256-entry table label id -> trainId (255 for ignored and unknown ids).

    >>> lut = train_id_lut()
    >>> lut[[7, 24, 26, 29, 0]].tolist()
    [0, 11, 13, 255, 255]
    """
    lut = np.full(256, IGNORE_TRAIN_ID, np.uint8)
    for lab in LABELS:
        if lab.id >= 0 and 0 <= lab.train_id < IGNORE_TRAIN_ID:
            lut[lab.id] = lab.train_id
    return lut


@dataclass(frozen=True, slots=True)
class InstanceCodec:
    """How a 16-bit id PNG packs a class and an object number into one value.

    Cityscapes (``divisor=1000, first=0``): an object is ``class*1000 + k``, ``k`` from 0,
    any value ``< 1000`` is a plain class. KITTI (``divisor=256, first=1``): every value
    is ``class*256 + k``; ``k == 0`` means no object (formats.md §4.2).

    >>> CITYSCAPES_IDS.split([26000, 26001, 7])
    ([26, 26, 7], [0, 1, None])
    >>> KITTI_IDS.split([6913, 768]), KITTI_IDS.object_value(27, 1), KITTI_IDS.plain_value(3)
    (([27, 3], [1, None]), 6913, 768)
    """

    divisor: int
    first: int

    def split(self, values: Sequence[int]) -> tuple[list[int], list[int | None]]:
        """Class and object number (None: not an object) of each value."""
        classes: list[int] = []
        numbers: list[int | None] = []
        for v in values:
            if self.first == 0:  # Cityscapes: objects from the divisor up
                obj = v >= self.divisor
                classes.append(v // self.divisor if obj else v)
            else:
                obj = v % self.divisor >= self.first
                classes.append(v // self.divisor)
            numbers.append(v % self.divisor if obj else None)
        return classes, numbers

    def object_value(self, class_id: int, k: int) -> int:
        """The stored value of object ``k`` of a class."""
        return class_id * self.divisor + k

    def plain_value(self, class_id: int) -> int:
        """The stored value of class pixels that belong to no object."""
        return class_id if self.first == 0 else class_id * self.divisor

    def numbers(self) -> range:
        """The object numbers a class can use."""
        return range(self.first, self.divisor)

    def class_map(self, ids: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
        """The class of every pixel of an id map."""
        v = ids.astype(np.int64)
        if self.first == 0:
            return np.where(v >= self.divisor, v // self.divisor, v)
        return v // self.divisor


CITYSCAPES_IDS = InstanceCodec(INSTANCE_DIVISOR, 0)
KITTI_IDS = InstanceCodec(256, 1)


def label_id_of(label: Label) -> int | None:
    """The Cityscapes label id a class of another LabelMap is written as, by name
    (case, spaces, ``_`` and ``-`` ignored); None when Cityscapes has no such class.

    >>> from masklab.core.labels import voc_color
    >>> label_id_of(Label(3, ("Traffic_Light",), voc_color(3)))
    19
    >>> label_id_of(Label(1, ("cat",), voc_color(1))) is None
    True
    """
    for name in (*label.names, label.name):
        lab = _BY_NORM_NAME.get(_norm(name))
        if lab is not None:
            return lab.id
    return None


# --------------------------------------------------------------------------- detect


def _ann_root(path: Path) -> Path | None:
    for name in ANNOTATION_DIRS:
        if (path / name).is_dir():
            return path / name
    return None


def detect(path: Path) -> Detection:
    """Confidence 3 for ``gtFine/<split>/<city>/*_gtFine_{labelIds,instanceIds,...}.png``."""
    path = Path(path)
    ann = _ann_root(path) if path.is_dir() else None
    if ann is None:
        return Detection.no("no gtFine/ or gtCoarse/ folder")
    for split in _scan_dirs(ann, 8):
        for city in _scan_dirs(split, 8):
            with os.scandir(city) as it:
                for n, entry in enumerate(it):
                    m = _FILE_RE.match(entry.name)
                    if m and m["kind"] in _KINDS[:3]:
                        return Detection(3, f"{entry.name} under {ann.name}/{split.name}/")
                    if n > 50:
                        break
    return Detection(1, f"{ann.name}/ holds no <split>/<city>/*_{ann.name}_labelIds.png")


def _scan_dirs(folder: Path, limit: int) -> list[Path]:
    out: list[Path] = []
    with os.scandir(folder) as it:
        for entry in it:
            if entry.is_dir():
                out.append(Path(entry.path))
                if len(out) >= limit:
                    break
    return sorted(out)


# --------------------------------------------------------------------------- shared


def instances_from_ids(
    ids: npt.NDArray[Any],
    codec: InstanceCodec,
    *,
    class_lut: npt.NDArray[np.uint8] | None = None,
) -> list[Instance]:
    """Objects of an instance-id map: one instance per object value (``Instance.id`` =
    the value), and one crowd instance per plain value of a class that has instances
    (a Cityscapes group); stuff stays out. ``class_lut`` maps classes (trainIds: classes
    it maps to 255 are left out, as ``createTrainIdInstanceImgs.py`` does).

    >>> ids = np.array([[7, 26000, 26001, 26]], np.uint16)
    >>> [(i.class_id, i.id, i.iscrowd) for i in instances_from_ids(ids, CITYSCAPES_IDS)]
    [(26, 26, True), (26, 26000, False), (26, 26001, False)]
    """
    values = np.unique(ids).tolist()
    classes, numbers = codec.split(values)
    segments = []
    for v, c, k in zip(values, classes, numbers, strict=True):
        crowd = k is None
        if crowd and not (0 <= c < 256 and _HAS_INSTANCES[c]):
            continue  # stuff
        cls = c
        if class_lut is not None:
            if not 0 <= c < class_lut.size or class_lut[c] == IGNORE_TRAIN_ID:
                continue
            cls = int(class_lut[c])
        segments.append(Segment(int(v), cls, crowd))
    return panoptic_to_instances(ids, segments)[0]


@dataclass(frozen=True, slots=True)
class Screened:
    """The instances a class-map writer can hold: the instances, their indices in the
    sample, the value each is written as, and the positions (in ``kept``) already reported
    as lossy (crowd or score)."""

    kept: list[Instance]
    where: list[int]
    values: list[int]
    lossy: list[int]


def screen_instances(
    report: ConversionReport,
    sample: Sample,
    value_of: Mapping[int, int | None],
    *,
    class_note: str,
    crowd_note: str,
    score_note: str,
    labels: LabelMap,
) -> Screened:
    """Sort a sample's instances for a class-map writer: a class without a value is a
    ``class`` loss (``class_note`` completes "class N (name) ...") and is left out; crowd
    and score flags are reported with their notes and the instance marked lossy."""
    out = Screened([], [], [], [])
    for i, inst in enumerate(sample.instances):
        value = value_of.get(inst.class_id)
        if value is None:
            name = label_name(labels, inst.class_id)
            report.loss(sample.id, i, "class", f"class {inst.class_id} ({name}) {class_note}")
            continue
        if inst.iscrowd:
            report.loss(sample.id, i, "crowd", crowd_note)
            out.lossy.append(len(out.kept))
        if inst.score is not None:
            report.loss(sample.id, i, "score", score_note)
            out.lossy.append(len(out.kept))
        out.kept.append(inst)
        out.where.append(i)
        out.values.append(value)
    return out


def paint_objects(
    report: ConversionReport,
    sample_id: str,
    instances: Sequence[Instance],
    indices: Sequence[int],
    size: tuple[int, int],
    *,
    lossy: Collection[int] = (),
) -> npt.NDArray[np.int32]:
    """Paint objects in drawing order into an index map (0 = none, ``i + 1`` =
    ``instances[i]``), a later object keeping a contested pixel.

    Each object that lost pixels to a later one is an ``overlap`` loss (reported under
    its index in the sample, ``indices[i]``, with the IoU kept); every other one whose
    position is not in ``lossy`` counts as written exact.

    >>> from masklab.core import rle
    >>> a = Instance(rle.encode(np.array([[1, 1, 0]])), 1)
    >>> b = Instance(rle.encode(np.array([[0, 1, 1]])), 2)
    >>> rep = ConversionReport()
    >>> paint_objects(rep, "s", [a, b], [0, 1], (1, 3)).tolist(), rep.exact
    ([[1, 2, 2]], 1)
    >>> [(loss.instance, loss.what, loss.iou) for loss in rep.losses]
    [(0, 'overlap', 0.5)]
    """
    if not instances:
        return np.zeros(size, np.int32)
    for inst in instances:
        _base.check_size(sample_id, inst.mask, size)
    drawn = instances_to_panoptic(instances, size, ids=range(1, len(instances) + 1)).array
    painted: npt.NDArray[np.int32] = drawn.astype(np.int32, copy=False)
    shown = np.bincount(painted.ravel(), minlength=len(instances) + 1)
    lossy_set = set(lossy)
    for pos, inst in enumerate(instances):
        area = inst.area
        lost = area - int(shown[pos + 1])
        if lost > 0:
            report.loss(
                sample_id,
                indices[pos],
                "overlap",
                f"{lost} of {area} px drawn over by later objects",
                iou=(area - lost) / area,
            )
        elif pos not in lossy_set:
            report.exact += 1
    return painted


def remap_classes(
    report: ConversionReport,
    sample: Sample,
    mapping: Mapping[int, int | None],
    *,
    labels: LabelMap,
    fill: int,
    fill_name: str,
    dtype: type[np.unsignedinteger[Any]] = np.uint8,
) -> npt.NDArray[Any]:
    """The sample's class map with every id mapped to the target's value; an id the
    mapping lacks (or maps to None) is written as ``fill`` and reported as a ``class``
    loss with its pixel count.

    >>> from masklab.formats.report import ConversionReport
    >>> rep = ConversionReport()
    >>> s = Sample("a", (1, 3), semantic=np.array([[1, 2, 2]]))
    >>> lm = LabelMap.from_names(["bg", "cat", "dog"])
    >>> remap_classes(rep, s, {1: 9}, labels=lm, fill=0, fill_name="void").tolist()
    [[9, 0, 0]]
    >>> rep.losses[0].what, rep.losses[0].detail
    ('class', "class 2 ('dog') has no counterpart; 2 px written as void (0)")
    """
    if sample.semantic is None:
        raise ValueError(f"sample {sample.id!r} has no class map to remap")
    src = np.asarray(sample.semantic)
    if src.shape != sample.size:
        raise MaskFormatError(
            f"class map of {sample.id} is {list(src.shape)} but the image is {list(sample.size)}"
        )
    values, inverse, counts = np.unique(src, return_inverse=True, return_counts=True)
    mapped = np.full(values.size, fill, dtype)
    for i, v in enumerate(values.tolist()):
        target = mapping.get(int(v))
        if target is None:
            report.loss(
                sample.id,
                None,
                "class",
                f"class {v} ({label_name(labels, int(v))}) has no counterpart; "
                f"{int(counts[i])} px written as {fill_name} ({fill})",
            )
        else:
            mapped[i] = target
    out: npt.NDArray[Any] = mapped[inverse.reshape(src.shape)]
    return out


def image_ext(sample: Sample, default: str = ".png") -> str:
    """The extension to store the sample's image under (its own, else sniffed)."""
    if sample.image is not None and sample.image.suffix.lower() in _base.IMAGE_EXTENSIONS:
        return sample.image.suffix.lower()
    head = sample.image_bytes[:8] if sample.image_bytes is not None else b""
    if head.startswith(b"\xff\xd8\xff"):
        return ".jpg"
    if head.startswith(b"\x89PNG"):
        return ".png"
    return default


def label_name(labels: LabelMap, class_id: int) -> str:
    """A class's name for messages."""
    return repr(labels.by_id(class_id).name) if class_id in labels else "not in the label map"


# --------------------------------------------------------------------------- read


@dataclass
class _Record:
    id: str
    split: str
    city: str
    files: dict[str, Path] = field(default_factory=dict)


def _find_image(folder: Path, stem: str) -> Path | None:
    for ext in _base.IMAGE_EXTENSIONS:
        p = folder / f"{stem}_{IMAGE_DIR}{ext}"
        if p.is_file():
            return p
    return None


class Reader(_base.RecordReader):
    """Cityscapes reader; ``ids="label"`` (default) or ``"train"`` picks the class ids."""

    spec = SPEC

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        labels: LabelMap | None = None,
        strict: bool = False,
        ids: IdKind = "label",
    ) -> None:
        super().__init__(path, labels=labels, strict=strict)
        if ids not in ("label", "train"):
            raise ValueError(f"ids must be 'label' or 'train', got {ids!r}")
        self.ids: IdKind = ids
        ann = _ann_root(self.path)
        if ann is None:
            raise FormatError(
                f"{self.path}: no gtFine/ or gtCoarse/ folder; point at the Cityscapes root",
                path=str(self.path),
            )
        self._ann = ann
        self._records: list[_Record] | None = None

    @property
    def labels(self) -> LabelMap:
        """The given LabelMap, else Cityscapes' label ids or trainIds (``ids``)."""
        return self._labels if self._labels is not None else label_map(self.ids)

    def _index(self) -> list[_Record]:
        if self._records is None:
            by_key: dict[tuple[str, str, str], _Record] = {}
            for split in sorted(p for p in self._ann.iterdir() if p.is_dir()):
                for city in sorted(p for p in split.iterdir() if p.is_dir()):
                    for f in sorted(city.rglob(f"*_{self._ann.name}_*.png")):
                        m = _FILE_RE.match(f.name)
                        if m is None:
                            continue
                        rel = (f.parent.relative_to(city) / m["stem"]).as_posix()
                        key = (split.name, city.name, rel)
                        rec = by_key.setdefault(key, _Record(rel, split.name, city.name))
                        rec.files[m["kind"]] = f
            self._records = list(by_key.values())
        return self._records

    def _decode_one(self, rec: _Record) -> Sample | None:
        try:
            return self._read(rec)
        except (FormatError, MaskFormatError, LabelMapError, OSError, ValueError) as err:
            self.problem(_main_file(rec), rec.id, err)
            return None

    def _read(self, rec: _Record) -> Sample:
        files = rec.files
        lut = train_id_lut() if self.ids == "train" else None
        inst = read_id_png(files["instanceIds"]) if "instanceIds" in files else None
        if lut is not None and "labelTrainIds" in files:
            source = files["labelTrainIds"]
            sem = read_id_png(source).astype(np.uint8)
        elif "labelIds" in files:
            source = files["labelIds"]
            sem = read_id_png(source).astype(np.uint8)
            sem = lut[sem] if lut is not None else sem
        elif inst is not None:
            source = files["instanceIds"]
            sem = np.clip(CITYSCAPES_IDS.class_map(inst), 0, 255).astype(np.uint8)
            sem = lut[sem] if lut is not None else sem
        else:
            raise FormatError(
                f"only {', '.join(sorted(files))} for {rec.id}; expected _labelIds.png or "
                "_instanceIds.png (the colour PNG is a visualisation)"
            )
        if inst is not None and inst.shape != sem.shape:
            raise FormatError(
                f"{files['instanceIds']}: size {list(inst.shape)} differs from the class "
                f"map's {list(sem.shape)}; regenerate one of them"
            )
        size = (int(sem.shape[0]), int(sem.shape[1]))
        report_unknown_values(self, source, rec.id, sem)
        instances = [] if inst is None else instances_from_ids(inst, CITYSCAPES_IDS, class_lut=lut)
        image = _find_image(self.path / IMAGE_DIR / rec.split / rec.city, rec.id)
        check_image(image, size)
        return Sample(
            id=rec.id,
            size=size,
            image=image,
            instances=tuple(instances),
            semantic=sem,
            subset=rec.split,
            meta={"city": rec.city},
        )


def report_unknown_values(
    reader: _base.Reader, source: Path, record: str, classes: npt.NDArray[Any]
) -> None:
    """Report class-map values that are not ids of the reader's LabelMap (kept as they
    are: nothing is dropped)."""
    known = set(reader.labels.ids)
    unknown = [int(v) for v in np.unique(classes).tolist() if v not in known]
    if unknown:
        reader.problem(
            source,
            record,
            f"pixel values {unknown} are not ids of the label map; they are kept in the "
            "class map (pass labels= to name them)",
        )


def check_image(image: Path | None, size: tuple[int, int]) -> None:
    """FormatError when the image's size differs from its annotation's."""
    if image is not None and (found := _base.image_size(image)) != size:
        raise FormatError(
            f"{image}: image size {list(found)} differs from the annotation's {list(size)}",
            path=str(image),
        )


def _main_file(rec: _Record) -> Path:
    for kind in _KINDS:
        if kind in rec.files:
            return rec.files[kind]
    return Path(rec.id)


def read_id_png(path: Path) -> npt.NDArray[Any]:
    """A single-channel id PNG (8- or 16-bit, or palette indices); FormatError naming the
    file for a colour image or an unreadable one."""
    arr = _base.read_png(path)
    if arr.ndim != 2:
        raise FormatError(
            f"{path}: a {arr.shape[2]}-channel image where a single-channel id map is "
            "expected; write label/instance ids as grayscale PNGs",
            path=str(path),
        )
    return arr


# --------------------------------------------------------------------------- write


@dataclass(frozen=True, slots=True)
class _Part:
    """What :meth:`Writer.encode` made of a sample (see ``_base.Writer.commit``)."""

    pngs: tuple[_base.PngPayload, ...]
    image: Sample  # the sample without its masks: image file or bytes
    image_file: str  # where the image goes, relative to the stage


class Writer(_base.Writer):
    """Cityscapes writer. Options: ``train_ids`` (also write labelTrainIds, default
    False), ``color`` (write the colour PNG, default True), ``annotations`` ("gtFine"
    or "gtCoarse")."""

    spec = SPEC
    parallel = True
    codec = CITYSCAPES_IDS

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
        self._train = bool(options.get("train_ids", False))
        self._color = bool(options.get("color", True))
        self._ann = str(options.get("annotations", "gtFine"))
        if self._ann not in ANNOTATION_DIRS:
            raise ValueError(f"annotations must be one of {ANNOTATION_DIRS}, got {self._ann!r}")
        self._to_cs: dict[int, int | None] = {}
        for lab in labels:
            cs = label_id_of(lab)
            if cs is None and lab.role in ("ignore", "background"):
                cs = 0  # an ignore/background class is Cityscapes' unlabeled
            self._to_cs[lab.id] = cs if cs is None or cs >= 0 else None
        self.colors = np.zeros((256, 3), np.uint8)
        for row in LABELS:
            if row.id >= 0:
                self.colors[row.id] = row.color

    def encode(self, sample: Sample) -> _Part | None:
        """The sample's label-id, instance-id (and colour, trainId) PNGs and where its
        image goes; None when it cannot be written (reported)."""
        try:
            if sample.alpha is not None:
                self.report.loss(sample.id, None, "alpha", f"{self.spec.name} holds no opacity")
            classes = self._semantic(sample)
            ids = self._objects(sample, classes)
            pngs, image_file = self._files(sample, classes, ids)
        except (MaskFormatError, FormatError, LabelMapError, OSError, ValueError) as err:
            self.fail(sample, None, err)
            return None
        return _Part(pngs, replace(sample, instances=(), semantic=None, alpha=None), image_file)

    def commit(self, part: _Part | None, report: ConversionReport) -> None:
        """Write the PNGs and place the image."""
        self.absorb(report)
        if part is None:
            return
        self.write_files(part.image, part.pngs, part.image_file)

    def _files(
        self, sample: Sample, classes: npt.NDArray[np.uint8], ids: npt.NDArray[np.uint16]
    ) -> tuple[tuple[_base.PngPayload, ...], str]:
        """The PNGs of a sample (paths relative to the stage) and its image's path."""
        split = sample.subset or "train"
        city = sample.meta.get("city")
        rel = Path(sample.id)
        if not isinstance(city, str) or not city:
            city = rel.name.split("_", 1)[0] if "_" in rel.name else "default"
        base = Path(self._ann) / split / city / rel
        stem = f"{base.name}_{self._ann}_"
        pngs = [
            self.png_payload(base.with_name(stem + "labelIds.png").as_posix(), classes),
            self.png_payload(base.with_name(stem + "instanceIds.png").as_posix(), ids),
        ]
        if self._color:
            pngs.append(
                self.png_payload(
                    base.with_name(stem + "color.png").as_posix(), self.colors[classes]
                )
            )
        if self._train:
            trains = train_id_lut()[classes]
            pngs.append(
                self.png_payload(base.with_name(stem + "labelTrainIds.png").as_posix(), trains)
            )
        img = Path(IMAGE_DIR) / split / city / rel
        return tuple(pngs), img.with_name(f"{img.name}_{IMAGE_DIR}{image_ext(sample)}").as_posix()

    def _semantic(self, sample: Sample) -> npt.NDArray[np.uint8]:
        """Label-id map of the sample's class map (classes Cityscapes lacks -> 0, reported)."""
        if sample.semantic is None:
            return np.zeros(sample.size, np.uint8)
        return remap_classes(
            self.report, sample, self._to_cs, labels=self.labels, fill=0, fill_name="unlabeled"
        )

    def _objects(self, sample: Sample, classes: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint16]:
        """The instance-id map: plain class values, objects painted over them in drawing
        order (``classes`` is updated where objects lie)."""
        codec = self.codec
        ids = np.zeros(classes.shape, np.uint16)
        values, inverse = np.unique(classes, return_inverse=True)
        plain = np.array([codec.plain_value(int(c)) for c in values.tolist()], np.uint16)
        ids[...] = plain[inverse.reshape(classes.shape)]
        kept: list[Instance] = []
        where: list[int] = []
        out_values: list[int] = []
        out_classes: list[int] = []
        lossy: list[int] = []
        used: dict[int, set[int]] = {}
        pending: list[int] = []
        for i, inst in enumerate(sample.instances):
            cs = self._to_cs.get(inst.class_id)
            if cs is None:
                self.report.loss(
                    sample.id,
                    i,
                    "class",
                    f"class {inst.class_id} ({label_name(self.labels, inst.class_id)}) has no "
                    f"{self.spec.name} namesake; the object is not written",
                )
                continue
            pos = len(kept)
            kept.append(inst)
            where.append(i)
            out_classes.append(cs)
            out_values.append(codec.plain_value(cs))
            if inst.score is not None:
                self.report.loss(sample.id, i, "score", f"{self.spec.name} holds no scores")
                lossy.append(pos)
            if not _BY_ID[cs].has_instances:
                if not inst.iscrowd:
                    self.report.loss(
                        sample.id,
                        i,
                        "instances",
                        f"class {_BY_ID[cs].name!r} has no instances in {self.spec.name}; "
                        "the object is painted as class pixels",
                    )
                    lossy.append(pos)
                continue
            if inst.iscrowd:
                continue  # a group: class pixels on a class with instances
            k = self._kept_number(inst.id, cs, used)
            if k is None:
                pending.append(pos)
            else:
                out_values[pos] = codec.object_value(cs, k)
        for pos in pending:  # numbers counted in drawing order, skipping kept ones
            cs = out_classes[pos]
            taken = used.setdefault(cs, set())
            k = next((k for k in codec.numbers() if k not in taken), None)
            if k is None:
                self.report.loss(
                    sample.id,
                    where[pos],
                    "instances",
                    f"more than {len(codec.numbers())} objects of class {cs}; painted as "
                    "class pixels",
                )
                lossy.append(pos)
                continue
            taken.add(k)
            out_values[pos] = codec.object_value(cs, k)
        painted = paint_objects(self.report, sample.id, kept, where, sample.size, lossy=lossy)
        fg = painted > 0
        if kept and fg.any():
            idx = painted[fg] - 1
            new = np.asarray(out_classes, np.uint8)[idx]
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
            ids[fg] = np.asarray(out_values, np.uint16)[idx]
        return ids

    def _kept_number(self, inst_id: int | None, cs: int, used: dict[int, set[int]]) -> int | None:
        """The source object number when the id already encodes this class (kept so a
        round trip is exact), else None."""
        if inst_id is None or not 0 <= inst_id < 65536:
            return None
        (cls,), (k,) = self.codec.split([inst_id])
        if k is None or cls != cs or k in used.setdefault(cs, set()):
            return None
        used[cs].add(k)
        return k
