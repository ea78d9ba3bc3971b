"""The core against real files written by other projects (../shared/data)."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image
from pycocotools import mask as coco

from masklab import polygon, rle

AIRO = ("airo-mono-coco-val2017-small", "airo-dataset-tools", "test", "test_data")
PANOPTIC = ("panopticapi", "sample_data")


def test_coco_val2017_polygons_rasterise_to_pycocotools_pixels(shared_data):
    data = json.loads(shared_data(*AIRO, "instances_val2017_small.json").read_text())
    images = {im["id"]: im for im in data["images"]}
    checked = 0
    for ann in data["annotations"]:
        seg = ann["segmentation"]
        if not isinstance(seg, list):
            continue
        im = images[ann["image_id"]]
        h, w = im["height"], im["width"]
        theirs = coco.merge(coco.frPyObjects(seg, h, w))["counts"].decode()
        assert polygon.to_rle(seg, h, w).to_coco()["counts"] == theirs, ann["id"]
        checked += 1
    assert checked == 33


def test_coco_val2017_batch_rasterisation_equals_pycocotools(shared_data):
    data = json.loads(shared_data(*AIRO, "instances_val2017_small.json").read_text())
    im = data["images"][0]
    anns = [
        a
        for a in data["annotations"]
        if a["image_id"] == im["id"] and isinstance(a["segmentation"], list)
    ]
    ours = polygon.to_rle_batch([a["segmentation"] for a in anns], im["height"], im["width"])
    theirs = [
        coco.merge(coco.frPyObjects(a["segmentation"], im["height"], im["width"])) for a in anns
    ]
    assert [r.to_coco()["counts"] for r in ours] == [t["counts"].decode() for t in theirs]


def test_coco_val2017_crowd_rle_reads_like_pycocotools(shared_data):
    data = json.loads(shared_data(*AIRO, "instances_val2017_small.json").read_text())
    crowd = [a for a in data["annotations"] if a["iscrowd"]]
    assert len(crowd) == 1
    seg = crowd[0]["segmentation"]
    theirs = coco.frPyObjects(seg, *seg["size"])
    r = rle.from_coco(seg)
    np.testing.assert_array_equal(rle.decode(r), coco.decode(theirs))
    assert rle.area(r) == int(coco.area(theirs))
    assert rle.bbox(r).tolist() == coco.toBbox(theirs).tolist()


def test_panoptic_detection_rles_round_trip_byte_for_byte(shared_data):
    data = json.loads(shared_data(*PANOPTIC, "panoptic_coco_detection_format.json").read_text())
    segs = [a["segmentation"] for a in data["annotations"]]
    assert len(segs) == 50
    rles = rle.from_coco_batch(segs)
    assert [r.to_coco()["counts"] for r in rles] == [s["counts"] for s in segs]
    assert [d["counts"] for d in rle.to_coco_batch(rles)] == [s["counts"] for s in segs]
    for ann, r in zip(data["annotations"], rles, strict=True):
        assert r == rle.from_coco(ann["segmentation"])
        # the file's area and bbox equal pycocotools' (reference/formats.md §2.7)
        assert rle.area(r) == ann["area"] == int(coco.area(ann["segmentation"]))
        assert rle.bbox(r).tolist() == [float(v) for v in ann["bbox"]]
        np.testing.assert_array_equal(rle.decode(r), coco.decode(ann["segmentation"]))


def test_panoptic_png_segments_equal_their_detection_rles(shared_data):
    """The PNG (id = R + 256 G + 256^2 B) and the detection json describe the same pixels."""
    panoptic = json.loads(shared_data(*PANOPTIC, "panoptic_examples.json").read_text())
    detection = json.loads(
        shared_data(*PANOPTIC, "panoptic_coco_detection_format.json").read_text()
    )
    by_image: dict[int, list[dict]] = {}
    for ann in detection["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    checked = 0
    for ann in panoptic["annotations"]:
        png = np.asarray(
            Image.open(shared_data(*PANOPTIC, "panoptic_examples", ann["file_name"])), np.uint32
        )
        ids = png[..., 0] + 256 * png[..., 1] + 256 * 256 * png[..., 2]
        dets = by_image[ann["image_id"]]
        for seg, det in zip(ann["segments_info"], dets, strict=True):
            ours = rle.encode(ids == seg["id"])
            assert ours == rle.from_coco(det["segmentation"])
            assert ours.to_coco()["counts"] == det["segmentation"]["counts"]
            checked += 1
    assert checked == 50


def test_traced_real_masks_are_exact(shared_data):
    """Tracing every real panoptic segment to polygons and back loses nothing, and
    pycocotools rasterises the keyholed COCO polygons to the same pixels."""
    data = json.loads(shared_data(*PANOPTIC, "panoptic_coco_detection_format.json").read_text())
    holes = 0
    for ann in data["annotations"]:
        r = rle.from_coco(ann["segmentation"])
        h, w = r.size
        polys = polygon.from_mask(r)
        holes += polys.n_holes
        assert polygon.to_rle(polys, h, w) == r, ann["id"]
        theirs = coco.merge(coco.frPyObjects(polys.to_coco(), h, w))["counts"].decode()
        assert theirs == ann["segmentation"]["counts"], ann["id"]
    assert holes > 0  # the real data does exercise holes
