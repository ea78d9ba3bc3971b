"""The interactive-segmentation evaluation loop (``reference/iis.md`` §1.3) and its model protocol.

**Model protocol** (:class:`IISModel`, iislib's ``x, z -> y, z`` form)::

    z = model.initialize_z(image)          # per-image state: features, the last mask ...
    y = model.initialize_y(image)          # starting probabilities (H, W), usually zeros
    y, z = model(image, z, pcs, ncs)       # after each click

``image`` is uint8 ``(H, W, 3)`` RGB; ``pcs`` / ``ncs`` are the ``(row, col)`` of all positive
/ negative clicks so far, in click order; ``y`` is float probabilities ``(H, W)`` at the
image's resolution; ``z`` is anything (a dict, a tensor) and belongs to the model. A model
whose class sets ``needs_target = True`` is an *oracle*, for testing the harness only: it is
called ``initialize_z(image, target)``. No other model ever sees the target.

**One sample** (:func:`full_inference`, RITM's ``evaluate_sample``): the prediction starts as
``initialize_y(image) > threshold`` (all ``False`` for every model here, as in RITM); then
for ``k = 1..K`` the robot (``robot(gt, pred, clicks, rng=...)``) places a click from the
previous *binary* prediction, the model answers, ``pred = y > threshold`` (strict ``>``; 0.49
in the standard protocol) and the IoU (ignore pixels excluded) is recorded. It stops early once
``IoU >= target_iou`` and at least ``min_clicks`` clicks were made; ``target_iou=None`` runs
all ``K`` clicks (RITM's ``--iou-analysis``, needed for mIoU@k).

**A dataset** (:func:`evaluate`, RITM's ``evaluate_dataset``): every sample in order, by
default stopping at the highest NoC threshold; its ``seconds`` (the SPC/SPI numerator of
:func:`masklab.iis.metrics.summarize`) is the wall time of the whole loop, sample loading and
the robot included, as in RITM (iis.md §1.5). Each record also splits that time into loading,
model set-up and per-click time, and per-click model time. ``workers=N`` spreads the samples
over N processes with the same records (timings aside); ``seconds`` is then the sum of the
samples' own times (see :func:`evaluate`).

**Models by name** (:func:`load_model`): ``graphcut`` and ``random-walker``
(:mod:`masklab.iis.baselines`), ``perfect`` and ``empty`` (test models: NoC 1 and NoC K), or
``module:callable``, imported and called with no arguments to build the model.
"""

from __future__ import annotations

import contextlib
import importlib
import pickle
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from masklab._workers import check_workers, distributed, ordered_map
from masklab.errors import MaskFormatError, MaskLabError
from masklab.iis.clicks import Click, split
from masklab.iis.datasets import EvaluationDataset, RegionSample, SegDataset
from masklab.iis.metrics import IISResult, iou, noc, summarize
from masklab.iis.robots import Robot

__all__ = [
    "MODELS",
    "EmptyModel",
    "EvaluationResult",
    "IISModel",
    "InferenceResult",
    "PerfectModel",
    "SampleRecord",
    "evaluate",
    "full_inference",
    "load_model",
]

Point = tuple[int, int]
_PLAIN = (str, int, float, bool, type(None))
Probabilities = npt.NDArray[np.floating[Any]]


@runtime_checkable
class IISModel(Protocol):
    """An interactive segmentation model (see the module docstring)."""

    def initialize_z(self, image: npt.NDArray[np.uint8]) -> Any: ...

    def initialize_y(self, image: npt.NDArray[np.uint8]) -> Probabilities: ...

    def __call__(
        self, x: npt.NDArray[np.uint8], z: Any, pcs: Sequence[Point], ncs: Sequence[Point]
    ) -> tuple[Probabilities, Any]: ...


class _Samples(Protocol):
    def __len__(self) -> int: ...

    def __getitem__(self, i: int) -> RegionSample: ...


# --------------------------------------------------------------------------- one sample


