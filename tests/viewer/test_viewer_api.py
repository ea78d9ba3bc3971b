"""The viewer's JSON API against stores built here: the demo's versions (demo:v1 imported from
a COCO RLE file, demo:v2 its edited child) and a hand-drawn store with class-map and alpha
masks, polygons, boxes and a frame id holding '/' and a space.

Oracles: the COCO json the demo wrote (ids, counts, masks decoded by pycocotools), arrays drawn
in the tests, the image files on disk, and the store read back directly.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as cocomask

from masklab.core.labels import LabelMap
from masklab.demo import RLE_FILE, run_demo
from masklab.demo_store import SHIFT_X, run_store_demo
from masklab.store import Annotation, Frame, Store
from masklab.store.model import Source, blob_uri
from masklab.viewer import create_app

with warnings.catch_warnings():  # starlette 1.x prefers httpx2 and says so on import
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

BASE = "http://127.0.0.1:8765"
SLASHED = "train/a b"  # a frame id that is not one plain path segment


def seg(text: str) -> str:
    """One path segment, as the page's encodeURIComponent writes it."""
    return quote(text, safe="")


def decode(rle: dict) -> np.ndarray:
    """pycocotools' decoding of a wire RLE."""
    return cocomask.decode({"size": rle["size"], "counts": rle["counts"].encode()})


def client(store: Store, *, writable: bool = False) -> TestClient:
    return TestClient(create_app(store, writable=writable), base_url=BASE)


# ---- the demo store (read-only tests share it)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("viewer-demo")
    out = root / "demo"
    run_demo(out)
    result = run_store_demo(root / "home", out / RLE_FILE, out)
    assert not result.problems
    store = Store(home=root / "home")
    coco = json.loads((out / RLE_FILE).read_text())
    yield store, coco, out
    store.close()


@pytest.fixture(scope="module")
def api(demo):
    return client(demo[0])


def coco_by_image(coco: dict) -> dict[str, list[dict]]:
    """The COCO annotations of each image, by its file name's stem (the frame id)."""
    stems = {i["id"]: Path(i["file_name"]).stem for i in coco["images"]}
    out: dict[str, list[dict]] = {s: [] for s in stems.values()}
    for a in coco["annotations"]:
        out[stems[a["image_id"]]].append(a)
    return out


def test_datasets_lists_the_demo_with_its_two_versions(api):
    assert api.get("/api/datasets").json() == [{"name": "demo", "versions": 2}]


def test_versions_report_status_parent_counts_and_label_map(api, demo):
    _, coco, _ = demo
    v1, v2 = api.get("/api/datasets/demo/versions").json()
    n = len(coco["annotations"])
    assert (v1["name"], v1["ref"], v1["status"], v1["parent"]) == (
        "v1",
        "demo:v1",
        "published",
        None,
    )
    assert (v2["name"], v2["status"], v2["parent"]) == ("v2", "draft", "v1")
    assert (v1["frames"], v1["instances"]) == (len(coco["images"]), n)
    assert (v2["frames"], v2["instances"]) == (len(coco["images"]), n - 1)  # v2 drops one
    names = {c["id"]: c["name"] for c in coco["categories"]}
    assert {lab["id"]: lab["names"][0] for lab in v1["label_map"]["labels"]} == names
    renamed = {**names, **{i: "pebble" for i, n in names.items() if n == "stone"}}
    assert {lab["id"]: lab["names"][0] for lab in v2["label_map"]["labels"]} == renamed


def test_frame_pages_walk_the_version_in_order(api, demo):
    _, coco, _ = demo
    ids = [Path(i["file_name"]).stem for i in coco["images"]]
    seen = []
    for offset in range(0, len(ids), 3):
        page = api.get(f"/api/versions/demo/v1/frames?offset={offset}&limit=3").json()
        assert (page["total"], page["offset"], page["limit"]) == (len(ids), offset, 3)
        seen += [f["id"] for f in page["frames"]]
    assert seen == ids


