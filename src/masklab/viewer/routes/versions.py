"""``/api/versions/{dataset}/{version}/...``: frame pages, frames, images, thumbnails, colours.

Images are the bytes of the source's own URI as the catalog holds it (a blob, or the file or
URL it references); nothing of the request is used to find them. Only bytes that are a
raster image (PNG, JPEG, GIF, WebP, BMP, TIFF by their magic numbers) are served, with their
own content type, so a catalog entry can never make the viewer serve a page or a script.
"""

from __future__ import annotations

import io
from dataclasses import replace
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Query, Response
from PIL import Image, UnidentifiedImageError

from masklab.core.labels import LabelMap
from masklab.errors import MaskLabError, NotFoundError, PublishedVersionError, StoreError
from masklab.store import Store
from masklab.store.model import Frame, Source
from masklab.store.query import DataView, parse_where
from masklab.viewer.deps import (
    FrameDep,
    StateDep,
    VersionDep,
    require_writable,
    segment,
)
from masklab.viewer.routes._encode import frame_labels, frame_out, frame_url
from masklab.viewer.schemas import (
    ColorsIn,
    FrameOut,
    FramePage,
    FrameSummary,
    LabelMapOut,
    label_map_out,
)

router = APIRouter(prefix="/api/versions", tags=["versions"])

MAX_LIMIT = 500
MAX_WHERE = 2000  # characters of a query
THUMB_SIZES = (16, 1024)
IMAGE_TYPES = (  # magic number -> content type
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
)
NOSNIFF = {"X-Content-Type-Options": "nosniff"}


def image_type(data: bytes) -> str | None:
    """The content type of raster image bytes by their magic number, else None.

    >>> image_type(b"\\x89PNG\\r\\n\\x1a\\n...."), image_type(b"<svg>")
    ('image/png', None)
    """
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((t for magic, t in IMAGE_TYPES if data.startswith(magic)), None)


@router.get("/{dataset}/{version}/frames")
def list_frames(
    version: VersionDep,
    where: Annotated[str | None, Query(max_length=MAX_WHERE)] = None,
    offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 48,
) -> FramePage:
    """A page of the version's frames, filtered by ``where`` (the ``--where`` grammar)."""
    view = DataView(version)
    if where is not None and any(ord(c) < 32 and c not in "\t\n\r" for c in where):
        raise HTTPException(400, "--where holds a control character; write e.g. label=cat")
    if where is not None and where.strip():
        try:
            view = view.where(**parse_where(where))
            keys = view.keys()
        except StoreError as err:
            raise HTTPException(400, str(err)) from None
    else:
        keys = view.keys()
    page = keys[offset : offset + limit]
    labels = version.label_map
    frames = [
        FrameSummary(
            id=f.id,
            width=f.sources[0].width,
            height=f.sources[0].height,
            sources=len(f.sources),
            instances=len(f.annotations),
            labels=frame_labels(labels, f),
            thumbnail=frame_url(version, f.id, "thumbnail"),
        )
        for f in version.frames_by_keys(page)
    ]
    return FramePage(total=len(keys), offset=offset, limit=limit, frames=frames)


@router.get("/{dataset}/{version}/frames/{frame_id}")
def get_frame(version: VersionDep, frame: FrameDep) -> FrameOut:
    """A frame: meta, label map, sources with image URLs and masks, annotations."""
    return frame_out(version, version.label_map, frame)


def _source(frame: Frame, raw_id: str) -> Source:
    sid = segment(raw_id, "source")
    for s in frame.sources:
        if s.id == sid:
            return s
    raise HTTPException(404, f"frame {frame.id!r} has no source {sid!r}")


def _image_bytes(store: Store, source: Source) -> tuple[bytes, str]:
    """The source's own image bytes and content type; 404 when it has none or it is gone,
    415 when the bytes are no raster image."""
    if source.uri is None:
        raise HTTPException(404, f"source {source.id!r} has no image")
    try:
        data = store.read_bytes(source.uri)
    except NotFoundError:
        raise HTTPException(404, f"the image of source {source.id!r} is missing") from None
    except (MaskLabError, OSError):
        raise HTTPException(502, f"the image of source {source.id!r} cannot be read") from None
    kind = image_type(data)
    if kind is None:
        raise HTTPException(415, f"the image of source {source.id!r} is not a raster image")
    return data, kind


@router.get("/{dataset}/{version}/frames/{frame_id}/sources/{source_id}/image")
def get_image(state: StateDep, frame: FrameDep, source_id: str) -> Response:
    """The bytes of one source's image, with their content type."""
    data, kind = _image_bytes(state.store, _source(frame, source_id))
    return Response(data, media_type=kind, headers={**NOSNIFF, "Cache-Control": "private"})


