"""COCO AP/AR (masklab.metrics.coco) against pycocotools' COCOeval run on the same inputs.

The oracle is pycocotools itself (COCO + loadRes + COCOeval evaluate/accumulate/summarize),
given deep copies since it writes into its inputs. Every comparison covers the 12 stats and
the precision, recall and scores arrays, to 1e-9.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from masklab.core import polygon, rle
from masklab.core.instances import Instance
from masklab.core.labels import Label, LabelMap
from masklab.errors import FormatError
from masklab.formats import coco as coco_format
from masklab.formats._base import Sample
from masklab.metrics import coco as ce

PANOPTIC_DETECTION = ("panopticapi", "sample_data", "panoptic_coco_detection_format.json")
AIRO_VAL2017 = (
    "airo-mono-coco-val2017-small",
    "airo-dataset-tools",
    "test",
    "test_data",
    "instances_val2017_small.json",
)


# --------------------------------------------------------------------------- oracle


def pycoco(
    gt: dict[str, Any], results: list[dict[str, Any]], iou_type: str = "segm", **params: Any
) -> COCOeval:
    """pycocotools' COCOeval on deep copies; ``params`` named as masklab's keywords."""
    gt, results = copy.deepcopy(gt), copy.deepcopy(results)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results)
        ev = COCOeval(coco_gt, coco_dt, iou_type)
        p = ev.params
        if "img_ids" in params:
            p.imgIds = list(params["img_ids"])
        if "cat_ids" in params:
            p.catIds = list(params["cat_ids"])
        if "iou_thresholds" in params:
            p.iouThrs = np.asarray(params["iou_thresholds"], float)
        if "rec_thresholds" in params:
            p.recThrs = np.asarray(params["rec_thresholds"], float)
        if "max_dets" in params:
            p.maxDets = list(params["max_dets"])
        if "area_ranges" in params:
            p.areaRng = [list(r) for r in params["area_ranges"].values()]
            p.areaRngLbl = list(params["area_ranges"])
        if "use_cats" in params:
            p.useCats = int(params["use_cats"])
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def assert_same(ours: ce.CocoEvalResult, theirs: COCOeval) -> None:
    np.testing.assert_allclose(ours.stats, theirs.stats, rtol=0, atol=1e-9)
    for name in ("precision", "recall", "scores"):
        a, b = getattr(ours, name), theirs.eval[name]
        assert a.shape == b.shape, name
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-9, err_msg=name)


def check(gt: dict[str, Any], results: list[dict[str, Any]], **kw: Any) -> ce.CocoEvalResult:
    """masklab's result, after asserting it equals pycocotools' and left the inputs alone."""
    before = copy.deepcopy((gt, results))
    ours = ce.evaluate(gt, results, **kw)
    assert (gt, results) == before, "evaluate modified its inputs"
    assert_same(ours, pycoco(gt, results, **kw))
    return ours


# --------------------------------------------------------------------------- data


def gt_mask(ann: dict[str, Any], h: int, w: int) -> rle.RLE:
    seg = ann["segmentation"]
    if isinstance(seg, list):
        return polygon.to_rle(seg, h, w)
    if isinstance(seg["counts"], list):
        return rle.from_coco({"size": [h, w], "counts": seg["counts"]})
    return rle.from_coco(seg)


def jittered_results(
    gt: dict[str, Any], seed: int, *, drop: float = 0.2, fps: int = 8, boxes: bool = False
) -> list[dict[str, Any]]:
    """Predictions near the ground truth: shifted, grown or cut masks, some of another
    category, some dropped, plus false positives; scores on a 0.05 grid (ties)."""
    rng = np.random.default_rng(seed)
    sizes = {im["id"]: (im["height"], im["width"]) for im in gt["images"]}
    cats = [c["id"] for c in gt["categories"]]
    out: list[dict[str, Any]] = []
    for ann in gt["annotations"]:
        if ann.get("iscrowd") or rng.random() < drop:
            continue
        h, w = sizes[ann["image_id"]]
        m = gt_mask(ann, h, w)
        for _ in range(int(rng.integers(1, 3))):
            r = rle.translate(m, int(rng.integers(-4, 5)), int(rng.integers(-4, 5)))
            x, y = rng.uniform(0, w - 1), rng.uniform(0, h - 1)
            blob = polygon.box_to_rle([x, y, rng.uniform(1, 30), rng.uniform(1, 30)], h, w)
            r = rle.merge([r, blob], "union" if rng.random() < 0.5 else "difference")
            cat = ann["category_id"] if rng.random() < 0.85 else int(rng.choice(cats))
            out.append(_record(ann["image_id"], cat, r, rng, boxes))
    ids = list(sizes)
    for _ in range(fps):
        img = ids[int(rng.integers(len(ids)))]
        h, w = sizes[img]
        bw, bh = rng.uniform(2, w / 2), rng.uniform(2, h / 2)
        r = polygon.box_to_rle([rng.uniform(0, w - bw), rng.uniform(0, h - bh), bw, bh], h, w)
        out.append(_record(img, int(rng.choice(cats)), r, rng, boxes))
    out = [out[i] for i in rng.permutation(len(out))]
    return out


def _record(
    img: Any, cat: int, r: rle.RLE, rng: np.random.Generator, boxes: bool
) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "image_id": img,
        "category_id": cat,
        "segmentation": r.to_coco(),
        "score": round(float(rng.choice(np.arange(0.05, 1.0, 0.05))), 2),
    }
    if boxes:
        rec["bbox"] = [float(v) + float(rng.normal(0, 0.7)) for v in rle.bbox(r)]
    return rec


def renumbered(gt: dict[str, Any]) -> dict[str, Any]:
    """The same ground truth with annotation ids counting from 1 (pycocotools reads id 0 as
    "no match", formats.md §1.9)."""
    out = copy.deepcopy(gt)
    for k, ann in enumerate(out["annotations"]):
        ann["id"] = k + 1
    return out


def tiny_gt(
    anns: list[dict[str, Any]], *, n_images: int = 1, h: int = 20, w: int = 20, n_cats: int = 2
) -> dict[str, Any]:
    """A hand-made ground truth: ``anns`` get ids 1.. and default fields."""
    full = []
    for k, ann in enumerate(anns):
        a = {"id": k + 1, "image_id": 1, "category_id": 1, "iscrowd": 0} | ann
        if "area" not in a:
            a["area"] = float(rle.area(gt_mask(a, h, w)))
        if "bbox" not in a:
            a["bbox"] = rle.bbox(gt_mask(a, h, w)).tolist()
        full.append(a)
    return {
        "images": [{"id": i, "height": h, "width": w} for i in range(1, n_images + 1)],
        "categories": [{"id": c, "name": f"c{c}"} for c in range(1, n_cats + 1)],
        "annotations": full,
    }


def box_poly(x: float, y: float, w: float, h: float) -> list[list[float]]:
    return [[x, y, x + w, y, x + w, y + h, x, y + h]]


def box_rle(
    x: float, y: float, w: float, h: float, size: tuple[int, int] = (20, 20)
) -> dict[str, Any]:
    return polygon.box_to_rle([x, y, w, h], *size).to_coco()


def det(img: int, cat: int, seg: dict[str, Any], score: float, **extra: Any) -> dict[str, Any]:
    return {"image_id": img, "category_id": cat, "segmentation": seg, "score": score} | extra


# --------------------------------------------------------------------------- real samples


@pytest.fixture
def panoptic_gt(shared_data: Any) -> dict[str, Any]:
    gt: dict[str, Any] = json.loads(shared_data(*PANOPTIC_DETECTION).read_text())
    return gt


@pytest.fixture
def airo_gt(shared_data: Any) -> dict[str, Any]:
    gt: dict[str, Any] = json.loads(shared_data(*AIRO_VAL2017).read_text())
    return gt


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_panopticapi_sample_with_jittered_predictions_equals_pycocotools(panoptic_gt, iou_type):
    gt = renumbered(panoptic_gt)
    results = jittered_results(gt, seed=5)
    ours = check(gt, results, iou_type=iou_type)
    assert 0 < ours.stats[0] < 1


def test_panopticapi_sample_with_box_results_equals_pycocotools(panoptic_gt):
    """Results with a bbox: loadRes takes area = w * h for every one (formats.md §1.9)."""
    gt = renumbered(panoptic_gt)
    results = jittered_results(gt, seed=6, boxes=True)
    check(gt, results, iou_type="bbox")
    check(gt, results, iou_type="segm")


def test_panopticapi_sample_against_itself_is_perfect(panoptic_gt):
    gt = renumbered(panoptic_gt)
    results = [
        det(a["image_id"], a["category_id"], a["segmentation"], 1 - k / 100)
        for k, a in enumerate(a for a in gt["annotations"] if not a["iscrowd"])
    ]
    ours = check(gt, results)
    defined = ours.stats[[0, 1, 2, 3, 4, 5, 8, 9, 10, 11]]
    assert np.allclose(np.where(defined == -1, 1, defined), 1, rtol=0, atol=1e-12)
    assert ours.stats[0] == pytest.approx(1)
    at_100 = ours.precision[..., 2]  # maxDets 100: every object found, nothing else
    # tp / (tp + fp + eps): COCOeval's "1" is 1 - 2e-16
    assert (at_100 > -1).any()
    assert np.allclose(at_100[at_100 > -1], 1, rtol=0, atol=1e-12)


def test_panopticapi_sample_ids_from_zero_match_in_masklab_only(panoptic_gt):
    """The sample's ids start at 0: COCOeval counts that match as a false positive and a
    miss (formats.md §1.9); masklab does not use ids, so the numbers equal the renumbered
    ground truth's."""
    assert min(a["id"] for a in panoptic_gt["annotations"]) == 0
    results = jittered_results(panoptic_gt, seed=7, drop=0)
    ours = ce.evaluate(panoptic_gt, results)
    assert_same(ours, pycoco(renumbered(panoptic_gt), results))
    theirs = pycoco(panoptic_gt, results)
    assert not np.allclose(ours.precision, theirs.eval["precision"])


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_airo_val2017_sample_polygons_and_crowd_equals_pycocotools(airo_gt, iou_type):
    crowd = [a for a in airo_gt["annotations"] if a["iscrowd"]]
    assert crowd
    assert isinstance(crowd[0]["segmentation"]["counts"], list)
    results = jittered_results(airo_gt, seed=11, fps=12)
    # detections on the crowd region, which it absorbs (ignored, not false positives)
    img = {im["id"]: im for im in airo_gt["images"]}[crowd[0]["image_id"]]
    m = gt_mask(crowd[0], img["height"], img["width"])
    for k in range(3):
        left = polygon.box_to_rle([0, 0, 40 + 30 * k, img["height"]], img["height"], img["width"])
        part = rle.merge([m, left], "intersection")
        results.append(det(img["id"], crowd[0]["category_id"], part.to_coco(), 0.5 + k / 10))
    check(airo_gt, results, iou_type=iou_type)


