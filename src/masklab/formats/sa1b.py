"""Segment Anything 1-Billion (SA-1B) annotations, read only.

Layout: ``sa_<n>.jpg`` beside ``sa_<n>.json`` (one file per image)::

    {"image": {"image_id": 1, "width": 1500, "height": 2250, "file_name": "sa_1.jpg"},
     "annotations": [{"id": 7, "segmentation": {"size": [2250, 1500], "counts": "..."},
                      "area": 1123, "bbox": [x, y, w, h], "predicted_iou": 0.94,
                      "stability_score": 0.97, "point_coords": [[x, y]],
                      "crop_box": [x, y, w, h]}]}

* ``segmentation`` is COCO's compressed RLE (``reference/formats.md`` §1.2), read with
  :func:`masklab.rle.from_coco`; masks may overlap (SA-1B's masks nest).
* Every annotation is an instance of the one class ``object`` (id 1; 0 is background),
  ``score = predicted_iou``, ``id`` the annotation id; the other fields (``area``,
  ``bbox``, ``stability_score``, ``point_coords``, ``crop_box``, ...) are kept in
  ``attributes``.
* An RLE whose size is not the image's, or whose counts are malformed, is reported with
  file and annotation id and skipped; an ``area`` or ``bbox`` that disagrees with the mask
  is reported and the mask kept (the pixels are the truth).

In a parallel conversion (:mod:`masklab.formats._parallel`) the plan is the json files'
paths; reading, parsing and decoding each file (the costly part: SA-1B files hold about
a hundred masks each) happens in the workers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from masklab.core import rle
from masklab.core.instances import Instance
from masklab.core.labels import Label, LabelMap, voc_color
from masklab.errors import FormatError, MaskFormatError
from masklab.formats import _base
from masklab.formats._base import Capabilities, Detection, FormatSpec, Sample

__all__ = ["CLASS_ID", "SPEC", "Reader", "detect"]

SPEC = FormatSpec(
    name="sa1b",
    description="Segment Anything (SA-1B): one JSON of compressed-RLE masks per image",
    kind="instances",
    holds=Capabilities(holes=True, parts=True, overlap=True, crowd=False, scores=True),
    extensions=(".json",),
    can_write=False,
)

CLASS_ID = 1
LABELS = LabelMap(
    (
        Label(0, ("background",), (0, 0, 0), isthing=False, role="background"),
        Label(CLASS_ID, ("object",), voc_color(CLASS_ID)),
    )
)
_SIGNS = ('"predicted_iou"', '"stability_score"', '"point_coords"', '"crop_box"')


def detect(path: Path) -> Detection:
    """A JSON (or a folder of them) with ``image`` and SAM's ``predicted_iou`` fields."""
    path = Path(path)
    if path.is_file():
        files = [path] if path.suffix.lower() == ".json" else []
    elif path.is_dir():
        files = sorted(path.glob("*.json"))[:3]
    else:
        files = []
    if not files:
        return Detection.no("no .json files")
    for f in files:
        try:
            with open(f, "rb") as fh:
                head = fh.read(8192).decode("utf-8", errors="replace")
        except OSError:
            continue
        signs = sum(s in head for s in _SIGNS)
        if '"image"' in head and '"annotations"' in head and signs >= 2:
            return Detection(3, f"{f.name} has SA-1B's image and predicted_iou/stability_score")
    return Detection.no("no .json with SA-1B's 'image', 'annotations' and 'predicted_iou'")


