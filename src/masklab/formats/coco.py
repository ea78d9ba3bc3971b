"""COCO instances json: polygons and RLE per object (``reference/formats.md`` §1.6-1.9, §7.1).

Layouts read (every json is one subset, named after the file)::

    root/annotations/instances_<subset>.json   images in root/images/<subset>/ (Datumaro),
                                               root/<subset>/ (COCO download, mmdet), root/images/
    root/instances_<subset>.json               images beside it or in root/images/[<subset>/]
    split/_annotations.coco.json               Roboflow: images beside it, subset = folder name
    root/<split>/_annotations.coco.json        Roboflow export root, one json per split
    any.json                                   a single COCO instances json given as a file

Images need not exist: sizes come from the json's ``images`` (``height``, ``width``); a
sample whose file is not found has ``image=None``.

Conventions:

* ``segmentation`` is a list of flat polygons ``[x1, y1, x2, y2, ...]`` in corner
  coordinates whose **union** is the mask (pycocotools' ``annToRLE``), an uncompressed RLE
  (``counts`` a list, the ground-truth form of ``iscrowd`` regions) or a compressed RLE
  (``counts`` a string). Polygons are rasterised exactly as pycocotools does (§1.5); the
  original rings are kept in ``Instance.polygons``.
* Categories become the :class:`~masklab.core.labels.LabelMap`: ids are the category ids,
  colours the json's ``color`` or the VOC colour of the id, ``isthing`` from the json
  (default true).
* Bad records (a polygon of fewer than 3 points, RLE counts that do not sum to ``h*w``, an
  RLE whose size is not its image's, an unknown ``image_id`` or ``category_id``, a missing
  field, an empty ``segmentation``) are reported with the json file and the annotation id
  and skipped; the rest of the image still reads. An annotation id of 0 is read (the
  panopticapi sample starts at 0) but never written (§1.9: COCOeval reads 0 as "no match").
* Results files (a json *list* of ``{image_id, category_id, segmentation, score}``) are
  read with ``Reader(results, gt="instances_val.json")``: the ground-truth json gives the
  images (sizes, names) and categories; results get ids ``1..n`` as pycocotools' ``loadRes``.

The writer's ``mask_encoding`` option chooses how each mask is written (every choice is
pixel-exact, verified by rasterising before writing):

* ``"auto"`` (default): crowd regions as uncompressed RLE (the COCO ground-truth
  convention); an instance read from polygons as those polygons if they still rasterise to
  its mask (else compressed RLE); a mask without holes as its traced polygons
  (:func:`masklab.core.polygon.from_mask`, exact along pixel edges); a mask with holes as
  compressed RLE, since COCO's union of rings would fill them (cocoapi#153).
* ``"polygon"``: polygons for every non-empty mask. Holes are kept by joining each hole to
  its outer ring with a zero-width "keyhole" bridge, which pycocotools' even-odd fill
  rasterises exactly; a consumer that fills polygons some other way (non-zero winding,
  ``cv2.fillPoly`` per ring, a union of separate rings) may fill the holes. An empty mask
  has no polygon and is written as compressed RLE.
* ``"rle"``: compressed RLE for every mask.

Output: ``annotations/instances_<subset or "default">.json`` (one per subset) and
``images/<subset or "default">/<sample id><ext>``; image ids and annotation ids count from 1
in each json; ``area`` and ``bbox`` are the mask's pixel count and inclusive-extent box;
``score`` is written when present, ``attributes`` when it holds JSON values. Instances of a
class the label map does not know (or of its background or ignore labels) are reported as a
``class`` loss and not written.
"""

from __future__ import annotations

import importlib
import itertools
import json
import math
import os
import re
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import IO, Any, ClassVar, Literal, TypeGuard

from masklab.core import polygon, rle
from masklab.core.instances import Instance
from masklab.core.labels import Label, LabelMap, voc_color
from masklab.errors import FormatError, LabelMapError, MaskFormatError
from masklab.formats import _base
from masklab.formats._base import Capabilities, Detection, FormatSpec, Sample
from masklab.formats.report import ConversionReport

__all__ = ["SPEC", "Reader", "Writer", "detect"]

SPEC = FormatSpec(
    name="coco",
    description="COCO instances json: polygons, uncompressed and compressed RLE",
    kind="instances",
    holds=Capabilities(holes=True, parts=True, overlap=True, crowd=True, scores=True),
    extensions=(".json",),
)

MaskEncoding = Literal["auto", "polygon", "rle"]
MASK_ENCODINGS: tuple[str, ...] = ("auto", "polygon", "rle")
ROBOFLOW_JSON = "_annotations.coco.json"
INSTANCES_PREFIX = "instances_"
DEFAULT_SUBSET = "default"
_SNIFF_BYTES = 65536

ProblemSink = Callable[[object, object, "Exception | str"], None]  # a reader's ``problem``


# --------------------------------------------------------------------------- shared helpers
# (also used by masklab.formats.coco_panoptic)


