"""DataView: every filter, iteration order and remap, on SQLite and PostgreSQL catalogs.

Expected results come from brute force over the Frames the test builds (decoded masks,
NumPy), or are counted by hand in comments; never from the code under test.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from masklab.core import rle
from masklab.errors import StoreError
from masklab.store import Annotation, Frame, Source, Store, Version
from masklab.store.query import VOID_ID, DataView, FrameRow, parse_where

H, W = 6, 8  # the default image size, (h, w)
MASK_LABELS = {0: ["background"], 1: ["cat"], 2: ["dog"], 3: ["person", "sitting"]}
LABEL_IDS = {"background": 0, "cat": 1, "dog": 2, "person": 3, "sitting": 3}


@pytest.fixture
def store(catalog_url: str, tmp_path: Path) -> Iterator[Store]:
    """The plain local store (SQLite and blobs in tmp_path), or a PostgreSQL catalog."""
    if catalog_url.startswith("sqlite"):
        s = Store(home=tmp_path)
    else:
        s = Store(catalog=catalog_url, blobs=str(tmp_path / "blobs"))
    yield s
    s.close()


def box_mask(y0: int, y1: int, x0: int, x1: int, size: tuple[int, int] = (H, W)) -> rle.RLE:
    """An RLE of the rectangle rows y0:y1, columns x0:x1."""
    a = np.zeros(size, np.uint8)
    a[y0:y1, x0:x1] = 1
    return rle.encode(a)


def cat_ann(y0: int, y1: int, x0: int, x1: int) -> Annotation:
    return Annotation(labels=("cat",), class_id=1, rle=box_mask(y0, y1, x0, x1))


@dataclass
class Zoo:
    """A committed version, the frames added (in order) and each frame's pixel-mask arrays."""

    version: Version
    frames: list[Frame]
    pixels: dict[str, list[np.ndarray]]

    def ids(self, keep: Callable[[Frame], bool]) -> list[str]:
        return [f.id for f in self.frames if keep(f)]


def build_zoo(store: Store) -> Zoo:
    """Eight frames; each comment says what the filters should see in it."""
    v = store.create_dataset("zoo").create_version("v1")
    v.set_mask_labels(MASK_LABELS)
    dogs_px = np.zeros((H, W), np.uint8)
    dogs_px[1:3, 1:4] = 2  # values {0, 2}: a dog only through pixels
    sitting_px = np.zeros((H, W), np.uint8)
    sitting_px[4:, :2] = 3  # values {0, 3}: "person" and "sitting" through pixels
    frames = [
        # f0: one interior cat, area 6
        Frame(
            "f0",
            (Source("s3://bucket/cam1/f0.jpg", width=W, height=H),),
            (cat_ann(2, 4, 2, 5),),
            context_id="seq1",
            meta={"weather": "rain", "camera": {"model": "a"}, "speed": 12},
        ),
        # f1: a cat touching the top (area 4), an interior cat (6), an interior dog (18)
        Frame(
            "f1",
            (Source("s3://bucket/cam2/f1.jpg", width=W, height=H),),
            (
                cat_ann(0, 2, 3, 5),
                cat_ann(3, 5, 3, 6),
                Annotation(labels=("dog",), class_id=2, rle=box_mask(2, 5, 1, 7)),
            ),
            context_id="seq1",
            meta={"weather": "sun", "speed": 3},
        ),
        # f2: no annotation; a pixel mask holding a dog
        Frame(
            "f2",
            (
                Source(
                    "s3://bucket/cam1/f2.png",
                    width=W,
                    height=H,
                    masks={"00": store.put_mask(dogs_px)},
                ),
            ),
            context_id="seq2",
            meta={"weather": "rain", "speed": 20.5},
        ),
        # f3: pixel mask with person+sitting on "left"; a box on "right" (10 wide) ending at
        # x=9: inside "right", though it would reach the 8-wide "left" source's border
        Frame(
            "f3",
            (
                Source(
                    "l.jpg", id="left", width=W, height=H, masks={"00": store.put_mask(sitting_px)}
                ),
                Source("r.jpg", id="right", width=10, height=5),
            ),
            (Annotation(labels=("person",), box=(5, 1, 4, 2), source="right"),),
            meta={"n": 3},
        ),
        # f4: a box on no source: it ends at x=8, the border of the first source (8 wide)
        Frame(
            "f4",
            (
                Source("a.jpg", id="a", width=W, height=H),
                Source("b.jpg", id="b", width=20, height=10),
            ),
            (Annotation(labels=("dog",), box=(2, 1, 6, 2)),),
            meta={"n": 3.0, "camera": {"model": "b"}},
        ),
        # f5: nothing at all; meta "3" is a string
        Frame(
            "f5",
            (Source("file:///data/F5.JPG", width=W, height=H),),
            context_id="seq2",
            meta={"n": "3", "flag": True},
        ),
        # f6: an annotation with a class id only (a dog, area 1), and an empty cat mask
        Frame(
            "f6",
            (Source("f6.jpg", width=W, height=H),),
            (
                Annotation(class_id=2, rle=box_mask(1, 2, 1, 2)),
                Annotation(labels=("cat",), rle=rle.encode(np.zeros((H, W), np.uint8))),
            ),
            meta={"flag": False, "weather": None},
        ),
        # f7: three cats: the bottom row (area 8, touches), a corner pixel (touches), one inside
        Frame(
            "f7",
            (Source("s3://bucket/cam1/f7.jpg", width=W, height=H),),
            (cat_ann(5, 6, 0, 8), cat_ann(0, 1, 0, 1), cat_ann(2, 3, 2, 3)),
            context_id="seq1",
            meta={"weather": "rain", "camera": {"model": "b"}, "speed": 15},
        ),
    ]
    v.add_frames(frames)
    v.commit()
    return Zoo(v, frames, {"f2": [dogs_px], "f3": [sitting_px]})


