"""masklab.rle against pycocotools (where it is right) and dense references (where it is not)."""

from __future__ import annotations

import pickle

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pycocotools import mask as coco
from tests._reference import (
    counts_to_dense,
    dense_bbox,
    dense_counts,
    dense_crop,
    dense_iou,
    dense_resize_nearest,
)

from masklab import MaskFormatError, rle
from masklab.rle import RLE
from masklab.testing import strategies


def coco_encode(m: np.ndarray) -> dict:
    return coco.encode(np.asfortranarray(np.asarray(m) != 0, dtype=np.uint8))


# --------------------------------------------------------------------------- codec


# Worked examples of reference/formats.md §1.3, verified there against pycocotools 2.0.11.
WORKED = [
    ((2, 3), [2, 3, 1], "231"),
    ((2, 3), [2, 1, 1, 2], "2111"),
    ((4, 5), [5, 10, 3, 2], "5:3H"),
    ((4, 5), [20], "d0"),
    ((41, 1), [20, 16, 3, 2], "d0`03B"),
    ((2, 3), [0, 6], "06"),
    ((100007, 1), [100000, 7], "PeQ37"),
]


@pytest.mark.parametrize(("size", "counts", "string"), WORKED)
def test_compressed_string_matches_worked_examples(size, counts, string):
    r = RLE(size, counts)
    assert r.to_coco() == {"size": list(size), "counts": string}
    assert rle.from_coco({"size": list(size), "counts": string}) == r
    assert rle.from_coco({"size": list(size), "counts": string.encode()}) == r


@given(strategies.binary_masks())
def test_encode_matches_pycocotools_byte_for_byte(mask):
    ours = rle.encode(mask).to_coco()["counts"]
    assert ours == coco_encode(mask)["counts"].decode("ascii")


@given(strategies.masks_of_any_layout())
def test_encode_binarises_every_dtype_and_layout(mask):
    """Nonzero is foreground, whatever the dtype and memory order (pycocotools needs
    Fortran uint8 0/1)."""
    before = mask.copy()
    r = rle.encode(mask)
    assert r.counts.tolist() == dense_counts(mask)
    assert r.to_coco()["counts"] == coco_encode(mask)["counts"].decode()
    np.testing.assert_array_equal(mask, before)  # input not mutated


@given(strategies.binary_masks())
def test_decode_inverts_encode(mask):
    out = rle.decode(rle.encode(mask))
    assert out.dtype == np.uint8
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, mask)


@given(strategies.binary_masks())
def test_decode_equals_pycocotools_decode(mask):
    d = coco_encode(mask)
    np.testing.assert_array_equal(rle.decode(rle.from_coco(d)), coco.decode(d))


@given(strategies.binary_masks())
def test_from_coco_inverts_to_coco(mask):
    r = rle.encode(mask)
    assert rle.from_coco(r.to_coco()) == r
    assert rle.from_coco(r.to_coco(compressed=False)) == r


@given(st.lists(strategies.binary_masks(max_side=24), max_size=8))
def test_batch_codec_equals_pycocotools(masks):
    dicts = [coco_encode(m) for m in masks]
    rles = rle.from_coco_batch(dicts)
    assert rles == [rle.encode(m) for m in masks]
    assert [d["counts"] for d in rle.to_coco_batch(rles)] == [d["counts"].decode() for d in dicts]


def test_uncompressed_counts_read_like_pycocotools():
    counts = [3, 4, 2, 0, 0, 5, 6]  # zero-length runs, as in real COCO files
    d = {"size": [4, 5], "counts": counts}
    theirs = coco.decode(coco.frPyObjects(d, 4, 5))
    r = rle.from_coco(d)
    np.testing.assert_array_equal(rle.decode(r), theirs)
    np.testing.assert_array_equal(rle.decode(r), counts_to_dense((4, 5), counts))
    # pycocotools keeps the zero runs in its string; ours is canonical
    assert r.counts.tolist() == [3, 4, 2, 5, 6]
    assert r.to_coco()["counts"] == coco_encode(theirs)["counts"].decode()


def test_large_counts_use_64_bits_and_round_trip():
    r = RLE((70000, 70000), [70000 * 70000 - 5, 5])
    assert r.counts.dtype == np.uint64
    assert rle.from_coco(r.to_coco()) == r
    assert rle.area(r) == 5


