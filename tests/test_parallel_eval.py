"""``masklab eval --workers N``: the json of one process (numbers to the last bit, problems in
the same order), for semantic and panoptic scoring; a bad pair is reported, the rest scored."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from typer.testing import CliRunner

from masklab.cli import app
from masklab.core import rle
from masklab.core.instances import Instance
from masklab.core.labels import Label, LabelMap
from masklab.formats import Sample, get

runner = CliRunner()
LABELS = LabelMap(
    (
        Label(0, ("background",), (0, 0, 0), isthing=False, role="background"),
        Label(1, ("road",), (128, 64, 128), isthing=False),
        Label(2, ("car",), (0, 0, 142), isthing=True),
        Label(3, ("person",), (220, 20, 60), isthing=True),
        Label(255, ("void",), (224, 224, 192), isthing=False, role="ignore"),
    )
)
IDS = [f"im{i:02d}" for i in range(12)]
MISSING = "im03"  # no prediction
WRONG_SIZE = "im07"  # the prediction is 1 row short
EXTRA = "zz"  # a prediction with no ground truth


def _scene(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[h // 2 :] = 1
    for _ in range(4):
        c = int(rng.integers(2, 4))
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        cv2.ellipse(m, (x, y), (int(rng.integers(2, 7)), int(rng.integers(2, 5))), 0, 0, 360, c, -1)
    m[0, :3] = 255
    return m


def _pairs(seed: int = 0) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    """(id, GT class map, prediction or None) with the prediction a little off."""
    rng = np.random.default_rng(seed)
    out: list[tuple[str, np.ndarray, np.ndarray | None]] = []
    for name in [*IDS, EXTRA]:
        g = _scene(rng, 20, 24)
        p = np.roll(g, int(rng.integers(-2, 3)), axis=1)
        p[p == 255] = 0
        if name == WRONG_SIZE:
            p = p[:-1]
        out.append((name, g, None if name == MISSING else p))
    return out


def _semantic(root: Path, side: str) -> Path:
    folder = root / side
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    for name, g, p in _pairs():
        m = g if side == "gt" else p
        if m is None or (side == "gt" and name == EXTRA):
            continue
        Image.fromarray(np.zeros((*m.shape, 3), np.uint8)).save(folder / "images" / f"{name}.png")
        Image.fromarray(m, mode="L").save(folder / "masks" / f"{name}.png")
    if side == "gt":
        (folder / "labels.json").write_text(json.dumps({"layout": "index", **LABELS.to_dict()}))
    return folder


def _panoptic(root: Path, side: str) -> Path:
    """Things as connected components (several per class: PQ sums several IoUs)."""
    images = root / f"{side}-images"
    images.mkdir(parents=True)
    samples = []
    for name, g, p in _pairs(seed=1):
        m = g if side == "gt" else p
        if m is None or (side == "gt" and name == EXTRA):
            continue
        image = images / f"{name}.png"
        Image.fromarray(np.zeros((*m.shape, 3), np.uint8)).save(image)
        insts = []
        for c in (1, 2, 3):
            n, comp = cv2.connectedComponents((m == c).astype(np.uint8))
            parts = range(1, n) if c != 1 else [0]
            for j in parts:
                mask = (comp == j) & (m == c) if c != 1 else m == c
                if mask.any():
                    insts.append(Instance(rle.encode(mask.astype(np.uint8)), c))
        samples.append(Sample(name, m.shape, image=image, instances=tuple(insts)))
    with get("coco-panoptic").Writer(root / side, labels=LABELS) as writer:
        for s in samples:
            writer.write(s)
    return root / side


def _eval(gt: Path, pred: Path, out: Path, *args: str) -> tuple[int, str, dict | None]:
    result = runner.invoke(app, ["eval", str(gt), str(pred), "--out", str(out), *args])
    doc = json.loads(out.read_text()) if result.exit_code == 0 else None
    return result.exit_code, result.output, doc


def test_semantic_json_and_problems_equal_one_process(tmp_path: Path):
    gt, pred = _semantic(tmp_path, "gt"), _semantic(tmp_path, "pred")
    code1, _, one = _eval(gt, pred, tmp_path / "1.json", "--workers", "1")
    code2, _, two = _eval(gt, pred, tmp_path / "2.json", "--workers", "2")
    assert (code1, code2) == (0, 0)
    assert two == one
    assert [(p["sample"], p["message"][:20]) for p in two["problems"]] == [
        (MISSING, "no prediction for th"),
        (WRONG_SIZE, "prediction is [19, 2"),
        (EXTRA, "a prediction with no"),
    ]
    assert two["images"] == len(IDS) - 2  # the bad pair did not stop the others
    assert two["pixels"] == (len(IDS) - 2) * (20 * 24 - 3)


def test_panoptic_json_equal_one_process_to_the_last_bit(tmp_path: Path):
    gt, pred = _panoptic(tmp_path, "gt"), _panoptic(tmp_path, "pred")
    _, _, one = _eval(gt, pred, tmp_path / "1.json", "--task", "panoptic", "--workers", "1")
    _, _, two = _eval(gt, pred, tmp_path / "2.json", "--task", "panoptic", "--workers", "2")
    assert one is not None
    assert two == one  # floats compared exactly: dict equality
    assert one["images"] == len(IDS) - 2
    assert [p["sample"] for p in one["problems"]] == [MISSING, WRONG_SIZE, EXTRA]
    assert one["things"]["n"] == 2
    assert 0.0 < one["all"]["pq"] < 1.0


def test_strict_stops_at_the_first_problem_in_gt_order(tmp_path: Path):
    gt, pred = _semantic(tmp_path, "gt"), _semantic(tmp_path, "pred")
    code, output, _ = _eval(gt, pred, tmp_path / "s.json", "--strict", "--workers", "2")
    assert code == 1
    assert f"sample '{MISSING}': no prediction" in output
