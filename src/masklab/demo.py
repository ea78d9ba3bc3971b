"""The library behind ``masklab demo``: synthetic scenes, COCO json out, pixel-exact back.

:func:`run_demo` draws a few seeded scenes of overlapping instances (cells, leaves, stones)
on gradient backgrounds, writes them as PNGs, encodes every instance's visible mask with
:func:`masklab.rle.encode` and writes two COCO instances files:

* ``instances_rle.json``: segmentations as compressed RLE (``RLE.to_coco()``);
* ``instances_polygons.json``: segmentations as exact, keyholed polygons
  (``polygon.from_mask(m).to_coco()``), which keep holes under COCO's union of rings.

It then reads both files back with :func:`json.load`, decodes every annotation to pixels
and compares them with the masks it drew. Occlusion makes the data hard on purpose: at
least one instance has a hole and at least one falls apart into several parts; the
result records both, and is not ``ok`` without them. When pycocotools is installed it is
the independent second reader (decode, ``frPyObjects`` + ``merge``, ``area``, ``toBbox``).
Nothing here prints; the CLI renders the returned :class:`DemoResult`.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image

from masklab import __version__
from masklab.core import polygon, rle

__all__ = ["CATEGORIES", "DemoImage", "DemoResult", "run_demo"]

CATEGORIES: tuple[str, ...] = ("cell", "leaf", "stone")  # COCO category ids 1, 2, 3
N_IMAGES = 4
SIZE_HW = (480, 640)
RLE_FILE = "instances_rle.json"
POLYGON_FILE = "instances_polygons.json"
IMAGE_DIR = "images"

_COLORS_RGB = {"cell": (196, 84, 160), "leaf": (72, 158, 64), "stone": (132, 128, 120)}

Mask = npt.NDArray[np.uint8]


# --------------------------------------------------------------------------- result


@dataclass(frozen=True, slots=True)
class DemoImage:
    """One scene: what was written for it and whether both files gave its pixels back.

    ``holes`` and ``multi_part`` count instances (not holes or parts); ``rle_bytes`` is the
    length of the compressed RLE strings, ``polygon_vertices`` the vertices written to the
    polygon file. ``pycocotools_agrees`` is None when pycocotools is not installed.
    """

    file: str
    size_hw: tuple[int, int]
    instances: int
    holes: int
    multi_part: int
    rle_bytes: int
    polygon_vertices: int
    exact_rle: bool
    exact_polygons: bool
    pycocotools_agrees: bool | None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of the row."""
        return {
            "file": self.file,
            "size_hw": list(self.size_hw),
            "instances": self.instances,
            "holes": self.holes,
            "multi_part": self.multi_part,
            "rle_bytes": self.rle_bytes,
            "polygon_vertices": self.polygon_vertices,
            "exact_rle": self.exact_rle,
            "exact_polygons": self.exact_polygons,
            "pycocotools_agrees": self.pycocotools_agrees,
        }


