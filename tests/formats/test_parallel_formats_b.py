"""``convert(..., workers=N)`` from and to sa1b, labelme, rle-csv and npz: every output
byte and the whole report equal one process's, bad records are reported in the same order,
strict mode leaves nothing behind (the split readers and writers of these formats)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as cocomask
from tests.files import tree
from tests.formats import synthetic
from tests.formats.workers import records as _records
from tests.formats.workers import same_whatever_the_workers as _same_with_workers

from masklab import formats, rle
from masklab.core.instances import Instance
from masklab.errors import FormatError
from masklab.formats import Sample

N = 24  # samples: with 16 a batch, two batches, so two workers both get some
SIZE = (48, 64)


# --------------------------------------------------------------------------- sources


def _sa1b(root: Path) -> Path:
    """N SA-1B files (masks encoded by pycocotools); img_005.json is not JSON; in
    img_017.json annotation 2's RLE has the wrong size, annotation 3 a wrong area."""
    folder = root / "sa1b"
    for s in synthetic.samples(folder, N):
        anns = []
        for k, inst in enumerate(s.instances):
            enc = cocomask.encode(np.asfortranarray(rle.decode(inst.mask)))
            anns.append(
                {
                    "id": k,
                    "segmentation": {"size": enc["size"], "counts": enc["counts"].decode()},
                    "area": int(cocomask.area(enc)),
                    "bbox": cocomask.toBbox(enc).tolist(),
                    "predicted_iou": 0.5 + k / 100,
                    "stability_score": 0.9,
                    "point_coords": [[1.0, 2.0]],
                    "crop_box": [0, 0, SIZE[1], SIZE[0]],
                }
            )
        if s.id == "img_017":
            one = cocomask.encode(np.asfortranarray(np.ones((2, 2), np.uint8)))
            anns[2]["segmentation"] = {"size": [2, 2], "counts": one["counts"].decode()}
            anns[3]["area"] += 1
        info = {"image_id": int(s.id[4:]), "height": SIZE[0], "width": SIZE[1]}
        doc = {"image": {**info, "file_name": f"{s.id}.png"}, "annotations": anns}
        (folder / f"{s.id}.json").write_text(json.dumps(doc))
    (folder / "img_005.json").write_text('{"image": {"image_id": 5, "heig')
    return folder


def _written(root: Path, to: str, **options) -> Path:
    """The synthetic samples written by masklab's ``to`` writer."""
    data = synthetic.samples(root / "images", N)
    with formats.get(to).Writer(root / to, labels=synthetic.LABELS, **options) as w:
        for s in data:
            w.write(s)
    return root / to


@pytest.fixture(scope="module")
def coco_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A COCO dataset of N images with a 2-point polygon on image 17 and an annotation
    of an image that is not there (as in test_parallel_convert)."""
    src = _written(tmp_path_factory.mktemp("coco"), "coco")
    ann_file = next(src.glob("annotations/*.json"))
    doc = json.loads(ann_file.read_text())
    bad = next(a for a in doc["annotations"] if a["image_id"] == 18)
    bad["segmentation"] = [[0, 0, 1, 1]]
    doc["annotations"].append({**bad, "id": 10_000, "image_id": 999})
    ann_file.write_text(json.dumps(doc))
    return src


# --------------------------------------------------------------------------- readers


def test_sa1b_reads_the_same_with_one_two_and_three_workers(tmp_path):
    files, report = _same_with_workers(_sa1b(tmp_path), tmp_path, "voc", counts=(1, 2, 3))
    assert report["samples"] == N - 1  # the file that is not JSON is left out
    assert _records(report) == ["img_005", "annotation 2", "annotation 3"]
    assert "size [2, 2]" in report["problems"][1]["message"]
    assert "area" in report["problems"][2]["message"]
    assert "SegmentationClass/img_017.png" in files
    assert "SegmentationClass/img_005.png" not in files


def test_sa1b_strict_error_in_a_worker_leaves_nothing(tmp_path):
    src = _sa1b(tmp_path)
    (src / "img_005.json").unlink()  # the first problem is now decoded in a worker
    with pytest.raises(FormatError, match="annotation 2"):
        formats.convert(src, tmp_path / "out", to="voc", strict=True, workers=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sa1b"]


def test_labelme_reads_the_same_with_two_workers(tmp_path):
    src = _written(tmp_path, "labelme")
    doc = json.loads((src / "img_005.json").read_text())
    k = len(doc["shapes"])
    doc["shapes"].append({"label": "cell", "points": [[0, 0], [1, 1]], "shape_type": "polygon"})
    doc["shapes"].append({"label": "cell", "points": [[0, 0], [9, 9]], "shape_type": "line"})
    (src / "img_005.json").write_text(json.dumps(doc))
    (src / "img_020.json").write_text("[1, 2")  # in the second batch
    files, report = _same_with_workers(src, tmp_path, "coco")
    assert report["samples"] == N - 1
    assert _records(report) == [f"img_005#shape{k}", f"img_005#shape{k + 1}", "img_020"]
    assert "more than 2 points" in report["problems"][0]["message"]
    coco = json.loads(next((tmp_path / "w1").glob("annotations/*.json")).read_text())
    assert len(coco["images"]) == N - 1
    assert len(files) == N  # the N - 1 images and one json


def _csv_line(csv_path: Path, image_id: str) -> int:
    """The 1-based line of ``image_id``'s first row (header on line 1)."""
    with open(csv_path, newline="") as f:
        rows = list(csv.reader(f))
    return next(i for i, row in enumerate(rows, start=1) if row[0] == image_id)


