"""Import into the store and export out of it, checked against independent oracles.

pycocotools rasterises the original COCO annotations; PIL reads the original class PNGs. The
reliability tests run real processes: an import killed mid-way, two imports at once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask
from sqlalchemy import create_engine, text

from masklab.core import rle
from masklab.store import Store
from masklab.store.diff import diff
from masklab.store.exporter import export_version
from masklab.store.importer import import_path

AIRO_JSON = (
    "airo-mono-coco-val2017-small",
    "airo-dataset-tools",
    "test",
    "test_data",
    "instances_val2017_small.json",
)
VOC = ("bubbliiiing-unet-pytorch", "datasets")


def coco_pixels(ann: dict, h: int, w: int) -> np.ndarray:
    """pycocotools' rasterisation of one annotation (the oracle)."""
    seg = ann["segmentation"]
    if isinstance(seg, list):
        rles = coco_mask.frPyObjects(seg, h, w)
        return coco_mask.decode(coco_mask.merge(rles))
    if isinstance(seg["counts"], list):
        return coco_mask.decode(coco_mask.frPyObjects(seg, h, w))
    return coco_mask.decode(seg)


def by_image(data: dict) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    for a in data["annotations"]:
        out.setdefault(a["image_id"], []).append(a)
    return out


def test_coco_through_the_store_keeps_every_pixel(shared_data, tmp_path):
    src = shared_data(*AIRO_JSON)
    with Store(home=tmp_path / "home") as store:
        result = import_path(store, src, dataset="coco")
        assert result.frames == 3
        assert result.annotations == 34
        v = store.version("coco:v1")
        report = export_version(v, tmp_path / "out", to="coco", images="none")
    assert report.problems == []
    original = json.loads(src.read_text())
    out_json = next((tmp_path / "out").rglob("*.json"))
    exported = json.loads(out_json.read_text())
    size = {im["id"]: (im["height"], im["width"]) for im in original["images"]}
    name_of = {im["id"]: im["file_name"] for im in original["images"]}
    out_id = {Path(im["file_name"]).name: im["id"] for im in exported["images"]}
    orig_anns, out_anns = by_image(original), by_image(exported)
    assert sum(len(v) for v in out_anns.values()) == 34
    for image_id, anns in orig_anns.items():
        h, w = size[image_id]
        mine = out_anns[out_id[Path(name_of[image_id]).name]]
        assert len(mine) == len(anns)
        for a, b in zip(anns, mine, strict=True):
            assert a["category_id"] == b["category_id"]
            assert a["iscrowd"] == b["iscrowd"]
            np.testing.assert_array_equal(coco_pixels(a, h, w), coco_pixels(b, h, w))


def test_voc_class_map_through_the_store_is_exact(shared_data, tmp_path):
    src = shared_data(*VOC)
    original = np.asarray(Image.open(src / "SegmentationClass" / "1.png"))
    with Store(home=tmp_path / "home") as store:
        import_path(store, src, dataset="voc", format="voc")
        v = store.version("voc")
        (f,) = list(v.frames())
        assert f.sources[0].masks["semantic"].values == tuple(np.unique(original).tolist())
        export_version(v, tmp_path / "out", to="voc", images="none")
    written = np.asarray(Image.open(tmp_path / "out" / "SegmentationClass" / "1.png"))
    np.testing.assert_array_equal(written, original)


def test_import_with_parent_updates_matching_frames(tmp_path):
    data = synthetic_coco(tmp_path / "a.json", n=6, seed=0)
    data2 = synthetic_coco(tmp_path / "b.json", n=6, seed=0, edit={2: 3})
    assert data["annotations"] != data2["annotations"]
    with Store(home=tmp_path / "home") as store:
        import_path(store, tmp_path / "a.json", dataset="d")
        import_path(store, tmp_path / "b.json", dataset="d", version="v2", parent="v1")
        result = diff(store.version("d:v1"), store.version("d:v2"))
    assert result.added == []
    assert result.removed == []
    assert [c.frame_id for c in result.changed] == ["img00002"]
    assert result.changed[0].pixels == 3  # three pixels added to one mask by the edit


# ---- reliability: real processes


