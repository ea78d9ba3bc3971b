"""masklab.training.transforms: hand-computed expectations, PIL, and albumentations."""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np
import pytest
from PIL import Image

from masklab.core import rle
from masklab.core.instances import Instance
from masklab.core.labels import LabelMap
from masklab.errors import MaskFormatError
from masklab.formats._base import Sample
from masklab.training.targets import IGNORE_RLE, class_map, instance_targets
from masklab.training.transforms import (
    Albumentations,
    CenterCrop,
    Compose,
    Crop,
    HorizontalFlip,
    PadIfNeeded,
    RandomCrop,
    Resize,
    VerticalFlip,
)

LM = LabelMap.from_names(["background", "cat", "dog"], background=0, ignore={255: "void"})


def inst(rows: list[list[int]], class_id: int, **kw: object) -> Instance:
    return Instance(rle.encode(np.array(rows, np.uint8)), class_id, **kw)  # type: ignore[arg-type]


def masks_of(sample: Sample) -> list[list[list[int]]]:
    return [rle.decode(i.mask).tolist() for i in sample.instances]


def small() -> tuple[np.ndarray, Sample]:
    """A 2x3 image with pixel values 0..5 and an L-shaped cat, asymmetric both ways."""
    image = np.arange(6, dtype=np.uint8).reshape(2, 3)
    cat = inst([[1, 0, 0], [1, 1, 0]], 1, id=7, iscrowd=True, polygons=((0.0, 0.0, 1.0, 1.0),))
    sem = np.array([[1, 0, 2], [1, 1, 2]], np.uint8)
    alpha = np.array([[10, 20, 30], [40, 50, 60]], np.uint8)
    return image, Sample("s", (2, 3), instances=(cat,), semantic=sem, alpha=alpha)


def random_sample(h: int, w: int, seed: int) -> tuple[np.ndarray, Sample]:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    instances = []
    for k in range(4):
        m = np.zeros((h, w), np.uint8)
        y, x = rng.integers(0, h - 2), rng.integers(0, w - 2)
        m[y : y + rng.integers(1, h - y), x : x + rng.integers(1, w - x)] = 1
        m &= rng.random((h, w)) < 0.8
        instances.append(Instance(rle.encode(m), int(k % 2 + 1), id=k + 1))
    sem = rng.choice(np.array([0, 1, 2, 255], np.uint8), (h, w))
    alpha = rng.integers(0, 256, (h, w), dtype=np.uint8)
    return image, Sample("r", (h, w), instances=tuple(instances), semantic=sem, alpha=alpha)


def assert_same(a: tuple[np.ndarray, Sample], b: tuple[np.ndarray, Sample]) -> None:
    (ia, sa), (ib, sb) = a, b
    assert ia.shape == ib.shape
    assert np.array_equal(ia, ib)
    assert sa.size == sb.size
    assert np.array_equal(sa.semantic, sb.semantic)
    assert np.array_equal(sa.alpha, sb.alpha)
    assert [(i.mask, i.class_id, i.id, i.iscrowd) for i in sa.instances] == [
        (i.mask, i.class_id, i.id, i.iscrowd) for i in sb.instances
    ]
    assert sa.meta.get(IGNORE_RLE) == sb.meta.get(IGNORE_RLE)


RNG = np.random.default_rng(0)


# --------------------------------------------------------------------------- flips


def test_horizontal_flip_mirrors_everything():
    image, s = small()
    out, t = HorizontalFlip(p=1.0)(image, s, rng=RNG)
    assert out.tolist() == [[2, 1, 0], [5, 4, 3]]
    assert masks_of(t) == [[[0, 0, 1], [0, 1, 1]]]
    assert t.semantic.tolist() == [[2, 0, 1], [2, 1, 1]]
    assert t.alpha.tolist() == [[30, 20, 10], [60, 50, 40]]
    cat = t.instances[0]
    assert (cat.id, cat.class_id, cat.iscrowd, cat.polygons) == (7, 1, True, None)
    assert t.image is None


def test_vertical_flip_mirrors_everything():
    image, s = small()
    out, t = VerticalFlip(p=1.0)(image, s, rng=RNG)
    assert out.tolist() == [[3, 4, 5], [0, 1, 2]]
    assert masks_of(t) == [[[1, 1, 0], [1, 0, 0]]]
    assert t.semantic.tolist() == [[1, 1, 2], [1, 0, 2]]


def test_flip_with_p_zero_changes_nothing():
    image, s = small()
    out, t = HorizontalFlip(p=0.0)(image, s, rng=RNG)
    assert out is image
    assert t is s


# --------------------------------------------------------------------------- crops