def test_rle_csv_reads_the_same_with_two_workers(tmp_path):
    src = _written(tmp_path, "rle-csv")
    csv_path = src / "train.csv"
    lines = csv_path.read_text().splitlines()
    bad = _csv_line(csv_path, "img_018")
    cells = lines[bad - 1].split(",")
    cells[1] = "5 3 2"  # an odd number of values
    lines[bad - 1] = ",".join(cells)
    lines.insert(10, ",5 3,1,48,64")  # a row without an image id, line 11
    csv_path.write_text("\n".join(lines) + "\n")
    files, report = _same_with_workers(src, tmp_path, "voc")
    assert report["samples"] == N  # img_018 keeps its other instances
    assert _records(report) == [11, bad + 1]  # the empty id is complete after its row
    assert "odd number" in report["problems"][1]["message"]
    assert "SegmentationObject/img_018.png" in files


def test_npz_reads_the_same_with_two_workers(tmp_path):
    src = _written(tmp_path, "npz")
    (src / "img_003.npz").write_bytes(b"not a zip")
    np.savez(src / "img_019.npz", masks=np.zeros((48, 64), np.uint8), labels=np.zeros(0))
    files, report = _same_with_workers(src, tmp_path, "coco")
    assert report["samples"] == N - 2
    assert _records(report) == ["img_003", "img_019"]
    assert "(N, H, W)" in report["problems"][1]["message"]
    assert len(files) == N - 2 + 1  # the images of the files read, one json


# --------------------------------------------------------------------------- writers


@pytest.mark.parametrize(
    ("to", "options"),
    [
        ("labelme", {"embed_image": True}),
        ("rle-csv", {}),
        ("rle-csv", {"preset": "airbus"}),  # no class column: the first class is kept
        ("npz", {}),
    ],
)
def test_writers_write_the_same_with_two_workers(coco_src, tmp_path, to, options):
    files, report = _same_with_workers(coco_src, tmp_path, to, **options)
    assert report["samples"] == N
    assert len(files) > N  # a file per sample, the images, the index files
    doc = json.loads(next(coco_src.glob("annotations/*.json")).read_text())
    bad = next(a["id"] for a in doc["annotations"] if a["segmentation"] == [[0, 0, 1, 1]])
    assert _records(report)[:2] == ["annotation 10000", f"annotation {bad}"]
    assert report["exact"] > 0
    if to == "labelme":
        doc = json.loads((tmp_path / "w2" / "img_000.json").read_text())
        assert doc["imagePath"] == "img_000.png"
        image = (tmp_path / "w2" / "img_000.png").read_bytes()
        assert doc["imageData"]
        assert image == (coco_src / "images/default/img_000.png").read_bytes()
    if options.get("preset") == "airbus":
        assert report["loss_counts"].get("class", 0) > 0


def test_npz_files_depend_on_the_arrays_alone(tmp_path):
    """Two writes of the same sample give the same bytes (no zip entry dated now)."""
    masks = np.zeros((2, 4, 5), np.uint8)
    masks[0, 1:3, 1:4] = 1
    masks[1, 3, :] = 1
    instances = tuple(Instance(rle.encode(m), 1 + k) for k, m in enumerate(masks))
    sample = Sample("a", (4, 5), instances=instances)
    trees = []
    for name in ("one", "two"):
        with formats.get("npz").Writer(tmp_path / name, labels=synthetic.LABELS) as w:
            w.write(sample)
        trees.append(tree(tmp_path / name))
        with np.load(tmp_path / name / "a.npz") as data:
            np.testing.assert_array_equal(data["masks"], masks.astype(bool))
    assert trees[0] == trees[1]


@pytest.mark.parametrize(("to", "suffix"), [("labelme", "json"), ("npz", "npz")])
def test_a_second_sample_with_the_same_name_is_reported_and_the_first_kept(tmp_path, to, suffix):
    first, second = synthetic.samples(tmp_path / "images", 2)
    with formats.get(to).Writer(tmp_path / "out", labels=synthetic.LABELS) as w:
        w.write(first)
        w.write(Sample(first.id, second.size, instances=second.instances[:1]))
    report = w.report
    assert [p.record for p in report.problems] == [first.id]
    assert "second sample" in report.problems[0].message
    out = tmp_path / "out" / f"{first.id}.{suffix}"
    if to == "labelme":
        assert len(json.loads(out.read_text())["shapes"]) >= len(first.instances)
    else:
        with np.load(out) as data:
            assert data["masks"].shape[0] == len(first.instances)