def test_airo_val2017_sample_with_custom_params_equals_pycocotools(airo_gt):
    results = jittered_results(airo_gt, seed=12)
    cats = sorted({a["category_id"] for a in airo_gt["annotations"]})
    check(
        airo_gt,
        results,
        img_ids=[397133, 37777],
        cat_ids=[*cats[:5], 999],
        iou_thresholds=[0.3, 0.5, 0.75],
        rec_thresholds=np.linspace(0, 1, 11),
        max_dets=[2, 5, 50],
        area_ranges={"all": (0, 1e10), "small": (0, 500), "large": (500, 1e10)},
    )
    check(airo_gt, results, use_cats=False)


# --------------------------------------------------------------------------- hand-made cases


def test_detections_on_a_crowd_region_are_ignored_not_false_positives():
    crowd_region = rle.from_coco(box_rle(10, 2, 8, 16)).to_coco(compressed=False)  # as COCO
    gt = tiny_gt(
        [
            {"segmentation": box_poly(1, 1, 6, 6)},
            {"segmentation": crowd_region, "iscrowd": 1},
        ]
    )
    results = [
        det(1, 1, box_rle(1, 1, 6, 6), 0.6),  # the object
        det(1, 1, box_rle(10, 2, 4, 8), 0.9),  # inside the crowd region
        det(1, 1, box_rle(12, 8, 5, 5), 0.8),  # inside the crowd region too
    ]
    ours = check(gt, results)
    assert ours.stats[0] == pytest.approx(1.0)  # had they been false positives: < 1


