"""The store part of ``masklab demo``: versions, a diff, exports, each checked.

The demo's COCO RLE file is imported into the embedded store as ``demo:v1`` (published); a
child ``demo:v2`` moves one mask, drops another and renames a class in the label map (and on
the annotations that carry it). ``diff(v1, v2)`` must name exactly those frames, with pixel
counts the demo computes itself on dense arrays; v2 is then exported to COCO, YOLO-seg and
PNG masks.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from masklab.core import rle
from masklab.core.labels import Label, LabelMap
from masklab.store import Store, Version
from masklab.store.diff import VersionDiff, diff
from masklab.store.exporter import export_version
from masklab.store.importer import import_path

__all__ = ["EXPORT_TO", "StoreDemo", "run_store_demo"]

DATASET = "demo"
EXPORT_TO = ("coco", "yolo-seg", "png-masks")
RENAME = ("stone", "pebble")
SHIFT_X = 3  # pixels the moved mask moves right


@dataclass(frozen=True)
class StoreDemo:
    """What the store demo did and whether every check held."""

    store: str
    v1: str
    v2: str
    frames: int
    annotations: int
    diff: VersionDiff
    exports: dict[str, str]  # format -> folder
    problems: tuple[str, ...]


def run_store_demo(home: Path, coco_json: Path, out_dir: Path) -> StoreDemo:
    """Import ``coco_json`` as demo:v1, edit a child v2, diff them, export v2 (checked)."""
    problems: list[str] = []
    with Store(home=home) as store:
        if any(d.name == DATASET for d in store.datasets()):
            store.delete_dataset(DATASET)  # the demo starts afresh each run
        imported = import_path(store, coco_json, dataset=DATASET, version="v1", format="coco")
        v1 = store.version(f"{DATASET}:v1")
        v1.publish()
        v2 = store.dataset(DATASET).create_version("v2", parent="v1")
        expected = _edit(v2)
        result = diff(v1, v2)
        problems += _check_diff(result, expected)
        exports = {}
        for fmt in EXPORT_TO:
            folder = out_dir / "export" / fmt
            report = export_version(v2, folder, to=fmt, overwrite=True)
            exports[fmt] = str(folder)
            if report.samples != len(v2):
                problems.append(f"export to {fmt} wrote {report.samples} of {len(v2)} frames")
            problems += [f"export to {fmt}: {p.record}: {p.message}" for p in report.problems]
        return StoreDemo(
            repr(store),
            v1.ref,
            v2.ref,
            imported.frames,
            imported.annotations,
            result,
            exports,
            tuple(problems),
        )


def _edit(v2: Version) -> dict[str, dict[str, int]]:
    """Move one mask, drop one annotation, rename a class; return the expected pixel changes
    per frame (mask name -> pixels), computed on dense arrays."""
    old, new = RENAME
    labels = v2.label_map
    renamed = LabelMap(
        tuple(
            Label(lab.id, (new,), lab.color, lab.isthing, lab.role) if lab.names == (old,) else lab
            for lab in labels
        )
    )
    v2.set_label_map(renamed)
    frames = list(v2.frames())
    expected: dict[str, dict[str, int]] = {}
    edited = []
    for k, f in enumerate(frames):
        anns = list(f.annotations)
        changes: dict[str, int] = {}
        if k == 0 and anns and anns[0].rle is not None:
            before = rle.decode(anns[0].rle)
            moved = np.zeros_like(before)
            moved[:, SHIFT_X:] = before[:, :-SHIFT_X]
            anns[0] = replace(anns[0], rle=rle.encode(moved))
            changes[f"instance {anns[0].instance_id}"] = int(np.count_nonzero(before != moved))
        if k == 1 and anns:
            dropped = anns.pop()
            changes[f"instance {dropped.instance_id}"] = int(
                np.count_nonzero(rle.decode(dropped.rle)) if dropped.rle is not None else 0
            )
        for i, a in enumerate(anns):
            if old in a.labels:
                anns[i] = replace(a, labels=tuple(new if x == old else x for x in a.labels))
                changes.setdefault(f"instance {a.instance_id}", 0)
        if changes:
            expected[f.id] = changes
            edited.append(f.with_annotations(anns))
    v2.update_frames(edited)
    v2.commit()
    return expected


def _check_diff(result: VersionDiff, expected: dict[str, dict[str, int]]) -> list[str]:
    problems = []
    if result.added or result.removed:
        problems.append(f"diff reports frames added {result.added} / removed {result.removed}")
    got = {f.frame_id: {m.mask: m.pixels for m in f.masks} for f in result.changed}
    if got != expected:
        problems.append(f"diff reports {got}, the edits were {expected}")
    return problems