class Reader(_base.Reader):
    """Stream SA-1B files (sorted), one sample each."""

    spec = SPEC

    def __init__(
        self, path: str | os.PathLike[str], *, labels: LabelMap | None = None, strict: bool = False
    ) -> None:
        super().__init__(path, labels=labels, strict=strict)
        if not self.path.exists():
            raise FormatError(f"{self.path} does not exist", path=str(self.path))
        self.root = self.path.parent if self.path.is_file() else self.path

    @property
    def labels(self) -> LabelMap:
        """The given map, else ``background`` (0) and ``object`` (1)."""
        return self._labels if self._labels is not None else LABELS

    def _files(self) -> list[Path]:
        if self.path.is_file():
            return [self.path]
        return sorted(p for p in self.root.glob("*.json") if p.is_file())

    def __len__(self) -> int:
        return len(self._files())

    def __iter__(self) -> Iterator[Sample]:
        yield from (s for s in self.decode(self._files()) if s is not None)

    def plan(self) -> Iterator[Path]:
        """The json files, sorted: one work item a sample (nothing is read here)."""
        return iter(self._files())

    def decode(self, items: Sequence[Path]) -> Iterator[Sample | None]:
        """Each file read, parsed and its masks decoded; None for a file reported as
        unreadable or not SA-1B."""
        for f in items:
            try:
                data = json.loads(f.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
                self.problem(f, f.stem, f"cannot read the JSON: {err}")
                yield None
                continue
            try:
                yield self._sample(f, data)
            except FormatError as err:
                self.problem(f, f.stem, err)
                yield None

    def for_worker(self) -> Reader:
        """A copy with an empty report, to decode files in another process."""
        return self.worker_copy()

    def _sample(self, f: Path, data: Any) -> Sample:
        info = data.get("image") if isinstance(data, dict) else None
        anns = data.get("annotations") if isinstance(data, dict) else None
        if not isinstance(info, dict) or not isinstance(anns, list):
            raise FormatError("not an SA-1B file: needs an 'image' object and 'annotations'")
        h, w = info.get("height"), info.get("width")
        if not isinstance(h, int) or not isinstance(w, int) or h < 0 or w < 0:
            raise FormatError(f"image height/width must be integers, got {h!r}, {w!r}")
        size = (h, w)
        name = info.get("file_name")
        image = f.parent / name if isinstance(name, str) and name else None
        if image is not None and not image.is_file():
            image = None
        instances = []
        for k, ann in enumerate(anns):
            record = ann.get("id", k) if isinstance(ann, dict) else k
            try:
                instances.append(self._instance(ann, size))
            except (MaskFormatError, FormatError) as err:
                self.problem(f, f"annotation {record}", err)
                continue
            self._check(f, record, ann, instances[-1])
        sample_id = f.stem
        meta = {"image_id": info.get("image_id")} if "image_id" in info else {}
        return Sample(sample_id, size, image=image, instances=tuple(instances), meta=meta)

    def _instance(self, ann: Any, size: tuple[int, int]) -> Instance:
        if not isinstance(ann, dict) or not isinstance(ann.get("segmentation"), dict):
            raise FormatError("annotation needs a 'segmentation' RLE object")
        mask = rle.from_coco(ann["segmentation"])
        if mask.size != size:
            raise MaskFormatError(
                f"RLE size {list(mask.size)} is not the image's {list(size)} (height, width); "
                "fix 'size' or the image entry"
            )
        score = ann.get("predicted_iou")
        if score is not None and not isinstance(score, (int, float)):
            raise FormatError(f"predicted_iou must be a number, got {score!r}")
        ann_id = ann.get("id")
        attributes = {k: v for k, v in ann.items() if k not in ("segmentation", "predicted_iou")}
        return Instance(
            mask,
            CLASS_ID,
            id=ann_id if isinstance(ann_id, int) else None,
            score=None if score is None else float(score),
            attributes=attributes,
        )

    def _check(self, f: Path, record: Any, ann: dict[str, Any], inst: Instance) -> None:
        """Report an area or bbox that disagrees with the mask."""
        area = ann.get("area")
        if area is not None and area != inst.area:
            self.problem(
                f, f"annotation {record}", f"area {area} but the mask has {inst.area} pixels"
            )
        bbox = ann.get("bbox")
        if bbox is not None:
            ours = rle.bbox(inst.mask)
            if np.shape(bbox) != (4,) or not np.allclose(np.asarray(bbox, float), ours):
                self.problem(
                    f,
                    f"annotation {record}",
                    f"bbox {bbox} but the mask's box is {ours.tolist()}",
                )