def test_large_sparse_frame_matches_pycocotools():
    m = np.zeros((4096, 4096), np.uint8)
    m[4000:4010, 17] = 1
    m[0, 4095] = 1
    assert rle.encode(m).to_coco()["counts"] == coco_encode(m)["counts"].decode()
    assert rle.empty((4096, 4096)).to_coco()["counts"] == "PPPP`0"  # 6 chars, §1.8


# --------------------------------------------------------------------------- value type


def test_counts_are_canonical_readonly_uint32():
    r = RLE((2, 3), np.array([2, 0, 0, 3, 1, 0], np.int64))
    assert r.counts.dtype == np.uint32
    assert r.counts.tolist() == [2, 3, 1]
    with pytest.raises(ValueError, match="read-only"):
        r.counts[0] = 1


def test_constructor_copies_its_input():
    counts = np.array([2, 3, 1])
    r = RLE((2, 3), counts)
    counts[0] = 99
    assert r.counts.tolist() == [2, 3, 1]


def test_equality_and_hash_by_value():
    a = RLE((2, 3), [2, 3, 1])
    b = rle.from_coco({"size": [2, 3], "counts": "231"})
    assert a == b
    assert hash(a) == hash(b)
    assert a != RLE((3, 2), [2, 3, 1])
    assert len({a, b}) == 1


def test_pickles():
    a = RLE((2, 3), [2, 3, 1])
    assert pickle.loads(pickle.dumps(a)) == a


def test_repr_is_short():
    assert repr(RLE((2, 3), [2, 3, 1])) == "RLE(size=(2, 3), area=3, runs=3)"


@pytest.mark.parametrize("shape", [(0, 0), (0, 5), (5, 0)])
def test_zero_sized_masks_match_pycocotools(shape):
    m = np.zeros(shape, np.uint8)
    r = rle.encode(m)
    assert r.to_coco()["counts"] == coco_encode(m)["counts"].decode() == "0"
    assert rle.decode(r).shape == shape
    assert rle.area(r) == 0
    assert rle.bbox(r).tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize(
    ("mask", "counts"),
    [([[0]], [1]), ([[1]], [0, 1]), ([[1, 1], [1, 1]], [0, 4]), ([[0, 0]], [2])],
)
def test_one_pixel_empty_and_full(mask, counts):
    assert rle.encode(np.array(mask)).counts.tolist() == counts


def test_fortran_and_c_order_give_the_same_rle():
    m = np.array([[0, 1, 1], [0, 1, 0]], np.uint8)
    assert rle.encode(m) == rle.encode(np.asfortranarray(m)) == rle.encode(m.astype(bool))


def test_encode_batch_and_decode_batch():
    stack = np.zeros((3, 4, 5), np.uint8)
    stack[1, 1:3, 2] = 1
    stack[2] = 1
    rles = rle.encode_batch(stack)
    assert [rle.area(r) for r in rles] == [0, 2, 20]
    out = rle.decode_batch(rles)
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, stack)


# --------------------------------------------------------------------- where pycocotools is wrong


def test_non_binary_values_are_foreground():
    """§1.4: pycocotools encodes [[0,2],[3,0]] as counts [1,1,1,1] (wrong)."""
    m = np.array([[0, 2], [3, 0]], np.uint8)
    assert rle.encode(m).counts.tolist() == [1, 2, 1]
    assert coco.encode(np.asfortranarray(m))["counts"] != rle.encode(m).to_coco()["counts"]


def test_bbox_with_only_zero_length_foreground_runs_is_empty():
    """§1.7: pycocotools' toBbox returns [3, 2, 4294967293, 4294967294] here."""
    r = rle.from_coco({"size": [2, 3], "counts": [3, 0, 3]})
    assert rle.bbox(r).tolist() == [0.0, 0.0, 0.0, 0.0]
    assert r == rle.empty((2, 3))


def test_merge_and_iou_survive_zero_length_runs():
    """§1.7: pycocotools' merge([a, a]) returns [1] and iou(a, a) returns 0.0 here."""
    a = rle.from_coco({"size": [2, 3], "counts": [1, 0, 0, 1, 4]})
    assert rle.merge([a, a]).counts.tolist() == [1, 1, 4]
    assert rle.iou([a], [a]).tolist() == [[1.0]]