@pytest.fixture
def zoo(store: Store) -> Zoo:
    return build_zoo(store)


# ---- the oracle: brute force over the frames built above


def area_of(a: Annotation) -> int | None:
    return None if a.rle is None else int(rle.decode(a.rle).sum())


def box_of(a: Annotation) -> tuple[float, float, float, float] | None:
    """xywh in pixel-edge units, from the decoded mask, else the annotation's box."""
    if a.rle is None:
        return a.box
    ys, xs = np.nonzero(rle.decode(a.rle))
    if ys.size == 0:
        return (0.0, 0.0, 0.0, 0.0)
    return (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)


def touches(f: Frame, a: Annotation) -> bool:
    if a.rle is not None:
        d = rle.decode(a.rle)
        return bool(d[0].any() or d[-1].any() or d[:, 0].any() or d[:, -1].any())
    assert a.box is not None
    size = f.source(a.source).size
    assert size is not None
    x, y, w, h = a.box
    return x <= 0 or y <= 0 or x + w >= size[1] or y + h >= size[0]


def has_label(zoo: Zoo, f: Frame, name: str) -> bool:
    by_pixels = any(
        LABEL_IDS.get(name) in np.unique(arr).tolist() for arr in zoo.pixels.get(f.id, [])
    )
    return by_pixels or any(name in a.labels for a in f.annotations)


def count_of(f: Frame, name: str) -> int:
    return sum(name in a.labels for a in f.annotations)


def in_range(x: float | None, lo: float | None, hi: float | None) -> bool:
    return x is not None and (lo is None or x >= lo) and (hi is None or x <= hi)


# ---- filters


class TestLabels:
    def test_label_matches_annotation_labels_and_pixel_values(self, zoo: Zoo) -> None:
        got = DataView(zoo.version).where(label="dog").frame_ids()
        assert got == zoo.ids(lambda f: has_label(zoo, f, "dog"))
        assert got == ["f1", "f2", "f4"]  # annotation, pixels, box-only annotation

    def test_label_through_a_mask_value_with_several_names(self, zoo: Zoo) -> None:
        assert DataView(zoo.version).where(label="sitting").frame_ids() == ["f3"]
        assert DataView(zoo.version).where(label="person").frame_ids() == ["f3"]

    def test_label_absent_everywhere_matches_nothing(self, zoo: Zoo) -> None:
        assert DataView(zoo.version).where(label="zebra").count() == 0

    def test_labels_any_is_or_labels_all_is_and(self, zoo: Zoo) -> None:
        view = DataView(zoo.version)
        any_ = view.where(labels_any=["dog", "person"]).frame_ids()
        all_ = view.where(labels_all=["cat", "dog"]).frame_ids()
        assert any_ == zoo.ids(lambda f: has_label(zoo, f, "dog") or has_label(zoo, f, "person"))
        assert all_ == zoo.ids(lambda f: has_label(zoo, f, "cat") and has_label(zoo, f, "dog"))
        assert all_ == ["f1"]

    def test_class_id_matches_annotation_ids_and_pixel_values(self, zoo: Zoo) -> None:
        # class 2: f1's dog annotation, f2's pixels, f6's unlabeled annotation
        assert DataView(zoo.version).where(class_id=2).frame_ids() == ["f1", "f2", "f6"]


