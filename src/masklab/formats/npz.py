"""Dense NumPy instance stacks: one ``.npz`` per image.

Layout (a masklab convention; what training code often caches)::

    labels.json          the LabelMap (``LabelMap.to_dict()``)
    <id>.npz             masks (N, H, W) bool or uint8, labels (N,) int64,
                         optional scores (N,) float64 (NaN = none), iscrowd (N,) bool,
                         ids (N,) int64 (-1 = none), attributes (N,) str (JSON objects)
    images/<id>.<ext>    the image, when there is one

Ids may hold ``/``: ``a/b.npz`` is sample ``a/b``. Nonzero mask values are foreground.
``(0, H, W)`` stacks keep the size of images without instances. Files are written as
``np.savez_compressed`` writes them (but dated 1980-01-01, so equal arrays give equal
bytes) and read with ``allow_pickle=False``, so a file cannot run code.
Everything an :class:`~masklab.core.instances.Instance` holds except its source polygons
round-trips exactly (the masks are the pixels, so nothing is lost).

In a parallel conversion (:mod:`masklab.formats._parallel`) workers decompress and encode
the stacks (reading) and decode and compress them (writing); the parent writes in order.
"""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from masklab.core import rle
from masklab.core.instances import Instance
from masklab.core.labels import Label, LabelMap, voc_color
from masklab.errors import FormatError, LabelMapError, MaskFormatError
from masklab.formats import _base
from masklab.formats._base import Capabilities, Detection, FormatSpec, Sample
from masklab.formats.report import ConversionReport

__all__ = ["SPEC", "Reader", "Writer", "detect"]

SPEC = FormatSpec(
    name="npz",
    description="One .npz per image: masks (N, H, W), labels (N,), optional scores/iscrowd",
    kind="instances",
    holds=Capabilities(holes=True, parts=True, overlap=True, crowd=True, scores=True),
    extensions=(".npz",),
)

LABELS_FILE = "labels.json"
IMAGES_DIR = "images"
_READ_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile)


def detect(path: Path) -> Detection:
    """A folder of .npz files whose first one holds a ``masks`` array."""
    path = Path(path)
    if path.is_file():
        first: Path | None = path if path.suffix == ".npz" else None
    elif path.is_dir():
        first = next((p for p in sorted(path.glob("*.npz")) if p.is_file()), None)
    else:
        first = None
    if first is None:
        return Detection.no("no .npz files")
    try:
        with zipfile.ZipFile(first) as z:
            names = set(z.namelist())
    except (OSError, zipfile.BadZipFile) as err:
        return Detection.no(f"{first.name} is not a readable .npz: {err}")
    if "masks.npy" not in names:
        return Detection.no(f"{first.name} has no 'masks' array")
    if "labels.npy" in names:
        return Detection(3, "npz files with 'masks' and 'labels' arrays")
    return Detection(2, "npz files with a 'masks' array")


#: a work item of the reader: the .npz file, its sample id and its image
_Item = tuple[Path, str, Path | None]


