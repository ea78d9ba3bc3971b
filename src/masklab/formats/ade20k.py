"""ADE20K: the SceneParsing benchmark (150 classes) and the full release's ``*_seg.png``.

Two variants (``reference/formats.md`` §4.3):

* **SceneParsing / ADEChallengeData2016**::

      <root>/images/<split>/<id>.jpg
      <root>/annotations/<split>/<id>.png     8-bit class map, 0 = "other objects"
      <root>/objectInfo150.txt                "Idx Ratio Train Val Name" (optional)

  Class 0 ("other objects") is ignored in evaluation (role ``ignore``); 1..150 are the
  benchmark's classes, named from ``objectInfo150.txt``/``.csv`` when present, else
  from the built-in :data:`SCENE_PARSING_NAMES` (the first synonym of each row).
* **Full release** (2016/2017 and 2021)::

      <root>/<split>/<folders>/<id>.jpg
      <root>/<split>/<folders>/<id>_seg.png       class = R // 10 * 256 + G, object = B
      <root>/<split>/<folders>/<id>_parts_N.png   part masks (not read; reported once)
      <root>/<split>/<folders>/<id>.json          2021: objects with name, name_ndx
      <root>/<split>/<folders>/<id>_atr.txt       2016/2017: "k # level # occluded #
                                                  wordnet name # raw name # attributes"

  The subset is the first folder named like a split (``training``, ``validation``, ...)
  on the way to the file, else the first folder; the id is the path below it.

  Class ids are the dataset's object indices (``name_ndx``, 0 = unlabeled, role
  ``ignore``). Each distinct non-zero B value is one object (``Instance.id`` = the B
  value; its class is the class under it). Names come from the 2021 json files
  (``name_ndx`` -> first synonym of ``name``, level-0 objects) or, for 2016/2017, from
  ``_atr.txt`` matched to the seg PNG (line ``k`` = the ``k``-th smallest B), which takes
  one pass over the seg PNGs before the first sample; classes without a name are
  ``class_<id>``. A root ``objectInfo*.txt`` (what the writer leaves) names classes too.

The writer writes the SceneParsing layout (option ``variant="sceneparsing"``, default)
or the full one (``variant="full"``) with ``objectInfo150.txt`` / ``objectInfo.txt``
naming the classes. Class ids are written as they are (0 = unlabeled); when the label
map's id 0 is an ordinary class, every id is shifted by one so that nothing is written
as "unlabeled"; background and ignore classes (VOC's 255) are written as 0. Ids that
do not fit (> 255 in SceneParsing's 8 bits, > 6655 in ``R // 10 * 256 + G``) are
``class`` losses. R is written as ``class // 256 * 10`` (a source R's units digit, which
the formula ignores, is not kept). SceneParsing holds class maps only; the full variant
keeps objects in B (source B values kept when they fit, else counted from 1; more than
255 objects are an ``instances`` loss). Overlaps, crowd flags and scores are reported as
losses.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any, Literal

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
    paint_objects,
    read_id_png,
    remap_classes,
    report_unknown_values,
    screen_instances,
)
from masklab.formats.report import ConversionReport

__all__ = [
    "SCENE_PARSING_NAMES",
    "SPEC",
    "Reader",
    "Writer",
    "decode_seg",
    "detect",
    "encode_seg",
    "parse_object_info",
]

SPEC = FormatSpec(
    name="ade20k",
    description="ADE20K: SceneParsing class maps, or full-release *_seg.png (class in R,G; "
    "object in B)",
    kind="panoptic",
    holds=Capabilities(
        holes=True, parts=True, overlap=False, crowd=False, scores=False, semantic=True
    ),
    extensions=(".png", ".json", ".txt"),
)

Variant = Literal["sceneparsing", "full"]

#: The 150 SceneParsing classes, ids 1..150 (first synonym of ``objectInfo150.txt``).
SCENE_PARSING_NAMES: tuple[str, ...] = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane",
    "grass", "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant",
    "curtain", "chair", "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror",
    "rug", "field", "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub",
    "railing", "cushion", "base", "box", "column", "signboard", "chest of drawers", "counter",
    "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand", "path", "stairs",
    "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge",
    "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench",
    "countertop", "stove", "palm", "kitchen island", "computer", "swivel chair", "boat", "bar",
    "arcade machine", "hovel", "bus", "towel", "light", "truck", "tower", "chandelier",
    "awning", "streetlight", "booth", "television receiver", "airplane", "dirt track",
    "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet",
    "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer",
    "plaything", "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag",
    "minibike", "cradle", "oven", "ball", "food", "step", "tank", "trade name", "microwave",
    "pot", "animal", "bicycle", "lake", "dishwasher", "screen", "blanket", "sculpture", "hood",
    "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen", "plate",
    "monitor", "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)  # fmt: skip

OTHER_NAME = "other objects"  # SceneParsing's 0
UNLABELED_NAME = "unlabeled"  # the full release's 0
IMAGES_DIR = "images"
ANNOTATIONS_DIR = "annotations"
SEG_SUFFIX = "_seg.png"
MAX_FULL_CLASS = 25 * 256 + 255  # R = class // 256 * 10 must stay <= 255
_PARTS_RE = re.compile(r"^(?P<stem>.+)_parts_(?P<level>\d+)\.png$")
_SPLITS = ("training", "validation", "train", "val", "test", "testing")


def first_synonym(name: str) -> str:
    """The first of ADE's comma/semicolon-separated synonyms.

    >>> first_synonym("person, individual, someone"), first_synonym("building;edifice")
    ('person', 'building')
    """
    return re.split(r"[,;]", name, maxsplit=1)[0].strip()


def decode_seg(rgb: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.uint16], npt.NDArray[np.uint8]]:
    """Class map ``R // 10 * 256 + G`` and object map ``B`` of a full-release seg PNG.

    >>> cls, obj = decode_seg(np.array([[[15, 145, 2], [71, 39, 1]]], np.uint8))
    >>> cls.tolist(), obj.tolist()
    ([[401, 1831]], [[2, 1]])
    """
    r = rgb[..., 0].astype(np.uint16)
    classes = (r // 10) * 256 + rgb[..., 1].astype(np.uint16)
    return classes, np.ascontiguousarray(rgb[..., 2])


def encode_seg(classes: npt.ArrayLike, objects: npt.ArrayLike) -> npt.NDArray[np.uint8]:
    """The seg PNG pixels of a class map (0..6655) and an object map (0..255).

    >>> encode_seg(np.array([[401, 1831]]), np.array([[2, 1]])).tolist()
    [[[10, 145, 2], [70, 39, 1]]]
    """
    c = np.asarray(classes, np.int64)
    if c.size and (c.min() < 0 or c.max() > MAX_FULL_CLASS):
        raise MaskFormatError(f"ADE20K seg classes must be 0..{MAX_FULL_CLASS}")
    out = np.empty((*c.shape, 3), np.uint8)
    out[..., 0] = (c // 256) * 10
    out[..., 1] = c % 256
    out[..., 2] = np.asarray(objects, np.uint8)
    return out


def parse_object_info(text: str) -> dict[int, tuple[str, bool | None]]:
    """Class id -> (name, is a thing or None) of ``objectInfo150.txt`` (tab-separated
    "Idx Ratio Train Val Name") or ``objectInfo150.csv`` ("Idx,Ratio,Train,Val,Stuff,Name").

    >>> parse_object_info("Idx\\tRatio\\tTrain\\tVal\\tName\\n2\\t.1\\t6\\t6\\tbuilding, edifice")
    {2: ('building', None)}
    >>> parse_object_info("Idx,Ratio,Train,Val,Stuff,Name\\n13,0.01,5,5,0,person;individual\\n")
    {13: ('person', True)}
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return {}
    out: dict[int, tuple[str, bool | None]] = {}
    if "\t" not in lines[0] and "," in lines[0]:
        for n, row in enumerate(csv.DictReader(io.StringIO("\n".join(lines))), start=2):
            try:
                stuff = row.get("Stuff")
                out[int(row["Idx"])] = (
                    first_synonym(row["Name"]),
                    None if stuff in (None, "") else stuff.strip() == "0",
                )
            except (KeyError, ValueError, TypeError) as err:
                raise FormatError(
                    f"line {n}: expected Idx and Name columns ({err})", record=n
                ) from err
        return out
    for n, line in enumerate(lines, start=1):
        cols = line.split("\t")
        if n == 1 and not cols[0].strip().isdigit():
            continue  # header
        try:
            out[int(cols[0])] = (first_synonym(cols[-1]), None)
        except ValueError as err:
            raise FormatError(f"line {n}: expected 'Idx ... Name', got {line!r}", record=n) from err
    return out


