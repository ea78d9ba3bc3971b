"""masklab.metrics.semantic and .boundary against hand-counted matrices and brute-force loops."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from masklab.errors import LabelMapError, MaskFormatError
from masklab.metrics.boundary import BoundaryF, boundary_f, boundary_pixels, tolerance_px
from masklab.metrics.semantic import ConfusionMatrix

# --------------------------------------------------------------------------- references


def loop_matrix(pred: np.ndarray, target: np.ndarray, k: int, ignore: int | None) -> np.ndarray:
    """Confusion matrix by visiting every pixel."""
    m = np.zeros((k, k), np.int64)
    for t, p in zip(target.reshape(-1).tolist(), pred.reshape(-1).tolist(), strict=True):
        if ignore is not None and t == ignore:
            continue
        m[t][p] += 1
    return m


def loop_iou(m: np.ndarray) -> list[float]:
    out = []
    for c in range(m.shape[0]):
        tp = m[c][c]
        fn = sum(m[c][j] for j in range(m.shape[0]) if j != c)
        fp = sum(m[i][c] for i in range(m.shape[0]) if i != c)
        out.append(tp / (tp + fp + fn) if tp + fp + fn else math.nan)
    return out


def loop_boundary(labels: np.ndarray, ignore: np.ndarray) -> list[tuple[int, int]]:
    """Pixels with a 4-neighbour of another label, neither being ignored."""
    h, w = labels.shape
    out = []
    for y in range(h):
        for x in range(w):
            if ignore[y, x]:
                continue
            for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                yy, xx = y + dy, x + dx
                inside = 0 <= yy < h and 0 <= xx < w
                if inside and not ignore[yy, xx] and labels[yy, xx] != labels[y, x]:
                    out.append((y, x))
                    break
    return out


def loop_boundary_counts(
    pred: np.ndarray, target: np.ndarray, k: int, ignore_index: int | None, radius: float
) -> np.ndarray:
    """(4, K): predicted boundary px, matched, GT boundary px, matched; by pairwise distances."""
    ignore = target == ignore_index if ignore_index is not None else np.zeros(target.shape, bool)
    gb = loop_boundary(target, ignore)
    pb = loop_boundary(pred, ignore)
    counts = np.zeros((4, k), np.int64)

    def within(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> int:
        """How many points of ``a`` have a point of ``b`` within the radius (all pairs)."""
        if not a or not b:
            return 0
        pa, pb_ = np.array(a), np.array(b)
        d2 = ((pa[:, None, :] - pb_[None, :, :]) ** 2).sum(axis=2)
        return int((d2 <= radius**2).any(axis=1).sum())

    for c in range(k):
        g = [q for q in gb if target[q] == c]
        p = [q for q in pb if pred[q] == c]
        counts[:, c] = [len(p), within(p, g), len(g), within(g, p)]
    return counts


# --------------------------------------------------------------------------- confusion matrix


PRED = np.array([[0, 1, 2], [1, 1, 0]])
TARGET = np.array([[0, 1, 1], [255, 1, 2]])
# counted pixels (gt, pred): (0,0) (1,1) (1,2) (1,1) (2,0); the 255 is ignored
HAND = [[1, 0, 0], [0, 2, 1], [1, 0, 0]]


def test_matrix_rows_are_ground_truth_columns_prediction():
    cm = ConfusionMatrix(3)
    cm.update(PRED, TARGET)
    assert cm.matrix.dtype == np.int64
    assert cm.matrix.tolist() == HAND
    assert cm.total == 5


def test_metrics_of_a_hand_counted_matrix():
    cm = ConfusionMatrix(3)
    cm.update(PRED, TARGET)
    # class 0: tp 1, fp 1 (gt 2 predicted 0), fn 0; class 1: tp 2, fn 1; class 2: tp 0, fn 1, fp 1
    np.testing.assert_allclose(cm.iou(), [1 / 2, 2 / 3, 0.0])
    assert cm.miou() == pytest.approx((1 / 2 + 2 / 3 + 0) / 3)
    np.testing.assert_allclose(cm.dice(), [2 / 3, 4 / 5, 0.0])
    assert cm.mean_dice() == pytest.approx((2 / 3 + 4 / 5) / 3)
    assert cm.pixel_accuracy() == pytest.approx(3 / 5)
    np.testing.assert_allclose(cm.class_accuracy(), [1.0, 2 / 3, 0.0])
    assert cm.mean_accuracy() == pytest.approx((1 + 2 / 3 + 0) / 3)


def test_class_absent_from_both_maps_is_nan_and_left_out_of_the_means():
    cm = ConfusionMatrix(4)
    cm.update(PRED, TARGET)
    iou = cm.iou()
    assert np.isnan(iou[3])
    assert np.isnan(cm.dice()[3])
    assert np.isnan(cm.class_accuracy()[3])
    assert cm.miou() == pytest.approx((1 / 2 + 2 / 3 + 0) / 3)


def test_class_only_predicted_has_iou_zero_and_no_accuracy():
    cm = ConfusionMatrix(3, ignore_index=None)
    cm.update([[2, 0]], [[0, 0]])
    iou = cm.iou()
    assert iou[2] == 0.0
    assert np.isnan(iou[1])
    assert np.isnan(cm.class_accuracy()[2])


@pytest.mark.parametrize("seed", range(5))
def test_matches_a_per_pixel_loop(seed):
    rng = np.random.default_rng(seed)
    k = 5
    target = rng.integers(0, k, (3, 7, 9))
    target[rng.random(target.shape) < 0.2] = 255
    pred = rng.integers(0, k, target.shape)
    cm = ConfusionMatrix(k)
    cm.update(pred, target)
    ref = loop_matrix(pred, target, k, 255)
    assert cm.matrix.tolist() == ref.tolist()
    np.testing.assert_allclose(cm.iou(), loop_iou(ref))


def test_ignore_pixels_are_skipped_whatever_was_predicted_there():
    target = np.array([[1, 255], [255, 0]], np.uint8)
    pred = np.array([[1, 99], [200, 0]], np.uint8)  # out-of-range values under ignore only
    cm = ConfusionMatrix(2)
    cm.update(pred, target)
    assert cm.matrix.tolist() == [[1, 0], [0, 1]]


def test_custom_ignore_index_and_none():
    cm = ConfusionMatrix(3, ignore_index=0)
    cm.update([[0, 1, 2]], [[0, 2, 2]])
    assert cm.matrix.tolist() == [[0, 0, 0], [0, 0, 0], [0, 1, 1]]
    cm = ConfusionMatrix(3, ignore_index=None)
    with pytest.raises(LabelMapError, match=r"target holds class id 255.*ignore_index is None"):
        cm.update([[0]], [[255]])


def test_target_outside_the_classes_names_the_value_and_the_fix():
    cm = ConfusionMatrix(3)
    with pytest.raises(LabelMapError, match=r"target holds class id 7 .*outside 0\.\.2.*TrainIds"):
        cm.update([[0, 0]], [[7, 1]])
    with pytest.raises(LabelMapError, match=r"target holds class id -1"):
        cm.update([[0, 0]], [[-1, 1]])
    assert cm.total == 0  # nothing counted from a rejected update


def test_prediction_outside_the_classes_is_an_error():
    cm = ConfusionMatrix(3)
    with pytest.raises(LabelMapError, match=r"prediction holds class id 3.*argmax"):
        cm.update([[3, 0]], [[1, 1]])


def test_shape_and_dtype_are_checked():
    cm = ConfusionMatrix(3)
    with pytest.raises(MaskFormatError, match=r"shape \(1, 2\).*\(2, 1\)"):
        cm.update([[0, 1]], [[0], [1]])
    with pytest.raises(TypeError, match=r"integer class ids.*argmax"):
        cm.update(np.zeros((2, 2), np.float32), np.zeros((2, 2), np.int64))


def test_batch_equals_images_one_by_one_and_merge_equals_one_stream():
    rng = np.random.default_rng(7)
    target = rng.integers(0, 4, (4, 6, 5)).astype(np.uint8)
    pred = rng.integers(0, 4, (4, 6, 5)).astype(np.uint8)
    batch = ConfusionMatrix(4)
    batch.update(pred, target)
    one, a, b = ConfusionMatrix(4), ConfusionMatrix(4), ConfusionMatrix(4)
    for i in range(4):
        one.update(pred[i], target[i])
        (a if i < 2 else b).update(pred[i], target[i])
    assert batch.matrix.tolist() == one.matrix.tolist()
    assert a.merge(b).matrix.tolist() == one.matrix.tolist()
    with pytest.raises(ValueError, match="same settings"):
        a.merge(ConfusionMatrix(5))


def test_reset_forgets_counts():
    cm = ConfusionMatrix(3, per_image=True)
    cm.update(PRED, TARGET)
    cm.reset()
    assert cm.total == 0
    assert cm.num_images == 0
    assert np.isnan(cm.miou())


def test_matrix_is_read_only_and_input_not_mutated():
    target = TARGET.copy()
    cm = ConfusionMatrix(3)
    cm.update(PRED, target)
    assert target.tolist() == TARGET.tolist()
    with pytest.raises(ValueError, match="read-only"):
        cm.matrix[0, 0] = 5


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int32, np.uint64, np.int64])
@pytest.mark.parametrize("per_image", [False, True])
def test_every_integer_dtype_counts_the_same(dtype, per_image):
    target = np.array([[0, 1, 1], [1, 1, 2]], dtype)
    pred = PRED.astype(dtype)
    cm = ConfusionMatrix(3, per_image=per_image)
    cm.update(pred, target)
    assert cm.matrix.tolist() == [[1, 0, 0], [0, 3, 1], [1, 0, 0]]


def test_torch_cpu_tensors_are_accepted():
    torch = pytest.importorskip("torch")
    cm = ConfusionMatrix(3)
    cm.update(torch.tensor(PRED), torch.tensor(TARGET))
    assert cm.matrix.tolist() == HAND


def test_to_dict_is_json_ready_with_nan_as_none():
    cm = ConfusionMatrix(4, names=["bg", "a", "b", "c"])
    cm.update(PRED, TARGET)
    d = json.loads(json.dumps(cm.to_dict(), allow_nan=False))
    assert d["matrix"][:3] == [[*row, 0] for row in HAND]
    assert d["classes"][3] == {
        "id": 3,
        "name": "c",
        "iou": None,
        "dice": None,
        "accuracy": None,
        "gt_px": 0,
        "pred_px": 0,
    }
    assert d["classes"][1]["iou"] == pytest.approx(2 / 3)
    assert d["pixel_accuracy"] == pytest.approx(0.6)


class TestPerImage:
    """Dataset-level IoU (the standard) against the mean of per-image IoUs."""

    @staticmethod
    def images() -> list[tuple[np.ndarray, np.ndarray]]:
        # A: 10 px, class 1 on one pixel, missed. B: 100 px, class 1 on 99, all found.
        a_t = np.zeros((2, 5), np.int64)
        a_t[0, 0] = 1
        a_p = np.zeros_like(a_t)
        b_t = np.ones((10, 10), np.int64)
        b_t[9, 9] = 0
        return [(a_p, a_t), (b_t.copy(), b_t)]

    def test_dataset_iou_differs_from_the_mean_of_per_image_ious(self):
        cm = ConfusionMatrix(2, ignore_index=None, per_image=True)
        for pred, target in self.images():
            cm.update(pred, target)
        # dataset: class 0 tp 9 + 1, fp 1; class 1 tp 99, fn 1
        np.testing.assert_allclose(cm.iou(), [10 / 11, 99 / 100])
        assert cm.miou() == pytest.approx((10 / 11 + 0.99) / 2)
        # per image: A = [9/10, 0], B = [1, 1]
        np.testing.assert_allclose(cm.mean_image_iou(), [(0.9 + 1) / 2, (0 + 1) / 2])
        assert cm.mean_image_miou() == pytest.approx(((0.9 + 0) / 2 + 1) / 2)
        assert cm.num_images == 2

    def test_a_batch_is_several_images(self):
        rng = np.random.default_rng(3)
        target = rng.integers(0, 3, (3, 4, 4))
        pred = rng.integers(0, 3, (3, 4, 4))
        batch = ConfusionMatrix(3, per_image=True)
        batch.update(pred, target)
        single = ConfusionMatrix(3, per_image=True)
        ious = []
        for i in range(3):
            single.update(pred[i], target[i])
            ious.append(loop_iou(loop_matrix(pred[i], target[i], 3, None)))
        np.testing.assert_allclose(batch.mean_image_iou(), single.mean_image_iou())
        expected = np.nanmean(np.array(ious), axis=0)
        np.testing.assert_allclose(batch.mean_image_iou(), expected)
        assert batch.mean_image_miou() == pytest.approx(np.mean([np.nanmean(r) for r in ious]))

    def test_class_absent_from_an_image_does_not_count_for_it(self):
        cm = ConfusionMatrix(3, ignore_index=None, per_image=True)
        cm.update([[0, 0]], [[0, 0]])  # class 1 absent: not a 0 for it
        cm.update([[1, 0]], [[1, 1]])
        np.testing.assert_allclose(cm.mean_image_iou(), [(1 + 0) / 2, 0.5, np.nan])

    def test_fully_ignored_image_is_not_an_image(self):
        cm = ConfusionMatrix(2, per_image=True)
        cm.update([[0, 1]], [[255, 255]])
        assert cm.num_images == 0
        assert np.isnan(cm.mean_image_miou())

    def test_asking_without_per_image_says_how(self):
        cm = ConfusionMatrix(2)
        with pytest.raises(ValueError, match=r"per_image=True"):
            cm.mean_image_iou()


# --------------------------------------------------------------------------- boundary F


def square(h: int, w: int, y: int, x: int, side: int) -> np.ndarray:
    m = np.zeros((h, w), np.int64)
    m[y : y + side, x : x + side] = 1
    return m


def test_boundary_of_a_square_is_its_ring():
    gt = square(12, 12, 2, 2, 6)
    b = boundary_pixels(gt) & (gt == 1)
    assert int(b.sum()) == 20  # 6 * 4 - 4
    assert not b[3:7, 3:7].any()


def test_image_border_is_not_a_boundary():
    full = np.ones((4, 4), np.int64)
    assert not boundary_pixels(full).any()


@pytest.mark.parametrize(("radius", "matched"), [(1, 10), (2, 14)])
def test_square_against_a_square_shifted_three_pixels(radius, matched):
    """GT ring: rows 2, 7 x cols 2..7 and cols 2, 7 x rows 3..6; prediction shifted right
    by 3. Within 1 px: top and bottom rows match cols 5..8 (4 each), the left column's ends
    (rows 3, 6) touch the GT's top / bottom rows: 4 + 4 + 2 = 10 of 20. Within 2 px the
    rows reach col 9 and the whole left column is 2 from the GT's right one: 5 + 5 + 4."""
    gt = square(12, 12, 2, 2, 6)
    pred = square(12, 12, 2, 5, 6)
    bf = BoundaryF(2, ignore_index=None, tolerance=radius)
    bf.update(pred, gt)
    assert bf.counts[:, 1].tolist() == [20, matched, 20, matched]
    assert bf.precision()[1] == bf.recall()[1] == bf.f_score()[1] == pytest.approx(matched / 20)
    assert boundary_f(pred, gt, tolerance=radius).f == pytest.approx(matched / 20)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("tolerance", [1, 1.5, 2, 3, 0.1])
