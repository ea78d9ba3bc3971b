"""``masklab iis evaluate`` / ``compare`` end to end on a GrabCut-layout folder made here:
``data_GT/`` images and ``boundary_GT/`` masks with a 128 (ignore) band."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from typer.testing import CliRunner

from masklab.cli import app

runner = CliRunner()


def _grabcut(root: Path, n: int = 3) -> Path:
    """n 60x80 images, each a red ellipse on blue noise; masks 255 object, 128 band, 0."""
    rng = np.random.default_rng(0)
    (root / "data_GT").mkdir(parents=True)
    (root / "boundary_GT").mkdir()
    for i in range(n):
        obj = np.zeros((60, 80), np.uint8)
        cv2.ellipse(obj, (40 + 3 * i, 30), (18, 12 + i), 0, 0, 360, 1, -1)
        band = cv2.dilate(obj, np.ones((3, 3), np.uint8)) - cv2.erode(obj, np.ones((3, 3)))
        mask = np.where(obj == 1, 255, 0).astype(np.uint8)
        mask[band == 1] = 128
        bgr = np.where(obj[..., None] == 1, (40, 40, 200), (200, 120, 60)).astype(np.int16)
        bgr = np.clip(bgr + rng.normal(0, 10, bgr.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(str(root / "data_GT" / f"im{i}.png"), bgr)
        cv2.imwrite(str(root / "boundary_GT" / f"im{i}.bmp"), mask)
    return root


def _evaluate(*args: str) -> str:
    result = runner.invoke(app, ["iis", "evaluate", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_perfect_model_noc_1_and_the_files(tmp_path: Path):
    data = _grabcut(tmp_path / "GrabCut")
    out = tmp_path / "perfect"
    text = _evaluate("--dataset", f"grabcut:{data}", "--model", "perfect", "--out", str(out))
    assert "NoC@90" in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["summary"]["n_samples"] == 3
    assert summary["summary"]["noc"] == {"85": 1.0, "90": 1.0}
    assert summary["summary"]["nof"] == {"85": 0, "90": 0}
    assert summary["miou_curve_held"] == [1.0] * 20
    assert summary["target_iou"] == 0.9
    lines = (out / "samples.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["id"] for r in records] == ["im0", "im1", "im2"]
    for r in records:
        assert r["ious"] == [1.0]  # the 128 band is ignored: the object alone scores 1
        assert r["noc"] == {"85": 1, "90": 1}
        assert r["clicks"][0][2] is True
        assert len(r["seconds"]) == 1
        assert len(r["info"]["mask_sha256"]) == 64
    png = cv2.imread(str(out / "miou.png"))
    assert png is not None
    assert png.shape == (480, 760, 3)
    assert (png != 255).any()


def test_empty_model_noc_k_with_all_clicks_and_thresholds(tmp_path: Path):
    data = _grabcut(tmp_path / "GrabCut", n=2)
    out = tmp_path / "empty"
    _evaluate(
        "--dataset", f"grabcut:{data}", "--model", "empty", "--max-clicks", "5",
        "--iou", "0.5,0.8", "--all-clicks", "--out", str(out),
    )  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["summary"]["noc"] == {"50": 5.0, "80": 5.0}
    assert summary["summary"]["nof"] == {"50": 2, "80": 2}
    assert summary["summary"]["miou_curve"] == [0.0] * 5
    assert summary["target_iou"] is None
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert [len(r["ious"]) for r in records] == [5, 5]


def test_graphcut_then_compare(tmp_path: Path):
    data = _grabcut(tmp_path / "GrabCut", n=2)
    runs = []
    for model in ("graphcut", "perfect"):
        runs.append(tmp_path / model)
        _evaluate("--dataset", f"grabcut:{data}", "--model", model, "--out", str(runs[-1]))
    graphcut = json.loads((runs[0] / "summary.json").read_text())["summary"]
    assert graphcut["noc"]["90"] <= 20
    assert graphcut["spc"] > 0
    plot = tmp_path / "both.png"
    result = runner.invoke(app, ["iis", "compare", *map(str, runs), "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    assert "graphcut" in result.output
    assert "perfect" in result.output
    assert cv2.imread(str(plot)) is not None
    result = runner.invoke(app, ["iis", "compare", *map(str, runs), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc[str(runs[1])]["summary"]["noc"]["90"] == 1.0


def test_errors_are_one_line(tmp_path: Path):
    data = _grabcut(tmp_path / "GrabCut", n=1)
    cases = [
        (["--model", "nope"], "unknown model 'nope'"),
        (["--model", "perfect", "--robot", "nobody"], "unknown robot 'nobody'"),
        (["--model", "perfect", "--iou", "85"], "thresholds are IoUs"),
    ]
    for extra, message in cases:
        result = runner.invoke(app, ["iis", "evaluate", "--dataset", f"grabcut:{data}", *extra])
        assert result.exit_code != 0
        assert message in result.output
    result = runner.invoke(app, ["iis", "compare", str(tmp_path)])
    assert result.exit_code == 1
    assert "no summary.json" in result.output


def test_limit_and_random_walker(tmp_path: Path):
    data = _grabcut(tmp_path / "GrabCut", n=3)
    out = tmp_path / "rw"
    text = _evaluate(
        "--dataset", f"grabcut:{data}", "--model", "random-walker", "--limit", "2",
        "--out", str(out),
    )  # fmt: skip
    assert "random-walker" in text
    records = (out / "samples.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in records] == ["im0", "im1"]
    assert json.loads((out / "summary.json").read_text())["summary"]["n_samples"] == 2
