"""DataView: queries over a version's frames, run in SQL, and the ways to iterate them.

A :class:`DataView` is an immutable query builder over one committed version: every method
returns a new view, and nothing runs until the view is counted, listed or iterated. Filters
run in the catalog (SQLite or PostgreSQL alike) on the query tables the store fills when it
writes a frame; no mask or frame is decoded to filter.

>>> import tempfile
>>> import numpy as np
>>> from masklab.core import rle
>>> from masklab.store import Annotation, Frame, Store
>>> store = Store(home=tempfile.mkdtemp())
>>> v = store.create_dataset("pets").create_version("v1")
>>> cat = Annotation(labels=("cat",), rle=rle.encode(np.eye(4, dtype=np.uint8)))
>>> v.add_frames([Frame.single("a", "a.jpg", annotations=[cat]), Frame.single("b", "b.jpg")])
>>> v.commit()
>>> DataView(v).where(label="cat", area=(2, None)).frame_ids()
['a']
>>> [f.id for f in DataView(v).infinite().take(3)]
['a', 'b', 'a']
>>> sorted(DataView(v, seed=7).shuffled().frame_ids())  # frame_ids: matches, version order
['a', 'b']
>>> store.close()

Criteria of :meth:`DataView.where` (several in one call, or chained calls: AND; ``|``: OR;
:meth:`~DataView.exclude`: NOT). "An annotation" means any one annotation of the frame, each
criterion on its own; ``annotation={...}`` asks for one annotation meeting all its keys.

=====================  =========================================================================
``label="cat"``        an annotation's labels hold "cat", or a pixel mask holds a value whose
                       label in the version's label map is named "cat"
``labels_any=[..]``    any of these labels (as ``label``); ``labels_all=[..]``: every one of them
``class_id=3``         an annotation's class id is 3, or a pixel mask holds the value 3
``meta={"a.b": v}``    frame meta at the dotted path equals ``v`` (str, int, float, bool: typed,
                       so ``3`` never matches ``"3"``; ``None``: the key is missing or null);
                       a ``(lo, hi)`` tuple: a number in that range
``source="left"``      the frame has a source with this id
``uri="s3://b/*.jpg"`` a source URI matches this glob (``*`` any run, ``?`` one character;
                       the whole URI, case-sensitive)
``context="seq1"``     the frame's context id
``area=(lo, hi)``      an annotation's mask area in pixels (box-only annotations have none)
``bbox_w``/``bbox_h``  an annotation's box width / height in that range (COCO ``xywh``)
``bbox_within_xyxy``   an annotation's box lies inside the region ``(x0, y0, x1, y1)``; boxes
                       are in pixel-edge units, so a mask whose last column is 9 ends at x=10
``count={"cat": r}``   the number of annotations whose labels hold "cat" is in range ``r``
                       (pixel masks are not counted; ``(0, 0)`` means no cat annotation)
``touches_border``     True: a non-empty annotation's box touches its image's border (the
                       mask's own size, else its source's, else the frame's first source's);
                       False: no annotation does. An unknown image size touches only at 0.
``annotation={...}``   one annotation meets all of: label, class_id, area, bbox_w, bbox_h,
                       bbox_within_xyxy, touches_border
=====================  =========================================================================

Ranges are ``(lo, hi)``, both ends inclusive, ``None`` for an open end.

Iteration: ``iter(view)`` yields :class:`~masklab.store.model.Frame` s in version order,
loaded a batch at a time; :meth:`~DataView.shuffled` a seeded permutation,
:meth:`~DataView.weighted` draws with replacement, :meth:`~DataView.infinite` repeats epochs,
:meth:`~DataView.take` stops after n. Randomness is NumPy's PCG64 seeded with
``SeedSequence([seed, epoch])`` over the keys in version order, so one seed gives one order on
every run and every catalog database. The view snapshots its key list when iteration starts.

The ``--where`` grammar (:func:`parse_where`), conditions joined by ``and``::

    label=cat                  repeated: labels_all; label=cat|dog: labels_any
    class_id=3  source=left  context=seq1  uri='s3://bucket/cam1/*.jpg'
    area=100..5000             also area=100.. , area=..5000, area>=100, area>100, area=100
    bbox_w=..32  bbox_h>=8     ranges as area (no > or <: widths are not integers)
    bbox_within=0,0,640,480    x0,y0,x1,y1
    meta.weather=rain          unquoted true/false/null/numbers are typed, quote for a string
    meta.speed=10..20          a numeric range (also meta.speed>=10, meta.speed<=20)
    count(cat)>=2              also count(cat)=2, count(cat)=1..3, count(cat)<2
    touches_border             also not touches_border, touches_border=false
    annotation(label=cat and area>=100)   one annotation meets all of these (label,
                               class_id, area, bbox_w, bbox_h, bbox_within, touches_border)

Values with spaces or any of ``=<>!()"'`` are quoted with ``"`` or ``'`` (backslash escapes).
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import count as _count
from itertools import islice
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeAlias

import numpy as np
import numpy.typing as npt
from sqlalchemy import (
    Connection,
    Float,
    String,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.sql.elements import ColumnElement

from masklab.core.labels import Label, LabelMap, voc_color
from masklab.errors import StoreError
from masklab.store import catalog as cat
from masklab.store.model import Annotation, Frame

if TYPE_CHECKING:
    from masklab.store.store import Version

__all__ = ["VOID_ID", "DataView", "FrameRow", "parse_where"]

VOID_ID = 255  # the training id of remapped labels that are void (role "ignore")
BATCH = 1000
Range: TypeAlias = tuple[float | None, float | None]
Box: TypeAlias = tuple[float, float, float, float]
Order = Literal["seq", "shuffle", "weighted"]


class FrameRow(NamedTuple):
    """The light row a weighting callable sees: no frame is loaded to compute it."""

    frame_id: str
    key: str
    labels: frozenset[str]  # annotation labels and label-map names of pixel-mask values


# ---- filter trees


@dataclass(frozen=True, slots=True)
class _Pred:
    """One criterion: a kind (a where() keyword) and its validated arguments."""

    kind: str
    args: tuple[Any, ...]

    def __str__(self) -> str:
        return f"{self.kind}={self.args[0] if len(self.args) == 1 else self.args}"


@dataclass(frozen=True, slots=True)
class _Bool:
    """AND, OR or NOT of criteria."""

    op: Literal["and", "or", "not"]
    items: tuple[_Pred | _Bool, ...]

    def __str__(self) -> str:
        if self.op == "not":
            return f"not ({self.items[0]})"
        return f" {self.op} ".join(f"({i})" if isinstance(i, _Bool) else str(i) for i in self.items)


_Node: TypeAlias = _Pred | _Bool


def _join(op: Literal["and", "or"], a: _Node | None, b: _Node | None) -> _Node | None:
    """Combine two filters (None: everything)."""
    if a is None or b is None:
        return b if a is None else a
    return _Bool(op, (a, b))


# ---- argument checks (where() validates eagerly; SQL is built when the view runs)


def _range(name: str, value: object) -> Range:
    """A checked ``(lo, hi)`` range; ends inclusive, None open."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        raise TypeError(f"{name} takes a (lo, hi) tuple, got {value!r}")
    lo, hi = value
    for end in (lo, hi):
        if end is not None and (isinstance(end, bool) or not isinstance(end, (int, float))):
            raise TypeError(f"{name}: range ends are numbers or None, got {end!r}")
    if lo is not None and hi is not None and lo > hi:
        raise StoreError(f"{name}: range ({lo!r}, {hi!r}) is empty; give (lo, hi) with lo <= hi")
    return (lo, hi)


