"""train_iis: losses, the iterative training clicks, and short training runs on blobs."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from masklab.iis.clicks import Click  # noqa: E402
from masklab.iis.datasets import RegionSample  # noqa: E402
from masklab.iis.fusion import EarlyFusion, IntermediateFusion, TinyUNet  # noqa: E402
from masklab.iis.loop import full_inference  # noqa: E402
from masklab.iis.robots import get_robot  # noqa: E402
from masklab.iis.train import (  # noqa: E402
    bce_loss,
    next_clicks,
    normalized_focal_loss,
    train_iis,
)


@pytest.fixture(autouse=True)
def _one_thread_seeded():
    """One CPU thread (fast and steady on a loaded machine) and a fixed torch seed."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        yield
    torch.set_num_threads(threads)


def blobs(n, *, size=32, seed=0):
    """Two same-coloured disks on noise; the target is the first: only a click tells which."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:size, :size]
    items = []
    while len(items) < n:
        image = rng.integers(0, 60, (size, size, 3)).astype(np.uint8)
        masks = []
        for _ in range(2):
            r, c = rng.integers(6, size - 6, 2)
            masks.append((rows - r) ** 2 + (cols - c) ** 2 <= int(rng.integers(4, 7)) ** 2)
        if (masks[0] & masks[1]).any():
            continue
        image[masks[0] | masks[1]] = rng.integers(150, 256, 3)
        items.append((image, masks[0].astype(np.int8), masks[1]))
    return items


def iou(pred, mask):
    return (pred & mask).sum() / (pred | mask).sum()


def click_iou(model, items, *, on_other=False):
    """Mean IoU with the target after one positive click at a blob's centre."""
    ious = []
    for image, target, other in items:
        row, col = np.argwhere(other if on_other else target == 1).mean(0).round().astype(int)
        y, _ = model(image, model.initialize_z(image), [(row, col)], [])
        ious.append(iou(y > 0.49, target == 1))
    return float(np.mean(ious))


def ritm_iou(model, items, clicks=3):
    robot = get_robot("ritm")
    return float(
        np.mean([full_inference(model, robot, i, t, clicks).ious[-1] for i, t, _ in items])
    )


# --------------------------------------------------------------------------- losses


def np_log_sigmoid(z):
    return -np.log1p(np.exp(-z))


def test_normalized_focal_loss_by_hand():
    logits = torch.tensor([[[[2.0, -1.0, 0.5, 3.0]]]])
    target = torch.tensor([[[[1, 0, 0, -1]]]], dtype=torch.int8)
    z = np.array([2.0, -1.0, 0.5])
    p = 1 / (1 + np.exp(-z))
    pt = np.array([p[0], 1 - p[1], 1 - p[2]])
    alpha_t = np.array([0.25, 0.75, 0.75])
    beta = (1 - pt) ** 2
    beta = beta * 3 / beta.sum()  # normalised over the 3 valid pixels
    expected = np.mean(-alpha_t * beta * np.log(pt))
    got = normalized_focal_loss(logits, target, alpha=0.25, gamma=2.0)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_normalized_focal_loss_with_gamma_0_is_alpha_weighted_bce_per_image():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(2, 1, 5, 6)).astype(np.float32)
    t = rng.integers(-1, 2, size=(2, 1, 5, 6)).astype(np.int8)
    per_image = []
    for zi, ti in zip(z, t, strict=True):
        valid = ti != -1
        nll = np.where(ti == 1, -np_log_sigmoid(zi), -np_log_sigmoid(-zi))
        per_image.append(0.5 * nll[valid].mean())
    got = normalized_focal_loss(torch.from_numpy(z), torch.from_numpy(t), gamma=0.0)
    assert got.item() == pytest.approx(np.mean(per_image), rel=1e-5)


@pytest.mark.parametrize("loss", [normalized_focal_loss, bce_loss], ids=["nfl", "bce"])
def test_losses_leave_ignore_pixels_out(loss):
    logits = torch.randn(2, 1, 8, 8, requires_grad=True)
    target = torch.randint(0, 2, (2, 1, 8, 8), dtype=torch.int8)
    target[:, :, :3] = -1
    value = loss(logits, target)
    torch.autograd.backward(value)
    assert logits.grad[:, :, :3].abs().sum() == 0
    assert logits.grad[:, :, 3:].abs().sum() > 0
    changed = logits.detach().clone()
    changed[:, :, :3] = 50.0
    assert loss(changed, target).item() == pytest.approx(value.item(), rel=1e-6)


def test_bce_loss_matches_the_formula():
    z = np.array([[[[1.5, -0.5], [0.0, 4.0]]]], np.float32)
    t = np.array([[[[1, 0], [-1, 0]]]], np.int8)
    expected = np.mean([-np_log_sigmoid(1.5), -np_log_sigmoid(0.5), -np_log_sigmoid(-4.0)])
    assert bce_loss(torch.from_numpy(z), torch.from_numpy(t)).item() == pytest.approx(expected)


# --------------------------------------------------------------------------- training clicks


def square(size, top, left, side, value=1):
    out = np.zeros((size, size), np.int8)
    out[top : top + side, left : left + side] = value
    return out


def test_next_click_is_positive_deep_inside_a_missed_object():
    gt = square(40, 10, 10, 20)  # rows/cols 10..29; the distance to the border is 1..10
    prob = np.zeros((40, 40), np.float32)
    rng = np.random.default_rng(0)
    for _ in range(20):
        (pos,), (neg,) = next_clicks([gt], [prob], [[]], [[]], rng=rng)
        (click,) = pos
        assert neg == []
        assert click.positive
        assert 15 <= click.row <= 24
        assert 15 <= click.col <= 24


