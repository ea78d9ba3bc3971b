"""Store commands: import, export, datasets, versions, diff, frames, publish.

The store is ``$MASKLAB_HOME`` (``~/.masklab`` when unset) or ``--home DIR``; ``MASKLAB_CATALOG``
and ``MASKLAB_BLOBS`` point the catalog at PostgreSQL and the blobs at S3.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from masklab.cli.app import (
    EngineOption,
    JsonOut,
    LabelsFile,
    Overwrite,
    RayAddress,
    ReportFile,
    SourceFormat,
    Strict,
    _engine,
    _load_labels,
    _print_problems,
    _progress,
    _reported,
    _stderr,
    _stdout,
    app,
    show_report,
)

if TYPE_CHECKING:
    from masklab.store import Store, Version
    from masklab.store.diff import VersionDiff

Home = Annotated[
    Path | None,
    typer.Option(
        "--home",
        metavar="DIR",
        file_okay=False,
        help=r"The store's folder \[default: $MASKLAB_HOME, else ~/.masklab].",
        show_default=False,
    ),
]
JsonOut = JsonOut
Where = Annotated[
    str | None,
    typer.Option(
        "--where",
        help="Filter frames, e.g. 'label=cat and area=100..5000 and meta.split=train'.",
    ),
]


WithBlobs = Annotated[
    bool,
    typer.Option(
        "--with-blobs/--no-blobs",
        help="--to parquet: copy the images and mask PNGs into DST/blobs (a portable export).",
    ),
]


def open_store(home: Path | None) -> Store:
    """The store at ``home`` (or the environment's)."""
    from masklab.store import Store

    return Store(home=home)


def _version_of(store: Store, ref: str, base: str | None = None) -> Version:
    """``DATASET:VERSION`` or ``DATASET``; a bare ``VERSION`` in the dataset of ``base``."""
    if ":" not in ref and base is not None:
        try:
            store.dataset(ref)
        except KeyError:
            return store.dataset(base.partition(":")[0]).version(ref)
    return store.version(ref)


def _frames_of(version: Version, where: str | None) -> Any:
    if not where:
        return None
    from masklab.store.query import DataView, parse_where

    return DataView(version).where(**parse_where(where))


@app.command("import")
def import_(
    ctx: typer.Context,
    path: Annotated[
        Path, typer.Argument(exists=True, resolve_path=True, help="Dataset to import.")
    ],
    dataset: Annotated[str, typer.Option("--dataset", help="Dataset name (created if new).")],
    version: Annotated[
        str | None, typer.Option("--version", help="New version's name [default: vN].")
    ] = None,
    parent: Annotated[
        str | None, typer.Option("--parent", help="Start from this version's frames.")
    ] = None,
    source_format: SourceFormat = None,
    labels: LabelsFile = None,
    ingest: Annotated[
        bool, typer.Option("--ingest", help="Copy images into the store's blobs.")
    ] = False,
    strict: Strict = False,
    home: Home = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help=r"Processes that build frames \[default: every core, one per 32 samples "
            "at most; with --engine ray, the cluster's CPUs].",
            show_default=False,
        ),
    ] = None,
    engine: EngineOption = "local",
    ray_address: RayAddress = None,
    json_out: JsonOut = False,
) -> None:
    """Import a dataset in any readable format, or a `--to parquet` export, as a new
    version (all or nothing)."""
    if _is_parquet_import(path, source_format):
        _local_only(engine, "a Parquet import")
        _import_parquet(ctx, path, dataset, version, parent, strict, home, json_out)
        return
    import operator

    from masklab._workers import auto_workers
    from masklab.formats import open_reader
    from masklab.store.importer import import_path

    with _reported(ctx), _engine(engine, ray_address) as cpus:
        store = open_store(home)
        reader = open_reader(path, source_format, labels=_load_labels(labels), strict=strict)
        if workers is None and cpus is not None:
            workers = cpus
        if workers is None:
            known = operator.length_hint(reader, -1)
            workers = auto_workers(None if known < 0 else known, per_worker=32)
        with _progress("importing") as bar:
            task = bar.add_task("import", total=None)
            result = import_path(
                store,
                reader,
                dataset=dataset,
                version=version,
                parent=parent,
                strict=strict,
                ingest=ingest,
                progress=lambda n: bar.advance(task, n),
                workers=workers,
            )
    _show_import(result, json_out)