def _str(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} takes a str, got {type(value).__name__}")
    return value


def _strs(name: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise TypeError(f"{name} takes a list of str, got {value!r}")
    return tuple(_str(name, v) for v in value)


def _int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} takes an int, got {value!r}")
    return value


def _bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} takes True or False, got {value!r}")
    return value


def _box(name: str, value: object) -> Box:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 4:
        raise TypeError(f"{name} takes (x0, y0, x1, y1), got {value!r}")
    x0, y0, x1, y1 = (float(v) for v in value)
    if x0 > x1 or y0 > y1:
        raise StoreError(f"{name}: region {tuple(value)!r} is empty; give x0 <= x1 and y0 <= y1")
    return (x0, y0, x1, y1)


def _meta_path(key: str) -> tuple[str, ...]:
    """Dotted meta key -> path; refuses parts JSON paths cannot name portably."""
    parts = tuple(key.split("."))
    if not key or any(not p or '"' in p or "\\" in p for p in parts):
        raise StoreError(
            f"meta key {key!r} is not a dotted path of names (a.b.c, no empty parts, no quotes)"
        )
    return parts


def _meta_value(key: str, value: object) -> tuple[str, Any]:
    """('eq', v) or ('range', (lo, hi)) for one meta criterion."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return ("eq", value)
    if isinstance(value, tuple):
        return ("range", _range(f"meta[{key!r}]", value))
    raise TypeError(
        f"meta[{key!r}] takes a str, int, float, bool, None or a (lo, hi) tuple, got {value!r}"
    )


_ANN_KEYS = ("label", "class_id", "area", "bbox_w", "bbox_h", "bbox_within_xyxy", "touches_border")


def _ann_preds(spec: Mapping[str, Any], where: str) -> tuple[_Pred, ...]:
    """Checked per-annotation criteria (the keys of ``annotation={...}``)."""
    out = []
    for key, value in spec.items():
        if key not in _ANN_KEYS:
            raise StoreError(f"{where}: unknown key {key!r}; known: {', '.join(_ANN_KEYS)}")
        out.append(_PRED_CHECKS[key](value))
    if not out:
        raise StoreError(f"{where} is empty; give at least one of {', '.join(_ANN_KEYS)}")
    return tuple(out)


_PRED_CHECKS: dict[str, Callable[[Any], _Pred]] = {
    "label": lambda v: _Pred("label", (_str("label", v),)),
    "class_id": lambda v: _Pred("class_id", (_int("class_id", v),)),
    "area": lambda v: _Pred("area", (_range("area", v),)),
    "bbox_w": lambda v: _Pred("bbox_w", (_range("bbox_w", v),)),
    "bbox_h": lambda v: _Pred("bbox_h", (_range("bbox_h", v),)),
    "bbox_within_xyxy": lambda v: _Pred("bbox_within_xyxy", (_box("bbox_within_xyxy", v),)),
    "touches_border": lambda v: _Pred("touches_border", (_bool("touches_border", v),)),
}


def _criteria(kw: Mapping[str, Any]) -> list[_Pred]:
    """where() keywords -> checked criteria (None values are left out)."""
    out: list[_Pred] = []
    for key, value in kw.items():
        if value is None:
            continue
        if key in _PRED_CHECKS:
            out.append(_PRED_CHECKS[key](value))
        elif key in ("labels_any", "labels_all"):
            out.append(_Pred(key, _strs(key, value)))
        elif key in ("source", "uri", "context"):
            out.append(_Pred(key, (_str(key, value),)))
        elif key == "meta":
            out.extend(
                _Pred("meta", (_meta_path(_str("meta key", k)), *_meta_value(k, v)))
                for k, v in _mapping("meta", value).items()
            )
        elif key == "count":
            out.extend(
                _Pred("count", (_str("count label", k), _range(f"count[{k!r}]", r)))
                for k, r in _mapping("count", value).items()
            )
        elif key == "annotation":
            out.append(_Pred("annotation", _ann_preds(_mapping(key, value), "annotation")))
        else:  # pragma: no cover - where() names its keywords
            raise TypeError(f"unknown criterion {key!r}")
    return out


def _mapping(name: str, value: object) -> Mapping[Any, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} takes a dict, got {type(value).__name__}")
    return value


# ---- SQL


class _Json:
    """JSON access on a text column, written once per dialect (SQLite json1, PostgreSQL jsonb)."""

    def __init__(self, dialect: str) -> None:
        if dialect not in ("sqlite", "postgresql"):
            raise StoreError(f"queries run on SQLite and PostgreSQL, not {dialect!r}")
        self.pg = dialect == "postgresql"

    @staticmethod
    def _sqlite_path(path: Sequence[str | int]) -> str:
        return "$" + "".join(f"[{p}]" if isinstance(p, int) else f'."{p}"' for p in path)

    def _pg(self, col: Any, path: Sequence[str | int]) -> Any:
        from sqlalchemy.dialects.postgresql import JSONB

        return cast(col, JSONB)[tuple(str(p) for p in path)]

    def equals(self, col: Any, path: Sequence[str | int], value: object) -> ColumnElement[bool]:
        """The JSON value at ``path`` equals ``value``, type included (None: missing or null)."""
        if self.pg:
            from sqlalchemy.dialects.postgresql import JSONB

            node = self._pg(col, path)
            if value is None:
                return node.astext.is_(None)  # type: ignore[no-any-return]
            return node == cast(literal(json.dumps(value)), JSONB)  # type: ignore[no-any-return]
        p = self._sqlite_path(path)
        kind = func.json_type(col, p)
        if value is None:
            return func.json_extract(col, p).is_(None)
        if isinstance(value, bool):
            return kind == ("true" if value else "false")
        kinds = ("text",) if isinstance(value, str) else ("integer", "real")
        return and_(kind.in_(kinds), func.json_extract(col, p) == value)

    def number(self, col: Any, path: Sequence[str | int]) -> ColumnElement[Any]:
        """The JSON number at ``path`` (NULL when missing or not a number)."""
        if self.pg:
            node = self._pg(col, path)
            return case((func.jsonb_typeof(node) == "number", cast(node.astext, Float)))
        p = self._sqlite_path(path)
        return case((func.json_type(col, p).in_(("integer", "real")), func.json_extract(col, p)))

    def list_has(self, col: Any, item: str) -> ColumnElement[bool]:
        """The JSON list in ``col`` holds the string ``item``."""
        if self.pg:
            from sqlalchemy.dialects.postgresql import JSONB

            return cast(col, JSONB).op("@>")(cast(literal(json.dumps([item])), JSONB))
        each = func.json_each(col).table_valued("value")
        return literal(item, String).in_(select(each.c.value))


def _between(col: Any, r: Range) -> ColumnElement[bool]:
    """``col`` in the inclusive range; ``(None, None)``: any value but NULL."""
    lo, hi = r
    if lo is None and hi is None:
        return col.is_not(None)  # type: ignore[no-any-return]
    parts = [] if lo is None else [col >= lo]
    return and_(*parts, *([] if hi is None else [col <= hi]))


def _glob(col: Any, pattern: str, pg: bool) -> ColumnElement[bool]:
    """Case-sensitive whole-string glob (``*``, ``?``) on both dialects."""
    if not pg:
        return col.op("GLOB")(pattern.replace("[", "[[]"))  # type: ignore[no-any-return]
    like = "".join(
        "%" if ch == "*" else "_" if ch == "?" else "\\" + ch if ch in "\\%_" else ch
        for ch in pattern
    )
    return col.like(like, escape="\\")  # type: ignore[no-any-return]


class _Sql:
    """Criteria -> SQL conditions on ``members.frame_key``, for one version's label map."""

    def __init__(self, dialect: str, labels: LabelMap) -> None:
        self.json = _Json(dialect)
        self.labels = labels

    def cond(self, node: _Node) -> ColumnElement[bool]:
        """The condition a member row meets when it matches ``node``."""
        if isinstance(node, _Bool):
            parts = [self.cond(i) for i in node.items]
            if node.op == "not":
                return not_(parts[0])
            return and_(*parts) if node.op == "and" else or_(*parts)
        return self._pred(node)

    def _pred(self, p: _Pred) -> ColumnElement[bool]:
        key = cat.members.c.frame_key
        a, s, f = cat.rois, cat.sources, cat.frames
        k = p.kind
        if k == "label":
            return self._labels(p.args[:1])
        if k == "labels_any":
            return self._labels(p.args)
        if k == "labels_all":
            return and_(true(), *(self._labels((name,)) for name in p.args))
        if k == "class_id":
            return or_(
                key.in_(select(a.c.frame_key).where(a.c.class_id == p.args[0])),
                key.in_(
                    select(cat.mask_values.c.frame_key).where(cat.mask_values.c.value == p.args[0])
                ),
            )
        if k == "meta":
            return key.in_(select(f.c.key).where(self._meta(*p.args)))
        if k == "source":
            return key.in_(select(s.c.frame_key).where(s.c.source_id == p.args[0]))
        if k == "uri":
            return key.in_(select(s.c.frame_key).where(_glob(s.c.uri, p.args[0], self.json.pg)))
        if k == "context":
            return key.in_(select(f.c.key).where(f.c.context_id == p.args[0]))
        if k == "count":
            return self._count(p.args[0], p.args[1])
        if k == "touches_border" and not p.args[0]:
            return key.not_in(select(a.c.frame_key).where(self._touches()))
        preds = p.args if k == "annotation" else (p,)
        return key.in_(select(a.c.frame_key).where(and_(*(self._ann(q) for q in preds))))

    def _label_ids(self, names: Sequence[str]) -> list[int]:
        """Label-map ids of labels carrying any of ``names`` (pixel values of pixel masks)."""
        return [lab.id for lab in self.labels if set(names) & {lab.name, *lab.names}]

    def _labels(self, names: Sequence[str]) -> ColumnElement[bool]:
        key, fl, mv = cat.members.c.frame_key, cat.frame_labels, cat.mask_values
        by_annotation = key.in_(select(fl.c.frame_key).where(fl.c.label.in_(names)))
        ids = self._label_ids(names)
        if not ids:
            return by_annotation
        return or_(by_annotation, key.in_(select(mv.c.frame_key).where(mv.c.value.in_(ids))))

    def _meta(self, path: tuple[str, ...], how: str, value: Any) -> ColumnElement[bool]:
        col = cat.frames.c.meta
        if how == "eq":
            return self.json.equals(col, path, value)
        return _between(self.json.number(col, path), value)

    def _count(self, label: str, r: Range) -> ColumnElement[bool]:
        a, fl, key = cat.rois, cat.frame_labels, cat.members.c.frame_key
        n = (
            select(func.count())
            .select_from(a)
            .where(a.c.frame_key == key, self.json.list_has(a.c.labels, label))
            .scalar_subquery()
        )
        cond = _between(n, r)
        if r[0] is not None and r[0] >= 1:  # only frames with the label can have one or more
            cond = and_(key.in_(select(fl.c.frame_key).where(fl.c.label == label)), cond)
        return cond

    def _ann(self, p: _Pred) -> ColumnElement[bool]:
        """A per-annotation condition on the ``annotations`` table."""
        a = cat.rois.c
        k, v = p.kind, p.args[0]
        if k == "label":
            return self.json.list_has(a.labels, v)
        if k == "class_id":
            return a.class_id == v  # type: ignore[no-any-return]
        if k == "area":
            return _between(a.area, v)
        if k == "bbox_w":
            return _between(a.bw, v)
        if k == "bbox_h":
            return _between(a.bh, v)
        if k == "bbox_within_xyxy":
            x0, y0, x1, y1 = v
            return and_(a.bx >= x0, a.by >= y0, a.bx + a.bw <= x1, a.by + a.bh <= y1)
        if k == "touches_border":
            touches = func.coalesce(self._touches(), false())  # an unknown size: no
            return touches if v else not_(touches)
        raise AssertionError(k)  # pragma: no cover - _ann_preds checks the keys

    def _touches(self) -> ColumnElement[bool]:
        """A non-empty annotation's box reaches an edge of its image."""
        a = cat.rois.c
        w = self._image_side(a.w, cat.sources.c.width, "width")
        h = self._image_side(a.h, cat.sources.c.height, "height")
        return and_(
            a.bx.is_not(None),
            func.coalesce(a.area, 1) > 0,
            or_(a.bx <= 0, a.by <= 0, a.bx + a.bw >= w, a.by + a.bh >= h),
        )

    def _image_side(self, own: Any, source_col: Any, name: str) -> ColumnElement[Any]:
        """The annotation's mask size, else its source's, else the frame's first source's.
        COALESCE evaluates lazily, so the subqueries run only for box-only annotations."""
        a, s, f = cat.rois, cat.sources, cat.frames
        of_source = (
            select(source_col)
            .where(s.c.frame_key == a.c.frame_key, s.c.source_id == a.c.source_id)
            .correlate(a)
            .scalar_subquery()
        )
        first = (
            select(self.json.number(f.c.doc, ("sources", 0, name)))
            .where(f.c.key == a.c.frame_key, a.c.source_id.is_(None))
            .correlate(a)
            .scalar_subquery()
        )
        return func.coalesce(own, of_source, first)


