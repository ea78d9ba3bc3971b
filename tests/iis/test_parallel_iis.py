"""``evaluate(..., workers=N)`` and ``masklab iis evaluate --workers N``: the same records and
summary as one process (timings aside), in sample order, with SPC from the samples' own times."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from masklab.cli import app
from masklab.errors import MaskLabError
from masklab.iis.datasets import RegionSample
from masklab.iis.loop import EmptyModel, evaluate
from masklab.iis.robots import random as random_robot

runner = CliRunner()
TIMING = {"seconds", "model_seconds", "init_seconds", "load_seconds"}
SUMMARY_TIMING = {"seconds", "spc", "spi"}


def _grabcut(root: Path, n: int) -> Path:
    """n 40x56 images with a red ellipse; masks 255 object, 128 band, 0 background."""
    rng = np.random.default_rng(1)
    (root / "data_GT").mkdir(parents=True)
    (root / "boundary_GT").mkdir()
    for i in range(n):
        obj = np.zeros((40, 56), np.uint8)
        cv2.ellipse(obj, (26 + i % 5, 20), (12, 7 + i % 4), 10 * i, 0, 360, 1, -1)
        band = cv2.dilate(obj, np.ones((3, 3), np.uint8)) - cv2.erode(obj, np.ones((3, 3)))
        mask = np.where(obj == 1, 255, 0).astype(np.uint8)
        mask[band == 1] = 128
        bgr = np.where(obj[..., None] == 1, (40, 40, 200), (200, 120, 60)).astype(np.int16)
        bgr = np.clip(bgr + rng.normal(0, 25, bgr.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(str(root / "data_GT" / f"im{i}.png"), bgr)
        cv2.imwrite(str(root / "boundary_GT" / f"im{i}.bmp"), mask)
    return root


def _run(data: Path, out: Path, workers: int) -> tuple[list[dict], dict]:
    args = ["iis", "evaluate", "--dataset", f"grabcut:{data}", "--model", "graphcut"]
    args += ["--robot", "random", "--max-clicks", "4", "--iou", "0.95", "--out", str(out)]
    result = runner.invoke(app, [*args, "--workers", str(workers)])
    assert result.exit_code == 0, result.output
    lines = (out / "samples.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines], json.loads((out / "summary.json").read_text())


def test_cli_two_workers_write_what_one_writes_but_timings(tmp_path: Path):
    data = _grabcut(tmp_path / "GrabCut", 6)
    one, sum1 = _run(data, tmp_path / "w1", 1)
    two, sum2 = _run(data, tmp_path / "w2", 2)
    assert [r["id"] for r in two] == [f"im{i}" for i in range(6)]  # sample order kept
    strip = [{k: v for k, v in r.items() if k not in TIMING} for r in (*one, *two)]
    assert strip[:6] == strip[6:]
    assert len({len(r["clicks"]) for r in one}) > 1  # the random robot made runs differ
    assert (sum1["workers"], sum2["workers"]) == (1, 2)
    s1 = {k: v for k, v in sum1["summary"].items() if k not in SUMMARY_TIMING}
    s2 = {k: v for k, v in sum2["summary"].items() if k not in SUMMARY_TIMING}
    assert s1 == s2
    rest = {"summary", "workers"}
    assert {k: v for k, v in sum1.items() if k not in rest} == {
        k: v for k, v in sum2.items() if k not in rest
    }
    # with workers, SPC's numerator is the samples' own time, read back from samples.jsonl
    own = sum(r["load_seconds"] + r["init_seconds"] + sum(r["seconds"]) for r in two)
    clicks = sum(len(r["clicks"]) for r in two)
    assert sum2["summary"]["seconds"] == pytest.approx(own, rel=1e-12)
    assert sum2["summary"]["spc"] == pytest.approx(own / clicks, rel=1e-12)


class _Squares:
    """Four 12x12 samples: a square object whose size depends on the index."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> RegionSample:
        target = np.zeros((12, 12), np.int64)
        target[2 : 4 + 2 * i, 3 : 5 + i] = 1
        return RegionSample(np.zeros((12, 12, 3), np.uint8), target, {"id": f"sq{i}"})


def test_a_model_object_travels_to_the_workers_and_records_keep_order():
    """A picklable model object travels to the workers; the random robot's clicks match."""
    kw = {"max_clicks": 3, "all_clicks": True, "seed": 7}
    one = evaluate(_Squares(), EmptyModel(), random_robot, **kw)
    done: list[tuple[int, int]] = []
    two = evaluate(
        _Squares(),
        EmptyModel(),
        random_robot,
        workers=2,
        progress=lambda n, total: done.append((n, total)),
        **kw,
    )
    assert [r.id for r in two.records] == ["sq0", "sq1", "sq2", "sq3"]
    assert [r.result.clicks for r in two.records] == [r.result.clicks for r in one.records]
    assert [r.result.ious for r in two.records] == [r.result.ious for r in one.records]
    assert two.summary.noc == one.summary.noc
    assert done == [(1, 4), (2, 4), (3, 4), (4, 4)]


class _Unpicklable(EmptyModel):
    def __init__(self) -> None:
        self.hook = lambda: None  # a lambda does not pickle


def test_unpicklable_model_with_workers_says_to_pass_a_spec():
    with pytest.raises(MaskLabError, match=r"model _Unpicklable cannot be sent.*spec"):
        evaluate(_Squares(), _Unpicklable(), random_robot, workers=2)


def test_a_model_spec_that_fails_in_the_workers_raises_its_error():
    with pytest.raises(MaskLabError, match=r"cannot import 'no_such_module_xyz'"):
        evaluate(_Squares(), "no_such_module_xyz:make", random_robot, workers=2)