# --------------------------------------------------------------------------- layout


def _is_scene_parsing(path: Path) -> bool:
    return (path / ANNOTATIONS_DIR).is_dir()


def detect(path: Path) -> Detection:
    """Confidence 3 for ``annotations/<split>/*.png`` beside ``images/`` or
    ``objectInfo150``, or for ``*_seg.png`` with ``_atr.txt``/json beside them."""
    path = Path(path)
    if not path.is_dir():
        return Detection.no("not a folder")
    if _is_scene_parsing(path):
        info = any(path.glob("objectInfo*"))
        for split in sorted((path / ANNOTATIONS_DIR).iterdir())[:4]:
            if split.is_dir() and next(split.glob("*.png"), None) is not None:
                sure = 3 if info or (path / IMAGES_DIR / split.name).is_dir() else 2
                return Detection(sure, f"annotations/{split.name}/*.png")
        return Detection(1, "annotations/ without <split>/*.png")
    seg = _first_seg(path)
    if seg is not None:
        stem = seg.name[: -len(SEG_SUFFIX)]
        meta = (seg.with_name(stem + "_atr.txt")).is_file() or (
            seg.with_name(stem + ".json")
        ).is_file()
        return Detection(3 if meta else 2, f"{seg.relative_to(path)}")
    return Detection.no("no annotations/<split>/ folder and no *_seg.png")