@app.command()
def export(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="DATASET[:VERSION]", help="What to export.")],
    dst: Annotated[Path, typer.Argument(resolve_path=True, help="Where to write.")],
    to: Annotated[str, typer.Option("--to", help="Target format.")],
    where: Where = None,
    strict: Strict = False,
    overwrite: Overwrite = False,
    report_file: ReportFile = None,
    with_blobs: WithBlobs = True,
    home: Home = None,
    json_out: JsonOut = False,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help=r"Processes that encode the frames \[default: every core, one per 64 "
            "frames at most; with --engine ray, the cluster's CPUs]; 1: this process only. "
            "The output is the same for any number.",
            show_default=False,
        ),
    ] = None,
    engine: EngineOption = "local",
    ray_address: RayAddress = None,
) -> None:
    """Export a version (or the frames --where selects) to any writable format, or to
    Parquet (`--to parquet`: frames and annotations tables, losslessly re-importable)."""
    if to == "parquet":
        _local_only(engine, "a Parquet export")
        _export_parquet(
            ctx, ref, dst, where, with_blobs, strict, overwrite, report_file, home, json_out
        )
        return
    from masklab._workers import auto_workers
    from masklab.store.exporter import export_version

    with _reported(ctx), _engine(engine, ray_address) as cpus:
        store = open_store(home)
        v = store.version(ref)
        frames = _frames_of(v, where)
        if workers is None and cpus is not None:
            workers = cpus
        if workers is None:
            workers = auto_workers(v.frame_count if frames is None else None, per_worker=64)
        with _progress("exporting") as bar:
            task = bar.add_task("export", total=v.frame_count if frames is None else None)
            report = export_version(
                v,
                dst,
                to=to,
                frames=frames,
                strict=strict,
                overwrite=overwrite,
                progress=lambda n: bar.advance(task, n),
                workers=workers,
            )
    headline = (
        f"{escape(v.ref)} -> {to}: {report.samples} frames, {report.instances} instances, "
        f"{report.exact} written pixel-exact; written to {escape(str(dst))}"
    )
    show_report(report, headline, report_file=report_file, json_out=json_out)


def _show_import(result: Any, json_out: bool) -> None:
    """Print what an import made (JSON with ``--json``) and the problems it reported."""
    if json_out:
        _stdout().print_json(data={**result.to_dict(), "report": result.report.to_dict()})
        return
    out = _stdout()
    out.print(
        f"imported {result.frames} frames, {result.annotations} annotations into "
        f"[bold]{escape(result.version)}[/] in {result.seconds:.1f} s",
        highlight=False,
    )
    _print_problems(out, result.report)


def _local_only(engine: str, what: str) -> None:
    """Say that ``--engine ray`` does not apply (the command still runs, here)."""
    if engine == "ray":
        _stderr().print(
            f"note: {what} runs in this process (one table write, no per-sample work to "
            "spread); --engine ray is ignored"
        )


@app.command()
def datasets(ctx: typer.Context, home: Home = None, json_out: JsonOut = False) -> None:
    """List the store's datasets."""
    with _reported(ctx):
        store = open_store(home)
        rows: list[dict[str, Any]] = []
        for ds in store.datasets():
            vs = ds.versions()
            rows.append(
                {
                    "name": ds.name,
                    "description": ds.description,
                    "versions": len(vs),
                    "latest": vs[-1].name if vs else None,
                    "frames": vs[-1].frame_count if vs else 0,
                    "created_at": ds.created_at,
                }
            )
    if json_out:
        _stdout().print_json(data=rows)
        return
    table = Table("dataset", "versions", "latest", "frames", "created", box=box.SIMPLE)
    for r in rows:
        table.add_row(
            escape(r["name"]),
            str(r["versions"]),
            escape(r["latest"] or "-"),
            str(r["frames"]),
            r["created_at"][:19],
        )
    _stdout().print(table)


@app.command()
def versions(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="DATASET")],
    home: Home = None,
    json_out: JsonOut = False,
) -> None:
    """List a dataset's versions: status, parent, frames, instances, labels."""
    with _reported(ctx):
        store = open_store(home)
        rows: list[dict[str, Any]] = []
        for v in store.dataset(name).versions():
            parent = v.parent
            rows.append(
                {
                    "name": v.name,
                    "status": v.status,
                    "parent": parent.name if parent else None,
                    "frames": v.frame_count,
                    "instances": v.instance_count,
                    "labels": [lab.name for lab in v.label_map],
                    "created_at": v.created_at,
                }
            )
    if json_out:
        _stdout().print_json(data=rows)
        return
    table = Table("version", "status", "parent", "frames", "instances", "labels", box=box.SIMPLE)
    for r in rows:
        labels = ", ".join(r["labels"][:6]) + (" ..." if len(r["labels"]) > 6 else "")
        table.add_row(
            escape(r["name"]),
            r["status"],
            escape(r["parent"] or "-"),
            str(r["frames"]),
            str(r["instances"]),
            escape(labels),
        )
    _stdout().print(table)


def diff_table(result: VersionDiff, *, limit: int = 20) -> Table:
    """The changed frames of a diff, one row per changed mask."""
    table = Table(
        "frame",
        "mask",
        "change",
        "pixels",
        "detail",
        box=box.SIMPLE,
        title=f"{result.a} -> {result.b}: +{len(result.added)} -{len(result.removed)} "
        f"~{len(result.changed)} frames",
    )
    for f in result.changed[:limit]:
        for m in f.masks:
            table.add_row(escape(f.frame_id), escape(m.mask), m.kind, str(m.pixels), m.detail)
        if f.other:
            table.add_row(escape(f.frame_id), "-", "changed", "", ", ".join(f.other))
    return table


