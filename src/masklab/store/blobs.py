"""Content-addressed blobs (images, mask PNGs) under an fsspec URL.

A blob is stored once under ``<root>/sha256/<2 hex>/<hex>`` and named in frames as
``blob:sha256:<hex>``. The root is a local folder (the default, under ``MASKLAB_HOME``) or any
fsspec URL, ``s3://bucket/prefix`` included (``MASKLAB_S3_ENDPOINT_URL`` points s3fs at
another S3 API server, e.g. one on loopback). Every read re-hashes the bytes: a blob that no
longer matches its name raises :class:`~masklab.errors.BlobIntegrityError` and is never served.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from pathlib import Path
from typing import Any

import fsspec

from masklab.errors import BlobIntegrityError, NotFoundError, StoreError
from masklab.store.model import BLOB_SCHEME

__all__ = ["BlobStore", "read_uri"]

_HEX = re.compile(r"^[0-9a-f]{64}$")


def _storage_options(url: str) -> dict[str, Any]:
    if url.startswith("s3://"):
        endpoint = os.environ.get("MASKLAB_S3_ENDPOINT_URL")
        if endpoint:
            return {"client_kwargs": {"endpoint_url": endpoint}}
    return {}


class BlobStore:
    """Put and get bytes by sha256 under one fsspec root."""

    def __init__(self, url: str, **storage_options: Any) -> None:
        self.url = url.rstrip("/")
        options = {**_storage_options(self.url), **storage_options}
        try:
            self.fs, self.root = fsspec.core.url_to_fs(self.url, **options)
        except (ImportError, ValueError) as e:
            hint = ' (pip install "masklab[s3]")' if self.url.startswith("s3://") else ""
            raise StoreError(f"cannot open the blob store {self.url!r}: {e}{hint}") from e
        self.local = self.fs.protocol in ("file", "local") or "file" in self.fs.protocol
        if self.local:
            Path(self.root).mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> str:
        """Where the blob with this sha256 lives under the root."""
        if not _HEX.match(digest):
            raise StoreError(f"{digest!r} is not a sha256 hex digest")
        return f"{self.root}/sha256/{digest[:2]}/{digest}"

    def put(self, data: bytes) -> str:
        """Store bytes (once: an existing blob is not rewritten); return the sha256 hex."""
        digest = hashlib.sha256(data).hexdigest()
        path = self.path(digest)
        if self.fs.exists(path):
            return digest
        if self.local:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            tmp = f"{path}.{uuid.uuid4().hex}.tmp"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)  # atomic: a reader never sees half a blob
        else:
            self.fs.pipe_file(path, data)  # one PUT: atomic on S3
        return digest

    def get(self, digest: str) -> bytes:
        """The blob's bytes, verified against its name."""
        path = self.path(digest)
        try:
            data: bytes = self.fs.cat_file(path)
        except FileNotFoundError:
            raise NotFoundError(
                f"blob sha256:{digest} is not in {self.url}; it was deleted, or the store "
                "points at another blob location (MASKLAB_BLOBS)"
            ) from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise BlobIntegrityError(
                f"blob {path} is corrupt: its bytes hash to sha256:{actual}; restore it from "
                "a backup or re-import the frame that references it"
            )
        return data

    def exists(self, digest: str) -> bool:
        """Whether a blob with this hash is stored."""
        return bool(self.fs.exists(self.path(digest)))

    def read(self, uri: str) -> bytes:
        """Bytes of a ``blob:sha256:`` URI (verified) or of any external URI."""
        if uri.startswith(BLOB_SCHEME):
            return self.get(uri[len(BLOB_SCHEME) :])
        return read_uri(uri)

    def ingest(self, uri: str) -> str:
        """Copy an external URI's bytes in; return the blob's hex digest."""
        return self.put(read_uri(uri))


def read_uri(uri: str) -> bytes:
    """Bytes of an external URI: a file path, ``file://``, ``s3://``, ``https://``."""
    try:
        with fsspec.open(uri, "rb", **_storage_options(uri)) as f:
            data: bytes = f.read()
    except FileNotFoundError:
        raise NotFoundError(f"{uri} does not exist") from None
    except (OSError, ValueError, ImportError) as e:
        raise StoreError(f"cannot read {uri}: {e}") from e
    return data
