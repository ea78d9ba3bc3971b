"""The Ray Data engine writes what the local engine writes and reports what it reports.

A local Ray cluster (2 CPUs) is started once for the module. The oracle is
``formats.convert`` (the local engine), run on the same input in the same test: output
files compared byte for byte, reports compared whole (problems with file and record,
losses, counts).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.files import tree
from tests.formats import synthetic
from tests.ray_engine.common import both as _both

from masklab import formats
from masklab.errors import FormatError

ray = pytest.importorskip("ray.data")
import masklab.ray  # noqa: E402
from masklab.ray import engine  # noqa: E402

AIRO = ("airo-mono-coco-val2017-small", "airo-dataset-tools", "test", "test_data")


@pytest.fixture(autouse=True)
def _cluster(ray_cluster):
    """Every test here runs on the session's local Ray cluster (conftest)."""


def _coco(tmp_path: Path, n: int = 24) -> Path:
    data = synthetic.samples(tmp_path / "images", n)
    with formats.get("coco").Writer(tmp_path / "coco", labels=synthetic.LABELS) as w:
        for s in data:
            w.write(s)
    return tmp_path / "coco"


@pytest.mark.parametrize("to", ["voc", "coco", "yolo-seg", "png-masks", "rle-csv"])
def test_ray_engine_writes_the_local_engines_bytes_and_report(tmp_path, to):
    local, on_ray = _both(_coco(tmp_path), tmp_path, to)
    assert tree(tmp_path / "ray") == tree(tmp_path / "local")
    assert on_ray.to_dict() == local.to_dict()
    assert local.samples == 24


def test_ray_engine_on_the_real_coco_sample(tmp_path, shared_data):
    src = shared_data(*AIRO, "instances_val2017_small.json")
    local, on_ray = _both(src, tmp_path, "voc", images="none")
    assert local.samples > 0
    assert tree(tmp_path / "ray") == tree(tmp_path / "local")
    assert on_ray.to_dict() == local.to_dict()


def _with_bad_records(tmp_path: Path) -> Path:
    src = _coco(tmp_path)
    ann = next(src.glob("annotations/*.json"))
    data = json.loads(ann.read_text())
    data["annotations"][3]["segmentation"] = {"size": [48, 64], "counts": "not an rle"}
    data["annotations"][-1]["segmentation"] = [[0, 0, 1, 1]]  # 2 points, in the last block
    ann.write_text(json.dumps(data))
    return src


def test_bad_records_are_reported_as_locally_and_the_rest_converts(tmp_path):
    local, on_ray = _both(_with_bad_records(tmp_path), tmp_path, "coco")
    assert len(on_ray.problems) == 2
    assert on_ray.problems[0].record == local.problems[0].record
    assert on_ray.to_dict() == local.to_dict()
    assert on_ray.samples == 24  # every image, its bad annotation left out
    assert tree(tmp_path / "ray") == tree(tmp_path / "local")


def test_strict_stops_at_the_first_bad_record_and_writes_nothing(tmp_path):
    src = _with_bad_records(tmp_path)
    with pytest.raises(FormatError, match="record"):
        engine.convert(src, tmp_path / "out", to="voc", strict=True)
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_existing_output_is_refused_before_anything_runs(tmp_path):
    src = _coco(tmp_path, 2)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    with pytest.raises(FormatError, match="already exists"):
        engine.convert(src, tmp_path / "taken", to="voc")


def test_read_then_write_equals_convert(tmp_path):
    src = _with_bad_records(tmp_path)
    read_report = formats.ConversionReport()
    ds = masklab.ray.read(src, report=read_report)
    assert ds.count() == 24
    assert len(read_report.problems) == 2
    labels = masklab.ray.labels_of(src)
    written = masklab.ray.write(ds, tmp_path / "ray", "voc", labels=labels)
    local = formats.convert(src, tmp_path / "local", to="voc")
    assert tree(tmp_path / "ray") == tree(tmp_path / "local")
    written.merge(read_report)
    assert written.to_dict()["problems"] == local.to_dict()["problems"]
    assert written.loss_counts() == local.loss_counts()


def test_an_empty_dataset_converts_to_an_empty_output(tmp_path):
    src = tmp_path / "instances_empty.json"
    src.write_text('{"images": [], "annotations": [], "categories": [{"id": 1, "name": "a"}]}')
    local, on_ray = _both(src, tmp_path, "coco")
    assert on_ray.samples == local.samples == 0
    assert tree(tmp_path / "ray") == tree(tmp_path / "local")


def test_batch_functions_run_in_map_batches(tmp_path):
    from pycocotools import mask as cocomask

    from masklab.ray import batches

    src = _coco(tmp_path, 6)
    ds = masklab.ray.read(src).map_batches(batches.decode, batch_format="pyarrow")
    rows = sorted(ds.take_all(), key=lambda r: r["id"])
    ann = json.loads(next(src.glob("annotations/*.json")).read_text())
    first = [a for a in ann["annotations"] if a["image_id"] == ann["images"][0]["id"]]

    def ann_to_mask(seg):  # pycocotools' annToMask
        if isinstance(seg, list):
            return cocomask.decode(cocomask.merge(cocomask.frPyObjects(seg, 48, 64)))
        if isinstance(seg["counts"], list):
            seg = cocomask.frPyObjects(seg, 48, 64)
        return cocomask.decode(seg)

    theirs = [ann_to_mask(a["segmentation"]) for a in first]
    assert len(rows) == 6
    assert rows[0]["masks"].shape == (len(theirs), 48, 64)
    for ours, want in zip(rows[0]["masks"], theirs, strict=True):
        assert (ours == want).all()


def test_cli_convert_engine_ray_writes_what_the_local_engine_writes(tmp_path):
    from typer.testing import CliRunner

    from masklab.cli import app

    src = _with_bad_records(tmp_path)
    runner = CliRunner()
    reports = {}
    for name, extra in (("local", ["--workers", "1"]), ("ray", ["--engine", "ray"])):
        report = tmp_path / f"{name}.json"
        args = ["convert", str(src), str(tmp_path / name), "--to", "voc", "--report", str(report)]
        result = runner.invoke(app, [*args, *extra])
        assert result.exit_code == 0, result.output
        reports[name] = json.loads(report.read_text())
    assert tree(tmp_path / "ray") == tree(tmp_path / "local")
    assert reports["ray"] == reports["local"]
    assert len(reports["local"]["problems"]) == 2  # both bad records, named the same way
