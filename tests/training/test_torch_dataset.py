"""masklab.torch: datasets over a store version, a DataView and a path; workers; collate.

Oracles: images written here with PIL and read back with PIL, class maps and instance masks
drawn here as small arrays with their train ids, boxes and areas counted by hand; the
DataLoader's workers checked against the items read in this process.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from torch.utils.data import DataLoader  # noqa: E402

from masklab.core import rle  # noqa: E402
from masklab.core.labels import LabelMap  # noqa: E402
from masklab.errors import StoreError  # noqa: E402
from masklab.store import Annotation, Frame, Store  # noqa: E402
from masklab.torch import (  # noqa: E402
    IterableSegmentationDataset,
    SegmentationDataset,
    SegmentationLoader,
    collate,
)
from masklab.training.targets import class_map  # noqa: E402
from masklab.training.transforms import RandomCrop  # noqa: E402

H, W = 6, 8
N_FRAMES = 6
LABELS = LabelMap.from_names(["background", "cat", "dog"], background=0, ignore={255: "void"})


def image_of(i: int) -> np.ndarray:
    """Frame i's RGB pixels: red says the frame (10 i), green the column, blue the row."""
    img = np.zeros((H, W, 3), np.uint8)
    img[..., 0] = 10 * i
    img[..., 1] = np.arange(W)[None, :] * 30
    img[..., 2] = np.arange(H)[:, None] * 40
    return img


def mask_of(i: int) -> np.ndarray:
    """Frame i's class map: cat block, dog block, a void pixel, an id (7) the map lacks."""
    m = np.zeros((H, W), np.uint8)
    m[1:4, 1 + i % 2 : 4] = 1
    m[2:6, 5:8] = 2
    m[0, 7] = 255
    m[5, 0] = 7
    return m


def target_of(i: int) -> np.ndarray:
    """Train ids by hand: background 0, cat 1, dog 2, void and unknown ids 255."""
    return np.vectorize({0: 0, 1: 1, 2: 2, 255: 255, 7: 255}.get)(mask_of(i)).astype(np.int64)


def chw(img: np.ndarray) -> np.ndarray:
    return (img.astype(np.float32) / np.float32(255)).transpose(2, 0, 1)


