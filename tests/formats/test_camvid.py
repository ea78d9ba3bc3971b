"""CamVid reader and writer against Datumaro's fixture (../shared/data)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from masklab import rle
from masklab.core.instances import Instance
from masklab.core.labels import LabelMap
from masklab.errors import FormatError
from masklab.formats import camvid, cityscapes, convert
from masklab.formats._base import Sample

ASSETS = ("datumaro", "tests", "assets")
CAMVID = (*ASSETS, "camvid_dataset")

# CamVid's label_colors.txt for the colours the fixture uses (formats.md §4.5)
FIXTURE_COLORS = {
    (0, 128, 192): "Bicyclist",
    (128, 64, 128): "Road",
    (64, 128, 64): "Animal",
    (192, 128, 64): "Child",
    (0, 128, 64): "Bridge",
    (128, 128, 0): "Tree",
    (192, 0, 128): "Archway",
    (128, 128, 128): "Sky",
}


def png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def by_id(reader) -> dict:
    return {s.id: s for s in reader}


def test_reads_the_segnet_lists_and_colour_labels(shared_data):
    root = shared_data(*CAMVID)
    reader = camvid.Reader(root)
    samples = by_id(reader)
    pairs = [
        (txt.stem, line.split())
        for txt in sorted(root.glob("*.txt"))
        for line in txt.read_text().splitlines()
        if line.strip()
    ]
    assert len(samples) == len(pairs) == 4
    for subset, (image, mask) in pairs:
        s = samples[Path(image).stem]
        assert s.subset == subset
        assert s.image == root / image.lstrip("/")
        rgb = png(root / mask.lstrip("/"))
        names = [[reader.labels.by_id(int(v)).name for v in row] for row in s.semantic]
        assert names == [[FIXTURE_COLORS[tuple(px)] for px in row] for row in rgb.tolist()]
    assert reader.report.ok
    assert len(reader.labels) == 32
    assert reader.labels.by_id(0).name == "Void"


def test_unknown_colours_are_counted_with_their_pixels(shared_data, tmp_path):
    root = tmp_path / "c"
    shutil.copytree(shared_data(*CAMVID), root)
    mask = root / "trainannot" / "0001TP_006690.png"
    rgb = png(mask).copy()
    rgb[0, :2] = (1, 2, 3)
    Image.fromarray(rgb).save(mask)
    reader = camvid.Reader(root)
    samples = by_id(reader)
    assert reader.report.unknown_colors == {(1, 2, 3): 2}
    assert samples["0001TP_006690"].semantic[0, :2].tolist() == [0, 0]  # read as Void
    (problem,) = reader.report.problems
    assert (problem.path, problem.record) == (str(mask), "0001TP_006690")
    with pytest.raises(FormatError, match="0001TP_006690"):
        list(camvid.Reader(root, strict=True))


def test_segnet_index_labels_use_the_11_classes(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "trainannot").mkdir()
    Image.fromarray(np.full((2, 3, 3), 9, np.uint8)).save(tmp_path / "train" / "a.png")
    index = np.array([[0, 3, 11], [10, 4, 8]], np.uint8)
    Image.fromarray(index).save(tmp_path / "trainannot" / "a.png")
    (tmp_path / "train.txt").write_text(
        "/SegNet/CamVid/train/a.png /SegNet/CamVid/trainannot/a.png\n"
    )
    reader = camvid.Reader(tmp_path)
    (s,) = list(reader)
    np.testing.assert_array_equal(s.semantic, index)
    assert s.image == tmp_path / "train" / "a.png"
    names = [reader.labels.by_id(v).name for v in (0, 3, 4, 8, 10, 11)]
    assert names == ["Sky", "Road", "Pavement", "Car", "Bicyclist", "Unlabelled"]
    assert reader.labels.by_id(11).role == "ignore"


def test_original_layout_reads_l_png_with_label_colors(tmp_path):
    (tmp_path / "LabeledApproved_full").mkdir()
    (tmp_path / "701_StillsRaw_full").mkdir()
    (tmp_path / "label_colors.txt").write_text(
        "64 128 64\tAnimal\n128 0 0\tBuilding\n0 0 0\tVoid\n"
    )
    rgb = np.array([[[128, 0, 0], [0, 0, 0], [64, 128, 64]]], np.uint8)
    Image.fromarray(rgb).save(tmp_path / "LabeledApproved_full" / "0001TP_0_L.png")
    Image.fromarray(rgb).save(tmp_path / "701_StillsRaw_full" / "0001TP_0.png")
    assert camvid.detect(tmp_path).confidence == 3
    reader = camvid.Reader(tmp_path)
    (s,) = list(reader)
    assert s.id == "0001TP_0"
    assert s.image == tmp_path / "701_StillsRaw_full" / "0001TP_0.png"
    assert s.semantic.tolist() == [[1, 2, 0]]  # ids = line order
    assert reader.labels.by_id(2).role == "ignore"


@pytest.mark.parametrize(
    ("layout", "colors"), [("segnet", True), ("segnet", False), ("camvid", True)]
)
def test_round_trip_is_exact(shared_data, tmp_path, layout, colors):
    src = shared_data(*CAMVID)
    report = convert(
        src, tmp_path / "o", to="camvid", source_format="camvid", layout=layout, colors=colors
    )
    assert report.ok
    before, after = by_id(camvid.Reader(src)), by_id(camvid.Reader(tmp_path / "o"))
    assert before.keys() == after.keys()
    for key, s in before.items():
        np.testing.assert_array_equal(after[key].semantic, s.semantic)
        assert after[key].image is not None
        if layout == "segnet":
            assert after[key].subset == s.subset
    # label_colors.txt lists the 32 classes in id order
    lines = (tmp_path / "o" / "label_colors.txt").read_text().splitlines()
    assert len(lines) == 32
    assert lines[3] == "0 128 192 Bicyclist"
    if layout == "segnet" and not colors:
        mask = Image.open(tmp_path / "o" / "trainannot" / "0001TP_006690.png")
        assert mask.mode == "L"
        assert np.asarray(mask).tolist() == [[3, 3, 18, 3, 3]]  # Bicyclist, Road


def test_writer_paints_objects_and_reports_what_it_loses(tmp_path):
    labels = LabelMap.from_names(["background", "car", "person"], background=0)
    a = np.array([[1, 1, 0, 0]], bool)
    b = np.array([[0, 1, 1, 0]], bool)
    sample = Sample(
        "s",
        (1, 4),
        instances=(
            Instance(rle.encode(a), 1, iscrowd=True),
            Instance(rle.encode(b), 2, score=0.3),
            Instance(rle.encode(np.array([[0, 0, 0, 1]], bool)), 9),
        ),
    )
    with camvid.Writer(tmp_path / "o", labels=labels, colors=False) as w:
        w.write(sample)
    got = sorted((loss.instance, loss.what) for loss in w.report.losses)
    assert got == [(0, "crowd"), (0, "overlap"), (1, "score"), (2, "class")]
    assert png(tmp_path / "o" / "trainannot" / "s.png").tolist() == [[1, 2, 2, 0]]


def test_corrupt_png_is_reported_and_the_rest_reads(shared_data, tmp_path):
    root = tmp_path / "c"
    shutil.copytree(shared_data(*CAMVID), root)
    bad = root / "valannot" / "0016E5_07959.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 30)
    reader = camvid.Reader(root)
    assert len(list(reader)) == 3
    (problem,) = reader.report.problems
    assert (problem.path, problem.record) == (str(bad), "0016E5_07959")


def test_detect_knows_camvid_only(shared_data, tmp_path):
    assert camvid.detect(shared_data(*CAMVID)).confidence == 3
    assert camvid.detect(shared_data(*ASSETS, "cityscapes_dataset", "dataset")).confidence == 0
    assert camvid.detect(shared_data(*ASSETS, "mapillary_vistas_dataset")).confidence == 0
    assert camvid.detect(shared_data(*ASSETS, "kitti_dataset")).confidence == 0


def test_nested_ids_with_spaces_survive_a_round_trip(tmp_path):
    car = np.zeros((6, 7), bool)
    car[1:4, 2:5] = True
    sample = Sample(
        "seq a/b_0001", (6, 7), instances=(Instance(rle.encode(car), 26),), subset="val"
    )
    with camvid.Writer(tmp_path / "o", labels=cityscapes.label_map()) as w:
        w.write(sample)
    (back,) = list(camvid.Reader(tmp_path / "o"))
    assert (back.id, back.subset) == ("seq a/b_0001", "val")
    assert len(back.instances) == 0
    np.testing.assert_array_equal(back.semantic == 26, car)  # ids 0..33 keep their value
