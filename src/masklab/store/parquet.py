"""Columnar (Parquet) export of a store version, and its lossless import.

An export is a folder that Ray, Spark, DuckDB, Polars and pandas read as it is (one file a
table; read each ``.parquet`` file by its path), and that :func:`import_parquet` turns back
into a version whose every frame is equal to the original (same content key)::

    DST/
      dataset.json          what the export holds; written last, so it marks a complete export
      frames.parquet        one row per frame, in the version's order
      annotations.parquet   one row per annotation, grouped by frame in that same order
      blobs/sha256/<2 hex>/<hex>    the store blobs the frames reference (images, mask PNGs)

Schema version 1 (``SCHEMA_VERSION``; also in each file's key-value metadata as
``masklab.schema_version``). Nullable columns are null where the store holds ``None``.

``frames.parquet``
    ``frame_id`` string, ``key`` string (the frame's content key, sha256 hex; the import
    checks it, a null skips the check, for files edited on purpose), ``context_id`` string,
    ``timestamp`` int64, ``meta`` string (canonical JSON), ``n_annotations`` int32,
    ``sources`` list<struct<``id`` string, ``uri`` string, ``content_type`` string,
    ``width`` int32, ``height`` int32, ``timestamp`` int64, ``masks`` list<struct<``id``
    string, ``uri`` string, ``mode`` string (``pixel``/``alpha``), ``values`` list<int32>,
    ``size`` list<int32> (h, w)>>>>.

``annotations.parquet``
    ``frame_id`` string, ``idx`` int32 (position in the frame), ``source`` string (null: the
    whole frame), ``instance_id`` int64, ``labels`` list<string>, ``class_id`` int64,
    ``iscrowd`` bool, ``score`` float64, ``area`` int64 (mask pixels; null without a mask),
    ``bbox`` list<float64> (``[x, y, w, h]``: the mask's box, else the given box, as the
    catalog keeps it), ``box`` list<float64> (the box as given, null when none),
    ``rle_counts`` string (compressed COCO RLE, byte-equal to pycocotools), ``rle_h``,
    ``rle_w`` int32, ``polygons`` list<list<float64>> (COCO rings), ``meta`` string (JSON).
    ``{"size": [rle_h, rle_w], "counts": rle_counts.encode()}`` is what
    ``pycocotools.mask.decode`` takes.

``dataset.json``
    ``format`` (``"masklab-parquet"``), ``schema_version``, ``masklab_version``, ``dataset``,
    ``version``, ``parent``, ``status``, ``description``, ``metadata``, ``label_map``
    (``LabelMap.to_dict()``), ``counts`` (frames, annotations, blobs) and ``files``.

Blobs. Frames name store blobs by URI (``blob:sha256:<hex>``); an export copies each one it
references into ``DST/blobs`` (the store's own layout), so the folder imports into any other
store: the import copies a blob in only where the target store lacks it, verifying its
hash. ``blobs=False`` (``--no-blobs``) leaves them out: smaller, for analytics or for an
import into a store that shares the blob area (the import checks each frame's blobs are
there; a frame whose are not is reported, or raises with ``strict``). External URIs (image
paths, ``s3://``) are kept as they are, never copied.

Both directions stream ``batch`` frames at a time (one row group each): memory does not grow
with the version. pyarrow is an optional dependency (``pip install "masklab[parquet]"``).
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from masklab.core import rle as _rle
from masklab.core.labels import LabelMap
from masklab.errors import FormatError, MaskFormatError, MaskLabError, NotFoundError
from masklab.formats.report import ConversionReport
from masklab.store.blobs import BlobStore
from masklab.store.importer import ImportResult, _discard
from masklab.store.model import (
    BLOB_SCHEME,
    Annotation,
    Frame,
    Mask,
    Source,
    annotation_doc,
    canonical_json,
    content_key,
    frame_doc,
)
from masklab.store.store import Store, Version

__all__ = [
    "FORMAT",
    "SCHEMA_VERSION",
    "export_parquet",
    "import_parquet",
    "is_parquet_export",
    "read_manifest",
]

FORMAT = "masklab-parquet"
SCHEMA_VERSION = 1
MANIFEST = "dataset.json"
FRAMES_FILE = "frames.parquet"
ANNOTATIONS_FILE = "annotations.parquet"
BLOBS_DIR = "blobs"
BATCH = 1000
_INSTALL = 'pip install "masklab[parquet]"'

FRAME_COLUMNS = ("frame_id", "key", "context_id", "timestamp", "meta", "n_annotations", "sources")
ANNOTATION_COLUMNS = (
    "frame_id",
    "idx",
    "source",
    "instance_id",
    "labels",
    "class_id",
    "iscrowd",
    "score",
    "area",
    "bbox",
    "box",
    "rle_counts",
    "rle_h",
    "rle_w",
    "polygons",
    "meta",
)


def _arrow() -> tuple[Any, Any]:
    """pyarrow and pyarrow.parquet, imported on first use."""
    try:
        pa = importlib.import_module("pyarrow")
        pq = importlib.import_module("pyarrow.parquet")
    except ImportError as e:
        raise ImportError(
            f"the Parquet export and import need pyarrow, which is not installed: {_INSTALL}"
        ) from e
    return pa, pq


def _schemas(pa: Any) -> tuple[Any, Any]:
    """The Arrow schemas of frames.parquet and annotations.parquet (schema version 1)."""
    mask = pa.struct(
        [
            ("id", pa.string()),
            ("uri", pa.string()),
            ("mode", pa.string()),
            ("values", pa.list_(pa.int32())),
            ("size", pa.list_(pa.int32())),
        ]
    )
    source = pa.struct(
        [
            ("id", pa.string()),
            ("uri", pa.string()),
            ("content_type", pa.string()),
            ("width", pa.int32()),
            ("height", pa.int32()),
            ("timestamp", pa.int64()),
            ("masks", pa.list_(mask)),
        ]
    )
    meta = {b"masklab.schema_version": str(SCHEMA_VERSION).encode()}
    frames = pa.schema(
        [
            pa.field("frame_id", pa.string(), nullable=False),
            ("key", pa.string()),
            ("context_id", pa.string()),
            ("timestamp", pa.int64()),
            pa.field("meta", pa.string(), nullable=False),
            pa.field("n_annotations", pa.int32(), nullable=False),
            ("sources", pa.list_(source)),
        ],
        metadata={**meta, b"masklab.table": b"frames"},
    )
    annotations = pa.schema(
        [
            pa.field("frame_id", pa.string(), nullable=False),
            pa.field("idx", pa.int32(), nullable=False),
            ("source", pa.string()),
            ("instance_id", pa.int64()),
            ("labels", pa.list_(pa.string())),
            ("class_id", pa.int64()),
            pa.field("iscrowd", pa.bool_(), nullable=False),
            ("score", pa.float64()),
            ("area", pa.int64()),
            ("bbox", pa.list_(pa.float64())),
            ("box", pa.list_(pa.float64())),
            ("rle_counts", pa.string()),
            ("rle_h", pa.int32()),
            ("rle_w", pa.int32()),
            ("polygons", pa.list_(pa.list_(pa.float64()))),
            pa.field("meta", pa.string(), nullable=False),
        ],
        metadata={**meta, b"masklab.table": b"annotations"},
    )
    return frames, annotations


# --------------------------------------------------------------------------- export


def _blob_digests(frame: Frame) -> list[str]:
    """sha256 hex of every store blob a frame references (images and masks)."""
    uris = [s.uri for s in frame.sources] + [m.uri for s in frame.sources for m in s.masks.values()]
    return [u[len(BLOB_SCHEME) :] for u in uris if u is not None and u.startswith(BLOB_SCHEME)]


def _key(frame: Frame, strings: Sequence[str | None]) -> str:
    """The frame's content key (:attr:`Frame.key`) from its RLE strings, already written."""
    return content_key(
        canonical_json(frame_doc(frame)),
        (
            canonical_json(annotation_doc(a, s))
            for a, s in zip(frame.annotations, strings, strict=True)
        ),
    )


