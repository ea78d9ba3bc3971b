"""TFRecord / tf.Example (TF Object Detection API), reference/formats.md §5.

Oracles: the real record file of vijendra1125/Custom-Mask-RCNN (32 records, JPEG images,
PNG instance masks, label.pbtxt), read here with a few lines of struct + varint walking
and PIL; a table CRC-32C built bit by bit in this file (or the ``crc32c`` package); the
protobuf package's own tf.Example parser when it is importable.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from tests.formats import synthetic

from masklab import formats, rle
from masklab.core.instances import Instance
from masklab.core.labels import Label, LabelMap, voc_color
from masklab.errors import FormatError
from masklab.formats import Sample, tfrecord
from masklab.formats._crc32c import crc32c, masked_crc32c
from masklab.formats._protobuf import (
    bytes_feature,
    encode_example,
    float_feature,
    int64_feature,
    parse_example,
)

REAL = ("vijendra1125-custom-mask-rcnn-tfrecord", "dataset")
REAL_FILE = "train_data-00000-of-00001"

# --------------------------------------------------------------------------- oracles


def _crc_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc_table()


def ref_crc32c(data: bytes) -> int:
    """CRC-32C, one byte at a time (the ``crc32c`` package when installed)."""
    try:
        import crc32c as fast
    except ImportError:
        crc = 0xFFFFFFFF
        for b in data:
            crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
        return crc ^ 0xFFFFFFFF
    return int(fast.crc32c(data))


def ref_masked(data: bytes) -> int:
    c = ref_crc32c(data)
    return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def ref_records(blob: bytes) -> list[bytes]:
    """Records of a TFRecord file, asserting both CRCs of each."""
    out, pos = [], 0
    while pos < len(blob):
        (n,) = struct.unpack_from("<Q", blob, pos)
        (len_crc,) = struct.unpack_from("<I", blob, pos + 8)
        assert len_crc == ref_masked(blob[pos : pos + 8]), f"length CRC of record {len(out)}"
        data = blob[pos + 12 : pos + 12 + n]
        (data_crc,) = struct.unpack_from("<I", blob, pos + 12 + n)
        assert data_crc == ref_masked(data), f"data CRC of record {len(out)}"
        out.append(data)
        pos += 16 + n
    assert pos == len(blob)
    return out


def walk(buf: bytes):
    """(field, wire type, value) of a protobuf message: a minimal varint walker."""
    pos = 0
    while pos < len(buf):
        key, pos = varint(buf, pos)
        if key & 7 == 0:
            value, pos = varint(buf, pos)
        elif key & 7 == 2:
            n, pos = varint(buf, pos)
            value, pos = buf[pos : pos + n], pos + n
        else:
            size = 4 if key & 7 == 5 else 8
            value, pos = buf[pos : pos + size], pos + size
        yield key >> 3, key & 7, value


def varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, pos


def features_of(record: bytes) -> dict[str, tuple[int, list]]:
    """key -> (kind: 1 bytes, 2 float, 3 int64; values), packed or not."""
    out = {}
    for _, _, feats in walk(record):
        for _, _, entry in walk(feats):
            parts = {f: v for f, _, v in walk(entry)}
            [(kind, _, lst)] = list(walk(parts[2]))
            values: list = []
            for _, wire, v in walk(lst):
                if kind == 1:
                    values.append(v)
                elif kind == 2:
                    values += struct.unpack(f"<{len(v) // 4}f", v)
                elif wire == 0:
                    values.append(v)
                else:
                    pos = 0
                    while pos < len(v):
                        x, pos = varint(v, pos)
                        values.append(x)
            out[parts[1].decode()] = (kind, values)
    return out


def png_pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im)


# --------------------------------------------------------------------------- CRC, framing


def test_crc32c_check_value_and_masked_vectors_of_the_reference():
    assert crc32c(b"123456789") == 0xE3069283
    assert tfrecord.frame(b"").hex() == "0000000000000000" + "29039807" + "d8ea82a2"
    assert tfrecord.frame(b"hello").hex() == (
        "0500000000000000" + "eab2043e" + b"hello".hex() + "bb1f1c19"
    )


@pytest.mark.parametrize("n", [1, 3, 4, 5, 2047, 2048, 2049, 4096, 70001, (1 << 20) + 13])
def test_crc32c_equals_the_bytewise_table_at_every_length(n):
    data = np.random.default_rng(n).integers(0, 256, n, dtype=np.uint8).tobytes()
    assert crc32c(data) == ref_crc32c(data)
    assert masked_crc32c(data) == ref_masked(data)


@given(st.binary(max_size=6000))
def test_crc32c_equals_the_bytewise_table(data):
    assert crc32c(data) == ref_crc32c(data)


# --------------------------------------------------------------------------- protobuf


def test_parser_accepts_unpacked_and_packed_lists_and_negative_ints():
    ints_unpacked = bytes([0x08, 0x03, 0x08]) + bytes([0xFF] * 9 + [0x01])  # 3, -1
    floats_unpacked = b"\x0d" + struct.pack("<f", 0.5) + b"\x0d" + struct.pack("<f", -2.0)
    ints_packed = b"\x0a\x02\x07\x08"  # packed 7, 8
    feats = {
        "i": b"\x1a" + bytes([len(ints_unpacked + ints_packed)]) + ints_unpacked + ints_packed,
        "f": b"\x12" + bytes([len(floats_unpacked)]) + floats_unpacked,
    }
    entries = b"".join(
        b"\x0a" + bytes([len(e)]) + e
        for e in (
            b"\x0a\x01" + k.encode() + b"\x12" + bytes([len(v)]) + v for k, v in feats.items()
        )
    )
    parsed = parse_example(b"\x0a" + bytes([len(entries)]) + entries)
    assert parsed["i"].int64_list.tolist() == [3, -1, 7, 8]
    assert parsed["f"].float_list.tolist() == [0.5, -2.0]


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=8),
        st.one_of(
            st.lists(st.binary(max_size=20), max_size=4).map(bytes_feature),
            st.lists(st.floats(width=32, allow_nan=False), max_size=6).map(float_feature),
            st.lists(st.integers(-(2**63), 2**63 - 1), max_size=6).map(int64_feature),
        ),
        max_size=5,
    )
)
def test_parse_inverts_encode(feats):
    back = parse_example(encode_example(feats))
    assert back.keys() == feats.keys()
    for key, f in feats.items():
        assert back[key].kind == f.kind
        assert back[key].bytes_list == f.bytes_list
        np.testing.assert_array_equal(back[key].float_list, f.float_list)
        np.testing.assert_array_equal(back[key].int64_list, f.int64_list)


# --------------------------------------------------------------------------- the real file


def test_real_file_every_record_crc_verifies(shared_data):
    assert len(ref_records(shared_data(*REAL, REAL_FILE).read_bytes())) == 32


def test_real_file_detected(shared_data):
    folder = shared_data(*REAL)
    assert tfrecord.detect(folder).confidence == 3
    assert tfrecord.detect(folder / REAL_FILE).confidence == 3
    assert formats.detect(folder) == "tfrecord"


def test_real_file_label_map_comes_from_label_pbtxt(shared_data):
    reader = tfrecord.Reader(shared_data(*REAL))
    assert [(lab.id, lab.name) for lab in reader.labels] == [(1, "speaker076"), (2, "cup026")]


def test_real_file_samples_hold_what_the_records_say(shared_data):
    folder = shared_data(*REAL)
    records = ref_records((folder / REAL_FILE).read_bytes())
    reader = tfrecord.Reader(folder)
    samples = list(reader)
    assert not reader.report.problems
    assert len(samples) == 32
    n_instances = 0
    for sample, record in zip(samples, records, strict=True):
        f = features_of(record)
        assert sample.id == f["image/filename"][1][0].decode()
        assert sample.size == (f["image/height"][1][0], f["image/width"][1][0])
        assert sample.image_bytes == f["image/encoded"][1][0]
        assert sample.subset == "train_data"
        labels, pngs = f["image/object/class/label"][1], f["image/object/mask"][1]
        assert f["image/object/mask"][0] == 1  # PNG_MASKS
        assert [i.class_id for i in sample.instances] == labels
        assert len(sample.instances) == len(pngs) == len(f["image/object/bbox/xmin"][1])
        for inst, png in zip(sample.instances, pngs, strict=True):
            np.testing.assert_array_equal(rle.decode(inst.mask), png_pixels(png) > 0)
        n_instances += len(labels)
    assert n_instances > 32  # some images hold both classes


def test_real_file_round_trips_through_our_writer(shared_data, tmp_path):
    src = shared_data(*REAL)
    report = formats.convert(src, tmp_path / "out", to="tfrecord")
    assert not report.problems
    assert not report.losses
    originals = list(tfrecord.Reader(src))
    assert report.exact == sum(len(s.instances) for s in originals)
    back = list(tfrecord.Reader(tmp_path / "out"))
    assert [p.name for p in sorted((tmp_path / "out").iterdir())] == [
        "label_map.pbtxt",
        "train_data.tfrecord",
    ]
    for a, b in zip(originals, back, strict=True):
        assert (a.id, a.size, a.image_bytes, a.subset) == (b.id, b.size, b.image_bytes, b.subset)
        assert [(i.mask, i.class_id) for i in a.instances] == [
            (i.mask, i.class_id) for i in b.instances
        ]


# --------------------------------------------------------------------------- bad input


def _corrupt_copy(src: Path, dst: Path, record: int, *, where: str = "data") -> Path:
    """Copy the file with one byte of a record's data (or its length) flipped."""
    blob = bytearray(src.read_bytes())
    pos = 0
    for _ in range(record):
        (n,) = struct.unpack_from("<Q", blob, pos)
        pos += 16 + n
    blob[pos + (12 + 100 if where == "data" else 2)] ^= 0x40
    dst.write_bytes(bytes(blob))
    return dst