@dataclass(frozen=True, eq=False)
class InferenceResult:
    """One sample's run: the clicks, the IoU after each, and the time each took.

    ``seconds[k]`` is the whole of click ``k + 1`` (robot, model, threshold, IoU);
    ``model_seconds[k]`` the model call alone; ``init_seconds`` ``initialize_z`` +
    ``initialize_y``. ``probabilities`` is the last ``y`` when asked for (``keep_probabilities``).
    """

    clicks: tuple[Click, ...]
    ious: tuple[float, ...]
    seconds: tuple[float, ...]
    model_seconds: tuple[float, ...]
    init_seconds: float
    probabilities: npt.NDArray[np.float32] | None = None

    def noc(self, threshold: float, *, max_clicks: int = 20) -> int:
        """Clicks to reach ``threshold`` (``max_clicks`` when never reached).

        >>> InferenceResult((), (0.5, 0.92), (0.0, 0.0), (0.0, 0.0), 0.0).noc(0.9)
        2
        """
        return noc(self.ious, threshold, max_clicks=max_clicks)


def full_inference(
    model: IISModel,
    oracle: Robot,
    image: npt.NDArray[np.uint8],
    target: npt.NDArray[np.integer[Any]],
    K: int = 20,
    *,
    threshold: float = 0.49,
    target_iou: float | None = None,
    min_clicks: int = 1,
    rng: np.random.Generator | None = None,
    keep_probabilities: bool = False,
) -> InferenceResult:
    """Click ``oracle``'s clicks into ``model`` until ``target_iou`` or ``K`` clicks (§1.3).

    ``target`` is int (1 object, 0 background, -1 ignore) of the image's ``(H, W)``;
    ``rng`` goes to the robot (the random robots need one to be reproducible).

    Raises:
        MaskFormatError: the target does not fit the image, or the model returns
            probabilities of another shape.
    """
    if K < 1:
        raise ValueError(f"K (the click budget) must be at least 1, got {K!r}")
    image = np.asarray(image)
    target = np.asarray(target)
    if image.ndim != 3 or target.shape != image.shape[:2]:
        raise MaskFormatError(
            f"target has shape {target.shape} but the image is {image.shape}; a target is "
            "(H, W) of its (H, W, 3) image"
        )
    size_hw = target.shape
    t0 = time.perf_counter()
    if getattr(model, "needs_target", False):
        z = model.initialize_z(image, target)  # type: ignore[call-arg]
    else:
        z = model.initialize_z(image)
    y = _checked(model.initialize_y(image), size_hw, "initialize_y")
    init_seconds = time.perf_counter() - t0
    pred = y > threshold
    clicks: list[Click] = []
    ious: list[float] = []
    seconds: list[float] = []
    model_seconds: list[float] = []
    for k in range(K):
        t0 = time.perf_counter()
        clicks.append(oracle(target, pred, clicks, rng=rng))
        pcs, ncs = split(clicks)
        t1 = time.perf_counter()
        y, z = model(image, z, pcs, ncs)
        model_seconds.append(time.perf_counter() - t1)
        y = _checked(y, size_hw, "the model")
        pred = y > threshold
        ious.append(iou(target, pred))
        seconds.append(time.perf_counter() - t0)
        if target_iou is not None and ious[-1] >= target_iou and k + 1 >= min_clicks:
            break
    probabilities = np.asarray(y, np.float32) if keep_probabilities else None
    return InferenceResult(
        tuple(clicks),
        tuple(ious),
        tuple(seconds),
        tuple(model_seconds),
        init_seconds,
        probabilities,
    )


def _checked(y: Any, size_hw: tuple[int, ...], who: str) -> Probabilities:
    y = np.asarray(y)
    if y.shape != size_hw or not np.issubdtype(y.dtype, np.floating):
        raise MaskFormatError(
            f"{who} returned {y.dtype} of shape {y.shape} for a {size_hw} target; a model "
            "answers float probabilities at the image's full resolution"
        )
    out: Probabilities = y
    return out