def test_frame_summaries_count_instances_and_name_labels(api, demo):
    _, coco, _ = demo
    names = {c["id"]: c["name"] for c in coco["categories"]}
    anns = coco_by_image(coco)
    sizes = {Path(i["file_name"]).stem: (i["width"], i["height"]) for i in coco["images"]}
    for f in api.get("/api/versions/demo/v1/frames").json()["frames"]:
        assert f["instances"] == len(anns[f["id"]])
        assert f["labels"] == sorted({names[a["category_id"]] for a in anns[f["id"]]})
        assert (f["width"], f["height"]) == sizes[f["id"]]
        assert f["sources"] == 1


def test_where_filters_with_the_store_grammar(api, demo):
    _, coco, _ = demo
    names = {c["id"]: c["name"] for c in coco["categories"]}
    expected = [
        frame
        for frame, anns in coco_by_image(coco).items()
        if sum(names[a["category_id"]] == "cell" for a in anns) >= 4
    ]
    assert 0 < len(expected) < len(coco["images"])  # the filter must select something
    page = api.get("/api/versions/demo/v1/frames", params={"where": "count(cell)>=4"}).json()
    assert page["total"] == len(expected)
    assert [f["id"] for f in page["frames"]] == expected


def test_a_bad_query_answers_400_with_the_parsers_message(api):
    r = api.get("/api/versions/demo/v1/frames", params={"where": "colour=red"})
    assert r.status_code == 400
    assert "unknown field 'colour'" in r.json()["detail"]


def test_frame_annotations_decode_to_the_coco_masks(api, demo):
    _, coco, _ = demo
    expected = coco_by_image(coco)["scene_2"]
    frame = api.get("/api/versions/demo/v1/frames/scene_2").json()
    assert [a["instance_id"] for a in frame["annotations"]] == [a["id"] for a in expected]
    for got, want in zip(frame["annotations"], expected, strict=True):
        seg_ = want["segmentation"]
        want_rle = {"size": seg_["size"], "counts": seg_["counts"].encode()}
        assert np.array_equal(decode(got["rle"]), cocomask.decode(want_rle))
        assert got["area"] == int(cocomask.area(want_rle))
        assert got["bbox"] == [float(v) for v in cocomask.toBbox(want_rle)]


def test_frame_links_its_source_image_which_serves_the_file(api, demo):
    _, _, out = demo
    frame = api.get("/api/versions/demo/v1/frames/scene_1").json()
    (source,) = frame["sources"]
    r = api.get(source["image"])
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/png"
    assert r.content == (out / "images" / "scene_1.png").read_bytes()


def test_thumbnail_is_a_jpeg_fitting_the_size(api):
    r = api.get("/api/versions/demo/v1/frames/scene_0/thumbnail", params={"size": 64})
    assert r.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(r.content)) as im:
        assert im.format == "JPEG"
        assert im.size == (64, 48)  # 640 x 480 scaled to fit 64


def test_diff_highlights_the_moved_mask_pixels(api, demo):
    _, coco, _ = demo
    first = coco_by_image(coco)["scene_0"][0]
    before = cocomask.decode(first["segmentation"])
    moved = np.zeros_like(before)
    moved[:, SHIFT_X:] = before[:, :-SHIFT_X]
    d = api.get("/api/diff/demo/v1/v2/frames/scene_0").json()
    assert (d["frame"], d["a"], d["b"], d["status"]) == ("scene_0", "demo:v1", "demo:v2", "changed")
    changes = {c["mask"]: c for c in d["changes"]}
    change = changes[f"instance {first['id']}"]
    assert change["kind"] == "changed"
    assert change["pixels"] == int(np.count_nonzero(before != moved))
    assert np.array_equal(decode(change["rle"]), (before != moved).astype(np.uint8))