@router.get("/{dataset}/{version}/frames/{frame_id}/thumbnail")
def get_thumbnail(
    state: StateDep,
    version: VersionDep,
    frame: FrameDep,
    size: Annotated[int, Query(ge=THUMB_SIZES[0], le=THUMB_SIZES[1])] = 256,
) -> Response:
    """A JPEG of the frame's first source, at most ``size`` pixels a side; a frame without an
    image shows its first pixel mask in the label map's colours (PNG)."""
    source = frame.sources[0]
    labels: LabelMap | None = None
    if source.uri is not None:
        key = (f"image\0{source.uri}", size)
    else:  # painted from a mask: the label map's colours are part of the picture
        labels = version.label_map
        colors = ",".join(f"{lab.id}:{lab.color}" for lab in labels)
        key = (f"mask\0{_first_mask_uri(source)}\0{colors}", size)
    cached = state.thumbnails.get(key)
    if cached is None:
        if labels is None:
            cached = _image_thumbnail(state.store, source, size)
        else:
            cached = _mask_thumbnail(state.store, labels, source, size)
        state.thumbnails.put(key, cached)
    data, kind = cached
    return Response(data, media_type=kind, headers={**NOSNIFF, "Cache-Control": "private"})


def _first_mask_uri(source: Source) -> str:
    pixel = [m for _, m in sorted(source.masks.items()) if m.mode == "pixel"]
    return pixel[0].uri if pixel else ""


def _image_thumbnail(store: Store, source: Source, size: int) -> tuple[bytes, str]:
    data, _ = _image_bytes(store, source)
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.draft("RGB", (size, size))
            im.thumbnail((size, size))
            rgb = _as_rgb(im)
    except (UnidentifiedImageError, OSError, ValueError):
        raise HTTPException(415, f"the image of source {source.id!r} cannot be decoded") from None
    out = io.BytesIO()
    rgb.save(out, "JPEG", quality=85)
    return out.getvalue(), "image/jpeg"


def _as_rgb(im: Image.Image) -> Image.Image:
    """RGB of any PIL mode; 16-bit and float greyscale stretched to 0..255."""
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        a = np.asarray(im, dtype=np.float64)
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 1.0)
        scaled = ((a - lo) * (255.0 / (hi - lo if hi > lo else 1.0))).astype(np.uint8)
        return Image.fromarray(scaled).convert("RGB")
    return im.convert("RGB")


def _mask_thumbnail(store: Store, labels: LabelMap, source: Source, size: int) -> tuple[bytes, str]:
    pixel = [m for _, m in sorted(source.masks.items()) if m.mode == "pixel"]
    if not pixel:
        raise HTTPException(404, f"source {source.id!r} has no image and no pixel mask")
    try:
        ids = store.read_mask(pixel[0], labels)
        rgb = labels.ids_to_colors(ids)
    except MaskLabError:
        raise HTTPException(404, f"the mask of source {source.id!r} cannot be read") from None
    im = Image.fromarray(rgb)
    im.thumbnail((size, size), Image.Resampling.NEAREST)
    out = io.BytesIO()
    im.save(out, "PNG")
    return out.getvalue(), "image/png"


@router.put("/{dataset}/{version}/colors", dependencies=[Depends(require_writable)])
def put_colors(version: VersionDep, body: ColorsIn) -> LabelMapOut:
    """Recolour labels of a draft version's label map; answers the new label map.

    403 unless the server is writable, 409 for a published version, 422 for an unknown
    label id or a colour another label would share.
    """
    if version.status == "published":
        raise HTTPException(409, f"version {version.ref} is published; its colours are fixed")
    labels = version.label_map
    colors: dict[int, tuple[int, int, int]] = {}
    for key, rgb in body.colors.items():
        if not key.isdigit() or len(key) > 9 or int(key) not in labels:
            raise HTTPException(
                422, f"no label with id {key!r} in {version.ref}; known ids: {labels.ids}"
            )
        colors[int(key)] = (int(rgb[0]), int(rgb[1]), int(rgb[2]))
    new = LabelMap(
        tuple(replace(lab, color=colors.get(lab.id, lab.color)) for lab in labels.labels)
    )
    _check_distinct(new)
    try:
        version.set_label_map(new)
    except PublishedVersionError as err:
        raise HTTPException(409, str(err)) from None
    return label_map_out(version.label_map)


def _check_distinct(labels: LabelMap) -> None:
    """Colour-coded masks read back through the colours: two labels may not share one."""
    seen: dict[tuple[int, int, int], Any] = {}
    for lab in labels:
        other = seen.setdefault(lab.color, lab)
        if other is not lab:
            raise HTTPException(
                422,
                f"labels {other.id} and {lab.id} would share colour {list(lab.color)}; "
                "give each label its own colour",
            )
