"""masklab.tf: the tf.data pipeline gives the targets masklab's reader and targets give.

Oracles: the real TFRecord file of vijendra1125/Custom-Mask-RCNN (JPEG images, PNG masks,
label.pbtxt) and files masklab's writer wrote (PNG and numerical masks, crowd, overlaps, a
gap in the class ids), each read by masklab's pure-Python ``tfrecord`` reader and turned
into targets by ``training.targets``; images by OpenCV (``load_image``).
"""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from masklab.core import rle
from masklab.core.instances import Instance
from masklab.core.labels import Label, LabelMap
from masklab.formats import Sample, tfrecord
from masklab.training.targets import TrainIds, class_map, instance_targets, load_image

REAL = ("vijendra1125-custom-mask-rcnn-tfrecord", "dataset", "train_data-00000-of-00001")
LABELS = LabelMap(
    (
        Label(1, ("cat",), (1, 1, 1)),
        Label(3, ("dog",), (3, 3, 3)),  # a gap: train ids background 0, cat 1, dog 2
    )
)


def expected(reader: tfrecord.Reader, labels: LabelMap):
    tid = TrainIds.from_label_map(labels)
    for sample in reader:
        yield (
            load_image(sample),
            instance_targets(sample, labels, train_ids=tid),
            class_map(sample, labels, train_ids=tid),
        )


@pytest.fixture(scope="module")
def tf():
    return pytest.importorskip("tensorflow")


def assert_same(tf, path, labels: LabelMap | None = None, **options) -> int:
    import masklab.tf

    reader = tfrecord.Reader(path, labels=labels)
    lm = reader.labels
    want = list(expected(reader, lm))
    got_inst = list(masklab.tf.dataset(path, task="instance", label_map=labels, **options))
    got_sem = list(masklab.tf.dataset(path, task="semantic", label_map=labels, **options))
    assert len(want) == len(got_inst) == len(got_sem) > 0
    for (image, inst, sem), (img_i, t), (img_s, cm) in zip(want, got_inst, got_sem, strict=True):
        np.testing.assert_array_equal(img_i.numpy(), image)
        np.testing.assert_array_equal(img_s.numpy(), image)
        for key in ("boxes", "labels", "masks", "area", "iscrowd"):
            assert t[key].dtype.as_numpy_dtype == inst[key].dtype, key
            np.testing.assert_array_equal(t[key].numpy(), inst[key], err_msg=key)
        assert cm.dtype == tf.int64
        np.testing.assert_array_equal(cm.numpy(), sem)
    return len(want)


def test_real_records_decode_to_the_readers_targets(tf, shared_data):
    n = assert_same(tf, shared_data(*REAL))
    assert n == 32


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def samples() -> list[Sample]:
    rng = np.random.default_rng(7)
    out = []
    for k in range(3):
        h, w = 10, 12 + k
        a = np.zeros((h, w), np.uint8)
        a[2:7, 1:6] = 1
        b = np.zeros((h, w), np.uint8)
        b[4:9, 4:10] = 1  # overlaps a: later wins in the class map
        b[6, 7] = 0  # a hole
        crowd = np.zeros((h, w), np.uint8)
        crowd[0:2, :] = 1
        instances = (
            Instance(rle.encode(a), 3),
            Instance(rle.encode(b), 1),
            Instance(rle.encode(crowd), 1, iscrowd=True),
        )[: 3 - k % 2]
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        out.append(Sample(f"s{k}", (h, w), instances=instances, image_bytes=png(image)))
    return out


@pytest.mark.parametrize("mask_type", ["png", "numerical"])
def test_masklab_written_records_decode_to_the_readers_targets(tf, tmp_path, mask_type):
    folder = tmp_path / "records"
    with tfrecord.Writer(folder, labels=LABELS, mask_type=mask_type) as writer:
        for s in samples():
            writer.write(s)
    assert assert_same(tf, folder) == 3
    only_dogs = LabelMap((LABELS.by_id(3),))  # cats unknown: left out, as the reader does
    assert assert_same(tf, folder, labels=only_dogs, mask_type=mask_type) == 3


def test_import_without_tensorflow_says_what_to_install():
    code = "import sys; sys.modules['tensorflow'] = None; import masklab.tf"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode != 0
    assert "ImportError" in out.stderr
    assert "masklab[tf]" in out.stderr