def png_bytes(img: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def store(tmp_path: Path):
    """The test's own store (MASKLAB_HOME) with `sem:v1`: 6 frames with class maps, the
    even ones' images in the blob store, the odd ones' as files."""
    s = Store()
    v = s.create_dataset("sem").create_version("v1")
    v.set_label_map(LABELS)
    frames = []
    for i in range(N_FRAMES):
        if i % 2 == 0:
            uri = "blob:sha256:" + s.blobs.put(png_bytes(image_of(i)))
        else:
            path = tmp_path / f"img{i}.png"
            Image.fromarray(image_of(i)).save(path)
            uri = str(path)
        frames.append(Frame.single(f"f{i}", uri, width=W, height=H, masks=s.put_mask(mask_of(i))))
    v.add_frames(frames)
    v.commit()
    yield s
    s.close()


def frame_index(image: torch.Tensor) -> int:
    """Which frame an item's image is (its red channel is 10 i / 255)."""
    return round(float(image[0, 0, 0]) * 255 / 10)


# --------------------------------------------------------------------------- items


def test_semantic_items_are_the_images_and_hand_mapped_class_maps(store):
    ds = SegmentationDataset(store.version("sem:v1"), task="semantic")
    assert len(ds) == N_FRAMES
    assert ds.ids == [f"f{i}" for i in range(N_FRAMES)]
    assert ds.train_ids.names == ("background", "cat", "dog")
    for i in range(N_FRAMES):
        image, target = ds[i]
        assert image.dtype == torch.float32
        assert tuple(image.shape) == (3, H, W)
        assert target.dtype == torch.int64
        np.testing.assert_array_equal(image.numpy(), chw(image_of(i)))
        np.testing.assert_array_equal(target.numpy(), target_of(i))


def test_uint8_images_keep_the_pixels(store):
    ds = SegmentationDataset(store.version("sem:v1"), image_dtype=torch.uint8)
    image, _ = ds[3]
    assert image.dtype == torch.uint8
    np.testing.assert_array_equal(image.numpy(), image_of(3).transpose(2, 0, 1))


def test_batched_class_maps_match_class_map_per_sample(store):
    """The batch path looks class maps up straight into the batch; it must agree with
    training.targets.class_map on every sample (void and an unknown id included)."""
    ds = SegmentationDataset(store.version("sem:v1"))
    items = ds.__getitems__(list(range(N_FRAMES)))
    for i, (_, target) in enumerate(items):
        expected = class_map(ds.sample(i), ds.label_map, train_ids=ds.train_ids)
        np.testing.assert_array_equal(target.numpy(), expected)


def test_index_out_of_range_raises_index_error(store):
    ds = SegmentationDataset(store.version("sem:v1"))
    with pytest.raises(IndexError, match="out of range"):
        ds[N_FRAMES]
    np.testing.assert_array_equal(ds[-1][1].numpy(), target_of(N_FRAMES - 1))


def test_unknown_task_is_refused(store):
    with pytest.raises(ValueError, match="task must be one of"):
        SegmentationDataset(store.version("sem:v1"), task="depth")


def test_instance_items_are_torchvision_detection_targets():
    s = Store()
    v = s.create_dataset("inst").create_version("v1")
    v.set_label_map(LABELS)
    cat = np.zeros((H, W), np.uint8)
    cat[1:4, 1:5] = 1  # x 1..4, y 1..3: box (1, 1, 5, 4), area 12
    dog = np.zeros((H, W), np.uint8)
    dog[2:6, 5:8] = 1
    dog[3, 6] = 0  # a hole: area 11, box (5, 2, 8, 6)
    crowd = np.zeros((H, W), np.uint8)
    crowd[0, :3] = 1
    anns = [
        Annotation(labels=("cat",), class_id=1, rle=rle.encode(cat)),
        Annotation(labels=("dog",), class_id=2, rle=rle.encode(dog)),
        Annotation(labels=("dog",), class_id=2, rle=rle.encode(crowd), iscrowd=True),
    ]
    uri = "blob:sha256:" + s.blobs.put(png_bytes(image_of(0)))
    v.add_frames([Frame.single("a", uri, width=W, height=H, annotations=anns)])
    v.commit()
    image, target = SegmentationDataset(v, task="instance")[0]
    np.testing.assert_array_equal(image.numpy(), chw(image_of(0)))
    assert target["boxes"].dtype == torch.float32
    assert target["boxes"].tolist() == [[1.0, 1.0, 5.0, 4.0], [5.0, 2.0, 8.0, 6.0]]
    assert target["labels"].tolist() == [1, 2]  # crowd left out, as torchvision's reference
    assert target["labels"].dtype == torch.int64
    assert target["area"].tolist() == [12.0, 11.0]
    assert target["masks"].dtype == torch.uint8
    np.testing.assert_array_equal(target["masks"].numpy(), np.stack([cat, dog]))
    assert target["iscrowd"].tolist() == [0, 0]
    assert int(target["image_id"]) == 0

    _pan_image, pan = SegmentationDataset(v, task="panoptic")[0]
    expected_sem = np.full((H, W), 255, np.int64)  # no segment there: void (COCO panoptic)
    expected_sem[cat == 1] = 1
    expected_sem[dog == 1] = 2
    expected_sem[crowd == 1] = 2  # crowd keeps its class in panoptic semantic
    np.testing.assert_array_equal(pan["semantic"].numpy(), expected_sem)
    expected_inst = np.zeros((H, W), np.int64)
    expected_inst[cat == 1] = 1
    expected_inst[dog == 1] = 2  # crowd: no instance number
    np.testing.assert_array_equal(pan["instance"].numpy(), expected_inst)
    assert pan["labels"].tolist() == [1, 2, 2]
    assert pan["iscrowd"].tolist() == [0, 0, 1]
    s.close()


def test_transforms_run_before_the_targets_with_a_seeded_rng(store):
    """Each pixel's green value says its column, so a crop of image and target agree when
    the target's columns are the image's."""
    crop = RandomCrop(4, 5)
    ds = SegmentationDataset(store.version("sem:v1"), transforms=crop)
    torch.manual_seed(0)
    first = [ds[i] for i in range(N_FRAMES)]
    for i, (image, target) in enumerate(first):
        assert tuple(image.shape) == (3, 4, 5)
        assert tuple(target.shape) == (4, 5)
        x0 = round(float(image[1, 0, 0]) * 255 / 30)
        y0 = round(float(image[2, 0, 0]) * 255 / 40)
        np.testing.assert_array_equal(target.numpy(), target_of(i)[y0 : y0 + 4, x0 : x0 + 5])
    torch.manual_seed(0)
    again = [ds[i] for i in range(N_FRAMES)]
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, again, strict=True))


