"""formats.convert with the writer in a second process: same output, same errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from tests.formats import synthetic

from masklab import formats
from masklab.errors import FormatError


def _coco(tmp_path, n=40):
    data = synthetic.samples(tmp_path / "images", n)
    with formats.get("coco").Writer(tmp_path / "coco", labels=synthetic.LABELS) as w:
        for s in data:
            w.write(s)
    return tmp_path / "coco"


def test_two_processes_write_what_one_does(tmp_path):
    src = _coco(tmp_path)
    one = formats.convert(src, tmp_path / "one", to="voc")
    two = formats.convert(src, tmp_path / "two", to="voc", workers=2)
    assert (two.samples, two.instances, two.exact) == (one.samples, one.instances, one.exact)
    assert two.loss_counts() == one.loss_counts()
    pngs = sorted((tmp_path / "one" / "SegmentationClass").glob("*.png"))
    assert len(pngs) == 40
    for p in pngs:
        theirs = tmp_path / "two" / "SegmentationClass" / p.name
        np.testing.assert_array_equal(np.asarray(Image.open(p)), np.asarray(Image.open(theirs)))


def test_strict_reader_error_aborts_the_writer_and_leaves_nothing(tmp_path):
    src = _coco(tmp_path, 20)
    ann_file = next(src.glob("annotations/*.json"))
    data = json.loads(ann_file.read_text())
    data["annotations"][-1]["segmentation"] = [[0, 0, 1, 1]]  # a 2-point polygon, last image
    ann_file.write_text(json.dumps(data))
    with pytest.raises(FormatError, match="point"):
        formats.convert(src, tmp_path / "out", to="voc", strict=True, workers=2)
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_writer_errors_reach_the_caller(tmp_path):
    src = _coco(tmp_path, 3)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    with pytest.raises(FormatError, match="already exists"):
        formats.convert(src, tmp_path / "taken", to="voc", workers=2)
