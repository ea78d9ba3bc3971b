"""Region selectors: which binary target an interactive-segmentation sample asks for.

A selector is ``selector(layers, info, rng) -> target``: ``layers`` int ``(H, W, C)``
as :mod:`masklab.iis.datasets` documents (0 = no region in every layer; layer 0 the
objects; a layer named ``"class"`` in ``info["layer_names"]``, else the last layer, the
classes), ``info`` the sample's info and ``rng`` a NumPy Generator, the only source of
randomness (same generator state, same target). The target is int8 ``(H, W)``: 1 the
chosen region, -1 the pixels ``info["ignore"]`` marks outside it, 0 the rest.

* Objects marked ``info["iscrowd"]`` (per object id ``j``, ``iscrowd[j - 1]``) are never
  chosen (they are ignore in the datasets).
* No selector returns an empty region: with nothing to choose it raises
  :class:`~masklab.errors.MaskLabError` naming the sample.

Compared with iislib's ``region_selector`` (``reference/iis.md`` §2.3): background is a
selector of its own, never a random draw; ``merge`` really takes the union.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt

from masklab.errors import MaskLabError

__all__ = [
    "SELECTORS",
    "Selector",
    "background",
    "get_selector",
    "largest_object",
    "merge",
    "random_class",
    "random_region",
    "whole",
]

Target = npt.NDArray[np.int8]
Selector = Callable[[npt.NDArray[np.integer[Any]], Mapping[str, Any], np.random.Generator], Target]


# --------------------------------------------------------------------------- helpers


def _layers(layers: npt.NDArray[np.integer[Any]]) -> npt.NDArray[np.integer[Any]]:
    arr = np.asarray(layers)
    if arr.ndim != 3 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"layers must be an integer (H, W, C) array, got {arr.dtype} {arr.shape}")
    return arr


def _ignore(info: Mapping[str, Any], hw: tuple[int, ...]) -> npt.NDArray[np.bool_] | None:
    ignore = info.get("ignore")
    if ignore is None:
        return None
    arr = np.asarray(ignore)
    if arr.shape != hw or arr.dtype != bool:
        raise ValueError(
            f"sample {info.get('id')!r}: info['ignore'] must be a bool {hw} array or None, "
            f"got {arr.dtype} {arr.shape}"
        )
    return arr


def _target(region: npt.NDArray[np.bool_], info: Mapping[str, Any]) -> Target:
    """1 in the region, -1 where ignore and not region, 0 elsewhere."""
    target = region.astype(np.int8)
    ignore = _ignore(info, region.shape)
    if ignore is not None:
        target[ignore & ~region] = -1
    return target


def _nothing(info: Mapping[str, Any], what: str) -> MaskLabError:
    where = f"sample {info.get('id')!r}"
    if info.get("dataset") is not None:
        where += f" of {info['dataset']}"
    return MaskLabError(f"{where}: {what}; pick another selector or leave the sample out")


def _values(layer: npt.NDArray[np.integer[Any]]) -> npt.NDArray[np.int64]:
    values = np.unique(layer).astype(np.int64)
    out: npt.NDArray[np.int64] = values[values != 0]
    return out


def _objects(
    layers: npt.NDArray[np.integer[Any]], info: Mapping[str, Any]
) -> npt.NDArray[np.int64]:
    """Object ids present in layer 0, crowd objects left out, ascending."""
    values = _values(layers[:, :, 0])
    crowd = [j for j, c in enumerate(info.get("iscrowd", ()), start=1) if c]
    return values[~np.isin(values, crowd)] if crowd else values


def _class_layer(layers: npt.NDArray[np.integer[Any]], info: Mapping[str, Any]) -> int:
    names = tuple(info.get("layer_names", ()))
    return names.index("class") if "class" in names else layers.shape[2] - 1


def _candidates(
    layers: npt.NDArray[np.integer[Any]], info: Mapping[str, Any], k: int
) -> npt.NDArray[np.int64]:
    return _objects(layers, info) if k == 0 else _values(layers[:, :, k])


# --------------------------------------------------------------------------- selectors


def whole(
    layers: npt.NDArray[np.integer[Any]], info: Mapping[str, Any], rng: np.random.Generator
) -> Target:
    """The union of every object (layer 0): DAVIS' and COCO-MVal's target (RITM), and
    GrabCut's and Berkeley's one object. Ignore pixels stay -1.

    >>> layers = np.array([[1, 0, 2], [0, 0, 0]])[:, :, None]
    >>> whole(layers, {"ignore": np.eye(2, 3, dtype=bool)}, np.random.default_rng(0)).tolist()
    [[1, 0, 1], [0, -1, 0]]
    """
    arr = _layers(layers)
    objects = _objects(arr, info)
    if objects.size == 0:
        raise _nothing(info, "no object to take the union of")
    return _target(np.isin(arr[:, :, 0], objects), info)


def largest_object(
    layers: npt.NDArray[np.integer[Any]], info: Mapping[str, Any], rng: np.random.Generator
) -> Target:
    """The object (layer 0) with the most pixels; the smaller id on a tie.

    >>> layers = np.array([[1, 1, 0], [0, 2, 2], [0, 0, 2]])[:, :, None]
    >>> largest_object(layers, {}, np.random.default_rng(0)).tolist()
    [[0, 0, 0], [0, 1, 1], [0, 0, 1]]
    """
    arr = _layers(layers)
    objects = _objects(arr, info)
    if objects.size == 0:
        raise _nothing(info, "no object to choose the largest of")
    values, counts = np.unique(arr[:, :, 0], return_counts=True)
    areas = counts[np.searchsorted(values, objects)]
    return _target(arr[:, :, 0] == objects[int(np.argmax(areas))], info)


def random_class(
    layers: npt.NDArray[np.integer[Any]], info: Mapping[str, Any], rng: np.random.Generator
) -> Target:
    """All pixels of one class present in the sample, drawn uniformly (the class layer:
    the one named ``"class"``, else the last; background, value 0, is never drawn)."""
    arr = _layers(layers)
    k = _class_layer(arr, info)
    values = _candidates(arr, info, k)
    if values.size == 0:
        raise _nothing(info, "no class present to choose from")
    return _target(arr[:, :, k] == values[int(rng.integers(values.size))], info)


def random_region(
    layers: npt.NDArray[np.integer[Any]], info: Mapping[str, Any], rng: np.random.Generator
) -> Target:
    """One connected component (8-connected) of one region: a region is drawn uniformly
    from every layer's regions (objects and classes), then one of its components."""
    arr = _layers(layers)
    pairs = [(k, v) for k in range(arr.shape[2]) for v in _candidates(arr, info, k).tolist()]
    if not pairs:
        raise _nothing(info, "no object or class to take a connected region of")
    k, v = pairs[int(rng.integers(len(pairs)))]
    n, labels = cv2.connectedComponents((arr[:, :, k] == v).view(np.uint8), connectivity=8)
    return _target(labels == int(rng.integers(1, n)), info)