def test_ignore_key_has_no_effect_as_in_cocoeval():
    """COCOeval overwrites a json 'ignore' with 'iscrowd'."""
    gt = tiny_gt([{"segmentation": box_poly(1, 1, 6, 6), "ignore": 1}])
    ours = check(gt, [det(1, 1, box_rle(1, 1, 6, 6), 0.9)])
    assert ours.stats[0] == pytest.approx(1.0)


def test_unmatched_detections_outside_an_area_range_are_ignored():
    gt = tiny_gt([{"segmentation": box_poly(0, 0, 12, 12), "area": 144.0}], h=40, w=40)
    results = [
        det(1, 1, box_rle(0, 0, 12, 12, (40, 40)), 0.5),
        det(1, 1, box_rle(20, 20, 2, 2, (40, 40)), 0.9),  # area 4: out of "medium"
        det(1, 1, box_rle(20, 0, 15, 15, (40, 40)), 0.8),  # area 225: in "medium"
    ]
    areas = {"all": (0, 1e10), "small": (0, 16), "medium": (16, 400), "large": (400, 1e10)}
    ours = check(gt, results, area_ranges=areas)
    # medium: the false positive of area 225 counts, the one of area 4 does not
    assert ours.recall[0, 0, 2, 2] == 1.0
    assert ours.precision[0, 0, 0, 2, 2] == pytest.approx(0.5)