def sniff(path: Path, n: int = _SNIFF_BYTES) -> str:
    """The first ``n`` bytes of a file as text ("" if it cannot be read)."""
    try:
        with path.open("rb") as f:
            return f.read(n).decode("utf-8", errors="replace")
    except OSError:
        return ""


_orjson: Any
try:  # optional accelerator: parses COCO files several times faster
    _orjson = importlib.import_module("orjson")
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None


def load_json(path: Path) -> Any:
    """A whole json file; FormatError naming the file when it cannot be read or parsed.
    Parsed with ``orjson`` when it is installed (``masklab[fast]``), else ``json``."""
    try:
        data = path.read_bytes()
        if _orjson is not None:
            try:
                return _orjson.loads(data)
            except _orjson.JSONDecodeError:
                pass  # let json word the error
        return json.loads(data)
    except json.JSONDecodeError as err:
        raise FormatError(
            f"{path}: not valid json ({err}); re-export or repair the file", path=str(path)
        ) from err
    except (OSError, UnicodeDecodeError) as err:
        raise FormatError(f"{path}: cannot read the file: {err}", path=str(path)) from err


def subset_of(json_path: Path, prefix: str) -> str | None:
    """The subset a json names: ``instances_val2017.json`` -> ``val2017`` (for ``prefix``
    ``instances_``); a Roboflow ``_annotations.coco.json`` is named by its folder.

    >>> subset_of(Path("annotations/instances_train.json"), "instances_")
    'train'
    >>> subset_of(Path("valid/_annotations.coco.json"), "instances_")
    'valid'
    """
    if json_path.name == ROBOFLOW_JSON:
        return json_path.parent.name or None
    stem = json_path.stem
    if stem.startswith(prefix) and len(stem) > len(prefix):
        return stem[len(prefix) :]
    return None


def image_dirs(json_path: Path, subset: str | None) -> tuple[Path, ...]:
    """Folders where the images of a json may be, most specific first."""
    here = json_path.parent
    if json_path.name == ROBOFLOW_JSON:
        return (here,)
    root = here.parent if here.name == "annotations" else here
    dirs: list[Path] = []
    if subset:
        dirs += [root / "images" / subset, root / subset]
    dirs += [root / "images", root]
    if root != here:
        dirs.append(here)
    return tuple(dirs)


def find_image(dirs: Sequence[Path], file_name: str) -> Path | None:
    """The first existing ``dir / file_name`` (None when the images are not there)."""
    rel = PurePosixPath(file_name)
    if rel.is_absolute() or ".." in rel.parts:
        return None
    for d in dirs:
        p = d.joinpath(*rel.parts)
        if p.is_file():
            return p
    return None


def labels_of(categories: object, json_path: Path, report: ProblemSink) -> LabelMap:
    """A LabelMap of a json's ``categories``; a bad or duplicate category is reported."""
    if not isinstance(categories, list):
        report(json_path, "categories", "'categories' must be a list of {id, name}")
        return LabelMap()
    labels: dict[int, Label] = {}
    for i, cat in enumerate(categories):
        where = f"category {cat.get('id', f'#{i}')}" if isinstance(cat, dict) else f"category #{i}"
        if not isinstance(cat, dict) or not _is_int(cat.get("id")):
            report(json_path, where, "a category needs an integer 'id'")
            continue
        cid = int(cat["id"])
        if cid in labels:
            report(json_path, where, f"category id {cid} appears twice; the first is kept")
            continue
        name = cat.get("name")
        color = cat.get("color")
        try:
            rgb = voc_color(cid) if color is None else _rgb(color)
        except (TypeError, ValueError) as err:
            report(json_path, where, f"bad color {color!r} ({err}); the VOC colour is used")
            rgb = voc_color(cid)
        isthing = cat.get("isthing", 1)
        labels[cid] = Label(
            cid,
            (str(name) if name is not None else str(cid),),
            rgb,
            isthing=bool(isthing),
            attributes={"supercategory": cat["supercategory"]} if "supercategory" in cat else {},
        )
    return LabelMap(tuple(labels.values()))


def categories_of(labels: LabelMap) -> list[dict[str, Any]]:
    """COCO ``categories`` of a LabelMap (background and ignore labels left out)."""
    return [
        {
            "id": lab.id,
            "name": lab.name,
            "supercategory": str(lab.attributes.get("supercategory", "")),
            "isthing": int(lab.isthing),
            "color": list(lab.color),
        }
        for lab in labels
        if lab.role == "class"
    ]


def writable_class(labels: LabelMap, class_id: int) -> str | None:
    """Why instances of ``class_id`` cannot be written as a COCO category (None if they can)."""
    if class_id not in labels:
        return f"class id {class_id} is not in the label map (known: {labels.ids})"
    role = labels.by_id(class_id).role
    if role != "class":
        return f"class id {class_id} is the label map's {role} label, not a category"
    return None


def safe_name(text: str) -> str:
    """A file-name-safe form of a subset name.

    >>> safe_name("val 2017/a")
    'val_2017_a'
    """
    return re.sub(r"[^\w.-]", "_", text) or DEFAULT_SUBSET


