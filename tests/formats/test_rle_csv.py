"""rle-csv: Kaggle start/length CSVs (oracles: §6's worked example, masks drawn by hand,
dense encoders written here, the real DSB2018 masks)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from masklab import FormatError, MaskFormatError, rle
from masklab.core.instances import Instance
from masklab.core.labels import LabelMap
from masklab.formats import rle_csv
from masklab.formats._base import Sample

DSB = ("lopuhin-dsbowl2018-fixes", "stage1_train")

# §6: a 4x5 mask with rows 1-2 and columns 2-4 set
EXAMPLE = np.zeros((4, 5), np.uint8)
EXAMPLE[1:3, 2:5] = 1


def dense_pairs(mask: np.ndarray, *, order: str = "column", base: int = 1) -> str:
    """Kaggle pairs by walking the flattened pixels (the obvious, slow reference)."""
    flat = (mask.T if order == "column" else mask).reshape(-1).tolist()
    out, start = [], None
    for i, v in enumerate([*flat, 0]):
        if v and start is None:
            start = i
        elif not v and start is not None:
            out += [start + base, i - start]
            start = None
    return " ".join(map(str, out))


def siim_rle2mask(text: str, width: int, height: int) -> np.ndarray:
    """SIIM-ACR's published decoder (relative starts), column-major via reshape(w, h).T."""
    mask = np.zeros(width * height, np.uint8)
    values = [int(x) for x in text.split()]
    position = 0
    for start, length in zip(values[0::2], values[1::2], strict=True):
        position += start
        mask[position : position + length] = 1
        position += length
    return mask.reshape(width, height).T


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


# --------------------------------------------------------------------------- codec


def test_worked_example_column_major():
    r = rle_csv.decode_pairs("10 2 14 2 18 2", (4, 5))
    assert r.counts.tolist() == [9, 2, 2, 2, 2, 2, 1]
    np.testing.assert_array_equal(rle.decode(r), EXAMPLE)


def test_worked_example_row_major():
    r = rle_csv.decode_pairs("8 3 13 3", (4, 5), order="row")
    assert r.counts.tolist() == [9, 2, 2, 2, 2, 2, 1]
    np.testing.assert_array_equal(rle.decode(r), EXAMPLE)


def test_worked_example_encodes_back():
    r = rle.encode(EXAMPLE)
    assert rle_csv.encode_pairs(r) == "10 2 14 2 18 2"
    assert rle_csv.encode_pairs(r, order="row") == "8 3 13 3"
    assert rle_csv.encode_pairs(r, index_base=0) == "9 2 13 2 17 2"


def test_relative_encoding_is_siims():
    r = rle.encode(EXAMPLE)
    text = rle_csv.encode_pairs(r, relative=True)
    assert text == "9 2 2 2 2 2"
    np.testing.assert_array_equal(siim_rle2mask(text, 5, 4), EXAMPLE)
    decoded = rle_csv.decode_pairs(text, (4, 5), index_base=0, relative=True)
    np.testing.assert_array_equal(rle.decode(decoded), EXAMPLE)


def test_touching_runs_merge_and_full_first_pixel_is_kept():
    r = rle_csv.decode_pairs("1 2 3 2", (2, 3))  # pixels 1-4, the second run touches
    assert r.counts.tolist() == [0, 4, 2]


@pytest.mark.parametrize("token", ["", "  ", "-", "-1"])
def test_empty_tokens_are_empty_masks(token):
    assert rle.area(rle_csv.decode_pairs(token, (3, 3))) == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("5 2 3 1", r"pair 1: start 3 overlaps or precedes"),
        ("1 3 3 1", r"pair 1: start 3 overlaps"),
        ("2 0", r"pair 0: length 0 is not positive"),
        ("0 2", r"pair 0: start 0 is below the index base 1"),
        ("19 3", r"runs end at pixel 21 but the image 4x5 has 20 pixels"),
        ("1 2 3", r"odd number of values \(3\)"),
        ("1 2.5", r"'2.5' is not an integer"),
    ],
)
def test_bad_pairs_say_what_is_wrong(text, message):
    with pytest.raises(MaskFormatError, match=message):
        rle_csv.decode_pairs(text, (4, 5))


