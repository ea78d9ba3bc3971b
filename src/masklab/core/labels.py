"""LabelMap: the one palette shared by readers, writers, the store and the viewer.

A :class:`Label` is a class: its id (the value written in class-index masks), one or more
names (ClearML's ``mask_labels`` maps one pixel value to a *list* of labels, e.g.
``["person", "sitting"]``), an RGB colour, whether it is a thing (has instances) and a
role: an ordinary ``class``, the ``background``, or ``ignore`` (e.g. VOC's 255, excluded
from losses and metrics). A :class:`LabelMap` is an ordered set of labels with lookups by
id, name and colour, and converts colour-coded masks to class-index masks, reporting every
colour it does not know with its pixel count instead of dropping it.

Colours follow the VOC "bitget" colour map by default (``reference/formats.md`` §4.1).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from masklab.errors import LabelMapError

__all__ = ["Label", "LabelMap", "Role", "voc_color", "voc_colormap"]

Role = Literal["class", "background", "ignore"]
RGB = tuple[int, int, int]


def voc_color(i: int) -> RGB:
    """Colour of label ``i`` in the Pascal VOC colour map (bitget algorithm).

    >>> voc_color(1), voc_color(15), voc_color(255)
    ((128, 0, 0), (192, 128, 128), (224, 224, 192))
    """
    r = g = b = 0
    for j in range(8):
        r |= ((i >> 0) & 1) << (7 - j)
        g |= ((i >> 1) & 1) << (7 - j)
        b |= ((i >> 2) & 1) << (7 - j)
        i >>= 3
    return r, g, b


def voc_colormap(n: int = 256) -> npt.NDArray[np.uint8]:
    """The first ``n`` VOC colours as an ``(n, 3)`` uint8 array (a PNG palette)."""
    return np.array([voc_color(i) for i in range(n)], np.uint8).reshape(n, 3)


@dataclass(frozen=True, slots=True)
class Label:
    """One class of a label map."""

    id: int
    names: tuple[str, ...]
    color: RGB
    isthing: bool = True
    role: Role = "class"
    attributes: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def name(self) -> str:
        """The names joined with '+' (one string for tables and file formats)."""
        return "+".join(self.names)


@dataclass(frozen=True)
class LabelMap:
    """An ordered set of labels with lookups by id, name and colour.

    >>> lm = LabelMap.from_names(["background", "cat", "dog"], background=0)
    >>> lm.by_name("dog").id, lm.by_name("dog").color
    (2, (0, 128, 0))
    """

    labels: tuple[Label, ...] = ()

    def __post_init__(self) -> None:
        ids = [lab.id for lab in self.labels]
        if len(set(ids)) != len(ids):
            dup = sorted({i for i in ids if ids.count(i) > 1})
            raise LabelMapError(f"label ids must be unique, {dup} appear more than once")
        object.__setattr__(self, "_by_id", {lab.id: lab for lab in self.labels})
        by_name: dict[str, Label] = {}
        for lab in self.labels:
            by_name.setdefault(lab.name, lab)
            for n in lab.names:
                by_name.setdefault(n, lab)
        object.__setattr__(self, "_by_name", by_name)
        object.__setattr__(self, "_by_color", {lab.color: lab for lab in reversed(self.labels)})

    # ---- construction

    @classmethod
    def from_names(
        cls,
        names: Sequence[str],
        *,
        start: int = 0,
        background: int | None = None,
        ignore: Mapping[int, str] | None = None,
    ) -> LabelMap:
        """Labels ``start, start+1, ...`` named in order, VOC colours; optional background
        id and ignore ids (e.g. ``{255: "void"}``)."""
        labels = [
            Label(
                i,
                (n,),
                voc_color(i),
                isthing=i != background,
                role="background" if i == background else "class",
            )
            for i, n in enumerate(names, start=start)
        ]
        for i, n in (ignore or {}).items():
            labels.append(Label(i, (n,), voc_color(i), isthing=False, role="ignore"))
        return cls(tuple(labels))

    @classmethod
    def from_mask_labels(cls, mask_labels: Mapping[Any, Sequence[str] | str]) -> LabelMap:
        """ClearML's ``mask_labels``: pixel value (an int or an RGB tuple) -> labels.

        The pixel value becomes the colour; ids are assigned in order from 0. A value whose
        labels include "background" gets that role.

        >>> spec = {(0, 0, 0): ["background"], (1, 1, 1): ["person", "sitting"]}
        >>> for lab in LabelMap.from_mask_labels(spec):
        ...     print(lab.id, lab.names, lab.color, lab.role)
        0 ('background',) (0, 0, 0) background
        1 ('person', 'sitting') (1, 1, 1) class
        """
        labels = []
        for i, (value, names) in enumerate(mask_labels.items()):
            color = _as_rgb(value)
            tup = (names,) if isinstance(names, str) else tuple(names)
            if not tup:
                raise LabelMapError(f"pixel value {value!r} has an empty label list")
            bg = "background" in tup
            labels.append(
                Label(i, tup, color, isthing=not bg, role="background" if bg else "class")
            )
        return cls(tuple(labels))

    def to_mask_labels(self) -> dict[RGB, list[str]]:
        """The ClearML ``mask_labels`` form: colour -> list of names."""
        return {lab.color: list(lab.names) for lab in self.labels}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LabelMap:
        """Inverse of :meth:`to_dict` (the JSON form used by ``--labels FILE``)."""
        labels = []
        for entry in data.get("labels", []):
            names = entry.get("names") or [entry["name"]]
            labels.append(
                Label(
                    int(entry["id"]),
                    tuple(names),
                    _as_rgb(entry.get("color", voc_color(int(entry["id"])))),
                    isthing=bool(entry.get("isthing", True)),
                    role=entry.get("role", "class"),
                )
            )
        return cls(tuple(labels))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "labels": [
                {
                    "id": lab.id,
                    "names": list(lab.names),
                    "color": list(lab.color),
                    "isthing": lab.isthing,
                    "role": lab.role,
                }
                for lab in self.labels
            ]
        }

    # ---- lookups

    def __iter__(self) -> Iterator[Label]:
        return iter(self.labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __contains__(self, label_id: object) -> bool:
        return label_id in self._by_id  # type: ignore[attr-defined]

    def by_id(self, label_id: int) -> Label:
        """The label with this id; LabelMapError naming the known ids if absent."""
        try:
            return self._by_id[label_id]  # type: ignore[attr-defined,no-any-return]
        except KeyError:
            known = sorted(self._by_id)  # type: ignore[attr-defined]
            raise LabelMapError(f"no label with id {label_id!r}; known ids: {known}") from None

    def by_name(self, name: str) -> Label:
        """The label with this name (or one of its names)."""
        try:
            return self._by_name[name]  # type: ignore[attr-defined,no-any-return]
        except KeyError:
            raise LabelMapError(
                f"no label named {name!r}; known: {sorted(self._by_name)}"  # type: ignore[attr-defined]
            ) from None

    def find(self, name: str) -> Label | None:
        """The label with this name, or None."""
        return self._by_name.get(name)  # type: ignore[attr-defined,no-any-return]

    def by_color(self, color: Sequence[int]) -> Label | None:
        """The label with this RGB colour, or None."""
        return self._by_color.get(_as_rgb(color))  # type: ignore[attr-defined,no-any-return]

    @property
    def ids(self) -> list[int]:
        """Label ids in order."""
        return [lab.id for lab in self.labels]

    @property
    def ignore_ids(self) -> list[int]:
        """Ids whose role is ``ignore``."""
        return [lab.id for lab in self.labels if lab.role == "ignore"]

    @property
    def background_id(self) -> int | None:
        """The background's id, if the map has one."""
        return next((lab.id for lab in self.labels if lab.role == "background"), None)

    def with_label(self, label: Label) -> LabelMap:
        """A copy with ``label`` added (its id must be new)."""
        return LabelMap((*self.labels, label))

    def merged(self, other: LabelMap) -> LabelMap:
        """Labels of both; a shared id must name the same label."""
        out = list(self.labels)
        for lab in other:
            if lab.id in self:
                mine = self.by_id(lab.id)
                if set(mine.names) != set(lab.names):
                    raise LabelMapError(
                        f"label id {lab.id} is {mine.name!r} in one map and {lab.name!r} in "
                        "the other; pass --labels to say which"
                    )
            else:
                out.append(lab)
        return LabelMap(tuple(out))

    # ---- colour masks

    def colors_to_ids(
        self, rgb: npt.NDArray[np.uint8], *, unknown: int = -1
    ) -> tuple[npt.NDArray[np.int32], dict[RGB, int]]:
        """Class-index array of a colour-coded ``(h, w, 3)`` mask, and every colour not in
        the map with its pixel count (those pixels get ``unknown``)."""
        arr = np.asarray(rgb)
        if arr.ndim != 3 or arr.shape[2] < 3:
            raise LabelMapError(f"a colour mask must be (h, w, 3), got shape {arr.shape}")
        key = (
            arr[..., 0].astype(np.uint32)
            | (arr[..., 1].astype(np.uint32) << 8)
            | (arr[..., 2].astype(np.uint32) << 16)
        )
        values, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
        lut = np.full(values.size, unknown, np.int32)
        missing: dict[RGB, int] = {}
        for i, v in enumerate(values.tolist()):
            color = (v & 0xFF, (v >> 8) & 0xFF, (v >> 16) & 0xFF)
            lab = self.by_color(color)
            if lab is None:
                missing[color] = int(counts[i])
            else:
                lut[i] = lab.id
        return lut[inverse].reshape(key.shape), missing

    def ids_to_colors(self, ids: npt.NDArray[np.integer[Any]]) -> npt.NDArray[np.uint8]:
        """Colour-coded ``(h, w, 3)`` mask of a class-index array (unknown ids black)."""
        arr = np.asarray(ids)
        if arr.size and (arr.min() < 0 or arr.max() > 1_000_000):
            raise LabelMapError("class ids must be in 0..1e6 to paint colours")
        top = int(arr.max()) + 1 if arr.size else 1
        lut = np.zeros((max(top, max(self.ids, default=0) + 1), 3), np.uint8)
        for lab in self.labels:
            if lab.id >= 0:
                lut[lab.id] = lab.color
        return lut[arr]


def _as_rgb(value: Any) -> RGB:
    if isinstance(value, (int, np.integer)):
        v = int(value)
        return (v, v, v)
    vals = [int(v) for v in value]
    if len(vals) == 1:
        return (vals[0], vals[0], vals[0])
    if len(vals) < 3:
        raise LabelMapError(f"a colour needs 3 values (r, g, b), got {list(value)!r}")
    return (vals[0], vals[1], vals[2])