def test_boundary_counts_match_pairwise_distance_loops(seed, tolerance):
    rng = np.random.default_rng(seed)
    # blocky maps (a few regions) rather than noise, so matches are neither all nor none
    target = np.kron(rng.integers(0, 3, (4, 5)), np.ones((3, 3), np.int64))[:11, :13]
    pred = np.roll(target, shift=int(rng.integers(-2, 3)), axis=int(rng.integers(0, 2)))
    pred = np.where(rng.random(pred.shape) < 0.05, rng.integers(0, 3, pred.shape), pred)
    target = np.where(rng.random(target.shape) < 0.1, 255, target)
    bf = BoundaryF(3, tolerance=tolerance)
    bf.update(pred, target)
    radius = math.ceil(tolerance * math.hypot(11, 13)) if tolerance < 1 else tolerance
    expected = loop_boundary_counts(pred, target, 3, 255, radius)
    assert bf.counts.tolist() == expected.tolist()


@pytest.mark.parametrize("tolerance", [2, 5])
def test_boundary_counts_match_pairwise_distances_on_a_sparse_map(tolerance):
    """Objects far apart (more than the coarse cells the matcher skips by), matches
    across cell lines, objects at the image edges, a class in only one of the maps."""
    target = np.zeros((48, 150), np.int64)
    target[0:6, 0:8] = 1
    target[20:30, 60:75] = 2
    target[40:48, 140:150] = 1
    target[10:14, 100:104] = 3
    target[12:16, 110:128] = 2  # edges at row 15 / col 127, the prediction's at 17 / 129:
    pred = np.zeros_like(target)  # matches across the matcher's 16-px cell lines
    pred[12:18, 110:130] = 2
    pred[1:7, 2:9] = 1
    pred[21:29, 62:78] = 2
    pred[0:5, 120:130] = 1  # a false one, far from any ground truth of class 1
    pred[30:40, 20:30] = 4  # class 4 only predicted
    pred[40:48, 138:150] = 1
    bf = BoundaryF(5, ignore_index=None, tolerance=tolerance)
    bf.update(pred, target)
    expected = loop_boundary_counts(pred, target, 5, None, tolerance)
    assert bf.counts.tolist() == expected.tolist()
    assert 0 < expected[1, 1] < expected[0, 1]  # some matched, some not


