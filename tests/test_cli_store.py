"""The store's commands: import, datasets, versions, export, diff, frames, publish."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from masklab.cli import app

runner = CliRunner()
AIRO_JSON = ("airo-mono-coco-val2017-small", "airo-dataset-tools", "test", "test_data")


def ok(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_import_list_export_diff_publish(shared_data, tmp_path):
    src = shared_data(*AIRO_JSON, "instances_val2017_small.json")
    home = ["--home", str(tmp_path / "home")]
    out = json.loads(ok(["import", str(src), "--dataset", "val", *home, "--json"]))
    assert out["version"] == "val:v1"
    assert out["frames"] == 3
    assert out["annotations"] == 34
    assert out["problems"] == 0
    ok(["import", str(src), "--dataset", "val", "--parent", "v1", *home])  # same data: v2
    datasets = json.loads(ok(["datasets", *home, "--json"]))
    assert [(d["name"], d["versions"], d["latest"]) for d in datasets] == [("val", 2, "v2")]
    versions = json.loads(ok(["versions", "val", *home, "--json"]))
    assert [(v["name"], v["parent"], v["frames"], v["instances"]) for v in versions] == [
        ("v1", None, 3, 34),
        ("v2", "v1", 3, 34),
    ]
    assert "person" in versions[0]["labels"]
    diff = json.loads(ok(["diff", "val:v1", "v2", *home, "--json"]))
    assert (diff["added"], diff["removed"], diff["changed"]) == ([], [], [])
    report = json.loads(
        ok(["export", "val:v2", str(tmp_path / "out"), "--to", "coco", *home, "--json"])
    )
    assert report["samples"] == 3
    exported = json.loads(next((tmp_path / "out").rglob("*.json")).read_text())
    assert len(exported["annotations"]) == 34
    runner.invoke(app, ["publish", "val:v1", *home])
    versions = json.loads(ok(["versions", "val", *home, "--json"]))
    assert versions[0]["status"] == "published"


def test_store_errors_name_the_problem(tmp_path):
    home = ["--home", str(tmp_path / "home")]
    result = runner.invoke(app, ["versions", "nope", *home])
    assert result.exit_code == 1
    assert "error: no dataset named 'nope'" in result.stderr
    result = runner.invoke(app, ["export", "nope:v1", str(tmp_path / "o"), "--to", "coco", *home])
    assert result.exit_code == 1
    assert "no dataset named 'nope'" in result.stderr
