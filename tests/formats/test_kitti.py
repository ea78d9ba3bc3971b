"""KITTI segmentation reader and writer against Datumaro's fixture (../shared/data)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from masklab import rle
from masklab.core.instances import Instance
from masklab.errors import FormatError
from masklab.formats import cityscapes, convert, kitti
from masklab.formats._base import Sample

ASSETS = ("datumaro", "tests", "assets")
KITTI = (*ASSETS, "kitti_dataset", "kitti_segmentation")


def png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def by_id(reader) -> dict:
    return {s.id: s for s in reader}


def test_reads_instance_pngs_as_class_times_256_plus_object(shared_data):
    root = shared_data(*KITTI)
    files = sorted((root / "training" / "instance").glob("*.png"))
    samples = by_id(kitti.Reader(root))
    assert len(samples) == len(files) == 2
    for f in files:
        arr = png(f).astype(np.int64)
        s = samples[f.stem]
        assert s.subset == "training"
        assert s.image == root / "training" / "image_2" / f.name
        np.testing.assert_array_equal(s.semantic, arr // 256)  # no semantic/ folder here
        got = {i.id: (i.class_id, i.iscrowd, rle.decode(i.mask)) for i in s.instances}
        objects = [v for v in np.unique(arr).tolist() if v % 256 > 0]
        assert sorted(got) == objects
        for v in objects:
            assert got[v][:2] == (v // 256, False)
            np.testing.assert_array_equal(got[v][2], arr == v)


def test_object_number_zero_of_an_instance_class_is_a_crowd_region(tmp_path):
    inst = np.array([[26 * 256, 26 * 256 + 1, 7 * 256]], np.uint16)  # car group, car, road
    folder = tmp_path / "training" / "instance"
    folder.mkdir(parents=True)
    Image.fromarray(inst).save(folder / "a.png")
    (s,) = list(kitti.Reader(tmp_path))
    assert [(i.id, i.class_id, i.iscrowd, i.area) for i in s.instances] == [
        (26 * 256, 26, True, 1),
        (26 * 256 + 1, 26, False, 1),
    ]
    assert s.semantic.tolist() == [[26, 26, 7]]


def test_round_trip_keeps_the_instance_values(shared_data, tmp_path):
    src = shared_data(*KITTI)
    report = convert(src, tmp_path / "out", to="kitti", source_format="kitti")
    out = tmp_path / "out" / "training"
    for f in sorted((src / "training" / "instance").glob("*.png")):
        expected = png(f).astype(int)
        expected[expected == 12 * 256 + 1] = 12 * 256  # a wall object: walls have none
        np.testing.assert_array_equal(png(out / "instance" / f.name), expected)
        np.testing.assert_array_equal(png(out / "semantic" / f.name), expected // 256)
        colors = np.array([lab.color for lab in cityscapes.LABELS[:34]], np.uint8)
        np.testing.assert_array_equal(png(out / "semantic_rgb" / f.name), colors[expected // 256])
        assert (out / "image_2" / f.name).is_file()
    assert [(loss.sample, loss.instance, loss.what) for loss in report.losses] == [
        ("000030_11", 0, "instances")
    ]
    before, after = by_id(kitti.Reader(src)), by_id(kitti.Reader(tmp_path / "out"))
    for key, s in before.items():
        np.testing.assert_array_equal(after[key].semantic, s.semantic)
        kept = [(i.id, i.class_id) for i in s.instances if i.class_id != 12]
        assert sorted((i.id, i.class_id) for i in after[key].instances) == sorted(kept)


def test_writer_numbers_objects_from_one_and_reports_overlap(tmp_path):
    a = np.array([[1, 1, 0]], bool)
    b = np.array([[0, 1, 1]], bool)
    sample = Sample(
        "0", (1, 3), instances=(Instance(rle.encode(a), 26), Instance(rle.encode(b), 26))
    )
    with kitti.Writer(tmp_path / "o", labels=cityscapes.label_map()) as w:
        w.write(sample)
    ids = png(tmp_path / "o" / "training" / "instance" / "0.png")
    assert ids.tolist() == [[26 * 256 + 1, 26 * 256 + 2, 26 * 256 + 2]]
    assert [(loss.instance, loss.what, loss.iou) for loss in w.report.losses] == [
        (0, "overlap", 0.5)
    ]


def test_semantic_rgb_alone_is_read_by_colour(shared_data, tmp_path):
    convert(shared_data(*KITTI), tmp_path / "out", to="kitti", source_format="kitti")
    sub = tmp_path / "out" / "training"
    shutil.rmtree(sub / "semantic")
    shutil.rmtree(sub / "instance")
    rgb = png(sub / "semantic_rgb" / "000030_10.png").copy()
    rgb[0, 0] = (1, 2, 3)
    Image.fromarray(rgb).save(sub / "semantic_rgb" / "000030_10.png")
    reader = kitti.Reader(tmp_path / "out")
    samples = by_id(reader)
    # (0, 0, 0) is unlabeled (id 0), the first of five void classes sharing it
    assert samples["000030_10"].semantic.tolist() == [[0, 0, 27, 27, 27]]
    assert reader.report.unknown_colors == {(1, 2, 3): 1}
    assert reader.report.problems[0].record == "000030_10"


def test_corrupt_png_is_reported_and_the_rest_reads(shared_data, tmp_path):
    root = tmp_path / "k"
    shutil.copytree(shared_data(*KITTI), root)
    bad = root / "training" / "instance" / "000030_10.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 30)
    reader = kitti.Reader(root)
    assert [s.id for s in reader] == ["000030_11"]
    (problem,) = reader.report.problems
    assert (problem.path, problem.record) == (str(bad), "000030_10")
    with pytest.raises(FormatError, match="000030_10"):
        list(kitti.Reader(root, strict=True))


def test_detect_knows_kitti_segmentation_only(shared_data, tmp_path):
    assert kitti.detect(shared_data(*KITTI)).confidence == 3
    assert kitti.detect(shared_data(*KITTI, "training")).confidence == 3
    assert kitti.detect(shared_data(*ASSETS, "kitti_dataset", "kitti_detection")).confidence == 0
    assert kitti.detect(shared_data(*ASSETS, "cityscapes_dataset", "dataset")).confidence == 0


def test_nested_ids_with_spaces_survive_a_round_trip(tmp_path):
    car = np.zeros((6, 7), bool)
    car[1:4, 2:5] = True
    sample = Sample(
        "seq a/b_0001", (6, 7), instances=(Instance(rle.encode(car), 26),), subset="val"
    )
    with kitti.Writer(tmp_path / "o", labels=cityscapes.label_map()) as w:
        w.write(sample)
    (back,) = list(kitti.Reader(tmp_path / "o"))
    assert (back.id, back.subset) == ("seq a/b_0001", "val")
    assert len(back.instances) == 1
    np.testing.assert_array_equal(back.semantic == 26, car)  # ids 0..33 keep their value
