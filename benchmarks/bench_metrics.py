"""Metrics against their reference implementations, on the same seeded data.

``coco_ap_figure``: COCO mask AP (``masklab.metrics.coco.evaluate``) against pycocotools'
COCO + COCOeval (loadRes, evaluate, accumulate, summarize) on 5,000 synthetic 640x480
images with 36,000 ground-truth instances (polygons, ~1% crowd regions as uncompressed
RLE) and 100,000 predictions (compressed RLE: jittered copies of ground-truth masks, some
of another category, and false positives; scores rounded to 4 decimals so that ties occur).
Both sides start from freshly parsed json dicts (parsing is not timed; pycocotools writes
into its inputs) and include everything from those dicts to the 12 summary numbers. A
pycocotools run takes ~20 s, so each side runs ``ROUNDS`` times, interleaved, and the
figure is the best run of each; the 12 stats and the precision, recall and scores arrays
of the first round must agree (to 1e-9) before the second round runs or a figure prints.

The data set is generated once (~15 s) and cached as json under the system temp folder.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from _timing import agree, format_line, make_record
from masklab.core import polygon, rle
from masklab.metrics import coco as coco_eval

SEED = 20261122
H, W = 480, 640
N_IMAGES = 5_000
N_GT = 36_000
N_PRED = 100_000
N_CATS = 80
CROWD_FRACTION = 0.01
NEAR_FRACTION = 0.7  # predictions that are jittered copies of a ground truth
DATA_VERSION = 2  # bump when make_data changes: the cache is keyed by it
CACHE = Path(tempfile.gettempdir()) / (
    f"masklab-bench-coco-v{DATA_VERSION}-{SEED}-{N_IMAGES}-{N_GT}-{N_PRED}"
)
ROUNDS = 2  # single runs per side; pycocotools takes tens of seconds a run

# --------------------------------------------------------------------------- data


def _ring(rng: np.random.Generator, cx: float, cy: float, size: float) -> npt.NDArray[np.float64]:
    """A star-shaped ring about ``size`` px across, vertices as an annotation tool places them."""
    n = int(np.clip(size * rng.uniform(0.3, 0.8), 8, 120))
    t = np.sort(rng.uniform(0, 2 * np.pi, n))
    harm = rng.normal(0, 0.2, (3, 2))
    r = 1 + sum(a * np.cos((k + 2) * t) + b * np.sin((k + 2) * t) for k, (a, b) in enumerate(harm))
    r = np.clip(r, 0.35, None) * size / 2
    squash = rng.uniform(0.45, 1.0)
    a = rng.uniform(0, np.pi)
    x, y = r * np.cos(t), r * np.sin(t) * squash
    xr = cx + x * np.cos(a) - y * np.sin(a)
    yr = cy + x * np.sin(a) + y * np.cos(a)
    return np.stack([np.clip(xr, 0, W), np.clip(yr, 0, H)], axis=1)


def _object(rng: np.random.Generator) -> list[npt.NDArray[np.float64]]:
    """One object's polygon parts (COCO-like sizes, sometimes an occluded second part)."""
    size = float(np.exp(rng.uniform(np.log(8), np.log(320))))
    cx, cy = rng.uniform(0, W), rng.uniform(0, H)
    parts = [_ring(rng, cx, cy, size)]
    if rng.random() < 0.15:
        px, py = cx + rng.normal(0, 0.5 * size), cy + rng.normal(0, 0.5 * size)
        parts.append(_ring(rng, px, py, size * rng.uniform(0.3, 0.7)))
    return parts


def _jitter(rng: np.random.Generator, parts: list[npt.NDArray[np.float64]]) -> list[list[float]]:
    """A prediction near a ground truth: shifted, rescaled and with wobbly vertices."""
    allp = np.concatenate(parts)
    centre = allp.mean(axis=0)
    extent = float(np.ptp(allp, axis=0).max()) + 1
    quality = rng.uniform(0.0, 0.12)  # some predictions are tight, some loose
    shift = rng.normal(0, quality * extent, 2)
    scale = rng.uniform(1 - quality, 1 + quality)
    out = []
    for p in parts:
        q = (p - centre) * scale + centre + shift + rng.normal(0, 0.01 * extent, p.shape)
        q = np.stack([np.clip(q[:, 0], 0, W), np.clip(q[:, 1], 0, H)], axis=1)
        out.append(np.round(q, 2).reshape(-1).tolist())
    return out


def _shoelace(parts: list[list[float]]) -> float:
    total = 0.0
    for p in parts:
        x, y = np.asarray(p[0::2]), np.asarray(p[1::2])
        total += 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
    return total


def _box(parts: list[list[float]]) -> list[float]:
    xy = np.concatenate([np.asarray(p).reshape(-1, 2) for p in parts])
    x0, y0 = xy.min(axis=0)
    x1, y1 = xy.max(axis=0)
    return [
        round(float(x0), 2),
        round(float(y0), 2),
        round(float(x1 - x0), 2),
        round(float(y1 - y0), 2),
    ]


