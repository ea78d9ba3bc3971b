"""Sample rows as Arrow, and the batch functions, against pycocotools and hand counts.

No cluster is needed: a batch is an Arrow table, as ``map_batches`` hands it over.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as cocomask
from tests.formats import synthetic

from masklab import rle
from masklab.core.instances import Instance
from masklab.core.labels import LabelMap
from masklab.formats import Sample

pytest.importorskip("ray.data")
from masklab.ray import arrow, batches


def _coco_masks(arrays):
    return [cocomask.encode(np.asfortranarray(a.astype(np.uint8))) for a in arrays]


@pytest.fixture
def rows(tmp_path):
    return synthetic.samples(tmp_path / "images", 4)


def test_arrow_rows_give_back_equal_samples(rows):
    odd = Sample(
        "dir/odd",
        (3, 4),
        instances=(
            Instance(
                rle.encode(np.eye(3, 4)),
                7,
                id=12,
                score=0.25,
                polygons=((0.5, 0.5, 2.5, 0.5, 2.5, 2.0),),
                attributes={"occluded": True, "tags": ("a", "b")},  # a tuple: pickled
            ),
        ),
        semantic=np.arange(12, dtype=np.uint16).reshape(3, 4),
        alpha=np.full((3, 4), 9, np.uint8),
        image_bytes=b"\x89PNG",
        meta={"path": Path("x/y"), "n": 3},
        labeled=False,
        subset="val",
    )
    plain = Sample("plain", (2, 2), meta={"image_id": 5})
    table = arrow.to_table([*rows, odd, plain])
    back = arrow.to_samples(table)
    assert table.schema == arrow.schema()
    assert len(back) == len(rows) + 2
    for got, want in zip(back, [*rows, odd, plain], strict=True):
        assert (got.id, got.size, got.image, got.subset, got.labeled) == (
            want.id,
            want.size,
            want.image,
            want.subset,
            want.labeled,
        )
        assert got.instances == want.instances
        assert dict(got.meta) == dict(want.meta)
        assert got.image_bytes == want.image_bytes
    assert back[-2].semantic.dtype == np.uint16
    np.testing.assert_array_equal(back[-2].semantic, odd.semantic)
    np.testing.assert_array_equal(back[-2].alpha, odd.alpha)
    assert back[-2].instances[0].attributes["tags"] == ("a", "b")
    assert back[-2].meta["path"] == Path("x/y")


def test_mask_column_holds_pycocotools_compressed_strings(rows):
    table = arrow.to_table(rows)
    strings = [s for row in table.column("rle").to_pylist() for s in row]
    masks = [rle.decode(i.mask) for s in rows for i in s.instances]
    assert strings == [m["counts"].decode("ascii") for m in _coco_masks(masks)]


def test_decode_matches_pycocotools(rows):
    out = batches.decode(arrow.to_table(rows))
    assert list(out["id"]) == [s.id for s in rows]
    for stack, s in zip(out["masks"], rows, strict=True):
        theirs = cocomask.decode(_coco_masks([rle.decode(i.mask) for i in s.instances]))
        np.testing.assert_array_equal(stack, np.moveaxis(theirs, -1, 0))


def test_decode_of_a_row_without_instances_is_an_empty_stack():
    out = batches.decode(arrow.to_table([Sample("e", (3, 5))]))
    assert out["masks"][0].shape == (0, 3, 5)


def test_encode_inverts_decode(rows):
    table = arrow.to_table(rows)
    out = batches.encode(batches.decode(table))
    assert list(out["rle"]) == table.column("rle").to_pylist()
    assert [list(a) for a in out["area"]] == [[i.area for i in s.instances] for s in rows]


def test_rasterise_matches_pycocotools_polygons():
    rings = ((1.0, 1.0, 9.5, 1.0, 9.5, 6.0, 1.0, 6.0), (12.0, 2.0, 15.0, 7.0, 11.0, 7.0))
    wide = np.zeros((10, 16), np.uint8)
    wide[0, :] = 1  # no polygons: kept as it is
    table = arrow.to_table(
        [
            Sample(
                "p",
                (10, 16),
                instances=(
                    # an empty mask on purpose: the polygons decide
                    Instance(rle.encode(np.zeros((10, 16))), 1, polygons=rings),
                    Instance(rle.encode(wide), 2),
                ),
            )
        ]
    )
    out = batches.rasterise(table)
    theirs = cocomask.merge(cocomask.frPyObjects([list(r) for r in rings], 10, 16))
    assert out["rle"][0][0] == theirs["counts"].decode("ascii")
    assert out["rle"][0][1] == _coco_masks([wide])[0]["counts"].decode("ascii")
    assert list(out["area"][0]) == [int(cocomask.area(theirs)), 16]
    np.testing.assert_allclose(out["bbox"][0][0], cocomask.toBbox(theirs))
    np.testing.assert_allclose(out["bbox"][0][1], [0, 0, 16, 1])


def _with_predictions(gt, preds, scores=None):
    import pyarrow as pa

    table = arrow.to_table([gt])
    strings = [d["counts"] for d in rle.to_coco_batch(preds)]
    extra = {
        "pred_rle": pa.array([strings], pa.list_(pa.string())),
        "pred_mask_h": pa.array([[p.size[0] for p in preds]], pa.list_(pa.int64())),
        "pred_mask_w": pa.array([[p.size[1] for p in preds]], pa.list_(pa.int64())),
    }
    if scores is not None:
        extra["pred_score"] = pa.array([scores], pa.list_(pa.float64()))
    for name, col in extra.items():
        table = table.append_column(name, col)
    return table


def _mask(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def test_iou_matches_pycocotools_with_crowd_rule():
    g = [_mask(8, 8, 0, 4, 0, 4), _mask(8, 8, 2, 8, 2, 8)]
    d = [_mask(8, 8, 0, 4, 0, 2), _mask(8, 8, 4, 8, 4, 8), _mask(8, 8, 0, 0, 0, 0)]
    gt = Sample(
        "s",
        (8, 8),
        instances=(Instance(rle.encode(g[0]), 1), Instance(rle.encode(g[1]), 1, iscrowd=True)),
    )
    out = batches.iou(_with_predictions(gt, [rle.encode(m) for m in d]))
    theirs = cocomask.iou(_coco_masks(d), _coco_masks(g), [0, 1])
    np.testing.assert_allclose(out["iou"][0], theirs)


def test_sample_metrics_count_matches_by_hand():
    # gt: A (rows 0-3, cols 0-3, 16 px), B (rows 4-7, cols 4-7, 16 px), crowd C (cols 0-1
    # of rows 4-7). preds by score: p1 = A exactly (tp, IoU 1), p2 = half of B (IoU 0.5,
    # tp at 0.5), p3 = inside the crowd (ignored), p4 = empty corner (fp).
    h = w = 8
    a, b, c = _mask(h, w, 0, 4, 0, 4), _mask(h, w, 4, 8, 4, 8), _mask(h, w, 4, 8, 0, 2)
    gt = Sample(
        "s",
        (h, w),
        instances=(
            Instance(rle.encode(a), 1),
            Instance(rle.encode(b), 1),
            Instance(rle.encode(c), 1, iscrowd=True),
        ),
    )
    preds = [a, _mask(h, w, 4, 8, 4, 6), _mask(h, w, 5, 7, 0, 2), _mask(h, w, 0, 2, 6, 8)]
    table = _with_predictions(gt, [rle.encode(p) for p in preds], [0.9, 0.8, 0.7, 0.6])
    out = batches.sample_metrics(table, threshold=0.5)
    assert (out["tp"][0], out["fp"][0], out["fn"][0]) == (2, 1, 0)
    assert out["precision"][0] == pytest.approx(2 / 3)
    assert out["recall"][0] == 1.0
    assert out["mean_iou"][0] == pytest.approx((1.0 + 0.5) / 2)
    strict = batches.sample_metrics(table, threshold=0.75)
    assert (strict["tp"][0], strict["fp"][0], strict["fn"][0]) == (1, 2, 1)


def test_class_maps_paint_train_ids_in_order(rows):
    lm = LabelMap.from_names(["background", "cell", "leaf", "stone"], background=0)
    out = batches.class_maps(arrow.to_table(rows), labels=lm)
    for got, s in zip(out["class_map"], rows, strict=True):
        want = np.zeros(s.size, np.int64)  # brute force: paint in order, crowd -> 255
        for inst in s.instances:
            want[rle.decode(inst.mask).astype(bool)] = 255 if inst.iscrowd else inst.class_id
        np.testing.assert_array_equal(got, want)


def test_without_ray_the_error_names_the_extra(monkeypatch):
    from masklab.ray import _deps

    monkeypatch.setitem(__import__("sys").modules, "ray.data", None)
    with pytest.raises(ImportError, match=r'pip install "masklab\[ray\]"'):
        _deps.require()


def test_importing_masklab_ray_does_not_start_or_import_ray():
    import subprocess
    import sys

    code = "import sys, masklab.ray; print('ray' in sys.modules, 'pyarrow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