# ---- remapping


@dataclass(frozen=True, slots=True)
class _Remap:
    """A checked label mapping: by name (str -> str) or by id (int -> int); None: unmapped."""

    by: Literal["name", "id"]
    pairs: tuple[tuple[Any, Any], ...]
    void: str | None

    def targets(self, source: LabelMap) -> LabelMap:
        """The training label map (name mappings: ids 0..K-1 in order of first appearance)."""
        labels: list[Label] = []
        if self.by == "name":
            names = list(dict.fromkeys(t for _, t in self.pairs if t is not None))
            labels = [_target_label(i, n) for i, n in enumerate(names)]
        else:
            for t in sorted({t for _, t in self.pairs if t is not None}):
                known = source.by_id(t) if t in source else None
                names_t = known.names if known is not None else (f"class_{t}",)
                labels.append(
                    Label(t, names_t, voc_color(t), isthing=known is None or known.isthing)
                )
        if self.void is not None:
            labels.append(Label(VOID_ID, (self.void,), voc_color(VOID_ID), False, "ignore"))
        return LabelMap(tuple(labels))


def _target_label(i: int, name: str) -> Label:
    bg = name == "background"
    return Label(i, (name,), voc_color(i), isthing=not bg, role="background" if bg else "class")


def _check_remap(mapping: Mapping[Any, Any], void: str | None) -> _Remap:
    if not isinstance(mapping, Mapping) or not mapping:
        raise TypeError(f"remap takes a non-empty dict, got {mapping!r}")
    if void is not None and not isinstance(void, str):
        raise TypeError(f"void takes a label name (str) or None, got {void!r}")
    keys = list(mapping)
    if all(isinstance(k, str) for k in keys):
        by: Literal["name", "id"] = "name"
        bad = [v for v in mapping.values() if v is not None and not isinstance(v, str)]
    elif all(isinstance(k, int) and not isinstance(k, bool) for k in keys):
        by = "id"
        bad = [
            v
            for v in mapping.values()
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0)
        ]
    else:
        raise TypeError(f"remap keys are all label names or all ids, got {keys!r}")
    if bad:
        want = "names (str)" if by == "name" else "ids (int >= 0)"
        raise TypeError(f"remap by {by} maps to {want} or None, got {bad[0]!r}")
    pairs = tuple(mapping.items())
    clash = void is not None and any(t in (void, VOID_ID) for _, t in pairs)
    if clash:
        raise StoreError(
            f"remap targets include the void label ({void!r} / id {VOID_ID}); "
            "map those labels to None, or pick another void name"
        )
    return _Remap(by, pairs, void)