def test_pairs_match_a_dense_reference_in_both_orders():
    rng = np.random.default_rng(7)
    for _ in range(50):
        h, w = (int(v) for v in rng.integers(1, 12, 2))
        m = (rng.random((h, w)) < 0.4).astype(np.uint8)
        for order in ("column", "row"):
            text = dense_pairs(m, order=order)
            assert rle_csv.encode_pairs(rle.encode(m), order=order) == text
            back = rle_csv.decode_pairs(text, (h, w), order=order)
            np.testing.assert_array_equal(rle.decode(back), m)


# --------------------------------------------------------------------------- reader


def test_reader_groups_rows_by_image_and_keeps_empty_images(tmp_path):
    path = write_csv(
        tmp_path / "train.csv",
        ["ImageId", "EncodedPixels"],
        [["a.jpg", "10 2 14 2 18 2"], ["b.jpg", ""], ["a.jpg", "1 1"], ["c.jpg", "-"]],
    )
    reader = rle_csv.Reader(path, size=(4, 5))
    samples = {s.id: s for s in reader}
    assert sorted(samples) == ["a.jpg", "b.jpg", "c.jpg"]
    assert len(reader) == 3
    assert [rle.area(i.mask) for i in samples["a.jpg"].instances] == [6, 1]
    assert samples["b.jpg"].instances == ()
    assert samples["c.jpg"].instances == ()
    assert reader.report.problems == []


def test_bad_rows_are_reported_by_line_and_the_rest_read(tmp_path):
    path = write_csv(
        tmp_path / "train.csv",
        ["ImageId", "EncodedPixels"],
        [["a", "1 2"], ["a", "7 2 3 1"], ["b", "1 99"], ["b", "2 1"]],
    )
    reader = rle_csv.Reader(path, size=(4, 5))
    samples = {s.id: s for s in reader}
    assert [len(samples[k].instances) for k in ("a", "b")] == [1, 1]
    assert [(p.path, p.record) for p in reader.report.problems] == [(str(path), 3), (str(path), 4)]
    assert "overlaps or precedes" in reader.report.problems[0].message
    assert "has 20 pixels" in reader.report.problems[1].message


def test_strict_mode_raises_naming_file_and_line(tmp_path):
    path = write_csv(tmp_path / "t.csv", ["ImageId", "EncodedPixels"], [["a", "1 2"], ["a", "x"]])
    with pytest.raises(FormatError, match=r"t\.csv: record 3: .*'x' is not an integer"):
        list(rle_csv.Reader(path, size=(4, 5), strict=True))


def test_unknown_size_is_reported(tmp_path):
    path = write_csv(tmp_path / "t.csv", ["ImageId", "EncodedPixels"], [["a", "1 2"]])
    reader = rle_csv.Reader(path)
    assert list(reader) == []
    assert "size of image 'a' unknown" in reader.report.problems[0].message


def test_missing_column_names_the_header(tmp_path):
    path = write_csv(tmp_path / "t.csv", ["Image", "Pixels"], [["a", "1 2"]])
    with pytest.raises(FormatError, match=r"no column 'EncodedPixels' in the header"):
        rle_csv.Reader(path, size=(4, 5))


