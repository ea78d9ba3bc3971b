"""sa1b: Segment Anything JSON (oracles: pycocotools, the json's own area and bbox)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as coco

from masklab import FormatError, rle
from masklab.formats import sa1b

SAM = ("datumaro", "tests", "assets", "segment_anything_dataset")


def sam_file(path: Path, masks: list[np.ndarray], **overrides) -> Path:
    h, w = masks[0].shape
    anns = []
    for i, m in enumerate(masks, start=1):
        enc = coco.encode(np.asfortranarray(m.astype(np.uint8)))
        anns.append(
            {
                "id": i,
                "segmentation": {"size": enc["size"], "counts": enc["counts"].decode()},
                "area": int(coco.area(enc)),
                "bbox": coco.toBbox(enc).tolist(),
                "predicted_iou": 0.5 + i / 10,
                "stability_score": 0.9,
                "point_coords": [[1.0, 2.0]],
                "crop_box": [0, 0, w, h],
                **overrides,
            }
        )
    doc = {
        "image": {"image_id": 3, "width": w, "height": h, "file_name": "x.jpg"},
        "annotations": anns,
    }
    path.write_text(json.dumps(doc))
    return path


def test_real_files_decode_like_pycocotools_with_their_area_and_bbox(shared_data):
    folder = shared_data(*SAM)
    doc = json.loads((folder / "a.json").read_text())
    reader = sa1b.Reader(folder)
    samples = {s.id: s for s in reader}
    a = samples["a"]
    assert a.size == (doc["image"]["height"], doc["image"]["width"])
    assert a.image == folder / "a.jpg"
    [inst] = a.instances
    [ann] = doc["annotations"]
    np.testing.assert_array_equal(rle.decode(inst.mask), coco.decode(ann["segmentation"]))
    assert inst.area == ann["area"]
    assert rle.bbox(inst.mask).tolist() == ann["bbox"]
    assert inst.score == ann["predicted_iou"]
    assert inst.id == ann["id"]
    assert reader.labels.by_id(inst.class_id).name == "object"
    assert inst.attributes["stability_score"] == ann["stability_score"]
    assert inst.attributes["point_coords"] == ann["point_coords"]
    assert inst.attributes["crop_box"] == ann["crop_box"]


def test_real_file_with_a_mask_of_the_wrong_size_is_reported(shared_data):
    """b.json says the image is 10 high and 5 wide; its RLE is 5 high and 10 wide."""
    folder = shared_data(*SAM)
    reader = sa1b.Reader(folder)
    samples = {s.id: s for s in reader}
    assert samples["b"].size == (10, 5)
    assert samples["b"].instances == ()
    [problem] = reader.report.problems
    assert problem.path == str(folder / "b.json")
    assert problem.record == "annotation 1"
    assert "RLE size [5, 10] is not the image's [10, 5]" in problem.message


def test_masks_overlap_and_keep_their_order(tmp_path):
    rng = np.random.default_rng(2)
    masks = [(rng.random((17, 23)) < p).astype(np.uint8) for p in (0.2, 0.5, 0.8)]
    reader = sa1b.Reader(sam_file(tmp_path / "x.json", masks))
    [sample] = list(reader)
    assert reader.report.problems == []
    assert [i.id for i in sample.instances] == [1, 2, 3]
    for inst, m in zip(sample.instances, masks, strict=True):
        np.testing.assert_array_equal(rle.decode(inst.mask), m)
    assert sample.meta == {"image_id": 3}


def test_area_that_disagrees_with_the_mask_is_reported_and_the_mask_kept(tmp_path):
    m = np.zeros((4, 4), np.uint8)
    m[1:3, 1:3] = 1
    reader = sa1b.Reader(sam_file(tmp_path / "x.json", [m], area=5))
    [sample] = list(reader)
    assert len(sample.instances) == 1
    [problem] = reader.report.problems
    assert "area 5 but the mask has 4 pixels" in problem.message


def test_corrupt_file_is_reported_and_the_rest_read(tmp_path):
    sam_file(tmp_path / "a.json", [np.ones((3, 3), np.uint8)])
    (tmp_path / "b.json").write_text('{"image": {')
    bad_counts = {"segmentation": {"size": [3, 3], "counts": "zz~"}}
    sam_file(tmp_path / "c.json", [np.ones((3, 3), np.uint8)], **bad_counts)
    reader = sa1b.Reader(tmp_path)
    samples = list(reader)
    assert [(s.id, len(s.instances)) for s in samples] == [("a", 1), ("c", 0)]
    assert [(Path(p.path).name, p.record) for p in reader.report.problems] == [
        ("b.json", "b"),
        ("c.json", "annotation 1"),
    ]


def test_strict_mode_raises_naming_file_and_annotation(tmp_path):
    sam_file(tmp_path / "a.json", [np.ones((3, 3), np.uint8)], area=1)
    with pytest.raises(FormatError, match=r"a\.json: record annotation 1: area 1"):
        list(sa1b.Reader(tmp_path, strict=True))


def test_detect_knows_sa1b_and_not_coco_or_labelme(tmp_path, shared_data):
    assert sa1b.detect(shared_data(*SAM)).confidence == 3
    coco_dir = shared_data("datumaro", "tests", "assets", "coco_dataset", "coco_instances")
    assert sa1b.detect(coco_dir / "annotations").confidence == 0
    assert sa1b.detect(coco_dir / "annotations" / "instances_train.json").confidence == 0
    assert (
        sa1b.detect(shared_data("bubbliiiing-unet-pytorch", "datasets", "before")).confidence == 0
    )


def test_sa1b_is_read_only():
    assert sa1b.SPEC.can_write is False
    assert not hasattr(sa1b, "Writer")