class _RemapPlan:
    """A remap resolved against the version's label map, applied frame by frame."""

    def __init__(self, spec: _Remap, source: LabelMap) -> None:
        self.spec = spec
        self.source = source
        self.targets = spec.targets(source)
        self.mapping = dict(spec.pairs)
        self.by_name = {lab.name: lab for lab in self.targets}

    def target(self, a: Annotation) -> Label | None:
        """Where an annotation goes: the first of its labels (or its id) that is mapped."""
        if self.spec.by == "name":
            names = a.labels
            if not names and a.class_id is not None and a.class_id in self.source:
                names = self.source.by_id(a.class_id).names
            for n in names:
                t = self.mapping.get(n)
                if t is not None:
                    return self.by_name[t]
            return None
        src = a.class_id
        if src is None:
            src = next((lab.id for n in a.labels if (lab := self.source.find(n))), None)
        t = self.mapping.get(src)
        return None if t is None else self.targets.by_id(t)

    def apply(self, frame: Frame) -> Frame:
        """The frame with annotations relabelled; unmapped ones dropped, or void."""
        out = []
        for a in frame.annotations:
            lab = self.target(a)
            if lab is not None:
                out.append(replace(a, labels=lab.names, class_id=lab.id))
            elif self.spec.void is not None:
                out.append(replace(a, labels=(self.spec.void,), class_id=VOID_ID))
        return frame.with_annotations(out)

    def lut(self) -> npt.NDArray[np.uint16]:
        """Pixel value (source label id) -> training id; everything else -> VOID_ID."""
        lut = np.full(65536, VOID_ID, np.uint16)
        if self.spec.by == "id":
            for s, t in self.spec.pairs:
                if t is not None and 0 <= s < lut.size:
                    lut[s] = t
            return lut
        for lab in self.source:
            t = next((self.mapping[n] for n in lab.names if self.mapping.get(n) is not None), None)
            if t is not None and 0 <= lab.id < lut.size:
                lut[lab.id] = self.by_name[t].id
        return lut


# ---- weighting


@dataclass(frozen=True, slots=True)
class _Weights:
    """Weight rules (where-criteria -> weight, plus a default) or a callable on FrameRow."""

    rules: tuple[tuple[_Node, float], ...]
    default: float
    fn: Callable[[FrameRow], float] | None
    num_samples: int | None


def _check_weight(what: str, w: object) -> float:
    if isinstance(w, bool) or not isinstance(w, (int, float)) or not w >= 0 or w == float("inf"):
        raise StoreError(f"weight of {what} must be a finite number >= 0, got {w!r}")
    return float(w)


