"""The Ray Data engine shards the split sa1b reader and labelme writer and writes what the
local engine writes (oracle: ``formats.convert`` on the same input, files compared byte
for byte, reports whole)."""

from __future__ import annotations

import json

import pytest
from tests.files import tree
from tests.formats import synthetic
from tests.formats.test_parallel_formats_b import _sa1b
from tests.ray_engine.common import both as _both

from masklab import formats

ray = pytest.importorskip("ray.data")


@pytest.fixture(autouse=True)
def _cluster(ray_cluster):
    """Every test here runs on the package's local Ray cluster (conftest)."""


def test_sa1b_on_ray_reads_as_the_local_engine_with_its_bad_records(tmp_path):
    local, on_ray = _both(_sa1b(tmp_path), tmp_path, "voc")
    assert tree(tmp_path / "ray") == tree(tmp_path / "local")
    assert on_ray.to_dict() == local.to_dict()
    assert [p.record for p in on_ray.problems] == ["img_005", "annotation 2", "annotation 3"]
    assert on_ray.samples == 23


def test_labelme_on_ray_writes_the_local_engines_bytes_and_report(tmp_path):
    data = synthetic.samples(tmp_path / "images", 12)
    with formats.get("coco").Writer(tmp_path / "coco", labels=synthetic.LABELS) as w:
        for s in data:
            w.write(s)
    ann = next((tmp_path / "coco").glob("annotations/*.json"))
    doc = json.loads(ann.read_text())
    doc["annotations"][-1]["segmentation"] = [[0, 0, 1, 1]]  # 2 points, in the last block
    ann.write_text(json.dumps(doc))
    local, on_ray = _both(tmp_path / "coco", tmp_path, "labelme")
    assert tree(tmp_path / "ray") == tree(tmp_path / "local")
    assert on_ray.to_dict() == local.to_dict()
    assert on_ray.samples == 12
    assert len(on_ray.problems) == 1
    assert on_ray.loss_counts().get("holes", 0) > 0  # the rings' holes, as locally