def _first_seg(path: Path, depth: int = 4) -> Path | None:
    """A ``*_seg.png`` within ``depth`` folder levels (a bounded walk)."""
    frontier = [path]
    for _ in range(depth + 1):
        nxt: list[Path] = []
        for folder in frontier:
            try:
                with os.scandir(folder) as it:
                    for n, entry in enumerate(it):
                        if entry.name.endswith(SEG_SUFFIX) and entry.is_file():
                            return Path(entry.path)
                        if entry.is_dir() and len(nxt) < 64:
                            nxt.append(Path(entry.path))
                        if n > 2000:
                            break
            except OSError:
                continue
        frontier = nxt
    return None


@dataclass
class _Record:
    id: str
    subset: str | None
    seg: Path  # the class map (annotations/*.png or *_seg.png)
    image: Path | None = None
    meta: Path | None = None  # json (2021) or _atr.txt (2016/2017)
    parts: list[Path] = field(default_factory=list)


def _split_of(rel: Path) -> tuple[str | None, str]:
    """Subset and id of a path below the root: the first folder named like a split
    (``training``, ``validation``, ...), else the first folder."""
    parts = rel.parts
    for i, p in enumerate(parts[:-1]):
        if p in _SPLITS:
            return p, Path(*parts[i + 1 :]).as_posix()
    if len(parts) > 1:
        return parts[0], Path(*parts[1:]).as_posix()
    return None, rel.as_posix()


def _index_full(root: Path) -> list[_Record]:
    records: dict[Path, _Record] = {}
    parts: dict[Path, list[Path]] = {}
    for p in sorted(root.rglob("*.png")):
        if p.name.endswith(SEG_SUFFIX):
            base = p.with_name(p.name[: -len(SEG_SUFFIX)])
            subset, rid = _split_of(base.relative_to(root))
            records[base] = _Record(rid, subset, p)
        elif (m := _PARTS_RE.match(p.name)) is not None:
            parts.setdefault(p.with_name(m["stem"]), []).append(p)
    for base, rec in records.items():
        rec.parts = parts.get(base, [])
        for ext in _base.IMAGE_EXTENSIONS:
            if base.with_name(base.name + ext).is_file():
                rec.image = base.with_name(base.name + ext)
                break
        for meta in (base.with_name(base.name + ".json"), base.with_name(base.name + "_atr.txt")):
            if meta.is_file():
                rec.meta = meta
                break
    return list(records.values())


def _index_scene_parsing(root: Path) -> list[_Record]:
    records = []
    for split in sorted(p for p in (root / ANNOTATIONS_DIR).iterdir() if p.is_dir()):
        images = root / IMAGES_DIR / split.name
        for p in sorted(split.rglob("*.png")):
            rid = p.relative_to(split).with_suffix("").as_posix()
            image = next(
                (
                    images / f"{rid}{ext}"
                    for ext in _base.IMAGE_EXTENSIONS
                    if (images / f"{rid}{ext}").is_file()
                ),
                None,
            )
            records.append(_Record(rid, split.name, p, image))
    return records