def test_crop_offsets_and_boxes_follow_the_masks():
    image = np.arange(20, dtype=np.uint8).reshape(4, 5)
    a = inst([[0, 0, 0, 0, 0], [0, 1, 1, 1, 0], [0, 1, 0, 0, 0], [0, 0, 0, 0, 1]], 1)
    b = inst([[1, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]], 2)
    s = Sample("c", (4, 5), instances=(a, b))
    out, t = Crop(2, 1, 5, 4)(image, s, rng=RNG)  # x 2..4, y 1..3
    assert out.tolist() == [[7, 8, 9], [12, 13, 14], [17, 18, 19]]
    assert masks_of(t) == [[[1, 1, 0], [0, 0, 0], [0, 0, 1]]]  # b is cut away: dropped
    targets = instance_targets(t, LM)
    assert targets["boxes"].tolist() == [[0.0, 0.0, 3.0, 3.0]]  # x0, y0, x1, y1 of the mask
    assert targets["area"].tolist() == [3.0]


def test_center_crop_rounds_offsets_down():
    image = np.arange(35, dtype=np.uint8).reshape(5, 7)
    out, t = CenterCrop(2, 3)(image, Sample("c", (5, 7)), rng=RNG)
    assert out.tolist() == [[9, 10, 11], [16, 17, 18]]
    assert t.size == (2, 3)


def test_random_crop_cuts_one_window_of_image_and_masks():
    image, s = random_sample(13, 17, seed=1)
    out, t = RandomCrop(6, 9)(image, s, rng=np.random.default_rng(5))
    # find where the window came from by the image, then check every mask against it
    hits = [
        (y, x)
        for y in range(13 - 6 + 1)
        for x in range(17 - 9 + 1)
        if np.array_equal(image[y : y + 6, x : x + 9], out)
    ]
    assert len(hits) == 1
    y, x = hits[0]
    assert np.array_equal(t.semantic, s.semantic[y : y + 6, x : x + 9])
    assert np.array_equal(t.alpha, s.alpha[y : y + 6, x : x + 9])
    windows = [rle.decode(i.mask)[y : y + 6, x : x + 9] for i in s.instances]
    kept = [(i.id, w) for i, w in zip(s.instances, windows, strict=True) if w.any()]
    assert [i.id for i in t.instances] == [k for k, _ in kept]
    for i, (_, w) in zip(t.instances, kept, strict=True):
        assert np.array_equal(rle.decode(i.mask), w)


def test_random_crop_is_seeded_by_rng():
    image, s = random_sample(13, 17, seed=2)
    runs = [RandomCrop(5, 5)(image, s, rng=np.random.default_rng(9))[0] for _ in range(2)]
    assert np.array_equal(runs[0], runs[1])
    others = [RandomCrop(5, 5)(image, s, rng=np.random.default_rng(k))[0] for k in range(8)]
    assert any(not np.array_equal(runs[0], o) for o in others)


def test_crop_larger_than_the_image_says_to_pad_first():
    image, s = small()
    with pytest.raises(MaskFormatError, match=r"PadIfNeeded\(4, 4\)"):
        RandomCrop(4, 4)(image, s, rng=RNG)


def test_image_of_another_size_is_refused():
    _, s = small()
    with pytest.raises(MaskFormatError, match=r"image is \[3, 3\] but the sample is \[2, 3\]"):
        HorizontalFlip(p=1.0)(np.zeros((3, 3), np.uint8), s, rng=RNG)


# --------------------------------------------------------------------------- padding


def test_pad_fills_image_class_map_and_marks_padding_ignore():
    image = np.full((2, 2, 3), 9, np.uint8)
    cat = inst([[1, 1], [0, 1]], 1)
    s = Sample("p", (2, 2), instances=(cat,), semantic=np.array([[1, 1], [0, 1]], np.uint8))
    out, t = PadIfNeeded(3, 5, fill=(1, 2, 3))(image, s, rng=RNG)
    # 1 extra row: top 0, bottom 1; 3 extra columns: left 1, right 2
    assert out[..., 0].tolist() == [[1, 9, 9, 1, 1], [1, 9, 9, 1, 1], [1, 1, 1, 1, 1]]
    assert out[0, 0].tolist() == [1, 2, 3]
    assert t.semantic.tolist() == [[255, 1, 1, 255, 255], [255, 0, 1, 255, 255], [255] * 5]
    assert masks_of(t) == [[[0, 1, 1, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0, 0]]]
    # an instance-only sample: padding is ignore, not background
    only = Sample("p", (2, 2), instances=(cat,))
    _, padded = PadIfNeeded(3, 5)(image, only, rng=RNG)
    assert class_map(padded, LM).tolist() == [
        [255, 1, 1, 255, 255],
        [255, 0, 1, 255, 255],
        [255, 255, 255, 255, 255],
    ]
    _, plain = PadIfNeeded(3, 5, ignore_padding=False)(image, only, rng=RNG)
    assert class_map(plain, LM).tolist()[2] == [0, 0, 0, 0, 0]


def test_padding_stays_ignore_through_later_transforms():
    image = np.zeros((2, 2), np.uint8)
    s = Sample("p", (2, 2), instances=(inst([[1, 0], [0, 0]], 2),))
    pipeline = Compose([PadIfNeeded(2, 4, position="top_left"), HorizontalFlip(p=1.0)])
    _, t = pipeline(image, s, rng=RNG)
    assert class_map(t, LM).tolist() == [[255, 255, 0, 2], [255, 255, 0, 0]]