def _source_row(s: Source) -> dict[str, Any]:
    return {
        "id": s.id,
        "uri": s.uri,
        "content_type": s.content_type,
        "width": s.width,
        "height": s.height,
        "timestamp": s.timestamp,
        "masks": [
            {
                "id": k,
                "uri": m.uri,
                "mode": m.mode,
                "values": None if m.values is None else list(m.values),
                "size": None if m.size is None else list(m.size),
            }
            for k, m in sorted(s.masks.items())
        ],
    }


def _columns(frames: Sequence[Frame]) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
    """The frame and annotation columns of a batch: RLE strings, areas and boxes of all its
    masks in one vectorised pass each."""
    rles = [a.rle for f in frames for a in f.annotations if a.rle is not None]
    strings: Iterator[str] = iter(())
    measures: Iterator[tuple[int, list[float]]] = iter(())
    if rles:
        strings = iter(c["counts"] for c in _rle.to_coco_batch(rles))
        areas, boxes = _rle.area_bbox_batch(rles)
        measures = zip(areas.tolist(), boxes.tolist(), strict=True)
    fcols: dict[str, list[Any]] = {name: [] for name in FRAME_COLUMNS}
    acols: dict[str, list[Any]] = {name: [] for name in ANNOTATION_COLUMNS}
    for f in frames:
        frame_strings: list[str | None] = []
        for i, a in enumerate(f.annotations):
            box = None if a.box is None else list(a.box)
            area: int | None = None
            bbox = box
            counts: str | None = None
            h = w = None
            if a.rle is not None:
                counts = next(strings)
                area, bbox = next(measures)
                h, w = a.rle.size
            frame_strings.append(counts)
            acols["frame_id"].append(f.id)
            acols["idx"].append(i)
            acols["source"].append(a.source)
            acols["instance_id"].append(a.instance_id)
            acols["labels"].append(list(a.labels))
            acols["class_id"].append(a.class_id)
            acols["iscrowd"].append(bool(a.iscrowd))
            acols["score"].append(a.score)
            acols["area"].append(area)
            acols["bbox"].append(bbox)
            acols["box"].append(box)
            acols["rle_counts"].append(counts)
            acols["rle_h"].append(h)
            acols["rle_w"].append(w)
            acols["polygons"].append(None if a.polygons is None else [list(r) for r in a.polygons])
            acols["meta"].append(canonical_json(dict(a.meta)))
        fcols["frame_id"].append(f.id)
        fcols["key"].append(_key(f, frame_strings))
        fcols["context_id"].append(f.context_id)
        fcols["timestamp"].append(f.timestamp)
        fcols["meta"].append(canonical_json(dict(f.meta)))
        fcols["n_annotations"].append(len(f.annotations))
        fcols["sources"].append([_source_row(s) for s in f.sources])
    return fcols, acols