def _read_json(path: Path) -> Any:
    raw = path.read_bytes()
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:  # some 2021 files are Latin-1
        return json.loads(raw.decode("latin-1"))


def _json_objects(doc: Any, path: Path) -> list[dict[str, Any]]:
    objects = doc.get("annotation", {}).get("object", []) if isinstance(doc, dict) else None
    if not isinstance(objects, list):
        raise FormatError(f"{path}: expected annotation.object to be a list", path=str(path))
    return [o for o in objects if isinstance(o, dict)]


def _part_level(obj: dict[str, Any]) -> int:
    parts = obj.get("parts")
    level = parts.get("part_level", 0) if isinstance(parts, dict) else 0
    return int(level) if isinstance(level, (int, float, str)) and str(level).isdigit() else 0


def _atr_names(path: Path) -> dict[int, str]:
    """Object number -> first synonym of its wordnet name, level-0 lines of ``_atr.txt``."""
    out: dict[int, str] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        cols = [c.strip() for c in line.split("#")]
        if len(cols) < 5 or not cols[0].isdigit() or not cols[1].isdigit():
            raise FormatError(
                f"{path}: line {n}: expected 'k # level # occluded # wordnet # raw # attrs'",
                path=str(path),
                record=n,
            )
        if int(cols[1]) == 0:
            out[int(cols[0])] = first_synonym(cols[3]) or cols[4]
    return out


# --------------------------------------------------------------------------- read


