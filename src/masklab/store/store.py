"""Store -> Dataset -> Version: versioned sets of frames with a label map per version.

A version is a membership set (frame id -> content key) over immutable frame rows. Edits on a
draft (:meth:`Version.add_frames`, :meth:`~Version.update_frames`,
:meth:`~Version.remove_frames`) are staged in the catalog and become part of the version, all at
once, on :meth:`Version.commit`; readers only ever see committed frames. A child version starts
from its parent's members (one INSERT ... SELECT, no frame rows copied). A published version
never changes.

>>> import tempfile
>>> home = tempfile.mkdtemp()
>>> store = Store(home=home)
>>> v1 = store.create_dataset("pets").create_version("v1")
>>> v1.set_mask_labels({(0, 0, 0): ["background"], (1, 1, 1): ["cat"]})
>>> v1.add_frames([Frame.single("a", "a.jpg", width=4, height=3)])
>>> v1.commit()
>>> len(v1), v1.get_mask_labels()[(1, 1, 1)]
(1, ['cat'])
>>> store.close()
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
from PIL import Image
from sqlalchemy import Connection, delete, func, insert, literal, select, update

from masklab.core import rle as _rle
from masklab.core.labels import LabelMap
from masklab.errors import NotFoundError, PublishedVersionError, StoreError
from masklab.formats import _png
from masklab.store import catalog as cat
from masklab.store.blobs import BlobStore
from masklab.store.catalog import Catalog, insert_tuples, now, owner_tag
from masklab.store.model import (
    Annotation,
    Frame,
    Mask,
    MaskMode,
    annotation_doc,
    blob_uri,
    canonical_json,
    content_key,
    frame_doc,
    source_from_doc,
)

if TYPE_CHECKING:
    from masklab.store.query import DataView

__all__ = ["Dataset", "Store", "Version", "default_home"]

Status = Literal["importing", "draft", "published"]
BATCH = 1000


def default_home() -> Path:
    """``$MASKLAB_HOME``, else ``~/.masklab``."""
    env = os.environ.get("MASKLAB_HOME")
    return Path(env) if env else Path.home() / ".masklab"


class Store:
    """A catalog (SQL) and a blob area (fsspec): where datasets live.

    Defaults: ``sqlite:///$MASKLAB_HOME/catalog.db`` and ``$MASKLAB_HOME/blobs``; override
    with ``catalog=``/``blobs=`` or ``MASKLAB_CATALOG``/``MASKLAB_BLOBS``.
    """

    def __init__(
        self,
        *,
        home: str | os.PathLike[str] | None = None,
        catalog: str | None = None,
        blobs: str | None = None,
    ) -> None:
        root = Path(home) if home is not None else default_home()
        catalog = catalog or os.environ.get("MASKLAB_CATALOG") or f"sqlite:///{root}/catalog.db"
        blobs = blobs or os.environ.get("MASKLAB_BLOBS") or str(root / "blobs")
        self.catalog = Catalog(catalog)
        self.blobs = BlobStore(blobs)

    def __repr__(self) -> str:
        return f"Store(catalog={self.catalog.url!r}, blobs={self.blobs.url!r})"

    def close(self) -> None:
        """Release database connections."""
        self.catalog.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- datasets

    def datasets(self) -> list[Dataset]:
        """All datasets, by name."""
        with self.catalog.read() as conn:
            rows = conn.execute(select(cat.datasets).order_by(cat.datasets.c.name)).all()
        return [Dataset(self, row._mapping) for row in rows]

    def dataset(self, name: str) -> Dataset:
        """The dataset with this name; NotFoundError listing the known ones otherwise."""
        with self.catalog.read() as conn:
            row = conn.execute(select(cat.datasets).where(cat.datasets.c.name == name)).first()
            if row is None:
                known = conn.execute(select(cat.datasets.c.name)).scalars().all()
                raise NotFoundError(
                    f"no dataset named {name!r}; known: {sorted(known) or 'none yet'}"
                )
        return Dataset(self, row._mapping)

    def create_dataset(
        self, name: str, *, description: str = "", tags: Sequence[str] = ()
    ) -> Dataset:
        """A new, empty dataset (StoreError if the name is taken)."""
        if not name or not isinstance(name, str) or ":" in name:
            raise StoreError(f"a dataset name must be a non-empty string without ':', got {name!r}")
        with self.catalog.write() as conn:
            exists = conn.execute(
                select(cat.datasets.c.id).where(cat.datasets.c.name == name)
            ).first()
            if exists is not None:
                raise StoreError(f"dataset {name!r} already exists; open it with store.dataset()")
            conn.execute(
                insert(cat.datasets).values(
                    name=name,
                    description=description,
                    tags=json.dumps(list(tags)),
                    created_at=now(),
                )
            )
        return self.dataset(name)

    def get_or_create_dataset(self, name: str) -> Dataset:
        """The dataset with this name, created when it does not exist."""
        try:
            return self.dataset(name)
        except NotFoundError:
            try:
                return self.create_dataset(name)
            except StoreError:  # created by another process meanwhile
                return self.dataset(name)

    def delete_dataset(self, name: str) -> None:
        """Delete a dataset and all its versions (frame rows and blobs stay; shared)."""
        ds = self.dataset(name)
        with self.catalog.write() as conn:
            vids = conn.execute(
                select(cat.versions.c.id)
                .where(cat.versions.c.dataset_id == ds.id)
                .order_by(cat.versions.c.id.desc())
            ).scalars()
            for vid in list(vids):
                conn.execute(
                    update(cat.versions).where(cat.versions.c.id == vid).values(parent_id=None)
                )
                delete_version_rows(conn, vid)
            conn.execute(delete(cat.datasets).where(cat.datasets.c.id == ds.id))

    def version(self, ref: str) -> Version:
        """``"DATASET:VERSION"``, or ``"DATASET"`` for its newest version."""
        name, _, version = ref.partition(":")
        return self.dataset(name).version(version or None)

    # ---- masks

    def put_mask(self, array: npt.ArrayLike, *, mode: MaskMode = "pixel") -> Mask:
        """Store a class-index (``pixel``) or opacity (``alpha``) array as a PNG blob."""
        a = np.asarray(array)
        if a.ndim != 2:
            raise StoreError(f"a mask is a 2-D array, got shape {a.shape}")
        if a.dtype.kind not in "biu" or (a.size and (a.min() < 0 or a.max() > 65535)):
            raise StoreError("mask values must be integers in 0..65535")
        dtype = np.uint8 if (a.size == 0 or a.max() < 256) and mode == "pixel" else np.uint16
        if mode == "alpha":
            if a.size and a.max() > 255:
                raise StoreError("alpha mask values must be 0..255")
            dtype = np.uint8
        # the PNG's bytes depend on the pixels alone: the blob's key, and the frame's, too
        data = _png.encode_png(np.ascontiguousarray(a, dtype=dtype))
        digest = self.blobs.put(data)
        values: Any = np.flatnonzero(np.bincount(a.ravel().astype(np.int64))) if a.size else []
        return Mask(blob_uri(digest), mode, tuple(int(v) for v in values), (a.shape[0], a.shape[1]))

    def read_mask(self, mask: Mask, labels: LabelMap | None = None) -> npt.NDArray[Any]:
        """A mask's array: class ids (RGB masks mapped through ``labels``' colours) or alpha."""
        data = self.blobs.read(mask.uri)
        with Image.open(io.BytesIO(data)) as im:
            arr = np.asarray(im.convert("RGB") if im.mode in ("P", "RGBA") else im)
        if arr.ndim == 3:
            if mask.mode == "alpha":
                return np.ascontiguousarray(arr[..., 0])
            if labels is None:
                raise StoreError(f"{mask.uri} is an RGB mask; reading it needs the label map")
            ids, unknown = labels.colors_to_ids(arr[..., :3])
            if unknown:
                raise StoreError(
                    f"{mask.uri} has colours not in the label map: {sorted(unknown)[:5]}; "
                    "add them with set_mask_labels"
                )
            return ids
        return arr

    def read_bytes(self, uri: str) -> bytes:
        """Bytes of a source or mask URI (blobs verified by hash)."""
        return self.blobs.read(uri)

    def gc(self) -> int:
        """Delete versions left by imports whose process died; return how many."""
        host = os.uname().nodename
        removed = 0
        with self.catalog.write() as conn:
            rows = conn.execute(
                select(cat.versions.c.id, cat.versions.c.owner).where(
                    cat.versions.c.status == "importing"
                )
            ).all()
            for vid, owner in rows:
                if _owner_dead(owner, host):
                    delete_version_rows(conn, vid)
                    removed += 1
        return removed


def _owner_dead(owner: str | None, host: str) -> bool:
    if not owner:
        return True
    owner_host, _, pid = owner.rpartition(":")
    if owner_host != host or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def delete_version_rows(conn: Connection, vid: int) -> None:
    """Delete a version's staged changes, members and row (frame rows stay: shared)."""
    conn.execute(delete(cat.changes).where(cat.changes.c.version_id == vid))
    conn.execute(delete(cat.members).where(cat.members.c.version_id == vid))
    conn.execute(delete(cat.versions).where(cat.versions.c.id == vid))


