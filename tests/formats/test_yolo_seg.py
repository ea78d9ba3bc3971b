"""yolo-seg: Ultralytics polygons (oracles: the real files parsed here, pycocotools)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco

from masklab import FormatError, rle
from masklab.core.instances import Instance
from masklab.core.labels import LabelMap
from masklab.formats import yolo_seg
from masklab.formats._base import Sample

YOLO = ("cvat-ai-datumaro", "tests", "assets", "yolo_dataset")


def coco_pixels(flat: list[float], h: int, w: int) -> np.ndarray:
    return coco.decode(coco.merge(coco.frPyObjects([flat], h, w)))


def parse_rows(txt: Path) -> list[tuple[int, list[float]]]:
    rows = []
    for line in txt.read_text().splitlines():
        values = line.split()
        rows.append((int(values[0]), [float(v) for v in values[1:]]))
    return rows


def make_image(path: Path, h: int, w: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (w, h), (10, 20, 30)).save(path)
    return path


def make_dataset(root: Path, rows: str, *, h: int = 20, w: int = 40, names: str = "[a, b]") -> Path:
    make_image(root / "images" / "train" / "x.png", h, w)
    (root / "labels" / "train").mkdir(parents=True)
    (root / "labels" / "train" / "x.txt").write_text(rows)
    (root / "data.yaml").write_text(f"path: .\ntrain: images/train\nnames: {names}\n")
    return root


def write(tmp_path: Path, masks: list[np.ndarray], classes: list[int] | None = None, **kw):
    h, w = masks[0].shape
    image = make_image(tmp_path / "src" / "img.png", h, w)
    instances = tuple(
        Instance(rle.encode(m), (classes or [0] * len(masks))[i], **kw) for i, m in enumerate(masks)
    )
    out = tmp_path / "out"
    writer = yolo_seg.Writer(out, labels=LabelMap.from_names(["a", "b"]))
    writer.write(Sample("img", (h, w), image=image, instances=instances, subset="val"))
    return out, writer.close()


# --------------------------------------------------------------------------- real files


def test_reads_real_yolov8_segmentation_rows_as_pycocotools_pixels(shared_data):
    root = shared_data(*YOLO, "yolov8_segmentation")
    expected = parse_rows(root / "labels" / "train" / "1.txt")
    with Image.open(root / "images" / "train" / "1.jpg") as im:
        w, h = im.size
    reader = yolo_seg.Reader(root)
    [sample] = list(reader)
    assert reader.report.problems == []
    assert (sample.id, sample.size, sample.subset) == ("1", (h, w), "train")
    assert [inst.class_id for inst in sample.instances] == [cls for cls, _ in expected]
    for inst, (_, norm) in zip(sample.instances, expected, strict=True):
        flat = [v * (w if k % 2 == 0 else h) for k, v in enumerate(norm)]
        np.testing.assert_array_equal(rle.decode(inst.mask), coco_pixels(flat, h, w))


def test_real_data_yaml_names_become_the_label_map(shared_data):
    reader = yolo_seg.Reader(shared_data(*YOLO, "yolov8_segmentation"))
    assert reader.labels.ids == list(range(10))
    assert [lab.name for lab in reader.labels] == [f"label_{i}" for i in range(10)]


def test_names_as_a_list_are_read_too(shared_data):
    reader = yolo_seg.Reader(shared_data(*YOLO, "yolov8_detection_with_list_of_names"))
    assert [lab.name for lab in reader.labels] == [f"label_{i}" for i in range(10)]


def test_detect_knows_the_real_segmentation_dataset(shared_data):
    assert yolo_seg.detect(shared_data(*YOLO, "yolov8_segmentation")).confidence == 3


@pytest.mark.parametrize("folder", ["yolov8_detection", "yolov8_pose", "yolov8_classification"])
def test_detect_rejects_other_yolo_tasks(shared_data, folder):
    assert yolo_seg.detect(shared_data(*YOLO, folder)).confidence == 0


def test_detect_rejects_another_formats_folder(shared_data):
    sam = shared_data("datumaro", "tests", "assets", "segment_anything_dataset")
    assert yolo_seg.detect(sam).confidence == 0


def test_detection_rows_are_reported_not_read_as_polygons(shared_data):
    reader = yolo_seg.Reader(shared_data(*YOLO, "yolov8_detection"))
    [sample] = list(reader)
    assert sample.instances == ()
    assert [p.record for p in reader.report.problems] == [1, 2]
    assert all("detection box" in p.message for p in reader.report.problems)


# --------------------------------------------------------------------------- data.yaml


def test_parse_data_yaml_reads_the_ultralytics_subset():
    text = (
        "# dataset\n"
        "path: ../datasets/coco8-seg  # root\n"
        "train: images/train\n"
        "val:\n"
        "- images/val\n"
        "- other/val\n"
        "test:\n"
        "names:\n"
        "  0: person\n"
        "  1: 'traffic light'\n"
        '  2: "a # b"\n'
        "kpt_shape: [17, 3]\n"
        "download: |\n"
        "  from x import y\n"
        "  y('a: b')\n"
        "nc: 3\n"
    )
    assert yolo_seg.parse_data_yaml(text) == {
        "path": "../datasets/coco8-seg",
        "train": "images/train",
        "val": ["images/val", "other/val"],
        "test": None,
        "names": {0: "person", 1: "traffic light", 2: "a # b"},
        "kpt_shape": [17, 3],
        "download": None,
        "nc": 3,
    }


def test_parse_data_yaml_names_the_line_it_cannot_read():
    with pytest.raises(FormatError, match=r"data.yaml:2: expected 'key: value'"):
        yolo_seg.parse_data_yaml("names: [a]\njust words\n")


# --------------------------------------------------------------------------- bad input


def test_bad_rows_are_reported_by_line_and_the_rest_read(tmp_path):
    rows = (
        "0 0.1 0.1 0.5 0.1 0.5 0.5\n"
        "1 0.1 0.1 zero 0.1 0.5 0.5\n"  # 2: non-numeric
        "1 0.1 0.1\n"  # 3: 1 point
        "1 0.1 0.1 0.5 0.1 0.5\n"  # 4: odd number of coordinates
        "2 0.1 0.1 0.5 0.1 0.5 0.5\n"  # 5: class >= nc (2 names)
        "1 0.1 0.1 1.5 0.1 0.5 0.5\n"  # 6: not normalised
        "1 0.2 0.2 0.9 0.2 0.9 0.9\n"
    )
    root = make_dataset(tmp_path / "ds", rows)
    reader = yolo_seg.Reader(root)
    [sample] = list(reader)
    assert [inst.class_id for inst in sample.instances] == [0, 1]
    txt = str(root / "labels" / "train" / "x.txt")
    problems = reader.report.problems
    assert [(p.path, p.record) for p in problems] == [(txt, n) for n in (2, 3, 4, 5, 6)]
    messages = [p.message for p in problems]
    assert "'zero' is not a number" in messages[0]
    assert "1 point(s)" in messages[1]
    assert "odd number of coordinates" in messages[2]
    assert "nc=2" in messages[3]
    assert "normalised" in messages[4]


def test_strict_mode_raises_naming_file_and_line(tmp_path):
    root = make_dataset(tmp_path / "ds", "0 0.1 0.1 0.5 0.1 0.5 0.5\n0 0.1 nope 0.5\n")
    with pytest.raises(FormatError, match=r"x\.txt: record 2: .*not a number") as info:
        list(yolo_seg.Reader(root, strict=True))
    assert info.value.record == 2


def test_label_file_without_an_image_is_reported(tmp_path):
    root = make_dataset(tmp_path / "ds", "0 0.1 0.1 0.5 0.1 0.5 0.5\n")
    (root / "labels" / "train" / "ghost.txt").write_text("0 0.1 0.1 0.5 0.1 0.5 0.5\n")
    reader = yolo_seg.Reader(root)
    assert len(list(reader)) == 1
    [problem] = reader.report.problems
    assert problem.path.endswith("ghost.txt")
    assert "without an image" in problem.message


def test_image_without_a_label_file_has_no_instances(tmp_path):
    root = make_dataset(tmp_path / "ds", "0 0.1 0.1 0.5 0.1 0.5 0.5\n")
    make_image(root / "images" / "train" / "y.png", 5, 6)
    samples = {s.id: s for s in yolo_seg.Reader(root)}
    assert samples["y"].instances == ()
    assert samples["y"].size == (5, 6)


def test_truncated_image_is_reported_and_skipped(tmp_path):
    root = make_dataset(tmp_path / "ds", "0 0.1 0.1 0.5 0.1 0.5 0.5\n")
    (root / "images" / "train" / "broken.png").write_bytes(b"\x89PNG\r\n")
    reader = yolo_seg.Reader(root)
    assert [s.id for s in reader] == ["x"]
    assert reader.report.problems[0].record == "broken"


# --------------------------------------------------------------------------- writer


def rect(h: int, w: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def test_simple_masks_round_trip_exactly(tmp_path):
    ell = np.zeros((37, 53), np.uint8)
    yy, xx = np.mgrid[0:37, 0:53]
    ell[((yy - 18) / 11.0) ** 2 + ((xx - 30) / 17.0) ** 2 <= 1] = 1
    lshape = rect(37, 53, 2, 20, 2, 6) | rect(37, 53, 16, 20, 2, 15)
    masks = [rect(37, 53, 0, 37, 0, 53), ell, lshape, rect(37, 53, 30, 31, 40, 41)]
    out, report = write(tmp_path, masks, [0, 1, 1, 0])
    assert report.losses == []
    assert report.exact == 4
    [sample] = list(yolo_seg.Reader(out))
    assert sample.subset == "val"
    assert [i.class_id for i in sample.instances] == [0, 1, 1, 0]
    for inst, m in zip(sample.instances, masks, strict=True):
        np.testing.assert_array_equal(rle.decode(inst.mask), m)


def test_written_rows_rasterise_to_the_mask_with_pycocotools(tmp_path):
    m = rect(23, 31, 3, 17, 4, 9) | rect(23, 31, 10, 13, 4, 28)
    out, _ = write(tmp_path, [m])
    [(cls, norm)] = parse_rows(out / "labels" / "val" / "img.txt")
    flat = [v * (31 if k % 2 == 0 else 23) for k, v in enumerate(norm)]
    assert cls == 0
    np.testing.assert_array_equal(coco_pixels(flat, 23, 31), m)


def test_writer_reports_each_hole_with_the_iou_kept(tmp_path):
    ring = rect(20, 20, 2, 12, 2, 12)
    ring[5:8, 5:8] = 0  # 100 px box, 91 px ring
    out, report = write(tmp_path, [rect(20, 20, 14, 18, 14, 18), ring])
    [loss] = report.losses
    assert (loss.instance, loss.what) == (1, "holes")
    assert loss.iou == pytest.approx(91 / 100)
    assert report.exact == 1
    [sample] = list(yolo_seg.Reader(out))
    assert rle.area(sample.instances[1].mask) == 100  # the hole came back filled


def test_writer_writes_a_row_per_part_and_reports_parts(tmp_path):
    two = rect(20, 30, 1, 5, 1, 5) | rect(20, 30, 10, 18, 20, 28)
    out, report = write(tmp_path, [two])
    [loss] = report.losses
    assert (loss.instance, loss.what) == (0, "parts")
    assert "2 rows" in loss.detail
    assert len(parse_rows(out / "labels" / "val" / "img.txt")) == 2
    [sample] = list(yolo_seg.Reader(out))
    union = rle.merge([i.mask for i in sample.instances])
    np.testing.assert_array_equal(rle.decode(union), two)


def test_rounding_that_moves_pixels_is_a_resampled_loss(tmp_path):
    m = rect(40, 3000, 5, 20, 1001, 1002)  # x = 1001 / 3000 needs more than 2 decimals
    h, w = m.shape
    image = make_image(tmp_path / "img.png", h, w)
    writer = yolo_seg.Writer(tmp_path / "out", labels=LabelMap.from_names(["a"]), decimals=2)
    writer.write(Sample("img", (h, w), image=image, instances=(Instance(rle.encode(m), 0),)))
    [loss] = writer.close().losses
    assert loss.what == "resampled"
    assert 0 <= (loss.iou or 0) < 1


def test_crowd_score_and_unknown_class_are_reported(tmp_path):
    m = rect(10, 10, 1, 4, 1, 4)
    h, w = m.shape
    image = make_image(tmp_path / "img.png", h, w)
    insts = (
        Instance(rle.encode(m), 0, iscrowd=True),
        Instance(rle.encode(m), 1, score=0.5),
        Instance(rle.encode(m), -1),
    )
    writer = yolo_seg.Writer(tmp_path / "out", labels=LabelMap.from_names(["a", "b"]))
    writer.write(Sample("img", (h, w), image=image, instances=insts))
    report = writer.close()
    assert [(loss.instance, loss.what) for loss in report.losses] == [
        (0, "crowd"),
        (1, "score"),
        (2, "class"),
    ]
    assert len(parse_rows(tmp_path / "out" / "labels" / "train" / "img.txt")) == 1


def test_writer_output_has_data_yaml_and_is_detected(tmp_path):
    out, _ = write(tmp_path, [rect(10, 12, 1, 5, 1, 5)])
    text = (out / "data.yaml").read_text()
    assert "val: images/val" in text
    assert '0: "a"' in text
    assert "nc: 2" in text
    assert yolo_seg.detect(out).confidence >= 2
    assert (out / "images" / "val" / "img.png").is_file()


def test_contiguous_class_ids_renumber_in_id_order(tmp_path):
    m = rect(10, 10, 1, 4, 1, 4)
    image = make_image(tmp_path / "img.png", 10, 10)
    labels = LabelMap.from_names(["bg", "cat", "dog"], background=0)
    writer = yolo_seg.Writer(tmp_path / "out", labels=labels, class_ids="contiguous")
    writer.write(Sample("img", (10, 10), image=image, instances=(Instance(rle.encode(m), 2),)))
    writer.close()
    assert parse_rows(tmp_path / "out" / "labels" / "train" / "img.txt")[0][0] == 1
    assert yolo_seg.Reader(tmp_path / "out").labels.by_id(1).name == "dog"


def test_dataset_without_data_yaml_reads_subsets_and_classes(tmp_path):
    root = make_dataset(tmp_path / "ds", "3 0.1 0.1 0.5 0.1 0.5 0.5\n1 0.2 0.2 0.9 0.2 0.9 0.9\n")
    (root / "data.yaml").unlink()
    reader = yolo_seg.Reader(root)
    assert [lab.name for lab in reader.labels] == ["class_1", "class_3"]
    [sample] = list(reader)
    assert [i.class_id for i in sample.instances] == [3, 1]
    assert yolo_seg.detect(root).confidence == 2


def test_exif_quarter_turn_swaps_the_size_as_ultralytics_does(tmp_path):
    root = make_dataset(tmp_path / "ds", "0 0.1 0.1 0.5 0.1 0.5 0.5\n")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 40 wide, 20 high; Ultralytics' exif_size says 20 x 40
    (root / "images" / "train" / "x.png").unlink()
    Image.new("RGB", (40, 20)).save(root / "images" / "train" / "x.jpg", exif=exif)
    [sample] = list(yolo_seg.Reader(root))
    assert sample.size == (40, 20)
    flat = [0.1 * 20, 0.1 * 40, 0.5 * 20, 0.1 * 40, 0.5 * 20, 0.5 * 40]
    np.testing.assert_array_equal(rle.decode(sample.instances[0].mask), coco_pixels(flat, 40, 20))


def test_coordinates_just_outside_the_unit_square_are_clipped_and_reported(tmp_path):
    from PIL import Image

    from masklab.formats import yolo_seg

    (tmp_path / "images" / "train").mkdir(parents=True)
    (tmp_path / "labels" / "train").mkdir(parents=True)
    Image.new("RGB", (10, 10)).save(tmp_path / "images" / "train" / "a.png")
    (tmp_path / "labels" / "train" / "a.txt").write_text(
        "0 -0.005 0 0.5 0 0.5 0.5 -0.005 0.5\n0 0.5 0.5 0.9 0.5 0.9 0.9\n"
    )
    (tmp_path / "data.yaml").write_text("path: .\ntrain: images/train\nnames: [thing]\n")
    reader = yolo_seg.Reader(tmp_path)
    (sample,) = list(reader)
    assert len(sample.instances) == 2
    assert reader.report.clipped == 1
    assert [(loss.instance, loss.what) for loss in reader.report.losses] == [(0, "clipped")]