@dataclass(frozen=True, slots=True)
class DemoConversion:
    """The RLE json converted to another format: counts and what the target could not hold."""

    target: str
    folder: str
    samples: int
    instances: int
    exact: int
    losses: dict[str, int]
    problems: int

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of the row."""
        return {
            "target": self.target,
            "folder": self.folder,
            "samples": self.samples,
            "instances": self.instances,
            "exact": self.exact,
            "losses": dict(self.losses),
            "problems": self.problems,
        }


CONVERT_TO = ("voc", "coco-panoptic", "yolo-seg")
CONVERTED_DIR = "converted"


@dataclass(frozen=True, slots=True)
class DemoResult:
    """What :func:`run_demo` wrote and verified: per-image rows, totals and problems.

    ``problems`` holds one sentence per failed check (a pixel mismatch names the file and
    the annotation id); the run is ``ok`` when there are none.
    """

    out_dir: Path
    seed: int
    images: tuple[DemoImage, ...]
    pycocotools_version: str | None
    problems: tuple[str, ...] = ()
    files: tuple[str, ...] = field(default=(RLE_FILE, POLYGON_FILE))
    conversions: tuple[DemoConversion, ...] = ()

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return not self.problems

    @property
    def instances(self) -> int:
        """Instances over all images."""
        return sum(i.instances for i in self.images)

    @property
    def holes(self) -> int:
        """Instances with at least one hole."""
        return sum(i.holes for i in self.images)

    @property
    def multi_part(self) -> int:
        """Instances in two or more separate parts."""
        return sum(i.multi_part for i in self.images)

    @property
    def rle_bytes(self) -> int:
        """Length of all compressed RLE strings."""
        return sum(i.rle_bytes for i in self.images)

    @property
    def polygon_vertices(self) -> int:
        """Vertices written to the polygon file."""
        return sum(i.polygon_vertices for i in self.images)

    @property
    def exact_rle(self) -> bool:
        """Every RLE annotation decoded to its original pixels."""
        return all(i.exact_rle for i in self.images)

    @property
    def exact_polygons(self) -> bool:
        """Every polygon annotation rasterised to its original pixels."""
        return all(i.exact_polygons for i in self.images)

    @property
    def pycocotools_agrees(self) -> bool | None:
        """pycocotools read both files to the same pixels; None when not installed."""
        if self.pycocotools_version is None:
            return None
        return all(i.pycocotools_agrees for i in self.images)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict: what ``masklab demo --json`` prints."""
        return {
            "ok": self.ok,
            "out_dir": str(self.out_dir),
            "seed": self.seed,
            "files": [*self.files, *(f"{IMAGE_DIR}/{i.file}" for i in self.images)],
            "images": [i.to_dict() for i in self.images],
            "conversions": [c.to_dict() for c in self.conversions],
            "totals": {
                "images": len(self.images),
                "instances": self.instances,
                "holes": self.holes,
                "multi_part": self.multi_part,
                "rle_bytes": self.rle_bytes,
                "polygon_vertices": self.polygon_vertices,
                "exact_rle": self.exact_rle,
                "exact_polygons": self.exact_polygons,
                "pycocotools_agrees": self.pycocotools_agrees,
            },
            "pycocotools": self.pycocotools_version,
            "problems": list(self.problems),
        }


# --------------------------------------------------------------------------- scenes


@dataclass(frozen=True, slots=True)
class _Instance:
    category: str
    mask: Mask  # visible pixels, 0/1, (h, w)


@dataclass(frozen=True, slots=True)
class _Scene:
    file: str
    image: npt.NDArray[np.uint8]  # (h, w, 3) RGB
    instances: tuple[_Instance, ...]


def _canvas() -> Mask:
    return np.zeros(SIZE_HW, np.uint8)


def _ellipse(center: tuple[int, int], axes: tuple[int, int], angle: float) -> Mask:
    m = _canvas()
    cv2.ellipse(m, center, axes, angle, 0, 360, 1, thickness=-1, lineType=cv2.LINE_8)
    return m


def _disc(center: tuple[int, int], radius: int) -> Mask:
    m = _canvas()
    cv2.circle(m, center, radius, 1, thickness=-1, lineType=cv2.LINE_8)
    return m


def _polygon(points: npt.NDArray[np.float64]) -> Mask:
    m = _canvas()
    cv2.fillPoly(m, [np.round(points).astype(np.int32)], 1, lineType=cv2.LINE_8)
    return m


def _stone(rng: np.random.Generator, center: tuple[int, int], radius: float) -> Mask:
    """A lumpy convex-ish polygon: sorted random angles, jittered radii."""
    n = int(rng.integers(6, 11))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = radius * rng.uniform(0.7, 1.0, n)
    pts = np.stack([center[0] + radii * np.cos(angles), center[1] + radii * np.sin(angles)], 1)
    return _polygon(pts)


def _bar(center: tuple[float, float], length: float, width: float, angle_deg: float) -> Mask:
    pts = cv2.boxPoints(((center[0], center[1]), (length, width), angle_deg))
    return _polygon(pts.astype(np.float64))


def _point(rng: np.random.Generator, margin: int) -> tuple[int, int]:
    h, w = SIZE_HW
    return int(rng.integers(margin, w - margin)), int(rng.integers(margin, h - margin))


