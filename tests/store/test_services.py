"""The services behind the store's tests answer, and each test gets its own database and bucket."""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

import fsspec
import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from .conftest import (
    POSTGRES_ENV,
    S3_ENV,
    STORE_S3_ENDPOINT_ENV,
    postgres_database,
    s3_client,
    unavailable,
)


def fs_options(url: str) -> dict[str, object]:
    """What the store passes fsspec for `url`: the S3 endpoint from the env, nothing for files."""
    if url.startswith("s3://"):
        return {"client_kwargs": {"endpoint_url": os.environ[STORE_S3_ENDPOINT_ENV]}}
    return {}


def write_and_read_back(url: str, key: str, data: bytes) -> bytes:
    fs, root = fsspec.core.url_to_fs(url, **fs_options(url))
    path = f"{root}/{key}"
    fs.makedirs(posixpath.dirname(path), exist_ok=True)  # a folder for files; a no-op on S3
    fs.pipe_file(path, data)
    return bytes(fs.cat_file(path))


def roundtrip_rows(catalog_url: str) -> list[tuple[int, str]]:
    """Create a table in an empty catalog, insert two rows, and select them back."""
    table = sa.Table(
        "frames",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(50), nullable=False),
    )
    engine = sa.create_engine(catalog_url)
    try:
        with engine.begin() as conn:
            assert sa.inspect(conn).get_table_names() == []
            table.create(conn)
            conn.execute(table.insert(), [{"id": 2, "name": "b"}, {"id": 1, "name": "a"}])
        with engine.connect() as conn:
            rows = conn.execute(sa.select(table.c.id, table.c.name).order_by(table.c.id)).all()
    finally:
        engine.dispose()
    return [tuple(row) for row in rows]


def test_catalog_url_holds_a_table(catalog_url):
    assert roundtrip_rows(catalog_url) == [(1, "a"), (2, "b")]


@pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)
def test_sqlite_catalog_lives_in_tmp_path(catalog_url, tmp_path):
    url = make_url(catalog_url)
    assert url.get_backend_name() == "sqlite"
    assert Path(url.database).parent == tmp_path


@pytest.mark.parametrize("catalog_url", ["postgresql"], indirect=True)
def test_postgresql_catalog_is_a_database_of_its_own(catalog_url, postgres_admin_url):
    url, admin = make_url(catalog_url), make_url(postgres_admin_url)
    assert url.drivername == "postgresql+psycopg"
    assert url.database != admin.database
    engine = sa.create_engine(catalog_url)
    try:
        with engine.connect() as conn:
            assert conn.scalar(sa.text("SELECT current_database()")) == url.database
    finally:
        engine.dispose()


def test_postgres_database_is_dropped_even_while_connected(postgres_admin_url):
    with postgres_database(postgres_admin_url) as url:
        engine = sa.create_engine(url)
        held = engine.connect()  # left open on purpose: the drop must end it
        held.execute(sa.text("SELECT 1"))
    name = make_url(url).database
    admin = make_url(postgres_admin_url).set(drivername="postgresql")
    with psycopg.connect(admin.render_as_string(hide_password=False)) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchall()
    held.invalidate()
    engine.dispose()
    assert found == []


def test_blob_url_round_trips_an_object(blob_url):
    assert write_and_read_back(blob_url, "frames/0001.png", b"\x89PNG mask") == b"\x89PNG mask"


@pytest.mark.parametrize("blob_url", ["file"], indirect=True)
def test_file_blobs_land_in_tmp_path(blob_url, tmp_path):
    write_and_read_back(blob_url, "a/b.bin", b"123")
    assert (tmp_path / "blobs" / "a" / "b.bin").read_bytes() == b"123"


@pytest.mark.parametrize("blob_url", ["s3"], indirect=True)
def test_s3_blobs_land_in_a_fresh_bucket(blob_url):
    assert os.environ[STORE_S3_ENDPOINT_ENV] == os.environ[S3_ENV]
    bucket = blob_url.removeprefix("s3://").split("/")[0]
    client = s3_client(os.environ[S3_ENV])
    assert client.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    write_and_read_back(blob_url, "a/b.bin", b"123")
    assert client.get_object(Bucket=bucket, Key="blobs/a/b.bin")["Body"].read() == b"123"


def test_store_urls_give_a_catalog_and_a_blob_root(store_urls):
    catalog_url, blob_url = store_urls
    assert roundtrip_rows(catalog_url) == [(1, "a"), (2, "b")]
    assert write_and_read_back(blob_url, "x", b"y") == b"y"


def test_missing_service_skips_outside_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=rf"run `make test`.* or set {POSTGRES_ENV}"):
        unavailable("PostgreSQL", POSTGRES_ENV, f"{POSTGRES_ENV} is not set")


def test_missing_service_fails_under_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"S3 not available: run `make test`"):
        unavailable("S3", S3_ENV, f"{S3_ENV} is not set")
