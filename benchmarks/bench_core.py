"""masklab core (RLE codec, algebra, polygons) against pycocotools, on the same seeded data.

Every figure first checks, once and before timing, that masklab and pycocotools give the
same result (compressed strings, arrays, IoU matrices to 1e-12), so a fast-but-wrong
implementation cannot pass. Targets are the issue's: speed-ups over pycocotools, or a cost
ceiling relative to a memory copy.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from pycocotools import _mask as cmask
from pycocotools import mask as cocomask

from _timing import agree, figure
from masklab import polygon, rle

SEED = 20240607
FRAME_H, FRAME_W = 1080, 1920  # a full-HD video frame
H, W = 480, 640  # a typical COCO image
N_INSTANCES = 100
N_CROWD = 5

Coco = list[list[float]]


# --------------------------------------------------------------------------- data


def make_frame() -> npt.NDArray[np.uint8]:
    """A 1920x1080 0/1 frame with a few blobs, C-ordered as PIL and OpenCV give it."""
    m = np.zeros((FRAME_H, FRAME_W), np.uint8)
    cv2.ellipse(m, (520, 380), (300, 150), 30, 0, 360, 1, -1)
    cv2.ellipse(m, (1380, 690), (210, 330), -15, 0, 360, 1, -1)
    cv2.circle(m, (980, 260), 120, 1, -1)
    cv2.rectangle(m, (150, 740), (660, 1000), 1, -1)
    star = [
        (1000 + r * np.cos(a), 800 + r * np.sin(a))
        for a, r in zip(np.linspace(0, 2 * np.pi, 10, endpoint=False), [180, 70] * 5, strict=True)
    ]
    cv2.fillPoly(m, [np.round(star).astype(np.int32)], 1)
    cv2.circle(m, (1700, 230), 150, 1, -1)  # a ring: blob with a hole
    cv2.circle(m, (1700, 230), 60, 0, -1)
    return m


def _ring(
    rng: np.random.Generator, cx: float, cy: float, size: float, n: int
) -> npt.NDArray[np.float64]:
    """One ring of ``n`` vertices around (cx, cy), about ``size`` px across."""
    kind = rng.choice(["ellipse", "blob", "box"], p=[0.4, 0.45, 0.15])
    rx = size / 2
    ry = rx * rng.uniform(0.4, 1.0)
    if kind == "ellipse":
        t = np.linspace(0, 2 * np.pi, n, endpoint=False)
        x, y = rx * np.cos(t), ry * np.sin(t)
    elif kind == "blob":  # star-shaped, smoothly varying radius, uneven angular steps
        t = np.sort(rng.uniform(0, 2 * np.pi, n))
        harmonics = rng.normal(0, 0.25, (3, 2))
        r = 1 + sum(
            a * np.cos((k + 2) * t) + b * np.sin((k + 2) * t) for k, (a, b) in enumerate(harmonics)
        )
        r = np.clip(r + rng.normal(0, 0.03, n), 0.3, None)
        x, y = rx * r * np.cos(t), ry * r * np.sin(t)
    else:  # a box, its edges densified as annotation tools do
        per = max(1, n // 4)
        s = np.linspace(-1, 1, per, endpoint=False)
        one = np.ones(per)
        x = np.concatenate([s, one, -s, -one]) * rx
        y = np.concatenate([-one, s, one, -s]) * ry
    a = rng.uniform(0, np.pi)
    xr = cx + x * np.cos(a) - y * np.sin(a)
    yr = cy + x * np.sin(a) + y * np.cos(a)
    pts = np.stack([np.clip(xr, 0, W), np.clip(yr, 0, H)], axis=1)
    return np.round(pts, 2)


def make_instances(rng: np.random.Generator, n: int) -> list[Coco]:
    """COCO-like polygon instances on a 640x480 image: 10-300 px, 1-3 parts, 20-400 vertices."""
    out = []
    for _ in range(n):
        size = float(np.exp(rng.uniform(np.log(10), np.log(300))))  # COCO: many small ones
        n_parts = int(rng.choice([1, 2, 3], p=[0.7, 0.2, 0.1]))
        n_vertices = int(np.clip(size * rng.uniform(0.6, 1.5), 20, 400))
        cx, cy = rng.uniform(0, W), rng.uniform(0, H)
        parts = []
        for k in range(n_parts):
            if k == 0:
                px, py, ps = cx, cy, size
            else:  # an occluded object's other piece, nearby and smaller
                px = cx + rng.normal(0, 0.6 * size)
                py = cy + rng.normal(0, 0.6 * size)
                ps = size * rng.uniform(0.3, 0.7)
            nv = max(8, n_vertices // n_parts)
            parts.append(_ring(rng, px, py, ps, nv).reshape(-1).tolist())
        out.append(parts)
    return out


def perturb(rng: np.random.Generator, inst: Coco) -> Coco:
    """A ground truth near a detection: shifted and rescaled by a few percent."""
    pts = [np.asarray(p).reshape(-1, 2) for p in inst]
    allp = np.concatenate(pts)
    centre = allp.mean(axis=0)
    extent = float(np.ptp(allp, axis=0).max()) + 1
    shift = rng.normal(0, 0.08 * extent, 2)
    scale = rng.uniform(0.9, 1.1)
    out = []
    for p in pts:
        q = (p - centre) * scale + centre + shift
        q = np.stack([np.clip(q[:, 0], 0, W), np.clip(q[:, 1], 0, H)], axis=1)
        out.append(np.round(q, 2).reshape(-1).tolist())
    return out


def coco_rle(inst: Coco, h: int, w: int) -> dict[str, Any]:
    """pycocotools' RLE of a polygon instance, counts as ``str`` (as read from JSON)."""
    d = cocomask.merge(cocomask.frPyObjects(inst, h, w))
    return {"size": [int(d["size"][0]), int(d["size"][1])], "counts": d["counts"].decode()}


