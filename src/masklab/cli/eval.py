"""``masklab eval GT PRED --task semantic|instance|panoptic``: score predictions as papers do.

GT and PRED are datasets in any format masklab reads (PRED may be a COCO results list, read
with GT's images and categories), or GT a store version ``DATASET:VERSION``. Samples are
matched by id; a ground-truth sample with no prediction (or a prediction with no ground
truth) is reported per record and left out of the scores, or stops the run with
``--strict``. The table goes to stdout, the full result to ``--out`` as json.

* semantic: both sides become class maps of GT's training ids (``TrainIds``: contiguous,
  ignore labels -> 255); confusion-matrix IoU/Dice/accuracy over the whole dataset and the
  boundary F-score per class.
* instance: COCO mask AP/AR by the COCOeval protocol. A COCO GT json with a COCO results
  list is scored straight from the two json files, exactly as pycocotools would.
* panoptic: PQ/SQ/RQ per class and for all/things/stuff, by panopticapi's definition.

``--workers N`` (default: every core, but one per 32 ground-truth samples) scores semantic
and panoptic pairs in N processes while this one reads and matches the samples; each pair's
counts come back in GT order and are added in that order, so the json (problems included)
is the same for any N, to the last bit. Instance AP runs in one process whatever N: COCOeval
needs every detection at once, and its matching is already vectorised.
"""

from __future__ import annotations

import contextlib
import json
import math
import operator
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from masklab._workers import auto_workers, distributed, ordered_map
from masklab.cli.app import (
    EngineOption,
    LabelsFile,
    RayAddress,
    SourceFormat,
    Strict,
    _engine,
    _load_labels,
    _reported,
    _stdout,
    app,
)
from masklab.cli.store import Home, open_store
from masklab.core.labels import LabelMap
from masklab.errors import MaskLabError
from masklab.formats._base import Reader, Sample

Task = Literal["semantic", "instance", "panoptic"]
OutFile = Annotated[Path, typer.Option("--out", help="Where to write the result json.")]
Workers = Annotated[
    int | None,
    typer.Option(
        "--workers",
        min=1,
        help=r"Processes to score in \[default: every core, one per 32 samples at most; "
        "with --engine ray, the cluster's CPUs].",
        show_default=False,
    ),
]
PAIRS_PER_WORKER = 32  # the default starts no more workers than GT samples / 32


