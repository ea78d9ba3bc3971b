"""masklab.formats.coco against pycocotools and real COCO files (reference/formats.md §1.6-1.9)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from pycocotools import mask as coco_mask
from pycocotools.coco import COCO

from masklab.core import rle
from masklab.core.instances import Instance
from masklab.core.labels import LabelMap
from masklab.errors import FormatError
from masklab.formats import coco, convert
from masklab.formats._base import Sample

AIRO = ("airo-mono-coco-val2017-small", "airo-dataset-tools", "test", "test_data")
AIRO_JSON = (*AIRO, "instances_val2017_small.json")
DETECTION_JSON = ("panopticapi", "sample_data", "panoptic_coco_detection_format.json")
DATUMARO = ("datumaro", "tests", "assets", "coco_dataset")


def load_coco(path: Path) -> COCO:
    """pycocotools' COCO without its progress prints."""
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def pixels(inst: Instance) -> np.ndarray:
    return rle.decode(inst.mask)


# --------------------------------------------------------------------------- synthetic scene


H, W = 61, 83  # odd sizes on purpose


def scene_masks() -> list[tuple[str, np.ndarray, bool]]:
    """(what, mask, iscrowd): holes, an island in a hole, parts, overlap, diagonal, crowd."""
    ring = np.zeros((H, W), np.uint8)
    cv2.circle(ring, (20, 20), 14, 1, -1)
    cv2.circle(ring, (20, 20), 7, 0, -1)
    ring[19:22, 19:22] = 1  # an island inside the hole: a second part
    parts = np.zeros((H, W), np.uint8)
    cv2.rectangle(parts, (42, 4), (52, 14), 1, -1)
    cv2.circle(parts, (70, 40), 8, 1, -1)
    over = np.zeros((H, W), np.uint8)  # overlaps the ring
    cv2.ellipse(over, (28, 30), (16, 7), 30, 0, 360, 1, -1)
    diag = np.zeros((H, W), np.uint8)
    diag[40, 40] = diag[41, 41] = diag[42, 42] = 1  # pixels touching only at corners
    two_holes = np.zeros((H, W), np.uint8)
    two_holes[44:58, 50:80] = 1
    two_holes[47:52, 54:60] = 0
    two_holes[47:52, 66:74] = 0
    crowd = np.zeros((H, W), np.uint8)
    crowd[45:60, 2:40] = 1
    crowd[50:55, 10:20] = 0  # a crowd region with a hole
    return [
        ("ring", ring, False),
        ("parts", parts, False),
        ("over", over, False),
        ("diag", diag, False),
        ("two_holes", two_holes, False),
        ("crowd", crowd, True),
    ]


LABELS = LabelMap.from_names(["background", "cat", "dog"], background=0)


def scene_sample(subset: str | None = "train") -> tuple[Sample, list[np.ndarray]]:
    masks = scene_masks()
    instances = tuple(
        Instance(rle.encode(m), 1 + k % 2, iscrowd=crowd, score=0.25 if k == 2 else None)
        for k, (_, m, crowd) in enumerate(masks)
    )
    return Sample("scene", (H, W), instances=instances, subset=subset), [m for _, m, _ in masks]


def write(path: Path, samples: list[Sample], **options: Any) -> coco.Writer:
    with coco.Writer(path, labels=LABELS, **options) as writer:
        for s in samples:
            writer.write(s)
    return writer


# --------------------------------------------------------------------------- real files


def test_reads_val2017_sample_pixel_equal_to_pycocotools(shared_data):
    path = shared_data(*AIRO_JSON)
    gt = load_coco(path)
    reader = coco.Reader(path)
    samples = list(reader)
    assert len(reader) == len(samples) == 3
    assert sum(len(s.instances) for s in samples) == 34
    assert reader.report.problems == []
    for s in samples:
        im = gt.imgs[s.meta["image_id"]]
        assert s.size == (im["height"], im["width"])
        assert s.image is None  # no image files in the test data: sizes come from the json
        assert s.subset == "val2017_small"
        for inst in s.instances:
            ann = gt.anns[inst.id]
            assert inst.class_id == ann["category_id"]
            assert inst.iscrowd == bool(ann["iscrowd"])
            assert np.array_equal(pixels(inst), gt.annToMask(ann)), inst.id