class Reader(_base.RecordReader):
    """ADE20K reader; ``variant`` = "sceneparsing" | "full" | None (detected)."""

    spec = SPEC

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        labels: LabelMap | None = None,
        strict: bool = False,
        variant: Variant | None = None,
    ) -> None:
        super().__init__(path, labels=labels, strict=strict)
        if variant not in (None, "sceneparsing", "full"):
            raise ValueError(f"variant must be 'sceneparsing' or 'full', got {variant!r}")
        if not self.path.is_dir():
            raise FormatError(f"{self.path}: not a folder", path=str(self.path))
        self.variant: Variant = variant or (
            "sceneparsing" if _is_scene_parsing(self.path) else "full"
        )
        self._records: list[_Record] | None = None
        self._label_map: LabelMap | None = None

    def _index(self) -> list[_Record]:
        if self._records is None:
            self._records = (
                _index_scene_parsing(self.path)
                if self.variant == "sceneparsing"
                else _index_full(self.path)
            )
        return self._records

    @property
    def labels(self) -> LabelMap:
        """The given LabelMap, else the dataset's names (see the module docstring)."""
        if self._labels is not None:
            return self._labels
        if self._label_map is None:
            self._label_map = self._load_labels()
        return self._label_map

    def _object_info(self) -> dict[int, tuple[str, bool | None]]:
        for file in sorted(self.path.glob("objectInfo*")):
            if file.suffix not in (".txt", ".csv"):
                continue
            try:
                return parse_object_info(file.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, FormatError) as err:
                self.problem(file, getattr(err, "record", None), err)
        return {}

    def _load_labels(self) -> LabelMap:
        info = self._object_info()
        names: dict[int, tuple[str, bool | None]]
        if self.variant == "sceneparsing":
            builtin: dict[int, tuple[str, bool | None]] = {
                i: (n, None) for i, n in enumerate(SCENE_PARSING_NAMES, start=1)
            }
            names = info or builtin
            zero = Label(0, (OTHER_NAME,), (0, 0, 0), isthing=False, role="ignore")
        else:
            names = dict(info)
            for cls, name in self._full_names().items():
                names.setdefault(cls, (name, None))
            zero = Label(0, (UNLABELED_NAME,), (0, 0, 0), isthing=False, role="ignore")
        labels = [zero]
        for cls in sorted(names):
            if cls == 0:
                continue
            name, thing = names[cls]
            labels.append(Label(cls, (name,), voc_color(cls), isthing=thing is not False))
        return LabelMap(tuple(labels))

    def _full_names(self) -> dict[int, str]:
        """Class -> name from the 2021 json files, or from ``_atr.txt`` matched to the
        seg PNG's objects; classes seen without a name get ``class_<id>``."""
        names: dict[int, str] = {}
        unnamed: set[int] = set()
        for rec in self._index():
            try:
                if rec.meta is not None and rec.meta.suffix == ".json":
                    for obj in _json_objects(_read_json(rec.meta), rec.meta):
                        ndx = obj.get("name_ndx")
                        if _part_level(obj) == 0 and isinstance(ndx, int) and ndx > 0:
                            names.setdefault(ndx, first_synonym(str(obj.get("name", ""))))
                    continue
                classes, objects = decode_seg(self._seg_pixels(rec))
                atr = _atr_names(rec.meta) if rec.meta is not None else {}
                by_object = _object_classes(classes, objects)[0]
                for rank, b in enumerate(sorted(by_object), start=1):
                    cls = by_object[b]  # atr line k names the k-th smallest non-zero B
                    if rank in atr and cls > 0:
                        names.setdefault(cls, atr[rank])
                unnamed.update(np.unique(classes).tolist())
            except (FormatError, OSError, ValueError, json.JSONDecodeError):
                continue  # reported when the sample is read
        for cls in unnamed:
            if cls > 0:
                names.setdefault(cls, f"class_{cls}")
        return names

    def _seg_pixels(self, rec: _Record) -> npt.NDArray[np.uint8]:
        rgb = _base.read_png(rec.seg)
        if rgb.ndim != 3 or rgb.shape[2] < 3:
            raise FormatError(
                f"{rec.seg}: an ADE20K seg PNG is RGB (class in R,G; object in B)",
                path=str(rec.seg),
            )
        out: npt.NDArray[np.uint8] = rgb[..., :3]
        return out

    def plan(self) -> Iterator[_Record]:
        """One record per sample, in order (its files; nothing decoded), after the label
        pass and the note on part masks."""
        self.labels  # noqa: B018  (the label pass runs before the first sample)
        records = self._index()
        with_parts = [r for r in records if r.parts]
        if with_parts:
            n = sum(len(r.parts) for r in with_parts)
            self.report.problem(
                self.path,
                None,
                f"{n} part masks (*_parts_N.png) of {len(with_parts)} images are not read: "
                "masklab reads whole objects (part level 0) only",
            )
        return iter(records)

    def for_worker(self) -> Reader:
        """A copy that decodes in another process: the label map resolved, no file index,
        an empty report."""
        return self.worker_copy(_records=None, _label_map=self.labels)

    def _decode_one(self, rec: _Record) -> Sample | None:
        try:
            return self._read(rec)
        except (FormatError, MaskFormatError, LabelMapError, OSError, ValueError) as err:
            self.problem(rec.seg, rec.id, err)
            return None

    def _read(self, rec: _Record) -> Sample:
        instances: list[Instance] = []
        if self.variant == "sceneparsing":
            sem: npt.NDArray[Any] = read_id_png(rec.seg).astype(np.uint8)
        else:
            sem, objects = decode_seg(self._seg_pixels(rec))
            by_object, mixed = _object_classes(sem, objects)
            for b, n_px in mixed.items():
                self.problem(
                    rec.seg,
                    rec.id,
                    f"object B={b} covers {n_px} px of other classes than its main one "
                    f"({by_object[b]})",
                )
            segments = []
            for b, cls in by_object.items():
                if cls == 0:
                    self.problem(
                        rec.seg, rec.id, f"object B={b} lies on unlabeled pixels (class 0); skipped"
                    )
                    continue
                segments.append(Segment(b, cls))
            instances = panoptic_to_instances(objects, segments)[0]
        size = (int(sem.shape[0]), int(sem.shape[1]))
        report_unknown_values(self, rec.seg, rec.id, sem)
        check_image(rec.image, size)
        meta = {"part_masks": len(rec.parts)} if rec.parts else {}
        return Sample(
            id=rec.id,
            size=size,
            image=rec.image,
            instances=tuple(instances),
            semantic=sem,
            subset=rec.subset,
            meta=meta,
        )


