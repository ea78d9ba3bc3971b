"""masklab.polygon: COCO-exact rasterisation (oracle: pycocotools) and lossless tracing."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pycocotools import mask as coco

from masklab import MaskFormatError, polygon, rle
from masklab.polygon import Part, Polygons
from masklab.testing import strategies


def coco_poly(parts: list[list[float]], h: int, w: int) -> str:
    return coco.merge(coco.frPyObjects(parts, h, w))["counts"].decode()


def coco_pixels(parts: list[list[float]], h: int, w: int) -> np.ndarray:
    return coco.decode(coco.merge(coco.frPyObjects(parts, h, w)))


# --------------------------------------------------------------------------- rasterise


@given(strategies.polygon_lists())
def test_to_rle_matches_pycocotools_byte_for_byte(case):
    parts, h, w = case
    # pycocotools reads a first part of exactly 4 coordinates as a box and crashes on
    # it (§1.6); polygon_lists never draws fewer than 3 points, so every case is valid.
    assert polygon.to_rle(parts, h, w).to_coco()["counts"] == coco_poly(parts, h, w)


@given(st.lists(strategies.polygon_lists(max_side=30), min_size=1, max_size=6))
def test_to_rle_batch_equals_single_calls(cases):
    h, w = cases[0][1], cases[0][2]
    items = [c[0] for c in cases]
    assert polygon.to_rle_batch(items, h, w) == [polygon.to_rle(p, h, w) for p in items]


@given(
    st.tuples(
        st.floats(-5, 40, allow_nan=False, width=32),
        st.floats(-5, 40, allow_nan=False, width=32),
        st.floats(0, 40, allow_nan=False, width=32),
        st.floats(0, 40, allow_nan=False, width=32),
    ),
    st.integers(1, 32),
    st.integers(1, 32),
)
def test_box_to_rle_matches_pycocotools_frbbox(box, h, w):
    theirs = coco.frPyObjects(np.array([box], np.float64), h, w)[0]["counts"].decode()
    assert polygon.box_to_rle(list(box), h, w).to_coco()["counts"] == theirs


@pytest.mark.parametrize(
    ("ring", "h", "w", "pixels"),
    [
        # reference/formats.md §1.5, each verified there against pycocotools
        ([1, 1, 3, 1, 3, 3, 1, 3], 5, 5, {(1, 1), (1, 2), (2, 1), (2, 2)}),
        ([0.5, 0.5, 1.5, 0.5, 1.5, 1.5, 0.5, 1.5], 3, 3, {(1, 1)}),
        ([1.3, 1.3, 1.7, 1.3, 1.5, 1.7], 3, 3, set()),  # thin triangle: empty
        ([2, 2, 2, 2, 2, 2], 4, 4, set()),  # three identical points: empty
        ([0, 0, 1, 1, 2, 2], 4, 4, set()),  # collinear: empty
    ],
)
def test_hand_checked_rasterisations(ring, h, w, pixels):
    m = rle.decode(polygon.to_rle([ring], h, w))
    assert {(int(y), int(x)) for y, x in zip(*np.nonzero(m), strict=True)} == pixels


def test_square_0_to_9_is_81_pixels_not_100():
    """cocoapi#658: corners at pixel corners, not centres as cv2.fillPoly assumes."""
    r = polygon.to_rle([[0, 0, 0, 9, 9, 9, 9, 0]], 12, 12)
    assert rle.area(r) == 81


def test_keyhole_ring_is_even_odd():
    """§1.5: outer 6x6 square walked with a zero-width bridge to a 2x2 hole: 32 pixels."""
    ring = [0, 0, 6, 0, 6, 6, 0, 6, 0, 0, 2, 2, 2, 4, 4, 4, 4, 2, 2, 2]
    m = rle.decode(polygon.to_rle([ring], 6, 6))
    assert m.sum() == 32
    assert not m[2:4, 2:4].any()


def test_coco_parts_are_unioned():
    outer = [0, 0, 6, 0, 6, 6, 0, 6]
    hole = [2, 2, 4, 2, 4, 4, 2, 4]
    assert rle.area(polygon.to_rle([outer, hole], 6, 6)) == 36  # cocoapi#153: holes fill


def test_polygons_value_cuts_its_holes():
    value = Polygons(
        (
            Part(
                np.array([[0, 0], [6, 0], [6, 6], [0, 6]]),
                (np.array([[2, 2], [4, 2], [4, 4], [2, 4]]),),
            ),
        )
    )
    m = rle.decode(polygon.to_rle(value, 6, 6))
    assert m.sum() == 32
    assert not m[2:4, 2:4].any()


def test_polygon_outside_the_image_is_clipped():
    assert polygon.to_rle([[-10, -10, 20, -10, 20, 20, -10, 20]], 3, 4) == rle.full((3, 4))
    assert polygon.to_rle([[10, 10, 20, 10, 20, 20]], 3, 4) == rle.empty((3, 4))


# --------------------------------------------------------------------------- trace


@given(strategies.binary_masks(max_side=40))
def test_from_mask_is_exact(mask):
    polys = polygon.from_mask(mask)
    h, w = mask.shape
    assert polys.iou == 1.0
    np.testing.assert_array_equal(rle.decode(polygon.to_rle(polys, h, w)), mask)


