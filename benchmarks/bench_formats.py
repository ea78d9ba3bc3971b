"""Format conversion at COCO val2017 scale: masklab against Datumaro, same data, same run.

Data: a synthetic COCO instances file shaped like val2017 (5,000 images of 640x480, ~36,000
polygon instances with 1-3 parts over 80 non-contiguous category ids, ~1 % crowd regions as
uncompressed RLE). ``MASKLAB_BENCH_IMAGES`` scales it down for a quick run.

Figures: COCO -> VOC class PNGs with ``--workers 2`` against ``--workers 1`` (the
scaling target of issue 8: >= 1.7x; the outputs are checked byte-equal first), COCO -> VOC
class PNGs and COCO -> YOLO segmentation against Datumaro, wall time of the whole
conversion (reading the json included), plus fidelity on every image: the share of pixels
whose class equals pycocotools' rasterisation painted in annotation order (VOC), and the
mean IoU of each written instance with its pycocotools mask (YOLO).
Datumaro 1.13's YOLO exporters write bounding boxes only, so its YOLO fidelity is the box's.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image
from pycocotools import mask as cocomask

from _timing import agree, format_line, make_record  # type: ignore[import-not-found]
from masklab import formats
from masklab.core.labels import voc_color

N_IMAGES = int(os.environ.get("MASKLAB_BENCH_IMAGES", "5000"))
H, W = 480, 640
CATEGORY_IDS = [i for i in range(1, 91) if i not in {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}]


def make_coco(n_images: int, seed: int = 0) -> dict[str, Any]:
    """A val2017-shaped instances dict: ~7 instances an image, polygons of 1-3 parts."""
    rng = np.random.default_rng(seed)
    images, anns = [], []
    for i in range(1, n_images + 1):
        images.append({"id": i, "file_name": f"{i:012d}.jpg", "height": H, "width": W})
        for _ in range(int(rng.poisson(7.2))):
            cat = int(rng.choice(CATEGORY_IDS))
            cx, cy = rng.uniform(30, W - 30), rng.uniform(30, H - 30)
            ax, ay = rng.uniform(5, 120), rng.uniform(5, 90)
            parts = []
            for k in range(int(rng.choice([1, 1, 1, 2, 3]))):
                pts = cv2.ellipse2Poly(
                    (int(cx + 40 * k), int(cy + 25 * k)),
                    (int(ax / (k + 1)) + 2, int(ay / (k + 1)) + 2),
                    int(rng.uniform(0, 180)),
                    0,
                    360,
                    int(rng.choice([8, 12, 18])),
                ).astype(np.float64)
                pts += rng.uniform(-0.5, 0.5, pts.shape)
                pts[:, 0] = pts[:, 0].clip(0, W)
                pts[:, 1] = pts[:, 1].clip(0, H)
                parts.append([round(v, 2) for v in pts.reshape(-1).tolist()])
            anns.append({"image_id": i, "category_id": cat, "segmentation": parts, "iscrowd": 0})
        if rng.random() < 0.07:  # crowd region, uncompressed RLE like COCO's GT
            m = np.zeros((H, W), np.uint8)
            x, y = int(rng.integers(0, W - 150)), int(rng.integers(0, H - 100))
            m[y : y + int(rng.integers(20, 100)), x : x + int(rng.integers(30, 150))] = 1
            counts = _uncompressed(m)
            anns.append(
                {
                    "image_id": i,
                    "category_id": 1,
                    "segmentation": {"size": [H, W], "counts": counts},
                    "iscrowd": 1,
                }
            )
    for k, a in enumerate(anns, start=1):
        a["id"] = k
        rle = cocomask.frPyObjects(a["segmentation"], H, W)
        rle = cocomask.merge(rle) if isinstance(rle, list) else rle
        a["area"] = float(cocomask.area(rle))
        a["bbox"] = cocomask.toBbox(rle).tolist()
    cats = [{"id": c, "name": f"class_{c}", "supercategory": "thing"} for c in CATEGORY_IDS]
    return {"images": images, "annotations": anns, "categories": cats}


def _uncompressed(m: np.ndarray) -> list[int]:
    flat = m.T.reshape(-1)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    return [0, *counts] if flat[0] else counts


def expected_classes(data: dict[str, Any]) -> Any:
    """pycocotools' pixels painted in annotation order (later wins), class ids; one image
    at a time (image id, map), so the benchmark itself stays small."""
    by_image: dict[int, list[dict[str, Any]]] = {}
    for a in data["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    for im in data["images"]:
        out = np.zeros((H, W), np.int32)
        for a in by_image.get(im["id"], []):
            rle = cocomask.frPyObjects(a["segmentation"], H, W)
            rle = cocomask.merge(rle) if isinstance(rle, list) else rle
            out[cocomask.decode(rle).astype(bool)] = a["category_id"]
        yield im, out


def voc_fidelity(folder: Path, data: dict[str, Any]) -> float:
    """Share of pixels whose written class equals pycocotools' painting. Class PNGs may be
    palette indices (masklab) or RGB colours (Datumaro): both go through labelmap.txt to
    the class name ``class_<coco id>``."""
    names, colors = _labelmap(folder)
    index_to_cat = np.zeros(256, np.int32)
    color_to_cat: dict[int, int] = {}
    for i, (name, color) in enumerate(zip(names, colors, strict=True)):
        cat = int(name.split("_")[1]) if name.startswith("class_") else 0
        index_to_cat[i] = cat
        color_to_cat[color[0] | color[1] << 8 | color[2] << 16] = cat
    good = total = 0
    pngs = {p.stem: p for p in folder.rglob("SegmentationClass/*.png")}
    for im, want in expected_classes(data):
        total += want.size
        png = pngs.get(Path(im["file_name"]).stem)
        if png is None:
            continue
        got = np.asarray(Image.open(png))
        if got.ndim == 3:
            key = (
                got[..., 0].astype(np.int64) | got[..., 1] << 8 | got[..., 2].astype(np.int64) << 16
            )
            values, inverse = np.unique(key, return_inverse=True)
            lut = np.array([color_to_cat.get(int(v), -1) for v in values.tolist()])
            cats = lut[inverse].reshape(want.shape)
        else:
            cats = index_to_cat[got]
        good += int((cats == want).sum())
    return good / total


def _labelmap(folder: Path) -> tuple[list[str], list[tuple[int, int, int]]]:
    path = next(folder.rglob("labelmap.txt"))
    names, colors = [], []
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, rgb = line.split(":")[:2]
        names.append(name)
        # an empty colour means the VOC colour map by line index (Datumaro writes that)
        colors.append(tuple(int(v) for v in rgb.split(",")) if rgb else voc_color(len(names) - 1))
    return names, colors  # type: ignore[return-value]


def _files(root: Path) -> dict[str, bytes]:
    """relative path -> sha256 of every file under ``root``."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).digest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def time_it(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run() -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    tmp = Path(tempfile.mkdtemp(prefix="masklab-bench-"))
    try:
        data = make_coco(N_IMAGES)
        src = tmp / "coco"
        (src / "annotations").mkdir(parents=True)
        (src / "images" / "val").mkdir(parents=True)
        (src / "annotations" / "instances_val.json").write_text(json.dumps(data))
        # the JPEGs exist, as in COCO (Datumaro needs them for the image sizes)
        _, jpeg = cv2.imencode(".jpg", np.full((H, W, 3), 127, np.uint8))
        for im in data["images"]:
            (src / "images" / "val" / im["file_name"]).write_bytes(jpeg.tobytes())
        n_inst = len(data["annotations"])
        print(
            f"  data: {N_IMAGES} images {W}x{H}, {n_inst} instances "
            f"({sum(a['iscrowd'] for a in data['annotations'])} crowd), "
            f"{len(CATEGORY_IDS)} categories"
        )
        try:
            import datumaro as dm  # type: ignore[import-not-found]
        except ImportError:
            dm = None
            print("  datumaro not installed: run `make bench` (it installs it) for the ratios")

        # COCO -> VOC class PNGs; masklab in one process and with --workers 2 (decoding
        # and encoding in two processes, same bytes); Datumaro has no such option. Both
        # write annotations only (images="none" / save_media=False). Best of two runs each,
        # interleaved.
        ann = src / "annotations" / "instances_val.json"
        ours = {1: float("inf"), 2: float("inf")}
        for run_no in range(2):
            for n in (1, 2):
                out = tmp / f"voc-masklab-{n}"
                if run_no:
                    shutil.rmtree(out)
                ours[n] = min(
                    ours[n],
                    time_it(
                        lambda n=n, out=out: formats.convert(
                            ann, out, to="voc", workers=n, images="none"
                        )
                    ),
                )
        agree(
            _files(tmp / "voc-masklab-1") == _files(tmp / "voc-masklab-2"),
            "--workers 2 wrote other bytes than --workers 1",
        )
        rec = make_record(
            "COCO -> VOC --workers 2 vs 1", ours[2], ours[1], peer="--workers 1", target=1.7
        )
        print(format_line(rec), flush=True)
        records.append(rec)
        fid_ours = voc_fidelity(tmp / "voc-masklab-2", data)
        if dm is not None:

            def datumaro_voc() -> None:
                # Datumaro's VOC exporter writes Mask annotations only: COCO polygons need
                # its polygons_to_masks transform first, or they are silently left out
                ds = dm.Dataset.import_from(str(src), "coco_instances")
                ds = ds.transform("polygons_to_masks")
                ds.export(str(tmp / "voc-datumaro"), "voc_segmentation", save_media=False)

            theirs = time_it(datumaro_voc)
            fid_theirs = voc_fidelity(tmp / "voc-datumaro", data)
            for n in (1, 2):
                name = f"COCO -> VOC PNG masks ({n} proc)"
                rec = make_record(name, ours[n], theirs, peer="datumaro", target=10)
                rec["fidelity"] = {"masklab": fid_ours, "datumaro": fid_theirs}
                print(format_line(rec), flush=True)
                records.append(rec)
            print(
                f"  pixel fidelity vs pycocotools: masklab {fid_ours:.5f}, "
                f"datumaro {fid_theirs:.5f}"
            )
        else:
            print(f"  COCO -> VOC masklab {ours} s, pixel fidelity {fid_ours:.5f}")

        # COCO -> YOLO segmentation
        ours = time_it(
            lambda: formats.convert(
                ann, tmp / "yolo-masklab", to="yolo-seg", workers=2, images="none"
            )
        )
        if dm is not None:

            def datumaro_yolo() -> None:
                ds = dm.Dataset.import_from(str(src), "coco_instances")
                ds.export(str(tmp / "yolo-datumaro"), "yolo", save_media=False)

            theirs = time_it(datumaro_yolo)
            # no like-for-like peer: Datumaro 1.13 cannot write YOLO segmentation, so the
            # figure carries no target; its box export is timed for reference only
            rec = make_record("COCO -> YOLO-seg (peer: boxes)", ours, theirs, peer="datumaro")
            print(format_line(rec), flush=True)
            print("  datumaro 1.13 writes boxes only (its YOLO exporters have no polygons)")
            records.append(rec)
        else:
            print(f"  COCO -> YOLO-seg masklab {ours:.1f} s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return records