def _counts_str(d: dict[str, Any]) -> str:
    c = d["counts"]
    return c.decode() if isinstance(c, bytes) else c


# --------------------------------------------------------------------------- figures


def bench_frame() -> list[dict[str, Any]]:
    m = make_frame()
    agree(m.flags.c_contiguous and set(np.unique(m).tolist()) == {0, 1}, "frame is not 0/1 C")
    r = rle.encode(m)
    d = cocomask.encode(np.asfortranarray(m))
    agree(r.to_coco()["counts"] == d["counts"].decode(), "encode: compressed strings differ")
    back = rle.decode(r)
    agree(back.flags.c_contiguous and np.array_equal(back, m), "decode(encode(m)) != m")
    agree(
        np.array_equal(np.ascontiguousarray(cocomask.decode(d)), back),
        "decode: masklab and pycocotools arrays differ",
    )
    label = f"{FRAME_W}x{FRAME_H}"
    return [
        figure(
            f"encode {label} C-order",
            lambda: rle.encode(m),
            lambda: cocomask.encode(np.asfortranarray(m)),
            target=8,
        ),
        figure(
            f"encode+to_coco {label} C-order",
            lambda: rle.encode(m).to_coco(),
            lambda: cocomask.encode(np.asfortranarray(m)),
        ),
        figure(
            f"encode / copy {label}",
            lambda: rle.encode(m),
            lambda: m.copy(),
            peer="m.copy()",
            target=5,
            op="<=",
        ),
        figure(
            f"decode {label} to C-order",
            lambda: rle.decode(r),
            lambda: np.ascontiguousarray(cocomask.decode(d)),
            target=15,
        ),
    ]


