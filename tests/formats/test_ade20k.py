"""ADE20K reader and writer against Datumaro's fixtures (../shared/data)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from masklab import rle
from masklab.core.instances import Instance
from masklab.core.labels import LabelMap
from masklab.errors import FormatError
from masklab.formats import ade20k, cityscapes, convert
from masklab.formats._base import Sample

ASSETS = ("datumaro", "tests", "assets")
ADE2020 = (*ASSETS, "ade20k2020_dataset", "dataset")
ADE2017 = (*ASSETS, "ade20k2017_dataset", "dataset")

# rows of CSAILVision/sceneparsing objectInfo150.txt (first synonym)
OBJECT_INFO = {1: "wall", 3: "sky", 13: "person", 21: "car", 90: "television receiver", 150: "flag"}


def png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def by_id(reader) -> dict:
    return {s.id: s for s in reader}


def seg_classes(rgb: np.ndarray) -> np.ndarray:
    """ADE's formula, written out: class = R / 10 * 256 + G (utils_ade20k.loadAde20K)."""
    return (rgb[..., 0].astype(int) // 10) * 256 + rgb[..., 1].astype(int)


def test_reads_the_2021_seg_pngs_and_json_names(shared_data):
    root = shared_data(*ADE2020)
    reader = ade20k.Reader(root)
    samples = by_id(reader)
    segs = sorted(root.rglob("*_seg.png"))
    assert len(samples) == len(segs) == 2
    names = {}
    for seg in segs:
        doc = json.loads(seg.with_name(seg.name.replace("_seg.png", ".json")).read_text())
        for obj in doc["annotation"]["object"]:
            if obj["parts"]["part_level"] == 0:
                names[obj["name_ndx"]] = obj["name"].split(",")[0]
        rgb = png(seg)
        key = seg.relative_to(root).as_posix().split("/", 1)[1].removesuffix("_seg.png")
        s = samples[key]
        assert s.subset == seg.relative_to(root).parts[0]
        assert s.image == seg.with_name(seg.name.replace("_seg.png", ".jpg"))
        np.testing.assert_array_equal(s.semantic, seg_classes(rgb))
        b = rgb[..., 2]
        got = {i.id: i for i in s.instances}
        assert sorted(got) == [v for v in np.unique(b).tolist() if v > 0]
        for v, inst in got.items():
            np.testing.assert_array_equal(rle.decode(inst.mask), b == v)
            assert [inst.class_id] == np.unique(seg_classes(rgb)[b == v]).tolist()
    assert (
        {lab.id: lab.name for lab in reader.labels if lab.id}
        == names
        == {
            401: "car",
            1831: "person",
        }
    )
    # the three *_parts_N.png files are reported once, not read
    (problem,) = reader.report.problems
    assert "3 part masks" in problem.message


def test_reads_2017_names_from_atr_and_reports_objects_without_class(shared_data):
    root = shared_data(*ADE2017)
    reader = ade20k.Reader(root)
    samples = by_id(reader)
    # atr line 001 (sky) is the first object (B=1), whose pixels say class 1
    assert reader.labels.by_id(1).name == "sky"
    s = samples["street/1"]
    rgb = png(root / "training" / "street" / "1_seg.png")
    np.testing.assert_array_equal(s.semantic, seg_classes(rgb))
    assert [(i.id, i.class_id) for i in s.instances] == [(1, 1)]
    # this synthetic fixture draws object 2 (person) on class 0: reported, not invented
    messages = [p.message for p in reader.report.problems if p.record == "street/1"]
    assert messages == ["object B=2 lies on unlabeled pixels (class 0); skipped"]


def _scene_parsing(tmp_path: Path, info: str | None = None) -> Path:
    root = tmp_path / "ADEChallengeData2016"
    (root / "annotations" / "training").mkdir(parents=True)
    (root / "images" / "training").mkdir(parents=True)
    ann = np.array([[0, 1, 3], [13, 21, 150]], np.uint8)
    Image.fromarray(ann).save(root / "annotations" / "training" / "ADE_train_00000001.png")
    Image.fromarray(np.zeros((2, 3, 3), np.uint8)).save(
        root / "images" / "training" / "ADE_train_00000001.jpg"
    )
    if info is not None:
        (root / "objectInfo150.txt").write_text(info)
    return root


def test_scene_parsing_uses_the_150_names(tmp_path):
    root = _scene_parsing(tmp_path)
    assert ade20k.detect(root).confidence == 3
    reader = ade20k.Reader(root)
    (s,) = list(reader)
    assert reader.variant == "sceneparsing"
    assert (s.id, s.subset) == ("ADE_train_00000001", "training")
    assert s.semantic.tolist() == [[0, 1, 3], [13, 21, 150]]
    assert len(reader.labels) == 151
    assert reader.labels.by_id(0).role == "ignore"
    for i, name in OBJECT_INFO.items():
        assert reader.labels.by_id(i).name == name


def test_scene_parsing_reads_names_from_object_info(tmp_path):
    info = "Idx\tRatio\tTrain\tVal\tName\n1\t0.15\t11664\t1172\twall\n3\t0.08\t8265\t796\tsky, x\n"
    reader = ade20k.Reader(_scene_parsing(tmp_path, info))
    assert [(lab.id, lab.name) for lab in reader.labels] == [
        (0, "other objects"),
        (1, "wall"),
        (3, "sky"),
    ]
    (_s,) = list(reader)
    (problem,) = reader.report.problems  # 13, 21 and 150 are not in this objectInfo
    assert "[13, 21, 150]" in problem.message


def test_full_round_trip_keeps_classes_and_objects(shared_data, tmp_path):
    src = shared_data(*ADE2020)
    report = convert(src, tmp_path / "o", to="ade20k", source_format="ade20k", variant="full")
    assert report.losses == []
    assert report.exact == 4
    before, after = by_id(ade20k.Reader(src)), by_id(ade20k.Reader(tmp_path / "o"))
    assert before.keys() == after.keys()
    for key, s in before.items():
        t = after[key]
        assert t.subset == s.subset
        np.testing.assert_array_equal(t.semantic, s.semantic)
        assert [(i.id, i.class_id) for i in t.instances] == [
            (i.id, i.class_id) for i in s.instances
        ]
        for a, b in zip(s.instances, t.instances, strict=True):
            np.testing.assert_array_equal(rle.decode(a.mask), rle.decode(b.mask))
    # the written seg PNG decodes, by ADE's own formula, to the source's classes and B
    for seg in sorted(src.rglob("*_seg.png")):
        out = png(tmp_path / "o" / seg.relative_to(src))
        np.testing.assert_array_equal(seg_classes(out), seg_classes(png(seg)))
        np.testing.assert_array_equal(out[..., 2], png(seg)[..., 2])
    assert [lab.name for lab in ade20k.Reader(tmp_path / "o").labels] == [
        "unlabeled",
        "car",
        "person",
    ]


def test_scene_parsing_round_trip(tmp_path):
    src = _scene_parsing(tmp_path / "a")
    report = convert(src, tmp_path / "o", to="ade20k", source_format="ade20k")
    assert report.ok
    (s,) = list(ade20k.Reader(src))
    (t,) = list(ade20k.Reader(tmp_path / "o"))
    np.testing.assert_array_equal(t.semantic, s.semantic)
    assert t.image is not None
    rows = (tmp_path / "o" / "objectInfo150.txt").read_text().splitlines()
    assert rows[0] == "Idx\tRatio\tTrain\tVal\tName"
    assert len(rows) == 151
    assert rows[13].split("\t")[::4] == ["13", "person"]


def test_writer_shifts_ids_when_zero_is_a_class(tmp_path):
    labels = LabelMap.from_names(["cat", "dog"])  # 0 is a class, not "unlabeled"
    with ade20k.Writer(tmp_path / "o", labels=labels) as w:
        w.write(Sample("a", (1, 3), semantic=np.array([[0, 1, 1]], np.uint8)))
    assert png(tmp_path / "o" / "annotations" / "training" / "a.png").tolist() == [[1, 2, 2]]
    reader = ade20k.Reader(tmp_path / "o")
    assert [(lab.id, lab.name) for lab in reader.labels][1:] == [(1, "cat"), (2, "dog")]


def test_writer_reports_what_ade20k_cannot_hold(tmp_path):
    labels = LabelMap.from_names(["unlabeled", "car", "person"], background=0)
    a = np.array([[1, 1, 0, 0]], bool)
    b = np.array([[0, 1, 1, 0]], bool)
    sample = Sample(
        "s",
        (1, 4),
        instances=(
            Instance(rle.encode(a), 1, iscrowd=True),
            Instance(rle.encode(b), 2, score=0.4),
            Instance(rle.encode(np.array([[0, 0, 0, 1]], bool)), 7000),
        ),
    )
    with ade20k.Writer(tmp_path / "o", labels=labels, variant="full") as w:
        w.write(sample)
    got = sorted((loss.instance, loss.what) for loss in w.report.losses)
    assert got == [(0, "crowd"), (0, "overlap"), (1, "score"), (2, "class")]
    seg = png(tmp_path / "o" / "training" / "s_seg.png")
    assert seg_classes(seg).tolist() == [[1, 2, 2, 0]]
    assert seg[..., 2].tolist() == [[1, 2, 2, 0]]


def test_corrupt_seg_is_reported_and_the_rest_reads(shared_data, tmp_path):
    root = tmp_path / "a"
    shutil.copytree(shared_data(*ADE2020), root)
    bad = root / "validation" / "2_seg.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 30)
    reader = ade20k.Reader(root)
    assert [s.id for s in reader] == ["street/1"]
    problems = [p for p in reader.report.problems if p.record is not None]
    assert [(p.path, p.record) for p in problems] == [(str(bad), "2")]
    with pytest.raises(FormatError, match="record 2"):
        list(ade20k.Reader(root, strict=True))


def test_detect_knows_ade20k_only(shared_data, tmp_path):
    assert ade20k.detect(shared_data(*ADE2020)).confidence == 3
    assert ade20k.detect(shared_data(*ADE2017)).confidence == 3
    convert(shared_data(*ADE2020), tmp_path / "o", to="ade20k", source_format="ade20k")
    assert ade20k.detect(tmp_path / "o").confidence == 3
    assert ade20k.detect(shared_data(*ASSETS, "camvid_dataset")).confidence == 0
    assert ade20k.detect(shared_data(*ASSETS, "cityscapes_dataset", "dataset")).confidence == 0


def test_nested_ids_with_spaces_survive_a_round_trip(tmp_path):
    car = np.zeros((6, 7), bool)
    car[1:4, 2:5] = True
    sample = Sample(
        "seq a/b_0001", (6, 7), instances=(Instance(rle.encode(car), 26),), subset="val"
    )
    with ade20k.Writer(tmp_path / "o", labels=cityscapes.label_map()) as w:
        w.write(sample)
    (back,) = list(ade20k.Reader(tmp_path / "o"))
    assert (back.id, back.subset) == ("seq a/b_0001", "val")
    assert len(back.instances) == 0
    np.testing.assert_array_equal(back.semantic == 26, car)  # ids 0..33 keep their value


def test_writer_writes_ignore_classes_as_unlabeled(tmp_path):
    labels = LabelMap.from_names(["background", "cat"], background=0, ignore={255: "void"})
    with ade20k.Writer(tmp_path / "o", labels=labels) as w:
        w.write(Sample("a", (1, 3), semantic=np.array([[0, 1, 255]], np.uint8)))
    assert png(tmp_path / "o" / "annotations" / "training" / "a.png").tolist() == [[0, 1, 0]]
    assert w.report.losses == []
