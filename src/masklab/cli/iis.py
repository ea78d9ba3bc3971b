"""``masklab iis``: evaluate interactive segmentation models by the standard click protocol.

``masklab iis evaluate --dataset KIND:PATH --model NAME`` runs
:func:`masklab.iis.loop.evaluate` (reference/iis.md §1.3: RITM's robot, threshold 0.49, up to
20 clicks, early stop at the highest ``--iou`` unless ``--all-clicks``), prints the NoC / NoF
table and writes, under ``--out DIR``:

* ``samples.jsonl``: one json per sample: clicks ``[row, col, positive]``, IoU after each
  click, NoC per threshold, seconds per click (whole and model only), load / set-up seconds,
  and the sample's plain info (ids, file and target hashes);
* ``summary.json``: the run's settings and :class:`masklab.iis.metrics.IISResult` as a dict,
  plus ``miou_curve_held`` (mIoU after each click, a run that stopped early keeping its last
  IoU; with ``--all-clicks`` this is the plain mIoU curve);
* ``miou.png``: that curve, drawn with OpenCV.

``masklab iis compare DIR...`` tables several runs' ``summary.json`` side by side (and plots
their curves together with ``--plot FILE``).

NoF is RITM's count of samples with ``NoC == max clicks``; ``never`` counts those that never
reached the threshold (iis.md §1.5). SPC is the whole loop's wall time per click run with one
worker; with ``--workers N > 1`` the samples run in N processes and SPC is the sum of the
samples' own times (load + set-up + clicks) per click (``summary.json`` says ``workers``).
Every other number, and ``samples.jsonl`` but its timings, is the same for any N. The
default is every core for the built-in models (each worker opens the dataset and builds the
model itself); a ``module:callable`` model runs in one process unless ``--workers`` says
otherwise, since it may hold a GPU or threads of its own.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import cv2
import numpy as np
import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from masklab import __version__
from masklab.cli.app import (
    EngineOption,
    JsonOut,
    RayAddress,
    _engine,
    _progress,
    _reported,
    _stdout,
    app,
)
from masklab.errors import MaskLabError

iis_app = typer.Typer(
    no_args_is_help=True,
    help="Interactive segmentation: evaluate click-driven models (NoC/NoF, mIoU per click).",
)
app.add_typer(iis_app, name="iis")

SUMMARY = "summary.json"
SAMPLES = "samples.jsonl"
PLOT = "miou.png"
KS_SHOWN = (1, 5, 20)  # mIoU@k columns of the table (summary.json has every k)


def _thresholds(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise typer.BadParameter(f"{text!r}: write IoU thresholds like 0.85,0.90") from None
    if not values or not all(0.0 < v <= 1.0 for v in values):
        raise typer.BadParameter(f"{text!r}: thresholds are IoUs in (0, 1], like 0.85,0.90")
    return sorted(set(values))


def _key(threshold: float) -> str:
    return f"{round(threshold * 100, 6):g}"


# ---- evaluate


@iis_app.command("evaluate")
def evaluate_cmd(
    ctx: typer.Context,
    dataset: Annotated[
        str,
        typer.Option(
            "--dataset",
            help="KIND:PATH: grabcut, berkeley, davis, coco-mval, store:DATASET:VERSION or a "
            "format name (coco:FILE ...); a bare path is detected.",
        ),
    ],
    model: Annotated[
        str,
        typer.Option(
            "--model", help="graphcut, random-walker, perfect, empty, or module:callable."
        ),
    ],
    robot: Annotated[
        str,
        typer.Option(
            "--robot",
            help="The clicking robot: ritm, center_largest_false, random_largest_false, "
            "random_false, random.",
        ),
    ] = "ritm",
    max_clicks: Annotated[int, typer.Option("--max-clicks", min=1, help="Click budget.")] = 20,
    iou: Annotated[
        str, typer.Option("--iou", help="NoC thresholds; the run stops at the highest.")
    ] = "0.85,0.90",
    threshold: Annotated[
        float, typer.Option("--threshold", help="Probability threshold (strict >).")
    ] = 0.49,
    all_clicks: Annotated[
        bool, typer.Option("--all-clicks", help="Run every click (exact mIoU@k).")
    ] = False,
    selector: Annotated[
        str | None,
        typer.Option(
            "--selector",
            help=r"Region selector for format/store datasets \[default: whole].",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of targets and robots.")] = 0,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Evaluate the first N samples only.")
    ] = None,
    out: Annotated[Path, typer.Option("--out", file_okay=False, help="Output folder.")] = Path(
        "masklab-iis"
    ),
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help=r"Processes to click in \[default: every core for built-in models, "
            r"1 for module:callable; with --engine ray, the cluster's CPUs].",
            show_default=False,
        ),
    ] = None,
    engine: EngineOption = "local",
    ray_address: RayAddress = None,
    json_out: JsonOut = False,
) -> None:
    """Click a model through a dataset; print NoC/NoF, write per-sample json and a plot."""
    from masklab._workers import auto_workers
    from masklab.iis.loop import MODELS, IISModel, evaluate, load_model
    from masklab.iis.robots import get_robot

    thresholds = _thresholds(iou)
    with _reported(ctx), _engine(engine, ray_address) as cpus:
        try:
            robot_fn = get_robot(robot)
            ds = _Opened(dataset, selector, seed)
        except ValueError as err:
            raise MaskLabError(str(err)) from err
        n = len(ds) if limit is None else min(limit, len(ds))
        if workers is None:
            if cpus is not None:
                workers = cpus
            else:
                workers = auto_workers(n, per_worker=_SAMPLES_PER_WORKER) if model in MODELS else 1
        workers = min(workers, n)
        # one process: the model built here; several (or Ray): each worker builds its own
        here = workers == 1 and cpus is None
        net: IISModel | str = load_model(model) if here else model
        with _progress("clicking") as bar:
            task = bar.add_task("clicking", total=n)
            result = evaluate(
                ds,
                net,
                robot_fn,
                max_clicks=max_clicks,
                thresholds=thresholds,
                threshold=threshold,
                all_clicks=all_clicks,
                seed=seed,
                indices=range(n),
                progress=lambda done, total: bar.update(task, completed=done),
                workers=workers,
            )
        out.mkdir(parents=True, exist_ok=True)
        with (out / SAMPLES).open("w") as f:
            for rec in result.records:
                f.write(json.dumps(rec.to_dict(), allow_nan=False) + "\n")
        doc: dict[str, Any] = {
            "dataset": dataset,
            "model": model,
            "robot": robot,
            "selector": selector or "whole",
            "all_clicks": all_clicks,
            **result.config,
            "workers": workers,
            "engine": engine,
            "masklab_version": __version__,
            "summary": result.summary.to_dict(),
            "miou_curve_held": result.miou_curve_held(),
        }
        (out / SUMMARY).write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n")
        label = f"{model} on {dataset}"
        _plot([(label, doc["miou_curve_held"])], out / PLOT, title=_plot_title(all_clicks))
    if json_out:
        _stdout().print_json(data=doc)
        return
    _stdout().print(_describe(doc), highlight=False, markup=False)
    _stdout().print(_runs_table([(model, doc)]))
    _stdout().print(f"wrote {escape(str(out))}/{{{SUMMARY},{SAMPLES},{PLOT}}}", highlight=False)


_SAMPLES_PER_WORKER = 4  # the default starts no more workers than samples / 4


class _Opened:
    """The evaluation dataset ``open_dataset(spec)`` gives (the union of objects, or
    ``selector``'s regions), opened on first use in each process: it pickles as its spec,
    so every worker re-opens the dataset (a store version, a format's annotations) itself
    instead of receiving its samples."""

    def __init__(self, spec: str, selector: str | None, seed: int) -> None:
        self.spec, self.selector, self.seed = spec, selector, seed
        self._ds: Any = None
        self._open()

    def _open(self) -> Any:
        if self._ds is None:
            from masklab.iis.datasets import EvaluationDataset, SegDataset, open_dataset
            from masklab.iis.regions import get_selector, whole

            select = None if self.selector is None else get_selector(self.selector)
            ds = open_dataset(self.spec, selector=select, seed=self.seed)
            self._ds = (
                EvaluationDataset(ds, whole, seed=self.seed) if isinstance(ds, SegDataset) else ds
            )
        return self._ds

    def __len__(self) -> int:
        return len(self._open())

    def __getitem__(self, i: int) -> Any:
        return self._open()[i]

    def __getstate__(self) -> tuple[str, str | None, int]:
        return self.spec, self.selector, self.seed

    def __setstate__(self, state: tuple[str, str | None, int]) -> None:
        self.spec, self.selector, self.seed = state
        self._ds = None


def _plot_title(all_clicks: bool) -> str:
    return "mIoU per click" + ("" if all_clicks else " (IoU held after early stop)")


# ---- compare


@iis_app.command("compare")
def compare_cmd(
    ctx: typer.Context,
    runs: Annotated[
        list[Path], typer.Argument(exists=True, file_okay=False, help="Output folders of runs.")
    ],
    plot: Annotated[
        Path | None, typer.Option("--plot", dir_okay=False, help="Plot the curves to a PNG.")
    ] = None,
    json_out: JsonOut = False,
) -> None:
    """Table several ``masklab iis evaluate`` runs side by side."""
    with _reported(ctx):
        docs = [(run.resolve().name, _read_summary(run)) for run in runs]
        if plot is not None:
            held = all(bool(d.get("all_clicks")) for _, d in docs)
            curves = [(f"{d['model']} ({name})", list(d["miou_curve_held"])) for name, d in docs]
            _plot(curves, plot, title=_plot_title(held))
    if json_out:
        _stdout().print_json(data={str(run): doc for run, (_, doc) in zip(runs, docs, strict=True)})
        return
    for name, doc in docs:
        _stdout().print(f"{name}: {_describe(doc)}", highlight=False, markup=False)
    _stdout().print(_runs_table(docs))
    if plot is not None:
        _stdout().print(f"wrote {escape(str(plot))}", highlight=False)


def _read_summary(run: Path) -> dict[str, Any]:
    path = run / SUMMARY
    if not path.is_file():
        raise MaskLabError(f"{run}: no {SUMMARY}; give folders written by masklab iis evaluate")
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise MaskLabError(f"{path}: not valid json ({err})") from err
    if not isinstance(doc, dict) or "summary" not in doc or "miou_curve_held" not in doc:
        raise MaskLabError(f"{path}: not a masklab iis summary (no 'summary' key)")
    return doc


# ---- printing


def _fmt(x: Any, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _describe(d: dict[str, Any]) -> str:
    stop = "all clicks" if d.get("all_clicks") else f"stop at IoU {d.get('target_iou')}"
    return (
        f"{d['model']} on {d['dataset']}: {d['summary']['n_samples']} samples, robot "
        f"{d['robot']}, max {d['summary']['max_clicks']} clicks, {stop}"
    )


def _runs_table(docs: Sequence[tuple[str, dict[str, Any]]]) -> Table:
    """One row per run: NoC and NoF per threshold, mIoU@k (held curve), SPC; fits 80 columns
    with two thresholds."""
    keys = sorted({k for _, d in docs for k in d["summary"]["noc"]}, key=float)
    table = Table(box=box.SIMPLE, show_edge=False, padding=(0, 1), collapse_padding=True)
    table.caption_justify = "left"
    table.caption = "NoF: samples with NoC = max clicks (in brackets: never reached)"
    table.add_column("run", overflow="fold")
    table.add_column("n", justify="right")
    for k in keys:
        table.add_column(f"NoC@{k}", justify="right")
    for k in keys:
        table.add_column(f"NoF@{k}", justify="right")
    ks = [k for k in KS_SHOWN if any(k <= len(d["miou_curve_held"]) for _, d in docs)]
    for k in ks:
        table.add_column(f"mIoU\n@{k}", justify="right")
    table.add_column("SPC\n(s)", justify="right")
    for name, d in docs:
        s = d["summary"]
        curve = d["miou_curve_held"]
        row = [escape(name), str(s["n_samples"])]
        row += [_fmt(s["noc"].get(k)) for k in keys]
        row += ["-" if k not in s["nof"] else f"{s['nof'][k]} ({s['nof_never'][k]})" for k in keys]
        row += [_fmt(100 * curve[k - 1], 1) if k <= len(curve) else "-" for k in ks]
        row.append(_fmt(s.get("spc"), 3))
        table.add_row(*row)
    return table


# ---- the plot (OpenCV, no matplotlib)

_COLORS = [(180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148)]
_COLORS += [(75, 86, 140), (194, 119, 227), (127, 127, 127), (34, 189, 188), (207, 190, 23)]


def _plot(curves: Sequence[tuple[str, Sequence[float]]], path: Path, *, title: str) -> None:
    """mIoU (y, %) against clicks (x, 1..K) for each curve, as a PNG."""
    w, h = 760, 480
    left, right, top, bottom = 64, 24, 40, 52
    img = np.full((h, w, 3), 255, np.uint8)
    k_max = max([len(c) for _, c in curves] + [1])
    values = [v for _, c in curves for v in c]
    lo = min(0.9, np.floor(min(values, default=0.0) * 10) / 10)
    hi = 1.0
    font = cv2.FONT_HERSHEY_SIMPLEX

    def xy(k: float, v: float) -> tuple[int, int]:
        x = left + (k - 1) / max(k_max - 1, 1) * (w - left - right)
        y = top + (hi - v) / max(hi - lo, 1e-9) * (h - top - bottom)
        return round(x), round(y)

    step = 0.05 if hi - lo <= 0.3 else 0.1
    for v in np.arange(lo, hi + 1e-9, step):
        x0, y0 = xy(1, float(v))
        cv2.line(img, (x0, y0), (w - right, y0), (225, 225, 225), 1)
        cv2.putText(img, f"{100 * v:.0f}", (left - 34, y0 + 5), font, 0.45, (60, 60, 60), 1)
    tick = 1 if k_max <= 20 else 5
    for k in range(1, k_max + 1):
        if k == 1 or k % tick == 0:
            x0, y0 = xy(k, lo)
            cv2.line(img, (x0, y0), (x0, y0 + 4), (60, 60, 60), 1)
            cv2.putText(img, str(k), (x0 - 6, y0 + 20), font, 0.45, (60, 60, 60), 1)
    cv2.rectangle(img, xy(1, hi), xy(k_max, lo), (60, 60, 60), 1)
    cv2.putText(img, title, (left, 26), font, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "clicks", (w // 2 - 20, h - 10), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "mIoU %", (6, top - 8), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    for i, (_, curve) in enumerate(curves):
        color = _COLORS[i % len(_COLORS)]
        pts = np.array([xy(k + 1, v) for k, v in enumerate(curve)], np.int32)
        if len(pts) > 1:
            cv2.polylines(img, [pts], False, color, 2, cv2.LINE_AA)
        for p in pts:
            cv2.circle(img, (int(p[0]), int(p[1])), 3, color, -1, cv2.LINE_AA)
    legend_top = h - bottom - 14 - 20 * len(curves) - 2
    box_tl, box_br = (w - right - 308, legend_top), (w - right - 4, h - bottom - 4)
    cv2.rectangle(img, box_tl, box_br, (255, 255, 255), -1)
    cv2.rectangle(img, box_tl, box_br, (200, 200, 200), 1)
    for i, (label, _) in enumerate(curves):
        color = _COLORS[i % len(_COLORS)]
        ly = h - bottom - 14 - 20 * (len(curves) - 1 - i)
        cv2.line(img, (w - right - 300, ly - 4), (w - right - 276, ly - 4), color, 2)
        text = label if len(label) <= 40 else label[:37] + "..."
        cv2.putText(img, text, (w - right - 270, ly), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), img):
        raise MaskLabError(f"{path}: cannot write the PNG plot")