# --------------------------------------------------------------------------- resize


def test_resize_masks_and_class_map_agree_exactly():
    image, s = random_sample(11, 13, seed=3)
    out, t = Resize(29, 20)(image, s, rng=RNG)
    assert out.shape == (29, 20, 3)
    painted = class_map(Sample("x", s.size, instances=s.instances), LM)
    resized = class_map(Sample("x", t.size, instances=t.instances), LM)
    sy = np.floor((np.arange(29) + 0.5) * 11 / 29).astype(int)  # pixel centres
    sx = np.floor((np.arange(20) + 0.5) * 13 / 20).astype(int)
    assert np.array_equal(resized, painted[np.ix_(sy, sx)])
    assert np.array_equal(t.semantic, s.semantic[np.ix_(sy, sx)])
    for before, after in zip(s.instances, t.instances, strict=True):
        assert np.array_equal(rle.decode(after.mask), rle.decode(before.mask)[np.ix_(sy, sx)])


@pytest.mark.parametrize(("h", "w"), [(5, 9), (23, 31), (3, 3)])
def test_resize_class_map_equals_pil_nearest(h, w):
    sem = np.random.default_rng(h).integers(0, 200, (11, 13), dtype=np.uint8)  # odd: no ties
    _, t = Resize(h, w)(np.zeros((11, 13), np.uint8), Sample("x", (11, 13), semantic=sem), rng=RNG)
    pil = np.asarray(Image.fromarray(sem).resize((w, h), Image.Resampling.NEAREST))
    assert np.array_equal(t.semantic, pil)


def test_resize_image_is_bilinear():
    image = np.random.default_rng(4).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    out, _ = Resize(14, 4)(image, Sample("x", (7, 9)), rng=RNG)
    assert np.array_equal(out, cv2.resize(image, (4, 14), interpolation=cv2.INTER_LINEAR))


# --------------------------------------------------------------------------- compose


def test_compose_is_reproducible_from_one_seed():
    image, s = random_sample(15, 15, seed=6)
    pipe = Compose([HorizontalFlip(), VerticalFlip(), RandomCrop(8, 8), Resize(9, 7)])
    a = pipe(image, s, rng=np.random.default_rng(11))
    b = pipe(image, s, rng=np.random.default_rng(11))
    assert_same(a, b)


# --------------------------------------------------------------------------- albumentations


EXACT = cv2.INTER_NEAREST_EXACT


@pytest.mark.parametrize(
    ("theirs", "ours"),
    [
        (A.HorizontalFlip(p=1.0), HorizontalFlip(p=1.0)),
        (A.VerticalFlip(p=1.0), VerticalFlip(p=1.0)),
        (A.Crop(x_min=2, y_min=3, x_max=12, y_max=9), Crop(2, 3, 12, 9)),
        (A.CenterCrop(6, 8), CenterCrop(6, 8)),
        (A.Resize(17, 20, mask_interpolation=EXACT), Resize(17, 20)),
        (A.Resize(5, 4, mask_interpolation=EXACT), Resize(5, 4)),
        (A.PadIfNeeded(16, 18, fill=7, fill_mask=255), PadIfNeeded(16, 18, fill=7)),
    ],
    ids=["hflip", "vflip", "crop", "center-crop", "resize-up", "resize-down", "pad"],
)
def test_albumentations_wrapper_equals_our_transform(theirs, ours):
    image, s = random_sample(11, 13, seed=7)  # odd sizes: nearest has no ties
    wrapped = Albumentations(A.Compose([theirs]))
    assert_same(wrapped(image, s, rng=RNG), ours(image, s, rng=RNG))


def test_albumentations_drops_emptied_instances_and_keeps_the_rest_aligned():
    image = np.zeros((4, 4, 3), np.uint8)
    gone = inst([[1, 0, 0, 0]] + [[0] * 4] * 3, 1, id=1)
    kept = inst([[0] * 4] * 3 + [[0, 0, 1, 1]], 2, id=2, iscrowd=True)
    s = Sample("a", (4, 4), instances=(gone, kept))
    _, t = Albumentations(A.Compose([A.Crop(x_min=1, y_min=1, x_max=4, y_max=4)]))(image, s)
    assert [(i.id, i.class_id, i.iscrowd) for i in t.instances] == [(2, 2, True)]
    assert masks_of(t) == [[[0, 0, 0], [0, 0, 0], [0, 1, 1]]]


def test_albumentations_rotation_border_is_ignored_and_seeded():
    image, s = random_sample(21, 21, seed=8)
    aug = Albumentations(A.Compose([A.Rotate(limit=(30, 30), p=1.0, fill_mask=0)]))
    a = aug(image, s, rng=np.random.default_rng(1))
    b = aug(image, s, rng=np.random.default_rng(1))
    assert_same(a, b)
    ignore = rle.decode(a[1].meta[IGNORE_RLE])
    assert ignore[0, 0] == 1  # a 30-degree turn brings the corners in from outside
    assert ignore[10, 10] == 0
    assert (class_map(a[1], LM)[ignore == 1] == 255).all()
