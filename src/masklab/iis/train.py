"""Iterative training of click-fusion IIS models (``reference/iis.md`` §2.1, RITM's ISTrainer).

:func:`train_iis` trains an :class:`~masklab.iis.fusion.EarlyFusion` or
:class:`~masklab.iis.fusion.IntermediateFusion` model on a dataset of ``(image, target)``
items: a :class:`~masklab.iis.datasets.RegionDataset` (items with ``.image`` and
``.target``; each pass over it moves it to its next epoch, so targets are drawn anew), or
any dataset of ``(image, target, ...)`` tuples; images uint8 RGB ``(H, W, 3)``, targets
``(H, W)`` with 1 object, 0 background, -1 ignore. Per batch:

1. each image gets its initial clicks from the sampler (RITM's ``MultiPointSampler``);
2. ``k ~ U{0..max_num_next_clicks}`` passes run without gradients (in eval mode); after
   each, one click per image is added by the iterative training rule
   (:func:`masklab.iis.samplers.next_click_training`: errors at 0.49, positive iff the
   deepest false negative is deeper than the deepest false positive, uniform among the
   pixels deeper than half that depth) and the previous mask becomes ``sigmoid(logits)``;
3. one pass with gradients, a normalised focal loss (RITM's, alpha 0.5, gamma 2) or BCE,
   ignore pixels left out, and an Adam step.

It runs on the CPU on small data and on a GPU with ``device="cuda"`` (the default when one
is there). Click maps are drawn with NumPy on the CPU. ::

    from masklab.iis.fusion import EarlyFusion, TinyUNet
    from masklab.iis.train import train_iis

    model = EarlyFusion(TinyUNet())
    result = train_iis(model, region_dataset, steps=2000, batch_size=8, crop_size=(320, 320))
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeAlias

import numpy as np
import numpy.typing as npt

try:
    import torch
    from torch.nn import functional as F
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError(
        'masklab.iis.train needs PyTorch: pip install "masklab[torch]" (for the CPU-only '
        "build, install torch first from the CPU index: pip install torch==2.13.0 "
        "--index-url https://download.pytorch.org/whl/cpu)"
    ) from err

from masklab.iis.clicks import Click
from masklab.iis.fusion import ClickFusion
from masklab.iis.samplers import MultiPointSampler, next_click_training

__all__ = [
    "LossName",
    "TrainResult",
    "bce_loss",
    "next_clicks",
    "normalized_focal_loss",
    "train_iis",
]

LossName: TypeAlias = Literal["nfl", "bce"]
IGNORE = -1


class _Sampler(Protocol):
    def sample(
        self,
        target: npt.ArrayLike,
        others: npt.ArrayLike | None = None,
        rng: np.random.Generator | None = None,
    ) -> tuple[list[Click], list[Click]]: ...


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train_iis` did: the loss of every step, the time and the device."""

    losses: tuple[float, ...]
    seconds: float
    device: str

    @property
    def steps(self) -> int:
        """Number of optimiser steps run."""
        return len(self.losses)


# --------------------------------------------------------------------------- losses


def _valid(target: torch.Tensor, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if target.shape != logits.shape:
        target = target.reshape(logits.shape)
    return target == 1, target != IGNORE


def normalized_focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    alpha: float = 0.5,
    gamma: float = 2.0,
    eps: float = 1e-8,
) -> torch.Tensor:
    """RITM's normalised focal loss of logits ``(B, 1, H, W)`` against a 1/0/-1 target.

    Per image, the focal weights ``(1 - p_t)^gamma`` are rescaled (as constants) to sum to
    the number of valid pixels, so the loss keeps its scale as the prediction improves;
    the loss is ``-alpha_t * weight * log(p_t)`` averaged over the valid (non -1) pixels of
    each image, then over the batch. With ``gamma = 0`` it is ``alpha``-weighted BCE.
    """
    positive, valid = _valid(target, logits)
    logits = logits.float()
    log_pt = torch.where(positive, F.logsigmoid(logits), F.logsigmoid(-logits))
    weight = (1.0 - log_pt.exp()).pow(gamma) * valid
    dims = tuple(range(1, logits.ndim))
    count = valid.sum(dim=dims, keepdim=True).float()
    weight = weight * (count / (weight.sum(dim=dims, keepdim=True) + eps)).detach()
    alpha_t = torch.where(positive, alpha, 1.0 - alpha)
    per_pixel = -alpha_t * weight * log_pt
    per_image = per_pixel.sum(dim=dims) / (count.flatten() + eps)
    return per_image.mean()


