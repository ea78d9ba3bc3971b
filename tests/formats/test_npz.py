"""npz: dense instance stacks (oracles: arrays written and read with plain NumPy here)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from masklab import FormatError, rle
from masklab.core.instances import Instance
from masklab.core.labels import LabelMap
from masklab.formats import npz
from masklab.formats._base import Sample

LABELS = LabelMap.from_names(["background", "cat", "dog"], background=0)


def masks_with_holes_parts_and_overlap() -> np.ndarray:
    m = np.zeros((3, 9, 11), np.uint8)
    m[0, 1:8, 1:8] = 1
    m[0, 3:5, 3:5] = 0  # a hole
    m[1, 0:2, 9:11] = 1
    m[1, 7:9, 0:3] = 1  # a second part
    m[2, 4:9, 4:11] = 1  # overlaps mask 0
    return m


def test_writer_round_trips_every_instance_field_exactly(tmp_path):
    masks = masks_with_holes_parts_and_overlap()
    image = tmp_path / "a.png"
    Image.new("RGB", (11, 9)).save(image)
    insts = (
        Instance(rle.encode(masks[0]), 1, id=7, score=0.25, attributes={"occluded": True}),
        Instance(rle.encode(masks[1]), 2, iscrowd=True),
        Instance(rle.encode(masks[2]), 1, id=9, score=0.5),
    )
    with npz.Writer(tmp_path / "out", labels=LABELS) as writer:
        writer.write(Sample("a", (9, 11), image=image, instances=insts))
        writer.write(Sample("nested/b", (4, 6)))
    assert writer.report.exact == 3
    assert writer.report.losses == []
    reader = npz.Reader(tmp_path / "out")
    samples = {s.id: s for s in reader}
    assert reader.report.problems == []
    assert reader.labels == LABELS
    assert samples["a"].instances == insts
    assert samples["a"].image is not None
    assert samples["a"].image.read_bytes() == image.read_bytes()
    assert samples["nested/b"].size == (4, 6)
    assert samples["nested/b"].instances == ()


def test_written_file_is_plain_numpy(tmp_path):
    masks = masks_with_holes_parts_and_overlap()
    insts = tuple(Instance(rle.encode(m), 2) for m in masks)
    with npz.Writer(tmp_path / "out", labels=LABELS) as writer:
        writer.write(Sample("a", (9, 11), instances=insts))
    with np.load(tmp_path / "out" / "a.npz", allow_pickle=False) as data:
        np.testing.assert_array_equal(data["masks"], masks.astype(bool))
        assert data["labels"].tolist() == [2, 2, 2]
        assert sorted(data.files) == ["labels", "masks"]


def test_reads_a_file_written_with_numpy(tmp_path):
    masks = masks_with_holes_parts_and_overlap() * np.uint8(255)  # nonzero is foreground
    np.savez(tmp_path / "x.npz", masks=masks, labels=np.array([3, 1, 3], np.int32))
    reader = npz.Reader(tmp_path)
    [sample] = list(reader)
    assert sample.size == (9, 11)
    assert [i.class_id for i in sample.instances] == [3, 1, 3]
    for inst, m in zip(sample.instances, masks, strict=True):
        np.testing.assert_array_equal(rle.decode(inst.mask), m > 0)
    assert reader.labels.ids == [1, 3]


def test_corrupt_file_in_the_middle_is_reported_and_the_rest_read(tmp_path):
    for name in ("a", "c"):
        np.savez(tmp_path / f"{name}.npz", masks=np.ones((1, 2, 2), bool), labels=np.array([1]))
    good = (tmp_path / "a.npz").read_bytes()
    (tmp_path / "b.npz").write_bytes(good[: len(good) // 2])
    reader = npz.Reader(tmp_path)
    assert [s.id for s in reader] == ["a", "c"]
    [problem] = reader.report.problems
    assert problem.path == str(tmp_path / "b.npz")
    assert problem.record == "b"


def test_strict_mode_raises_naming_the_file(tmp_path):
    np.savez(tmp_path / "a.npz", masks=np.ones((2, 2, 2), bool), labels=np.array([1]))
    with pytest.raises(FormatError, match=r"a\.npz: record a: 'labels' must have shape \(2,\)"):
        list(npz.Reader(tmp_path, strict=True))


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"masks": np.ones((2, 2), bool), "labels": np.array([1])}, r"\(N, H, W\)"),
        ({"masks": np.ones((1, 2, 2), bool)}, r"no 'labels' array"),
        ({"labels": np.array([1])}, r"no 'masks' array"),
        ({"masks": np.ones((1, 2, 2), np.float32), "labels": np.array([1])}, r"bool or integer"),
        (
            {"masks": np.ones((1, 2, 2), bool), "labels": [1], "scores": [0.1, 0.2]},
            r"'scores' must have shape \(1,\)",
        ),
    ],
)
def test_malformed_arrays_are_reported(tmp_path, arrays, message):
    np.savez(tmp_path / "a.npz", **arrays)
    reader = npz.Reader(tmp_path)
    assert list(reader) == []
    [problem] = reader.report.problems
    assert problem.record == "a"
    assert re.search(message, problem.message)


def test_semantic_samples_are_split_into_instances(tmp_path):
    semantic = np.array([[0, 1, 1], [0, 0, 2], [1, 0, 2]], np.uint8)
    with npz.Writer(tmp_path / "out", labels=LABELS) as writer:
        writer.write(Sample("s", (3, 3), semantic=semantic))
    [sample] = list(npz.Reader(tmp_path / "out"))
    pixels = {(i.class_id, rle.area(i.mask)) for i in sample.instances}
    assert pixels == {(1, 2), (1, 1), (2, 2)}


def test_detect_knows_npz_folders_and_not_others(tmp_path, shared_data):
    np.savez(tmp_path / "a.npz", masks=np.ones((1, 2, 2), bool), labels=np.array([1]))
    assert npz.detect(tmp_path).confidence == 3
    assert (
        npz.detect(Path(shared_data("datumaro", "tests", "assets", "voc_dataset"))).confidence == 0
    )
    np.savez(tmp_path / "other.npz", x=np.ones(3))
    assert npz.detect(tmp_path / "other.npz").confidence == 0