def _random_shape(rng: np.random.Generator) -> tuple[str, Mask]:
    category = CATEGORIES[int(rng.integers(len(CATEGORIES)))]
    center = _point(rng, 40)
    if category == "cell":
        return category, _disc(center, int(rng.integers(18, 40)))
    if category == "leaf":
        axes = (int(rng.integers(50, 110)), int(rng.integers(22, 45)))
        return category, _ellipse(center, axes, float(rng.uniform(0, 180)))
    return category, _stone(rng, center, float(rng.uniform(25, 60)))


def _layers(rng: np.random.Generator) -> list[tuple[str, Mask]]:
    """Full (amodal) shapes, bottom to top.

    Besides random shapes at the bottom, every scene has a leaf cut in two by a stone bar,
    a small cell sitting on that leaf (a hole in the leaf by occlusion) and, on top and
    across the leaf's edge, a cell with a vacuole (a hole of its own).
    """
    layers = [_random_shape(rng) for _ in range(int(rng.integers(2, 5)))]
    h, w = SIZE_HW
    cx, cy = int(rng.integers(220, w - 220)), int(rng.integers(170, h - 170))
    a, b = int(rng.integers(110, 150)), int(rng.integers(55, 75))
    theta = float(rng.uniform(0, 180))
    layers.append(("leaf", _ellipse((cx, cy), (a, b), theta)))
    u = np.array([np.cos(np.radians(theta)), np.sin(np.radians(theta))])  # major axis
    shift = float(rng.uniform(-a / 3, a / 3))
    bar_center = np.array([cx, cy]) + shift * u
    bar_angle = theta + 90 + float(rng.uniform(-10, 10))
    layers.append(("stone", _bar((bar_center[0], bar_center[1]), 2 * b + 60, 18, bar_angle)))
    side = -1.0 if shift > 0 else 1.0
    px, py = np.rint(np.array([cx, cy]) + side * 0.6 * a * u).astype(int).tolist()
    layers.append(("cell", _disc((px, py), 14)))
    v = np.array([-u[1], u[0]])  # minor axis; the ring sits on the leaf's edge there
    edge = np.array([cx, cy]) + float(rng.choice([-1.0, 1.0])) * b * v
    ex, ey = np.rint(edge).astype(int).tolist()
    ring_center = (ex, ey)
    r_out = int(rng.integers(40, 56))
    ring = _disc(ring_center, r_out)
    vacuole = (ring_center[0] + int(rng.integers(-8, 9)), ring_center[1] + int(rng.integers(-8, 9)))
    ring[_disc(vacuole, int(rng.integers(14, 22))) != 0] = 0
    layers.append(("cell", ring))
    return layers


def _background(rng: np.random.Generator) -> npt.NDArray[np.float64]:
    h, w = SIZE_HW
    c0, c1 = rng.uniform(150, 250, 3), rng.uniform(60, 160, 3)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w]
    t = xx * np.cos(angle) + yy * np.sin(angle)
    t = (t - t.min()) / (t.max() - t.min())
    image: npt.NDArray[np.float64] = c0 + (c1 - c0) * t[..., None]
    return image


def _scene(rng: np.random.Generator, index: int) -> _Scene:
    layers = _layers(rng)
    taken = _canvas()
    visible: list[_Instance] = []
    for category, full in reversed(layers):  # top first: what is above hides what is below
        mask = full & (1 - taken)
        taken |= full
        if mask.any():
            visible.append(_Instance(category, mask))
    visible.reverse()
    image = _background(rng)
    for inst in visible:
        color = np.array(_COLORS_RGB[inst.category], np.float64) + rng.uniform(-25, 25, 3)
        image[inst.mask != 0] = color
    rgb = np.clip(np.round(image), 0, 255).astype(np.uint8)
    return _Scene(f"scene_{index}.png", rgb, tuple(visible))


def _scenes(seed: int) -> Iterator[_Scene]:
    rng = np.random.default_rng(seed)
    for index in range(N_IMAGES):
        yield _scene(rng, index)