def test_real_dsb2018_masks_read_through_a_csv(shared_data, tmp_path):
    stage = shared_data(*DSB)
    rows, expected = [], {}
    for folder in sorted(stage.iterdir()):
        masks = [np.asarray(Image.open(p)) > 0 for p in sorted((folder / "masks").glob("*.png"))]
        expected[folder.name] = masks
        rows += [[folder.name, dense_pairs(m.astype(np.uint8))] for m in masks]
    path = write_csv(tmp_path / "stage1_train_labels.csv", ["ImageId", "EncodedPixels"], rows)
    reader = rle_csv.Reader(path, preset="dsb2018", images=stage)
    samples = {s.id: s for s in reader}
    assert reader.report.problems == []
    assert sorted(samples) == sorted(expected)
    assert sum(len(s.instances) for s in samples.values()) == 95
    for key, sample in samples.items():
        assert sample.image is not None
        assert sample.image.name == f"{key}.png"
        for inst, m in zip(sample.instances, expected[key], strict=True):
            np.testing.assert_array_equal(rle.decode(inst.mask), m)


def test_sartorius_rows_are_row_major_with_size_columns(tmp_path):
    m = np.zeros((6, 7), np.uint8)
    m[1:3, 2:6] = 1
    m[4, 0] = 1
    header = ["id", "annotation", "width", "height", "cell_type"]
    path = write_csv(
        tmp_path / "train.csv", header, [["s1", dense_pairs(m, order="row"), "7", "6", "astro"]]
    )
    [sample] = list(rle_csv.Reader(path))  # the header is Sartorius'
    assert sample.size == (6, 7)
    np.testing.assert_array_equal(rle.decode(sample.instances[0].mask), m)


def test_severstal_class_column_gives_class_ids(tmp_path):
    path = write_csv(
        tmp_path / "train.csv",
        ["ImageId", "ClassId", "EncodedPixels"],
        [["x.jpg", "3", "1 5"], ["x.jpg", "1", "20 3"]],
    )
    reader = rle_csv.Reader(path)
    [sample] = list(reader)
    assert [i.class_id for i in sample.instances] == [3, 1]
    assert sample.size == (256, 1600)
    assert reader.labels.ids == [0, 1, 3]


@pytest.mark.parametrize(
    ("header", "preset"),
    [
        (["ImageId", "ClassId", "EncodedPixels"], "severstal"),
        (["id", "annotation", "width", "height"], "sartorius"),
        (["record_id", "encoded_pixels"], "contrails"),
        (["id", "encoding"], "hubmap"),
        (["ImageId", " EncodedPixels"], "siim"),
        (["Name", "Value"], None),
    ],
)
def test_guess_preset_from_the_header(header, preset):
    assert rle_csv.guess_preset(header) == preset


def test_detect_knows_run_length_csvs_and_not_other_csvs(tmp_path, shared_data):
    good = write_csv(tmp_path / "a.csv", ["ImageId", "EncodedPixels"], [["a", "1 2"]])
    assert rle_csv.detect(good).confidence >= 2
    labelmap = shared_data("datumaro", "tests", "assets", "kaggle_dataset")
    assert rle_csv.detect(labelmap / "image_mask_with_labelmap" / "labelmap.csv").confidence == 0
    assert rle_csv.detect(shared_data("datumaro", "tests", "assets", "voc_dataset")).confidence == 0


# --------------------------------------------------------------------------- writer