def test_bad_crc_in_the_middle_is_reported_and_the_rest_read(shared_data, tmp_path):
    bad = _corrupt_copy(shared_data(*REAL, REAL_FILE), tmp_path / "bad.tfrecord", 16)
    reader = tfrecord.Reader(bad)
    samples = list(reader)
    assert len(samples) == 31
    [problem] = reader.report.problems
    assert (problem.path, problem.record) == (str(bad), 16)
    assert "CRC" in problem.message


def test_bad_crc_in_strict_mode_raises_naming_file_and_record(shared_data, tmp_path):
    bad = _corrupt_copy(shared_data(*REAL, REAL_FILE), tmp_path / "bad.tfrecord", 16)
    with pytest.raises(FormatError, match=r"bad\.tfrecord: record 16: .*CRC") as err:
        list(tfrecord.Reader(bad, strict=True))
    assert (err.value.path, err.value.record) == (str(bad), 16)


def test_bad_length_crc_ends_the_file_with_a_report(shared_data, tmp_path):
    bad = _corrupt_copy(shared_data(*REAL, REAL_FILE), tmp_path / "bad.tfrecord", 5, where="len")
    reader = tfrecord.Reader(bad)
    assert len(list(reader)) == 5
    assert [(p.record, "length" in p.message) for p in reader.report.problems] == [(5, True)]


