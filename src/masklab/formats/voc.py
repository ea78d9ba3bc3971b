"""Pascal VOC segmentation: ``SegmentationClass`` and ``SegmentationObject`` PNGs.

Layout (``reference/formats.md`` §4.1)::

    <root>/                                 (or VOCdevkit/ holding one VOC20xx/ root)
      JPEGImages/<id>.jpg
      SegmentationClass/<id>.png            8-bit palette PNG: pixel index = class id
      SegmentationObject/<id>.png           8-bit palette PNG: pixel index = object k
      ImageSets/Segmentation/<subset>.txt   one id a line
      labelmap.txt                          optional (CVAT/Datumaro): name:r,g,b:parts:actions

Conventions:

* The pixel *index* is the label; the palette is for display only (§4.6). Class PNGs are
  read as raw indices (PIL mode ``P`` or ``L``): 0 background, 1..20 the VOC classes
  (:data:`VOC_CLASSES`), 255 void (role ``ignore``).
* RGB class PNGs (CVAT and Datumaro write them) are mapped back through the label map's
  colours (labelmap.txt, else the VOC colour map); a colour not in it is counted in
  ``report.unknown_colors`` with its pixels, which become void (255).
* ``SegmentationObject``: object ``k`` (1-based) is the pixels of index ``k``; 0 is
  background and 255 void. RGB object PNGs map through the VOC colour map (object ``k``
  has colour ``voc_color(k)``). An object's class is the majority class under it
  (void pixels do not vote); an object over several classes is reported naming the file
  and object. Datumaro lets the largest class id win instead; the majority is kept here
  because it is what a boundary error in an annotation tool leaves behind.
* labelmap.txt: a line's class id is its position (background first), except the void
  line (named ``ignored``/``void`` or coloured (224, 224, 192)), which is 255. Lines
  named ``_unused_<n>`` hold the place of ids a label map skips and are not labels.
* Subsets: each ``ImageSets/Segmentation/<name>.txt`` is a subset. An id listed in
  several (VOC2012 lists every id in ``train`` or ``val`` and again in ``trainval``) is
  read once, with its first subset (train, val, test first, then by name) as
  ``Sample.subset`` and all of them in ``Sample.meta["subsets"]``. Without ImageSets the
  ids are the names in ``SegmentationClass/``.

The writer writes class ids as palette indices (ids 0..254, and 255 as void); a class id
it cannot write (negative, above 255, or a label at 255 that is not void) becomes void
and is reported as a ``class`` loss. It writes ``SegmentationObject`` when a sample has
instances: object ``k`` is instance ``k`` (1..254) in the sample's order, later ones
painted over earlier ones (each pixel lost is an ``overlap`` loss on the instance that
lost it), instances past 254 are a ``class`` loss (the PNG has no index for them).
Crowd flags and scores are not held (``crowd`` and ``score`` losses).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from masklab.core import rle
from masklab.core.instances import Instance, instances_to_panoptic, smallest_dtype
from masklab.core.labels import Label, LabelMap, Role, voc_color, voc_colormap
from masklab.errors import FormatError, LabelMapError, MaskFormatError
from masklab.formats import _base
from masklab.formats._base import Capabilities, Detection, FormatSpec, Sample
from masklab.formats.report import ConversionReport

__all__ = [
    "SPEC",
    "VOC_CLASSES",
    "Reader",
    "Writer",
    "default_labels",
    "detect",
    "format_labelmap",
    "parse_labelmap",
    "read_class_map",
    "read_object_map",
]

SPEC = FormatSpec(
    name="voc",
    description="Pascal VOC SegmentationClass/SegmentationObject palette PNGs",
    kind="semantic",
    holds=Capabilities(
        holes=True, parts=True, overlap=False, crowd=False, scores=False, semantic=True
    ),
    extensions=(".png", ".txt"),
)

# reference/formats.md §4.1
VOC_CLASSES = (
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)
VOID = 255
VOID_COLOR = (224, 224, 192)  # voc_color(255)
VOID_NAMES = ("ignored", "ignore", "void")
BACKGROUND_NAMES = ("background", "_background_")
MAX_OBJECTS = 254  # object indices 1..254; 0 background, 255 void

CLASS_DIR = "SegmentationClass"
OBJECT_DIR = "SegmentationObject"
IMAGE_DIR = "JPEGImages"
SETS_DIR = ("ImageSets", "Segmentation")
LABELMAP_FILE = "labelmap.txt"
LABELMAP_HEADER = "# label:color_rgb:parts:actions"
DEFAULT_SUBSET = "default"
_SUBSET_ORDER = ("train", "val", "test")
_UNUSED = re.compile(r"_unused_\d+")
_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


# --------------------------------------------------------------------------- label maps


def default_labels() -> LabelMap:
    """The VOC label map: background 0, the 20 classes 1..20, void 255 (role ignore).

    >>> lm = default_labels()
    >>> lm.by_id(15).name, lm.by_id(15).color, lm.by_id(255).role
    ('person', (192, 128, 128), 'ignore')
    """
    return LabelMap.from_names(VOC_CLASSES, background=0, ignore={VOID: "void"})


def parse_labelmap(text: str, *, where: str = LABELMAP_FILE) -> LabelMap:
    """A LabelMap from a CVAT/Datumaro ``labelmap.txt`` (``name:r,g,b:parts:actions``).

    Ids are line positions (``#`` comments and blank lines skipped); the void line is 255.

    >>> lm = parse_labelmap("background:0,0,0::\\ncat:64,0,0:head,tail:\\nignored:224,224,192::")
    >>> [(lab.id, lab.name, lab.role) for lab in lm]
    [(0, 'background', 'background'), (1, 'cat', 'class'), (255, 'ignored', 'ignore')]
    >>> lm.by_id(1).attributes["parts"]
    ('head', 'tail')
    """
    labels: list[Label] = []
    position = 0
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(":")
        if len(fields) != 4:
            raise FormatError(
                f"{where}: line {lineno}: expected 'name:r,g,b:parts:actions' (4 fields), "
                f"got {line!r}; fix the line",
                path=where,
                record=lineno,
            )
        name, color_text, parts, actions = fields
        label_id = position
        position += 1
        if _UNUSED.fullmatch(name):
            continue
        color = _parse_color(color_text, where, lineno) if color_text.strip() else None
        is_void = name.lower() in VOID_NAMES or color == VOID_COLOR
        if is_void:
            label_id = VOID
            position -= 1
        role: Role = "ignore" if is_void else "background" if name in BACKGROUND_NAMES else "class"
        labels.append(
            Label(
                label_id,
                (name,),
                color if color is not None else voc_color(label_id),
                isthing=role == "class",
                role=role,
                attributes={"parts": _split_list(parts), "actions": _split_list(actions)},
            )
        )
    try:
        return LabelMap(tuple(labels))
    except LabelMapError as err:
        raise FormatError(f"{where}: {err}; keep one void line", path=where) from err


def format_labelmap(labels: LabelMap) -> tuple[str, list[str]]:
    """The ``labelmap.txt`` text of a label map, and what it cannot hold.

    One line per id 0..max (gaps as ``_unused_<n>`` lines, id 0 as ``background`` when the
    map has none), then the void line for id 255. Labels with ids it cannot hold are
    left out and named in the second value.

    >>> text, lost = format_labelmap(LabelMap.from_names(["background", "cat"], background=0))
    >>> text.splitlines()[1:]
    ['background:0,0,0::', 'cat:128,0,0::']
    """
    lost: list[str] = []
    by_id = {lab.id: lab for lab in labels}
    top = max((i for i in by_id if 0 <= i < VOID), default=0)
    lines = [LABELMAP_HEADER]
    for i in range(top + 1):
        lab = by_id.get(i)
        if lab is None:
            name = "background" if i == 0 else f"_unused_{i}"
            lines.append(f"{name}:{_color_text(voc_color(i))}::")
        else:
            lines.append(_label_line(lab, lost))
    void = by_id.get(VOID)
    if void is not None:
        if void.role != "ignore" and void.name.lower() not in VOID_NAMES:
            lost.append(f"label {VOID} {void.name!r} is a class, but VOC reads {VOID} as void")
        lines.append(_label_line(void, lost, void=True))
    for lab in labels:
        if not 0 <= lab.id <= VOID:
            lost.append(f"label {lab.id} {lab.name!r}: VOC class ids are 0..{VOID}")
    return "\n".join(lines) + "\n", lost


def _label_line(lab: Label, lost: list[str], *, void: bool = False) -> str:
    name = lab.name
    if ":" in name or "\n" in name or _UNUSED.fullmatch(name):
        lost.append(f"label {lab.id} {name!r} renamed: labelmap.txt names cannot hold it")
        name = re.sub(r"[:\n]", "_", name)
        if _UNUSED.fullmatch(name):
            name = f"{name}_"
    color = VOID_COLOR if void and name.lower() not in VOID_NAMES else lab.color
    parts = ",".join(str(p) for p in lab.attributes.get("parts", ()))
    actions = ",".join(str(a) for a in lab.attributes.get("actions", ()))
    return f"{name}:{_color_text(color)}:{parts}:{actions}"


def _color_text(color: Sequence[int]) -> str:
    return ",".join(str(int(c)) for c in color)


def _parse_color(text: str, where: str, lineno: int) -> tuple[int, int, int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 3 or not all(0 <= v <= 255 for v in values):
        raise FormatError(
            f"{where}: line {lineno}: colour {text!r} is not 'r,g,b' with values 0..255",
            path=where,
            record=lineno,
        )
    return values[0], values[1], values[2]


def _split_list(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


# --------------------------------------------------------------------------- pixels


def read_class_map(
    path: Path, labels: LabelMap
) -> tuple[npt.NDArray[np.integer[Any]], dict[tuple[int, int, int], int]]:
    """Class ids of a ``SegmentationClass`` PNG, and the colours not in ``labels`` with
    their pixel counts (RGB PNGs only; those pixels become the ignore id, else 255).

    Palette and grayscale PNGs give their raw indices; RGB(A) PNGs are mapped through the
    label map's colours (§4.6). FormatError if the file cannot be decoded.
    """
    arr = _base.read_png(path)
    if arr.ndim == 2:
        return arr, {}
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        void = next(iter(labels.ignore_ids), VOID)
        ids, missing = labels.colors_to_ids(arr[..., :3], unknown=void)
        top = max([void, *labels.ids]) if len(labels) else void
        return ids.astype(smallest_dtype(max(top, 0))), missing
    raise FormatError(
        f"{path}: a class mask must be a palette, grayscale or RGB PNG, got shape {arr.shape}",
        path=str(path),
    )


def read_object_map(
    path: Path,
) -> tuple[npt.NDArray[np.uint8], dict[tuple[int, int, int], int]]:
    """Object indices of a ``SegmentationObject`` PNG (0 background, 1..254, 255 void),
    and the colours of an RGB PNG that are not VOC colours (their pixels become 255)."""
    arr = _base.read_png(path)
    if arr.ndim == 2:
        if arr.size and int(arr.max()) > VOID:
            raise FormatError(
                f"{path}: object index {int(arr.max())} exceeds {VOID}; VOC object masks are 8-bit",
                path=str(path),
            )
        return arr.astype(np.uint8, copy=False), {}
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        ids, missing = _object_palette().colors_to_ids(arr[..., :3], unknown=VOID)
        return ids.astype(np.uint8), missing
    raise FormatError(
        f"{path}: an object mask must be a palette, grayscale or RGB PNG, got shape {arr.shape}",
        path=str(path),
    )


def _object_palette() -> LabelMap:
    colors = voc_colormap(256)
    return LabelMap(
        tuple(
            Label(i, (str(i),), (int(c[0]), int(c[1]), int(c[2])))
            for i, c in enumerate(colors.tolist())
        )
    )


def _object_classes(
    objects: npt.NDArray[np.integer[Any]], classes: npt.NDArray[np.integer[Any]]
) -> dict[int, dict[int, int]]:
    """For each object index 1..254: pixel counts per class id under it."""
    inside = (objects > 0) & (objects < VOID)
    obj = objects[inside].astype(np.int64)
    cls = classes[inside].astype(np.int64)
    out: dict[int, dict[int, int]] = {}
    if obj.size == 0:
        return out
    lo = int(cls.min())
    span = int(cls.max()) - lo + 1
    keys, counts = np.unique(obj * span + (cls - lo), return_counts=True)
    for key, n in zip(keys.tolist(), counts.tolist(), strict=True):
        k, c = divmod(key, span)
        out.setdefault(k, {})[c + lo] = n
    return out


def _majority(votes: Mapping[int, int], ignore: set[int]) -> tuple[int | None, list[int]]:
    """The class with most pixels (ties: the larger id), and every voting class."""
    voting = {c: n for c, n in votes.items() if c not in ignore}
    if not voting:
        return (max(votes, key=lambda c: (votes[c], c)) if votes else None), []
    best = max(voting, key=lambda c: (voting[c], c))
    return best, sorted(voting)


# --------------------------------------------------------------------------- layout


def _voc_root(path: Path) -> Path:
    """``path`` or, for a VOCdevkit folder, its one child that is a VOC root."""
    if _has_voc_parts(path):
        return path
    if path.is_dir():
        children = [c for c in sorted(path.iterdir()) if c.is_dir() and _has_voc_parts(c)]
        if len(children) == 1:
            return children[0]
    return path


def _has_voc_parts(path: Path) -> bool:
    return (
        (path / CLASS_DIR).is_dir()
        or (path / OBJECT_DIR).is_dir()
        or path.joinpath(*SETS_DIR).is_dir()
    )


def _subset_files(sets_dir: Path) -> list[Path]:
    files = [p for p in sets_dir.iterdir() if p.is_file() and p.suffix == ".txt"]

    def rank(p: Path) -> tuple[int, str]:
        name = p.stem
        return (_SUBSET_ORDER.index(name) if name in _SUBSET_ORDER else len(_SUBSET_ORDER), name)

    return sorted(files, key=rank)


def _mask_ids(root: Path) -> list[str]:
    """Ids of the class and object PNGs (sub-folders kept in the id)."""
    ids: dict[str, None] = {}
    for folder in (root / CLASS_DIR, root / OBJECT_DIR):
        if folder.is_dir():
            for p in sorted(folder.rglob("*.png")):
                ids.setdefault(p.relative_to(folder).with_suffix("").as_posix(), None)
    return list(ids)


def _index(root: Path) -> tuple[list[tuple[str, tuple[str, ...]]], list[str]]:
    """Every sample id with the subsets listing it, in list order; and the ids of masks
    no list names (the lists define the dataset; without lists, or with empty ones, the
    masks do)."""
    sets_dir = root.joinpath(*SETS_DIR)
    subsets: dict[str, list[str]] = {}
    if sets_dir.is_dir():
        for file in _subset_files(sets_dir):
            for line in file.read_text(encoding="utf-8").splitlines():
                fields = line.split()
                if fields:
                    subsets.setdefault(fields[0], []).append(file.stem)
    masks = _mask_ids(root)
    if not subsets:
        return [(sid, ()) for sid in masks], []
    listed = [(sid, tuple(dict.fromkeys(names))) for sid, names in subsets.items()]
    return listed, [sid for sid in masks if sid not in subsets]


def _find_image(folder: Path, sample_id: str) -> Path | None:
    for ext in _IMAGE_EXTENSIONS:
        p = folder / f"{sample_id}{ext}"
        if p.is_file():
            return p
    return None


def detect(path: Path) -> Detection:
    """Pascal VOC: a folder with ``SegmentationClass/`` (or ``SegmentationObject/``,
    ``ImageSets/Segmentation/``), or a VOCdevkit folder holding one."""
    path = Path(path)
    wanted = "a folder with SegmentationClass/ or ImageSets/Segmentation/ (Pascal VOC)"
    if not path.is_dir():
        return Detection.no(f"{wanted}; {path.name} is not a folder")
    root = _voc_root(path)
    has_class = (root / CLASS_DIR).is_dir()
    has_object = (root / OBJECT_DIR).is_dir()
    has_sets = root.joinpath(*SETS_DIR).is_dir()
    if has_class and (has_sets or (root / IMAGE_DIR).is_dir()):
        return Detection(3, f"{CLASS_DIR}/ with ImageSets/ or {IMAGE_DIR}/ in {root.name}")
    if has_class or has_object:
        return Detection(2, f"{CLASS_DIR}/ or {OBJECT_DIR}/ in {root.name}")
    if has_sets:
        return Detection(1, f"ImageSets/Segmentation/ without masks in {root.name}")
    return Detection.no(wanted)


# --------------------------------------------------------------------------- reader


class Reader(_base.Reader):
    """Samples of a VOC root: class map (``semantic``) and objects (``instances``)."""

    spec = SPEC

    def __init__(
        self, path: str | os.PathLike[str], *, labels: LabelMap | None = None, strict: bool = False
    ) -> None:
        super().__init__(path, labels=labels, strict=strict)
        self.root = _voc_root(self.path)
        if not self.root.is_dir():
            raise FormatError(f"{self.path}: not a folder; pass a VOC root", path=str(self.path))
        self._file_labels = self._read_labelmap()
        self._ids, self._unlisted = _index(self.root)

    def _read_labelmap(self) -> LabelMap:
        file = self.root / LABELMAP_FILE
        if not file.is_file():
            return default_labels()
        return parse_labelmap(file.read_text(encoding="utf-8"), where=str(file))

    @property
    def labels(self) -> LabelMap:
        """The given label map, else labelmap.txt, else the VOC classes."""
        return self._labels if self._labels is not None else self._file_labels

    def __len__(self) -> int:
        return len(self._ids)

    def __iter__(self) -> Iterator[Sample]:
        for item in self.plan():
            sample = self._decode_one(item)
            if sample is not None:
                yield sample

    def plan(self) -> Iterator[tuple[str, tuple[str, ...]]]:
        """One ``(id, subsets)`` per sample, in list order (nothing read); the masks no
        list names are reported after the last one."""
        yield from self._ids
        if self._unlisted:
            shown = ", ".join(repr(i) for i in self._unlisted[:5])
            self.problem(
                self.root.joinpath(*SETS_DIR),
                None,
                f"{len(self._unlisted)} masks are in no ImageSets/Segmentation list and were "
                f"not read ({shown}{', ...' if len(self._unlisted) > 5 else ''}); list them "
                "to read them",
            )

    def decode(self, items: Sequence[tuple[str, tuple[str, ...]]]) -> Iterator[Sample | None]:
        """The samples of :meth:`plan`'s ids (PNGs decoded, objects split); None for one
        reported and skipped."""
        for item in items:
            yield self._decode_one(item)

    def for_worker(self) -> Reader:
        """A copy that decodes in another process (no id lists, an empty report)."""
        return self.worker_copy(_ids=[], _unlisted=[])

    def _decode_one(self, item: tuple[str, tuple[str, ...]]) -> Sample | None:
        sample_id, subsets = item
        notes: list[tuple[Path, str, str]] = []
        try:
            sample = self._read(sample_id, subsets, notes)
        except (FormatError, MaskFormatError, LabelMapError, OSError, ValueError) as err:
            where = getattr(err, "path", None) or self.root / CLASS_DIR / f"{sample_id}.png"
            self.problem(where, sample_id, err)
            return None
        for path, record, message in notes:
            self.problem(path, record, message)
        return sample

    def _read(
        self, sample_id: str, subsets: tuple[str, ...], notes: list[tuple[Path, str, str]]
    ) -> Sample:
        labels = self.labels
        image = _find_image(self.root / IMAGE_DIR, sample_id)
        class_png = self.root / CLASS_DIR / f"{sample_id}.png"
        object_png = self.root / OBJECT_DIR / f"{sample_id}.png"
        classes: npt.NDArray[np.integer[Any]] | None = None
        if class_png.is_file():
            classes, missing = read_class_map(class_png, labels)
            self.report.unknown_colors.update(missing)
            unknown = sorted(set(np.unique(classes).tolist()) - set(labels.ids))
            if unknown:
                notes.append(
                    (
                        class_png,
                        sample_id,
                        f"class ids {unknown} are not in the label map; "
                        "kept as they are (add them to labelmap.txt)",
                    )
                )
        instances: list[Instance] = []
        if object_png.is_file():
            if classes is None:
                notes.append(
                    (
                        object_png,
                        sample_id,
                        f"object mask without {CLASS_DIR}/{sample_id}.png; "
                        "its objects have no class and are skipped",
                    )
                )
            else:
                instances = self._objects(object_png, sample_id, classes, notes)
        if classes is not None:
            size = (int(classes.shape[0]), int(classes.shape[1]))
            if image is not None and _base.image_size(image) != size:
                raise FormatError(
                    f"{class_png}: mask is {list(size)} (h, w) but {image.name} is "
                    f"{list(_base.image_size(image))}; fix the image or the mask",
                    path=str(class_png),
                    record=sample_id,
                )
        elif image is not None:
            size = _base.image_size(image)
        else:
            raise FormatError(
                f"{sample_id!r} is listed but has neither {IMAGE_DIR}/{sample_id}.jpg nor "
                f"{CLASS_DIR}/{sample_id}.png; add the files or remove the id from ImageSets",
                path=str(class_png),
                record=sample_id,
            )
        meta: dict[str, Any] = {"subsets": subsets} if len(subsets) > 1 else {}
        return Sample(
            id=sample_id,
            size=size,
            image=image,
            instances=tuple(instances),
            semantic=classes,
            subset=subsets[0] if subsets else None,
            meta=meta,
            labeled=classes is not None,
        )

    def _objects(
        self,
        path: Path,
        sample_id: str,
        classes: npt.NDArray[np.integer[Any]],
        notes: list[tuple[Path, str, str]],
    ) -> list[Instance]:
        objects, missing = read_object_map(path)
        self.report.unknown_colors.update(missing)
        if objects.shape != classes.shape:
            raise FormatError(
                f"{path}: object mask is {list(objects.shape)} but the class mask is "
                f"{list(classes.shape)}; they must match",
                path=str(path),
                record=sample_id,
            )
        ignore = set(self.labels.ignore_ids) | {VOID}
        out: list[Instance] = []
        for k, votes in sorted(_object_classes(objects, classes).items()):
            class_id, voting = _majority(votes, ignore)
            if len(voting) > 1:
                spread = ", ".join(f"{c}: {votes[c]} px" for c in voting)
                notes.append(
                    (
                        path,
                        f"{sample_id}#object{k}",
                        f"object {k} covers several classes "
                        f"({spread}); taken as class {class_id}, the majority",
                    )
                )
            elif not voting:
                notes.append(
                    (
                        path,
                        f"{sample_id}#object{k}",
                        f"object {k} lies only on void pixels; taken as class {class_id}",
                    )
                )
            out.append(Instance(rle.encode(objects == k), int(class_id or 0), id=k))
        return out


# --------------------------------------------------------------------------- writer


@dataclass(frozen=True, slots=True)
class _Part:
    """What :meth:`Writer.encode` made of a sample (see ``_base.Writer.commit``)."""

    rel: str
    pngs: tuple[_base.PngPayload, ...]
    image: Sample  # the sample without its masks: image file or bytes, subsets
    image_file: str


class Writer(_base.Writer):
    """Write samples as a VOC root (class PNGs, object PNGs, images, lists, labelmap)."""

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
        self._lists: dict[str, list[str]] = {}
        palette = voc_colormap(256)
        for lab in labels:
            if 0 <= lab.id <= VOID:
                palette[lab.id] = lab.color
        self._palette = palette
        self._objects_palette = voc_colormap(256)
        self._void_is_class = VOID in labels and labels.by_id(VOID).role != "ignore"

    def encode(self, sample: Sample) -> _Part | None:
        """One sample's class PNG, object PNG (when it has instances) and where its image
        goes; None when the sample cannot be written (reported)."""
        rel = self.checked_id(sample)
        if rel is None:
            return None
        keep = [i for i, inst in enumerate(sample.instances) if self._fits(sample, i, inst)]
        if sample.alpha is not None:
            self.report.loss(sample.id, None, "alpha", "VOC holds no opacity masks")
        objects, visible, classes = self._paint(sample, keep)
        if classes is None and sample.labeled:  # listed with no objects: all background
            background = self.labels.background_id or 0
            classes = np.full(sample.size, background if 0 <= background <= VOID else 0, np.uint8)
            objects = np.zeros(sample.size, np.uint8)
        pngs: list[_base.PngPayload] = []
        if classes is not None:
            indices = self._writable_classes(sample, classes, painted=sample.semantic is None)
            pngs.append(self.png_payload(f"{CLASS_DIR}/{rel}.png", indices, palette=self._palette))
        if objects is not None:
            pngs.append(
                self.png_payload(f"{OBJECT_DIR}/{rel}.png", objects, palette=self._objects_palette)
            )
        self._count_exact(sample, keep, visible)
        image = replace(sample, instances=(), semantic=None, alpha=None)
        return _Part(rel, tuple(pngs), image, f"{IMAGE_DIR}/{rel}{_image_suffix(sample)}")

    def commit(self, part: _Part | None, report: ConversionReport) -> None:
        """Write the PNGs, place the image, list the id in its subsets."""
        self.absorb(report)
        if part is None:
            return
        for png in part.pngs:
            self.write_payload(png)
        self.place_image(part.image, self.stage / part.image_file)
        for subset in _subsets_of(part.image):
            self._lists.setdefault(subset, []).append(part.rel)

    def _fits(self, sample: Sample, index: int, inst: Instance) -> bool:
        if inst.mask.size != sample.size:
            self.fail(
                sample,
                index,
                f"mask is {list(inst.mask.size)} but the image is {list(sample.size)} (h, w)",
            )
            return False
        if inst.iscrowd:
            self.report.loss(
                sample.id, index, "crowd", "VOC has no crowd flag; written as an object"
            )
        if inst.score is not None:
            self.report.loss(sample.id, index, "score", f"score {inst.score} not kept")
        return True

    def _paint(
        self, sample: Sample, keep: list[int]
    ) -> tuple[npt.NDArray[np.uint8] | None, dict[int, int], npt.NDArray[np.integer[Any]] | None]:
        """Object map and class map (None when the sample has none), visible pixels per
        instance. A sample with neither a class map nor instances gets no mask files."""
        insts = [sample.instances[i] for i in keep]
        if not insts:
            return None, {}, sample.semantic
        small = len(insts) <= MAX_OBJECTS
        painted = instances_to_panoptic(
            insts, sample.size, overlap="last", dtype=np.uint8 if small else np.int32
        )
        ids = painted.array
        visible = {keep[j]: n for j, n in enumerate(painted.visible_px)}
        for j, i in enumerate(keep):
            area = insts[j].area
            if visible[i] < area:
                self.report.loss(
                    sample.id,
                    i,
                    "overlap",
                    f"{area - visible[i]} of {area} px painted over by later instances",
                    iou=visible[i] / area,
                )
        for j, i in enumerate(keep[MAX_OBJECTS:], start=MAX_OBJECTS):
            self.report.loss(
                sample.id,
                i,
                "class",
                f"capacity: a VOC object mask holds {MAX_OBJECTS} objects; instance "
                f"{j + 1} of {len(insts)} is left out of {OBJECT_DIR}",
            )
        objects: npt.NDArray[np.uint8] = (
            ids.astype(np.uint8, copy=False)
            if small
            else np.where(ids <= MAX_OBJECTS, ids, 0).astype(np.uint8)
        )
        if sample.semantic is not None:
            return objects, visible, sample.semantic
        class_ids = [inst.class_id for inst in insts]
        if small and min(class_ids) >= 0 and max(class_ids) <= 255:
            table = np.zeros(256, np.uint8)  # owner -> class id, applied by OpenCV's SIMD LUT
            table[1 : len(insts) + 1] = class_ids
            classes = np.asarray(cv2.LUT(objects, table), np.uint8)
            return objects, visible, classes
        small_ids = min(class_ids) >= 0
        lut = np.zeros(len(insts) + 1, smallest_dtype(max(class_ids)) if small_ids else np.int64)
        lut[1:] = class_ids
        return objects, visible, lut[ids]

    def _writable_classes(
        self, sample: Sample, classes: npt.NDArray[np.integer[Any]], *, painted: bool
    ) -> npt.NDArray[np.uint8]:
        """The class map as palette indices; ids VOC cannot hold become void, reported."""
        if painted:  # the values are the instances' class ids and the background: check those
            ids = {inst.class_id for inst in sample.instances} | {0}
            if all(0 <= v <= VOID and not (v == VOID and self._void_is_class) for v in ids):
                return classes.astype(np.uint8, copy=False)
        values, counts = _value_counts(classes)
        bad = [
            (int(v), int(n))
            for v, n in zip(values.tolist(), counts.tolist(), strict=True)
            if not 0 <= v <= VOID or (v == VOID and self._void_is_class)
        ]
        if not bad:
            return classes.astype(np.uint8, copy=False)
        bad_ids = {v for v, _ in bad}
        if painted:
            for i, inst in enumerate(sample.instances):
                if inst.class_id in bad_ids:
                    self.report.loss(
                        sample.id, i, "class", f"class id {inst.class_id} written as void {VOID}"
                    )
        else:
            detail = ", ".join(f"id {v}: {n} px" for v, n in bad)
            self.report.loss(
                sample.id, None, "class", f"class ids VOC cannot hold written as void: {detail}"
            )
        out = np.where(np.isin(classes, list(bad_ids)), VOID, classes)
        return out.astype(np.uint8)

    def _count_exact(self, sample: Sample, keep: list[int], visible: dict[int, int]) -> None:
        for rank, i in enumerate(keep):
            inst = sample.instances[i]
            if rank < MAX_OBJECTS and visible.get(i) == inst.area and 0 <= inst.class_id < VOID:
                self.report.exact += 1

    def finish(self) -> None:
        """Write ImageSets/Segmentation/<subset>.txt and labelmap.txt."""
        sets_dir = self.stage.joinpath(*SETS_DIR)
        _base.ensure_dir(sets_dir)
        for subset, ids in self._lists.items():
            (sets_dir / f"{subset}.txt").write_text(
                "".join(f"{i}\n" for i in ids), encoding="utf-8"
            )
        text, lost = format_labelmap(self.labels)
        (self.stage / LABELMAP_FILE).write_text(text, encoding="utf-8")
        for what in lost:
            self.report.loss(LABELMAP_FILE, None, "class", what)


def _image_suffix(sample: Sample) -> str:
    if sample.image is not None and sample.image.suffix:
        return sample.image.suffix.lower()
    if sample.image_bytes is not None and sample.image_bytes.startswith(b"\x89PNG"):
        return ".png"
    return ".jpg"


def _subsets_of(sample: Sample) -> list[str]:
    listed = sample.meta.get("subsets")
    if isinstance(listed, (list, tuple)) and listed and all(isinstance(s, str) for s in listed):
        names = [str(s) for s in listed]
    else:
        names = [sample.subset or DEFAULT_SUBSET]
    return [n for n in names if _base.safe_relpath(n) is not None and "/" not in n] or [
        DEFAULT_SUBSET
    ]


def _value_counts(
    a: npt.NDArray[np.integer[Any]],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Distinct values and their counts: one bincount pass for small non-negative ids
    (class maps), np.unique otherwise."""
    if a.size and a.dtype.kind in "ui" and int(a.min()) >= 0 and int(a.max()) < 1 << 16:
        counts = np.bincount(a.reshape(-1))
        values = np.flatnonzero(counts)
        return values, counts[values]
    values, counts = np.unique(a, return_counts=True)
    return values.astype(np.int64), counts
