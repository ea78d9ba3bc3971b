"""VOC, YOLO-seg, CamVid, ADE20K, Mapillary Vistas and TFRecord readers (and the last
four's writers) split for ``convert(..., workers=N)``: every
output byte and the whole report equal one process's, whatever N; bad records of a source
are reported at their place in the same order (those found while planning, while decoding,
and after the last sample); strict mode leaves nothing behind.

Sources are written by masklab's writers from synthetic samples, then broken by hand (a
mask of the wrong size, an unreadable image, a bad label row, a file no list names); the
oracle is the one-process conversion of the same source, and the bad records expected are
written out here."""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.formats.workers import N, coco_with_a_bad_polygon, same_whatever_the_workers
from tests.formats.workers import records as _records
from tests.formats.workers import replace_png as _png
from tests.formats.workers import written as _write

from masklab import formats
from masklab.errors import FormatError
from masklab.formats import Reader, ade20k, camvid, mapillary, tfrecord, voc, yolo_seg
from masklab.formats._protobuf import bytes_feature, encode_example, parse_example


def _same_whatever_the_workers(src: Path, out: Path, to: str, counts=(1, 2), **options) -> dict:
    """Equal files and reports for each worker count, a file per sample at least (one
    file of records for TFRecord)."""
    files, report = same_whatever_the_workers(src, out, to, counts, **options)
    if to == "tfrecord":  # one file of records
        assert "default.tfrecord" in files
        assert report["samples"] > 0
    else:
        assert len(files) >= report["samples"] > 0  # at least a file per sample written
    return report


# --------------------------------------------------------------------------- sources


@pytest.fixture(scope="module")
def voc_src(tmp_path_factory) -> Path:
    """VOC: img_005's class PNG is 40x64 (its image is 48x64); img_011's object 1 lies on
    two classes; img_017's class PNG is not a PNG; extra.png is in no ImageSets list."""
    root = _write(voc.Writer, tmp_path_factory.mktemp("voc") / "src")
    _png(root / "SegmentationClass" / "img_005.png", np.zeros((40, 64), np.uint8))
    objects = np.zeros((48, 64), np.uint8)
    objects[:4, :8] = 1
    classes = np.zeros((48, 64), np.uint8)
    classes[:4, :4] = 1
    classes[:4, 4:8] = 2
    _png(root / "SegmentationObject" / "img_011.png", objects)
    _png(root / "SegmentationClass" / "img_011.png", classes)
    (root / "SegmentationClass" / "img_017.png").write_bytes(b"not a png")
    Image.fromarray(np.zeros((48, 64), np.uint8)).save(root / "SegmentationClass" / "extra.png")
    return root


@pytest.fixture(scope="module")
def yolo_src(tmp_path_factory) -> Path:
    """YOLO-seg: img_003's second row has x = 3.5 (the sample reads without it); img_009's
    image is not an image (skipped); labels/train/zz_orphan.txt has no image (reported
    when the folder is listed, after its images)."""
    root = _write(yolo_seg.Writer, tmp_path_factory.mktemp("yolo") / "src")
    txt = root / "labels" / "train" / "img_003.txt"
    lines = txt.read_text().splitlines()
    lines[1] = "1 0.1 0.1 0.2 0.2 3.5 0.1"
    txt.write_text("\n".join(lines) + "\n")
    (root / "images" / "train" / "img_009.png").write_bytes(b"not an image")
    (root / "labels" / "train" / "zz_orphan.txt").write_text("1 0.1 0.1 0.2 0.2 0.3 0.1\n")
    return root


@pytest.fixture(scope="module")
def camvid_src(tmp_path_factory) -> Path:
    """CamVid (SegNet layout, colour labels): train.txt's second line has three paths
    (reported while listing, before every sample); img_005's label is 40x64; img_013's
    label has a colour no class has (the sample reads, its pixels void)."""
    root = _write(camvid.Writer, tmp_path_factory.mktemp("camvid") / "src")
    lst = root / "train.txt"
    first, *rest = lst.read_text().splitlines()
    lst.write_text("\n".join([first, "/a.png /b.png /c.png", *rest]) + "\n")
    _png(root / "trainannot" / "img_005.png", np.zeros((40, 64, 3), np.uint8))
    rgb = np.asarray(Image.open(root / "trainannot" / "img_013.png")).copy()
    rgb[:2, :2] = (1, 2, 3)
    _png(root / "trainannot" / "img_013.png", rgb)
    return root