def test_keeps_original_polygon_rings_and_reads_the_crowd_rle(shared_data):
    path = shared_data(*AIRO_JSON)
    data = json.loads(path.read_text())
    anns = {a["id"]: a for a in data["annotations"]}
    instances = [i for s in coco.Reader(path) for i in s.instances]
    crowd = [i for i in instances if i.iscrowd]
    assert [i.id for i in crowd] == [900100448263]
    assert crowd[0].polygons is None
    for inst in instances:
        seg = anns[inst.id]["segmentation"]
        if isinstance(seg, list):
            assert inst.polygons == tuple(tuple(float(v) for v in ring) for ring in seg)


def test_labels_are_the_json_categories(shared_data):
    path = shared_data(*AIRO_JSON)
    cats = json.loads(path.read_text())["categories"]
    labels = coco.Reader(path).labels
    assert [(lab.id, lab.name) for lab in labels] == [(c["id"], c["name"]) for c in cats]
    assert all(lab.isthing for lab in labels)  # no isthing in the json: things
    assert labels.by_id(1).color == (128, 0, 0)  # VOC colour when the json gives none


def test_reads_detection_format_rles_with_id_zero(shared_data):
    path = shared_data(*DETECTION_JSON)
    data = json.loads(path.read_text())
    assert min(a["id"] for a in data["annotations"]) == 0
    samples = list(coco.Reader(path))
    instances = [i for s in samples for i in s.instances]
    assert len(instances) == 50
    assert sum(i.iscrowd for i in instances) == 3
    by_id = {a["id"]: a for a in data["annotations"]}
    assert 0 in {i.id for i in instances}
    for inst in instances:
        theirs = coco_mask.decode(by_id[inst.id]["segmentation"])
        assert np.array_equal(pixels(inst), theirs)
    labels = coco.Reader(path).labels
    assert labels.by_id(1).color == (220, 20, 60)  # the json's colour


def test_writer_renumbers_ids_from_one(shared_data, tmp_path):
    src = shared_data(*DETECTION_JSON)
    reader = coco.Reader(src)
    with coco.Writer(tmp_path / "out", labels=reader.labels) as writer:
        for s in reader:
            writer.write(s)
    out = tmp_path / "out" / "annotations" / "instances_default.json"
    data = json.loads(out.read_text())
    ids = [a["id"] for a in data["annotations"]]
    assert ids == list(range(1, 51))  # §1.9: id 0 reads as "no match" in COCOeval
    assert [im["id"] for im in data["images"]] == [1, 2]
    theirs = load_coco(src)
    ours = load_coco(out)
    src_by_key = {(a["image_id"], a["area"], tuple(a["bbox"])): a for a in theirs.anns.values()}
    names = {im["file_name"]: im["id"] for im in theirs.imgs.values()}
    for ann in ours.anns.values():
        image = ours.imgs[ann["image_id"]]
        key = (names[image["file_name"]], ann["area"], tuple(int(v) for v in ann["bbox"]))
        assert np.array_equal(ours.annToMask(ann), theirs.annToMask(src_by_key[key]))


TRAIN_IMAGE = {
    "coco_instances": ("images", "train", "a.jpg"),
    "coco_roboflow": ("train", "a.jpg"),
    "mmdet_coco": ("train", "a.jpg"),
}
VAL_IMAGE = {
    "coco_instances": ("images", "val", "b.jpg"),
    "coco_roboflow": ("val", "b.jpg"),
    "mmdet_coco": ("val", "b.jpg"),
}


@pytest.mark.parametrize("layout", ["coco_instances", "coco_roboflow", "mmdet_coco"])
def test_reads_datumaro_layouts_with_their_images(shared_data, layout):
    root = shared_data(*DATUMARO, layout)
    reader = coco.Reader(root)
    samples = {s.subset: s for s in reader}
    assert set(samples) == {"train", "val"}
    assert samples["train"].image == root.joinpath(*TRAIN_IMAGE[layout])
    assert samples["val"].image == root.joinpath(*VAL_IMAGE[layout])
    assert samples["val"].size == (10, 5)
    assert [lab.name for lab in reader.labels] == ["a", "b", "c"]
    assert reader.labels.ids == [1, 2, 4]
    polygon_inst, crowd = samples["val"].instances
    val_json = next(root.rglob("*val*/_annotations.coco.json"), None) or next(
        root.glob("annotations/instances_val.json")
    )
    gt = load_coco(val_json)
    assert np.array_equal(pixels(polygon_inst), gt.annToMask(gt.anns[1]))
    assert np.array_equal(pixels(crowd), gt.annToMask(gt.anns[2]))
    assert crowd.iscrowd
    assert rle.area(crowd.mask) == 20
    assert polygon_inst.attributes == {"x": 1, "y": "hello"}
    # the train image's only annotation is box-only: reported with file and id, not invented
    assert samples["train"].instances == ()
    [problem] = reader.report.problems
    assert problem.record == "annotation 1"
    assert Path(problem.path).parts[-2:] in {
        ("annotations", "instances_train.json"),
        ("train", "_annotations.coco.json"),
    }
    assert "segmentation" in problem.message


