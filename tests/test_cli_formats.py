"""`masklab info` and `masklab convert` on real files: exit codes, --json, reports, errors."""

from __future__ import annotations

import json

import pytest
from pycocotools.coco import COCO
from typer.testing import CliRunner

from masklab.cli import app

AIRO = ("airo-mono-coco-val2017-small", "airo-dataset-tools", "test", "test_data")
runner = CliRunner()


@pytest.fixture
def coco_json(shared_data):
    return shared_data(*AIRO, "instances_val2017_small.json")


def test_info_json_counts_what_the_file_says(coco_json):
    result = runner.invoke(app, ["info", str(coco_json), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    raw = json.loads(coco_json.read_text())
    assert data["format"] == "coco"
    assert data["images"] == len(raw["images"]) == 3
    assert data["instances"] == len(raw["annotations"]) == 34
    assert data["crowd"] == sum(a["iscrowd"] for a in raw["annotations"]) == 1
    per_class = {c["id"]: c["instances"] for c in data["classes"]}
    for cat in {a["category_id"] for a in raw["annotations"]}:
        assert per_class[cat] == sum(a["category_id"] == cat for a in raw["annotations"])
    assert data["problems"] == []


def test_info_table_names_classes(coco_json):
    result = runner.invoke(app, ["info", str(coco_json)])
    assert result.exit_code == 0, result.output
    assert "coco" in result.stdout
    assert "person" in result.stdout
    assert "34 instances" in result.stdout


def test_convert_writes_the_target_and_a_report(coco_json, tmp_path):
    out, report = tmp_path / "pan", tmp_path / "report.json"
    result = runner.invoke(
        app,
        ["convert", str(coco_json), str(out), "--to", "coco", "--report", str(report)],
    )
    assert result.exit_code == 0, result.output
    assert "34 instances" in result.stdout
    written = next(out.glob("annotations/instances_*.json"))
    coco = COCO(str(written))
    assert len(coco.getAnnIds()) == 34
    assert min(coco.getAnnIds()) >= 1
    saved = json.loads(report.read_text())
    assert saved["source"] == "coco"
    assert saved["target"] == "coco"
    assert saved["exact"] == 34


def test_convert_json_is_one_document(coco_json, tmp_path):
    result = runner.invoke(
        app, ["convert", str(coco_json), str(tmp_path / "o"), "--to", "coco-panoptic", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    # COCO instances overlap; panoptic cannot hold overlap: every such case is reported
    assert report["loss_counts"].get("overlap", 0) > 0


def test_convert_to_an_unknown_format_fails_naming_the_known_ones(coco_json, tmp_path):
    result = runner.invoke(app, ["convert", str(coco_json), str(tmp_path / "o"), "--to", "gif"])
    assert result.exit_code == 1
    assert "unknown format 'gif'; known formats: coco" in result.stderr


def test_strict_conversion_stops_at_a_bad_record_and_names_it(tmp_path):
    bad = {
        "images": [{"id": 1, "file_name": "a.jpg", "height": 4, "width": 4}],
        "categories": [{"id": 1, "name": "cat"}],
        "annotations": [
            {"id": 7, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 1, 1]], "iscrowd": 0}
        ],
    }
    src = tmp_path / "instances_val.json"
    src.write_text(json.dumps(bad))
    out = tmp_path / "o"
    lenient = runner.invoke(app, ["convert", str(src), str(out), "--to", "coco"])
    assert lenient.exit_code == 0, lenient.output
    assert "annotation 7" in lenient.stdout
    strict = runner.invoke(
        app, ["convert", str(src), str(tmp_path / "s"), "--to", "coco", "--strict"]
    )
    assert strict.exit_code == 1
    assert "instances_val.json" in strict.stderr
    assert "7" in strict.stderr
    assert not (tmp_path / "s").exists()


def test_unknown_source_format_lists_what_was_looked_for(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    result = runner.invoke(app, ["info", str(tmp_path)])
    assert result.exit_code == 1
    assert "cannot tell the format" in result.stderr
    assert "coco:" in result.stderr