class TestAnnotationGeometry:
    @pytest.mark.parametrize(
        ("lo", "hi"), [(4, 6), (6, None), (None, 1), (0, 0), (None, None), (100, None)]
    )
    def test_area_range_with_open_ends(self, zoo: Zoo, lo: int | None, hi: int | None) -> None:
        got = DataView(zoo.version).where(area=(lo, hi)).frame_ids()
        assert got == zoo.ids(lambda f: any(in_range(area_of(a), lo, hi) for a in f.annotations))

    def test_area_zero_finds_the_empty_mask(self, zoo: Zoo) -> None:
        assert DataView(zoo.version).where(area=(0, 0)).frame_ids() == ["f6"]

    def test_area_reversed_range_is_an_error(self, zoo: Zoo) -> None:
        with pytest.raises(StoreError, match=r"range \(5, 2\) is empty"):
            DataView(zoo.version).where(area=(5, 2))

    def test_bbox_width_and_height(self, zoo: Zoo) -> None:
        def wide(f: Frame) -> bool:
            return any((b := box_of(a)) is not None and b[2] >= 6 for a in f.annotations)

        def flat(f: Frame) -> bool:
            return any((b := box_of(a)) is not None and 1 <= b[3] <= 1 for a in f.annotations)

        view = DataView(zoo.version)
        assert view.where(bbox_w=(6, None)).frame_ids() == zoo.ids(wide)
        assert view.where(bbox_h=(1, 1)).frame_ids() == zoo.ids(flat)

    def test_bbox_within_region(self, zoo: Zoo) -> None:
        region = (2, 2, 6, 5)  # x0, y0, x1, y1

        def inside(f: Frame) -> bool:
            for a in f.annotations:
                b = box_of(a)
                if b is not None and b[2] > 0:
                    x, y, w, h = b
                    if x >= 2 and y >= 2 and x + w <= 6 and y + h <= 5:
                        return True
            return False

        got = DataView(zoo.version).where(bbox_within_xyxy=region).frame_ids()
        assert got == zoo.ids(inside)
        assert got == ["f0", "f1", "f7"]

    def test_count_of_a_label_in_range(self, zoo: Zoo) -> None:
        view = DataView(zoo.version)
        assert view.where(count={"cat": (2, None)}).frame_ids() == zoo.ids(
            lambda f: count_of(f, "cat") >= 2
        )
        assert view.where(count={"cat": (3, 3)}).frame_ids() == ["f7"]

    def test_count_zero_includes_frames_without_the_label(self, zoo: Zoo) -> None:
        got = DataView(zoo.version).where(count={"cat": (None, 0)}).frame_ids()
        assert got == zoo.ids(lambda f: count_of(f, "cat") == 0)
        assert "f2" in got  # no annotation at all

    def test_count_ignores_pixel_masks(self, zoo: Zoo) -> None:
        assert DataView(zoo.version).where(count={"dog": (1, None)}).frame_ids() == ["f1", "f4"]

    def test_touches_border(self, zoo: Zoo) -> None:
        view = DataView(zoo.version)
        yes = zoo.ids(lambda f: any(touches(f, a) for a in f.annotations))
        assert view.where(touches_border=True).frame_ids() == yes
        assert view.where(touches_border=False).frame_ids() == [
            f.id for f in zoo.frames if f.id not in yes
        ]

    def test_touches_border_sizes_a_box_by_its_own_source(self, zoo: Zoo) -> None:
        """f3's box ends at x=9 on the 10-wide "right" source; f4's box on no source ends at
        x=8, the width of the frame's first source."""
        got = DataView(zoo.version).where(touches_border=True).frame_ids()
        assert "f3" not in got
        assert "f4" in got

    def test_an_empty_mask_touches_nothing(self, zoo: Zoo) -> None:
        assert "f6" not in DataView(zoo.version).where(touches_border=True).frame_ids()

    def test_annotation_group_asks_one_annotation_for_everything(self, zoo: Zoo) -> None:
        view = DataView(zoo.version)
        separate = view.where(label="cat", area=(10, None)).frame_ids()
        together = view.where(annotation={"label": "cat", "area": (7, None)}).frame_ids()

        def big_cat(f: Frame) -> bool:
            return any("cat" in a.labels and in_range(area_of(a), 7, None) for a in f.annotations)

        assert separate == ["f1"]  # a cat, and a dog of area 18
        assert together == zoo.ids(big_cat) == ["f7"]

    def test_annotation_group_touches_border_false(self, zoo: Zoo) -> None:
        got = DataView(zoo.version).where(
            annotation={"label": "cat", "touches_border": False, "area": (1, None)}
        )
        want = zoo.ids(
            lambda f: any(
                "cat" in a.labels and not touches(f, a) and in_range(area_of(a), 1, None)
                for a in f.annotations
            )
        )
        assert got.frame_ids() == want


