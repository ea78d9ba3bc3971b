"""Ultralytics YOLO segmentation labels (``reference/formats.md`` §3).

Layout (what ``ultralytics`` trains on)::

    data.yaml                 path: ., train: images/train, val: images/val, names: {0: cat}
    images/<subset>/a.jpg
    labels/<subset>/a.txt     one row per instance: <class> x1 y1 x2 y2 ... xn yn

* ``data.yaml``: ``names`` as a list or a ``{id: name}`` map, optional ``nc``; each of
  ``train``/``val``/``test`` is a folder of images (searched recursively), a ``.txt``
  listing image paths, or a list of those, relative to ``path`` (itself relative to the
  yaml's folder; a ``path`` that does not exist there falls back to the yaml's folder). A
  label file is the image path with its last ``/images/`` replaced by ``/labels/`` and
  the suffix by ``.txt`` (Ultralytics' ``img2label_paths``); no label file means no
  instances. Without a yaml the subsets are the folders under ``images/``.
* A row is a 0-based class and at least 3 points, normalised by the image width (x) and
  height (y). YOLO class ``k`` is label id ``k`` (names from ``data.yaml``).
* Pixels: the normalised points are scaled by the image size read from the image header
  (EXIF orientation applied, as Ultralytics' ``exif_size`` does) and rasterised in COCO's
  corner convention (``x * w, y * h``, pycocotools' ``frPyObjects``). Ultralytics' own
  training targets use ``cv2.fillPoly`` on truncated coordinates (pixel-centre
  convention, §3.2), which covers about half a pixel more on every side; masklab keeps
  one convention for every polygon format.
* Rows are checked as ``verify_image_label`` does: fewer than 3 points, an odd number of
  coordinates, a non-numeric value, a class outside ``0..nc-1`` or a coordinate outside
  ``[-0.01, 1.01]`` is reported with file and line and the row skipped (Ultralytics
  drops the whole image's labels instead, §9.13).

Writing: each instance's mask is traced with :func:`masklab.polygon.from_mask` into rings
along pixel edges, which rasterise back exactly. A row holds one ring, so a hole is filled
(a ``holes`` loss with the IoU kept) and an instance in several parts becomes one row per
part, as Ultralytics' ``convert_segment_masks_to_yolo_seg`` writes them (a ``parts``
loss: the pixels stay, the parts read back as separate instances). Coordinates are
written with 6 decimals; if rounding moves a pixel the instance gets a ``resampled``
loss with the IoU of the written rows. Crowd regions are left out (``crowd`` loss, as
Ultralytics' ``convert_coco`` skips them) and scores are dropped (``score`` loss).

Writer options: ``decimals`` (6), ``class_ids``: ``"keep"`` (label id ``k`` is YOLO class
``k``; unused ids below the largest get placeholder names ``class_<k>``, since Ultralytics
needs classes ``0..nc-1``) or ``"contiguous"`` (the map's classes renumbered ``0..n-1`` in
id order).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from masklab.core import polygon, rle
from masklab.core.instances import Instance
from masklab.core.labels import Label, LabelMap, voc_color
from masklab.errors import FormatError, LabelMapError, MaskFormatError
from masklab.formats import _base
from masklab.formats._base import Capabilities, Detection, FormatSpec, Sample
from masklab.formats.report import ConversionReport

__all__ = ["SPEC", "Reader", "Writer", "detect", "parse_data_yaml"]

SPEC = FormatSpec(
    name="yolo-seg",
    description="Ultralytics YOLO segmentation: data.yaml, images/<subset>, labels/<subset>/*.txt",
    kind="instances",
    holds=Capabilities(holes=False, parts=False, overlap=True, crowd=False, scores=False),
    extensions=(".txt", ".yaml"),
)

YAML_NAMES = ("data.yaml", "dataset.yaml", "data.yml")
SPLITS = ("train", "val", "test")
COORD_MIN, COORD_MAX = -0.01, 1.01  # Ultralytics' bounds for normalised values (§3.1)
MIN_POINTS = 3
DECIMALS = 6


# --------------------------------------------------------------------------- data.yaml


def parse_data_yaml(text: str, *, where: str = "data.yaml") -> dict[str, Any]:
    """Parse the YAML subset Ultralytics dataset files use (no PyYAML needed).

    Top-level ``key: value`` pairs with scalars (plain or quoted strings, numbers,
    ``null``, ``true``/``false``), flow lists ``[a, b]`` and maps ``{0: a}``, and block
    lists (``- item``) or maps (``0: name``) one level deep. Block scalars (``|``,
    ``>``) and deeper nesting are skipped (their value is ``None``); comments are dropped.

    >>> parse_data_yaml("path: .  # root\\nnames:\\n  0: cat\\n  1: 'hot dog'\\n")
    {'path': '.', 'names': {0: 'cat', 1: 'hot dog'}}
    >>> parse_data_yaml("names: [a, b]\\nval:\\n- x/val\\n- y/val")
    {'names': ['a', 'b'], 'val': ['x/val', 'y/val']}
    """
    lines = [(n, _strip_comment(raw)) for n, raw in enumerate(text.splitlines(), start=1)]
    lines = [(n, ln) for n, ln in lines if ln.strip() and ln.strip() not in ("---", "...")]
    out: dict[str, Any] = {}
    i = 0
    while i < len(lines):
        n, line = lines[i]
        if line[0] in " \t":
            raise FormatError(f"{where}:{n}: unexpected indentation", path=where, record=n)
        key, value = _split_key(line, where, n)
        i += 1
        block: list[tuple[int, str]] = []
        while i < len(lines) and (
            lines[i][1][0] in " \t" or (value == "" and lines[i][1].startswith("-"))
        ):
            block.append(lines[i])
            i += 1
        if value in ("|", ">") or value[:1] in ("|", ">"):
            out[key] = None  # a block scalar (e.g. a download script): not needed
        elif value == "":
            out[key] = _parse_block(block, where) if block else None
        else:
            out[key] = _parse_scalar(value, where, n)
    return out


def _strip_comment(line: str) -> str:
    quote = ""
    for j, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (j == 0 or line[j - 1] in " \t"):
            return line[:j].rstrip()
    return line.rstrip()


_KEY = re.compile(r"""^\s*("(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^'"\s][^:]*?)\s*:(?:\s+(.*))?$""")


def _split_key(line: str, where: str, n: int) -> tuple[Any, str]:
    m = _KEY.match(line)
    if m is None:
        raise FormatError(
            f"{where}:{n}: expected 'key: value', got {line.strip()!r}", path=where, record=n
        )
    return _parse_scalar(m.group(1), where, n), (m.group(2) or "").strip()


def _parse_block(block: list[tuple[int, str]], where: str) -> Any:
    indent = len(block[0][1]) - len(block[0][1].lstrip())
    items = [(n, ln) for n, ln in block if len(ln) - len(ln.lstrip()) == indent]
    if len(items) != len(block):
        return None  # deeper nesting: not part of the subset we read
    if all(ln.lstrip().startswith("-") for _, ln in items):
        return [_parse_scalar(ln.lstrip()[1:].strip(), where, n) for n, ln in items]
    out: dict[Any, Any] = {}
    for n, ln in items:
        key, value = _split_key(ln, where, n)
        out[key] = _parse_scalar(value, where, n) if value else None
    return out


def _split_flow(body: str) -> list[str]:
    parts, depth, quote, start = [], 0, "", 0
    for j, ch in enumerate(body):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(body[start:j])
            start = j + 1
    parts.append(body[start:])
    return [p.strip() for p in parts if p.strip()]


def _parse_scalar(text: str, where: str, n: int) -> Any:
    s = text.strip()
    if s.startswith("[") and s.endswith("]"):
        return [_parse_scalar(p, where, n) for p in _split_flow(s[1:-1])]
    if s.startswith("{") and s.endswith("}"):
        out: dict[Any, Any] = {}
        for p in _split_flow(s[1:-1]):
            key, value = _split_key(p, where, n)
            out[key] = _parse_scalar(value, where, n) if value else None
        return out
    if len(s) >= 2 and s[0] == s[-1] == "'":
        return s[1:-1].replace("''", "'")
    if len(s) >= 2 and s[0] == s[-1] == '"':
        try:
            return json.loads(s)
        except json.JSONDecodeError as err:
            raise FormatError(f"{where}:{n}: bad quoted string {s}: {err}", path=where) from err
    if s in ("", "~", "null", "Null", "NULL"):
        return None
    if s in ("true", "True", "TRUE"):
        return True
    if s in ("false", "False", "FALSE"):
        return False
    if re.fullmatch(r"[-+]?\d+", s):
        return int(s)
    if re.fullmatch(r"[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?", s):
        return float(s)
    return s


def _labels_from_names(names: Any, nc: Any, where: str) -> LabelMap:
    if names is None:
        if isinstance(nc, int) and nc >= 0:
            names = [f"class_{i}" for i in range(nc)]
        else:
            return LabelMap()
    if isinstance(names, list):
        pairs = list(enumerate(names))
    elif isinstance(names, dict):
        pairs = []
        for k, v in names.items():
            if not isinstance(k, int) or isinstance(k, bool) or k < 0:
                raise FormatError(
                    f"{where}: class id {k!r} in 'names' is not a non-negative integer; "
                    "Ultralytics needs names {0: a, 1: b, ...}",
                    path=where,
                    field="names",
                )
            pairs.append((k, v))
    else:
        raise FormatError(
            f"{where}: 'names' must be a list or a map of id: name, got {names!r}",
            path=where,
            field="names",
        )
    return LabelMap(tuple(Label(i, (str(v),), voc_color(i)) for i, v in sorted(pairs)))


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class _Layout:
    root: Path
    yaml: Path | None
    labels: LabelMap
    nc: int | None
    subsets: tuple[tuple[str | None, tuple[Path, ...]], ...]  # subset -> sources


def _find_yaml(path: Path) -> Path | None:
    if path.is_file():
        return path if path.suffix.lower() in (".yaml", ".yml") else None
    for name in YAML_NAMES:
        if (path / name).is_file():
            return path / name
    found = sorted(p for p in path.glob("*.y*ml") if p.is_file())
    return found[0] if len(found) == 1 else None


def _layout(path: Path) -> _Layout:
    if not path.exists():
        raise FormatError(f"{path} does not exist", path=str(path))
    yaml = _find_yaml(path)
    folder = path.parent if path.is_file() else path
    if yaml is None:
        if path.is_file():
            raise FormatError(f"{path}: not a data.yaml; pass the dataset folder", path=str(path))
        images = folder / "images"
        subsets: list[tuple[str | None, tuple[Path, ...]]] = (
            [(p.name, (p,)) for p in sorted(images.iterdir()) if p.is_dir()]
            if images.is_dir()
            else []
        )
        if not subsets and images.is_dir():
            subsets = [(None, (images,))]
        return _Layout(folder, None, LabelMap(), None, tuple(subsets))
    try:
        data = parse_data_yaml(yaml.read_text(encoding="utf-8"), where=str(yaml))
    except (OSError, UnicodeDecodeError) as err:
        raise FormatError(f"{yaml}: cannot read: {err}", path=str(yaml)) from err
    root = yaml.parent
    given = data.get("path")
    if isinstance(given, str) and given:
        p = Path(given)
        cand = p if p.is_absolute() else root / p
        if cand.is_dir():
            root = cand
    nc = data.get("nc")
    labels = _labels_from_names(data.get("names"), nc, str(yaml))
    if not isinstance(nc, int) or isinstance(nc, bool):
        nc = len(labels) if len(labels) else None
    subsets = []
    keys = [k for k in SPLITS if data.get(k)]
    for key in keys:
        value = data[key]
        values = value if isinstance(value, list) else [value]
        sources = tuple(
            Path(v) if Path(str(v)).is_absolute() else root / str(v) for v in values if v
        )
        subsets.append((key, sources))
    if not keys:
        images = root / "images"
        if images.is_dir():
            subsets = [(p.name, (p,)) for p in sorted(images.iterdir()) if p.is_dir()]
    return _Layout(root, yaml, labels, nc, tuple(subsets))


def _label_path(image: Path) -> Path:
    """Ultralytics' img2label_paths: the last ``images`` folder becomes ``labels``, the
    suffix ``.txt``.

    >>> _label_path(Path("ds/images/train/a.jpg")).as_posix()
    'ds/labels/train/a.txt'
    """
    parts = list(image.parts)
    at = [i for i, p in enumerate(parts[:-1]) if p == "images"]
    if at:
        parts[at[-1]] = "labels"
    return Path(*parts).with_suffix(".txt")


# --------------------------------------------------------------------------- detect


def detect(path: Path) -> Detection:
    """A data.yaml with names, or labels/ holding rows of a class and >= 3 points."""
    path = Path(path)
    folder = path.parent if path.is_file() else path
    yaml = _find_yaml(path) if path.exists() else None
    has_names = False
    if yaml is not None:
        try:
            head = yaml.read_text(encoding="utf-8", errors="replace")[:8192]
        except OSError:
            head = ""
        has_names = re.search(r"^names\s*:", head, re.M) is not None
        if re.search(r"^kpt_shape\s*:", head, re.M):
            return Detection.no(f"{yaml.name} has kpt_shape: a YOLO pose dataset")
        if has_names:
            try:
                data = parse_data_yaml(head, where=str(yaml))
                given = data.get("path")
                if isinstance(given, str) and (yaml.parent / given).is_dir():
                    folder = yaml.parent / given
            except FormatError:
                pass
    elif path.is_file():
        return Detection.no("not a data.yaml or a dataset folder")
    labels = folder / "labels"
    rows = _first_rows(labels) if labels.is_dir() else []
    if not rows:
        if has_names and (folder / "images").is_dir():
            return Detection(1, "data.yaml with names and images/, but no label rows to check")
        return Detection.no("no data.yaml with names and no labels/*.txt with polygon rows")
    sizes = {len(r.split()) for r in rows}
    if sizes == {5}:
        return Detection.no("labels/ rows hold 5 values: YOLO detection boxes, not polygons")
    bad = sorted(n for n in sizes if n < 7 or n % 2 == 0)
    if bad:
        return Detection.no(f"labels/ rows hold {bad[0]} values, not a class and >= 3 points")
    if sizes == {9}:
        return Detection(2, "labels/ rows hold 4 points: polygons, or YOLO oriented boxes")
    if has_names:
        return Detection(3, f"{yaml.name if yaml else 'data.yaml'} with names, polygon rows")
    return Detection(2, "labels/*.txt rows of a class and >= 3 points (no data.yaml)")


def _first_rows(labels: Path, max_files: int = 20, max_rows: int = 20) -> list[str]:
    """Up to ``max_rows`` non-blank rows of the first label files (a few KB in all)."""
    rows: list[str] = []
    seen = 0
    stack = [labels]
    while stack and seen < max_files:
        here = stack.pop()
        try:
            entries = sorted(os.scandir(here), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir():
                stack.append(Path(entry.path))
            elif entry.name.endswith(".txt") and seen < max_files:
                seen += 1
                try:
                    with open(entry.path, encoding="utf-8", errors="replace") as f:
                        chunk, more = f.read(4096), f.read(1) != ""
                except OSError:
                    continue
                lines = chunk.splitlines()[:-1] if more else chunk.splitlines()
                rows += [ln for ln in lines if ln.strip()][: max_rows - len(rows)]
                if len(rows) >= max_rows:
                    return rows
    return rows


# --------------------------------------------------------------------------- reader


class Reader(_base.Reader):
    """Stream the images of a YOLO segmentation dataset with their rasterised rows."""

    spec = SPEC

    def __init__(
        self, path: str | os.PathLike[str], *, labels: LabelMap | None = None, strict: bool = False
    ) -> None:
        super().__init__(path, labels=labels, strict=strict)
        self._layout = _layout(self.path)
        if not self._layout.subsets:
            raise FormatError(
                f"{self.path}: no subsets: data.yaml names no train/val/test and there is "
                "no images/ folder",
                path=str(self.path),
            )

    @property
    def labels(self) -> LabelMap:
        """The given map, else ``names`` of data.yaml (YOLO class k is label id k), else
        ``class_<k>`` for every class found in the label files."""
        if self._labels is not None:
            return self._labels
        if self._layout.yaml is None and not len(self._layout.labels):
            self._labels = LabelMap(
                tuple(Label(k, (f"class_{k}",), voc_color(k)) for k in sorted(self._classes()))
            )
            return self._labels
        return self._layout.labels

    def _classes(self) -> set[int]:
        """Class ids in the first column of every label file (rows checked later)."""
        found: set[int] = set()
        for _, sources in self._layout.subsets:
            for src in sources:
                folder = _label_path(src / "x").parent if src.is_dir() else None
                if folder is None or not folder.is_dir():
                    continue
                for txt in folder.rglob("*.txt"):
                    try:
                        lines = txt.read_text(encoding="utf-8").splitlines()
                    except (OSError, UnicodeDecodeError):
                        continue  # reported when iterating
                    for line in lines:
                        head = line.split(maxsplit=1)[:1]
                        if head and head[0].isdigit():
                            found.add(int(head[0]))
        return found

    def _images(self, sources: Sequence[Path]) -> Iterator[tuple[str, Path]]:
        """(sample id, image path) for each image of a subset's sources."""
        for src in sources:
            if src.is_dir():
                for p in sorted(src.rglob("*")):
                    if p.is_file() and p.suffix.lower() in _base.IMAGE_EXTENSIONS:
                        yield p.relative_to(src).with_suffix("").as_posix(), p
                self._orphans(src)
            elif src.is_file() and src.suffix.lower() == ".txt":
                yield from self._listed(src)
            elif src.is_file() and src.suffix.lower() in _base.IMAGE_EXTENSIONS:
                yield src.stem, src
            else:
                self.problem(src, None, "subset source not found; fix the path in data.yaml")

    def _listed(self, listing: Path) -> Iterator[tuple[str, Path]]:
        try:
            text = listing.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            self.problem(listing, None, f"cannot read the image list: {err}")
            return
        for n, line in enumerate(text.splitlines(), start=1):
            entry = line.strip()
            if not entry:
                continue
            p = Path(entry)
            if p.is_absolute():
                cands = [p]
            elif entry.startswith("./"):
                cands = [listing.parent / entry[2:]]
            else:
                cands = [self._layout.root / p, listing.parent / p]
            found = next((c for c in cands if c.is_file()), None)
            if found is None:
                self.problem(listing, n, f"image {entry!r} not found; fix the list")
                continue
            yield found.stem, found

    def _orphans(self, images: Path) -> None:
        labels = _label_path(images / "x").parent
        if labels == images.with_suffix("") or not labels.is_dir():
            return
        have = {
            p.relative_to(images).with_suffix("").as_posix()
            for p in images.rglob("*")
            if p.suffix.lower() in _base.IMAGE_EXTENSIONS
        }
        for txt in sorted(labels.rglob("*.txt")):
            if txt.relative_to(labels).with_suffix("").as_posix() not in have:
                self.problem(txt, None, "label file without an image; add the image or remove it")

    def __iter__(self) -> Iterator[Sample]:
        for item in self.plan():
            sample = self._read(*item)
            if sample is not None:
                yield sample

    def plan(self) -> Iterator[tuple[str, Path, str | None]]:
        """``(id, image, subset)`` per image, in order (nothing read but image lists);
        missing listed images and orphan label files are reported here, at their place."""
        for subset, sources in self._layout.subsets:
            for sample_id, image in self._images(sources):
                yield sample_id, image, subset

    def decode(self, items: Sequence[tuple[str, Path, str | None]]) -> Iterator[Sample | None]:
        """The samples of :meth:`plan`'s images (label rows parsed and rasterised); None
        for one reported and skipped."""
        for item in items:
            yield self._read(*item)

    def for_worker(self) -> Reader:
        """A copy that decodes in another process (an empty report)."""
        return self.worker_copy()

    def __len__(self) -> int:
        n = 0
        for _, sources in self._layout.subsets:
            for src in sources:
                if src.is_dir():
                    n += sum(
                        1
                        for p in src.rglob("*")
                        if p.is_file() and p.suffix.lower() in _base.IMAGE_EXTENSIONS
                    )
                elif src.is_file() and src.suffix.lower() == ".txt":
                    try:
                        text = src.read_text(encoding="utf-8")
                    except (OSError, UnicodeDecodeError):
                        continue  # reported when iterating
                    n += sum(1 for ln in text.splitlines() if ln.strip())
                elif src.is_file():
                    n += 1
        return n

    def _read(self, sample_id: str, image: Path, subset: str | None) -> Sample | None:
        try:
            h, w = _base.image_size(image, exif=True)
        except FormatError as err:
            self.problem(image, sample_id, f"{err}; the rows cannot be scaled without its size")
            return None
        txt = _label_path(image)
        rows: list[tuple[int, list[float]]] = []
        if txt.is_file():
            try:
                text = txt.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as err:
                self.problem(txt, None, f"cannot read the label file: {err}")
                text = ""
            for n, line in enumerate(text.splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    rows.append(self._row(line, w, h))
                except (FormatError, MaskFormatError) as err:
                    self.problem(txt, n, err)
        instances: tuple[Instance, ...] = ()
        for k, (_, xy) in enumerate(rows):
            xs, ys = xy[0::2], xy[1::2]
            if min(xs) < 0 or max(xs) > w or min(ys) < 0 or max(ys) > h:
                self.report.clipped += 1
                self.report.loss(
                    sample_id,
                    k,
                    "clipped",
                    f"{txt.name} row {k + 1} reaches outside [0, 1] (within Ultralytics' "
                    "tolerance); the mask keeps the part inside the image",
                )
        if rows:
            masks = polygon.to_rle_batch([[xy] for _, xy in rows], h, w)
            instances = tuple(
                Instance(m, cls, polygons=(tuple(xy),))
                for (cls, xy), m in zip(rows, masks, strict=True)
            )
        return Sample(sample_id, (h, w), image=image, instances=instances, subset=subset)

    def _row(self, line: str, w: int, h: int) -> tuple[int, list[float]]:
        """(class, denormalised flat coordinates) of one row; FormatError says what is wrong."""
        tokens = line.split()
        try:
            values = np.array([float(t) for t in tokens], np.float64)
        except ValueError:
            bad = next(t for t in tokens if not _is_float(t))
            raise FormatError(f"value {bad!r} is not a number") from None
        cls_value, coords = values[0], values[1:]
        if not math.isfinite(cls_value) or cls_value != int(cls_value) or cls_value < 0:
            raise FormatError(f"class {tokens[0]!r} is not a non-negative integer")
        cls = int(cls_value)
        nc = self._layout.nc
        if nc is not None and cls >= nc:
            raise FormatError(f"class {cls} is not below nc={nc}; add it to 'names' in data.yaml")
        if coords.size == 4:
            raise FormatError(
                "row has 4 coordinates (a detection box 'class cx cy w h'), "
                "a segmentation row needs a class and >= 3 points"
            )
        if coords.size % 2:
            raise FormatError(
                f"row has an odd number of coordinates ({coords.size}); expected x y pairs"
            )
        if coords.size < 2 * MIN_POINTS:
            raise FormatError(
                f"row has {coords.size // 2} point(s); a polygon needs at least {MIN_POINTS}"
            )
        if not np.isfinite(coords).all():
            raise FormatError("row has a non-finite coordinate")
        lo, hi = float(coords.min()), float(coords.max())
        if lo < COORD_MIN or hi > COORD_MAX:
            raise FormatError(
                f"coordinates must be normalised to [0, 1] (Ultralytics allows "
                f"[{COORD_MIN}, {COORD_MAX}]), found {lo if lo < COORD_MIN else hi:g}; "
                "divide x by the image width and y by its height"
            )
        xy = coords.reshape(-1, 2) * np.array([w, h], np.float64)
        return cls, xy.reshape(-1).tolist()


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------- writer


@dataclass(frozen=True, slots=True)
class _Part:
    """What :meth:`Writer.encode` made of a sample (see ``_base.Writer.commit``)."""

    image: Sample  # the sample without its masks (image file or bytes, subset)
    name: str  # the image's file name in images/<subset>/
    labels: bytes  # the label file
    classes: tuple[int, ...]  # the class ids written


class Writer(_base.Writer):
    """Write images, one label file per image and data.yaml (see the module docstring)."""

    spec = SPEC
    parallel = True

    def __init__(self, path: str | os.PathLike[str], *, labels: LabelMap, **options: Any) -> None:
        mode = options.get("class_ids", "keep")
        if mode not in ("keep", "contiguous"):
            raise ValueError(f"class_ids must be 'keep' or 'contiguous', got {mode!r}")
        decimals = int(options.get("decimals", DECIMALS))
        unknown = sorted(set(options) - {"class_ids", "decimals", "images", "strict", "overwrite"})
        if unknown:
            raise TypeError(
                f"unknown yolo-seg options {unknown}; known: class_ids, decimals, images"
            )
        super().__init__(path, labels=labels, **options)
        self.decimals = decimals
        self.class_ids: str = mode
        usable = [lab for lab in labels if lab.id >= 0 and lab.role != "ignore"]
        if mode == "contiguous":
            classes = sorted((lab for lab in usable if lab.role == "class"), key=lambda b: b.id)
            self._to_yolo = {lab.id: i for i, lab in enumerate(classes)}
            self._names = {i: lab.name for i, lab in enumerate(classes)}
        else:
            self._to_yolo = {lab.id: lab.id for lab in usable}
            self._names = {lab.id: lab.name for lab in usable}
        self._subsets: list[str] = []

    def _yolo_class(self, class_id: int) -> int | None:
        if class_id in self._to_yolo:
            return self._to_yolo[class_id]
        if self.class_ids == "keep" and class_id >= 0:
            self._to_yolo[class_id] = class_id
            try:
                self._names[class_id] = self.labels.by_id(class_id).name
            except LabelMapError:
                self._names[class_id] = f"class_{class_id}"
            return class_id
        return None

    def encode(self, sample: Sample) -> _Part:
        """The sample's label file text (instances traced, rows checked by rasterising
        them back); the image is placed at commit."""
        h, w = sample.size
        rows: list[str] = []
        classes: list[int] = []
        traced: list[tuple[int, Instance, polygon.Polygons, list[list[float]]]] = []
        for i, inst in enumerate(_base.instances_of(sample, self.labels)):
            done = self._rows(sample, i, inst, h, w)
            if done is not None:
                rows += done[0]
                classes.append(inst.class_id)
                traced.append((i, inst, done[1], done[2]))
        # check what the rows rasterise to, all instances of the image in one batch
        written = polygon.to_rle_batch([t[3] for t in traced], h, w) if traced else []
        for (i, inst, polys, _), back in zip(traced, written, strict=True):
            self._report_fidelity(sample, i, inst, polys, back)
        image = replace(sample, instances=(), semantic=None, alpha=None)
        text = "".join(r + "\n" for r in rows)
        return _Part(image, _image_name(sample), text.encode("utf-8"), tuple(classes))

    def commit(self, part: _Part, report: ConversionReport) -> None:
        """Place the image (a sample without one is reported first, as in one process),
        then write the label file and note the classes for data.yaml."""
        sample = part.image
        subset = sample.subset or "train"
        if subset not in self._subsets:
            self._subsets.append(subset)
        if not self.place_image(sample, self.stage / "images" / subset / part.name):
            self.fail(sample, None, "no image to place; YOLO needs the image for its size")
        self.absorb(report)
        for class_id in part.classes:
            self._yolo_class(class_id)  # names the classes found in the workers here too
        txt = self.stage / "labels" / subset / Path(part.name).with_suffix(".txt")
        self.write_payload((txt.relative_to(self.stage).as_posix(), part.labels, None))

    def _rows(
        self, sample: Sample, i: int, inst: Instance, h: int, w: int
    ) -> tuple[list[str], polygon.Polygons, list[list[float]]] | None:
        """The rows of one instance, its traced polygons and the rings as written (the
        coordinates the rows say, in pixels); None when nothing is written."""
        try:
            _base.check_size(sample.id, inst.mask, sample.size)
        except MaskFormatError as err:
            self.fail(sample, i, err)
            return None
        if inst.iscrowd:
            self.report.loss(sample.id, i, "crowd", "crowd region left out (YOLO has no crowd)")
            return None
        cls = self._yolo_class(inst.class_id)
        if cls is None:
            self.report.loss(
                sample.id, i, "class", f"class id {inst.class_id} has no YOLO class; left out"
            )
            return None
        if inst.score is not None:
            self.report.loss(sample.id, i, "score", f"score {inst.score:g} dropped")
        traced = polygon.from_mask(inst.mask)
        if not traced.parts:
            self.report.loss(sample.id, i, "empty", "empty mask: no row written")
            return None
        rows, rings = [], []
        scale = np.array([w, h], np.float64)
        for part in traced.parts:
            values = (part.outer / scale).reshape(-1)
            text = (f"%.{self.decimals}f " * values.size % tuple(values.tolist())).rstrip()
            rows.append(f"{cls} {text}")
            back = np.array(text.split(), np.float64).reshape(-1, 2) * scale
            rings.append(back.reshape(-1).tolist())
        return rows, traced, rings

    def _report_fidelity(
        self, sample: Sample, i: int, inst: Instance, traced: polygon.Polygons, written: rle.RLE
    ) -> None:
        """Compare what the rows rasterise to with the mask; report what changed."""
        exact = written == inst.mask
        iou = 1.0 if exact else float(rle.iou([written], [inst.mask])[0, 0])
        if traced.has_holes:
            self.report.loss(
                sample.id,
                i,
                "holes",
                f"{traced.n_holes} hole(s) filled: a YOLO row is one outer ring",
                iou,
            )
        elif not exact:
            self.report.loss(
                sample.id, i, "resampled", f"{self.decimals}-decimal coordinates moved pixels", iou
            )
        if len(traced.parts) > 1:
            self.report.loss(
                sample.id,
                i,
                "parts",
                f"became {len(traced.parts)} rows (one per part; they read back as "
                "separate instances)",
            )
        if exact and len(traced.parts) == 1:
            self.report.exact += 1

    def finish(self) -> None:
        subsets = self._subsets or ["train"]
        nc = max(self._names, default=-1) + 1
        lines = ["path: .", *(f"{s}: images/{s}" for s in subsets), f"nc: {nc}", "names:"]
        lines += [
            f"  {i}: {json.dumps(self._names.get(i, f'class_{i}'), ensure_ascii=False)}"
            for i in range(nc)
        ]
        (self.stage / "data.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _image_name(sample: Sample) -> str:
    """File name of the sample's image inside images/<subset>/ (nested ids keep folders)."""
    if sample.image is not None:
        suffix = sample.image.suffix
    else:
        suffix = ".png" if (sample.image_bytes or b"").startswith(b"\x89PNG") else ".jpg"
    parts = [p for p in sample.id.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    stem = "/".join(parts) or "image"
    if stem.lower().endswith(suffix.lower()):
        stem = stem[: -len(suffix)]
    return stem + suffix