def _rule_node(text: str) -> _Node:
    """A rule key: ``label:NAME`` or any ``--where`` text."""
    kw = {"label": text[6:]} if text.startswith("label:") else parse_where(text)
    nodes = _criteria(kw)
    return nodes[0] if len(nodes) == 1 else _Bool("and", tuple(nodes))


def _check_weights(
    rules: Mapping[str, float] | Callable[[FrameRow], float], num_samples: int | None
) -> _Weights:
    if num_samples is not None and (_int("num_samples", num_samples) < 1):
        raise StoreError(f"num_samples must be >= 1, got {num_samples}")
    if callable(rules):
        return _Weights((), 1.0, rules, num_samples)
    if not isinstance(rules, Mapping):
        raise TypeError(f"weighted takes a dict of rules or a callable, got {rules!r}")
    default = _check_weight("'default'", rules.get("default", 1.0))
    compiled = tuple(
        (_rule_node(_str("rule", k)), _check_weight(repr(k), w))
        for k, w in rules.items()
        if k != "default"
    )
    return _Weights(compiled, default, None, num_samples)


def _rng(seed: int, epoch: int) -> np.random.Generator:
    return np.random.default_rng([seed, epoch])


# ---- the view


@dataclass(frozen=True, slots=True)
class _State:
    filter: _Node | None = None
    seed: int | None = None
    order: Order = "seq"
    weights: _Weights | None = None
    infinite: bool = False
    limit: int | None = None
    remap: _Remap | None = field(default=None)


