"""The catalog: datasets, versions, frames and annotations in SQL, through SQLAlchemy Core.

One schema runs on the embedded SQLite file (WAL, the default) and on PostgreSQL. The schema
is versioned: ``schema_migrations`` records the steps applied, and :func:`migrate` applies the
missing ones in order in one transaction (a catalog written by a newer masklab is refused).

Tables::

    datasets(id, name, description, tags, created_at)
    versions(id, dataset_id, name, parent_id, status, ..., label_map, owner)
    frames(key, frame_id, context_id, timestamp, meta, doc, n_annotations)   immutable rows
    sources(frame_key, source_id, uri, width, height, content_type)          query index
    annotations(frame_key, idx, ..., rle, area, bx, by, bw, bh, ...)         compressed RLE
    frame_labels(frame_key, label) / mask_values(frame_key, value)           query index
    members(version_id, frame_id, frame_key, seq)                            a version's frames
    changes(version_id, frame_id, frame_key|NULL, seq)                       staged, uncommitted
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    select,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from masklab.errors import StoreError

__all__ = ["SCHEMA_VERSION", "Catalog", "now"]

metadata = MetaData()

schema_migrations = Table(
    "schema_migrations",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("applied_at", String(40), nullable=False),
)

datasets = Table(
    "datasets",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("description", Text, nullable=False, default=""),
    Column("tags", Text, nullable=False, default="[]"),
    Column("created_at", String(40), nullable=False),
)

versions = Table(
    "versions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("dataset_id", Integer, ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("parent_id", Integer, ForeignKey("versions.id"), nullable=True),
    Column("status", String(16), nullable=False),  # importing | draft | published
    Column("description", Text, nullable=False, default=""),
    Column("created_at", String(40), nullable=False),
    Column("committed_at", String(40), nullable=True),
    Column("published_at", String(40), nullable=True),
    Column("metadata", Text, nullable=False, default="{}"),
    Column("label_map", Text, nullable=True),
    Column("owner", String(255), nullable=True),  # host:pid of a running import
    Column("frame_count", Integer, nullable=False, default=0),
    Column("instance_count", Integer, nullable=False, default=0),
    UniqueConstraint("dataset_id", "name", name="uq_versions_dataset_name"),
)

frames = Table(
    "frames",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("frame_id", Text, nullable=False),
    Column("context_id", Text, nullable=True),
    Column("timestamp", BigInteger, nullable=True),
    Column("meta", Text, nullable=False),
    Column("doc", Text, nullable=False),
    Column("n_annotations", Integer, nullable=False),
)
Index("ix_frames_context", frames.c.context_id)

sources = Table(
    "sources",
    metadata,
    Column("frame_key", String(64), primary_key=True),
    Column("source_id", String(255), primary_key=True),
    Column("uri", Text, nullable=True),
    Column("width", Integer, nullable=True),
    Column("height", Integer, nullable=True),
    Column("content_type", String(255), nullable=True),
)

rois = Table(  # ClearML calls annotations ROIs; the Python name avoids the __future__ import
    "annotations",
    metadata,
    Column("frame_key", String(64), primary_key=True),
    Column("idx", Integer, primary_key=True, autoincrement=False),
    Column("source_id", String(255), nullable=True),
    Column("labels", Text, nullable=False),
    Column("class_id", Integer, nullable=True),
    Column("instance_id", BigInteger, nullable=True),
    Column("h", Integer, nullable=True),
    Column("w", Integer, nullable=True),
    Column("rle", Text, nullable=True),
    Column("area", BigInteger, nullable=True),
    Column("bx", Float, nullable=True),
    Column("by", Float, nullable=True),
    Column("bw", Float, nullable=True),
    Column("bh", Float, nullable=True),
    Column("box", Text, nullable=True),
    Column("polygons", Text, nullable=True),
    Column("score", Float, nullable=True),
    Column("iscrowd", Boolean, nullable=False),
    Column("meta", Text, nullable=False),
)

frame_labels = Table(
    "frame_labels",
    metadata,
    Column("frame_key", String(64), primary_key=True),
    Column("label", String(255), primary_key=True),
)
Index("ix_frame_labels_label", frame_labels.c.label)

mask_values = Table(
    "mask_values",
    metadata,
    Column("frame_key", String(64), primary_key=True),
    Column("value", Integer, primary_key=True, autoincrement=False),
)
Index("ix_mask_values_value", mask_values.c.value)

members = Table(
    "members",
    metadata,
    Column("version_id", Integer, primary_key=True, autoincrement=False),
    Column("frame_id", Text, primary_key=True),
    Column("frame_key", String(64), nullable=False),
    Column("seq", BigInteger, nullable=False),  # order of the frames in the version
)
Index("ix_members_key", members.c.frame_key)
Index("ix_members_seq", members.c.version_id, members.c.seq)

changes = Table(
    "changes",
    metadata,
    Column("version_id", Integer, primary_key=True, autoincrement=False),
    Column("frame_id", Text, primary_key=True),
    Column("frame_key", String(64), nullable=True),  # NULL: remove the frame
    Column("seq", BigInteger, nullable=True),
)

# Versioned DDL: step n brings the schema from n-1 to n. Append steps; never edit old ones.
_V1_TABLES = [
    datasets,
    versions,
    frames,
    sources,
    rois,
    frame_labels,
    mask_values,
    members,
    changes,
]


def _step_1(conn: Connection) -> None:
    metadata.create_all(conn, tables=_V1_TABLES)


MIGRATIONS: list[Callable[[Connection], None]] = [_step_1]
SCHEMA_VERSION = len(MIGRATIONS)


def now() -> str:
    """The current UTC time, ISO 8601 (the catalog's timestamp form)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


class Catalog:
    """An engine on the catalog database, with write transactions that serialise cleanly.

    On SQLite, write transactions start with ``BEGIN IMMEDIATE`` (so two writers queue on the
    busy timeout instead of failing on lock upgrade) and the journal is WAL (readers never
    wait for writers). On PostgreSQL the defaults serve.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            parsed = make_url(url)
        except ArgumentError as e:
            raise StoreError(
                f"catalog URL {url!r} is not a database URL; use sqlite:///PATH or "
                "postgresql+psycopg://USER@HOST/DB"
            ) from e
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {}
        if self.dialect == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 120, "check_same_thread": False}
        try:
            self.engine: Engine = create_engine(url, **kwargs)
        except (NoSuchModuleError, ModuleNotFoundError) as e:
            hint = (
                'pip install "masklab[postgres]"'
                if self.dialect == "postgresql"
                else "install its SQLAlchemy driver"
            )
            raise StoreError(f"no database driver for {url!r}: {e}; {hint}") from e
        if self.dialect == "sqlite":
            _sqlite_setup(self.engine)
        try:
            migrate(self.engine)
        except OperationalError as e:
            raise StoreError(f"cannot open the catalog {_safe(url)}: {e.orig}") from e

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction: committed on a clean exit, rolled back on any error."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(masklab_write=True)
            with conn.begin():
                yield conn

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction (a consistent snapshot of committed data)."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def dispose(self) -> None:
        """Close pooled connections (call in a forked child, or when done)."""
        self.engine.dispose()


def _safe(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<catalog>"


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=120000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("masklab_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def migrate(engine: Engine) -> int:
    """Apply the schema steps this catalog lacks; return the schema version."""
    with engine.connect() as conn:
        conn = conn.execution_options(masklab_write=True)
        with conn.begin():
            metadata.create_all(conn, tables=[schema_migrations])
            applied = {r[0] for r in conn.execute(select(schema_migrations.c.version))}
            newest = max(applied, default=0)
            if newest > SCHEMA_VERSION:
                raise StoreError(
                    f"the catalog has schema version {newest} but this masklab knows "
                    f"{SCHEMA_VERSION}; upgrade masklab to open it"
                )
            for n, step in enumerate(MIGRATIONS, start=1):
                if n not in applied:
                    step(conn)
                    conn.execute(schema_migrations.insert().values(version=n, applied_at=now()))
    return SCHEMA_VERSION


def insert_tuples(
    conn: Connection, table: Table, rows: Sequence[tuple[Any, ...]], *, ignore: bool = True
) -> None:
    """Insert rows given as tuples in ``table``'s column order straight through the driver's
    executemany (the import hot path: no per-row SQLAlchemy processing). With ``ignore``
    rows whose primary key exists are skipped."""
    if not rows:
        return
    names = ", ".join(f'"{c.name}"' for c in table.columns)
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    marks = ", ".join([mark] * len(table.columns))
    if conn.dialect.name == "sqlite":
        verb = "INSERT OR IGNORE INTO" if ignore else "INSERT INTO"
        sql = f'{verb} "{table.name}" ({names}) VALUES ({marks})'
    else:
        tail = " ON CONFLICT DO NOTHING" if ignore else ""
        sql = f'INSERT INTO "{table.name}" ({names}) VALUES ({marks}){tail}'
    conn.exec_driver_sql(sql, list(rows))


def owner_tag() -> str:
    """``host:pid`` of this process (who holds a running import)."""
    return f"{os.uname().nodename}:{os.getpid()}"