class EvalProblems:
    """Per-record problems of one evaluation (missing or unmatched samples, bad records)."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.items: list[dict[str, str]] = []

    def add(self, sample: str, message: str) -> None:
        if self.strict:
            raise MaskLabError(f"sample {sample!r}: {message} (--strict stops at the first)")
        self.items.append({"sample": sample, "message": message})


def pairs(gt: Reader, pred: Reader, problems: EvalProblems) -> Iterator[tuple[Sample, Sample]]:
    """GT and prediction samples with the same id, in GT's order.

    Predictions read in GT's order stream through; out-of-order ones wait in a buffer until
    their ground truth comes (so memory grows only with the disorder).
    """
    waiting: dict[str, Sample] = {}
    preds = iter(pred)
    exhausted = False
    for g in gt:
        p = waiting.pop(g.id, None)
        while p is None and not exhausted:
            try:
                nxt = next(preds)
            except StopIteration:
                exhausted = True
                break
            if nxt.id == g.id:
                p = nxt
            else:
                waiting[nxt.id] = nxt
        if p is None:
            problems.add(g.id, "no prediction for this ground-truth sample; it is not scored")
            continue
        yield g, p
    for leftover in [*waiting, *(s.id for s in preds)]:
        problems.add(leftover, "a prediction with no ground-truth sample; it is not scored")


def _is_results_list(path: Path) -> bool:
    if not path.is_file() or path.suffix.lower() != ".json":
        return False
    with path.open("rb") as f:
        return f.read(4096).lstrip().startswith(b"[")


def _open_gt(gt: str, fmt: str | None, labels: LabelMap | None, home: Path | None) -> Reader:
    from masklab.formats import open_reader

    path = Path(gt)
    if path.exists():
        return open_reader(path.resolve(), fmt, labels=labels)
    if ":" not in gt:
        raise MaskLabError(f"{gt}: no such file or folder (or give a store version as DATASET:VER)")
    from masklab.store.exporter import VersionReader

    return VersionReader(open_store(home).version(gt), labels=labels)


def _open_pred(pred: Path, fmt: str | None, gt: str, labels: LabelMap) -> Reader:
    from masklab.formats import open_reader

    if _is_results_list(pred):
        return open_reader(pred, fmt or "coco", labels=labels, gt=Path(gt).resolve())
    return open_reader(pred, fmt, labels=labels)


# ---- the three tasks


def _semantic(gt: Reader, pred: Reader, problems: EvalProblems, workers: int = 1) -> dict[str, Any]:
    from masklab.metrics.boundary import BoundaryF
    from masklab.metrics.semantic import ConfusionMatrix
    from masklab.training.targets import TrainIds

    tid = TrainIds.from_label_map(gt.labels)
    cm = ConfusionMatrix(tid.num_classes, ignore_index=tid.ignore_index, names=tid.names)
    bf = BoundaryF(tid.num_classes, ignore_index=tid.ignore_index, names=tid.names)
    images = 0
    if workers == 1 and not distributed():
        for g, p in pairs(gt, pred, problems):
            problem = _semantic_pair(g, p, tid, cm, bf)
            if problem is not None:
                problems.add(g.id, problem)
                continue
            images += 1
    else:
        for counts in _in_workers(gt, pred, problems, workers, _semantic_worker, (tid,)):
            cm.merge(counts[0])
            bf.merge(counts[1])
            images += 1
    iou, dice, acc, bfs = cm.iou(), cm.dice(), cm.class_accuracy(), bf.f_score()
    classes = [
        {
            "train_id": t,
            "name": name,
            "iou": _num(iou[t]),
            "dice": _num(dice[t]),
            "accuracy": _num(acc[t]),
            "boundary_f": _num(bfs[t]),
        }
        for t, name in enumerate(tid.names)
    ]
    return {
        "images": images,
        "pixels": cm.total,
        "miou": _num(cm.miou()),
        "mean_dice": _num(cm.mean_dice()),
        "pixel_accuracy": _num(cm.pixel_accuracy()),
        "mean_accuracy": _num(cm.mean_accuracy()),
        "boundary_f": _num(bf.mean_f()),
        "classes": classes,
        "confusion_matrix": cm.matrix.tolist(),
    }


def _semantic_pair(g: Sample, p: Sample, tid: Any, cm: Any, bf: Any) -> str | None:
    """Add one pair to the confusion matrix and boundary F; the problem, if any."""
    from masklab.training.targets import class_map

    if g.size != p.size:
        return f"prediction is {list(p.size)} (h, w), ground truth {list(g.size)}"
    target = class_map(g, train_ids=tid)
    guess = class_map(p, train_ids=tid, crowd="class")
    try:
        cm.update(guess, target)
    except MaskLabError as err:
        return str(err)
    bf.update(guess, target)
    return None


def _semantic_worker(pair: tuple[Sample, Sample]) -> str | tuple[Any, Any]:
    """In a worker: one pair's own confusion matrix and boundary counts, or its problem."""
    from masklab.metrics.boundary import BoundaryF
    from masklab.metrics.semantic import ConfusionMatrix

    (tid,) = _WORKER
    cm = ConfusionMatrix(tid.num_classes, ignore_index=tid.ignore_index, names=tid.names)
    bf = BoundaryF(tid.num_classes, ignore_index=tid.ignore_index, names=tid.names)
    problem = _semantic_pair(pair[0], pair[1], tid, cm, bf)
    return problem if problem is not None else (cm, bf)