def sample_masks(size: tuple[int, int]) -> list[np.ndarray]:
    h, w = size
    a = np.zeros(size, np.uint8)
    a[: h // 3, : w // 4] = 1
    a[h // 6, w // 8] = 0  # a hole
    b = np.zeros(size, np.uint8)
    b[h // 2 :, w // 2 :] = 1
    b[-1, 0] = 1  # a second part in the last row
    return [a, b]


@pytest.mark.parametrize("preset", sorted(rle_csv.PRESETS))
def test_every_preset_round_trips_exactly(tmp_path, preset):
    layout = rle_csv.PRESETS[preset]
    size = layout.size or (13, 17)
    masks = sample_masks(size)
    classes = [1, 2] if layout.class_column else [1, 1]
    names = ["background", "shsy5y", "astro"]
    labels = LabelMap.from_names(names, background=0)
    if not layout.class_column:
        labels = LabelMap.from_names(["background", layout.class_name], background=0)
    image = tmp_path / "img.png"
    Image.new("L", (size[1], size[0])).save(image)
    insts = tuple(Instance(rle.encode(m), c) for m, c in zip(masks, classes, strict=True))
    out = tmp_path / "out"
    with rle_csv.Writer(out, labels=labels, preset=preset) as writer:
        writer.write(Sample("img1", size, image=image, instances=insts))
        writer.write(Sample("img2", size, image=image))
    assert writer.report.exact == 2
    assert writer.report.losses == []
    csv_path = out / layout.filename
    for reader in (
        rle_csv.Reader(out),
        rle_csv.Reader(csv_path, preset=preset, images=out / layout.images),
    ):
        samples = {s.id: s for s in reader}
        assert reader.report.problems == []
        assert samples["img2"].instances == ()
        got = samples["img1"].instances
        assert [rle.decode(i.mask).tolist() for i in got] == [m.tolist() for m in masks]
        if layout.class_values == "id":
            assert [i.class_id for i in got] == classes
        else:
            assert [reader.labels.by_id(i.class_id).name for i in got] == ["shsy5y", "astro"]
    empty_row = next(r for r in csv.reader(csv_path.read_text().splitlines()) if r[0] == "img2")
    assert empty_row[1] == layout.empty


def test_written_csv_matches_the_dense_reference(tmp_path):
    """Without a preset the CSV carries class and size: nothing needs the images."""
    masks = sample_masks((9, 11))
    labels = LabelMap.from_names(["background", "ship", "boat"], background=0)
    with rle_csv.Writer(tmp_path / "out", labels=labels, copy_images=False) as w:
        insts = (Instance(rle.encode(masks[0]), 1), Instance(rle.encode(masks[1]), 2))
        w.write(Sample("a", (9, 11), instances=insts))
    rows = list(csv.reader((tmp_path / "out" / "train.csv").read_text().splitlines()))
    assert rows == [
        ["ImageId", "EncodedPixels", "ClassId", "Height", "Width"],
        ["a", dense_pairs(masks[0]), "1", "9", "11"],
        ["a", dense_pairs(masks[1]), "2", "9", "11"],
    ]
    (tmp_path / "out" / "rle_csv.json").unlink()  # read from the header alone
    [sample] = list(rle_csv.Reader(tmp_path / "out"))
    assert [i.class_id for i in sample.instances] == [1, 2]
    assert [rle.decode(i.mask).tolist() for i in sample.instances] == [m.tolist() for m in masks]


def test_writer_without_class_column_reports_other_classes(tmp_path):
    m = rle.encode(EXAMPLE)
    labels = LabelMap.from_names(["background", "ship", "boat"], background=0)
    with rle_csv.Writer(tmp_path / "out", labels=labels, preset="airbus") as w:
        w.write(
            Sample("a", (768, 768), instances=(Instance(rle.pad(m, bottom=764, right=763), 1),))
        )
        w.write(
            Sample("b", (768, 768), instances=(Instance(rle.pad(m, bottom=764, right=763), 2),))
        )
    assert [(x.sample, x.what) for x in w.report.losses] == [("b", "class")]


def test_writer_refuses_a_size_it_cannot_record(tmp_path):
    labels = LabelMap.from_names(["background", "ship"], background=0)
    with rle_csv.Writer(tmp_path / "out", labels=labels, preset="airbus") as w:
        w.write(Sample("a", (4, 5), instances=(Instance(rle.encode(EXAMPLE), 1),)))
    [problem] = w.report.problems
    assert "not the layout's (768, 768)" in problem.message


def test_a_byte_order_mark_does_not_hide_the_first_column(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes("\ufeffImageId,EncodedPixels\na,1 2\n".encode())
    [sample] = list(rle_csv.Reader(path, size="4x5"))
    assert sample.id == "a"
    assert rle.area(sample.instances[0].mask) == 2
