"""The ``masklab`` command line: a thin Typer + Rich layer over the library.

Results go to stdout (a Rich table, or exactly one JSON document with ``--json``);
errors go to stderr as ``error: <message>`` with exit code 1, a traceback only with
``masklab --debug ...``. Usage errors exit 2 (Typer's).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from masklab import __version__
from masklab import demo as _demo
from masklab.core.labels import LabelMap
from masklab.errors import LabelMapError, MaskLabError
from masklab.formats.report import ConversionReport

__all__ = ["app", "main"]

# options several commands share, spelled once
SourceFormat = Annotated[
    str | None, typer.Option("--from", help="The format; detected when not given.")
]
LabelsFile = Annotated[Path | None, typer.Option("--labels", exists=True, help="A label map json.")]
Strict = Annotated[bool, typer.Option("--strict", help="Stop at the first problem.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace DST.")]
ReportFile = Annotated[
    Path | None, typer.Option("--report", help="Write the conversion report as json.")
]
JsonOut = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
Engine = Literal["local", "ray"]
EngineOption = Annotated[
    Engine,
    typer.Option(
        "--engine", help='local: processes here; ray: Ray Data (pip install "masklab[ray]").'
    ),
]
RayAddress = Annotated[
    str | None,
    typer.Option("--ray-address", help="Ray cluster to join; default: start a local one."),
]


app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


@dataclass(frozen=True, slots=True)
class _Options:
    debug: bool = False


def _stdout() -> Console:
    return Console(soft_wrap=True)


def _stderr() -> Console:
    return Console(stderr=True, soft_wrap=True, highlight=False)


def _fail(message: str) -> NoReturn:
    _stderr().print(f"error: {escape(message)}")
    raise typer.Exit(1)


@contextmanager
def _engine(engine: Engine, address: str | None) -> Iterator[int | None]:
    """Where the command's per-sample work runs: in local processes (yields None), or on
    Ray Data for the block (yields the cluster's CPUs, the default ``--workers``). A
    missing ``masklab[ray]`` is an ``error:`` line."""
    if engine == "local":
        yield None
        return
    try:
        from masklab.ray import pool
        from masklab.ray._deps import require

        require()
    except ImportError as err:
        _fail(str(err))
    with pool.engine(address):
        yield pool.cluster_cpus()


@contextmanager
def _reported(ctx: typer.Context) -> Iterator[None]:
    """Turn masklab and file-system errors into ``error: ...`` and exit 1 (unless --debug)."""
    try:
        yield
    except (MaskLabError, OSError) as err:
        options = ctx.find_object(_Options)
        if options is not None and options.debug:
            raise
        if isinstance(err, OSError) and err.strerror and err.filename:
            _fail(f"{err.filename}: {err.strerror}")
        _fail(str(err))


def _version(value: bool) -> None:
    if value:
        _stdout().print(f"masklab {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _main(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an error.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """masklab: exact COCO RLE masks and COCO-exact polygons for image segmentation."""
    ctx.obj = _Options(debug=debug)


def _home() -> Path:
    """``$MASKLAB_HOME``, ``./.masklab`` when unset (the demo's default)."""
    return Path(os.environ.get("MASKLAB_HOME") or ".masklab")


def _yes_no(value: bool | None) -> str:
    return "n/a" if value is None else ("yes" if value else "[bold red]NO[/]")


def _demo_table(result: _demo.DemoResult) -> Table:
    """Per-image rows with the totals as footer; fits 80 columns."""
    columns = {
        "image": "total",
        "instances": str(result.instances),
        "holes": str(result.holes),
        "multi-\npart": str(result.multi_part),
        "rle\nbytes": str(result.rle_bytes),
        "polygon\nvertices": str(result.polygon_vertices),
        "exact\nrle": _yes_no(result.exact_rle),
        "exact\npolygons": _yes_no(result.exact_polygons),
        "pycocotools\nagrees": _yes_no(result.pycocotools_agrees),
    }
    table = Table(
        title=f"masklab demo (seed {result.seed})",
        title_justify="left",
        box=box.SIMPLE,
        padding=(0, 0),
        show_edge=False,
        show_footer=True,
    )
    for header, footer in columns.items():
        table.add_column(header, footer=footer, justify="left" if header == "image" else "right")
    for i in result.images:
        table.add_row(
            escape(i.file),
            str(i.instances),
            str(i.holes),
            str(i.multi_part),
            str(i.rle_bytes),
            str(i.polygon_vertices),
            _yes_no(i.exact_rle),
            _yes_no(i.exact_polygons),
            _yes_no(i.pycocotools_agrees),
        )
    return table


def _conversions_table(result: _demo.DemoResult) -> Table:
    """The RLE json converted to other formats: what each kept and what it reported."""
    table = Table(
        title=f"instances_rle.json converted (into {_demo.CONVERTED_DIR}/<format>)",
        title_justify="left",
        box=box.SIMPLE,
        padding=(0, 1),
        show_edge=False,
    )
    for col in ("format", "images", "instances", "exact", "reported losses"):
        table.add_column(col, justify="left" if col in ("format", "reported losses") else "right")
    for c in result.conversions:
        losses = ", ".join(f"{n} {what}" for what, n in sorted(c.losses.items())) or "none"
        table.add_row(c.target, str(c.samples), str(c.instances), str(c.exact), losses)
    return table


def _verdict(result: _demo.DemoResult) -> str:
    coco = (
        f"pycocotools {result.pycocotools_version} agrees"
        if result.pycocotools_version is not None
        else "pycocotools not installed, not cross-checked"
    )
    return (
        f"ok: {result.instances} instances ({result.holes} with holes, {result.multi_part} "
        f"in several parts) read back pixel-exact from RLE and polygon json; {coco}; "
        f"files in {escape(str(result.out_dir))}"
    )


@app.command()
def demo(
    ctx: typer.Context,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="DIR",
            file_okay=False,
            resolve_path=True,
            help=(
                r"Output folder \[default: $MASKLAB_HOME/demo; MASKLAB_HOME defaults to "
                "./.masklab]."
            ),
            show_default=False,
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic scenes.")] = 0,
    json_out: JsonOut = False,
) -> None:
    """Draw synthetic scenes, write COCO RLE and polygon json, check both read back exactly,
    then version them in the embedded store, diff two versions and export one."""
    from masklab.cli.store import diff_table
    from masklab.demo_store import run_store_demo

    out_dir = out if out is not None else (_home() / "demo").resolve()
    home = _home().resolve()
    with _reported(ctx):
        result = _demo.run_demo(out_dir, seed=seed)
        stored = run_store_demo(home, out_dir / _demo.RLE_FILE, out_dir)
    problems = [*result.problems, *stored.problems]
    if json_out:
        _stdout().print_json(
            data={
                **result.to_dict(),
                "store": {
                    "store": stored.store,
                    "versions": [stored.v1, stored.v2],
                    "frames": stored.frames,
                    "annotations": stored.annotations,
                    "diff": stored.diff.to_dict(),
                    "exports": stored.exports,
                    "problems": list(stored.problems),
                },
            }
        )
    else:
        stdout = _stdout()
        stdout.print(_demo_table(result))
        stdout.print(_conversions_table(result))
        stdout.print(
            f"store: imported {stored.frames} frames, {stored.annotations} annotations as "
            f"{stored.v1} (published); {stored.v2} moves a mask, drops one, renames a class",
            highlight=False,
        )
        stdout.print(f"$ masklab diff {stored.v1} {stored.v2}", highlight=False)
        stdout.print(diff_table(stored.diff))
        for fmt, folder in stored.exports.items():
            stdout.print(f"exported {stored.v2} to {fmt}: {escape(folder)}", highlight=False)
        if not problems:
            stdout.print(
                f"browse the store: MASKLAB_HOME={escape(str(home))} masklab versions demo",
                highlight=False,
            )
            stdout.print(_verdict(result), highlight=False)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        _fail(f"demo check failed: {problems[0]}{more}")


def _progress(what: str) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn(what),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_stderr(),
        transient=True,
    )


def _length(reader: Any) -> int | None:
    """The reader's sample count when it can tell cheaply (for the progress bar)."""
    try:
        return len(reader)
    except TypeError:
        return None


def _load_labels(path: Path | None) -> LabelMap | None:
    """A LabelMap json ({"labels": [...]}) or ClearML mask_labels ({"r,g,b": [names]})."""
    if path is None:
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise LabelMapError(f"{path}: cannot read the label map: {err}") from err
    if isinstance(data, dict) and "labels" in data:
        return LabelMap.from_dict(data)
    if isinstance(data, dict) and "mask_labels" in data:
        data = data["mask_labels"]
    if not isinstance(data, dict):
        raise LabelMapError(f"{path}: a label map is a json object")
    parsed: dict[Any, Any] = {}
    for key, names in data.items():
        parts = [int(v) for v in str(key).strip("[]() ").replace(",", " ").split()]
        parsed[tuple(parts) if len(parts) > 1 else parts[0]] = names
    return LabelMap.from_mask_labels(parsed)


def _options(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--option")
        out[key.replace("-", "_")] = _parse_value(value)
    return out


def _parse_value(value: str) -> Any:
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(value.lower(), value)


@app.command()
def info(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(exists=True, resolve_path=True, help="File or folder.")],
    source_format: SourceFormat = None,
    labels: LabelsFile = None,
    json_out: JsonOut = False,
) -> None:
    """Describe a dataset: format, images, instances, classes, mask sizes, problems."""
    from masklab.formats import open_reader
    from masklab.formats.summary import summarize

    with _reported(ctx):
        reader = open_reader(path, source_format, labels=_load_labels(labels))
        with _progress("reading") as bar:
            task = bar.add_task("read", total=_length(reader))
            summary = summarize(reader, progress=lambda n: bar.advance(task, n))
    if json_out:
        _stdout().print_json(data=summary.to_dict())
        return
    out = _stdout()
    out.print(
        f"{escape(summary.path)}: [bold]{summary.format}[/], {summary.images} images, "
        f"{summary.instances} instances ({summary.crowd} crowd, {summary.empty_masks} empty), "
        f"{summary.semantic_maps} class maps, {summary.alpha_masks} alpha masks",
        highlight=False,
    )
    table = Table(box=box.SIMPLE, show_edge=False)
    for col in ("id", "class", "instances", "pixels"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for c in sorted(summary.classes.values(), key=lambda c: c.id):
        table.add_row(str(c.id), escape(c.name), str(c.instances), str(c.pixels))
    out.print(table)
    sizes = ", ".join(f"{h}x{w} ({n})" for (h, w), n in summary.sizes.most_common(5))
    out.print(f"mask sizes (h x w): {sizes or '-'}", highlight=False)
    _print_problems(out, summary.report)


def _print_problems(out: Console, report: Any) -> None:
    for color, n in report.unknown_colors.most_common(10):
        out.print(f"unknown colour {color}: {n} px", highlight=False)
    for p in report.problems[:20]:
        out.print(f"problem: {escape(p.path)} record {p.record}: {escape(p.message)}")
    if len(report.problems) > 20:
        out.print(f"... and {len(report.problems) - 20} more problems (see --json)")


CONVERT_PER_WORKER = 64  # the default starts no more workers than samples / 64


@app.command()
def convert(
    ctx: typer.Context,
    src: Annotated[Path, typer.Argument(exists=True, resolve_path=True, help="Source dataset.")],
    dst: Annotated[Path, typer.Argument(resolve_path=True, help="Where to write.")],
    to: Annotated[str, typer.Option("--to", help="Target format.")],
    source_format: Annotated[
        str | None, typer.Option("--from", help="Source format; detected when not given.")
    ] = None,
    labels: LabelsFile = None,
    strict: Strict = False,
    report_file: ReportFile = None,
    mask_encoding: Annotated[
        str | None, typer.Option("--mask-encoding", help="COCO: polygon, rle or auto.")
    ] = None,
    overwrite: Overwrite = False,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help=r"Processes that decode and encode \[default: every core, one per "
            f"{CONVERT_PER_WORKER} samples at most]; 1: this process only. The output is "
            "the same for any number.",
            show_default=False,
        ),
    ] = None,
    option: Annotated[
        list[str] | None, typer.Option("--option", "-o", help="Writer option KEY=VALUE.")
    ] = None,
    read_option: Annotated[
        list[str] | None,
        typer.Option("--read-option", "-r", help="Reader option KEY=VALUE (e.g. gt=FILE)."),
    ] = None,
    engine: EngineOption = "local",
    ray_address: RayAddress = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Convert a dataset to another format and report what the conversion kept."""
    from masklab import formats
    from masklab._workers import auto_workers

    with _reported(ctx):
        opts = _options(option or [])
        if mask_encoding is not None:
            opts["mask_encoding"] = mask_encoding
        label_map = _load_labels(labels)
        reader = formats.open_reader(
            src, source_format, labels=label_map, strict=strict, **_options(read_option or [])
        )
        total = _length(reader)
        with _progress("converting") as bar:
            task = bar.add_task("convert", total=total)
            common: dict[str, Any] = {
                "to": to,
                "labels": label_map,
                "strict": strict,
                "overwrite": overwrite,
                "progress": lambda n: bar.advance(task, n),
                **opts,
            }
            if engine == "ray":  # workers None: the cluster's CPUs
                report = _convert_on_ray(
                    reader, dst, address=ray_address, workers=workers, **common
                )
            else:
                if workers is None:
                    workers = auto_workers(total, per_worker=CONVERT_PER_WORKER)
                report = formats.convert(reader, dst, workers=workers, **common)
    headline = (
        f"{report.source} -> {report.target}: {report.samples} images, {report.instances} "
        f"instances, {report.exact} written pixel-exact; written to {escape(str(dst))}"
    )
    show_report(report, headline, report_file=report_file, json_out=json_out)


def _convert_on_ray(reader: Any, dst: Path, **kwargs: Any) -> ConversionReport:
    """``masklab.ray.engine.convert``; a missing ``masklab[ray]`` is an ``error:`` line."""
    try:
        from masklab.ray.engine import convert as ray_convert

        return ray_convert(reader, dst, **kwargs)
    except ImportError as err:
        _fail(str(err))


def show_report(
    report: ConversionReport, headline: str, *, report_file: Path | None, json_out: bool
) -> None:
    """Print a conversion report (a headline, the losses, the problems; or JSON), and
    write it to ``report_file`` when given."""
    if report_file is not None:
        report_file.write_text(json.dumps(report.to_dict(), indent=1))
    if json_out:
        _stdout().print_json(data=report.to_dict())
        return
    out = _stdout()
    out.print(headline, highlight=False)
    counts = report.loss_counts()
    if counts:
        table = Table("what the target could not hold", "instances", box=box.SIMPLE)
        for what, n in sorted(counts.items()):
            table.add_row(what, str(n))
        out.print(table)
    _print_problems(out, report)
    if report.problems or counts or report.unknown_colors:
        _stderr().print(
            f"{len(report.problems)} problems, {sum(counts.values())} losses"
            + (f"; details in {report_file}" if report_file else "; --report FILE for details"),
            highlight=False,
        )


def main() -> None:
    """Entry point of the ``masklab`` console script."""
    app()