def _instance(
    gt: Reader, pred: Reader, gt_arg: str, pred_path: Path, problems: EvalProblems
) -> dict[str, Any]:
    from masklab.metrics import coco

    gt_path = Path(gt_arg)
    if _is_results_list(pred_path) and gt_path.is_file() and gt_path.suffix.lower() == ".json":
        with gt_path.open("rb") as f:
            gt_doc = json.load(f)
        with pred_path.open("rb") as f:
            results = json.load(f)
        result = coco.evaluate(gt_doc, results)
    else:
        matched = list(pairs(gt, pred, problems))
        result = coco.evaluate_samples(
            [g for g, _ in matched], [p for _, p in matched], categories=gt.labels
        )
    out: dict[str, Any] = result.to_dict()
    out["summary"] = result.summary()
    return out


def _panoptic(gt: Reader, pred: Reader, problems: EvalProblems, workers: int = 1) -> dict[str, Any]:
    from masklab.metrics.panoptic import PanopticQuality

    # per image, then added in GT order: the IoU sums (floats) add up the same for any N
    pq = PanopticQuality(gt.labels)
    images = 0
    if workers == 1 and not distributed():
        for g, p in pairs(gt, pred, problems):
            one = _panoptic_pair(g, p, gt.labels)
            if isinstance(one, str):
                problems.add(g.id, one)
                continue
            pq.merge(one)
            images += 1
    else:
        for one in _in_workers(gt, pred, problems, workers, _panoptic_worker, (gt.labels,)):
            pq.merge(one)
            images += 1
    return {"images": images, **pq.result().to_dict()}


def _panoptic_pair(g: Sample, p: Sample, labels: LabelMap) -> Any:
    """One pair's own PanopticQuality, or its problem."""
    from masklab.metrics.panoptic import PanopticQuality

    one = PanopticQuality(labels)
    try:
        one.update_samples(g, p)
    except MaskLabError as err:
        return str(err)
    return one


def _panoptic_worker(pair: tuple[Sample, Sample]) -> Any:
    (labels,) = _WORKER
    return _panoptic_pair(pair[0], pair[1], labels)


# ---- several processes

# a worker process's state (the train ids or the label map), set once by _worker_init
_WORKER: list[Any] = []


def _worker_init(*state: Any) -> None:
    _WORKER[:] = state


def _in_workers(
    gt: Reader,
    pred: Reader,
    problems: EvalProblems,
    workers: int,
    score: Callable[[tuple[Sample, Sample]], Any],
    state: tuple[Any, ...],
) -> Iterator[Any]:
    """``score`` of each matched pair, computed in ``workers`` processes, in GT order;
    a pair whose score is a str (its problem) is reported instead of yielded.

    This process reads and matches the samples (:func:`pairs`) ahead of the workers, so
    its problems (a missing prediction) are held with their place in GT order and handed
    to ``problems`` only once every pair before that place is scored: the report, and
    where ``--strict`` stops, are those of one process.
    """
    held: deque[tuple[int, str, str]] = deque()  # (pairs matched before it, sample, message)
    ahead = _Held(held)

    ids: deque[str] = deque()  # of the pairs sent and not yet scored

    def matched() -> Iterator[tuple[Sample, Sample]]:
        for pair in pairs(gt, pred, ahead):
            ids.append(pair[0].id)
            yield pair
            ahead.position += 1

    def release(upto: int) -> None:
        while held and held[0][0] <= upto:
            _, sample, message = held.popleft()
            problems.add(sample, message)

    scored = ordered_map(
        score, matched(), workers=workers, initializer=_worker_init, initargs=state
    )
    with contextlib.closing(scored):
        for j, result in enumerate(scored):
            release(j)
            sample = ids.popleft()
            if isinstance(result, str):
                problems.add(sample, result)
                continue
            yield result
    release(ahead.position)


class _Held(EvalProblems):
    """Problems found while matching, kept with the number of pairs matched before them."""

    def __init__(self, held: deque[tuple[int, str, str]]) -> None:
        super().__init__(strict=False)
        self.held = held
        self.position = 0

    def add(self, sample: str, message: str) -> None:
        self.held.append((self.position, sample, message))


def _num(x: float) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


# ---- printing


def _pct(x: Any) -> str:
    return "-" if x is None or (isinstance(x, float) and x < 0) else f"{100 * x:.2f}"