@given(strategies.noncanonical_counts())
def test_noncanonical_counts_measure_like_their_pixels(size_counts):
    size, counts = size_counts
    dense = counts_to_dense(size, counts)
    r = rle.from_coco({"size": list(size), "counts": counts})
    np.testing.assert_array_equal(rle.decode(r), dense)
    assert r.counts.tolist() == dense_counts(dense)
    assert rle.area(r) == int(dense.sum())
    assert rle.bbox(r).tolist() == dense_bbox(dense)
    assert rle.iou([r], [r]).tolist() == [[1.0 if dense.any() else 0.0]]


# --------------------------------------------------------------------------- measures


@given(strategies.binary_masks(min_side=1))
def test_area_and_bbox_match_pycocotools(mask):
    d = coco_encode(mask)
    r = rle.encode(mask)
    assert rle.area(r) == int(coco.area(d))
    assert rle.bbox(r).tolist() == coco.toBbox(d).tolist()
    assert rle.bbox(r).tolist() == dense_bbox(mask)


@given(st.lists(strategies.binary_masks(min_side=1), max_size=6))
def test_area_bbox_batch_matches_pycocotools(masks):
    areas, boxes = rle.area_bbox_batch([rle.encode(m) for m in masks])
    assert areas.shape == (len(masks),)
    assert boxes.shape == (len(masks), 4)
    for m, a, b in zip(masks, areas.tolist(), boxes.tolist(), strict=True):
        d = coco_encode(m)
        assert a == int(coco.area(d))
        assert b == coco.toBbox(d).tolist()


def test_area_counts_pixels_not_box():
    ring = np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]])
    assert rle.area(rle.encode(ring)) == 8
    assert rle.bbox(rle.encode(ring)).tolist() == [0, 0, 3, 3]


@given(strategies.mask_lists())
def test_merge_union_and_intersection_match_pycocotools(masks):
    dicts = [coco_encode(m) for m in masks]
    rles = [rle.encode(m) for m in masks]
    assert rle.merge(rles, "union").to_coco()["counts"] == coco.merge(dicts)["counts"].decode()
    assert (
        rle.merge(rles, "intersection").to_coco()["counts"]
        == coco.merge(dicts, intersect=True)["counts"].decode()
    )


@given(strategies.mask_lists())
def test_merge_difference_and_xor_match_dense(masks):
    rles = [rle.encode(m) for m in masks]
    first, rest = masks[0] != 0, [m != 0 for m in masks[1:]]
    others = np.logical_or.reduce(rest) if rest else np.zeros_like(first)
    np.testing.assert_array_equal(rle.decode(rle.merge(rles, "difference")), first & ~others)
    parity = np.add.reduce([m != 0 for m in masks]) % 2
    np.testing.assert_array_equal(rle.decode(rle.merge(rles, "xor")), parity)


@given(strategies.mask_lists(max_size=8), st.randoms(use_true_random=False))
def test_iou_matches_pycocotools(masks, random):
    dts, gts = masks[: len(masks) // 2 + 1], masks[len(masks) // 2 :]
    crowd = [random.random() < 0.3 for _ in gts]
    ours = rle.iou([rle.encode(m) for m in dts], [rle.encode(m) for m in gts], crowd)
    theirs = coco.iou([coco_encode(m) for m in dts], [coco_encode(m) for m in gts], crowd)
    assert ours.shape == (len(dts), len(gts))
    np.testing.assert_array_equal(ours, np.asarray(theirs).reshape(ours.shape))
    for i, d in enumerate(dts):
        for j, g in enumerate(gts):
            assert ours[i, j] == pytest.approx(dense_iou(d != 0, g != 0, crowd[j]), abs=1e-15)


def test_iou_crowd_rule_by_hand():
    d = rle.encode(np.array([[1, 1, 0, 0]]))
    g = rle.encode(np.array([[0, 1, 1, 1]]))
    assert rle.iou([d], [g], [False]).tolist() == [[1 / 4]]
    assert rle.iou([d], [g], [True]).tolist() == [[1 / 2]]


def test_iou_of_empty_lists_has_the_right_shape():
    a = rle.encode(np.ones((2, 2)))
    assert rle.iou([], [a]).shape == (0, 1)
    assert rle.iou([a], []).shape == (1, 0)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("obj", "match"),
    [
        ({"size": [2, 3], "counts": [1, 1]}, r"sum to 2 but size \[2, 3\] needs 6"),
        ({"size": [2, 3], "counts": [1, 1, 9]}, r"sum to 11 .* needs 6"),
        ({"size": [2, 3], "counts": [3, -1, 4]}, r"non-negative, got -1 at index 1"),
        ({"size": [2, 3], "counts": "b'231'"}, r"character \"'\" at position 1"),
        ({"size": [2, 3], "counts": "23 1"}, r"character ' '"),
        ({"size": [2, 3], "counts": "2P"}, r"truncated"),
        ({"size": [2, 3], "counts": "21"}, r"sum to 3"),
        ({"size": [2, 3], "counts": "2H"}, r"negative"),
        ({"size": [2], "counts": "231"}, r"size must be \[h, w\]"),
        ({"size": [2, -3], "counts": "231"}, r"non-negative"),
        ({"counts": "231"}, r"missing \['size'\]"),
        ({"size": [2, 3], "counts": [[1, 2]]}, r"one-dimensional"),
        ({"size": [2, 3], "counts": [1.5, 4.5]}, r"integers"),
    ],
)
def test_malformed_rle_raises_mask_format_error(obj, match):
    with pytest.raises(MaskFormatError, match=match):
        rle.from_coco(obj)