def test_roboflow_split_folder_is_its_own_subset(shared_data):
    samples = list(coco.Reader(shared_data(*DATUMARO, "coco_roboflow", "val")))
    assert [(s.id, s.subset) for s in samples] == [("b", "val")]


# --------------------------------------------------------------------------- results


def test_reads_results_with_gt_like_pycocotools_loadres(shared_data, tmp_path):
    gt_path = shared_data(*AIRO_JSON)
    gt = load_coco(gt_path)
    results = []
    for k, ann in enumerate(sorted(gt.anns.values(), key=lambda a: a["id"])):
        segm = gt.annToRLE(ann)
        segm["counts"] = segm["counts"].decode("ascii")
        results.append(
            {
                "image_id": ann["image_id"],
                "category_id": ann["category_id"],
                "segmentation": segm,
                "score": round(0.01 * (k + 1), 2),
            }
        )
    res_path = tmp_path / "results.json"
    res_path.write_text(json.dumps(results))
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(str(res_path))
    reader = coco.Reader(res_path, gt=gt_path)
    instances = [i for s in reader for i in s.instances]
    assert reader.report.problems == []
    assert len(instances) == 34
    for inst in instances:
        ann = dt.anns[inst.id]  # loadRes numbers results 1..n, as the reader does
        assert inst.score == ann["score"]
        assert np.array_equal(pixels(inst), dt.annToMask(ann))


def test_results_without_gt_is_refused(tmp_path):
    path = tmp_path / "results.json"
    path.write_text('[{"image_id": 1, "category_id": 1, "segmentation": [], "score": 1}]')
    with pytest.raises(FormatError, match=r"results list.*gt="):
        coco.Reader(path)


# --------------------------------------------------------------------------- writer


@pytest.mark.parametrize("encoding", ["auto", "polygon", "rle"])
def test_written_masks_equal_pycocotools_anntomask(tmp_path, encoding):
    sample, masks = scene_sample()
    writer = write(tmp_path / "out", [sample], mask_encoding=encoding)
    assert writer.report.ok
    assert writer.report.exact == len(masks)
    gt = load_coco(tmp_path / "out" / "annotations" / "instances_train.json")
    anns = sorted(gt.anns.values(), key=lambda a: a["id"])
    assert [a["id"] for a in anns] == list(range(1, len(masks) + 1))
    for ann, mask, inst in zip(anns, masks, sample.instances, strict=True):
        assert np.array_equal(gt.annToMask(ann), mask), (encoding, ann["id"])
        assert ann["area"] == int(mask.sum())
        theirs = coco_mask.encode(np.asfortranarray(mask))
        assert ann["bbox"] == coco_mask.toBbox(theirs).tolist()
        assert ann["iscrowd"] == int(inst.iscrowd)
        assert ann.get("score") == inst.score


@pytest.mark.parametrize("encoding", ["auto", "polygon", "rle"])
def test_round_trip_is_pixel_exact(tmp_path, encoding):
    sample, masks = scene_sample()
    write(tmp_path / "out", [sample], mask_encoding=encoding)
    [back] = list(coco.Reader(tmp_path / "out"))
    assert (back.id, back.subset, back.size) == ("scene", "train", (H, W))
    assert [pixels(i).tolist() for i in back.instances] == [m.tolist() for m in masks]
    assert [(i.class_id, i.iscrowd, i.score) for i in back.instances] == [
        (i.class_id, i.iscrowd, i.score) for i in sample.instances
    ]


