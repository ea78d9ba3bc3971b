"""labelme: JSON shapes (oracles: labelme's shape_to_mask, re-typed here as a full-image
PIL ImageDraw call, and the real labelme file in ../shared/data)."""

from __future__ import annotations

import base64
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from masklab import FormatError, rle
from masklab.core.instances import Instance
from masklab.core.labels import LabelMap
from masklab.formats import labelme
from masklab.formats._base import Sample

UNET = ("bubbliiiing-unet-pytorch", "datasets", "before")


def shape_to_mask(size: tuple[int, int], points, shape_type: str) -> np.ndarray:
    """labelme.utils.shape_to_mask for the area shapes: a full-image PIL drawing."""
    h, w = size
    im = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(im)
    xy = [tuple(p) for p in points]
    if shape_type == "circle":
        (cx, cy), (px, py) = xy
        d = math.sqrt((cx - px) ** 2 + (cy - py) ** 2)
        draw.ellipse([cx - d, cy - d, cx + d, cy + d], outline=1, fill=1)
    elif shape_type == "rectangle":
        (ax, ay), (bx, by) = xy
        draw.rectangle([min(ax, bx), min(ay, by), max(ax, bx), max(ay, by)], outline=1, fill=1)
    else:
        draw.polygon(xy=xy, outline=1, fill=1)
    return np.asarray(im, dtype=bool)