def test_ignore_region_makes_no_boundary():
    target = np.ones((6, 6), np.int64)
    target[:, 3:] = 255
    pred = np.ones((6, 6), np.int64)
    pred[:, 3:] = 0  # a class edge only where the target is ignored
    bf = BoundaryF(2, tolerance=1)
    bf.update(pred, target)
    assert bf.counts.tolist() == [[0, 0], [0, 0], [0, 0], [0, 0]]
    assert np.isnan(bf.f_score()).all()


def test_boundary_in_only_one_map_scores_zero():
    gt = square(10, 10, 2, 2, 4)
    bf = BoundaryF(3, ignore_index=None, tolerance=1)
    bf.update(np.zeros_like(gt), gt)  # class 1 missed entirely; class 2 nowhere
    f = bf.f_score()
    assert f[1] == 0.0
    assert np.isnan(f[2])
    assert np.isnan(bf.precision()[1])
    assert bf.recall()[1] == 0.0


def test_dataset_f_differs_from_the_mean_of_per_image_f():
    small = square(8, 8, 2, 2, 3)  # ring of 8, predicted exactly: F = 1
    big_gt, big_pred = square(12, 12, 2, 2, 6), square(12, 12, 2, 5, 6)  # 10 of 20: F = 0.5
    bf = BoundaryF(2, ignore_index=None, tolerance=1)
    bf.update(small, small)
    bf.update(big_pred, big_gt)
    assert bf.f_score()[1] == pytest.approx((8 + 10) / (8 + 20))
    assert bf.mean_image_f()[1] == pytest.approx((1 + 0.5) / 2)


