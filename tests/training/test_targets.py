"""masklab.training.targets: hand-drawn samples, pycocotools, panopticapi's sample PNGs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from masklab.core import rle
from masklab.core.instances import Instance
from masklab.core.labels import Label, LabelMap
from masklab.errors import FormatError, LabelMapError, MaskFormatError
from masklab.formats import open_reader
from masklab.formats._base import Sample
from masklab.formats.cityscapes import label_map as cityscapes_labels
from masklab.training.targets import (
    IGNORE_RLE,
    TrainIds,
    binary_maps,
    class_map,
    ignore_mask,
    instance_targets,
    load_image,
    panoptic_targets,
)

COCO_JSON = ("airo-mono-coco-val2017-small", "airo-dataset-tools", "test", "test_data")
PANOPTIC = ("panopticapi", "sample_data")
DOCS = Path(__file__).resolve().parents[2] / "docs" / "training.md"


def inst(rows: list[list[int]], class_id: int, **kw: object) -> Instance:
    return Instance(rle.encode(np.array(rows, np.uint8)), class_id, **kw)  # type: ignore[arg-type]


def coco_like() -> LabelMap:
    """Categories 1 person, 3 car, 7 dog: no background, no ignore label (as COCO)."""
    return LabelMap(
        (
            Label(1, ("person",), (1, 1, 1)),
            Label(3, ("car",), (3, 3, 3)),
            Label(7, ("dog",), (7, 7, 7)),
        )
    )


# --------------------------------------------------------------------------- TrainIds


class TestTrainIds:
    def test_voc_map_is_identity_with_void_ignored(self):
        lm = LabelMap.from_names(
            ["background", "aeroplane", "bicycle"], background=0, ignore={255: "void"}
        )
        t = TrainIds.from_label_map(lm)
        assert t.names == ("background", "aeroplane", "bicycle")
        assert t.background == 0
        assert t.lut[[0, 1, 2, 3, 255]].tolist() == [0, 1, 2, 255, 255]

    def test_coco_map_gets_a_background_so_objects_start_at_one(self):
        t = TrainIds.from_label_map(coco_like())
        assert t.names == ("background", "person", "car", "dog")
        assert t.num_classes == 4
        assert [t.of(1), t.of(3), t.of(7)] == [1, 2, 3]
        assert t.lut[[0, 2, 4, 7]].tolist() == [255, 255, 255, 3]  # 0, 2, 4: not labels

    def test_cityscapes_label_ids_give_the_official_train_ids(self):
        # cityscapesScripts labels.py: id -> trainId
        official = {0: 255, 6: 255, 7: 0, 8: 1, 9: 255, 11: 2, 17: 5, 19: 6, 23: 10, 24: 11}
        official |= {25: 12, 26: 13, 28: 15, 29: 255, 30: 255, 31: 16, 32: 17, 33: 18, -1: 255}
        t = TrainIds.from_label_map(cityscapes_labels("label"))
        assert t.num_classes == 19
        assert t.background is None
        assert {i: t.of(i) for i in official} == official

    def test_ade20k_zero_is_ignored_and_classes_start_at_zero(self):
        lm = LabelMap.from_names(["wall", "building", "sky"], start=1, ignore={0: "other"})
        assert TrainIds.from_label_map(lm).map(np.array([[0, 1, 2, 3]])).tolist() == [
            [255, 0, 1, 2]
        ]

    def test_classes_pick_and_order_others_are_ignored(self):
        t = TrainIds.from_label_map(coco_like(), classes=["dog", "person"])
        assert t.names == ("background", "dog", "person")
        assert [t.of(1), t.of(3), t.of(7)] == [2, 255, 1]

    def test_background_false_keeps_ids_from_zero(self):
        t = TrainIds.from_label_map(coco_like(), background=False)
        assert t.names == ("person", "car", "dog")
        assert t.background is None

    def test_store_remap_label_map_with_void_is_identity(self):
        lm = LabelMap(
            (
                Label(0, ("animal",), (1, 1, 1)),
                Label(1, ("vehicle",), (2, 2, 2)),
                Label(255, ("void",), (3, 3, 3), isthing=False, role="ignore"),
            )
        )
        t = TrainIds.from_label_map(lm)
        assert t.lut[[0, 1, 255]].tolist() == [0, 1, 255]

    def test_multi_name_labels_give_one_class_per_distinct_name(self):
        lm = LabelMap.from_mask_labels(
            {0: ["background"], 1: ["person"], 2: ["person", "rider"], 3: ["car"]}
        )
        t = TrainIds.from_label_map(lm)
        assert t.names == ("background", "person", "rider", "car")
        assert [t.of(i) for i in range(4)] == [0, 1, 1, 3]  # class_map: the first name
        assert [t.channels(i) for i in range(4)] == [(0,), (1,), (1, 2), (3,)]

    def test_ignore_index_that_is_a_class_is_refused(self):
        with pytest.raises(LabelMapError, match=r"ignore_index 2 is the train id of 'car'"):
            TrainIds.from_label_map(coco_like(), ignore_index=2)

    def test_unknown_class_name_is_refused(self):
        with pytest.raises(LabelMapError, match=r"\['cat'\] are not names"):
            TrainIds.from_label_map(coco_like(), classes=["cat"])

    def test_map_sends_unknown_and_out_of_range_ids_to_ignore(self):
        t = TrainIds.from_label_map(coco_like(), ignore_index=-100)
        ids = np.array([[1, 3, 7], [70000, -5, 2]], np.int32)
        assert t.map(ids).tolist() == [[1, 2, 3], [-100, -100, -100]]
        assert t.map(ids.astype(np.uint16).clip(0)).dtype == np.int64


# --------------------------------------------------------------------------- class maps


def test_class_map_paints_in_order_with_crowd_ignored():
    person = inst([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]], 1)
    car = inst([[0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]], 3)  # over the person
    crowd = inst([[0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]], 1, iscrowd=True)
    dog_unknown = inst([[0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0]], 99)
    s = Sample("a", (3, 4), instances=(person, car, crowd, dog_unknown))
    assert class_map(s, coco_like()).tolist() == [
        [1, 2, 2, 255],
        [1, 2, 2, 0],
        [255, 255, 255, 255],
    ]
    assert class_map(s, coco_like(), crowd="class", unlabeled="ignore").tolist() == [
        [1, 2, 2, 255],
        [1, 2, 2, 255],
        [1, 1, 1, 1],
    ]
    assert class_map(s, coco_like()).dtype == np.int64


def test_class_map_of_a_semantic_sample_ignores_its_instances():
    lm = LabelMap.from_names(["background", "cat"], background=0, ignore={255: "void"})
    sem = np.array([[0, 1], [255, 1]], np.uint8)
    s = Sample("a", (2, 2), semantic=sem, instances=(inst([[1, 1], [1, 1]], 0),))
    assert class_map(s, lm, ignore_index=-1).tolist() == [[0, 1], [-1, 1]]


def test_unlabeled_sample_is_ignore_everywhere():
    s = Sample("test-image", (2, 3), labeled=False)
    assert (class_map(s, coco_like()) == 255).all()
    assert ignore_mask(s, coco_like()).all()
    assert binary_maps(s, coco_like()).shape == (4, 2, 3)
    assert not binary_maps(s, coco_like()).any()
    assert instance_targets(s, coco_like())["masks"].shape == (0, 2, 3)


def test_ignore_rle_in_meta_marks_ignore_pixels():
    pad = rle.encode(np.array([[0, 0, 1]]))
    s = Sample("a", (1, 3), instances=(inst([[1, 1, 1]], 1),), meta={IGNORE_RLE: pad})
    assert class_map(s, coco_like()).tolist() == [[1, 1, 255]]
    assert binary_maps(s, coco_like())[1].tolist() == [[1, 1, 0]]


def test_targets_need_a_label_map():
    with pytest.raises(LabelMapError, match="pass label_map="):
        class_map(Sample("a", (1, 1)))


def test_class_map_size_mismatch_names_the_sample():
    s = Sample("frame-9", (2, 2), semantic=np.zeros((2, 3), np.uint8))
    with pytest.raises(MaskFormatError, match=r"'frame-9': class map is \[2, 3\]"):
        class_map(s, coco_like())


def test_crossentropyloss_accepts_the_class_map():
    torch = pytest.importorskip("torch")
    s = Sample("a", (2, 3), instances=(inst([[1, 1, 0], [0, 0, 0]], 3, iscrowd=True),))
    target = torch.from_numpy(class_map(s, coco_like()))[None]  # (1, H, W) int64
    logits = torch.zeros(1, 4, 2, 3, requires_grad=True)
    loss = torch.nn.CrossEntropyLoss(ignore_index=255)(logits, target)
    loss.backward()
    assert torch.isclose(loss, torch.log(torch.tensor(4.0)))  # uniform logits, 4 classes
    assert logits.grad is not None
    assert logits.grad[0, :, 0, :2].abs().sum() == 0  # the crowd pixels get no gradient


# --------------------------------------------------------------------------- binary maps


def test_binary_maps_of_a_clearml_colour_mask_are_multi_label():
    mask_labels = {
        (0, 0, 0): ["background"],
        (255, 0, 0): ["person"],
        (0, 255, 0): ["person", "rider"],
        (0, 0, 255): ["car"],
    }
    lm = LabelMap.from_mask_labels(mask_labels)
    rgb = np.array(
        [
            [[0, 0, 0], [255, 0, 0], [0, 255, 0]],
            [[0, 0, 255], [0, 255, 0], [128, 0, 0]],  # an antialiased edge colour
        ],
        np.uint8,
    )
    ids, unknown = lm.colors_to_ids(rgb, unknown=255)
    assert unknown == {(128, 0, 0): 1}
    s = Sample("a", (2, 3), semantic=ids)
    maps = binary_maps(s, lm)
    assert TrainIds.from_label_map(lm).names == ("background", "person", "rider", "car")
    assert maps.dtype == np.uint8
    assert maps.tolist() == [
        [[1, 0, 0], [0, 0, 0]],  # background
        [[0, 1, 1], [0, 1, 0]],  # person: red and green pixels
        [[0, 0, 1], [0, 1, 0]],  # rider: green pixels only
        [[0, 0, 0], [1, 0, 0]],  # car
    ]
    assert class_map(s, lm).tolist() == [[0, 1, 1], [3, 1, 255]]
    assert ignore_mask(s, lm).tolist() == [[False] * 3, [False, False, True]]


def test_binary_maps_set_every_class_of_overlapping_instances():
    person = inst([[1, 1, 0], [0, 0, 0]], 1)
    dog = inst([[0, 1, 1], [0, 0, 0]], 7)
    s = Sample("a", (2, 3), instances=(person, dog))
    assert binary_maps(s, coco_like()).tolist() == [
        [[0, 0, 0], [1, 1, 1]],
        [[1, 1, 0], [0, 0, 0]],
        [[0, 0, 0], [0, 0, 0]],
        [[0, 1, 1], [0, 0, 0]],
    ]


def test_binary_maps_are_the_one_hot_class_map_for_single_label_data():
    rng = np.random.default_rng(3)
    lm = LabelMap.from_names(["background", "a", "b", "c"], background=0, ignore={255: "void"})
    sem = rng.choice(np.array([0, 1, 2, 3, 255, 9], np.uint8), size=(17, 23))
    s = Sample("a", sem.shape, semantic=sem)
    cm = class_map(s, lm)
    expected = np.stack([(cm == c) for c in range(4)]).astype(np.uint8)
    assert np.array_equal(binary_maps(s, lm), expected)
    assert np.array_equal(ignore_mask(s, lm), np.isin(sem, [255, 9]))


# --------------------------------------------------------------------------- instances


def test_instance_targets_box_follows_the_mask_not_its_box():
    ring = inst([[0, 0, 0, 0], [0, 1, 1, 1], [0, 1, 0, 1], [0, 1, 1, 1]], 3)
    t = instance_targets(Sample("a", (4, 4), instances=(ring,)), coco_like(), image_id=5)
    assert t["boxes"].tolist() == [[1.0, 1.0, 4.0, 4.0]]
    assert t["area"].tolist() == [8.0]
    assert t["labels"].tolist() == [2]
    assert t["boxes"].dtype == np.float32
    assert t["area"].dtype == np.float32
    assert t["labels"].dtype == t["iscrowd"].dtype == np.int64
    assert t["masks"].dtype == np.uint8
    assert t["image_id"].shape == ()
    assert int(t["image_id"]) == 5


def test_instance_targets_leave_out_empty_ignored_and_crowd_instances():
    lm = coco_like().with_label(Label(255, ("void",), (9, 9, 9), isthing=False, role="ignore"))
    s = Sample(
        "a",
        (2, 2),
        instances=(
            inst([[0, 0], [0, 0]], 1),  # empty
            inst([[1, 0], [0, 0]], 255),  # ignored class
            inst([[0, 1], [0, 0]], 42),  # unknown id
            inst([[1, 1], [1, 1]], 7, iscrowd=True),
            inst([[0, 0], [1, 0]], 3),
        ),
    )
    train_ids = TrainIds.from_label_map(lm, background=True)
    assert train_ids.names == ("background", "person", "car", "dog")
    t = instance_targets(s, train_ids=train_ids)
    assert t["labels"].tolist() == [2]
    assert t["masks"].tolist() == [[[0, 0], [1, 0]]]
    kept = instance_targets(s, train_ids=train_ids, crowd="keep")
    assert kept["labels"].tolist() == [3, 2]
    assert kept["iscrowd"].tolist() == [1, 0]


def test_instance_targets_refuse_label_zero_for_an_object():
    lm = LabelMap.from_names(["bird"], ignore={255: "void"})  # bird is train id 0
    s = Sample("a", (1, 2), instances=(inst([[1, 0]], 0),))
    with pytest.raises(LabelMapError, match="reserve for background"):
        instance_targets(s, lm)
    ok = instance_targets(s, train_ids=TrainIds.from_label_map(lm, background=True))
    assert ok["labels"].tolist() == [1]


def test_instance_targets_of_a_class_map_are_its_thing_components():
    lm = LabelMap(
        (
            Label(0, ("background",), (0, 0, 0), isthing=False, role="background"),
            Label(1, ("road",), (1, 1, 1), isthing=False),
            Label(2, ("car",), (2, 2, 2)),
        )
    )
    sem = np.array([[2, 0, 2], [1, 1, 1]], np.uint8)
    t = instance_targets(Sample("a", (2, 3), semantic=sem), lm)
    assert t["labels"].tolist() == [2, 2]
    assert t["boxes"].tolist() == [[0.0, 0.0, 1.0, 1.0], [2.0, 0.0, 3.0, 1.0]]


def test_instance_targets_match_pycocotools_on_val2017(shared_data):
    path = shared_data(*COCO_JSON, "instances_val2017_small.json")
    gt = COCO(str(path))
    reader = open_reader(path)
    cats = json.loads(path.read_text())["categories"]
    train_id = {c["id"]: i + 1 for i, c in enumerate(cats)}  # background 0, then json order
    for sample in reader:
        image_id = sample.meta["image_id"]
        anns = gt.loadAnns(gt.getAnnIds(imgIds=image_id))
        for crowd, wanted in (("drop", [a for a in anns if not a["iscrowd"]]), ("keep", anns)):
            t = instance_targets(sample, reader.labels, image_id=image_id, crowd=crowd)
            assert t["masks"].shape == (len(wanted), *sample.size)
            for k, ann in enumerate(wanted):
                m = gt.annToMask(ann)
                ys, xs = np.nonzero(m)
                assert np.array_equal(t["masks"][k], m), ann["id"]
                box = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
                assert t["boxes"][k].tolist() == box
                assert t["area"][k] == m.sum()
                assert t["labels"][k] == train_id[ann["category_id"]]
                assert t["iscrowd"][k] == ann["iscrowd"]
            assert int(t["image_id"]) == image_id


# --------------------------------------------------------------------------- panoptic


def test_panoptic_targets_match_panopticapi_pngs(shared_data):
    root = shared_data(*PANOPTIC)
    doc = json.loads((root / "panoptic_examples.json").read_text())
    train_id = {c["id"]: i + 1 for i, c in enumerate(doc["categories"])}  # 0 background
    isthing = {c["id"]: bool(c["isthing"]) for c in doc["categories"]}
    anns = {a["image_id"]: a for a in doc["annotations"]}
    reader = open_reader(root / "panoptic_examples.json")
    samples = list(reader)
    assert len(samples) == 2
    for sample in samples:
        ann = anns[sample.meta["image_id"]]
        with Image.open(root / "panoptic_examples" / ann["file_name"]) as im:
            rgb = np.asarray(im.convert("RGB")).astype(np.int64)
        ids = rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]
        semantic = np.full(ids.shape, 255, np.int64)
        instance = np.zeros(ids.shape, np.int64)
        n = 0
        for seg in ann["segments_info"]:
            semantic[ids == seg["id"]] = train_id[seg["category_id"]]
            if isthing[seg["category_id"]] and not seg["iscrowd"]:
                n += 1
                instance[ids == seg["id"]] = n
        p = panoptic_targets(sample, reader.labels)
        assert np.array_equal(p["semantic"], semantic)
        assert np.array_equal(p["instance"], instance)
        segs = ann["segments_info"]
        assert p["segment_ids"].tolist() == [s["id"] for s in segs]
        assert p["labels"].tolist() == [train_id[s["category_id"]] for s in segs]
        assert p["isthing"].tolist() == [isthing[s["category_id"]] for s in segs]
        assert p["iscrowd"].tolist() == [s["iscrowd"] for s in segs]
        for k, s in enumerate(segs):
            assert np.array_equal(p["masks"][k], (ids == s["id"]).astype(np.uint8))
        # the class map of the same sample: void is background, or ignore when asked
        cm = class_map(sample, reader.labels, crowd="class", unlabeled="ignore")
        assert np.array_equal(cm, semantic)
        assert np.array_equal(
            class_map(sample, reader.labels, crowd="class")[ids == 0], 0 * ids[ids == 0]
        )


def test_panoptic_targets_of_a_class_map_split_things_and_keep_stuff_whole():
    lm = LabelMap(
        (
            Label(1, ("sky",), (1, 1, 1), isthing=False),
            Label(2, ("car",), (2, 2, 2)),
            Label(255, ("void",), (9, 9, 9), isthing=False, role="ignore"),
        )
    )
    sem = np.array([[1, 1, 1, 1], [2, 255, 1, 2]], np.uint8)
    p = panoptic_targets(Sample("a", (2, 4), semantic=sem), lm)
    assert TrainIds.from_label_map(lm).names == ("sky", "car")  # an ignore label: no background
    assert p["semantic"].tolist() == [[0, 0, 0, 0], [1, 255, 0, 1]]
    assert p["instance"].tolist() == [[0, 0, 0, 0], [1, 0, 0, 2]]
    assert p["labels"].tolist() == [0, 1, 1]
    assert p["isthing"].tolist() == [False, True, True]
    assert p["segment_ids"].tolist() == [1, 2, 3]


# --------------------------------------------------------------------------- store frames


def test_a_store_frame_gives_the_same_targets_as_its_sample(tmp_path):
    from masklab.store import Annotation, Frame, Store

    store = Store(home=tmp_path / "home")
    try:
        version = store.create_dataset("pets").create_version("v1")
        version.set_label_map(coco_like())
        dog = Annotation(labels=("dog",), rle=rle.encode(np.array([[0, 1, 1], [0, 0, 1]])))
        version.add_frames([Frame.single("f", "f.jpg", width=3, height=2, annotations=[dog])])
        version.commit()
        (frame,) = list(version.view())
        with pytest.raises(LabelMapError, match="pass label_map="):
            class_map(frame, store=store)
        with pytest.raises(TypeError, match="needs store="):
            class_map(frame, version.label_map)
        cm = class_map(frame, version.label_map, store=store)
        assert cm.tolist() == [[0, 3, 3], [0, 0, 3]]
        t = instance_targets(frame, version.label_map, store=store)
        assert t["boxes"].tolist() == [[1.0, 0.0, 3.0, 2.0]]
    finally:
        store.close()


# --------------------------------------------------------------------------- images


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "I;16"])
def test_load_image_gives_rgb_uint8(tmp_path, mode):
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 10
    path = tmp_path / "im.png"
    if mode == "L":
        Image.fromarray(rgb[..., 0]).save(path)
        expected = np.repeat(rgb[..., :1], 3, axis=2)
    elif mode == "I;16":
        Image.fromarray(rgb[..., 0].astype(np.uint16) * 256).save(path)
        expected = np.repeat(rgb[..., :1], 3, axis=2)
    else:
        Image.fromarray(rgb).convert(mode).save(path)
        expected = rgb
    out = load_image(Sample("a", (2, 3), image=path))
    assert out.dtype == np.uint8
    assert np.array_equal(out, expected)
    assert np.array_equal(load_image(Sample("a", (2, 3), image_bytes=path.read_bytes())), expected)


def test_load_image_errors_name_the_file(tmp_path):
    missing = tmp_path / "gone.jpg"
    with pytest.raises(FormatError, match=r"gone\.jpg"):
        load_image(Sample("a", (2, 2), image=missing))
    with pytest.raises(FormatError, match="no image"):
        load_image(Sample("a", (2, 2)))
    path = tmp_path / "small.png"
    cv2.imwrite(str(path), np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(FormatError, match=r"small.png: image is \[2, 2\].*\[3, 2\]"):
        load_image(Sample("a", (3, 2), image=path))


# --------------------------------------------------------------------------- the guide


def test_every_example_in_the_training_guide_runs(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    text = DOCS.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 6
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, str(DOCS), "exec"), namespace)