class Reader(_base.Reader):
    """Stream the .npz files of a folder (sorted), one sample each."""

    spec = SPEC

    def __init__(
        self, path: str | os.PathLike[str], *, labels: LabelMap | None = None, strict: bool = False
    ) -> None:
        super().__init__(path, labels=labels, strict=strict)
        if not self.path.exists():
            raise FormatError(f"{self.path} does not exist", path=str(self.path))
        self.root = self.path.parent if self.path.is_file() else self.path
        self._stored: LabelMap | None = None
        labels_file = self.root / LABELS_FILE
        if labels_file.is_file():
            try:
                self._stored = LabelMap.from_dict(json.loads(labels_file.read_text("utf-8")))
            except (OSError, ValueError, KeyError, TypeError, LabelMapError) as err:
                raise FormatError(
                    f"{labels_file}: not a label map: {err}; fix or remove it",
                    path=str(labels_file),
                ) from err

    def _files(self) -> list[Path]:
        if self.path.is_file():
            return [self.path]
        return sorted(p for p in self.root.rglob("*.npz") if p.is_file())

    @property
    def labels(self) -> LabelMap:
        """The given map, else labels.json, else ``class_<id>`` for every id in the files."""
        if self._labels is not None:
            return self._labels
        if self._stored is not None:
            return self._stored
        ids: set[int] = set()
        for f in self._files():
            try:
                with open(f, "rb") as fh, _open_npz(fh) as data:
                    if "labels" in data.files:
                        ids.update(int(v) for v in np.asarray(data["labels"]).reshape(-1))
            except (*_READ_ERRORS, FormatError):
                continue  # reported when iterating
        self._stored = LabelMap(tuple(Label(i, (f"class_{i}",), voc_color(i)) for i in sorted(ids)))
        return self._stored

    def __len__(self) -> int:
        return len(self._files())

    def __iter__(self) -> Iterator[Sample]:
        yield from (s for s in self.decode(list(self.plan())) if s is not None)

    def plan(self) -> Iterator[_Item]:
        """One item per .npz file (sorted): the file, its sample id and its image (found
        by id under ``images/``); nothing is decompressed here."""
        images = _base.find_images(self.root / IMAGES_DIR)
        for f in self._files():
            sample_id = f.relative_to(self.root).with_suffix("").as_posix()
            image = images.get(sample_id) or images.get(Path(sample_id).name)
            nested = self.root / IMAGES_DIR / Path(sample_id).parent
            if image is None and Path(sample_id).parent != Path("."):
                image = _base.find_images(nested).get(Path(sample_id).name)
            yield f, sample_id, image

    def decode(self, items: Sequence[_Item]) -> Iterator[Sample | None]:
        """Each file's arrays read and its masks run-length encoded; None for a file
        reported as unreadable or malformed."""
        for f, sample_id, image in items:
            try:
                yield self._read(f, sample_id, image)
            except (FormatError, MaskFormatError) as err:
                self.problem(f, sample_id, err)
                yield None
            except _READ_ERRORS as err:
                self.problem(f, sample_id, f"cannot read the .npz: {err}")
                yield None

    def for_worker(self) -> Reader:
        """A copy with an empty report, to decode files in another process."""
        return self.worker_copy()

    def _read(self, f: Path, sample_id: str, image: Path | None) -> Sample:
        with open(f, "rb") as fh, _open_npz(fh) as data:
            if "masks" not in data.files:
                raise FormatError(f"no 'masks' array (found {sorted(data.files)})")
            masks = data["masks"]
            if masks.ndim != 3:
                raise FormatError(f"'masks' must be (N, H, W), got shape {masks.shape}")
            if masks.dtype.kind not in "biu":
                raise FormatError(f"'masks' must be bool or integer, got {masks.dtype}")
            n = masks.shape[0]
            labels = _column(data, "labels", n, np.int64)
            if labels is None:
                raise FormatError("no 'labels' array; it holds one class id per mask")
            scores = _column(data, "scores", n, np.float64)
            iscrowd = _column(data, "iscrowd", n, np.bool_)
            ids = _column(data, "ids", n, np.int64)
            attrs = _column(data, "attributes", n, np.str_)
            instances = []
            for i in range(n):
                attributes: dict[str, Any] = {}
                if attrs is not None and attrs[i]:
                    try:
                        attributes = json.loads(str(attrs[i]))
                    except json.JSONDecodeError as err:
                        raise FormatError(f"attributes[{i}] is not JSON: {err}") from err
                score = None if scores is None or math.isnan(scores[i]) else float(scores[i])
                instances.append(
                    Instance(
                        rle.encode(masks[i]),
                        int(labels[i]),
                        id=None if ids is None or ids[i] < 0 else int(ids[i]),
                        score=score,
                        iscrowd=bool(iscrowd[i]) if iscrowd is not None else False,
                        attributes=attributes,
                    )
                )
        size = (int(masks.shape[1]), int(masks.shape[2]))
        return Sample(sample_id, size, image=image, instances=tuple(instances))


def _open_npz(fh: Any) -> Any:
    """np.load on an open file (NumPy leaks its own handle when a zip is corrupt)."""
    data = np.load(fh, allow_pickle=False)
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise FormatError("not an .npz archive (a single .npy array?); save with np.savez")
    return data


def _column(data: Any, key: str, n: int, dtype: Any) -> npt.NDArray[Any] | None:
    if key not in data.files:
        return None
    arr = np.asarray(data[key])
    if arr.shape != (n,):
        raise FormatError(f"{key!r} must have shape ({n},) for {n} masks, got {arr.shape}")
    if dtype is np.str_:
        if arr.dtype.kind != "U":
            raise FormatError(f"{key!r} must hold strings, got {arr.dtype}")
        return arr
    try:
        return arr.astype(dtype, casting="same_kind" if dtype is not np.bool_ else "unsafe")
    except TypeError as err:
        raise FormatError(f"{key!r} has dtype {arr.dtype}, expected {np.dtype(dtype)}") from err