def png_b64(array: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(array.astype(np.uint8)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def shape(label, points, shape_type="polygon", group_id=None, **extra):
    return {
        "label": label,
        "points": points,
        "group_id": group_id,
        "shape_type": shape_type,
        "flags": {},
        **extra,
    }


def write_json(path: Path, shapes: list[dict], h: int = 30, w: int = 40, **extra) -> Path:
    doc = {
        "version": "5.5.0",
        "flags": {},
        "shapes": shapes,
        "imagePath": None,
        "imageData": None,
        "imageHeight": h,
        "imageWidth": w,
        **extra,
    }
    path.write_text(json.dumps(doc))
    return path


# --------------------------------------------------------------------------- real files


def test_real_labelme_file_rasterises_like_labelme(shared_data):
    folder = shared_data(*UNET)
    doc = json.loads((folder / "1.json").read_text())
    reader = labelme.Reader(folder)
    [sample] = list(reader)
    assert reader.report.problems == []
    assert sample.size == (doc["imageHeight"], doc["imageWidth"])
    assert sample.image == folder / "1.jpg"
    assert len(sample.instances) == len(doc["shapes"]) == 1
    [inst] = sample.instances
    assert reader.labels.by_id(inst.class_id).name == doc["shapes"][0]["label"] == "cat"
    expected = shape_to_mask(sample.size, doc["shapes"][0]["points"], "polygon")
    np.testing.assert_array_equal(rle.decode(inst.mask), expected)


def test_detect_knows_the_real_file_and_not_mit_labelme_xml(shared_data):
    assert labelme.detect(shared_data(*UNET)).confidence == 3
    assert labelme.detect(shared_data(*UNET, "1.json")).confidence == 3
    # Datumaro's "labelme_dataset" is MIT LabelMe XML, a different format
    xml = shared_data("datumaro", "tests", "assets", "labelme_dataset")
    assert labelme.detect(xml).confidence == 0
    sam = shared_data("datumaro", "tests", "assets", "segment_anything_dataset")
    assert labelme.detect(sam).confidence == 0


# --------------------------------------------------------------------------- shapes


def test_every_area_shape_matches_labelmes_drawing(tmp_path):
    box = np.zeros((4, 6), np.uint8)
    box[1:3, 1:5] = 1
    box[2, 2] = 0
    shapes = [
        shape("a", [[3.2, 2.7], [30.5, 4.1], [18.9, 20.2], [5.5, 14.5]]),
        shape("b", [[35.0, 25.0], [20.0, 12.0]], "rectangle"),  # corners in reverse order
        shape("c", [[10.0, 10.0], [14.5, 13.0]], "circle"),
        shape("d", [[30, 2], [35, 5]], "mask", mask=png_b64(box)),
    ]
    path = write_json(tmp_path / "x.json", shapes)
    [sample] = list(labelme.Reader(path))
    assert [i.class_id for i in sample.instances] == [1, 2, 3, 4]
    for inst, s in zip(sample.instances[:3], shapes[:3], strict=True):
        expected = shape_to_mask((30, 40), s["points"], s["shape_type"])
        np.testing.assert_array_equal(rle.decode(inst.mask), expected)
    expected_mask = np.zeros((30, 40), np.uint8)
    expected_mask[2:6, 30:36] = box
    np.testing.assert_array_equal(rle.decode(sample.instances[3].mask), expected_mask)


def test_shapes_drawn_in_a_box_equal_full_image_drawings():
    """The reader draws on one canvas and reads back only each shape's box."""
    rng = np.random.default_rng(3)
    for t in range(300):
        h, w = (int(v) for v in rng.integers(5, 50, 2))
        kind = ("polygon", "rectangle", "circle")[t % 3]
        n = int(rng.integers(3, 9)) if kind == "polygon" else 2
        pts = rng.uniform(-8, max(h, w) + 8, (n, 2))
        if t % 2:
            pts = np.round(pts * 2) / 2  # pixel centres and edges exactly
        [ours] = labelme.shapes_to_masks([(kind, pts.tolist(), None)], (h, w))
        np.testing.assert_array_equal(
            rle.decode(ours), shape_to_mask((h, w), pts.tolist(), kind), err_msg=f"{kind} {pts}"
        )


def test_shapes_with_one_group_id_and_label_are_one_instance(tmp_path):
    shapes = [
        shape("cat", [[1, 1], [5, 1], [5, 5]], group_id=3),
        shape("cat", [[20, 20], [25, 20], [25, 25]], group_id=3),
        shape("dog", [[1, 20], [5, 20], [5, 25]], group_id=3),  # same group, other label
        shape("cat", [[30, 1], [35, 1], [35, 5]]),  # no group: its own instance
        shape("cat", [[30, 10], [35, 10], [35, 15]]),
    ]
    [sample] = list(labelme.Reader(write_json(tmp_path / "x.json", shapes)))
    assert len(sample.instances) == 4
    first = sample.instances[0]
    union = shape_to_mask((30, 40), shapes[0]["points"], "polygon") | shape_to_mask(
        (30, 40), shapes[1]["points"], "polygon"
    )
    np.testing.assert_array_equal(rle.decode(first.mask), union)
    assert first.attributes == {"group_id": 3}


def test_points_and_lines_are_reported_as_not_masks(tmp_path):
    shapes = [
        shape("a", [[1, 1], [5, 1], [5, 5]]),
        shape("p", [[3, 3]], "point"),
        shape("l", [[3, 3], [9, 9]], "line"),
        shape("s", [[3, 3], [9, 9], [12, 3]], "linestrip"),
    ]
    reader = labelme.Reader(write_json(tmp_path / "x.json", shapes))
    [sample] = list(reader)
    assert len(sample.instances) == 1
    assert [p.record for p in reader.report.problems] == ["x#shape1", "x#shape2", "x#shape3"]
    assert all("is not a mask" in p.message for p in reader.report.problems)


def test_bad_shape_and_corrupt_file_are_reported_and_the_rest_read(tmp_path):
    write_json(tmp_path / "a.json", [shape("a", [[1, 1], [5, 1]])])  # 2 points
    (tmp_path / "b.json").write_text('{"shapes": [')
    write_json(tmp_path / "c.json", [shape("a", [[1, 1], [5, 1], [5, 5]])])
    reader = labelme.Reader(tmp_path)
    samples = list(reader)
    assert [(s.id, len(s.instances)) for s in samples] == [("a", 0), ("c", 1)]
    problems = [(Path(p.path).name, p.record) for p in reader.report.problems]
    assert problems == [("a.json", "a#shape0"), ("b.json", "b")]
    assert "more than 2 points" in reader.report.problems[0].message


def test_strict_mode_raises_naming_file_and_shape(tmp_path):
    write_json(tmp_path / "a.json", [shape("a", [[1, 1], [5, 1]])])
    with pytest.raises(FormatError, match=r"a\.json: record a#shape0: .*more than 2 points"):
        list(labelme.Reader(tmp_path, strict=True))


def test_size_and_image_come_from_image_data_when_there_is_no_file(tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (7, 5)).save(buf, format="PNG")
    doc = {
        "shapes": [shape("a", [[1, 1], [4, 1], [4, 3]])],
        "imagePath": "gone.png",
        "imageData": base64.b64encode(buf.getvalue()).decode(),
    }
    (tmp_path / "x.json").write_text(json.dumps(doc))
    [sample] = list(labelme.Reader(tmp_path))
    assert sample.size == (5, 7)
    assert sample.image is None
    assert sample.image_bytes == buf.getvalue()


def test_image_size_wins_over_a_wrong_header_and_is_reported(tmp_path):
    Image.new("RGB", (12, 9)).save(tmp_path / "x.png")
    write_json(tmp_path / "x.json", [], h=30, w=40, imagePath="x.png")
    reader = labelme.Reader(tmp_path)
    [sample] = list(reader)
    assert sample.size == (9, 12)
    assert "but the image is 9x12" in reader.report.problems[0].message


def test_exif_quarter_turn_swaps_the_size_as_labelme_does(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 12 wide, 9 high; shown 9 wide, 12 high
    Image.new("RGB", (12, 9)).save(tmp_path / "x.jpg", exif=exif)
    write_json(tmp_path / "x.json", [], h=12, w=9, imagePath="x.jpg")
    reader = labelme.Reader(tmp_path)
    [sample] = list(reader)
    assert sample.size == (12, 9)
    assert reader.report.problems == []


def test_labels_txt_gives_labelme2voc_ids(tmp_path):
    (tmp_path / "labels.txt").write_text("__ignore__\n_background_\ndog\ncat\n")
    write_json(tmp_path / "x.json", [shape("cat", [[1, 1], [5, 1], [5, 5]])])
    reader = labelme.Reader(tmp_path)
    assert reader.labels.ids == [-1, 0, 1, 2]
    assert reader.labels.by_id(-1).role == "ignore"
    assert [i.class_id for s in reader for i in s.instances] == [2]


# --------------------------------------------------------------------------- writer


def rect(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def write(tmp_path: Path, masks: list[np.ndarray], **options):
    h, w = masks[0].shape
    image = tmp_path / "img.png"
    Image.new("RGB", (w, h)).save(image)
    labels = LabelMap.from_names(["_background_", "cat"], background=0)
    insts = tuple(Instance(rle.encode(m), 1) for m in masks)
    with labelme.Writer(tmp_path / "out", labels=labels, **options) as writer:
        writer.write(Sample("img", (h, w), image=image, instances=insts))
    return json.loads((tmp_path / "out" / "img.json").read_text()), writer.report


def test_written_polygons_redraw_the_masks_with_imagedraw(tmp_path):
    yy, xx = np.mgrid[0:40, 0:50]
    ellipse = (((yy - 20) / 12.0) ** 2 + ((xx - 24) / 19.0) ** 2 <= 1).astype(np.uint8)
    masks = [rect(40, 50, 2, 3, 2, 3), rect(40, 50, 5, 6, 10, 30), ellipse]
    doc, report = write(tmp_path, masks)
    assert report.losses == []
    assert report.exact == 3
    for entry, m in zip(doc["shapes"], masks, strict=True):
        assert entry["shape_type"] == "polygon"
        np.testing.assert_array_equal(shape_to_mask((40, 50), entry["points"], "polygon"), m)
    [sample] = list(labelme.Reader(tmp_path / "out"))
    assert [rle.decode(i.mask).tolist() for i in sample.instances] == [m.tolist() for m in masks]


def test_writer_traces_random_hole_free_masks_exactly(tmp_path):
    rng = np.random.default_rng(11)
    for t in range(40):
        m = (rng.random((12, 15)) < 0.5).astype(np.uint8)
        rings, holes = labelme.trace(rle.encode(m))
        if holes:
            continue
        drawn = np.zeros_like(m, dtype=bool)
        for ring in rings:
            drawn |= shape_to_mask(m.shape, ring.tolist(), "polygon")
        np.testing.assert_array_equal(drawn, m, err_msg=str(t))


def test_writer_reports_each_hole_with_the_iou_kept(tmp_path):
    ring = rect(20, 20, 2, 12, 2, 12)
    ring[5:8, 5:8] = 0  # 100 px box, 91 px ring
    _, report = write(tmp_path, [rect(20, 20, 14, 18, 14, 18), ring])
    [loss] = report.losses
    assert (loss.instance, loss.what) == (1, "holes")
    assert loss.iou == pytest.approx(91 / 100)
    assert report.exact == 1


def test_parts_become_shapes_of_one_group_and_read_back_as_one(tmp_path):
    two = rect(20, 30, 1, 5, 1, 5) | rect(20, 30, 10, 18, 20, 28)
    doc, report = write(tmp_path, [two])
    assert report.losses == []
    groups = [s["group_id"] for s in doc["shapes"]]
    assert len(groups) == 2
    assert groups[0] == groups[1] is not None
    [sample] = list(labelme.Reader(tmp_path / "out"))
    [inst] = sample.instances
    np.testing.assert_array_equal(rle.decode(inst.mask), two)


def test_mask_shapes_hold_holes_exactly(tmp_path):
    ring = rect(20, 20, 2, 12, 2, 12)
    ring[5:8, 5:8] = 0
    doc, report = write(tmp_path, [ring], shape="mask")
    assert report.losses == []
    assert report.exact == 1
    [entry] = doc["shapes"]
    assert entry["shape_type"] == "mask"
    assert entry["points"] == [[2.0, 2.0], [11.0, 11.0]]
    with Image.open(io.BytesIO(base64.b64decode(entry["mask"]))) as im:
        np.testing.assert_array_equal(np.asarray(im) > 0, ring[2:12, 2:12] > 0)
    [sample] = list(labelme.Reader(tmp_path / "out"))
    np.testing.assert_array_equal(rle.decode(sample.instances[0].mask), ring)


def test_scores_and_crowds_are_reported(tmp_path):
    m = rle.encode(rect(10, 10, 1, 4, 1, 4))
    labels = LabelMap.from_names(["_background_", "cat"], background=0)
    with labelme.Writer(tmp_path / "out", labels=labels) as writer:
        writer.write(
            Sample(
                "x", (10, 10), instances=(Instance(m, 1, score=0.9), Instance(m, 1, iscrowd=True))
            )
        )
    assert [(x.instance, x.what) for x in writer.report.losses] == [(0, "score"), (1, "crowd")]


def test_writer_output_is_detected_and_keeps_class_ids(tmp_path):
    write(tmp_path, [rect(10, 10, 1, 4, 1, 4)], embed_image=True)
    out = tmp_path / "out"
    assert labelme.detect(out).confidence == 3
    assert (out / "labels.txt").read_text().splitlines() == ["__ignore__", "_background_", "cat"]
    doc = json.loads((out / "img.json").read_text())
    assert doc["imagePath"] == "img.png"
    assert base64.b64decode(doc["imageData"]) == (out / "img.png").read_bytes()
    assert labelme.Reader(out).labels.by_name("cat").id == 1