def relative_file(sample_id: str, suffix: str) -> str | None:
    """``<sample id><suffix>`` as a relative posix path, None if the id escapes the folder."""
    rel = PurePosixPath(sample_id + suffix)
    if not sample_id or rel.is_absolute() or ".." in rel.parts:
        return None
    return rel.as_posix()


def image_suffix(sample: Sample) -> str:
    """The extension of a sample's image file (from its path or its original name)."""
    if sample.image is not None and sample.image.suffix:
        return sample.image.suffix
    name = sample.meta.get("file_name") if isinstance(sample.meta, Mapping) else None
    if isinstance(name, str) and PurePosixPath(name).suffix:
        return PurePosixPath(name).suffix
    return ".jpg"


class JsonIndex:
    """One COCO-style json written at the end: ``images`` kept in memory, the (large)
    ``annotations`` streamed to a part file as they come, joined at :meth:`finish`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.images: list[dict[str, Any]] = []
        self.file_names: set[str] = set()
        self.next_annotation_id = 1
        self._part = path.with_name(f".{path.name}.annotations.part")
        self._file: IO[str] | None = None
        self._n = 0

    def add_image(self, record: dict[str, Any]) -> int:
        """Append an image record; returns its id (1, 2, ...)."""
        image_id = len(self.images) + 1
        self.images.append({"id": image_id, **record})
        return image_id

    def add_annotation(self, record: Mapping[str, Any]) -> None:
        """Stream one annotation record to the part file."""
        self.add_text(_dumps(record))

    def add_text(self, record: str) -> None:
        """Stream one annotation record, already json text, to the part file."""
        if self._file is None:
            _base.ensure_dir(self.path.parent)
            self._file = self._part.open("w", encoding="utf-8")
        self._file.write(("," if self._n else "") + record)
        self._n += 1

    def finish(self, head: Mapping[str, Any]) -> None:
        """Write ``{**head, "images": ..., "annotations": [...]}`` (via a temporary name)."""
        self.close()
        _base.ensure_dir(self.path.parent)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with tmp.open("w", encoding="utf-8") as out:
            out.write("{")
            for key, value in head.items():
                out.write(f"{json.dumps(key)}:{_dumps(value)},")
            out.write(f'"images":{_dumps(self.images)},"annotations":[')
            if self._n:
                with self._part.open("r", encoding="utf-8") as part:
                    shutil.copyfileobj(part, out)
            out.write("]}")
        os.replace(tmp, self.path)
        self._part.unlink(missing_ok=True)

    def close(self) -> None:
        """Close the part file (idempotent)."""
        if self._file is not None:
            self._file.close()
            self._file = None


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _rgb(value: object) -> tuple[int, int, int]:
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise ValueError("a colour is [r, g, b]")
    r, g, b = (int(v) for v in value)
    if not all(0 <= v <= 255 for v in (r, g, b)):
        raise ValueError("colour values are 0..255")
    return r, g, b


# --------------------------------------------------------------------------- detect


def detect(path: Path) -> Detection:
    """COCO instances: ``instances_*.json`` / ``_annotations.coco.json`` by name (certain),
    another json whose first 64 KB hold ``"segmentation"`` (likely), a folder holding those.
    Panoptic jsons (``segments_info``) are not this format."""
    path = Path(path)
    if path.is_file():
        return _detect_file(path)
    if not path.is_dir():
        return Detection.no(f"{path} is neither a file nor a folder")
    for json_path in _folder_jsons(path):
        found = _detect_file(json_path)
        if found.confidence:
            return Detection(found.confidence, f"{json_path.relative_to(path)}: {found.reason}")
    return Detection.no(
        "no annotations/instances_*.json, instances_*.json, _annotations.coco.json "
        "or <split>/_annotations.coco.json"
    )


def _detect_file(path: Path) -> Detection:
    if path.suffix.lower() != ".json":
        return Detection.no("not a .json file")
    head = sniff(path)
    if '"segments_info"' in head:
        return Detection.no("a panoptic json (segments_info), not instances")
    if path.name == ROBOFLOW_JSON or (
        path.name.startswith(INSTANCES_PREFIX) and path.name.endswith(".json")
    ):
        return Detection(3, f"COCO instances json name {path.name}")
    if head.lstrip().startswith("[") and '"segmentation"' in head and '"image_id"' in head:
        return Detection(1, "a COCO results list (read it with gt=<ground-truth json>)")
    if all(k in head for k in ('"images"', '"annotations"', '"segmentation"')):
        return Detection(2, "json with images and annotations holding 'segmentation'")
    if all(k in head for k in ('"images"', '"annotations"', '"categories"')):
        return Detection(1, "json with images, annotations and categories")
    return Detection.no("json without COCO images/annotations/segmentation keys")


def _folder_jsons(root: Path) -> list[Path]:
    """The instances jsons of a dataset folder, in a stable order."""
    found: list[Path] = []
    ann = root / "annotations"
    if ann.is_dir():
        found += sorted(ann.glob(f"{INSTANCES_PREFIX}*.json"))
    found += sorted(root.glob(f"{INSTANCES_PREFIX}*.json"))
    if (root / ROBOFLOW_JSON).is_file():
        found.append(root / ROBOFLOW_JSON)
    found += sorted(p for p in root.glob(f"*/{ROBOFLOW_JSON}") if p.is_file())
    return found


# --------------------------------------------------------------------------- reader


@dataclass(frozen=True, slots=True)
class _Source:
    json: Path
    subset: str | None
    image_dirs: tuple[Path, ...]


@dataclass(frozen=True, slots=True)
class _Context:
    """What decoding the annotations of a json's images needs to know about the json."""

    src: _Source
    cats: frozenset[int]
    ann_path: Path