@app.command()
def diff(
    ctx: typer.Context,
    a: Annotated[str, typer.Argument(metavar="A", help="DATASET:VERSION")],
    b: Annotated[str, typer.Argument(metavar="B", help="DATASET:VERSION, or VERSION of A's")],
    pixels: Annotated[
        bool, typer.Option("--pixels/--no-pixels", help="Count differing pixels per mask.")
    ] = True,
    home: Home = None,
    json_out: JsonOut = False,
) -> None:
    """What changed from A to B: frames added, removed, changed, and pixels per mask."""
    from masklab.store.diff import diff as diff_versions

    with _reported(ctx):
        store = open_store(home)
        va = store.version(a)
        vb = _version_of(store, b, base=va.ref)
        result = diff_versions(va, vb, pixels=pixels)
    if json_out:
        _stdout().print_json(data=result.to_dict())
        return
    out = _stdout()
    out.print(diff_table(result))
    for what, ids in (("added", result.added), ("removed", result.removed)):
        if ids:
            more = f" (+{len(ids) - 10} more)" if len(ids) > 10 else ""
            out.print(f"{what}: {escape(', '.join(ids[:10]))}{more}", highlight=False)


@app.command()
def frames(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="DATASET[:VERSION]")],
    where: Where = None,
    limit: Annotated[int, typer.Option("--limit", min=0, help="Print at most N ids.")] = 20,
    home: Home = None,
    json_out: JsonOut = False,
) -> None:
    """Count and list the frames of a version that --where selects."""
    with _reported(ctx):
        store = open_store(home)
        v = store.version(ref)
        view = _frames_of(v, where)
        ids = view.frame_ids() if view is not None else v.frame_ids()
    if json_out:
        _stdout().print_json(data={"version": v.ref, "count": len(ids), "frames": ids[:limit]})
        return
    out = _stdout()
    out.print(f"{escape(v.ref)}: {len(ids)} frames", highlight=False)
    for i in ids[:limit]:
        out.print(escape(i), highlight=False)


@app.command()
def publish(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="DATASET:VERSION")],
    home: Home = None,
) -> None:
    """Commit and publish a version: it never changes afterwards."""
    with _reported(ctx):
        v = open_store(home).version(ref)
        v.publish()
    _stderr().print(f"published {v.ref}", highlight=False)


# ---- Parquet: a columnar export of a version and its lossless import (store/parquet.py)


def _is_parquet_import(path: Path, source_format: str | None) -> bool:
    """``--from parquet``, or a folder that a ``--to parquet`` export wrote."""
    from masklab.store.parquet import is_parquet_export

    return source_format == "parquet" or (source_format is None and is_parquet_export(path))


def _import_parquet(
    ctx: typer.Context,
    path: Path,
    dataset: str,
    version: str | None,
    parent: str | None,
    strict: bool,
    home: Path | None,
    json_out: bool,
) -> None:
    from masklab.cli.app import _fail
    from masklab.store.parquet import import_parquet

    try:
        with _reported(ctx):
            store = open_store(home)
            with _progress("importing") as bar:
                task = bar.add_task("import", total=None)
                result = import_parquet(
                    store,
                    path,
                    dataset=dataset,
                    version=version,
                    parent=parent,
                    strict=strict,
                    progress=lambda n: bar.advance(task, n),
                )
    except ImportError as e:  # pyarrow is an optional extra; the message names it
        _fail(str(e))
    _show_import(result, json_out)


def _export_parquet(
    ctx: typer.Context,
    ref: str,
    dst: Path,
    where: str | None,
    with_blobs: bool,
    strict: bool,
    overwrite: bool,
    report_file: Path | None,
    home: Path | None,
    json_out: bool,
) -> None:
    from masklab.cli.app import _fail
    from masklab.store.parquet import export_parquet

    try:
        with _reported(ctx):
            store = open_store(home)
            v = store.version(ref)
            frames = _frames_of(v, where)
            with _progress("exporting") as bar:
                task = bar.add_task("export", total=v.frame_count if frames is None else None)
                report = export_parquet(
                    v,
                    dst,
                    frames=frames,
                    blobs=with_blobs,
                    strict=strict,
                    overwrite=overwrite,
                    progress=lambda n: bar.advance(task, n),
                )
    except ImportError as e:  # pyarrow is an optional extra; the message names it
        _fail(str(e))
    headline = (
        f"{escape(v.ref)} -> parquet: {report.samples} frames, {report.instances} annotations"
        f"{' and their blobs' if with_blobs else ''}; written to {escape(str(dst))}"
    )
    show_report(report, headline, report_file=report_file, json_out=json_out)