# --------------------------------------------------------------------------- files


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write to a temporary sibling, then replace: a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def _read_json(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


def _coco_skeleton(scenes: list[_Scene], seed: int) -> dict[str, Any]:
    h, w = SIZE_HW
    return {
        "info": {"description": f"masklab {__version__} demo scenes, seed {seed}"},
        "licenses": [],
        "images": [
            {"id": i, "file_name": s.file, "height": h, "width": w}
            for i, s in enumerate(scenes, start=1)
        ],
        "categories": [
            {"id": i, "name": name, "supercategory": "thing"}
            for i, name in enumerate(CATEGORIES, start=1)
        ],
    }


def _pycocotools() -> Any:
    """pycocotools.mask when installed, else None (it is an optional oracle)."""
    try:
        from pycocotools import mask as coco_mask
    except ImportError:
        return None
    return coco_mask


def _pycocotools_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pycocotools")
    except PackageNotFoundError:
        return "unknown"


def _coco_decode(coco_mask: Any, segmentation: dict[str, Any]) -> npt.NDArray[np.uint8]:
    # pycocotools 2.0.11's decode trips NumPy 2's __array__ copy-keyword deprecation
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="__array__ implementation", category=DeprecationWarning
        )
        out: npt.NDArray[np.uint8] = coco_mask.decode(segmentation)
    return out


def _coco_agrees(
    coco_mask: Any, rle_ann: dict[str, Any], poly_ann: dict[str, Any], mask: Mask
) -> bool:
    """pycocotools reads both annotations to ``mask``, with the written area and bbox."""
    h, w = mask.shape
    rle_seg = rle_ann["segmentation"]
    poly_rle = coco_mask.merge(coco_mask.frPyObjects(poly_ann["segmentation"], h, w))
    return (
        np.array_equal(_coco_decode(coco_mask, rle_seg), mask)
        and np.array_equal(_coco_decode(coco_mask, poly_rle), mask)
        and int(coco_mask.area(rle_seg)) == rle_ann["area"]
        and coco_mask.toBbox(rle_seg).tolist() == rle_ann["bbox"]
    )


# --------------------------------------------------------------------------- run