@dataclass(frozen=True, slots=True)
class _Item:
    """An image of a json with its annotations (where, record), not decoded yet."""

    context: _Context
    image_id: object
    image: dict[str, Any]
    annotations: list[tuple[str, dict[str, Any]]]


class JsonReader(_base.Reader):
    """Base of the readers of COCO-style jsons (instances, panoptic): categories and image
    counts are scanned once; the first json loaded is kept for the iteration that usually
    follows; a json found unusable is reported once. Subclasses say which file holds a
    source's ground truth (``_doc_path``) and what makes a document unusable
    (``_invalid``: a record and a message, or None)."""

    _sources: list[Any]

    def _init_cache(self) -> None:
        self._scanned: tuple[LabelMap, int] | None = None
        self._cache: tuple[Path, dict[str, Any]] | None = None
        self._broken: set[Path] = set()  # jsons reported unusable during the scan

    @property
    def labels(self) -> LabelMap:
        """The given label map, else the categories of every json (merged)."""
        if self._labels is not None:
            return self._labels
        return self._scan()[0]

    def __len__(self) -> int:
        return self._scan()[1]

    def _doc_path(self, src: Any) -> Path:
        path: Path = src.json
        return path

    def _invalid(self, doc: Any) -> tuple[str | None, str] | None:
        raise NotImplementedError

    def _scan(self) -> tuple[LabelMap, int]:
        """Categories and image count of every json."""
        if self._scanned is not None:
            return self._scanned
        merged = LabelMap()
        n_images = 0
        for k, src in enumerate(self._sources):
            doc = self._load(src)
            if doc is None:
                continue
            if k == 0:
                self._cache = (self._doc_path(src), doc)
            try:
                merged = merged.merged(
                    labels_of(doc.get("categories"), self._doc_path(src), self.problem)
                )
            except LabelMapError as err:
                self.problem(src.json, "categories", err)
            n_images += len(doc["images"])
        self._scanned = (merged, n_images)
        return self._scanned

    def _load(self, src: Any) -> dict[str, Any] | None:
        """The document of a source (reported and None when unusable)."""
        path = self._doc_path(src)
        if self._cache is not None and self._cache[0] == path:
            return self._cache[1]
        if path in self._broken:
            return None
        try:
            doc = load_json(path)
        except FormatError as err:
            self._broken.add(path)
            self.problem(path, None, err)
            return None
        bad = self._invalid(doc)
        if bad is not None:
            self._broken.add(path)
            self.problem(path, bad[0], bad[1])
            return None
        checked: dict[str, Any] = doc
        return checked

    def plan(self) -> Iterator[Any]:
        """One item per usable image, in order, from each source's json in turn (each
        loaded once, then dropped); what the json has wrong is reported here."""
        self._scan()
        for src in self._sources:
            doc = self._load(src)
            self._cache = None
            if doc is not None:
                yield from self._plan_source(src, doc)

    def _plan_source(self, src: Any, doc: dict[str, Any]) -> Iterator[Any]:
        raise NotImplementedError

    def for_worker(self) -> _base.Reader:
        """A copy without the loaded json, to decode items in another process."""
        return self.worker_copy(_cache=None)