@pytest.fixture(scope="module")
def ade_src(tmp_path_factory) -> Path:
    """ADE20K scene parsing: img_005's annotation is 40x64 (its image 48x64); img_012's
    holds class 200, which objectInfo150.txt does not name (the sample reads)."""
    root = _write(ade20k.Writer, tmp_path_factory.mktemp("ade") / "src")
    ann = root / "annotations" / "training"
    _png(ann / "img_005.png", np.zeros((40, 64), np.uint8))
    classes = np.asarray(Image.open(ann / "img_012.png")).copy()
    classes[:2, :2] = 200
    _png(ann / "img_012.png", classes)
    return root


@pytest.fixture(scope="module")
def ade_full_src(tmp_path_factory) -> Path:
    """ADE20K full: img_007's seg PNG is grayscale (it must be RGB); img_016's object B=1
    also covers pixels of another class (the sample reads)."""
    root = _write(ade20k.Writer, tmp_path_factory.mktemp("adefull") / "src", variant="full")
    _png(root / "training" / "img_007_seg.png", np.zeros((48, 64), np.uint8))
    rgb = np.asarray(Image.open(root / "training" / "img_016_seg.png")).copy()
    rgb[0, :8] = (0, 2, 1)  # class R / 10 * 256 + G = 2, object B = 1
    rgb[1, :8] = (0, 1, 1)  # class 1, object 1
    _png(root / "training" / "img_016_seg.png", rgb)
    return root


@pytest.fixture(scope="module")
def vistas_src(tmp_path_factory) -> Path:
    """Mapillary Vistas v2.0: img_005's instance PNG is 40x64; img_010's labels PNG says
    class 3 where its instance PNG says otherwise (the sample reads)."""
    root = _write(mapillary.Writer, tmp_path_factory.mktemp("vistas") / "src")
    ann = root / "training" / "v2.0"
    _png(ann / "instances" / "img_005.png", np.zeros((40, 64), np.uint16))
    labels_png = ann / "labels" / "img_010.png"
    with Image.open(labels_png) as im:
        classes = np.asarray(im).copy()
        palette = im.getpalette()
    classes[:, :2] = 3
    labels_png.unlink()
    out = Image.fromarray(classes, mode="P")
    out.putpalette(palette)
    out.save(labels_png)
    return root


@pytest.fixture(scope="module")
def tfrecord_src(tmp_path_factory) -> Path:
    """TFRecord: record 5's data CRC fails (reported while planning); record 12's first
    mask PNG is 40x64 (its object is reported when decoding; the sample reads)."""
    root = _write(tfrecord.Writer, tmp_path_factory.mktemp("tfrecord") / "src")
    file = root / "default.tfrecord"
    records = list(tfrecord.read_records(file))
    example = parse_example(records[12])
    masks = list(example[tfrecord.MASK].bytes_list)
    buf = io.BytesIO()
    Image.fromarray(np.zeros((40, 64), np.uint8)).save(buf, format="PNG")
    masks[0] = buf.getvalue()
    example[tfrecord.MASK] = bytes_feature(masks)
    framed = [tfrecord.frame(r) for r in records]
    framed[12] = tfrecord.frame(encode_example(example))
    broken = bytearray(framed[5])
    broken[20] ^= 0xFF  # inside the data: its CRC no longer matches
    framed[5] = bytes(broken)
    file.write_bytes(b"".join(framed))
    return root


@pytest.fixture(scope="module")
def coco_src(tmp_path_factory) -> Path:
    """COCO instances of the synthetic samples; image 18's first polygon has 2 points."""
    return coco_with_a_bad_polygon(tmp_path_factory.mktemp("coco"))


