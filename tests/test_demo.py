"""run_demo: the files it writes, checked by readers that are not masklab's own.

The oracles are pycocotools (decode, frPyObjects + merge, area, toBbox, the COCO loader),
the PNGs themselves (each instance is painted in one flat colour) and OpenCV's connected
components for holes and parts.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask
from pycocotools.coco import COCO

from masklab.demo import CATEGORIES, DemoResult, run_demo

H, W = 480, 640


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoResult:
    return run_demo(tmp_path_factory.mktemp("demo"), seed=0)


def load(result: DemoResult, name: str) -> dict[str, Any]:
    with (result.out_dir / name).open(encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


def rle_pixels(ann: dict[str, Any]) -> np.ndarray:
    return coco_mask.decode(ann["segmentation"])


def polygon_pixels(ann: dict[str, Any]) -> np.ndarray:
    return coco_mask.decode(coco_mask.merge(coco_mask.frPyObjects(ann["segmentation"], H, W)))


def hole_pixels(mask: np.ndarray) -> int:
    """Background pixels not 4-connected to the image border (the mask is 8-connected)."""
    background = np.pad((mask == 0).astype(np.uint8), 1, constant_values=1)
    _, labels = cv2.connectedComponents(background, connectivity=4)
    return int(((labels != labels[0, 0]) & (background == 1)).sum())


def n_parts(mask: np.ndarray) -> int:
    n_labels, _ = cv2.connectedComponents(np.ascontiguousarray(mask), connectivity=8)
    return n_labels - 1


def by_image(doc: dict[str, Any]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {img["id"]: [] for img in doc["images"]}
    for ann in doc["annotations"]:
        out[ann["image_id"]].append(ann)
    return out


def test_demo_is_ok_and_pycocotools_agrees(demo_run: DemoResult) -> None:
    assert demo_run.ok, demo_run.problems
    assert demo_run.exact_rle
    assert demo_run.exact_polygons
    assert demo_run.pycocotools_agrees is True
    assert demo_run.pycocotools_version is not None


def test_demo_writes_four_rgb_pngs_listed_in_both_files(demo_run: DemoResult) -> None:
    names = sorted(p.name for p in (demo_run.out_dir / "images").iterdir())
    assert names == [f"scene_{i}.png" for i in range(4)]
    for name in ("instances_rle.json", "instances_polygons.json"):
        images = load(demo_run, name)["images"]
        assert [(i["id"], i["file_name"], i["height"], i["width"]) for i in images] == [
            (k + 1, f"scene_{k}.png", H, W) for k in range(4)
        ]
    with Image.open(demo_run.out_dir / "images" / "scene_0.png") as im:
        assert (im.mode, im.size) == ("RGB", (W, H))


def test_annotation_ids_start_at_1_and_categories_are_1_to_3(demo_run: DemoResult) -> None:
    for name in ("instances_rle.json", "instances_polygons.json"):
        doc = load(demo_run, name)
        ids = [a["id"] for a in doc["annotations"]]
        assert ids == list(range(1, len(ids) + 1))
        assert [(c["id"], c["name"]) for c in doc["categories"]] == [
            (1, "cell"),
            (2, "leaf"),
            (3, "stone"),
        ]
        assert {a["category_id"] for a in doc["annotations"]} == {1, 2, 3}
        assert {a["iscrowd"] for a in doc["annotations"]} == {0}
    assert CATEGORIES == ("cell", "leaf", "stone")


def test_rle_file_holds_compressed_strings(demo_run: DemoResult) -> None:
    for ann in load(demo_run, "instances_rle.json")["annotations"]:
        seg = ann["segmentation"]
        assert seg["size"] == [H, W]
        assert isinstance(seg["counts"], str)


def test_polygon_file_holds_flat_coordinate_lists(demo_run: DemoResult) -> None:
    for ann in load(demo_run, "instances_polygons.json")["annotations"]:
        rings = ann["segmentation"]
        assert rings
        assert all(len(r) >= 6 and len(r) % 2 == 0 for r in rings)


def test_each_rle_annotation_is_one_flat_colour_region_of_its_png(demo_run: DemoResult) -> None:
    """Each instance is painted in its own colour: decoded pixels == that colour's pixels."""
    doc = load(demo_run, "instances_rle.json")
    files = {img["id"]: img["file_name"] for img in doc["images"]}
    for image_id, anns in by_image(doc).items():
        png = np.asarray(Image.open(demo_run.out_dir / "images" / files[image_id]))
        for ann in anns:
            mask = rle_pixels(ann).astype(bool)
            colours = np.unique(png[mask], axis=0)
            assert len(colours) == 1, f"annotation {ann['id']}"
            assert np.array_equal((png == colours[0]).all(axis=-1), mask), f"annotation {ann['id']}"


def test_visible_masks_of_one_image_do_not_overlap(demo_run: DemoResult) -> None:
    for anns in by_image(load(demo_run, "instances_rle.json")).values():
        stack = np.stack([rle_pixels(a) for a in anns])
        assert stack.sum(axis=0).max() == 1


def test_polygon_file_rasterises_like_rle_file_in_the_coco_loader(demo_run: DemoResult) -> None:
    rle_coco = COCO(str(demo_run.out_dir / "instances_rle.json"))
    poly_coco = COCO(str(demo_run.out_dir / "instances_polygons.json"))
    assert sorted(rle_coco.anns) == sorted(poly_coco.anns)
    for ann_id in rle_coco.anns:
        rle_mask = rle_coco.annToMask(rle_coco.anns[ann_id])
        poly_mask = poly_coco.annToMask(poly_coco.anns[ann_id])
        assert np.array_equal(rle_mask, poly_mask), f"annotation {ann_id}"