def test_batch_error_names_the_record():
    good = rle.encode(np.ones((2, 3))).to_coco()
    with pytest.raises(MaskFormatError, match=r"RLE 1.*character"):
        rle.from_coco_batch([good, {"size": [2, 3], "counts": "2 1"}])
    with pytest.raises(MaskFormatError, match=r"RLE 2.*sum to"):
        rle.from_coco_batch([good, good, {"size": [2, 3], "counts": "21"}])


@pytest.mark.parametrize("shape", [(3,), (2, 2, 2), ()])
def test_encode_rejects_non_2d(shape):
    with pytest.raises(MaskFormatError, match="2-D"):
        rle.encode(np.zeros(shape))


def test_size_mismatch_raises_in_merge_and_iou():
    a, b = rle.empty((2, 3)), rle.empty((3, 2))
    with pytest.raises(MaskFormatError, match=r"one size.*\(2, 3\).*\(3, 2\)"):
        rle.merge([a, b])
    with pytest.raises(MaskFormatError, match="one size"):
        rle.iou([a], [b])


def test_iscrowd_length_must_match():
    a = rle.empty((2, 3))
    with pytest.raises(MaskFormatError, match="iscrowd has 2 entries for 1"):
        rle.iou([a], [a], [True, False])


def test_errors_are_value_errors_too():
    with pytest.raises(ValueError):  # noqa: PT011 - the subclassing is the point
        rle.from_coco({"size": [1, 1], "counts": [2]})


def test_decode_rejects_a_dict_with_a_hint():
    with pytest.raises(TypeError, match="from_coco"):
        rle.decode({"size": [1, 1], "counts": "01"})  # type: ignore[arg-type]


# --------------------------------------------------------------------------- geometry on runs


@given(
    strategies.binary_masks(max_side=20),
    st.tuples(*[st.integers(-6, 26)] * 2),
    st.tuples(*[st.integers(0, 26)] * 2),
)
def test_crop_matches_dense_crop_and_pads_outside(mask, xy, wh):
    box = [xy[0], xy[1], wh[0], wh[1]]
    out = rle.crop(rle.encode(mask), box)
    assert out.size == (wh[1], wh[0])
    np.testing.assert_array_equal(rle.decode(out), dense_crop(mask, box))


@given(strategies.binary_masks(max_side=20), st.tuples(*[st.integers(-3, 5)] * 4))
def test_pad_matches_numpy_pad(mask, amounts):
    top, bottom, left, right = amounts
    h, w = mask.shape
    if h + top + bottom < 0 or w + left + right < 0:
        with pytest.raises(MaskFormatError, match="negative size"):
            rle.pad(rle.encode(mask), top=top, bottom=bottom, left=left, right=right)
        return
    out = rle.pad(rle.encode(mask), top=top, bottom=bottom, left=left, right=right)
    expected = dense_crop(mask, [-left, -top, w + left + right, h + top + bottom])
    np.testing.assert_array_equal(rle.decode(out), expected)
    if min(amounts) >= 0:
        np.testing.assert_array_equal(rle.decode(out), np.pad(mask, ((top, bottom), (left, right))))


