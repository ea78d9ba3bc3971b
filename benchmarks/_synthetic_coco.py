"""A synthetic COCO instances json: N 640x480 images, ~5 instances each, compressed RLE masks.

Built fast: a pool of a few hundred distinct blob masks (COCO-like sizes, 10-300 px, some in
two pieces, some with a hole) is rasterised with OpenCV and encoded once with
``masklab.core.rle``; annotations draw from the pool. Images carry ``width``/``height`` and a
``file_name``; the files need not exist. The json is written in pieces (no big string).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image

from masklab.core import rle

H, W = 480, 640
POOL = 300
ANNS_PER_IMAGE = 5
CATEGORIES = (
    "person",
    "cat",
    "dog",
    "car",
    "bicycle",
    "bus",
    "truck",
    "bird",
    "horse",
    "sheep",
    "cow",
    "chair",
    "sofa",
    "bottle",
    "cup",
    "tv",
    "laptop",
    "plant",
    "boat",
    "train",
)
SEED = 20240611


def _blob(rng: np.random.Generator, cx: float, cy: float, size: float) -> npt.NDArray[np.int32]:
    """A star-shaped ring about ``size`` px across (smoothly varying radius)."""
    n = int(np.clip(size * 0.8, 16, 200))
    t = np.sort(rng.uniform(0, 2 * np.pi, n))
    harm = rng.normal(0, 0.22, (3, 2))
    r = 1 + sum(a * np.cos((k + 2) * t) + b * np.sin((k + 2) * t) for k, (a, b) in enumerate(harm))
    r = np.clip(r, 0.3, None) * size / 2
    squash = rng.uniform(0.45, 1.0)
    a = rng.uniform(0, np.pi)
    x, y = r * np.cos(t), r * np.sin(t) * squash
    xr = cx + x * np.cos(a) - y * np.sin(a)
    yr = cy + x * np.sin(a) + y * np.cos(a)
    return np.round(np.stack([xr, yr], axis=1)).astype(np.int32)


def make_mask(rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    """One 480x640 0/1 instance mask: a blob, sometimes two pieces, sometimes a hole."""
    m = np.zeros((H, W), np.uint8)
    size = float(np.exp(rng.uniform(np.log(10), np.log(300))))
    cx, cy = rng.uniform(0, W), rng.uniform(0, H)
    cv2.fillPoly(m, [_blob(rng, cx, cy, size)], 1)
    if rng.random() < 0.2:  # an occluded object's other piece
        px, py = cx + rng.normal(0, 0.6 * size), cy + rng.normal(0, 0.6 * size)
        cv2.fillPoly(m, [_blob(rng, px, py, size * rng.uniform(0.3, 0.7))], 1)
    if rng.random() < 0.1 and size > 40:  # a hole
        cv2.fillPoly(m, [_blob(rng, cx, cy, size * 0.25)], 0)
    if not m.any():  # clipped away at the border: keep one pixel
        m[int(np.clip(cy, 0, H - 1)), int(np.clip(cx, 0, W - 1))] = 1
    return m


def mask_pool(n: int = POOL, seed: int = SEED) -> list[rle.RLE]:
    """``n`` distinct instance masks as RLEs."""
    rng = np.random.default_rng(seed)
    return [rle.encode(make_mask(rng)) for _ in range(n)]


def _fragments(pool: list[rle.RLE]) -> list[str]:
    """The json text of each pool mask's ``segmentation``, ``area`` and ``bbox``."""
    out = []
    for r in pool:
        box = [float(v) for v in rle.bbox(r)]
        seg = {"size": [H, W], "counts": r.to_coco()["counts"]}
        out.append(
            f'"segmentation":{json.dumps(seg, separators=(",", ":"))},'
            f'"area":{rle.area(r)},"bbox":{json.dumps(box, separators=(",", ":"))}'
        )
    return out


def draws(
    n_images: int, n_masks: int, *, per_image: int = ANNS_PER_IMAGE, seed: int = SEED
) -> dict[str, npt.NDArray[np.int64]]:
    """The annotations of an ``n_images`` dataset: ``image_ids`` (sorted, 1-based),
    ``category_ids`` (1-based) and ``masks`` (pool indices), one entry per annotation.
    Annotations fall on images at random (Poisson, mean ``per_image``: about 0.7% of the
    images have none)."""
    rng = np.random.default_rng(seed + n_images)
    n_anns = n_images * per_image
    return {
        "image_ids": np.sort(rng.integers(1, n_images + 1, n_anns)),
        "category_ids": rng.integers(1, len(CATEGORIES) + 1, n_anns),
        "masks": rng.integers(0, n_masks, n_anns),
    }


def write_coco(
    path: Path,
    n_images: int,
    *,
    limit: int | None = None,
    pool: list[rle.RLE] | None = None,
) -> dict[str, Any]:
    """Write the json of an ``n_images`` dataset (:func:`draws`), or of its first ``limit``
    images and their annotations (a slice of the same data); return its counts."""
    frags = _fragments(pool if pool is not None else mask_pool())
    d = draws(n_images, len(frags))
    n_out = n_images if limit is None else min(limit, n_images)
    n_anns = int(np.searchsorted(d["image_ids"], n_out, side="right"))
    ids = d["image_ids"][:n_anns].tolist()
    cats = d["category_ids"][:n_anns].tolist()
    masks = d["masks"][:n_anns].tolist()
    categories = [
        {"id": i, "name": name, "supercategory": "thing"}
        for i, name in enumerate(CATEGORIES, start=1)
    ]
    chunk = 20_000
    with path.open("w", encoding="utf-8") as f:
        f.write('{"info":{"description":"masklab synthetic"},"categories":')
        f.write(json.dumps(categories, separators=(",", ":")))
        f.write(',"images":[')
        for start in range(1, n_out + 1, chunk):
            stop = min(start + chunk, n_out + 1)
            f.write(
                ("," if start > 1 else "")
                + ",".join(
                    f'{{"id":{i},"file_name":"{i:012d}.jpg","width":{W},"height":{H}}}'
                    for i in range(start, stop)
                )
            )
        f.write('],"annotations":[')
        for start in range(0, n_anns, chunk):
            stop = min(start + chunk, n_anns)
            f.write(
                ("," if start else "")
                + ",".join(
                    f'{{"id":{k + 1},"image_id":{ids[k]},"category_id":{cats[k]},'
                    f'"iscrowd":0,{frags[masks[k]]}}}'
                    for k in range(start, stop)
                )
            )
        f.write("]}")
    return {"images": n_out, "annotations": n_anns, "bytes": path.stat().st_size}


def write_images(folder: Path, n_images: int) -> None:
    """``n_images`` plain 640x480 JPEGs named as the json names them (for peers that open
    or stat every image)."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "_one.jpg"
    Image.new("RGB", (W, H), (90, 110, 130)).save(tmp, quality=80)
    data = tmp.read_bytes()
    tmp.unlink()
    for i in range(1, n_images + 1):
        (folder / f"{i:012d}.jpg").write_bytes(data)
