"""png-masks: real image/mask folders read as their PNGs say; exact round trips per layout."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from masklab import rle
from masklab.core.instances import Instance
from masklab.core.labels import Label, LabelMap
from masklab.errors import FormatError
from masklab.formats import Sample, png_masks

KAGGLE = ("datumaro", "tests", "assets", "kaggle_dataset")
COMMON = ("datumaro", "tests", "assets", "common_semantic_segmentation_dataset")
DSB = ("lopuhin-dsbowl2018-fixes",)
VIJENDRA = ("vijendra1125-custom-mask-rcnn-tfrecord", "dataset")


def _pil(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.array(im)


def _write(out: Path, samples: list[Sample], labels: LabelMap, **options: object):
    with png_masks.Writer(out, labels=labels, **options) as writer:
        for s in samples:
            writer.write(s)
    return writer


def _folder(tmp_path: Path, masks: dict[str, np.ndarray]) -> Path:
    """images/ + masks/ with the given mask arrays (images are black RGB of the same size)."""
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for name, arr in masks.items():
        Image.fromarray(np.zeros((*arr.shape[:2], 3), np.uint8)).save(
            root / "images" / f"{name}.png"
        )
        Image.fromarray(arr).save(root / "masks" / f"{name}.png")
    return root


# --------------------------------------------------------------------------- real files


def test_dsb2018_has_95_instances_each_equal_to_its_png(shared_data):
    root = shared_data(*DSB)
    reader = png_masks.Reader(root)
    assert reader.layout == "instance-bitmaps"
    samples = list(reader)
    assert len(samples) == 4
    assert sum(len(s.instances) for s in samples) == 95
    for s in samples:
        folder = root / "stage1_train" / s.id
        assert s.subset == "stage1_train"
        files = sorted((folder / "masks").glob("*.png"))
        assert len(files) == len(s.instances)
        for inst, file in zip(s.instances, files, strict=True):
            np.testing.assert_array_equal(rle.decode(inst.mask), _pil(file) > 0)
            assert reader.labels.by_id(inst.class_id).name == "object"
        with Image.open(folder / "images" / f"{s.id}.png") as im:
            assert s.size == (im.height, im.width)
    assert not reader.report.problems


def test_kaggle_16_bit_index_masks_without_label_map(shared_data):
    root = shared_data(*KAGGLE, "image_mask")
    reader = png_masks.Reader(root)
    assert reader.layout == "index"
    assert [(lab.id, lab.name) for lab in reader.labels] == [(0, "0"), (1, "1")]
    samples = list(reader)
    assert [s.id for s in samples] == ["001", "002"]
    for s in samples:
        with Image.open(root / "masks" / f"{s.id}.png") as im:
            assert im.mode == "I;16"
            np.testing.assert_array_equal(s.semantic, np.array(im))
        assert s.image == root / "images" / f"{s.id}.png"


def test_kaggle_labelmap_csv_names_the_index_values(shared_data):
    root = shared_data(*KAGGLE, "image_mask_with_labelmap")
    rows = (root / "labelmap.csv").read_text().split()[1:]
    reader = png_masks.Reader(root)
    assert [lab.name for lab in reader.labels] == [r.split(",")[0] for r in rows]
    assert reader.labels.by_id(2).color == tuple(int(v) for v in rows[2].split(",")[1:])
    samples = list(reader)
    assert len(samples) == 3
    for s in samples:
        np.testing.assert_array_equal(s.semantic, _pil(root / "masks" / f"{s.id}.png"))
    assert not reader.report.problems


@pytest.mark.parametrize(
    ("folder", "pairs"),
    [
        ("dataset", {"0001": "0001", "0002": "0002"}),
        ("non_standard_dataset", {"image_0001": "gt_0001", "image_0002": "gt_0002"}),
    ],
)
def test_datumaro_common_semantic_segmentation_colours(shared_data, folder, pairs):
    root = shared_data(*COMMON, folder)
    meta = json.loads((root / "dataset_meta.json").read_text())
    color_to_id = {
        tuple(c): int(k)
        for k, c in zip(meta["label_map"], meta["segmentation_colors"], strict=True)
    }
    reader = png_masks.Reader(root)
    assert reader.layout == "color"
    assert reader.labels.by_id(0).role == "background"
    got = {s.id: s for s in reader}
    assert set(got) == set(pairs)
    for image_stem, mask_stem in pairs.items():
        rgb = _pil(root / "masks" / f"{mask_stem}.png")
        want = np.array([[color_to_id[tuple(p)] for p in row] for row in rgb.tolist()])
        np.testing.assert_array_equal(got[image_stem].semantic, want)
        assert got[image_stem].image == root / "images" / f"{image_stem}.png"
    assert not reader.report.unknown_colors


def test_rgb_colour_masks_with_a_label_map_built_here(shared_data):
    root = shared_data(*VIJENDRA)
    labels = LabelMap(
        (
            Label(0, ("background",), (0, 0, 0), isthing=False, role="background"),
            Label(1, ("speaker",), (255, 0, 0)),
            Label(2, ("cup",), (0, 0, 230)),
        )
    )
    reader = png_masks.Reader(root, labels=labels)
    assert reader.layout == "color"
    samples = list(reader)
    assert len(samples) == len(list((root / "train_masks").glob("*.png"))) == 32
    assert {s.subset for s in samples} == {"train"}
    for s in samples:
        rgb = _pil(root / "train_masks" / f"{s.id}.png")
        assert s.image == root / "train_images" / f"{s.id}.jpg"
        counts = Counter(np.asarray(s.semantic).ravel().tolist())
        for lab in labels:
            assert counts[lab.id] == int((rgb == lab.color).all(-1).sum()), (s.id, lab.name)
    assert not reader.report.unknown_colors
    assert not reader.report.problems


def test_clearml_mask_labels_with_a_multi_label_value_and_an_unknown_colour(tmp_path):
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[0:2, 0:3] = (1, 1, 1)
    rgb[3, 1:4] = (9, 9, 9)  # not in mask_labels: 3 px
    mask_labels = {"0,0,0": ["background"], "[1, 1, 1]": ["person", "sitting"]}
    root = _folder(tmp_path, {"f": rgb})
    (root / "mask_labels.json").write_text(json.dumps(mask_labels))
    reader = png_masks.Reader(root)
    assert reader.layout == "color"
    assert reader.labels.by_id(1).names == ("person", "sitting")
    (sample,) = list(reader)
    assert reader.report.unknown_colors == {(9, 9, 9): 3}
    want = np.zeros((4, 5), np.uint8)
    want[0:2, 0:3] = 1  # the unknown pixels are left as background, and reported
    np.testing.assert_array_equal(sample.semantic, want)


def test_unknown_colour_gets_the_ignore_id_when_the_map_has_one(tmp_path):
    labels = LabelMap.from_names(["bg", "a"], background=0, ignore={255: "void"})
    rgb = np.zeros((1, 3, 3), np.uint8)
    rgb[0, 1] = labels.by_id(1).color
    rgb[0, 2] = (5, 6, 7)
    root = _folder(tmp_path, {"f": rgb})
    reader = png_masks.Reader(root, labels=labels)
    (sample,) = list(reader)
    assert np.asarray(sample.semantic).tolist() == [[0, 1, 255]]
    assert reader.report.unknown_colors == {(5, 6, 7): 1}


# --------------------------------------------------------------------------- round trips


def _classes(h: int = 9, w: int = 11, top: int = 3) -> np.ndarray:
    rng = np.random.default_rng(5)
    return rng.integers(0, top + 1, (h, w)).astype(np.int32)


def test_index_round_trip_8_bit(tmp_path):
    labels = LabelMap.from_names(["bg", "a", "b", "c"], background=0)
    classes = _classes()
    _write(tmp_path / "out", [Sample("s", classes.shape, semantic=classes)], labels)
    with Image.open(tmp_path / "out" / "masks" / "s.png") as im:
        assert im.mode == "L"
    reader = png_masks.Reader(tmp_path / "out")
    assert reader.layout == "index"
    assert [lab.name for lab in reader.labels] == ["bg", "a", "b", "c"]
    (back,) = list(reader)
    np.testing.assert_array_equal(back.semantic, classes)


def test_index_round_trip_16_bit_when_ids_exceed_255(tmp_path):
    labels = LabelMap.from_names(["bg"], background=0).with_label(Label(1000, ("big",), (1, 2, 3)))
    classes = np.where(_classes(top=1) == 1, 1000, 0)
    writer = _write(tmp_path / "out", [Sample("s", classes.shape, semantic=classes)], labels)
    assert not writer.report.losses
    with Image.open(tmp_path / "out" / "masks" / "s.png") as im:
        assert im.mode.startswith("I;16")
        np.testing.assert_array_equal(np.array(im), classes)
    (back,) = list(png_masks.Reader(tmp_path / "out"))
    np.testing.assert_array_equal(back.semantic, classes)


def test_color_round_trip_writes_label_colours(tmp_path):
    labels = LabelMap.from_mask_labels({(0, 0, 0): ["background"], (10, 20, 30): ["a", "b"]})
    classes = _classes(top=1)
    writer = _write(
        tmp_path / "out", [Sample("s", classes.shape, semantic=classes)], labels, layout="color"
    )
    assert not writer.report.losses
    rgb = _pil(tmp_path / "out" / "masks" / "s.png")
    np.testing.assert_array_equal((rgb == (10, 20, 30)).all(-1), classes == 1)
    reader = png_masks.Reader(tmp_path / "out")
    assert reader.layout == "color"
    assert reader.labels.by_id(1).names == ("a", "b")
    (back,) = list(reader)
    np.testing.assert_array_equal(back.semantic, classes)


def test_instance_bitmaps_round_trip_keeps_overlap_exactly(tmp_path):
    a = np.zeros((8, 8), np.uint8)
    a[0:5, 0:5] = 1
    a[2, 2] = 0  # a hole
    b = np.zeros((8, 8), np.uint8)
    b[3:8, 3:8] = 1  # overlaps a
    labels = LabelMap.from_names(["bg", "cell", "nucleus"], background=0)
    insts = (Instance(rle.encode(a), 1), Instance(rle.encode(b), 2))
    writer = _write(
        tmp_path / "out",
        [Sample("s", (8, 8), instances=insts)],
        labels,
        layout="instance-bitmaps",
    )
    assert writer.report.exact == 2
    assert not writer.report.losses
    np.testing.assert_array_equal(_pil(tmp_path / "out" / "s" / "masks" / "0001.png"), b * 255)
    reader = png_masks.Reader(tmp_path / "out")
    assert reader.layout == "instance-bitmaps"
    (back,) = list(reader)
    assert [(i.mask, i.class_id) for i in back.instances] == [(m.mask, m.class_id) for m in insts]


def test_dsb2018_round_trip(shared_data, tmp_path):
    src = png_masks.Reader(shared_data(*DSB))
    original = list(src)
    _write(tmp_path / "out", original, src.labels, layout="instance-bitmaps")
    back = {s.id: s for s in png_masks.Reader(tmp_path / "out")}
    for s in original:
        assert back[s.id].subset == "stage1_train"
        assert [i.mask for i in back[s.id].instances] == [i.mask for i in s.instances]
        assert back[s.id].image is not None


def test_alpha_round_trip_of_rgba_and_grayscale_mattes(tmp_path):
    rng = np.random.default_rng(1)
    matte = rng.integers(0, 256, (6, 7)).astype(np.uint8)
    rgba = np.dstack([rng.integers(0, 256, (6, 7, 3)).astype(np.uint8), matte])
    root = _folder(tmp_path, {"f": rgba})
    reader = png_masks.Reader(root)
    assert reader.layout == "alpha"
    assert len(reader.labels) == 0
    (sample,) = list(reader)
    np.testing.assert_array_equal(sample.alpha, matte)
    _write(tmp_path / "out", [sample], reader.labels, layout="alpha")
    np.testing.assert_array_equal(_pil(tmp_path / "out" / "masks" / "f.png"), matte)
    (back,) = list(png_masks.Reader(tmp_path / "out"))
    np.testing.assert_array_equal(back.alpha, matte)


def test_a_mattes_folder_is_read_as_alpha(tmp_path):
    root = tmp_path / "data"
    (root / "mattes").mkdir(parents=True)
    matte = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(matte).save(root / "mattes" / "m.png")
    reader = png_masks.Reader(root)
    assert reader.layout == "alpha"
    (sample,) = list(reader)
    np.testing.assert_array_equal(sample.alpha, matte)


def test_subsets_round_trip_as_folders(tmp_path):
    labels = LabelMap.from_names(["bg", "a"], background=0)
    classes = _classes(top=1)
    samples = [
        Sample("x", classes.shape, semantic=classes, subset="train"),
        Sample("y", classes.shape, semantic=1 - classes, subset="val"),
    ]
    _write(tmp_path / "out", samples, labels)
    back = {s.id: s for s in png_masks.Reader(tmp_path / "out")}
    assert {k: s.subset for k, s in back.items()} == {"x": "train", "y": "val"}
    np.testing.assert_array_equal(back["y"].semantic, 1 - classes)


# --------------------------------------------------------------------------- losses


def test_painting_instances_reports_identity_and_overlap(tmp_path):
    a = np.zeros((4, 4), np.uint8)
    a[:3, :3] = 1
    b = np.zeros((4, 4), np.uint8)
    b[2:, 2:] = 1
    labels = LabelMap.from_names(["bg", "a", "b"], background=0)
    insts = (Instance(rle.encode(a), 1, score=0.9), Instance(rle.encode(b), 2))
    writer = _write(tmp_path / "out", [Sample("s", (4, 4), instances=insts)], labels)
    assert sorted(loss.what for loss in writer.report.losses) == ["instances", "overlap", "score"]
    png = _pil(tmp_path / "out" / "masks" / "s.png")
    assert png[2, 2] == 2  # the later instance keeps the contested pixel


def test_color_writer_reports_ids_without_a_colour(tmp_path):
    labels = LabelMap.from_names(["bg", "a"], background=0)
    classes = np.array([[0, 1, 7]], np.int32)
    writer = _write(
        tmp_path / "out", [Sample("s", (1, 3), semantic=classes)], labels, layout="color"
    )
    (loss,) = writer.report.losses
    assert (loss.what, loss.sample) == ("class", "s")
    assert "class id 7" in loss.detail


def test_alpha_layout_reports_class_masks_it_cannot_hold(tmp_path):
    labels = LabelMap.from_names(["bg", "a"], background=0)
    classes = np.array([[0, 1]], np.int32)
    writer = _write(
        tmp_path / "out", [Sample("s", (1, 2), semantic=classes)], labels, layout="alpha"
    )
    assert [loss.what for loss in writer.report.losses] == ["class"]


# --------------------------------------------------------------------------- bad input


def test_corrupt_mask_in_the_middle_is_reported_and_the_rest_read(tmp_path):
    masks = {n: np.full((3, 3), i, np.uint8) for i, n in enumerate(["a", "b", "c"])}
    root = _folder(tmp_path, masks)
    good = (root / "masks" / "b.png").read_bytes()
    (root / "masks" / "b.png").write_bytes(good[: len(good) // 2])
    reader = png_masks.Reader(root, layout="index")
    assert [s.id for s in reader] == ["a", "c"]
    (problem,) = reader.report.problems
    assert problem.record == "b"
    assert problem.path.endswith("masks/b.png")
    with pytest.raises(FormatError, match=r"b\.png") as err:
        list(png_masks.Reader(root, layout="index", strict=True))
    assert err.value.record == "b"


def test_corrupt_instance_bitmap_is_reported_and_its_siblings_kept(tmp_path):
    folder = tmp_path / "data" / "s1"
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(folder / "images" / "s1.png")
    for name in ("m1", "m2", "m3"):
        Image.fromarray(np.eye(4, dtype=np.uint8) * 255).save(folder / "masks" / f"{name}.png")
    (folder / "masks" / "m2.png").write_bytes(b"\x89PNG broken")
    reader = png_masks.Reader(tmp_path / "data")
    (sample,) = list(reader)
    assert len(sample.instances) == 2
    assert [p.record for p in reader.report.problems] == ["s1/m2.png"]


def test_index_values_missing_from_the_label_file_are_reported(tmp_path):
    labels = LabelMap.from_names(["bg", "a"], background=0)
    root = _folder(tmp_path, {"f": np.array([[0, 1, 5]], np.uint8)})
    (root / "labels.json").write_text(json.dumps({**labels.to_dict(), "layout": "index"}))
    reader = png_masks.Reader(root)
    (sample,) = list(reader)
    assert np.asarray(sample.semantic).tolist() == [[0, 1, 5]]  # kept, not dropped
    (problem,) = reader.report.problems
    assert "[5]" in problem.message


def test_mask_and_image_of_different_sizes_is_reported(tmp_path):
    root = _folder(tmp_path, {"f": np.zeros((3, 3), np.uint8)})
    Image.fromarray(np.zeros((5, 5, 3), np.uint8)).save(root / "images" / "f.png")
    reader = png_masks.Reader(root, layout="index")
    assert list(reader) == []
    assert "[3, 3]" in reader.report.problems[0].message


# --------------------------------------------------------------------------- detect


def test_detect_knows_the_layouts_and_our_output(shared_data, tmp_path):
    assert png_masks.detect(shared_data(*DSB)).confidence == 3
    assert png_masks.detect(shared_data(*KAGGLE, "image_mask")).confidence == 2
    assert png_masks.detect(shared_data(*COMMON, "non_standard_dataset")).confidence == 2
    labels = LabelMap.from_names(["bg", "a"], background=0)
    classes = _classes(top=1)
    _write(tmp_path / "out", [Sample("s", classes.shape, semantic=classes)], labels)
    assert png_masks.detect(tmp_path / "out").confidence == 3


def test_detect_rejects_other_formats(shared_data):
    voc = shared_data("datumaro", "tests", "assets", "voc_dataset", "voc_dataset1")
    assert png_masks.detect(voc).confidence == 0
    assert png_masks.detect(shared_data("bubbliiiing-unet-pytorch", "datasets")).confidence == 0
    assert png_masks.detect(voc / "ImageSets" / "Segmentation" / "train.txt").confidence == 0


def test_nested_sample_ids_round_trip_as_sub_folders(tmp_path):
    labels = LabelMap.from_names(["bg", "a"], background=0)
    classes = _classes(top=1)
    _write(tmp_path / "out", [Sample("city/frame_1", classes.shape, semantic=classes)], labels)
    assert (tmp_path / "out" / "masks" / "city" / "frame_1.png").is_file()
    (back,) = list(png_masks.Reader(tmp_path / "out"))
    assert back.id == "city/frame_1"
    np.testing.assert_array_equal(back.semantic, classes)
