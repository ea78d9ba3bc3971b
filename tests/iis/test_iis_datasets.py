"""IIS datasets on small fixtures laid out as the benchmarks are (written here with PIL).

Expected targets are hand-written from the encodings of reference/iis.md §1.1 (RITM):
GrabCut/Berkeley mask channel 0 in OpenCV's BGR order, 128 -> -1, >128 -> 1; DAVIS and
COCO-MVal every non-black colour -> 1. COCO masks are encoded by pycocotools.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask

from masklab.errors import FormatError, MaskLabError, UnknownFormatError
from masklab.iis.datasets import (
    BerkeleyDataset,
    CocoMValDataset,
    DavisDataset,
    EvaluationDataset,
    FormatDataset,
    GrabCutDataset,
    RegionDataset,
    SegDataset,
    SegSample,
    StoreDataset,
    open_dataset,
)
from masklab.iis.regions import background, largest_object, random_class, whole
from masklab.store import Store
from masklab.store.importer import import_path

RNG = np.random.default_rng(0)


def rgb_image(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# --------------------------------------------------------------------------- GrabCut

# channel B of mask "a" (OpenCV's channel 0); R and G hold other values on purpose
A_BLUE = np.array([[0, 128, 255, 255], [0, 128, 200, 129], [127, 100, 0, 128]], np.uint8)
A_TARGET = [[0, -1, 1, 1], [0, -1, 1, 1], [0, 0, 0, -1]]
C_GREY = np.array([[255, 255, 128, 0], [255, 128, 0, 0], [128, 0, 0, 0]], np.uint8)
C_TARGET = [[1, 1, -1, 0], [1, -1, 0, 0], [-1, 0, 0, 0]]


@pytest.fixture
def grabcut(tmp_path: Path) -> Path:
    root = tmp_path / "GrabCut"
    (root / "data_GT").mkdir(parents=True)
    (root / "boundary_GT").mkdir()
    Image.fromarray(rgb_image(3, 4, 1)).save(root / "data_GT" / "a.bmp")
    Image.fromarray(rgb_image(3, 4, 2)).save(root / "data_GT" / "B.JPG", format="JPEG")
    Image.fromarray(rgb_image(3, 4, 3)).save(root / "data_GT" / "c.png")
    rgb = np.stack([255 - A_BLUE, np.full_like(A_BLUE, 128), A_BLUE], axis=-1)  # R, G, B
    Image.fromarray(rgb).save(root / "boundary_GT" / "a.bmp")
    Image.fromarray(np.full((3, 4), 255, np.uint8)).save(root / "boundary_GT" / "B.png")
    Image.fromarray(C_GREY).save(root / "boundary_GT" / "c.bmp")
    return root


def test_grabcut_samples_are_images_sorted_by_name_paired_by_stem(grabcut):
    ds = GrabCutDataset(grabcut)
    assert ds.ids == ["B", "a", "c"]  # code-point order, as RITM's sorted glob
    assert [Path(ds[i].info["mask_path"]).name for i in range(3)] == ["B.png", "a.bmp", "c.bmp"]
    assert ds.report.problems == []


def test_grabcut_reads_channel_0_with_128_as_ignore(grabcut):
    ev = EvaluationDataset(GrabCutDataset(grabcut))
    assert ev[1].target.tolist() == A_TARGET
    assert ev[2].target.tolist() == C_TARGET
    assert ev[0].target.tolist() == [[1] * 4] * 3
    assert ev[1].target.dtype == np.int8


def test_grabcut_layers_hold_the_object_and_info_the_band(grabcut):
    s = GrabCutDataset(grabcut)[1]
    assert s.layers.shape == (3, 4, 1)
    assert s.layers[:, :, 0].tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 0, 0]]
    assert s.info["ignore"].tolist() == (A_BLUE == 128).tolist()
    assert s.info["layer_names"] == ("object",)


def test_images_are_rgb_uint8(grabcut):
    s = GrabCutDataset(grabcut)[1]
    assert s.image.dtype == np.uint8
    assert s.image.shape == (3, 4, 3)
    np.testing.assert_array_equal(s.image, rgb_image(3, 4, 1))  # PIL wrote RGB


def test_info_pins_the_files_by_sha256(grabcut):
    ds = GrabCutDataset(grabcut)
    info = ds[1].info
    mask = grabcut / "boundary_GT" / "a.bmp"
    image = grabcut / "data_GT" / "a.bmp"
    assert info["mask_sha256"] == hashlib.sha256(mask.read_bytes()).hexdigest()
    assert info["image_sha256"] == hashlib.sha256(image.read_bytes()).hexdigest()
    assert info["dataset_files"] == 6
    assert (info["id"], info["index"], info["dataset"]) == ("a", 1, "grabcut")


def test_fingerprint_changes_with_any_file_and_only_then(grabcut):
    before = GrabCutDataset(grabcut).fingerprint()
    assert GrabCutDataset(grabcut).fingerprint() == before
    changed = C_GREY.copy()
    changed[2, 3] = 255
    Image.fromarray(changed).save(grabcut / "boundary_GT" / "c.bmp")
    assert GrabCutDataset(grabcut).fingerprint() != before


def test_unpaired_files_are_reported_warned_and_skipped(grabcut):
    Image.fromarray(rgb_image(3, 4, 4)).save(grabcut / "data_GT" / "d.png")
    with pytest.warns(UserWarning, match="4 images in data_GT/ but 3 masks"):
        ds = GrabCutDataset(grabcut)
    assert ds.ids == ["B", "a", "c"]
    assert any(p.record == "d" and "no mask" in p.message for p in ds.report.problems)


def test_missing_folder_names_the_layout(tmp_path):
    (tmp_path / "data_GT").mkdir()
    with pytest.raises(FormatError, match=r"boundary_GT.*data_GT/ \+ boundary_GT/"):
        GrabCutDataset(tmp_path)


def test_image_and_mask_of_different_sizes_are_refused(grabcut):
    Image.fromarray(np.zeros((5, 4), np.uint8)).save(grabcut / "boundary_GT" / "c.bmp")
    with pytest.raises(FormatError, match=r"c.bmp: mask is \[5, 4\].*c.png is \[3, 4\]"):
        GrabCutDataset(grabcut)[2]


# --------------------------------------------------------------------------- Berkeley


@pytest.fixture
def berkeley(tmp_path: Path) -> Path:
    """96-vs-100 in small: image 189011b missing (iis.md §6)."""
    root = tmp_path / "Berkeley"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for name, seed in (("12003", 1), ("189011a", 2)):
        Image.fromarray(rgb_image(2, 3, seed)).save(root / "images" / f"{name}.png")
    masks = {
        "12003": [[0, 255, 255], [0, 0, 255]],
        "189011a": [[255, 0, 0], [255, 0, 0]],
        "189011b": [[0, 0, 255], [0, 0, 0]],
    }
    for name, m in masks.items():
        grey = np.array(m, np.uint8)
        Image.fromarray(np.stack([grey] * 3, axis=-1)).save(root / "masks" / f"{name}.png")
    return root


def test_berkeley_count_mismatch_is_warned_and_reported(berkeley):
    with pytest.warns(UserWarning, match=r"2 images in images/ but 3 masks.*189011b"):
        ds = BerkeleyDataset(berkeley)
    assert len(ds) == 2
    assert (ds.n_images, ds.n_masks) == (2, 3)
    missing = [p for p in ds.report.problems if p.record == "189011b"]
    assert len(missing) == 1
    assert "no image" in missing[0].message


def test_berkeley_strict_refuses_a_mask_without_image(berkeley):
    with pytest.raises(FormatError, match="189011b"):
        BerkeleyDataset(berkeley, strict=True)


def test_berkeley_targets(berkeley):
    with pytest.warns(UserWarning, match="2 images"):
        ev = EvaluationDataset(BerkeleyDataset(berkeley))
    assert ev[0].info["id"] == "12003"
    assert ev[0].target.tolist() == [[0, 1, 1], [0, 0, 1]]
    assert ev[1].target.tolist() == [[1, 0, 0], [1, 0, 0]]


# --------------------------------------------------------------------------- DAVIS, COCO-MVal

DAVIS_INDEX = np.array([[0, 1, 1, 0], [2, 2, 0, 0], [0, 0, 0, 3]], np.uint8)
DAVIS_PALETTE = [0, 0, 0, 128, 0, 0, 0, 128, 0, 224, 224, 192]  # black, red, green, void


@pytest.fixture
def davis(tmp_path: Path) -> Path:
    root = tmp_path / "DAVIS"
    (root / "img").mkdir(parents=True)
    (root / "gt").mkdir()
    Image.fromarray(rgb_image(3, 4, 5)).save(root / "img" / "001.png")
    gt = Image.fromarray(DAVIS_INDEX, mode="P")
    gt.putpalette(DAVIS_PALETTE)
    gt.save(root / "gt" / "001.png")
    return root


def test_davis_target_is_the_union_of_all_colours(davis):
    s = EvaluationDataset(DavisDataset(davis))[0]
    assert s.target.tolist() == [[0, 1, 1, 0], [1, 1, 0, 0], [0, 0, 0, 1]]
    np.testing.assert_array_equal(s.image, rgb_image(3, 4, 5))


def test_davis_keeps_one_object_per_colour(davis):
    s = DavisDataset(davis)[0]
    # ids by colour value R*65536 + G*256 + B: green < red < void
    assert s.layers[:, :, 0].tolist() == [[0, 2, 2, 0], [1, 1, 0, 0], [0, 0, 0, 3]]
    assert s.info["colors"] == {1: (0, 128, 0), 2: (128, 0, 0), 3: (224, 224, 192)}
    assert s.info["ignore"] is None
    red = largest_object(s.layers, s.info, RNG)  # areas 2 and 2: the smaller id
    assert red.tolist() == [[0, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]]


def test_coco_mval_binary_masks(tmp_path):
    root = tmp_path / "COCO_MVal"
    (root / "img").mkdir(parents=True)
    (root / "gt").mkdir()
    Image.fromarray(rgb_image(2, 3, 6)).save(root / "img" / "x.jpg")
    Image.fromarray(np.array([[0, 255, 0], [255, 255, 0]], np.uint8)).save(root / "gt" / "x.png")
    ev = EvaluationDataset(CocoMValDataset(root))
    assert ev[0].target.tolist() == [[0, 1, 0], [1, 1, 0]]
    assert ev[0].info["dataset"] == "coco-mval"


# --------------------------------------------------------------------------- region datasets


class Toy(SegDataset):
    """Any dataset by subclassing: two classes on a 2x3 frame."""

    def __len__(self) -> int:
        return 4

    def get_sample(self, i: int) -> SegSample:
        layers = np.array([[[1], [1], [0]], [[0], [2], [2]]], np.int32)
        return SegSample(np.zeros((2, 3, 3), np.uint8), layers, {"id": f"t{i}"})


TOY_REGIONS = ([[1, 1, 0], [0, 0, 0]], [[0, 0, 0], [0, 1, 1]])


def test_region_dataset_is_seeded_per_index_in_any_order():
    a = RegionDataset(Toy(), random_class, seed=3)
    b = RegionDataset(Toy(), random_class, seed=3)
    forward = [a[i].target.tolist() for i in range(4)]
    backward = [b[i].target.tolist() for i in reversed(range(4))][::-1]
    assert forward == backward
    assert all(t in TOY_REGIONS for t in forward)


def test_region_dataset_epochs_draw_other_targets():
    ds = RegionDataset(Toy(), random_class, seed=0)
    draws = set()
    for epoch in range(8):
        ds.set_epoch(epoch)
        draws.add(tuple(map(tuple, ds[0].target.tolist())))
    assert {tuple(map(tuple, r)) for r in TOY_REGIONS} == draws
    assert ds[0].info["epoch"] == 7


def test_evaluation_dataset_targets_never_change(grabcut):
    ev = EvaluationDataset(GrabCutDataset(grabcut), random_class, seed=5)
    first = [ev[i].target.copy() for i in range(len(ev))]
    again = [ev[i].target for i in reversed(range(len(ev)))][::-1]
    for x, y in zip(first, again, strict=True):
        np.testing.assert_array_equal(x, y)
    info = ev[1].info
    assert info["target_sha256"] == hashlib.sha256(first[1].tobytes()).hexdigest()
    assert "ignore" not in info
    assert info["selector"] == "random_class"
    with pytest.raises(TypeError, match="fixed"):
        ev.set_epoch(1)


def test_index_out_of_range_and_negative():
    ds = RegionDataset(Toy(), whole)
    assert ds[-1].info["id"] == "t3"
    with pytest.raises(IndexError, match="4 samples"):
        ds[4]


# --------------------------------------------------------------------------- formats and store

H, W = 4, 5
CAT, DOG = 3, 7


def coco_rle(pixels: list[tuple[int, int]]) -> dict[str, Any]:
    m = np.zeros((H, W), np.uint8)
    for r, c in pixels:
        m[r, c] = 1
    out = coco_mask.encode(np.asfortranarray(m))
    out["counts"] = out["counts"].decode("ascii")
    return out


@pytest.fixture
def coco(tmp_path: Path) -> Path:
    root = tmp_path / "coco"
    (root / "images").mkdir(parents=True)
    Image.fromarray(rgb_image(H, W, 7)).save(root / "images" / "a.png")
    Image.fromarray(rgb_image(H, W, 8)).save(root / "images" / "b.png")
    anns = [  # (category, pixels, iscrowd)
        (CAT, [(0, 0), (0, 1), (1, 0), (1, 1)], 0),
        (DOG, [(2, 3), (2, 4), (3, 3), (3, 4)], 0),
        (CAT, [(3, c) for c in range(W)], 1),
        (CAT, [(0, 3), (0, 4)], 0),
    ]
    doc = {
        "images": [
            {"id": 1, "file_name": "a.png", "height": H, "width": W},
            {"id": 2, "file_name": "b.png", "height": H, "width": W},
        ],
        "annotations": [
            {
                "id": k,
                "image_id": 1,
                "category_id": cat,
                "segmentation": coco_rle(px),
                "area": len(px),
                "bbox": [0, 0, 1, 1],
                "iscrowd": crowd,
            }
            for k, (cat, px, crowd) in enumerate(anns, start=1)
        ],
        "categories": [{"id": CAT, "name": "cat"}, {"id": DOG, "name": "dog"}],
    }
    (root / "instances_default.json").write_text(json.dumps(doc))
    return root


# instances painted crowd first, objects over them; ids are annotation positions
INSTANCES = [[1, 1, 0, 4, 4], [1, 1, 0, 0, 0], [0, 0, 0, 2, 2], [3, 3, 3, 2, 2]]
CLASSES = [[1, 1, 0, 1, 1], [1, 1, 0, 0, 0], [0, 0, 0, 2, 2], [0, 0, 0, 2, 2]]  # cat 1, dog 2
WHOLE = [[1, 1, 0, 1, 1], [1, 1, 0, 0, 0], [0, 0, 0, 1, 1], [-1, -1, -1, 1, 1]]


def check_coco_sample(s: SegSample) -> None:
    assert s.layers[:, :, 0].tolist() == INSTANCES
    assert s.layers[:, :, 1].tolist() == CLASSES
    assert s.info["layer_names"] == ("instance", "class")
    assert s.info["iscrowd"] == (False, False, True, False)
    assert s.info["instance_class_ids"] == (CAT, DOG, CAT, CAT)
    assert s.info["class_names"] == {1: "cat", 2: "dog"}
    assert s.info["class_ids"] == {1: CAT, 2: DOG}
    assert s.info["ignore"].tolist() == [[False] * 5] * 3 + [[True] * 3 + [False] * 2]
    np.testing.assert_array_equal(s.image, rgb_image(H, W, 7))
    assert whole(s.layers, s.info, RNG).tolist() == WHOLE


def test_format_dataset_builds_instance_and_class_layers(coco):
    ds = FormatDataset(coco / "instances_default.json")
    assert ds.ids == ["a", "b"]
    assert ds.name == "coco"
    check_coco_sample(ds[0])


def test_format_dataset_crowd_is_never_a_target(coco):
    s = FormatDataset(coco, "coco")[0]
    for seed in range(20):
        t = random_class(s.layers, s.info, np.random.default_rng(seed))
        assert t.tolist() in (
            [[1, 1, 0, 1, 1], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0], [-1, -1, -1, 0, 0]],
            [[0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 1, 1], [-1, -1, -1, 1, 1]],
        )


def test_format_sample_without_objects_names_itself(coco):
    ev = EvaluationDataset(FormatDataset(coco))
    with pytest.raises(MaskLabError, match="sample 'b' of coco: no object"):
        ev[1]
    assert background(*_layers_info(FormatDataset(coco)[1]), RNG).tolist() == [[1] * W] * H


def _layers_info(s: SegSample) -> tuple[np.ndarray, dict[str, Any]]:
    return s.layers, s.info


def test_store_version_gives_the_same_layers(coco):
    with Store() as store:
        import_path(store, coco, dataset="tiny", version="v1")
        ds = StoreDataset(store.version("tiny:v1"))
        assert len(ds) == 2
        assert ds.name == "store:tiny:v1"
        check_coco_sample(ds[0])
        view = StoreDataset(store.version("tiny:v1").view())
        check_coco_sample(view[0])


def test_open_dataset_kinds(grabcut, coco):
    ev = open_dataset(f"grabcut:{grabcut}")
    assert isinstance(ev, EvaluationDataset)
    assert ev[1].target.tolist() == A_TARGET
    seg = open_dataset(f"coco:{coco}")
    assert isinstance(seg, FormatDataset)
    assert isinstance(open_dataset(str(coco / "instances_default.json")), FormatDataset)
    chosen = open_dataset(f"coco:{coco}", selector=largest_object, seed=1)
    assert isinstance(chosen, EvaluationDataset)
    assert chosen[0].target.tolist()[0] == [1, 1, 0, 0, 0]
    with Store() as store:
        import_path(store, coco, dataset="tiny", version="v1")
    from_store = open_dataset("store:tiny:v1")
    assert isinstance(from_store, StoreDataset)
    check_coco_sample(from_store[0])


def test_open_dataset_unknown_kind_lists_the_kinds(tmp_path):
    with pytest.raises(UnknownFormatError, match="grabcut, berkeley, davis, coco-mval, store"):
        open_dataset(f"nope:{tmp_path / 'missing'}")


def test_semantic_format_gives_components_classes_and_void_as_ignore(tmp_path):
    """A VOC class map: objects are connected parts per class, 255 (void) is ignore."""
    root = tmp_path / "voc"
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClass").mkdir()
    Image.fromarray(rgb_image(2, 4, 9)).save(root / "JPEGImages" / "p.jpg")
    classes = np.array([[0, 1, 1, 0], [255, 0, 15, 1]], np.uint8)
    png = Image.fromarray(classes, mode="P")
    palette = np.zeros((256, 3), np.uint8)
    palette[1], palette[15], palette[255] = (128, 0, 0), (192, 128, 128), (224, 224, 192)
    png.putpalette(palette.ravel().tolist())
    png.save(root / "SegmentationClass" / "p.png")
    s = FormatDataset(root, "voc")[0]
    assert s.layers[:, :, 1].tolist() == [[0, 1, 1, 0], [0, 0, 15, 1]]  # VOC ids 1..20 = codes
    assert s.info["class_names"][15] == "person"
    assert s.info["ignore"].tolist() == [[False] * 4, [True, False, False, False]]
    objects = s.layers[:, :, 0]
    assert objects[0, 1] == objects[0, 2] > 0  # one aeroplane part, 8-connected ...
    assert objects[1, 3] == objects[0, 2]  # ... reaching (1, 3) diagonally
    assert objects[1, 2] not in (0, objects[0, 1])
    assert whole(s.layers, s.info, RNG).tolist() == [[0, 1, 1, 0], [-1, 0, 1, 1]]
