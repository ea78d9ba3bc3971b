"""``masklab eval`` end to end: the numbers against expectations computed here by hand,
pycocotools' COCOeval, and the panopticapi sample's own json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from masklab.cli import app

runner = CliRunner()

# two 4x4 images, classes 0 (background), 1, 2 and 255 (ignore)
GT = {
    "a": [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 255, 255], [2, 2, 0, 0]],
    "b": [[1, 1, 1, 1], [0, 0, 0, 0], [0, 0, 2, 2], [0, 0, 2, 2]],
}
PRED = {
    "a": [[0, 1, 1, 1], [0, 0, 1, 1], [2, 0, 1, 2], [2, 2, 0, 0]],
    "b": [[1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 2, 2], [0, 2, 2, 2]],
}


def _png_masks(root: Path, masks: dict[str, list[list[int]]], labels: bool) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for name, rows in masks.items():
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(root / "images" / f"{name}.png")
        Image.fromarray(np.array(rows, np.uint8), mode="L").save(root / "masks" / f"{name}.png")
    if labels:
        doc = {
            "layout": "index",
            "labels": [
                {"id": 0, "names": ["background"], "color": [0, 0, 0], "role": "background"},
                {"id": 1, "names": ["cat"], "color": [128, 0, 0]},
                {"id": 2, "names": ["dog"], "color": [0, 128, 0]},
                {"id": 255, "names": ["void"], "color": [224, 224, 192], "role": "ignore"},
            ],
        }
        (root / "labels.json").write_text(json.dumps(doc))
    return root


def _run(*args: str) -> dict:
    result = runner.invoke(app, ["eval", *args])
    assert result.exit_code == 0, result.output
    return result


def test_semantic_scores_equal_hand_counts(tmp_path: Path):
    gt = _png_masks(tmp_path / "gt", GT, labels=True)
    pred = _png_masks(tmp_path / "pred", PRED, labels=False)
    out = tmp_path / "eval.json"
    res = _run(str(gt), str(pred), "--task", "semantic", "--out", str(out))
    assert "mIoU" in res.output
    doc = json.loads(out.read_text())
    # counts over both images, the two 255 pixels of "a" left out
    tp = np.zeros(3)
    fp = np.zeros(3)
    fn = np.zeros(3)
    for name in GT:
        g = np.array(GT[name])
        p = np.array(PRED[name])
        keep = g != 255
        for c in range(3):
            tp[c] += np.sum((g == c) & (p == c) & keep)
            fp[c] += np.sum((g != c) & (p == c) & keep)
            fn[c] += np.sum((g == c) & (p != c) & keep)
    iou = tp / (tp + fp + fn)
    assert [c["iou"] for c in doc["classes"]] == pytest.approx(iou.tolist(), abs=1e-12)
    assert doc["miou"] == pytest.approx(iou.mean(), abs=1e-12)
    assert doc["pixel_accuracy"] == pytest.approx(tp.sum() / 30, abs=1e-12)
    assert doc["images"] == 2
    assert doc["pixels"] == 30
    assert [c["name"] for c in doc["classes"]] == ["background", "cat", "dog"]
    # class 1 counted by hand: a: tp 4, fp 1 (a[0][1]; a[2][2] is ignore); b: tp 2, fn 2
    assert doc["classes"][1]["iou"] == pytest.approx(6 / 9)


def test_semantic_missing_prediction_is_reported_and_strict_stops(tmp_path: Path):
    gt = _png_masks(tmp_path / "gt", GT, labels=True)
    pred = _png_masks(tmp_path / "pred", {"a": PRED["a"]}, labels=False)
    out = tmp_path / "eval.json"
    _run(str(gt), str(pred), "--out", str(out))
    doc = json.loads(out.read_text())
    assert doc["images"] == 1
    assert [p["sample"] for p in doc["problems"]] == ["b"]
    assert "no prediction" in doc["problems"][0]["message"]
    strict = runner.invoke(app, ["eval", str(gt), str(pred), "--strict", "--out", str(out)])
    assert strict.exit_code == 1
    assert "'b'" in strict.output


def test_panoptic_perfect_prediction_on_the_real_sample(shared_data, tmp_path: Path):
    folder = shared_data("panopticapi", "sample_data")
    gt = folder / "panoptic_examples.json"
    out = tmp_path / "pq.json"
    res = _run(str(gt), str(gt), "--task", "panoptic", "--out", str(out))
    assert "things" in res.output
    doc = json.loads(out.read_text())
    meta = json.loads(gt.read_text())
    isthing = {c["id"]: c["isthing"] for c in meta["categories"]}
    present = {s["category_id"] for a in meta["annotations"] for s in a["segments_info"]}
    # every category with a (non-crowd) segment is matched with IoU 1
    assert doc["all"] == {"pq": 1.0, "sq": 1.0, "rq": 1.0, "n": len(present)}
    assert doc["things"]["n"] == sum(1 for c in present if isthing[c])
    assert doc["stuff"]["n"] == sum(1 for c in present if not isthing[c])
    assert doc["images"] == 2


def test_instance_ap_equals_pycocotools(shared_data, tmp_path: Path):
    pytest.importorskip("pycocotools")
    from pycocotools import mask as cocomask
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_path = shared_data(
        "airo-mono-coco-val2017-small",
        "airo-dataset-tools",
        "test",
        "test_data",
        "instances_val2017_small.json",
    )
    coco = COCO(str(gt_path))
    rng = np.random.default_rng(5)
    results = []
    for ann in coco.loadAnns(coco.getAnnIds()):
        m = coco.annToMask(ann)
        m = np.roll(m, int(rng.integers(-2, 3)), axis=1)  # a hit, or nearly
        rle = cocomask.encode(np.asfortranarray(m))
        rle["counts"] = rle["counts"].decode("ascii")
        score = round(float(rng.uniform(0.3, 1.0)), 3)
        results.append({"image_id": ann["image_id"], "category_id": ann["category_id"]})
        results[-1]["segmentation"] = rle
        results[-1]["score"] = score
    pred_path = tmp_path / "results.json"
    pred_path.write_text(json.dumps(results))
    out = tmp_path / "ap.json"
    res = _run(str(gt_path), str(pred_path), "--task", "instance", "--out", str(out))
    assert "Average Precision" in res.output

    with open(pred_path) as f:  # pycocotools alters what it loads: give it its own copy
        dt = coco.loadRes(json.load(f))
    ev = COCOeval(coco, dt, "segm")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    doc = json.loads(out.read_text())
    stats = list(doc["stats"].values())  # AP, AP50, ... in COCOeval's order
    assert stats == pytest.approx(ev.stats.tolist(), abs=1e-9)
    assert stats[0] > 0.1  # the test data is not degenerate