def test_diff_reports_the_dropped_annotation_and_the_renamed_ones(api, demo):
    _, coco, _ = demo
    names = {c["id"]: c["name"] for c in coco["categories"]}
    anns = coco_by_image(coco)["scene_1"]
    dropped = anns[-1]
    d = api.get("/api/diff/demo/v1/v2/frames/scene_1").json()
    changes = {c["mask"]: c for c in d["changes"]}
    gone = changes.pop(f"instance {dropped['id']}")
    assert (gone["kind"], gone["pixels"]) == ("removed", dropped["area"])
    assert np.array_equal(decode(gone["rle"]), cocomask.decode(dropped["segmentation"]))
    stones = {f"instance {a['id']}" for a in anns[:-1] if names[a["category_id"]] == "stone"}
    assert set(changes) == stones
    assert {(c["kind"], c["pixels"], tuple(c["labels"])) for c in changes.values()} == {
        ("relabeled", 0, ("pebble",))
    }


# ---- a hand-drawn store: pixel and alpha masks, polygons, boxes, odd ids

CLASSES = np.array(
    [
        [0, 0, 0, 0, 1, 1, 1, 1],
        [0, 2, 2, 0, 1, 1, 1, 1],
        [0, 2, 2, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 2, 2, 0],
        [1, 1, 0, 0, 0, 2, 2, 0],
        [1, 1, 0, 0, 0, 0, 0, 0],
    ],
    np.uint8,
)
ALPHA = np.array([[0, 128, 255, 255, 128, 0, 0, 0]] * 6, np.uint8)
POLYGON = [1.0, 1.0, 6.0, 1.0, 6.0, 5.0, 1.0, 5.0]
BOX = (0.5, 1.0, 2.0, 3.0)


def png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    return buf.getvalue()


def hand_store(home: Path) -> tuple[Store, bytes]:
    """hand:v1 (published) and its draft child hand:v2, whose class map differs in 3 pixels;
    the image bytes of the frame SLASHED."""
    store = Store(home=home)
    ds = store.create_dataset("hand")
    v1 = ds.create_version("v1")
    v1.set_label_map(LabelMap.from_names(["background", "road", "car"], background=0))
    image = png(np.random.default_rng(0).integers(0, 255, (6, 8, 3), dtype=np.uint8))
    uri = blob_uri(store.blobs.put(image))
    masks = {"classes": store.put_mask(CLASSES), "alpha": store.put_mask(ALPHA, mode="alpha")}
    anns = (
        Annotation(labels=("car",), class_id=2, polygons=(tuple(POLYGON),), instance_id=1),
        Annotation(labels=("road",), class_id=1, box=BOX, instance_id=2),
    )
    frames = [
        Frame(
            SLASHED, (Source(uri, width=8, height=6, content_type="image/png", masks=masks),), anns
        ),
        Frame.single("masks only", None, width=8, height=6, masks={"m": masks["classes"]}),
        Frame.single("same", uri, width=8, height=6),
    ]
    v1.add_frames(frames)
    v1.publish()
    v2 = ds.create_version("v2", parent="v1")
    edited = CLASSES.copy()
    edited[0, 0], edited[5, 7], edited[3, 5] = 2, 1, 0
    masks2 = {**masks, "classes": store.put_mask(edited)}
    v2.update_frames(
        [
            Frame(
                SLASHED,
                (Source(uri, width=8, height=6, content_type="image/png", masks=masks2),),
                anns,
            )
        ]
    )
    v2.commit()
    return store, image


@pytest.fixture
def hand(tmp_path):
    store, image = hand_store(tmp_path / "hand")
    yield store, image
    store.close()


def frame_path(version: str, frame_id: str) -> str:
    return f"/api/versions/hand/{version}/frames/{seg(frame_id)}"