def test_auto_encoding_picks_per_instance(tmp_path):
    sample, _ = scene_sample()
    write(tmp_path / "out", [sample])
    anns = json.loads((tmp_path / "out/annotations/instances_train.json").read_text())[
        "annotations"
    ]
    kinds = {}
    for (what, _, _), ann in zip(scene_masks(), anns, strict=True):
        seg = ann["segmentation"]
        kinds[what] = "polygon" if isinstance(seg, list) else type(seg["counts"]).__name__
    assert kinds == {
        "ring": "str",  # holes: compressed RLE
        "parts": "polygon",
        "over": "polygon",
        "diag": "polygon",
        "two_holes": "str",
        "crowd": "list",  # crowd: uncompressed RLE, the GT convention
    }


def test_polygon_encoding_keeps_holes_with_keyholes(tmp_path):
    sample, masks = scene_sample()
    write(tmp_path / "out", [sample], mask_encoding="polygon")
    anns = json.loads((tmp_path / "out/annotations/instances_train.json").read_text())[
        "annotations"
    ]
    assert all(isinstance(a["segmentation"], list) for a in anns)
    ring = anns[0]["segmentation"]
    h, w = masks[0].shape
    # pycocotools' union of the rings keeps the hole: the keyhole bridge cancels out
    theirs = coco_mask.decode(coco_mask.merge(coco_mask.frPyObjects(ring, h, w)))
    assert np.array_equal(theirs, masks[0])


def test_auto_writes_the_polygons_it_read(shared_data, tmp_path):
    src = shared_data(*AIRO_JSON)
    reader = coco.Reader(src)
    with coco.Writer(tmp_path / "out", labels=reader.labels) as writer:
        for s in reader:
            writer.write(s)
    original = json.loads(src.read_text())
    written = json.loads((tmp_path / "out/annotations/instances_val2017_small.json").read_text())
    before = [a["segmentation"] for a in original["annotations"]]
    after = [a["segmentation"] for a in written["annotations"]]
    assert after == before  # the same rings; the crowd RLE stays uncompressed
    assert writer.report.exact == 34


def test_polygons_that_no_longer_match_the_mask_are_not_written(tmp_path):
    mask = np.zeros((10, 10), np.uint8)
    mask[2:6, 2:6] = 1
    stale = ((0.0, 0.0, 9.0, 0.0, 9.0, 9.0),)  # rings of some other mask
    sample = Sample("s", (10, 10), instances=(Instance(rle.encode(mask), 1, polygons=stale),))
    write(tmp_path / "out", [sample])
    gt = load_coco(tmp_path / "out/annotations/instances_default.json")
    [ann] = gt.anns.values()
    assert isinstance(ann["segmentation"], dict)
    assert np.array_equal(gt.annToMask(ann), mask)


def test_unknown_and_background_classes_are_a_class_loss(tmp_path):
    mask = np.zeros((8, 8), np.uint8)
    mask[1:4, 1:4] = 1
    m = rle.encode(mask)
    sample = Sample("s", (8, 8), instances=(Instance(m, 7), Instance(m, 1), Instance(m, 0)))
    writer = write(tmp_path / "out", [sample])
    assert [(loss.sample, loss.instance, loss.what) for loss in writer.report.losses] == [
        ("s", 0, "class"),
        ("s", 2, "class"),
    ]
    data = json.loads((tmp_path / "out/annotations/instances_default.json").read_text())
    assert [a["category_id"] for a in data["annotations"]] == [1]
    assert [c["id"] for c in data["categories"]] == [1, 2]  # background left out


def test_writes_images_per_subset_and_one_json_each(shared_data, tmp_path):
    report = convert(shared_data(*DATUMARO, "coco_instances"), tmp_path / "out", to="coco")
    out = tmp_path / "out"
    assert (out / "images/train/a.jpg").is_file()
    assert (out / "images/val/b.jpg").is_file()
    assert sorted(p.name for p in (out / "annotations").iterdir()) == [
        "instances_train.json",
        "instances_val.json",
    ]
    assert (report.samples, report.instances, report.exact) == (2, 2, 2)
    assert [p.record for p in report.problems] == ["annotation 1"]  # the box-only one
    assert coco.detect(out).confidence == 3


def test_semantic_samples_are_split_into_instances(tmp_path):
    classes = np.zeros((6, 9), np.uint8)
    classes[1:3, 1:3] = 1
    classes[1:3, 5:8] = 1
    classes[4:6, 0:9] = 2
    sample = Sample("sem", (6, 9), semantic=classes)
    write(tmp_path / "out", [sample])
    gt = load_coco(tmp_path / "out/annotations/instances_default.json")
    painted = np.zeros_like(classes)
    for ann in gt.anns.values():
        painted[gt.annToMask(ann) == 1] = ann["category_id"]
    assert np.array_equal(painted, classes)
    assert len(gt.anns) == 3


