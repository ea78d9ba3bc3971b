"""Pascal VOC: real VOC-layout files read as their PNGs say, exact round trips, losses."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from masklab import rle
from masklab.core.instances import Instance
from masklab.core.labels import Label, LabelMap
from masklab.errors import FormatError
from masklab.formats import Sample, voc

VOC1 = ("datumaro", "tests", "assets", "voc_dataset", "voc_dataset1")
VOC2 = ("datumaro", "tests", "assets", "voc_dataset", "voc_dataset2")

# hand-copied from reference/formats.md §4.1, not computed
VOC_COLORS = {
    0: (0, 0, 0),
    1: (128, 0, 0),
    2: (0, 128, 0),
    3: (128, 128, 0),
    4: (0, 0, 128),
    8: (64, 0, 0),
    15: (192, 128, 128),
    20: (0, 64, 128),
    255: (224, 224, 192),
}


def _labelmap_colors(path: Path) -> dict[tuple[int, int, int], str]:
    """Colour -> name from a labelmap.txt, parsed here without masklab."""
    out = {}
    for line in path.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, color, _, _ = line.split(":")
        r, g, b = (int(v) for v in color.split(","))
        out[(r, g, b)] = name
    return out


def _voc_root(tmp_path: Path, classes: dict[str, np.ndarray], **extra: dict) -> Path:
    """A VOC root with palette class PNGs (and optional object PNGs, lists)."""
    root = tmp_path / "voc"
    (root / "SegmentationClass").mkdir(parents=True)
    for name, arr in classes.items():
        Image.fromarray(arr.astype(np.uint8), mode="L").convert("P").save(
            root / "SegmentationClass" / f"{name}.png"
        )
    for name, arr in extra.get("objects", {}).items():
        (root / "SegmentationObject").mkdir(exist_ok=True)
        Image.fromarray(arr.astype(np.uint8)).save(root / "SegmentationObject" / f"{name}.png")
    return root


def _write(out: Path, samples: list[Sample], labels: LabelMap | None = None) -> voc.Writer:
    with voc.Writer(out, labels=labels or voc.default_labels()) as writer:
        for s in samples:
            writer.write(s)
    return writer


def _instance(mask: np.ndarray, class_id: int, **kw: object) -> Instance:
    return Instance(rle.encode(mask), class_id, **kw)


# --------------------------------------------------------------------------- real files


def test_reads_datumaro_voc_rgb_masks_by_their_colours(shared_data):
    root = shared_data(*VOC1)
    reader = voc.Reader(root)
    samples = {s.id: s for s in reader}
    assert set(samples) == {"2007_000001", "2007_000002"}
    s = samples["2007_000001"]
    assert s.subset == "train"
    cls_rgb = np.array(Image.open(root / "SegmentationClass" / "2007_000001.png"))
    obj_rgb = np.array(Image.open(root / "SegmentationObject" / "2007_000001.png"))
    bicycle = (cls_rgb == VOC_COLORS[2]).all(-1)  # (0, 128, 0) is class 2, bicycle
    assert int(bicycle.sum()) == 200
    assert reader.labels.by_id(2).name == "bicycle"
    np.testing.assert_array_equal(s.semantic == 2, bicycle)
    assert Counter(np.asarray(s.semantic).ravel().tolist()) == {2: 200}
    object1 = (obj_rgb == VOC_COLORS[1]).all(-1)  # object 1 painted voc_color(1)
    assert [(i.id, i.class_id) for i in s.instances] == [(1, 2)]
    np.testing.assert_array_equal(rle.decode(s.instances[0].mask), object1)
    with Image.open(root / "JPEGImages" / "2007_000001.jpg") as im:
        assert s.size == (im.height, im.width)
    test = samples["2007_000002"]
    assert test.subset == "test"
    assert test.semantic is None
    assert test.instances == ()
    assert not reader.report.problems
    assert not reader.report.unknown_colors


def test_reads_palette_png_as_raw_indices(shared_data):
    root = shared_data("bubbliiiing-unet-pytorch", "datasets")
    png = root / "SegmentationClass" / "1.png"
    with Image.open(png) as im:
        assert im.mode == "P"
        want = np.array(im)
    (sample,) = list(voc.Reader(root))
    assert sample.semantic is not None
    assert sample.semantic.dtype == np.uint8
    np.testing.assert_array_equal(sample.semantic, want)
    assert Counter(sample.semantic.ravel().tolist()) == Counter(want.ravel().tolist())
    assert sample.image == root / "JPEGImages" / "1.jpg"
    with Image.open(sample.image) as im:
        assert sample.size == (im.height, im.width)


def test_rgb_targets_map_void_border_to_255_and_no_colour_is_unknown(shared_data, tmp_path):
    samples_dir = shared_data("VainF-DeepLabV3Plus-Pytorch", "samples")
    names = _labelmap_colors(shared_data(*VOC2) / "labelmap.txt")  # Datumaro's own colours
    root = tmp_path / "voc"
    (root / "SegmentationClass").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    targets = sorted(samples_dir.glob("*_target.png"))
    assert len(targets) == 3
    for target in targets:
        stem = target.name.removesuffix("_target.png")
        (root / "SegmentationClass" / f"{stem}.png").symlink_to(target)
        (root / "JPEGImages" / f"{stem}.png").symlink_to(samples_dir / f"{stem}_image.png")
    reader = voc.Reader(root)
    got = {s.id: s for s in reader}
    assert not reader.report.unknown_colors
    assert not reader.report.problems
    for target in targets:
        rgb = np.array(Image.open(target).convert("RGB"))
        colors, counts = np.unique(rgb.reshape(-1, 3), axis=0, return_counts=True)
        semantic = got[target.name.removesuffix("_target.png")].semantic
        assert semantic is not None
        ours = Counter(semantic.ravel().tolist())
        assert sum(ours.values()) == rgb.shape[0] * rgb.shape[1]
        for color, n in zip(map(tuple, colors.tolist()), counts.tolist(), strict=True):
            name = names[color]
            if name == "ignored":
                assert ours[255] == n  # the (224, 224, 192) border is void
                assert reader.labels.by_id(255).role == "ignore"
            else:
                (class_id,) = [lab.id for lab in reader.labels if lab.name == name]
                assert ours[class_id] == n, (target.name, name)
        assert ours[255] > 0


def test_labelmap_txt_gives_names_colours_and_void_at_255(shared_data):
    root = shared_data(*VOC2)
    lines = [ln for ln in (root / "labelmap.txt").read_text().splitlines() if ":" in ln]
    lines = [ln for ln in lines if not ln.startswith("#")]
    labels = voc.Reader(root).labels
    assert len(labels) == len(lines) == 22
    for position, line in enumerate(lines[:-1]):
        name, color, _, _ = line.split(":")
        lab = labels.by_id(position)
        assert lab.name == name
        assert lab.color == tuple(int(c) for c in color.split(","))
    assert labels.by_id(255).name == "ignored"
    assert labels.by_id(255).role == "ignore"
    assert labels.by_id(0).role == "background"


def test_default_labels_are_the_voc_classes():
    labels = voc.default_labels()
    assert [labels.by_id(i).name for i in (1, 5, 15, 20)] == [
        "aeroplane",
        "bottle",
        "person",
        "tvmonitor",
    ]
    assert labels.by_id(255).role == "ignore"
    for i, color in VOC_COLORS.items():
        assert labels.by_id(i).color == color


# --------------------------------------------------------------------------- round trips


def _scene() -> tuple[np.ndarray, list[Instance]]:
    classes = np.zeros((12, 16), np.uint8)
    a = np.zeros((12, 16), np.uint8)
    a[1:6, 1:7] = 1
    a[3, 3] = 0  # a hole
    b = np.zeros((12, 16), np.uint8)
    b[7:11, 2:5] = 1
    b[7:9, 10:14] = 1  # two parts
    classes[a == 1] = 15
    classes[b == 1] = 8
    classes[0, :] = 255  # void band
    return classes, [_instance(a, 15), _instance(b, 8)]


def test_round_trip_keeps_classes_objects_and_void_exactly(tmp_path):
    classes, instances = _scene()
    sample = Sample("a", (12, 16), semantic=classes, instances=tuple(instances), subset="val")
    writer = _write(tmp_path / "out", [sample])
    assert writer.report.exact == 2
    assert not writer.report.losses
    (back,) = list(voc.Reader(tmp_path / "out"))
    assert back.id == "a"
    assert back.subset == "val"
    np.testing.assert_array_equal(back.semantic, classes)
    assert [(i.class_id, i.id) for i in back.instances] == [(15, 1), (8, 2)]
    for got, want in zip(back.instances, instances, strict=True):
        assert got.mask == want.mask


def test_round_trip_of_real_voc_dataset(shared_data, tmp_path):
    src = voc.Reader(shared_data(*VOC1))
    original = {s.id: s for s in src}
    _write(tmp_path / "out", list(original.values()), src.labels)
    back = {s.id: s for s in voc.Reader(tmp_path / "out")}
    assert set(back) == set(original)
    for sid, s in original.items():
        assert back[sid].subset == s.subset
        assert back[sid].size == s.size
        if s.semantic is None:
            assert back[sid].semantic is None
        else:
            np.testing.assert_array_equal(back[sid].semantic, s.semantic)
        assert [(i.mask, i.class_id) for i in back[sid].instances] == [
            (i.mask, i.class_id) for i in s.instances
        ]
    assert (tmp_path / "out" / "JPEGImages" / "2007_000002.jpg").is_file()


def test_written_class_png_is_a_palette_png_with_the_voc_colours(tmp_path):
    classes, _ = _scene()
    _write(tmp_path / "out", [Sample("a", (12, 16), semantic=classes)])
    with Image.open(tmp_path / "out" / "SegmentationClass" / "a.png") as im:
        assert im.mode == "P"
        np.testing.assert_array_equal(np.array(im), classes)
        pal = np.array(im.getpalette()[: 256 * 3]).reshape(256, 3)
    assert tuple(pal[1]) == (128, 0, 0)
    assert tuple(pal[15]) == (192, 128, 128)
    assert tuple(pal[255]) == (224, 224, 192)


def test_writer_paints_instances_into_class_and_object_pngs(tmp_path):
    _, instances = _scene()
    _write(tmp_path / "out", [Sample("a", (12, 16), instances=tuple(instances))])
    cls = np.array(Image.open(tmp_path / "out" / "SegmentationClass" / "a.png"))
    obj = np.array(Image.open(tmp_path / "out" / "SegmentationObject" / "a.png"))
    for k, inst in enumerate(instances, start=1):
        m = rle.decode(inst.mask).astype(bool)
        assert (obj[m] == k).all()
        assert (cls[m] == inst.class_id).all()
    assert int((obj > 0).sum()) == sum(i.area for i in instances)


def test_subsets_listed_twice_are_read_once_and_written_back_to_each_list(tmp_path):
    root = _voc_root(tmp_path, {"x": np.zeros((2, 2)), "y": np.ones((2, 2))})
    sets = root / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    (sets / "trainval.txt").write_text("x\ny\n")
    (sets / "train.txt").write_text("x\n")
    (sets / "val.txt").write_text("y\n")
    samples = list(voc.Reader(root))
    assert [(s.id, s.subset, s.meta.get("subsets")) for s in samples] == [
        ("x", "train", ("train", "trainval")),
        ("y", "val", ("val", "trainval")),
    ]
    _write(tmp_path / "out", samples)
    out_sets = tmp_path / "out" / "ImageSets" / "Segmentation"
    assert (out_sets / "train.txt").read_text().split() == ["x"]
    assert (out_sets / "val.txt").read_text().split() == ["y"]
    assert (out_sets / "trainval.txt").read_text().split() == ["x", "y"]


def test_written_labelmap_txt_round_trips_names_colours_and_gaps(tmp_path):
    labels = LabelMap(
        (
            Label(0, ("background",), (0, 0, 0), isthing=False, role="background"),
            Label(1, ("road",), (128, 64, 128)),
            Label(3, ("car",), (0, 0, 142)),
            Label(255, ("void",), (224, 224, 192), isthing=False, role="ignore"),
        )
    )
    classes = np.array([[0, 1, 3, 255]], np.uint8)
    writer = _write(tmp_path / "out", [Sample("a", (1, 4), semantic=classes)], labels)
    assert not writer.report.losses
    text = (tmp_path / "out" / "labelmap.txt").read_text().splitlines()
    assert text[1:] == [
        "background:0,0,0::",
        "road:128,64,128::",
        "_unused_2:0,128,0::",  # voc_color(2)
        "car:0,0,142::",
        "void:224,224,192::",
    ]
    reader = voc.Reader(tmp_path / "out")
    assert [(lab.id, lab.name, lab.color, lab.role) for lab in reader.labels] == [
        (lab.id, lab.name, lab.color, lab.role) for lab in labels
    ]
    (back,) = list(reader)
    np.testing.assert_array_equal(back.semantic, classes)


# --------------------------------------------------------------------------- losses


def test_overlap_is_reported_on_the_instance_that_lost_pixels(tmp_path):
    a = np.zeros((6, 6), np.uint8)
    a[0:4, 0:4] = 1
    b = np.zeros((6, 6), np.uint8)
    b[2:6, 2:6] = 1
    sample = Sample("a", (6, 6), instances=(_instance(a, 1), _instance(b, 2)))
    writer = _write(tmp_path / "out", [sample])
    overlaps = [loss for loss in writer.report.losses if loss.what == "overlap"]
    assert [(loss.instance, loss.iou) for loss in overlaps] == [(0, 12 / 16)]
    assert writer.report.exact == 1
    obj = np.array(Image.open(tmp_path / "out" / "SegmentationObject" / "a.png"))
    assert (obj[2:4, 2:4] == 2).all()


def test_more_than_254_objects_is_a_reported_capacity_loss(tmp_path):
    h, w = 20, 20
    instances = []
    for k in range(260):
        m = np.zeros((h, w), np.uint8)
        m[k // w, k % w] = 1
        instances.append(_instance(m, 1))
    writer = _write(tmp_path / "out", [Sample("a", (h, w), instances=tuple(instances))])
    lost = [loss.instance for loss in writer.report.losses if loss.what == "class"]
    assert lost == list(range(254, 260))
    assert writer.report.exact == 254
    (back,) = list(voc.Reader(tmp_path / "out"))
    assert len(back.instances) == 254
    assert back.semantic is not None
    assert int((back.semantic == 1).sum()) == 260  # every pixel keeps its class


def test_class_ids_voc_cannot_hold_become_void_and_are_reported(tmp_path):
    labels = LabelMap.from_names(["background", "a"], background=0).with_label(
        Label(300, ("big",), (1, 2, 3))
    )
    classes = np.array([[0, 1, 300, 300]], np.int32)
    writer = _write(tmp_path / "out", [Sample("a", (1, 4), semantic=classes)], labels)
    sample_losses = [loss for loss in writer.report.losses if loss.sample == "a"]
    assert [loss.what for loss in sample_losses] == ["class"]
    assert "id 300: 2 px" in sample_losses[0].detail
    assert any(loss.sample == "labelmap.txt" for loss in writer.report.losses)
    png = np.array(Image.open(tmp_path / "out" / "SegmentationClass" / "a.png"))
    assert png.tolist() == [[0, 1, 255, 255]]


def test_crowd_and_score_are_reported_per_instance(tmp_path):
    _, (a, b) = _scene()
    a = Instance(a.mask, a.class_id, iscrowd=True)
    b = Instance(b.mask, b.class_id, score=0.5)
    writer = _write(tmp_path / "out", [Sample("a", (12, 16), instances=(a, b))])
    assert [(loss.instance, loss.what) for loss in writer.report.losses] == [
        (0, "crowd"),
        (1, "score"),
    ]


def test_instance_of_the_wrong_size_fails_that_instance_only(tmp_path):
    _, (a, b) = _scene()
    bad = Instance(rle.encode(np.ones((3, 3), np.uint8)), 1)
    writer = _write(tmp_path / "out", [Sample("a", (12, 16), instances=(a, bad, b))])
    assert [p.record for p in writer.report.problems] == ["a#1"]
    (back,) = list(voc.Reader(tmp_path / "out"))
    assert [i.mask for i in back.instances] == [a.mask, b.mask]


# --------------------------------------------------------------------------- bad input


def test_object_over_several_classes_is_reported_with_file_and_object(tmp_path):
    classes = np.array([[1, 1, 2], [0, 0, 0]])
    objects = np.array([[1, 1, 1], [0, 0, 0]])
    root = _voc_root(tmp_path, {"s": classes}, objects={"s": objects})
    reader = voc.Reader(root)
    (sample,) = list(reader)
    assert [i.class_id for i in sample.instances] == [1]  # the majority
    (problem,) = reader.report.problems
    assert problem.record == "s#object1"
    assert problem.path.endswith("SegmentationObject/s.png")
    assert "1: 2 px, 2: 1 px" in problem.message
    with pytest.raises(FormatError, match=r"s#object1.*several classes"):
        list(voc.Reader(root, strict=True))


def test_void_pixels_do_not_vote_for_an_objects_class(tmp_path):
    classes = np.array([[255, 255, 255, 3]])
    objects = np.array([[1, 1, 1, 1]])
    root = _voc_root(tmp_path, {"s": classes}, objects={"s": objects})
    reader = voc.Reader(root)
    (sample,) = list(reader)
    assert [i.class_id for i in sample.instances] == [3]
    assert not reader.report.problems


def test_unknown_rgb_colour_is_counted_and_becomes_void(tmp_path):
    root = tmp_path / "voc"
    (root / "SegmentationClass").mkdir(parents=True)
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[0, 0] = (128, 0, 0)
    rgb[1, :] = (7, 7, 7)
    Image.fromarray(rgb).save(root / "SegmentationClass" / "s.png")
    reader = voc.Reader(root)
    (sample,) = list(reader)
    assert reader.report.unknown_colors == {(7, 7, 7): 3}
    assert sample.semantic is not None
    assert sample.semantic.tolist() == [[1, 0, 0], [255, 255, 255]]


def test_corrupt_mask_in_the_middle_is_reported_and_the_rest_read(tmp_path):
    root = _voc_root(tmp_path, {"a": np.zeros((2, 2)), "b": np.ones((2, 2)), "c": np.ones((2, 2))})
    good = (root / "SegmentationClass" / "b.png").read_bytes()
    (root / "SegmentationClass" / "b.png").write_bytes(good[: len(good) // 2])
    reader = voc.Reader(root)
    assert [s.id for s in reader] == ["a", "c"]
    (problem,) = reader.report.problems
    assert problem.record == "b"
    assert "b.png" in problem.path
    with pytest.raises(FormatError, match=r"b\.png") as err:
        list(voc.Reader(root, strict=True))
    assert err.value.record == "b"


def test_listed_id_without_files_is_reported(tmp_path):
    root = _voc_root(tmp_path, {"a": np.zeros((2, 2))})
    sets = root / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    (sets / "train.txt").write_text("a\nghost\n")
    reader = voc.Reader(root)
    assert [s.id for s in reader] == ["a"]
    assert [p.record for p in reader.report.problems] == ["ghost"]
    assert "neither" in reader.report.problems[0].message


def test_masks_in_no_list_are_reported_not_skipped_silently(tmp_path):
    root = _voc_root(tmp_path, {"a": np.zeros((2, 2)), "b": np.zeros((2, 2))})
    sets = root / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    (sets / "train.txt").write_text("a\n")
    reader = voc.Reader(root)
    assert [s.id for s in reader] == ["a"]
    (problem,) = reader.report.problems
    assert "1 masks are in no ImageSets/Segmentation list" in problem.message
    assert "'b'" in problem.message


def test_bad_labelmap_line_names_file_and_line(tmp_path):
    root = _voc_root(tmp_path, {"a": np.zeros((2, 2))})
    (root / "labelmap.txt").write_text("background:0,0,0::\ncat:64,0::\n")
    with pytest.raises(FormatError, match=r"labelmap\.txt: line 2: colour"):
        voc.Reader(root)


# --------------------------------------------------------------------------- detect


def test_detect_knows_voc_folders_and_our_output(shared_data, tmp_path):
    assert voc.detect(shared_data(*VOC1)).confidence == 3
    assert voc.detect(shared_data("bubbliiiing-unet-pytorch", "datasets")).confidence == 3
    classes, _ = _scene()
    _write(tmp_path / "out", [Sample("a", (12, 16), semantic=classes)])
    assert voc.detect(tmp_path / "out").confidence == 3


def test_detect_rejects_other_formats(shared_data):
    kaggle = shared_data("datumaro", "tests", "assets", "kaggle_dataset", "image_mask")
    assert voc.detect(kaggle).confidence == 0
    assert voc.detect(shared_data("lopuhin-dsbowl2018-fixes")).confidence == 0
    assert voc.detect(kaggle / "masks" / "001.png").confidence == 0


def test_sample_id_that_would_leave_the_folder_is_refused(tmp_path):
    classes, _ = _scene()
    writer = _write(tmp_path / "out", [Sample("../evil", (12, 16), semantic=classes)])
    assert [p.record for p in writer.report.problems] == ["../evil"]
    assert not (tmp_path / "evil.png").exists()
    assert list((tmp_path / "out" / "ImageSets" / "Segmentation").iterdir()) == []


def test_labeled_empty_images_become_background_and_unlabeled_ones_stay_unlabeled(tmp_path):
    """COCO lists an image with no objects: its VOC class map is all background. A VOC
    test image (no masks at all) stays without masks through a round trip."""
    from masklab.core.labels import LabelMap
    from masklab.formats import Sample, voc

    labels = LabelMap.from_names(["background", "cat"], background=0)
    with voc.Writer(tmp_path / "a", labels=labels) as w:
        w.write(Sample("empty", (3, 4)))
        w.write(Sample("unlabeled", (3, 4), labeled=False))
    assert (tmp_path / "a" / "SegmentationClass" / "empty.png").is_file()
    assert not (tmp_path / "a" / "SegmentationClass" / "unlabeled.png").exists()
    back = {s.id: s for s in voc.Reader(tmp_path / "a")}
    assert back["empty"].semantic.tolist() == [[0] * 4] * 3
    assert back["empty"].labeled
