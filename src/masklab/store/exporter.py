"""Export a store version (or a filtered view of it) to any format masklab writes.

:class:`VersionReader` presents a version as a format reader, so export is the same
:func:`masklab.formats.convert` every format conversion uses, with its report of what the
target could not hold. A frame becomes a sample: its first source the image (blob images
are handed over as bytes), its pixel-segmentation mask the class map, its alpha mask the
alpha, and its annotations with an RLE the instances.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar

from masklab.core.instances import Instance
from masklab.core.labels import LabelMap
from masklab.errors import MaskLabError
from masklab.formats import convert
from masklab.formats._base import Capabilities, FormatSpec, Reader, Sample
from masklab.formats.report import ConversionReport
from masklab.store.model import BLOB_SCHEME, Frame
from masklab.store.store import Store, Version

__all__ = ["VersionReader", "export_version", "frame_to_sample"]


def frame_to_sample(store: Store, frame: Frame, labels: LabelMap) -> Sample:
    """A store frame as a format sample (its first source)."""
    src = frame.sources[0]
    if src.size is None:
        raise MaskLabError(
            f"frame {frame.id!r}: source {src.id!r} has no width/height; set them to export"
        )
    image: Path | None = None
    image_bytes: bytes | None = None
    if src.uri is not None:
        if src.uri.startswith(BLOB_SCHEME) or "://" in src.uri:
            image_bytes = store.read_bytes(src.uri)
        else:
            image = Path(src.uri)
    semantic = alpha = None
    for mask in src.masks.values():
        if mask.mode == "pixel" and semantic is None:
            semantic = store.read_mask(mask, labels)
        elif mask.mode == "alpha" and alpha is None:
            alpha = store.read_mask(mask)
    instances = []
    for a in frame.annotations:
        if a.rle is None or (a.source not in (None, src.id)):
            continue
        class_id = a.class_id
        if class_id is None and a.labels:
            found = labels.find(a.labels[0])
            class_id = found.id if found is not None else None
        if class_id is None:
            raise MaskLabError(
                f"frame {frame.id!r}: an annotation has labels {list(a.labels)} that the "
                "version's label map does not name; add them with set_mask_labels"
            )
        instances.append(
            Instance(
                a.rle,
                class_id,
                id=a.instance_id,
                score=a.score,
                iscrowd=a.iscrowd,
                polygons=a.polygons,
                attributes=dict(a.meta),
            )
        )
    meta = {k: v for k, v in frame.meta.items() if k not in ("subset", "labeled")}
    subset = frame.meta.get("subset")
    return Sample(
        id=frame.id,
        size=src.size,
        image=image,
        instances=tuple(instances),
        semantic=semantic,
        alpha=alpha,
        subset=None if subset is None else str(subset),
        image_bytes=image_bytes,
        meta=meta,
        labeled=bool(frame.meta.get("labeled", True)),
    )


class VersionReader(Reader):
    """A version (or a view of one) read as a dataset of samples."""

    spec: ClassVar[FormatSpec] = FormatSpec(
        "masklab-store",
        "a version of a masklab store",
        "instances",
        Capabilities(overlap=True, crowd=True, scores=True, semantic=True),
        can_write=False,
    )

    def __init__(
        self,
        version: Version,
        *,
        frames: Iterable[Frame] | None = None,
        labels: LabelMap | None = None,
        strict: bool = False,
    ) -> None:
        super().__init__(version.ref, labels=labels or version.label_map, strict=strict)
        self.version = version
        self._frames = frames

    def __iter__(self) -> Iterator[Sample]:
        store = self.version.store
        frames = self._frames if self._frames is not None else self.version.frames()
        for frame in frames:
            try:
                yield frame_to_sample(store, frame, self.labels)
            except (MaskLabError, OSError) as e:
                self.problem(self.version.ref, frame.id, e)


def export_version(
    version: Version,
    dst: str | os.PathLike[str],
    *,
    to: str,
    frames: Iterable[Frame] | None = None,
    strict: bool = False,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
    workers: int = 1,
    **options: Any,
) -> ConversionReport:
    """Write a version's frames (or the given ones, e.g. a DataView) in format ``to``.

    The frames are read here; ``workers > 1`` encodes them in that many processes, with
    the same output and report as ``workers=1`` (see :func:`masklab.formats.convert`)."""
    reader = VersionReader(version, frames=frames, strict=strict)
    return convert(
        reader,
        dst,
        to=to,
        strict=strict,
        overwrite=overwrite,
        progress=progress,
        workers=workers,
        **options,
    )