def test_output_appears_only_on_close(tmp_path):
    sample, _ = scene_sample()
    writer = coco.Writer(tmp_path / "out", labels=LABELS)
    writer.write(sample)
    assert not (tmp_path / "out").exists()
    writer.abort()
    assert not (tmp_path / "out").exists()
    assert list(tmp_path.iterdir()) == []


def test_a_mask_of_the_wrong_size_is_reported_by_the_writer(tmp_path):
    ok = Instance(rle.encode(np.ones((4, 5), np.uint8)), 1)
    wrong = Instance(rle.encode(np.ones((5, 4), np.uint8)), 1)
    sample = Sample("s", (4, 5), instances=(wrong, ok))
    writer = write(tmp_path / "out", [sample])
    [problem] = writer.report.problems
    assert problem.record == "s#0"
    assert "[5, 4]" in problem.message
    assert writer.report.exact == 1
    with (
        pytest.raises(FormatError, match=r"s: instance 0: mask of s has size \[5, 4\]"),
        coco.Writer(tmp_path / "strict", labels=LABELS, strict=True) as strict,
    ):
        strict.write(sample)
    assert not (tmp_path / "strict").exists()


def test_bad_mask_encoding_is_refused(tmp_path):
    with pytest.raises(FormatError, match="mask_encoding"):
        coco.Writer(tmp_path / "out", labels=LABELS, mask_encoding="png")


# --------------------------------------------------------------------------- bad input


def bad_records_json(tmp_path: Path) -> Path:
    good = {"size": [4, 5], "counts": rle.encode(np.eye(4, 5)).to_coco()["counts"]}
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 4, 0, 4, 3]]},
        {"id": 2, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 4, 0]]},
        {
            "id": 3,
            "image_id": 1,
            "category_id": 1,
            "segmentation": {"size": [4, 5], "counts": [3, 2]},
        },
        {
            "id": 4,
            "image_id": 1,
            "category_id": 1,
            "segmentation": {"size": [5, 4], "counts": [20]},
        },
        {"id": 5, "image_id": 9, "category_id": 1, "segmentation": good},
        {"id": 6, "image_id": 1, "category_id": 3, "segmentation": good},
        {"id": 7, "image_id": 1, "category_id": 1},
        {
            "id": 8,
            "image_id": 1,
            "category_id": 1,
            "segmentation": {"size": [4, 5], "counts": "!!"},
        },
        {"id": 9, "image_id": 1, "category_id": 2, "segmentation": good, "iscrowd": 1},
    ]
    doc = {
        "images": [{"id": 1, "file_name": "x.png", "height": 4, "width": 5}],
        "annotations": anns,
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
    }
    path = tmp_path / "instances_bad.json"
    path.write_text(json.dumps(doc))
    return path


def test_bad_records_are_reported_and_the_rest_read(tmp_path):
    path = bad_records_json(tmp_path)
    reader = coco.Reader(path)
    [sample] = list(reader)
    assert [i.id for i in sample.instances] == [1, 9]
    assert {p.path for p in reader.report.problems} == {str(path)}
    messages = {p.record: p.message for p in reader.report.problems}
    # unknown images while grouping, then each image's records in json order
    assert list(messages) == [f"annotation {k}" for k in (5, 2, 3, 4, 6, 7, 8)]
    assert "image_id 9" in messages["annotation 5"]
    assert "4 coordinates" in messages["annotation 2"]
    assert "sum to 5" in messages["annotation 3"]
    assert "differs from its image" in messages["annotation 4"]
    assert "category_id 3" in messages["annotation 6"]
    assert "missing ['segmentation']" in messages["annotation 7"]
    # oracle for the survivors
    expected = np.zeros((4, 5), np.uint8)
    expected[0, 0:4] = 1  # triangle (0,0)-(4,0)-(4,3): pycocotools' pixels
    theirs = coco_mask.decode(coco_mask.merge(coco_mask.frPyObjects([[0, 0, 4, 0, 4, 3]], 4, 5)))
    assert np.array_equal(pixels(sample.instances[0]), theirs)
    assert np.array_equal(pixels(sample.instances[1]), np.eye(4, 5, dtype=np.uint8))