def test_batch_and_merge_equal_one_stream():
    rng = np.random.default_rng(11)
    target = np.kron(rng.integers(0, 3, (3, 3, 4)), np.ones((1, 4, 4), np.int64))
    pred = np.roll(target, 1, axis=2)
    batch = BoundaryF(3, tolerance=1)
    batch.update(pred, target)
    a, b = BoundaryF(3, tolerance=1), BoundaryF(3, tolerance=1)
    a.update(pred[0], target[0])
    b.update(pred[1:], target[1:])
    assert a.merge(b).counts.tolist() == batch.counts.tolist()
    np.testing.assert_allclose(a.mean_image_f(), batch.mean_image_f())
    with pytest.raises(ValueError, match="same settings"):
        a.merge(BoundaryF(3, tolerance=2))


def test_boundary_f_follows_davis_for_empty_masks():
    empty = np.zeros((5, 5), np.uint8)
    blob = square(5, 5, 1, 1, 2)
    assert tuple(boundary_f(empty, empty)) == (1.0, 1.0, 1.0)
    assert tuple(boundary_f(empty, blob)) == (0.0, 1.0, 0.0)
    assert tuple(boundary_f(blob, empty)) == (0.0, 0.0, 1.0)


def test_default_tolerance_is_three_quarters_of_a_percent_of_the_diagonal():
    assert tolerance_px((1024, 2048)) == math.ceil(0.0075 * math.hypot(1024, 2048)) == 18
    assert tolerance_px((427, 640), 0.008) == 7  # DAVIS's bound_th
    with pytest.raises(ValueError, match="positive"):
        tolerance_px((4, 4), 0)


def test_boundary_errors_like_the_confusion_matrix():
    bf = BoundaryF(2)
    with pytest.raises(LabelMapError, match="target holds class id 5"):
        bf.update([[0, 1]], [[5, 1]])
    with pytest.raises(LabelMapError, match="prediction holds class id 9"):
        bf.update([[9, 1]], [[0, 1]])


def test_boundary_to_dict_is_json_ready():
    bf = BoundaryF(3, ignore_index=None, tolerance=1, names=["bg", "sq", "none"])
    bf.update(square(12, 12, 2, 5, 6), square(12, 12, 2, 2, 6))
    d = json.loads(json.dumps(bf.to_dict(), allow_nan=False))
    assert d["classes"][1]["f"] == pytest.approx(0.5)
    assert d["classes"][2]["f"] is None
    assert d["classes"][1]["gt_boundary_px"] == 20