def test_truncated_file_is_reported_after_the_whole_records(shared_data, tmp_path):
    blob = shared_data(*REAL, REAL_FILE).read_bytes()
    short = tmp_path / "short.tfrecord"
    short.write_bytes(blob[: len(blob) - 1000])
    reader = tfrecord.Reader(short)
    assert len(list(reader)) == 31
    [problem] = reader.report.problems
    assert problem.record == 31
    assert "truncated" in problem.message
    with pytest.raises(FormatError, match=r"record 31: .*truncated"):
        list(tfrecord.Reader(short, strict=True))


@pytest.mark.parametrize("compress", [gzip.compress, zlib.compress])
def test_gzip_and_zlib_files_read_like_plain(shared_data, tmp_path, compress):
    src = shared_data(*REAL, REAL_FILE)
    packed = tmp_path / "train.tfrecord"
    packed.write_bytes(compress(src.read_bytes()))
    assert tfrecord.detect(packed).confidence == 3
    plain, got = list(tfrecord.Reader(src)), list(tfrecord.Reader(packed))
    assert [s.image_bytes for s in got] == [s.image_bytes for s in plain]


def _record(**feats) -> bytes:
    return tfrecord.frame(encode_example(feats))


def _png(mask: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_box_without_mask_is_reported_per_object_not_invented(tmp_path):
    m = np.zeros((4, 5), np.uint8)
    m[1:3, 1:4] = 1
    path = tmp_path / "boxes.tfrecord"
    path.write_bytes(
        _record(
            **{
                "image/height": int64_feature([4]),
                "image/width": int64_feature([5]),
                "image/filename": bytes_feature([b"a.jpg"]),
                "image/object/bbox/xmin": float_feature([0.2, 0.0]),
                "image/object/bbox/xmax": float_feature([0.8, 0.5]),
                "image/object/bbox/ymin": float_feature([0.25, 0.0]),
                "image/object/bbox/ymax": float_feature([0.75, 0.5]),
                "image/object/class/label": int64_feature([1, 2]),
                "image/object/class/text": bytes_feature([b"a", b"b"]),
                "image/object/mask": bytes_feature([_png(m)]),
            }
        )
    )
    reader = tfrecord.Reader(path)
    [sample] = list(reader)
    assert [(i.class_id, i.mask) for i in sample.instances] == [(1, rle.encode(m))]
    [problem] = reader.report.problems
    assert problem.record == 0
    assert problem.message.startswith("object 1: box without mask")
    assert [(lab.id, lab.name) for lab in reader.labels] == [(1, "a"), (2, "b")]
    with pytest.raises(FormatError, match=r"boxes\.tfrecord: record 0: object 1: box without"):
        list(tfrecord.Reader(path, strict=True))


def test_numerical_masks_threshold_above_zero_and_bad_lengths_are_reported(tmp_path):
    values = np.array([[[0.0, 0.4], [-1.0, 2.0]], [[1.0, 0.0], [0.0, 0.0]]], np.float32)
    common = {"image/height": int64_feature([2]), "image/width": int64_feature([2])}
    path = tmp_path / "num.tfrecord"
    path.write_bytes(
        _record(
            **common,
            **{
                "image/object/class/label": int64_feature([1, 1]),
                "image/object/mask": float_feature(values.reshape(-1)),
            },
        )
        + _record(
            **common,
            **{
                "image/object/class/label": int64_feature([1]),
                "image/object/mask": float_feature([1.0, 0.0, 1.0]),
            },
        )
    )
    reader = tfrecord.Reader(path)
    [sample] = list(reader)
    assert [rle.decode(i.mask).tolist() for i in sample.instances] == [
        [[0, 1], [0, 1]],
        [[1, 0], [0, 0]],
    ]
    assert [(p.record, "3 floats" in p.message) for p in reader.report.problems] == [(1, True)]


def test_label_not_in_the_label_map_file_is_reported(tmp_path):
    (tmp_path / "label_map.pbtxt").write_text("item { id: 1 name: 'cat' }")
    m = np.ones((2, 2), np.uint8)
    (tmp_path / "a.record").write_bytes(
        _record(
            **{
                "image/height": int64_feature([2]),
                "image/width": int64_feature([2]),
                "image/object/class/label": int64_feature([1, 7]),
                "image/object/mask": bytes_feature([_png(m), _png(m)]),
            }
        )
    )
    reader = tfrecord.Reader(tmp_path)
    [sample] = list(reader)
    assert [i.class_id for i in sample.instances] == [1]
    [problem] = reader.report.problems
    assert "object 1: class label 7 is not in" in problem.message


def test_missing_folder_content_raises_with_the_fix(tmp_path):
    with pytest.raises(FormatError, match=r"no TFRecord files.*pattern="):
        tfrecord.Reader(tmp_path)


# --------------------------------------------------------------------------- label maps


def test_label_map_parser_reads_the_pbtxt_syntax():
    text = """
    # a comment
    item {
      name: "/m/01g317"  # the name
      id: 1
      display_name: 'person'
    }
    item { id: 2, name: 'it\\'s' }
    item < id: 0 name: "background" keypoints { id: 0 label: "nose" } >
    """
    lm = tfrecord.parse_label_map(text)
    assert [(lab.id, lab.name, lab.role) for lab in lm] == [
        (1, "/m/01g317", "class"),
        (2, "it's", "class"),
        (0, "background", "background"),
    ]
    assert lm.by_id(1).attributes == {"display_name": "person"}


def test_label_map_item_without_id_is_an_error():
    with pytest.raises(FormatError, match="item 1 has no id"):
        tfrecord.parse_label_map("item { name: 'x' }", where="x.pbtxt")


def test_label_map_round_trips_through_its_text():
    lm = LabelMap.from_names(["bg", "cat", 'it\'s a "dog"'], background=0)
    back = tfrecord.parse_label_map(tfrecord.format_label_map(lm))
    assert [(lab.id, lab.name) for lab in back] == [(1, "cat"), (2, 'it\'s a "dog"')]


# --------------------------------------------------------------------------- writer

KEYS = {
    "image/encoded",
    "image/format",
    "image/filename",
    "image/source_id",
    "image/key/sha256",
    "image/height",
    "image/width",
    "image/object/bbox/xmin",
    "image/object/bbox/xmax",
    "image/object/bbox/ymin",
    "image/object/bbox/ymax",
    "image/object/class/label",
    "image/object/class/text",
    "image/object/is_crowd",
    "image/object/area",
    "image/object/mask",
}


def _write(tmp_path: Path, samples, **options) -> tuple[Path, tfrecord.Writer]:
    out = tmp_path / "out"
    with tfrecord.Writer(out, labels=synthetic.LABELS, **options) as writer:
        for s in samples:
            writer.write(s)
    return out, writer


def _box_of(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    return [xs.min() / w, (xs.max() + 1) / w, ys.min() / h, (ys.max() + 1) / h]


@pytest.mark.parametrize("mask_type", ["png", "numerical"])
def test_written_records_hold_the_tf_od_layout(tmp_path, mask_type):
    data = synthetic.samples(tmp_path / "images", 3)
    out, writer = _write(tmp_path, data, mask_type=mask_type)
    assert not writer.report.problems
    assert not writer.report.losses
    assert writer.report.exact == sum(len(s.instances) for s in data)
    assert sorted(p.name for p in out.iterdir()) == ["default.tfrecord", "label_map.pbtxt"]
    records = ref_records((out / "default.tfrecord").read_bytes())
    assert len(records) == 3
    for sample, record in zip(data, records, strict=True):
        f = features_of(record)
        assert set(f) == KEYS
        h, w = sample.size
        image = sample.image.read_bytes()
        assert f["image/encoded"][1] == [image]
        assert f["image/format"][1] == [b"png"]
        assert f["image/filename"][1] == [f"{sample.id}.png".encode()]
        assert f["image/source_id"][1] == [sample.id.encode()]
        assert f["image/key/sha256"][1] == [hashlib.sha256(image).hexdigest().encode()]
        assert (f["image/height"][1], f["image/width"][1]) == ([h], [w])
        masks = [rle.decode(i.mask) for i in sample.instances]
        assert f["image/object/class/label"][1] == [i.class_id for i in sample.instances]
        assert f["image/object/class/text"][1] == [
            synthetic.LABELS.by_id(i.class_id).name.encode() for i in sample.instances
        ]
        assert f["image/object/is_crowd"][1] == [int(i.iscrowd) for i in sample.instances]
        assert f["image/object/area"][1] == [float(m.sum()) for m in masks]
        boxes = np.array(
            [f[f"image/object/bbox/{k}"][1] for k in ("xmin", "xmax", "ymin", "ymax")]
        ).T
        np.testing.assert_allclose(boxes, [_box_of(m) for m in masks], rtol=1e-6)
        kind, stored = f["image/object/mask"]
        if mask_type == "png":
            assert kind == 1
            assert [png_pixels(p).tolist() for p in stored] == [m.tolist() for m in masks]
        else:
            assert kind == 2
            assert stored == np.stack(masks).astype(float).reshape(-1).tolist()
    assert tfrecord.parse_label_map((out / "label_map.pbtxt").read_text()) == LabelMap(
        tuple(lab for lab in synthetic.LABELS if lab.id >= 1)
    )


@pytest.mark.parametrize("mask_type", ["png", "numerical"])
def test_written_records_read_back_exactly(tmp_path, mask_type):
    data = synthetic.samples(tmp_path / "images", 3)
    out, _ = _write(tmp_path, data, mask_type=mask_type)
    assert tfrecord.detect(out).confidence == 3
    reader = tfrecord.Reader(out)
    back = list(reader)
    assert not reader.report.problems
    for a, b in zip(data, back, strict=True):
        assert (b.id, b.size, b.subset, b.image_bytes) == (a.id, a.size, None, a.image.read_bytes())
        assert [(i.mask, i.class_id, i.iscrowd) for i in b.instances] == [
            (i.mask, i.class_id, i.iscrowd) for i in a.instances
        ]
    assert [(lab.id, lab.name) for lab in reader.labels] == [(1, "cell"), (2, "leaf"), (3, "stone")]


def _example_class():
    pytest.importorskip("google.protobuf")
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    fd = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(
        name="masklab_test_example.proto", package="tensorflow", syntax="proto3"
    )
    for name, typ in (("BytesList", fd.TYPE_BYTES), ("FloatList", fd.TYPE_FLOAT)):
        proto.message_type.add(name=name).field.add(
            name="value", number=1, type=typ, label=fd.LABEL_REPEATED
        )
    proto.message_type.add(name="Int64List").field.add(
        name="value", number=1, type=fd.TYPE_INT64, label=fd.LABEL_REPEATED
    )
    feature = proto.message_type.add(name="Feature")
    feature.oneof_decl.add(name="kind")
    for number, name, typ in (
        (1, "bytes_list", "BytesList"),
        (2, "float_list", "FloatList"),
        (3, "int64_list", "Int64List"),
    ):
        feature.field.add(
            name=name,
            number=number,
            type=fd.TYPE_MESSAGE,
            type_name=f".tensorflow.{typ}",
            label=fd.LABEL_OPTIONAL,
            oneof_index=0,
        )
    features = proto.message_type.add(name="Features")
    entry = features.nested_type.add(name="FeatureEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=fd.TYPE_STRING, label=fd.LABEL_OPTIONAL)
    entry.field.add(
        name="value",
        number=2,
        type=fd.TYPE_MESSAGE,
        type_name=".tensorflow.Feature",
        label=fd.LABEL_OPTIONAL,
    )
    features.field.add(
        name="feature",
        number=1,
        type=fd.TYPE_MESSAGE,
        type_name=".tensorflow.Features.FeatureEntry",
        label=fd.LABEL_REPEATED,
    )
    proto.message_type.add(name="Example").field.add(
        name="features",
        number=1,
        type=fd.TYPE_MESSAGE,
        type_name=".tensorflow.Features",
        label=fd.LABEL_OPTIONAL,
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.Example"))


def test_written_records_parse_with_protobuf_byte_for_byte(tmp_path):
    example_class = _example_class()
    data = synthetic.samples(tmp_path / "images", 2)
    out, _ = _write(tmp_path, data)
    for sample, record in zip(
        data, ref_records((out / "default.tfrecord").read_bytes()), strict=True
    ):
        ex = example_class()
        ex.ParseFromString(record)
        feat = ex.features.feature
        assert list(feat["image/object/class/label"].int64_list.value) == [
            i.class_id for i in sample.instances
        ]
        assert feat["image/height"].int64_list.value[0] == sample.h
        assert len(feat["image/object/mask"].bytes_list.value) == len(sample.instances)
        assert ex.SerializeToString(deterministic=True) == record


def test_real_file_parses_like_protobuf_does(shared_data):
    example_class = _example_class()
    for record in ref_records(shared_data(*REAL, REAL_FILE).read_bytes()):
        ex = example_class()
        ex.ParseFromString(record)
        ours = parse_example(record)
        assert set(ours) == set(ex.features.feature)
        for key, theirs in ex.features.feature.items():
            kind = theirs.WhichOneof("kind")
            assert ours[key].kind == kind.removesuffix("_list")
            assert list(getattr(ours[key], kind)) == list(getattr(theirs, kind).value)


def test_writer_reports_class_ids_tf_cannot_hold_and_scores(tmp_path):
    (tmp_path / "im.png").write_bytes(_png(np.zeros((4, 4, 3))))
    m = np.zeros((4, 4), np.uint8)
    m[1, 1] = 1
    sample = Sample(
        id="im",
        size=(4, 4),
        image=tmp_path / "im.png",
        instances=(
            Instance(rle.encode(m), 0),
            Instance(rle.encode(m), 9),
            Instance(rle.encode(m), 2, score=0.5),
        ),
    )
    out, writer = _write(tmp_path, [sample])
    assert [(loss.instance, loss.what) for loss in writer.report.losses] == [
        (0, "class"),
        (1, "class"),
        (2, "score"),
    ]
    assert "start at 1" in writer.report.losses[0].detail
    [back] = list(tfrecord.Reader(out))
    assert [(i.class_id, i.mask) for i in back.instances] == [(2, rle.encode(m))]


def test_writer_reports_a_sample_without_image(tmp_path):
    sample = Sample(id="ghost", size=(2, 2), instances=())
    _, writer = _write(tmp_path, [sample])
    [problem] = writer.report.problems
    assert "no image" in problem.message


def test_writer_refuses_an_unknown_mask_type(tmp_path):
    with pytest.raises(FormatError, match="mask_type must be one of"):
        tfrecord.Writer(tmp_path / "out", labels=synthetic.LABELS, mask_type="rle")
    assert list(tmp_path.iterdir()) == []


def test_subsets_become_files_and_pattern_picks_shards(tmp_path):
    data = synthetic.samples(tmp_path / "images", 3)
    subsets = ["train", "val", "train"]
    data = [
        Sample(id=s.id, size=s.size, image=s.image, instances=s.instances, subset=sub)
        for s, sub in zip(data, subsets, strict=True)
    ]
    out, _ = _write(tmp_path, data)
    assert sorted(p.name for p in out.iterdir()) == [
        "label_map.pbtxt",
        "train.tfrecord",
        "val.tfrecord",
    ]
    (out / "train.tfrecord").rename(out / "train-00000-of-00002")
    (out / "val.tfrecord").rename(out / "train-00001-of-00002")
    everything = list(tfrecord.Reader(out))
    assert [s.subset for s in everything] == ["train", "train", "train"]
    only = list(tfrecord.Reader(out, pattern="*-00001-of-*"))
    assert [s.id for s in only] == [data[1].id]


def test_semantic_samples_are_split_into_instances(tmp_path):
    (tmp_path / "im.png").write_bytes(_png(np.zeros((3, 4, 3))))
    sem = np.array([[0, 1, 1, 0], [0, 0, 0, 0], [2, 0, 0, 3]], np.uint8)
    labels = LabelMap(
        (
            Label(0, ("background",), (0, 0, 0), isthing=False, role="background"),
            *(Label(i, (f"c{i}",), voc_color(i)) for i in (1, 2, 3)),
        )
    )
    sample = Sample(id="im", size=(3, 4), image=tmp_path / "im.png", semantic=sem)
    with tfrecord.Writer(tmp_path / "out", labels=labels) as writer:
        writer.write(sample)
    [back] = list(tfrecord.Reader(tmp_path / "out"))
    got = np.zeros_like(sem)
    for inst in back.instances:
        got[rle.decode(inst.mask).astype(bool)] = inst.class_id
    np.testing.assert_array_equal(got, sem)


def test_detect_says_no_to_other_folders(tmp_path, shared_data):
    assert tfrecord.detect(tmp_path).confidence == 0
    (tmp_path / "a.json").write_text("{}")
    assert tfrecord.detect(tmp_path).confidence == 0
    assert tfrecord.detect(tmp_path / "a.json").confidence == 0
    assert tfrecord.detect(shared_data("panopticapi", "sample_data")).confidence == 0
