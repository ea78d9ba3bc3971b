"""masklab.formats.coco_panoptic against panopticapi's sample data and conventions (§2)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask

from masklab.core import rle
from masklab.core.instances import Instance
from masklab.core.labels import Label, LabelMap
from masklab.errors import FormatError
from masklab.formats import coco_panoptic, convert
from masklab.formats._base import Sample

SAMPLE_DATA = ("panopticapi", "sample_data")
DATUMARO = ("datumaro", "tests", "assets", "coco_dataset")


def rgb2id(rgb: np.ndarray) -> np.ndarray:
    """panopticapi's utils.rgb2id, widened first (§2.2)."""
    c = np.asarray(rgb)[..., :3].astype(np.int64)
    return c[..., 0] + 256 * c[..., 1] + 256 * 256 * c[..., 2]


def png_ids(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return rgb2id(np.asarray(im.convert("RGB")))


def pixels(inst: Instance) -> np.ndarray:
    return rle.decode(inst.mask)


# --------------------------------------------------------------------------- real files


def test_reads_panopticapi_examples_segment_by_segment(shared_data):
    root = shared_data(*SAMPLE_DATA)
    doc = json.loads((root / "panoptic_examples.json").read_text())
    reader = coco_panoptic.Reader(root / "panoptic_examples.json")
    samples = list(reader)
    assert reader.report.problems == []
    assert len(reader) == len(samples) == 2
    expected = {142238: (18, 1, 2712), 439180: (32, 2, 7189)}  # formats.md §2.7
    for sample, ann in zip(samples, doc["annotations"], strict=True):
        ids = png_ids(root / "panoptic_examples" / ann["file_name"])
        n_segments, n_crowd, void_px = expected[ann["image_id"]]
        assert sample.meta["image_id"] == ann["image_id"]
        assert sample.size == ids.shape
        assert len(sample.instances) == n_segments
        assert sum(i.iscrowd for i in sample.instances) == n_crowd
        assert int((ids == 0).sum()) == void_px
        assert sample.h * sample.w - sum(i.area for i in sample.instances) == void_px
        for inst, info in zip(sample.instances, ann["segments_info"], strict=True):
            assert (inst.id, inst.class_id, inst.iscrowd) == (
                info["id"],
                info["category_id"],
                bool(info["iscrowd"]),
            )
            assert np.array_equal(pixels(inst), (ids == info["id"]).astype(np.uint8))
            assert inst.area == info["area"]
            assert rle.bbox(inst.mask).tolist() == info["bbox"]


def test_segments_equal_the_detection_format_rles(shared_data):
    root = shared_data(*SAMPLE_DATA)
    detections = json.loads((root / "panoptic_coco_detection_format.json").read_text())
    ours = {
        (s.meta["image_id"], pixels(i).tobytes())
        for s in coco_panoptic.Reader(root / "panoptic_examples.json")
        for i in s.instances
    }
    theirs = {
        (a["image_id"], coco_mask.decode(a["segmentation"]).tobytes())
        for a in detections["annotations"]
    }
    assert len(ours) == len(theirs) == 50
    assert ours == theirs


def test_labels_keep_isthing_and_colour(shared_data):
    root = shared_data(*SAMPLE_DATA)
    cats = json.loads((root / "panoptic_examples.json").read_text())["categories"]
    labels = coco_panoptic.Reader(root).labels
    assert len(labels) == len(cats) == 133
    assert sum(lab.isthing for lab in labels) == 80
    for lab, cat in zip(labels, cats, strict=True):
        assert (lab.id, lab.name, lab.color, lab.isthing) == (
            cat["id"],
            cat["name"],
            tuple(cat["color"]),
            bool(cat["isthing"]),
        )


def test_folder_finds_json_pngs_and_images(shared_data):
    root = shared_data(*SAMPLE_DATA)
    samples = list(coco_panoptic.Reader(root))
    assert [s.id for s in samples] == ["000000142238", "000000439180"]
    assert [s.image for s in samples] == [
        root / "input_images" / "000000142238.jpg",
        root / "input_images" / "000000439180.jpg",
    ]
    assert {s.subset for s in samples} == {"examples"}


def test_reads_datumaro_layout_and_reports_a_png_of_the_wrong_size(shared_data):
    root = shared_data(*DATUMARO, "coco_panoptic")
    reader = coco_panoptic.Reader(root)
    samples = {s.subset: s for s in reader}
    val = samples["val"]
    assert val.image == root / "images" / "val" / "b.jpg"
    ids = png_ids(root / "annotations" / "panoptic_val" / "b.png")
    assert [(i.id, i.class_id, i.iscrowd) for i in val.instances] == [(7, 1, False), (20, 2, True)]
    for inst in val.instances:
        assert np.array_equal(pixels(inst), (ids == inst.id).astype(np.uint8))
    assert [lab.isthing for lab in reader.labels] == [False, False]
    # train: a.png is 5x5 but its image is 5 high, 10 wide
    assert samples["train"].instances == ()
    [problem] = reader.report.problems
    assert problem.path.endswith("a.png")
    assert problem.record == "image 5"
    assert "5x5" in problem.message


# --------------------------------------------------------------------------- writer


LABELS = LabelMap(
    (
        Label(0, ("void",), (0, 0, 0), isthing=False, role="background"),
        Label(1, ("thing",), (200, 10, 10), isthing=True),
        Label(2, ("stuff",), (10, 200, 10), isthing=False),
    )
)


def scene() -> tuple[Sample, list[np.ndarray]]:
    """Disjoint masks: a ring with an island (holes, parts), two blobs, crowd, stuff."""
    h, w = 37, 53
    yy, xx = np.mgrid[:h, :w]
    ring = (((yy - 12) ** 2 + (xx - 12) ** 2) <= 100).astype(np.uint8)
    ring[((yy - 12) ** 2 + (xx - 12) ** 2) <= 16] = 0
    ring[12, 12] = 1  # island in the hole
    blobs = np.zeros((h, w), np.uint8)
    blobs[2:6, 30:34] = 1
    blobs[15:20, 40:50] = 1
    crowd = np.zeros((h, w), np.uint8)
    crowd[25:30, 2:20] = 1
    stuff = np.zeros((h, w), np.uint8)
    stuff[31:, :] = 1
    masks = [ring, blobs, crowd, stuff]
    classes = [1, 1, 1, 2]
    instances = tuple(
        Instance(rle.encode(m), c, iscrowd=k == 2)
        for k, (m, c) in enumerate(zip(masks, classes, strict=True))
    )
    return Sample("frame", (h, w), instances=instances, subset="val"), masks


def write(path: Path, samples: list[Sample]) -> coco_panoptic.Writer:
    with coco_panoptic.Writer(path, labels=LABELS) as writer:
        for s in samples:
            writer.write(s)
    return writer


def test_writes_panopticapi_layout_and_ids(tmp_path):
    sample, masks = scene()
    writer = write(tmp_path / "out", [sample])
    assert writer.report.ok
    assert writer.report.exact == 4
    out = tmp_path / "out" / "annotations"
    doc = json.loads((out / "panoptic_val.json").read_text())
    [ann] = doc["annotations"]
    assert ann["file_name"] == "frame.png"
    assert doc["images"] == [{"id": 1, "file_name": "frame.jpg", "height": 37, "width": 53}]
    ids = png_ids(out / "panoptic_val" / "frame.png")
    assert sorted(np.unique(ids).tolist()) == [0, 1, 2, 3, 4]
    for info, mask, inst in zip(ann["segments_info"], masks, sample.instances, strict=True):
        seg = ids == info["id"]
        assert np.array_equal(seg, mask.astype(bool))
        ys, xs = np.nonzero(seg)
        assert info["area"] == int(seg.sum())
        bbox = [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        assert info["bbox"] == [int(v) for v in bbox]
        assert all(type(v) is int for v in info["bbox"])
        assert info["category_id"] == inst.class_id
        assert info["iscrowd"] == int(inst.iscrowd)
    assert doc["categories"] == [
        {"id": 1, "name": "thing", "supercategory": "", "isthing": 1, "color": [200, 10, 10]},
        {"id": 2, "name": "stuff", "supercategory": "", "isthing": 0, "color": [10, 200, 10]},
    ]


def test_round_trip_is_pixel_exact(tmp_path):
    sample, masks = scene()
    write(tmp_path / "out", [sample])
    reader = coco_panoptic.Reader(tmp_path / "out")
    [back] = list(reader)
    assert reader.report.problems == []
    assert (back.id, back.subset, back.size) == ("frame", "val", sample.size)
    assert [pixels(i).tolist() for i in back.instances] == [m.tolist() for m in masks]
    assert [(i.class_id, i.iscrowd) for i in back.instances] == [
        (i.class_id, i.iscrowd) for i in sample.instances
    ]
    assert [(lab.id, lab.isthing) for lab in reader.labels] == [(1, True), (2, False)]


def test_rewriting_the_panopticapi_sample_is_exact(shared_data, tmp_path):
    src = shared_data(*SAMPLE_DATA, "panoptic_examples.json")
    reader = coco_panoptic.Reader(src)
    with coco_panoptic.Writer(tmp_path / "out", labels=reader.labels) as writer:
        for s in reader:
            writer.write(s)
    assert writer.report.exact == 50
    assert writer.report.ok
    again = list(coco_panoptic.Reader(tmp_path / "out"))
    for a, b in zip(coco_panoptic.Reader(src), again, strict=True):
        assert [(i.class_id, i.iscrowd, i.mask) for i in a.instances] == [
            (i.class_id, i.iscrowd, i.mask) for i in b.instances
        ]
        assert b.image is not None
        assert b.image.read_bytes() == a.image.read_bytes()


def test_overlap_is_a_loss_with_the_iou_kept(tmp_path):
    a = np.zeros((10, 10), np.uint8)
    a[0:5, 0:10] = 1  # 50 px
    b = np.zeros((10, 10), np.uint8)
    b[3:8, 0:10] = 1  # covers 20 px of a
    c = np.zeros((10, 10), np.uint8)
    c[9, 0:2] = 1
    d = c.copy()  # covers c entirely
    instances = tuple(Instance(rle.encode(m), 1) for m in (a, b, c, d))
    writer = write(tmp_path / "out", [Sample("s", (10, 10), instances=instances)])
    losses = [(x.instance, x.what, x.iou) for x in writer.report.losses]
    assert losses == [(0, "overlap", 30 / 50), (2, "overlap", 0.0)]
    assert writer.report.exact == 2
    [back] = list(coco_panoptic.Reader(tmp_path / "out"))
    a_left = a.copy()
    a_left[3:8] = 0
    assert [pixels(i).tolist() for i in back.instances] == [a_left.tolist(), b.tolist(), d.tolist()]


def test_scores_classes_and_empty_masks_are_reported(tmp_path):
    m = np.zeros((6, 6), np.uint8)
    m[1:3, 1:3] = 1
    n = np.zeros((6, 6), np.uint8)
    n[4:6, 4:6] = 1
    instances = (
        Instance(rle.encode(m), 1, score=0.9),
        Instance(rle.encode(n), 9),
        Instance(rle.empty((6, 6)), 1),
        Instance(rle.encode(n), 0),
    )
    writer = write(tmp_path / "out", [Sample("s", (6, 6), instances=instances)])
    assert [(x.sample, x.instance, x.what) for x in writer.report.losses] == [
        ("s", 0, "score"),
        ("s", 1, "class"),
        ("s", 2, "empty"),
        ("s", 3, "class"),
    ]
    [back] = list(coco_panoptic.Reader(tmp_path / "out"))
    assert [pixels(i).tolist() for i in back.instances] == [m.tolist()]


def test_convert_to_coco_matches_the_pngs(shared_data, tmp_path):
    root = shared_data(*SAMPLE_DATA)
    report = convert(root / "panoptic_examples.json", tmp_path / "coco", to="coco")
    assert report.exact == 50
    doc = json.loads((tmp_path / "coco/annotations/instances_examples.json").read_text())
    names = {im["id"]: im["file_name"] for im in doc["images"]}
    for ann in doc["annotations"]:
        ids = png_ids(root / "panoptic_examples" / names[ann["image_id"]].replace(".jpg", ".png"))
        seg = ann["segmentation"]
        h, w = ids.shape
        if isinstance(seg, list):
            mask = coco_mask.decode(coco_mask.merge(coco_mask.frPyObjects(seg, h, w)))
        else:
            mask = coco_mask.decode(
                coco_mask.frPyObjects(seg, h, w) if isinstance(seg["counts"], list) else seg
            )
        values = np.unique(ids[mask == 1])
        assert values.size == 1
        assert np.array_equal(mask == 1, ids == values[0])


# --------------------------------------------------------------------------- bad input


def copy_examples(shared_data, tmp_path: Path) -> Path:
    src = shared_data(*SAMPLE_DATA)
    dst = tmp_path / "ds"
    dst.mkdir()
    shutil.copy(src / "panoptic_examples.json", dst / "panoptic_examples.json")
    shutil.copytree(src / "panoptic_examples", dst / "panoptic_examples")
    return dst / "panoptic_examples.json"


def test_ids_missing_from_either_side_are_reported(shared_data, tmp_path):
    path = copy_examples(shared_data, tmp_path)
    doc = json.loads(path.read_text())
    first = doc["annotations"][0]["segments_info"]
    dropped = first.pop(3)  # painted in the PNG, no longer described
    first.append({"id": 999, "category_id": 1, "iscrowd": 0, "area": 1, "bbox": [0, 0, 1, 1]})
    first.append({**first[0], "id": 1000, "category_id": 4242})
    path.write_text(json.dumps(doc))
    reader = coco_panoptic.Reader(path)
    samples = list(reader)
    assert [len(s.instances) for s in samples] == [17, 32]
    got = [(Path(p.path).name, p.record) for p in reader.report.problems]
    assert got == [
        ("000000142238.png", "image 142238 segment 999"),  # described, not painted
        ("panoptic_examples.json", "image 142238 segment 1000"),  # unknown category
        ("000000142238.png", f"image 142238 segment {dropped['id']}"),  # painted, not described
    ]
    assert "4242" in reader.report.problems[1].message
    assert f"{dropped['area']} px" in reader.report.problems[2].message


def test_a_corrupt_png_is_reported_and_the_next_image_read(shared_data, tmp_path):
    path = copy_examples(shared_data, tmp_path)
    png = tmp_path / "ds" / "panoptic_examples" / "000000142238.png"
    png.write_bytes(png.read_bytes()[:300])
    reader = coco_panoptic.Reader(path)
    samples = list(reader)
    assert [len(s.instances) for s in samples] == [0, 32]
    [problem] = reader.report.problems
    assert (problem.path, problem.record) == (str(png), "image 142238")
    with pytest.raises(FormatError, match=r"000000142238\.png: record image 142238"):
        list(coco_panoptic.Reader(path, strict=True))


def test_rgb2id_is_computed_without_wrapping(tmp_path):
    """(10, 20, 30) is 1 971 210, not 5130 as a uint16 computation gives (§2.2)."""
    ids = np.array([[0, 1971210], [16777215, 65536]])
    rgb = coco_panoptic.id_to_rgb(ids)
    assert rgb[0, 1].tolist() == [10, 20, 30]
    assert np.array_equal(rgb2id(rgb), ids)
    assert np.array_equal(coco_panoptic.rgb_to_id(rgb), ids)
    assert coco_panoptic.rgb_to_id(rgb).dtype == np.uint32


def test_segment_masks_equal_dense_comparisons():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 5, size=(13, 7)) * 1000
    masks = coco_panoptic.segment_masks(ids)
    assert sorted(masks) == sorted(np.unique(ids).tolist())
    for value, mask in masks.items():
        theirs = coco_mask.encode(np.asfortranarray((ids == value).astype(np.uint8)))
        assert mask.to_coco()["counts"] == theirs["counts"].decode()


# --------------------------------------------------------------------------- detect


def test_detect_knows_real_files_and_writer_output(shared_data, tmp_path):
    assert coco_panoptic.detect(shared_data(*SAMPLE_DATA)).confidence == 3
    assert coco_panoptic.detect(shared_data(*SAMPLE_DATA, "panoptic_examples.json")).confidence == 3
    assert coco_panoptic.detect(shared_data(*DATUMARO, "coco_panoptic")).confidence == 3
    write(tmp_path / "out", [scene()[0]])
    assert coco_panoptic.detect(tmp_path / "out").confidence == 3


def test_detect_rejects_instances_files(shared_data):
    assert coco_panoptic.detect(shared_data(*DATUMARO, "coco_instances")).confidence == 0
    detection = shared_data(*SAMPLE_DATA, "panoptic_coco_detection_format.json")
    assert coco_panoptic.detect(detection).confidence == 0