def _object_classes(
    classes: npt.NDArray[Any], objects: npt.NDArray[Any]
) -> tuple[dict[int, int], dict[int, int]]:
    """Per non-zero B value: its main class, and the pixels it has of other classes."""
    on = objects > 0
    if not on.any():
        return {}, {}
    key = objects[on].astype(np.int64) * 65536 + classes[on].astype(np.int64)
    pairs, counts = np.unique(key, return_counts=True)
    main: dict[int, tuple[int, int]] = {}
    total: Counter[int] = Counter()
    for k, n in zip(pairs.tolist(), counts.tolist(), strict=True):
        b, cls = k >> 16, k & 0xFFFF
        total[b] += n
        if b not in main or n > main[b][1]:
            main[b] = (cls, n)
    by_object = {b: c for b, (c, _) in main.items()}
    mixed = {b: total[b] - n for b, (_, n) in main.items() if total[b] > n}
    return by_object, mixed


# --------------------------------------------------------------------------- write


@dataclass(frozen=True, slots=True)
class _Part:
    """What :meth:`Writer.encode` made of a sample (see ``_base.Writer.commit``)."""

    files: tuple[_base.PngPayload, ...]  # the class/seg PNG (and the json: its bytes)
    image: Sample  # the sample without its masks: image file or bytes
    image_file: str  # where the image goes, relative to the stage
    split: str
    pixels: tuple[tuple[int, int], ...]  # (class value, pixels) in the written map
    total: int  # the map's pixels