class TestFrameFields:
    def test_meta_nested_key(self, zoo: Zoo) -> None:
        got = DataView(zoo.version).where(meta={"camera.model": "b"}).frame_ids()
        assert got == zoo.ids(lambda f: f.meta.get("camera", {}).get("model") == "b")
        assert got == ["f4", "f7"]

    def test_meta_values_are_typed(self, zoo: Zoo) -> None:
        view = DataView(zoo.version)
        assert view.where(meta={"n": 3}).frame_ids() == ["f3", "f4"]  # 3 and 3.0
        assert view.where(meta={"n": "3"}).frame_ids() == ["f5"]
        assert view.where(meta={"flag": True}).frame_ids() == ["f5"]
        assert view.where(meta={"flag": False}).frame_ids() == ["f6"]
        assert view.where(meta={"flag": 1}).frame_ids() == []  # 1 is not true

    def test_meta_none_is_missing_or_null(self, zoo: Zoo) -> None:
        got = DataView(zoo.version).where(meta={"weather": None}).frame_ids()
        assert got == zoo.ids(lambda f: f.meta.get("weather") is None)

    def test_meta_numeric_range(self, zoo: Zoo) -> None:
        got = DataView(zoo.version).where(meta={"speed": (10, 20.5)}).frame_ids()
        assert got == zoo.ids(lambda f: in_range(f.meta.get("speed"), 10, 20.5))
        assert got == ["f0", "f2", "f7"]

    def test_meta_several_keys_are_and(self, zoo: Zoo) -> None:
        got = DataView(zoo.version).where(meta={"weather": "rain", "camera.model": "a"})
        assert got.frame_ids() == ["f0"]

    def test_source_uri_context(self, zoo: Zoo) -> None:
        view = DataView(zoo.version)
        assert view.where(source="right").frame_ids() == ["f3"]
        assert view.where(uri="s3://bucket/cam1/*").frame_ids() == ["f0", "f2", "f7"]
        assert view.where(uri="s3://bucket/cam?/f1.jpg").frame_ids() == ["f1"]
        assert view.where(context="seq2").frame_ids() == ["f2", "f5"]

    def test_uri_glob_is_whole_and_case_sensitive(self, zoo: Zoo) -> None:
        view = DataView(zoo.version)
        assert view.where(uri="*.JPG").frame_ids() == ["f5"]
        assert view.where(uri="cam1").count() == 0

    def test_uri_glob_takes_percent_and_underscore_literally(self, store: Store) -> None:
        v = store.create_dataset("odd").create_version("v1")
        v.add_frames([Frame.single("a", "x%_1.jpg"), Frame.single("b", "xab1.jpg")])
        v.commit()
        assert DataView(v).where(uri="x%_?.jpg").frame_ids() == ["a"]