def test_plain_callables_work_as_transforms(store):
    def flip(image, sample):
        from dataclasses import replace

        return image[:, ::-1].copy(), replace(sample, semantic=sample.semantic[:, ::-1].copy())

    image, target = SegmentationDataset(store.version("sem:v1"), transforms=flip)[2]
    np.testing.assert_array_equal(image.numpy(), chw(image_of(2)[:, ::-1]))
    np.testing.assert_array_equal(target.numpy(), target_of(2)[:, ::-1])


# --------------------------------------------------------------------------- views and paths


def test_remapped_view_maps_pixels_through_its_lut(store):
    view = (
        store.version("sem:v1")
        .view()
        .remap({"background": "background", "cat": "animal", "dog": "animal"})
    )
    ds = SegmentationDataset(view)
    assert ds.train_ids.names == ("background", "animal")
    _, target = ds[1]
    expected = np.vectorize({0: 0, 1: 1, 2: 1, 255: 255, 7: 255}.get)(mask_of(1))
    np.testing.assert_array_equal(target.numpy(), expected)


def test_a_view_keeps_its_filter_and_order(store):
    view = store.version("sem:v1").view().shuffled(seed=5).take(4)
    ds = SegmentationDataset(view)
    assert ds.ids == [f.id for f in view]  # the view's own iteration order
    assert [f"f{frame_index(ds[k][0])}" for k in range(len(ds))] == ds.ids
    assert ds.ids != ["f0", "f1", "f2", "f3"]  # seed 5 shuffles


def test_an_infinite_view_is_refused(store):
    with pytest.raises(StoreError, match="infinite"):
        SegmentationDataset(store.version("sem:v1").view().infinite())


@pytest.fixture
def png_folder(tmp_path: Path) -> Path:
    root = tmp_path / "pngs"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(N_FRAMES):
        Image.fromarray(image_of(i)).save(root / "images" / f"s{i}.png")
        m = mask_of(i)
        m[m > 2] = 0  # a scanned label map: only 0, 1, 2
        Image.fromarray(m).save(root / "masks" / f"s{i}.png")
    return root


def test_a_path_is_indexed_for_random_access(png_folder):
    ds = SegmentationDataset(png_folder, format="png-masks")
    assert len(ds) == N_FRAMES
    i = ds.ids.index("s4")
    image, target = ds[i]
    np.testing.assert_array_equal(image.numpy(), chw(image_of(4)))
    expected = mask_of(4)
    expected[expected > 2] = 0
    np.testing.assert_array_equal(target.numpy(), expected)


# --------------------------------------------------------------------------- workers


def test_pickling_carries_no_store_and_reopens_one(store):
    version = store.version("sem:v1")
    ds = SegmentationDataset(version)
    blob = pickle.dumps(ds)
    assert b"Engine" not in blob
    copy = pickle.loads(blob)
    assert copy._frames._version is None
    np.testing.assert_array_equal(copy[2][1].numpy(), target_of(2))
    assert copy._frames._version.store is not version.store


def test_two_workers_read_every_frame_in_order(store):
    ds = SegmentationDataset(store.version("sem:v1"))
    loader = DataLoader(ds, batch_size=4, num_workers=2, collate_fn=collate)
    images, targets = [], []
    for x, y in loader:
        images += list(x)
        targets += list(y)
    assert [frame_index(x) for x in images] == list(range(N_FRAMES))
    for i, y in enumerate(targets):
        np.testing.assert_array_equal(y.numpy(), target_of(i))


def test_segmentation_loader_gives_the_dataloader_batches(store):
    ds = SegmentationDataset(store.version("sem:v1"))
    plain = list(DataLoader(ds, batch_size=4, collate_fn=collate))
    compact = list(SegmentationLoader(ds, batch_size=4, num_workers=2))
    assert len(plain) == len(compact) == 2
    for (xa, ya), (xb, yb) in zip(plain, compact, strict=True):
        assert xb.dtype == torch.float32
        assert yb.dtype == torch.int64
        assert torch.equal(xa, xb)
        assert torch.equal(ya, yb)
    on_cpu = list(SegmentationLoader(ds, batch_size=4, device="cpu"))
    assert torch.equal(on_cpu[1][0], plain[1][0])
    assert torch.equal(on_cpu[1][1], plain[1][1])