class Writer(_base.Writer):
    """ADE20K writer. Option ``variant``: "sceneparsing" (default) or "full"."""

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
        self.variant = str(options.get("variant", "sceneparsing"))
        if self.variant not in ("sceneparsing", "full"):
            raise ValueError(f"variant must be 'sceneparsing' or 'full', got {self.variant!r}")
        limit = 255 if self.variant == "sceneparsing" else MAX_FULL_CLASS
        zero = labels.by_id(0) if 0 in labels else None
        shift = 1 if zero is not None and zero.role == "class" else 0
        self._value: dict[int, int | None] = {}
        for lab in labels:  # background and ignore classes are ADE's 0 (ignored)
            value = 0 if lab.role != "class" or (lab.id == 0 and shift == 0) else lab.id + shift
            self._value[lab.id] = value if 0 <= value <= limit else None
        self._names = {
            v: lab.name for lab in labels if (v := self._value[lab.id]) is not None and v > 0
        }
        self._pixels: Counter[int] = Counter()
        self._images: dict[str, Counter[int]] = {}
        self._total_px = 0

    def encode(self, sample: Sample) -> _Part | None:
        """The sample's class (and object) PNG, its json (full variant), its class pixel
        counts and where its image goes; None when it cannot be written (reported)."""
        try:
            return self._encode(sample)
        except (MaskFormatError, FormatError, LabelMapError, OSError, ValueError) as err:
            self.fail(sample, None, err)
            return None

    def _encode(self, sample: Sample) -> _Part:
        if sample.alpha is not None:
            self.report.loss(sample.id, None, "alpha", "ADE20K holds no opacity masks")
        full = self.variant == "full"
        dtype = np.uint16 if full else np.uint8
        if sample.semantic is not None:
            classes = remap_classes(
                self.report,
                sample,
                self._value,
                labels=self.labels,
                fill=0,
                fill_name=UNLABELED_NAME,
                dtype=dtype,
            )
        else:
            classes = np.zeros(sample.size, dtype)
        objects = np.zeros(sample.size, np.uint8)
        screened = screen_instances(
            self.report,
            sample,
            self._value,
            class_note="does not fit ADE20K's class field; the object is not written",
            crowd_note="ADE20K has no crowd flag",
            score_note="ADE20K holds no scores",
            labels=self.labels,
        )
        kept, where, values, lossy = (
            screened.kept,
            screened.where,
            screened.values,
            screened.lossy,
        )
        numbers: list[int] = []
        if full:
            numbers = self._numbers(sample, kept, where, lossy)
        painted = paint_objects(self.report, sample.id, kept, where, sample.size, lossy=lossy)
        fg = painted > 0
        if kept and fg.any():
            idx = painted[fg] - 1
            classes[fg] = np.asarray(values, dtype)[idx]
            if full:
                objects[fg] = np.asarray(numbers, np.uint8)[idx]
        split = sample.subset or "training"
        found, counts = np.unique(classes, return_counts=True)
        pixels = tuple(zip(found.tolist(), counts.tolist(), strict=True))
        ext = image_ext(sample, ".jpg")
        image = replace(sample, instances=(), semantic=None, alpha=None)
        if full:
            base = PurePosixPath(split, sample.id)
            seg = self.png_payload(
                base.with_name(base.name + SEG_SUFFIX).as_posix(), encode_seg(classes, objects)
            )
            doc = _json_doc(sample, base.name + ext, split, kept, values, numbers, self._names)
            text = json.dumps(doc, indent=1).encode("utf-8")
            files: tuple[_base.PngPayload, ...] = (
                seg,
                (base.with_name(base.name + ".json").as_posix(), text, None),
            )
            image_file = base.with_name(base.name + ext).as_posix()
        else:
            files = (self.png_payload(f"{ANNOTATIONS_DIR}/{split}/{sample.id}.png", classes),)
            image_file = f"{IMAGES_DIR}/{split}/{sample.id}{ext}"
        return _Part(files, image, image_file, split, pixels, int(classes.size))

    def commit(self, part: _Part | None, report: ConversionReport) -> None:
        """Count the sample's class pixels, write its files and place its image."""
        self.absorb(report)
        if part is None:
            return
        self._count(part.split, part.pixels, part.total)
        try:
            if self.variant == "full":  # the seg PNG, the image, then the json
                self.write_payload(part.files[0])
                self.place_image(part.image, self.stage / part.image_file)
                self.write_payload(part.files[1])
            else:
                self.write_payload(part.files[0])
                self.place_image(part.image, self.stage / part.image_file)
        except (MaskFormatError, FormatError, OSError, ValueError) as err:
            self.fail(part.image, None, err)

    def _numbers(
        self, sample: Sample, kept: list[Instance], where: list[int], lossy: list[int]
    ) -> list[int]:
        """B value per object: the source id when it is 1..255 and unused, else the next
        free one; 0 (no object) once 255 are taken."""
        taken: set[int] = set()
        out = [0] * len(kept)
        pending = []
        for pos, inst in enumerate(kept):
            if inst.id is not None and 1 <= inst.id <= 255 and inst.id not in taken:
                taken.add(inst.id)
                out[pos] = inst.id
            else:
                pending.append(pos)
        free = (b for b in range(1, 256) if b not in taken)
        for pos in pending:
            b = next(free, None)
            if b is None:
                self.report.loss(
                    sample.id, where[pos], "instances", "more than 255 objects in one image"
                )
                lossy.append(pos)
                continue
            out[pos] = b
        return out

    def _count(self, split: str, pixels: tuple[tuple[int, int], ...], total: int) -> None:
        self._total_px += total
        per_split = self._images.setdefault(split, Counter())
        for v, n in pixels:
            self._pixels[v] += n
            per_split[v] += 1

    def finish(self) -> None:
        name = "objectInfo150.txt" if self.variant == "sceneparsing" else "objectInfo.txt"
        train = self._images.get("training", Counter())
        val = self._images.get("validation", Counter())
        rows = ["Idx\tRatio\tTrain\tVal\tName"]
        for v in sorted(self._names):
            ratio = self._pixels[v] / self._total_px if self._total_px else 0.0
            rows.append(f"{v}\t{ratio:.4f}\t{train[v]}\t{val[v]}\t{self._names[v]}")
        (self.stage / name).write_text("\n".join(rows) + "\n", encoding="utf-8")


def _json_doc(
    sample: Sample,
    filename: str,
    split: str,
    kept: list[Instance],
    values: list[int],
    numbers: list[int],
    names: dict[int, str],
) -> dict[str, Any]:
    """A 2021-style per-image json: one level-0 object per written object."""
    objects = [
        {
            "id": i,
            "name": names.get(v, f"class_{v}"),
            "name_ndx": v,
            "raw_name": names.get(v, f"class_{v}"),
            "parts": {"hasparts": [], "ispartof": [], "part_level": 0},
            "polygon": {"x": [], "y": []},
            "attributes": [],
            "crop": 0,
            "seg_b": b,
        }
        for i, (v, b) in enumerate(zip(values, numbers, strict=True))
        if b > 0
    ]
    folder = Path(split, sample.id).parent.as_posix()
    return {
        "annotation": {
            "filename": filename,
            "folder": folder,
            "imsize": [sample.h, sample.w, 3],
            "object": objects,
        }
    }