class Reader(JsonReader):
    """Samples of COCO instances jsons, one image at a time (see the module docstring).

    ``gt``: the ground-truth json that gives images and categories when ``path`` is a
    results list.
    """

    spec: ClassVar[FormatSpec] = SPEC

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        labels: LabelMap | None = None,
        strict: bool = False,
        gt: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__(path, labels=labels, strict=strict)
        self.gt = Path(gt) if gt is not None else None
        if not self.path.exists():
            raise FormatError(f"{self.path} does not exist", path=str(self.path))
        jsons = [self.path] if self.path.is_file() else _folder_jsons(self.path)
        if not jsons:
            raise FormatError(
                f"{self.path}: no COCO instances json found; looked for "
                "annotations/instances_*.json, instances_*.json, _annotations.coco.json "
                "and <split>/_annotations.coco.json (or pass the json file itself)",
                path=str(self.path),
            )
        self.results = self.path.is_file() and sniff(self.path, 4096).lstrip().startswith("[")
        if self.results and self.gt is None:
            raise FormatError(
                f"{self.path} is a results list (no images, no categories); read it with "
                "Reader(results, gt=<ground-truth instances json>) for image sizes and names",
                path=str(self.path),
            )
        self._sources = []
        for p in jsons:
            named = self.gt if self.results and self.gt is not None else p  # results: GT's
            subset = subset_of(named, INSTANCES_PREFIX)
            self._sources.append(_Source(p, subset, image_dirs(named, subset)))
        self._init_cache()

    # ---- scanning

    def _doc_path(self, src: _Source) -> Path:
        return self.gt if self.results and self.gt is not None else src.json

    def _invalid(self, doc: Any) -> tuple[str | None, str] | None:
        if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
            return None, "not a COCO instances json: expected an object with an 'images' list"
        if not self.results and not isinstance(doc.get("annotations", []), list):
            return "annotations", "'annotations' must be a list"
        return None

    # ---- iteration: plan (images and their raw annotations) + decode (masks)

    def __iter__(self) -> Iterator[Sample]:
        self._scan()
        for src in self._sources:
            doc = self._load(src)
            self._cache = None
            if doc is None:
                continue
            items = self._plan_source(src, doc)  # reports the json's bad records first
            while window := list(itertools.islice(items, _WINDOW)):
                yield from (s for s in self.decode(window) if s is not None)

    def decode(self, items: Sequence[_Item]) -> Iterator[Sample]:
        """The samples of :meth:`plan`'s items: compressed RLEs of all of them decoded in
        one vectorised pass, then polygons and the rest image by image."""
        decoded = _decode_window([(item.image, item.annotations) for item in items])
        for item in items:
            yield self._sample(item, decoded)

    def _plan_source(self, src: _Source, doc: dict[str, Any]) -> Iterator[_Item]:
        """One item per image: its json record and its annotations, not yet decoded; bad
        image records and annotations without a usable image are reported here."""
        gt_path = self._doc_path(src)
        cats = frozenset(lab.id for lab in labels_of(doc.get("categories"), gt_path, _ignore))
        images: dict[object, dict[str, Any]] = {}
        skipped: set[object] = set()
        for i, im in enumerate(doc["images"]):
            where = f"image {im.get('id', f'#{i}')}" if isinstance(im, dict) else f"image #{i}"
            err = image_error(im)
            if err is None and im["id"] in images:
                err = f"image id {im['id']!r} appears twice; the first is kept"
            if err is not None:
                self.problem(gt_path, where, err)
                if isinstance(im, dict) and "id" in im:
                    skipped.add(im["id"])
                continue
            images[im["id"]] = im
        if self.results:
            ann_path = src.json
            try:
                anns = load_json(ann_path)
            except FormatError as err:
                self.problem(ann_path, None, err)
                return
            if not isinstance(anns, list):
                self.problem(ann_path, None, "a results file must be a json list of detections")
                return
        else:
            ann_path = gt_path
            anns = doc.get("annotations", [])
        groups: dict[object, list[tuple[str, dict[str, Any]]]] = {}
        for i, ann in enumerate(anns):
            where = _record(ann, i, self.results)
            if not isinstance(ann, dict):
                self.problem(ann_path, where, "an annotation must be a json object")
                continue
            image_id = ann.get("image_id")
            if image_id is None:
                self.problem(ann_path, where, "missing 'image_id'")
            elif not isinstance(image_id, (int, str)) or isinstance(image_id, bool):
                self.problem(ann_path, where, f"'image_id' must be an id, got {image_id!r}")
            elif image_id in skipped:
                self.problem(ann_path, where, f"its image {image_id!r} was skipped (see above)")
            elif image_id not in images:
                self.problem(ann_path, where, f"image_id {image_id!r} is not in the json's images")
            else:  # results are numbered 1..n, as pycocotools' loadRes does
                record = {**ann, "id": i + 1} if self.results else ann
                groups.setdefault(image_id, []).append((where, record))
        del anns
        context = _Context(src, cats, ann_path)
        for image_id, im in images.items():
            yield _Item(context, image_id, im, groups.pop(image_id, []))

    def _sample(self, item: _Item, decoded: dict[int, rle.RLE]) -> Sample:
        im, src = item.image, item.context.src
        h, w = int(im["height"]), int(im["width"])
        file_name = str(im["file_name"])
        sample_id = PurePosixPath(file_name).with_suffix("").as_posix()
        instances = self._instances(
            item.annotations, (h, w), item.context.cats, item.context.ann_path, sample_id, decoded
        )
        return Sample(
            id=sample_id,
            size=(h, w),
            image=find_image(src.image_dirs, file_name),
            instances=tuple(instances),
            subset=src.subset,
            meta={"image_id": item.image_id, "file_name": file_name},
        )

    def _instances(
        self,
        anns: list[tuple[str, dict[str, Any]]],
        size: tuple[int, int],
        cats: frozenset[int],
        path: Path,
        sample_id: str,
        decoded: dict[int, rle.RLE],
    ) -> list[Instance]:
        """Decode one image's annotations (polygons in one batch, RLEs in another, or
        already in ``decoded``: id(annotation) -> mask); bad ones are reported in the
        json's order, polygons reaching outside the image counted as ``clipped`` (the mask
        keeps only what lies inside, as in pycocotools)."""
        h, w = size
        polys: list[int] = []
        rles: list[int] = []
        masks: list[rle.RLE | None] = [None] * len(anns)
        errors: dict[int, Exception | str] = {}
        for k, (_, ann) in enumerate(anns):
            err = _annotation_error(ann, size, cats, self.results)
            if err is not None:
                errors[k] = err
            elif id(ann) in decoded:
                masks[k] = decoded[id(ann)]
            else:
                (polys if isinstance(ann["segmentation"], list) else rles).append(k)
        for ks, one, batch in (
            (polys, _polygon_mask(h, w), lambda items: polygon.to_rle_batch(items, h, w)),
            (rles, rle.from_coco, rle.from_coco_batch),
        ):
            if not ks:
                continue
            items = [anns[k][1]["segmentation"] for k in ks]
            try:
                for k, m in zip(ks, batch(items), strict=True):
                    masks[k] = m
            except (MaskFormatError, TypeError, ValueError):  # find the culprits one by one
                for k, item in zip(ks, items, strict=True):
                    try:
                        masks[k] = one(item)
                    except (MaskFormatError, TypeError, ValueError) as err:
                        errors[k] = err
        for k in sorted(errors):
            self.problem(path, anns[k][0], errors[k])
        out: list[Instance] = []
        for (_, ann), mask in zip(anns, masks, strict=True):
            if mask is None:
                continue
            seg = ann["segmentation"]
            rings = tuple(map(tuple, seg)) if isinstance(seg, list) else None
            if rings is not None and _outside(rings, h, w):
                self.report.clipped += 1
                self.report.loss(
                    sample_id,
                    len(out),
                    "clipped",
                    f"annotation {ann.get('id')}: polygon reaches outside the {w}x{h} image; "
                    "the mask keeps the part inside",
                )
            attrs = ann.get("attributes")
            score = ann.get("score")
            out.append(
                Instance(
                    mask,
                    int(ann["category_id"]),
                    id=int(ann["id"]) if _is_int(ann.get("id")) else None,
                    score=float(score) if score is not None else None,
                    iscrowd=bool(ann.get("iscrowd", 0)),
                    polygons=rings,
                    attributes=dict(attrs) if isinstance(attrs, dict) else {},
                )
            )
        return out