def _semantic_table(r: dict[str, Any]) -> Table:
    t = Table(box=box.SIMPLE, show_edge=False, title_justify="left")
    t.title = (
        f"mIoU {_pct(r['miou'])}  Dice {_pct(r['mean_dice'])}  pixel acc "
        f"{_pct(r['pixel_accuracy'])}  boundary F {_pct(r['boundary_f'])}  ({r['images']} images)"
    )
    for col in ("id", "class", "IoU", "Dice", "acc", "BF"):
        t.add_column(col, justify="left" if col == "class" else "right")
    for c in r["classes"]:
        t.add_row(
            str(c["train_id"]),
            escape(c["name"]),
            *(_pct(c[k]) for k in ("iou", "dice", "accuracy", "boundary_f")),
        )
    return t


def _panoptic_table(r: dict[str, Any]) -> Table:
    t = Table(box=box.SIMPLE, show_edge=False, title=f"{r['images']} images", title_justify="left")
    for col in ("", "PQ", "SQ", "RQ", "n"):
        t.add_column(col, justify="left" if not col else "right")
    for name in ("all", "things", "stuff"):
        avg = r[name]
        t.add_row(name, _pct(avg["pq"]), _pct(avg["sq"]), _pct(avg["rq"]), str(avg["n"]))
    return t


def _print(task: Task, result: dict[str, Any]) -> None:
    out = _stdout()
    if task == "semantic":
        out.print(_semantic_table(result))
    elif task == "instance":
        out.print(result["summary"], highlight=False)
    else:
        out.print(_panoptic_table(result))
    for p in result["problems"][:20]:
        out.print(f"problem: sample {escape(p['sample'])}: {escape(p['message'])}")
    if len(result["problems"]) > 20:
        out.print(f"... and {len(result['problems']) - 20} more problems (see the json)")


@app.command("eval")
def eval_(
    ctx: typer.Context,
    gt: Annotated[str, typer.Argument(help="Ground truth: a dataset path, or DATASET:VERSION.")],
    pred: Annotated[Path, typer.Argument(exists=True, help="Predictions: a dataset path.")],
    task: Annotated[Task, typer.Option("--task", help="What to score.")] = "semantic",
    source_format: SourceFormat = None,
    pred_format: Annotated[
        str | None, typer.Option("--pred-from", help="PRED's format; detected when not given.")
    ] = None,
    labels: LabelsFile = None,
    out: OutFile = Path("masklab-eval.json"),
    strict: Strict = False,
    home: Home = None,
    workers: Workers = None,
    engine: EngineOption = "local",
    ray_address: RayAddress = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result json.")] = False,
) -> None:
    """Score predictions against ground truth: mIoU, COCO mask AP or PQ."""
    problems = EvalProblems(strict)
    with _reported(ctx), _engine(engine, ray_address) as cpus:
        gt_reader = _open_gt(gt, source_format, _load_labels(labels), home)
        pred_reader = _open_pred(pred.resolve(), pred_format, gt, gt_reader.labels)
        if workers is None and cpus is not None:
            workers = cpus
        if workers is None:
            known = operator.length_hint(gt_reader, -1)
            workers = auto_workers(None if known < 0 else known, per_worker=PAIRS_PER_WORKER)
        if task == "semantic":
            result = _semantic(gt_reader, pred_reader, problems, workers)
        elif task == "instance":
            result = _instance(gt_reader, pred_reader, gt, pred.resolve(), problems)
        else:
            result = _panoptic(gt_reader, pred_reader, problems, workers)
        for reader, side in ((gt_reader, "ground truth"), (pred_reader, "prediction")):
            for p in reader.report.problems:
                problems.items.append({"sample": str(p.record), "message": f"{side}: {p.message}"})
        doc = {"task": task, "gt": gt, "pred": str(pred), **result, "problems": problems.items}
        out.write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n")
    if json_out:
        _stdout().print_json(data=doc)
    else:
        _print(task, doc)
        _stdout().print(f"wrote {escape(str(out))}", highlight=False)
