"""masklab.metrics.panoptic: hand-computed scenes, and panopticapi's sample data against a
dict-based reimplementation of panopticapi's definition (``reference/formats.md`` §2.5)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image

from masklab.core.instances import Segment, panoptic_to_instances
from masklab.core.labels import Label, LabelMap
from masklab.errors import LabelMapError, MaskFormatError
from masklab.formats import coco_panoptic
from masklab.formats._base import Sample
from masklab.metrics.panoptic import PanopticQuality

PERSON, CAR, SKY, ROAD, UNLABELED = 1, 2, 3, 4, 9
LABELS = LabelMap(
    (
        Label(PERSON, ("person",), (220, 20, 60), isthing=True),
        Label(CAR, ("car",), (0, 0, 142), isthing=True),
        Label(SKY, ("sky",), (70, 130, 180), isthing=False),
        Label(ROAD, ("road",), (128, 64, 128), isthing=False),
        Label(UNLABELED, ("unlabeled",), (0, 0, 0), isthing=False, role="ignore"),
    )
)


def seg(sid: int, cat: int, crowd: int = 0, **extra: Any) -> dict[str, Any]:
    return {"id": sid, "category_id": cat, "iscrowd": crowd, **extra}


def row(*values: int) -> np.ndarray:
    return np.array([values], np.uint32)


def scores(pq: PanopticQuality, cat: int) -> tuple[float, float, float, int, int, int]:
    c = pq.result().by_id(cat)
    return c.pq, c.sq, c.rq, c.tp, c.fp, c.fn


# --------------------------------------------------------------------------- hand-computed


def test_matched_pair_with_iou_0_6_and_a_perfect_stuff_segment():
    # person: GT 10 px, prediction covers 6 of them: IoU 6 / 10; sky: 5 px, exact
    gt = row(*[1] * 10, *[2] * 5)
    pred = row(*[7] * 6, 0, 0, 0, 0, *[8] * 5)
    pq = PanopticQuality(LABELS)
    pq.update(gt, [seg(1, PERSON), seg(2, SKY)], pred, [seg(7, PERSON), seg(8, SKY)])
    assert scores(pq, PERSON) == pytest.approx((0.6, 0.6, 1.0, 1, 0, 0))
    assert scores(pq, SKY) == pytest.approx((1.0, 1.0, 1.0, 1, 0, 0))
    r = pq.result()
    assert (r.all.pq, r.all.sq, r.all.rq, r.all.n) == pytest.approx((0.8, 0.8, 1.0, 2))
    assert (r.things.pq, r.things.n) == pytest.approx((0.6, 1))
    assert (r.stuff.pq, r.stuff.n) == pytest.approx((1.0, 1))


def test_iou_of_exactly_one_half_is_not_a_match():
    gt = row(*[1] * 10)
    pred = row(*[7] * 5, 0, 0, 0, 0, 0)
    pq = PanopticQuality(LABELS)
    pq.update(gt, [seg(1, PERSON)], pred, [seg(7, PERSON)])
    # no TP: one FN, and the prediction (none of it on VOID) is a FP
    assert scores(pq, PERSON) == (0.0, 0.0, 0.0, 0, 1, 1)


def test_predicted_pixels_on_void_do_not_enlarge_the_union():
    # union = 8 + 4 - 4 - 4 (on VOID) = 4: IoU 1, where a plain IoU would be 0.5
    gt = row(1, 1, 1, 1, 0, 0, 0, 0)
    pred = row(*[5] * 8)
    pq = PanopticQuality(LABELS)
    pq.update(gt, [seg(1, PERSON)], pred, [seg(5, PERSON)])
    assert scores(pq, PERSON) == (1.0, 1.0, 1.0, 1, 0, 0)


def test_unmatched_prediction_mostly_on_void_is_ignored_half_is_not():
    gt = row(0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2)
    pred = row(5, 5, 5, 6, 6, 0, 5, 6, 6, 9, 9, 9)
    # 5: 3 of 4 px on VOID -> ignored; 6: 2 of 4 -> a FP; 9 (sky): IoU 3 / 6 -> FN + FP
    pq = PanopticQuality(LABELS)
    pq.update(
        gt,
        [seg(2, SKY)],
        pred,
        [seg(5, PERSON), seg(6, PERSON), seg(9, SKY)],
    )
    assert scores(pq, PERSON) == (0.0, 0.0, 0.0, 0, 1, 0)
    assert scores(pq, SKY) == (0.0, 0.0, 0.0, 0, 1, 1)
    assert pq.result().all.n == 2


def test_crowd_never_matches_and_hides_same_category_predictions_only():
    # person crowd 3 on px 0..7, person 4 on px 8..11
    gt = row(3, 3, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4)
    pred = row(5, 5, 5, 5, 5, 5, 6, 6, 7, 7, 7, 7)
    pq = PanopticQuality(LABELS)
    pq.update(
        gt,
        [seg(3, PERSON, crowd=1), seg(4, PERSON)],
        pred,
        [seg(5, PERSON), seg(6, CAR), seg(7, PERSON)],
    )
    # 5 lies wholly on a person crowd: ignored; 6 is a car on a person crowd: a FP; the
    # crowd itself is no FN; 7 matches 4
    assert scores(pq, PERSON) == (1.0, 1.0, 1.0, 1, 0, 0)
    assert scores(pq, CAR) == (0.0, 0.0, 0.0, 0, 1, 0)
    r = pq.result()
    assert (r.things.pq, r.things.n) == (0.5, 2)
    assert np.isnan(r.stuff.pq)
    assert r.stuff.n == 0


def test_only_the_last_crowd_segment_of_a_category_counts_as_panopticapi():
    gt = row(1, 1, 1, 1, 2, 2, 2, 2)
    pred = row(5, 5, 5, 5, 0, 0, 0, 0)  # a person on crowd 1 only
    pq = PanopticQuality(LABELS)
    pq.update(gt, [seg(1, PERSON, crowd=1), seg(2, PERSON, crowd=1)], pred, [seg(5, PERSON)])
    assert scores(pq, PERSON)[3:] == (0, 1, 0)  # crowd 2 is the last: 5 is a FP
    pq = PanopticQuality(LABELS)
    pq.update(gt, [seg(2, PERSON, crowd=1), seg(1, PERSON, crowd=1)], pred, [seg(5, PERSON)])
    assert scores(pq, PERSON)[3:] == (0, 0, 0)  # crowd 1 is the last: 5 is ignored


def test_ground_truth_area_from_the_json_when_given():
    gt = row(*[1] * 10)
    pred = row(*[7] * 6, 0, 0, 0, 0)
    counted = PanopticQuality(LABELS)
    counted.update(gt, [Segment(1, PERSON)], pred, [Segment(7, PERSON)])
    assert scores(counted, PERSON)[3:] == (1, 0, 0)
    stated = PanopticQuality(LABELS)
    stated.update(gt, [seg(1, PERSON, area=20)], pred, [seg(7, PERSON)])
    # union = 6 + 20 - 6 = 20: IoU 0.3, no match
    assert scores(stated, PERSON)[3:] == (0, 1, 1)


def test_ignore_role_categories_are_void_in_both_maps():
    gt = row(1, 1, 1, 1, 7, 7, 7, 7)
    pred = row(5, 5, 5, 5, 5, 5, 5, 5)
    pq = PanopticQuality(LABELS)
    pq.update(gt, [seg(1, PERSON), seg(7, UNLABELED)], pred, [seg(5, PERSON)])
    assert scores(pq, PERSON) == (1.0, 1.0, 1.0, 1, 0, 0)
    assert UNLABELED not in pq.result().ids
    pq = PanopticQuality(LABELS)
    pq.update(gt, [seg(1, PERSON)], row(5, 5, 5, 5, 6, 6, 6, 6), [seg(5, PERSON), seg(6, 9)])
    assert [(c.tp, c.fp, c.fn) for c in pq.result().classes] == [(1, 0, 0)] + [(0, 0, 0)] * 3


def test_categories_never_seen_are_nan_and_out_of_the_averages():
    pq = PanopticQuality(LABELS)
    r = pq.result()
    assert r.all.n == 0
    assert np.isnan(r.all.pq)
    pq.update(row(1, 1), [seg(1, PERSON)], row(4, 4), [seg(4, PERSON)])
    r = pq.result()
    assert np.isnan(r.by_id(ROAD).pq)
    assert r.all.n == 1
    assert r.all.pq == 1.0


def test_accumulates_over_images_and_merges():
    a = (row(1, 1, 1, 1, 1), [seg(1, PERSON)], row(2, 2, 2, 2, 0), [seg(2, PERSON)])  # IoU .8
    b = (row(1, 1, 1, 1), [seg(1, PERSON)], row(0, 0, 0, 0), [])  # FN
    one = PanopticQuality(LABELS)
    one.update(*a)
    one.update(*b)
    assert scores(one, PERSON) == pytest.approx((0.8 / 1.5, 0.8, 1 / 1.5, 1, 0, 1))
    left, right = PanopticQuality(LABELS), PanopticQuality(LABELS)
    left.update(*a)
    right.update(*b)
    assert left.merge(right).to_dict() == one.to_dict()
    one.reset()
    assert one.result().all.n == 0
    with pytest.raises(ValueError, match="same LabelMap"):
        left.merge(PanopticQuality(LabelMap(LABELS.labels[:2])))


def test_predictions_are_checked_like_panopticapi():
    pq = PanopticQuality(LABELS)
    gt, gts = row(1, 1), [seg(1, PERSON)]
    with pytest.raises(MaskFormatError, match=r"ids \[6\] are painted.*no segment"):
        pq.update(gt, gts, row(5, 6), [seg(5, PERSON)])
    with pytest.raises(MaskFormatError, match=r"segments \[7\] have no pixel"):
        pq.update(gt, gts, row(5, 5), [seg(5, PERSON), seg(7, PERSON)])
    with pytest.raises(LabelMapError, match="category_id 42"):
        pq.update(gt, gts, row(5, 5), [seg(5, 42)])
    with pytest.raises(LabelMapError, match="ground-truth segment 1 has category_id 42"):
        pq.update(gt, [seg(1, 42)], row(5, 5), [seg(5, PERSON)])
    with pytest.raises(MaskFormatError, match="appears twice"):
        pq.update(gt, gts, row(5, 5), [seg(5, PERSON), seg(5, CAR)])
    with pytest.raises(MaskFormatError, match="0 is VOID"):
        pq.update(gt, [seg(0, PERSON)], row(5, 5), [seg(5, PERSON)])
    with pytest.raises(MaskFormatError, match="predict at the annotation's size"):
        pq.update(gt, gts, row(5, 5, 5), [seg(5, PERSON)])
    with pytest.raises(MaskFormatError, match="rgb_to_id"):
        pq.update(np.zeros((2, 2, 3), np.uint8), gts, row(5, 5), [seg(5, PERSON)])
    assert pq.result().all.n == 0  # nothing counted from rejected images


def test_result_to_dict_and_summary():
    pq = PanopticQuality(LABELS)
    pq.update(row(1, 1, 2), [seg(1, PERSON), seg(2, SKY)], row(1, 1, 0), [seg(1, PERSON)])
    d = json.loads(json.dumps(pq.to_dict(), allow_nan=False))
    assert d["things"] == {"pq": 1.0, "sq": 1.0, "rq": 1.0, "n": 1}
    assert d["stuff"] == {"pq": 0.0, "sq": 0.0, "rq": 0.0, "n": 1}
    assert d["classes"][3]["pq"] is None
    assert d["classes"][2]["fn"] == 1
    text = pq.result().summary()
    assert "All" in text
    assert "50.0" in text


def test_update_samples_paints_instances():
    gt_ids = np.array([[1, 1, 2], [1, 0, 2]], np.uint32)
    pred_ids = np.array([[1, 1, 2], [0, 0, 2]], np.uint32)
    gt_inst, _ = panoptic_to_instances(gt_ids, [Segment(1, PERSON), Segment(2, SKY)])
    pred_inst, _ = panoptic_to_instances(pred_ids, [Segment(1, PERSON), Segment(2, SKY)])
    pq = PanopticQuality(LABELS)
    pq.update_samples(
        Sample("a", (2, 3), instances=tuple(gt_inst)),
        Sample("a", (2, 3), instances=tuple(pred_inst)),
    )
    assert scores(pq, PERSON) == pytest.approx((2 / 3, 2 / 3, 1.0, 1, 0, 0))
    assert scores(pq, SKY) == (1.0, 1.0, 1.0, 1, 0, 0)
    with pytest.raises(MaskFormatError, match=r"\[2, 3\].*\[3, 2\]"):
        pq.update_samples(Sample("a", (2, 3)), Sample("b", (3, 2)))


def test_update_samples_rejects_overlapping_predictions_unless_told():
    gt_ids = np.array([[1, 1, 1, 1]], np.uint32)
    gt_inst, _ = panoptic_to_instances(gt_ids, [Segment(1, PERSON)])
    a, _ = panoptic_to_instances(np.array([[1, 1, 1, 0]]), [Segment(1, PERSON)])
    b, _ = panoptic_to_instances(np.array([[0, 0, 1, 1]]), [Segment(1, CAR)])
    gt = Sample("a", (1, 4), instances=tuple(gt_inst))
    pred = Sample("a", (1, 4), instances=(a[0], b[0]))
    pq = PanopticQuality(LABELS)
    with pytest.raises(MaskFormatError, match="overlap"):
        pq.update_samples(gt, pred)
    pq.update_samples(gt, pred, overlap="first")  # person keeps 3 px: IoU 3/4
    assert scores(pq, PERSON)[3:] == (1, 0, 0)
    assert scores(pq, CAR)[3:] == (0, 1, 0)


# --------------------------------------------------------------------------- reference


def reference_pq(
    images: list[tuple[np.ndarray, list[dict], np.ndarray, list[dict]]],
    categories: dict[int, bool],
) -> dict[str, Any]:
    """panopticapi's PQ as its README and paper define it, with dicts and np.unique."""
    stat: dict[int, dict[str, float]] = defaultdict(lambda: dict(tp=0, fp=0, fn=0, iou=0.0))
    for gt, gt_info, pred, pred_info in images:
        gt_segms = {s["id"]: s for s in gt_info}
        pred_segms = {s["id"]: dict(s) for s in pred_info}
        ids, counts = np.unique(pred, return_counts=True)
        for i, n in zip(ids.tolist(), counts.tolist(), strict=True):
            if i != 0:
                pred_segms[i]["area"] = n
        pairs, counts = np.unique(
            gt.astype(np.uint64) * 256**3 + pred.astype(np.uint64), return_counts=True
        )
        inter = {
            (int(p) // 256**3, int(p) % 256**3): int(n) for p, n in zip(pairs, counts, strict=True)
        }
        gt_done, pred_done = set(), set()
        for (g, p), n in inter.items():
            if g not in gt_segms or p not in pred_segms or gt_segms[g]["iscrowd"]:
                continue
            if gt_segms[g]["category_id"] != pred_segms[p]["category_id"]:
                continue
            union = pred_segms[p]["area"] + gt_segms[g]["area"] - n - inter.get((0, p), 0)
            if n / union > 0.5:
                stat[gt_segms[g]["category_id"]]["tp"] += 1
                stat[gt_segms[g]["category_id"]]["iou"] += n / union
                gt_done.add(g)
                pred_done.add(p)
        crowd = {}
        for g, info in gt_segms.items():
            if g in gt_done:
                continue
            if info["iscrowd"]:
                crowd[info["category_id"]] = g
                continue
            stat[info["category_id"]]["fn"] += 1
        for p, info in pred_segms.items():
            if p in pred_done:
                continue
            off = inter.get((0, p), 0)
            if info["category_id"] in crowd:
                off += inter.get((crowd[info["category_id"]], p), 0)
            if off / info["area"] > 0.5:
                continue
            stat[info["category_id"]]["fp"] += 1
    out: dict[str, Any] = {"per_class": {}}
    for name, want in (("all", None), ("things", True), ("stuff", False)):
        vals = []
        for cat, isthing in categories.items():
            if want is not None and isthing != want:
                continue
            s = stat[cat]
            if s["tp"] + s["fp"] + s["fn"] == 0:
                continue
            d = s["tp"] + 0.5 * s["fp"] + 0.5 * s["fn"]
            pq, rq = s["iou"] / d, s["tp"] / d
            sq = s["iou"] / s["tp"] if s["tp"] else 0.0
            vals.append((pq, sq, rq))
            out["per_class"][cat] = dict(s, pq=pq, sq=sq, rq=rq)
        out[name] = [*np.mean(vals, axis=0).tolist(), len(vals)]
    return out


def read_ids(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB")).astype(np.uint32)
    return rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]


@pytest.fixture
def sample_data(shared_data):
    root = shared_data("panopticapi", "sample_data")
    doc = json.loads((root / "panoptic_examples.json").read_text())
    images = [
        (read_ids(root / "panoptic_examples" / a["file_name"]), a["segments_info"])
        for a in doc["annotations"]
    ]
    categories = {c["id"]: bool(c["isthing"]) for c in doc["categories"]}
    return root, images, categories


def perturb(ids: np.ndarray, info: list[dict]) -> tuple[np.ndarray, list[dict]]:
    """A prediction: two persons merged into one, the largest stuff segment eroded (to
    VOID), a person relabelled as truck, a person grown over its neighbours, one removed,
    crowd regions grown, a spurious person in the top-left corner."""
    pred = ids.copy()
    out = [dict(s) for s in info]
    persons = [s for s in out if s["category_id"] == 1 and not s["iscrowd"]]
    keep, merged, relabel, grow, drop = persons[:5]
    pred[pred == merged["id"]] = keep["id"]
    stuff = max((s for s in out if s["category_id"] > 91), key=lambda s: s["area"])
    mask = (pred == stuff["id"]).astype(np.uint8)
    pred[(mask == 1) & (cv2.erode(mask, np.ones((25, 25), np.uint8)) == 0)] = 0
    relabel["category_id"] = 8
    big = cv2.dilate((pred == grow["id"]).astype(np.uint8), np.ones((15, 15), np.uint8))
    pred[big == 1] = grow["id"]
    pred[pred == drop["id"]] = 0
    for crowd in (s for s in out if s["iscrowd"]):  # crowds predicted a little larger
        big = cv2.dilate((pred == crowd["id"]).astype(np.uint8), np.ones((9, 9), np.uint8))
        pred[big == 1] = crowd["id"]
    pred[:20, :20] = 7777777  # a spurious person in a corner
    out.append({"id": 7777777, "category_id": 1, "iscrowd": 0})
    present = set(np.unique(pred).tolist())
    return pred, [s for s in out if s["id"] in present and s["id"] != merged["id"]]


def assert_same(ours: PanopticQuality, ref: dict[str, Any]) -> None:
    r = ours.result()
    for name in ("all", "things", "stuff"):
        avg = getattr(r, name)
        assert [avg.pq, avg.sq, avg.rq, avg.n] == pytest.approx(ref[name], abs=1e-12)
    seen = {c.id: c for c in r.classes if c.tp + c.fp + c.fn}
    assert set(seen) == set(ref["per_class"])
    for cat, s in ref["per_class"].items():
        c = seen[cat]
        assert (c.tp, c.fp, c.fn) == (s["tp"], s["fp"], s["fn"])
        assert (c.iou, c.pq, c.sq, c.rq) == pytest.approx((s["iou"], s["pq"], s["sq"], s["rq"]))


# --------------------------------------------------------------------------- real files


def test_ground_truth_as_prediction_scores_one_per_present_class(sample_data):
    root, images, _ = sample_data
    labels = coco_panoptic.Reader(root / "panoptic_examples.json").labels
    pq = PanopticQuality(labels)
    for ids, info in images:
        pq.update(ids, info, ids, info)
    r = pq.result()
    present = {s["category_id"] for _, info in images for s in info}
    assert {c.id for c in r.classes if c.tp + c.fp + c.fn} == present
    for cat in present:
        c = r.by_id(cat)
        n = sum(
            1 for _, info in images for s in info if s["category_id"] == cat and not s["iscrowd"]
        )
        assert (c.pq, c.sq, c.rq, c.tp, c.fp, c.fn) == pytest.approx((1, 1, 1, n, 0, 0))
    assert (r.all.pq, r.all.n, r.things.n, r.stuff.n) == (
        1.0,
        8,
        4,
        4,
    )  # 1 8 19 37 | 125 184 187 193


def test_reader_samples_as_ground_truth_and_prediction(sample_data):
    root, *_ = sample_data
    reader = coco_panoptic.Reader(root / "panoptic_examples.json")
    pq = PanopticQuality(reader.labels)
    for sample in reader:
        pq.update_samples(sample, sample)
    r = pq.result()
    assert (r.all.pq, r.all.n) == (1.0, 8)
    assert r.by_id(1).tp == 13 + 13  # persons, crowd left out: 13 in each image


def test_perturbed_prediction_matches_the_reference(sample_data):
    root, images, categories = sample_data
    labels = coco_panoptic.Reader(root / "panoptic_examples.json").labels
    pq = PanopticQuality(labels)
    evaluated = []
    for ids, info in images:
        pred, pred_info = perturb(ids, info)
        pq.update(ids, info, pred, pred_info)
        evaluated.append((ids, info, pred, pred_info))
    ref = reference_pq(evaluated, categories)
    assert_same(pq, ref)
    r = pq.result()
    assert r.by_id(1).fn > 0
    assert r.by_id(1).fp > 0
    assert r.by_id(8).fp > 0
    assert r.all.pq < 0.95


def test_perturbed_prediction_through_samples(sample_data):
    root, images, categories = sample_data
    reader = coco_panoptic.Reader(root / "panoptic_examples.json")
    pq = PanopticQuality(reader.labels)
    evaluated = []
    for sample, (ids, info) in zip(reader, images, strict=True):
        pred, pred_info = perturb(ids, info)
        segments = [Segment(s["id"], s["category_id"], bool(s["iscrowd"])) for s in pred_info]
        instances, unknown = panoptic_to_instances(pred, segments)
        assert unknown == []
        pq.update_samples(sample, Sample(sample.id, sample.size, instances=tuple(instances)))
        evaluated.append((ids, info, pred, pred_info))
    assert_same(pq, reference_pq(evaluated, categories))


def test_json_areas_are_used_for_the_ground_truth(sample_data):
    _, images, categories = sample_data
    ids, info = images[0]
    pred, pred_info = perturb(ids, info)
    inflated = [dict(s, area=s["area"] * 3) for s in info]  # areas the PNG does not have
    labels = LabelMap(
        tuple(Label(c, (str(c),), (0, 0, 0), isthing=t) for c, t in categories.items())
    )
    pq = PanopticQuality(labels)
    pq.update(ids, inflated, pred, pred_info)
    assert_same(pq, reference_pq([(ids, inflated, pred, pred_info)], categories))
    assert pq.result().all.pq < 0.5
