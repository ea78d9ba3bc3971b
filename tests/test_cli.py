"""The masklab CLI: exit codes, stdout vs stderr, --json, and what `demo` writes."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from pycocotools.coco import COCO
from typer.testing import CliRunner

import masklab
import masklab.demo
from masklab.cli import app
from masklab.errors import MaskFormatError

runner = CliRunner()

BAD_COUNTS = "RLE counts sum to 5 but size [2, 3] needs 6; fix 'size' or re-encode the mask"


def raise_mask_error(out_dir: Path, *, seed: int = 0) -> masklab.demo.DemoResult:
    raise MaskFormatError(BAD_COUNTS)


def test_demo_prints_a_table_and_an_ok_verdict(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "d")])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    for k in range(4):
        assert f"scene_{k}.png" in result.stdout
    assert "pycocotools" in result.stdout
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("ok: ")
    assert str(tmp_path / "d") in last


def test_demo_writes_coco_files_that_pycocotools_loads(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    coco = COCO(str(tmp_path / "instances_rle.json"))
    assert len(coco.imgs) == 4
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["cell", "leaf", "stone"]
    assert min(coco.anns) == 1
    assert all((tmp_path / "images" / img["file_name"]).is_file() for img in coco.imgs.values())
    assert (tmp_path / "instances_polygons.json").is_file()


def test_demo_json_is_exactly_one_document(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--json", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # fails on anything besides one JSON document
    assert data["ok"] is True
    assert data["out_dir"] == str(tmp_path.resolve())
    assert data["totals"]["images"] == 4
    assert data["totals"]["holes"] >= 1
    assert data["totals"]["multi_part"] >= 1
    assert data["totals"]["pycocotools_agrees"] is True
    with (tmp_path / "instances_rle.json").open() as f:
        assert data["totals"]["instances"] == len(json.load(f)["annotations"])


def test_demo_seed_changes_the_scenes(tmp_path: Path) -> None:
    a = json.loads(runner.invoke(app, ["demo", "--json", "--out", str(tmp_path / "a")]).stdout)
    b = json.loads(
        runner.invoke(app, ["demo", "--json", "--seed", "5", "--out", str(tmp_path / "b")]).stdout
    )
    assert (a["seed"], b["seed"]) == (0, 5)
    assert a["images"] != b["images"]


def test_demo_writes_under_masklab_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MASKLAB_HOME", str(tmp_path / "home"))
    result = runner.invoke(app, ["demo"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "home" / "demo" / "instances_rle.json").is_file()


def test_demo_defaults_to_dot_masklab_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MASKLAB_HOME", raising=False)
    result = runner.invoke(app, ["demo", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["out_dir"] == str((tmp_path / ".masklab" / "demo").resolve())
    assert (tmp_path / ".masklab" / "demo" / "instances_polygons.json").is_file()


def test_version_prints_the_package_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"masklab {masklab.__version__}"


def test_no_arguments_shows_help_with_the_demo_command() -> None:
    result = runner.invoke(app, [])
    assert "Usage" in result.output
    assert "demo" in result.output


def test_masklab_error_is_one_line_on_stderr_and_exit_1(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(masklab.demo, "run_demo", raise_mask_error)
    result = runner.invoke(app, ["demo", "--out", "unused"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == f"error: {BAD_COUNTS}\n"


def test_debug_lets_the_exception_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(masklab.demo, "run_demo", raise_mask_error)
    result = runner.invoke(app, ["--debug", "demo", "--out", "unused"])
    assert result.exit_code == 1
    assert isinstance(result.exception, MaskFormatError)


def test_unwritable_out_names_the_path(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "file" / "sub")])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert str(tmp_path / "file" / "sub") in result.stderr
    assert "Traceback" not in result.output


def test_out_that_is_a_file_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "file")])
    assert result.exit_code == 2


_real_run_demo = masklab.demo.run_demo


def failing_run(out_dir: Path, *, seed: int = 0) -> masklab.demo.DemoResult:
    """A real run whose first image's RLE check is marked as failed."""
    result = _real_run_demo(out_dir, seed=seed)
    first = replace(result.images[0], exact_rle=False)
    return replace(
        result,
        images=(first, *result.images[1:]),
        problems=("annotation 3 in instances_rle.json decodes to other pixels",),
    )


def test_a_failed_check_exits_1_and_names_the_annotation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(masklab.demo, "run_demo", failing_run)
    result = runner.invoke(app, ["demo", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "NO" in result.stdout
    assert "ok:" not in result.stdout
    assert result.stderr.startswith("error: demo check failed: annotation 3 in instances_rle.json")


def test_a_failed_check_with_json_prints_ok_false_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(masklab.demo, "run_demo", failing_run)
    result = runner.invoke(app, ["demo", "--json", "--out", str(tmp_path)])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["ok"] is False
    assert data["totals"]["exact_rle"] is False
    assert result.stderr.startswith("error: ")


def test_without_pycocotools_the_table_says_n_a(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pycocotools", None)  # import now raises ImportError
    result = runner.invoke(app, ["demo", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "n/a" in result.stdout
    assert "pycocotools not installed" in result.stdout