class TestCombining:
    def test_criteria_in_one_where_are_and(self, zoo: Zoo) -> None:
        got = DataView(zoo.version).where(label="cat", meta={"weather": "rain"}, context="seq1")
        want = zoo.ids(
            lambda f: (
                has_label(zoo, f, "cat")
                and f.meta.get("weather") == "rain"
                and f.context_id == "seq1"
            )
        )
        assert got.frame_ids() == want == ["f0", "f7"]

    def test_chained_where_is_and(self, zoo: Zoo) -> None:
        chained = DataView(zoo.version).where(label="cat").where(touches_border=True)
        assert chained.frame_ids() == ["f1", "f7"]

    def test_union_is_or(self, zoo: Zoo) -> None:
        view = DataView(zoo.version)
        got = (view.where(context="seq2") | view.where(label="person")).frame_ids()
        assert got == ["f2", "f3", "f5"]

    def test_intersect_is_and(self, zoo: Zoo) -> None:
        view = DataView(zoo.version)
        assert (view.where(label="dog") & view.where(context="seq1")).frame_ids() == ["f1"]

    def test_exclude_is_not(self, zoo: Zoo) -> None:
        got = DataView(zoo.version).exclude(label="cat").frame_ids()
        assert got == zoo.ids(lambda f: not has_label(zoo, f, "cat"))

    def test_union_of_two_versions_is_refused(self, zoo: Zoo) -> None:
        other = zoo.version.dataset.create_version("v2", parent=zoo.version)
        with pytest.raises(StoreError, match="views combine within one version"):
            DataView(zoo.version) | DataView(other)

    def test_views_are_immutable(self, zoo: Zoo) -> None:
        view = DataView(zoo.version)
        view.where(label="cat").shuffled(1).take(1)
        assert view.count() == len(zoo.frames)

    def test_wrong_argument_type_is_a_type_error(self, zoo: Zoo) -> None:
        with pytest.raises(TypeError, match=r"area takes a \(lo, hi\) tuple"):
            DataView(zoo.version).where(area=5)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="label takes a str"):
            DataView(zoo.version).where(label=["cat"])  # type: ignore[arg-type]


# ---- listing and iteration


class TestListing:
    def test_count_ids_keys_in_version_order(self, zoo: Zoo) -> None:
        view = DataView(zoo.version).where(label="cat")
        want = zoo.ids(lambda f: has_label(zoo, f, "cat"))
        assert view.count() == len(want)
        assert view.frame_ids() == want
        by_id = {f.id: f.key for f in zoo.frames}
        assert view.keys() == [by_id[i] for i in want]

    def test_iteration_yields_the_frames_added_in_version_order(self, zoo: Zoo) -> None:
        assert list(DataView(zoo.version)) == zoo.frames

    def test_iteration_in_small_batches_yields_the_same(self, zoo: Zoo) -> None:
        assert list(DataView(zoo.version).frames(batch=3)) == zoo.frames

    def test_rows_carry_annotation_and_pixel_labels(self, zoo: Zoo) -> None:
        rows = {r.frame_id: r for r in DataView(zoo.version).rows()}
        assert rows["f2"].labels == {"background", "dog"}
        assert rows["f3"].labels == {"background", "person", "sitting"}
        assert rows["f1"].labels == {"cat", "dog"}
        assert rows["f5"].labels == frozenset()


class TestOrder:
    def test_same_seed_same_order(self, zoo: Zoo) -> None:
        a = list(DataView(zoo.version).shuffled(42).iter_keys())
        b = list(DataView(zoo.version, seed=42).shuffled().iter_keys())
        assert a == b

    def test_shuffle_is_a_permutation(self, zoo: Zoo) -> None:
        view = DataView(zoo.version).where(label="cat")
        got = [f.id for f in view.shuffled(7)]
        assert sorted(got) == sorted(view.frame_ids())

    def test_shuffle_is_numpy_permutation_over_version_order(self, zoo: Zoo) -> None:
        """The documented contract, so every run and every catalog gives one order."""
        ids = [f.id for f in zoo.frames]
        perm = np.random.default_rng([5, 0]).permutation(len(ids))
        assert [f.id for f in DataView(zoo.version).shuffled(5)] == [ids[i] for i in perm]

    def test_different_seeds_give_different_orders(self, zoo: Zoo) -> None:
        orders = {tuple(DataView(zoo.version).shuffled(s).iter_keys()) for s in range(5)}
        assert len(orders) == 5

    def test_shuffle_without_seed_records_one(self, zoo: Zoo) -> None:
        view = DataView(zoo.version).shuffled()
        assert isinstance(view.seed, int)
        assert list(view.iter_keys()) == list(DataView(zoo.version).shuffled(view.seed).iter_keys())

    def test_bad_seed_is_an_error(self, zoo: Zoo) -> None:
        with pytest.raises(StoreError, match="a seed is an int >= 0"):
            DataView(zoo.version).shuffled(-1)

    def test_take_stops_after_n(self, zoo: Zoo) -> None:
        assert [f.id for f in DataView(zoo.version).take(3)] == ["f0", "f1", "f2"]
        assert DataView(zoo.version).take(0).frame_ids() == [f.id for f in zoo.frames]
        assert list(DataView(zoo.version).take(0)) == []

    def test_infinite_sequential_repeats_version_order(self, zoo: Zoo) -> None:
        view = DataView(zoo.version).where(context="seq2").infinite().take(5)
        assert [f.id for f in view] == ["f2", "f5", "f2", "f5", "f2"]

    def test_infinite_shuffle_reshuffles_each_epoch(self, zoo: Zoo) -> None:
        n = len(zoo.frames)
        keys = list(DataView(zoo.version).shuffled(3).infinite().take(4 * n).iter_keys())
        epochs = [keys[i * n : (i + 1) * n] for i in range(4)]
        for e in epochs:
            assert sorted(e) == sorted(f.key for f in zoo.frames)
        assert len({tuple(e) for e in epochs}) > 1
        assert epochs[0] == list(DataView(zoo.version).shuffled(3).iter_keys())

    def test_infinite_empty_view_ends(self, zoo: Zoo) -> None:
        assert list(DataView(zoo.version).where(label="zebra").infinite()) == []