def test_next_click_is_negative_inside_the_thicker_false_positive():
    gt = square(40, 2, 2, 4)  # a small missed object: FN depth 2
    prob = square(40, 16, 16, 16).astype(np.float32) * 0.9  # a big false positive: depth 8
    prob[gt == 1] = 0.2
    rng = np.random.default_rng(1)
    seen = set()
    for _ in range(30):
        (pos,), (neg,) = next_clicks([gt], [prob], [[]], [[]], rng=rng)
        (click,) = neg
        assert pos == []
        assert not click.positive
        assert 20 <= click.row <= 27
        assert 20 <= click.col <= 27
        seen.add((click.row, click.col))
    assert len(seen) > 5  # uniform among the deep pixels, not the single deepest one


def test_next_click_leaves_ignore_pixels_out_and_appends_to_the_right_lists():
    gt_a = square(30, 5, 5, 8)  # missed: FN
    prob_a = np.zeros((30, 30), np.float32)
    gt_b = square(30, 0, 0, 30, value=-1)  # all ignore but a small object
    gt_b[20:24, 20:24] = 1
    prob_b = np.full((30, 30), 0.95, np.float32)  # predicts everything: no FP on ignore
    prob_b[20:24, 20:24] = 0.1
    pos_in = [[Click(6, 6, True)], []]
    neg_in = [[Click(0, 0, False)], [Click(1, 1, False)]]
    pos, neg = next_clicks(
        [gt_a, gt_b], [prob_a, prob_b], pos_in, neg_in, rng=np.random.default_rng(2)
    )
    assert len(pos[0]) == 2
    assert pos[0][0] == Click(6, 6, True)
    assert pos[0][1].positive
    assert neg[0] == [Click(0, 0, False)]
    assert len(pos[1]) == 1
    assert 20 <= pos[1][0].row <= 23
    assert 20 <= pos[1][0].col <= 23
    assert neg[1] == [Click(1, 1, False)]
    assert pos_in == [[Click(6, 6, True)], []]  # the inputs are not changed


# --------------------------------------------------------------------------- training


def test_early_fusion_training_learns_to_follow_the_click():
    train = [(image, target) for image, target, _ in blobs(64)]
    test = blobs(16, seed=1)
    model = EarlyFusion(TinyUNet(channels=(8, 16)))
    before = click_iou(model, test)
    lines = []
    result = train_iis(
        model, train, steps=60, batch_size=8, lr=5e-3, device="cpu", log=lines.append
    )
    assert result.steps == 60
    assert result.device == "cpu"
    assert len(lines) == 2
    assert before < 0.3
    assert click_iou(model, test) > 0.7
    assert click_iou(model, test, on_other=True) < 0.2  # the other blob is not the target
    assert ritm_iou(model, test) > 0.7


def test_intermediate_fusion_training_raises_iou():
    train = [(image, target) for image, target, _ in blobs(64)]
    test = blobs(16, seed=1)
    model = IntermediateFusion(TinyUNet(channels=(8, 16)))
    before = ritm_iou(model, test)
    train_iis(model, train, steps=60, batch_size=8, lr=1e-2, device="cpu")
    assert before < 0.3
    assert ritm_iou(model, test) > 0.6


def test_bce_training_lowers_the_loss():
    train = [(image, target) for image, target, _ in blobs(32)]
    model = EarlyFusion(TinyUNet(channels=(8, 16), decoder_channels=8))
    result = train_iis(model, train, steps=30, batch_size=8, lr=5e-3, loss="bce", device="cpu")
    first, last = np.mean(result.losses[:8]), np.mean(result.losses[-8:])
    assert last < 0.6 * first


class Regions:
    """A RegionDataset-like source of RegionSamples of two sizes, with epochs."""

    def __init__(self):
        self.items = [
            RegionSample(image, target) for image, target, _ in blobs(3) + blobs(3, size=40)
        ]
        self.epoch = 0

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]

    def set_epoch(self, epoch):
        self.epoch = epoch


def test_region_samples_of_mixed_sizes_train_with_crop_size():
    data = Regions()
    result = train_iis(
        EarlyFusion(TinyUNet(channels=(4,), decoder_channels=4)),
        data,
        steps=4,
        batch_size=4,
        crop_size=(24, 36),
        device="cpu",
    )
    assert result.steps == 4
    assert all(np.isfinite(result.losses))
    assert data.epoch == 2  # 16 items drawn from 6: two new epochs
    with pytest.raises(ValueError, match="pass crop_size"):
        train_iis(
            EarlyFusion(TinyUNet(channels=(4,), decoder_channels=4)),
            Regions(),
            steps=1,
            batch_size=6,
            device="cpu",
        )


def test_bad_targets_are_reported():
    model = EarlyFusion(TinyUNet(channels=(4,), decoder_channels=4))
    image = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match=r"dataset\[0\]\[1\] must hold 1"):
        train_iis(model, [(image, np.full((16, 16), 255, np.uint8))], steps=1, device="cpu")
    with pytest.raises(ValueError, match="empty target"):
        train_iis(model, [(image, np.zeros((16, 16), np.int8))], steps=1, device="cpu")
    with pytest.raises(ValueError, match="steps >= 1"):
        train_iis(model, [(image, np.ones((16, 16), np.int8))], steps=0, device="cpu")