class DataView:
    """A query over one version's committed frames; immutable, lazy, chainable.

    ``seed`` is the default for :meth:`shuffled` and :meth:`weighted`.
    """

    __slots__ = ("_s", "_version")

    def __init__(self, version: Version, *, seed: int | None = None) -> None:
        self._version = version
        self._s = _State(seed=None if seed is None else _seed(seed))

    def _with(self, **changes: Any) -> DataView:
        view = object.__new__(DataView)
        view._version = self._version
        view._s = replace(self._s, **changes)
        return view

    def __repr__(self) -> str:
        s = self._s
        parts = [repr(self._version.ref)]
        if s.filter is not None:
            parts.append(f"where={str(s.filter)!r}")
        if s.order != "seq":
            parts.append(f"order={s.order}(seed={s.seed})")
        if s.infinite:
            parts.append("infinite")
        if s.limit is not None:
            parts.append(f"take={s.limit}")
        if s.remap is not None:
            parts.append(f"remap={dict(s.remap.pairs)!r}")
        return f"DataView({', '.join(parts)})"

    @property
    def version(self) -> Version:
        """The version this view reads."""
        return self._version

    @property
    def seed(self) -> int | None:
        """The seed of the shuffle or the weighted draws (None for version order)."""
        return self._s.seed

    # ---- filters

    def where(
        self,
        *,
        label: str | None = None,
        labels_any: Sequence[str] | None = None,
        labels_all: Sequence[str] | None = None,
        class_id: int | None = None,
        meta: Mapping[str, Any] | None = None,
        source: str | None = None,
        uri: str | None = None,
        context: str | None = None,
        area: Range | None = None,
        bbox_w: Range | None = None,
        bbox_h: Range | None = None,
        bbox_within_xyxy: Box | None = None,
        count: Mapping[str, Range] | None = None,
        touches_border: bool | None = None,
        annotation: Mapping[str, Any] | None = None,
    ) -> DataView:
        """Frames meeting all of these criteria (see the module docstring for each)."""
        kw = dict(locals())
        del kw["self"]
        nodes = _criteria(kw)
        if not nodes:
            return self
        node = nodes[0] if len(nodes) == 1 else _Bool("and", tuple(nodes))
        return self._with(filter=_join("and", self._s.filter, node))

    def exclude(self, **criteria: Any) -> DataView:
        """Frames that do not meet ``where(**criteria)`` (all of them at once).

        ``exclude(label="cat")`` keeps frames with no cat; ``exclude(label="cat",
        context="a")`` drops only the cats of context "a".
        """
        node = DataView(self._version).where(**criteria)._s.filter
        if node is None:
            return self
        return self._with(filter=_join("and", self._s.filter, _Bool("not", (node,))))

    def union(self, other: DataView) -> DataView:
        """Frames in either view (order, sampling and remap from ``self``)."""
        self._same_version(other)
        if self._s.filter is None or other._s.filter is None:
            return self._with(filter=None)
        return self._with(filter=_Bool("or", (self._s.filter, other._s.filter)))

    def intersect(self, other: DataView) -> DataView:
        """Frames in both views (order, sampling and remap from ``self``)."""
        self._same_version(other)
        return self._with(filter=_join("and", self._s.filter, other._s.filter))

    __or__ = union
    __and__ = intersect

    def _same_version(self, other: DataView) -> None:
        if not isinstance(other, DataView):
            raise TypeError(f"combine a DataView with a DataView, got {type(other).__name__}")
        if other._version.id != self._version.id:
            raise StoreError(
                f"cannot combine views of {self._version.ref} and {other._version.ref}; "
                "views combine within one version"
            )

    # ---- SQL reads

    def _select(self, conn: Connection, extra: _Node | None = None) -> Any:
        m = cat.members
        q = select(m.c.frame_id, m.c.frame_key).where(m.c.version_id == self._version.id)
        node = _join("and", self._s.filter, extra)
        if node is not None:
            q = q.where(_Sql(conn.dialect.name, _label_map(conn, self._version.id)).cond(node))
        return q.order_by(m.c.seq)

    def _rows(self, conn: Connection, extra: _Node | None = None) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in conn.execute(self._select(conn, extra))]

    def count(self) -> int:
        """How many frames match (sampling, take and infinite aside)."""
        with self._version.store.catalog.read() as conn:
            sub = self._select(conn).order_by(None).subquery()
            return int(conn.execute(select(func.count()).select_from(sub)).scalar_one())

    def frame_ids(self) -> list[str]:
        """Ids of the matching frames, in version order (order, sampling and take aside)."""
        with self._version.store.catalog.read() as conn:
            return [fid for fid, _ in self._rows(conn)]

    def keys(self) -> list[str]:
        """Content keys of the matching frames, in version order (as :meth:`frame_ids`)."""
        with self._version.store.catalog.read() as conn:
            return [k for _, k in self._rows(conn)]

    def rows(self) -> list[FrameRow]:
        """Light rows of the matching frames (id, key, labels), in version order; labels are
        annotation labels plus the label-map names of pixel-mask values."""
        with self._version.store.catalog.read() as conn:
            return self._light_rows(conn)

    def _light_rows(self, conn: Connection) -> list[FrameRow]:
        rows = self._rows(conn)
        sub = self._select(conn).order_by(None).subquery()
        fl, mv = cat.frame_labels, cat.mask_values
        labels: dict[str, set[str]] = {k: set() for _, k in rows}
        for k, lab in conn.execute(
            select(fl.c.frame_key, fl.c.label).where(fl.c.frame_key.in_(select(sub.c.frame_key)))
        ):
            labels[k].add(lab)
        lm = _label_map(conn, self._version.id)
        for k, v in conn.execute(
            select(mv.c.frame_key, mv.c.value).where(mv.c.frame_key.in_(select(sub.c.frame_key)))
        ):
            if v in lm:
                labels[k].update(lm.by_id(v).names)
        return [FrameRow(fid, k, frozenset(labels[k])) for fid, k in rows]

    # ---- order and sampling

    def shuffled(self, seed: int | None = None) -> DataView:
        """A seeded permutation of the matching frames (a new one each epoch when infinite).

        ``seed`` defaults to the view's seed, else a fresh random one (read it back from
        :attr:`seed` to replay the order).
        """
        return self._with(order="shuffle", seed=self._pick_seed(seed), weights=None)

    def weighted(
        self,
        rules: Mapping[str, float] | Callable[[FrameRow], float],
        seed: int | None = None,
        *,
        num_samples: int | None = None,
    ) -> DataView:
        """Draws with replacement, each frame in proportion to its weight.

        ``rules`` maps criteria to weights: keys are ``"label:NAME"`` or any ``--where`` text
        (``"meta.weather=rain and area>=100"``), evaluated in SQL; ``"default"`` (1.0 unless
        given) weighs frames no rule matches. A frame matching several rules takes the
        largest of their weights. Or ``rules`` is a callable from :class:`FrameRow` to a
        weight. Weights are numbers >= 0; a weight of 0 never draws the frame. An epoch is
        ``num_samples`` draws (default: as many as the matching frames).

        Raises:
            StoreError: a bad rule or weight, or every matching frame weighs 0.
        """
        return self._with(
            order="weighted", seed=self._pick_seed(seed), weights=_check_weights(rules, num_samples)
        )

    def infinite(self) -> DataView:
        """Repeat epochs forever (reshuffled or redrawn per epoch; an empty view ends)."""
        return self._with(infinite=True)

    @property
    def is_endless(self) -> bool:
        """True for an infinite view without a ``take``: iterating it never ends."""
        return bool(self._s.infinite and self._s.limit is None)

    @property
    def is_remapped(self) -> bool:
        """True when :meth:`remap` relabels this view's frames."""
        return self._s.remap is not None

    def relabeler(self) -> Callable[[Frame], Frame]:
        """The remap as a picklable function frame -> relabelled frame (the version's label
        map is read once, here), for frames fetched elsewhere, e.g. in loader workers."""
        return self._plan().apply

    def take(self, n: int) -> DataView:
        """Stop after ``n`` frames."""
        if _int("take", n) < 0:
            raise StoreError(f"take needs n >= 0, got {n}")
        return self._with(limit=n if self._s.limit is None else min(n, self._s.limit))

    def _pick_seed(self, seed: int | None) -> int:
        if seed is not None:
            return _seed(seed)
        return self._s.seed if self._s.seed is not None else secrets.randbits(63)

    def iter_keys(self) -> Iterator[str]:
        """Content keys in iteration order (shuffle, weights, epochs and take applied)."""
        with self._version.store.catalog.read() as conn:
            if self._s.order == "weighted":
                keys, p = self._weighted_keys(conn)
            else:
                keys, p = [k for _, k in self._rows(conn)], None
        return islice(self._epochs(keys, p), self._s.limit)

    def _epochs(self, keys: list[str], p: npt.NDArray[np.float64] | None) -> Iterator[str]:
        s = self._s
        if not keys:
            return
        for epoch in _count() if s.infinite else range(1):
            if s.order == "seq":
                yield from keys
                continue
            rng = _rng(s.seed if s.seed is not None else 0, epoch)
            if s.order == "shuffle":
                order = rng.permutation(len(keys))
            else:
                n = self._weights().num_samples or len(keys)
                order = rng.choice(len(keys), size=n, replace=True, p=p)
            for i in order.tolist():
                yield keys[i]

    def _weights(self) -> _Weights:
        assert self._s.weights is not None  # only called in weighted order
        return self._s.weights

    def _weighted_keys(self, conn: Connection) -> tuple[list[str], npt.NDArray[np.float64]]:
        """Keys in version order and their draw probabilities."""
        w = self._weights()
        if w.fn is not None:
            rows = self._light_rows(conn)
            weights = [_check_weight(f"frame {r.frame_id!r}", w.fn(r)) for r in rows]
            keys = [r.key for r in rows]
        else:
            keys = [k for _, k in self._rows(conn)]
            weights = [w.default] * len(keys)
            got = [False] * len(keys)
            index = {k: i for i, k in enumerate(keys)}
            for node, weight in w.rules:
                for _, k in self._rows(conn, node):
                    i = index[k]
                    weights[i] = weight if not got[i] else max(weights[i], weight)
                    got[i] = True
        arr = np.asarray(weights, np.float64)
        if keys and arr.sum() <= 0:
            raise StoreError(
                f"every one of the {len(keys)} matching frames weighs 0; give some rule "
                "or the default a weight > 0"
            )
        return keys, arr / arr.sum() if keys else arr

    # ---- frames

    def frames(self, *, batch: int = BATCH) -> Iterator[Frame]:
        """Frames in iteration order, loaded ``batch`` at a time (memory stays bounded)."""
        if _int("batch", batch) < 1:
            raise StoreError(f"batch must be >= 1, got {batch}")
        plan = self._plan() if self._s.remap is not None else None
        for frame in self._version.frames_by_keys(self.iter_keys(), batch=batch):
            yield frame if plan is None else plan.apply(frame)

    def __iter__(self) -> Iterator[Frame]:
        return self.frames()

    # ---- remapping

    def remap(
        self,
        mapping: Mapping[str, str | None] | Mapping[int, int | None],
        *,
        void: str | None = None,
    ) -> DataView:
        """Relabel the frames' annotations for training.

        By name (``{"cat": "animal", "dog": "animal"}``): targets get ids 0..K-1 in order of
        first appearance. By id (``{3: 1, 5: 0}``): an annotation's class id (else the id of
        its first label in the version's label map) maps to the given id; targets keep the
        version's name for that id (``class_<id>`` when it has none). An annotation takes the
        first of its labels that is mapped. Unmapped annotations (or mapped to None) are
        dropped, or with ``void="void"`` kept as ``void`` with id 255 (role ``ignore``).
        Filters still read the original labels; pixel masks are untouched (see
        :meth:`pixel_lut`).
        """
        return self._with(remap=_check_remap(mapping, void))

    def _plan(self) -> _RemapPlan:
        if self._s.remap is None:
            raise StoreError("this view has no remap; call view.remap({...}) first")
        with self._version.store.catalog.read() as conn:
            return _RemapPlan(self._s.remap, _label_map(conn, self._version.id))

    def label_map(self) -> LabelMap:
        """The training label map of a remapped view; the version's label map otherwise."""
        if self._s.remap is None:
            return self._version.label_map
        return self._plan().targets

    def pixel_lut(self) -> npt.NDArray[np.uint16]:
        """A lookup table (65536 entries, uint16) from pixel-mask values (the version's label
        ids) to training ids: ``lut[mask]`` remaps a class-index mask; values no mapping
        reaches become 255 (void)."""
        return self._plan().lut()


