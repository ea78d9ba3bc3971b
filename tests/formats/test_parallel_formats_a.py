"""png-masks, Cityscapes, KITTI and COCO panoptic split for ``convert(..., workers=N)``:
every output byte and the whole report equal one process's, whatever N; bad records of a
source are reported at their place in the same order; strict mode leaves nothing behind.

Sources are written by masklab's writers from synthetic samples, then broken by hand (a
mask of the wrong size, an unreadable PNG, a json record taken out); the oracle is the
one-process conversion of the same source, and the bad records expected are written out
here."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from tests.formats.workers import N, coco_with_a_bad_polygon, same_whatever_the_workers
from tests.formats.workers import records as _records
from tests.formats.workers import replace_png as _png
from tests.formats.workers import written as _write

from masklab import formats
from masklab.errors import FormatError
from masklab.formats import Reader, cityscapes, coco_panoptic, kitti, png_masks


def _same_whatever_the_workers(src: Path, out: Path, to: str, counts=(1, 2), **options) -> dict:
    """Equal files and reports for each worker count, a file per sample at least."""
    files, report = same_whatever_the_workers(src, out, to, counts, **options)
    assert len(files) >= report["samples"] > 0  # at least a file per sample written
    return report


# --------------------------------------------------------------------------- sources


@pytest.fixture(scope="module")
def png_src(tmp_path_factory) -> Path:
    """png-masks (index): img_005's mask is 40x64 (its image is 48x64), img_019's mask is
    not a PNG."""
    root = _write(png_masks.Writer, tmp_path_factory.mktemp("png") / "src")
    _png(root / "masks" / "img_005.png", np.zeros((40, 64), np.uint8))
    (root / "masks" / "img_019.png").write_bytes(b"not a png")
    return root


@pytest.fixture(scope="module")
def bitmaps_src(tmp_path_factory) -> Path:
    """png-masks (instance-bitmaps): img_020's second mask is 48x60."""
    root = tmp_path_factory.mktemp("bitmaps") / "src"
    _write(png_masks.Writer, root, layout="instance-bitmaps")
    _png(root / "img_020" / "masks" / "0001.png", np.zeros((48, 60), np.uint8))
    return root


@pytest.fixture(scope="module")
def cityscapes_src(tmp_path_factory) -> Path:
    """img_005's instanceIds is 40x64, img_019's labelIds is an RGB image."""
    root = _write(cityscapes.Writer, tmp_path_factory.mktemp("cs") / "src")
    gt = root / "gtFine" / "train" / "img"
    _png(gt / "img_005_gtFine_instanceIds.png", np.zeros((40, 64), np.uint16))
    _png(gt / "img_019_gtFine_labelIds.png", np.zeros((48, 64, 3), np.uint8))
    return root


@pytest.fixture(scope="module")
def kitti_src(tmp_path_factory) -> Path:
    """img_007's semantic PNG is 48x60 (its instance PNG 48x64)."""
    root = _write(kitti.Writer, tmp_path_factory.mktemp("kitti") / "src")
    _png(root / "training" / "semantic" / "img_007.png", np.zeros((48, 60), np.uint8))
    return root


@pytest.fixture(scope="module")
def panoptic_src(tmp_path_factory) -> Path:
    """COCO panoptic with a bad record of each kind: image 4 has no annotation record
    (planned), image 10 describes a segment its PNG lacks and image 20's PNG is 40x64
    (decoded), image 999 is not in the images (after the last image)."""
    root = _write(coco_panoptic.Writer, tmp_path_factory.mktemp("panoptic") / "src")
    doc_path = root / "annotations" / "panoptic_default.json"
    doc = json.loads(doc_path.read_text())
    anns = {a["image_id"]: a for a in doc["annotations"]}
    anns[10]["segments_info"].append({"id": 99, "category_id": 1, "iscrowd": 0})
    _png(
        root / "annotations" / "panoptic_default" / anns[20]["file_name"],
        np.zeros((40, 64, 3), np.uint8),
    )
    doc["annotations"] = [a for a in doc["annotations"] if a["image_id"] != 4]
    doc["annotations"].append({**anns[1], "image_id": 999})
    doc_path.write_text(json.dumps(doc))
    return root


@pytest.fixture(scope="module")
def coco_src(tmp_path_factory) -> Path:
    """COCO instances of the synthetic samples; image 18's first polygon has 2 points."""
    return coco_with_a_bad_polygon(tmp_path_factory.mktemp("coco"))


# --------------------------------------------------------------------------- readers


