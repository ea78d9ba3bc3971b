"""Samples as Arrow rows: the block format of masklab's Ray Data pipelines.

One row is one :class:`~masklab.formats.Sample`; its instances are parallel list columns,
so every engine that reads Arrow (Ray, Spark, DuckDB, Polars) sees masks as they are on
the wire, COCO compressed RLE strings with their sizes:

=============== =========================== =============================================
column          type                        holds
=============== =========================== =============================================
id              string                      ``Sample.id``
h, w            int64                       ``Sample.size`` (h, w)
subset          string (null)               ``Sample.subset``
image           string (null)               ``Sample.image``, a path
image_bytes     binary (null)               ``Sample.image_bytes``
labeled         bool                        ``Sample.labeled``
meta            string                      ``Sample.meta`` as JSON
rle             list<string>                each instance's compressed COCO counts
mask_h, mask_w  list<int64>                 each instance's mask size
class_id        list<int64>                 class ids
instance_id     list<int64> (null items)    ``Instance.id``
score           list<double> (null items)   ``Instance.score``
iscrowd         list<bool>                  ``Instance.iscrowd``
polygons        list<list<list<double>>>    COCO rings each mask was read from (null item:
                                            none)
attributes      list<string>                each instance's attributes as JSON
semantic        binary (null)               class-index map, ``.npy`` bytes (dtype kept)
alpha           binary (null)               opacity map, ``.npy`` bytes
py              binary (null)               meta and attributes pickled, only when JSON
                                            cannot hold them exactly (tuples, paths, ...)
=============== =========================== =============================================

:func:`to_table` and :func:`to_samples` are exact inverses: RLEs are canonical, so their
compressed strings decode to equal masks; floats stay doubles; the dtype of a class map
survives. Both work a block at a time (one vectorised RLE pass a block).
"""

from __future__ import annotations

import io
import json
import pickle
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from masklab.core import rle
from masklab.core.instances import Instance
from masklab.formats import Sample

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["COLUMNS", "instance_rles", "schema", "to_samples", "to_table"]

#: the columns of a sample block, in order
COLUMNS = (
    "id",
    "h",
    "w",
    "subset",
    "image",
    "image_bytes",
    "labeled",
    "meta",
    "rle",
    "mask_h",
    "mask_w",
    "class_id",
    "instance_id",
    "score",
    "iscrowd",
    "polygons",
    "attributes",
    "semantic",
    "alpha",
    "py",
)


def _pa() -> Any:
    from masklab.ray._deps import require

    require()
    import pyarrow

    return pyarrow


def schema() -> pa.Schema:
    """The Arrow schema of a sample block."""
    pa = _pa()
    return pa.schema(
        [
            ("id", pa.string()),
            ("h", pa.int64()),
            ("w", pa.int64()),
            ("subset", pa.string()),
            ("image", pa.string()),
            ("image_bytes", pa.binary()),
            ("labeled", pa.bool_()),
            ("meta", pa.string()),
            ("rle", pa.list_(pa.string())),
            ("mask_h", pa.list_(pa.int64())),
            ("mask_w", pa.list_(pa.int64())),
            ("class_id", pa.list_(pa.int64())),
            ("instance_id", pa.list_(pa.int64())),
            ("score", pa.list_(pa.float64())),
            ("iscrowd", pa.list_(pa.bool_())),
            ("polygons", pa.list_(pa.list_(pa.list_(pa.float64())))),
            ("attributes", pa.list_(pa.string())),
            ("semantic", pa.binary()),
            ("alpha", pa.binary()),
            ("py", pa.binary()),
        ]
    )


def _json(value: Mapping[str, Any]) -> tuple[str, bool]:
    """``value`` as JSON, and whether JSON gives it back exactly (equal, same types)."""
    if not value:
        return "{}", True
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        return json.dumps(value, separators=(",", ":"), default=str), False
    return text, json.loads(text) == value


def _npy(array: npt.NDArray[Any] | None) -> bytes | None:
    if array is None:
        return None
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def _from_npy(data: bytes | None) -> npt.NDArray[Any] | None:
    if data is None:
        return None
    return np.load(io.BytesIO(data), allow_pickle=False)  # type: ignore[no-any-return]


def _list_array(offsets: list[int], values: Any) -> Any:
    pa = _pa()
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values)