@given(strategies.binary_masks(min_side=1, max_side=40))
def test_keyholed_coco_polygons_rasterise_exactly_in_pycocotools(mask):
    polys = polygon.from_mask(mask)
    h, w = mask.shape
    if not polys.parts:
        return
    np.testing.assert_array_equal(coco_pixels(polys.to_coco(), h, w), mask)


@given(strategies.binary_masks(max_side=30))
def test_from_mask_accepts_an_rle(mask):
    assert polygon.from_mask(rle.encode(mask)) == polygon.from_mask(mask)


def ring_with_island() -> np.ndarray:
    m = np.zeros((9, 9), np.uint8)
    m[1:8, 1:8] = 1
    m[2:7, 2:7] = 0  # hole
    m[4, 4] = 1  # island in the hole
    return m


def test_hole_and_island_structure():
    polys = polygon.from_mask(ring_with_island())
    assert len(polys.parts) == 2
    assert polys.n_holes == 1
    assert polys.has_holes
    ring, island = sorted(polys.parts, key=lambda p: -len(p.holes))
    assert sorted(ring.outer.tolist()) == [[1, 1], [1, 8], [8, 1], [8, 8]]
    assert sorted(ring.holes[0].tolist()) == [[2, 2], [2, 7], [7, 2], [7, 7]]
    assert sorted(island.outer.tolist()) == [[4, 4], [4, 5], [5, 4], [5, 5]]


def test_diagonal_touch_is_one_part_and_exact():
    m = np.array([[1, 0], [0, 1]], np.uint8)
    polys = polygon.from_mask(m)
    assert len(polys.parts) == 1
    np.testing.assert_array_equal(rle.decode(polygon.to_rle(polys, 2, 2)), m)
    np.testing.assert_array_equal(coco_pixels(polys.to_coco(), 2, 2), m)


def test_dropping_holes_fills_them():
    m = ring_with_island()
    filled = np.zeros_like(m)
    filled[1:8, 1:8] = 1
    polys = polygon.from_mask(m)
    np.testing.assert_array_equal(coco_pixels(polys.to_coco(keep_holes=False), 9, 9), filled)


def test_empty_mask_has_no_parts():
    assert polygon.from_mask(np.zeros((4, 4))).parts == ()
    assert polygon.from_mask(np.zeros((0, 4))).parts == ()


def test_rings_run_along_pixel_edges():
    polys = polygon.from_mask(np.array([[0, 0, 0], [0, 1, 1], [0, 0, 0]]))
    assert polys.parts[0].outer.tolist() == [[1, 1], [1, 2], [3, 2], [3, 1]]


@given(
    strategies.binary_masks(min_side=8, max_side=40, kinds=("blobs", "rings")), st.floats(0.5, 3.0)
)
def test_simplify_reports_the_iou_it_kept(mask, tolerance):
    polys = polygon.from_mask(mask, tolerance=tolerance)
    h, w = mask.shape
    back = rle.decode(polygon.to_rle(polys, h, w)) if polys.parts else np.zeros_like(mask)
    inter, union = int((back & mask).sum()), int((back | mask).sum())
    assert polys.iou == pytest.approx(inter / union if union else 0.0, abs=1e-12)
    assert sum(len(p.outer) for p in polys.parts) <= sum(
        len(p.outer) for p in polygon.from_mask(mask).parts
    )


def test_simplified_circle_keeps_most_pixels_with_fewer_vertices():
    m = np.zeros((64, 64), np.uint8)
    cv2.circle(m, (32, 32), 25, 1, -1)
    exact, simple = polygon.from_mask(m), polygon.from_mask(m, tolerance=1.0)
    assert len(simple.parts[0].outer) < len(exact.parts[0].outer) / 2
    assert 0.95 < simple.iou < 1.0


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("parts", "match"),
    [
        ([[0, 0, 1, 1]], r"2 point\(s\); a polygon needs at least 3"),
        ([[0, 0, 1, 1, 2]], r"odd number of coordinates \(5\)"),
        ([[0, 0, 1, 1, 2, float("nan")]], "non-finite"),
        ([0, 0, 1, 1, 2, 2], r"wrap a single polygon as \[\[x1"),
        ([[0, 0, 3, 0, 3, 3], [1, 1, 2]], r"item 0 polygon 1 has an odd number"),
    ],
)
def test_bad_polygons_raise_mask_format_error(parts, match):
    with pytest.raises(MaskFormatError, match=match):
        polygon.to_rle(parts, 4, 4)


def test_part_validates_its_rings():
    with pytest.raises(MaskFormatError, match="hole 0 has 2 point"):
        Part(np.array([[0, 0], [1, 0], [1, 1]]), (np.array([[0, 0], [1, 1]]),))


def test_bad_boxes_raise():
    with pytest.raises(MaskFormatError, match="width and height must be >= 0"):
        polygon.box_to_rle([0, 0, -1, 2], 4, 4)
    with pytest.raises(MaskFormatError, match="four finite numbers"):
        polygon.box_to_rle([0, 0, 1], 4, 4)


def test_from_mask_rejects_non_2d():
    with pytest.raises(MaskFormatError, match="2-D"):
        polygon.from_mask(np.zeros((2, 2, 2)))
