"""Round trips between formats through `formats.convert`: pixel-exact unless reported.

Datasets are drawn by Hypothesis: instances with holes, several parts, overlaps and crowd
regions on small frames. Each is written as COCO, converted to every writable format and
read back; every pixel must keep its class name, unless the conversion report names a loss
for that sample (what the target cannot hold is reported, never silently changed).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.formats import synthetic

from masklab import formats, rle
from masklab.core.instances import Instance
from masklab.formats import Sample
from masklab.testing import strategies

TARGETS = [n for n in formats.available() if formats.get(n).SPEC.can_write and n != "coco"]


@st.composite
def datasets(draw, max_images: int = 2):
    shape = (draw(st.integers(8, 24)), draw(st.integers(8, 24)))
    samples = []
    for i in range(draw(st.integers(1, max_images))):
        masks = draw(
            st.lists(
                strategies.binary_masks(shape=shape, kinds=("blobs", "rings", "sparse")),
                min_size=1,
                max_size=4,
            )
        )
        instances = []
        for m in masks:
            if not m.any():
                continue
            instances.append(
                Instance(
                    rle.encode(m),
                    draw(st.integers(1, 3)),
                    iscrowd=draw(st.booleans()) and draw(st.booleans()),
                )
            )
        samples.append(Sample(id=f"img_{i:03d}", size=shape, instances=tuple(instances)))
    return samples


def _with_images(samples, folder):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for s in samples:
        path = folder / f"{s.id}.png"
        Image.fromarray(np.zeros((*s.size, 3), np.uint8)).save(path)
        out.append(Sample(id=s.id, size=s.size, image=path, instances=s.instances))
    return out


@pytest.mark.skipif("coco" not in formats.available(), reason="needs the coco format")
@pytest.mark.parametrize("target", TARGETS)
@settings(max_examples=8, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=datasets())
def test_coco_to_any_keeps_every_pixel_or_reports(target, data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rt")
    samples = _with_images(data, tmp / "images")
    with formats.get("coco").Writer(tmp / "coco", labels=synthetic.LABELS) as w:
        for s in samples:
            w.write(s)
    report = formats.convert(tmp / "coco", tmp / "out", to=target, source_format="coco")
    assert not report.problems, report.problems
    lossy = {loss.sample for loss in report.losses}
    reader = formats.get(target).Reader(tmp / "out")
    back = {s.id: s for s in reader}
    assert not reader.report.problems, reader.report.problems
    assert len(back) == len(samples)
    for orig in samples:
        if orig.id in lossy:
            continue
        got = back.get(orig.id) or next(s for s in back.values() if s.id.endswith(orig.id))
        np.testing.assert_array_equal(
            synthetic.painted_names(got, reader.labels),
            synthetic.painted_names(orig, synthetic.LABELS),
            err_msg=f"coco -> {target}: {orig.id}",
        )
    shutil.rmtree(tmp)
