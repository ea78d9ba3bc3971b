"""The Parquet export of a version and its import, checked against independent oracles.

Masks are drawn in the tests with hand-checked pixel counts; pycocotools decodes the RLE
strings the files hold and computes areas and boxes of the real COCO sample; DuckDB and Polars
read the files as they are (no masklab code in between). The round trip runs on every store
(SQLite + folder, PostgreSQL, S3) through the fixtures of tests/store/conftest.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as coco_mask
from typer.testing import CliRunner

from masklab.core import rle
from masklab.core.labels import Label, LabelMap
from masklab.errors import FormatError, NotFoundError, StoreError
from masklab.store import Annotation, Frame, Source, Store, Version
from masklab.store.importer import import_path
from masklab.store.model import blob_uri, canonical_json

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from masklab.store.parquet import (  # noqa: E402  (after the skip: needs pyarrow)
    export_parquet,
    import_parquet,
    is_parquet_export,
)

AIRO_JSON = (
    "airo-mono-coco-val2017-small",
    "airo-dataset-tools",
    "test",
    "test_data",
    "instances_val2017_small.json",
)
H, W = 7, 9
IMAGE = b"\x89PNG stand-in bytes of the left camera"
RIGHT = "/data/cameras/right/0001.jpg"  # an external URI: kept as it is, never copied


def ring() -> np.ndarray:
    """A 5x6 ring with a 1x2 hole: 28 pixels, box (x 1, y 1, w 6, h 5)."""
    m = np.zeros((H, W), np.uint8)
    m[1:6, 1:7] = 1
    m[3, 3:5] = 0
    return m


def two_parts() -> np.ndarray:
    """Two blobs: 2x2 at the top left and 1x3 at the bottom right: 7 pixels, box (0,0,9,7)."""
    m = np.zeros((H, W), np.uint8)
    m[0:2, 0:2] = 1
    m[6, 6:9] = 1
    return m


def class_map() -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    m[1:6, 1:7] = 1
    m[0, 8] = 2
    m[6, 0] = 255
    return m


def alpha() -> np.ndarray:
    return (np.arange(H * W, dtype=np.uint16).reshape(H, W) * 4 % 256).astype(np.uint8)


def build(store: Store, name: str = "pets") -> tuple[Version, dict[tuple[str, int], np.ndarray]]:
    """A published version with two-source frames, pixel and alpha masks, annotations with
    RLE / polygons / boxes / scores / crowd / several labels, meta; and the masks drawn."""
    labels = LabelMap(
        (
            Label(0, ("background",), (0, 0, 0), isthing=False, role="background"),
            Label(1, ("cat", "sitting"), (255, 0, 0)),
            Label(2, ("dog",), (0, 255, 0)),
            Label(255, ("void",), (255, 255, 255), isthing=False, role="ignore"),
        )
    )
    v = store.create_dataset(name).create_version(
        "v1", description="the pets", metadata={"origin": "test", "scale": 0.5}
    )
    v.set_label_map(labels)
    left = Source(
        blob_uri(store.blobs.put(IMAGE)),
        id="left",
        width=W,
        height=H,
        content_type="image/png",
        timestamp=1700000000123,
        masks={"sem": store.put_mask(class_map()), "alpha": store.put_mask(alpha(), mode="alpha")},
    )
    right = Source(RIGHT, id="right", width=W, height=H)
    empty = np.zeros((H, W), np.uint8)
    a = Frame(
        "a",
        (left, right),
        (
            Annotation(
                ("cat", "sitting"),
                1,
                box=(1.0, 1.0, 6.0, 5.0),
                polygons=((1.0, 1.0, 6.5, 1.0, 6.5, 5.25, 1.0, 5.25),),
                rle=rle.encode(ring()),
                score=0.875,
                instance_id=3,
                source="left",
                meta={"occluded": True, "note": "ünïcode", "parts": [1, 2.5]},
            ),
            Annotation(("dog",), 2, rle=rle.encode(two_parts()), iscrowd=True, instance_id=4),
            Annotation(("cat",), polygons=((0.0, 0.0, 3.0, 0.0, 3.0, 2.0), (5, 5, 8, 5, 8, 6))),
            Annotation(("person",), box=(0.5, 1.25, 2.0, 3.5), score=0.1, source="right"),
            Annotation(("dog",), 2, rle=rle.encode(empty), score=1e-300),
        ),
        context_id="clip-7",
        timestamp=42,
        meta={"split": "train", "weather": {"rain": 0.25}, "tags": ["x", "y"]},
    )
    b = Frame("b", (Source(None),))
    rng = np.random.default_rng(8)
    masks_c = [(rng.random((H, W)) < p).astype(np.uint8) for p in np.linspace(0.05, 0.95, 12)]
    c = Frame(
        "c",
        (Source(blob_uri(store.blobs.put(b"image c")), width=W, height=H),),
        tuple(
            Annotation(("cat" if i % 2 else "dog",), 1 + i % 2, rle=rle.encode(m), instance_id=i)
            for i, m in enumerate(masks_c)
        ),
        meta={"split": "val"},
    )
    v.add_frames([a, b, c])
    v.publish()
    drawn = {("a", 0): ring(), ("a", 1): two_parts(), ("a", 4): empty}
    drawn.update({("c", i): m for i, m in enumerate(masks_c)})
    return v, drawn


def exported(tmp_path: Path, **options: object) -> tuple[Version, dict, Path]:
    """A version built in a local store, exported to tmp_path/'out'."""
    v, drawn = build(Store(home=tmp_path / "src"))
    export_parquet(v, tmp_path / "out", **options)  # type: ignore[arg-type]
    return v, drawn, tmp_path / "out"


def assert_same_version(got: Version, want: Version) -> None:
    """Frame for frame equal (values and content keys), same label map, meta, status."""
    frames_got, frames_want = list(got.frames()), list(want.frames())
    assert frames_got == frames_want
    assert [f.key for f in frames_got] == [f.key for f in frames_want]
    assert [canonical_json(f.meta) for f in frames_got] == [
        canonical_json(f.meta) for f in frames_want
    ]
    assert got.frame_keys() == want.frame_keys()
    assert got.label_map == want.label_map
    assert got.metadata == want.metadata
    assert got.description == want.description
    assert got.status == want.status


# ---- round trips


def test_round_trip_into_each_store_keeps_every_frame_and_blob(store_urls, tmp_path):
    original, _, out = exported(tmp_path)
    catalog, blobs = store_urls
    with Store(catalog=catalog, blobs=blobs) as target:
        result = import_parquet(target, out)
        assert (result.version, result.frames, result.annotations) == ("pets:v1", 3, 17)
        assert result.report.problems == []
        got = target.version("pets:v1")
        assert_same_version(got, original)
        a = got.frame("a")
        left = a.source("left")
        assert target.read_bytes(left.uri) == IMAGE
        np.testing.assert_array_equal(target.read_mask(left.masks["sem"]), class_map())
        np.testing.assert_array_equal(target.read_mask(left.masks["alpha"]), alpha())
        assert a.source("right").uri == RIGHT
        np.testing.assert_array_equal(rle.decode(a.annotations[0].rle), ring())


def test_export_from_each_store_without_blobs_imports_into_the_same_store(store_urls, tmp_path):
    catalog, blobs = store_urls
    with Store(catalog=catalog, blobs=blobs) as store:
        original, _ = build(store)
        report = export_parquet(original, tmp_path / "out", blobs=False)
        assert (report.samples, report.instances) == (3, 17)
        assert not (tmp_path / "out" / "blobs").exists()
        import_parquet(store, tmp_path / "out", dataset="copy")
        assert_same_version(store.version("copy:v1"), original)


def test_import_keeps_an_unpublished_status_and_can_be_told_to_publish(tmp_path):
    with Store(home=tmp_path / "a") as store:
        v = store.create_dataset("d").create_version("draft")
        v.add_frames([Frame.single("x", None, meta={"k": 1})])
        v.commit()
        export_parquet(v, tmp_path / "out")
    with Store(home=tmp_path / "b") as target:
        assert import_parquet(target, tmp_path / "out").version == "d:draft"
        assert target.version("d:draft").status == "draft"
        import_parquet(target, tmp_path / "out", version="pub", publish=True)
        assert target.version("d:pub").status == "published"


def test_each_batch_is_one_row_group_and_a_small_batch_reads_back_the_same(tmp_path):
    original, _, out = exported(tmp_path, batch=2)
    assert pq.ParquetFile(out / "frames.parquet").metadata.num_row_groups == 2  # frames 2 + 1
    assert pq.ParquetFile(out / "annotations.parquet").metadata.num_row_groups == 2
    with Store(home=tmp_path / "b") as target:
        import_parquet(target, out, batch=1)
        assert_same_version(target.version("pets:v1"), original)


def test_manifest_names_the_version_labels_and_counts(tmp_path):
    original, _, out = exported(tmp_path)
    manifest = json.loads((out / "dataset.json").read_text())
    assert manifest["format"] == "masklab-parquet"
    assert manifest["schema_version"] == 1
    assert (manifest["dataset"], manifest["version"], manifest["status"]) == (
        "pets",
        "v1",
        "published",
    )
    assert manifest["counts"] == {"frames": 3, "annotations": 17, "blobs": 4}  # 2 images, 2 PNGs
    assert LabelMap.from_dict(manifest["label_map"]) == original.label_map
    assert len([p for p in (out / "blobs").rglob("*") if p.is_file()]) == 4
    assert is_parquet_export(out)
    assert not is_parquet_export(tmp_path / "src")


# ---- readable as they are: DuckDB, Polars, pycocotools


def test_duckdb_reads_counts_areas_boxes_and_rle_strings(tmp_path):
    duckdb = pytest.importorskip("duckdb")
    _, drawn, out = exported(tmp_path)
    frames, anns = out / "frames.parquet", out / "annotations.parquet"
    con = duckdb.connect()
    per_frame = con.execute(
        f"SELECT f.frame_id, f.n_annotations, count(a.idx) FROM '{frames}' f "
        f"LEFT JOIN '{anns}' a USING (frame_id) GROUP BY ALL ORDER BY 1"
    ).fetchall()
    assert per_frame == [("a", 5, 5), ("b", 0, 0), ("c", 12, 12)]
    modes = con.execute(
        f"SELECT m.mode, count(*) FROM (SELECT unnest(s.masks) AS m FROM "
        f"(SELECT unnest(sources) AS s FROM '{frames}')) GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert modes == [("alpha", 1), ("pixel", 1)]
    rows = con.execute(
        f"SELECT frame_id, idx, area, bbox, rle_counts, rle_h, rle_w FROM '{anns}' "
        "WHERE rle_counts IS NOT NULL ORDER BY frame_id, idx"
    ).fetchall()
    assert [(f, i) for f, i, *_ in rows] == sorted(drawn)
    for frame_id, idx, area, bbox, counts, h, w in rows:
        mask = drawn[(frame_id, idx)]
        assert area == int(mask.sum())  # the mask drawn in the test
        coco = {"size": [h, w], "counts": counts.encode()}
        np.testing.assert_array_equal(coco_mask.decode(coco), mask)
        assert bbox == pytest.approx(coco_mask.toBbox(coco).tolist())
    assert (
        con.execute(f"SELECT area FROM '{anns}' WHERE frame_id = 'a' AND idx = 0").fetchone()[0]
        == 28
    )  # hand-counted: 5x6 ring minus a 1x2 hole


def test_polars_reads_labels_lists_nulls_and_json_meta(tmp_path):
    pl = pytest.importorskip("polars")
    _, _, out = exported(tmp_path)
    anns = pl.read_parquet(out / "annotations.parquet")
    a = anns.filter(pl.col("frame_id") == "a").sort("idx")
    assert a["labels"].to_list() == [["cat", "sitting"], ["dog"], ["cat"], ["person"], ["dog"]]
    assert a["iscrowd"].to_list() == [False, True, False, False, False]
    assert a["score"].to_list() == [0.875, None, None, 0.1, 1e-300]
    assert a["area"].to_list() == [28, 7, None, None, 0]
    assert a["bbox"].to_list()[1] == [0.0, 0.0, 9.0, 7.0]  # two parts span the whole frame
    assert a["bbox"].to_list()[3] == [0.5, 1.25, 2.0, 3.5]  # no mask: the given box
    assert a["box"].to_list()[:2] == [[1.0, 1.0, 6.0, 5.0], None]
    assert a["polygons"].to_list()[2] == [[0.0, 0.0, 3.0, 0.0, 3.0, 2.0], [5, 5, 8, 5, 8, 6]]
    assert a["source"].to_list() == ["left", None, None, "right", None]
    assert json.loads(a["meta"][0]) == {"occluded": True, "note": "ünïcode", "parts": [1, 2.5]}
    assert anns.filter(pl.col("labels").list.contains("cat")).height == 2 + 6
    frames = pl.read_parquet(out / "frames.parquet")
    assert frames["frame_id"].to_list() == ["a", "b", "c"]
    assert json.loads(frames["meta"][0])["weather"] == {"rain": 0.25}
    left = frames["sources"][0][0]
    assert (left["id"], left["width"], left["height"]) == ("left", W, H)
    assert {m["id"]: m["values"] for m in left["masks"]}["sem"] == [0, 1, 2, 255]


def test_coco_sample_area_and_bbox_equal_pycocotools_on_the_original(shared_data, tmp_path):
    src = shared_data(*AIRO_JSON)
    original = json.loads(src.read_text())
    with Store(home=tmp_path / "home") as store:
        import_path(store, src, dataset="coco")
        export_parquet(store.version("coco:v1"), tmp_path / "out")
    frames = pq.read_table(tmp_path / "out" / "frames.parquet").to_pylist()
    image_of = {f["frame_id"]: json.loads(f["meta"])["image_id"] for f in frames}
    anns = pq.read_table(tmp_path / "out" / "annotations.parquet").to_pylist()
    size = {im["id"]: (im["height"], im["width"]) for im in original["images"]}
    want: dict[int, list[dict]] = {}
    for ann in original["annotations"]:
        want.setdefault(ann["image_id"], []).append(ann)
    assert len(anns) == len(original["annotations"]) == 34
    for row in anns:
        image_id = image_of[row["frame_id"]]
        ann = want[image_id][row["idx"]]
        h, w = size[image_id]
        seg = ann["segmentation"]
        if isinstance(seg, list):
            theirs = coco_mask.merge(coco_mask.frPyObjects(seg, h, w))
        elif isinstance(seg["counts"], list):
            theirs = coco_mask.frPyObjects(seg, h, w)
        else:
            theirs = seg
        assert row["area"] == int(coco_mask.area(theirs))
        assert row["bbox"] == pytest.approx(coco_mask.toBbox(theirs).tolist())
        assert row["rle_counts"] == theirs["counts"].decode()
        assert row["class_id"] == ann["category_id"]
        assert row["iscrowd"] == bool(ann["iscrowd"])


# ---- errors


def test_a_corrupt_file_is_named_and_no_version_is_left(tmp_path):
    _, _, out = exported(tmp_path)
    (out / "frames.parquet").write_bytes(b"not parquet at all")
    with Store(home=tmp_path / "b") as target:
        with pytest.raises(FormatError, match=r"frames\.parquet is not a readable Parquet file"):
            import_parquet(target, out)
        with pytest.raises(NotFoundError):
            target.version("pets:v1")


def test_a_truncated_file_is_named(tmp_path):
    _, _, out = exported(tmp_path)
    path = out / "annotations.parquet"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with (
        Store(home=tmp_path / "b") as target,
        pytest.raises(FormatError, match=r"annotations\.parquet"),
    ):
        import_parquet(target, out)


def test_a_missing_file_is_named(tmp_path):
    _, _, out = exported(tmp_path)
    (out / "annotations.parquet").unlink()
    with Store(home=tmp_path / "b") as target:
        with pytest.raises(FormatError, match=r"annotations\.parquet is missing"):
            import_parquet(target, out)
        (out / "dataset.json").unlink()
        with pytest.raises(FormatError, match=r"not a masklab Parquet export.*dataset\.json"):
            import_parquet(target, out)


def test_a_newer_schema_is_refused_with_the_fix(tmp_path):
    _, _, out = exported(tmp_path)
    manifest = json.loads((out / "dataset.json").read_text())
    (out / "dataset.json").write_text(json.dumps({**manifest, "schema_version": 2}))
    with Store(home=tmp_path / "b") as target, pytest.raises(FormatError, match="upgrade"):
        import_parquet(target, out)


def test_rows_out_of_frame_order_are_refused(tmp_path):
    _, _, out = exported(tmp_path)
    path = out / "annotations.parquet"
    table = pq.read_table(path)
    order = [*range(5, 17), *range(5)]  # frame c's rows first
    pq.write_table(table.take(order), path)
    with (
        Store(home=tmp_path / "b") as target,
        pytest.raises(
            FormatError, match=r"frame 'a' has 0 annotation rows where frames\.parquet says 5"
        ),
    ):
        import_parquet(target, out)


def test_importing_into_an_existing_version_errors_like_other_imports(tmp_path):
    original, _, out = exported(tmp_path)
    with Store(home=tmp_path / "b") as target:
        import_parquet(target, out)
        with pytest.raises(StoreError, match=r"pets:v1 already exists"):
            import_parquet(target, out)
        assert_same_version(target.version("pets:v1"), original)
        result = import_parquet(target, out, version="v2", parent="v1")
        assert result.frames == 3
        v2 = target.version("pets:v2")
        parent = v2.parent
        assert parent is not None
        assert parent.name == "v1"
        assert list(v2.frames()) == list(original.frames())


def test_an_edited_row_fails_the_key_check_unless_its_key_is_cleared(tmp_path):
    original, _, out = exported(tmp_path)
    path = out / "frames.parquet"
    table = pq.read_table(path)
    meta = table["meta"].to_pylist()
    meta[1] = '{"split":"edited"}'
    edited = table.set_column(table.schema.get_field_index("meta"), "meta", pa.array(meta))
    pq.write_table(edited, path)
    with Store(home=tmp_path / "b") as target:
        with pytest.raises(
            FormatError,
            match=r"frame 'b' rebuilds from frames\.parquet and annotations\.parquet to content",
        ):
            import_parquet(target, out, strict=True)
        result = import_parquet(target, out)
        assert result.frames == 2
        assert [(p.record, "content key" in p.message) for p in result.report.problems] == [
            ("b", True)
        ]
        keys = edited["key"].to_pylist()
        keys[1] = None
        pq.write_table(
            edited.set_column(edited.schema.get_field_index("key"), "key", pa.array(keys)),
            path,
        )
        import_parquet(target, out, version="v2")
        assert target.version("pets:v2").frame("b").meta == {"split": "edited"}
        assert target.version("pets:v2").frame("a") == original.frame("a")


def test_a_malformed_rle_string_is_reported_with_file_and_frame(tmp_path):
    _, _, out = exported(tmp_path)
    path = out / "annotations.parquet"
    table = pq.read_table(path)
    counts = table["rle_counts"].to_pylist()
    counts[6] = "0" * 3  # frame c, annotation 1: counts that cannot sum to 7 x 9
    column = table.schema.get_field_index("rle_counts")
    pq.write_table(table.set_column(column, "rle_counts", pa.array(counts)), path)
    with Store(home=tmp_path / "b") as target:
        with pytest.raises(FormatError, match=r"annotations\.parquet: frame 'c': an RLE"):
            import_parquet(target, out, strict=True)
        result = import_parquet(target, out)
        assert (result.frames, [p.record for p in result.report.problems]) == (2, ["c"])


def test_a_blob_neither_store_nor_export_holds_is_reported(tmp_path):
    _, _, out = exported(tmp_path, blobs=False)
    with Store(home=tmp_path / "b") as target:
        with pytest.raises(NotFoundError, match=r"frame 'a' references blob:sha256:.*--with-blobs"):
            import_parquet(target, out, strict=True)
        result = import_parquet(target, out)
        assert result.frames == 1  # b references no blob
        assert sorted(p.record for p in result.report.problems) == ["a", "c"]


def test_export_refuses_a_non_empty_destination_without_overwrite(tmp_path):
    v, _ = build(Store(home=tmp_path / "src"))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(FormatError, match="already exists"):
        export_parquet(v, tmp_path / "out")
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"
    export_parquet(v, tmp_path / "out", overwrite=True)
    assert not (tmp_path / "out" / "keep.txt").exists()
    assert is_parquet_export(tmp_path / "out")
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_without_pyarrow_the_error_names_the_extra(tmp_path, monkeypatch):
    v, _ = build(Store(home=tmp_path / "src"))
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ImportError, match=r'pip install "masklab\[parquet\]"'):
        export_parquet(v, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ---- the command line


def test_cli_exports_to_parquet_and_imports_it_back(tmp_path):
    from masklab.cli import app

    runner = CliRunner()
    with Store(home=tmp_path / "src") as store:
        original, _ = build(store)
    src, dst = ["--home", str(tmp_path / "src")], ["--home", str(tmp_path / "dst")]
    out = tmp_path / "out"
    result = runner.invoke(app, ["export", "pets:v1", str(out), "--to", "parquet", *src, "--json"])
    assert result.exit_code == 0, result.output
    assert (json.loads(result.stdout)["samples"], json.loads(result.stdout)["instances"]) == (3, 17)
    result = runner.invoke(app, ["import", str(out), "--dataset", "pets", *dst, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["version"] == "pets:v1"
    with Store(home=tmp_path / "dst") as target:
        assert_same_version(target.version("pets:v1"), original)
    result = runner.invoke(app, ["import", str(out), "--dataset", "pets", *dst])
    assert result.exit_code == 1
    assert "error: version pets:v1 already exists" in result.stderr
    bare = tmp_path / "bare"
    result = runner.invoke(
        app, ["export", "pets:v1", str(bare), "--to", "parquet", "--no-blobs", *src]
    )
    assert result.exit_code == 0, result.output
    assert not (bare / "blobs").exists()
    (bare / "annotations.parquet").write_bytes(b"garbage")
    result = runner.invoke(app, ["import", str(bare), "--dataset", "x", *dst])
    assert result.exit_code == 1
    assert "annotations.parquet is not a readable Parquet file" in result.stderr


def test_cli_parquet_with_engine_ray_says_it_runs_here(tmp_path):
    from masklab.cli import app

    runner = CliRunner()
    with Store(home=tmp_path / "src") as store:
        original, _ = build(store)
    src, dst = ["--home", str(tmp_path / "src")], ["--home", str(tmp_path / "dst")]
    out = tmp_path / "out"
    args = ["export", "pets:v1", str(out), "--to", "parquet", "--engine", "ray", *src]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "note: a Parquet export runs in this process" in result.stderr
    result = runner.invoke(app, ["import", str(out), "--dataset", "pets", "--engine", "ray", *dst])
    assert result.exit_code == 0, result.output
    assert "note: a Parquet import runs in this process" in result.stderr
    with Store(home=tmp_path / "dst") as target:
        assert_same_version(target.version("pets:v1"), original)