def test_pixel_mask_travels_as_one_rle_per_class(hand):
    frame = client(hand[0]).get(frame_path("v1", SLASHED)).json()
    (source,) = frame["sources"]
    masks = {m["id"]: m for m in source["masks"]}
    pixel = masks["classes"]
    assert (pixel["mode"], pixel["size"]) == ("pixel", [6, 8])
    assert [v["value"] for v in pixel["values"]] == [0, 1, 2]
    for v in pixel["values"]:
        assert np.array_equal(decode(v["rle"]), (v["value"] == CLASSES).astype(np.uint8))


def test_alpha_mask_travels_as_one_rle_per_opacity(hand):
    frame = client(hand[0]).get(frame_path("v1", SLASHED)).json()
    alpha = {m["id"]: m for m in frame["sources"][0]["masks"]}["alpha"]
    assert alpha["mode"] == "alpha"
    assert [v["value"] for v in alpha["values"]] == [0, 128, 255]
    for v in alpha["values"]:
        assert np.array_equal(decode(v["rle"]), (v["value"] == ALPHA).astype(np.uint8))


def test_polygons_are_rasterised_as_pycocotools_does_and_boxes_stay_boxes(hand):
    poly, box = client(hand[0]).get(frame_path("v1", SLASHED)).json()["annotations"]
    want = cocomask.merge(cocomask.frPyObjects([POLYGON], 6, 8))
    assert poly["geometry"] == "polygons"
    assert np.array_equal(decode(poly["rle"]), cocomask.decode(want))
    assert poly["area"] == int(cocomask.area(want))
    assert (box["geometry"], box["rle"], box["area"]) == ("box", None, None)
    assert box["bbox"] == list(BOX)


def test_an_id_with_slash_and_space_is_one_segment_and_its_links_work(hand):
    store, image = hand
    c = client(store)
    page = c.get("/api/versions/hand/v1/frames").json()
    assert [f["id"] for f in page["frames"]] == [SLASHED, "masks only", "same"]
    frame = c.get(frame_path("v1", SLASHED)).json()
    assert frame["id"] == SLASHED
    assert c.get(frame["sources"][0]["image"]).content == image
    thumb = c.get(page["frames"][0]["thumbnail"])
    assert thumb.headers["content-type"] == "image/jpeg"


def test_a_frame_without_image_has_no_image_link_and_a_mask_thumbnail(hand):
    store, _ = hand
    c = client(store)
    frame = c.get(frame_path("v1", "masks only")).json()
    assert frame["sources"][0]["image"] is None
    r = c.get(frame_path("v1", "masks only") + "/thumbnail", params={"size": 16})
    assert r.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(r.content)) as im:
        painted = np.asarray(im.convert("RGB"))
    colors = {0: (0, 0, 0), 1: (128, 0, 0), 2: (0, 128, 0)}  # VOC colours of ids 0, 1, 2
    expected = np.array([[colors[int(v)] for v in row] for row in CLASSES], np.uint8)
    assert painted.shape == (6, 8, 3)  # already under 16 px: kept as is
    assert np.array_equal(painted, expected)


def test_diff_of_a_class_map_highlights_the_changed_pixels(hand):
    d = client(hand[0]).get(f"/api/diff/hand/v1/v2/frames/{seg(SLASHED)}").json()
    assert d["status"] == "changed"
    (change,) = d["changes"]
    expected = np.zeros((6, 8), np.uint8)
    expected[0, 0] = expected[5, 7] = expected[3, 5] = 1
    assert (change["kind"], change["mask"], change["pixels"]) == ("changed", "default/classes", 3)
    assert np.array_equal(decode(change["rle"]), expected)
    assert change["labels"] == ["background", "road", "car"]  # 0->2, 0->1, 2->0


def test_diff_of_an_unchanged_frame_says_same(hand):
    d = client(hand[0]).get("/api/diff/hand/v1/v2/frames/same").json()
    assert (d["status"], d["changes"]) == ("same", [])


