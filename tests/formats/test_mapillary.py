"""Mapillary Vistas reader and writer against Datumaro's fixture (../shared/data)."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from masklab import rle
from masklab.core.instances import Instance
from masklab.core.labels import Label, LabelMap, voc_color
from masklab.errors import FormatError
from masklab.formats import cityscapes, convert, mapillary
from masklab.formats._base import Sample

ASSETS = ("datumaro", "tests", "assets")
VISTAS = (*ASSETS, "mapillary_vistas_dataset")


def png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def by_key(reader) -> dict:
    return {(s.subset, s.id): s for s in reader}


@pytest.mark.parametrize("version", ["v2.0", "v1.2"])
def test_reads_labels_and_instances_as_the_pngs_say(shared_data, version):
    root = shared_data(*VISTAS)
    config = json.loads((root / f"config_{version}.json").read_text())
    reader = mapillary.Reader(root, version=version)
    assert [lab.name for lab in reader.labels] == [e["name"] for e in config["labels"]]
    samples = by_key(reader)
    files = sorted(root.glob(f"*/{version}/labels/*.png"))
    assert len(samples) == len(files) == 3
    for f in files:
        s = samples[(f.parent.parent.parent.name, f.stem)]
        assert s.meta["version"] == version
        assert s.image == f.parents[2] / "images" / f"{f.stem}.jpg"
        np.testing.assert_array_equal(s.semantic, png(f))
        inst = png(f.parents[1] / "instances" / f.name).astype(np.int64)
        got = {i.id: (i.class_id, rle.decode(i.mask)) for i in s.instances}
        assert sorted(got) == np.unique(inst).tolist()  # every class here has instances
        for v, (cls, mask) in got.items():
            assert cls == v >> 8
            np.testing.assert_array_equal(mask, inst == v)


def test_instances_match_the_panoptic_segments(shared_data):
    """The panoptic json (an independent encoding of the same regions) lists the same
    objects: per image, the same (class name, area) pairs."""
    root = shared_data(*VISTAS)
    samples = by_key(mapillary.Reader(root))
    names = {lab.id: lab.name for lab in mapillary.Reader(root).labels}
    for split in ("train", "val"):
        pan = json.loads((root / split / "v2.0/panoptic/panoptic_2020.json").read_text())
        cats = {c["id"]: c["name"] for c in pan["categories"]}
        for ann in pan["annotations"]:
            theirs = Counter(
                (cats[seg["category_id"]], seg["area"]) for seg in ann["segments_info"]
            )
            s = samples[(split, ann["image_id"])]
            assert Counter((names[i.class_id], i.area) for i in s.instances) == theirs


def test_stuff_classes_stay_in_the_class_map(tmp_path):
    config = {
        "labels": [
            {"name": "construction--flat--road", "color": [128, 64, 128], "instances": False},
            {"name": "object--vehicle--car", "color": [0, 0, 142], "instances": True},
        ]
    }
    (tmp_path / "config_v2.0.json").write_text(json.dumps(config))
    folder = tmp_path / "training" / "v2.0"
    (folder / "instances").mkdir(parents=True)
    (folder / "labels").mkdir()
    inst = np.array([[0, 256, 257, 0]], np.uint16)
    Image.fromarray(inst).save(folder / "instances" / "a.png")
    Image.fromarray((inst >> 8).astype(np.uint8)).save(folder / "labels" / "a.png")
    (s,) = list(mapillary.Reader(tmp_path))
    assert [(i.id, i.class_id, i.area) for i in s.instances] == [(256, 1, 1), (257, 1, 1)]
    assert s.semantic.tolist() == [[0, 1, 1, 0]]


def test_round_trip_is_exact(shared_data, tmp_path):
    src = shared_data(*VISTAS)
    report = convert(src, tmp_path / "out", to="mapillary", source_format="mapillary")
    assert report.losses == []
    assert report.exact == 10
    before, after = by_key(mapillary.Reader(src)), by_key(mapillary.Reader(tmp_path / "out"))
    assert before.keys() == after.keys()
    for key, s in before.items():
        t = after[key]
        np.testing.assert_array_equal(t.semantic, s.semantic)
        assert [(i.id, i.class_id) for i in t.instances] == [
            (i.id, i.class_id) for i in s.instances
        ]
        for a, b in zip(s.instances, t.instances, strict=True):
            np.testing.assert_array_equal(rle.decode(a.mask), rle.decode(b.mask))
    # the written files, read with PIL and json
    out = tmp_path / "out"
    config = json.loads((out / "config_v2.0.json").read_text())
    source = json.loads((src / "config_v2.0.json").read_text())
    assert [(e["name"], e["color"], e["instances"]) for e in config["labels"]] == [
        (e["name"], e["color"], e["instances"]) for e in source["labels"]
    ]
    labels = Image.open(out / "val" / "v2.0" / "labels" / "1.png")
    assert labels.mode == "P"
    assert labels.getpalette()[:9] == [165, 42, 42, 128, 128, 128, 119, 11, 32]
    np.testing.assert_array_equal(
        png(out / "val" / "v2.0" / "instances" / "1.png"),
        png(src / "val" / "v2.0" / "instances" / "1.png"),
    )


def _labels() -> LabelMap:
    return LabelMap(
        (
            Label(0, ("background",), (0, 0, 0), isthing=False, role="background"),
            Label(1, ("car",), voc_color(1)),
            Label(2, ("road",), voc_color(2), isthing=False),
        )
    )


def test_writer_reports_crowd_scores_stuff_objects_and_overlap(tmp_path):
    a = np.array([[1, 1, 0, 0]], bool)
    b = np.array([[0, 1, 1, 0]], bool)
    c = np.array([[0, 0, 0, 1]], bool)
    sample = Sample(
        "s",
        (1, 4),
        instances=(
            Instance(rle.encode(a), 1, iscrowd=True),
            Instance(rle.encode(b), 1, score=0.5),
            Instance(rle.encode(c), 2),
            Instance(rle.encode(c), 7),  # not in the label map
        ),
    )
    with mapillary.Writer(tmp_path / "o", labels=_labels()) as w:
        w.write(sample)
    got = sorted((loss.instance, loss.what) for loss in w.report.losses)
    assert got == [(0, "crowd"), (0, "overlap"), (1, "score"), (2, "instances"), (3, "class")]
    inst = png(tmp_path / "o" / "training" / "v2.0" / "instances" / "s.png")
    assert inst.tolist() == [[256, 257, 257, 512]]  # objects numbered from 0 per class


def test_class_map_without_objects_is_split_into_components(tmp_path):
    sem = np.array([[1, 0, 1, 2]], np.uint8)
    with mapillary.Writer(tmp_path / "o", labels=_labels()) as w:
        w.write(Sample("s", (1, 4), semantic=sem))
    inst = png(tmp_path / "o" / "training" / "v2.0" / "instances" / "s.png")
    assert inst.tolist() == [[256, 0, 257, 512]]
    assert w.report.losses == []


def test_void_class_is_added_when_the_label_map_has_none(tmp_path):
    labels = LabelMap.from_names(["car", "bus"])
    inst = Instance(rle.encode(np.array([[1, 0]], bool)), 1)
    with mapillary.Writer(tmp_path / "o", labels=labels) as w:
        w.write(Sample("s", (1, 2), instances=(inst,)))
    config = json.loads((tmp_path / "o" / "config_v2.0.json").read_text())
    assert [e["name"] for e in config["labels"]] == ["car", "bus", "void--unlabeled"]
    assert png(tmp_path / "o" / "training" / "v2.0" / "labels" / "s.png").tolist() == [[1, 2]]


def test_missing_config_is_reported_and_classes_are_numbered(shared_data, tmp_path):
    root = tmp_path / "v"
    shutil.copytree(shared_data(*VISTAS), root)
    for f in root.glob("config*.json"):
        f.unlink()
    reader = mapillary.Reader(root)
    assert [lab.name for lab in reader.labels] == ["class_0", "class_1", "class_2"]
    assert "config" in reader.report.problems[0].message
    assert len(list(reader)) == 3


def test_corrupt_png_is_reported_and_the_rest_reads(shared_data, tmp_path):
    root = tmp_path / "v"
    shutil.copytree(shared_data(*VISTAS), root)
    bad = root / "val" / "v2.0" / "instances" / "0.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 30)
    reader = mapillary.Reader(root)
    assert sorted(s.id for s in reader) == ["1", "2"]
    (problem,) = reader.report.problems
    assert (problem.path, problem.record) == (str(root / "val/v2.0/labels/0.png"), "0")
    assert "instances/0.png" in problem.message
    with pytest.raises(FormatError, match="record 0"):
        list(mapillary.Reader(root, strict=True))


def test_detect_knows_vistas_only(shared_data, tmp_path):
    assert mapillary.detect(shared_data(*VISTAS)).confidence == 3
    convert(shared_data(*VISTAS), tmp_path / "o", to="mapillary", source_format="mapillary")
    assert mapillary.detect(tmp_path / "o").confidence == 3
    assert mapillary.detect(shared_data(*ASSETS, "camvid_dataset")).confidence == 0
    assert mapillary.detect(shared_data(*ASSETS, "cityscapes_dataset", "dataset")).confidence == 0


def test_nested_ids_with_spaces_survive_a_round_trip(tmp_path):
    car = np.zeros((6, 7), bool)
    car[1:4, 2:5] = True
    sample = Sample(
        "seq a/b_0001", (6, 7), instances=(Instance(rle.encode(car), 26),), subset="val"
    )
    with mapillary.Writer(tmp_path / "o", labels=cityscapes.label_map()) as w:
        w.write(sample)
    (back,) = list(mapillary.Reader(tmp_path / "o"))
    assert (back.id, back.subset) == ("seq a/b_0001", "val")
    assert len(back.instances) == 1
    np.testing.assert_array_equal(back.semantic == 26, car)  # ids 0..33 keep their value
