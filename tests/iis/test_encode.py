"""Click encodings against per-pixel brute force written here (reference/iis.md §1.4)."""

from __future__ import annotations

import numpy as np
import pytest

from masklab.errors import MaskFormatError
from masklab.iis.clicks import Click
from masklab.iis.encode import disks, distance_maps, gaussians

CLICKS = [Click(0, 0, True), Click(5, 9, True), Click(3, 4, False), Click(8, 11, False)]
SIZE = (9, 12)


def brute_min_dist(clicks, size_hw, positive):
    """Per pixel, the Euclidean distance to the nearest click of the sign (inf if none)."""
    h, w = size_hw
    out = np.full((h, w), np.inf)
    for r in range(h):
        for c in range(w):
            for k in clicks:
                if k.positive == positive:
                    out[r, c] = min(out[r, c], np.hypot(r - k.row, c - k.col))
    return out


@pytest.mark.parametrize("radius", [0, 1, 2.5, 5])
def test_disks_are_pixels_within_radius_of_a_click(radius):
    got = disks(CLICKS, SIZE, radius=radius)
    assert got.dtype == np.float32
    assert got.shape == (2, *SIZE)
    for ch, positive in enumerate((True, False)):
        expected = brute_min_dist(CLICKS, SIZE, positive) <= radius
        assert np.array_equal(got[ch], expected.astype(np.float32))


def test_disks_radius_5_is_ritms_81_pixel_disk_clipped_at_the_border():
    inside = disks([Click(10, 10, True)], (21, 21))
    assert inside[0].sum() == 81  # pixels with dr^2 + dc^2 <= 25
    corner = disks([Click(0, 0, False)], (21, 21))
    assert corner[1].sum() == 26  # the quarter disk: (0..5)^2 pairs with r^2 + c^2 <= 25
    assert corner[0].sum() == 0


def test_disks_without_clicks_are_zero():
    assert not disks([], SIZE).any()


@pytest.mark.parametrize("clip", [3.0, 255.0])
def test_distance_maps_are_the_clipped_distance_to_the_nearest_click(clip):
    got = distance_maps(CLICKS, SIZE, clip=clip)
    assert got.dtype == np.float32
    for ch, positive in enumerate((True, False)):
        expected = np.minimum(brute_min_dist(CLICKS, SIZE, positive), clip)
        np.testing.assert_allclose(got[ch], expected, rtol=1e-6)


def test_distance_maps_channel_without_clicks_is_clip():
    got = distance_maps([Click(1, 1, True)], SIZE, clip=7.0)
    assert np.all(got[1] == 7.0)


@pytest.mark.parametrize("sigma", [1.0, 3.5])
def test_gaussians_are_the_largest_bump_of_the_sign(sigma):
    got = gaussians(CLICKS, SIZE, sigma=sigma)
    for ch, positive in enumerate((True, False)):
        bumps = np.zeros(SIZE)
        for k in CLICKS:
            if k.positive == positive:
                r, c = np.mgrid[: SIZE[0], : SIZE[1]]
                g = np.exp(-((r - k.row) ** 2 + (c - k.col) ** 2) / (2 * sigma**2))
                bumps = np.maximum(bumps, g)
        np.testing.assert_allclose(got[ch], bumps, rtol=1e-5, atol=1e-7)


def test_gaussians_channel_without_clicks_is_zero():
    assert not gaussians([Click(1, 1, False)], SIZE)[0].any()


@pytest.mark.parametrize("encode", [disks, distance_maps, gaussians])
def test_encoders_reject_a_click_outside_the_image(encode):
    with pytest.raises(MaskFormatError, match=r"click 0 \(9, 0, True\) lies outside the 9x12"):
        encode([Click(9, 0, True)], SIZE)


@pytest.mark.parametrize("encode", [disks, distance_maps, gaussians])
def test_encoders_give_empty_maps_for_an_empty_image(encode):
    assert encode([], (0, 5)).shape == (2, 0, 5)


def test_encoder_parameters_are_validated():
    with pytest.raises(ValueError, match="radius"):
        disks([], SIZE, radius=-1)
    with pytest.raises(ValueError, match="clip"):
        distance_maps([], SIZE, clip=0)
    with pytest.raises(ValueError, match="sigma"):
        gaussians([], SIZE, sigma=0)