_WINDOW = 512  # images whose compressed RLE strings are decoded in one vectorised call


def _decode_window(
    window: list[tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]],
) -> dict[int, rle.RLE]:
    """Decode the compressed RLE strings of many images at once (one NumPy pass instead of
    one per image): id(annotation) -> mask. Only well-formed strings of the image's size
    are taken; when any of them fails, nothing is, and each image decodes (and reports)
    its own."""
    anns: list[dict[str, Any]] = []
    for im, group in window:
        size = [im["height"], im["width"]]
        for _, ann in group:
            seg = ann.get("segmentation")
            if (
                isinstance(seg, dict)
                and isinstance(seg.get("counts"), str)
                and seg.get("size") == size
            ):
                anns.append(ann)
    if not anns:
        return {}
    try:
        masks = rle.from_coco_batch([a["segmentation"] for a in anns])
    except (MaskFormatError, TypeError, ValueError):
        return {}
    return {id(a): m for a, m in zip(anns, masks, strict=True)}


def _outside(rings: tuple[tuple[float, ...], ...], h: int, w: int) -> bool:
    """True if a vertex lies outside [0, w] x [0, h] (pixel-corner coordinates)."""
    return any(
        min(r[0::2]) < 0 or max(r[0::2]) > w or min(r[1::2]) < 0 or max(r[1::2]) > h
        for r in rings
        if r
    )


def _polygon_mask(h: int, w: int) -> Callable[[Any], rle.RLE]:
    def one(item: Any) -> rle.RLE:
        return polygon.to_rle(item, h, w)

    return one


def _ignore(path: object, record: object, error: Exception | str) -> None:
    """A problem sink that drops (used when a json's categories were reported already)."""


def _record(ann: object, index: int, results: bool) -> str:
    if results:
        return f"result {index + 1}"
    if isinstance(ann, dict) and _is_int(ann.get("id")):
        return f"annotation {ann['id']}"
    return f"annotations[{index}]"


def image_error(im: object) -> str | None:
    """What is wrong with a json ``images`` record (None if nothing)."""
    if not isinstance(im, dict):
        return "an image record must be a json object"
    missing = [k for k in ("id", "file_name", "height", "width") if k not in im]
    if missing:
        return f"missing {missing}; COCO images need id, file_name, height and width"
    if not isinstance(im["id"], (int, str)) or isinstance(im["id"], bool):
        return f"'id' must be an integer or a string, got {im['id']!r}"
    if not isinstance(im["file_name"], str) or not im["file_name"]:
        return f"'file_name' must be a non-empty string, got {im['file_name']!r}"
    h, w = im["height"], im["width"]
    if not (_is_int(h) and _is_int(w) and h > 0 and w > 0):
        return f"height and width must be positive integers, got {h!r} x {w!r}"
    return None


