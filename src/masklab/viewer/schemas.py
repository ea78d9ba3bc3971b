"""Request and response bodies of the viewer's JSON API (``reference``: notes/viewer_api.md).

These are the wire types, not the store's: ids are strings, sizes ``(h, w)``, boxes COCO
``[x, y, w, h]``, colours ``[r, g, b]``, masks COCO RLE with the compressed ``counts`` string.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from masklab.core.labels import LabelMap

__all__ = [
    "AnnotationOut",
    "ChangeOut",
    "ColorsIn",
    "DatasetOut",
    "FrameDiffOut",
    "FrameOut",
    "FramePage",
    "FrameSummary",
    "LabelMapOut",
    "LabelOut",
    "MaskOut",
    "MaskValueOut",
    "RleOut",
    "SourceOut",
    "VersionOut",
    "label_map_out",
]

Channel = Annotated[StrictInt, Field(ge=0, le=255)]


class LabelOut(BaseModel):
    """One label of a version's label map."""

    id: int
    names: list[str]
    color: tuple[int, int, int]
    role: str
    isthing: bool


class LabelMapOut(BaseModel):
    """A version's label map."""

    labels: list[LabelOut]


def label_map_out(labels: LabelMap) -> LabelMapOut:
    """The wire form of a :class:`~masklab.core.labels.LabelMap`."""
    return LabelMapOut(
        labels=[
            LabelOut(
                id=lab.id,
                names=list(lab.names),
                color=lab.color,
                role=lab.role,
                isthing=lab.isthing,
            )
            for lab in labels
        ]
    )


class DatasetOut(BaseModel):
    """A dataset and how many versions it has."""

    name: str
    versions: int


class VersionOut(BaseModel):
    """A version: status, parent, counts, label map."""

    name: str
    ref: str
    status: Literal["draft", "published"]
    parent: str | None
    frames: int
    instances: int
    label_map: LabelMapOut
    description: str = ""
    created_at: str = ""


class FrameSummary(BaseModel):
    """One cell of the frame grid."""

    id: str
    width: int | None
    height: int | None
    sources: int
    instances: int
    labels: list[str]
    thumbnail: str  # URL of the frame's thumbnail endpoint


class FramePage(BaseModel):
    """A page of a (filtered) version's frames, in version order."""

    total: int
    offset: int
    limit: int
    frames: list[FrameSummary]


class RleOut(BaseModel):
    """COCO RLE: ``size`` is ``[h, w]``, ``counts`` the compressed string."""

    size: tuple[int, int]
    counts: str


class MaskValueOut(BaseModel):
    """The pixels of a mask that hold one value."""

    value: int
    rle: RleOut


class MaskOut(BaseModel):
    """A pixel (class-index) or alpha mask of a source, one RLE per distinct value."""

    id: str
    mode: Literal["pixel", "alpha"]
    size: tuple[int, int] | None = None
    values: list[MaskValueOut]
    error: str | None = None  # why the mask could not be read (then ``values`` is empty)


class SourceOut(BaseModel):
    """One image of a frame and its masks."""

    id: str
    width: int | None
    height: int | None
    content_type: str | None = None
    image: str | None  # URL of the image endpoint; None for a source without an image
    masks: list[MaskOut]


class AnnotationOut(BaseModel):
    """An annotation (ROI); ``rle`` is its mask (polygons rasterised COCO-exactly) or None."""

    index: int
    instance_id: int | None
    labels: list[str]
    class_id: int | None
    source: str | None
    score: float | None
    iscrowd: bool
    area: int | None
    bbox: tuple[float, float, float, float] | None
    rle: RleOut | None
    geometry: Literal["rle", "polygons", "box", "none"]


class FrameOut(BaseModel):
    """A frame with its sources, masks and annotations."""

    id: str
    meta: dict[str, Any]
    context_id: str | None = None
    timestamp: int | None = None
    label_map: LabelMapOut
    sources: list[SourceOut]
    annotations: list[AnnotationOut]


class ChangeOut(BaseModel):
    """One mask of a frame that differs between two versions, and the pixels that differ."""

    kind: Literal["added", "removed", "changed", "relabeled"]
    mask: str  # "instance 7", "annotation 3" or "<source>/<mask id>"
    instance_id: int | None
    labels: list[str]
    pixels: int
    rle: RleOut | None  # the differing pixels; None where the two sizes differ


class FrameDiffOut(BaseModel):
    """One frame in two versions of a dataset (B against A)."""

    frame: str
    a: str
    b: str
    status: Literal["added", "removed", "changed", "same"]
    changes: list[ChangeOut]
    other: list[str] = []  # non-mask fields that changed: meta, context/timestamp, sources


class ColorsIn(BaseModel):
    """New colours of some labels: label id (a decimal string) -> ``[r, g, b]``."""

    model_config = ConfigDict(extra="forbid")

    colors: dict[str, tuple[Channel, Channel, Channel]] = Field(max_length=4096)