def run_demo(out_dir: Path, *, seed: int = 0) -> DemoResult:
    """Write the demo scenes and both COCO files under ``out_dir``, then verify them.

    Creates ``out_dir/images/scene_{0..3}.png``, ``out_dir/instances_rle.json`` and
    ``out_dir/instances_polygons.json`` (overwriting earlier demo files); the same ``seed``
    writes the same bytes. Verification failures are listed in ``DemoResult.problems``;
    only I/O errors and malformed data raise.
    """
    out_dir = Path(out_dir)
    image_dir = out_dir / IMAGE_DIR
    image_dir.mkdir(parents=True, exist_ok=True)
    scenes = list(_scenes(seed))
    h, w = SIZE_HW

    rle_doc = _coco_skeleton(scenes, seed)
    poly_doc = _coco_skeleton(scenes, seed)
    rle_doc["annotations"], poly_doc["annotations"] = [], []
    originals: dict[int, tuple[int, Mask]] = {}  # annotation id -> (scene index, pixels)
    holes = [0] * len(scenes)
    multi_part = [0] * len(scenes)
    ann_id = 0
    for k, scene in enumerate(scenes):
        Image.fromarray(scene.image).save(image_dir / scene.file)
        for inst in scene.instances:
            ann_id += 1
            r = rle.encode(inst.mask)
            traced = polygon.from_mask(r)
            holes[k] += traced.has_holes
            multi_part[k] += len(traced.parts) > 1
            common = {
                "id": ann_id,
                "image_id": k + 1,
                "category_id": CATEGORIES.index(inst.category) + 1,
                "area": rle.area(r),
                "bbox": rle.bbox(r).tolist(),
                "iscrowd": 0,
            }
            rle_doc["annotations"].append({**common, "segmentation": r.to_coco()})
            poly_doc["annotations"].append({**common, "segmentation": traced.to_coco()})
            originals[ann_id] = (k, inst.mask)
    _write_json(out_dir / RLE_FILE, rle_doc)
    _write_json(out_dir / POLYGON_FILE, poly_doc)

    # read both files back from disk and decode them, independently of what is in memory
    rle_back = _read_json(out_dir / RLE_FILE)["annotations"]
    poly_back = _read_json(out_dir / POLYGON_FILE)["annotations"]
    coco_mask = _pycocotools()
    problems: list[str] = []
    exact_rle = [True] * len(scenes)
    exact_poly = [True] * len(scenes)
    coco_ok = [True] * len(scenes)
    rle_bytes = [0] * len(scenes)
    vertices = [0] * len(scenes)
    for name, back in ((RLE_FILE, rle_back), (POLYGON_FILE, poly_back)):
        ids = [a["id"] for a in back]
        if ids != list(originals):
            problems.append(f"{name}: annotation ids {ids} are not 1..{len(originals)} in order")
    for rle_ann, poly_ann in zip(rle_back, poly_back, strict=True):
        k, mask = originals[rle_ann["id"]]
        seg = rle_ann["segmentation"]
        rle_bytes[k] += len(seg["counts"])
        vertices[k] += sum(len(ring) // 2 for ring in poly_ann["segmentation"])
        if not np.array_equal(rle.decode(rle.from_coco(seg)), mask):
            exact_rle[k] = False
            problems.append(f"annotation {rle_ann['id']} in {RLE_FILE} decodes to other pixels")
        poly_pixels = rle.decode(polygon.to_rle(poly_ann["segmentation"], h, w))
        if not np.array_equal(poly_pixels, mask):
            exact_poly[k] = False
            problems.append(
                f"annotation {poly_ann['id']} in {POLYGON_FILE} rasterises to other pixels"
            )
        if coco_mask is not None and not _coco_agrees(coco_mask, rle_ann, poly_ann, mask):
            coco_ok[k] = False
            problems.append(
                f"annotation {rle_ann['id']}: pycocotools reads other pixels, area or bbox"
            )
    if not any(holes):
        problems.append(f"seed {seed}: no instance has a hole; the scenes must contain one")
    if not any(multi_part):
        problems.append(f"seed {seed}: no instance is in several parts; the scenes must have one")

    rows = tuple(
        DemoImage(
            file=scene.file,
            size_hw=SIZE_HW,
            instances=len(scene.instances),
            holes=holes[k],
            multi_part=multi_part[k],
            rle_bytes=rle_bytes[k],
            polygon_vertices=vertices[k],
            exact_rle=exact_rle[k],
            exact_polygons=exact_poly[k],
            pycocotools_agrees=coco_ok[k] if coco_mask is not None else None,
        )
        for k, scene in enumerate(scenes)
    )
    conversions = _convert(out_dir, sum(holes), sum(multi_part), problems)
    return DemoResult(
        out_dir=out_dir,
        seed=seed,
        images=rows,
        pycocotools_version=_pycocotools_version() if coco_mask is not None else None,
        problems=tuple(problems),
        conversions=conversions,
    )


def _convert(
    out_dir: Path, n_holes: int, n_multi: int, problems: list[str]
) -> tuple[DemoConversion, ...]:
    """Convert the RLE json to a few formats; a format that cannot hold holes or parts
    must say so for exactly the instances that have them."""
    from masklab import formats  # the formats layer sits above core

    out = []
    for target in CONVERT_TO:
        folder = out_dir / CONVERTED_DIR / target
        report = formats.convert(out_dir / RLE_FILE, folder, to=target, overwrite=True)
        losses = report.loss_counts()
        out.append(
            DemoConversion(
                target,
                str(folder.relative_to(out_dir)),
                report.samples,
                report.instances,
                report.exact,
                losses,
                len(report.problems),
            )
        )
        problems += [f"{target}: {p.path} record {p.record}: {p.message}" for p in report.problems]
        holds = formats.get(target).SPEC.holds
        if not holds.holes and losses.get("holes", 0) != n_holes:
            problems.append(
                f"{target}: reported {losses.get('holes', 0)} holes lost, the scenes have {n_holes}"
            )
        if not holds.parts and losses.get("parts", 0) != n_multi:
            problems.append(
                f"{target}: reported {losses.get('parts', 0)} split instances, the scenes "
                f"have {n_multi}"
            )
    return tuple(out)