def make_data() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The synthetic ground-truth json dict and results list (seeded)."""
    rng = np.random.default_rng(SEED)
    cat_p = 1 / np.arange(1, N_CATS + 1) ** 0.7  # a few frequent classes, a long tail
    cat_p /= cat_p.sum()
    gt_img = np.sort(rng.integers(1, N_IMAGES + 1, N_GT))
    gt_cat = rng.choice(N_CATS, N_GT, p=cat_p) + 1
    crowd = rng.random(N_GT) < CROWD_FRACTION
    objects = [_object(rng) for _ in range(N_GT)]
    coco_polys = [[np.round(p, 2).reshape(-1).tolist() for p in obj] for obj in objects]
    crowd_idx = np.flatnonzero(crowd)
    crowd_masks = polygon.to_rle_batch([coco_polys[i] for i in crowd_idx], H, W)
    annotations: list[dict[str, Any]] = []
    crowd_of = dict(zip(crowd_idx.tolist(), crowd_masks, strict=True))
    for i in range(N_GT):
        ann: dict[str, Any] = {
            "id": i + 1,
            "image_id": int(gt_img[i]),
            "category_id": int(gt_cat[i]),
        }
        if i in crowd_of:
            m = crowd_of[i]
            ann |= {
                "segmentation": m.to_coco(compressed=False),
                "area": rle.area(m),
                "bbox": rle.bbox(m).tolist(),
                "iscrowd": 1,
            }
        else:
            ann |= {
                "segmentation": coco_polys[i],
                "area": round(_shoelace(coco_polys[i]), 4),
                "bbox": _box(coco_polys[i]),
                "iscrowd": 0,
            }
        annotations.append(ann)
    gt = {
        "info": {"description": "masklab synthetic COCO AP benchmark"},
        "images": [
            {"id": i, "file_name": f"{i:012d}.jpg", "height": H, "width": W}
            for i in range(1, N_IMAGES + 1)
        ],
        "categories": [
            {"id": k, "name": f"class{k}", "supercategory": "thing"} for k in range(1, N_CATS + 1)
        ],
        "annotations": annotations,
    }

    n_near = int(N_PRED * NEAR_FRACTION)
    source = rng.choice(np.flatnonzero(~crowd), n_near)  # some GT get several, some none
    near_polys = [_jitter(rng, objects[i]) for i in source.tolist()]
    near_cat = np.where(
        rng.random(n_near) < 0.9, gt_cat[source], rng.choice(N_CATS, n_near, p=cat_p) + 1
    )
    n_fp = N_PRED - n_near
    fp_polys = [[np.round(p, 2).reshape(-1).tolist() for p in _object(rng)] for _ in range(n_fp)]
    polys = near_polys + fp_polys
    img = np.concatenate([gt_img[source], rng.integers(1, N_IMAGES + 1, n_fp)])
    cat = np.concatenate([near_cat, rng.choice(N_CATS, n_fp, p=cat_p) + 1])
    score = np.concatenate([rng.beta(4, 2, n_near), rng.beta(2, 4, n_fp)]).round(4)
    masks: list[rle.RLE] = []
    for lo in range(0, N_PRED, 10_000):
        masks += polygon.to_rle_batch(polys[lo : lo + 10_000], H, W)
    strings = rle.to_coco_batch(masks)
    order = np.argsort(img, kind="stable")  # results grouped by image, as detectors write them
    results = [
        {
            "image_id": int(img[k]),
            "category_id": int(cat[k]),
            "segmentation": strings[k],
            "score": float(score[k]),
        }
        for k in order.tolist()
    ]
    return gt, results


def cached_data() -> tuple[bytes, bytes]:
    """The json text of the ground truth and the results, generated once and cached."""
    gt_path, res_path = CACHE / "instances.json", CACHE / "results.json"
    if not (gt_path.exists() and res_path.exists()):
        CACHE.mkdir(parents=True, exist_ok=True)
        gt, results = make_data()
        for path, obj in ((gt_path, gt), (res_path, results)):
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(obj, separators=(",", ":")), encoding="utf-8")
            tmp.replace(path)
    return gt_path.read_bytes(), res_path.read_bytes()


# --------------------------------------------------------------------------- figures


def _pycocotools(gt: dict[str, Any], results: list[dict[str, Any]]) -> Any:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results)
        ev = COCOeval(coco_gt, coco_dt, "segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def coco_ap_figure() -> dict[str, Any]:
    """COCO mask AP, 5k images / 36k GT / 100k predictions: masklab vs COCOeval."""
    gt_text, res_text = cached_data()

    def fresh() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        return json.loads(gt_text), json.loads(res_text)  # pycocotools mutates its inputs

    ours_s: list[float] = []
    theirs_s: list[float] = []
    for _ in range(ROUNDS):
        gt, results = fresh()
        t0 = time.perf_counter()
        ours = coco_eval.evaluate(gt, results, iou_type="segm")
        ours_s.append(time.perf_counter() - t0)
        gt, results = fresh()
        t0 = time.perf_counter()
        theirs = _pycocotools(gt, results)
        theirs_s.append(time.perf_counter() - t0)
        if len(ours_s) == 1:  # agreement first: a fast-but-wrong figure is meaningless
            agree(
                np.allclose(ours.stats, theirs.stats, rtol=0, atol=1e-9),
                f"stats differ: masklab {ours.stats.tolist()} "
                f"pycocotools {np.asarray(theirs.stats).tolist()}",
            )
            for name in ("precision", "recall", "scores"):
                a, b = getattr(ours, name), theirs.eval[name]
                agree(
                    a.shape == b.shape and np.allclose(a, b, rtol=0, atol=1e-9),
                    f"{name} arrays differ (max |diff| "
                    f"{np.abs(a - b).max() if a.shape == b.shape else a.shape})",
                )
    rec = make_record(
        f"COCO mask AP {N_IMAGES // 1000}k img/{N_GT // 1000}k GT/{N_PRED // 1000}k dt",
        min(ours_s),
        min(theirs_s),
        target=3,
    )
    rec["stat"] = f"best of {ROUNDS} single runs each (interleaved), json parsing not timed"
    rec["stats"] = ours.stats.tolist()
    print(format_line(rec), flush=True)
    return rec


def run() -> list[dict[str, Any]]:
    """Every figure of this module."""
    return [coco_ap_figure()]