def test_diff_of_a_frame_only_in_b_says_added(hand):
    store, _ = hand
    v2 = store.version("hand:v2")
    v2.add_frames([Frame.single("new", None, annotations=[Annotation(labels=("car",), box=BOX)])])
    v2.commit()
    d = client(store).get("/api/diff/hand/v1/v2/frames/new").json()
    assert d["status"] == "added"
    assert [(c["kind"], c["labels"]) for c in d["changes"]] == [("added", ["car"])]
    back = client(store).get("/api/diff/hand/v2/v1/frames/new").json()
    assert back["status"] == "removed"


def test_colors_are_saved_to_a_draft_versions_label_map(hand):
    store, _ = hand
    r = client(store, writable=True).put(
        "/api/versions/hand/v2/colors", json={"colors": {"2": [10, 20, 30], "0": [1, 2, 3]}}
    )
    assert r.status_code == 200
    colors = {lab["id"]: lab["color"] for lab in r.json()["labels"]}
    assert colors == {0: [1, 2, 3], 1: [128, 0, 0], 2: [10, 20, 30]}
    stored = store.version("hand:v2").label_map  # read back from the catalog
    assert [lab.color for lab in stored] == [(1, 2, 3), (128, 0, 0), (10, 20, 30)]
    assert [lab.names for lab in stored] == [("background",), ("road",), ("car",)]
    listed = client(store).get("/api/datasets/hand/versions").json()[1]["label_map"]
    assert listed == r.json()


def test_colors_of_a_published_version_answer_409(hand):
    store, _ = hand
    r = client(store, writable=True).put(
        "/api/versions/hand/v1/colors", json={"colors": {"1": [1, 1, 1]}}
    )
    assert r.status_code == 409
    assert store.version("hand:v1").label_map.by_id(1).color == (128, 0, 0)


@pytest.mark.parametrize(
    "colors",
    [
        {"7": [1, 2, 3]},  # no such label
        {"car": [1, 2, 3]},  # ids, not names
        {"1": [256, 0, 0]},
        {"1": [-1, 0, 0]},
        {"1": [1, 2]},
        {"1": [1, 2, 3, 4]},
        {"1": ["1", 2, 3]},
        {"1": [1.5, 2, 3]},
        {"1": [0, 128, 0]},  # label 2's colour: masks read through colours would be ambiguous
    ],
    ids=str,
)
def test_bad_colors_answer_422_and_change_nothing(hand, colors):
    store, _ = hand
    before = store.version("hand:v2").label_map
    r = client(store, writable=True).put("/api/versions/hand/v2/colors", json={"colors": colors})
    assert r.status_code == 422, r.text
    assert store.version("hand:v2").label_map == before


def test_the_page_and_its_files_are_served_from_the_package():
    import masklab.viewer

    folder = Path(masklab.viewer.__file__).parent / "static"
    with Store() as store:  # this test's own MASKLAB_HOME
        c = client(store)
        index = c.get("/")
        assert index.status_code == 200
        assert index.headers["content-type"].startswith("text/html")
        if (folder / "index.html").is_file():
            assert index.content == (folder / "index.html").read_bytes()
        for path in sorted(
            p for p in folder.rglob("*") if p.is_file() and p.suffix in (".js", ".css")
        ):
            name = path.relative_to(folder).as_posix()
            r = c.get(f"/static/{name}")
            assert r.status_code == 200, name
            assert r.content == path.read_bytes()


def test_a_class_map_with_many_ids_decodes_value_by_value(tmp_path):
    ids = np.random.default_rng(3).integers(0, 300, (12, 10)).astype(np.uint16)
    with Store(home=tmp_path / "many") as store:
        v = store.create_dataset("many").create_version("v1")
        v.add_frames([Frame.single("f", None, width=10, height=12, masks=store.put_mask(ids))])
        v.commit()
        (mask,) = client(store).get("/api/versions/many/v1/frames/f").json()["sources"][0]["masks"]
    assert [x["value"] for x in mask["values"]] == np.unique(ids).tolist()
    for x in mask["values"]:
        assert np.array_equal(decode(x["rle"]), (ids == x["value"]).astype(np.uint8))