class TestWeighted:
    def test_frequencies_follow_label_rules(self, zoo: Zoo) -> None:
        n = 40_000
        view = DataView(zoo.version).weighted({"label:cat": 4.0}, seed=11, num_samples=n)
        freq = Counter(f.frame_id for f in _rows_of(view))
        weights = {f.id: 4.0 if has_label(zoo, f, "cat") else 1.0 for f in zoo.frames}
        total = sum(weights.values())
        for fid, w in weights.items():
            assert freq[fid] / n == pytest.approx(w / total, abs=0.01)

    def test_where_text_rules_and_the_largest_matching_weight(self, zoo: Zoo) -> None:
        n = 40_000
        rules = {"meta.weather=rain": 2.0, "label=cat and touches_border": 6.0, "default": 0.0}
        view = DataView(zoo.version).weighted(rules, seed=3, num_samples=n)
        freq = Counter(f.frame_id for f in _rows_of(view))
        # rain: f0 f2 f7; cat touching: f1 f7 (f7 takes the larger, 6); others weigh 0
        weights = {"f0": 2.0, "f1": 6.0, "f2": 2.0, "f7": 6.0}
        assert set(freq) == set(weights)
        for fid, w in weights.items():
            assert freq[fid] / n == pytest.approx(w / 16.0, abs=0.01)

    def test_callable_weights_see_light_rows(self, zoo: Zoo) -> None:
        seen: list[FrameRow] = []

        def weight(row: FrameRow) -> float:
            seen.append(row)
            return 1.0 if "dog" in row.labels else 0.0

        view = DataView(zoo.version).weighted(weight, seed=1, num_samples=300)
        assert {f.id for f in view} == {"f1", "f2", "f4"}
        assert sorted(r.frame_id for r in seen) == sorted(f.id for f in zoo.frames)

    def test_same_seed_same_draws(self, zoo: Zoo) -> None:
        rules = {"label:dog": 3.0}
        a = list(DataView(zoo.version).weighted(rules, seed=9).iter_keys())
        b = list(DataView(zoo.version).weighted(rules, seed=9).iter_keys())
        assert a == b
        assert len(a) == len(zoo.frames)  # an epoch: as many draws as frames

    def test_infinite_weighted_keeps_drawing(self, zoo: Zoo) -> None:
        view = DataView(zoo.version).weighted({"label:cat": 2.0}, seed=2).infinite().take(50)
        assert len(list(view.iter_keys())) == 50

    def test_all_zero_weights_is_an_error(self, zoo: Zoo) -> None:
        view = DataView(zoo.version).weighted({"label:zebra": 1.0, "default": 0.0}, seed=0)
        with pytest.raises(StoreError, match="weighs 0"):
            list(view.iter_keys())

    def test_negative_weight_is_an_error(self, zoo: Zoo) -> None:
        with pytest.raises(StoreError, match=r"weight of 'label:cat' must be a finite number"):
            DataView(zoo.version).weighted({"label:cat": -1.0}, seed=0)

    def test_bad_rule_text_is_an_error(self, zoo: Zoo) -> None:
        with pytest.raises(StoreError, match="unknown field 'colour'"):
            DataView(zoo.version).weighted({"colour=red": 2.0}, seed=0)


def _rows_of(view: DataView) -> list[FrameRow]:
    """Drawn keys as light rows (no frame loading: the draws are many)."""
    by_key = {r.key: r for r in DataView(view.version).rows()}
    return [by_key[k] for k in view.iter_keys()]


