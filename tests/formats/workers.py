"""What the tests of parallel conversion share: a small labelled source, and the check that
every worker count writes the same files and report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tests.files import tree
from tests.formats import synthetic

from masklab import formats
from masklab.core.labels import Label, LabelMap, voc_color

N = 24  # samples of 48x64: two batches of 16, so two workers each get one
#: Cityscapes namesakes (so the Cityscapes and KITTI writers keep the objects); road is
#: stuff there, so its objects are an ``instances`` loss
LABELS = LabelMap(
    (
        Label(0, ("background",), (0, 0, 0), isthing=False, role="background"),
        Label(1, ("car",), voc_color(1)),
        Label(2, ("person",), voc_color(2)),
        Label(3, ("road",), voc_color(3), isthing=False),
    )
)


def same_whatever_the_workers(
    src: Path, out: Path, to: str, counts: tuple[int, ...] = (1, 2), **options: Any
) -> tuple[dict[str, str], dict[str, Any]]:
    """Convert ``src`` with each worker count (to out/w1, out/w2, ...); assert equal
    files and reports; the first count's files and report."""
    results = {}
    for n in counts:
        report = formats.convert(src, out / f"w{n}", to=to, workers=n, **options)
        results[n] = (tree(out / f"w{n}"), report.to_dict())
    files, report = results[counts[0]]
    for n in counts[1:]:
        assert results[n][0] == files, f"{to}: files differ with {n} workers"
        assert results[n][1] == report, f"{to}: report differs with {n} workers"
    return files, report


def records(report: dict[str, Any]) -> list[object]:
    """The record of each problem in a report dict, in order."""
    return [p["record"] for p in report["problems"]]


def written(writer_class: Any, root: Path, **options: Any) -> Path:
    """N synthetic samples (holes, parts, overlaps, crowd) written at ``root``."""
    data = synthetic.samples(root.parent / f"{root.name}_images", N)
    with writer_class(root, labels=LABELS, **options) as w:
        for s in data:
            w.write(s)
    return root


def replace_png(path: Path, array: np.ndarray) -> None:
    """Put another PNG (of ``array``) where ``path`` was."""
    path.unlink()
    Image.fromarray(array).save(path)


def coco_with_a_bad_polygon(root: Path) -> Path:
    """COCO instances of the N synthetic samples at root/coco; image 18's first polygon
    has 2 points (a problem the reader reports, the image still converts)."""
    written(formats.get("coco").Writer, root / "coco")
    ann_file = next((root / "coco").glob("annotations/*.json"))
    doc = json.loads(ann_file.read_text())
    bad = next(
        a for a in doc["annotations"] if a["image_id"] == 18 and isinstance(a["segmentation"], list)
    )
    bad["segmentation"] = [[0, 0, 1, 1]]
    ann_file.write_text(json.dumps(doc))
    return root / "coco"