def _seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise StoreError(f"a seed is an int >= 0, got {seed!r}")
    return seed


def _label_map(conn: Connection, version_id: int) -> LabelMap:
    raw = conn.execute(
        select(cat.versions.c.label_map).where(cat.versions.c.id == version_id)
    ).scalar_one_or_none()
    return LabelMap() if raw is None else LabelMap.from_dict(json.loads(raw))


# ---- the --where parser

_TOKEN = re.compile(
    r"""\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')"""
    r"""|(?P<op>>=|<=|==|!=|=|>|<|\(|\))|(?P<word>[^\s"'=<>!()]+))"""
)
_NUM = r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_RANGE = re.compile(rf"^(?P<lo>{_NUM})?\.\.(?P<hi>{_NUM})?$")
_INT_KEYS = {"area", "count", "class_id"}
_ANN_FIELDS = ("label", "class_id", "area", "bbox_w", "bbox_h", "bbox_within")
_TOP_FIELDS = (*_ANN_FIELDS, "source", "uri", "context")
_RANGE_KEYS = {"area", "bbox_w", "bbox_h"}
_KEYS = (
    "label, class_id, source, uri, context, area, bbox_w, bbox_h, bbox_within, meta.KEY, "
    "count(LABEL), touches_border, annotation(...)"
)


class _Tok(NamedTuple):
    kind: Literal["str", "op", "word", "end"]
    text: str
    pos: int