def test_area_and_bbox_match_pycocotools(demo_run: DemoResult) -> None:
    for name in ("instances_rle.json", "instances_polygons.json"):
        for ann, ref in zip(
            load(demo_run, name)["annotations"],
            load(demo_run, "instances_rle.json")["annotations"],
            strict=True,
        ):
            assert ann["area"] == int(coco_mask.area(ref["segmentation"]))
            assert ann["bbox"] == coco_mask.toBbox(ref["segmentation"]).tolist()


def test_holes_survive_in_the_polygon_file(demo_run: DemoResult) -> None:
    """Keyholed rings keep holes through pycocotools' union of rings; the rows count them."""
    doc = load(demo_run, "instances_polygons.json")
    per_image = [
        sum(hole_pixels(polygon_pixels(a)) > 0 for a in anns) for anns in by_image(doc).values()
    ]
    assert sum(per_image) >= 1
    assert [row.holes for row in demo_run.images] == per_image


def test_multi_part_instances_are_counted_per_image(demo_run: DemoResult) -> None:
    doc = load(demo_run, "instances_rle.json")
    per_image = [sum(n_parts(rle_pixels(a)) > 1 for a in anns) for anns in by_image(doc).values()]
    assert sum(per_image) >= 1
    assert [row.multi_part for row in demo_run.images] == per_image


def test_rows_count_instances_bytes_and_vertices_of_the_files(demo_run: DemoResult) -> None:
    rle_doc = by_image(load(demo_run, "instances_rle.json"))
    poly_doc = by_image(load(demo_run, "instances_polygons.json"))
    for k, row in enumerate(demo_run.images):
        anns = rle_doc[k + 1]
        assert row.file == f"scene_{k}.png"
        assert row.instances == len(anns)
        assert row.rle_bytes == sum(len(a["segmentation"]["counts"]) for a in anns)
        assert row.polygon_vertices == sum(
            len(ring) // 2 for a in poly_doc[k + 1] for ring in a["segmentation"]
        )
    assert demo_run.instances == sum(len(a) for a in rle_doc.values())


def test_to_dict_is_json_with_totals_of_the_rows(demo_run: DemoResult) -> None:
    data = json.loads(json.dumps(demo_run.to_dict()))
    assert data["ok"] is True
    assert data["out_dir"] == str(demo_run.out_dir)
    assert len(data["images"]) == 4
    totals = data["totals"]
    for key in ("instances", "holes", "multi_part", "rle_bytes", "polygon_vertices"):
        assert totals[key] == sum(row[key] for row in data["images"])
    assert all((demo_run.out_dir / f).is_file() for f in data["files"])
    assert data["problems"] == []


def test_same_seed_writes_the_same_bytes(tmp_path: Path) -> None:
    a, b = run_demo(tmp_path / "a", seed=3), run_demo(tmp_path / "b", seed=3)
    for rel in a.to_dict()["files"]:
        assert (a.out_dir / rel).read_bytes() == (b.out_dir / rel).read_bytes(), rel


def test_other_seed_draws_other_scenes(tmp_path: Path) -> None:
    a, b = run_demo(tmp_path / "a", seed=0), run_demo(tmp_path / "b", seed=1)
    assert b.ok, b.problems
    first = "images/scene_0.png"
    assert (a.out_dir / first).read_bytes() != (b.out_dir / first).read_bytes()


def test_rerun_overwrites_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    run_demo(tmp_path, seed=0)
    result = run_demo(tmp_path, seed=0)
    assert result.ok
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "converted",
        "images",
        "instances_polygons.json",
        "instances_rle.json",
    ]
    assert sorted(p.name for p in (tmp_path / "converted").iterdir()) == [
        "coco-panoptic",
        "voc",
        "yolo-seg",
    ]


def test_without_pycocotools_the_cross_check_is_not_applicable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pycocotools", None)  # import now raises ImportError
    result = run_demo(tmp_path, seed=0)
    assert result.ok, result.problems
    assert result.pycocotools_version is None
    assert result.pycocotools_agrees is None
    assert {row.pycocotools_agrees for row in result.images} == {None}
    assert result.to_dict()["totals"]["pycocotools_agrees"] is None


def test_a_failed_check_makes_the_result_not_ok(demo_run: DemoResult) -> None:
    broken = replace(demo_run, problems=("annotation 3 in instances_rle.json decodes to other",))
    assert not broken.ok
    assert broken.to_dict()["ok"] is False


def test_demo_converts_and_reports_exactly_what_each_format_cannot_hold(tmp_path):
    """VOC and panoptic keep every pixel; YOLO reports one hole loss per instance with a
    hole and one parts loss per multi-part instance: the same counts the scenes have."""
    from masklab.demo import run_demo

    result = run_demo(tmp_path, seed=2)
    by_target = {c.target: c for c in result.conversions}
    assert set(by_target) == {"voc", "coco-panoptic", "yolo-seg"}
    for target in ("voc", "coco-panoptic"):
        assert by_target[target].exact == result.instances
        assert by_target[target].losses == {}
    yolo = by_target["yolo-seg"]
    assert yolo.losses == {"holes": result.holes, "parts": result.multi_part}
    assert len(list((tmp_path / "converted" / "voc" / "SegmentationClass").glob("*.png"))) == 4
    assert result.ok