def bench_instances() -> list[dict[str, Any]]:
    rng = np.random.default_rng(SEED)
    instances = make_instances(rng, N_INSTANCES)
    n_rings = sum(len(p) for p in instances)
    n_vertices = sum(len(r) // 2 for p in instances for r in p)
    dicts = [coco_rle(p, H, W) for p in instances]
    areas = cocomask.area(dicts)
    agree(int((areas == 0).sum()) == 0, "an instance rasterised to an empty mask")
    print(
        f"  data: {N_INSTANCES} instances on {W}x{H}, {n_rings} rings, {n_vertices} vertices, "
        f"area {int(areas.min())}..{int(areas.max())} px (median {int(np.median(areas))})",
        flush=True,
    )

    # 4. compressed string -> counts
    rles = rle.from_coco_batch(dicts)
    Rs = cmask._frString(dicts)
    agree(
        [r.to_coco()["counts"] for r in rles] == [d["counts"] for d in dicts],
        "from_coco_batch: round trip does not give the input strings back",
    )
    agree(
        [_counts_str(d) for d in cmask._toString(Rs)] == [d["counts"] for d in dicts],
        "pycocotools _frString/_toString round trip differs",
    )
    agree(
        all(a == b for a, b in zip(rles, [rle.from_coco(d) for d in dicts], strict=True)),
        "from_coco and from_coco_batch differ",
    )
    agree(np.array_equal(areas, [rle.area(r) for r in rles]), "areas differ after parsing")

    # 5. counts -> compressed string
    singles = [cmask._frString([d]) for d in dicts]
    agree(
        [_counts_str(cmask._toString(one)[0]) for one in singles] == [d["counts"] for d in dicts],
        "pycocotools single-mask _toString differs",
    )
    ours_coco = rle.to_coco_batch(rles)
    agree(
        [d["counts"] for d in ours_coco] == [_counts_str(d) for d in cmask._toString(Rs)],
        "to_coco_batch: compressed strings differ",
    )

    # 6. polygons
    poly_rles = polygon.to_rle_batch(instances, H, W)
    agree(
        [r.to_coco()["counts"] for r in poly_rles] == [d["counts"] for d in dicts],
        "to_rle_batch: pixels differ from pycocotools merge(frPyObjects)",
    )
    agree(
        all(polygon.to_rle(p, H, W) == r for p, r in zip(instances, poly_rles, strict=True)),
        "to_rle and to_rle_batch differ",
    )

    # 7. IoU: detections vs perturbed ground truth, a few of it crowd regions
    gt_polys = [perturb(rng, p) for p in instances[: N_INSTANCES - N_CROWD]]
    gt_polys += [
        [
            _ring(rng, rng.uniform(0, W), rng.uniform(0, H), rng.uniform(150, 300), 60)
            .ravel()
            .tolist()
        ]
        for _ in range(N_CROWD)
    ]
    gt_dicts = [coco_rle(p, H, W) for p in gt_polys]
    order = rng.permutation(len(gt_dicts))  # crowd regions anywhere in the list
    gt_dicts = [gt_dicts[i] for i in order]
    iscrowd = [int(i >= N_INSTANCES - N_CROWD) for i in order]
    gts = rle.from_coco_batch(gt_dicts)
    ours_iou = rle.iou(rles, gts, [bool(c) for c in iscrowd])
    theirs_iou = cocomask.iou(dicts, gt_dicts, iscrowd)
    agree(ours_iou.shape == theirs_iou.shape == (N_INSTANCES, N_INSTANCES), "iou shape")
    agree(
        float(np.abs(ours_iou - theirs_iou).max()) <= 1e-12,
        f"iou matrices differ by {float(np.abs(ours_iou - theirs_iou).max()):.3g}",
    )
    agree(int((theirs_iou > 0).sum()) > N_INSTANCES, "iou data has too few overlaps to mean much")

    # extras: area, bbox, merge
    agree(
        np.array_equal(np.array([rle.area(r) for r in rles]), cocomask.area(dicts)),
        "area differs",
    )
    agree(
        np.array_equal(np.stack([rle.bbox(r) for r in rles]), cocomask.toBbox(dicts)),
        "bbox differs",
    )
    ten, ten_dicts = rles[:10], dicts[:10]
    agree(
        rle.merge(ten).to_coco()["counts"] == _counts_str(cocomask.merge(ten_dicts)),
        "merge (union) differs",
    )

    crowd_note = f"{N_INSTANCES}x{N_INSTANCES}"
    return [
        figure(
            "from_coco_batch x100",
            lambda: rle.from_coco_batch(dicts),
            lambda: cmask._frString(dicts),
            target=1,
        ),
        figure(
            "from_coco x100 (loop)",
            lambda: [rle.from_coco(d) for d in dicts],
            lambda: [cmask._frString([d]) for d in dicts],
            target=1,
        ),
        figure(
            "to_coco_batch x100",
            lambda: rle.to_coco_batch(rles),
            lambda: cmask._toString(Rs),
            target=1,
        ),
        figure(
            "RLE.to_coco x100 (loop)",
            lambda: [r.to_coco() for r in rles],
            lambda: [cmask._toString(one) for one in singles],
        ),
        figure(
            "polygon to_rle_batch x100",
            lambda: polygon.to_rle_batch(instances, H, W),
            lambda: [cocomask.merge(cocomask.frPyObjects(p, H, W)) for p in instances],
            target=1,
        ),
        figure(
            "polygon to_rle x100 (loop)",
            lambda: [polygon.to_rle(p, H, W) for p in instances],
            lambda: [cocomask.merge(cocomask.frPyObjects(p, H, W)) for p in instances],
        ),
        figure(
            f"iou {crowd_note} ({N_CROWD} crowd)",
            lambda: rle.iou(rles, gts, iscrowd),
            lambda: cocomask.iou(dicts, gt_dicts, iscrowd),
            target=5,
        ),
        figure(
            "area x100 (RLE vs dicts)",
            lambda: [rle.area(r) for r in rles],
            lambda: cocomask.area(dicts),
        ),
        figure(
            "bbox x100 (RLE vs dicts)",
            lambda: [rle.bbox(r) for r in rles],
            lambda: cocomask.toBbox(dicts),
        ),
        figure("merge union of 10", lambda: rle.merge(ten), lambda: cocomask.merge(ten_dicts)),
    ]


def run() -> list[dict[str, Any]]:
    """All core figures, in the issue's order."""
    return bench_frame() + bench_instances()