def test_segmentation_loader_carries_instance_targets_as_built():
    s = Store()
    v = s.create_dataset("inst").create_version("v1")
    v.set_label_map(LABELS)
    cat = np.zeros((H, W), np.uint8)
    cat[1:4, 1:5] = 1
    frames = [
        Frame.single(
            f"f{i}",
            "blob:sha256:" + s.blobs.put(png_bytes(image_of(i))),
            width=W,
            height=H,
            annotations=[Annotation(labels=("cat",), class_id=1, rle=rle.encode(cat))] * i,
        )
        for i in range(3)
    ]
    v.add_frames(frames)
    v.commit()
    ds = SegmentationDataset(v, task="instance")
    ((images, targets),) = list(SegmentationLoader(ds, batch_size=3))
    np.testing.assert_array_equal(images.numpy(), np.stack([chw(image_of(i)) for i in range(3)]))
    assert [t["labels"].tolist() for t in targets] == [[], [1], [1, 1]]
    assert targets[2]["masks"].dtype == torch.uint8
    np.testing.assert_array_equal(targets[2]["masks"].numpy(), np.stack([cat, cat]))
    s.close()


@pytest.mark.parametrize("shuffle", [False, True])
def test_iterable_workers_share_an_epoch_without_repeats(store, shuffle):
    ds = IterableSegmentationDataset(store.version("sem:v1"), shuffle=shuffle, seed=3)
    assert len(ds) == N_FRAMES

    def epoch(e):
        ds.set_epoch(e)
        loader = DataLoader(ds, batch_size=None, num_workers=2)
        return [frame_index(x) for x, _ in loader]

    first, again, other = epoch(0), epoch(0), epoch(1)
    assert sorted(first) == sorted(other) == list(range(N_FRAMES))
    assert first == again
    if shuffle:
        assert first != other  # seed 3: epochs 0 and 1 differ
    else:
        assert first == [0, 1, 2, 3, 4, 5]  # round-robin: worker 0, 1, 0, ...


def test_iterable_path_stream_is_dealt_to_workers_once(png_folder):
    ds = IterableSegmentationDataset(png_folder, format="png-masks", shuffle=True, buffer=2)
    loader = DataLoader(ds, batch_size=None, num_workers=2)
    seen = sorted(frame_index(x) for x, _ in loader)
    assert seen == list(range(N_FRAMES))


# --------------------------------------------------------------------------- collate


def test_collate_stacks_equal_shapes_and_lists_the_rest():
    a = (torch.ones(3, 2, 2), torch.zeros(2, 2, dtype=torch.int64))
    b = (torch.ones(3, 4, 2), torch.zeros(4, 2, dtype=torch.int64))
    images, targets = collate([a, a])
    assert tuple(images.shape) == (2, 3, 2, 2)
    assert tuple(targets.shape) == (2, 2, 2)
    images, targets = collate([a, b])
    assert isinstance(images, list)
    assert [tuple(t.shape) for t in targets] == [(2, 2), (4, 2)]
    dicts = [(torch.ones(3, 2, 2), {"labels": torch.tensor([1, 2])}), (a[0], {"labels": a[1]})]
    images, targets = collate(dicts)
    assert tuple(images.shape) == (2, 3, 2, 2)
    assert isinstance(targets, list)
    assert targets[0]["labels"].tolist() == [1, 2]


def test_collate_hands_a_batch_built_together_on_without_copying(store):
    ds = SegmentationDataset(store.version("sem:v1"))
    items = ds.__getitems__([0, 1, 2])
    images, targets = collate(items)
    assert images.data_ptr() == items[0][0].data_ptr()
    assert targets.data_ptr() == items[0][1].data_ptr()
    assert collate(items[1:])[0].data_ptr() != items[0][0].data_ptr()  # not the whole: copied


# --------------------------------------------------------------------------- import


def test_import_without_torch_says_what_to_install():
    code = "import sys; sys.modules['torch'] = None; import masklab.torch"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode != 0
    assert "ImportError" in out.stderr
    assert "pip install torch==2.13.0" in out.stderr
    assert "masklab[torch]" in out.stderr
