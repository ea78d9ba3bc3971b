"""Synthetic datasets for format tests: instances with holes, several parts, overlaps and
crowd regions, drawn with OpenCV, plus their image files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from masklab import rle
from masklab.core.instances import Instance
from masklab.core.labels import Label, LabelMap, voc_color
from masklab.formats import Sample

LABELS = LabelMap(
    (
        Label(0, ("background",), (0, 0, 0), isthing=False, role="background"),
        Label(1, ("cell",), voc_color(1)),
        Label(2, ("leaf",), voc_color(2)),
        Label(3, ("stone",), voc_color(3)),
    )
)


def scene(
    rng: np.random.Generator, h: int, w: int, *, overlap: bool, crowd: bool
) -> list[Instance]:
    """A ring (hole), a two-part object, plain blobs; an overlapping pair; a crowd region."""
    out = []
    ring = np.zeros((h, w), np.uint8)
    c = (int(rng.integers(w // 4, w // 2)), int(rng.integers(h // 4, h // 2)))
    cv2.circle(ring, c, min(h, w) // 5, 1, -1)
    cv2.circle(ring, c, min(h, w) // 12, 0, -1)
    out.append(Instance(rle.encode(ring), 1))
    two = np.zeros((h, w), np.uint8)
    two[2:6, w - 12 : w - 4] = 1
    two[h - 8 : h - 3, w - 12 : w - 6] = 1
    out.append(Instance(rle.encode(two), 2))
    for _ in range(int(rng.integers(1, 3))):
        blob = np.zeros((h, w), np.uint8)
        x, y = int(rng.integers(0, w - 10)), int(rng.integers(h // 2, h - 8))
        cv2.rectangle(blob, (x, y), (x + int(rng.integers(3, 9)), y + 5), 1, -1)
        out.append(Instance(rle.encode(blob), int(rng.integers(1, 4))))
    if overlap:
        a = np.zeros((h, w), np.uint8)
        cv2.ellipse(a, (w // 2, h // 2), (8, 5), 0, 0, 360, 1, -1)
        out.append(Instance(rle.encode(a), 3))
    if crowd:
        cr = np.zeros((h, w), np.uint8)
        cr[h - 4 :, : w // 3] = 1
        out.append(Instance(rle.encode(cr), 2, iscrowd=True))
    return out


def samples(
    folder: Path,
    n: int = 3,
    *,
    seed: int = 0,
    size: tuple[int, int] = (48, 64),
    overlap: bool = True,
    crowd: bool = True,
) -> list[Sample]:
    """``n`` samples whose images are PNG files written into ``folder``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        h, w = size
        image = folder / f"img_{i:03d}.png"
        pixels = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(image)
        out.append(
            Sample(
                id=image.stem,
                size=(h, w),
                image=image,
                instances=tuple(scene(rng, h, w, overlap=overlap, crowd=crowd)),
            )
        )
    return out


def painted_names(sample: Sample, labels: LabelMap) -> np.ndarray:
    """Each pixel's class name ('' for background/ignore), painting instances in order
    (later wins), or from the class map."""
    names = np.full(sample.size, "", dtype=object)
    if sample.semantic is not None:
        for v in np.unique(sample.semantic).tolist():
            lab = labels.by_id(int(v)) if int(v) in labels else None
            if lab is not None and lab.role == "class":
                names[sample.semantic == v] = lab.name
        return names
    for inst in sample.instances:
        lab = labels.by_id(inst.class_id)
        names[rle.decode(inst.mask).astype(bool)] = lab.name
    return names