def export_parquet(
    version: Version,
    dst: str | os.PathLike[str],
    *,
    frames: Iterable[Frame] | None = None,
    blobs: bool = True,
    strict: bool = False,
    overwrite: bool = False,
    batch: int = BATCH,
    progress: Callable[[int], None] | None = None,
) -> ConversionReport:
    """Write a version's frames (or the given ones, e.g. a DataView) as a Parquet export.

    The layout is the module's. The folder is written beside ``dst`` and moved into place
    at the end: a failed export leaves ``dst`` as it was. ``batch`` frames make one row
    group. A frame whose blob cannot be read is reported and left out (``strict`` raises).

    Raises:
        FormatError: ``dst`` exists and is not empty, without ``overwrite``.
    """
    pa, pq = _arrow()
    target = Path(dst)
    if target.exists() and not overwrite and (target.is_file() or any(target.iterdir())):
        raise FormatError(
            f"{target} already exists; write to a new path or pass overwrite=True",
            path=str(target),
        )
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    store = version.store
    report = ConversionReport(source=version.ref, target="parquet")
    frames_schema, anns_schema = _schemas(pa)
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    n_blobs = 0
    try:
        out_blobs = BlobStore(str(stage / BLOBS_DIR)) if blobs else None
        with (
            pq.ParquetWriter(stage / FRAMES_FILE, frames_schema, compression="zstd") as fw,
            pq.ParquetWriter(stage / ANNOTATIONS_FILE, anns_schema, compression="zstd") as aw,
        ):
            it = iter(frames if frames is not None else version.frames(batch=batch))
            while chunk := list(islice(it, batch)):
                kept: list[Frame] = []
                for f in chunk:
                    if out_blobs is not None:
                        try:
                            n_blobs += _copy_blobs(store.blobs, out_blobs, _blob_digests(f))
                        except (MaskLabError, OSError) as e:
                            if strict:
                                raise
                            report.problem(version.ref, f.id, e)
                            continue
                    kept.append(f)
                if kept:  # one row group per batch in each file
                    fcols, acols = _columns(kept)
                    fw.write_table(pa.Table.from_pydict(fcols, schema=frames_schema))
                    aw.write_table(pa.Table.from_pydict(acols, schema=anns_schema))
                report.samples += len(kept)
                n_anns = sum(len(f.annotations) for f in kept)
                report.instances += n_anns
                report.exact += n_anns
                if progress is not None:
                    progress(len(chunk))
        manifest = {
            "format": FORMAT,
            "schema_version": SCHEMA_VERSION,
            "masklab_version": _masklab_version(),
            "dataset": version.dataset.name,
            "version": version.name,
            "parent": None if (p := version.parent) is None else p.name,
            "status": version.status,
            "description": version.description,
            "metadata": version.metadata,
            "label_map": version.label_map.to_dict(),
            "counts": {
                "frames": report.samples,
                "annotations": report.instances,
                "blobs": n_blobs if blobs else None,
            },
            "files": {
                "frames": FRAMES_FILE,
                "annotations": ANNOTATIONS_FILE,
                "blobs": BLOBS_DIR if blobs else None,
            },
        }
        (stage / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
        if target.exists():
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink()
        os.replace(stage, target)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return report


def _copy_blobs(src: BlobStore, dst: BlobStore, digests: Iterable[str]) -> int:
    """Copy the blobs ``dst`` lacks (verified on read); return how many were copied."""
    copied = 0
    for d in digests:
        if not dst.exists(d):
            dst.put(src.get(d))
            copied += 1
    return copied


def _masklab_version() -> str:
    from masklab import __version__

    return __version__


# --------------------------------------------------------------------------- import


def is_parquet_export(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder written by :func:`export_parquet` (reads its manifest)."""
    p = Path(path) / MANIFEST
    if not p.is_file():
        return False
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("format") == FORMAT


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``dataset.json`` of an export, checked (format, schema version, files).

    Raises:
        FormatError: naming the file, when it is missing, unreadable or of a newer schema.
    """
    root = Path(path)
    p = root / MANIFEST
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise FormatError(
            f"{root} is not a masklab Parquet export: {p} is missing (an export writes it "
            "last; re-run the export)",
            path=str(p),
        ) from None
    except (OSError, ValueError) as e:
        raise FormatError(f"{p}: cannot read the export's manifest: {e}", path=str(p)) from e
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise FormatError(
            f"{p}: 'format' is {data.get('format') if isinstance(data, dict) else None!r}, "
            f"expected {FORMAT!r}",
            path=str(p),
            field="format",
        )
    schema = data.get("schema_version")
    if not isinstance(schema, int) or schema > SCHEMA_VERSION or schema < 1:
        raise FormatError(
            f"{p}: schema_version {schema!r} is not one this masklab reads "
            f"(1..{SCHEMA_VERSION}); upgrade masklab",
            path=str(p),
            field="schema_version",
        )
    for name in ("dataset", "version", "label_map"):
        if name not in data:
            raise FormatError(f"{p}: {name!r} is missing", path=str(p), field=name)
    return data


class _Table:
    """One Parquet file of an export, read ``batch`` rows at a time; errors name the file."""

    def __init__(self, path: Path, columns: Sequence[str], batch: int) -> None:
        pa, pq = _arrow()
        self.path = path
        self._errors = (pa.ArrowException, OSError)
        try:
            self.file = pq.ParquetFile(path)
        except FileNotFoundError:
            raise FormatError(
                f"{path} is missing; the export is incomplete, re-export it", path=str(path)
            ) from None
        except self._errors as e:
            raise FormatError(
                f"{path} is not a readable Parquet file ({e}); re-export it", path=str(path)
            ) from e
        names = set(self.file.schema_arrow.names)
        missing = [c for c in columns if c not in names]
        if missing:
            raise FormatError(
                f"{path} lacks the column(s) {missing}; it was not written by a masklab "
                f"Parquet export of schema {SCHEMA_VERSION}",
                path=str(path),
                field=missing[0],
            )
        self.columns = list(columns)
        self.batch = batch

    def rows(self) -> Iterator[dict[str, Any]]:
        """The rows as dicts, streamed."""
        batches = self.file.iter_batches(batch_size=self.batch, columns=self.columns)
        while True:
            try:
                record_batch = next(batches)
            except StopIteration:
                return
            except self._errors as e:
                raise FormatError(
                    f"{self.path} is corrupt ({e}); re-export it", path=str(self.path)
                ) from e
            yield from record_batch.to_pylist()


@dataclass
class _Group:
    frame_id: str
    rows: list[dict[str, Any]]


def _groups(rows: Iterator[dict[str, Any]]) -> Iterator[_Group]:
    """Consecutive annotation rows of one frame."""
    group: _Group | None = None
    for r in rows:
        if group is None or r["frame_id"] != group.frame_id:
            if group is not None:
                yield group
            group = _Group(r["frame_id"], [])
        group.rows.append(r)
    if group is not None:
        yield group


def _frame_rows(
    frames: _Table, annotations: _Table
) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Each frame row with its annotation rows (a merge of the two files, both streamed)."""
    groups = _groups(annotations.rows())
    pending = next(groups, None)
    for row in frames.rows():
        anns: list[dict[str, Any]] = []
        if pending is not None and pending.frame_id == row["frame_id"]:
            anns = sorted(pending.rows, key=lambda r: r["idx"])
            pending = next(groups, None)
        if len(anns) != row["n_annotations"] or [a["idx"] for a in anns] != list(range(len(anns))):
            raise FormatError(
                f"{annotations.path}: frame {row['frame_id']!r} has {len(anns)} annotation "
                f"rows where {frames.path.name} says {row['n_annotations']}; the rows must be "
                "grouped by frame in frame order with idx 0..n-1 (re-export, or sort by the "
                "frame order and idx)",
                path=str(annotations.path),
                record=row["frame_id"],
            )
        yield row, anns
    if pending is not None:
        raise FormatError(
            f"{annotations.path}: annotation rows for frame {pending.frame_id!r} follow the "
            f"last frame of {frames.path.name}; the frame is missing or out of order",
            path=str(annotations.path),
            record=pending.frame_id,
        )


def _json_obj(text: str | None, what: str, path: Path) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        obj = json.loads(text)
    except ValueError as e:
        raise FormatError(f"{path}: {what}: meta is not JSON: {e}", path=str(path)) from e
    if not isinstance(obj, dict):
        raise FormatError(
            f"{path}: {what}: meta is {type(obj).__name__}, expected a JSON object",
            path=str(path),
        )
    return obj


def _source(d: Mapping[str, Any]) -> Source:
    masks = {
        m["id"]: Mask(
            m["uri"],
            m["mode"],
            None if m["values"] is None else tuple(m["values"]),
            None if m["size"] is None else (m["size"][0], m["size"][1]),
        )
        for m in d["masks"] or ()
    }
    return Source(
        d["uri"],
        id=d["id"],
        width=d["width"],
        height=d["height"],
        content_type=d["content_type"],
        timestamp=d["timestamp"],
        masks=masks,
    )


def _annotation(r: Mapping[str, Any], rle: _rle.RLE | None, path: Path) -> Annotation:
    return Annotation(
        labels=tuple(r["labels"] or ()),
        class_id=r["class_id"],
        box=None if r["box"] is None else tuple(r["box"]),
        polygons=None if r["polygons"] is None else tuple(tuple(p) for p in r["polygons"]),
        rle=rle,
        score=r["score"],
        iscrowd=bool(r["iscrowd"]),
        instance_id=r["instance_id"],
        source=r["source"],
        meta=_json_obj(r["meta"], f"frame {r['frame_id']!r}, annotation {r['idx']}", path),
    )


_Rows = list[tuple[dict[str, Any], list[dict[str, Any]]]]


def _decode_rles(chunk: _Rows, path: Path) -> list[list[_rle.RLE] | FormatError]:
    """Each frame's RLEs, every string of the chunk decoded in one batch; where a string is
    malformed, that frame's entry is the error (naming the file and the frame)."""

    def coco(anns: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {"size": [a["rle_h"], a["rle_w"]], "counts": a["rle_counts"]}
            for a in anns
            if a["rle_counts"] is not None
        ]

    per_frame = [coco(anns) for _, anns in chunk]
    try:
        flat = iter(_rle.from_coco_batch([c for objs in per_frame for c in objs]))
        return [list(islice(flat, len(objs))) for objs in per_frame]
    except MaskFormatError:
        pass  # find the frame(s) it was in
    out: list[list[_rle.RLE] | FormatError] = []
    for (row, _), objs in zip(chunk, per_frame, strict=True):
        try:
            out.append(_rle.from_coco_batch(objs))
        except MaskFormatError as e:
            err = FormatError(
                f"{path}: frame {row['frame_id']!r}: an RLE is malformed: {e}",
                path=str(path),
                record=row["frame_id"],
                field="rle_counts",
            )
            err.__cause__ = e
            out.append(err)
    return out


def _build(
    row: Mapping[str, Any],
    anns: Sequence[Mapping[str, Any]],
    rles: list[_rle.RLE] | FormatError,
    root: Path,
) -> Frame:
    """A frame from its rows and its decoded RLEs."""
    if isinstance(rles, FormatError):
        raise rles
    fid = row["frame_id"]
    it = iter(rles)
    annotations = tuple(
        _annotation(a, next(it) if a["rle_counts"] is not None else None, root / ANNOTATIONS_FILE)
        for a in anns
    )
    return Frame(
        fid,
        tuple(_source(s) for s in row["sources"] or ()),
        annotations,
        row["context_id"],
        row["timestamp"],
        _json_obj(row["meta"], f"frame {fid!r}", root / FRAMES_FILE),
    )


def import_parquet(
    store: Store,
    path: str | os.PathLike[str],
    *,
    dataset: str | None = None,
    version: str | None = None,
    parent: str | None = None,
    publish: bool | None = None,
    strict: bool = False,
    batch: int = BATCH,
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Import a Parquet export as a new version, frame for frame equal to the exported one.

    ``dataset`` and ``version`` default to the exported names; the version must be new
    (as in every import). With ``parent`` it starts from that version's frames and the
    imported ones replace or join them. ``publish=None`` keeps the exported status
    (a published version comes back published). Blobs the store lacks are copied in from
    the export's ``blobs/`` (hash-verified). A frame that cannot be rebuilt (bad JSON or
    RLE, a content key that does not match, a missing blob) is reported and skipped;
    ``strict`` raises. Like every import, the version appears only once complete.

    Raises:
        FormatError: a missing or corrupt file (named), or annotation rows out of step.
        StoreError: the version name is taken.
    """
    root = Path(path)
    start = time.perf_counter()
    manifest = read_manifest(root)
    frames_t = _Table(root / FRAMES_FILE, FRAME_COLUMNS, batch)
    anns_t = _Table(root / ANNOTATIONS_FILE, ANNOTATION_COLUMNS, batch)
    labels = LabelMap.from_dict(manifest["label_map"])
    blobs_dir = root / BLOBS_DIR
    src_blobs = BlobStore(str(blobs_dir)) if blobs_dir.is_dir() else None
    ds = store.get_or_create_dataset(dataset or manifest["dataset"])
    v = ds.create_version(
        version or manifest["version"],
        parent=parent,
        description=str(manifest.get("description") or ""),
        metadata=manifest.get("metadata") or {},
        _status="importing",
    )
    result = ImportResult(version=v.ref)
    result.report.source = str(root)
    result.report.target = v.ref
    try:
        if parent is not None and len(v.label_map):
            labels = v.label_map.merged(labels)
        v.set_label_map(labels)

        def frames() -> Iterator[Frame]:
            rows = _frame_rows(frames_t, anns_t)
            while chunk := list(islice(rows, batch)):
                yield from build(chunk)

        def build(chunk: _Rows) -> Iterator[Frame]:
            for (row, anns), rles in zip(
                chunk, _decode_rles(chunk, root / ANNOTATIONS_FILE), strict=True
            ):
                key = row["key"]
                try:
                    frame = _build(row, anns, rles, root)
                    # hashed with the file's RLE strings: a match proves they are the
                    # exported (canonical) ones, so the decoded masks are the originals
                    if (
                        key is not None
                        and (got := _key(frame, [a["rle_counts"] for a in anns])) != key
                    ):
                        raise FormatError(
                            f"{root}: frame {frame.id!r} rebuilds from {FRAMES_FILE} and "
                            f"{ANNOTATIONS_FILE} to content key {got[:12]}... but the "
                            f"export recorded {key[:12]}...; the files were changed or are "
                            "corrupt (re-export, or set 'key' to null to import edited rows)",
                            path=str(frames_t.path),
                            record=frame.id,
                        )
                    _import_blobs(store, src_blobs, frame, root)
                except (MaskLabError, OSError) as e:
                    if strict:
                        raise
                    result.report.problem(frames_t.path, row["frame_id"], e)
                    continue
                result.frames += 1
                result.annotations += len(frame.annotations)
                if progress is not None:
                    progress(1)
                yield frame

        v._write(frames(), "upsert" if parent is not None else "add", batch)
        v.commit()
        result.report.samples = result.frames
        result.report.instances = result.annotations
        if publish if publish is not None else manifest.get("status") == "published":
            v.publish()
    except BaseException:
        _discard(store, v)
        raise
    result.seconds = time.perf_counter() - start
    return result


def _import_blobs(store: Store, src: BlobStore | None, frame: Frame, root: Path) -> None:
    """Copy into the store the blobs of ``frame`` it lacks, from the export's blobs."""
    for d in _blob_digests(frame):
        if store.blobs.exists(d):
            continue
        if src is None or not src.exists(d):
            where = "has no blobs/ folder" if src is None else "lacks it in blobs/"
            raise NotFoundError(
                f"frame {frame.id!r} references {BLOB_SCHEME}{d}, which the store "
                f"({store.blobs.url}) does not hold and the export {root} {where}; "
                "re-export with blobs (--with-blobs) or point MASKLAB_BLOBS at the "
                "exporting store's blobs"
            )
        store.blobs.put(src.get(d))
