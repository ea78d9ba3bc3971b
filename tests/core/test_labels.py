"""LabelMap: VOC colours, ClearML mask_labels, lookups, colour masks."""

from __future__ import annotations

import numpy as np
import pytest

from masklab import LabelMapError
from masklab.core.labels import Label, LabelMap, voc_color, voc_colormap


@pytest.mark.parametrize(
    ("index", "rgb"),
    # reference/formats.md §4.1
    [
        (0, (0, 0, 0)),
        (1, (128, 0, 0)),
        (2, (0, 128, 0)),
        (3, (128, 128, 0)),
        (4, (0, 0, 128)),
        (8, (64, 0, 0)),
        (15, (192, 128, 128)),
        (20, (0, 64, 128)),
        (255, (224, 224, 192)),
    ],
)
def test_voc_colours(index, rgb):
    assert voc_color(index) == rgb
    assert tuple(voc_colormap()[index]) == rgb


def test_clearml_mask_labels_round_trip():
    spec = {(0, 0, 0): ["background"], (1, 1, 1): ["person", "sitting"], (2, 2, 2): ["cat"]}
    lm = LabelMap.from_mask_labels(spec)
    assert lm.to_mask_labels() == {k: list(v) for k, v in spec.items()}
    assert lm.by_name("sitting").id == lm.by_name("person").id == 1
    assert lm.background_id == 0
    assert lm.by_color((2, 2, 2)).names == ("cat",)


def test_colours_to_ids_reports_unknown_colours_with_pixel_counts():
    lm = LabelMap.from_mask_labels({(0, 0, 0): ["background"], (9, 9, 9): ["cat"]})
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[0, 0] = (9, 9, 9)
    rgb[1, :2] = (7, 8, 9)
    ids, unknown = lm.colors_to_ids(rgb)
    assert ids.tolist() == [[1, 0, 0], [-1, -1, 0]]
    assert unknown == {(7, 8, 9): 2}


def test_ids_to_colours_inverts_colours_to_ids():
    lm = LabelMap.from_names(["bg", "a", "b"], background=0)
    ids = np.array([[0, 1], [2, 2]])
    back, unknown = lm.colors_to_ids(lm.ids_to_colors(ids))
    assert unknown == {}
    np.testing.assert_array_equal(back, ids)


def test_from_names_with_ignore():
    lm = LabelMap.from_names(["background", "cat"], background=0, ignore={255: "void"})
    assert lm.ignore_ids == [255]
    assert lm.by_id(255).role == "ignore"
    assert not lm.by_id(0).isthing


def test_dict_round_trip():
    lm = LabelMap.from_names(["background", "cat"], background=0, ignore={255: "void"})
    assert LabelMap.from_dict(lm.to_dict()) == lm


def test_duplicate_ids_and_unknown_lookups_raise():
    with pytest.raises(LabelMapError, match=r"\[1\] appear more than once"):
        LabelMap((Label(1, ("a",), (1, 1, 1)), Label(1, ("b",), (2, 2, 2))))
    lm = LabelMap.from_names(["a"])
    with pytest.raises(LabelMapError, match="no label with id 5; known ids: \\[0\\]"):
        lm.by_id(5)
    with pytest.raises(LabelMapError, match="no label named 'zebra'"):
        lm.by_name("zebra")


def test_merged_maps_must_agree_on_shared_ids():
    a = LabelMap.from_names(["bg", "cat"])
    b = LabelMap.from_names(["bg", "dog"])
    with pytest.raises(LabelMapError, match="label id 1 is 'cat' in one map and 'dog'"):
        a.merged(b)
    assert len(a.merged(LabelMap.from_names(["bg", "cat", "cow"]))) == 3