class Dataset:
    """A named dataset: a tree of versions."""

    def __init__(self, store: Store, row: Mapping[Any, Any]) -> None:
        self.store = store
        self.id: int = row["id"]
        self.name: str = row["name"]
        self.description: str = row["description"]
        self.tags: list[str] = json.loads(row["tags"])
        self.created_at: str = row["created_at"]

    def __repr__(self) -> str:
        return f"Dataset({self.name!r})"

    def versions(self) -> list[Version]:
        """Its versions, oldest first (imports still running are not listed)."""
        with self.store.catalog.read() as conn:
            rows = conn.execute(
                select(cat.versions)
                .where(cat.versions.c.dataset_id == self.id, cat.versions.c.status != "importing")
                .order_by(cat.versions.c.id)
            ).all()
        return [Version(self, row._mapping) for row in rows]

    def version(self, name: str | None = None) -> Version:
        """The version with this name (the newest when None)."""
        with self.store.catalog.read() as conn:
            q = select(cat.versions).where(
                cat.versions.c.dataset_id == self.id, cat.versions.c.status != "importing"
            )
            if name is None:
                row = conn.execute(q.order_by(cat.versions.c.id.desc())).first()
                if row is None:
                    raise NotFoundError(f"dataset {self.name!r} has no version yet")
            else:
                row = conn.execute(q.where(cat.versions.c.name == name)).first()
                if row is None:
                    known = [v.name for v in self.versions()]
                    raise NotFoundError(
                        f"dataset {self.name!r} has no version {name!r}; known: {known or 'none'}"
                    )
        return Version(self, row._mapping)

    def create_version(
        self,
        name: str,
        *,
        parent: Version | str | None = None,
        description: str = "",
        metadata: Mapping[str, Any] | None = None,
        _status: Status = "draft",
    ) -> Version:
        """A new draft version; with ``parent`` it starts from the parent's committed frames
        and label map."""
        if not name or not isinstance(name, str) or ":" in name:
            raise StoreError(f"a version name must be a non-empty string without ':', got {name!r}")
        parent_v = self.version(parent) if isinstance(parent, str) else parent
        if parent_v is not None and parent_v.dataset.id != self.id:
            raise StoreError(f"parent {parent_v.ref} belongs to another dataset than {self.name!r}")
        with self.store.catalog.write() as conn:
            existing = conn.execute(
                select(cat.versions.c.id, cat.versions.c.status, cat.versions.c.owner).where(
                    cat.versions.c.dataset_id == self.id, cat.versions.c.name == name
                )
            ).first()
            if existing is not None:
                if existing.status == "importing" and _owner_dead(
                    existing.owner, os.uname().nodename
                ):
                    delete_version_rows(conn, existing.id)  # an import that died: start over
                elif existing.status == "importing":
                    raise StoreError(
                        f"version {self.name}:{name} is being imported by {existing.owner}; "
                        "wait for it, or pick another name"
                    )
                else:
                    raise StoreError(
                        f"version {self.name}:{name} already exists; pick another name "
                        "or open it with dataset.version()"
                    )
            label_map = None
            if parent_v is not None:
                label_map = conn.execute(
                    select(cat.versions.c.label_map).where(cat.versions.c.id == parent_v.id)
                ).scalar_one()
            result = conn.execute(
                insert(cat.versions).values(
                    dataset_id=self.id,
                    name=name,
                    parent_id=None if parent_v is None else parent_v.id,
                    status=_status,
                    description=description,
                    created_at=now(),
                    metadata=canonical_json(dict(metadata or {})),
                    label_map=label_map,
                    owner=owner_tag() if _status == "importing" else None,
                    frame_count=0,
                    instance_count=0,
                )
            )
            vid = result.inserted_primary_key[0]  # type: ignore[index]
            if parent_v is not None:
                conn.execute(
                    insert(cat.members).from_select(
                        ["version_id", "frame_id", "frame_key", "seq"],
                        select(
                            literal(vid),
                            cat.members.c.frame_id,
                            cat.members.c.frame_key,
                            cat.members.c.seq,
                        ).where(cat.members.c.version_id == parent_v.id),
                    )
                )
                _refresh_counts(conn, vid)
            row = conn.execute(select(cat.versions).where(cat.versions.c.id == vid)).one()
        return Version(self, row._mapping)

    def delete_version(self, name: str) -> None:
        """Delete a draft version (published versions are kept)."""
        v = self.version(name)
        v._check_writable("delete")
        with self.store.catalog.write() as conn:
            child = conn.execute(
                select(cat.versions.c.name).where(cat.versions.c.parent_id == v.id)
            ).first()
            if child is not None:
                raise StoreError(
                    f"version {v.ref} is the parent of {child.name!r}; delete it first"
                )
            delete_version_rows(conn, v.id)