@dataclass(frozen=True, slots=True)
class _Part:
    """What :meth:`Writer.encode` made of a sample (see ``_base.Writer.commit``)."""

    rel: str  # the file's path in the output, without .npz
    image: Sample  # the sample without its masks (image file or bytes)
    image_file: str | None  # where the image goes (None: the sample has none)
    npz: bytes


class Writer(_base.Writer):
    """Write one compressed .npz per sample, ``labels.json`` and the images. A second
    sample with the same file name is refused (reported; the first is kept)."""

    spec = SPEC
    parallel = True

    def __init__(self, path: str | os.PathLike[str], *, labels: LabelMap, **options: Any) -> None:
        super().__init__(path, labels=labels, **options)
        self._written: set[str] = set()  # .npz files written (relative, without .npz)

    def encode(self, sample: Sample) -> _Part:
        """The sample's .npz bytes (masks decoded into the dense stack, compressed); the
        file and the image are written at commit."""
        instances = _base.instances_of(sample, self.labels)
        good: list[tuple[int, Instance]] = []
        for i, inst in enumerate(instances):
            try:
                _base.check_size(sample.id, inst.mask, sample.size)
            except MaskFormatError as err:
                self.fail(sample, i, err)
                continue
            good.append((i, inst))
        n = len(good)
        h, w = sample.size
        masks = np.zeros((n, h, w), np.bool_)
        for j, (_, inst) in enumerate(good):
            masks[j] = rle.decode(inst.mask).view(np.bool_)
        arrays: dict[str, npt.NDArray[Any]] = {
            "masks": masks,
            "labels": np.array([inst.class_id for _, inst in good], np.int64),
        }
        insts = [inst for _, inst in good]
        if any(inst.score is not None for inst in insts):
            arrays["scores"] = np.array(
                [np.nan if inst.score is None else inst.score for inst in insts], np.float64
            )
        if any(inst.iscrowd for inst in insts):
            arrays["iscrowd"] = np.array([inst.iscrowd for inst in insts], np.bool_)
        if any(inst.id is not None for inst in insts):
            arrays["ids"] = np.array([-1 if inst.id is None else inst.id for inst in insts])
        if any(inst.attributes for inst in insts):
            try:
                text = [
                    json.dumps(dict(inst.attributes)) if inst.attributes else "" for inst in insts
                ]
            except (TypeError, ValueError) as err:
                self.fail(sample, None, f"attributes are not JSON-serialisable: {err}")
                text = None
            if text is not None:
                arrays["attributes"] = np.array(text, np.str_)
        rel = _safe_id(sample.id)
        image_file = None
        if sample.image is not None or sample.image_bytes is not None:
            suffix = sample.image.suffix if sample.image is not None else _suffix(sample)
            image_file = f"{IMAGES_DIR}/{rel}{suffix}"
        self.report.exact += n
        image = replace(sample, instances=(), semantic=None, alpha=None)
        return _Part(rel, image, image_file, _npz_bytes(arrays))

    def commit(self, part: _Part, report: ConversionReport) -> None:
        """Refuse a second sample at the same file name (then encode's entries are left
        out, as one process never reaches them); write the .npz, place the image."""
        if part.rel in self._written:
            self.fail(part.image, None, f"a second sample written as {part.rel}.npz")
            return
        self._written.add(part.rel)
        self.absorb(report)
        self.write_payload((f"{part.rel}.npz", part.npz, None))
        if part.image_file is not None:
            self.place_image(part.image, self.stage / part.image_file)

    def finish(self) -> None:
        text = json.dumps(self.labels.to_dict(), indent=2, ensure_ascii=False)
        (self.stage / LABELS_FILE).write_text(text + "\n", encoding="utf-8")


def _npz_bytes(arrays: dict[str, npt.NDArray[Any]]) -> bytes:
    """``np.savez_compressed``'s archive with every entry dated 1980-01-01, so the bytes
    depend on the arrays alone (NumPy dates each entry now)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for key, value in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with z.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asanyarray(value), allow_pickle=False)
    return buf.getvalue()


def _safe_id(sample_id: str) -> str:
    parts = [p for p in sample_id.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    return "/".join(parts) or "sample"


def _suffix(sample: Sample) -> str:
    return ".png" if (sample.image_bytes or b"").startswith(b"\x89PNG") else ".jpg"