def to_table(samples: Iterable[Sample]) -> pa.Table:
    """A block of samples as one Arrow table (see the module for the columns).

    Masks become compressed COCO strings in one vectorised pass over the block.
    """
    pa = _pa()
    samples = list(samples)
    insts = [inst for s in samples for inst in s.instances]
    offsets = [0]
    for s in samples:
        offsets.append(offsets[-1] + len(s.instances))
    counts = [d["counts"] for d in rle.to_coco_batch([i.mask for i in insts])]
    metas: list[str] = []
    pys: list[bytes | None] = []
    attributes: list[str] = []
    for s in samples:
        meta, meta_exact = _json(s.meta)
        metas.append(meta)
        exact = meta_exact
        for inst in s.instances:
            text, ok = _json(inst.attributes)
            attributes.append(text)
            exact = exact and ok
        pys.append(
            None
            if exact
            else pickle.dumps((dict(s.meta), [dict(i.attributes) for i in s.instances]), protocol=5)
        )
    polys = [None if i.polygons is None else [list(r) for r in i.polygons] for i in insts]
    lists = {
        "rle": pa.array(counts, pa.string()),
        "mask_h": pa.array([i.mask.size[0] for i in insts], pa.int64()),
        "mask_w": pa.array([i.mask.size[1] for i in insts], pa.int64()),
        "class_id": pa.array([i.class_id for i in insts], pa.int64()),
        "instance_id": pa.array([i.id for i in insts], pa.int64()),
        "score": pa.array([i.score for i in insts], pa.float64()),
        "iscrowd": pa.array([i.iscrowd for i in insts], pa.bool_()),
        "polygons": pa.array(polys, pa.list_(pa.list_(pa.float64()))),
        "attributes": pa.array(attributes, pa.string()),
    }
    columns = {
        "id": pa.array([s.id for s in samples], pa.string()),
        "h": pa.array([s.size[0] for s in samples], pa.int64()),
        "w": pa.array([s.size[1] for s in samples], pa.int64()),
        "subset": pa.array([s.subset for s in samples], pa.string()),
        "image": pa.array(
            [None if s.image is None else str(s.image) for s in samples], pa.string()
        ),
        "image_bytes": pa.array([s.image_bytes for s in samples], pa.binary()),
        "labeled": pa.array([s.labeled for s in samples], pa.bool_()),
        "meta": pa.array(metas, pa.string()),
        **{name: _list_array(offsets, values) for name, values in lists.items()},
        "semantic": pa.array([_npy(s.semantic) for s in samples], pa.binary()),
        "alpha": pa.array([_npy(s.alpha) for s in samples], pa.binary()),
        "py": pa.array(pys, pa.binary()),
    }
    return pa.Table.from_pydict(columns, schema=schema())


def _flat(table: pa.Table, name: str) -> tuple[list[Any], list[int]]:
    """A list column's values (Python objects) and its row offsets."""
    col = table.column(name).combine_chunks()
    offsets = col.offsets.to_pylist()
    start = offsets[0] if offsets else 0
    values = col.values.slice(start, (offsets[-1] - start) if offsets else 0).to_pylist()
    return values, [o - start for o in offsets]


def to_samples(table: pa.Table) -> list[Sample]:
    """The samples of a block written by :func:`to_table`, in row order.

    Raises:
        MaskFormatError: a compressed string that is not a valid mask of its size.
    """
    ids = table.column("id")
    if ids.null_count:  # a row without an id carries no sample
        table = table.filter(ids.is_valid())
    n = table.num_rows
    if n == 0:
        return []
    cols = {
        name: table.column(name).to_pylist() for name in (*COLUMNS[:8], "semantic", "alpha", "py")
    }
    flat = {name: _flat(table, name) for name in COLUMNS[8:17]}
    counts, offsets = flat["rle"]
    masks = rle.from_coco_batch(
        [
            {"size": [h, w], "counts": c}
            for c, h, w in zip(counts, flat["mask_h"][0], flat["mask_w"][0], strict=True)
        ]
    )
    class_ids, ids, scores = flat["class_id"][0], flat["instance_id"][0], flat["score"][0]
    crowd, polys, attrs = flat["iscrowd"][0], flat["polygons"][0], flat["attributes"][0]
    out: list[Sample] = []
    for r in range(n):
        lo, hi = offsets[r], offsets[r + 1]
        py = cols["py"][r]
        if py is not None:
            meta, inst_attrs = pickle.loads(py)
        else:
            meta = json.loads(cols["meta"][r])
            inst_attrs = [json.loads(a) for a in attrs[lo:hi]]
        instances = tuple(
            Instance(
                masks[k],
                class_ids[k],
                id=ids[k],
                score=scores[k],
                iscrowd=crowd[k],
                polygons=None if polys[k] is None else tuple(tuple(p) for p in polys[k]),
                attributes=inst_attrs[k - lo],
            )
            for k in range(lo, hi)
        )
        image = cols["image"][r]
        out.append(
            Sample(
                id=cols["id"][r],
                size=(cols["h"][r], cols["w"][r]),
                image=None if image is None else Path(image),
                instances=instances,
                semantic=_from_npy(cols["semantic"][r]),
                alpha=_from_npy(cols["alpha"][r]),
                subset=cols["subset"][r],
                image_bytes=cols["image_bytes"][r],
                meta=meta,
                labeled=cols["labeled"][r],
            )
        )
    return out


def instance_rles(table: pa.Table) -> tuple[list[rle.RLE], list[int]]:
    """Every instance mask of a block, decoded in one pass, and the row offsets: row
    ``r`` owns ``masks[offsets[r]:offsets[r + 1]]``."""
    counts, offsets = _flat(table, "rle")
    hs, _ = _flat(table, "mask_h")
    ws, _ = _flat(table, "mask_w")
    masks = rle.from_coco_batch(
        [{"size": [h, w], "counts": c} for c, h, w in zip(counts, hs, ws, strict=True)]
    )
    return masks, offsets