def _refresh_counts(conn: Connection, vid: int) -> None:
    m, f = cat.members, cat.frames
    n_frames, n_inst = conn.execute(
        select(func.count(), func.coalesce(func.sum(f.c.n_annotations), 0))
        .select_from(m.join(f, f.c.key == m.c.frame_key))
        .where(m.c.version_id == vid)
    ).one()
    conn.execute(
        update(cat.versions)
        .where(cat.versions.c.id == vid)
        .values(frame_count=int(n_frames), instance_count=int(n_inst))
    )


@dataclass(frozen=True)
class _Rows:
    """Catalog rows of a batch of frames, as tuples in each table's column order."""

    keys: list[str]
    frames: list[tuple[Any, ...]]
    sources: list[tuple[Any, ...]]
    annotations: list[tuple[Any, ...]]
    labels: list[tuple[Any, ...]]
    values: list[tuple[Any, ...]]


def _frame_rows(frames: Sequence[Frame]) -> _Rows:
    """Catalog rows of a batch of frames: RLE strings, areas and boxes in one batch each."""
    with_rle = [a.rle for f in frames for a in f.annotations if a.rle is not None]
    strings: Iterator[str] = iter(())
    measures: Iterator[tuple[int, list[float]]] = iter(())
    if with_rle:
        strings = iter(c["counts"] for c in _rle.to_coco_batch(with_rle))
        areas, boxes = _rle.area_bbox_batch(with_rle)
        measures = zip(areas.tolist(), boxes.tolist(), strict=True)
    out = _Rows([], [], [], [], [], [])
    for f in frames:
        fdoc = frame_doc(f)
        ftext = canonical_json(fdoc)
        atexts: list[str] = []
        arows: list[tuple[Any, ...]] = []
        labels: set[str] = set()
        for i, a in enumerate(f.annotations):
            rle_string = next(strings) if a.rle is not None else None
            d = annotation_doc(a, rle_string)
            atexts.append(canonical_json(d))
            labels.update(a.labels)
            area: int | None = None
            box: list[float] | None = list(a.box) if a.box is not None else None
            if a.rle is not None:
                area, box = next(measures)
            h, w = (None, None) if a.rle is None else a.rle.size
            arows.append(
                (
                    i,
                    a.source,
                    json.dumps(d["labels"]),
                    a.class_id,
                    a.instance_id,
                    h,
                    w,
                    rle_string,
                    area,
                    *(box if box is not None else (None, None, None, None)),
                    None if a.box is None else json.dumps(d["box"]),
                    None if a.polygons is None else json.dumps(d["polygons"]),
                    a.score,
                    bool(a.iscrowd),
                    canonical_json(d["meta"]),
                )
            )
        key = content_key(ftext, atexts)
        out.keys.append(key)
        out.frames.append(
            (key, f.id, f.context_id, f.timestamp, canonical_json(fdoc["meta"]), ftext, len(arows))
        )
        out.annotations.extend((key, *r) for r in arows)
        values: set[int] = set()
        for s in f.sources:
            out.sources.append((key, s.id, s.uri, s.width, s.height, s.content_type))
            for m in s.masks.values():
                if m.mode == "pixel" and m.values:
                    values.update(m.values)
        out.values.extend((key, v) for v in sorted(values))
        out.labels.extend((key, lab) for lab in sorted(labels))
    return out


