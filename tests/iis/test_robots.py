"""Clicking robots (reference/iis.md §1.2, §2.3): the RITM robot against hand-built masks and a
brute-force exact-EDT oracle written here; every other robot lands where its name says."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy import ndimage

from masklab.errors import MaskFormatError
from masklab.iis import robots
from masklab.iis.clicks import Click
from masklab.iis.robots import (
    ROBOTS,
    center_largest_false,
    get_robot,
    random_false,
    random_largest_false,
    ritm,
)

# --------------------------------------------------------------------------- oracles


def brute_d2(err: np.ndarray) -> np.ndarray:
    """Exact squared distance of each error pixel to the nearest non-error pixel, the image
    surrounded by a 1-pixel ring of non-error (RITM's padding); 0 off the error."""
    h, w = err.shape
    padded = np.pad(err, 1)
    zr, zc = np.nonzero(~padded)
    out = np.zeros((h, w), np.int64)
    for r, c in zip(*np.nonzero(err), strict=True):
        out[r, c] = ((zr - (r + 1)) ** 2 + (zc - (c + 1)) ** 2).min()
    return out


def ritm_oracle(gt, pred, clicks, d2=brute_d2):
    """§1.2 written out: exact distances, clicked pixels zeroed, strict '>' for positive,
    first maximum in row-major order (np.argwhere is row-major)."""
    fn = (gt == 1) & ~pred
    fp = (gt == 0) & pred
    d_fn, d_fp = d2(fn), d2(fp)
    for c in clicks:
        d_fn[c.row, c.col] = 0
        d_fp[c.row, c.col] = 0
    positive = d_fn.max() > d_fp.max()
    chosen = d_fn if positive else d_fp
    r, c = np.argwhere(chosen == chosen.max())[0]
    return Click(int(r), int(c), bool(positive))


def scipy_d2(err: np.ndarray) -> np.ndarray:
    d = ndimage.distance_transform_edt(np.pad(err, 1))[1:-1, 1:-1]
    return np.rint(d * d).astype(np.int64)


def random_case(rng: np.random.Generator, h: int, w: int):
    """A target of a few rectangles with ignore specks, a perturbed prediction, past clicks."""
    gt = np.zeros((h, w), np.int8)
    for _ in range(rng.integers(1, 4)):
        r0, c0 = rng.integers(0, h), rng.integers(0, w)
        gt[r0 : r0 + rng.integers(1, h + 1), c0 : c0 + rng.integers(1, w + 1)] = 1
    gt[rng.random((h, w)) < 0.05] = -1
    pred = gt == 1
    for _ in range(rng.integers(0, 4)):
        r0, c0 = rng.integers(0, h), rng.integers(0, w)
        pred[r0 : r0 + rng.integers(1, h + 1), c0 : c0 + rng.integers(1, w + 1)] = (
            rng.random() < 0.5
        )
    if rng.random() < 0.2:
        pred[:] = False
    clicks = [
        Click(int(rng.integers(h)), int(rng.integers(w)), bool(rng.random() < 0.5))
        for _ in range(rng.integers(0, 6))
    ]
    return gt, pred, clicks


# --------------------------------------------------------------------------- distance transform


def test_opencv_precise_dt_is_exact_in_squared_distance():
    """iis.md §1.2: cv2's precise DT (RITM's) agrees with a brute-force exact EDT and SciPy
    (f-BRS's), once its float32 square roots are squared back to integers."""
    rng = np.random.default_rng(11)
    for _ in range(150):
        h, w = rng.integers(1, 20, 2)
        err = rng.random((h, w)) < rng.uniform(0.3, 1.0)
        expected = brute_d2(err)
        dist = cv2.distanceTransform(np.pad(err, 1).astype(np.uint8), cv2.DIST_L2, 0)[1:-1, 1:-1]
        assert np.array_equal(np.rint(dist.astype(np.float64) ** 2), expected)
        assert np.array_equal(scipy_d2(err), expected)


# --------------------------------------------------------------------------- ritm, hand-built


def rect_target(h, w, rows, cols):
    gt = np.zeros((h, w), np.int8)
    gt[rows, cols] = 1
    return gt


def test_ritm_first_click_is_positive_at_the_deepest_object_pixel():
    gt = rect_target(7, 7, slice(1, 6), slice(1, 6))  # 5x5 object, centre (3, 3) at depth 3
    assert ritm(gt, np.zeros((7, 7), bool), []) == Click(3, 3, True)


def test_ritm_first_click_is_positive_even_on_a_one_pixel_object():
    gt = np.zeros((4, 4), np.int8)
    gt[3, 3] = 1
    assert ritm(gt, np.zeros((4, 4), bool), []) == Click(3, 3, True)


def test_ritm_tie_goes_to_the_first_pixel_in_row_major_order():
    # 2x4 object: every pixel touches the background, all at depth 1; the first is (1, 1)
    gt = rect_target(4, 6, slice(1, 3), slice(1, 5))
    assert ritm(gt, np.zeros((4, 6), bool), []) == Click(1, 1, True)


def test_ritm_exact_tie_is_not_broken_by_float_rounding():
    """A 15x19 object with one ignore pixel at (7, 6): (6, 12) and (8, 12) both lie at squared
    distance 37 from it (and 49 from the border), the maximum. The first in row-major order is
    (6, 12); OpenCV's float32 output can rank (8, 12) 1 ulp higher, which must not matter."""
    gt = np.ones((15, 19), np.int8)
    gt[7, 6] = -1
    d2 = brute_d2(gt == 1)
    assert d2.max() == 37
    assert d2[6, 12] == d2[8, 12] == 37
    assert tuple(np.argwhere(d2 == 37)[0]) == (6, 12)
    assert ritm(gt, np.zeros_like(gt, bool), []) == Click(6, 12, True)


@pytest.mark.parametrize("bumped", [slice(0, 8), slice(8, None)], ids=["upper", "lower"])
def test_ritm_ignores_one_ulp_noise_in_opencv_distances(monkeypatch, bumped):
    """OpenCV's float32 distance at an exact tie can come out 1 ulp higher on either pixel (it
    even depends on the buffers' memory alignment); the click must not move."""
    real = cv2.distanceTransform

    def noisy(src, *args, **kwargs):
        d = real(src, *args, **kwargs)
        d[bumped] = np.nextafter(d[bumped], np.float32(np.inf))  # padded rows
        return d

    monkeypatch.setattr(cv2, "distanceTransform", noisy)
    gt = np.ones((15, 19), np.int8)
    gt[7, 6] = -1
    assert ritm(gt, np.zeros_like(gt, bool), []) == Click(6, 12, True)


def test_ritm_equal_depths_give_a_negative_click():
    # a 3x3 miss (FN) and a 3x3 false positive: both depth 2 (squared 4) -> negative
    gt = rect_target(5, 11, slice(1, 4), slice(1, 4))
    pred = np.zeros((5, 11), bool)
    pred[1:4, 6:9] = True
    assert ritm(gt, pred, []) == Click(2, 7, False)


def test_ritm_strictly_deeper_false_negative_gives_a_positive_click():
    gt = rect_target(7, 13, slice(1, 6), slice(1, 6))  # 5x5 miss: depth 3
    pred = np.zeros((7, 13), bool)
    pred[1:4, 8:11] = True  # 3x3 false positive: depth 2
    assert ritm(gt, pred, []) == Click(3, 3, True)


def test_ritm_ignore_pixels_are_not_errors_and_count_as_boundary():
    gt = np.ones((7, 7), np.int8)
    assert ritm(gt, np.zeros((7, 7), bool), []) == Click(3, 3, True)
    gt[3, 3] = -1  # the centre is now non-error: depth 2 is the maximum, first at (1, 1)
    assert ritm(gt, np.zeros((7, 7), bool), []) == Click(1, 1, True)


def test_ritm_prediction_on_ignore_pixels_is_no_false_positive():
    gt = np.zeros((5, 5), np.int8)
    gt[1:4, 1:4] = -1
    gt[0, 4] = 1
    pred = np.zeros((5, 5), bool)
    pred[0:4, 0:4] = True  # FP only on row 0 and column 0 (depth 1), the rest is ignore
    pred[0, 4] = True
    assert ritm(gt, pred, []) == Click(0, 0, False)
    pred[0, :] = False
    pred[:, 0] = False
    pred[0, 4] = True  # covers only ignore pixels and the object: a perfect prediction
    assert ritm(gt, pred, [Click(0, 0, False)]) == Click(0, 0, False)


def test_ritm_image_border_counts_as_non_error():
    # a 5x3 object on the left edge: depth min(r+1, 5-r, c+1, 3-c) -> 2 at (1..3, 1)
    gt = rect_target(5, 6, slice(0, 5), slice(0, 3))
    assert ritm(gt, np.zeros((5, 6), bool), []) == Click(1, 1, True)


def test_ritm_never_clicks_an_already_clicked_pixel():
    gt = rect_target(5, 7, slice(1, 4), slice(1, 6))  # depth 2 at (2, 2), (2, 3), (2, 4)
    empty = np.zeros((5, 7), bool)
    assert ritm(gt, empty, [Click(2, 2, True)]) == Click(2, 3, True)
    # clicks of either sign are excluded
    assert ritm(gt, empty, [Click(2, 2, True), Click(2, 3, False)]) == Click(2, 4, True)
    # every depth-2 pixel clicked: next is the first depth-1 pixel
    taken = [Click(2, c, True) for c in (2, 3, 4)]
    assert ritm(gt, empty, taken) == Click(1, 1, True)


def test_ritm_perfect_prediction_clicks_negative_at_origin_again_and_again():
    gt = rect_target(6, 6, slice(2, 5), slice(2, 5))
    perfect = gt == 1
    first = ritm(gt, perfect, [])
    assert first == Click(0, 0, False)
    assert ritm(gt, perfect, [first]) == Click(0, 0, False)
    assert ritm(gt, perfect, [first, first]) == Click(0, 0, False)


def test_ritm_clicks_negative_at_origin_when_every_error_pixel_is_clicked():
    gt = rect_target(4, 4, slice(2, 3), slice(2, 4))  # two object pixels, both missed
    clicks = [Click(2, 2, True), Click(2, 3, True)]
    assert ritm(gt, np.zeros((4, 4), bool), clicks) == Click(0, 0, False)


def test_ritm_does_not_mutate_its_inputs():
    rng = np.random.default_rng(3)
    gt, pred, clicks = random_case(rng, 12, 15)
    gt0, pred0 = gt.copy(), pred.copy()
    ritm(gt, pred, clicks)
    assert np.array_equal(gt, gt0)
    assert np.array_equal(pred, pred0)


# --------------------------------------------------------------------------- ritm, oracles


def test_ritm_matches_the_brute_force_oracle_on_random_cases():
    rng = np.random.default_rng(20240607)
    for _ in range(300):
        h, w = rng.integers(1, 22, 2)
        gt, pred, clicks = random_case(rng, int(h), int(w))
        assert ritm(gt, pred, clicks) == ritm_oracle(gt, pred, clicks)


def test_ritm_matches_the_scipy_oracle_on_larger_shapes():
    rng = np.random.default_rng(7)
    for _ in range(40):
        h, w = rng.integers(40, 90, 2)
        gt = np.zeros((h, w), np.uint8)
        cv2.ellipse(
            gt,
            (int(rng.integers(w)), int(rng.integers(h))),
            (int(rng.integers(5, w)), int(rng.integers(5, h))),
            float(rng.uniform(0, 180)),
            0,
            360,
            1,
            -1,
        )
        gt = gt.astype(np.int8)
        pred = cv2.dilate(gt.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        pred[rng.integers(h) :, : rng.integers(w)] = False
        clicks = []
        for _ in range(5):
            clicks.append(ritm(gt, pred, clicks))
            assert clicks[-1] == ritm_oracle(gt, pred, clicks[:-1], d2=scipy_d2)


def test_ritm_accepts_fortran_order_and_integer_predictions():
    rng = np.random.default_rng(5)
    gt, pred, clicks = random_case(rng, 9, 13)
    expected = ritm(gt, pred, clicks)
    assert ritm(np.asfortranarray(gt), np.asfortranarray(pred.astype(np.uint8)), clicks) == (
        expected
    )


# --------------------------------------------------------------------------- input errors


def test_robots_reject_a_prediction_of_another_shape():
    with pytest.raises(MaskFormatError, match=r"pred has shape \(4, 5\).*\(4, 4\)"):
        ritm(np.zeros((4, 4), np.int8), np.zeros((4, 5), bool), [])


def test_robots_reject_probabilities():
    with pytest.raises(TypeError, match="threshold probabilities"):
        ritm(np.zeros((4, 4), np.int8), np.zeros((4, 4), np.float32), [])


def test_robots_reject_a_click_outside_the_image():
    with pytest.raises(MaskFormatError, match=r"click 1 \(4, 0, True\) lies outside the 4x4"):
        ritm(
            np.zeros((4, 4), np.int8),
            np.zeros((4, 4), bool),
            [Click(0, 0, True), Click(4, 0, True)],
        )


def test_get_robot_names_the_known_robots():
    assert get_robot("random_false") is random_false
    with pytest.raises(ValueError, match=r"center_largest_false.*random_largest_false.*ritm"):
        get_robot("gto")


# --------------------------------------------------------------------------- random robots


def scene():
    """Object: a 6x6 square; prediction: misses its right half (FN 6x3, 18 px) and adds a 2x2
    FP and a separate 1-px FP; a band of ignore pixels on the last row."""
    gt = np.zeros((12, 16), np.int8)
    gt[2:8, 2:8] = 1
    gt[11, :] = -1
    pred = gt == 1
    pred[2:8, 5:8] = False
    pred[9:11, 10:12] = True
    pred[0, 15] = True
    pred[11, 0:4] = True  # on ignore: no error
    return gt, pred


@pytest.mark.parametrize("seed", range(20))
def test_random_robot_clicks_a_non_ignore_pixel_signed_by_the_target(seed):
    gt, pred = scene()
    c = robots.random(gt, pred, [], rng=np.random.default_rng(seed))
    assert gt[c.row, c.col] != -1
    assert c.positive == (gt[c.row, c.col] == 1)


@pytest.mark.parametrize("seed", range(20))
def test_random_false_clicks_an_error_pixel_signed_by_the_target(seed):
    gt, pred = scene()
    c = random_false(gt, pred, [], rng=np.random.default_rng(seed))
    fn = (gt == 1) & ~pred
    fp = (gt == 0) & pred
    assert fn[c.row, c.col] or fp[c.row, c.col]
    assert c.positive == bool(fn[c.row, c.col])


@pytest.mark.parametrize("seed", range(20))
def test_random_largest_false_clicks_the_largest_4_connected_error(seed):
    gt, pred = scene()
    c = random_largest_false(gt, pred, [], rng=np.random.default_rng(seed))
    assert 2 <= c.row < 8  # the 18-px miss, not the 4-px or 1-px FPs
    assert 5 <= c.col < 8
    assert c.positive


def test_random_largest_false_uses_4_connectivity():
    # a diagonal chain of 5 FP pixels (one region in 8-connectivity) vs a 2-px FN bar
    gt = np.zeros((6, 8), np.int8)
    gt[0, 6:8] = 1
    pred = np.zeros((6, 8), bool)
    for i in range(5):
        pred[i + 1, i] = True
    for seed in range(10):
        c = random_largest_false(gt, pred, [], rng=np.random.default_rng(seed))
        assert c == Click(0, c.col, True)
        assert c.col in (6, 7)


@pytest.mark.parametrize("robot", [robots.random, random_false, random_largest_false])
def test_random_robots_are_reproducible_with_a_seed(robot):
    gt, pred = scene()

    def run(seed):
        rng = np.random.default_rng(seed)
        clicks: list[Click] = []
        for _ in range(8):
            clicks.append(robot(gt, pred, clicks, rng=rng))
        return clicks

    assert run(1) == run(1)
    assert run(1) != run(2)


@pytest.mark.parametrize("robot", [robots.random, random_false, random_largest_false])
def test_random_robots_do_not_repeat_a_click_while_candidates_remain(robot):
    gt, pred = scene()
    rng = np.random.default_rng(0)
    clicks: list[Click] = []
    for _ in range(15):
        clicks.append(robot(gt, pred, clicks, rng=rng))
    assert len({(c.row, c.col) for c in clicks}) == 15


@pytest.mark.parametrize("robot", [robots.random, random_false, random_largest_false])
def test_random_robots_fall_back_on_a_perfect_prediction(robot):
    gt, _ = scene()
    c = robot(gt, gt == 1, [], rng=np.random.default_rng(0))
    assert gt[c.row, c.col] != -1
    assert c.positive == (gt[c.row, c.col] == 1)


@pytest.mark.parametrize("name", sorted(ROBOTS))
def test_every_robot_clicks_negative_at_origin_on_an_all_ignore_target(name):
    gt = np.full((3, 4), -1, np.int8)
    assert get_robot(name)(gt, np.ones((3, 4), bool), [], rng=np.random.default_rng(0)) == Click(
        0, 0, False
    )


# --------------------------------------------------------------------------- center_largest_false


def test_center_largest_false_clicks_the_centre_of_the_larger_region():
    # FN: a 5x5 square (25 px, centre (3, 3)); FP: a 2x12 bar (24 px) that is thinner...
    gt = np.zeros((9, 20), np.int8)
    gt[1:6, 1:6] = 1
    pred = np.zeros((9, 20), bool)
    pred[6:8, 7:19] = True
    assert center_largest_false(gt, pred, []) == Click(3, 3, True)
    # ... one more FP pixel makes the bar as large (25 px each: a tie goes to FP); depth 1
    # everywhere on it, so its first pixel
    pred[8, 18] = True
    assert center_largest_false(gt, pred, []) == Click(6, 7, False)


def test_center_largest_false_uses_8_connectivity_unlike_ritm_depth():
    # a diagonal staircase of 2x2 blocks (FP, 16 px, one region in 8-connectivity) beats a
    # 3x3 FN square (9 px) although the square is deeper, which is what ritm would pick
    gt = np.zeros((10, 14), np.int8)
    gt[6:9, 10:13] = 1
    pred = np.zeros((10, 14), bool)
    for i in range(4):
        pred[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = True
    c = center_largest_false(gt, pred, [])
    assert c == Click(0, 0, False)  # depth 1 everywhere on the staircase: its first pixel
    assert ritm(gt, pred, []) == Click(7, 11, True)


def test_center_largest_false_excludes_clicked_pixels_unless_told_not_to():
    gt = np.zeros((7, 7), np.int8)
    gt[1:6, 1:6] = 1
    empty = np.zeros((7, 7), bool)
    first = center_largest_false(gt, empty, [])
    assert first == Click(3, 3, True)
    # the model ignored the click: by default the next goes elsewhere, gto99 repeats it
    again = center_largest_false(gt, empty, [first])
    assert again != first
    assert gt[again.row, again.col] == 1
    assert center_largest_false(gt, empty, [first], exclude_clicked=False) == first


def test_center_largest_false_ignores_ignore_pixels():
    gt = np.full((5, 5), -1, np.int8)
    gt[2, 3] = 0
    pred = np.ones((5, 5), bool)  # only (2, 3) is an error
    assert center_largest_false(gt, pred, []) == Click(2, 3, False)
    gt[4, 4] = 1
    pred[2, 3] = False
    pred[4, 4] = False  # now only the miss at (4, 4)
    assert center_largest_false(gt, pred, []) == Click(4, 4, True)
