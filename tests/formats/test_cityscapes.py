"""Cityscapes reader and writer against the files other tools wrote (../shared/data)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from masklab import rle
from masklab.core.instances import Instance
from masklab.core.labels import Label, LabelMap, voc_color
from masklab.errors import FormatError
from masklab.formats import cityscapes, convert
from masklab.formats._base import Sample

DATUMARO = ("datumaro", "tests", "assets", "cityscapes_dataset")
DEEPLAB = ("deeplab2-testdata",)

# cityscapesScripts helpers/labels.py, as reference/formats.md §4.2 lists it
TRAIN_ID = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10,
            24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}  # fmt: skip
HAS_INSTANCES = {24, 25, 26, 27, 28, 29, 30, 31, 32, 33}


def png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def by_id(reader) -> dict:
    return {s.id: s for s in reader}


def objects(sample) -> dict:
    return {i.id: (i.class_id, i.iscrowd, rle.decode(i.mask)) for i in sample.instances}


# --------------------------------------------------------------------------- the table


def test_label_table_holds_the_reference_rows():
    lm = cityscapes.label_map()
    assert len(lm) == 35
    assert lm.by_id(7).attributes["train_id"] == 0  # road
    assert lm.by_id(26).attributes["train_id"] == 13  # car
    assert lm.by_id(24).attributes["train_id"] == 11  # person
    assert lm.by_id(-1).name == "license plate"
    for lab in lm:
        assert (lab.attributes["train_id"] in (255, -1)) == (lab.id not in TRAIN_ID)
        assert lab.isthing == (lab.id in HAS_INSTANCES)


def test_label_table_matches_deeplab2_cityscapes_categories(shared_data):
    cats = json.loads(
        shared_data(*DEEPLAB, "utils", "panoptic_cityscapes_categories.json").read_text()
    )
    lm = cityscapes.label_map()
    assert len(cats) == 19
    for cat in cats:
        lab = lm.by_id(cat["id"])
        assert lab.name == cat["name"]
        assert lab.color == tuple(cat["color"])
        assert lab.isthing == bool(cat["isthing"])


def test_train_label_map_has_19_classes_and_ignore():
    lm = cityscapes.label_map("train")
    assert lm.ids == [*range(19), 255]
    assert lm.by_id(255).role == "ignore"
    assert [lm.by_id(TRAIN_ID[i]).name for i in (7, 24, 26)] == ["road", "person", "car"]


# --------------------------------------------------------------------------- reading


def test_reads_datumaro_instance_ids_as_the_pngs_say(shared_data):
    root = shared_data(*DATUMARO, "train_dataset")
    files = sorted(root.glob("gtFine/*/*/*_gtFine_instanceIds.png"))
    samples = by_id(cityscapes.Reader(root))
    assert len(samples) == len(files) == 4
    for f in files:
        arr = png(f).astype(np.int64)
        s = samples[f.name.removesuffix("_gtFine_instanceIds.png")]
        assert s.subset == f.parent.parent.name
        assert s.meta["city"] == "defaultcity"
        assert s.image is not None
        assert s.image.is_file()
        np.testing.assert_array_equal(s.semantic, np.where(arr >= 1000, arr // 1000, arr))
        objs = objects(s)
        assert set(objs) == {v for v in np.unique(arr).tolist() if v >= 1000}
        for v, (cls, crowd, mask) in objs.items():
            assert (cls, crowd) == (v // 1000, False)
            np.testing.assert_array_equal(mask, arr == v)


def test_reads_train_ids_from_label_train_ids_pngs(shared_data):
    root = shared_data(*DATUMARO, "train_dataset")
    reader = cityscapes.Reader(root, ids="train")
    samples = by_id(reader)
    for f in sorted(root.glob("gtFine/*/*/*_gtFine_labelTrainIds.png")):
        s = samples[f.name.removesuffix("_gtFine_labelTrainIds.png")]
        np.testing.assert_array_equal(s.semantic, png(f))
        inst = png(f.with_name(f.name.replace("labelTrainIds", "instanceIds"))).astype(int)
        expected = {v: TRAIN_ID[v // 1000] for v in np.unique(inst) if v // 1000 in TRAIN_ID}
        assert {i.id: i.class_id for i in s.instances} == expected
    # Datumaro writes 19 for its "background"; 19 is no Cityscapes trainId
    assert len(reader.report.problems) == 4
    assert all("[19]" in p.message and "labelTrainIds" in p.path for p in reader.report.problems)


def test_plain_values_of_instance_classes_read_as_crowd_groups(shared_data):
    root = shared_data(*DATUMARO, "dataset")  # 8-bit instanceIds holding class ids only
    samples = by_id(cityscapes.Reader(root))
    s = samples["defaultcity_000001_000031"]
    arr = png(next(root.glob("gtFine/test/*/defaultcity_000001_000031_gtFine_instanceIds.png")))
    assert [(i.class_id, i.iscrowd) for i in s.instances] == [(27, True)]  # truck group
    np.testing.assert_array_equal(rle.decode(s.instances[0].mask), arr == 27)
    assert samples["defaultcity_000001_000019"].instances == ()  # ego vehicle is stuff


def _deeplab_layout(shared_data, tmp_path: Path) -> tuple[Path, dict]:
    """deeplab2's Cityscapes panoptic PNG (id = R + 256 G, the instanceIds values) as a
    16-bit gtFine instanceIds file."""
    base = shared_data(*DEEPLAB, "data", "testdata")
    gt = json.loads((base / "gtFine" / "cityscapes_panoptic_dummy_trainId.json").read_text())
    rgb = png(
        base / "gtFine/cityscapes_panoptic_dummy_trainId/dummy_000000_000000_gtFine_panoptic.png"
    ).astype(np.int64)
    ids = rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]
    city = tmp_path / "cs" / "gtFine" / "train" / "dummy"
    city.mkdir(parents=True)
    Image.fromarray(ids.astype(np.uint16)).save(city / "dummy_000000_000000_gtFine_instanceIds.png")
    img = tmp_path / "cs" / "leftImg8bit" / "train" / "dummy"
    img.mkdir(parents=True)
    shutil.copy(base / "leftImg8bit/dummy_000000_000000_leftImg8bit.png", img)
    return tmp_path / "cs", gt["annotations"][0]


def test_reads_deeplab2_panoptic_ids_like_its_segments_info(shared_data, tmp_path):
    root, ann = _deeplab_layout(shared_data, tmp_path)
    (s,) = list(cityscapes.Reader(root, ids="train"))
    assert s.size == (800, 800)
    assert s.image is not None
    things = {seg["id"]: seg for seg in ann["segments_info"] if seg["category_id"] >= 11}
    assert {i.id for i in s.instances} == set(things)  # 26000..26004 and the group 26
    for inst in s.instances:
        seg = things[inst.id]
        assert inst.class_id == seg["category_id"]
        assert inst.iscrowd == bool(seg["iscrowd"])
        assert inst.area == seg["area"]
    for seg in ann["segments_info"]:
        if seg["category_id"] < 11:  # stuff: class pixels only
            assert int(np.count_nonzero(s.semantic == seg["category_id"])) == seg["area"]


# --------------------------------------------------------------------------- writing


def test_round_trip_through_the_writer_is_exact(shared_data, tmp_path):
    src = shared_data(*DATUMARO, "train_dataset")
    report = convert(src, tmp_path / "out", to="cityscapes", source_format="cityscapes")
    before = by_id(cityscapes.Reader(src))
    after = by_id(cityscapes.Reader(tmp_path / "out"))
    assert set(after) == set(before)
    for key, s in before.items():
        t = after[key]
        assert (t.subset, t.meta, t.size) == (s.subset, s.meta, s.size)
        np.testing.assert_array_equal(t.semantic, s.semantic)
        kept = {k: v for k, v in objects(s).items() if v[0] in HAS_INSTANCES}
        assert objects(t).keys() == kept.keys()
        for k, (cls, crowd, mask) in kept.items():
            assert objects(t)[k][:2] == (cls, crowd)
            np.testing.assert_array_equal(objects(t)[k][2], mask)
        # the written 16-bit file itself, read with PIL, holds the source's values
        (f,) = (tmp_path / "out").glob(f"gtFine/*/*/{key}_gtFine_instanceIds.png")
        (g,) = src.glob(f"gtFine/*/*/{key}_gtFine_instanceIds.png")
        expected = png(g).astype(int)
        expected[expected == 1024] = 1  # ego vehicle: no instances in Cityscapes
        np.testing.assert_array_equal(png(f), expected)
    # ego vehicle (class 1) has no instances in Cityscapes: 1024 is written as class 1
    assert [(loss.sample, loss.what) for loss in report.losses] == [
        ("defaultcity_000001_000019", "instances")
    ]
    assert report.exact == 4


def _mask(rows: list[str]) -> np.ndarray:
    return np.array([[c == "#" for c in r] for r in rows])


def test_writer_numbers_objects_from_zero_in_drawing_order(tmp_path):
    car_a = _mask(["##..", "##..", "....", "...."])
    car_b = _mask(["....", "....", "..##", "..##"])
    person = _mask(["....", "....", "##..", "...."])
    sample = Sample(
        "aachen_000000_000019",
        (4, 4),
        instances=(
            Instance(rle.encode(car_a), 26),
            Instance(rle.encode(car_b), 26),
            Instance(rle.encode(person), 24),
        ),
        subset="val",
    )
    with cityscapes.Writer(tmp_path / "o", labels=cityscapes.label_map(), train_ids=True) as w:
        w.write(sample)
    stem = tmp_path / "o/gtFine/val/aachen/aachen_000000_000019_gtFine_"
    ids = png(Path(f"{stem}instanceIds.png"))
    expected = np.zeros((4, 4), int)
    expected[car_a], expected[car_b], expected[person] = 26000, 26001, 24000
    np.testing.assert_array_equal(ids, expected)
    labels = png(Path(f"{stem}labelIds.png"))
    np.testing.assert_array_equal(labels, np.where(expected >= 1000, expected // 1000, 0))
    train = png(Path(f"{stem}labelTrainIds.png"))
    np.testing.assert_array_equal(train, np.select([car_a | car_b, person], [13, 11], 255))
    color = png(Path(f"{stem}color.png"))
    assert tuple(color[0, 0]) == (0, 0, 142)
    assert tuple(color[2, 0]) == (220, 20, 60)
    assert w.report.exact == 3
    assert w.report.losses == []
    assert cityscapes.detect(tmp_path / "o").confidence == 3


def test_writer_reports_what_cityscapes_cannot_hold(tmp_path):
    labels = LabelMap(
        (
            Label(0, ("background",), (0, 0, 0), role="background"),
            Label(1, ("car",), voc_color(1)),
            Label(2, ("road",), voc_color(2), isthing=False),
            Label(3, ("cat",), voc_color(3)),
        )
    )
    a = _mask(["###.", "###.", "....", "...."])
    b = _mask(["....", ".###", ".###", "...."])
    sample = Sample(
        "x",
        (4, 4),
        instances=(
            Instance(rle.encode(a), 1),  # half covered by the next car: overlap
            Instance(rle.encode(b), 1, score=0.9),  # a score
            Instance(rle.encode(_mask(["....", "....", "....", "####"])), 2),  # road object
            Instance(rle.encode(_mask(["#...", "....", "....", "...."])), 3),  # no namesake
            Instance(rle.encode(_mask(["...#", "....", "....", "...."])), 1, iscrowd=True),
        ),
    )
    with cityscapes.Writer(tmp_path / "o", labels=labels) as w:
        w.write(sample)
    got = {(loss.instance, loss.what) for loss in w.report.losses}
    assert got == {(0, "overlap"), (1, "score"), (2, "instances"), (3, "class")}
    (overlap,) = [loss for loss in w.report.losses if loss.what == "overlap"]
    assert overlap.iou == pytest.approx(4 / 6)
    assert w.report.exact == 1  # only the crowd group is written exactly as it was
    (t,) = list(cityscapes.Reader(tmp_path / "o"))
    assert [(i.class_id, i.iscrowd, i.area) for i in t.instances] == [
        (26, True, 1),
        (26, False, 4),
        (26, False, 6),
    ]
    assert int(np.count_nonzero(t.semantic == 7)) == 4  # the road object, as class pixels


def test_writer_maps_classes_by_name_and_reports_the_rest(tmp_path):
    labels = LabelMap.from_names(["background", "person", "cat"], background=0)
    sem = np.array([[0, 1, 2, 2]], np.uint8)
    with cityscapes.Writer(tmp_path / "o", labels=labels) as w:
        w.write(Sample("a_1", (1, 4), semantic=sem))
    (t,) = list(cityscapes.Reader(tmp_path / "o"))
    assert t.semantic.tolist() == [[0, 24, 0, 0]]
    (loss,) = w.report.losses
    assert (loss.what, loss.instance) == ("class", None)
    assert "'cat'" in loss.detail
    assert "2 px" in loss.detail


# --------------------------------------------------------------------------- bad input


def _copy(shared_data, tmp_path) -> Path:
    dst = tmp_path / "cs"
    shutil.copytree(shared_data(*DATUMARO, "train_dataset"), dst)
    return dst


def test_corrupt_png_is_reported_with_its_file_and_the_rest_reads(shared_data, tmp_path):
    root = _copy(shared_data, tmp_path)
    bad = next(root.glob("gtFine/val/*/*_instanceIds.png"))
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    reader = cityscapes.Reader(root)
    assert len(list(reader)) == 3
    (problem,) = reader.report.problems
    assert problem.path == str(bad)
    assert problem.record == "defaultcity_000001_000019"


def test_strict_mode_raises_naming_file_and_record(shared_data, tmp_path):
    root = _copy(shared_data, tmp_path)
    bad = next(root.glob("gtFine/val/*/*_instanceIds.png"))
    bad.write_bytes(b"not a png")
    with pytest.raises(FormatError, match="defaultcity_000001_000019") as err:
        list(cityscapes.Reader(root, strict=True))
    assert err.value.path == str(bad)


def test_colour_png_alone_is_reported(tmp_path):
    city = tmp_path / "gtFine" / "train" / "c"
    city.mkdir(parents=True)
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(city / "c_0_0_gtFine_color.png")
    reader = cityscapes.Reader(tmp_path)
    assert list(reader) == []
    assert "visualisation" in reader.report.problems[0].message


# --------------------------------------------------------------------------- detect


def test_detect_knows_cityscapes_and_nothing_else(shared_data):
    assert cityscapes.detect(shared_data(*DATUMARO, "dataset")).confidence == 3
    assert cityscapes.detect(shared_data(*DATUMARO, "train_dataset")).confidence == 3
    other = shared_data("datumaro", "tests", "assets", "camvid_dataset")
    assert cityscapes.detect(other).confidence == 0
    assert (
        cityscapes.detect(shared_data("datumaro", "tests", "assets", "kitti_dataset")).confidence
        == 0
    )


def test_nested_ids_with_spaces_survive_a_round_trip(tmp_path):
    car = np.zeros((6, 7), bool)
    car[1:4, 2:5] = True
    sample = Sample(
        "seq a/b_0001", (6, 7), instances=(Instance(rle.encode(car), 26),), subset="val"
    )
    with cityscapes.Writer(tmp_path / "o", labels=cityscapes.label_map()) as w:
        w.write(sample)
    (back,) = list(cityscapes.Reader(tmp_path / "o"))
    assert (back.id, back.subset) == ("seq a/b_0001", "val")
    assert len(back.instances) == 1
    np.testing.assert_array_equal(back.semantic == 26, car)  # ids 0..33 keep their value