def merge(n: int = 2, *, source: Literal["object", "class"] = "object") -> Selector:
    """A selector for the union of ``n`` distinct regions drawn without replacement:
    objects (layer 0) or classes (``source="class"``); all of them when the sample has
    fewer than ``n``.

    >>> layers = np.array([[1, 2, 3]])[:, :, None]
    >>> int((merge(2)(layers, {}, np.random.default_rng(0)) == 1).sum())
    2
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"merge needs n >= 1 regions, got {n!r}")
    if source not in ("object", "class"):
        raise ValueError(f"source must be 'object' or 'class', got {source!r}")

    def select(
        layers: npt.NDArray[np.integer[Any]], info: Mapping[str, Any], rng: np.random.Generator
    ) -> Target:
        arr = _layers(layers)
        k = 0 if source == "object" else _class_layer(arr, info)
        values = _candidates(arr, info, k)
        if values.size == 0:
            raise _nothing(info, f"no {source} to merge")
        picked = rng.choice(values, size=min(n, values.size), replace=False)
        return _target(np.isin(arr[:, :, k], picked), info)

    select.__name__ = f"merge({n})" if source == "object" else f"merge({n}, source='class')"
    select.__qualname__ = select.__name__
    return select


def background(
    layers: npt.NDArray[np.integer[Any]], info: Mapping[str, Any], rng: np.random.Generator
) -> Target:
    """Every pixel no layer claims and ignore does not mark (ignore stays -1).

    >>> background(np.array([[1, 0], [0, 0]])[:, :, None], {}, np.random.default_rng(0)).tolist()
    [[0, 1], [1, 1]]
    """
    arr = _layers(layers)
    region = ~np.any(arr != 0, axis=2)
    ignore = _ignore(info, region.shape)
    if ignore is not None:
        region &= ~ignore
    if not region.any():
        raise _nothing(info, "no background pixel (every pixel is an object or ignore)")
    return _target(region, info)


SELECTORS: Mapping[str, Selector] = {
    "whole": whole,
    "largest_object": largest_object,
    "random_class": random_class,
    "random_region": random_region,
    "merge": merge(2),
    "background": background,
}


def get_selector(name: str) -> Selector:
    """The selector of this name (``merge`` is ``merge(2)``; ``merge:N`` merges N).

    >>> get_selector("merge:3").__name__
    'merge(3)'
    """
    if name.startswith("merge:") and name[6:].isdigit():
        return merge(int(name[6:]))
    if name not in SELECTORS:
        raise ValueError(
            f"unknown region selector {name!r}; known: {', '.join(SELECTORS)}, merge:N"
        )
    return SELECTORS[name]