def _chunks(frames: Iterable[Frame], size: int) -> Iterator[list[Frame]]:
    """Frames in lists of ``size`` (the last may be shorter)."""
    chunk: list[Frame] = []
    for f in frames:
        if not isinstance(f, Frame):
            raise TypeError(f"add_frames takes Frame objects, got {type(f).__name__}")
        chunk.append(f)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _check_frame(f: Frame) -> None:
    """Refuse masks whose size differs from their source's."""
    for s in f.sources:
        size = s.size
        for mid, m in s.masks.items():
            if size is not None and m.size is not None and m.size != size:
                raise StoreError(
                    f"frame {f.id!r}, source {s.id!r}: mask {mid!r} is {list(m.size)} (h, w) "
                    f"but the source is {list(size)}; resize or re-export the mask"
                )
    for i, a in enumerate(f.annotations):
        if a.rle is None:
            continue
        size = f.source(a.source).size
        if size is not None and a.rle.size != size:
            raise StoreError(
                f"frame {f.id!r}: annotation {i} has a mask of {list(a.rle.size)} (h, w) but its "
                f"source is {list(size)}; crop/pad the mask to the image"
            )


class Version:
    """One version of a dataset: its frames (committed members), label map and status."""

    def __init__(self, dataset: Dataset, row: Mapping[Any, Any]) -> None:
        self.dataset = dataset
        self.store = dataset.store
        self.id: int = row["id"]
        self.name: str = row["name"]
        self._row = dict(row)

    def __repr__(self) -> str:
        return f"Version({self.ref!r}, status={self.status!r}, frames={self.frame_count})"

    @property
    def ref(self) -> str:
        """``DATASET:VERSION``."""
        return f"{self.dataset.name}:{self.name}"

    def refresh(self) -> Version:
        """Re-read the version's row (status, counts, label map)."""
        with self.store.catalog.read() as conn:
            row = conn.execute(select(cat.versions).where(cat.versions.c.id == self.id)).first()
        if row is None:
            raise NotFoundError(f"version {self.ref} was deleted")
        self._row = dict(row._mapping)
        return self

    @property
    def status(self) -> Status:
        return self.refresh()._row["status"]  # type: ignore[no-any-return]

    @property
    def parent(self) -> Version | None:
        pid = self._row["parent_id"]
        if pid is None:
            return None
        with self.store.catalog.read() as conn:
            row = conn.execute(select(cat.versions).where(cat.versions.c.id == pid)).one()
        return Version(self.dataset, row._mapping)

    @property
    def created_at(self) -> str:
        return str(self._row["created_at"])

    @property
    def description(self) -> str:
        return str(self._row["description"])

    @property
    def metadata(self) -> dict[str, Any]:
        return json.loads(self.refresh()._row["metadata"])  # type: ignore[no-any-return]

    @property
    def frame_count(self) -> int:
        """Committed frames."""
        return int(self._row["frame_count"])

    @property
    def instance_count(self) -> int:
        """Annotations over the committed frames."""
        return int(self._row["instance_count"])

    def __len__(self) -> int:
        return int(self.refresh()._row["frame_count"])

    # ---- label map

    @property
    def label_map(self) -> LabelMap:
        """The version's label map (empty until set)."""
        raw = self.refresh()._row["label_map"]
        return LabelMap() if raw is None else LabelMap.from_dict(json.loads(raw))

    def set_label_map(self, labels: LabelMap) -> None:
        """Replace the version's label map."""
        with self.store.catalog.write() as conn:
            self._check_writable("change the label map of", conn)
            conn.execute(
                update(cat.versions)
                .where(cat.versions.c.id == self.id)
                .values(label_map=canonical_json(labels.to_dict()))
            )
        self.refresh()

    def set_mask_labels(self, mask_labels: Mapping[Any, Sequence[str] | str]) -> None:
        """ClearML's per-version ``mask_labels``: pixel value (RGB tuple or int) -> labels."""
        self.set_label_map(LabelMap.from_mask_labels(mask_labels))

    set_masks_labels = set_mask_labels  # ClearML spells it both ways

    def get_mask_labels(self) -> dict[tuple[int, int, int], list[str]]:
        """The label map as ClearML's ``mask_labels`` (colour -> labels)."""
        return self.label_map.to_mask_labels()

    def set_metadata(self, metadata: Mapping[str, Any]) -> None:
        """Replace the version's metadata (JSON-serialisable)."""
        with self.store.catalog.write() as conn:
            self._check_writable("change the metadata of", conn)
            conn.execute(
                update(cat.versions)
                .where(cat.versions.c.id == self.id)
                .values(metadata=canonical_json(dict(metadata)))
            )

    # ---- writes (staged until commit)

    def _check_writable(self, what: str, conn: Connection | None = None) -> None:
        status: str | None
        if conn is None:
            status = self.status
        else:
            status = conn.execute(
                select(cat.versions.c.status).where(cat.versions.c.id == self.id)
            ).scalar_one_or_none()
            if status is None:
                raise NotFoundError(f"version {self.ref} was deleted")
        if status == "published":
            raise PublishedVersionError(
                f"version {self.ref} is published and cannot change; "
                f"cannot {what} it. Create a child: "
                f"dataset.create_version('NEW', parent='{self.name}')"
            )

    def add_frames(self, frames: Iterable[Frame], *, batch: int = BATCH) -> None:
        """Stage new frames (ids not yet in the version); visible after :meth:`commit`.
        On an error nothing this call staged is kept."""
        self._write(frames, "add", batch)

    def update_frames(self, frames: Iterable[Frame], *, batch: int = BATCH) -> None:
        """Stage new contents for frames already in the version (matched by id)."""
        self._write(frames, "update", batch)

    def remove_frames(self, frame_ids: Iterable[str]) -> None:
        """Stage the removal of frames by id."""
        ids = list(dict.fromkeys(str(i) for i in frame_ids))
        try:
            for start in range(0, len(ids), BATCH):
                chunk = ids[start : start + BATCH]
                with self.store.catalog.write() as conn:
                    self._check_writable("remove frames from", conn)
                    present = self._present(conn, chunk)
                    missing = [i for i in chunk if present.get(i) is None]
                    if missing:
                        raise NotFoundError(
                            f"version {self.ref} has no frame {missing[0]!r}"
                            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                        )
                    self._stage(conn, [(i, None, present[i]) for i in chunk])
        except BaseException:
            self._unstage(ids)
            raise

    def _present(self, conn: Connection, ids: Sequence[str]) -> dict[str, int | None]:
        """frame id -> seq for ids in the version as staged (removed ones map to None)."""
        m, c = cat.members, cat.changes
        out: dict[str, int | None] = {}
        for fid, seq in conn.execute(
            select(m.c.frame_id, m.c.seq).where(m.c.version_id == self.id, m.c.frame_id.in_(ids))
        ):
            out[fid] = seq
        for fid, key, seq in conn.execute(
            select(c.c.frame_id, c.c.frame_key, c.c.seq).where(
                c.c.version_id == self.id, c.c.frame_id.in_(ids)
            )
        ):
            out[fid] = seq if key is not None else None
        return out

    def _stage(self, conn: Connection, items: Sequence[tuple[str, str | None, int | None]]) -> None:
        c = cat.changes
        ids = [i for i, _, _ in items]
        conn.execute(delete(c).where(c.c.version_id == self.id, c.c.frame_id.in_(ids)))
        conn.execute(
            insert(c),
            [{"version_id": self.id, "frame_id": i, "frame_key": k, "seq": s} for i, k, s in items],
        )

    def _unstage(self, ids: Sequence[str]) -> None:
        c = cat.changes
        with self.store.catalog.write() as conn:
            for start in range(0, len(ids), BATCH):
                conn.execute(
                    delete(c).where(
                        c.c.version_id == self.id, c.c.frame_id.in_(ids[start : start + BATCH])
                    )
                )

    def _next_seq(self, conn: Connection) -> int:
        a = conn.execute(
            select(func.max(cat.members.c.seq)).where(cat.members.c.version_id == self.id)
        ).scalar()
        b = conn.execute(
            select(func.max(cat.changes.c.seq)).where(cat.changes.c.version_id == self.id)
        ).scalar()
        return max(a if a is not None else -1, b if b is not None else -1) + 1

    def _write(
        self, frames: Iterable[Frame], mode: Literal["add", "update", "upsert"], batch: int
    ) -> None:
        """Stage frames ``batch`` at a time: this thread validates and builds the rows of
        one batch while a catalog thread writes the previous one (SQLite and psycopg
        release the GIL), so both cores work. On any error what this call staged goes."""
        staged: list[str] = []
        seen: set[str] = set()
        pending: Future[None] | None = None
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="masklab-catalog")
        try:
            for chunk in _chunks(frames, batch):
                ids, rows = self._prepare(chunk, seen)
                if pending is not None:
                    pending.result()
                pending = pool.submit(self._write_chunk, ids, rows, mode, staged)
            if pending is not None:
                pending.result()
        except BaseException:
            if pending is not None:
                with contextlib.suppress(BaseException):
                    pending.result()  # let the catalog thread finish before cleaning up
            if staged:
                self._unstage(staged)
            raise
        finally:
            pool.shutdown(wait=True)

    @staticmethod
    def _prepare(chunk: list[Frame], seen: set[str]) -> tuple[list[str], _Rows]:
        """Check a batch (unique ids, mask sizes) and build its catalog rows."""
        ids = [f.id for f in chunk]
        for i in ids:
            if i in seen:
                raise StoreError(f"frame id {i!r} appears twice in one call; frame ids are unique")
            seen.add(i)
        for f in chunk:
            _check_frame(f)
        return ids, _frame_rows(chunk)

    def _write_chunk(self, ids: list[str], rows: _Rows, mode: str, staged: list[str]) -> None:
        """Insert a batch's rows and stage its membership changes, in one transaction."""
        with self.store.catalog.write() as conn:
            self._check_writable(f"{mode} frames in", conn)
            present = self._present(conn, ids)
            if mode == "add":
                clash = [i for i in ids if present.get(i) is not None]
                if clash:
                    raise StoreError(
                        f"version {self.ref} already has frame {clash[0]!r}; "
                        "use update_frames to change it"
                    )
                start = self._next_seq(conn)
                seqs = [start + j for j in range(len(ids))]
            elif mode == "upsert":
                start = self._next_seq(conn)
                fresh = iter(range(start, start + len(ids)))
                seqs = [p if (p := present.get(i)) is not None else next(fresh) for i in ids]
            else:
                missing = [i for i in ids if present.get(i) is None]
                if missing:
                    raise NotFoundError(
                        f"version {self.ref} has no frame {missing[0]!r} to update; use add_frames"
                    )
                seqs = [int(present[i]) for i in ids]  # type: ignore[arg-type]
            _insert_frames(conn, rows)
            self._stage(conn, list(zip(ids, rows.keys, seqs, strict=True)))
        staged.extend(ids)

    def pending(self) -> int:
        """How many staged changes wait for :meth:`commit`."""
        with self.store.catalog.read() as conn:
            return int(
                conn.execute(
                    select(func.count()).where(cat.changes.c.version_id == self.id)
                ).scalar_one()
            )

    def commit(self) -> None:
        """Make the staged changes part of the version, atomically."""
        m, c = cat.members, cat.changes
        with self.store.catalog.write() as conn:
            self._check_writable("commit", conn)
            staged = select(c.c.frame_id).where(c.c.version_id == self.id)
            conn.execute(delete(m).where(m.c.version_id == self.id, m.c.frame_id.in_(staged)))
            conn.execute(
                insert(m).from_select(
                    ["version_id", "frame_id", "frame_key", "seq"],
                    select(c.c.version_id, c.c.frame_id, c.c.frame_key, c.c.seq).where(
                        c.c.version_id == self.id, c.c.frame_key.is_not(None)
                    ),
                )
            )
            conn.execute(delete(c).where(c.c.version_id == self.id))
            _refresh_counts(conn, self.id)
            conn.execute(
                update(cat.versions)
                .where(cat.versions.c.id == self.id)
                .values(status="draft", committed_at=now(), owner=None)
            )
        self.refresh()

    def publish(self) -> None:
        """Commit what is staged and make the version immutable."""
        self.commit()
        with self.store.catalog.write() as conn:
            self._check_writable("publish", conn)
            conn.execute(
                update(cat.versions)
                .where(cat.versions.c.id == self.id)
                .values(status="published", published_at=now())
            )
        self.refresh()

    # ---- reads

    def _members(self, column: str) -> list[str]:
        """One column of the committed members, in version order."""
        m = cat.members
        with self.store.catalog.read() as conn:
            return list(
                conn.execute(
                    select(m.c[column]).where(m.c.version_id == self.id).order_by(m.c.seq)
                ).scalars()
            )

    def frame_ids(self) -> list[str]:
        """Committed frame ids in order."""
        return self._members("frame_id")

    def frame(self, frame_id: str) -> Frame:
        """One committed frame by id."""
        m = cat.members
        with self.store.catalog.read() as conn:
            key = conn.execute(
                select(m.c.frame_key).where(m.c.version_id == self.id, m.c.frame_id == frame_id)
            ).scalar_one_or_none()
            if key is None:
                raise NotFoundError(f"version {self.ref} has no frame {frame_id!r}")
            return load_frames(conn, [key])[key]

    def frames(self, *, batch: int = BATCH) -> Iterator[Frame]:
        """Committed frames in order, loaded ``batch`` at a time (memory stays bounded)."""
        yield from self.frames_by_keys(self.frame_keys(), batch=batch)

    def frame_keys(self) -> list[str]:
        """Content keys of the committed frames, in order."""
        return self._members("frame_key")

    def frames_by_keys(self, keys: Iterable[str], *, batch: int = BATCH) -> Iterator[Frame]:
        """Frames by content key, in the order given (any iterable, endless ones too),
        loaded ``batch`` at a time."""
        it = iter(keys)
        while chunk := list(islice(it, batch)):
            with self.store.catalog.read() as conn:
                loaded = load_frames(conn, chunk)
            for k in chunk:
                yield loaded[k]

    def __iter__(self) -> Iterator[Frame]:
        return self.frames()

    def view(self, *, seed: int | None = None) -> DataView:
        """A :class:`~masklab.store.query.DataView` over the committed frames (filters,
        seeded shuffles, weighted and infinite iteration, label remapping)."""
        from masklab.store.query import DataView

        return DataView(self, seed=seed)


