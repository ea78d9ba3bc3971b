"""Training samplers (reference/iis.md §2.1): where MultiPointSampler's clicks land, how many,
and the iterative training click; oracles are Chebyshev distances and EDTs written here."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy import ndimage

from masklab.errors import MaskFormatError
from masklab.iis.clicks import Click
from masklab.iis.samplers import MultiPointSampler, next_click_training

H, W = 40, 50


def target():
    """A 14x20 object away from the border, an ignore patch beside it."""
    t = np.zeros((H, W), np.int8)
    t[12:26, 15:35] = 1
    t[0:6, 0:10] = -1
    return t


def chebyshev_to(mask):
    """Chebyshev distance of every pixel to ``mask`` (0 on it), by brute force."""
    pts = np.argwhere(mask)
    r, c = np.mgrid[:H, :W]
    return np.min(
        np.maximum(np.abs(r[..., None] - pts[:, 0]), np.abs(c[..., None] - pts[:, 1])), axis=-1
    )


@pytest.mark.parametrize("seed", range(10))
def test_positives_lie_on_the_object_and_negatives_off_it_and_off_ignore(seed):
    t = target()
    pos, neg = MultiPointSampler(12).sample(t, rng=np.random.default_rng(seed))
    assert 1 <= len(pos) <= 12
    assert len(neg) <= 12
    assert all(c.positive and t[c.row, c.col] == 1 for c in pos)
    assert all(not c.positive and t[c.row, c.col] == 0 for c in neg)
    assert len({(c.row, c.col) for c in pos}) == len(pos)  # distinct positives


@pytest.mark.parametrize("seed", range(5))
def test_eroded_positives_keep_three_pixels_from_the_background(seed):
    t = target()
    sampler = MultiPointSampler(12, positive_erode_prob=1.0, prob_gamma=1.0)
    pos, _ = sampler.sample(t, rng=np.random.default_rng(seed))
    depth = chebyshev_to(t != 1)  # 3 erosions with a 3x3 kernel keep Chebyshev depth > 3
    assert all(depth[c.row, c.col] > 3 for c in pos)


def test_erosion_is_skipped_when_ten_pixels_or_fewer_survive():
    t = np.zeros((H, W), np.int8)
    t[10:17, 10:17] = 1  # 7x7: 3 erosions leave 1 pixel
    sampler = MultiPointSampler(12, positive_erode_prob=1.0, prob_gamma=1.0)
    seen = set()
    for seed in range(30):
        pos, _ = sampler.sample(t, rng=np.random.default_rng(seed))
        seen |= {(c.row, c.col) for c in pos}
    assert len(seen) > 1  # eroded, only (13, 13) would be left


def test_other_pool_negatives_lie_on_the_other_objects():
    t = target()
    others = np.zeros((H, W), bool)
    others[30:36, 2:8] = True
    sampler = MultiPointSampler(
        12, prob_gamma=1.0, negative_bg_prob=0, negative_other_prob=1, negative_border_prob=0
    )
    for seed in range(5):
        _, neg = sampler.sample(t, others, rng=np.random.default_rng(seed))
        assert all(others[c.row, c.col] for c in neg)


def test_other_pool_falls_back_to_background_without_other_objects():
    t = target()
    sampler = MultiPointSampler(
        12, prob_gamma=1.0, negative_bg_prob=0, negative_other_prob=1, negative_border_prob=0
    )
    neg = [c for s in range(10) for c in sampler.sample(t, rng=np.random.default_rng(s))[1]]
    assert neg
    assert all(t[c.row, c.col] == 0 for c in neg)


def test_border_pool_negatives_lie_in_the_ring_around_the_object():
    t = target()
    iters = int(np.ceil(0.1 * np.sqrt((t == 1).sum())))  # 14*20 = 280 px -> 2 dilations
    ring = (chebyshev_to(t == 1) <= iters) & (t == 0)
    sampler = MultiPointSampler(
        12, prob_gamma=1.0, negative_bg_prob=0, negative_other_prob=0, negative_border_prob=1
    )
    neg = [c for s in range(10) for c in sampler.sample(t, rng=np.random.default_rng(s))[1]]
    assert neg
    assert all(ring[c.row, c.col] for c in neg)


def test_first_click_center_lands_in_the_inner_region():
    t = target()
    d = ndimage.distance_transform_edt(np.pad(t == 1, 1))[1:-1, 1:-1]
    inner = d > d.max() / 1.7
    sampler = MultiPointSampler(12, first_click_center=True, positive_erode_prob=0.0)
    for seed in range(10):
        pos, _ = sampler.sample(t, rng=np.random.default_rng(seed))
        assert inner[pos[0].row, pos[0].col]


def test_tiny_gamma_gives_one_positive_and_no_negative():
    pos, neg = MultiPointSampler(12, prob_gamma=1e-9).sample(target(), rng=np.random.default_rng(0))
    assert len(pos) == 1
    assert neg == []


def test_counts_cover_the_whole_range_with_gamma_one():
    sampler = MultiPointSampler(3, prob_gamma=1.0)
    counts = {
        tuple(map(len, sampler.sample(target(), rng=np.random.default_rng(s)))) for s in range(200)
    }
    assert {p for p, _ in counts} == {1, 2, 3}
    assert {n for _, n in counts} == {0, 1, 2, 3}


def test_sampler_is_reproducible_with_a_seed():
    s = MultiPointSampler(12)
    assert s.sample(target(), rng=np.random.default_rng(4)) == s.sample(
        target(), rng=np.random.default_rng(4)
    )


def test_sampler_validates_its_settings_and_others():
    with pytest.raises(ValueError, match="max_num_points"):
        MultiPointSampler(0)
    with pytest.raises(ValueError, match="negative pool"):
        MultiPointSampler(3, negative_bg_prob=0, negative_other_prob=0, negative_border_prob=0)
    with pytest.raises(MaskFormatError, match=r"others has shape \(3, 3\)"):
        MultiPointSampler(12).sample(target(), np.ones((3, 3), bool), rng=np.random.default_rng(0))


# --------------------------------------------------------------------------- next_click_training


def deep_region(err, clicks=()):
    """Pixels of ``err`` deeper than half the maximum of RITM's 5x5-mask padded DT,
    computed on the full padded map (the code under test crops)."""
    d = cv2.distanceTransform(np.pad(err, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
    for c in clicks:
        d[c.row, c.col] = 0
    return d > d.max() / 2, float(d.max())


@pytest.mark.parametrize("seed", range(10))
def test_training_click_is_positive_in_the_deep_part_of_the_thicker_miss(seed):
    t = target()
    prob = np.zeros((H, W), np.float32)
    prob[30:34, 40:48] = 0.9  # a 4x8 false positive, thinner than the 14x20 miss
    c = next_click_training(t, prob, [], np.random.default_rng(seed))
    region, _ = deep_region(t == 1)
    assert c.positive
    assert region[c.row, c.col]


@pytest.mark.parametrize("seed", range(10))
def test_training_click_is_negative_when_the_false_positive_is_thicker(seed):
    t = target()
    prob = (t == 1).astype(np.float32)
    prob[12:26, 20:22] = 0.2  # a 14x2 miss
    prob[28:40, 30:50] = 0.7  # a 12x20 false positive
    c = next_click_training(t, prob, [], np.random.default_rng(seed))
    region, _ = deep_region((t == 0) & (prob > 0.49))
    assert not c.positive
    assert region[c.row, c.col]


def test_training_click_tie_goes_to_the_negative():
    t = np.zeros((12, 20), np.int8)
    t[2:7, 2:7] = 1
    prob = np.zeros((12, 20), np.float32)
    prob[2:7, 10:15] = 1.0  # a 5x5 FP as deep as the 5x5 miss
    assert not next_click_training(t, prob, [], np.random.default_rng(0)).positive


def test_training_click_threshold_is_strict_on_both_sides():
    t = np.zeros((6, 6), np.int8)
    t[1:5, 1:5] = 1
    prob = np.full((6, 6), 0.49, np.float32)  # exactly at the threshold: neither FN nor FP
    c = next_click_training(t, prob, [], np.random.default_rng(0))
    assert c.positive == (t[c.row, c.col] == 1)  # no error: a click that agrees with the target


def test_training_click_skips_clicked_pixels():
    t = np.zeros((7, 7), np.int8)
    t[1:6, 1:6] = 1  # 5x5 miss: depth 3 at the centre, > 1.5 on the inner 3x3
    prob = np.zeros((7, 7), np.float32)
    clicks = [Click(r, c, True) for r in range(2, 5) for c in range(2, 5) if (r, c) != (4, 4)]
    for seed in range(5):
        assert next_click_training(t, prob, clicks, np.random.default_rng(seed)) == Click(
            4, 4, True
        )


def test_training_click_is_reproducible_and_rejects_binary_input():
    t = target()
    prob = np.zeros((H, W), np.float32)
    a = next_click_training(t, prob, [], np.random.default_rng(9))
    assert a == next_click_training(t, prob, [], np.random.default_rng(9))
    with pytest.raises(TypeError, match="float probabilities"):
        next_click_training(t, prob > 0.5, [], np.random.default_rng(9))