# ---- remap


class TestRemap:
    def test_by_name_rewrites_labels_and_drops_unmapped(self, zoo: Zoo) -> None:
        view = DataView(zoo.version).remap({"cat": "animal", "dog": "animal"})
        frames = {f.id: f for f in view}
        assert [a.labels for a in frames["f1"].annotations] == [("animal",)] * 3
        assert {a.class_id for a in frames["f1"].annotations} == {0}
        assert frames["f3"].annotations == ()  # person: unmapped
        # f6's unlabeled annotation is a dog through its class id (2) in the label map
        assert [a.labels for a in frames["f6"].annotations] == [("animal",), ("animal",)]

    def test_relabeler_is_a_picklable_remap_of_fetched_frames(self, zoo: Zoo) -> None:
        import pickle

        plain = DataView(zoo.version)
        view = plain.remap({"cat": "animal", "dog": "animal"})
        assert view.is_remapped
        assert not plain.is_remapped
        relabel = pickle.loads(pickle.dumps(view.relabeler()))
        f1 = next(f for f in zoo.frames if f.id == "f1")
        assert [a.labels for a in relabel(f1).annotations] == [("animal",)] * 3
        assert plain.infinite().is_endless
        assert not plain.infinite().take(3).is_endless

    def test_geometry_is_kept(self, zoo: Zoo) -> None:
        view = DataView(zoo.version).remap({"cat": "animal"})
        f0 = next(iter(view))
        assert f0.annotations[0].rle == zoo.frames[0].annotations[0].rle

    def test_void_keeps_unmapped_as_ignore(self, zoo: Zoo) -> None:
        view = DataView(zoo.version).where(label="person").remap({"cat": "animal"}, void="void")
        (f3,) = list(view)
        assert [(a.labels, a.class_id) for a in f3.annotations] == [(("void",), VOID_ID)]

    def test_label_map_is_contiguous_with_void_as_ignore(self, zoo: Zoo) -> None:
        lm = (
            DataView(zoo.version)
            .remap({"cat": "animal", "person": "human", "dog": "animal"}, void="void")
            .label_map()
        )
        assert [(lab.id, lab.name, lab.role) for lab in lm] == [
            (0, "animal", "class"),
            (1, "human", "class"),
            (VOID_ID, "void", "ignore"),
        ]

    def test_by_id(self, zoo: Zoo) -> None:
        view = DataView(zoo.version).where(label="dog").remap({2: 1, 1: 1})
        frames = {f.id: f for f in view}
        assert [(a.labels, a.class_id) for a in frames["f1"].annotations] == [(("cat",), 1)] * 3
        # f4's dog box has no class id: its label's id in the label map (2) maps to 1
        assert [a.class_id for a in frames["f4"].annotations] == [1]
        assert [lab.id for lab in view.label_map()] == [1]

    def test_pixel_lut_maps_mask_values(self, zoo: Zoo) -> None:
        view = DataView(zoo.version).remap({"dog": "animal", "sitting": "human"})
        lut = view.pixel_lut()
        px = zoo.pixels["f2"][0]
        assert lut.dtype == np.uint16
        np.testing.assert_array_equal(lut[px], np.where(px == 2, 0, VOID_ID))
        assert lut[3] == 1  # person+sitting -> human

    def test_filters_read_the_original_labels(self, zoo: Zoo) -> None:
        view = DataView(zoo.version).remap({"cat": "animal"}).where(label="cat")
        assert view.frame_ids() == zoo.ids(lambda f: has_label(zoo, f, "cat"))

    def test_mixed_keys_are_refused(self, zoo: Zoo) -> None:
        with pytest.raises(TypeError, match="all label names or all ids"):
            DataView(zoo.version).remap({"cat": "animal", 2: 1})  # type: ignore[arg-type]

    def test_a_target_named_like_void_is_refused(self, zoo: Zoo) -> None:
        with pytest.raises(StoreError, match="include the void label"):
            DataView(zoo.version).remap({"cat": "void"}, void="void")