def test_strict_raises_naming_file_and_record(tmp_path):
    path = bad_records_json(tmp_path)
    with pytest.raises(FormatError, match=r"instances_bad\.json: record annotation 5") as info:
        list(coco.Reader(path, strict=True))
    assert (info.value.path, info.value.record) == (str(path), "annotation 5")


def test_truncated_json_is_reported(tmp_path):
    path = tmp_path / "instances_cut.json"
    path.write_text(bad_records_json(tmp_path).read_text()[:150])
    reader = coco.Reader(path)
    assert list(reader) == []
    [problem] = reader.report.problems
    assert problem.path == str(path)
    assert "not valid json" in problem.message
    with pytest.raises(FormatError, match="not valid json"):
        list(coco.Reader(path, strict=True))


def test_a_broken_subset_does_not_stop_the_others(tmp_path):
    sample, _ = scene_sample("val")
    write(tmp_path / "ds", [sample])
    (tmp_path / "ds/annotations/instances_train.json").write_text("{")
    reader = coco.Reader(tmp_path / "ds")
    assert [s.subset for s in reader] == ["val"]
    assert [Path(p.path).name for p in reader.report.problems] == ["instances_train.json"]


# --------------------------------------------------------------------------- detect


def test_detect_knows_real_files_and_writer_output(shared_data, tmp_path):
    assert coco.detect(shared_data(*AIRO_JSON)).confidence == 3
    assert coco.detect(shared_data(*DETECTION_JSON)).confidence == 2
    for layout in ("coco_instances", "coco_roboflow", "mmdet_coco"):
        assert coco.detect(shared_data(*DATUMARO, layout)).confidence == 3
    write(tmp_path / "out", [scene_sample()[0]])
    assert coco.detect(tmp_path / "out").confidence == 3


def test_detect_rejects_panoptic_and_other_folders(shared_data, tmp_path):
    assert coco.detect(shared_data(*DATUMARO, "coco_panoptic")).confidence == 0
    sample = shared_data("panopticapi", "sample_data", "panoptic_examples.json")
    assert coco.detect(sample).confidence == 0  # segments_info: panoptic
    sa1b = shared_data(*DATUMARO[:-1], "segment_anything_dataset", "a.json")
    assert coco.detect(sa1b).confidence == 0  # "image" + "annotations": SA-1B, not COCO
    (tmp_path / "SegmentationClass").mkdir()
    assert coco.detect(tmp_path).confidence == 0


def test_polygons_outside_the_image_are_read_clipped_and_reported(tmp_path):
    """The mask keeps what lies inside (as pycocotools rasterises it); the report says so."""
    from masklab.formats import coco as coco_format

    data = {
        "images": [{"id": 1, "file_name": "a.jpg", "height": 4, "width": 5}],
        "categories": [{"id": 1, "name": "cat"}],
        "annotations": [
            {
                "id": 3,
                "image_id": 1,
                "category_id": 1,
                "iscrowd": 0,
                "segmentation": [[-2, -2, 3, -2, 3, 2, -2, 2]],
            },
            {
                "id": 4,
                "image_id": 1,
                "category_id": 1,
                "iscrowd": 0,
                "segmentation": [[1, 1, 5, 1, 5, 4, 1, 4]],
            },
        ],
    }
    path = tmp_path / "instances_val.json"
    path.write_text(json.dumps(data))
    reader = coco_format.Reader(path)
    (sample,) = list(reader)
    assert [rle.area(i.mask) for i in sample.instances] == [6, 12]  # 3x2 inside, 4x3 on the edge
    assert reader.report.clipped == 1
    (loss,) = reader.report.losses
    assert (loss.sample, loss.instance, loss.what) == ("a", 0, "clipped")
    assert "annotation 3" in loss.detail


@pytest.mark.parametrize("use_orjson", [True, False])
def test_json_loads_with_and_without_orjson(use_orjson, tmp_path, monkeypatch):
    from masklab.formats import coco as coco_format

    if not use_orjson:
        monkeypatch.setattr(coco_format, "_orjson", None)
    path = tmp_path / "a.json"
    path.write_text('{"images": [1, 2.5, "x"]}')
    assert coco_format.load_json(path) == {"images": [1, 2.5, "x"]}
    path.write_text('{"images": [')
    with pytest.raises(FormatError, match="not valid json"):
        coco_format.load_json(path)