def test_ground_truth_area_comes_from_the_json_not_the_mask():
    # a 6x6 square whose json area says "large"
    gt = tiny_gt([{"segmentation": box_poly(1, 1, 6, 6), "area": 1e4}])
    ours = check(gt, [det(1, 1, box_rle(1, 1, 6, 6), 0.9)])
    assert ours.stats[3] == -1  # APs: no small object
    assert ours.stats[5] == pytest.approx(1.0)  # APl


def test_more_detections_than_max_dets_are_cut_per_image_and_category():
    rng = np.random.default_rng(3)
    anns = [{"segmentation": box_poly(2 * (k % 10), 2 * (k // 10), 2, 2)} for k in range(60)]
    gt = tiny_gt(anns)
    results = [
        det(1, 1, box_rle(2 * (k % 10), 2 * (k // 10), 2, 2), float(rng.random()))
        for k in range(60)
    ] + [det(1, 1, box_rle(0, 0, 3, 3), float(rng.random())) for _ in range(70)]
    ours = check(gt, results)
    check(gt, results, max_dets=[1, 5, 20])
    assert ours.stats[6] < ours.stats[7] < ours.stats[8]


def test_ties_in_score_break_by_image_then_input_order():
    gt = tiny_gt(
        [
            {"segmentation": box_poly(0, 0, 5, 5)},
            {"segmentation": box_poly(0, 0, 5, 5), "image_id": 2},
            {"segmentation": box_poly(10, 10, 5, 5), "image_id": 2},
        ],
        n_images=3,
    )
    results = [
        det(2, 1, box_rle(0, 0, 6, 6), 0.5),
        det(3, 1, box_rle(0, 0, 5, 5), 0.5),
        det(1, 1, box_rle(0, 0, 5, 5), 0.5),
        det(2, 1, box_rle(10, 10, 5, 4), 0.5),
        det(1, 1, box_rle(1, 1, 5, 5), 0.5),
        det(2, 1, box_rle(0, 0, 5, 5), 0.5),
    ]
    check(gt, results)
    check(gt, results[::-1])


def test_categories_without_ground_truth_are_minus_one():
    gt = tiny_gt([{"segmentation": box_poly(0, 0, 5, 5)}], n_cats=3)
    results = [det(1, 1, box_rle(0, 0, 5, 5), 0.9), det(1, 3, box_rle(0, 0, 5, 5), 0.8)]
    ours = check(gt, results)
    assert (ours.precision[:, :, 1:] == -1).all()
    assert (ours.recall[:, 1:] == -1).all()
    per_class = ours.per_class()
    assert per_class[1]["AP"] == pytest.approx(1.0)
    assert per_class[2] == {"AP": -1, "AP50": -1, "AP75": -1, "AR": -1}


def test_images_without_detections_count_their_misses():
    gt = tiny_gt(
        [
            {"segmentation": box_poly(0, 0, 5, 5)},
            {"segmentation": box_poly(0, 0, 5, 5), "image_id": 2},
        ],
        n_images=2,
    )
    ours = check(gt, [det(1, 1, box_rle(0, 0, 5, 5), 0.9)])
    assert ours.stats[8] == pytest.approx(0.5)


def test_greedy_matching_takes_the_best_free_ground_truth_at_each_threshold():
    gt = tiny_gt(
        [{"segmentation": box_poly(0, 0, 10, 10)}, {"segmentation": box_poly(2, 0, 10, 10)}],
        w=30,
    )
    results = [
        det(1, 1, box_rle(1, 0, 10, 10, (20, 30)), 0.9),  # between both
        det(1, 1, box_rle(0, 0, 10, 10, (20, 30)), 0.8),
        det(1, 1, box_rle(2, 0, 10, 10, (20, 30)), 0.7),
    ]
    check(gt, results)
    check(gt, results, iou_type="bbox")


def test_bbox_results_use_box_area_and_box_iou():
    gt = tiny_gt(
        [
            {"segmentation": box_poly(1, 1, 6, 6), "bbox": [1.0, 1.0, 6.0, 6.0]},
            {"segmentation": box_poly(8, 8, 10, 10), "bbox": [8.0, 8.0, 10.0, 10.0], "iscrowd": 1},
        ]
    )
    results = [
        {"image_id": 1, "category_id": 1, "bbox": [1.5, 1.0, 6.0, 5.5], "score": 0.9},
        {"image_id": 1, "category_id": 1, "bbox": [9.0, 9.0, 3.0, 3.0], "score": 0.8},
        {"image_id": 1, "category_id": 2, "bbox": [0.0, 0.0, 4.0, 4.0], "score": 0.7},
    ]
    check(gt, results, iou_type="bbox")
    check(gt, results, iou_type="segm")  # masks made from the boxes, as loadRes does


def test_result_polygons_and_uncompressed_rle_are_read_like_compressed():
    gt = tiny_gt([{"segmentation": box_poly(1, 1, 6, 6)}])
    compressed = [det(1, 1, box_rle(1, 1, 6, 5), 0.9), det(1, 1, box_rle(0, 0, 3, 3), 0.8)]
    other = [
        det(1, 1, box_poly(1, 1, 6, 5), 0.9),
        det(1, 1, rle.from_coco(box_rle(0, 0, 3, 3)).to_coco(compressed=False), 0.8),
    ]
    assert_same(ce.evaluate(gt, other), pycoco(gt, compressed))


# --------------------------------------------------------------------------- id 0


def test_ground_truth_id_zero_is_matched_unlike_pycocotools():
    gt = tiny_gt([{"segmentation": box_poly(1, 1, 6, 6)}])
    gt["annotations"][0]["id"] = 0
    results = [det(1, 1, box_rle(1, 1, 6, 6), 0.9)]
    assert ce.evaluate(gt, results).stats[0] == pytest.approx(1.0)
    assert pycoco(gt, results).stats[0] == 0.0  # pycocotools: the match reads as "none"


# --------------------------------------------------------------------------- hypothesis


@st.composite
def cases(draw: st.DrawFn) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    seed = draw(st.integers(0, 2**32 - 1))
    n_images = draw(st.integers(1, 3))
    n_cats = draw(st.integers(1, 3))
    crowd_p = draw(st.sampled_from([0.0, 0.2]))
    rng = np.random.default_rng(seed)
    images, anns, results = [], [], []
    for i in range(1, n_images + 1):
        h, w = int(rng.integers(4, 13)), int(rng.integers(4, 13))
        images.append({"id": i, "height": h, "width": w})
        masks = []
        for _ in range(int(rng.integers(0, 6))):
            x, y = rng.uniform(0, w - 1), rng.uniform(0, h - 1)
            bw, bh = rng.uniform(0.5, w - x), rng.uniform(0.5, h - y)
            poly = box_poly(round(x, 1), round(y, 1), round(bw, 1), round(bh, 1))
            m = polygon.to_rle(poly, h, w)
            crowd = bool(rng.random() < crowd_p)
            seg: Any = m.to_coco(compressed=False) if crowd else poly
            area = float(rle.area(m)) * float(rng.choice([1.0, 0.5, 2.0]))
            cat = int(rng.integers(1, n_cats + 1))
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i,
                    "category_id": cat,
                    "segmentation": seg,
                    "area": area,
                    "bbox": [float(v) for v in rle.bbox(m)],
                    "iscrowd": int(crowd),
                }
            )
            masks.append((m, cat))
        for _ in range(int(rng.integers(0, 8))):
            if masks and rng.random() < 0.7:
                m, cat = masks[int(rng.integers(len(masks)))]
                m = rle.translate(m, int(rng.integers(-1, 2)), int(rng.integers(-1, 2)))
                if rng.random() < 0.2:
                    cat = int(rng.integers(1, n_cats + 1))
            else:
                m = rle.encode(rng.random((h, w)) < 0.3)
                cat = int(rng.integers(1, n_cats + 1))
            results.append(det(i, cat, m.to_coco(), float(rng.choice([0.2, 0.5, 0.7, 0.9]))))
    if not results:  # pycocotools' loadRes needs one
        h, w = images[0]["height"], images[0]["width"]
        results.append(det(1, 1, rle.encode(np.ones((h, w))).to_coco(), 0.5))
    gt = {
        "images": images,
        "categories": [{"id": c, "name": f"c{c}"} for c in range(1, n_cats + 1)],
        "annotations": anns,
    }
    return gt, results


SMALL_AREAS = {"all": (0, 1e10), "small": (0, 6), "medium": (6, 30), "large": (30, 1e10)}


@settings(max_examples=40, deadline=None)
@given(case=cases(), iou_type=st.sampled_from(["segm", "bbox"]), use_cats=st.booleans())
def test_random_small_sets_equal_pycocotools(case, iou_type, use_cats):
    gt, results = case
    check(
        gt,
        results,
        iou_type=iou_type,
        use_cats=use_cats,
        max_dets=[1, 2, 5],
        area_ranges=SMALL_AREAS,
    )


# --------------------------------------------------------------------------- samples


def as_samples(
    gt: dict[str, Any], results: list[dict[str, Any]]
) -> tuple[list[Sample], list[Sample]]:
    """masklab samples of a json ground truth (json area kept as an attribute) and of the
    results, ids the image ids as strings."""
    images = {im["id"]: im for im in gt["images"]}
    gts: dict[Any, list[Instance]] = {i: [] for i in images}
    for a in gt["annotations"]:
        im = images[a["image_id"]]
        m = gt_mask(a, im["height"], im["width"])
        gts[a["image_id"]].append(
            Instance(
                m, a["category_id"], iscrowd=bool(a["iscrowd"]), attributes={"area": a["area"]}
            )
        )
    preds: dict[Any, list[Instance]] = {}
    for r in results:
        m = rle.from_coco(r["segmentation"])
        preds.setdefault(r["image_id"], []).append(Instance(m, r["category_id"], score=r["score"]))
    order = sorted(images)
    gt_samples = [
        Sample(str(i), (images[i]["height"], images[i]["width"]), instances=tuple(gts[i]))
        for i in order
    ]
    pred_samples = [
        Sample(str(i), (images[i]["height"], images[i]["width"]), instances=tuple(preds[i]))
        for i in order[::-1]  # any order
        if i in preds
    ]
    return gt_samples, pred_samples


def assert_results_equal(a: ce.CocoEvalResult, b: ce.CocoEvalResult) -> None:
    for name in ("stats", "precision", "recall", "scores"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_evaluate_samples_equals_evaluate_on_the_same_data(airo_gt, iou_type):
    results = jittered_results(airo_gt, seed=21)
    # images 37777 and 397133 have predictions; 448263 (crowd only) may not
    gts, preds = as_samples(airo_gt, results)
    labels = LabelMap(tuple(Label(c["id"], (c["name"],), (0, 0, 0)) for c in airo_gt["categories"]))
    ours = ce.evaluate_samples(gts, preds, iou_type=iou_type, categories=labels)
    # evaluate_samples' boxes come from the masks: compare with mask boxes in the json
    gt_json = copy.deepcopy(airo_gt)
    for a, im in (
        (a, {i["id"]: i for i in gt_json["images"]}[a["image_id"]]) for a in gt_json["annotations"]
    ):
        a["bbox"] = rle.bbox(gt_mask(a, im["height"], im["width"])).tolist()
    assert_results_equal(ours, ce.evaluate(gt_json, results, iou_type=iou_type))
    assert_same(ours, pycoco(gt_json, results, iou_type=iou_type))


def test_evaluate_samples_reads_coco_reader_samples(shared_data, airo_gt):
    reader = coco_format.Reader(shared_data(*AIRO_VAL2017))
    samples = sorted(reader, key=lambda s: s.meta["image_id"])  # pycocotools' image order
    results = jittered_results(airo_gt, seed=22)
    preds = [
        Sample(
            s.id,
            s.size,
            instances=tuple(
                Instance(rle.from_coco(r["segmentation"]), r["category_id"], score=r["score"])
                for r in results
                if r["image_id"] == s.meta["image_id"]
            ),
        )
        for s in samples
    ]
    ours = ce.evaluate_samples(samples, preds, categories=reader.labels)
    # the reader keeps no json area: ground-truth areas are the masks' pixel counts
    gt_json = copy.deepcopy(airo_gt)
    sizes = {im["id"]: (im["height"], im["width"]) for im in gt_json["images"]}
    for a in gt_json["annotations"]:
        a["area"] = float(rle.area(gt_mask(a, *sizes[a["image_id"]])))
    assert_same(ours, pycoco(gt_json, results))


def test_evaluate_samples_rejects_a_prediction_for_an_unknown_image():
    gt = [Sample("a", (4, 4))]
    pred = [Sample("b", (4, 4), instances=(Instance(rle.full((4, 4)), 1, score=0.5),))]
    with pytest.raises(FormatError, match=r"prediction sample 'b' has no ground-truth sample"):
        ce.evaluate_samples(gt, pred)


def test_evaluate_samples_needs_scores():
    gt = [Sample("a", (4, 4), instances=(Instance(rle.full((4, 4)), 1),))]
    pred = [Sample("a", (4, 4), instances=(Instance(rle.full((4, 4)), 1),))]
    with pytest.raises(FormatError, match=r"prediction sample 'a' instance 0 has no finite score"):
        ce.evaluate_samples(gt, pred)


def test_evaluate_samples_counts_images_without_predictions():
    full = rle.full((4, 4))
    gt = [Sample(s, (4, 4), instances=(Instance(full, 1),)) for s in ("a", "b")]
    pred = [Sample("a", (4, 4), instances=(Instance(full, 1, score=0.9),))]
    assert ce.evaluate_samples(gt, pred).stats[8] == pytest.approx(0.5)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("record", "match"),
    [
        ({"image_id": 1, "category_id": 1, "segmentation": None}, r"result 1 has no 'score'"),
        ({"category_id": 1, "score": 0.5, "segmentation": None}, r"result 1 has no 'image_id'"),
        (
            {"image_id": 7, "category_id": 1, "score": 0.5, "segmentation": None},
            r"result 1: image_id 7 is not an image",
        ),
        (
            {"image_id": 1, "category_id": 1, "score": "high", "segmentation": None},
            r"result 1: 'score' must be a number",
        ),
        (
            {"image_id": 1, "category_id": 1, "score": float("nan"), "segmentation": None},
            r"result 1: 'score' must be finite",
        ),
        (
            {
                "image_id": 1,
                "category_id": 1,
                "score": 0.5,
                "segmentation": {"size": [20, 20], "counts": "5"},
            },
            r"result 1: .*sum to 5 but size \[20, 20\] needs 400",
        ),
        (
            {
                "image_id": 1,
                "category_id": 1,
                "score": 0.5,
                "segmentation": {"size": [10, 20], "counts": "d3"},
            },
            r"result 1: mask size \[10, 20\] is not its image's \[20, 20\]",
        ),
        (
            {"image_id": 1, "category_id": 1, "score": 0.5, "segmentation": 3},
            r"result 1: segmentation must be polygons",
        ),
        ([1, 2], r"result 1 is a list, not an object"),
    ],
)
def test_malformed_results_name_the_record(record, match):
    gt = tiny_gt([{"segmentation": box_poly(1, 1, 6, 6)}])
    good = det(1, 1, box_rle(1, 1, 6, 6), 0.9)
    with pytest.raises(FormatError, match=match):
        ce.evaluate(gt, [good, record])


def test_box_results_need_a_box_in_every_record():
    gt = tiny_gt([{"segmentation": box_poly(1, 1, 6, 6), "bbox": [1, 1, 6, 6]}])
    results = [
        {"image_id": 1, "category_id": 1, "bbox": [1, 1, 6, 6], "score": 0.9},
        {"image_id": 1, "category_id": 1, "segmentation": box_rle(0, 0, 2, 2), "score": 0.8},
    ]
    with pytest.raises(FormatError, match=r"result 1 has no 'bbox' \(result 0 has a 'bbox'"):
        ce.evaluate(gt, results, iou_type="bbox")


def test_ground_truth_without_area_is_an_error_naming_it():
    gt = tiny_gt([{"segmentation": box_poly(1, 1, 6, 6)}])
    del gt["annotations"][0]["area"]
    with pytest.raises(FormatError, match=r"annotation 0 \(id 1\) has no 'area'; add it"):
        ce.evaluate(gt, [det(1, 1, box_rle(1, 1, 6, 6), 0.9)])


# --------------------------------------------------------------------------- result object


def test_summary_prints_what_pycocotools_prints(airo_gt):
    results = jittered_results(airo_gt, seed=31)
    ours = ce.evaluate(airo_gt, results)
    gt, res = copy.deepcopy(airo_gt), copy.deepcopy(results)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        ev = COCOeval(coco_gt, coco_gt.loadRes(res), "segm")
        ev.evaluate()
        ev.accumulate()
    with contextlib.redirect_stdout(out := io.StringIO()):
        ev.summarize()
    assert ours.summary() == out.getvalue().rstrip("\n")


def test_per_class_averages_like_summarize(airo_gt):
    results = jittered_results(airo_gt, seed=32)
    ours = ce.evaluate(airo_gt, results)
    theirs = pycoco(airo_gt, results)
    prec = theirs.eval["precision"][:, :, :, 0, 2]
    for k, cat in enumerate(theirs.params.catIds):
        s = prec[:, :, k]
        expect = float(np.mean(s[s > -1])) if (s > -1).any() else -1.0
        assert ours.per_class()[cat]["AP"] == pytest.approx(expect, abs=1e-12)
        s50 = prec[0, :, k]
        assert ours.per_class()[cat]["AP50"] == pytest.approx(
            float(np.mean(s50[s50 > -1])) if (s50 > -1).any() else -1.0, abs=1e-12
        )


def test_to_dict_is_json_ready(airo_gt):
    cats = [1, 62, 64, 999]
    ours = ce.evaluate(airo_gt, jittered_results(airo_gt, seed=33), cat_ids=cats)
    d = json.loads(json.dumps(ours.to_dict(arrays=True)))
    assert d["stats"]["AP"] == pytest.approx(ours.stats[0])
    assert list(d["stats"]) == list(ce.STAT_NAMES)
    assert np.array_equal(np.asarray(d["precision"]), ours.precision)
    assert d["params"]["max_dets"] == [1, 10, 100]
    assert [c["category_id"] for c in d["per_class"]] == cats
    assert d["per_class"][0]["AP"] == pytest.approx(ours.per_class()[1]["AP"])


def test_result_arrays_are_read_only(airo_gt):
    ours = ce.evaluate(airo_gt, jittered_results(airo_gt, seed=34))
    with pytest.raises(ValueError, match="read-only"):
        ours.precision[0, 0, 0, 0, 0] = 1