def _annotation_error(
    ann: dict[str, Any], size: tuple[int, int], cats: frozenset[int], results: bool
) -> str | None:
    """What is wrong with an annotation before decoding its mask (None if nothing)."""
    required = ("category_id", "segmentation") if results else ("id", "category_id", "segmentation")
    missing = [k for k in required if k not in ann]
    if missing:
        return f"missing {missing}"
    if not results and not _is_int(ann["id"]):
        return f"'id' must be an integer, got {ann['id']!r}"
    cid = ann["category_id"]
    if not _is_int(cid) or cid not in cats:
        return f"category_id {cid!r} is not one of the json's categories"
    score = ann.get("score")
    if score is not None and not (_is_number(score) and math.isfinite(score)):
        return f"'score' must be a finite number, got {score!r}"
    seg = ann["segmentation"]
    if isinstance(seg, list):
        if not seg:
            return "empty 'segmentation' (a box-only annotation has no mask to read)"
        for j, ring in enumerate(seg):
            if not isinstance(ring, list):
                return f"polygon {j} must be a flat list [x1, y1, x2, y2, ...]"
            if len(ring) % 2 or len(ring) < 6:
                return (
                    f"polygon {j} has {len(ring)} coordinates; a polygon needs an even "
                    "number, at least 6 (3 points)"
                )
        return None
    if isinstance(seg, dict):
        if "size" not in seg or "counts" not in seg:
            return "an RLE segmentation needs 'size' and 'counts'"
        rsize = seg["size"]
        if not isinstance(rsize, list) or [*rsize] != [size[0], size[1]]:
            return f"RLE size {rsize!r} differs from its image's [{size[0]}, {size[1]}]"
        if not isinstance(seg["counts"], (str, list)):
            return "RLE 'counts' must be a string (compressed) or a list of run lengths"
        return None
    return f"'segmentation' must be polygons or an RLE dict, got {type(seg).__name__}"


# --------------------------------------------------------------------------- writer


class JsonWriter(_base.Writer):
    """Base of the writers of COCO-style jsons (instances, panoptic): one streamed
    :class:`JsonIndex` per subset, ``annotations/<prefix><subset>.json``, finished with
    the categories of the label map."""

    json_prefix: ClassVar[str]

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
        self._jsons: dict[str, JsonIndex] = {}

    def _index(self, subset: str) -> JsonIndex:
        """The json of a subset, started on first use."""
        index = self._jsons.get(subset)
        if index is None:
            index = JsonIndex(self.stage / "annotations" / f"{self.json_prefix}{subset}.json")
            self._jsons[subset] = index
        return index

    def admit(
        self,
        sample: Sample,
        subset: str,
        file_name: str | None,
        report: ConversionReport,
        *,
        key: str | None = None,
    ) -> tuple[JsonIndex, int] | None:
        """The first half of a commit: refuse a second image named ``key`` (default:
        ``file_name``) in ``subset`` (encode's entries are then left out, as one process
        never reaches them), else add encode's ``report``, place the image and number
        its image record: (the subset's index, the image id). None when ``file_name`` is
        None (nothing to write) or the name was taken."""
        index = self._index(subset)
        if file_name is None:
            self.absorb(report)
            return None
        key = file_name if key is None else key
        if key in index.file_names:
            self.fail(sample, None, f"a second image named {key!r} in subset {subset!r}")
            return None
        self.absorb(report)
        index.file_names.add(key)
        if sample.image is not None or sample.image_bytes is not None:
            self.place_image(sample, self.stage / "images" / subset / file_name)
        h, w = sample.size
        return index, index.add_image({"file_name": file_name, "height": h, "width": w})

    def finish(self) -> None:
        categories = categories_of(self.labels)
        for index in self._jsons.values():
            index.finish(
                {
                    "info": {"description": "written by masklab"},
                    "licenses": [],
                    "categories": categories,
                }
            )

    def abort(self) -> None:
        for index in self._jsons.values():
            index.close()
        super().abort()


@dataclass(frozen=True, slots=True)
class _Part:
    """What :meth:`Writer.encode` made of a sample (see ``_base.Writer.commit``)."""

    subset: str
    file_name: str | None  # None: the sample id is not a file name (reported by encode)
    image: Sample  # the sample without its masks (image file or bytes, size)
    annotations: tuple[str, ...]  # json records without their leading '{"id":..,"image_id":..,'