def _insert_frames(conn: Connection, rows: _Rows) -> None:
    """Insert the rows of frames not yet in the catalog (frames are content-addressed)."""
    if not rows.keys:
        return
    have = set(
        conn.execute(select(cat.frames.c.key).where(cat.frames.c.key.in_(rows.keys))).scalars()
    )
    if len(have) == len(set(rows.keys)):
        return

    def new(items: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        return [r for r in items if r[0] not in have] if have else items

    insert_tuples(conn, cat.frames, new(rows.frames))
    insert_tuples(conn, cat.sources, new(rows.sources))
    insert_tuples(conn, cat.rois, new(rows.annotations))
    insert_tuples(conn, cat.frame_labels, new(rows.labels))
    insert_tuples(conn, cat.mask_values, new(rows.values))


def load_frames(conn: Connection, keys: Sequence[str]) -> dict[str, Frame]:
    """Frames by content key (one query for the frames, one for their annotations)."""
    f, a = cat.frames, cat.rois
    docs = {
        k: json.loads(d) for k, d in conn.execute(select(f.c.key, f.c.doc).where(f.c.key.in_(keys)))
    }
    anns: dict[str, list[Annotation]] = {k: [] for k in docs}
    rows = conn.execute(
        select(a).where(a.c.frame_key.in_(keys)).order_by(a.c.frame_key, a.c.idx)
    ).all()
    rle_rows = [r for r in rows if r.rle is not None]
    rles = iter(
        _rle.from_coco_batch([{"size": [r.h, r.w], "counts": r.rle} for r in rle_rows])
        if rle_rows
        else []
    )
    for r in rows:
        anns[r.frame_key].append(
            Annotation(
                labels=tuple(json.loads(r.labels)),
                class_id=r.class_id,
                box=None if r.box is None else tuple(json.loads(r.box)),
                polygons=None
                if r.polygons is None
                else tuple(tuple(p) for p in json.loads(r.polygons)),
                rle=next(rles) if r.rle is not None else None,
                score=r.score,
                iscrowd=bool(r.iscrowd),
                instance_id=r.instance_id,
                source=r.source_id,
                meta=json.loads(r.meta),
            )
        )
    out: dict[str, Frame] = {}
    for k, d in docs.items():
        out[k] = Frame(
            d["id"],
            tuple(source_from_doc(s) for s in d["sources"]),
            tuple(anns[k]),
            d.get("context_id"),
            d.get("timestamp"),
            d.get("meta", {}),
        )
    missing = [k for k in keys if k not in out]
    if missing:
        raise StoreError(f"the catalog lost frame rows {missing[:3]}; run a consistency check")
    return out
