"""Services behind the store's tests: catalog URLs (SQLite, PostgreSQL), blob URLs (folder, S3).

`make test` runs pytest under `scripts/services.sh`, which starts a throwaway PostgreSQL server and
an S3 API server (moto) on loopback and exports where they run:

- ``MASKLAB_TEST_POSTGRES_URL``: ``postgresql+psycopg://USER@HOST:PORT/DB``, a role that may
  CREATE DATABASE. Each test gets a fresh, uniquely named database, dropped at teardown.
- ``MASKLAB_TEST_S3_ENDPOINT``: ``http://HOST:PORT``. Each test gets a fresh bucket, emptied and
  deleted at teardown, and ``MASKLAB_S3_ENDPOINT_URL`` (what the store hands s3fs as
  ``client_kwargs={"endpoint_url": ...}``) set to the endpoint.

Fixtures: ``catalog_url`` (ids ``sqlite``, ``postgresql``), ``blob_url`` (``file``, ``s3``) and
``store_urls``, a ``(catalog_url, blob_url)`` pair over ``sqlite-file``, ``postgresql-file`` and
``sqlite-s3``. A test that needs a missing service skips saying how to get it; under ``CI=true`` it
fails instead, so CI never goes green by skipping the store. Nothing here downloads anything.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, NoReturn

import boto3
import botocore.config
import botocore.exceptions
import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import URL, make_url

POSTGRES_ENV = "MASKLAB_TEST_POSTGRES_URL"
S3_ENV = "MASKLAB_TEST_S3_ENDPOINT"
STORE_S3_ENDPOINT_ENV = "MASKLAB_S3_ENDPOINT_URL"  # read by masklab.store, passed on to s3fs
TEST_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
TIMEOUT_S = 5  # connecting to a service that does not answer
STORE_MATRIX = {  # store_urls: not the full cross product, to keep the suite quick
    "sqlite-file": ("sqlite", "file"),
    "postgresql-file": ("postgresql", "file"),
    "sqlite-s3": ("sqlite", "s3"),
}


def in_ci() -> bool:
    """True where env CI says so (CI=true, as CI services set it)."""
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def unavailable(service: str, env: str, why: str) -> NoReturn:
    """Skip the test for want of `service`; fail it under CI, where a skip would hide the store."""
    message = (
        f"{service} not available: run `make test` (starts a throwaway server on loopback) "
        f"or set {env}; {why}"
    )
    if in_ci():
        pytest.fail(f"{message} (CI=true: these tests may not skip)", pytrace=False)
    pytest.skip(message)


# --- PostgreSQL --------------------------------------------------------------------------------


def _libpq(url: URL) -> str:
    """The conninfo psycopg takes for a SQLAlchemy URL (same server, user, database, options)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """MASKLAB_TEST_POSTGRES_URL (driver psycopg), checked to answer; skips (CI: fails) if not."""
    raw = os.environ.get(POSTGRES_ENV)
    if not raw:
        unavailable("PostgreSQL", POSTGRES_ENV, f"{POSTGRES_ENV} is not set")
    url = make_url(raw).set(drivername="postgresql+psycopg")
    try:
        with psycopg.connect(_libpq(url), connect_timeout=TIMEOUT_S):
            pass
    except psycopg.Error as err:
        unavailable("PostgreSQL", POSTGRES_ENV, f"connecting to {raw!r} failed: {err}")
    return url.render_as_string(hide_password=False)


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """Create a uniquely named database on `admin_url`'s server, yield its URL, then drop it.

    The drop ends connections still open to it (WITH (FORCE); before PostgreSQL 13, by
    terminating them), so a test that forgets to dispose of an engine cannot block teardown.
    """
    admin = make_url(admin_url)
    name = f"masklab_test_{uuid.uuid4().hex[:16]}"
    database = sql.Identifier(name)
    with psycopg.connect(_libpq(admin), autocommit=True, connect_timeout=TIMEOUT_S) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(database))
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_libpq(admin), autocommit=True, connect_timeout=TIMEOUT_S) as conn:
            if conn.info.server_version >= 130000:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(database))
            else:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                    (name,),
                )
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(database))


def _catalog_url(request: pytest.FixtureRequest, stack: ExitStack, kind: str, tmp: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp}/catalog.db"
    admin_url = request.getfixturevalue("postgres_admin_url")
    return stack.enter_context(postgres_database(admin_url))


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A SQLAlchemy URL to an empty catalog: a SQLite file in tmp_path, or a fresh PG database."""
    with ExitStack() as stack:
        yield _catalog_url(request, stack, request.param, tmp_path)


# --- S3 ----------------------------------------------------------------------------------------


def s3_client(endpoint: str) -> Any:
    """A boto3 S3 client for `endpoint`, with the env's credentials or the test ones."""
    creds = {name: os.environ.get(name) or value for name, value in TEST_AWS_ENV.items()}
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
        region_name="us-east-1",  # where a bucket needs no LocationConstraint
        config=botocore.config.Config(
            connect_timeout=TIMEOUT_S, read_timeout=30, retries={"max_attempts": 2}
        ),
    )


@pytest.fixture(scope="session")
def s3_endpoint() -> str:
    """MASKLAB_TEST_S3_ENDPOINT, checked to answer S3 calls; skips (CI: fails) if not."""
    endpoint = os.environ.get(S3_ENV)
    if not endpoint:
        unavailable("S3", S3_ENV, f"{S3_ENV} is not set")
    try:
        s3_client(endpoint).list_buckets()
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as err:
        unavailable("S3", S3_ENV, f"listing buckets at {endpoint!r} failed: {err}")
    return endpoint


@contextmanager
def s3_bucket(endpoint: str) -> Iterator[str]:
    """Create a uniquely named bucket at `endpoint`, yield its name, then empty and delete it."""
    client = s3_client(endpoint)
    name = f"masklab-test-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=name)
    try:
        yield name
    finally:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=name, Delete={"Objects": keys})
        client.delete_bucket(Bucket=name)


def _blob_url(request: pytest.FixtureRequest, stack: ExitStack, kind: str, tmp: Path) -> str:
    if kind == "file":
        return str(tmp / "blobs")
    endpoint = request.getfixturevalue("s3_endpoint")
    monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
    for name, value in TEST_AWS_ENV.items():
        if not os.environ.get(name):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv(STORE_S3_ENDPOINT_ENV, endpoint)
    return f"s3://{stack.enter_context(s3_bucket(endpoint))}/blobs"


@pytest.fixture(params=["file", "s3"])
def blob_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An fsspec URL to an empty blob root: a folder in tmp_path, or s3://<fresh bucket>/blobs."""
    with ExitStack() as stack:
        yield _blob_url(request, stack, request.param, tmp_path)


# --- both --------------------------------------------------------------------------------------


@pytest.fixture(params=list(STORE_MATRIX.values()), ids=list(STORE_MATRIX))
def store_urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(catalog_url, blob_url) for an empty store, over sqlite-file, postgresql-file, sqlite-s3."""
    catalog_kind, blob_kind = request.param
    with ExitStack() as stack:
        yield (
            _catalog_url(request, stack, catalog_kind, tmp_path),
            _blob_url(request, stack, blob_kind, tmp_path),
        )
