"""IIS metrics (reference/iis.md §1.5): IoU without ignore, NoC, both NoF counts, mIoU@k, SPC,
on sequences written by hand, plus perfect and empty models run through the RITM robot."""

from __future__ import annotations

import json

import numpy as np
import pytest

from masklab.errors import MaskFormatError
from masklab.iis.clicks import Click
from masklab.iis.metrics import NocSummary, iou, noc, summarize
from masklab.iis.robots import ritm

# --------------------------------------------------------------------------- iou


def test_iou_skips_ignore_pixels():
    gt = np.array([[1, 1, 1, 0], [0, 0, -1, -1]], np.int8)
    pred = np.array([[1, 1, 0, 1], [0, 0, 1, 1]], bool)
    # object {00,01,02}; prediction off ignore {00,01,03}: 2 shared, union 4
    assert iou(gt, pred) == 0.5


def test_iou_matches_a_pixel_count_on_random_masks():
    rng = np.random.default_rng(0)
    for _ in range(50):
        gt = rng.choice(np.array([-1, 0, 1], np.int8), size=(13, 17), p=[0.1, 0.5, 0.4])
        pred = rng.random((13, 17)) < 0.5
        inter = union = 0
        for g, p in zip(gt.ravel(), pred.ravel(), strict=True):
            if g == -1:
                continue
            inter += int(g == 1 and p)
            union += int(g == 1 or p)
        assert iou(gt, pred) == pytest.approx(inter / union, abs=1e-15)


def test_iou_of_nothing_against_nothing_is_one():
    assert iou(np.zeros((3, 3), np.int8), np.zeros((3, 3), bool)) == 1.0


def test_iou_rejects_mismatched_shapes():
    with pytest.raises(MaskFormatError, match="pred has shape"):
        iou(np.zeros((3, 3), np.int8), np.zeros((3, 4), bool))


# --------------------------------------------------------------------------- noc


def test_noc_is_the_first_click_reaching_the_threshold_counting_from_one():
    ious = [0.40, 0.84, 0.85, 0.80, 0.93]
    assert noc(ious, 0.85) == 3  # >= : exactly 0.85 counts
    assert noc(ious, 0.90) == 5
    assert noc(ious, 0.80) == 2


def test_noc_is_max_clicks_when_never_reached():
    assert noc([0.1, 0.2, 0.3], 0.9, max_clicks=20) == 20
    assert noc([], 0.9, max_clicks=5) == 5


def test_noc_only_looks_at_the_first_max_clicks():
    assert noc([0.1, 0.2, 0.95], 0.9, max_clicks=2) == 2


# --------------------------------------------------------------------------- summarize

RUNS = [
    [0.91, 0.95, 0.97],  # NoC@85 1, NoC@90 1
    [0.50, 0.86, 0.88],  # NoC@85 2, NoC@90 never -> 3
    [0.20, 0.40, 0.90],  # NoC@85 3 (reached at the last click), NoC@90 3 (idem)
]


def test_summarize_means_noc_and_counts_both_failure_definitions():
    r = summarize(RUNS, max_clicks=3, ks=(1, 3))
    assert r.noc == {0.85: pytest.approx(2.0), 0.90: pytest.approx(7 / 3)}
    assert r.nof == {0.85: 1, 0.90: 2}  # NoC == max_clicks, as RITM
    assert r.nof_never == {0.85: 0, 0.90: 1}  # never reached
    assert r.miou_at_k == {1: pytest.approx(1.61 / 3), 3: pytest.approx(2.75 / 3)}
    assert r.n_samples == 3
    assert r.n_clicks == 9


def test_summarize_leaves_out_miou_at_k_that_an_early_stopped_run_did_not_reach():
    r = summarize([[0.95], [0.5, 0.7, 0.92]], thresholds=(0.9,), max_clicks=20, ks=(1, 2, 3))
    assert r.miou_at_k == {1: pytest.approx(0.725)}
    assert r.miou_missing == (2, 3)
    assert r.miou_curve == (pytest.approx(0.725),)
    assert r.noc == {0.9: 2.0}


def test_summarize_seconds_per_click_divides_by_clicks_run():
    r = summarize([[0.95], [0.5, 0.7, 0.92]], seconds=2.0)
    assert r.spc == pytest.approx(0.5)
    assert r.spi == pytest.approx(1.0)
    assert summarize([[0.95]]).spc is None


def test_summarize_to_dict_is_json():
    d = json.loads(json.dumps(summarize(RUNS, max_clicks=3, seconds=1.5).to_dict()))
    assert d["noc"] == {"85": 2.0, "90": pytest.approx(7 / 3)}
    assert d["nof"] == {"85": 1, "90": 2}
    assert d["nof_never"] == {"85": 0, "90": 1}
    assert d["miou_missing"] == [5, 10, 20]


def test_summarize_needs_samples():
    with pytest.raises(ValueError, match="at least one sample"):
        summarize([])


def test_noc_summary_is_the_result_type():
    assert isinstance(summarize(RUNS), NocSummary)


# --------------------------------------------------------------------------- models


def run_model(gt, model, k=20):
    """RITM's loop (§1.3) in all-clicks mode: robot on the previous binary prediction."""
    pred = np.zeros(gt.shape, bool)
    clicks: list[Click] = []
    ious = []
    for _ in range(k):
        clicks.append(ritm(gt, pred, clicks))
        pred = model(gt, clicks)
        ious.append(iou(gt, pred))
    return ious


def targets():
    gts = []
    for h, w, box in [(20, 30, (3, 15, 4, 20)), (25, 25, (0, 10, 5, 25)), (16, 40, (5, 11, 2, 39))]:
        gt = np.zeros((h, w), np.int8)
        r0, r1, c0, c1 = box
        gt[r0:r1, c0:c1] = 1
        gt[r0, c0:c1] = -1  # an ignore band on the top edge
        gts.append(gt)
    return gts


def test_a_perfect_model_needs_one_click():
    runs = [run_model(gt, lambda g, _: g == 1) for gt in targets()]
    r = summarize(runs)
    assert r.noc == {0.85: 1.0, 0.90: 1.0}
    assert r.nof == {0.85: 0, 0.90: 0}
    assert r.miou_at_k[20] == 1.0


def test_an_empty_model_needs_max_clicks_and_fails_everywhere():
    runs = [run_model(gt, lambda g, _: np.zeros(g.shape, bool)) for gt in targets()]
    r = summarize(runs)
    assert r.noc == {0.85: 20.0, 0.90: 20.0}
    assert r.nof == {0.85: 3, 0.90: 3}
    assert r.nof_never == {0.85: 3, 0.90: 3}
    assert r.miou_at_k[1] == 0.0