def _tokens(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            at = len(text) - len(text[pos:].lstrip())
            raise StoreError(
                f"--where: unexpected {text[at]!r} at position {at} in {text!r}; "
                "quote values holding spaces or =<>!()\"' "
            )
        kind = m.lastgroup
        assert kind in ("str", "op", "word")
        out.append(_Tok(kind, m.group(kind), m.start(kind)))  # type: ignore[arg-type]
        pos = m.end()
    out.append(_Tok("end", "", len(text)))
    return out


class _Parser:
    """Recursive descent over ``--where`` tokens into where() keywords."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0

    def fail(self, tok: _Tok, problem: str, fix: str) -> StoreError:
        found = "the end" if tok.kind == "end" else repr(tok.text)
        return StoreError(
            f"--where: {problem} at position {tok.pos} (found {found}) in {self.text!r}; {fix}"
        )

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def next(self) -> _Tok:
        tok = self.toks[self.i]
        self.i = min(self.i + 1, len(self.toks) - 1)
        return tok

    def expect(self, text: str, fix: str) -> _Tok:
        tok = self.next()
        if tok.kind != "op" or tok.text != text:
            raise self.fail(tok, f"expected {text!r}", fix)
        return tok

    def is_word(self, tok: _Tok, word: str) -> bool:
        return tok.kind == "word" and tok.text.lower() == word

    def parse(self) -> dict[str, Any]:
        out = self.clauses(top=True)
        tok = self.peek()
        if tok.kind != "end":
            raise self.fail(tok, "unexpected text", "join conditions with 'and'")
        return out

    def clauses(self, *, top: bool) -> dict[str, Any]:
        acc = _Acc(self, top)
        while True:
            acc.clause()
            if not self.is_word(self.peek(), "and"):
                return acc.result()
            self.next()


class _Acc:
    """Collects one level's clauses (the whole text, or inside annotation(...))."""

    def __init__(self, p: _Parser, top: bool) -> None:
        self.p = p
        self.top = top
        self.out: dict[str, Any] = {}
        self.labels: list[str] = []

    def result(self) -> dict[str, Any]:
        if len(self.labels) == 1:
            self.out["label"] = self.labels[0]
        elif self.labels and not self.top:
            raise self.p.fail(
                self.p.peek(), "one annotation(...) takes one label", "drop the extra label="
            )
        elif self.labels:  # label= repeated: all of them, where the first one stood
            return {("labels_all" if k == "label" else k): v for k, v in self.out.items()} | {
                "labels_all": self.labels
            }
        return self.out

    def put(self, tok: _Tok, key: str, value: Any) -> None:
        if key in self.out:
            raise self.p.fail(tok, f"{key} is given twice", f"keep one {key} condition")
        self.out[key] = value

    def clause(self) -> None:
        p = self.p
        tok = p.next()
        if tok.kind != "word":
            raise p.fail(tok, "expected a condition", f"start with one of: {_KEYS}")
        name = tok.text.lower()
        if name == "not":
            t2 = p.next()
            if not p.is_word(t2, "touches_border"):
                raise p.fail(t2, "'not' applies to touches_border only", "use not touches_border")
            self.put(tok, "touches_border", False)
        elif name == "touches_border":
            self.put(tok, "touches_border", self.flag())
        elif name == "count" and self.top:
            self.count(tok)
        elif name == "annotation" and self.top:
            p.expect("(", "write annotation(label=cat and area>=100)")
            self.put(tok, "annotation", p.clauses(top=False))
            p.expect(")", "close annotation( with ')'")
        elif tok.text.startswith("meta.") and self.top:
            op, value = self.p.next(), self.p.next()
            self.meta(tok, op, value)
        else:
            self.field(tok, name)

    def flag(self) -> bool:
        p = self.p
        if p.peek().kind == "op" and p.peek().text in ("=", "=="):
            p.next()
            v = p.next()
            if v.text.lower() not in ("true", "false"):
                raise p.fail(v, "touches_border takes true or false", "write touches_border=false")
            return v.text.lower() == "true"
        return True

    def count(self, tok: _Tok) -> None:
        p = self.p
        p.expect("(", "write count(cat)>=2")
        label = p.next()
        if label.kind not in ("word", "str"):
            raise p.fail(label, "expected a label name", "write count(cat)>=2")
        p.expect(")", "write count(cat)>=2")
        op, value = p.next(), p.next()
        counts = self.out.setdefault("count", {})
        name = _unquote(label)
        if name in counts:
            raise p.fail(
                label, f"count({name}) is given twice", "keep one count condition per label"
            )
        counts[name] = self.range(op, value, "count", integer=True)

    def meta(self, tok: _Tok, op: _Tok, value: _Tok) -> None:
        key = tok.text[5:]
        try:
            _meta_path(key)
        except StoreError:
            raise self.p.fail(tok, "bad meta key", "write meta.a.b=VALUE") from None
        metas = self.out.setdefault("meta", {})
        if key in metas:
            raise self.p.fail(tok, f"meta.{key} is given twice", "keep one condition per key")
        if op.text in ("=", "==") and not _RANGE.match(value.text if value.kind == "word" else ""):
            metas[key] = self.typed(value)
        else:
            metas[key] = self.range(op, value, f"meta.{key}", integer=False)

    def field(self, tok: _Tok, name: str) -> None:
        p = self.p
        known = _TOP_FIELDS if self.top else _ANN_FIELDS
        if name not in known:
            where = "" if self.top else " inside annotation(...)"
            fix = _KEYS if self.top else ", ".join((*_ANN_FIELDS, "touches_border"))
            raise p.fail(tok, f"unknown field {tok.text!r}{where}", f"use one of: {fix}")
        op, value = p.next(), p.next()
        if name in _RANGE_KEYS:
            self.put(tok, name, self.range(op, value, name, integer=name in _INT_KEYS))
            return
        if op.kind != "op" or op.text not in ("=", "=="):
            raise p.fail(op, f"{name} takes '='", f"write {name}=VALUE")
        self.value_field(tok, name, value)

    def value_field(self, tok: _Tok, name: str, value: _Tok) -> None:
        p = self.p
        if value.kind not in ("word", "str"):
            raise p.fail(value, f"{name}= needs a value", f"write {name}=VALUE (quote spaces)")
        text = _unquote(value)
        if name == "label":
            if "|" in text and self.top:
                self.put(tok, "labels_any", text.split("|"))
            else:
                self.out.setdefault("label", None)  # keeps the clause's place in the dict
                self.labels.append(text)
        elif name == "class_id":
            if not re.fullmatch(r"\d+", text):
                raise p.fail(value, "class_id takes an integer", "write class_id=3")
            self.put(tok, name, int(text))
        elif name == "bbox_within":
            self.put(tok, "bbox_within_xyxy", self.box(value, text))
        else:
            self.put(tok, name, text)

    def box(self, tok: _Tok, text: str) -> Box:
        parts = text.split(",")
        if len(parts) != 4 or not all(re.fullmatch(_NUM, x.strip()) for x in parts):
            raise self.p.fail(
                tok, "bbox_within takes four numbers", "write bbox_within=0,0,640,480"
            )
        x0, y0, x1, y1 = (float(x) for x in parts)
        return (x0, y0, x1, y1)

    def range(self, op: _Tok, value: _Tok, name: str, *, integer: bool) -> Range:
        """``=lo..hi``, ``=n``, ``>=n``, ``<=n``, and ``>n``/``<n`` on integer fields."""
        p = self.p
        if op.kind != "op" or op.text not in ("=", "==", ">=", "<=", ">", "<"):
            raise p.fail(op, f"{name} takes =, >=, <= (or > <)", f"write {name}=LO..HI")
        num = r"-?\d+" if integer else _NUM
        m = _RANGE.match(value.text) if value.kind == "word" else None
        if op.text in ("=", "==") and m is not None:
            lo, hi = m.group("lo"), m.group("hi")
            if (lo is None and hi is None) or not all(
                x is None or re.fullmatch(num, x) for x in (lo, hi)
            ):
                raise p.fail(
                    value, f"bad range for {name}", f"write {name}=LO..HI, {_kind(integer)}"
                )
            return _range(name, (_num(lo, integer), _num(hi, integer)))
        if value.kind != "word" or not re.fullmatch(num, value.text):
            raise p.fail(
                value, f"{name} needs {_kind(integer)}", f"write {name}>=N or {name}=LO..HI"
            )
        n = _num(value.text, integer)
        assert n is not None
        if op.text in (">", "<") and not integer:
            raise p.fail(op, f"{name} has no {op.text} (ranges are inclusive)", "use >= or <=")
        return {
            "=": (n, n),
            "==": (n, n),
            ">=": (n, None),
            "<=": (None, n),
            ">": (n + 1, None),
            "<": (None, n - 1),
        }[op.text]

    def typed(self, tok: _Tok) -> Any:
        """A meta value: quoted -> str; unquoted true/false/null/numbers typed, else str."""
        if tok.kind == "str":
            return _unquote(tok)
        if tok.kind != "word":
            raise self.p.fail(tok, "expected a value", "write meta.KEY=VALUE (quote spaces)")
        low = tok.text.lower()
        if low in ("true", "false"):
            return low == "true"
        if low == "null":
            return None
        if re.fullmatch(r"-?\d+", tok.text):
            return int(tok.text)
        if re.fullmatch(_NUM, tok.text):
            return float(tok.text)
        return tok.text


def _kind(integer: bool) -> str:
    return "integers" if integer else "numbers"


def _num(text: str | None, integer: bool) -> float | None:
    if text is None:
        return None
    return int(text) if integer else float(text)


def _unquote(tok: _Tok) -> str:
    if tok.kind != "str":
        return tok.text
    return re.sub(r"\\(.)", r"\1", tok.text[1:-1])


def parse_where(text: str) -> dict[str, Any]:
    """Parse the CLI's ``--where`` text into :meth:`DataView.where` keywords.

    The grammar is in the module docstring.

    >>> parse_where("label=cat and area=100.. and meta.weather=rain and count(cat)>=2")
    {'label': 'cat', 'area': (100, None), 'meta': {'weather': 'rain'}, 'count': {'cat': (2, None)}}

    Raises:
        StoreError: bad syntax, naming the position, the token and the fix.
    """
    if not isinstance(text, str):
        raise TypeError(f"parse_where takes a str, got {type(text).__name__}")
    if not text.strip():
        raise StoreError("--where is empty; write e.g. label=cat and area>=100")
    return _Parser(text).parse()