@given(strategies.binary_masks(max_side=20), st.integers(-25, 25), st.integers(-25, 25))
def test_translate_shifts_and_cuts(mask, dx, dy):
    h, w = mask.shape
    expected = np.zeros_like(mask)
    src = mask[max(0, -dy) : max(0, min(h, h - dy)), max(0, -dx) : max(0, min(w, w - dx))]
    expected[max(0, dy) : max(0, dy) + src.shape[0], max(0, dx) : max(0, dx) + src.shape[1]] = src
    np.testing.assert_array_equal(rle.decode(rle.translate(rle.encode(mask), dx, dy)), expected)


@given(strategies.binary_masks())
def test_flip_matches_numpy(mask):
    r = rle.encode(mask)
    np.testing.assert_array_equal(rle.decode(rle.flip(r, "horizontal")), mask[:, ::-1])
    np.testing.assert_array_equal(rle.decode(rle.flip(r, "vertical")), mask[::-1, :])


@given(strategies.binary_masks(min_side=1, max_side=30), st.integers(1, 45), st.integers(1, 45))
def test_resize_nearest_matches_opencv_nearest_exact(mask, H, W):
    out = rle.decode(rle.resize_nearest(rle.encode(mask), (H, W)))
    np.testing.assert_array_equal(out, dense_resize_nearest(mask, (H, W)))
    # OpenCV (and PIL) compute in fixed point: where a sample falls exactly on a pixel
    # boundary they may take the other pixel. Compare everywhere else.
    h, w = mask.shape
    rows = ((2 * np.arange(H) + 1) * h) % (2 * H) != 0
    cols = ((2 * np.arange(W) + 1) * w) % (2 * W) != 0
    theirs = cv2.resize(mask, (W, H), interpolation=cv2.INTER_NEAREST_EXACT)
    np.testing.assert_array_equal(out[np.ix_(rows, cols)], theirs[np.ix_(rows, cols)])


def test_resize_to_or_from_zero_size_is_empty():
    assert rle.resize_nearest(rle.full((3, 3)), (0, 4)) == rle.empty((0, 4))
    assert rle.resize_nearest(rle.empty((0, 4)), (2, 2)) == rle.empty((2, 2))


def test_flip_rejects_unknown_axis():
    with pytest.raises(ValueError, match="horizontal"):
        rle.flip(rle.full((2, 2)), "diagonal")  # type: ignore[arg-type]


@pytest.mark.parametrize("box", [[0, 0, -1, 2], [0.5, 0, 1, 1], [0, 0, 1]])
def test_crop_rejects_bad_boxes(box):
    with pytest.raises(MaskFormatError, match="box"):
        rle.crop(rle.full((2, 2)), box)


def test_empty_and_full_constructors():
    assert rle.area(rle.full((3, 4))) == 12
    assert rle.area(rle.empty((3, 4))) == 0
    assert rle.full((0, 3)) == rle.empty((0, 3))


def test_iou_of_large_frames_does_not_overflow():
    """Runs of many masks are laid back to back: positions beyond 2**31 need 64 bits."""
    a = rle.crop(rle.full((100, 100)), [-46000, -46000, 46100, 46100])  # 100x100 at the corner
    b = rle.translate(a, -50, 0)
    masks = [a] * 2
    out = rle.iou(masks, [b, a], [False, True])
    assert out.tolist() == [[50 * 100 / (150 * 100), 1.0]] * 2


def test_batch_reading_canonicalises_zero_length_runs():
    """pycocotools keeps zero-length runs in the strings it writes (§1.7); reading them
    in a batch merges them away, like the single reader."""
    raw = [{"size": [4, 5], "counts": [3, 4, 2, 0, 0, 5, 6]}, {"size": [2, 3], "counts": [6, 0]}]
    strings = [coco.frPyObjects(d, *d["size"]) for d in raw]
    assert rle.from_coco_batch(strings) == [rle.from_coco(d) for d in raw]
    assert [r.counts.tolist() for r in rle.from_coco_batch(strings)] == [[3, 4, 2, 5, 6], [6]]


@given(strategies.binary_masks())
def test_decode_box_holds_all_foreground_at_its_corner(mask):
    box, (x, y) = rle.decode_box(rle.encode(mask))
    frame = np.zeros_like(mask)
    frame[y : y + box.shape[0], x : x + box.shape[1]] = box
    np.testing.assert_array_equal(frame, mask)
    assert box.flags.c_contiguous
