"""The evaluation loop (iis.md §1.3): scripted models and robots whose every IoU, click and
NoC is written out by hand here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from masklab.errors import MaskFormatError, MaskLabError
from masklab.iis.clicks import Click
from masklab.iis.datasets import RegionSample, SegDataset, SegSample
from masklab.iis.loop import (
    EmptyModel,
    IISModel,
    PerfectModel,
    evaluate,
    full_inference,
    load_model,
)
from masklab.iis.robots import get_robot, ritm


def _square(h: int = 12, w: int = 12) -> np.ndarray:
    """10 object rows x 5 columns (50 px) in a 12x12 target, no ignore."""
    t = np.zeros((h, w), np.int8)
    t[1:11, 3:8] = 1
    return t


def _image(t: np.ndarray) -> np.ndarray:
    return np.repeat((t[..., None] == 1).astype(np.uint8) * 200, 3, axis=2)


class RowsModel:
    """After n clicks: the first n object rows (n * 5 of 50 px -> IoU n / 10), at ``value``."""

    def __init__(self, value: float = 1.0) -> None:
        self.value = value
        self.calls: list[tuple[list[tuple[int, int]], list[tuple[int, int]]]] = []

    def initialize_z(self, image: np.ndarray) -> int:
        return 0

    def initialize_y(self, image: np.ndarray) -> np.ndarray:
        return np.zeros(image.shape[:2], np.float32)

    def __call__(
        self, x: np.ndarray, z: int, pcs: Sequence[Any], ncs: Sequence[Any]
    ) -> tuple[np.ndarray, int]:
        self.calls.append((list(pcs), list(ncs)))
        y = np.zeros(x.shape[:2], np.float32)
        y[1 : 1 + z + 1, 3:8] = self.value
        return y, z + 1


class ScriptedRobot:
    """Returns the scripted clicks in order and records the prediction it was shown."""

    def __init__(self, clicks: list[Click]) -> None:
        self.clicks = clicks
        self.seen: list[np.ndarray] = []

    def __call__(self, gt: Any, pred: Any, clicks: Sequence[Click], *, rng: Any = None) -> Click:
        self.seen.append(np.array(pred, copy=True))
        return self.clicks[len(clicks)]


def test_ious_per_click_and_early_stop_at_target():
    t = _square()
    r = full_inference(RowsModel(), ritm, _image(t), t, 20, target_iou=0.3)
    assert r.ious == pytest.approx((0.1, 0.2, 0.3))  # stops at the first IoU >= 0.3
    assert len(r.clicks) == len(r.seconds) == len(r.model_seconds) == 3
    assert all(m <= s for m, s in zip(r.model_seconds, r.seconds, strict=True))
    assert r.noc(0.25) == 3
    assert r.noc(0.9) == 20


def test_no_target_runs_all_clicks_and_min_clicks_delays_the_stop():
    t = _square()
    assert len(full_inference(RowsModel(), ritm, _image(t), t, 7).ious) == 7
    r = full_inference(PerfectModel(), ritm, _image(t), t, 20, target_iou=0.9, min_clicks=4)
    assert r.ious == (1.0, 1.0, 1.0, 1.0)


def test_threshold_is_strict():
    t = _square()
    r = full_inference(RowsModel(0.49), ritm, _image(t), t, 2)
    assert r.ious == (0.0, 0.0)  # 0.49 > 0.49 is False
    r = full_inference(RowsModel(0.49), ritm, _image(t), t, 2, threshold=0.48)
    assert r.ious == pytest.approx((0.1, 0.2))


def test_robot_sees_previous_binary_prediction_and_model_gets_clicks_in_order():
    t = _square()
    script = [Click(2, 4, True), Click(0, 0, False), Click(9, 5, True), Click(11, 11, False)]
    robot = ScriptedRobot(script)
    model = RowsModel(0.7)
    r = full_inference(model, robot, _image(t), t, 4, keep_probabilities=True)
    assert r.clicks == tuple(script)
    assert not robot.seen[0].any()  # P starts all zeros
    for k in range(1, 4):  # before click k+1 the robot sees rows 1..k of the object, as bool
        expect = np.zeros_like(t, bool)
        expect[1 : 1 + k, 3:8] = True
        assert robot.seen[k].dtype == bool
        assert np.array_equal(robot.seen[k], expect)
    assert model.calls[-1] == ([(2, 4), (9, 5)], [(0, 0), (11, 11)])
    assert model.calls[1] == ([(2, 4)], [(0, 0)])
    assert r.probabilities is not None
    assert r.probabilities[4, 5] == pytest.approx(0.7)


def test_ignore_pixels_are_not_counted():
    t = _square()
    t[0, 3:8] = -1  # a band above the object the model also covers
    y = np.zeros(t.shape, np.float32)
    y[0:11, 3:8] = 1

    class Fixed(EmptyModel):
        def __call__(self, x, z, pcs, ncs):
            return y, z

    r = full_inference(Fixed(), ritm, _image(t), t, 3)
    assert r.ious == (1.0, 1.0, 1.0)  # 55 predicted, 5 of them ignore: 50 / 50


def test_perfect_and_empty_models_through_the_ritm_robot():
    t = _square()
    perfect = full_inference(PerfectModel(), ritm, _image(t), t, 5)
    assert perfect.ious == (1.0,) * 5
    # first click at the deepest object pixel, then RITM's (0, 0) negative on a perfect mask
    assert perfect.clicks[0].positive
    assert perfect.clicks[1:] == (Click(0, 0, False),) * 4
    empty = full_inference(EmptyModel(), ritm, _image(t), t, 5, target_iou=0.9)
    assert empty.ious == (0.0,) * 5
    assert all(c.positive for c in empty.clicks)


def test_only_models_that_ask_get_the_target():
    t = _square()

    class Strict(EmptyModel):
        def initialize_z(self, image):  # exactly one argument
            return "z"

    assert full_inference(Strict(), ritm, _image(t), t, 1).ious == (0.0,)
    with pytest.raises(TypeError, match="oracle"):
        PerfectModel().initialize_z(_image(t))


def test_bad_shapes_are_reported():
    t = _square()

    class Small(EmptyModel):
        def __call__(self, x, z, pcs, ncs):
            return np.zeros((3, 3), np.float32), z

    with pytest.raises(MaskFormatError, match="full resolution"):
        full_inference(Small(), ritm, _image(t), t, 2)
    with pytest.raises(MaskFormatError, match="target has shape"):
        full_inference(EmptyModel(), ritm, _image(t), t[:5], 2)
    with pytest.raises(ValueError, match="at least 1"):
        full_inference(EmptyModel(), ritm, _image(t), t, 0)


class TwoImages(SegDataset):
    name = "two"

    def __len__(self) -> int:
        return 2

    def get_sample(self, i: int) -> SegSample:
        t = _square() if i == 0 else np.roll(_square(), 1, axis=1)
        layers = (t == 1).astype(np.int32)[..., None]
        info = {"id": f"img{i}", "index": i, "layer_names": ["object"], "ignore": None}
        return SegSample(_image(t), layers, info)


def test_evaluate_perfect_gives_noc_1_and_empty_gives_k():
    perfect = evaluate(TwoImages(), PerfectModel(), ritm, max_clicks=20)
    assert perfect.summary.noc == {0.85: 1.0, 0.9: 1.0}
    assert perfect.summary.nof == {0.85: 0, 0.9: 0}
    assert [r.id for r in perfect.records] == ["img0", "img1"]
    assert perfect.summary.n_clicks == 2  # early stop after one click each
    assert perfect.miou_curve_held() == [1.0] * 20
    empty = evaluate(TwoImages(), EmptyModel(), ritm, max_clicks=7)
    assert empty.summary.noc == {0.85: 7.0, 0.9: 7.0}
    assert empty.summary.nof == {0.85: 2, 0.9: 2}
    assert empty.summary.nof_never == {0.85: 2, 0.9: 2}
    assert empty.summary.n_clicks == 14
    assert empty.summary.miou_at_k == {
        1: 0.0,
        2: 0.0,
        3: 0.0,
        5: 0.0,
    }
    assert empty.summary.spc is not None
    assert empty.summary.spc > 0


def test_evaluate_records_and_summary_by_hand():
    samples = [RegionSample(_image(_square()), _square(), {"id": "a"})] * 3
    res = evaluate(samples, RowsModel(), ritm, max_clicks=5, thresholds=(0.2, 0.4))
    # every sample: IoU 0.1, 0.2, 0.3, 0.4 then stop at 0.4 (the highest threshold)
    assert [len(r.result.ious) for r in res.records] == [4, 4, 4]
    assert res.summary.noc == {0.2: 2.0, 0.4: 4.0}
    d = res.records[0].to_dict()
    assert d["id"] == "a"
    assert d["noc"] == {"20": 2, "40": 4}
    assert d["ious"] == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert d["clicks"][0][2] is True
    assert len(d["clicks"]) == 4
    assert res.miou_curve_held() == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.4])
    assert res.config["target_iou"] == 0.4
    full = evaluate(samples, RowsModel(), ritm, max_clicks=5, all_clicks=True)
    assert full.summary.miou_curve == pytest.approx((0.1, 0.2, 0.3, 0.4, 0.5))
    assert full.miou_curve_held() == pytest.approx(list(full.summary.miou_curve))


def test_random_robot_is_reproducible_by_seed():
    ds = TwoImages()
    runs = [
        [
            r.result.clicks
            for r in evaluate(ds, EmptyModel(), get_robot("random"), max_clicks=4, seed=s).records
        ]
        for s in (3, 3, 4)
    ]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_load_model_names_and_module_callable():
    assert isinstance(load_model("perfect"), PerfectModel)
    assert isinstance(load_model("masklab.iis.loop:EmptyModel"), EmptyModel)
    model = load_model("graphcut")
    assert isinstance(model, IISModel)
    assert type(model).__name__ == "GraphCutModel"
    with pytest.raises(MaskLabError, match="unknown model 'nope'"):
        load_model("nope")
    with pytest.raises(MaskLabError, match="cannot import"):
        load_model("no_such_module_xyz:f")
    with pytest.raises(MaskLabError, match="has no"):
        load_model("masklab.iis.loop:Nothing")
    with pytest.raises(MaskLabError, match="model protocol"):
        load_model("builtins:object")