def test_png_masks_reader_splits_and_reports_in_order(png_src, tmp_path):
    report = _same_whatever_the_workers(png_src, tmp_path / "voc", "voc")
    assert _records(report) == ["img_005", "img_019"]
    assert "[40, 64] (h, w)" in report["problems"][0]["message"]
    assert report["samples"] == N - 2
    report = _same_whatever_the_workers(png_src, tmp_path / "coco", "coco", counts=(1, 3))
    assert _records(report) == ["img_005", "img_019"]


def test_png_masks_bitmaps_reader_splits(bitmaps_src, tmp_path):
    report = _same_whatever_the_workers(bitmaps_src, tmp_path, "coco")
    assert _records(report) == ["img_020/0001.png"]
    assert report["samples"] == N  # the sample reads without its bad mask


def test_cityscapes_reader_splits_and_reports_in_order(cityscapes_src, tmp_path):
    report = _same_whatever_the_workers(cityscapes_src, tmp_path, "voc")
    assert _records(report) == ["img_005", "img_019"]
    assert "differs from the class map" in report["problems"][0]["message"]
    assert "3-channel" in report["problems"][1]["message"]
    assert report["samples"] == N - 2


def test_kitti_reader_splits_and_reports_in_order(kitti_src, tmp_path):
    report = _same_whatever_the_workers(kitti_src, tmp_path, "voc")
    assert _records(report) == ["img_007"]
    assert report["samples"] == N - 1


def test_coco_panoptic_reader_reports_planned_decoded_and_trailing_problems_in_order(
    panoptic_src, tmp_path
):
    report = _same_whatever_the_workers(panoptic_src, tmp_path, "voc")
    assert _records(report) == [
        "image 4",  # planned in the parent: no annotation record
        "image 10 segment 99",  # decoded in a worker: not in the PNG
        "image 20",  # decoded in a worker: the PNG's size
        "annotation of image 999",  # after the last image
    ]
    assert report["samples"] == N


@pytest.mark.parametrize(
    "fixture", ["png_src", "bitmaps_src", "cityscapes_src", "kitti_src", "panoptic_src"]
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
    assert sorted(p.record for p in both) == sorted(p.record for p in reader.report.problems)


# --------------------------------------------------------------------------- writers


@pytest.mark.parametrize(
    ("to", "options", "counts"),
    [
        ("png-masks", {}, (1, 2, 3)),
        ("png-masks", {"layout": "instance-bitmaps"}, (1, 2)),
        ("png-masks", {"layout": "color"}, (1, 2)),
        ("cityscapes", {"train_ids": True}, (1, 2)),
        ("kitti", {}, (1, 2)),
        ("coco-panoptic", {}, (1, 2)),
    ],
)
def test_writers_write_the_bytes_and_report_of_one_process(coco_src, tmp_path, to, options, counts):
    assert formats.get(to).Writer.parallel
    report = _same_whatever_the_workers(coco_src, tmp_path, to, counts, **options)
    assert report["samples"] == N
    assert _records(report) == ["annotation " + str(_bad_annotation(coco_src))]
    assert report["losses"]  # overlaps, crowd regions... reported in the workers alike


def _bad_annotation(coco_src: Path) -> int:
    doc = json.loads(next(coco_src.glob("annotations/*.json")).read_text())
    return next(a["id"] for a in doc["annotations"] if a["segmentation"] == [[0, 0, 1, 1]])


def test_cityscapes_writer_reads_back_as_one_process_wrote_it(coco_src, tmp_path):
    """The split writer's files read back to the samples a one-process write gives."""
    formats.convert(coco_src, tmp_path / "two", to="cityscapes", workers=2)
    samples = list(cityscapes.Reader(tmp_path / "two"))
    assert len(samples) == N
    cars = [i for s in samples for i in s.instances if i.class_id == 26]
    assert cars
    assert all(i.id is not None and i.id // 1000 == 26 for i in cars)


# --------------------------------------------------------------------------- strict


def test_strict_raises_the_first_bad_record_and_leaves_nothing(png_src, tmp_path):
    with pytest.raises(FormatError, match="img_005"):
        formats.convert(png_src, tmp_path / "out", to="voc", strict=True, workers=2)
    assert list(tmp_path.iterdir()) == []


def test_strict_panoptic_stops_at_the_planned_problem(panoptic_src, tmp_path):
    with pytest.raises(FormatError, match="image 4"):
        formats.convert(panoptic_src, tmp_path / "out", to="coco-panoptic", strict=True, workers=3)
    assert list(tmp_path.iterdir()) == []