# --------------------------------------------------------------------------- a dataset


@dataclass(frozen=True, eq=False)
class SampleRecord:
    """One sample of :func:`evaluate`: its id, :class:`InferenceResult` and loading time;
    ``info`` keeps the sample info's plain values (ids, paths, file and target hashes)."""

    index: int
    id: str
    result: InferenceResult
    load_seconds: float
    thresholds: tuple[float, ...]
    max_clicks: int
    info: dict[str, str | int | float | bool | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: clicks as ``[row, col, positive]``, NoC per threshold (``"90"``)."""
        r = self.result
        return {
            "index": self.index,
            "id": self.id,
            "clicks": [[c.row, c.col, bool(c.positive)] for c in r.clicks],
            "ious": list(r.ious),
            "noc": {
                f"{round(t * 100, 6):g}": r.noc(t, max_clicks=self.max_clicks)
                for t in self.thresholds
            },
            "seconds": list(r.seconds),
            "model_seconds": list(r.model_seconds),
            "init_seconds": r.init_seconds,
            "load_seconds": self.load_seconds,
            "info": dict(self.info),
        }


@dataclass(frozen=True, eq=False)
class EvaluationResult:
    """:func:`evaluate`'s records (dataset order) and their :class:`IISResult` summary."""

    records: list[SampleRecord]
    summary: IISResult
    config: dict[str, Any] = field(default_factory=dict)

    def miou_curve_held(self) -> list[float]:
        """mIoU after clicks 1..max_clicks, a run that stopped early keeping its last IoU.

        This is the mask a user who stops would keep; with all clicks run (``target_iou``
        None) it equals the summary's ``miou_curve``.
        """
        k = self.summary.max_clicks
        held = np.empty((len(self.records), k))
        for row, rec in zip(held, self.records, strict=True):
            ious = np.asarray(rec.result.ious[:k], np.float64)
            row[: ious.size] = ious
            row[ious.size :] = ious[-1] if ious.size else 0.0
        return [float(v) for v in held.mean(axis=0)] if len(self.records) else []


def evaluate(
    dataset: _Samples | SegDataset,
    model: IISModel | str,
    robot: Robot,
    *,
    max_clicks: int = 20,
    thresholds: Sequence[float] = (0.85, 0.90),
    threshold: float = 0.49,
    target_iou: float | None = None,
    all_clicks: bool = False,
    min_clicks: int = 1,
    seed: int = 0,
    indices: Sequence[int] | None = None,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
) -> EvaluationResult:
    """Run :func:`full_inference` on every sample and summarize NoC / NoF / mIoU@k / SPC.

    ``dataset`` yields :class:`RegionSample` by index (an :class:`EvaluationDataset`, or any
    sequence of them); a bare :class:`SegDataset` is evaluated on its union of objects
    (``EvaluationDataset(dataset)``). ``model`` is a model, or a :func:`load_model` spec
    (``"graphcut"``, ``"module:callable"``). Early stop at ``target_iou``, by default the
    highest of ``thresholds``; ``all_clicks=True`` runs every click. Sample ``i``'s robot
    draws from ``np.random.default_rng([seed, i])``. ``progress(done, total)`` is called
    per sample.

    ``workers > 1`` splits the samples over that many spawned processes (see
    :mod:`masklab._workers`; guard a script's entry point with ``__name__ == "__main__"``).
    Each worker gets the dataset, the robot and the model by pickle, once; a model given
    as a spec is built in each worker by :func:`load_model` (one model per process: mind
    GPU memory and the model's own threads). Records come back in sample order and every
    number but the timings equals a one-process run (each sample's rng depends on its
    index only). Timings are measured per sample in its worker; with one worker ``seconds``
    (SPC's numerator) is the loop's whole wall time, as RITM's; with several it is the sum
    over samples of load + set-up + click seconds (the same work, without the idle time
    between samples), so SPC stays a per-click cost and not a wall time divided by N.

    Raises:
        MaskLabError: no samples; with ``workers > 1``, a dataset, model or robot that
            cannot be pickled (pass the model as a spec, or ``workers=1``).
    """
    if not thresholds:
        raise ValueError("evaluate needs at least one IoU threshold, e.g. (0.85, 0.90)")
    check_workers(workers)
    samples: _Samples = EvaluationDataset(dataset) if isinstance(dataset, SegDataset) else dataset
    order = list(range(len(samples))) if indices is None else [int(i) for i in indices]
    if not order:
        raise MaskLabError("the dataset has no samples to evaluate")
    stop = None if all_clicks else (max(thresholds) if target_iou is None else target_iou)
    settings = _Settings(tuple(thresholds), max_clicks, threshold, stop, min_clicks, seed)
    workers = min(workers, len(order))
    records: list[SampleRecord] = []
    t_all = time.perf_counter()
    done: Generator[SampleRecord, None, None]
    if workers == 1 and not distributed():
        net = load_model(model) if isinstance(model, str) else model
        done = (_record(samples, net, robot, settings, i) for i in order)
    else:
        state = (samples, model, robot, settings)
        _check_picklable(state)
        done = ordered_map(
            _worker_record, order, workers=workers, initializer=_worker_init, initargs=state
        )
    with contextlib.closing(done):  # an error stops the pool here, not at collection
        for n, record in enumerate(done):
            records.append(record)
            if progress is not None:
                progress(n + 1, len(order))
    seconds = time.perf_counter() - t_all
    if workers > 1 or distributed():
        seconds = sum(_sample_seconds(r) for r in records)
    summary = summarize(
        [r.result.ious for r in records],
        thresholds=tuple(thresholds),
        max_clicks=max_clicks,
        seconds=seconds,
    )
    config = {
        "max_clicks": max_clicks,
        "thresholds": list(thresholds),
        "threshold": threshold,
        "target_iou": stop,
        "min_clicks": min_clicks,
        "seed": seed,
    }
    return EvaluationResult(records, summary, config)


@dataclass(frozen=True)
class _Settings:
    thresholds: tuple[float, ...]
    max_clicks: int
    threshold: float
    stop: float | None
    min_clicks: int
    seed: int


def _record(samples: _Samples, model: IISModel, robot: Robot, s: _Settings, i: int) -> SampleRecord:
    """Sample ``i``: load it, click it through, keep its plain info."""
    t0 = time.perf_counter()
    sample = samples[i]
    load = time.perf_counter() - t0
    result = full_inference(
        model,
        robot,
        sample.image,
        sample.target,
        s.max_clicks,
        threshold=s.threshold,
        target_iou=s.stop,
        min_clicks=s.min_clicks,
        rng=np.random.default_rng([s.seed, i]),
    )
    sample_id = str(sample.info.get("id", i))
    info = {k: v for k, v in sample.info.items() if isinstance(v, _PLAIN)}
    return SampleRecord(i, sample_id, result, load, s.thresholds, s.max_clicks, info)


def _sample_seconds(record: SampleRecord) -> float:
    """A sample's own time: loading, model set-up and every click."""
    r = record.result
    return record.load_seconds + r.init_seconds + sum(r.seconds)


def _check_picklable(state: tuple[_Samples, IISModel | str, Robot, _Settings]) -> None:
    for what, obj in zip(("dataset", "model", "robot"), state, strict=False):
        try:
            pickle.dumps(obj)
        except (pickle.PicklingError, TypeError, AttributeError) as err:
            fix = (
                "give the model as a load_model spec (a name or 'module:callable')"
                if what == "model"
                else f"give a {what} that pickles"
            )
            raise MaskLabError(
                f"the {what} {type(obj).__name__} cannot be sent to worker processes "
                f"({err}); {fix}, or use workers=1"
            ) from err


# one worker process's dataset, model, robot and settings, set once by _worker_init; or the
# error building the model raised, raised again by each sample's call (a failing initializer
# would only break the pool, losing the message)
_WORKER: list[tuple[_Samples, IISModel, Robot, _Settings] | BaseException] = []


def _worker_init(
    samples: _Samples, model: IISModel | str, robot: Robot, settings: _Settings
) -> None:
    try:
        net = load_model(model) if isinstance(model, str) else model
    except Exception as err:  # re-raised in the parent at the first sample, unchanged
        _WORKER[:] = [err]
        return
    _WORKER[:] = [(samples, net, robot, settings)]


def _worker_record(i: int) -> SampleRecord:
    state = _WORKER[0]
    if isinstance(state, BaseException):
        raise state
    samples, model, robot, settings = state
    return _record(samples, model, robot, settings, i)


# --------------------------------------------------------------------------- test models


class PerfectModel:
    """An oracle for testing the harness: answers the target itself (NoC 1 at any threshold).

    ``needs_target = True``: the loop calls ``initialize_z(image, target)``.
    """

    needs_target = True

    def initialize_z(
        self, image: npt.NDArray[np.uint8], target: npt.NDArray[np.integer[Any]] | None = None
    ) -> npt.NDArray[np.float32]:
        """The target's object as probabilities 1 / 0."""
        if target is None:
            raise TypeError("PerfectModel is an oracle: initialize_z needs the target")
        z: npt.NDArray[np.float32] = (np.asarray(target) == 1).astype(np.float32)
        return z

    def initialize_y(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """All-zero probabilities."""
        return np.zeros(image.shape[:2], np.float32)

    def __call__(
        self,
        x: npt.NDArray[np.uint8],
        z: npt.NDArray[np.float32],
        pcs: Sequence[Point],
        ncs: Sequence[Point],
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """The target, whatever the clicks."""
        return z.copy(), z


class EmptyModel:
    """Predicts nothing, whatever the clicks (NoC = the click budget, IoU 0)."""

    def initialize_z(self, image: npt.NDArray[np.uint8]) -> None:
        """No state."""
        return None

    def initialize_y(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """All-zero probabilities."""
        return np.zeros(image.shape[:2], np.float32)

    def __call__(
        self, x: npt.NDArray[np.uint8], z: None, pcs: Sequence[Point], ncs: Sequence[Point]
    ) -> tuple[npt.NDArray[np.float32], None]:
        """All-zero probabilities."""
        return np.zeros(x.shape[:2], np.float32), None


def _graphcut() -> IISModel:
    from masklab.iis.baselines import GraphCutModel

    return GraphCutModel()


def _random_walker() -> IISModel:
    from masklab.iis.baselines import RandomWalkerModel

    return RandomWalkerModel()


#: model factories by name (``load_model`` also takes ``module:callable``)
MODELS: dict[str, Callable[[], IISModel]] = {
    "graphcut": _graphcut,
    "random-walker": _random_walker,
    "perfect": PerfectModel,
    "empty": EmptyModel,
}


def load_model(spec: str) -> IISModel:
    """A model by name (:data:`MODELS`) or ``module:callable`` (called with no arguments).

    >>> type(load_model("empty")).__name__
    'EmptyModel'

    Raises:
        MaskLabError: an unknown name, a module or attribute that cannot be imported, or a
            callable whose result lacks the model protocol.
    """
    if spec in MODELS:
        return MODELS[spec]()
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise MaskLabError(
            f"unknown model {spec!r}: give one of {', '.join(MODELS)} or module:callable "
            "(a callable that returns a model)"
        )
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as err:
        raise MaskLabError(f"model {spec!r}: cannot import {module_name!r}: {err}") from err
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise MaskLabError(f"model {spec!r}: {module_name!r} has no {attr!r}") from None
    if not callable(obj):
        raise MaskLabError(f"model {spec!r}: {attr!r} is not callable")
    model = obj()
    if not isinstance(model, IISModel):
        raise MaskLabError(
            f"model {spec!r}: {attr}() returned {type(model).__name__}, which lacks "
            "initialize_z / initialize_y / __call__ (the model protocol of masklab.iis.loop)"
        )
    return model