# ---- parse_where


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("label=cat", {"label": "cat"}),
        ("label=cat and label=dog", {"labels_all": ["cat", "dog"]}),
        ("label=cat|dog", {"labels_any": ["cat", "dog"]}),
        ("area=100..5000", {"area": (100, 5000)}),
        ("area=100..", {"area": (100, None)}),
        ("area=..5000", {"area": (None, 5000)}),
        ("area>100 AND area<5000", None),  # the second area is an error: see below
        ("area>=100", {"area": (100, None)}),
        ("area>100", {"area": (101, None)}),
        ("area=7", {"area": (7, 7)}),
        ("bbox_w=..32.5", {"bbox_w": (None, 32.5)}),
        ("bbox_within=0,0,640,480", {"bbox_within_xyxy": (0.0, 0.0, 640.0, 480.0)}),
        ("meta.weather=rain", {"meta": {"weather": "rain"}}),
        ('meta.weather="rain and sun"', {"meta": {"weather": "rain and sun"}}),
        ("meta.n=3 and meta.s='3'", {"meta": {"n": 3, "s": "3"}}),
        ("meta.ok=true and meta.x=null", {"meta": {"ok": True, "x": None}}),
        ("meta.camera.speed=10..20.5", {"meta": {"camera.speed": (10.0, 20.5)}}),
        ("meta.speed>=2", {"meta": {"speed": (2.0, None)}}),
        ("count(cat)>=2", {"count": {"cat": (2, None)}}),
        ("count(cat)<2 and count(dog)=1..3", {"count": {"cat": (None, 1), "dog": (1, 3)}}),
        ("touches_border", {"touches_border": True}),
        ("not touches_border", {"touches_border": False}),
        ("touches_border=false", {"touches_border": False}),
        ("source=left and context=seq1", {"source": "left", "context": "seq1"}),
        ("uri='s3://b/cam 1/*.jpg'", {"uri": "s3://b/cam 1/*.jpg"}),
        ("class_id=3", {"class_id": 3}),
        (
            "annotation(label=cat and area>=100 and touches_border)",
            {"annotation": {"label": "cat", "area": (100, None), "touches_border": True}},
        ),
    ],
)
def test_parse_where(text: str, expected: dict[str, Any] | None) -> None:
    if expected is None:
        with pytest.raises(StoreError, match="area is given twice"):
            parse_where(text)
    else:
        assert parse_where(text) == expected


def test_parse_where_of_the_issue_example() -> None:
    text = (
        "label=cat and area=100..5000 and meta.weather=rain and count(cat)>=2 "
        "and touches_border and source=left and context=seq1"
    )
    assert parse_where(text) == {
        "label": "cat",
        "area": (100, 5000),
        "meta": {"weather": "rain"},
        "count": {"cat": (2, None)},
        "touches_border": True,
        "source": "left",
        "context": "seq1",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "--where is empty"),
        ("colour=red", r"unknown field 'colour' at position 0 .*use one of: label"),
        ("label=cat or label=dog", r"unexpected text at position 10 \(found 'or'\).*'and'"),
        ("label=cat and", r"expected a condition at position 13 \(found the end\)"),
        ("area=ten", r"area needs integers at position 5 \(found 'ten'\)"),
        ("area=5..2", r"range \(5, 2\) is empty"),
        ("bbox_w>3", r"bbox_w has no > \(ranges are inclusive\).*use >= or <="),
        ("count(cat>=2", r"expected '\)' at position 9"),
        ("label=", r"label= needs a value at position 6 \(found the end\)"),
        ("label!=cat", r"label takes '=' at position 5 \(found '!='\)"),
        ("not label=cat", r"'not' applies to touches_border only"),
        ("bbox_within=1,2,3", r"bbox_within takes four numbers.*0,0,640,480"),
        ("meta.=3", r"bad meta key at position 0"),
        ("annotation(source=x)", r"unknown field 'source' inside annotation"),
        ('label="cat', r"unexpected '\"' at position 6"),
    ],
)
def test_parse_where_errors_name_the_token_and_the_fix(text: str, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        parse_where(text)


def test_parse_where_output_runs(zoo: Zoo) -> None:
    kw = parse_where("label=cat and count(cat)>=2 and touches_border and context=seq1")
    got = DataView(zoo.version).where(**kw).frame_ids()
    want = zoo.ids(
        lambda f: (
            count_of(f, "cat") >= 2
            and any(touches(f, a) for a in f.annotations)
            and f.context_id == "seq1"
        )
    )
    assert got == want == ["f1", "f7"]


def test_repr_names_version_and_filter(zoo: Zoo) -> None:
    text = repr(DataView(zoo.version).where(label="cat").shuffled(4).take(2))
    assert re.fullmatch(
        r"DataView\('zoo:v1', where=.*cat.*, order=shuffle\(seed=4\), take=2\)", text
    )