# --------------------------------------------------------------------------- readers


def test_voc_reader_splits_and_reports_in_order(voc_src, tmp_path):
    report = _same_whatever_the_workers(voc_src, tmp_path / "coco", "coco")
    assert _records(report) == ["img_005", "img_011#object1", "img_017", None]
    assert "the class mask is [40, 64]" in report["problems"][0]["message"]
    assert "several classes" in report["problems"][1]["message"]
    assert "1 masks are in no ImageSets" in report["problems"][3]["message"]
    assert report["samples"] == N - 2
    report = _same_whatever_the_workers(voc_src, tmp_path / "voc", "voc", counts=(1, 3))
    assert _records(report) == ["img_005", "img_011#object1", "img_017", None]


def test_yolo_seg_reader_splits_and_reports_in_order(yolo_src, tmp_path):
    report = _same_whatever_the_workers(yolo_src, tmp_path, "coco")
    assert _records(report) == [2, "img_009", None]
    assert report["problems"][0]["path"].endswith("img_003.txt")
    assert "normalised" in report["problems"][0]["message"]
    assert report["problems"][2]["path"].endswith("zz_orphan.txt")
    assert report["samples"] == N - 1


def test_camvid_reader_splits_and_reports_in_order(camvid_src, tmp_path):
    report = _same_whatever_the_workers(camvid_src, tmp_path, "voc")
    assert _records(report) == [2, "img_005", "img_013"]
    assert "expected 'image [mask]'" in report["problems"][0]["message"]
    assert "(1, 2, 3)" in report["problems"][2]["message"]
    assert report["unknown_colors"]
    assert report["samples"] == N - 1


def test_ade20k_reader_splits_and_reports_in_order(ade_src, tmp_path):
    report = _same_whatever_the_workers(ade_src, tmp_path, "voc", counts=(1, 3))
    assert _records(report) == ["img_005", "img_012"]
    assert "200" in report["problems"][1]["message"]
    assert report["samples"] == N - 1


def test_ade20k_full_reader_splits_and_reports_in_order(ade_full_src, tmp_path):
    report = _same_whatever_the_workers(ade_full_src, tmp_path, "coco")
    assert _records(report) == ["img_007", "img_016"]
    assert "RGB" in report["problems"][0]["message"]
    assert "covers 8 px of other classes" in report["problems"][1]["message"]
    assert report["samples"] == N - 1


def test_mapillary_reader_splits_and_reports_in_order(vistas_src, tmp_path):
    report = _same_whatever_the_workers(vistas_src, tmp_path, "coco")
    assert _records(report) == ["img_005", "img_010"]
    assert "differs from the label PNG" in report["problems"][0]["message"]
    assert "another label in the instance PNG" in report["problems"][1]["message"]
    assert report["samples"] == N - 1


def test_tfrecord_reader_splits_and_reports_in_order(tfrecord_src, tmp_path):
    report = _same_whatever_the_workers(tfrecord_src, tmp_path, "coco", counts=(1, 3))
    assert _records(report) == [5, 12]
    assert "CRC of the record data" in report["problems"][0]["message"]
    assert "object 0: the mask is 64x40" in report["problems"][1]["message"]
    assert report["samples"] == N - 1


@pytest.mark.parametrize(
    "fixture",
    ["voc_src", "yolo_src", "camvid_src", "ade_src", "ade_full_src", "vistas_src", "tfrecord_src"],
)
def test_a_worker_copy_decodes_the_plan_into_the_iteration(request, fixture):
    """The oracle is iteration (the one-process path): the pickled worker copy decodes the
    plan into the same samples (None where iteration skips one) and reports the rest."""
    reader: Reader = formats.open_reader(request.getfixturevalue(fixture))
    samples = list(reader)
    planner: Reader = formats.open_reader(request.getfixturevalue(fixture))
    items = list(planner.plan())
    twin = pickle.loads(pickle.dumps(planner.for_worker()))
    assert twin.report.problems == []
    decoded = [s for s in twin.decode(items) if s is not None]
    assert [s.id for s in decoded] == [s.id for s in samples]
    for ours, want in zip(decoded, samples, strict=True):
        assert [i.mask for i in ours.instances] == [i.mask for i in want.instances]
        assert (ours.semantic is None) == (want.semantic is None)
        if want.semantic is not None:
            assert np.array_equal(ours.semantic, want.semantic)
    both = [*planner.report.problems, *twin.report.problems]
    assert sorted(map(str, (p.record for p in both))) == sorted(
        map(str, (p.record for p in reader.report.problems))
    )


