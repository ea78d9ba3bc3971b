"""Region selectors on hand-drawn layers: the region each name promises, seeded, never empty.

Connectivity is checked with scipy.ndimage.label (an oracle independent of OpenCV).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from masklab.errors import MaskLabError
from masklab.iis.regions import (
    SELECTORS,
    background,
    get_selector,
    largest_object,
    merge,
    random_class,
    random_region,
    whole,
)

# object 3 has two 8-connected parts: {(2,2),(3,2)} and {(3,0)}
OBJECTS = np.array(
    [
        [1, 1, 0, 0, 2],
        [1, 0, 0, 0, 2],
        [0, 0, 3, 0, 0],
        [3, 0, 3, 0, 4],
    ]
)
CLASSES = np.array(  # objects 1 and 3 are class 1, 2 and 4 class 2
    [
        [1, 1, 0, 0, 2],
        [1, 0, 0, 0, 2],
        [0, 0, 1, 0, 0],
        [1, 0, 1, 0, 2],
    ]
)
LAYERS = np.stack([OBJECTS, CLASSES], axis=-1).astype(np.int32)
INFO = {"id": "s1", "layer_names": ("instance", "class")}


def mask(*pixels: tuple[int, int]) -> list[list[int]]:
    out = np.zeros((4, 5), int)
    for r, c in pixels:
        out[r, c] = 1
    return out.tolist()


OBJ = {
    1: mask((0, 0), (0, 1), (1, 0)),
    2: mask((0, 4), (1, 4)),
    3: mask((2, 2), (3, 2), (3, 0)),
    4: mask((3, 4)),
}
CLASS_1 = mask((0, 0), (0, 1), (1, 0), (2, 2), (3, 2), (3, 0))
CLASS_2 = mask((0, 4), (1, 4), (3, 4))


def draws(selector, layers=LAYERS, info=INFO, n=60):
    return [selector(layers, info, np.random.default_rng(seed)).tolist() for seed in range(n)]


def test_whole_is_the_union_of_objects():
    t = whole(LAYERS, INFO, np.random.default_rng(0))
    assert t.dtype == np.int8
    assert t.tolist() == (OBJECTS > 0).astype(int).tolist()


def test_ignore_is_minus_one_outside_the_region_only():
    ignore = np.zeros((4, 5), bool)
    ignore[0, 0] = ignore[0, 2] = ignore[2, 0] = True  # one object pixel, two others
    t = whole(LAYERS, {**INFO, "ignore": ignore}, np.random.default_rng(0))
    expected = (OBJECTS > 0).astype(int)
    expected[0, 2] = expected[2, 0] = -1
    assert t.tolist() == expected.tolist()


def test_largest_object_is_the_largest_by_area():
    objects = np.array([[1, 2, 2], [0, 2, 0], [3, 3, 0]])[:, :, None]
    t = largest_object(objects, {}, np.random.default_rng(0))
    assert t.tolist() == [[0, 1, 1], [0, 1, 0], [0, 0, 0]]


def test_largest_object_tie_takes_the_smaller_id():
    t = largest_object(LAYERS, INFO, np.random.default_rng(0))  # objects 1 and 3: 3 px each
    assert t.tolist() == OBJ[1]


def test_random_class_takes_all_pixels_of_one_class():
    results = draws(random_class)
    assert all(r in (CLASS_1, CLASS_2) for r in results)
    assert CLASS_1 in results
    assert CLASS_2 in results


def test_random_class_without_class_layer_uses_the_last_layer():
    results = draws(random_class, LAYERS[:, :, :1], {"id": "x"})
    assert all(r in OBJ.values() for r in results)
    assert len({str(r) for r in results}) == 4


def test_random_region_is_one_connected_part_of_a_region():
    results = draws(random_region, n=120)
    for r in results:
        arr = np.array(r)
        _, parts = ndimage.label(arr == 1, structure=np.ones((3, 3)))
        assert parts == 1
        assert any(np.all(np.array(m)[arr == 1] == 1) for m in (*OBJ.values(), CLASS_1, CLASS_2))
    # both parts of object 3 (also the parts of class 1) are reachable
    assert mask((3, 0)) in results
    assert mask((2, 2), (3, 2)) in results
    assert mask((0, 0), (0, 1), (1, 0)) in results
    assert CLASS_2 not in results  # class 2 is two parts, never one region


def test_merge_unions_n_distinct_objects():
    results = draws(merge(2), n=80)
    pairs = {
        (a, b): (np.array(OBJ[a]) | np.array(OBJ[b])).tolist() for a in OBJ for b in OBJ if a < b
    }
    assert all(r in pairs.values() for r in results)
    assert len({str(r) for r in results}) == 6  # every pair is drawn


def test_merge_more_than_present_takes_all():
    t = merge(9)(LAYERS, INFO, np.random.default_rng(0))
    assert t.tolist() == (OBJECTS > 0).astype(int).tolist()


def test_merge_of_classes():
    t = merge(2, source="class")(LAYERS, INFO, np.random.default_rng(0))
    assert t.tolist() == (CLASSES > 0).astype(int).tolist()


@pytest.mark.parametrize("n", [0, -1, 1.5, True])
def test_merge_needs_a_positive_count(n):
    with pytest.raises(ValueError, match="n >= 1"):
        merge(n)


def test_background_is_what_no_layer_claims_and_ignore_stays():
    ignore = np.zeros((4, 5), bool)
    ignore[1, 1] = True
    t = background(LAYERS, {**INFO, "ignore": ignore}, np.random.default_rng(0))
    expected = (OBJECTS == 0).astype(int)
    expected[1, 1] = -1
    assert t.tolist() == expected.tolist()


def test_crowd_objects_are_never_selected():
    info = {**INFO, "layer_names": ("instance",), "iscrowd": (False, False, True, False)}
    layers = LAYERS[:, :, :1]
    assert all(r != OBJ[3] for r in draws(random_class, layers, info))
    assert largest_object(layers, info, np.random.default_rng(0)).tolist() == OBJ[1]
    union = whole(layers, info, np.random.default_rng(0))
    assert union.tolist() == (np.isin(OBJECTS, [1, 2, 4])).astype(int).tolist()
    assert all(np.array(r)[2, 2] == 0 for r in draws(merge(3), layers, info))


@pytest.mark.parametrize("name", sorted(SELECTORS))
def test_same_generator_same_target(name):
    selector = SELECTORS[name]
    a = selector(LAYERS, INFO, np.random.default_rng(42))
    b = selector(LAYERS, INFO, np.random.default_rng(42))
    np.testing.assert_array_equal(a, b)
    assert (a == 1).any()  # never empty


@pytest.mark.parametrize("name", ["whole", "largest_object", "random_class", "random_region"])
def test_nothing_to_select_names_the_sample(name):
    empty = np.zeros((3, 3, 2), np.int32)
    with pytest.raises(MaskLabError, match="sample 'e7' of toy"):
        SELECTORS[name](empty, {"id": "e7", "dataset": "toy"}, np.random.default_rng(0))


def test_merge_of_nothing_and_background_of_everything_raise():
    with pytest.raises(MaskLabError, match="no object to merge"):
        merge(2)(np.zeros((2, 2, 1), np.int32), {"id": "z"}, np.random.default_rng(0))
    with pytest.raises(MaskLabError, match="no background pixel"):
        background(np.ones((2, 2, 1), np.int32), {"id": "z"}, np.random.default_rng(0))


def test_only_crowd_is_nothing_to_select():
    layers = np.array([[1, 0]])[:, :, None]
    with pytest.raises(MaskLabError, match="'c'"):
        whole(layers, {"id": "c", "iscrowd": (True,)}, np.random.default_rng(0))


def test_inputs_are_not_mutated():
    layers = LAYERS.copy()
    ignore = np.eye(4, 5, dtype=bool)
    for name, selector in SELECTORS.items():
        selector(layers, {**INFO, "ignore": ignore}, np.random.default_rng(1))
        assert np.array_equal(layers, LAYERS), name
        assert np.array_equal(ignore, np.eye(4, 5, dtype=bool)), name


def test_layers_must_be_integer_hwc():
    with pytest.raises(ValueError, match=r"\(H, W, C\)"):
        whole(OBJECTS, INFO, np.random.default_rng(0))
    with pytest.raises(ValueError, match="info\\['ignore'\\]"):
        whole(LAYERS, {**INFO, "ignore": np.zeros((2, 2), bool)}, np.random.default_rng(0))


def test_get_selector():
    assert get_selector("whole") is whole
    assert get_selector("merge:3").__name__ == "merge(3)"
    with pytest.raises(ValueError, match="known: whole"):
        get_selector("everything")
