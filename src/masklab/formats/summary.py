"""What ``masklab info`` says about a dataset: one streaming pass over its samples."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from masklab.core import rle
from masklab.core.labels import LabelMap
from masklab.formats import Reader, open_reader
from masklab.formats.report import ConversionReport

__all__ = ["ClassStats", "DatasetSummary", "summarize"]


@dataclass
class ClassStats:
    """Per class: instances and pixels."""

    id: int
    name: str
    instances: int = 0
    pixels: int = 0


@dataclass
class DatasetSummary:
    """Counts, classes, mask sizes and problems of a dataset."""

    path: str
    format: str
    images: int = 0
    instances: int = 0
    crowd: int = 0
    empty_masks: int = 0
    semantic_maps: int = 0
    alpha_masks: int = 0
    sizes: Counter[tuple[int, int]] = field(default_factory=Counter)
    classes: dict[int, ClassStats] = field(default_factory=dict)
    report: ConversionReport = field(default_factory=ConversionReport)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``masklab info --json``)."""
        return {
            "path": self.path,
            "format": self.format,
            "images": self.images,
            "instances": self.instances,
            "crowd": self.crowd,
            "empty_masks": self.empty_masks,
            "semantic_maps": self.semantic_maps,
            "alpha_masks": self.alpha_masks,
            "mask_sizes": [{"h": h, "w": w, "images": n} for (h, w), n in self.sizes.most_common()],
            "classes": [
                {"id": c.id, "name": c.name, "instances": c.instances, "pixels": c.pixels}
                for c in sorted(self.classes.values(), key=lambda c: c.id)
            ],
            "problems": [p.to_dict() for p in self.report.problems],
            "unknown_colors": [
                {"color": list(c), "pixels": n} for c, n in self.report.unknown_colors.most_common()
            ],
        }


def _stats(summary: DatasetSummary, labels: LabelMap, class_id: int) -> ClassStats:
    stats = summary.classes.get(class_id)
    if stats is None:
        name = labels.by_id(class_id).name if class_id in labels else str(class_id)
        stats = summary.classes[class_id] = ClassStats(class_id, name)
    return stats


def summarize(
    path: str | os.PathLike[str] | Reader,
    format: str | None = None,
    *,
    labels: LabelMap | None = None,
    progress: Callable[[int], None] | None = None,
) -> DatasetSummary:
    """Read a dataset (a path or an open Reader) once and count what it holds; problems
    are collected, not raised."""
    reader = path if isinstance(path, Reader) else open_reader(path, format, labels=labels)
    summary = DatasetSummary(str(reader.path), reader.spec.name)
    lm = reader.labels
    for sample in reader:
        summary.images += 1
        summary.sizes[sample.size] += 1
        for inst in sample.instances:
            summary.instances += 1
            summary.crowd += inst.iscrowd
            area = rle.area(inst.mask)
            summary.empty_masks += area == 0
            stats = _stats(summary, lm, inst.class_id)
            stats.instances += 1
            if sample.semantic is None:
                stats.pixels += area
        if sample.semantic is not None:
            summary.semantic_maps += 1
            values, counts = np.unique(sample.semantic, return_counts=True)
            for v, n in zip(values.tolist(), counts.tolist(), strict=True):
                _stats(summary, lm, int(v)).pixels += n
        if sample.alpha is not None:
            summary.alpha_masks += 1
        if progress is not None:
            progress(1)
    summary.report = reader.report
    return summary
