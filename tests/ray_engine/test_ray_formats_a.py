"""The Ray Data engine on split png-masks and Cityscapes readers and writers writes what the
local engine writes and reports what it reports (the oracle: ``formats.convert`` on the
same input, files compared byte for byte, reports whole)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.files import tree
from tests.formats import synthetic
from tests.ray_engine.common import both

from masklab import formats
from masklab.core.labels import Label, LabelMap, voc_color
from masklab.formats import png_masks

ray = pytest.importorskip("ray.data")

N = 12
LABELS = LabelMap(
    (
        Label(0, ("background",), (0, 0, 0), isthing=False, role="background"),
        Label(1, ("car",), voc_color(1)),
        Label(2, ("person",), voc_color(2)),
        Label(3, ("road",), voc_color(3), isthing=False),
    )
)


@pytest.fixture(autouse=True)
def _cluster(ray_cluster):
    """Every test here runs on the session's local Ray cluster (conftest)."""


def _both(src: Path, tmp_path: Path, to: str, **kw):
    local, on_ray = both(src, tmp_path, to, **kw)
    assert tree(tmp_path / "ray") == tree(tmp_path / "local")
    assert on_ray.to_dict() == local.to_dict()
    return local


def test_png_masks_reader_on_ray_with_a_bad_mask(tmp_path):
    data = synthetic.samples(tmp_path / "images", N)
    with png_masks.Writer(tmp_path / "src", labels=LABELS) as w:
        for s in data:
            w.write(s)
    bad = tmp_path / "src" / "masks" / "img_007.png"
    bad.unlink()
    Image.fromarray(np.zeros((40, 64), np.uint8)).save(bad)
    local = _both(tmp_path / "src", tmp_path, "voc")
    assert [p.record for p in local.problems] == ["img_007"]
    assert local.samples == N - 1


def test_cityscapes_writer_on_ray(tmp_path):
    data = synthetic.samples(tmp_path / "images", N)
    with formats.get("coco").Writer(tmp_path / "coco", labels=LABELS) as w:
        for s in data:
            w.write(s)
    local = _both(tmp_path / "coco", tmp_path, "cityscapes")
    assert local.samples == N
    assert local.losses  # road objects painted as class pixels, overlaps
