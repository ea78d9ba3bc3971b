"""The viewer: how long a 3840x2160 frame with 200 instances takes to open in the browser.

A store is built with one frame: a 4K JPEG and 200 instance masks (overlapping ellipses of
random size, 3 labels), each stored as an RLE annotation. The viewer's FastAPI app
(``create_app``) serves it on 127.0.0.1 and headless Chromium (Debian's, driven by
Playwright) opens the frame page; the page times itself (``window.masklab.lastOpen``): from
the route change through fetching the frame JSON, decoding the 200 compressed RLE strings,
the image, painting the runs and drawing the canvas (flushed), until the pixels are on it.

Agreement: before timing, the painted canvas (opacity 100%, outlines off) is read back and
compared pixel for pixel with a NumPy rendering of the same masks over the same image. The
figure is the median of ``RUNS`` opens after a warm-up; its "peer" is the issue's budget of
300 ms (ratio = open time / budget, target <= 1). ``MASKLAB_BENCH_VIEWER_SIZE=WxH`` and
``MASKLAB_BENCH_VIEWER_INSTANCES=N`` change the scene.
"""

from __future__ import annotations

import base64
import io
import os
import shutil
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from masklab.core import rle
from masklab.core.labels import Label, LabelMap
from masklab.store import Annotation, Frame, Store

SIZE_WH = tuple(int(v) for v in os.environ.get("MASKLAB_BENCH_VIEWER_SIZE", "3840x2160").split("x"))
INSTANCES = int(os.environ.get("MASKLAB_BENCH_VIEWER_INSTANCES", "200"))
BUDGET_MS = 300.0
RUNS = 7
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LABELS = LabelMap(
    (
        Label(1, ("car",), (230, 25, 75), True, "class"),
        Label(2, ("person",), (60, 180, 75), True, "class"),
        Label(3, ("tree",), (0, 130, 200), True, "class"),
    )
)
DATASET, VERSION, FRAME = "bench", "v1", "big"


@dataclass(frozen=True)
class Scene:
    """A one-frame store and what the viewer must paint: image and masks in paint order."""

    home: Path
    image: np.ndarray  # (h, w, 3) uint8, as the browser decodes the stored file
    masks: list[np.ndarray]  # (h, w) bool per instance, annotation order
    colors: list[tuple[int, int, int]]  # each instance's label colour

    def expected(self) -> np.ndarray:
        """The canvas at opacity 100% without outlines: each pixel's last instance's colour."""
        out = self.image.copy()
        for mask, color in zip(self.masks, self.colors, strict=True):
            out[mask] = color
        return out


