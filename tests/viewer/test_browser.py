"""The viewer's page in headless Chromium (Playwright) against the real ``create_app``.

Oracles are the store itself (annotations decoded with pycocotools, label colours from the
version's label map), the stored image files read with Pillow, and NumPy renderings written
here; the canvas is read back with ``getImageData``. Colours at 100% opacity compare exactly;
blends allow 2 levels for the canvas's premultiplied-alpha rounding. Each page is also
screenshotted into the ``screenshots`` folder (``$MASKLAB_TEST_OUTPUT/screenshots``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask

from masklab.core.labels import Label, LabelMap
from masklab.store import Frame, Source, Store
from masklab.store.query import DataView

pytestmark = pytest.mark.browser

READY = "#app[data-state=ready]"
BLEND_TOLERANCE = 2
DIFF_COLOR = (255, 0, 64)  # viewer.js DIFF_COLOR
TINT = (255, 0, 255)  # viewer.js: the alpha tint's default


# ---- helpers


def route(kind: str, *ids: str) -> str:
    return f"#/{kind}/" + "/".join(quote(s, safe="") for s in ids)


def goto(page: Any, base: str, hash_route: str) -> None:
    page.goto(f"{base}/{hash_route}")
    page.wait_for_selector(READY)


def rerendered(page: Any, action: Any) -> None:
    """Run `action` (which changes the route) and wait for the page to render again."""
    before = page.evaluate("window.masklab.rendered || 0")
    action()
    page.wait_for_function("n => (window.masklab.rendered || 0) > n", arg=before)


def pixel(page: Any, x: int, y: int, selector: str = "canvas.view") -> tuple[int, ...]:
    rgba = page.eval_on_selector(
        selector,
        "(c, [x, y]) => Array.from(c.getContext('2d').getImageData(x, y, 1, 1).data)",
        [x, y],
    )
    return tuple(rgba[:3])


def set_opacity(page: Any, percent: int) -> None:
    page.eval_on_selector(
        "#opacity",
        "(el, v) => { el.value = String(v); el.dispatchEvent(new Event('input')); }",
        percent,
    )


def hover(page: Any, x: int, y: int, selector: str = "canvas.view") -> str:
    box = page.locator(selector).bounding_box()
    w, h = page.eval_on_selector(selector, "c => [c.width, c.height]")
    page.mouse.move(
        box["x"] + (x + 0.5) * box["width"] / w, box["y"] + (y + 0.5) * box["height"] / h
    )
    text: str = page.inner_text("#readout")
    return text


def blend(under: Any, over: Any, alpha: float) -> np.ndarray:
    return np.asarray(under, float) * (1 - alpha) + np.asarray(over, float) * alpha


def assert_close(got: tuple[int, ...], want: Any) -> None:
    diff = np.abs(np.asarray(got, float) - np.asarray(want, float))
    assert diff.max() <= BLEND_TOLERANCE, f"canvas {got}, expected {np.round(want, 1).tolist()}"


def image_of(uri: str) -> np.ndarray:
    with Image.open(uri) as im:
        return np.asarray(im.convert("RGB"))


class KnownInstance:
    """A demo annotation, a pixel where it is the topmost mask, its label colour and image."""

    def __init__(self, store: Store, ref: str) -> None:
        version = store.version(ref)
        frame = version.frame(version.frame_ids()[0])
        self.frame_id = frame.id
        by_name = {n: lab for lab in version.label_map for n in lab.names}
        masks = [
            coco_mask.decode({"size": list(a.rle.size), "counts": a.rle.to_coco()["counts"]})
            for a in frame.annotations
            if a.rle is not None
        ]
        anns = [a for a in frame.annotations if a.rle is not None]
        stack = np.stack(masks).astype(bool)
        for i, ann in enumerate(anns):
            alone = stack[i] & ~stack[i + 1 :].any(axis=0)
            if ann.labels and ann.labels[0] in by_name and alone.sum() > 50:
                ys, xs = np.nonzero(alone)
                centre = np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2)
                self.x, self.y = int(xs[centre]), int(ys[centre])
                self.annotation = ann
                self.alone = alone
                self.label = by_name[ann.labels[0]]
                self.image = image_of(frame.sources[0].uri or "")
                self.under = tuple(int(v) for v in self.image[self.y, self.x])
                return
        raise AssertionError(f"{ref}: no annotation is topmost on more than 50 pixels")


# ---- lists


def test_datasets_and_versions_pages_show_the_demo_versions(
    page: Any, serve: Any, demo_store: Store, screenshots: Path
) -> None:
    base = serve(demo_store)
    goto(page, base, "#/datasets")
    assert page.locator(".datasets li[data-name=demo]").inner_text().startswith("demo")
    page.screenshot(path=screenshots / "datasets.png", full_page=True)
    page.click(".datasets a")
    page.wait_for_selector(".versions")
    rows = page.locator(".versions tbody tr")
    got = {
        rows.nth(i).get_attribute("data-version"): rows.nth(i).locator("td").all_inner_texts()[:5]
        for i in range(rows.count())
    }
    want = {
        v.name: [
            v.name,
            v.status,
            v.parent.name if v.parent else "—",
            str(v.frame_count),
            str(v.instance_count),
        ]
        for v in demo_store.dataset("demo").versions()
    }
    assert got == want
    assert want["v1"][1] == "published"
    assert want["v2"][1] == "draft"
    names = page.locator(".versions tr[data-version=v2] .legend .names").all_inner_texts()
    assert names == [", ".join(lab.names) for lab in demo_store.version("demo:v2").label_map]
    # colours are editable on the draft only
    assert page.locator("tr[data-version=v2] input[type=color]").count() == len(names)
    assert page.locator("tr[data-version=v1] input[type=color]").count() == 0
    page.screenshot(path=screenshots / "versions.png", full_page=True)


def test_frame_grid_filters_with_the_store_query_and_reports_bad_queries(
    page: Any, serve: Any, demo_store: Store, screenshots: Path
) -> None:
    base = serve(demo_store)
    goto(page, base, route("v", "demo", "v2"))
    all_ids = page.locator(".card").evaluate_all("cs => cs.map(c => c.dataset.frame)")
    assert all_ids == demo_store.version("demo:v2").frame_ids()
    page.screenshot(path=screenshots / "frames.png", full_page=True)

    query = "count(leaf)>=2"
    want = DataView(demo_store.version("demo:v2")).where(count={"leaf": (2, None)}).frame_ids()
    assert 0 < len(want) < len(all_ids)  # the filter must narrow the grid
    page.fill("#where", query)
    rerendered(page, lambda: page.press("#where", "Enter"))
    got = page.locator(".card").evaluate_all("cs => cs.map(c => c.dataset.frame)")
    assert got == want
    assert page.inner_text("#total").startswith(f"{len(want)} frame")

    page.fill("#where", "area>>3")
    rerendered(page, lambda: page.press("#where", "Enter"))
    assert page.locator("#query-error").inner_text().strip()
    assert page.locator(".card").count() == 0


# ---- the frame viewer on the demo


def test_frame_paints_a_known_instance_in_its_label_colour(
    page: Any, serve: Any, demo_store: Store, screenshots: Path
) -> None:
    known = KnownInstance(demo_store, "demo:v2")
    base = serve(demo_store)
    goto(page, base, route("f", "demo", "v2", known.frame_id))
    page.screenshot(path=screenshots / "frame.png", full_page=True)
    page.set_checked("#outline", False)
    set_opacity(page, 100)
    assert pixel(page, known.x, known.y) == known.label.color
    set_opacity(page, 50)
    assert_close(pixel(page, known.x, known.y), blend(known.under, known.label.color, 0.5))


def test_toggling_a_label_off_removes_its_instances(
    page: Any, serve: Any, demo_store: Store
) -> None:
    known = KnownInstance(demo_store, "demo:v2")
    base = serve(demo_store)
    goto(page, base, route("f", "demo", "v2", known.frame_id))
    set_opacity(page, 100)
    assert pixel(page, known.x, known.y) == known.label.color
    page.set_checked(f".legend input.toggle[data-label='{known.label.id}']", False)
    assert pixel(page, known.x, known.y) == known.under
    page.set_checked(f".legend input.toggle[data-label='{known.label.id}']", True)
    assert pixel(page, known.x, known.y) == known.label.color


def test_hover_reads_out_the_instance_under_the_cursor(
    page: Any, serve: Any, demo_store: Store
) -> None:
    known = KnownInstance(demo_store, "demo:v2")
    base = serve(demo_store)
    goto(page, base, route("f", "demo", "v2", known.frame_id))
    text = hover(page, known.x, known.y)
    ann = known.annotation
    # mouse events land on whole CSS pixels: the page may read out a neighbour of the target
    found = re.search(r"x (\d+), y (\d+)", text)
    assert found, text
    x, y = int(found[1]), int(found[2])
    assert abs(x - known.x) <= 1, (x, y)
    assert abs(y - known.y) <= 1, (x, y)
    assert known.alone[y, x]  # the oracle: the annotation is the topmost one there too
    top = text.splitlines()[2]  # source line, position line, then the topmost instance
    assert f"instance {ann.instance_id}:" in top
    assert ", ".join(ann.labels) in top
    assert f"class {ann.class_id}" in top
    assert f"area {ann.area} px" in top


def test_edited_colour_is_saved_to_the_draft_and_survives_a_reload(
    page: Any, serve: Any, demo_store_copy: Store
) -> None:
    known = KnownInstance(demo_store_copy, "demo:v2")
    base = serve(demo_store_copy, writable=True)
    goto(page, base, route("f", "demo", "v2", known.frame_id))
    new = (17, 200, 99) if known.label.color != (17, 200, 99) else (99, 17, 200)
    page.fill(f"input.color[data-label='{known.label.id}']", "#{:02x}{:02x}{:02x}".format(*new))
    page.wait_for_function("() => /saved/.test(document.querySelector('#status').textContent)")
    page.reload()
    page.wait_for_selector(READY)
    value = page.input_value(f"input.color[data-label='{known.label.id}']")
    assert value == "#{:02x}{:02x}{:02x}".format(*new)
    set_opacity(page, 100)
    assert pixel(page, known.x, known.y) == new
    stored = demo_store_copy.version("demo:v2").refresh().label_map.by_id(known.label.id)
    assert stored.color == new


def test_colour_edit_is_refused_by_a_read_only_server(
    page: Any, serve: Any, demo_store_copy: Store
) -> None:
    known = KnownInstance(demo_store_copy, "demo:v2")
    base = serve(demo_store_copy)  # not writable
    goto(page, base, route("f", "demo", "v2", known.frame_id))
    page.fill(f"input.color[data-label='{known.label.id}']", "#0a0b0c")
    page.wait_for_function("() => /not saved/.test(document.querySelector('#status').textContent)")
    stored = demo_store_copy.version("demo:v2").refresh().label_map.by_id(known.label.id)
    assert stored.color == known.label.color


def test_diff_view_highlights_the_pixels_that_changed(
    page: Any, serve: Any, demo_store: Store, screenshots: Path
) -> None:
    v1, v2 = demo_store.version("demo:v1"), demo_store.version("demo:v2")
    fid = v2.frame_ids()[0]

    def first_mask(frame: Frame) -> np.ndarray:
        r = frame.annotations[0].rle
        assert r is not None
        return coco_mask.decode({"size": list(r.size), "counts": r.to_coco()["counts"]})

    changed = first_mask(v1.frame(fid)) != first_mask(v2.frame(fid))  # the demo moves it
    assert changed.any()
    base = serve(demo_store)
    goto(page, base, route("diff", "demo", "v1", "v2", fid))
    page.screenshot(path=screenshots / "diff.png", full_page=True)
    assert page.inner_text("#diff-status") == "frame changed"
    ys, xs = np.nonzero(changed)
    for k in (0, len(xs) // 2, len(xs) - 1):
        assert pixel(page, int(xs[k]), int(ys[k]), "#diff-canvas") == DIFF_COLOR
    ys, xs = np.nonzero(~changed)
    assert pixel(page, int(xs[0]), int(ys[0]), "#diff-canvas") != DIFF_COLOR


# ---- pixel masks, alpha masks, several sources


H, W = 48, 64
ROAD, CAR = (200, 30, 30), (30, 60, 220)


@pytest.fixture
def masks_store(tmp_path: Path) -> Store:
    """One frame, two sources side by side; "left" has pixel masks 00, 01 and alpha mask a."""
    yy, xx = np.mgrid[0:H, 0:W]
    images = {
        "left": np.stack([xx * 4, yy * 5, np.full_like(xx, 90)], -1).astype(np.uint8),
        "right": np.stack([np.full_like(xx, 40), xx * 3, yy * 4], -1).astype(np.uint8),
    }
    for name, img in images.items():
        Image.fromarray(img).save(tmp_path / f"{name}.png")
    store = Store(home=tmp_path / "home")
    classes = np.zeros((H, W), np.uint8)
    classes[:20, :30] = 1  # road
    classes[30:, 40:] = 2  # car
    other = np.zeros((H, W), np.uint8)
    other[:20, :30] = 2  # mask 01 calls the same region a car
    alpha = np.zeros((H, W), np.uint8)
    for k, v in enumerate((0, 64, 128, 255)):
        alpha[:, k * 16 : (k + 1) * 16] = v
    masks = {
        "00": store.put_mask(classes),
        "01": store.put_mask(other),
        "a": store.put_mask(alpha, mode="alpha"),
    }
    frame = Frame(
        "pair",
        (
            Source(str(tmp_path / "left.png"), id="left", width=W, height=H, masks=masks),
            Source(str(tmp_path / "right.png"), id="right", width=W, height=H),
        ),
    )
    v = store.create_dataset("masks").create_version("v1")
    v.set_label_map(
        LabelMap(
            (
                Label(0, ("background",), (0, 0, 0), False, "background"),
                Label(1, ("road",), ROAD, False, "class"),
                Label(2, ("car",), CAR, True, "class"),
            )
        )
    )
    v.add_frames([frame])
    v.commit()
    store.images = images  # type: ignore[attr-defined]
    return store


def test_pixel_masks_paint_label_colours_and_are_selectable_by_id(
    page: Any, serve: Any, masks_store: Store, screenshots: Path
) -> None:
    images = masks_store.images  # type: ignore[attr-defined]
    base = serve(masks_store)
    goto(page, base, route("f", "masks", "v1", "pair"))
    page.screenshot(path=screenshots / "sources.png", full_page=True)
    left, right = "canvas.view[data-source=left]", "canvas.view[data-source=right]"
    assert page.locator("canvas.view").evaluate_all("cs => cs.map(c => c.dataset.source)") == [
        "left",
        "right",
    ]
    set_opacity(page, 100)
    assert pixel(page, 5, 5, left) == ROAD  # mask 00, value 1
    assert pixel(page, 50, 40, left) == CAR  # mask 00, value 2
    assert pixel(page, 5, 30, left) == tuple(images["left"][30, 5])  # value 0: background
    assert pixel(page, 5, 5, right) == tuple(images["right"][5, 5])  # right has no mask
    page.select_option("select.mask-select[data-source=left]", "01")
    assert pixel(page, 5, 5, left) == CAR
    assert pixel(page, 50, 40, left) == tuple(images["left"][40, 50])
    assert "value 2 · car" in hover(page, 5, 5, left)


def test_alpha_mode_shows_the_mask_values_as_opacity(
    page: Any, serve: Any, masks_store: Store
) -> None:
    images = masks_store.images  # type: ignore[attr-defined]
    base = serve(masks_store)
    goto(page, base, route("f", "masks", "v1", "pair"))
    left = "canvas.view[data-source=left]"
    page.select_option("#mode", "alpha")
    set_opacity(page, 100)
    for k, value in enumerate((0, 64, 128, 255)):
        x, y = k * 16 + 7, 24
        want = blend(images["left"][y, x], TINT, value / 255)
        assert_close(pixel(page, x, y, left), want)
    set_opacity(page, 50)
    assert_close(pixel(page, 55, 24, left), blend(images["left"][24, 55], TINT, 0.5))
    assert "mask a (alpha): value 128" in hover(page, 40, 10, left)


# ---- many instances (benchmark mode: 3840x2160, 200 instances)


def test_many_instances_paint_exactly_like_numpy(
    page: Any,
    serve: Any,
    bench: ModuleType,
    bench_mode: bool,
    tmp_path: Path,
    output_dir: Path,
    screenshots: Path,
    record_property: Any,
) -> None:
    size_wh, n = ((3840, 2160), 200) if bench_mode else ((640, 360), 60)
    scene = bench.build_scene(tmp_path / "scene", size_wh=size_wh, instances=n)
    with Store(home=scene.home) as store:
        base = serve(store)
        page_route = bench.frame_hash(bench.DATASET, bench.VERSION, bench.FRAME)
        first = bench.open_frame(page, base, page_route)
        assert first["instances"] == n
        bench.set_controls(page, opacity=100, outline=False)
        got = bench.read_canvas(page)[..., :3]
        wrong = np.argwhere(np.any(got != scene.expected(), axis=-1))
        assert len(wrong) == 0, f"{len(wrong)} pixels differ, first at (y, x) {wrong[:3].tolist()}"
        page.screenshot(path=screenshots / f"instances_{size_wh[0]}x{size_wh[1]}.png")
        if bench_mode:
            runs = [bench.open_frame(page, base, page_route) for _ in range(bench.RUNS)]
            total = sorted(r["total_ms"] for r in runs)[len(runs) // 2]
            record_property("open_ms_first", first["total_ms"])
            record_property("open_ms_median", total)
            doc = {"size_wh": size_wh, "instances": n, "first": first, "runs": runs}
            (output_dir / "viewer_open.json").write_text(json.dumps(doc, indent=1))