# --------------------------------------------------------------------------- writers


@pytest.mark.parametrize(
    ("to", "options", "counts"),
    [
        ("camvid", {}, (1, 2, 3)),
        ("camvid", {"layout": "camvid"}, (1, 2)),
        ("camvid", {"colors": False}, (1, 2)),
        ("ade20k", {}, (1, 2, 3)),
        ("ade20k", {"variant": "full"}, (1, 2)),
        ("mapillary", {}, (1, 2, 3)),
        ("mapillary", {"version": "v1.2"}, (1, 2)),
        ("tfrecord", {}, (1, 2, 3)),
        ("tfrecord", {"mask_type": "numerical"}, (1, 2)),
    ],
)
def test_writers_write_the_bytes_and_report_of_one_process(coco_src, tmp_path, to, options, counts):
    assert formats.get(to).Writer.parallel
    report = _same_whatever_the_workers(coco_src, tmp_path, to, counts, **options)
    assert report["samples"] == N
    assert _records(report) == ["annotation " + str(_bad_annotation(coco_src))]
    if to == "tfrecord":  # holds overlaps and crowd flags: every kept object is exact
        assert report["exact"] == report["instances"] > 0
    else:
        assert report["losses"]  # overlaps, crowd regions... reported in the workers alike


def _bad_annotation(coco_src: Path) -> int:
    doc = json.loads(next(coco_src.glob("annotations/*.json")).read_text())
    return next(a["id"] for a in doc["annotations"] if a["segmentation"] == [[0, 0, 1, 1]])


def test_camvid_writer_adds_void_once_and_reads_back(coco_src, tmp_path):
    """COCO has no background class: the uncovered pixels need the Void line the writer
    adds; with two workers it is added once, last, and the labels read back."""
    formats.convert(coco_src, tmp_path / "two", to="camvid", workers=2)
    lines = (tmp_path / "two" / "label_colors.txt").read_text().splitlines()
    assert lines[-1] == "0 0 0 Void"
    assert sum(line.endswith(" Void") for line in lines) == 1
    samples = list(camvid.Reader(tmp_path / "two"))
    assert len(samples) == N
    void = len(lines) - 1
    assert all(s.semantic is not None and (s.semantic == void).any() for s in samples)


def test_mapillary_writer_adds_the_void_label_from_the_workers(coco_src, tmp_path):
    """COCO has no background class: the pixels no object covers are the Void label, which
    the config gets at the end when a worker's sample used it."""
    formats.convert(coco_src, tmp_path / "two", to="mapillary", workers=2)
    config = json.loads((tmp_path / "two" / "config_v2.0.json").read_text())
    assert [e["name"] for e in config["labels"]] == ["car", "person", "road", "void--unlabeled"]


# --------------------------------------------------------------------------- strict


def test_strict_voc_raises_the_first_bad_record_and_leaves_nothing(voc_src, tmp_path):
    with pytest.raises(FormatError, match="img_005"):
        formats.convert(voc_src, tmp_path / "out", to="coco", strict=True, workers=2)
    assert list(tmp_path.iterdir()) == []


def test_strict_yolo_seg_raises_the_first_bad_record_and_leaves_nothing(yolo_src, tmp_path):
    with pytest.raises(FormatError, match="img_003"):
        formats.convert(yolo_src, tmp_path / "out", to="voc", strict=True, workers=2)
    assert list(tmp_path.iterdir()) == []