def synthetic_coco(
    path: Path, *, n: int, seed: int, per_image: int = 3, edit: dict[int, int] | None = None
) -> dict:
    """A COCO json of ``n`` 40x50 images with RLE masks (``edit``: image -> extra pixels)."""
    rng = np.random.default_rng(seed)
    images, anns = [], []
    for i in range(n):
        images.append({"id": i + 1, "file_name": f"img{i:05d}.jpg", "height": 40, "width": 50})
        for j in range(per_image):
            m = np.zeros((40, 50), np.uint8)
            y, x = rng.integers(0, 30), rng.integers(0, 40)
            m[y : y + 8, x : x + 9] = 1
            if edit and i in edit and j == 0:
                m[39, : edit[i]] = 1
            counts = rle.encode(m).to_coco()
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i + 1,
                    "category_id": 1 + j % 2,
                    "segmentation": counts,
                    "area": int(m.sum()),
                    "bbox": [0, 0, 1, 1],
                    "iscrowd": 0,
                }
            )
    data = {
        "images": images,
        "annotations": anns,
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
    }
    path.write_text(json.dumps(data))
    return data


IMPORT_SCRIPT = """
import sys
from masklab.store import Store
from masklab.store.importer import import_path
store = Store(catalog=sys.argv[1], blobs=sys.argv[2])
r = import_path(store, sys.argv[3], dataset="d", version=sys.argv[4], format="coco")
print(r.frames, flush=True)
store.close()
"""


def run_import(catalog: str, blobs: str, src: Path, version: str, **env: str):
    return subprocess.Popen(
        [sys.executable, "-c", IMPORT_SCRIPT, catalog, blobs, str(src), version],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )


def rows(catalog: str, sql: str) -> int:
    engine = create_engine(catalog)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(sql)).scalar_one())
    finally:
        engine.dispose()


def test_killed_import_leaves_no_version_and_a_retry_completes(catalog_url, tmp_path):
    src = tmp_path / "big.json"
    synthetic_coco(src, n=6000, seed=1, per_image=2)
    blobs = str(tmp_path / "blobs")
    Store(catalog=catalog_url, blobs=blobs).close()  # schema in place before polling it
    proc = run_import(catalog_url, blobs, src, "v1", MASKLAB_IMPORT_BATCH="200")
    deadline = time.monotonic() + 60
    while rows(catalog_url, "SELECT count(*) FROM changes") < 400:  # mid-import
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the import never got going"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    with Store(catalog=catalog_url, blobs=blobs) as store:
        assert store.dataset("d").versions() == []  # no partial version shows
        with pytest.raises(KeyError):
            store.version("d:v1")
        retry = run_import(catalog_url, blobs, src, "v1")
        out, err = retry.communicate(timeout=300)
        assert retry.returncode == 0, err
        assert out.strip() == "6000"
        v = store.version("d:v1")
        assert len(v) == 6000
        assert v.instance_count == 12000
    assert rows(catalog_url, "SELECT count(*) FROM changes") == 0


def test_two_processes_import_into_one_dataset_at_once(catalog_url, tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    synthetic_coco(a, n=1500, seed=2)
    synthetic_coco(b, n=1200, seed=3)
    blobs = str(tmp_path / "blobs")
    with Store(catalog=catalog_url, blobs=blobs) as store:
        store.create_dataset("d")
    env = {"MASKLAB_IMPORT_BATCH": "100"}
    pa = run_import(catalog_url, blobs, a, "va", **env)
    pb = run_import(catalog_url, blobs, b, "vb", **env)
    out_a, err_a = pa.communicate(timeout=300)
    out_b, err_b = pb.communicate(timeout=300)
    assert pa.returncode == 0, err_a
    assert pb.returncode == 0, err_b
    assert (out_a.strip(), out_b.strip()) == ("1500", "1200")
    with Store(catalog=catalog_url, blobs=blobs) as store:
        ds = store.dataset("d")
        assert sorted(v.name for v in ds.versions()) == ["va", "vb"]
        assert len(ds.version("va")) == 1500
        assert len(ds.version("vb")) == 1200
        assert ds.version("vb").instance_count == 3600
