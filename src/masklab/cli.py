"""The ``masklab`` command line: a thin Typer + Rich layer over the library.

Results go to stdout (a Rich table, or exactly one JSON document with ``--json``);
errors go to stderr as ``error: <message>`` with exit code 1, a traceback only with
``masklab --debug ...``. Usage errors exit 2 (Typer's).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from masklab import __version__
from masklab import demo as _demo
from masklab.errors import MaskLabError

__all__ = ["app", "main"]

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
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Draw synthetic scenes, write COCO RLE and polygon json, check both read back exactly."""
    out_dir = out if out is not None else (_home() / "demo").resolve()
    with _reported(ctx):
        result = _demo.run_demo(out_dir, seed=seed)
    if json_out:
        _stdout().print_json(data=result.to_dict())
    else:
        stdout = _stdout()
        stdout.print(_demo_table(result))
        if result.ok:
            stdout.print(_verdict(result), highlight=False)
    if not result.ok:
        more = f" (and {len(result.problems) - 1} more)" if len(result.problems) > 1 else ""
        _fail(f"demo check failed: {result.problems[0]}{more}")


def main() -> None:
    """Entry point of the ``masklab`` console script."""
    app()