class Writer(JsonWriter):
    """Write samples as COCO instances jsons (``mask_encoding``: auto, polygon or rle)."""

    spec: ClassVar[FormatSpec] = SPEC
    json_prefix = INSTANCES_PREFIX
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
        encoding = options.get("mask_encoding", "auto")
        if encoding not in MASK_ENCODINGS:
            raise FormatError(
                f"mask_encoding must be one of {list(MASK_ENCODINGS)}, got {encoding!r}"
            )
        super().__init__(path, labels=labels, strict=strict, overwrite=overwrite, **options)
        self.mask_encoding: MaskEncoding = encoding

    def encode(self, sample: Sample) -> _Part:
        """The sample's image record and its annotations as json text (all but ``id`` and
        ``image_id``, numbered at commit); no file name when the sample id is unusable."""
        subset = safe_name(sample.subset) if sample.subset else DEFAULT_SUBSET
        file_name = relative_file(sample.id, image_suffix(sample))
        image = replace(sample, instances=(), semantic=None, alpha=None)
        if file_name is None:
            self.fail(sample, None, f"sample id {sample.id!r} is not a relative file name")
            return _Part(subset, None, image, ())
        instances = _base.instances_of(sample, self.labels)
        kept: list[tuple[int, Instance]] = []
        for i, inst in enumerate(instances):
            why = writable_class(self.labels, inst.class_id)
            if why is not None:
                self.report.loss(sample.id, i, "class", f"{why}; the instance is not written")
                continue
            try:
                _base.check_size(sample.id, inst.mask, sample.size)
            except MaskFormatError as err:
                self.fail(sample, i, err)
                continue
            if inst.score is not None and not math.isfinite(inst.score):
                self.fail(sample, i, f"score {inst.score!r} is not a finite number")
                continue
            kept.append((i, inst))
        segmentations = self._segmentations([inst for _, inst in kept], sample.size)
        records: list[str] = []
        for (i, inst), seg in zip(kept, segmentations, strict=True):
            record: dict[str, Any] = {
                "category_id": inst.class_id,
                "segmentation": seg,
                "area": rle.area(inst.mask),
                "bbox": rle.bbox(inst.mask).tolist(),
                "iscrowd": int(inst.iscrowd),
            }
            if inst.score is not None:
                record["score"] = float(inst.score)
            if inst.attributes:
                try:
                    _dumps(dict(inst.attributes))
                    record["attributes"] = dict(inst.attributes)
                except (TypeError, ValueError) as err:
                    self.report.loss(sample.id, i, "attributes", f"not JSON values: {err}")
            records.append(_dumps(record)[1:])  # '"category_id":...}'
            self.report.exact += 1
        return _Part(subset, file_name, image, tuple(records))

    def commit(self, part: _Part, report: ConversionReport) -> None:
        """:meth:`admit` the image, then number and append its annotation records."""
        admitted = self.admit(part.image, part.subset, part.file_name, report)
        if admitted is None:
            return
        index, image_id = admitted
        for text in part.annotations:
            index.add_text(f'{{"id":{index.next_annotation_id},"image_id":{image_id},{text}')
            index.next_annotation_id += 1

    def _segmentations(self, instances: Sequence[Instance], size: tuple[int, int]) -> list[Any]:
        """Each instance's COCO segmentation under ``mask_encoding``, every polygon
        verified to rasterise (pycocotools' way) to exactly the instance's mask."""
        h, w = size
        mode = self.mask_encoding
        out: list[Any] = [None] * len(instances)
        given: dict[int, list[list[float]]] = {}
        traced: dict[int, list[list[float]]] = {}
        for k, inst in enumerate(instances):
            if mode == "rle" or rle.area(inst.mask) == 0:
                continue
            if mode == "auto" and inst.iscrowd:
                out[k] = inst.mask.to_coco(compressed=False)
                continue
            if inst.polygons and all(len(r) >= 6 and len(r) % 2 == 0 for r in inst.polygons):
                given[k] = [list(r) for r in inst.polygons]
                continue
            if mode == "polygon":
                traced[k] = polygon.from_mask(inst.mask).to_coco(keep_holes=True)
            else:
                found = polygon.from_mask(inst.mask)
                if not found.has_holes:
                    traced[k] = found.to_coco(keep_holes=False)
        accepted = _exact_polygons({**given, **traced}, instances, h, w)
        if mode == "polygon":  # given polygons that no longer match: trace the mask instead
            retrace = {
                k: polygon.from_mask(instances[k].mask).to_coco(keep_holes=True)
                for k in given
                if k not in accepted
            }
            accepted.update(_exact_polygons(retrace, instances, h, w))
        for k, rings in accepted.items():
            out[k] = rings
        missing = [k for k, seg in enumerate(out) if seg is None]
        for k, d in zip(
            missing, rle.to_coco_batch([instances[k].mask for k in missing]), strict=True
        ):
            out[k] = d
        return out


def _exact_polygons(
    candidates: Mapping[int, list[list[float]]],
    instances: Sequence[Instance],
    h: int,
    w: int,
) -> dict[int, list[list[float]]]:
    """The candidates whose rasterisation equals their instance's mask (one batch call;
    one by one only when a candidate is malformed)."""
    if not candidates:
        return {}
    keys = list(candidates)
    items = [candidates[k] for k in keys]
    try:
        masks: list[rle.RLE | None] = list(polygon.to_rle_batch(items, h, w))
    except (MaskFormatError, TypeError, ValueError):
        masks = []
        for item in items:
            try:
                masks.append(polygon.to_rle(item, h, w))
            except (MaskFormatError, TypeError, ValueError):
                masks.append(None)
    return {
        k: item
        for k, item, m in zip(keys, items, masks, strict=True)
        if m is not None and m == instances[k].mask
    }
