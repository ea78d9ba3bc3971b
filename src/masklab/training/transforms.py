"""Joint geometric transforms of an image and its sample's masks.

A transform is called as ``t(image, sample, rng=rng) -> (image, sample)``: ``image`` an
``(H, W)`` or ``(H, W, C)`` array of the sample's size, ``rng`` a
:class:`numpy.random.Generator` (random transforms draw from it alone, so a seed gives one
result). Instance masks are transformed on their runs (:mod:`masklab.core.rle`: crop, pad,
flip, resize_nearest) without decoding; the class map and alpha are indexed with the same
nearest-neighbour rule, so a class map and the instance masks painted into it agree
exactly after any transform. Boxes are never transformed: targets compute them from the
masks (:func:`~masklab.training.targets.instance_targets`), so they always fit.

* **Resize**: the image bilinear (``cv2.INTER_LINEAR``), masks nearest with pixel centres:
  output ``(y, x)`` samples source ``((2y + 1) h_in // 2 h_out, (2x + 1) w_in // 2 w_out)``,
  :func:`~masklab.core.rle.resize_nearest`'s rule (OpenCV's ``INTER_NEAREST_EXACT``).
* **Crops** drop the instances they leave without pixels, keeping class ids, ids and
  crowd flags of the others; polygons are dropped (they described the old frame).
* **Padding** fills the image with ``fill``, the class map with ``fill_semantic`` (255)
  and marks the new pixels in ``sample.meta["ignore_rle"]`` (an RLE), which every target
  treats as ``ignore_index``: padding is not background, whatever the class map's fill.
* A sample a transform changed has no ``image``/``image_bytes`` (the returned array is
  the image).

:class:`Albumentations` runs an albumentations (2.x) pipeline the same way: the image as
``image=``, the class map as ``mask=``, instance masks (and alpha) as ``masks=[...]``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass, replace
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt

from masklab.core import rle
from masklab.core.rle import RLE
from masklab.errors import MaskFormatError
from masklab.formats._base import Sample
from masklab.training.targets import IGNORE_RLE

__all__ = [
    "Albumentations",
    "CenterCrop",
    "Compose",
    "Crop",
    "HorizontalFlip",
    "PadIfNeeded",
    "RandomCrop",
    "Resize",
    "Transform",
    "VerticalFlip",
    "nearest_index",
]

Image = npt.NDArray[Any]
PadPosition = Literal["center", "top_left"]


class Transform(ABC):
    """A joint transform: ``t(image, sample, rng=rng) -> (image, sample)``."""

    def __call__(
        self, image: Image, sample: Sample, *, rng: np.random.Generator | None = None
    ) -> tuple[Image, Sample]:
        arr = np.asarray(image)
        if arr.ndim not in (2, 3) or tuple(arr.shape[:2]) != tuple(sample.size):
            raise MaskFormatError(
                f"sample {sample.id!r}: image is {list(arr.shape)} but the sample is "
                f"{list(sample.size)} (h, w); load the image that belongs to it"
            )
        return self.apply(arr, sample, np.random.default_rng() if rng is None else rng)

    @abstractmethod
    def apply(self, image: Image, sample: Sample, rng: np.random.Generator) -> tuple[Image, Sample]:
        """Transform one checked pair."""


# --------------------------------------------------------------------------- helpers


def _map(
    sample: Sample,
    size: tuple[int, int],
    on_rle: Callable[[RLE], RLE],
    on_array: Callable[[npt.NDArray[Any], int], npt.NDArray[Any]],
    *,
    fill_semantic: int = 0,
    new_ignore: RLE | None = None,
) -> Sample:
    """The sample with every mask moved: instances and the ignore RLE through ``on_rle``
    (emptied instances dropped), class map and alpha through ``on_array`` (with their
    fill value); ``new_ignore`` is added to the ignore RLE (padding)."""
    instances = []
    for inst in sample.instances:
        mask = on_rle(inst.mask)
        if rle.area(mask):
            instances.append(replace(inst, mask=mask, polygons=None))
    meta = dict(sample.meta)
    old = meta.pop(IGNORE_RLE, None)
    parts = [m for m in (None if old is None else on_rle(old), new_ignore) if m is not None]
    ignore = rle.merge(parts, "union") if parts else None
    if ignore is not None and rle.area(ignore):
        meta[IGNORE_RLE] = ignore
    return replace(
        sample,
        size=size,
        instances=tuple(instances),
        semantic=None if sample.semantic is None else on_array(sample.semantic, fill_semantic),
        alpha=None if sample.alpha is None else on_array(sample.alpha, 0),
        meta=meta,
        image=None,
        image_bytes=None,
    )


def _crop(image: Image, sample: Sample, x: int, y: int, w: int, h: int) -> tuple[Image, Sample]:
    """Cut the box ``[x, y, w, h]``, which lies inside the image."""
    out = np.ascontiguousarray(image[y : y + h, x : x + w])
    moved = _map(
        sample,
        (h, w),
        lambda m: rle.crop(m, [x, y, w, h]),
        lambda a, _: np.ascontiguousarray(a[y : y + h, x : x + w]),
    )
    return out, moved


def _check_crop(sample: Sample, h: int, w: int) -> None:
    if h > sample.h or w > sample.w or h < 1 or w < 1:
        raise MaskFormatError(
            f"sample {sample.id!r}: a {h}x{w} crop (h x w) does not fit its "
            f"{sample.h}x{sample.w} image; put PadIfNeeded({h}, {w}) before the crop"
        )


def nearest_index(n_in: int, n_out: int) -> npt.NDArray[np.intp]:
    """Source index of each output index when resizing ``n_in -> n_out`` with pixel
    centres: ``(2 i + 1) n_in // (2 n_out)``, :func:`~masklab.core.rle.resize_nearest`'s
    rule.

    >>> nearest_index(3, 6).tolist(), nearest_index(5, 2).tolist()
    ([0, 0, 1, 1, 2, 2], [1, 3])
    """
    return ((2 * np.arange(n_out, dtype=np.intp) + 1) * n_in) // (2 * n_out)


# --------------------------------------------------------------------------- transforms


@dataclass(frozen=True)
class Resize(Transform):
    """Resize to ``height x width``: the image with ``interpolation`` (bilinear), masks
    nearest (pixel centres)."""

    height: int
    width: int
    _: KW_ONLY
    interpolation: int = cv2.INTER_LINEAR

    def apply(self, image: Image, sample: Sample, rng: np.random.Generator) -> tuple[Image, Sample]:
        hh, ww = int(self.height), int(self.width)
        if hh < 1 or ww < 1:
            raise ValueError(f"Resize needs a positive size, got {self.height}x{self.width}")
        out = cv2.resize(image, (ww, hh), interpolation=self.interpolation)
        sy, sx = nearest_index(sample.h, hh), nearest_index(sample.w, ww)
        moved = _map(
            sample,
            (hh, ww),
            lambda m: rle.resize_nearest(m, (hh, ww)),
            lambda a, _: np.ascontiguousarray(a[sy][:, sx]),
        )
        return np.asarray(out), moved


@dataclass(frozen=True)
class Crop(Transform):
    """Cut the box ``x_min <= x < x_max``, ``y_min <= y < y_max`` (albumentations'
    ``Crop``); it must lie inside the image."""

    x_min: int
    y_min: int
    x_max: int
    y_max: int

    def apply(self, image: Image, sample: Sample, rng: np.random.Generator) -> tuple[Image, Sample]:
        x, y = int(self.x_min), int(self.y_min)
        w, h = int(self.x_max) - x, int(self.y_max) - y
        if x < 0 or y < 0 or x + w > sample.w or y + h > sample.h or w < 1 or h < 1:
            raise MaskFormatError(
                f"sample {sample.id!r}: crop x {x}..{x + w}, y {y}..{y + h} is not inside its "
                f"{sample.h}x{sample.w} image (h x w); pad first or pick a smaller box"
            )
        return _crop(image, sample, x, y, w, h)


@dataclass(frozen=True)
class RandomCrop(Transform):
    """Cut a ``height x width`` box at a random position (uniform over all that fit)."""

    height: int
    width: int

    def apply(self, image: Image, sample: Sample, rng: np.random.Generator) -> tuple[Image, Sample]:
        h, w = int(self.height), int(self.width)
        _check_crop(sample, h, w)
        y = int(rng.integers(0, sample.h - h + 1))
        x = int(rng.integers(0, sample.w - w + 1))
        return _crop(image, sample, x, y, w, h)


@dataclass(frozen=True)
class CenterCrop(Transform):
    """Cut a ``height x width`` box at the centre (offsets rounded down, as albumentations)."""

    height: int
    width: int

    def apply(self, image: Image, sample: Sample, rng: np.random.Generator) -> tuple[Image, Sample]:
        h, w = int(self.height), int(self.width)
        _check_crop(sample, h, w)
        return _crop(image, sample, (sample.w - w) // 2, (sample.h - h) // 2, w, h)


@dataclass(frozen=True, kw_only=True)
class HorizontalFlip(Transform):
    """Mirror left-right with probability ``p``."""

    p: float = 0.5

    def apply(self, image: Image, sample: Sample, rng: np.random.Generator) -> tuple[Image, Sample]:
        if rng.random() >= self.p:
            return image, sample
        moved = _map(
            sample,
            sample.size,
            lambda m: rle.flip(m, "horizontal"),
            lambda a, _: np.ascontiguousarray(a[:, ::-1]),
        )
        return np.ascontiguousarray(image[:, ::-1]), moved


@dataclass(frozen=True, kw_only=True)
class VerticalFlip(Transform):
    """Mirror top-bottom with probability ``p``."""

    p: float = 0.5

    def apply(self, image: Image, sample: Sample, rng: np.random.Generator) -> tuple[Image, Sample]:
        if rng.random() >= self.p:
            return image, sample
        moved = _map(
            sample,
            sample.size,
            lambda m: rle.flip(m, "vertical"),
            lambda a, _: np.ascontiguousarray(a[::-1]),
        )
        return np.ascontiguousarray(image[::-1]), moved


@dataclass(frozen=True)
class PadIfNeeded(Transform):
    """Pad to at least ``min_height x min_width``: image with ``fill``, class map with
    ``fill_semantic``, alpha with 0; ``center`` splits the padding (the extra pixel at the
    bottom/right, as albumentations) or ``top_left`` puts the image there. With
    ``ignore_padding`` the new pixels are marked ignore for every target."""

    min_height: int
    min_width: int
    _: KW_ONLY
    position: PadPosition = "center"
    fill: float | Sequence[float] = 0
    fill_semantic: int = 255
    ignore_padding: bool = True

    def apply(self, image: Image, sample: Sample, rng: np.random.Generator) -> tuple[Image, Sample]:
        h, w = sample.size
        dh, dw = max(0, int(self.min_height) - h), max(0, int(self.min_width) - w)
        if dh == 0 and dw == 0:
            return image, sample
        if self.position == "center":
            top, left = dh // 2, dw // 2
        elif self.position == "top_left":
            top = left = 0
        else:
            raise ValueError(f"position must be 'center' or 'top_left', got {self.position!r}")
        bottom, right = dh - top, dw - left
        size = (h + dh, w + dw)
        widths = ((top, bottom), (left, right))

        def pad_array(a: npt.NDArray[Any], fill: int) -> npt.NDArray[Any]:
            return np.pad(a, widths, constant_values=fill)

        border = None
        if self.ignore_padding:
            inside = rle.pad(rle.full((h, w)), top=top, bottom=bottom, left=left, right=right)
            border = rle.merge([rle.full(size), inside], "difference")
        moved = _map(
            sample,
            size,
            lambda m: rle.pad(m, top=top, bottom=bottom, left=left, right=right),
            pad_array,
            fill_semantic=self.fill_semantic,
            new_ignore=border,
        )
        out = np.empty(size + image.shape[2:], image.dtype)
        out[...] = self.fill  # a sequence fills channel by channel
        out[top : top + h, left : left + w] = image
        return out, moved


@dataclass(frozen=True)
class Compose(Transform):
    """Apply transforms in order, all drawing from the one ``rng``."""

    transforms: Sequence[Transform]

    def apply(self, image: Image, sample: Sample, rng: np.random.Generator) -> tuple[Image, Sample]:
        for t in self.transforms:
            image, sample = t(image, sample, rng=rng)
        return image, sample


# --------------------------------------------------------------------------- albumentations


@dataclass(frozen=True, eq=False)
class Albumentations(Transform):
    """Run an albumentations (2.x) transform or ``Compose`` on the image and the masks.

    albumentations gets ``image=``, the class map as ``mask=`` and, as ``masks=[...]``,
    each instance mask (0/1 uint8), the alpha and a mask of the original pixels, so that
    what its geometry brings in from outside the image (padding, rotation borders) is
    marked ignore, as :class:`PadIfNeeded` does. Instance masks come back re-encoded as
    RLE (a pixel is foreground where the value is 1, so ``fill_mask`` must not be 1);
    instances left without pixels are dropped, the others keep their class ids, ids and
    crowd flags. Give it no ``bbox_params``: boxes follow from the masks. With ``rng``
    the pipeline is reseeded from it on each call (``set_random_seed``), so a seed
    gives one result. For resizes pass ``mask_interpolation=cv2.INTER_NEAREST_EXACT``:
    albumentations' default ``INTER_NEAREST`` samples pixel corners, half a pixel off
    the bilinear image.
    """

    aug: Any

    def __call__(
        self, image: Image, sample: Sample, *, rng: np.random.Generator | None = None
    ) -> tuple[Image, Sample]:
        if rng is not None and hasattr(self.aug, "set_random_seed"):
            self.aug.set_random_seed(int(rng.integers(2**32)))
        return super().__call__(image, sample, rng=rng)

    def apply(self, image: Image, sample: Sample, rng: np.random.Generator) -> tuple[Image, Sample]:
        ignore = sample.meta.get(IGNORE_RLE)
        valid = np.ones(sample.size, np.uint8)
        if ignore is not None:
            valid[rle.decode(ignore).view(bool)] = 0
        masks = [rle.decode(inst.mask) for inst in sample.instances] + [valid]
        if sample.alpha is not None:
            masks.append(np.ascontiguousarray(sample.alpha, np.uint8))
        kwargs: dict[str, Any] = {"image": image, "masks": masks}
        sem = sample.semantic
        if sem is not None:
            kwargs["mask"] = _cv_dtype(sem, sample.id)
        result = self.aug(**kwargs)
        out = np.asarray(result["image"])
        size = (int(out.shape[0]), int(out.shape[1]))
        back = [np.asarray(m) for m in result["masks"]]
        alpha = back.pop() if sample.alpha is not None else None
        inside = back.pop() == 1
        instances = []
        for inst, m in zip(sample.instances, back, strict=True):
            mask = rle.encode((m == 1) & inside)
            if rle.area(mask):
                instances.append(replace(inst, mask=mask, polygons=None))
        meta = dict(sample.meta)
        meta.pop(IGNORE_RLE, None)
        if not inside.all():
            meta[IGNORE_RLE] = rle.encode(~inside)
        if alpha is not None:
            alpha = np.where(inside, alpha, 0).astype(np.uint8)
        new_sem = None
        if sem is not None:
            new_sem = np.ascontiguousarray(np.asarray(result["mask"]).astype(sem.dtype))
        moved = replace(
            sample,
            size=size,
            instances=tuple(instances),
            semantic=new_sem,
            alpha=alpha,
            meta=meta,
            image=None,
            image_bytes=None,
        )
        return out, moved


def _cv_dtype(sem: npt.NDArray[Any], sample_id: str) -> npt.NDArray[Any]:
    """The class map in a dtype OpenCV warps (uint8, uint16, int32)."""
    if sem.dtype in (np.uint8, np.uint16, np.int32):
        return sem
    if sem.size and (sem.min() < np.iinfo(np.int32).min or sem.max() > np.iinfo(np.int32).max):
        raise MaskFormatError(f"sample {sample_id!r}: class ids outside int32 cannot be warped")
    return sem.astype(np.int32)