def build_scene(home: Path, *, size_wh: tuple[int, int], instances: int, seed: int = 0) -> Scene:
    """Write a store with one frame of ``size_wh`` and ``instances`` ellipse masks (seeded)."""
    w, h = size_wh
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    image = np.empty((h, w, 3), np.uint8)
    image[..., 0] = (xx * 255 // max(w - 1, 1)).astype(np.uint8)
    image[..., 1] = (yy * 255 // max(h - 1, 1)).astype(np.uint8)
    image[..., 2] = ((xx // 7 + yy // 5) * 37 % 256).astype(np.uint8)  # texture, yet small PNG
    home.mkdir(parents=True, exist_ok=True)
    path = home / "frame.png"
    Image.fromarray(image).save(path, compress_level=1)  # lossless: the oracle compares exactly
    masks, colors, anns = [], [], []
    scale = min(w, h)
    for k in range(instances):
        cx, cy = rng.integers(0, w), rng.integers(0, h)
        ax, ay = rng.uniform(0.01, 0.08, 2) * scale
        x0, x1 = max(0, int(cx - ax)), min(w, int(cx + ax) + 1)
        y0, y1 = max(0, int(cy - ay)), min(h, int(cy + ay) + 1)
        mask = np.zeros((h, w), bool)
        sub = ((xx[y0:y1, x0:x1] - cx) / ax) ** 2 + ((yy[y0:y1, x0:x1] - cy) / ay) ** 2 <= 1
        mask[y0:y1, x0:x1] = sub
        if not mask.any():
            mask[min(int(cy), h - 1), min(int(cx), w - 1)] = True
        label = LABELS.labels[k % 3]
        masks.append(mask)
        colors.append(label.color)
        anns.append(
            Annotation(
                labels=label.names, class_id=label.id, rle=rle.encode(mask), instance_id=k + 1
            )
        )
    with Store(home=home) as store:
        v = store.create_dataset(DATASET).create_version(VERSION)
        v.set_label_map(LABELS)
        v.add_frames([Frame.single(FRAME, str(path), width=w, height=h, annotations=anns)])
        v.commit()
    return Scene(home, image, masks, colors)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def serve(store: Store, *, writable: bool = False) -> Iterator[str]:
    """Serve ``create_app(store)`` with uvicorn in a thread; yield its base URL."""
    import uvicorn

    from masklab.viewer.app import create_app

    port = free_port()
    config = uvicorn.Config(
        create_app(store, writable=writable), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"viewer-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the viewer did not start on 127.0.0.1:{port}")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def chromium(profile: Path) -> Iterator[Any]:
    """Debian's headless Chromium under Playwright, with a fresh profile; yields a context."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            yield context
        finally:
            context.close()


def frame_hash(dataset: str, version: str, frame_id: str) -> str:
    """The page route of a frame (ids URL-encoded as the page does)."""
    from urllib.parse import quote

    return "#/f/" + "/".join(quote(s, safe="") for s in (dataset, version, frame_id))


def _navigate(page: Any, hash_route: str) -> None:
    """Change the page's route (same document, as a click would) and wait for the render."""
    before = page.evaluate("(window.masklab && window.masklab.rendered) || 0")
    page.evaluate("r => { location.hash = r; }", hash_route)
    page.wait_for_function("n => (window.masklab.rendered || 0) > n", arg=before)


def open_frame(page: Any, base: str, route: str) -> dict[str, Any]:
    """Open a frame page from the datasets page, as a user does; return the page's timing.

    The page is loaded once; later opens go back to the datasets page first, so each open
    builds the viewer afresh (fetch, decode, paint) in an already loaded page.
    """
    if not page.url.startswith(base):
        page.goto(f"{base}/#/datasets")
        page.wait_for_selector("#app[data-state=ready]")
    else:
        _navigate(page, "#/datasets")
    _navigate(page, route)
    page.wait_for_selector("#app[data-state=ready] canvas.view")
    timing: dict[str, Any] = page.evaluate("window.masklab.lastOpen")
    return timing


def read_canvas(page: Any, selector: str = "canvas.view") -> np.ndarray:
    """A canvas's pixels as (h, w, 4) uint8, read through a PNG (lossless)."""
    url = page.eval_on_selector(selector, "c => c.toDataURL('image/png')")
    data = base64.b64decode(url.split(",", 1)[1])
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGBA"))


def set_controls(page: Any, *, opacity: int, outline: bool) -> None:
    """Set the opacity slider and the outline toggle in the frame page."""
    page.eval_on_selector(
        "#opacity",
        "(el, v) => { el.value = String(v); el.dispatchEvent(new Event('input')); }",
        opacity,
    )
    page.set_checked("#outline", outline)


def run() -> list[dict[str, Any]]:
    """Build the scene, check the painted canvas, time RUNS opens of the frame page."""
    from _timing import agree, format_line, make_record  # type: ignore[import-not-found]

    if not Path(CHROMIUM).exists():
        print(f"viewer: {CHROMIUM} is missing (scripts/chromium.sh installs it); no figure")
        return []
    tmp = Path(tempfile.mkdtemp(prefix="masklab-bench-viewer-"))
    try:
        scene = build_scene(tmp / "store", size_wh=SIZE_WH, instances=INSTANCES)
        route = frame_hash(DATASET, VERSION, FRAME)
        with Store(home=scene.home) as store, serve(store) as base, chromium(tmp / "p") as ctx:
            page = ctx.new_page()
            cold = open_frame(page, base, route)
            set_controls(page, opacity=100, outline=False)
            got = read_canvas(page)
            mismatched = int(np.any(got[..., :3] != scene.expected(), axis=-1).sum())
            agree(mismatched == 0, f"viewer: {mismatched} canvas pixels differ from NumPy's")
            times = [open_frame(page, base, route) for _ in range(RUNS)]
        total = statistics.median(t["total_ms"] for t in times)
        parts = {
            k: statistics.median(t[k] for t in times)
            for k in ("fetch_ms", "decode_ms", "layers_ms", "image_wait_ms", "draw_ms")
        }
        w, h = SIZE_WH
        rec = make_record(
            f"open {w}x{h} {INSTANCES} instances",
            total / 1e3,
            BUDGET_MS / 1e3,
            peer="budget",
            target=1.0,
            op="<=",
        )
        rec["parts_ms"] = parts
        rec["first_open_ms"] = cold["total_ms"]
        print(format_line(rec), flush=True)
        print(
            "    "
            + "  ".join(f"{k[:-3]} {v:.1f} ms" for k, v in parts.items())
            + f"  (first open after page load {cold['total_ms']:.0f} ms)",
            flush=True,
        )
        return [rec]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
