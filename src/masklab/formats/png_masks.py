"""Image + mask PNG folders: class indices, colours, one bitmap per instance, or alpha.

Folders (``reference/formats.md`` §4.6)::

    <root>/images/<id>.<ext>  +  <root>/masks/<id>.png
    <root>/<subset>/images/   +  <root>/<subset>/masks/      (subsets as folders)
    <root>/<subset>_images/   +  <root>/<subset>_masks/
    <root>/[<subset>/]<id>/images/<id>.png + <id>/masks/*.png  (instance-bitmaps, DSB2018)

Images and masks pair by file stem (sub-folders kept in the id: ``masks/a/b.png`` is id
``a/b``); a mask stem may end in ``_mask``; when no stem matches, a prefix common to each
side's names (up to its last ``_``/``-``, e.g. ``image_0001`` and ``gt_0001``) is dropped.
An image without a mask is a sample without masks; a mask folder named ``alpha`` or
``mattes`` holds alpha masks.

Layouts (option ``layout``; the reader detects it when not given, the writer writes
``index`` by default):

* ``index``: single-channel class-index PNGs (palette indices, 8- or 16-bit grayscale),
  pixel value = class id. The writer writes 8-bit, or 16-bit when an id exceeds 255.
* ``color``: RGB(A) colour-coded PNGs mapped through the label map's colours (exact
  colour match). A colour not in the map is counted in ``report.unknown_colors`` with its
  pixels, which get the map's ignore id, else its background id (0 when it has none).
* ``instance-bitmaps``: one binary PNG per instance (nonzero = foreground, written as
  0/255), so overlaps are kept exactly. A sample's ``classes.json`` maps mask file names
  to class ids; masks it does not name get the label map's only thing class (``object``
  by default). The writer names masks ``0000.png, 0001.png, ...`` in instance order and
  folders by sample id (``/`` becomes ``__``).
* ``alpha``: opacity mattes (a single-channel PNG or the alpha channel of an RGBA PNG)
  kept as ``Sample.alpha`` without labels; the writer writes them as grayscale PNGs.

Label maps, at the root, the first found wins: ``labels.json`` (``LabelMap.to_dict`` plus
``"layout"``; what the writer writes), ``mask_labels.json`` (ClearML ``mask_labels``:
``"r,g,b"`` or ``"[r, g, b]"`` -> list of labels, ids in order), ``dataset_meta.json``
(Datumaro: ``label_map`` id -> name, ``segmentation_colors``, ``background_label``),
``labelmap.csv`` (Kaggle/Datumaro ``name,r,g,b``; id = row). Without one the reader scans
the masks once: class ids become names (``"0"`` the background), colours become
``"r,g,b"`` names ((0, 0, 0) the background, id 0).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt
from PIL import Image

from masklab.core import rle
from masklab.core.instances import Instance, smallest_dtype
from masklab.core.labels import Label, LabelMap, Role, voc_color
from masklab.errors import FormatError, LabelMapError, MaskFormatError
from masklab.formats import _base
from masklab.formats._base import Capabilities, Detection, FormatSpec, Sample
from masklab.formats.report import ConversionReport

__all__ = [
    "LAYOUTS",
    "SPEC",
    "Layout",
    "Reader",
    "Writer",
    "detect",
    "detect_layout",
    "labels_from_csv",
    "labels_from_meta",
    "parse_mask_labels",
]

SPEC = FormatSpec(
    name="png-masks",
    description="image + mask PNG folders: class-index, colour, per-instance bitmap or alpha",
    kind="semantic",
    holds=Capabilities(
        holes=True, parts=True, overlap=True, crowd=False, scores=False, semantic=True
    ),
    extensions=(".png",),
)

Layout = Literal["index", "color", "instance-bitmaps", "alpha"]
LAYOUTS: tuple[Layout, ...] = ("index", "color", "instance-bitmaps", "alpha")

IMAGES_DIR = "images"
MASKS_DIR = "masks"
ALPHA_DIRS = ("alpha", "alphas", "matte", "mattes")
MASK_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff")
MASK_SUFFIXES = ("_mask", "_masks", "-mask", "_gt", "_label")
LABELS_FILE = "labels.json"
MASK_LABELS_FILE = "mask_labels.json"
META_FILE = "dataset_meta.json"
CSV_FILE = "labelmap.csv"
CLASSES_FILE = "classes.json"
OBJECT_CLASS = "object"
_INDEX_MODES = ("1", "L", "P", "I", "I;16", "I;16B", "I;16L")
_DETECT_PEEK = 20  # folders a detector looks into


# --------------------------------------------------------------------------- label files


def parse_mask_labels(data: Mapping[str, Any]) -> LabelMap:
    """A LabelMap from ClearML ``mask_labels`` JSON: pixel value -> list of labels.

    Keys are ``"r,g,b"``, ``"[r, g, b]"``, ``"(r, g, b)"`` or a gray level ``"v"``; ids
    follow the key order from 0; a value labelled ``background`` gets that role. A
    ``{"mask_labels": {...}}`` wrapper is accepted.

    >>> lm = parse_mask_labels({"0,0,0": ["background"], "[1, 1, 1]": ["person", "sitting"]})
    >>> [(lab.id, lab.names, lab.color) for lab in lm]
    [(0, ('background',), (0, 0, 0)), (1, ('person', 'sitting'), (1, 1, 1))]
    """
    inner = data.get("mask_labels", data)
    if not isinstance(inner, Mapping):
        raise LabelMapError("mask_labels must map pixel values to label lists")
    spec: dict[tuple[int, ...], Any] = {}
    for key, names in inner.items():
        values = tuple(int(v) for v in re.findall(r"-?\d+", str(key)))
        if len(values) not in (1, 3) or not all(0 <= v <= 255 for v in values):
            raise LabelMapError(f"mask_labels key {key!r} is not 'r,g,b' or a gray level 0..255")
        if not isinstance(names, (str, list, tuple)) or not all(
            isinstance(n, str) for n in ([names] if isinstance(names, str) else names)
        ):
            raise LabelMapError(f"mask_labels value of {key!r} must be a list of label names")
        spec[values] = names
    return LabelMap.from_mask_labels(spec)


def labels_from_meta(data: Mapping[str, Any]) -> LabelMap:
    """A LabelMap from Datumaro's ``dataset_meta.json``.

    ``label_map`` maps ids (string keys) to names, ``segmentation_colors`` lists colours
    in the same order, ``background_label`` names the background id; a plain ``labels``
    list of names is accepted too.

    >>> lm = labels_from_meta({"label_map": {"0": "Void", "1": "Road"},
    ...     "segmentation_colors": [[0, 0, 0], [128, 64, 128]], "background_label": "0"})
    >>> [(lab.id, lab.name, lab.color, lab.role) for lab in lm]
    [(0, 'Void', (0, 0, 0), 'background'), (1, 'Road', (128, 64, 128), 'class')]
    """
    if isinstance(data.get("label_map"), Mapping):
        entries = [(int(k), str(v)) for k, v in data["label_map"].items()]
    elif isinstance(data.get("labels"), list):
        entries = [(i, str(n)) for i, n in enumerate(data["labels"])]
    else:
        raise LabelMapError("dataset_meta.json needs 'label_map' ({id: name}) or 'labels'")
    colors = data.get("segmentation_colors") or []
    if colors and len(colors) < len(entries):
        raise LabelMapError(
            f"segmentation_colors has {len(colors)} colours for {len(entries)} labels"
        )
    background = data.get("background_label")
    bg_id = int(background) if background is not None and str(background).isdigit() else None
    labels = []
    for pos, (label_id, name) in enumerate(entries):
        color = tuple(int(c) for c in colors[pos][:3]) if colors else voc_color(label_id)
        is_bg = label_id == bg_id
        labels.append(
            Label(
                label_id,
                (name,),
                (color[0], color[1], color[2]),
                isthing=not is_bg,
                role="background" if is_bg else "class",
            )
        )
    return LabelMap(tuple(labels))


def labels_from_csv(text: str) -> LabelMap:
    """A LabelMap from a Kaggle/Datumaro ``labelmap.csv`` (``name,r,g,b``; id = row).

    >>> lm = labels_from_csv("name,r,g,b\\nbg,0,0,0\\ncat,255,0,0")
    >>> [(lab.id, lab.name, lab.color) for lab in lm]
    [(0, 'bg', (0, 0, 0)), (1, 'cat', (255, 0, 0))]
    """
    rows = [r for r in csv.reader(io.StringIO(text)) if r and any(c.strip() for c in r)]
    if rows and rows[0][0].strip().lower() == "name":
        rows = rows[1:]
    labels = []
    for i, row in enumerate(rows):
        if len(row) < 4:
            raise LabelMapError(f"labelmap.csv row {i + 2}: expected name,r,g,b, got {row!r}")
        name = row[0].strip()
        color = tuple(int(v) for v in row[1:4])
        role: Role = "background" if name.lower() in ("background", "_background_") else "class"
        labels.append(
            Label(i, (name,), (color[0], color[1], color[2]), isthing=role == "class", role=role)
        )
    return LabelMap(tuple(labels))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FormatError(f"{path}: cannot read the JSON: {err}", path=str(path)) from err


def _labels_json(root: Path) -> dict[str, Any] | None:
    """Our ``labels.json`` (LabelMap.to_dict form with "layout"), if there is one."""
    file = root / LABELS_FILE
    if not file.is_file():
        return None
    data = _read_json(file)
    if not isinstance(data, dict) or not isinstance(data.get("labels", []), list):
        raise FormatError(
            f"{file}: expected {{'labels': [...], 'layout': ...}} (LabelMap.to_dict form)",
            path=str(file),
        )
    return data


def _file_labels(root: Path, ours: Mapping[str, Any] | None) -> LabelMap | None:
    """The label map of the first label file found at ``root``."""
    try:
        if ours is not None:
            return LabelMap.from_dict(ours)
        if (root / MASK_LABELS_FILE).is_file():
            data = _read_json(root / MASK_LABELS_FILE)
            if not isinstance(data, dict):
                raise LabelMapError("expected a JSON object of pixel value -> labels")
            return parse_mask_labels(data)
        if (root / META_FILE).is_file():
            data = _read_json(root / META_FILE)
            if not isinstance(data, dict):
                raise LabelMapError("expected a JSON object")
            return labels_from_meta(data)
        if (root / CSV_FILE).is_file():
            return labels_from_csv((root / CSV_FILE).read_text(encoding="utf-8"))
    except (LabelMapError, KeyError, TypeError, ValueError, IndexError) as err:
        if isinstance(err, FormatError):
            raise
        raise FormatError(f"{root}: bad label file: {err}; fix it", path=str(root)) from err
    return None


# --------------------------------------------------------------------------- folders


@dataclass(frozen=True, slots=True)
class _Pair:
    subset: str | None
    images: Path
    masks: Path


@dataclass(frozen=True, slots=True)
class _Folder:
    """An instance-bitmaps sample folder (a work item of :meth:`Reader.plan`)."""

    subset: str | None
    folder: Path


@dataclass(frozen=True, slots=True)
class _Entry:
    id: str
    subset: str | None
    image: Path | None
    mask: Path | None


def _mask_dir(folder: Path, prefix: str = "") -> Path | None:
    for name in (MASKS_DIR, *ALPHA_DIRS):
        if (folder / f"{prefix}{name}").is_dir():
            return folder / f"{prefix}{name}"
    return None


def _is_bitmap_sample(folder: Path) -> bool:
    """A DSB2018 sample folder: ``images/<folder name>.*`` (or our ``classes.json``) and
    ``masks/``."""
    if not (folder / IMAGES_DIR).is_dir() or not (folder / MASKS_DIR).is_dir():
        return False
    return (folder / CLASSES_FILE).is_file() or any(
        (folder / IMAGES_DIR / f"{folder.name}{ext}").is_file() for ext in _base.IMAGE_EXTENSIONS
    )


def _subdirs(folder: Path, limit: int | None = None) -> list[Path]:
    out = []
    for p in sorted(folder.iterdir()):
        if p.is_dir() and not p.name.startswith("."):
            out.append(p)
            if limit is not None and len(out) >= limit:
                break
    return out


def _bitmap_folders(root: Path, limit: int | None = None) -> list[tuple[str | None, Path]]:
    """(subset, folder) of every instance-bitmaps sample under ``root`` (two levels)."""
    if _is_bitmap_sample(root):
        return [(None, root)]
    out: list[tuple[str | None, Path]] = []
    for child in _subdirs(root, limit):
        if child.name in (IMAGES_DIR, MASKS_DIR, *ALPHA_DIRS):
            continue
        if _is_bitmap_sample(child):
            out.append((None, child))
            continue
        for grandchild in _subdirs(child, limit):
            if _is_bitmap_sample(grandchild):
                out.append((child.name, grandchild))
    return out


def _pairs(root: Path) -> list[_Pair]:
    """Every images/masks folder pair: at the root, ``<subset>/``, ``<subset>_``."""
    out: list[_Pair] = []
    masks = _mask_dir(root)
    if masks is not None:
        out.append(_Pair(None, root / IMAGES_DIR, masks))
    for child in _subdirs(root):
        if child.name in (IMAGES_DIR, MASKS_DIR, *ALPHA_DIRS):
            continue
        suffix = next(
            (f"_{n}" for n in (MASKS_DIR, *ALPHA_DIRS) if child.name.endswith(f"_{n}")), None
        )
        if suffix is not None:
            subset = child.name[: -len(suffix)]
            out.append(_Pair(subset, root / f"{subset}_{IMAGES_DIR}", child))
            continue
        masks = _mask_dir(child)
        if masks is not None and not _is_bitmap_sample(child):
            out.append(_Pair(child.name, child / IMAGES_DIR, masks))
    return out


def _files(folder: Path, extensions: tuple[str, ...]) -> dict[str, Path]:
    """Files under ``folder`` (recursively) by relative stem (posix, no extension)."""
    if not folder.is_dir():
        return {}
    return {
        p.relative_to(folder).with_suffix("").as_posix(): p
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.suffix.lower() in extensions
    }


def _strip_mask_suffix(stem: str) -> str:
    for suffix in MASK_SUFFIXES:
        if stem.endswith(suffix) and len(stem) > len(suffix):
            return stem[: -len(suffix)]
    return stem


def _common_prefix(stems: list[str]) -> str:
    """The prefix all stems share, cut back to its last separator (``_`` or ``-``)."""
    prefix = stems[0] if stems else ""
    for stem in stems[1:]:
        n = 0
        while n < min(len(prefix), len(stem)) and prefix[n] == stem[n]:
            n += 1
        prefix = prefix[:n]
    cut = max(prefix.rfind("_"), prefix.rfind("-"))
    return prefix[: cut + 1] if cut >= 0 else ""


def _entries(pair: _Pair) -> list[_Entry]:
    """Images and masks of a pair, matched by stem."""
    images = _files(pair.images, _base.IMAGE_EXTENSIONS)
    masks = _files(pair.masks, _base.IMAGE_EXTENSIONS)
    if not set(images) & set(masks):
        masks = {_strip_mask_suffix(k): v for k, v in masks.items()}
    if images and masks and not set(images) & set(masks):
        ip, mp = _common_prefix(list(images)), _common_prefix(list(masks))
        by_key = {k[len(ip) :]: k for k in images}
        masks_by_key = {k[len(mp) :]: v for k, v in masks.items()}
        if len(by_key) == len(images) and len(masks_by_key) == len(masks):
            masks = {by_key.get(k, k): v for k, v in masks_by_key.items()}
    ids = list(dict.fromkeys([*masks, *images]))
    return [_Entry(i, pair.subset, images.get(i), masks.get(i)) for i in ids]


def detect_layout(path: Path) -> Layout:
    """The layout of a png-masks folder: ``labels.json``'s ``layout``, else DSB sample
    folders, else the mask folder's name (``alpha``/``mattes``), else the first mask's
    PIL mode (RGB colour, RGBA colour when opaque else alpha, LA alpha, others index)."""
    path = Path(path)
    ours = _labels_json(path)
    if ours is not None and ours.get("layout") in LAYOUTS:
        return cast(Layout, ours["layout"])
    if _bitmap_folders(path, _DETECT_PEEK):
        return "instance-bitmaps"
    for pair in _pairs(path):
        if pair.masks.name.split("_")[-1] in ALPHA_DIRS:
            return "alpha"
        first = next(iter(_files(pair.masks, MASK_EXTENSIONS).values()), None)
        if first is None:
            continue
        try:
            with Image.open(first) as im:
                if im.mode in _INDEX_MODES:
                    return "index"
                if im.mode == "RGBA":
                    alpha_lo, _ = im.getchannel("A").getextrema()
                    return "color" if alpha_lo == 255 else "alpha"
                return "alpha" if im.mode in ("LA", "La") else "color"
        except (OSError, SyntaxError, ValueError) as err:
            raise FormatError(f"{first}: cannot read the mask: {err}", path=str(first)) from err
    raise FormatError(
        f"{path}: no images/ + masks/ folders or <id>/images + <id>/masks sample folders; "
        "pass the dataset root",
        path=str(path),
    )


def detect(path: Path) -> Detection:
    """Image + mask folders: ``images/`` beside ``masks/`` (or ``<subset>_masks/``), or
    DSB2018 sample folders ``<id>/images/<id>.png`` + ``<id>/masks/``."""
    path = Path(path)
    wanted = "images/ + masks/ folders, or <id>/images/<id>.png + <id>/masks/ (DSB2018)"
    if not path.is_dir():
        return Detection.no(f"{wanted}; {path.name} is not a folder")
    try:
        ours = _labels_json(path)
    except FormatError:
        ours = None
    bitmaps = _bitmap_folders(path, _DETECT_PEEK)
    pairs = [] if bitmaps else _pairs(path)
    if not bitmaps and not pairs:
        return Detection.no(wanted)
    if ours is not None and ours.get("layout") in LAYOUTS:
        return Detection(3, f"{LABELS_FILE} with layout {ours['layout']!r} (masklab png-masks)")
    if bitmaps:
        return Detection(3, "DSB2018 sample folders <id>/images/<id>.png + <id>/masks/")
    return Detection(2, f"mask folder {pairs[0].masks.name}/ beside {pairs[0].images.name}/")


# --------------------------------------------------------------------------- reader


_Notes = list[tuple[Path, str, str]]


class Reader(_base.Reader):
    """Samples of an image + mask folder in one of the four layouts."""

    spec = SPEC

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        labels: LabelMap | None = None,
        strict: bool = False,
        layout: Layout | None = None,
    ) -> None:
        super().__init__(path, labels=labels, strict=strict)
        if not self.path.is_dir():
            raise FormatError(f"{self.path}: not a folder; pass the dataset root", path=str(path))
        if layout is not None and layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        self.layout: Layout = layout or detect_layout(self.path)
        self._from_file = _file_labels(self.path, _labels_json(self.path))
        self._scanned: LabelMap | None = None
        if self.layout == "instance-bitmaps":
            self._folders = _bitmap_folders(self.path)
            self._entries: list[_Entry] = []
        else:
            self._folders = []
            self._entries = [e for pair in _pairs(self.path) for e in _entries(pair)]

    @property
    def labels(self) -> LabelMap:
        """The given label map, else the label file's, else one scanned from the masks
        (index and colour layouts; read once, on first use)."""
        if self._labels is not None:
            return self._labels
        if self._from_file is not None:
            return self._from_file
        if self.layout == "alpha":
            return LabelMap()
        if self.layout == "instance-bitmaps":
            return LabelMap.from_names(["background", OBJECT_CLASS], background=0)
        if self._scanned is None:
            self._scanned = self._scan()
        return self._scanned

    def _scan(self) -> LabelMap:
        """Ids (index) or colours (color) found in the masks, as a label map."""
        found: set[int] = set()
        for entry in self._entries:
            if entry.mask is None:
                continue
            try:
                arr = _base.read_png(entry.mask)
            except FormatError:
                continue  # reported when the sample is read
            if self.layout == "index":
                found.update(np.unique(arr).tolist() if arr.ndim == 2 else ())
            elif arr.ndim in (2, 3):
                found.update(np.unique(_color_keys(arr)).tolist())
        if self.layout == "index":
            return LabelMap(
                tuple(
                    Label(
                        v,
                        (str(v),),
                        voc_color(v % 256),
                        isthing=v != 0,
                        role="background" if v == 0 else "class",
                    )
                    for v in sorted(found)
                )
            )
        keys = sorted(found, key=lambda k: (k != 0, k))
        labels = []
        for i, k in enumerate(keys, start=0 if 0 in found else 1):
            color = (k & 0xFF, (k >> 8) & 0xFF, (k >> 16) & 0xFF)
            role: Role = "background" if k == 0 else "class"
            name = ",".join(str(c) for c in color)
            labels.append(Label(i, (name,), color, isthing=k != 0, role=role))
        return LabelMap(tuple(labels))

    def __len__(self) -> int:
        return len(self._folders) if self.layout == "instance-bitmaps" else len(self._entries)

    def __iter__(self) -> Iterator[Sample]:
        for item in self.plan():
            sample = self._decode_one(item)
            if sample is not None:
                yield sample

    def plan(self) -> Iterator[_Entry | _Folder]:
        """One item per sample, in order: an image/mask pair (its paths) or an
        instance-bitmaps sample folder; nothing is read yet."""
        if self.layout == "instance-bitmaps":
            for subset, folder in self._folders:
                yield _Folder(subset, folder)
        else:
            yield from self._entries

    def decode(self, items: Sequence[_Entry | _Folder]) -> Iterator[Sample | None]:
        """The samples of :meth:`plan`'s items: PNGs decoded, colours mapped, bitmaps
        run-length encoded; None for an item that was reported and skipped."""
        for item in items:
            yield self._decode_one(item)

    def for_worker(self) -> Reader:
        """A copy that decodes in another process: the label map resolved (scanned here
        when it comes from the masks), the file lists dropped, the report empty."""
        self.labels  # noqa: B018 - a label map scanned from the masks: scanned here, once
        return self.worker_copy(_entries=[], _folders=[])

    def _decode_one(self, item: _Entry | _Folder) -> Sample | None:
        if isinstance(item, _Folder):
            return self._guarded(
                item.folder, item.folder.name, self._read_bitmaps, item.subset, item.folder
            )
        where = item.mask or item.image or self.path
        return self._guarded(where, item.id, self._read_entry, item)

    def _guarded(self, where: Path, record: str, read: Any, *args: Any) -> Sample | None:
        notes: _Notes = []
        try:
            sample: Sample | None = read(*args, notes)
        except (FormatError, MaskFormatError, LabelMapError, OSError, ValueError) as err:
            self.problem(where, record, err)
            return None
        for path, rec, message in notes:
            self.problem(path, rec, message)
        return sample

    # ---- images + masks

    def _read_entry(self, entry: _Entry, notes: _Notes) -> Sample:
        if entry.mask is None:
            if entry.image is None:  # pragma: no cover - an entry has an image or a mask
                raise FormatError(f"{entry.id}: neither an image nor a mask", record=entry.id)
            size = _base.image_size(entry.image)
            return Sample(entry.id, size, image=entry.image, subset=entry.subset, labeled=False)
        if entry.mask.suffix.lower() not in MASK_EXTENSIONS:
            raise FormatError(
                f"{entry.mask}: {entry.mask.suffix} masks are lossy; save masks as PNG",
                path=str(entry.mask),
                record=entry.id,
            )
        arr = _base.read_png(entry.mask)
        size = (int(arr.shape[0]), int(arr.shape[1]))
        if entry.image is not None and _base.image_size(entry.image) != size:
            raise FormatError(
                f"{entry.mask}: mask is {list(size)} (h, w) but {entry.image.name} is "
                f"{list(_base.image_size(entry.image))}; fix the image or the mask",
                path=str(entry.mask),
                record=entry.id,
            )
        semantic: npt.NDArray[np.integer[Any]] | None = None
        alpha: npt.NDArray[np.uint8] | None = None
        if self.layout == "alpha":
            alpha = _alpha_of(arr, entry.mask)
        elif self.layout == "index":
            semantic = self._index_map(arr, entry, notes)
        else:
            semantic = self._color_map(arr, entry, notes)
        return Sample(
            entry.id,
            size,
            image=entry.image,
            semantic=semantic,
            alpha=alpha,
            subset=entry.subset,
        )

    def _index_map(
        self, arr: npt.NDArray[Any], entry: _Entry, notes: _Notes
    ) -> npt.NDArray[np.integer[Any]]:
        assert entry.mask is not None
        if arr.ndim == 3 and arr.shape[2] >= 3 and _is_gray(arr):
            arr = np.ascontiguousarray(arr[..., 0])
        if arr.ndim != 2:
            raise FormatError(
                f"{entry.mask}: a colour mask in the index layout; pass layout='color'",
                path=str(entry.mask),
                record=entry.id,
            )
        if arr.dtype == np.bool_:
            arr = arr.astype(np.uint8)
        unknown = sorted(set(np.unique(arr).tolist()) - set(self.labels.ids))
        if unknown:
            notes.append(
                (
                    entry.mask,
                    entry.id,
                    f"class ids {unknown} are not in the label map; "
                    f"kept as they are (add them to {LABELS_FILE})",
                )
            )
        return arr

    def _color_map(
        self, arr: npt.NDArray[Any], entry: _Entry, notes: _Notes
    ) -> npt.NDArray[np.integer[Any]]:
        assert entry.mask is not None
        if arr.ndim == 2:  # a gray-level colour mask: value v is the colour (v, v, v)
            arr = np.repeat(arr.astype(np.uint8)[..., None], 3, axis=2)
        if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.dtype != np.uint8:
            raise FormatError(
                f"{entry.mask}: expected an 8-bit RGB(A) colour mask, got {arr.dtype} {arr.shape}",
                path=str(entry.mask),
                record=entry.id,
            )
        labels = self.labels
        fill = next(iter(labels.ignore_ids), labels.background_id or 0)
        ids, missing = labels.colors_to_ids(arr[..., :3], unknown=fill)
        if missing:
            self.report.unknown_colors.update(missing)
        top = max([fill, *labels.ids]) if len(labels) else fill
        return ids.astype(smallest_dtype(max(top, 0)))

    # ---- instance bitmaps

    def _read_bitmaps(self, subset: str | None, folder: Path, notes: _Notes) -> Sample:
        images = _base.find_images(folder / IMAGES_DIR)
        image = images.get(folder.name) or next(iter(images.values()), None)
        mask_files = sorted(
            p
            for p in (folder / MASKS_DIR).iterdir()
            if p.is_file() and p.suffix.lower() in MASK_EXTENSIONS
        )
        classes: dict[str, Any] = {}
        if (folder / CLASSES_FILE).is_file():
            data = _read_json(folder / CLASSES_FILE)
            if not isinstance(data, dict):
                raise FormatError(
                    f"{folder / CLASSES_FILE}: expected {{mask file: class id}}",
                    path=str(folder / CLASSES_FILE),
                    record=folder.name,
                )
            classes = data
        default = self._default_class(folder, classes, mask_files, notes)
        size = _base.image_size(image) if image is not None else None
        instances: list[Instance] = []
        for mask_file in mask_files:
            record = f"{folder.name}/{mask_file.name}"
            try:
                arr = _base.read_png(mask_file)
            except FormatError as err:
                notes.append((mask_file, record, str(err)))
                continue
            binary = arr[..., :3].any(axis=-1) if arr.ndim == 3 else arr != 0
            if size is None:
                size = (int(binary.shape[0]), int(binary.shape[1]))
            if binary.shape != size:
                notes.append(
                    (
                        mask_file,
                        record,
                        f"mask is {list(binary.shape)} but the image is "
                        f"{list(size)} (h, w); skipped",
                    )
                )
                continue
            if arr.ndim == 2 and np.unique(arr).size > 2:
                notes.append(
                    (
                        mask_file,
                        record,
                        "mask is not binary; every nonzero pixel is taken as foreground",
                    )
                )
            class_id = classes.get(mask_file.name, default)
            try:
                class_id = int(class_id)
            except (TypeError, ValueError):
                notes.append((mask_file, record, f"class {class_id!r} is not an integer id"))
                continue
            instances.append(Instance(rle.encode(binary), class_id, id=len(instances) + 1))
        if size is None:
            raise FormatError(
                f"{folder}: neither an image in images/ nor a mask in masks/",
                path=str(folder),
                record=folder.name,
            )
        return Sample(folder.name, size, image=image, instances=tuple(instances), subset=subset)

    def _default_class(
        self, folder: Path, classes: Mapping[str, Any], masks: list[Path], notes: _Notes
    ) -> int:
        things = [lab.id for lab in self.labels if lab.role == "class"]
        if len(things) == 1:
            return things[0]
        unnamed = [p.name for p in masks if p.name not in classes]
        if unnamed:
            fallback = things[0] if things else 1
            notes.append(
                (
                    folder,
                    folder.name,
                    f"{len(unnamed)} masks have no class in {CLASSES_FILE} "
                    f"and the label map has {len(things)} classes; taken as class {fallback}",
                )
            )
            return fallback
        return things[0] if things else 1


def _is_gray(arr: npt.NDArray[Any]) -> bool:
    return bool(
        np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2])
    )


def _color_keys(arr: npt.NDArray[Any]) -> npt.NDArray[np.uint32]:
    """``r | g << 8 | b << 16`` per pixel (a gray level v is the colour (v, v, v))."""
    rgb = arr[..., None] if arr.ndim == 2 else arr
    r = rgb[..., 0].astype(np.uint32)
    g = rgb[..., 1 % rgb.shape[-1]].astype(np.uint32)
    b = rgb[..., 2 % rgb.shape[-1]].astype(np.uint32)
    out: npt.NDArray[np.uint32] = r | (g << np.uint32(8)) | (b << np.uint32(16))
    return out


def _alpha_of(arr: npt.NDArray[Any], path: Path) -> npt.NDArray[np.uint8]:
    """The opacity of a matte: a grayscale PNG, or the last channel of LA/RGBA."""
    if arr.dtype == np.uint8 and arr.ndim == 2:
        return arr
    if arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] in (2, 4):
        return np.ascontiguousarray(arr[..., -1])
    raise FormatError(
        f"{path}: an alpha mask must be 8-bit grayscale or have an alpha channel, got "
        f"{arr.dtype} {arr.shape}",
        path=str(path),
    )


# --------------------------------------------------------------------------- writer


@dataclass(frozen=True, slots=True)
class _Part:
    """What :meth:`Writer.encode` made of a sample (see ``_base.Writer.commit``)."""

    pngs: tuple[_base.PngPayload, ...]
    image: Sample  # the sample without its masks: image file or bytes
    image_file: str  # where the image goes, relative to the stage
    folder: str | None = None  # instance-bitmaps: the sample's folder
    classes: bytes | None = None  # instance-bitmaps: its classes.json


class Writer(_base.Writer):
    """Write samples as an image + mask folder; option ``layout`` (default ``index``)."""

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
        layout = options.get("layout", "index")
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        if layout in ("index", "color"):
            labels = _base.with_background(labels)  # painted maps are 0 where no instance is
        super().__init__(path, labels=labels, strict=strict, overwrite=overwrite, **options)
        self.layout: Layout = layout
        self._fill = next(iter(labels.ignore_ids), labels.background_id or 0)
        first_of: dict[tuple[int, int, int], int] = {}
        self._shadowed: dict[int, int] = {}  # label id -> earlier label id of its colour
        for lab in labels:
            if lab.color in first_of:
                self._shadowed[lab.id] = first_of[lab.color]
            else:
                first_of[lab.color] = lab.id

    def encode(self, sample: Sample) -> _Part | None:
        """The sample's mask PNG(s) in the writer's layout (class maps painted, bitmaps
        decoded) and where its image goes; None when the id is unusable (reported)."""
        rel = self.checked_id(sample)
        if rel is None:
            return None
        image = replace(sample, instances=(), semantic=None, alpha=None)
        base = self._subset_dir(sample)
        if self.layout == "instance-bitmaps":
            name = rel.replace("/", "__")
            folder = f"{base}{name}"
            pngs, classes = self._encode_bitmaps(sample, folder)
            image_file = f"{folder}/{IMAGES_DIR}/{name}{_image_suffix(sample)}"
            return _Part(pngs, image, image_file, folder, classes)
        if self.layout == "alpha":
            pngs = self._encode_alpha(sample, base, rel)
        else:
            pngs = self._encode_classes(sample, base, rel)
        return _Part(pngs, image, f"{base}{IMAGES_DIR}/{rel}{_image_suffix(sample)}")

    def commit(self, part: _Part | None, report: ConversionReport) -> None:
        """Write the mask PNG(s) (and an instance-bitmaps folder's classes.json), place
        the image."""
        self.absorb(report)
        if part is None:
            return
        if part.folder is not None:
            _base.ensure_dir(self.stage / part.folder / MASKS_DIR)
        for png in part.pngs:
            self.write_payload(png)
        if part.classes is not None:
            self.write_payload((f"{part.folder}/{CLASSES_FILE}", part.classes, None))
        placed = self.place_image(part.image, self.stage / part.image_file)
        if not placed and part.folder is not None:
            _base.ensure_dir(self.stage / part.folder / IMAGES_DIR)

    def _subset_dir(self, sample: Sample) -> str:
        """The folder of the sample's subset relative to the stage, with a trailing
        ``/`` ("" for the root, when it has none)."""
        subset = sample.subset
        if subset and _base.safe_relpath(subset) is not None and "/" not in subset:
            return f"{subset}/"
        return ""

    # ---- index / color

    def _encode_classes(self, sample: Sample, base: str, rel: str) -> tuple[_base.PngPayload, ...]:
        if sample.alpha is not None:
            self.report.loss(sample.id, None, "alpha", f"the {self.layout} layout holds no opacity")
        if sample.semantic is None and not sample.instances and not sample.labeled:
            return ()  # unlabelled in its source: no mask (a labeled empty one is background)
        for i, inst in enumerate(sample.instances):
            if inst.mask.size != sample.size:
                self.fail(
                    sample,
                    i,
                    f"mask is {list(inst.mask.size)} but the image is {list(sample.size)} (h, w)",
                )
                return ()
        classes = _base.semantic_of(sample, self.report)
        if sample.semantic is None:
            self.report.loss(
                sample.id,
                None,
                "instances",
                f"{len(sample.instances)} instances painted into one class map; instance "
                "identity is not kept (layout='instance-bitmaps' keeps it)",
            )
            for i, inst in enumerate(sample.instances):
                if inst.score is not None:
                    self.report.loss(sample.id, i, "score", f"score {inst.score} not kept")
        if self.layout == "index":
            pixels = self._index_pixels(sample, classes)
        else:
            pixels = self._color_pixels(sample, classes)
        return (self.png_payload(f"{base}{MASKS_DIR}/{rel}.png", pixels),)

    def _index_pixels(
        self, sample: Sample, classes: npt.NDArray[np.integer[Any]]
    ) -> npt.NDArray[np.integer[Any]]:
        values, counts = np.unique(classes, return_counts=True)
        bad = [
            (int(v), int(n))
            for v, n in zip(values.tolist(), counts.tolist(), strict=True)
            if not 0 <= v <= 65535
        ]
        out = classes
        if bad:
            detail = ", ".join(f"id {v}: {n} px" for v, n in bad)
            self.report.loss(
                sample.id,
                None,
                "class",
                f"class ids outside 0..65535 written as {self._fill}: {detail}",
            )
            out = np.where(np.isin(classes, [v for v, _ in bad]), self._fill, classes)
        top = max([0, *(lab.id for lab in self.labels if lab.id <= 65535)])
        top = max(top, int(out.max()) if out.size else 0)
        return out.astype(np.uint8 if top <= 255 else np.uint16)

    def _color_pixels(
        self, sample: Sample, classes: npt.NDArray[np.integer[Any]]
    ) -> npt.NDArray[np.uint8]:
        values, inverse, counts = np.unique(classes, return_inverse=True, return_counts=True)
        palette = np.zeros((values.size, 3), np.uint8)
        fill = self.labels.by_id(self._fill).color if self._fill in self.labels else (0, 0, 0)
        for i, (v, n) in enumerate(zip(values.tolist(), counts.tolist(), strict=True)):
            if v not in self.labels:
                self.report.loss(
                    sample.id,
                    None,
                    "class",
                    f"class id {v} has no colour in the label map; {n} px painted {fill}",
                )
                palette[i] = fill
                continue
            palette[i] = self.labels.by_id(v).color
            if v in self._shadowed:
                self.report.loss(
                    sample.id,
                    None,
                    "class",
                    f"class id {v} shares its colour with id {self._shadowed[v]}; {n} px "
                    f"read back as {self._shadowed[v]}",
                )
        out: npt.NDArray[np.uint8] = palette[inverse.reshape(classes.shape)]
        return out

    # ---- alpha

    def _encode_alpha(self, sample: Sample, base: str, rel: str) -> tuple[_base.PngPayload, ...]:
        if sample.semantic is not None or sample.instances:
            self.report.loss(
                sample.id, None, "class", "the alpha layout holds opacity only; masks left out"
            )
        if sample.alpha is None:
            return ()
        if sample.alpha.shape != sample.size or sample.alpha.dtype != np.uint8:
            self.fail(
                sample,
                None,
                f"alpha is {sample.alpha.dtype} {list(sample.alpha.shape)}, "
                f"expected uint8 {list(sample.size)}",
            )
            return ()
        return (self.png_payload(f"{base}{MASKS_DIR}/{rel}.png", sample.alpha),)

    # ---- instance bitmaps

    def _encode_bitmaps(
        self, sample: Sample, folder: str
    ) -> tuple[tuple[_base.PngPayload, ...], bytes]:
        """One 0/255 PNG per instance and the folder's classes.json."""
        if sample.alpha is not None:
            self.report.loss(sample.id, None, "alpha", "instance bitmaps hold no opacity")
        instances = _base.instances_of(sample, self.labels)
        pngs: list[_base.PngPayload] = []
        classes: dict[str, int] = {}
        for i, inst in enumerate(instances):
            if inst.mask.size != sample.size:
                self.fail(
                    sample,
                    i,
                    f"mask is {list(inst.mask.size)} but the image is {list(sample.size)} (h, w)",
                )
                continue
            if inst.iscrowd:
                self.report.loss(sample.id, i, "crowd", "instance bitmaps have no crowd flag")
            if inst.score is not None:
                self.report.loss(sample.id, i, "score", f"score {inst.score} not kept")
            file = f"{i:04d}.png"
            bitmap = rle.decode(inst.mask) * np.uint8(255)
            pngs.append(self.png_payload(f"{folder}/{MASKS_DIR}/{file}", bitmap))
            classes[file] = inst.class_id
            self.report.exact += 1
        return tuple(pngs), json.dumps(classes, indent=1).encode("utf-8")

    def finish(self) -> None:
        """Write labels.json: the label map and the layout."""
        data = {**self.labels.to_dict(), "layout": self.layout}
        (self.stage / LABELS_FILE).write_text(json.dumps(data, indent=1), encoding="utf-8")


def _image_suffix(sample: Sample) -> str:
    if sample.image is not None and sample.image.suffix:
        return sample.image.suffix.lower()
    if sample.image_bytes is not None and sample.image_bytes.startswith(b"\x89PNG"):
        return ".png"
    return ".jpg"
