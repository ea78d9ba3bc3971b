"""Kind conversions: semantic <-> instances <-> panoptic, checked against hand-made maps."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from masklab import MaskFormatError, rle
from masklab.core.instances import (
    Instance,
    Segment,
    instances_to_panoptic,
    instances_to_semantic,
    panoptic_to_instances,
    panoptic_to_semantic,
    semantic_to_instances,
    semantic_to_panoptic,
)
from masklab.testing import strategies


def inst(mask, class_id, **kw):
    return Instance(rle.encode(np.asarray(mask)), class_id, **kw)


def test_semantic_to_instances_splits_components_per_class():
    m = np.array(
        [
            [1, 1, 0, 2],
            [0, 0, 0, 2],
            [1, 0, 3, 0],
        ]
    )
    got = [(i.class_id, rle.decode(i.mask).tolist()) for i in semantic_to_instances(m)]
    assert got == [
        (1, [[1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]),
        (1, [[0, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0]]),
        (2, [[0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]]),
        (3, [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0]]),
    ]


def test_connectivity_4_separates_diagonal_touches():
    m = np.array([[1, 0], [0, 1]])
    assert len(semantic_to_instances(m, connectivity=8)) == 1
    assert len(semantic_to_instances(m, connectivity=4)) == 2


def test_stuff_classes_stay_whole_and_skip_is_left_out():
    m = np.array([[5, 0, 5], [255, 255, 5]])
    out = semantic_to_instances(m, stuff=[5], skip=[0, 255])
    assert [(i.class_id, rle.area(i.mask)) for i in out] == [(5, 3)]


@given(strategies.binary_masks(min_side=1, max_side=30), st.integers(1, 4))
def test_instances_repaint_to_the_same_semantic_map(mask, k):
    classes = mask.astype(np.int32) * k
    classes[:, ::3] *= 2  # a second class in every third column
    out = instances_to_semantic(semantic_to_instances(classes), classes.shape)
    np.testing.assert_array_equal(out.array, classes)
    assert out.contested_px == 0


@given(strategies.binary_masks(min_side=1, max_side=30))
def test_components_match_opencv_counts(mask):
    n, _ = cv2.connectedComponents(mask, connectivity=8)
    assert len(semantic_to_instances(mask)) == n - 1


def test_paint_overlap_policies():
    a = inst([[1, 1, 0]], 3)
    b = inst([[0, 1, 1]], 5)
    assert instances_to_semantic([a, b], (1, 3)).array.tolist() == [[3, 5, 5]]
    first = instances_to_semantic([a, b], (1, 3), overlap="first")
    assert first.array.tolist() == [[3, 3, 5]]
    assert first.contested_px == 1
    with pytest.raises(MaskFormatError, match="overlaps earlier instances on 1 pixels"):
        instances_to_semantic([a, b], (1, 3), overlap="error")


def test_paint_by_area_puts_small_objects_on_top():
    big = inst([[1, 1, 1, 1]], 1)
    small = inst([[0, 1, 0, 0]], 2)
    assert instances_to_semantic([small, big], (1, 4), order="area").array.tolist() == [
        [1, 2, 1, 1]
    ]


def test_paint_picks_a_wide_dtype_for_big_class_ids():
    out = instances_to_semantic([inst([[1]], 300)], (1, 1))
    assert out.array.dtype == np.uint16
    assert out.array.tolist() == [[300]]


def test_paint_rejects_a_mask_of_another_size():
    with pytest.raises(MaskFormatError, match=r"size \(1, 2\) but the frame is \(2, 2\)"):
        instances_to_semantic([inst([[1, 1]], 1)], (2, 2))


def test_panoptic_round_trip_keeps_segments_and_crowd():
    a = inst([[1, 1, 0], [0, 0, 0]], 7, iscrowd=True)
    b = inst([[0, 0, 1], [1, 1, 1]], 9)
    painted = instances_to_panoptic([a, b], (2, 3), ids=[101, 2002])
    assert painted.array.tolist() == [[101, 101, 2002], [2002, 2002, 2002]]
    assert painted.segments == (Segment(101, 7, True), Segment(2002, 9, False))
    back, unknown = panoptic_to_instances(painted.array, painted.segments)
    assert unknown == []
    assert [(i.id, i.class_id, i.iscrowd) for i in back] == [(101, 7, True), (2002, 9, False)]
    assert [i.mask for i in back] == [a.mask, b.mask]


def test_panoptic_reports_ids_without_segments():
    ids = np.array([[0, 4], [5, 5]])
    _, unknown = panoptic_to_instances(ids, [Segment(5, 1)])
    assert unknown == [4]


def test_panoptic_drops_fully_covered_segments_from_the_list():
    a = inst([[1, 0]], 1)
    b = inst([[1, 1]], 2)
    painted = instances_to_panoptic([a, b], (1, 2))
    assert [s.id for s in painted.segments] == [2]
    assert painted.contested_px == 1


@given(strategies.binary_masks(min_side=1, max_side=24), st.integers(1, 3))
def test_semantic_panoptic_round_trip_is_exact(mask, k):
    classes = mask.astype(np.int32) * k
    classes[:, 1::4] = 0  # cut objects into several components
    painted = semantic_to_panoptic(classes)
    assert painted.contested_px == 0
    np.testing.assert_array_equal(panoptic_to_semantic(painted.array, painted.segments), classes)
    n_components = sum(
        cv2.connectedComponents((classes == c).astype(np.uint8))[0] - 1
        for c in np.unique(classes)
        if c != 0
    )
    assert len(painted.segments) == n_components


def test_panoptic_to_semantic_leaves_unknown_ids_void():
    ids = np.array([[4, 7], [0, 7]])
    assert panoptic_to_semantic(ids, [Segment(7, 2)], void=255).tolist() == [[255, 2], [255, 2]]


@given(strategies.mask_lists(max_size=6), st.sampled_from(["last", "first"]))
def test_visible_pixels_equal_a_count_of_the_painted_map(masks, overlap):
    insts = [inst(m, 1) for m in masks]
    painted = instances_to_panoptic(insts, masks[0].shape, overlap=overlap)
    counts = np.bincount(painted.array.reshape(-1), minlength=len(insts) + 1)[1:]
    assert list(painted.visible_px) == counts.tolist()