def bce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of logits against a 1/0/-1 target, mean over valid pixels."""
    positive, valid = _valid(target, logits)
    loss = F.binary_cross_entropy_with_logits(logits.float(), positive.float(), reduction="none")
    return (loss * valid).sum() / valid.sum().clamp(min=1)


LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "nfl": normalized_focal_loss,
    "bce": bce_loss,
}


# --------------------------------------------------------------------------- clicks


def next_clicks(
    targets: Sequence[npt.NDArray[np.integer[Any]]],
    probs: Sequence[npt.NDArray[np.floating[Any]]],
    positives: Sequence[Sequence[Click]],
    negatives: Sequence[Sequence[Click]],
    *,
    rng: np.random.Generator,
    thresh: float = 0.49,
) -> tuple[list[list[Click]], list[list[Click]]]:
    """One more training click per image (the iterative rule of §2.1), as new lists.

    ``targets`` 1/0/-1 and ``probs`` ``(H, W)`` per image; the click goes to the image's
    positive or negative list as :func:`masklab.iis.samplers.next_click_training` decides.
    """
    new_pos: list[list[Click]] = []
    new_neg: list[list[Click]] = []
    for target, prob, pos, neg in zip(targets, probs, positives, negatives, strict=True):
        click = next_click_training(target, prob, [*pos, *neg], rng, thresh=thresh)
        new_pos.append([*pos, click] if click.positive else list(pos))
        new_neg.append(list(neg) if click.positive else [*neg, click])
    return new_pos, new_neg


# --------------------------------------------------------------------------- data


def _item(dataset: Any, index: int) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int8]]:
    item = dataset[index]
    if isinstance(item, tuple):  # (image, target, ...) and NamedTuples
        image, target = np.asarray(item[0]), np.asarray(item[1])
    else:  # RegionSample and other records with .image and .target
        image, target = np.asarray(item.image), np.asarray(item.target)
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"dataset[{index}][0] must be a uint8 RGB image (H, W, 3), got "
            f"{image.dtype} {image.shape}"
        )
    if target.shape != image.shape[:2]:
        raise ValueError(
            f"dataset[{index}]: target {target.shape} does not match image {image.shape[:2]}"
        )
    if target.dtype == bool:
        target = target.astype(np.int8)
    values = np.unique(target)
    if not np.isin(values, (-1, 0, 1)).all():
        raise ValueError(
            f"dataset[{index}][1] must hold 1 (object), 0 (background), -1 (ignore); "
            f"found values {values[:8].tolist()}"
        )
    if not (target == 1).any():
        raise ValueError(f"dataset[{index}] has an empty target (no pixel of value 1)")
    return image, target.astype(np.int8)


def _crop(
    image: npt.NDArray[np.uint8],
    target: npt.NDArray[np.int8],
    size_hw: tuple[int, int],
    rng: np.random.Generator,
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int8]]:
    """A ``size_hw`` window holding an object pixel; padded (image 0, target -1) if small."""
    out_h, out_w = size_hw
    h, w = target.shape
    rows, cols = np.nonzero(target == 1)
    k = int(rng.integers(rows.size))
    top = _offset(int(rows[k]), h, out_h, rng)
    left = _offset(int(cols[k]), w, out_w, rng)
    img = np.zeros((out_h, out_w, 3), np.uint8)
    tgt = np.full((out_h, out_w), IGNORE, np.int8)
    rows_in, cols_in = min(out_h, h - top), min(out_w, w - left)  # top, left >= 0
    img[:rows_in, :cols_in] = image[top : top + rows_in, left : left + cols_in]
    tgt[:rows_in, :cols_in] = target[top : top + rows_in, left : left + cols_in]
    return img, tgt


def _offset(pixel: int, length: int, window: int, rng: np.random.Generator) -> int:
    """Start of a window of ``window`` over ``length`` that holds ``pixel``."""
    if window >= length:
        return 0
    low, high = max(0, pixel - window + 1), min(pixel, length - window)
    return int(rng.integers(low, high + 1))


# --------------------------------------------------------------------------- the loop


def train_iis(
    model: ClickFusion,
    dataset: Any,
    *,
    steps: int,
    batch_size: int = 8,
    lr: float = 5e-4,
    max_num_next_clicks: int = 3,
    sampler: _Sampler | None = None,
    loss: LossName = "nfl",
    crop_size: tuple[int, int] | None = None,
    device: str | torch.device | None = None,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
    log_every: int = 50,
) -> TrainResult:
    """Train ``model`` for ``steps`` Adam steps with iterative click sampling (§2.1).

    ``dataset``: see the module docstring; items of
    a batch must share a size unless ``crop_size`` ``(h, w)`` is given, which takes a
    random window holding an object pixel (padded with ignore where the image is
    smaller). ``sampler`` draws the initial clicks (default ``MultiPointSampler()``);
    ``max_num_next_clicks`` bounds the no-gradient click passes per batch; ``loss`` is
    ``"nfl"`` (:func:`normalized_focal_loss`) or ``"bce"``. ``device`` defaults to CUDA
    when available; ``seed`` fixes batch order, crops and clicks (the model's own
    initialisation is the caller's). ``log`` gets a line every ``log_every`` steps. The
    model is left in train mode on ``device``.
    """
    if steps < 1 or batch_size < 1 or max_num_next_clicks < 0:
        raise ValueError(
            f"need steps >= 1, batch_size >= 1, max_num_next_clicks >= 0; got {steps}, "
            f"{batch_size}, {max_num_next_clicks}"
        )
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose one of {sorted(LOSSES)}")
    n = len(dataset)
    if n == 0:
        raise ValueError("the dataset is empty")
    criterion = LOSSES[loss]
    sampler = MultiPointSampler() if sampler is None else sampler
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    cursor, epoch = 0, int(getattr(dataset, "epoch", 0))
    losses: list[float] = []
    start = time.perf_counter()
    for step in range(steps):
        images, targets = [], []
        for _ in range(batch_size):
            if cursor == n:
                order, cursor, epoch = rng.permutation(n), 0, epoch + 1
                if hasattr(dataset, "set_epoch"):  # RegionDataset: draw other targets
                    dataset.set_epoch(epoch)
            image, target = _item(dataset, int(order[cursor]))
            cursor += 1
            if crop_size is not None:
                image, target = _crop(image, target, crop_size, rng)
            images.append(image)
            targets.append(target)
        sizes = {t.shape for t in targets}
        if len(sizes) > 1:
            raise ValueError(
                f"a batch holds images of sizes {sorted(sizes)}: pass crop_size=(h, w)"
            )
        positives, negatives = [], []
        for target in targets:
            pos, neg = sampler.sample(target, rng=rng)
            positives.append(list(pos))
            negatives.append(list(neg))

        x = model.preprocess(np.stack(images))
        y = torch.from_numpy(np.stack(targets)[:, None]).to(x.device)
        prev = torch.zeros_like(y, dtype=torch.float32)
        num_iters = int(rng.integers(max_num_next_clicks + 1))
        if num_iters:
            model.eval()
            with torch.no_grad():
                for _ in range(num_iters):
                    logits = model.forward(x, model.aux_input(prev, positives, negatives))
                    prev = torch.sigmoid(logits)
                    probs = list(prev[:, 0].float().cpu().numpy())
                    positives, negatives = next_clicks(
                        targets, probs, positives, negatives, rng=rng
                    )
            model.train()
        logits = model.forward(x, model.aux_input(prev, positives, negatives))
        value = criterion(logits, y)
        optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(value)
        optimizer.step()
        losses.append(float(value.detach()))
        if log is not None and ((step + 1) % log_every == 0 or step + 1 == steps):
            recent = losses[-log_every:]
            log(
                f"step {step + 1}/{steps}  loss {sum(recent) / len(recent):.4f}  "
                f"{time.perf_counter() - start:.1f}s"
            )
    return TrainResult(tuple(losses), time.perf_counter() - start, str(torch.device(device)))
